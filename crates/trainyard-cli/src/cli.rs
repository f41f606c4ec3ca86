//! The command line: every clap type of `trainyard` (commands, their arguments and the global
//! options). Values of the domain's enums come from core's names ([`Named`]), never from a
//! mirror of the enum.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use trainyard::core::config::DeploymentPreset;
use trainyard::core::deployment::DeployTarget;
use trainyard::core::model_config::ModelType;
use trainyard::core::names::Named;
use trainyard::core::schedule::{CatchUpPolicy, ConcurrencyPolicy, ScheduleStatus, ScheduleType};
use trainyard::core::RunStatus;
use trainyard::{Backend, CompileTarget};

pub use crate::output::Format;

/// A value parser over the names of one of core's enums (aliases accepted).
pub fn named<T: Named + Clone + Send + Sync>() -> impl TypedValueParser<Value = T> {
    named_where(|_: T| true)
}

/// A value parser over the names of the variants of one of core's enums that `keep` accepts.
pub fn named_where<T: Named + Clone + Send + Sync>(
    keep: fn(T) -> bool,
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::ALL.iter().copied().filter(|v| keep(*v)).map(|v| {
        v.aliases()
            .iter()
            .fold(PossibleValue::new(v.name()), |p, a| p.alias(*a))
    }))
    .map(|s| T::from_name(&s).expect("clap checked the name"))
}

/// `deploy --preset`: core's named presets (`custom` needs resources, which the CLI does not
/// take).
pub fn deploy_presets() -> impl TypedValueParser<Value = DeploymentPreset> {
    named_where(|p: DeploymentPreset| p.resources().is_some())
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
    /// run the static checks on modules already generated (--check DIR). Each config file may
    /// give only some fields (`{}`, `{"model_type": "ranking"}`): they are merged over the
    /// defaults, as a run config's sections are; unknown fields are refused.
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
    Server(ServeApiArgs),
    /// The model registry: versions, push, aliases.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Deploy a registered run to an endpoint (a local trainyard-serve process, or Cloud Run).
    Deploy(DeployArgs),
    /// Stop serving on an endpoint; its run returns to completed.
    Undeploy(UndeployArgs),
    /// Endpoints with their live state.
    Endpoints(EndpointsArgs),
    /// Serve a SavedModel over TF Serving's REST API in the foreground.
    Serve(ServeArgs),
    /// Send instances to an endpoint's predict API and print the answer.
    Predict(PredictArgs),
    /// The main job on embedded defaults: synthetic data, a real local training run with
    /// progress, registration, a local endpoint answering a prediction, a weekly schedule.
    Quickstart(QuickstartArgs),
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
    Stats(StatsArgs),
    /// The schema SchemaGen inferred for a run: types, presence, shapes, domains.
    Schema(SchemaArgs),
    /// A run's pipeline log, or one component's (--component Trainer); --follow while it runs.
    Logs(LogsArgs),
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
    Backfill(BackfillArgs),
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

// Registry, deployment and serving (commands/serving.rs).

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Registered models with their KPI row (total, registered, with schedule, deployed),
    /// newest first, a page at a time.
    List {
        #[arg(long, value_parser = named::<ModelType>())]
        model_type: Option<ModelType>,
        /// Only models with (true) or without (false) an active endpoint on record.
        #[arg(long)]
        deployed: Option<bool>,
        #[arg(long)]
        has_schedule: Option<bool>,
        /// Case-insensitive part of the model name.
        #[arg(long)]
        search: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Registered versions of a model (id or name) with the KPI set of its type.
    Versions { model: String },
    /// Register a completed, blessed run as the next version of its model.
    Push { run: i64 },
    /// Aliases (production, staging, ...) that point at versions.
    #[command(subcommand)]
    Alias(AliasCommand),
}

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Point ALIAS of MODEL at VERSION (moving it if it pointed elsewhere).
    Set {
        model: String,
        alias: String,
        version: String,
    },
    /// Remove an alias.
    Remove { model: String, alias: String },
    /// Which version held which alias, and served on which endpoint, when.
    History { model: String },
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The registered training run to deploy.
    pub run: i64,
    /// Resources: development (0-2 instances, 2Gi, 1 CPU), production (1-10, 4Gi, 2),
    /// high_traffic (2-50, 8Gi, 4). Default: the run's deployment_config.
    #[arg(long, value_parser = deploy_presets())]
    pub preset: Option<DeploymentPreset>,
    /// Update this existing endpoint (it must belong to the run's registered model).
    #[arg(long, conflicts_with = "service_name")]
    pub endpoint: Option<String>,
    /// Name of a new endpoint (default: <model name>-serving).
    #[arg(long)]
    pub service_name: Option<String>,
    /// Where to serve: service (trainyard-serve locally, Cloud Run with --backend gcp) or
    /// vertex-endpoint (a Vertex AI endpoint of the model, --backend gcp). Default: the
    /// --endpoint's target, else service.
    #[arg(long, value_name = "service|vertex-endpoint")]
    pub target: Option<DeployTarget>,
}

#[derive(Debug, Args)]
pub struct UndeployArgs {
    /// The endpoint's service name.
    pub endpoint: String,
}

#[derive(Debug, Args)]
pub struct EndpointsArgs {
    /// Only this model's endpoints (id or name).
    #[arg(long)]
    pub model: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A SavedModel folder, or a model base folder with numeric version folders.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, default_value_t = 8501)]
    pub port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The name in /v1/models/{name}:predict.
    #[arg(long, default_value = trainyard_local::SERVED_MODEL_NAME)]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Base URL of the endpoint, e.g. http://127.0.0.1:8501.
    #[arg(long)]
    pub endpoint: String,
    /// JSON file with a list of instances or {"instances": [...]}; `-` reads stdin.
    #[arg(long)]
    pub instances: PathBuf,
    #[arg(long, default_value = trainyard_local::SERVED_MODEL_NAME)]
    pub model_name: String,
}

// Run insights and metrics backfill (commands/insights.rs).

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Training run id.
    pub run: i64,
    /// One split (train, eval, ...) instead of all splits combined.
    #[arg(long)]
    pub split: Option<String>,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Training run id.
    pub run: i64,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Training run id.
    pub run: i64,
    /// Only this component's log (CsvExampleGen, StatisticsGen, Trainer, ...).
    #[arg(long)]
    pub component: Option<String>,
    /// Keep printing new lines until the run's training finishes.
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Report what would be updated; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Re-extract results that are already set.
    #[arg(long)]
    pub force: bool,
}

// The server (commands/server.rs).

#[derive(Debug, Args)]
pub struct ServeApiArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Write the OpenAPI document to FILE (- for stdout) and exit; needs no project.
    #[arg(long, value_name = "FILE")]
    pub openapi_out: Option<PathBuf>,
    /// Accepted for compatibility: the local runner is always configured now (submitting
    /// without a managed Python env fails the run naming the setting).
    #[arg(long, hide = true)]
    pub local_runner: bool,
    /// Serve the API only: no scheduler and no control plane in this process (another
    /// server carries the runs).
    #[arg(long)]
    pub api_only: bool,
    /// Mount the pipeline callback webhooks; callers send `Authorization: Bearer SECRET`.
    #[arg(long, env = "TRAINYARD_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Mount the schedule webhook for Cloud Scheduler tokens of this service account.
    #[arg(long)]
    pub scheduler_service_account: Option<String>,
    /// The `aud` Cloud Scheduler's tokens carry (default: http://HOST:PORT).
    #[arg(long)]
    pub scheduler_audience: Option<String>,
    /// A TLS-terminating proxy sits in front (as `[server] tls_terminated_by_proxy = true`):
    /// needed to listen on a non-loopback address.
    #[arg(long)]
    pub tls_terminated_by_proxy: bool,
    /// Also answer requests with this Host (repeatable; adds to `[server] allowed_hosts`).
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
}

impl ServeApiArgs {
    /// Writing the document needs no project.
    pub fn needs_project(&self) -> bool {
        self.openapi_out.is_none()
    }
}

// The quickstart (commands/quickstart.rs).

#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Project directory to create (or reuse).
    #[arg(long, default_value = "trainyard-quickstart")]
    pub dir: PathBuf,
    /// Also train a ranking and a multitask model.
    #[arg(long)]
    pub all: bool,
    /// Synthetic dataset size.
    #[arg(long, default_value = "tiny",
          value_parser = PossibleValuesParser::new(trainyard_synth::SynthConfig::SIZES))]
    pub data_size: String,
    #[arg(long, default_value_t = 2)]
    pub epochs: u32,
    /// Stop the endpoint at the end instead of leaving it serving.
    #[arg(long)]
    pub undeploy: bool,
    /// Skip the unattended retraining at the end (a fire of the schedule carried by the
    /// control plane to version 2 on the same endpoint).
    #[arg(long)]
    pub no_retrain: bool,
}
