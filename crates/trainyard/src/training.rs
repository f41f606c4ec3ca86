//! TrainingService: create, cancel, rerun and edit training runs, and apply what the pipeline
//! reports (stage, epoch, failure, completion) through the state machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use trainyard_core::metrics::{
    epoch_history, extract_mlflow_run_id, extract_results, EpochMetrics,
};
use trainyard_core::ports::{
    Clock, PipelineCompiler, PipelineEvent, PipelineExecutor, PipelineSubmission, RunFilter,
    RunPage, ScheduleTrigger, Store,
};
use trainyard_core::run::{
    ConfigPatch, NewTrainingRun, RunConfig, RunId, TrainingMetricsHistory, TrainingRun,
};
use trainyard_core::stages::StageName;
use trainyard_core::tracking::{experiment_of, ExperimentTracking, RunKey, TrackingEnd};
use trainyard_core::{Error, Result, RunEvent, RunStatus};

use crate::lifecycle::Lifecycle;
use crate::records::mutate_run;
use crate::registry::RegistryService;

/// The spec's GET /config/ shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfigView {
    pub id: RunId,
    pub name: String,
    #[serde(flatten)]
    pub config: RunConfig,
}

/// How runs reach a pipeline executor: the compiler makes the files, the executor runs them
/// under `pipeline_root/runs/<id>`.
#[derive(Clone)]
pub struct Launch {
    pub executor: Arc<dyn PipelineExecutor>,
    pub compiler: Arc<dyn PipelineCompiler>,
    pub pipeline_root: String,
}

/// Longest a run's end waits for the tracking server to end its leftover MLflow runs.
const END_TRACKING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

#[derive(Clone)]
pub struct TrainingService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    registry: RegistryService,
    lifecycle: Option<Lifecycle>,
    launch: Option<Launch>,
    /// Where schedules created from a run's `schedule_config` are also registered.
    schedule_trigger: Option<Arc<dyn ScheduleTrigger>>,
    /// Prices finished runs (`cost_usd`); `None` (the local backend): every run costs 0.
    pricing: Option<Arc<trainyard_core::pricing::CostModel>>,
    /// The project root: relative local paths a pipeline reports (`pushed_model`,
    /// `pipeline_root`, ...) are resolved against it, never against the working directory.
    artifact_base: Option<PathBuf>,
    /// Ends the MLflow runs that trainers killed outright left RUNNING, when a run ends failed
    /// or cancelled; `None`: no tracking server.
    tracking: Option<Arc<dyn ExperimentTracking>>,
}

/// The artifacts of a completion that name local files or folders (the local runner's and the
/// Pusher's); other artifacts (JSON records, resource names) are kept as they are.
const LOCAL_PATH_ARTIFACTS: &[&str] = &[
    "pipeline_root",
    "pushed_model",
    "training_metrics",
    "log",
    "component_logs",
];

/// `value` of artifact `key` as the run keeps it: a relative local path of a path artifact is
/// joined to `base` (the project root); absolute paths and URIs (`gs://...`) are unchanged.
fn resolve_artifact(base: Option<&Path>, key: &str, value: &str) -> String {
    match base {
        Some(base)
            if LOCAL_PATH_ARTIFACTS.contains(&key)
                && !value.is_empty()
                && !value.contains("://")
                && Path::new(value).is_relative() =>
        {
            base.join(value).display().to_string()
        }
        _ => value.to_string(),
    }
}

impl TrainingService {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, launch: Option<Launch>) -> Self {
        let registry = RegistryService::new(store.clone(), clock.clone());
        TrainingService {
            store,
            clock,
            registry,
            lifecycle: None,
            launch,
            schedule_trigger: None,
            pricing: None,
            artifact_base: None,
            tracking: None,
        }
    }

    /// Relative local paths in pipeline events are resolved against `project_root` (made
    /// absolute against the working directory of this call when it is relative itself).
    pub fn with_artifact_base(mut self, project_root: impl AsRef<Path>) -> Self {
        let root = project_root.as_ref();
        self.artifact_base = Some(
            root.canonicalize()
                .or_else(|_| std::path::absolute(root))
                .unwrap_or_else(|_| root.to_path_buf()),
        );
        self
    }

    /// Prices finished runs with `model` (a cloud backend); without one they cost 0.
    pub fn with_pricing(mut self, model: Option<trainyard_core::pricing::CostModel>) -> Self {
        self.pricing = model.map(Arc::new);
        self
    }

    /// What follows a blessed completion (registration, auto-deploy) is carried out by
    /// `lifecycle` as soon as the completion is applied.
    pub(crate) fn with_lifecycle(mut self, lifecycle: Lifecycle) -> Self {
        self.lifecycle = Some(lifecycle);
        self
    }

    /// When a run ends failed or cancelled, the tracking runs its trainer left RUNNING (a
    /// trainer killed outright cannot end its own) are ended through `tracking`.
    pub fn with_experiment_tracking(
        mut self,
        tracking: Option<Arc<dyn ExperimentTracking>>,
    ) -> Self {
        self.tracking = tracking;
        self
    }

    /// Best effort, after a run ended failed (FAILED) or cancelled (KILLED): ends the
    /// tracking runs of its experiment tagged with its run key (not its id: another project's
    /// run with the same id may log to the same experiment) that are still RUNNING. A tracking
    /// server that fails or cannot be reached is a warning: the run's end stands.
    async fn end_tracking(&self, run: &TrainingRun) {
        let (Some(tracking), Some(end), Some(experiment), Some(key)) = (
            &self.tracking,
            TrackingEnd::for_status(run.status),
            experiment_of(run),
            RunKey::of(run),
        ) else {
            return;
        };
        // each request is bounded by the adapter; the whole call is bounded here, so a slow
        // tracking server cannot hold up a cancel or the control plane's step
        let ended = tokio::time::timeout(
            END_TRACKING_TIMEOUT,
            tracking.end_stale_runs(experiment, &key, end),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Error::Backend(format!(
                "no answer within {}s",
                END_TRACKING_TIMEOUT.as_secs()
            )))
        });
        match ended {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                run_id = run.id,
                run_key = %key,
                experiment,
                ended = n,
                status = end.as_mlflow(),
                "ended the MLflow runs its trainer left running"
            ),
            Err(e) => tracing::warn!(
                run_id = run.id,
                experiment,
                error = %e,
                "could not end the MLflow runs its trainer left running"
            ),
        }
    }

    /// Schedules that runs' `schedule_config`s create are also registered with `trigger`.
    pub fn with_schedule_trigger(mut self, trigger: Option<Arc<dyn ScheduleTrigger>>) -> Self {
        self.schedule_trigger = trigger;
        self
    }

    /// Whether runs can be submitted here (an executor that is ready to start pipelines).
    pub fn can_submit(&self) -> bool {
        self.ready_to_submit().is_ok()
    }

    /// Why submitting is impossible here, if it is: a Conflict naming what to set up.
    pub fn ready_to_submit(&self) -> Result<()> {
        let launch = self.launch.as_ref().ok_or_else(|| {
            Error::Conflict("no pipeline executor is configured for this platform".into())
        })?;
        launch
            .executor
            .ready()
            .map_err(|e| Error::Conflict(format!("runs cannot be submitted here: {e}")))
    }

    /// Records that a pending run should be submitted (pending -> scheduled); the control
    /// plane (a `trainyard server`, or the calling process for the duration of its call)
    /// submits it. A run already scheduled is returned as it is.
    pub async fn submit(&self, id: RunId) -> Result<TrainingRun> {
        self.ready_to_submit()?;
        let now = self.clock.now();
        self.mutate(id, |run| {
            if run.status != RunStatus::Scheduled {
                run.transition(RunEvent::Schedule, now)?;
            }
            Ok(())
        })
        .await
    }

    /// Compiles a pending or scheduled run and hands it to the executor; the control plane's
    /// submit step. A run left `submitting` by a crash is handed over again: executors return
    /// the job they already have for it. A compile or submit error fails the run (with the
    /// error kept) and is returned.
    pub(crate) async fn launch(&self, id: RunId) -> Result<TrainingRun> {
        let launch = self.launch.as_ref().ok_or_else(|| {
            Error::Backend("no pipeline executor is configured for this platform".into())
        })?;
        let current = self.store.get_run(id).await?;
        let run = if current.status == RunStatus::Submitting {
            current
        } else {
            self.mark_submitting(id).await?
        };
        let root = format!(
            "{}/runs/{}",
            launch.pipeline_root.trim_end_matches('/'),
            run.id
        );
        let submitted = match launch.compiler.compile(&run, &root) {
            Ok(files) => {
                launch
                    .executor
                    .submit(&PipelineSubmission {
                        run: run.clone(),
                        pipeline_root: root,
                        files,
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        // A GPU fallback walk (Vertex executor) is recorded before the outcome is applied, so a
        // failed run also shows what was tried.
        if let Some(record) = launch.executor.take_gpu_fallback(id) {
            if let Err(e) = self.record_gpu_fallback(id, record).await {
                // The job may be running: losing the record must not lose its Submitted event.
                tracing::warn!(run_id = id, error = %e, "recording the GPU fallback attempts failed");
            }
        }
        match submitted {
            Ok(handle) => {
                tracing::info!(run_id = id, job = %handle.job_name, "pipeline submitted");
                let event = PipelineEvent::Submitted {
                    job_name: Some(handle.job_name.clone()),
                    job_id: Some(handle.job_id.clone()),
                };
                let applied = self.handle_event(id, &event).await;
                // Cancelled while it was being submitted: the job it got must not run on.
                if applied.is_err() && self.store.get_run(id).await?.status == RunStatus::Cancelled
                {
                    launch.executor.cancel(&handle).await?;
                }
                applied
            }
            Err(e) => {
                tracing::warn!(run_id = id, error = %e, "pipeline submission failed");
                let event = PipelineEvent::Failed {
                    error: format!("submission failed: {e}"),
                    stage: Some(StageName::Compile),
                };
                self.handle_event(id, &event).await?;
                Err(e)
            }
        }
    }

    /// Keeps a GPU fallback walk on the run: each attempt as JSON in
    /// `artifacts["gpu_attempts"]`, and the accepted config as the run's gpu_config, so the run
    /// shows the GPUs it actually got.
    async fn record_gpu_fallback(
        &self,
        id: RunId,
        record: trainyard_core::config::GpuFallbackRecord,
    ) -> Result<TrainingRun> {
        let attempts = serde_json::to_string(&record.attempts)
            .map_err(|e| Error::Backend(format!("gpu attempts: {e}")))?;
        self.mutate(id, |run| {
            run.artifacts.insert(
                trainyard_core::config::GPU_ATTEMPTS_ARTIFACT.into(),
                attempts.clone(),
            );
            if let Some(gpu) = &record.accepted {
                run.config.gpu_config = gpu.clone();
            }
            Ok(())
        })
        .await
    }

    /// Validates and stores a new pending run, getting or creating its RegisteredModel (named
    /// after the run). The store allocates the run_number. A `schedule_config` other than
    /// `now` creates the model's schedule or moves its timing (the spec's Edit feature).
    pub async fn create_training_run(&self, new: NewTrainingRun) -> Result<TrainingRun> {
        let run = self.insert_training_run(new).await?;
        crate::schedules::apply_run_schedule_config(
            &self.store,
            &self.clock,
            self.schedule_trigger.as_ref(),
            &run,
        )
        .await?;
        Ok(run)
    }

    /// [`Self::create_training_run`] without the schedule: a rerun copies the source's
    /// `schedule_config` but leaves the model's schedule alone.
    async fn insert_training_run(&self, new: NewTrainingRun) -> Result<TrainingRun> {
        new.validate()?;
        let model = self
            .registry
            .get_or_create_for_training(
                &new.ml_model,
                &new.name,
                new.config.model_type(),
                &new.description,
            )
            .await?;
        let run = TrainingRun::new(new, Some(model.id), self.clock.now());
        let run = self.store.insert_run(&run).await?;
        tracing::info!(run_id = run.id, run_number = run.run_number, name = %run.name, "training run created");
        Ok(run)
    }

    pub async fn get(&self, id: RunId) -> Result<TrainingRun> {
        self.store.get_run(id).await
    }

    pub async fn list(&self, filter: &RunFilter) -> Result<RunPage> {
        self.store.list_runs(filter).await
    }

    pub async fn history(&self, id: RunId) -> Result<Vec<TrainingMetricsHistory>> {
        self.store.get_run(id).await?;
        self.store.history(id).await
    }

    async fn mutate<F>(&self, id: RunId, f: F) -> Result<TrainingRun>
    where
        F: FnMut(&mut TrainingRun) -> Result<()> + Send,
    {
        mutate_run(&self.store, &self.clock, id, f).await
    }

    /// Cancels a pending, scheduled, submitting or running run, stopping its pipeline.
    pub async fn cancel(&self, id: RunId) -> Result<TrainingRun> {
        let now = self.clock.now();
        let run = self
            .mutate(id, |run| {
                run.transition(RunEvent::Cancel, now)?;
                run.update_stages(|s| s.cancel_remaining(now));
                Ok(())
            })
            .await?;
        let stopped = match (&self.launch, crate::pipelines::handle_of(&run)) {
            (Some(launch), Some(handle)) => launch.executor.cancel(&handle).await,
            _ => Ok(()),
        };
        self.end_tracking(&run).await;
        stopped?;
        Ok(run)
    }

    /// Events the executor has for a submitted pipeline.
    pub async fn poll_events(
        &self,
        handle: &trainyard_core::ports::PipelineHandle,
    ) -> Result<Vec<PipelineEvent>> {
        match &self.launch {
            Some(launch) => launch.executor.poll(handle).await,
            None => Ok(Vec::new()),
        }
    }

    /// A new run with the same name and config as a run whose training has finished, submitted
    /// (as the spec's rerun is) when there is an executor.
    pub async fn rerun(&self, id: RunId) -> Result<TrainingRun> {
        self.rerun_with(id, self.can_submit()).await
    }

    /// [`Self::rerun`]; `submit: false` leaves the new run pending. The schedule config is
    /// copied without its Cloud Scheduler job.
    pub async fn rerun_with(&self, id: RunId, submit: bool) -> Result<TrainingRun> {
        let source = self.store.get_run(id).await?;
        if !source.status.training_finished() {
            return Err(Error::Conflict(format!(
                "training run {id} is {}; only a run whose training has finished can be rerun",
                source.status
            )));
        }
        let mut config = source.config.clone();
        config.schedule_config = source.config.schedule_config.for_rerun();
        let run = self
            .insert_training_run(NewTrainingRun {
                ml_model: source.ml_model.clone(),
                name: source.name.clone(),
                description: format!("Re-run of {}", source.display_name()),
                config,
            })
            .await?;
        if submit {
            return self.submit(run.id).await;
        }
        Ok(run)
    }

    pub async fn get_config(&self, id: RunId) -> Result<RunConfigView> {
        let run = self.store.get_run(id).await?;
        Ok(RunConfigView {
            id: run.id,
            name: run.name,
            config: run.config,
        })
    }

    /// Edits the spec's editable fields of a finished run; returns the config and what changed.
    pub async fn patch_config(
        &self,
        id: RunId,
        patch: &ConfigPatch,
    ) -> Result<(RunConfigView, Vec<&'static str>)> {
        let mut changed = Vec::new();
        let run = self
            .mutate(id, |run| {
                if run.status.is_active() {
                    return Err(Error::Conflict(format!(
                        "training run {id} is {}; its config can be edited once training has finished",
                        run.status
                    )));
                }
                let (next, fields) = patch.apply_to(&run.config)?;
                run.config = next;
                run.deploy_enabled = run.config.deployment_config.enabled;
                changed = fields;
                Ok(())
            })
            .await?;
        if changed.contains(&"schedule_config") {
            crate::schedules::apply_run_schedule_config(
                &self.store,
                &self.clock,
                self.schedule_trigger.as_ref(),
                &run,
            )
            .await?;
        }
        Ok((
            RunConfigView {
                id: run.id,
                name: run.name,
                config: run.config,
            },
            changed,
        ))
    }

    /// Marks a pending or scheduled run as handed to an executor.
    pub async fn mark_submitting(&self, id: RunId) -> Result<TrainingRun> {
        let now = self.clock.now();
        self.mutate(id, |run| {
            run.transition(RunEvent::Submit, now)?;
            run.update_stages(|s| s.start(StageName::Compile, now));
            Ok(())
        })
        .await
    }

    /// Applies one pipeline callback (webhook or runner progress) to a run.
    pub async fn handle_event(&self, id: RunId, event: &PipelineEvent) -> Result<TrainingRun> {
        let now = self.clock.now();
        if let PipelineEvent::EpochCompleted { epoch, metrics } = event {
            let run = self.store.get_run(id).await?;
            require_active(&run, "epoch-complete")?;
            let row = EpochMetrics::from_values(*epoch, metrics.clone());
            self.store.record_epochs(id, &[row], now).await?;
            return Ok(run);
        }
        // The full per-epoch history is stored before the completion that carries it: a process
        // killed between the two writes leaves the run active, and the completion (replayed by
        // whoever tracks the run next) writes the same rows again. Stored after it, a kill there
        // would lose the history for good.
        if let PipelineEvent::Completed {
            training_metrics, ..
        } = event
        {
            let run = self.store.get_run(id).await?;
            require_active(&run, "stage report")?;
            let history = epoch_history(training_metrics)?;
            if !history.is_empty() {
                self.store.record_epochs(id, &history, now).await?;
            }
        }
        let registers = self.lifecycle.as_ref().is_some_and(Lifecycle::can_register);
        let pricing = self.pricing.as_deref();
        let base = self.artifact_base.as_deref();
        let run = self
            .mutate(id, |run| {
                match event {
                    PipelineEvent::Submitted { job_name, job_id } => {
                        if run.status == RunStatus::Running {
                            return Err(Error::InvalidTransition(
                                trainyard_core::InvalidTransition {
                                    from: run.status,
                                    event: RunEvent::Submitted,
                                },
                            ));
                        }
                        ensure_running(run, now)?;
                        if job_name.is_some() {
                            run.vertex_pipeline_job_name.clone_from(job_name);
                        }
                        if job_id.is_some() {
                            run.vertex_pipeline_job_id.clone_from(job_id);
                        }
                        run.update_stages(|s| s.complete(StageName::Compile, now));
                    }
                    PipelineEvent::StageStarted { stage } => {
                        ensure_running(run, now)?;
                        run.update_stages(|s| s.start(*stage, now));
                    }
                    PipelineEvent::StageCompleted { stage } => {
                        ensure_running(run, now)?;
                        run.update_stages(|s| s.complete(*stage, now));
                    }
                    PipelineEvent::Failed { error, stage } => {
                        run.transition(RunEvent::Fail, now)?;
                        run.error_message = Some(error.clone());
                        run.update_stages(|s| match stage {
                            Some(st) => s.fail(*st, now, error.clone()),
                            None => s.fail_current(now, error.clone()),
                        });
                        run.cost_usd = run_cost(pricing, run);
                    }
                    PipelineEvent::Resubmitted {
                        job_name,
                        job_id,
                        gpu_config,
                        reason,
                    } => {
                        apply_resubmission(run, job_name, job_id, gpu_config.as_ref(), reason, now)?
                    }
                    PipelineEvent::Completed {
                        training_metrics,
                        blessed,
                        artifacts,
                    } => {
                        ensure_running(run, now)?;
                        let mut results = extract_results(run.model_type(), training_metrics)?;
                        if let Some(id) = extract_mlflow_run_id(training_metrics)? {
                            run.mlflow_run_id = Some(id);
                        }
                        results.is_blessed = Some(*blessed);
                        run.results.merge_from(&results);
                        run.training_history_json = Some(training_metrics.clone());
                        run.artifacts.extend(
                            artifacts
                                .iter()
                                .map(|(k, v)| (k.clone(), resolve_artifact(base, k, v))),
                        );
                        run.update_stages(|s| {
                            s.complete(StageName::Evaluate, now);
                            if *blessed {
                                // With a registry, registration follows and completes the
                                // stage (the Pusher may have marked it already); without
                                // one there is nothing to register into.
                                if !registers {
                                    s.skip(StageName::Register);
                                }
                            } else {
                                // The Pusher does not push an unblessed model.
                                s.skip(StageName::Register);
                                s.skip(StageName::Deploy);
                            }
                        });
                        run.transition(RunEvent::Finish { blessed: *blessed }, now)?;
                        run.cost_usd = run_cost(pricing, run);
                    }
                    PipelineEvent::EpochCompleted { .. } => unreachable!("handled above"),
                }
                Ok(())
            })
            .await?;
        if !run.status.is_active() {
            tracing::info!(run_id = id, status = %run.status, "training finished");
        }
        if matches!(event, PipelineEvent::Failed { .. }) {
            self.end_tracking(&run).await;
        }
        if let (true, Some(lifecycle)) = (
            matches!(event, PipelineEvent::Completed { blessed: true, .. }),
            &self.lifecycle,
        ) {
            // Registration and auto-deploy; a failure is kept on the run's stages.
            return lifecycle.advance(id).await;
        }
        Ok(run)
    }
}

/// A pipeline that reports in was submitted and runs, whoever submitted it: a run still
/// pending, scheduled or submitting moves to `running` through the state machine.
fn ensure_running(run: &mut TrainingRun, now: chrono::DateTime<chrono::Utc>) -> Result<()> {
    if matches!(run.status, RunStatus::Pending | RunStatus::Scheduled) {
        run.transition(RunEvent::Submit, now)?;
    }
    if run.status == RunStatus::Submitting {
        run.transition(RunEvent::Submitted, now)?;
    }
    require_active(run, "stage report")?;
    if run.status != RunStatus::Running {
        return Err(Error::InvalidTransition(
            trainyard_core::InvalidTransition {
                from: run.status,
                event: RunEvent::Submitted,
            },
        ));
    }
    Ok(())
}

/// A pipeline resubmitted as a new job (GPU fallback after a created job failed for quota): the
/// run follows the new job, runs on its GPU config and records the attempt. Repeating the
/// event for the job the run already follows changes nothing.
fn apply_resubmission(
    run: &mut TrainingRun,
    job_name: &str,
    job_id: &str,
    gpu_config: Option<&trainyard_core::config::GpuConfig>,
    reason: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    use trainyard_core::config::{record_resubmission, GPU_ATTEMPTS_ARTIFACT};
    ensure_running(run, now)?;
    if run.vertex_pipeline_job_id.as_deref() == Some(job_id) {
        return Ok(());
    }
    tracing::info!(run_id = run.id, job = %job_name, %reason, "pipeline resubmitted");
    run.vertex_pipeline_job_name = Some(job_name.to_string());
    run.vertex_pipeline_job_id = Some(job_id.to_string());
    if let Some(gpu) = gpu_config {
        let attempts = record_resubmission(
            run.artifacts.get(GPU_ATTEMPTS_ARTIFACT).map(String::as_str),
            &run.config.gpu_config,
            gpu,
            reason,
        );
        let json = serde_json::to_string(&attempts)
            .map_err(|e| Error::Backend(format!("gpu attempts: {e}")))?;
        run.artifacts.insert(GPU_ATTEMPTS_ARTIFACT.into(), json);
        run.config.gpu_config = gpu.clone();
    }
    Ok(())
}

/// What a finished run cost: the platform's estimate, 0 on the local backend, unknown (with a
/// warning) when the price table lacks its machine or accelerator.
fn run_cost(
    pricing: Option<&trainyard_core::pricing::CostModel>,
    run: &TrainingRun,
) -> Option<f64> {
    let Some(model) = pricing else {
        return Some(0.0);
    };
    match model.estimate(run) {
        Ok(cost) => Some(cost),
        Err(e) => {
            tracing::warn!(run_id = run.id, error = %e, "no cost estimate");
            None
        }
    }
}

fn require_active(run: &TrainingRun, what: &str) -> Result<()> {
    if run.status.is_active() {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "training run {} is {}; {what} ignored",
            run.id, run.status
        )))
    }
}
