//! The command line: every clap type of `trainyard` (commands, their arguments and the global
//! options). Values of the domain's enums come from core's names ([`Named`]), never from a
//! mirror of the enum.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use trainyard::core::model_config::ModelType;
use trainyard::core::names::Named;
use trainyard::core::schedule::{CatchUpPolicy, ConcurrencyPolicy, ScheduleStatus, ScheduleType};
use trainyard::core::RunStatus;
use trainyard::{Backend, CompileTarget};

pub use crate::output::Format;

/// A value parser over the names of one of core's enums (aliases accepted).
pub fn named<T: Named + Clone + Send + Sync>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::ALL.iter().map(|v| {
        v.aliases()
            .iter()
            .fold(PossibleValue::new(v.name()), |p, a| p.alias(*a))
    }))
    .map(|s| T::from_name(&s).expect("clap checked the name"))
}

/// Filters of the model list.
#[derive(Debug, Clone, Args)]
pub struct ModelFilterArgs {
    /// Only models of this model endpoint (default: all).
    #[arg(long)]
    pub ml_model: Option<String>,
    #[arg(long, value_parser = named::<ModelType>())]
    pub model_type: Option<ModelType>,
    /// Case-insensitive part of the model name.
    #[arg(long)]
    pub search: Option<String>,
}

/// Which page of a listing.
#[derive(Debug, Clone, Args)]
pub struct PageArgs {
    #[arg(long, default_value_t = 1)]
    pub page: u32,
    #[arg(long, default_value_t = trainyard::DEFAULT_PAGE_SIZE)]
    pub page_size: u32,
}

impl PageArgs {
    pub fn request(&self) -> trainyard::PageRequest {
        trainyard::PageRequest::new(self.page, self.page_size)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "trainyard",
    version,
    about = "Train, schedule, register and deploy TensorFlow Recommenders models"
)]
pub struct Cli {
    /// Project directory (holds trainyard.toml); defaults to $TRAINYARD_PROJECT or the current directory.
    #[arg(long, global = true, env = "TRAINYARD_PROJECT")]
    pub project: Option<PathBuf>,
    /// local: everything on this machine; gcp: Vertex AI, Cloud Scheduler, Cloud Run and GCS as
    /// configured in trainyard.toml's [gcp] (and TRAINYARD_GCP_* variables).
    #[arg(
        long,
        global = true,
        value_parser = named::<Backend>(),
        env = "TRAINYARD_BACKEND",
        default_value = "local"
    )]
    pub backend: Backend,
    /// How results are printed: table (for people) or json (for programs).
    #[arg(long, global = true, value_parser = named::<Format>(), default_value = "table")]
    pub format: Format,
    /// Same as --format json.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// py_compile + pyflakes + ruff format --check (in the managed env) over the modules in DIR.
        #[arg(long, conflicts_with_all = ["feature_config", "model_config", "out"])]
        check: Option<PathBuf>,
    },
    /// Report each component of the managed Python env (version, or what is missing).
    Doctor,
    /// The platform's long-running process: the REST API and webhooks, the embedded
    /// scheduler, and the control plane that submits, tracks, registers and deploys runs
    /// (several may share one PostgreSQL store). Binds 127.0.0.1 by default.
    #[command(alias = "serve-api")]
    Server(crate::commands::server::ServeApiArgs),
    /// The model registry: versions, push, aliases.
    #[command(subcommand)]
    Registry(crate::commands::serving::RegistryCommand),
    /// Deploy a registered run to an endpoint (a local trainyard-serve process, or Cloud Run).
    Deploy(crate::commands::serving::DeployArgs),
    /// Stop serving on an endpoint; its run returns to completed.
    Undeploy(crate::commands::serving::UndeployArgs),
    /// Endpoints with their live state.
    Endpoints(crate::commands::serving::EndpointsArgs),
    /// Serve a SavedModel over TF Serving's REST API in the foreground.
    Serve(crate::commands::serving::ServeArgs),
    /// Send instances to an endpoint's predict API and print the answer.
    Predict(crate::commands::serving::PredictArgs),
    /// The main job on embedded defaults: synthetic data, a real local training run with
    /// progress, registration, a local endpoint answering a prediction, a weekly schedule.
    Quickstart(crate::commands::quickstart::QuickstartArgs),
}

#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Compile a run's pipeline (deterministic): `vertex` writes the PipelineJob body to --out and
    /// its user-code wheels to `_wheels/` beside it; `local` writes pipeline.py and the modules
    /// into the --out directory.
    Compile {
        /// A training run config (JSON, as for `runs create`).
        #[arg(long)]
        run: PathBuf,
        #[arg(long, value_parser = named::<CompileTarget>())]
        target: CompileTarget,
        #[arg(long)]
        out: PathBuf,
        /// Where the pipeline writes artifacts (vertex: a gs:// prefix; local: default OUT/root).
        #[arg(long)]
        pipeline_root: Option<String>,
        /// Google Cloud project (vertex; required).
        #[arg(long = "gcp-project")]
        gcp_project: Option<String>,
        /// Orchestration region (vertex; required).
        #[arg(long = "gcp-region")]
        gcp_region: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first, with KPI counts.
    List {
        /// Only these statuses (repeatable).
        #[arg(long = "status", value_parser = named::<RunStatus>())]
        statuses: Vec<RunStatus>,
        #[arg(long, value_parser = named::<ModelType>())]
        model_type: Option<ModelType>,
        #[arg(long)]
        registered_model: Option<i64>,
        /// Substring of the run name.
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 20)]
        page_size: u32,
    },
    /// Show one run.
    Show { id: i64 },
    /// Create a pending run from a JSON file (ml_model defaults to the project's).
    Create {
        #[arg(long)]
        config: PathBuf,
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
    },
    /// Show a run's config, or edit it with --patch FILE (finished runs only).
    Config {
        id: i64,
        #[arg(long)]
        patch: Option<PathBuf>,
    },
    /// Apply a pipeline callback (JSON file, or - for stdin), as the webhooks do.
    Event { id: i64, file: PathBuf },
    /// Dataset statistics of a run (StatisticsGen): examples, missing values, numeric and
    /// categorical feature tables, for all splits together or one (--split).
    Stats(crate::commands::insights::StatsArgs),
    /// The schema SchemaGen inferred for a run: types, presence, shapes, domains.
    Schema(crate::commands::insights::SchemaArgs),
    /// A run's pipeline log, or one component's (--component Trainer); --follow while it runs.
    Logs(crate::commands::insights::LogsArgs),
    /// Per-epoch metrics history.
    History { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List registered models, newest first, a page at a time.
    List {
        #[command(flatten)]
        filter: ModelFilterArgs,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One registered model (by name in the project's model endpoint, or by id) as the list
    /// shows it.
    Show {
        /// Name or id.
        model: String,
    },
    /// Whether a model name exists and has a schedule.
    CheckName { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ValidateCommand {
    /// Check a Cloud Run service name; exit 2 with the broken rule when invalid.
    ServiceName { name: String },
}

#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// Re-extract results (recall, RMSE/MAE, ...) of every trained run from its stored training
    /// history: fills missing values (--force: all), reports updated / skipped / errors.
    Backfill(crate::commands::insights::BackfillArgs),
    /// Extract a run's results from a training_metrics.json file.
    Extract {
        file: PathBuf,
        #[arg(long, value_parser = named::<ModelType>())]
        model_type: ModelType,
    },
}

/// When a schedule fires.
#[derive(Debug, Clone, Args)]
pub struct TimingArgs {
    /// now (fires once, when created) | once | hourly | daily | weekly | monthly
    #[arg(long = "type", value_parser = named::<ScheduleType>())]
    pub kind: Option<ScheduleType>,
    /// HH:MM (hourly: only the minute counts: 00, 15, 30 or 45)
    #[arg(long)]
    pub time: Option<String>,
    /// 0=Monday .. 6=Sunday (weekly)
    #[arg(long)]
    pub day_of_week: Option<u8>,
    /// 1..31 (monthly)
    #[arg(long)]
    pub day_of_month: Option<u8>,
    /// RFC 3339 instant (once), e.g. 2026-07-01T09:00:00+02:00
    #[arg(long)]
    pub datetime: Option<String>,
    /// IANA time zone
    #[arg(long, default_value = "UTC")]
    pub tz: String,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
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
        #[arg(long, value_parser = named::<CatchUpPolicy>(), default_value = "once")]
        catch_up: CatchUpPolicy,
        #[arg(long, value_parser = named::<ConcurrencyPolicy>(), default_value = "skip")]
        concurrency: ConcurrencyPolicy,
    },
    /// List schedules, newest first, a page at a time.
    List {
        /// Only schedules of this model endpoint.
        #[arg(long)]
        ml_model: Option<String>,
        #[arg(long, value_parser = named::<ScheduleStatus>())]
        status: Option<ScheduleStatus>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// A schedule, its statistics and its next fires.
    Show {
        id: i64,
        #[arg(long, default_value_t = 5)]
        count: usize,
    },
    /// Edit name, description or timing from a JSON file (training config stays frozen);
    /// `timing` may name only the fields to change.
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
    },
}

#[derive(Debug, Subcommand)]
pub enum SchedulerCommand {
    /// Run the embedded scheduler in the foreground until interrupted.
    Run {
        /// Poll interval in milliseconds.
        #[arg(long, default_value_t = 500)]
        tick_ms: u64,
    },
}
