//! End-to-end local runs through TrainingService: generated modules, the local TFX pipeline
//! in the managed env (LocalDagRunner), stages, epochs, results, blessing, cancel. The finished
//! runs are those of the shared trained project (testkit::shared), built by the real runner.
//! Run by `make test` (mk/pipeline.mk) with TRAINYARD_PYTHON set.

use std::path::Path;
use std::time::Duration;

use testkit::shared::{trained_project, RETRIEVAL_EPOCHS};
use testkit::{local_platform, RunBuilder};
use trainyard::core::model_config::ModelType;
use trainyard::core::ports::{PipelineExecutor, RunFilter};
use trainyard::core::stages::{StageName, StageStatus};
use trainyard::handle_of;
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
    // Follow until the Trainer runs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    'follow: loop {
        for e in runner.poll(&handle).await.unwrap() {
            let now = svc.handle_event(run.id, &e).await.unwrap();
            if now.current_stage == Some(StageName::Train) {
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
            "never reached the train stage"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // inside model.fit
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
}
