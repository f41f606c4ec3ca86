//! `trainyard quickstart`: the main job end to end on the embedded defaults — synthetic data,
//! configs, a real local TFX training run with live progress, registration, a local
//! trainyard-serve endpoint answering a prediction, and a weekly retraining schedule.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trainyard::core::config::{
    DataSource, DatasetSpec, DeploymentConfig, EvaluatorConfig, TrainingParams,
};
use trainyard::core::model_config::{ModelConfig, ModelType};
use trainyard::core::run::{NewTrainingRun, RunConfig, TrainingRun};
use trainyard::core::schedule::ScheduleType;
use trainyard::core::timing::ScheduleTiming;
use trainyard::core::RunStatus;
use trainyard::{NewSchedule, Platform};

use crate::cli::QuickstartArgs;
use crate::commands::runs::follow_with_progress;
use crate::error::CliError;

fn step(text: &str) {
    println!("\n== {text}");
}

fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

fn run_config(model_type: ModelType, epochs: u32, deploy: bool) -> RunConfig {
    let blessing_metric = trainyard::core::metrics::Metric::blessing_default(model_type).name();
    RunConfig {
        dataset: DatasetSpec {
            name: "synthetic-b2b".into(),
            source: DataSource::Csv {
                path: "data".into(),
            },
        },
        model_config: ModelConfig {
            model_type,
            name: format!("quickstart-{}", model_type.as_str()),
            ..ModelConfig::default()
        },
        training_params: TrainingParams {
            epochs,
            batch_size: 512,
            ..TrainingParams::default()
        },
        evaluator_config: EvaluatorConfig {
            enabled: true,
            blessing_metric: blessing_metric.into(),
            // Lenient gates: the point is to see the whole path on a tiny dataset.
            blessing_threshold: Some(if model_type == ModelType::Retrieval {
                0.0
            } else {
                100.0
            }),
        },
        deployment_config: DeploymentConfig {
            enabled: deploy,
            ..DeploymentConfig::default()
        },
        ..RunConfig::default()
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(failed)?;
    std::fs::write(path, text + "\n").map_err(|e| failed(format!("{}: {e}", path.display())))
}

async fn train(
    platform: &Platform,
    model_type: ModelType,
    epochs: u32,
    deploy: bool,
) -> Result<TrainingRun, CliError> {
    let training = platform.training();
    let run = training
        .create_training_run(NewTrainingRun {
            ml_model: "quickstart".into(),
            name: format!("quickstart-{}", model_type.as_str()),
            description: format!("{} model on synthetic B2B data", model_type.as_str()),
            config: run_config(model_type, epochs, deploy),
        })
        .await?;
    println!("training run {} ({})", run.id, run.display_name());
    platform.submit(run.id).await?;
    let started = Instant::now();
    let done = follow_with_progress(platform, run.id, Duration::from_secs(1800)).await?;
    println!(
        "training run {} is {} after {:.0} s",
        done.id,
        done.status,
        started.elapsed().as_secs_f64()
    );
    let metrics: Vec<String> = trainyard::core::metrics::Metric::kpis(model_type)
        .iter()
        .filter_map(|m| done.results.value(*m).map(|v| format!("{m} {v:.4}")))
        .collect();
    println!("results: {}", metrics.join(", "));
    if done.status == RunStatus::Failed || done.status == RunStatus::Cancelled {
        return Err(CliError::Failed(format!(
            "training run {} {}: {}",
            done.id,
            done.status,
            done.error_message.clone().unwrap_or_default()
        )));
    }
    Ok(done)
}

/// A schedule fire while a control plane runs in this process (as `trainyard server` would):
/// the fired run is submitted, trained, registered as the next version and deployed to the
/// model's endpoint with no further call; this only watches the store.
async fn retrain_unattended(
    platform: &Platform,
    schedule_id: i64,
    service_name: &str,
) -> Result<(), CliError> {
    let control = platform
        .control_plane(trainyard::ControlPlaneConfig::server())
        .spawn();
    let outcome = platform.schedules().trigger_now(schedule_id).await?;
    let trainyard::core::ports::FireOutcome::Created { run } = outcome else {
        return Err(CliError::Failed(format!(
            "the schedule did not fire: {outcome:?}"
        )));
    };
    println!(
        "schedule {schedule_id} fired: training run {} is {}",
        run.id, run.status
    );
    let done = follow_with_progress(platform, run.id, Duration::from_secs(1800)).await?;
    control.stop().await?;
    let endpoint = platform.deployments().endpoint(service_name).await?;
    println!(
        "training run {} is {}: version {} of {:?}; {} now serves version {} at {}",
        done.id,
        done.status,
        done.vertex_model_version.as_deref().unwrap_or("-"),
        done.vertex_model_name.as_deref().unwrap_or("-"),
        endpoint.service_name,
        endpoint.deployed_version,
        endpoint.service_url
    );
    if done.status != RunStatus::Deployed {
        return Err(CliError::Failed(format!(
            "the retraining run is {}: {}",
            done.status,
            done.error_message.clone().unwrap_or(done.deployment_error)
        )));
    }
    Ok(())
}

pub async fn run(args: QuickstartArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let cfg = trainyard_synth::SynthConfig::named(&args.data_size).ok_or_else(|| {
        CliError::BadInput(format!(
            "--data-size {:?}: use one of {}",
            args.data_size,
            trainyard_synth::SynthConfig::SIZES.join(", ")
        ))
    })?;
    step(&format!("project {}", args.dir.display()));
    let mut platform = Platform::init(&args.dir).await?;
    if std::env::var_os(trainyard::PYTHON_ENV).is_none() && platform.config().local.python.is_none()
    {
        // The managed env `make pyenv` installs, found from here or the project upwards.
        let python = trainyard_codegen::default_python(
            &std::env::current_dir().unwrap_or_else(|_| args.dir.clone()),
        );
        if python.is_absolute() {
            std::env::set_var(trainyard::PYTHON_ENV, &python);
            platform = Platform::open(&args.dir).await?;
        }
    }
    let platform = platform.with_local_runner()?;

    step("synthetic data and configs");
    let data = trainyard_synth::generate(&cfg).map_err(failed)?;
    let csv = args.dir.join("data").join("interactions.csv");
    data.write_joined(&csv, &data.transactions)
        .map_err(failed)?;
    println!(
        "{}: {} transactions of {} customers and {} products",
        csv.display(),
        data.transactions.len(),
        data.customers.len(),
        data.products.len()
    );
    let configs = args.dir.join("configs");
    std::fs::create_dir_all(&configs).map_err(failed)?;
    let config = run_config(ModelType::Retrieval, args.epochs, true);
    write_json(&configs.join("feature_config.json"), &config.feature_config)?;
    write_json(&configs.join("model_config.json"), &config.model_config)?;
    println!(
        "{}/feature_config.json, model_config.json",
        configs.display()
    );

    step("train a retrieval model (local TFX pipeline)");
    let retrieval = train(&platform, ModelType::Retrieval, args.epochs, true).await?;
    if args.all {
        for model_type in [ModelType::Ranking, ModelType::Multitask] {
            step(&format!("train a {} model", model_type.as_str()));
            train(&platform, model_type, args.epochs, false).await?;
        }
    }

    step("model registry");
    let registry = platform.registry();
    let listing = registry.list_with_kpi(&Default::default()).await?;
    for m in &listing.registered_models {
        println!(
            "{} ({}): latest version {:?}, {} version(s)",
            m.model.model_name,
            m.model.model_type.as_str(),
            m.model.latest_version_number,
            m.model.total_versions
        );
    }
    let retrieval = platform.training().get(retrieval.id).await?;
    if retrieval.status != RunStatus::Deployed {
        return Err(CliError::Failed(format!(
            "the retrieval run is {} (registration: {:?}; deploy error: {})",
            retrieval.status, retrieval.vertex_model_version, retrieval.deployment_error
        )));
    }

    step("deployed endpoint (trainyard-serve on 127.0.0.1)");
    let deployments = platform.deployments();
    let view = deployments.status(retrieval.id).await?;
    let endpoint = view
        .endpoint
        .ok_or_else(|| CliError::Failed("the deployed run has no endpoint".into()))?;
    println!(
        "{} serves version {} at {} (live: {:?})",
        endpoint.service_name, endpoint.deployed_version, endpoint.service_url, view.status
    );

    step("a prediction");
    let customer = &data.customers[0];
    let instance = json!({
        "customer_id": customer.id, "city": customer.city, "segment": customer.segment,
        "revenue": customer.revenue, "timestamp": data.transactions.last().map_or(0, |t| t.timestamp),
    });
    let url = format!(
        "{}/v1/models/{}:predict",
        endpoint.service_url.trim_end_matches('/'),
        trainyard_local::SERVED_MODEL_NAME
    );
    let answer =
        crate::commands::serving::post_predict(&url, &json!({ "instances": [instance] })).await?;
    println!("POST {url}");
    println!("  {instance}");
    let prediction = &answer["predictions"][0];
    let ids: Vec<&str> = prediction["product_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let scores: Vec<f64> = prediction["scores"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(CliError::Failed(format!(
            "no product ids in the answer: {answer}"
        )));
    }
    println!("top 5 of {} recommended products:", ids.len());
    for (id, score) in ids.iter().zip(&scores).take(5) {
        println!("  {id}  {score:.4}");
    }
    let known = ids
        .iter()
        .filter(|id| data.products.iter().any(|p| p.id == **id))
        .count();
    println!(
        "{known} of {} ids are products of the training data",
        ids.len()
    );

    step("weekly retraining schedule (Monday 06:00 Europe/Warsaw)");
    let schedules = platform.schedules();
    let model_id = retrieval.registered_model_id.unwrap_or_default();
    let schedule = match schedules.for_model(model_id).await? {
        Some(existing) => existing,
        None => {
            schedules
                .create_from_run(
                    retrieval.id,
                    NewSchedule {
                        name: "quickstart weekly retraining".into(),
                        description: String::new(),
                        timing: ScheduleTiming {
                            schedule_type: ScheduleType::Weekly,
                            scheduled_datetime: None,
                            schedule_time: Some("06:00".into()),
                            schedule_day_of_week: Some(0),
                            schedule_day_of_month: None,
                            schedule_timezone: "Europe/Warsaw".into(),
                        },
                        catch_up: Default::default(),
                        concurrency: Default::default(),
                    },
                )
                .await?
        }
    };
    println!(
        "schedule {} ({:?}); next 5 fires:",
        schedule.id, schedule.name
    );
    for fire in schedules.upcoming(schedule.id, 5).await? {
        println!("  {}", fire.format("%a %Y-%m-%d %H:%M %Z"));
    }

    if !args.no_retrain {
        step("unattended retraining: the schedule fires now; the control plane does the rest");
        retrain_unattended(&platform, schedule.id, &endpoint.service_name).await?;
    }

    if args.undeploy {
        deployments.undeploy(&endpoint.service_name).await?;
        println!("\nendpoint {} undeployed", endpoint.service_name);
    }
    let project = args.dir.display();
    println!(
        "\nquickstart finished in {:.0} s. Next: trainyard --project {project} report {} --out report.html; \
         trainyard --project {project} registry list; trainyard --project {project} undeploy {}",
        started.elapsed().as_secs_f64(),
        retrieval.id,
        endpoint.service_name
    );
    Ok(())
}
