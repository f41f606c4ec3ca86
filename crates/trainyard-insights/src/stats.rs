//! Summaries of TFDV statistics (StatisticsGen's `Split-*/FeatureStats.pb`): the Data Insights
//! tab's dataset cards and feature tables, per split and for all splits together.
//!
//! Combining splits is exact where the statistics allow it: counts, missing, zeros, min, max,
//! mean and (population) standard deviation. Medians and histograms do not combine, so the
//! combined summary has none; unique values and top values combine exactly only when every
//! split lists all its values (`exact` says so), otherwise they are lower bounds.

use std::collections::BTreeMap;

use prost::Message;
use serde::{Deserialize, Serialize};

use crate::proto::{
    CommonStatistics, DatasetFeatureStatistics, DatasetFeatureStatisticsList,
    FeatureNameStatistics, FeatureType, HistogramType,
};
use crate::InsightsError;

/// Decodes a binary `DatasetFeatureStatisticsList`.
pub fn decode_statistics(bytes: &[u8]) -> Result<DatasetFeatureStatisticsList, InsightsError> {
    DatasetFeatureStatisticsList::decode(bytes).map_err(|e| InsightsError::Decode(e.to_string()))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramBucket {
    pub low: f64,
    pub high: f64,
    pub count: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericFeatureSummary {
    pub name: String,
    /// INT or FLOAT.
    #[serde(rename = "type")]
    pub feature_type: String,
    /// Examples that have a value (see `presence` for blank CSV cells).
    pub count: u64,
    pub missing: u64,
    pub missing_pct: f64,
    /// Values (a multivalent feature has several per example).
    pub num_values: u64,
    pub mean: f64,
    pub std_dev: f64,
    pub zeros: u64,
    pub zeros_pct: f64,
    pub min: f64,
    /// None when splits were combined (medians do not combine).
    pub median: Option<f64>,
    pub max: f64,
    /// TFDV's standard (equal-width) histogram; empty when splits were combined.
    pub histogram: Vec<HistogramBucket>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopValue {
    pub value: String,
    pub frequency: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalFeatureSummary {
    pub name: String,
    /// STRING, BYTES, or INT for categorical integers.
    #[serde(rename = "type")]
    pub feature_type: String,
    pub count: u64,
    pub missing: u64,
    pub missing_pct: f64,
    pub num_values: u64,
    pub unique: u64,
    /// Whether `unique` and `top_values` are exact (always for one split; for combined splits
    /// only when every split listed all its values).
    pub exact: bool,
    /// Most frequent first.
    pub top_values: Vec<TopValue>,
    pub avg_length: f64,
}

/// One dataset (a split, or all splits combined).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSummary {
    pub name: String,
    pub total_examples: u64,
    pub feature_count: u64,
    pub numeric_feature_count: u64,
    pub categorical_feature_count: u64,
    /// numeric / (numeric + categorical); 0 without either.
    pub numeric_ratio: f64,
    /// Mean over features of their missing %.
    pub avg_missing_pct: f64,
    pub numeric_features: Vec<NumericFeatureSummary>,
    pub categorical_features: Vec<CategoricalFeatureSummary>,
}

/// Statistics of a run: each split, and all of them together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatisticsSummary {
    pub splits: Vec<DatasetSummary>,
    pub combined: DatasetSummary,
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn type_name(t: i32) -> String {
    match FeatureType::try_from(t) {
        Ok(FeatureType::Int) => "INT",
        Ok(FeatureType::Float) => "FLOAT",
        Ok(FeatureType::String) => "STRING",
        Ok(FeatureType::Bytes) => "BYTES",
        Ok(FeatureType::Struct) => "STRUCT",
        Err(_) => "UNKNOWN",
    }
    .to_string()
}

/// Examples that have at least one value, and those that have none. TFDV counts a feature
/// that is present with an EMPTY value list as non-missing; CsvExampleGen writes every blank
/// CSV cell that way. For single-valued features (at most one value per example) the
/// examples with a value are exactly `tot_num_values`, so blanks count as missing here; for
/// multivalent ones TFDV's presence count is all there is.
fn presence(c: &CommonStatistics, total: u64) -> (u64, u64) {
    let count = if c.max_num_values <= 1 {
        c.tot_num_values.min(c.num_non_missing)
    } else {
        c.num_non_missing
    };
    let examples = if total > 0 {
        total
    } else {
        c.num_non_missing + c.num_missing
    };
    (count, examples.saturating_sub(count))
}

fn numeric(f: &FeatureNameStatistics, total: u64) -> Option<NumericFeatureSummary> {
    let n = f.num_stats.as_ref()?;
    let c = n.common_stats.clone().unwrap_or_default();
    let (count, missing) = presence(&c, total);
    let num_values = if c.tot_num_values > 0 {
        c.tot_num_values
    } else {
        c.num_non_missing
    };
    let histogram = n
        .histograms
        .iter()
        .find(|h| h.r#type == HistogramType::Standard as i32)
        .map(|h| {
            h.buckets
                .iter()
                .map(|b| HistogramBucket {
                    low: b.low_value,
                    high: b.high_value,
                    count: b.sample_count,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(NumericFeatureSummary {
        name: f.feature_name(),
        feature_type: type_name(f.r#type),
        count,
        missing,
        missing_pct: pct(missing, count + missing),
        num_values,
        mean: n.mean,
        std_dev: n.std_dev,
        zeros: n.num_zeros,
        zeros_pct: pct(n.num_zeros, num_values),
        min: n.min,
        median: Some(n.median),
        max: n.max,
        histogram,
    })
}

fn categorical(f: &FeatureNameStatistics, total: u64) -> Option<CategoricalFeatureSummary> {
    let s = f.string_stats.as_ref()?;
    let c = s.common_stats.clone().unwrap_or_default();
    let (count, missing) = presence(&c, total);
    let num_values = if c.tot_num_values > 0 {
        c.tot_num_values
    } else {
        c.num_non_missing
    };
    let mut top_values: Vec<TopValue> = s
        .top_values
        .iter()
        .map(|t| TopValue {
            value: t.value.clone(),
            frequency: t.frequency,
        })
        .collect();
    sort_top(&mut top_values);
    Some(CategoricalFeatureSummary {
        name: f.feature_name(),
        feature_type: type_name(f.r#type),
        count,
        missing,
        missing_pct: pct(missing, count + missing),
        num_values,
        unique: s.unique,
        exact: true,
        top_values,
        avg_length: f64::from(s.avg_length),
    })
}

fn sort_top(v: &mut [TopValue]) {
    v.sort_by(|a, b| {
        b.frequency
            .total_cmp(&a.frequency)
            .then_with(|| a.value.cmp(&b.value))
    });
}

fn finish(
    name: String,
    total_examples: u64,
    feature_count: u64,
    numeric_features: Vec<NumericFeatureSummary>,
    categorical_features: Vec<CategoricalFeatureSummary>,
) -> DatasetSummary {
    let n = numeric_features.len() as u64;
    let k = categorical_features.len() as u64;
    let missing: Vec<f64> = numeric_features
        .iter()
        .map(|f| f.missing_pct)
        .chain(categorical_features.iter().map(|f| f.missing_pct))
        .collect();
    DatasetSummary {
        name,
        total_examples,
        feature_count,
        numeric_feature_count: n,
        categorical_feature_count: k,
        numeric_ratio: if n + k == 0 {
            0.0
        } else {
            n as f64 / (n + k) as f64
        },
        avg_missing_pct: if missing.is_empty() {
            0.0
        } else {
            missing.iter().sum::<f64>() / missing.len() as f64
        },
        numeric_features,
        categorical_features,
    }
}

/// Summary of one dataset (split).
pub fn summarize_dataset(d: &DatasetFeatureStatistics) -> DatasetSummary {
    let total = d.num_examples;
    let mut num = Vec::new();
    let mut cat = Vec::new();
    for f in &d.features {
        if let Some(s) = numeric(f, total) {
            num.push(s);
        } else if let Some(s) = categorical(f, total) {
            cat.push(s);
        }
    }
    num.sort_by(|a, b| a.name.cmp(&b.name));
    cat.sort_by(|a, b| a.name.cmp(&b.name));
    finish(d.name.clone(), total, d.features.len() as u64, num, cat)
}

fn combine_numeric(parts: &[&NumericFeatureSummary]) -> NumericFeatureSummary {
    let first = parts[0];
    let n: u64 = parts.iter().map(|p| p.num_values).sum();
    let count: u64 = parts.iter().map(|p| p.count).sum();
    let missing: u64 = parts.iter().map(|p| p.missing).sum();
    let zeros: u64 = parts.iter().map(|p| p.zeros).sum();
    let mean = if n == 0 {
        0.0
    } else {
        parts
            .iter()
            .map(|p| p.mean * p.num_values as f64)
            .sum::<f64>()
            / n as f64
    };
    // pooled population variance: sum of within-split squares plus between-split spread
    let m2: f64 = parts
        .iter()
        .map(|p| {
            let k = p.num_values as f64;
            p.std_dev * p.std_dev * k + k * (p.mean - mean) * (p.mean - mean)
        })
        .sum();
    NumericFeatureSummary {
        name: first.name.clone(),
        feature_type: first.feature_type.clone(),
        count,
        missing,
        missing_pct: pct(missing, count + missing),
        num_values: n,
        mean,
        std_dev: if n == 0 { 0.0 } else { (m2 / n as f64).sqrt() },
        zeros,
        zeros_pct: pct(zeros, n),
        min: parts.iter().map(|p| p.min).fold(f64::INFINITY, f64::min),
        median: if parts.len() == 1 { first.median } else { None },
        max: parts
            .iter()
            .map(|p| p.max)
            .fold(f64::NEG_INFINITY, f64::max),
        histogram: if parts.len() == 1 {
            first.histogram.clone()
        } else {
            Vec::new()
        },
    }
}

fn combine_categorical(parts: &[&CategoricalFeatureSummary]) -> CategoricalFeatureSummary {
    let first = parts[0];
    let count: u64 = parts.iter().map(|p| p.count).sum();
    let missing: u64 = parts.iter().map(|p| p.missing).sum();
    let num_values: u64 = parts.iter().map(|p| p.num_values).sum();
    // a split lists all its values when its top values account for every value
    let complete = parts.iter().all(|p| {
        p.exact
            && (p.top_values.iter().map(|t| t.frequency).sum::<f64>() - p.num_values as f64).abs()
                < 0.5
    });
    let mut freq: BTreeMap<&str, f64> = BTreeMap::new();
    for p in parts {
        for t in &p.top_values {
            *freq.entry(t.value.as_str()).or_default() += t.frequency;
        }
    }
    let mut top_values: Vec<TopValue> = freq
        .iter()
        .map(|(v, f)| TopValue {
            value: (*v).to_string(),
            frequency: *f,
        })
        .collect();
    sort_top(&mut top_values);
    let unique = if complete {
        freq.len() as u64
    } else {
        (freq.len() as u64).max(parts.iter().map(|p| p.unique).max().unwrap_or(0))
    };
    let avg_length = if num_values == 0 {
        0.0
    } else {
        parts
            .iter()
            .map(|p| p.avg_length * p.num_values as f64)
            .sum::<f64>()
            / num_values as f64
    };
    CategoricalFeatureSummary {
        name: first.name.clone(),
        feature_type: first.feature_type.clone(),
        count,
        missing,
        missing_pct: pct(missing, count + missing),
        num_values,
        unique: if parts.len() == 1 {
            first.unique
        } else {
            unique
        },
        exact: parts.len() == 1 || complete,
        top_values,
        avg_length,
    }
}

/// Splits combined (see the module docs for what combines exactly).
pub fn combine(splits: &[DatasetSummary]) -> DatasetSummary {
    let total: u64 = splits.iter().map(|s| s.total_examples).sum();
    let mut num: BTreeMap<&str, Vec<&NumericFeatureSummary>> = BTreeMap::new();
    let mut cat: BTreeMap<&str, Vec<&CategoricalFeatureSummary>> = BTreeMap::new();
    for s in splits {
        for f in &s.numeric_features {
            num.entry(&f.name).or_default().push(f);
        }
        for f in &s.categorical_features {
            cat.entry(&f.name).or_default().push(f);
        }
    }
    let mut numeric: Vec<_> = num.values().map(|p| combine_numeric(p)).collect();
    let mut categorical: Vec<_> = cat.values().map(|p| combine_categorical(p)).collect();
    // a feature absent from a split is missing in all of that split's examples
    for f in &mut numeric {
        f.missing = total - f.count;
        f.missing_pct = pct(f.missing, total);
    }
    for f in &mut categorical {
        f.missing = total - f.count;
        f.missing_pct = pct(f.missing, total);
    }
    let feature_count = splits
        .iter()
        .map(|s| s.feature_count)
        .max()
        .unwrap_or(0)
        .max((numeric.len() + categorical.len()) as u64);
    let names: Vec<&str> = splits.iter().map(|s| s.name.as_str()).collect();
    finish(names.join("+"), total, feature_count, numeric, categorical)
}

/// Summaries of named statistics files (split name, bytes), e.g. `train` and `eval`.
pub fn summarize_splits<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<StatisticsSummary, InsightsError> {
    let mut splits = Vec::new();
    for (split, bytes) in files {
        let list = decode_statistics(bytes)?;
        if list.datasets.is_empty() {
            return Err(InsightsError::Decode(format!(
                "statistics of split {split:?} hold no dataset"
            )));
        }
        for d in &list.datasets {
            let mut s = summarize_dataset(d);
            s.name = if list.datasets.len() == 1 || d.name.is_empty() {
                split.to_string()
            } else {
                format!("{split}/{}", d.name)
            };
            splits.push(s);
        }
    }
    if splits.is_empty() {
        return Err(InsightsError::NotFound("statistics splits".into()));
    }
    let combined = combine(&splits);
    Ok(StatisticsSummary { splits, combined })
}
