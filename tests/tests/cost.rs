//! `cost_usd`: a recorded Vertex AI run (its pipeline's events at fixed times) is priced from
//! the built-in table when it ends; `[pricing]` overrides figures; local runs cost 0; the API
//! shows the cost.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use testkit::{sqlite_platform, TestClock};
use trainyard::core::config::{GpuConfig, GpuType};
use trainyard::core::ports::PipelineEvent;
use trainyard::core::pricing::{CostModel, PriceTable, PricingError, PricingOverrides};
use trainyard::core::run::{NewTrainingRun, RunConfig};
use trainyard::core::stages::StageName;
use trainyard::{Platform, ProjectConfig};
use trainyard_core::RunStatus;

fn at(hh_mm: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("2026-11-27T{hh_mm}:00Z"))
        .unwrap()
        .with_timezone(&Utc)
}

async fn platform(pricing: Option<CostModel>) -> (tempfile::TempDir, Platform, Arc<TestClock>) {
    let (dir, p, clock) = sqlite_platform(at("09:00"), ProjectConfig::default()).await;
    let p = match pricing {
        Some(m) => p.with_cost_model(m),
        None => p,
    };
    (dir, p, clock)
}

fn gpu(preemptible: bool) -> GpuConfig {
    GpuConfig {
        gpu_enabled: true,
        gpu_type: GpuType::NvidiaTeslaT4,
        gpu_count: 2,
        machine_type: "n1-standard-16".into(),
        preemptible,
        training_region: Some("europe-west4".into()),
    }
}

fn vertex() -> CostModel {
    CostModel {
        table: PriceTable::builtin(),
        region: "europe-central2".into(),
    }
}

/// A Vertex run as its pipeline reported it: components for 36 minutes in all (examples 12,
/// statistics 6, schema 3, transform 9, evaluation 6) and the Trainer for 90, on `gpu`.
async fn recorded_run(p: &Platform, clock: &TestClock, gpu: GpuConfig, fail: bool) -> i64 {
    let training = p.training();
    let run = training
        .create_training_run(NewTrainingRun {
            ml_model: "shop".into(),
            name: "recorded".into(),
            description: String::new(),
            config: RunConfig {
                gpu_config: gpu,
                ..RunConfig::default()
            },
        })
        .await
        .unwrap();
    let steps: Vec<(&str, PipelineEvent)> = vec![
        (
            "09:00",
            PipelineEvent::Submitted {
                job_name: Some("projects/p/locations/europe-central2/pipelineJobs/j".into()),
                job_id: Some("j".into()),
            },
        ),
        ("09:00", started(StageName::Examples)),
        ("09:12", started(StageName::Stats)),
        ("09:18", started(StageName::Schema)),
        ("09:21", started(StageName::Transform)),
        ("09:30", started(StageName::Train)),
        ("11:00", started(StageName::Evaluate)),
    ];
    for (t, e) in steps {
        clock.set(at(t));
        training.handle_event(run.id, &e).await.unwrap();
    }
    clock.set(at("11:06"));
    let end = if fail {
        PipelineEvent::Failed {
            error: "the Evaluator failed".into(),
            stage: Some(StageName::Evaluate),
        }
    } else {
        PipelineEvent::Completed {
            training_metrics: json!({
                "loss": {"loss": [0.9, 0.7, 0.61], "val_loss": [1.0, 0.8, 0.7]},
                "final_metrics": {"test_recall_at_10": 0.13, "test_recall_at_100": 0.42, "final_loss": 0.61}
            }),
            blessed: true,
            artifacts: Default::default(),
        }
    };
    training.handle_event(run.id, &end).await.unwrap();
    run.id
}

fn started(stage: StageName) -> PipelineEvent {
    PipelineEvent::StageStarted { stage }
}

#[tokio::test]
async fn a_recorded_vertex_run_costs_what_the_table_says() {
    let (_dir, p, clock) = platform(Some(vertex())).await;
    let id = recorded_run(&p, &clock, gpu(false), false).await;
    let run = p.training().get(id).await.unwrap();
    assert!(run.status.training_finished(), "{:?}", run.status);
    // $0.03 pipeline run + 1.5 h x (n1-standard-16 $0.874 + 2 x T4 $0.4025) x 1.1 (europe-west4)
    // + 0.6 h x e2-standard-4 $0.1541 x 1.2 (europe-central2) = 2.911302
    assert_eq!(run.cost_usd, Some(2.9113));

    // Spot: the Trainer at 0.4 of on demand
    let id = recorded_run(&p, &clock, gpu(true), false).await;
    assert_eq!(p.training().get(id).await.unwrap().cost_usd, Some(1.2491));

    // a failed run is priced for what it ran
    let id = recorded_run(&p, &clock, gpu(false), true).await;
    let failed = p.training().get(id).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.cost_usd, Some(2.9113));
}

#[tokio::test]
async fn trainyard_toml_overrides_the_table_and_bad_figures_are_refused() {
    let config = ProjectConfig::from_toml(
        "[pricing]\nspot_factor = 0.5\n[pricing.machine_per_hour]\n\"n1-standard-16\" = 1.0\n",
    )
    .unwrap();
    assert_eq!(config.pricing.spot_factor, Some(0.5));
    let table = PriceTable::builtin()
        .with_overrides(&config.pricing)
        .unwrap();
    let (_dir, p, clock) = platform(Some(CostModel {
        table,
        region: "europe-central2".into(),
    }))
    .await;
    let id = recorded_run(&p, &clock, gpu(true), false).await;
    // 0.03 + 1.5 x (1.0 + 0.805) x 0.5 x 1.1 + 0.110952
    assert_eq!(p.training().get(id).await.unwrap().cost_usd, Some(1.6301));

    let bad = PricingOverrides {
        spot_factor: Some(-1.0),
        ..PricingOverrides::default()
    };
    assert_eq!(
        PriceTable::builtin().with_overrides(&bad).unwrap_err(),
        PricingError::BadPrice {
            field: "spot_factor".into(),
            value: -1.0
        }
    );
    assert!(ProjectConfig::from_toml("[pricing]\nspot = 1\n").is_err());
    // a machine the table does not know: no estimate rather than a wrong one
    let (_dir, p, clock) = platform(Some(vertex())).await;
    let odd = GpuConfig {
        machine_type: "n1-imaginary-7".into(),
        ..gpu(false)
    };
    let id = recorded_run(&p, &clock, odd, false).await;
    assert_eq!(p.training().get(id).await.unwrap().cost_usd, None);
}

#[tokio::test]
async fn local_runs_cost_nothing_and_the_api_shows_the_cost() {
    let (_dir, p, clock) = platform(None).await;
    let local = recorded_run(&p, &clock, GpuConfig::default(), false).await;
    assert_eq!(p.training().get(local).await.unwrap().cost_usd, Some(0.0));

    let (_dir2, p, clock) = platform(Some(vertex())).await;
    let id = recorded_run(&p, &clock, gpu(false), false).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let security = trainyard::http::ApiSecurity::for_platform(&p).unwrap();
    let token = p.api_token().unwrap().value().to_string();
    let app = trainyard::http::api::app(p.clone(), None, security);
    tokio::spawn(trainyard::http::api::serve(
        listener,
        app,
        std::future::pending::<()>(),
    ));
    let body: Value = reqwest::Client::new()
        .get(format!("{base}/api/training-runs/{id}/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["training_run"]["cost_usd"], json!(2.9113));
}
