//! Ports: the async traits the services call and the backends implement (DESIGN.md "Ports and
//! backends"). The embedded defaults live in trainyard-store and trainyard-local, the cloud
//! ones in trainyard-gcp.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::DeploymentConfig;
use crate::error::Result;
use crate::metrics::{EpochMetrics, RunResults};
use crate::model_config::ModelType;
use crate::registry::{DeployedEndpoint, RegisteredModel, RegistryEvent};
use crate::run::{
    EndpointId, RegisteredModelId, RunId, ScheduleId, TrainingMetricsHistory, TrainingRun,
};
use crate::schedule::TrainingSchedule;
use crate::stages::StageName;
use crate::status::RunStatus;

/// Time, injectable so services and schedulers can be tested.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Filters and page of a run listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunFilter {
    pub ml_model: Option<String>,
    /// Any of these statuses (empty: all).
    pub statuses: Vec<RunStatus>,
    pub model_type: Option<ModelType>,
    pub registered_model_id: Option<RegisteredModelId>,
    pub schedule_id: Option<ScheduleId>,
    /// Case-insensitive substring of the run name.
    pub search: Option<String>,
    /// Only runs the control plane owes a step ([`TrainingRun::next_step`]).
    pub with_step: bool,
    /// Only the run whose trainer logged to this MLflow run.
    pub mlflow_run_id: Option<String>,
    /// 1-based.
    pub page: u32,
    pub page_size: u32,
}

impl Default for RunFilter {
    fn default() -> Self {
        RunFilter {
            ml_model: None,
            statuses: Vec::new(),
            model_type: None,
            registered_model_id: None,
            schedule_id: None,
            search: None,
            with_step: false,
            mlflow_run_id: None,
            page: 1,
            page_size: 20,
        }
    }
}

/// Counts over the runs that match a filter's non-status criteria.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunKpi {
    pub total: u64,
    pub by_status: BTreeMap<RunStatus, u64>,
}

impl RunKpi {
    pub fn count(&self, status: RunStatus) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPage {
    pub runs: Vec<TrainingRun>,
    /// Runs matching the whole filter.
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
    pub kpi: RunKpi,
}

/// A claim on a unit of work (`run:<id>`) or a server's presence (`server:<owner>`): held by
/// `owner` until `expires_at` unless renewed. A dead holder's lease simply expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub key: String,
    pub owner: String,
    pub expires_at: DateTime<Utc>,
}

/// Persistence of every entity. Updates carry the row version they read; a stale one is
/// `Error::Conflict` and changes nothing.
#[async_trait]
pub trait Store: Send + Sync {
    /// Inserts a run, allocating its id and the next run_number of its `ml_model`.
    async fn insert_run(&self, run: &TrainingRun) -> Result<TrainingRun>;
    async fn get_run(&self, id: RunId) -> Result<TrainingRun>;
    /// Writes `run` if its `version` is current; returns it with the next version.
    async fn update_run(&self, run: &TrainingRun) -> Result<TrainingRun>;
    async fn list_runs(&self, filter: &RunFilter) -> Result<RunPage>;
    /// The run a schedule created for one fire time, if any.
    async fn run_for_fire(
        &self,
        schedule_id: ScheduleId,
        fire_at: DateTime<Utc>,
    ) -> Result<Option<TrainingRun>>;

    /// Inserts or replaces the history rows of the given epochs.
    async fn record_epochs(
        &self,
        run_id: RunId,
        rows: &[EpochMetrics],
        at: DateTime<Utc>,
    ) -> Result<()>;
    async fn history(&self, run_id: RunId) -> Result<Vec<TrainingMetricsHistory>>;

    /// Inserts; a second model with the same (ml_model, model_name) is a Conflict.
    async fn insert_registered_model(&self, model: &RegisteredModel) -> Result<RegisteredModel>;
    async fn get_registered_model(&self, id: RegisteredModelId) -> Result<RegisteredModel>;
    async fn find_registered_model(
        &self,
        ml_model: &str,
        model_name: &str,
    ) -> Result<Option<RegisteredModel>>;
    async fn update_registered_model(&self, model: &RegisteredModel) -> Result<RegisteredModel>;
    async fn list_registered_models(&self, ml_model: Option<&str>) -> Result<Vec<RegisteredModel>>;

    /// Inserts; a second schedule for the same registered model is a Conflict.
    async fn insert_schedule(&self, schedule: &TrainingSchedule) -> Result<TrainingSchedule>;
    async fn get_schedule(&self, id: ScheduleId) -> Result<TrainingSchedule>;
    async fn schedule_for_model(&self, id: RegisteredModelId) -> Result<Option<TrainingSchedule>>;
    async fn update_schedule(&self, schedule: &TrainingSchedule) -> Result<TrainingSchedule>;
    async fn delete_schedule(&self, id: ScheduleId) -> Result<()>;
    async fn list_schedules(&self, ml_model: Option<&str>) -> Result<Vec<TrainingSchedule>>;
    /// Active schedules whose `next_run_at` is at or before `now`, oldest first.
    async fn due_schedules(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<TrainingSchedule>>;

    /// Inserts; service names are unique.
    async fn insert_endpoint(&self, endpoint: &DeployedEndpoint) -> Result<DeployedEndpoint>;
    async fn get_endpoint(&self, id: EndpointId) -> Result<DeployedEndpoint>;
    async fn update_endpoint(&self, endpoint: &DeployedEndpoint) -> Result<DeployedEndpoint>;
    async fn list_endpoints(
        &self,
        registered_model_id: Option<RegisteredModelId>,
    ) -> Result<Vec<DeployedEndpoint>>;

    /// Appends an alias or endpoint change to a model's history.
    async fn insert_registry_event(&self, event: &RegistryEvent) -> Result<RegistryEvent>;
    /// A model's alias and endpoint history, oldest first.
    async fn registry_events(&self, id: RegisteredModelId) -> Result<Vec<RegistryEvent>>;

    /// Takes or renews the lease `key` for `owner` until `until`: granted when it is free,
    /// expired at `now`, or already `owner`'s. Atomic across processes sharing the store.
    async fn acquire_lease(
        &self,
        key: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;
    /// Gives up `owner`'s lease `key` (someone else's is left alone).
    async fn release_lease(&self, key: &str, owner: &str) -> Result<()>;
    /// Leases under `prefix` that have not expired at `now`.
    async fn live_leases(&self, prefix: &str, now: DateTime<Utc>) -> Result<Vec<Lease>>;
}

/// What a pipeline reports about a run, through webhooks or a runner's progress stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PipelineEvent {
    /// The pipeline was accepted by the executor.
    Submitted {
        #[serde(default)]
        job_name: Option<String>,
        #[serde(default)]
        job_id: Option<String>,
    },
    StageStarted {
        stage: StageName,
    },
    StageCompleted {
        stage: StageName,
    },
    EpochCompleted {
        epoch: u32,
        #[serde(default)]
        metrics: BTreeMap<String, f64>,
    },
    Failed {
        error: String,
        #[serde(default)]
        stage: Option<StageName>,
    },
    /// The pipeline was submitted again as a new job, which replaces the one the run followed:
    /// the Vertex executor's GPU fallback after a created job failed for quota or capacity
    /// (its Trainer's custom job was refused). `gpu_config` is the config the new job runs on
    /// (with its Trainer region); `reason` why the previous job ended, led by the refusal kind
    /// (`quota: ...` or `capacity: ...`, see [`crate::config::GpuAttemptOutcome`]).
    Resubmitted {
        job_name: String,
        job_id: String,
        #[serde(default)]
        gpu_config: Option<crate::config::GpuConfig>,
        #[serde(default)]
        reason: String,
    },
    /// Training and evaluation finished; `training_metrics` is the trainer's
    /// training_metrics.json and `blessed` the Evaluator's verdict.
    Completed {
        training_metrics: serde_json::Value,
        blessed: bool,
        #[serde(default)]
        artifacts: BTreeMap<String, String>,
    },
}

/// Name, in [`PipelineSubmission::files`], of the Vertex AI PipelineJob body (JSON) that the
/// pipeline builder compiles and the Vertex executor submits.
pub const VERTEX_PIPELINE_JOB_FILE: &str = "pipeline_job.json";
/// Name, in [`PipelineSubmission::files`], of the runnable local TFX pipeline module.
pub const LOCAL_PIPELINE_FILE: &str = "pipeline.py";
/// The trainer's metrics file, in the run's model-run output directory.
pub const TRAINING_METRICS_FILE: &str = "training_metrics.json";

/// A pipeline handed to an executor: the run and the generated files it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineSubmission {
    pub run: TrainingRun,
    /// Root for the run's artifacts (a directory or a gs:// prefix).
    pub pipeline_root: String,
    /// File name -> contents: the transform and trainer modules, the pipeline module or IR.
    pub files: BTreeMap<String, String>,
}

/// Turns a run into the files its executor needs (generated modules, the local pipeline module
/// or the Vertex PipelineJob). Implemented over the code generator and pipeline builder.
pub trait PipelineCompiler: Send + Sync {
    fn compile(&self, run: &TrainingRun, pipeline_root: &str) -> Result<BTreeMap<String, String>>;
}

/// What one schedule fire did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FireOutcome {
    /// A new run was created for this fire.
    Created { run: Box<TrainingRun> },
    /// This (schedule, fire time) already has its run: nothing new was created.
    AlreadyFired { run: Box<TrainingRun> },
    /// No run, and why (paused schedule, previous run still active under `skip`, ...).
    Skipped { reason: String },
}

/// Creates the run of a schedule fire; idempotent per (schedule, fire time). The embedded
/// scheduler and the Cloud Scheduler webhook both fire through it.
#[async_trait]
pub trait ScheduleFirer: Send + Sync {
    async fn fire(&self, schedule_id: ScheduleId, fire_at: DateTime<Utc>) -> Result<FireOutcome>;
}

/// Where an executor put a submitted pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineHandle {
    pub job_name: String,
    pub job_id: String,
}

/// Runs training pipelines (local TFX runner, Vertex AI Pipelines).
#[async_trait]
pub trait PipelineExecutor: Send + Sync {
    async fn submit(&self, submission: &PipelineSubmission) -> Result<PipelineHandle>;
    /// Events since the last poll; a finished pipeline ends with `Completed` or `Failed`.
    async fn poll(&self, handle: &PipelineHandle) -> Result<Vec<PipelineEvent>>;
    async fn cancel(&self, handle: &PipelineHandle) -> Result<()>;

    /// Whether this executor can start pipelines now (a local runner needs its managed Python
    /// env); asked before a submit request is recorded, so a request that cannot be carried
    /// out is refused at once. Following and cancelling need not be ready.
    fn ready(&self) -> Result<()> {
        Ok(())
    }

    /// What the last submission of `run` did on the GPU fallback ladder (every attempt, the
    /// config accepted), taken once after `submit` returns, whether it succeeded or not.
    /// Executors without a ladder keep this default.
    fn take_gpu_fallback(&self, _run: RunId) -> Option<crate::config::GpuFallbackRecord> {
        None
    }
}

/// One log entry of a pipeline job (Cloud Logging for Vertex AI Pipelines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineLogEntry {
    /// RFC 3339, as the backend recorded it.
    pub timestamp: String,
    /// DEFAULT, DEBUG, INFO, WARNING, ERROR, ...
    pub severity: String,
    /// The pipeline task (component) that wrote it; `None`: the pipeline job itself.
    pub component: Option<String>,
    pub message: String,
}

/// What a [`PipelineLogReader`] found for one pipeline job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineLogs {
    /// Where the entries were read (e.g. the Cloud Logging filter).
    pub source: String,
    /// Components (tasks) of the job that have their own logs.
    pub components: Vec<String>,
    /// Oldest first.
    pub entries: Vec<PipelineLogEntry>,
    /// More entries matched than `limit` allowed.
    pub truncated: bool,
}

/// Reads the logs of a submitted pipeline job (Cloud Logging for Vertex AI Pipelines).
#[async_trait]
pub trait PipelineLogReader: Send + Sync {
    /// The job's entries, oldest first, at most `limit`: the whole pipeline, or one component
    /// (task name, case-insensitive; an unknown one is `NotFound` naming those it has).
    async fn read_logs(
        &self,
        handle: &PipelineHandle,
        component: Option<&str>,
        limit: usize,
    ) -> Result<PipelineLogs>;
}

/// Reads and writes run artifacts (local directory, GCS).
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Object paths under `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    async fn read(&self, path: &str) -> Result<Vec<u8>>;
    async fn write(&self, path: &str, bytes: &[u8]) -> Result<()>;
}

/// A version created in a model registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryVersion {
    pub model_resource_name: String,
    pub version: String,
    /// Where this version's SavedModel lives, when the registry keeps its own copy (the
    /// filesystem registry) or knows the folder it registered; deployments serve from here.
    #[serde(default)]
    pub artifact_uri: Option<String>,
}

/// Registers pushed models as versions of a named model (filesystem, Vertex AI Model Registry).
#[async_trait]
pub trait ModelRegistry: Send + Sync {
    async fn register(
        &self,
        model: &RegisteredModel,
        run: &TrainingRun,
        model_path: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<RegistryVersion>;
    async fn list_versions(&self, model: &RegisteredModel) -> Result<Vec<RegistryVersion>>;
}

/// What to deploy, where, with which resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployRequest {
    pub service_name: String,
    /// What to serve: the model folder (trainyard-serve, Cloud Run), or the registered
    /// version's resource name `projects/../models/ID@VERSION` (Vertex AI endpoints).
    pub model_path: String,
    pub image: String,
    pub config: DeploymentConfig,
    /// Version labels the server answers on (`/v1/models/NAME/labels/LABEL`, gRPC
    /// `version_label`): the model's registry aliases, alias -> version number.
    #[serde(default)]
    pub labels: BTreeMap<String, u64>,
}

/// Serves models (local trainyard-serve process, Cloud Run, Vertex AI endpoints).
#[async_trait]
pub trait Deployer: Send + Sync {
    /// Creates or updates the service; returns its URL.
    async fn deploy(&self, request: &DeployRequest) -> Result<String>;
    async fn undeploy(&self, service_name: &str) -> Result<()>;
    /// Whether the service is up and serving a model right now.
    async fn is_serving(&self, service_name: &str) -> Result<bool>;
    /// Whether the service serves `model_path` (as given to [`Deployer::deploy`]) right now.
    /// Deployers that serve one model per service answer [`Deployer::is_serving`].
    async fn serves(&self, service_name: &str, _model_path: &str) -> Result<bool> {
        self.is_serving(service_name).await
    }
    /// Refuses, before anything is deployed, a model the server would serve wrongly (a
    /// retrieval signature whose `product_ids` are vocabulary indices, not the original ids).
    /// Deployers that cannot look inside the model accept it.
    async fn check_model(&self, _model_path: &str) -> Result<()> {
        Ok(())
    }
    /// Whose naming rule service names follow (Cloud Run: at most 49 characters).
    fn serving_target(&self) -> crate::deployment::ServingTarget {
        crate::deployment::ServingTarget::Local
    }
}

/// Fires schedules (in-process scheduler, Cloud Scheduler).
#[async_trait]
pub trait ScheduleTrigger: Send + Sync {
    /// Creates or replaces the trigger of a schedule; returns the job name.
    async fn upsert(&self, schedule: &TrainingSchedule, cron: &str) -> Result<String>;
    async fn pause(&self, job_name: &str) -> Result<()>;
    async fn resume(&self, job_name: &str) -> Result<()>;
    async fn delete(&self, job_name: &str) -> Result<()>;
}

/// Receives metrics as they are produced (training_metrics.json, MLflow).
#[async_trait]
pub trait MetricsSink: Send + Sync {
    async fn log_epoch(&self, run: &TrainingRun, epoch: &EpochMetrics) -> Result<()>;
    async fn log_results(&self, run: &TrainingRun, results: &RunResults) -> Result<()>;
}
