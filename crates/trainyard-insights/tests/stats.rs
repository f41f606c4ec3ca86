//! Statistics summaries against values computed here from the raw values: two splits encoded
//! as TFDV would (one dataset each), decoded, summarized and combined.

use prost::Message;
use trainyard_insights::proto::*;
use trainyard_insights::summarize_splits;

fn common(values: &[Option<f64>]) -> CommonStatistics {
    let present = values.iter().flatten().count() as u64;
    CommonStatistics {
        num_non_missing: present,
        num_missing: values.len() as u64 - present,
        min_num_values: 1,
        max_num_values: 1,
        avg_num_values: 1.0,
        tot_num_values: present,
    }
}

fn numeric_feature(name: &str, values: &[Option<f64>]) -> FeatureNameStatistics {
    let mut v: Vec<f64> = values.iter().flatten().copied().collect();
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    FeatureNameStatistics {
        path: Some(Path {
            step: vec![name.into()],
        }),
        r#type: FeatureType::Float as i32,
        num_stats: Some(NumericStatistics {
            common_stats: Some(common(values)),
            mean,
            std_dev: std,
            num_zeros: v.iter().filter(|x| **x == 0.0).count() as u64,
            min: v[0],
            median: v[v.len() / 2],
            max: v[v.len() - 1],
            histograms: vec![Histogram {
                buckets: vec![Bucket {
                    low_value: v[0],
                    high_value: v[v.len() - 1],
                    sample_count: n,
                }],
                ..Histogram::default()
            }],
        }),
        ..FeatureNameStatistics::default()
    }
}

fn string_feature(name: &str, values: &[Option<&str>], keep_top: usize) -> FeatureNameStatistics {
    let mut freq = std::collections::BTreeMap::<&str, f64>::new();
    for v in values.iter().flatten() {
        *freq.entry(v).or_default() += 1.0;
    }
    let mut top: Vec<_> = freq.iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(a.1));
    let as_f: Vec<Option<f64>> = values.iter().map(|v| v.map(|_| 1.0)).collect();
    FeatureNameStatistics {
        path: Some(Path {
            step: vec![name.into()],
        }),
        r#type: FeatureType::String as i32,
        string_stats: Some(StringStatistics {
            common_stats: Some(common(&as_f)),
            unique: freq.len() as u64,
            top_values: top
                .iter()
                .take(keep_top)
                .map(|(v, f)| FreqAndValue {
                    value: v.to_string(),
                    frequency: **f,
                })
                .collect(),
            avg_length: 1.0,
        }),
        ..FeatureNameStatistics::default()
    }
}

fn split(price: &[Option<f64>], city: &[Option<&str>], keep_top: usize) -> Vec<u8> {
    DatasetFeatureStatisticsList {
        datasets: vec![DatasetFeatureStatistics {
            name: String::new(),
            num_examples: price.len() as u64,
            weighted_num_examples: 0.0,
            features: vec![
                numeric_feature("price", price),
                string_feature("city", city, keep_top),
            ],
        }],
    }
    .encode_to_vec()
}

#[test]
fn splits_combine_to_the_statistics_of_all_values() {
    let train_p = [Some(1.0), Some(0.0), None, Some(4.0), Some(10.0)];
    let eval_p = [Some(-2.0), None, None, Some(3.5)];
    let train_c = [Some("a"), Some("b"), Some("a"), None, Some("c")];
    let eval_c = [Some("d"), Some("a"), None, None];
    let t = split(&train_p, &train_c, 20);
    let e = split(&eval_p, &eval_c, 20);
    let s = summarize_splits([("train", t.as_slice()), ("eval", e.as_slice())]).unwrap();
    assert_eq!(s.splits.len(), 2);
    assert_eq!(s.splits[0].name, "train");
    assert_eq!(s.splits[0].numeric_features[0].median, Some(4.0));

    let all: Vec<f64> = train_p.iter().chain(&eval_p).flatten().copied().collect();
    let n = all.len() as f64;
    let mean = all.iter().sum::<f64>() / n;
    let std = (all.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let c = &s.combined;
    assert_eq!(c.total_examples, 9);
    assert_eq!(c.feature_count, 2);
    assert_eq!(
        (c.numeric_feature_count, c.categorical_feature_count),
        (1, 1)
    );
    assert_eq!(c.numeric_ratio, 0.5);
    let p = &c.numeric_features[0];
    assert_eq!((p.count, p.missing, p.zeros), (6, 3, 1));
    assert!((p.missing_pct - 100.0 * 3.0 / 9.0).abs() < 1e-9);
    assert!((p.mean - mean).abs() < 1e-12, "{} vs {mean}", p.mean);
    assert!((p.std_dev - std).abs() < 1e-12, "{} vs {std}", p.std_dev);
    assert_eq!((p.min, p.max), (-2.0, 10.0));
    assert_eq!(p.median, None, "medians do not combine");
    assert!(p.histogram.is_empty());

    let city = &c.categorical_features[0];
    assert_eq!((city.count, city.missing, city.unique), (6, 3, 4));
    assert!(city.exact);
    assert_eq!(city.top_values[0].value, "a");
    assert_eq!(city.top_values[0].frequency, 3.0);
    let missing_avg = (100.0 * 3.0 / 9.0 + 100.0 * 3.0 / 9.0) / 2.0;
    assert!((c.avg_missing_pct - missing_avg).abs() < 1e-9);
}

#[test]
fn partial_top_values_give_a_lower_bound() {
    let p = [Some(1.0), Some(2.0), Some(3.0)];
    let t = split(&p, &[Some("a"), Some("b"), Some("c")], 1);
    let e = split(&p, &[Some("d"), Some("e"), Some("a")], 1);
    let s = summarize_splits([("train", t.as_slice()), ("eval", e.as_slice())]).unwrap();
    let city = &s.combined.categorical_features[0];
    assert!(!city.exact);
    assert_eq!(
        city.unique, 3,
        "the larger split count is the bound we know"
    );
}

#[test]
fn garbage_is_a_decode_error() {
    let e = summarize_splits([("train", &[0xffu8, 0xff, 0xff][..])]).unwrap_err();
    assert!(
        matches!(e, trainyard_insights::InsightsError::Decode(_)),
        "{e}"
    );
}
