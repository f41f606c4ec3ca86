//! The command tree and what each command does.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::time::Duration;
use trainyard::core::deployment::validate_service_name;
use trainyard::core::metrics::{extract_results_from_str, kpi_metrics};
use trainyard::core::model_config::ModelType;
use trainyard::core::ports::FireOutcome;
use trainyard::core::ports::{PipelineEvent, RunFilter};
use trainyard::core::run::{ConfigPatch, NewTrainingRun, TrainingRun};
use trainyard::core::schedule::{CatchUpPolicy, ConcurrencyPolicy, ScheduleType, TrainingSchedule};
use trainyard::core::stages::StageStatus;
use trainyard::core::timing::{rfc3339_local, ScheduleTiming};
use trainyard::core::RunStatus;
use trainyard::{
    Backend, Error, NewSchedule, Platform, RunCompiler, ScheduleEdit, Until, VertexSettings,
    WizardSchedule,
};

use crate::output::{opt_f64, print_json, print_table};

#[derive(Debug, Parser)]
#[command(
    name = "trainyard",
    version,
    about = "Train, schedule, register and deploy TensorFlow Recommenders models"
)]
pub struct Cli {
    /// Project directory (holds trainyard.toml); defaults to $TRAINYARD_PROJECT or the current directory.
    #[arg(long, global = true, env = "TRAINYARD_PROJECT")]
    project: Option<PathBuf>,
    /// local: everything on this machine; gcp: Vertex AI, Cloud Scheduler, Cloud Run and GCS as
    /// configured in trainyard.toml's [gcp] (and TRAINYARD_GCP_* variables).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "TRAINYARD_BACKEND",
        default_value = "local"
    )]
    backend: BackendArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a project directory with trainyard.toml and its SQLite database.
    Init { dir: Option<PathBuf> },
    /// Training runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Registered models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Check names and configs without changing anything.
    #[command(subcommand)]
    Validate(ValidateCommand),
    /// Training metrics.
    #[command(subcommand)]
    Metrics(MetricsCommand),
    /// Retraining schedules: cron strings, previews, and schedule records.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// The embedded scheduler.
    #[command(subcommand)]
    Scheduler(SchedulerCommand),
    /// Training pipelines.
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Write a self-contained HTML report of a run: training curves, final metrics, stage
    /// timeline, its registered model's versions and the model's schedule grid.
    Report {
        /// Training run id.
        run: i64,
        /// Output file (default: training-run-RUN.html).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a shell completion script, e.g. `trainyard completions bash > /etc/bash_completion.d/trainyard`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Generate the TFX transform and TFRS trainer modules from feature and model configs, or
    /// run the static checks on modules already generated (--check DIR).
    Codegen {
        #[arg(long, required_unless_present = "check")]
        feature_config: Option<PathBuf>,
        #[arg(long, required_unless_present = "check")]
        model_config: Option<PathBuf>,
        #[arg(long)]
        training_params: Option<PathBuf>,
        #[arg(long)]
        gpu_config: Option<PathBuf>,
        #[arg(long, required_unless_present = "check")]
        out: Option<PathBuf>,
        /// py_compile + pyflakes (in the managed env) over the modules in DIR.
        #[arg(long, conflicts_with_all = ["feature_config", "model_config", "out"])]
        check: Option<PathBuf>,
    },
    /// Report each component of the managed Python env (version, or what is missing).
    Doctor,
    /// The platform's long-running process: the REST API and webhooks, the embedded
    /// scheduler, and the control plane that submits, tracks, registers and deploys runs
    /// (several may share one PostgreSQL store). Binds 127.0.0.1 by default.
    #[command(alias = "serve-api")]
    Server(crate::serve_api::ServeApiArgs),
    /// The model registry: versions, push, aliases.
    #[command(subcommand)]
    Registry(crate::serving::RegistryCommand),
    /// Deploy a registered run to an endpoint (a local trainyard-serve process, or Cloud Run).
    Deploy(crate::serving::DeployArgs),
    /// Stop serving on an endpoint; its run returns to completed.
    Undeploy(crate::serving::UndeployArgs),
    /// Endpoints with their live state.
    Endpoints(crate::serving::EndpointsArgs),
    /// Serve a SavedModel over TF Serving's REST API in the foreground.
    Serve(crate::serving::ServeArgs),
    /// Send instances to an endpoint's predict API and print the answer.
    Predict(crate::serving::PredictArgs),
    /// The main job on embedded defaults: synthetic data, a real local training run with
    /// progress, registration, a local endpoint answering a prediction, a weekly schedule.
    Quickstart(crate::quickstart::QuickstartArgs),
}

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    /// Compile a run's pipeline (deterministic): `vertex` writes the PipelineJob body to --out and
    /// its user-code wheels to `_wheels/` beside it; `local` writes pipeline.py and the modules
    /// into the --out directory.
    Compile {
        /// A training run config (JSON, as for `runs create`).
        #[arg(long)]
        run: PathBuf,
        #[arg(long, value_enum)]
        target: TargetArg,
        #[arg(long)]
        out: PathBuf,
        /// Where the pipeline writes artifacts (vertex: a gs:// prefix; local: default OUT/root).
        #[arg(long)]
        pipeline_root: Option<String>,
        /// Google Cloud project (vertex).
        #[arg(long = "gcp-project", default_value = "")]
        gcp_project: String,
        /// Orchestration region (vertex).
        #[arg(long = "gcp-region", default_value = "us-central1")]
        gcp_region: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TargetArg {
    Vertex,
    Local,
}

#[derive(Debug, Args)]
struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// List runs, newest first, with KPI counts.
    List {
        /// Only these statuses (repeatable).
        #[arg(long = "status")]
        statuses: Vec<String>,
        #[arg(long, value_enum)]
        model_type: Option<ModelTypeArg>,
        #[arg(long)]
        registered_model: Option<i64>,
        /// Substring of the run name.
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show one run.
    Show {
        id: i64,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Create a pending run from a JSON file (ml_model defaults to the project's).
    Create {
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Submit a pending run (local: the managed env's TFX; gcp: Vertex AI). Returns once a
    /// running `trainyard server` has the request or, with none, once the pipeline started;
    /// the pipeline does not depend on this command.
    Submit {
        id: i64,
        /// Follow the run until training and what follows it (registration, auto-deploy) are
        /// done, printing progress. Ctrl-C stops following, not the run.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
    },
    /// Follow a run from the store until it settles, printing stages and epochs; with no
    /// server running, this command carries the run meanwhile.
    Follow {
        id: i64,
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
    },
    /// Cancel a pending, scheduled, submitting or running run (stops its pipeline).
    Cancel { id: i64 },
    /// Create a new run with the config of a finished one and submit it.
    Rerun {
        id: i64,
        /// Leave the new run pending instead of submitting it.
        #[arg(long)]
        no_submit: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show a run's config, or edit it with --patch FILE (finished runs only).
    Config {
        id: i64,
        #[arg(long)]
        patch: Option<PathBuf>,
    },
    /// Apply a pipeline callback (JSON file, or - for stdin), as the webhooks do.
    Event {
        id: i64,
        file: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Dataset statistics of a run (StatisticsGen): examples, missing values, numeric and
    /// categorical feature tables, for all splits together or one (--split).
    Stats(crate::insights::StatsArgs),
    /// The schema SchemaGen inferred for a run: types, presence, shapes, domains.
    Schema(crate::insights::SchemaArgs),
    /// A run's pipeline log, or one component's (--component Trainer); --follow while it runs.
    Logs(crate::insights::LogsArgs),
    /// Per-epoch metrics history.
    History {
        id: i64,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// List registered models.
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Whether a model name exists and has a schedule.
    CheckName { name: String },
}

#[derive(Debug, Subcommand)]
enum ValidateCommand {
    /// Check a Cloud Run service name; exit 2 with the broken rule when invalid.
    ServiceName { name: String },
}

#[derive(Debug, Subcommand)]
enum MetricsCommand {
    /// Re-extract results (recall, RMSE/MAE, ...) of every trained run from its stored training
    /// history: fills missing values (--force: all), reports updated / skipped / errors.
    Backfill(crate::insights::BackfillArgs),
    /// Extract a run's results from a training_metrics.json file.
    Extract {
        file: PathBuf,
        #[arg(long, value_enum)]
        model_type: ModelTypeArg,
        #[command(flatten)]
        out: JsonFlag,
    },
}

/// When a schedule fires.
#[derive(Debug, Clone, Args)]
struct TimingArgs {
    /// now (fires once, when created) | once | hourly | daily | weekly | monthly
    #[arg(long = "type", value_enum)]
    kind: Option<ScheduleTypeArg>,
    /// HH:MM (hourly: only the minute counts: 00, 15, 30 or 45)
    #[arg(long)]
    time: Option<String>,
    /// 0=Monday .. 6=Sunday (weekly)
    #[arg(long)]
    day_of_week: Option<u8>,
    /// 1..31 (monthly)
    #[arg(long)]
    day_of_month: Option<u8>,
    /// RFC 3339 instant (once), e.g. 2026-07-01T09:00:00+02:00
    #[arg(long)]
    datetime: Option<String>,
    /// IANA time zone
    #[arg(long, default_value = "UTC")]
    tz: String,
}

impl TimingArgs {
    fn timing(&self) -> Result<ScheduleTiming, CliError> {
        let kind = self.kind.ok_or_else(|| {
            CliError::BadInput(
                "--type is required (now, once, hourly, daily, weekly or monthly)".into(),
            )
        })?;
        let scheduled_datetime = self
            .datetime
            .as_deref()
            .map(|d| {
                DateTime::parse_from_rfc3339(d)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| CliError::BadInput(format!("--datetime {d:?}: {e}")))
            })
            .transpose()?;
        let timing = ScheduleTiming {
            schedule_type: kind.into(),
            scheduled_datetime,
            schedule_time: self.time.clone(),
            schedule_day_of_week: self.day_of_week,
            schedule_day_of_month: self.day_of_month,
            schedule_timezone: self.tz.clone(),
        };
        timing
            .validate_shape()
            .map_err(|e| CliError::BadInput(e.to_string()))?;
        Ok(timing)
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScheduleTypeArg {
    Now,
    Once,
    Hourly,
    Daily,
    Weekly,
    Monthly,
}

impl From<ScheduleTypeArg> for ScheduleType {
    fn from(t: ScheduleTypeArg) -> Self {
        match t {
            ScheduleTypeArg::Now => ScheduleType::Now,
            ScheduleTypeArg::Once => ScheduleType::Once,
            ScheduleTypeArg::Hourly => ScheduleType::Hourly,
            ScheduleTypeArg::Daily => ScheduleType::Daily,
            ScheduleTypeArg::Weekly => ScheduleType::Weekly,
            ScheduleTypeArg::Monthly => ScheduleType::Monthly,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CatchUpArg {
    Once,
    All,
    Skip,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ConcurrencyArg {
    Skip,
    Queue,
    Allow,
}

#[derive(Debug, Subcommand)]
enum ScheduleCommand {
    /// Print the unix-cron string (Cloud Scheduler's format) of a timing.
    Cron {
        #[command(flatten)]
        timing: TimingArgs,
    },
    /// Print the next fires of a timing, as RFC 3339 instants with offsets.
    Preview {
        #[command(flatten)]
        timing: TimingArgs,
        /// Start after this instant (default: now).
        #[arg(long)]
        after: Option<String>,
        #[arg(long, default_value_t = 5)]
        count: usize,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Create a schedule from a run (--from-run), a registered model (--model) or a wizard
    /// JSON file with model name, training config and timing (--wizard).
    Create {
        #[arg(long, conflicts_with_all = ["model", "wizard"])]
        from_run: Option<i64>,
        #[arg(long, conflicts_with = "wizard")]
        model: Option<i64>,
        #[arg(long)]
        wizard: Option<PathBuf>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        timing: TimingArgs,
        #[arg(long, value_enum, default_value = "once")]
        catch_up: CatchUpArg,
        #[arg(long, value_enum, default_value = "skip")]
        concurrency: ConcurrencyArg,
        #[command(flatten)]
        out: JsonFlag,
    },
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// A schedule, its statistics and its next fires.
    Show {
        id: i64,
        #[arg(long, default_value_t = 5)]
        count: usize,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Edit name, description or timing from a JSON file (training config stays frozen).
    Edit {
        id: i64,
        file: PathBuf,
    },
    Pause {
        id: i64,
    },
    Resume {
        id: i64,
    },
    /// Stop for good, keeping the record.
    Cancel {
        id: i64,
    },
    /// Delete the record, freeing its model for a new schedule.
    Delete {
        id: i64,
    },
    /// Fire now.
    Trigger {
        id: i64,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
enum SchedulerCommand {
    /// Run the embedded scheduler in the foreground until interrupted.
    Run {
        /// Poll interval in milliseconds.
        #[arg(long, default_value_t = 500)]
        tick_ms: u64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModelTypeArg {
    Retrieval,
    Ranking,
    /// Retrieval and ranking together (the spec's "hybrid").
    #[value(alias = "hybrid")]
    Multitask,
}

impl From<ModelTypeArg> for ModelType {
    fn from(m: ModelTypeArg) -> Self {
        match m {
            ModelTypeArg::Retrieval => ModelType::Retrieval,
            ModelTypeArg::Ranking => ModelType::Ranking,
            ModelTypeArg::Multitask => ModelType::Multitask,
        }
    }
}

/// A command's failure: bad input (exit 2) or anything else (exit 1).
#[derive(Debug)]
pub enum CliError {
    BadInput(String),
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::BadInput(_) => 2,
            CliError::Failed(_) => 1,
        }
    }

    pub fn message(&self) -> String {
        let (CliError::BadInput(m) | CliError::Failed(m)) = self;
        m.lines().next().unwrap_or_default().to_string()
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        match e {
            Error::Storage(_) | Error::Backend(_) => CliError::Failed(e.to_string()),
            _ => CliError::BadInput(e.to_string()),
        }
    }
}

fn read_input(path: &Path) -> Result<String, CliError> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    text.map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))
}

/// A JSON file: unknown fields (refused by the config types) are named with the nearest
/// valid name.
fn parse_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CliError> {
    serde_json::from_str(&read_input(path)?).map_err(|e| {
        CliError::BadInput(format!(
            "{}: {}",
            path.display(),
            trainyard::core::strict::explain(&e.to_string())
        ))
    })
}

/// A new run's JSON file, strictly (types with flattened parts check their keys).
fn parse_new_run(path: &Path) -> Result<NewTrainingRun, CliError> {
    let value: serde_json::Value = parse_json(path)?;
    NewTrainingRun::from_json(&value)
        .map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))
}

fn project_dir(cli_project: &Option<PathBuf>) -> PathBuf {
    cli_project.clone().unwrap_or_else(|| PathBuf::from("."))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackendArg {
    Local,
    Gcp,
}

async fn open(project: &Option<PathBuf>, backend: BackendArg) -> Result<Platform, CliError> {
    let backend = match backend {
        BackendArg::Local => Backend::Local,
        BackendArg::Gcp => Backend::Gcp,
    };
    Ok(Platform::open_with(project_dir(project), backend).await?)
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Init { dir } => {
            let dir = dir.unwrap_or_else(|| project_dir(&cli.project));
            let p = Platform::init(&dir).await?;
            println!(
                "initialized trainyard project in {} (model endpoint {:?}, database {})",
                p.dir().display(),
                p.config().project.ml_model,
                p.config().store.sqlite_path
            );
            println!(
                "REST API token (serve-api): {}",
                p.api_token_path().display()
            );
            Ok(())
        }
        Command::Validate(ValidateCommand::ServiceName { name }) => {
            match validate_service_name(&name) {
                Ok(()) => {
                    println!("{name}: valid Cloud Run service name");
                    Ok(())
                }
                Err(e) => Err(CliError::BadInput(format!("{name:?}: {e}"))),
            }
        }
        Command::Metrics(MetricsCommand::Extract {
            file,
            model_type,
            out,
        }) => {
            let model_type = ModelType::from(model_type);
            let results = extract_results_from_str(model_type, &read_input(&file)?)
                .map_err(|e| CliError::BadInput(e.to_string()))?;
            if out.json {
                return print_json(&results);
            }
            let rows: Vec<Vec<String>> = kpi_metrics(model_type)
                .iter()
                .chain(&["final_loss"])
                .map(|m| vec![m.to_string(), opt_f64(results.get(m))])
                .collect();
            print_table(&["metric", "value"], &rows);
            Ok(())
        }
        Command::Metrics(MetricsCommand::Backfill(a)) => {
            let p = open(&cli.project, cli.backend).await?;
            crate::insights::backfill(&p, a).await
        }
        Command::Runs(cmd) => {
            let p = open(&cli.project, cli.backend).await?;
            runs(&p, cmd).await
        }
        Command::Models(cmd) => {
            let p = open(&cli.project, cli.backend).await?;
            models(&p, cmd).await
        }
        Command::Schedule(cmd) => schedules(&cli.project, cli.backend, cmd).await,
        Command::Report { run, out } => {
            let p = open(&cli.project, cli.backend).await?;
            crate::report::write(&p, run, out).await
        }
        Command::Completions { shell } => crate::completions::print(shell),
        Command::Codegen {
            feature_config,
            model_config,
            training_params,
            gpu_config,
            out,
            check,
        } => codegen(
            feature_config,
            model_config,
            training_params,
            gpu_config,
            out,
            check,
        ),
        Command::Doctor => {
            let python =
                trainyard_codegen::default_python(&std::env::current_dir().unwrap_or_default());
            let report =
                trainyard_codegen::doctor(&python).map_err(|e| CliError::Failed(e.to_string()))?;
            print!("{}", report.render());
            if report.ok() {
                Ok(())
            } else {
                Err(CliError::Failed(
                    "the managed Python env is incomplete (make pyenv)".into(),
                ))
            }
        }
        Command::Pipeline(PipelineCommand::Compile {
            run,
            target,
            out,
            pipeline_root,
            gcp_project,
            gcp_region,
        }) => compile_pipeline(&run, target, &out, pipeline_root, gcp_project, gcp_region),
        Command::Server(args) => {
            let platform = match args.needs_project() {
                true => Some(open(&cli.project, cli.backend).await?),
                false => None,
            };
            crate::serve_api::run(args, platform, shutdown_signal()).await
        }
        Command::Registry(cmd) => {
            crate::serving::registry(&open(&cli.project, cli.backend).await?, cmd).await
        }
        Command::Deploy(args) => {
            crate::serving::deploy(&open(&cli.project, cli.backend).await?, args).await
        }
        Command::Undeploy(args) => {
            crate::serving::undeploy(&open(&cli.project, cli.backend).await?, args).await
        }
        Command::Endpoints(args) => {
            crate::serving::endpoints(&open(&cli.project, cli.backend).await?, args).await
        }
        Command::Serve(args) => {
            // A project is optional: it only tells where the managed Python env is.
            let platform = open(&cli.project, cli.backend).await.ok();
            crate::serving::serve(platform.as_ref(), args)
        }
        Command::Predict(args) => crate::serving::predict(args).await,
        Command::Quickstart(args) => crate::quickstart::run(args).await,
        Command::Scheduler(SchedulerCommand::Run { tick_ms }) => {
            let p = open(&cli.project, cli.backend).await?;
            let scheduler = p.embedded_scheduler(trainyard_local::SchedulerConfig {
                tick: std::time::Duration::from_millis(tick_ms.max(10)),
                ..Default::default()
            });
            eprintln!("scheduler running (poll every {tick_ms} ms); Ctrl-C or SIGTERM stops it");
            scheduler.run(shutdown_signal()).await?;
            eprintln!("scheduler stopped");
            Ok(())
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
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

fn schedule_row(s: &TrainingSchedule) -> Vec<String> {
    vec![
        s.id.to_string(),
        s.name.clone(),
        format!("{:?}", s.timing.schedule_type).to_lowercase(),
        s.timing.cron().unwrap_or_default(),
        s.timing.schedule_timezone.clone(),
        format!("{:?}", s.status).to_lowercase(),
        s.next_run_at.map_or_else(|| "-".into(), |t| t.to_rfc3339()),
        format!("{}/{}/{}", s.total_runs, s.successful_runs, s.failed_runs),
    ]
}

const SCHEDULE_HEADERS: [&str; 8] = [
    "id",
    "name",
    "type",
    "cron",
    "tz",
    "status",
    "next_run_at",
    "runs total/ok/failed",
];

fn fire_summary(o: &FireOutcome) -> String {
    match o {
        FireOutcome::Created { run } => {
            format!("created training run {} ({})", run.id, run.display_name())
        }
        FireOutcome::AlreadyFired { run } => format!("already fired: training run {}", run.id),
        FireOutcome::Skipped { reason } => format!("skipped: {reason}"),
    }
}

async fn schedules(
    project: &Option<PathBuf>,
    backend: BackendArg,
    cmd: ScheduleCommand,
) -> Result<(), CliError> {
    // Cron strings and previews need no project.
    let cmd = match cmd {
        ScheduleCommand::Cron { timing } => {
            println!(
                "{}",
                timing
                    .timing()?
                    .cron()
                    .map_err(|e| CliError::BadInput(e.to_string()))?
            );
            return Ok(());
        }
        ScheduleCommand::Preview {
            timing,
            after,
            count,
            out,
        } => {
            let after = match after {
                Some(a) => DateTime::parse_from_rfc3339(&a)
                    .map_err(|e| CliError::BadInput(format!("--after {a:?}: {e}")))?
                    .with_timezone(&Utc),
                None => Utc::now(),
            };
            let fires = timing
                .timing()?
                .upcoming(after, count)
                .map_err(|e| CliError::BadInput(e.to_string()))?;
            let fires: Vec<String> = fires.iter().map(rfc3339_local).collect();
            if out.json {
                return print_json(&fires);
            }
            fires.iter().for_each(|f| println!("{f}"));
            return Ok(());
        }
        other => other,
    };
    let p = open(project, backend).await?;
    let svc = p.schedules();
    match cmd {
        ScheduleCommand::Create {
            from_run,
            model,
            wizard,
            name,
            description,
            timing,
            catch_up,
            concurrency,
            out,
        } => {
            let catch_up = match catch_up {
                CatchUpArg::Once => CatchUpPolicy::Once,
                CatchUpArg::All => CatchUpPolicy::All,
                CatchUpArg::Skip => CatchUpPolicy::Skip,
            };
            let concurrency = match concurrency {
                ConcurrencyArg::Skip => ConcurrencyPolicy::Skip,
                ConcurrencyArg::Queue => ConcurrencyPolicy::Queue,
                ConcurrencyArg::Allow => ConcurrencyPolicy::Allow,
            };
            let s = if let Some(file) = wizard {
                let value: serde_json::Value = parse_json(&file)?;
                let mut w = WizardSchedule::from_json(&value)
                    .map_err(|e| CliError::BadInput(format!("{}: {e}", file.display())))?;
                if w.ml_model.is_empty() {
                    w.ml_model.clone_from(&p.config().project.ml_model);
                }
                svc.create_from_config(w).await?
            } else {
                let name = name.ok_or_else(|| CliError::BadInput("--name is required".into()))?;
                let new = NewSchedule {
                    name,
                    description,
                    timing: timing.timing()?,
                    catch_up,
                    concurrency,
                };
                match (from_run, model) {
                    (Some(run), None) => svc.create_from_run(run, new).await?,
                    (None, Some(model)) => svc.create_for_model(model, new).await?,
                    _ => {
                        return Err(CliError::BadInput(
                            "one of --from-run, --model or --wizard is required".into(),
                        ))
                    }
                }
            };
            if out.json {
                return print_json(&s);
            }
            if s.timing.schedule_type.fires_on_creation() {
                // Fired by the create call itself (or, should that have failed, by the scheduler).
                let fired = p
                    .training()
                    .list(&RunFilter {
                        schedule_id: Some(s.id),
                        page_size: 1,
                        ..RunFilter::default()
                    })
                    .await?
                    .runs
                    .pop();
                match fired {
                    Some(run) => println!(
                        "Schedule {:?} created (id {}) and fired now: training run {} ({}), status {}",
                        s.name,
                        s.id,
                        run.id,
                        run.display_name(),
                        run.status
                    ),
                    None => println!(
                        "Schedule {:?} created (id {}); due now, the scheduler fires it",
                        s.name, s.id
                    ),
                }
                return Ok(());
            }
            println!(
                "Schedule {:?} created (id {}), next run {}",
                s.name,
                s.id,
                s.next_run_at.map_or("-".into(), |t| t.to_rfc3339())
            );
            Ok(())
        }
        ScheduleCommand::List { out } => {
            let list = svc.list(None).await?;
            if out.json {
                return print_json(&list);
            }
            print_table(
                &SCHEDULE_HEADERS,
                &list.iter().map(schedule_row).collect::<Vec<_>>(),
            );
            Ok(())
        }
        ScheduleCommand::Show { id, count, out } => {
            let s = svc.get(id).await?;
            let next: Vec<String> = svc
                .upcoming(id, count)
                .await?
                .iter()
                .map(rfc3339_local)
                .collect();
            if out.json {
                return print_json(
                    &serde_json::json!({"schedule": s, "success_rate": s.success_rate(), "upcoming": next}),
                );
            }
            print_table(&SCHEDULE_HEADERS, &[schedule_row(&s)]);
            println!("\nnext {count} fires ({}):", s.timing.schedule_timezone);
            next.iter().for_each(|f| println!("  {f}"));
            Ok(())
        }
        ScheduleCommand::Edit { id, file } => {
            let edit: ScheduleEdit = parse_json(&file)?;
            print_json(&svc.edit(id, &edit).await?)
        }
        ScheduleCommand::Pause { id } => {
            svc.pause(id).await?;
            println!("schedule {id} paused");
            Ok(())
        }
        ScheduleCommand::Resume { id } => {
            let s = svc.resume(id).await?;
            println!(
                "schedule {id} resumed; next run {}",
                s.next_run_at.map_or("-".into(), |t| t.to_rfc3339())
            );
            Ok(())
        }
        ScheduleCommand::Cancel { id } => {
            svc.cancel(id).await?;
            println!("schedule {id} cancelled");
            Ok(())
        }
        ScheduleCommand::Delete { id } => {
            svc.delete(id).await?;
            println!("schedule {id} deleted");
            Ok(())
        }
        ScheduleCommand::Trigger { id, out } => {
            let mut outcome = svc.trigger_now(id).await?;
            // With no server running, this command submits the run it created.
            if let FireOutcome::Created { run } = &mut outcome {
                **run = p.carry_to_submitted((**run).clone()).await?;
            }
            if out.json {
                return print_json(&outcome);
            }
            println!("{}", fire_summary(&outcome));
            Ok(())
        }
        ScheduleCommand::Cron { .. } | ScheduleCommand::Preview { .. } => Ok(()),
    }
}

fn run_row(r: &TrainingRun) -> Vec<String> {
    let metric = match r.model_type() {
        ModelType::Retrieval => format!("R@100 {}", opt_f64(r.results.recall_at_100)),
        _ => format!("RMSE {}", opt_f64(r.results.rmse)),
    };
    vec![
        r.id.to_string(),
        format!("#{}", r.run_number),
        r.name.clone(),
        format!("{:?}", r.model_type()).to_lowercase(),
        r.status.to_string(),
        r.current_stage.map_or("-", |s| s.as_str()).to_string(),
        metric,
        // The estimate of a finished run (0 on the local backend); `-` while it runs.
        r.cost_usd
            .map_or_else(|| "-".into(), |c| format!("${c:.2}")),
        r.created_at.format("%Y-%m-%d %H:%M").to_string(),
    ]
}

const RUN_HEADERS: [&str; 9] = [
    "id", "run", "name", "type", "status", "stage", "metric", "cost", "created",
];

fn print_run(r: &TrainingRun) {
    print_table(&RUN_HEADERS, &[run_row(r)]);
    println!();
    let stages: Vec<Vec<String>> = r
        .stage_details
        .iter()
        .map(|s| {
            vec![
                s.name.as_str().to_string(),
                format!("{:?}", s.status).to_lowercase(),
                s.duration_seconds()
                    .map_or_else(|| "-".into(), |d| format!("{d:.1}s")),
                s.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["stage", "status", "duration", "error"], &stages);
    if let Some(id) = &r.mlflow_run_id {
        println!("\nmlflow run: {id}");
    }
    if let Some(e) = &r.error_message {
        println!("\nerror: {e}");
    }
}

/// Follows a run until it settles (`runs submit --wait`, `runs follow`), printing progress;
/// Ctrl-C stops following and leaves the run to a server or the next call that follows it.
async fn follow_until_settled(p: &Platform, id: i64, timeout_secs: u64) -> Result<(), CliError> {
    let follow = follow_with_progress(p, id, Duration::from_secs(timeout_secs));
    let done = tokio::select! {
        done = follow => done?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\nstopped following training run {id}; it goes on (`trainyard server` carries it, `trainyard runs follow {id}` follows it again)");
            std::process::exit(130);
        }
    };
    println!();
    print_run(&done);
    match done.status {
        RunStatus::Failed => Err(CliError::Failed(format!("training run {id} failed"))),
        _ => Ok(()),
    }
}

/// Follows a run through the facade, printing stage changes and epochs as they are recorded.
pub(crate) async fn follow_with_progress(
    p: &Platform,
    id: i64,
    timeout: Duration,
) -> Result<TrainingRun, CliError> {
    let mut stage = None;
    let run = p
        .follow(id, Until::Settled, timeout, |run, epochs| {
            for epoch in epochs {
                let shown: Vec<String> = epoch
                    .metrics
                    .values
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.4}"))
                    .collect();
                println!("  epoch {}: {}", epoch.metrics.epoch, shown.join(", "));
            }
            if run.current_stage != stage {
                stage = run.current_stage;
                let bar: String = run
                    .stage_details
                    .iter()
                    .map(|s| match s.status {
                        StageStatus::Completed => '#',
                        StageStatus::Running => '>',
                        StageStatus::Failed => 'x',
                        StageStatus::Skipped => '-',
                        StageStatus::Pending => '.',
                    })
                    .collect();
                println!("[{bar}] {}", stage.map_or("done", |s| s.as_str()));
            }
        })
        .await?;
    Ok(run)
}

/// `codegen`: generate modules (deterministic) or check existing ones.
fn codegen(
    feature_config: Option<PathBuf>,
    model_config: Option<PathBuf>,
    training_params: Option<PathBuf>,
    gpu_config: Option<PathBuf>,
    out: Option<PathBuf>,
    check: Option<PathBuf>,
) -> Result<(), CliError> {
    let bad = |e: trainyard_codegen::CodegenError| {
        CliError::BadInput(e.to_string().lines().next().unwrap_or_default().to_string())
    };
    if let Some(dir) = check {
        let python =
            trainyard_codegen::default_python(&std::env::current_dir().unwrap_or_default());
        let report = trainyard_codegen::check_modules(&dir, &python)
            .map_err(|e| CliError::BadInput(e.to_string()))?;
        println!(
            "{} modules pass py_compile and pyflakes",
            report.files.len()
        );
        return Ok(());
    }
    let (Some(features), Some(model), Some(out)) = (feature_config, model_config, out) else {
        return Err(CliError::BadInput(
            "--feature-config, --model-config and --out are required".into(),
        ));
    };
    let features = parse_json(&features)?;
    let model = parse_json(&model)?;
    let params = training_params
        .map(|p| parse_json(&p))
        .transpose()?
        .unwrap_or_default();
    let gpu = gpu_config
        .map(|p| parse_json(&p))
        .transpose()?
        .unwrap_or_default();
    let modules = trainyard_codegen::generate(&features, &model, &params, &gpu).map_err(bad)?;
    let written = trainyard_codegen::write_modules(&modules, &out)
        .map_err(|e| CliError::Failed(e.to_string()))?;
    for path in written {
        println!("wrote {}", path.display());
    }
    println!("config-sha256 {}", modules.config_hash);
    Ok(())
}

/// `pipeline compile`: the same pipeline for Vertex AI or for LocalDagRunner, from a run config.
fn compile_pipeline(
    run: &Path,
    target: TargetArg,
    out: &Path,
    pipeline_root: Option<String>,
    project: String,
    region: String,
) -> Result<(), CliError> {
    let mut new = parse_new_run(run)?;
    if new.ml_model.is_empty() {
        new.ml_model = "default".into();
    }
    new.validate()
        .map_err(|e| CliError::BadInput(e.to_string()))?;
    // A fixed creation time keeps the output a function of the config alone.
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let run = TrainingRun::new(new, None, epoch);
    let io = |e: std::io::Error| CliError::Failed(format!("{}: {e}", out.display()));
    match target {
        TargetArg::Vertex => {
            let root = pipeline_root.ok_or_else(|| {
                CliError::BadInput("--pipeline-root (gs://...) is required for vertex".into())
            })?;
            let compiler = RunCompiler::vertex(VertexSettings {
                project,
                region,
                tfx_image: None,
                trainer_image: None,
                gpu_region: None,
            })
            // the Trainer logs to $MLFLOW_TRACKING_URI when it is set
            .with_mlflow_tracking_uri(trainyard::mlflow_tracking_uri());
            let inputs = compiler.inputs(&run, &root)?;
            let compiled = trainyard_pipeline::vertex::compile(&inputs)
                .map_err(|e| CliError::BadInput(e.to_string()))?;
            let dir = out
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir.join("_wheels")).map_err(io)?;
            std::fs::write(
                out,
                serde_json::to_string_pretty(&compiled.job).unwrap_or_default() + "\n",
            )
            .map_err(io)?;
            for w in &compiled.wheels {
                std::fs::write(dir.join("_wheels").join(&w.file_name), &w.bytes).map_err(io)?;
            }
            println!(
                "wrote {} and {} wheels (upload them to {root}/_wheels/)",
                out.display(),
                compiled.wheels.len()
            );
        }
        TargetArg::Local => {
            std::fs::create_dir_all(out).map_err(io)?;
            let out = out.canonicalize().map_err(io)?;
            let root = pipeline_root.unwrap_or_else(|| out.join("root").display().to_string());
            let compiler = RunCompiler::local(std::env::current_dir().map_err(io)?);
            let inputs = compiler.inputs(&run, &root)?;
            let files = trainyard_pipeline::local::files(
                &inputs,
                &out.display().to_string(),
                &format!("{root}/metadata.sqlite"),
            )
            .map_err(|e| CliError::BadInput(e.to_string()))?;
            for (name, source) in &files {
                std::fs::write(out.join(name), source).map_err(io)?;
            }
            println!(
                "wrote {} files to {} (run: TF_USE_LEGACY_KERAS=1 python {}/pipeline.py)",
                files.len(),
                out.display(),
                out.display()
            );
        }
    }
    Ok(())
}

async fn runs(p: &Platform, cmd: RunsCommand) -> Result<(), CliError> {
    let svc = p.training();
    match cmd {
        RunsCommand::List {
            statuses,
            model_type,
            registered_model,
            search,
            page,
            page_size,
            out,
        } => {
            let statuses = statuses
                .iter()
                .map(|s| {
                    RunStatus::parse(s)
                        .ok_or_else(|| CliError::BadInput(format!("unknown status {s:?}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let page = svc
                .list(&RunFilter {
                    ml_model: None,
                    statuses,
                    model_type: model_type.map(Into::into),
                    registered_model_id: registered_model,
                    schedule_id: None,
                    search,
                    page,
                    page_size,
                    with_step: false,
                    mlflow_run_id: None,
                })
                .await?;
            if out.json {
                return print_json(&page);
            }
            print_table(
                &RUN_HEADERS,
                &page.runs.iter().map(run_row).collect::<Vec<_>>(),
            );
            let counts: Vec<String> = page
                .kpi
                .by_status
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            println!(
                "\n{} matching (page {}); all: {} [{}]",
                page.total,
                page.page,
                page.kpi.total,
                counts.join(", ")
            );
            Ok(())
        }
        RunsCommand::Show { id, out } => {
            let r = svc.get(id).await?;
            if out.json {
                return print_json(&r);
            }
            print_run(&r);
            Ok(())
        }
        RunsCommand::Create { config, out } => {
            let mut new = parse_new_run(&config)?;
            if new.ml_model.is_empty() {
                new.ml_model.clone_from(&p.config().project.ml_model);
            }
            let r = svc.create_training_run(new).await?;
            if out.json {
                return print_json(&r);
            }
            println!(
                "created training run {} ({} of {:?})",
                r.id,
                r.display_name(),
                r.name
            );
            Ok(())
        }
        RunsCommand::Submit {
            id,
            wait,
            timeout_secs,
        } => {
            let run = p.submit(id).await?;
            println!(
                "submitted training run {id}: {} ({})",
                run.status,
                run.vertex_pipeline_job_id.as_deref().unwrap_or("-")
            );
            if !wait {
                return Ok(());
            }
            follow_until_settled(p, id, timeout_secs).await
        }
        RunsCommand::Follow { id, timeout_secs } => follow_until_settled(p, id, timeout_secs).await,
        RunsCommand::Cancel { id } => {
            let r = svc.cancel(id).await?;
            println!("training run {id} is {}", r.status);
            Ok(())
        }
        RunsCommand::Rerun { id, no_submit, out } => {
            let r = svc.rerun_with(id, !no_submit && svc.can_submit()).await?;
            let r = p.carry_to_submitted(r).await?;
            if out.json {
                return print_json(&r);
            }
            println!(
                "Re-run created as {} (training run {})",
                r.display_name(),
                r.id
            );
            Ok(())
        }
        RunsCommand::Config { id, patch } => match patch {
            None => print_json(&svc.get_config(id).await?),
            Some(file) => {
                let patch: ConfigPatch = parse_json(&file)?;
                let (config, updated_fields) = svc.patch_config(id, &patch).await?;
                print_json(&serde_json::json!({"config": config, "updated_fields": updated_fields}))
            }
        },
        RunsCommand::Event { id, file, out } => {
            let event: PipelineEvent = parse_json(&file)?;
            let r = svc.handle_event(id, &event).await?;
            if out.json {
                return print_json(&r);
            }
            println!(
                "training run {id}: {} (stage {})",
                r.status,
                r.current_stage.map_or("-", |s| s.as_str())
            );
            Ok(())
        }
        RunsCommand::Stats(a) => crate::insights::stats(p, a).await,
        RunsCommand::Schema(a) => crate::insights::schema(p, a).await,
        RunsCommand::Logs(a) => crate::insights::logs(p, a).await,
        RunsCommand::History { id, out } => {
            let rows = svc.history(id).await?;
            if out.json {
                return print_json(&rows);
            }
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|h| {
                    let m = &h.metrics;
                    vec![
                        m.epoch.to_string(),
                        opt_f64(m.loss),
                        opt_f64(m.val_loss),
                        opt_f64(m.recall_at_100),
                        opt_f64(m.rmse),
                        opt_f64(m.mae),
                    ]
                })
                .collect();
            print_table(
                &["epoch", "loss", "val_loss", "recall@100", "rmse", "mae"],
                &table,
            );
            Ok(())
        }
    }
}

async fn models(p: &Platform, cmd: ModelsCommand) -> Result<(), CliError> {
    let reg = p.registry();
    match cmd {
        ModelsCommand::List { out } => {
            let models = reg.list(None).await?;
            if out.json {
                return print_json(&models);
            }
            let rows: Vec<Vec<String>> = models
                .iter()
                .map(|m| {
                    vec![
                        m.id.to_string(),
                        m.model_name.clone(),
                        format!("{:?}", m.model_type).to_lowercase(),
                        m.total_versions.to_string(),
                        m.is_registered().to_string(),
                        m.is_deployed.to_string(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "id",
                    "name",
                    "type",
                    "registered versions",
                    "registered",
                    "deployed",
                ],
                &rows,
            );
            Ok(())
        }
        ModelsCommand::CheckName { name } => {
            let check = reg.check_name(&p.config().project.ml_model, &name).await?;
            print_json(&check)
        }
    }
}
