//! Insights of one REAL local pipeline run (TFX in the managed env) on the synthetic dataset
//! plus two optional columns (written by the kit): the statistics and schema summaries against values computed here
//! from the CSV, the trainer's weight and gradient statistics for every epoch and tower, and
//! the per-component logs. The retrieval run of the shared trained project (testkit::shared)
//! serves every assertion. Run by `make test-insights` (mk/insights.mk) with TRAINYARD_PYTHON set.

use std::collections::{BTreeMap, BTreeSet};

use testkit::shared::{trained_project, RETRIEVAL_EPOCHS};
use testkit::{open_local, read_csv};
use trainyard::insights::SchemaType;
use trainyard_core::RunStatus;

const EPOCHS: u32 = RETRIEVAL_EPOCHS;

struct Column<'a> {
    values: Vec<&'a str>,
    missing: u64,
}

fn column<'a>(header: &[String], rows: &'a [Vec<String>], name: &str) -> Column<'a> {
    let i = header.iter().position(|h| h == name).unwrap();
    let all: Vec<&str> = rows.iter().map(|r| r[i].as_str()).collect();
    Column {
        missing: all.iter().filter(|v| v.is_empty()).count() as u64,
        values: all.into_iter().filter(|v| !v.is_empty()).collect(),
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs TRAINYARD_PYTHON (the managed TFX env); run by make test-insights"]
async fn insights_of_a_real_local_run_match_the_csv() {
    let shared = trained_project().await;
    let (header, rows) = read_csv(&shared.csv());
    let (p, _) = open_local(&shared.root).await;
    let run = p.training().get(shared.retrieval).await.unwrap();
    assert!(
        matches!(run.status, RunStatus::Completed | RunStatus::NotBlessed),
        "{:?}: {:?}",
        run.status,
        run.error_message
    );
    let insights = p.insights();

    // ---- statistics: every split together against the whole CSV
    let stats = insights.statistics(run.id).await.unwrap();
    assert!(stats.summary.splits.len() >= 2, "train and eval splits");
    assert_eq!(stats.summary.splits[0].name, "train");
    let all = &stats.summary.combined;
    assert_eq!(all.total_examples, rows.len() as u64);
    assert_eq!(all.feature_count, header.len() as u64);
    let split_total: u64 = stats.summary.splits.iter().map(|s| s.total_examples).sum();
    assert_eq!(split_total, rows.len() as u64);
    let numeric = [
        "revenue",
        "timestamp",
        "price",
        "quantity",
        "rating",
        "discount",
    ];
    let categorical = [
        "customer_id",
        "city",
        "segment",
        "product_id",
        "category",
        "promo",
    ];
    assert_eq!(all.numeric_feature_count, numeric.len() as u64);
    assert_eq!(all.categorical_feature_count, categorical.len() as u64);
    assert!(close(all.numeric_ratio, 0.5, 1e-12));
    let mut missing_pcts = Vec::new();
    for name in numeric {
        let c = column(&header, &rows, name);
        let v: Vec<f64> = c.values.iter().map(|x| x.parse().unwrap()).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let (min, max) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(*x), b.max(*x))
            });
        let f = all
            .numeric_features
            .iter()
            .find(|f| f.name == name)
            .unwrap();
        assert_eq!((f.count, f.missing), (v.len() as u64, c.missing), "{name}");
        let pct = c.missing as f64 * 100.0 / rows.len() as f64;
        assert!(
            close(f.missing_pct, pct, 1e-9),
            "{name} missing {} vs {pct}",
            f.missing_pct
        );
        missing_pcts.push(pct);
        // FLOAT columns are float32 in the examples: compare at float32 precision
        assert!(
            close(f.mean, mean, 1e-5),
            "{name} mean {} vs {mean}",
            f.mean
        );
        assert!(
            close(f.min, min, 1e-6) && close(f.max, max, 1e-6),
            "{name} {} {}",
            f.min,
            f.max
        );
        let zeros = v.iter().filter(|x| **x == 0.0).count() as u64;
        assert_eq!(f.zeros, zeros, "{name} zeros");
        for split in &stats.summary.splits {
            let s = split
                .numeric_features
                .iter()
                .find(|f| f.name == name)
                .unwrap();
            assert!(
                s.median.is_some() && !s.histogram.is_empty(),
                "{name} per split"
            );
            let binned: f64 = s.histogram.iter().map(|b| b.count).sum();
            assert!(close(binned, s.num_values as f64, 1e-6), "{name} histogram");
        }
    }
    for name in categorical {
        let c = column(&header, &rows, name);
        let mut freq: BTreeMap<&str, f64> = BTreeMap::new();
        for v in &c.values {
            *freq.entry(v).or_default() += 1.0;
        }
        let f = all
            .categorical_features
            .iter()
            .find(|f| f.name == name)
            .unwrap();
        assert_eq!(
            (f.count, f.missing),
            (c.values.len() as u64, c.missing),
            "{name}"
        );
        missing_pcts.push(c.missing as f64 * 100.0 / rows.len() as f64);
        if f.exact {
            assert_eq!(f.unique, freq.len() as u64, "{name} unique");
            for t in &f.top_values {
                assert_eq!(freq[t.value.as_str()], t.frequency, "{name} {}", t.value);
            }
        } else {
            assert!(f.unique <= freq.len() as u64, "{name}: a lower bound");
        }
        for split in &stats.summary.splits {
            let s = split
                .categorical_features
                .iter()
                .find(|f| f.name == name)
                .unwrap();
            assert!(s.unique <= freq.len() as u64, "{name} per split");
        }
    }
    for small in ["city", "segment", "category", "promo"] {
        let f = all
            .categorical_features
            .iter()
            .find(|f| f.name == small)
            .unwrap();
        assert!(f.exact, "{small}: every value listed in every split");
    }
    let avg = missing_pcts.iter().sum::<f64>() / missing_pcts.len() as f64;
    assert!(
        close(all.avg_missing_pct, avg, 1e-9),
        "{} vs {avg}",
        all.avg_missing_pct
    );
    assert!(all.avg_missing_pct > 0.0);

    // ---- schema
    let schema = insights.schema(run.id).await.unwrap();
    let names: BTreeSet<&str> = schema
        .summary
        .features
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, header.iter().map(String::as_str).collect());
    let feature = |n: &str| {
        schema
            .summary
            .features
            .iter()
            .find(|f| f.name == n)
            .unwrap()
    };
    assert_eq!(feature("city").feature_type, SchemaType::Bytes);
    assert_eq!(feature("quantity").feature_type, SchemaType::Int);
    assert_eq!(feature("price").feature_type, SchemaType::Float);
    assert!(feature("city").required && feature("price").required);
    // CsvExampleGen writes blank cells as empty value lists: present, but no fixed shape
    assert_eq!(feature("city").shape, "fixed [1]");
    assert_ne!(feature("promo").shape, "fixed [1]");
    assert_ne!(feature("discount").shape, "fixed [1]");
    match &feature("segment").domain {
        Some(trainyard::insights::Domain::String { values, .. }) => {
            let c = column(&header, &rows, "segment");
            let want: BTreeSet<&str> = c.values.into_iter().collect();
            assert_eq!(
                values.iter().map(String::as_str).collect::<BTreeSet<_>>(),
                want
            );
        }
        other => panic!("segment domain {other:?}"),
    }

    // ---- weight and gradient statistics: every epoch, every tower
    let w = insights.weight_stats(run.id, None).await.unwrap();
    assert_eq!(w.towers, vec!["buyer_tower", "product_tower"]);
    assert_eq!(
        w.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        (0..EPOCHS).collect::<Vec<_>>()
    );
    let customers = column(&header, &rows, "customer_id")
        .values
        .into_iter()
        .collect::<BTreeSet<_>>()
        .len() as u64;
    for e in &w.epochs {
        for (tower, t) in &e.towers {
            let g = t
                .gradients
                .as_ref()
                .unwrap_or_else(|| panic!("{tower}: {:?}", t.gradients_error));
            for (kind, s) in [("weights", &t.weights), ("gradients", g)] {
                let size: u64 = s
                    .variables
                    .iter()
                    .map(|v| v.shape.iter().product::<u64>())
                    .sum();
                let binned: u64 = s.histogram.counts.iter().sum();
                assert_eq!(
                    binned + s.nonfinite,
                    size,
                    "epoch {} {tower} {kind}",
                    e.epoch
                );
                assert_eq!(s.count, size);
                assert!(s.histogram.counts.len() <= 64, "bounded histogram");
                assert!(s.l2_norm > 0.0 && s.min <= s.mean && s.mean <= s.max);
                let l2_bound = s.l1_norm; // ||x||_2 <= ||x||_1
                assert!(s.l2_norm <= l2_bound + 1e-9);
            }
            assert_eq!(g.count, t.weights.count, "a gradient per weight");
        }
        // the buyer tower embeds every customer id seen in training (+ OOV)
        let buyer = &e.towers["buyer_tower"].weights;
        assert!(
            buyer
                .variables
                .iter()
                .any(|v| v.shape.len() == 2 && v.shape[0] >= customers / 2),
            "{:?}",
            buyer.variables
        );
    }
    let norms = &w.norms["buyer_tower"];
    assert_eq!(norms.len(), EPOCHS as usize);
    assert_ne!(
        norms[0].weights_l2, norms[1].weights_l2,
        "training moved the weights"
    );
    let one = insights.weight_stats(run.id, Some(1)).await.unwrap();
    assert_eq!(one.epochs.len(), 1);
    assert!(insights.weight_stats(run.id, Some(EPOCHS)).await.is_err());

    // ---- logs
    let logs = insights.logs(run.id, None).await.unwrap();
    assert!(logs.text.contains("Component Trainer is running."));
    for c in [
        "CsvExampleGen",
        "StatisticsGen",
        "SchemaGen",
        "Transform",
        "Trainer",
    ] {
        assert!(
            logs.components.iter().any(|x| x == c),
            "{c} in {:?}",
            logs.components
        );
    }
    let trainer = insights.logs(run.id, Some("trainer")).await.unwrap();
    assert_eq!(
        trainer.text.matches("[trainyard] EPOCH ").count(),
        EPOCHS as usize
    );
    assert!(!trainer.text.contains("Component StatisticsGen is running."));
}
