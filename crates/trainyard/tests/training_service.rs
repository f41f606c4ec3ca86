use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use trainyard::core::config::{ScheduleConfig, ScheduleKind, TrainingParams};
use trainyard::core::model_config::{ModelConfig, ModelType};
use trainyard::core::ports::{PipelineEvent, RunFilter};
use trainyard::core::run::{ConfigPatch, NewTrainingRun, RunConfig};
use trainyard::core::stages::{StageName, StageStatus};
use trainyard::{Error, Platform};
use trainyard_core::RunStatus;

async fn platform() -> (tempfile::TempDir, Platform) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::init(dir.path()).await.unwrap();
    (dir, p)
}

fn new_run(name: &str, model_type: ModelType) -> NewTrainingRun {
    NewTrainingRun {
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
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_creates_number_one_to_twenty() {
    let (_dir, p) = platform().await;
    let svc = Arc::new(p.training());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                svc.create_training_run(new_run("product-retrieval", ModelType::Retrieval))
                    .await
            })
        })
        .collect();
    let mut runs = Vec::new();
    for t in tasks {
        runs.push(t.await.unwrap().unwrap());
    }
    let mut numbers: Vec<u32> = runs.iter().map(|r| r.run_number).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=20).collect::<Vec<_>>());
    // All twenty are versions of one registered model, created once despite the race.
    let model_ids: std::collections::BTreeSet<_> =
        runs.iter().map(|r| r.registered_model_id).collect();
    assert_eq!(model_ids.len(), 1);
    let models = p.registry().list(Some("shop")).await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(p.registry().versions(models[0].id).await.unwrap().len(), 20);
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_stored() {
    let (_dir, p) = platform().await;
    let svc = p.training();
    let mut bad = new_run("m", ModelType::Retrieval);
    bad.config.training_params = TrainingParams {
        epochs: 0,
        ..Default::default()
    };
    assert!(matches!(
        svc.create_training_run(bad).await,
        Err(Error::Validation(_))
    ));
    assert!(matches!(
        svc.create_training_run(new_run("  ", ModelType::Retrieval))
            .await,
        Err(Error::Validation(_))
    ));
    assert_eq!(svc.list(&RunFilter::default()).await.unwrap().total, 0);
    assert!(p.registry().list(None).await.unwrap().is_empty());

    svc.create_training_run(new_run("typed", ModelType::Retrieval))
        .await
        .unwrap();
    let err = svc
        .create_training_run(new_run("typed", ModelType::Ranking))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
}

fn multitask_metrics() -> serde_json::Value {
    serde_json::from_str(include_str!(
        "../../trainyard-core/tests/fixtures/multitask_training_metrics.json"
    ))
    .unwrap()
}

#[tokio::test]
async fn pipeline_events_drive_status_stages_results_and_history() {
    let (dir, p) = platform().await;
    // What the Pusher leaves: the blessed model is registered from here on completion.
    let pushed = dir
        .path()
        .join("pipeline")
        .join("pushed_model")
        .join("1764000000");
    std::fs::create_dir_all(&pushed).unwrap();
    std::fs::write(pushed.join("saved_model.pb"), b"model").unwrap();
    let svc = p.training();
    let run = svc
        .create_training_run(new_run("hybrid", ModelType::Multitask))
        .await
        .unwrap();
    assert_eq!(run.current_stage, Some(StageName::Compile));
    svc.mark_submitting(run.id).await.unwrap();
    let r = svc
        .handle_event(
            run.id,
            &PipelineEvent::Submitted {
                job_name: Some("projects/p/jobs/j".into()),
                job_id: Some("j".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Running);
    assert_eq!(r.vertex_pipeline_job_id.as_deref(), Some("j"));
    assert_eq!(r.current_stage, Some(StageName::Examples));

    svc.handle_event(
        run.id,
        &PipelineEvent::StageStarted {
            stage: StageName::Train,
        },
    )
    .await
    .unwrap();
    for epoch in 0..2 {
        let metrics = BTreeMap::from([
            ("loss".to_string(), 2.0 - epoch as f64),
            ("val_rmse".to_string(), 0.9),
        ]);
        svc.handle_event(run.id, &PipelineEvent::EpochCompleted { epoch, metrics })
            .await
            .unwrap();
    }
    assert_eq!(svc.history(run.id).await.unwrap().len(), 2);

    let done = svc
        .handle_event(
            run.id,
            &PipelineEvent::Completed {
                training_metrics: multitask_metrics(),
                blessed: true,
                artifacts: BTreeMap::from([(
                    "pipeline_root".to_string(),
                    dir.path().join("pipeline").display().to_string(),
                )]),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.results.rmse, Some(0.6270));
    assert_eq!(done.results.test_mae, Some(0.4124));
    assert_eq!(done.results.is_blessed, Some(true));
    assert_eq!(done.current_stage, None);
    assert!(
        done.stage_details.iter().all(|s| s.status.is_done()),
        "{:?}",
        done.stage_details
    );
    assert_eq!(
        done.stage_details.get(StageName::Deploy).status,
        StageStatus::Skipped
    );
    assert_eq!(done.vertex_model_version.as_deref(), Some("1"));
    assert_eq!(
        done.stage_details.get(StageName::Register).status,
        StageStatus::Completed
    );
    assert!(done.duration_seconds.is_some());
    // The full per-epoch history replaces the streamed rows.
    let h = svc.history(run.id).await.unwrap();
    assert_eq!(h.len(), 4);
    assert_eq!(h[3].metrics.rmse, Some(0.6270));

    // A late report for a finished run is refused and changes nothing.
    let err = svc
        .handle_event(
            run.id,
            &PipelineEvent::StageStarted {
                stage: StageName::Train,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert_eq!(svc.get(run.id).await.unwrap(), done);
}

#[tokio::test]
async fn unblessed_and_failed_runs() {
    let (_dir, p) = platform().await;
    let svc = p.training();
    let a = svc
        .create_training_run(new_run("a", ModelType::Ranking))
        .await
        .unwrap();
    svc.mark_submitting(a.id).await.unwrap();
    let a = svc
        .handle_event(
            a.id,
            &PipelineEvent::Completed {
                training_metrics: json!({"loss": {"val_rmse": [1.2]}}),
                blessed: false,
                artifacts: BTreeMap::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(a.status, RunStatus::NotBlessed);
    assert_eq!(a.results.rmse, Some(1.2));
    assert_eq!(
        a.stage_details.get(StageName::Register).status,
        StageStatus::Skipped
    );

    let b = svc
        .create_training_run(new_run("b", ModelType::Retrieval))
        .await
        .unwrap();
    svc.mark_submitting(b.id).await.unwrap();
    svc.handle_event(
        b.id,
        &PipelineEvent::StageStarted {
            stage: StageName::Transform,
        },
    )
    .await
    .unwrap();
    let b = svc
        .handle_event(
            b.id,
            &PipelineEvent::Failed {
                error: "OOM in Transform".into(),
                stage: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(b.status, RunStatus::Failed);
    assert_eq!(b.error_message.as_deref(), Some("OOM in Transform"));
    assert_eq!(
        b.stage_details.get(StageName::Transform).status,
        StageStatus::Failed
    );

    // Bad metrics JSON is a typed error and leaves the run running.
    let c = svc
        .create_training_run(new_run("c", ModelType::Ranking))
        .await
        .unwrap();
    svc.mark_submitting(c.id).await.unwrap();
    let err = svc
        .handle_event(
            c.id,
            &PipelineEvent::Completed {
                training_metrics: json!({"loss": {"val_rmse": 3}}),
                blessed: true,
                artifacts: BTreeMap::new(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Metrics(_)), "{err}");
    assert_eq!(svc.get(c.id).await.unwrap().status, RunStatus::Submitting);
}

#[tokio::test]
async fn cancel_rerun_and_edit() {
    let (_dir, p) = platform().await;
    let svc = p.training();
    let mut n = new_run("weekly-model", ModelType::Retrieval);
    n.config.schedule_config = ScheduleConfig {
        schedule_type: ScheduleKind::Weekly,
        schedule_time: Some("09:00".into()),
        schedule_day_of_week: Some(0),
        schedule_timezone: "Europe/Warsaw".into(),
        cloud_scheduler_job_name: Some("projects/p/locations/europe-central2/jobs/j1".into()),
        ..Default::default()
    };
    let run = svc.create_training_run(n).await.unwrap();

    // Active runs can be neither rerun nor edited.
    assert!(matches!(svc.rerun(run.id).await, Err(Error::Conflict(_))));
    let patch = ConfigPatch {
        training_params: Some(TrainingParams {
            epochs: 300,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(
        svc.patch_config(run.id, &patch).await,
        Err(Error::Conflict(_))
    ));

    let cancelled = svc.cancel(run.id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(cancelled
        .stage_details
        .iter()
        .all(|s| s.status != StageStatus::Pending));
    let err = svc.cancel(run.id).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTransition(_)), "{err}");

    let (view, changed) = svc.patch_config(run.id, &patch).await.unwrap();
    assert_eq!(changed, vec!["training_params"]);
    assert_eq!(view.config.training_params.epochs, 300);
    let (_, unchanged) = svc.patch_config(run.id, &patch).await.unwrap();
    assert!(unchanged.is_empty());

    let again = svc.rerun(run.id).await.unwrap();
    assert_eq!(again.name, run.name);
    assert_eq!(again.run_number, run.run_number + 1);
    assert_eq!(again.registered_model_id, run.registered_model_id);
    assert_eq!(again.status, RunStatus::Pending);
    assert_eq!(
        again.description,
        format!("Re-run of Training #{}", run.run_number)
    );
    assert_eq!(again.config.training_params.epochs, 300);
    assert_eq!(again.config.schedule_config.cloud_scheduler_job_name, None);
    assert_eq!(
        again.config.schedule_config.schedule_time.as_deref(),
        Some("09:00")
    );

    assert!(matches!(svc.get(999).await, Err(Error::NotFound { .. })));
    assert!(matches!(svc.cancel(999).await, Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn check_name_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let p = Platform::init(dir.path()).await.unwrap();
        let c = p.registry().check_name("shop", "x").await.unwrap();
        assert!(!c.exists && c.registered_model_id.is_none());
        p.training()
            .create_training_run(new_run("x", ModelType::Retrieval))
            .await
            .unwrap()
            .id
    };
    let p = Platform::open(dir.path()).await.unwrap();
    let c = p.registry().check_name("shop", "x").await.unwrap();
    assert!(c.exists && !c.has_schedule);
    assert_eq!(p.training().get(id).await.unwrap().name, "x");

    let empty = tempfile::tempdir().unwrap();
    let err = Platform::open(empty.path()).await.unwrap_err();
    assert!(err.to_string().contains("trainyard init"), "{err}");
    std::fs::write(
        empty.path().join("trainyard.toml"),
        "[store]\nsqlite_pth = 1\n",
    )
    .unwrap();
    assert!(matches!(
        Platform::open(empty.path()).await,
        Err(Error::Validation(_))
    ));
}

#[tokio::test]
async fn models_are_listed_newest_first_paged_and_found_by_name_or_id() {
    use trainyard::{ModelFilter, PageRequest};
    let (_d, p) = platform().await;
    for name in ["alpha", "beta", "gamma"] {
        p.create_run(NewTrainingRun {
            ml_model: String::new(),
            ..new_run(name, ModelType::Retrieval)
        })
        .await
        .unwrap();
    }
    // The same name in another model endpoint.
    p.create_run(NewTrainingRun {
        ml_model: "other".into(),
        ..new_run("beta", ModelType::Ranking)
    })
    .await
    .unwrap();
    let reg = p.registry();
    let filter = ModelFilter {
        ml_model: Some(p.ml_model_or(None)),
        ..ModelFilter::default()
    };
    let first = reg
        .list_page(&filter, PageRequest::new(1, 2))
        .await
        .unwrap();
    let names: Vec<&str> = first
        .registered_models
        .iter()
        .map(|m| m.model.model_name.as_str())
        .collect();
    assert_eq!(names, ["gamma", "beta"]);
    assert_eq!(
        (first.pagination.total, first.pagination.total_pages),
        (3, 2)
    );
    assert!(first.pagination.has_next);
    let second = reg
        .list_page(&filter, PageRequest::new(2, 2))
        .await
        .unwrap();
    assert_eq!(second.registered_models[0].model.model_name, "alpha");
    assert_eq!(
        second.kpi.total, 3,
        "the KPI row counts every filtered model"
    );
    for bad in [
        PageRequest::new(0, 2),
        PageRequest::new(1, 0),
        PageRequest::new(1, 101),
    ] {
        assert!(matches!(
            reg.list_page(&filter, bad).await,
            Err(Error::Validation(_))
        ));
    }

    // By name in an endpoint, by id, and across endpoints only when the name is unique.
    let beta = reg.find(Some(&p.ml_model_or(None)), "beta").await.unwrap();
    assert_eq!(beta.model.model_type, ModelType::Retrieval);
    let by_id = reg.find(None, &beta.model.id.to_string()).await.unwrap();
    assert_eq!(by_id.model.model_name, "beta");
    // an id narrowed to another endpoint is not found there
    assert!(matches!(
        reg.find(Some("other"), &beta.model.id.to_string()).await,
        Err(Error::NotFound { .. })
    ));
    let other_beta = reg.find(Some("other"), "beta").await.unwrap();
    assert_eq!(other_beta.model.model_type, ModelType::Ranking);
    assert_eq!(
        reg.find(None, "gamma").await.unwrap().model.model_name,
        "gamma"
    );
    match reg.find(None, "beta").await {
        Err(Error::Validation(v)) => assert!(v.reason.contains("give its id"), "{v}"),
        other => panic!("an ambiguous name is refused: {other:?}"),
    }
    assert!(matches!(
        reg.find(None, "nobody").await,
        Err(Error::NotFound { .. })
    ));
}
