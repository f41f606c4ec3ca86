//! InsightsService without the managed env: the metrics backfill over a real SQLite store,
//! and logs read from the run record. (Statistics, schema and weight statistics of a real
//! pipeline run are in tests/tests/insights_run.rs (the workspace-level tests crate), run by `make test-insights`.)

use std::collections::BTreeMap;

use trainyard::core::metrics::RunResults;
use trainyard::core::model_config::{ModelConfig, ModelType};
use trainyard::core::ports::PipelineEvent;
use trainyard::core::run::{NewTrainingRun, RunConfig, RunId};
use trainyard::insights::{BackfillOptions, BackfillOutcome};
use trainyard::Platform;

fn fixture() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../trainyard-core/tests/fixtures/multitask_training_metrics.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn completed(
    p: &Platform,
    name: &str,
    model_type: ModelType,
    metrics: serde_json::Value,
) -> RunId {
    let svc = p.training();
    let run = svc
        .create_training_run(NewTrainingRun {
            ml_model: "shop".into(),
            name: name.into(),
            description: String::new(),
            config: RunConfig {
                model_config: ModelConfig {
                    model_type,
                    ..ModelConfig::default()
                },
                ..RunConfig::default()
            },
        })
        .await
        .unwrap();
    for e in [
        PipelineEvent::Submitted {
            job_name: Some("job".into()),
            job_id: Some("1".into()),
        },
        PipelineEvent::Completed {
            training_metrics: metrics,
            blessed: true,
            artifacts: BTreeMap::new(),
        },
    ] {
        svc.handle_event(run.id, &e).await.unwrap();
    }
    run.id
}

/// What a run's results looked like before the extraction fix: only is_blessed kept.
async fn blank(p: &Platform, id: RunId) {
    let mut run = p.store().get_run(id).await.unwrap();
    run.results = RunResults {
        is_blessed: run.results.is_blessed,
        ..RunResults::default()
    };
    p.store().update_run(&run).await.unwrap();
}

#[tokio::test]
async fn backfill_restores_blanked_results_and_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::init(dir.path()).await.unwrap();
    let doc = fixture();
    let multitask = completed(&p, "mt", ModelType::Multitask, doc.clone()).await;
    let ranking = completed(&p, "rk", ModelType::Ranking, doc.clone()).await;
    let original = p.training().get(multitask).await.unwrap().results;
    assert!(original.rmse.is_some() && original.test_mae.is_some());
    blank(&p, multitask).await;
    blank(&p, ranking).await;
    // a run whose stored history is broken, and a pending run (not trained: not considered)
    let broken = completed(&p, "broken", ModelType::Ranking, doc.clone()).await;
    let mut run = p.store().get_run(broken).await.unwrap();
    run.training_history_json = Some(serde_json::json!({"loss": {"val_rmse": "oops"}}));
    p.store().update_run(&run).await.unwrap();
    p.training()
        .create_training_run(NewTrainingRun {
            ml_model: "shop".into(),
            name: "pending".into(),
            ..NewTrainingRun::default()
        })
        .await
        .unwrap();

    let insights = p.insights();
    let dry = insights
        .backfill(BackfillOptions {
            dry_run: true,
            force: false,
        })
        .await
        .unwrap();
    assert_eq!(
        (dry.found, dry.updated, dry.skipped, dry.errors),
        (3, 2, 0, 1)
    );
    let after_dry = p.training().get(multitask).await.unwrap();
    assert_eq!(after_dry.results.rmse, None, "--dry-run wrote nothing");
    let BackfillOutcome::Updated { changes } = &dry.items[0].outcome else {
        panic!("{:?}", dry.items[0])
    };
    assert_eq!(changes.get("rmse").copied(), original.rmse);

    let report = insights.backfill(BackfillOptions::default()).await.unwrap();
    assert_eq!((report.updated, report.skipped, report.errors), (2, 0, 1));
    let restored = p.training().get(multitask).await.unwrap().results;
    assert_eq!(restored, original, "every result column is back");
    let rk = p.training().get(ranking).await.unwrap().results;
    assert_eq!((rk.rmse, rk.mae), (original.rmse, original.mae));
    assert_eq!(rk.recall_at_100, None, "ranking has no recall");
    assert!(matches!(
        &report.items[2].outcome,
        BackfillOutcome::Error { message } if message.contains("val_rmse")
    ));

    // again: nothing left to fill; --force re-extracts a value that drifted
    let again = insights.backfill(BackfillOptions::default()).await.unwrap();
    assert_eq!((again.updated, again.skipped), (0, 2));
    let mut run = p.store().get_run(multitask).await.unwrap();
    run.results.rmse = Some(9.0);
    p.store().update_run(&run).await.unwrap();
    let plain = insights.backfill(BackfillOptions::default()).await.unwrap();
    assert_eq!(plain.updated, 0, "without --force a set value is kept");
    let forced = insights
        .backfill(BackfillOptions {
            dry_run: false,
            force: true,
        })
        .await
        .unwrap();
    assert_eq!(forced.updated, 1);
    assert_eq!(
        p.training().get(multitask).await.unwrap().results.rmse,
        original.rmse
    );
}

#[tokio::test]
async fn runs_without_outputs_say_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::init(dir.path()).await.unwrap();
    let id = completed(&p, "mt", ModelType::Multitask, fixture()).await;
    let insights = p.insights();
    let e = insights.statistics(id).await.unwrap_err();
    assert!(e.to_string().contains("StatisticsGen"), "{e}");
    let e = insights.schema(id).await.unwrap_err();
    assert!(e.to_string().contains("SchemaGen"), "{e}");
    // the fixture predates weight statistics: an empty history, not an error
    let w = insights.weight_stats(id, None).await.unwrap();
    assert!(w.epochs.is_empty() && w.towers.is_empty());
    let logs = insights.logs(id, None).await.unwrap();
    assert_eq!(logs.source, "run record");
    assert!(logs.text.contains("Train: Completed"), "{}", logs.text);
    assert!(insights.logs(id, Some("Trainer")).await.is_err());
}
