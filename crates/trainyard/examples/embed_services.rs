//! Embedding trainyard in an application: open a project, create a training run, apply the
//! pipeline's callbacks (as a webhook handler or a runner would), read the run's results and
//! history, list the registered model's versions and schedule weekly retraining.
//!
//! No TensorFlow needed: the pipeline events are sent by hand here.
//! `cargo run -p trainyard --example embed_services`

use std::collections::BTreeMap;

use serde_json::json;
use trainyard::core::model_config::{ModelConfig, ModelType};
use trainyard::core::ports::PipelineEvent;
use trainyard::core::run::{NewTrainingRun, RunConfig};
use trainyard::core::schedule::ScheduleType;
use trainyard::core::stages::StageName;
use trainyard::core::timing::{rfc3339_local, ScheduleTiming};
use trainyard::core::RunStatus;
use trainyard::{NewSchedule, Platform};

#[tokio::main]
async fn main() -> trainyard::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // A project is a directory with trainyard.toml and an SQLite database.
    let platform = Platform::init(dir.path()).await?;
    let training = platform.training();

    let run = training
        .create_training_run(NewTrainingRun {
            ml_model: "shop".into(),
            name: "product-retrieval".into(),
            description: "embedded example".into(),
            config: RunConfig {
                model_config: ModelConfig {
                    model_type: ModelType::Retrieval,
                    ..ModelConfig::default()
                },
                ..RunConfig::default()
            },
        })
        .await?;
    println!("created {} ({})", run.display_name(), run.status);

    // What a pipeline reports, in order: accepted, stages, epochs, then the verdict.
    let events = [
        PipelineEvent::Submitted {
            job_name: Some("local-job-1".into()),
            job_id: Some("1".into()),
        },
        PipelineEvent::StageStarted {
            stage: StageName::Train,
        },
        PipelineEvent::EpochCompleted {
            epoch: 0,
            metrics: BTreeMap::from([("loss".into(), 812.0), ("val_recall_at_100".into(), 0.21)]),
        },
        PipelineEvent::Completed {
            training_metrics: json!({
                "loss": {"loss": [812.0, 640.5], "val_recall_at_100": [0.21, 0.34]},
                "final_metrics": {"test_recall_at_100": 0.33}
            }),
            blessed: true,
            artifacts: BTreeMap::new(),
        },
    ];
    for event in &events {
        let run = training.handle_event(run.id, event).await?;
        println!("after {:<16} status={}", event_name(event), run.status);
    }

    let run = training.get(run.id).await?;
    assert_eq!(run.status, RunStatus::Completed);
    let recall = run.results.recall_at_100.expect("recall@100 extracted");
    println!(
        "recall@100 = {recall:.2} (blessed: {:?})",
        run.results.is_blessed
    );
    assert!(
        (recall - 0.33).abs() < 1e-9,
        "test recall wins over the last epoch"
    );
    let history = training.history(run.id).await?;
    println!("history: {} epochs", history.len());
    assert_eq!(history.len(), 2);

    // The run is version 1 of the registered model named after it.
    let registry = platform.registry();
    let model_id = run
        .registered_model_id
        .expect("runs belong to a registered model");
    let versions = registry.versions(model_id).await?;
    println!(
        "registered model {:?}: {} version(s)",
        registry.get(model_id).await?.model_name,
        versions.len()
    );

    // Retrain every Monday at 09:00 Warsaw time from this run's config.
    let schedule = platform
        .schedules()
        .create_from_run(
            run.id,
            NewSchedule {
                name: "weekly retraining".into(),
                description: String::new(),
                timing: ScheduleTiming {
                    schedule_type: ScheduleType::Weekly,
                    scheduled_datetime: None,
                    schedule_time: Some("09:00".into()),
                    schedule_day_of_week: Some(0),
                    schedule_day_of_month: None,
                    schedule_timezone: "Europe/Warsaw".into(),
                },
                catch_up: Default::default(),
                concurrency: Default::default(),
            },
        )
        .await?;
    println!(
        "schedule {:?}: cron {:?}",
        schedule.name,
        schedule.timing.cron()?
    );
    let fires = platform.schedules().upcoming(schedule.id, 3).await?;
    for f in &fires {
        println!("  next fire {}", rfc3339_local(f));
    }
    assert_eq!(fires.len(), 3);
    assert!(fires.iter().all(|f| rfc3339_local(f).contains("T09:00:00")));
    println!("embed_services: ok");
    Ok(())
}

fn event_name(e: &PipelineEvent) -> &'static str {
    match e {
        PipelineEvent::Submitted { .. } => "submitted",
        PipelineEvent::StageStarted { .. } => "stage_started",
        PipelineEvent::StageCompleted { .. } => "stage_completed",
        PipelineEvent::EpochCompleted { .. } => "epoch_completed",
        PipelineEvent::Failed { .. } => "failed",
        PipelineEvent::Resubmitted { .. } => "resubmitted",
        PipelineEvent::Completed { .. } => "completed",
    }
}
