//! Registry, deployment and serving commands: `registry`, `deploy`, `undeploy`, `endpoints`,
//! `serve` and `predict`.

use trainyard::core::names::Named;
use trainyard::core::registry::{RegisteredModel, RegistryEventKind};
use trainyard::core::run::TrainingRun;
use trainyard::{DeployOptions, ModelFilter, Platform};

use super::Ctx;
use crate::cli::{
    AliasCommand, DeployArgs, EndpointsArgs, PredictArgs, RegistryCommand, ServeArgs, UndeployArgs,
};
use crate::error::CliError;
use crate::output::{opt_f64, print_json, print_table};

/// A model by id or by name (names are unique per model endpoint; one that is ambiguous
/// across endpoints must be given by id).
async fn find_model(platform: &Platform, reference: &str) -> Result<RegisteredModel, CliError> {
    Ok(platform.registry().find(None, reference).await?.model)
}

fn run_line(run: &TrainingRun) -> String {
    let version = run
        .vertex_model_version
        .as_deref()
        .map(|v| format!(" version {v}"))
        .unwrap_or_default();
    let mut line = format!("training run {} is {}{version}", run.id, run.status);
    if !run.deployment_error.is_empty() {
        line.push_str(&format!(" (deploy error: {})", run.deployment_error));
    }
    line
}

pub async fn registry(
    ctx: &Ctx,
    platform: &Platform,
    cmd: RegistryCommand,
) -> Result<(), CliError> {
    let registry = platform.registry();
    match cmd {
        RegistryCommand::List {
            model_type,
            deployed,
            has_schedule,
            search,
            page,
        } => {
            let filter = ModelFilter {
                model_type,
                deployed,
                has_schedule,
                search,
                ..ModelFilter::default()
            };
            let listing = registry.list_page(&filter, page.request()).await?;
            if ctx.out.json() {
                return print_json(&listing);
            }
            let k = &listing.kpi;
            println!(
                "total {}  registered {}  with schedule {}  deployed {}",
                k.total, k.registered, k.with_schedule, k.deployed
            );
            let rows: Vec<Vec<String>> = listing
                .registered_models
                .iter()
                .map(|m| {
                    let metrics: Vec<String> = m
                        .metrics
                        .iter()
                        .map(|(k, v)| format!("{k}={}", opt_f64(*v)))
                        .collect();
                    vec![
                        m.model.id.to_string(),
                        m.model.model_name.clone(),
                        m.model.model_type.as_str().to_string(),
                        m.model.latest_version_number.clone(),
                        if m.model.is_deployed {
                            if m.has_active_endpoint {
                                "deployed".into()
                            } else {
                                "deployed (not answering)".into()
                            }
                        } else {
                            "idle".into()
                        },
                        m.schedule_status
                            .map(|s| s.name().to_string())
                            .unwrap_or_else(|| "-".into()),
                        metrics.join(" "),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "MODEL",
                    "TYPE",
                    "LATEST",
                    "DEPLOYMENT",
                    "SCHEDULE",
                    "METRICS",
                ],
                &rows,
            );
            crate::output::print_models_page(&listing.pagination);
            Ok(())
        }
        RegistryCommand::Versions { model } => {
            let model = find_model(platform, &model).await?;
            let versions = registry.model_versions(model.id).await?;
            if ctx.out.json() {
                return print_json(&versions);
            }
            let metric_names: Vec<String> = versions
                .first()
                .map(|v| v.metrics.keys().cloned().collect())
                .unwrap_or_default();
            let mut headers = vec!["VERSION", "RUN", "STATUS", "ALIASES", "ENDPOINTS"];
            headers.extend(metric_names.iter().map(String::as_str));
            let rows: Vec<Vec<String>> = versions
                .iter()
                .map(|v| {
                    let mut row = vec![
                        v.version.clone(),
                        v.training_run_id.to_string(),
                        v.status.to_string(),
                        v.aliases.join(","),
                        v.endpoints.join(","),
                    ];
                    row.extend(metric_names.iter().map(|m| opt_f64(v.metrics[m])));
                    row
                })
                .collect();
            print_table(&headers, &rows);
            Ok(())
        }
        RegistryCommand::Push { run } => {
            let run = platform.lifecycle().push(run).await?;
            if ctx.out.json() {
                return print_json(&run);
            }
            println!("{}", run_line(&run));
            Ok(())
        }
        RegistryCommand::Alias(AliasCommand::Set {
            model,
            alias,
            version,
        }) => {
            let model = find_model(platform, &model).await?;
            registry.set_alias(model.id, &alias, &version).await?;
            println!("{}: {alias} -> version {version}", model.model_name);
            Ok(())
        }
        RegistryCommand::Alias(AliasCommand::Remove { model, alias }) => {
            let model = find_model(platform, &model).await?;
            registry.remove_alias(model.id, &alias).await?;
            println!("{}: {alias} removed", model.model_name);
            Ok(())
        }
        RegistryCommand::Alias(AliasCommand::History { model }) => {
            let model = find_model(platform, &model).await?;
            let history = registry.history(model.id).await?;
            if ctx.out.json() {
                return print_json(&history);
            }
            let rows: Vec<Vec<String>> = history
                .iter()
                .map(|e| {
                    vec![
                        e.at.to_rfc3339(),
                        match e.kind {
                            RegistryEventKind::Alias => "alias".into(),
                            RegistryEventKind::Endpoint => "endpoint".into(),
                        },
                        e.name.clone(),
                        if e.model_version.is_empty() {
                            "(none)".into()
                        } else {
                            format!("version {}", e.model_version)
                        },
                    ]
                })
                .collect();
            print_table(&["AT", "KIND", "NAME", "HELD"], &rows);
            Ok(())
        }
    }
}

pub async fn deploy(ctx: &Ctx, platform: &Platform, args: DeployArgs) -> Result<(), CliError> {
    let options = DeployOptions {
        preset: args.preset,
        endpoint: args.endpoint,
        service_name: args.service_name,
        target: args.target,
        ..DeployOptions::default()
    };
    let deployments = platform.deployments();
    let run = deployments.deploy(args.run, &options).await?;
    let view = deployments.status(run.id).await?;
    if ctx.out.json() {
        return print_json(&view);
    }
    println!("{}", run_line(&run));
    if let Some(ep) = &view.endpoint {
        println!(
            "endpoint {} serves version {} at {}",
            ep.service_name, ep.deployed_version, ep.service_url
        );
        if ep.target.is_service() {
            println!(
                "predict: POST {}/v1/models/{}:predict",
                ep.service_url.trim_end_matches('/'),
                trainyard_local::SERVED_MODEL_NAME
            );
        } else {
            println!("predict: POST {} (Vertex AI endpoint)", ep.service_url);
        }
    }
    Ok(())
}

pub async fn undeploy(platform: &Platform, args: UndeployArgs) -> Result<(), CliError> {
    let ep = platform.deployments().undeploy(&args.endpoint).await?;
    println!("endpoint {} undeployed", ep.service_name);
    Ok(())
}

pub async fn endpoints(
    ctx: &Ctx,
    platform: &Platform,
    args: EndpointsArgs,
) -> Result<(), CliError> {
    let model_id = match &args.model {
        Some(m) => Some(find_model(platform, m).await?.id),
        None => None,
    };
    let endpoints = platform.deployments().endpoints(model_id).await?;
    if ctx.out.json() {
        return print_json(&endpoints);
    }
    let rows: Vec<Vec<String>> = endpoints
        .iter()
        .map(|e| {
            vec![
                e.endpoint.service_name.clone(),
                e.endpoint.registered_model_id.to_string(),
                e.endpoint.deployed_version.clone(),
                e.endpoint.service_url.clone(),
                match (e.serving, &e.error) {
                    (Some(true), _) => "serving".into(),
                    (Some(false), _) => "down".into(),
                    (None, Some(err)) => format!("unknown: {err}"),
                    (None, None) => "unknown".into(),
                },
            ]
        })
        .collect();
    print_table(&["ENDPOINT", "MODEL", "VERSION", "URL", "LIVE"], &rows);
    Ok(())
}

/// Becomes trainyard-serve (exec: same process id), so a supervisor's SIGTERM or a Ctrl-C
/// reaches the server itself, which stops and frees its port; its exit code is this
/// command's (2: it refused its arguments).
pub fn serve(platform: Option<&Platform>, args: ServeArgs) -> Result<(), CliError> {
    use std::os::unix::process::CommandExt;
    let bin = trainyard_local::LocalDeployer::default_serve_bin();
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("--model")
        .arg(&args.model)
        .args(["--name", &args.name, "--host", &args.host])
        .args(["--port", &args.port.to_string()]);
    if let Some(python) = platform.and_then(|p| trainyard::managed_python(p.config())) {
        cmd.env(trainyard::PYTHON_ENV, python);
    }
    // Only returns when the exec failed.
    let e = cmd.exec();
    Err(CliError::Failed(format!(
        "cannot start {} (build it with `cargo build -p trainyard-serve` or set TRAINYARD_SERVE_BIN): {e}",
        bin.display()
    )))
}

/// Reads instances (a list, or an object with `instances`) and POSTs them to the endpoint.
pub async fn predict(args: PredictArgs) -> Result<(), CliError> {
    let text = if args.instances.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| CliError::BadInput(e.to_string()))?
    } else {
        std::fs::read_to_string(&args.instances)
            .map_err(|e| CliError::BadInput(format!("{}: {e}", args.instances.display())))?
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::BadInput(format!("{}: not JSON: {e}", args.instances.display())))?;
    let body = match value {
        serde_json::Value::Array(items) => serde_json::json!({ "instances": items }),
        serde_json::Value::Object(map) if map.contains_key("instances") => {
            serde_json::Value::Object(map)
        }
        _ => {
            return Err(CliError::BadInput(
                "instances must be a JSON list or an object with \"instances\"".into(),
            ))
        }
    };
    let url = format!(
        "{}/v1/models/{}:predict",
        args.endpoint.trim_end_matches('/'),
        args.model_name
    );
    print_json(&post_predict(&url, &body).await?)
}

/// POSTs a predict body; 4xx answers are bad input, other failures are failures.
pub async fn post_predict(
    url: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, CliError> {
    let response = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| CliError::Failed(format!("POST {url}: {e}")))?;
    let status = response.status();
    let answer: serde_json::Value = response
        .json()
        .await
        .map_err(|e| CliError::Failed(format!("POST {url}: unreadable answer: {e}")))?;
    if status.is_client_error() {
        return Err(CliError::BadInput(format!(
            "{url} answered {status}: {answer}"
        )));
    }
    if !status.is_success() {
        return Err(CliError::Failed(format!(
            "{url} answered {status}: {answer}"
        )));
    }
    Ok(answer)
}
