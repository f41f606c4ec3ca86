//! What each command does: one file per command group; each handler parses what clap left
//! to parse, calls one facade method and renders the result.

pub mod completions;
pub mod insights;
pub mod models;
pub mod pipeline;
pub mod project;
pub mod quickstart;
pub mod report;
pub mod runs;
pub mod schedule;
pub mod server;
pub mod serving;

use std::path::{Path, PathBuf};

use trainyard::{Backend, Platform};

use crate::cli::{Cli, Command};
use crate::error::CliError;
use crate::output::Output;

/// Everything a handler needs besides its arguments: where the project is and how to print.
pub struct Ctx {
    pub project: Option<PathBuf>,
    pub backend: Backend,
    pub out: Output,
}

impl Ctx {
    pub fn project_dir(&self) -> PathBuf {
        self.project.clone().unwrap_or_else(|| PathBuf::from("."))
    }

    /// The project's platform (an error naming `trainyard init` where there is none).
    pub async fn open(&self) -> Result<Platform, CliError> {
        Ok(Platform::open_with(self.project_dir(), self.backend).await?)
    }
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = Ctx {
        project: cli.project,
        backend: cli.backend,
        out: Output::new(cli.format, cli.json),
    };
    match cli.command {
        Command::Init { dir } => project::init(&ctx, dir).await,
        Command::Validate(cmd) => project::validate(cmd),
        Command::Metrics(cmd) => project::metrics(&ctx, cmd).await,
        Command::Doctor => project::doctor(&ctx),
        Command::Scheduler(cmd) => project::scheduler(&ctx, cmd).await,
        Command::Runs(cmd) => runs::run(&ctx, &ctx.open().await?, cmd).await,
        Command::Models(cmd) => models::run(&ctx, &ctx.open().await?, cmd).await,
        Command::Schedule(cmd) => schedule::run(&ctx, cmd).await,
        Command::Pipeline(cmd) => pipeline::run(&ctx, cmd),
        Command::Codegen {
            feature_config,
            model_config,
            training_params,
            gpu_config,
            out,
            check,
        } => pipeline::codegen(
            feature_config,
            model_config,
            training_params,
            gpu_config,
            out,
            check,
        ),
        Command::Report { run, out } => report::write(&ctx.open().await?, run, out).await,
        Command::Completions { shell } => completions::print(shell),
        Command::Server(args) => {
            let platform = match args.needs_project() {
                true => Some(ctx.open().await?),
                false => None,
            };
            server::run(args, platform, shutdown_signal()).await
        }
        Command::Registry(cmd) => serving::registry(&ctx, &ctx.open().await?, cmd).await,
        Command::Deploy(args) => serving::deploy(&ctx, &ctx.open().await?, args).await,
        Command::Undeploy(args) => serving::undeploy(&ctx.open().await?, args).await,
        Command::Endpoints(args) => serving::endpoints(&ctx, &ctx.open().await?, args).await,
        Command::Serve(args) => {
            // A project is optional: it only tells where the managed Python env is.
            let platform = ctx.open().await.ok();
            serving::serve(platform.as_ref(), args)
        }
        Command::Predict(args) => serving::predict(args).await,
        Command::Quickstart(args) => quickstart::run(args).await,
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

pub fn read_input(path: &Path) -> Result<String, CliError> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    text.map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))
}

/// A JSON file: unknown fields (refused by the config types) are named with the nearest
/// valid name.
pub fn parse_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CliError> {
    serde_json::from_str(&read_input(path)?).map_err(|e| {
        CliError::BadInput(format!(
            "{}: {}",
            path.display(),
            trainyard::core::strict::explain(&e.to_string())
        ))
    })
}

/// A new run's JSON file, strictly, its config sections merged over their defaults.
pub fn parse_new_run(path: &Path) -> Result<trainyard::core::run::NewTrainingRun, CliError> {
    let value: serde_json::Value = parse_json(path)?;
    trainyard::core::run::NewTrainingRun::from_json(&value)
        .map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))
}
