use serde_json::json;
use trainyard_core::metrics::{
    epoch_history, extract_results, extract_results_from_str, MetricsError, RunResults,
};
use trainyard_core::ModelType;

const MULTITASK: &str = include_str!("fixtures/multitask_training_metrics.json");

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn spec_multitask_example_gives_the_spec_numbers() {
    let r = extract_results_from_str(ModelType::Multitask, MULTITASK).unwrap();
    assert!(close(r.rmse, 0.6270), "{r:?}");
    assert!(close(r.mae, 0.4199), "{r:?}");
    assert!(close(r.test_rmse, 0.6071), "{r:?}");
    assert!(close(r.test_mae, 0.4124), "{r:?}");
    assert!(close(r.recall_at_100, 0.35), "{r:?}");
    assert!(close(r.final_loss, 1.07), "{r:?}");
    assert_eq!(r.is_blessed, None);
}

#[test]
fn ranking_ignores_recall_and_bare_final_rmse() {
    // Bug 3: bare `rmse` in final_metrics is not where validation RMSE lives.
    let doc = json!({
        "loss": {"val_rmse": [0.9, 0.8], "val_mae": [0.7, 0.6], "val_recall_at_100": [0.5]},
        "final_metrics": {"rmse": 123.0, "test_rmse": 0.81, "test_mae": 0.61}
    });
    let r = extract_results(ModelType::Ranking, &doc).unwrap();
    assert!(close(r.rmse, 0.8));
    assert!(close(r.mae, 0.6));
    assert!(close(r.test_rmse, 0.81));
    assert_eq!(r.recall_at_100, None);
}

#[test]
fn retrieval_prefers_test_recall_then_last_val_epoch() {
    let doc = json!({
        "loss": {"loss": [3.0, 2.0], "val_recall_at_5": [0.01, 0.02], "recall_at_10": [0.1, 0.2],
                 "val_recall_at_100": [0.3, 0.4]},
        "final_metrics": {"test_recall_at_100": 0.45}
    });
    let r = extract_results(ModelType::Retrieval, &doc).unwrap();
    assert!(close(r.recall_at_5, 0.02));
    assert!(close(r.recall_at_10, 0.2));
    assert_eq!(r.recall_at_50, None);
    assert!(close(r.recall_at_100, 0.45));
    assert_eq!(r.rmse, None);
    assert!(close(r.final_loss, 2.0));
}

#[test]
fn malformed_documents_are_typed_errors() {
    assert!(matches!(
        extract_results_from_str(ModelType::Ranking, "{not json"),
        Err(MetricsError::Json(_))
    ));
    assert_eq!(
        extract_results(ModelType::Ranking, &json!([1, 2])),
        Err(MetricsError::NotAnObject)
    );
    let err = extract_results(ModelType::Ranking, &json!({"loss": {"val_rmse": 0.5}})).unwrap_err();
    assert_eq!(
        err,
        MetricsError::WrongType {
            key: "loss.val_rmse".into(),
            expected: "an array of numbers"
        }
    );
    let err = extract_results(
        ModelType::Ranking,
        &json!({"final_metrics": {"test_rmse": "x"}}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("final_metrics.test_rmse"));
}

#[test]
fn empty_arrays_and_nulls_give_no_value() {
    let doc = json!({"loss": {"val_rmse": [], "val_mae": [null]}, "final_metrics": null});
    let r = extract_results(ModelType::Ranking, &doc).unwrap();
    assert_eq!((r.rmse, r.mae, r.test_rmse), (None, None, None));
}

#[test]
fn history_rows_follow_the_loss_arrays() {
    let doc: serde_json::Value = serde_json::from_str(MULTITASK).unwrap();
    let rows = epoch_history(&doc).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert!(close(rows[0].rmse, 0.83));
    assert!(close(rows[3].rmse, 0.6270));
    assert!(close(rows[2].loss, 1.18));
    assert!(close(rows[1].recall_at_50, 0.19));
    assert_eq!(rows[3].values.len(), 6);
}

/// The spec's KPI sets per model type, the metrics each trainer reports, the names and the
/// direction each metric improves in — all answered by the one `Metric` enum.
#[test]
fn the_metric_enum_is_the_one_list_of_metrics() {
    use trainyard_core::metrics::{Direction, Metric};
    let names = |ms: &[Metric]| ms.iter().map(|m| m.name()).collect::<Vec<_>>();
    assert_eq!(
        names(Metric::kpis(ModelType::Retrieval)),
        [
            "recall_at_5",
            "recall_at_10",
            "recall_at_50",
            "recall_at_100"
        ]
    );
    assert_eq!(
        names(Metric::kpis(ModelType::Ranking)),
        ["rmse", "mae", "test_rmse", "test_mae"]
    );
    assert_eq!(
        names(Metric::kpis(ModelType::Multitask)),
        ["recall_at_50", "recall_at_100", "rmse", "test_rmse"]
    );
    assert_eq!(
        names(&Metric::reported_by(ModelType::Ranking)),
        ["rmse", "mae", "test_rmse", "test_mae", "final_loss"]
    );
    assert_eq!(Metric::reported_by(ModelType::Multitask).len(), 9);
    for m in Metric::ALL {
        assert_eq!(Metric::parse(m.name()), Some(m));
        assert_eq!(m.name().parse::<Metric>(), Ok(m));
        assert_eq!(serde_json::to_value(m).unwrap(), m.name());
        let recall = m.name().starts_with("recall_at_");
        assert_eq!(m.direction() == Direction::HigherIsBetter, recall, "{m}");
    }
    assert_eq!(Metric::parse("loss"), Some(Metric::FinalLoss));
    assert!("recall@100"
        .parse::<Metric>()
        .unwrap_err()
        .contains("recall_at_100"));
    let r = RunResults {
        test_mae: Some(0.5),
        ..RunResults::default()
    };
    assert_eq!(r.get("test_mae"), Some(0.5));
    assert_eq!(r.value(Metric::TestMae), Some(0.5));
    assert_eq!(r.get("nope"), None);
}

#[test]
fn mlflow_run_id_is_read_when_tracking_was_on() {
    use trainyard_core::metrics::extract_mlflow_run_id;
    let id = "0a52a83ba1c8481dba623ae5486c457c";
    let doc =
        json!({"loss": {}, "final_metrics": {}, "mlflow": {"run_id": id, "experiment_id": "1"}});
    assert_eq!(extract_mlflow_run_id(&doc).unwrap().as_deref(), Some(id));
    // no tracking: no key (or null)
    assert_eq!(extract_mlflow_run_id(&json!({"loss": {}})).unwrap(), None);
    assert_eq!(
        extract_mlflow_run_id(&json!({"mlflow": null})).unwrap(),
        None
    );
    // anything else is refused, naming the key
    for bad in [
        json!({"mlflow": "abc"}),
        json!({"mlflow": {"run_id": 7}}),
        json!({"mlflow": {"run_id": ""}}),
        json!({"mlflow": {"run_id": "a/b"}}),
        json!({"mlflow": {"run_id": "x".repeat(65)}}),
    ] {
        let err = extract_mlflow_run_id(&bad).unwrap_err();
        assert!(err.to_string().contains("mlflow"), "{err}");
    }
    assert!(extract_mlflow_run_id(&json!([1])).is_err());
}
