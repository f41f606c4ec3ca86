//! End-to-end local runs through TrainingService: generated modules, the local TFX pipeline
//! in the managed env (LocalDagRunner), stages, epochs, results, blessing, cancel. The finished
//! runs are those of the shared trained project (testkit::shared), built by the real runner.
//! Run by `make test` (mk/pipeline.mk) with TRAINYARD_PYTHON set, and with
//! TRAINYARD_TEST_MLFLOW_URL naming a real MLflow tracking server on the store the shared
//! project's runs logged to (mk/mlflow.mk): the test then checks the retrieval run in MLflow.

use std::path::Path;
use std::time::Duration;

use testkit::shared::{trained_project, RETRIEVAL_EPOCHS};
use testkit::{local_platform, RunBuilder};
use trainyard::core::model_config::ModelType;
use trainyard::core::ports::{PipelineEvent, PipelineExecutor, RunFilter};
use trainyard::core::stages::{StageName, StageStatus};
use trainyard::core::tracking::{RunKey, RUN_KEY_TAG};
use trainyard::{handle_of, Platform};
use trainyard_core::RunStatus;
use trainyard_local::group_alive;

fn saved_models(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.join("saved_model.pb").is_file() {
            found.push(p);
        }
    }
    found
}

fn pushed(root: &Path, run: trainyard::core::run::RunId) -> Vec<std::path::PathBuf> {
    saved_models(&root.join(format!("runs/{run}/pushed_model")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs TRAINYARD_PYTHON (the managed TFX env); run by make test"]
async fn retrieval_and_multitask_runs_complete_locally() {
    let shared = trained_project().await;
    let (p, _) = testkit::open_local(&shared.root).await;
    let svc = p.training();

    let done = svc.get(shared.retrieval).await.unwrap();
    assert_eq!(
        done.status,
        RunStatus::Completed,
        "{:?}",
        done.error_message
    );
    assert!(
        done.results.recall_at_100.is_some_and(|r| r > 0.0),
        "{:?}",
        done.results
    );
    assert_eq!(done.results.is_blessed, Some(true));
    for s in done.stage_details.iter() {
        assert!(s.status.is_done(), "{:?} is {:?}", s.name, s.status);
    }
    assert_eq!(
        done.stage_details.get(StageName::Train).status,
        StageStatus::Completed
    );
    assert_eq!(
        pushed(&shared.root, done.id).len(),
        1,
        "one versioned SavedModel pushed"
    );
    let history = svc.history(done.id).await.unwrap();
    assert_eq!(
        history.len(),
        RETRIEVAL_EPOCHS as usize,
        "one history row per epoch"
    );
    // Stages and epochs were streamed from the pipeline's output while it ran.
    let log = std::fs::read_to_string(done.artifacts["log"].as_str()).unwrap();
    assert!(
        log.contains("Component Trainer is running."),
        "stage lines in the log"
    );
    assert_eq!(
        log.matches("[trainyard] EPOCH ").count(),
        RETRIEVAL_EPOCHS as usize,
        "one epoch line per epoch"
    );
    assert!(history
        .iter()
        .all(|h| h.metrics.loss.is_some() && h.metrics.recall_at_100.is_some()));
    match testkit::mlflow_url() {
        Some(url) => check_mlflow_run(&p, &done, &url, RETRIEVAL_EPOCHS as usize).await,
        None => {
            assert_eq!(done.mlflow_run_id, None, "no tracking URI, no MLflow");
            eprintln!("TRAINYARD_TEST_MLFLOW_URL unset: MLflow checks skipped");
        }
    }

    // A multitask run with a threshold it cannot reach is trained but not blessed.
    let done = svc.get(shared.multitask).await.unwrap();
    assert_eq!(
        done.status,
        RunStatus::NotBlessed,
        "{:?}",
        done.error_message
    );
    let r = &done.results;
    assert!(
        r.rmse.is_some() && r.mae.is_some() && r.test_rmse.is_some() && r.test_mae.is_some(),
        "{r:?}"
    );
    assert_eq!(
        done.stage_details.get(StageName::Register).status,
        StageStatus::Skipped
    );
    assert!(
        pushed(&shared.root, done.id).is_empty(),
        "an unblessed model is not pushed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs TRAINYARD_PYTHON (the managed TFX env); run by make test"]
async fn cancel_during_training_stops_every_process() {
    let dir = tempfile::tempdir().unwrap();
    let (p, runner) = local_platform(dir.path()).await;
    let svc = p.training();
    // Long enough to be inside model.fit when cancelled: no early stopping, many epochs.
    let long = RunBuilder::new("cancel-me", ModelType::Retrieval)
        .epochs(5000)
        .all_epochs();
    let run = svc.create_training_run(long.build()).await.unwrap();
    let run = p.submit(run.id).await.unwrap();
    let handle = handle_of(&run).unwrap();
    let pgid = runner.process_group(&handle).unwrap();
    // Follow until the Trainer is inside model.fit (its first epoch ended).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    'follow: loop {
        for e in runner.poll(&handle).await.unwrap() {
            let now = svc.handle_event(run.id, &e).await.unwrap();
            if matches!(e, PipelineEvent::EpochCompleted { .. }) {
                assert_eq!(now.current_stage, Some(StageName::Train));
                break 'follow;
            }
        }
        let now = svc.get(run.id).await.unwrap();
        assert!(
            now.status.is_active(),
            "the run ended before training: {} {:?}",
            now.status,
            now.error_message
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached the first epoch"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let started = std::time::Instant::now();
    let cancelled = svc.cancel(run.id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    while group_alive(pgid) && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !group_alive(pgid),
        "processes of the run are left after 10 s"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // Nothing the dead pipeline printed later changes the run.
    assert!(runner.poll(&handle).await.unwrap().is_empty());
    assert_eq!(svc.get(run.id).await.unwrap().status, RunStatus::Cancelled);
    let active = svc
        .list(&RunFilter {
            statuses: vec![RunStatus::Running, RunStatus::Submitting],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(active.total, 0);
    // The trainer's MLflow run is not left RUNNING: SIGTERM ended it KILLED.
    if let Some(url) = testkit::mlflow_url() {
        let key = RunKey::of(&cancelled).expect("a stored run has a key");
        let statuses = mlflow_statuses_of(&url, &key).await;
        assert!(
            statuses.iter().any(|s| s == "KILLED") && !statuses.iter().any(|s| s == "RUNNING"),
            "MLflow runs of the cancelled training: {statuses:?}"
        );
    }
}

/// Statuses of the MLflow runs (of every experiment) of one trainyard run (its key's tag:
/// other suites' trainings may log to the same server meanwhile).
async fn mlflow_statuses_of(url: &str, key: &RunKey) -> Vec<String> {
    let experiments = mlflow_get(
        url,
        "/api/2.0/mlflow/experiments/search",
        &[("max_results", "1000")],
    )
    .await;
    let ids: Vec<&str> = experiments["experiments"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["experiment_id"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let resp = reqwest::Client::new()
        .post(format!("{url}/api/2.0/mlflow/runs/search"))
        .json(&serde_json::json!({
            "experiment_ids": ids,
            "filter": format!("tags.\"{RUN_KEY_TAG}\" = '{key}'"),
            "max_results": 1000,
        }))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    body["runs"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .filter_map(|r| r["info"]["status"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

async fn mlflow_get(url: &str, path: &str, query: &[(&str, &str)]) -> serde_json::Value {
    let resp = reqwest::Client::new()
        .get(format!("{url}{path}"))
        .query(query)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
}

/// The run in MLflow: finished, its params, one value per epoch of each per-epoch metric, the
/// final metrics, and per epoch the weight/gradient histograms as artifacts; the trainyard run
/// holds its id (and is found by it).
async fn check_mlflow_run(
    p: &Platform,
    done: &trainyard::core::run::TrainingRun,
    url: &str,
    epochs: usize,
) {
    let id = done
        .mlflow_run_id
        .clone()
        .expect("the trainyard run stores its MLflow run id");
    let run = mlflow_get(url, "/api/2.0/mlflow/runs/get", &[("run_id", &id)]).await["run"].clone();
    assert_eq!(run["info"]["status"], "FINISHED", "{run}");
    let pairs = |v: &serde_json::Value| -> std::collections::BTreeMap<String, serde_json::Value> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|kv| (kv["key"].as_str().unwrap().to_string(), kv["value"].clone()))
            .collect()
    };
    let params = pairs(&run["data"]["params"]);
    assert_eq!(params["epochs"], epochs.to_string().as_str(), "{params:?}");
    assert_eq!(params["batch_size"], "512", "{params:?}");
    assert_eq!(params["model_type"], "retrieval", "{params:?}");
    for key in ["learning_rate", "optimizer", "retrieval_algorithm"] {
        assert!(params.contains_key(key), "{key} not logged: {params:?}");
    }
    let tags = pairs(&run["data"]["tags"]);
    assert_eq!(tags["trainyard.model_type"], "retrieval", "{tags:?}");
    // the trainyard run is known to MLflow: its id (for people) and its key (what ends a run
    // its killed trainer left RUNNING)
    assert_eq!(
        tags[trainyard::core::tracking::RUN_ID_TAG],
        done.id.to_string().as_str(),
        "{tags:?}"
    );
    assert_eq!(
        tags[trainyard::core::tracking::RUN_KEY_TAG],
        trainyard::core::tracking::RunKey::of(done)
            .unwrap()
            .as_str(),
        "{tags:?}"
    );
    let latest = pairs(&run["data"]["metrics"]);
    let test_recall = latest["test_recall_at_100"].as_f64().unwrap();
    assert_eq!(
        Some(test_recall),
        done.results.recall_at_100,
        "final metric as trainyard has it"
    );
    for key in [
        "loss",
        "val_loss",
        "recall_at_100",
        "buyer_tower_weights_l2_norm",
        "product_tower_gradients_l2_norm",
    ] {
        let h = mlflow_get(
            url,
            "/api/2.0/mlflow/metrics/get-history",
            &[("run_id", &id), ("metric_key", key)],
        )
        .await;
        let mut steps: Vec<i64> = h["metrics"]
            .as_array()
            .unwrap_or_else(|| panic!("no history of {key}: {h}"))
            .iter()
            .map(|m| m["step"].as_i64().unwrap_or(0))
            .collect();
        steps.sort();
        assert_eq!(
            steps,
            (0..epochs as i64).collect::<Vec<_>>(),
            "{key} per epoch"
        );
    }
    // per-epoch weight/gradient histograms as artifacts
    let listed = mlflow_get(
        url,
        "/api/2.0/mlflow/artifacts/list",
        &[("run_id", &id), ("path", "weight_stats")],
    )
    .await;
    let files: Vec<&str> = listed["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no weight_stats artifacts: {listed}"))
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..epochs)
        .map(|e| format!("weight_stats/epoch_{e:03}.json"))
        .collect();
    assert_eq!(files, expected);
    let resp = reqwest::Client::new()
        .get(format!("{url}/get-artifact"))
        .query(&[("path", "weight_stats/epoch_001.json"), ("run_uuid", &id)])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let entry: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(entry["epoch"], 1);
    for tower in ["buyer_tower", "product_tower"] {
        for kind in ["weights", "gradients"] {
            let s = &entry["towers"][tower][kind];
            let counts: i64 = s["histogram"]["counts"]
                .as_array()
                .unwrap_or_else(|| panic!("{tower} {kind}: {s}"))
                .iter()
                .map(|c| c.as_i64().unwrap())
                .sum();
            assert!(counts > 0, "{tower} {kind}");
            assert_eq!(
                counts,
                s["count"].as_i64().unwrap() - s["nonfinite"].as_i64().unwrap(),
                "{tower} {kind}: the bins hold every finite value"
            );
        }
    }
    // the store's mlflow_run_id column leads back to the run
    let found = p
        .training()
        .list(&RunFilter {
            mlflow_run_id: Some(id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        found.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        [done.id]
    );
    println!("MLflow run {id} checked at {url}");
}
