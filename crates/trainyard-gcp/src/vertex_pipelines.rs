//! Vertex AI Pipelines as a [`PipelineExecutor`]: submits the compiled PipelineJob under an id
//! derived from the run, maps PIPELINE_STATE_* and jobDetail.taskDetails[] to pipeline events,
//! and on success reads training_metrics.json and the Evaluator's verdict.
//!
//! A GPU run whose create is refused for quota or capacity walks the GPU fallback ladder
//! (`gcp.gpu_fallback`, see [`crate::gpu_fallback`]): the same job with the Trainer moved onto
//! the next rung, until one is accepted, a refusal is of another kind, or the rungs run out.
//! Every attempt is kept for [`PipelineExecutor::take_gpu_fallback`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use trainyard_core::config::{
    GpuAttempt, GpuAttemptOutcome, GpuConfig, GpuFallbackRecord, GpuLadder,
};
use trainyard_core::ports::{
    PipelineEvent, PipelineExecutor, PipelineHandle, PipelineSubmission, TRAINING_METRICS_FILE,
    VERTEX_PIPELINE_JOB_FILE,
};
use trainyard_core::run::RunId;
use trainyard_core::stages::StageName;
use trainyard_core::ValidationError;

use crate::config::GcpConfig;
use crate::error::{GcpError, GcpResult};
use crate::gcs::{parse_gs_uri, GcsClient};
use crate::gpu_fallback::{self, Refusal};
use crate::http::{from_value, GcpHttp};
use crate::names;

/// Label that ties a PipelineJob to the trainyard run that submitted it.
pub const RUN_ID_LABEL: &str = "trainyard_run_id";
/// Label numbering the jobs of one run: absent on the first, `2`, `3`, ... on the jobs the GPU
/// fallback resubmits after a created job failed for quota or capacity.
pub const JOB_ATTEMPT_LABEL: &str = "trainyard_job_attempt";

/// The id of a run's `attempt`-th job: the first job's id, then `<id>-a<attempt>`, cut to
/// Vertex's 128 characters. Derived from the first id alone, so every process names the same
/// job and a repeated resubmit answers ALREADY_EXISTS instead of starting a twin.
pub fn attempt_job_id(first_job_id: &str, attempt: u32) -> String {
    if attempt <= 1 {
        return first_job_id.to_string();
    }
    let suffix = format!("-a{attempt}");
    let mut base = first_job_id.to_string();
    base.truncate(128 - suffix.len());
    format!("{}{suffix}", base.trim_end_matches('-'))
}

/// Output-only fields of a PipelineJob, which a create refuses or ignores.
const OUTPUT_ONLY: [&str; 12] = [
    "name",
    "state",
    "createTime",
    "startTime",
    "endTime",
    "updateTime",
    "jobDetail",
    "error",
    "templateMetadata",
    "scheduleName",
    "satisfiesPzs",
    "satisfiesPzi",
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PipelineJob {
    pub name: String,
    pub display_name: String,
    pub state: String,
    pub labels: BTreeMap<String, String>,
    pub error: Option<crate::lro::RpcStatus>,
    pub job_detail: Option<JobDetail>,
    pub runtime_config: Option<RuntimeConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuntimeConfig {
    pub gcs_output_directory: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobDetail {
    pub task_details: Vec<TaskDetail>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TaskDetail {
    pub task_id: String,
    pub task_name: String,
    pub state: String,
    pub error: Option<crate::lro::RpcStatus>,
    pub outputs: BTreeMap<String, ArtifactList>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArtifactList {
    pub artifacts: Vec<Artifact>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Artifact {
    pub uri: String,
    pub metadata: Map<String, Value>,
}

impl TaskDetail {
    fn first_uri(&self, output: &str) -> Option<&Artifact> {
        self.outputs
            .get(output)?
            .artifacts
            .iter()
            .find(|a| !a.uri.is_empty())
    }
}

/// The stage of a Vertex task: TFX component ids as `StageName::from_component` knows them,
/// also when the compiler lowercased them (`trainer`, `csvexamplegen`).
pub fn task_stage(task_name: &str) -> Option<StageName> {
    if let Some(s) = StageName::from_component(task_name) {
        return Some(s);
    }
    const KNOWN: [&str; 7] = [
        "StatisticsGen",
        "SchemaGen",
        "ImportSchemaGen",
        "Transform",
        "Trainer",
        "Evaluator",
        "Pusher",
    ];
    let lower = task_name.to_ascii_lowercase();
    if lower.ends_with("examplegen") {
        return Some(StageName::Examples);
    }
    KNOWN
        .iter()
        .find(|k| k.to_ascii_lowercase() == lower)
        .and_then(|k| StageName::from_component(k))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reported {
    Started,
    Completed,
}

#[derive(Debug, Default)]
struct PollMemory {
    stages: BTreeMap<StageName, Reported>,
    finished: bool,
}

/// Vertex AI Pipelines executor.
#[derive(Debug)]
pub struct VertexPipelineExecutor {
    http: GcpHttp,
    base_url: String,
    parent: String,
    service_account: Option<String>,
    gcs: GcsClient,
    memory: Mutex<HashMap<String, PollMemory>>,
    /// Orchestration region: where a Trainer without a training_region runs.
    region: String,
    /// Trainer region of GPU runs that name none, when `region` has no GPU training
    /// (`[gcp] gpu_region`).
    gpu_region: Option<String>,
    gpu_ladder: GpuLadder,
    /// Ladder walks of submissions, until the training service takes them.
    gpu_records: Mutex<HashMap<RunId, GpuFallbackRecord>>,
}

impl VertexPipelineExecutor {
    pub fn new(http: GcpHttp, config: &GcpConfig) -> Self {
        VertexPipelineExecutor {
            gcs: GcsClient::from_config(http.clone(), config),
            http,
            base_url: config.vertex_base_url(),
            parent: config.parent(),
            service_account: config.service_account.clone(),
            memory: Mutex::new(HashMap::new()),
            region: config.region.clone(),
            gpu_region: config.gpu_training_region().map(str::to_string),
            gpu_ladder: config.gpu_fallback.clone(),
            gpu_records: Mutex::new(HashMap::new()),
        }
    }

    /// Uses this GPU fallback ladder instead of the config's.
    pub fn with_gpu_ladder(mut self, ladder: GpuLadder) -> Self {
        self.gpu_ladder = ladder;
        self
    }

    /// Uses this GCS client to read results (e.g. one with a small page size).
    pub fn with_gcs(mut self, gcs: GcsClient) -> Self {
        self.gcs = gcs;
        self
    }

    fn job_url(&self, name: &str) -> String {
        format!("{}/v1/{name}", self.base_url)
    }

    /// The body actually posted: the compiled PipelineJob plus what only the executor knows
    /// (labels tying it to the run, the output root, the service account).
    pub fn prepare_body(&self, submission: &PipelineSubmission) -> Result<Value, ValidationError> {
        let raw = submission
            .files
            .get(VERTEX_PIPELINE_JOB_FILE)
            .ok_or_else(|| {
                ValidationError::field(
                    "files",
                    format!("the submission has no {VERTEX_PIPELINE_JOB_FILE}"),
                )
            })?;
        let mut body: Value = serde_json::from_str(raw).map_err(|e| {
            ValidationError::field(VERTEX_PIPELINE_JOB_FILE, format!("not JSON: {e}"))
        })?;
        let obj = body.as_object_mut().ok_or_else(|| {
            ValidationError::field(VERTEX_PIPELINE_JOB_FILE, "must be a JSON object")
        })?;
        if !obj.contains_key("pipelineSpec") && !obj.contains_key("templateUri") {
            return Err(ValidationError::field(
                VERTEX_PIPELINE_JOB_FILE,
                "has neither pipelineSpec nor templateUri",
            ));
        }
        for k in OUTPUT_ONLY {
            obj.remove(k);
        }
        let run = &submission.run;
        if obj
            .get("displayName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            let mut name = format!("{}-training-{}", names::slug(&run.ml_model), run.run_number);
            name.truncate(128);
            obj.insert("displayName".into(), name.into());
        }
        let mut labels: BTreeMap<String, String> = obj
            .get("labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let run_id = run.id.to_string();
        let run_number = run.run_number.to_string();
        let ours = names::sanitize_labels([
            (RUN_ID_LABEL, run_id.as_str()),
            ("trainyard_run_number", run_number.as_str()),
            ("trainyard_ml_model", run.ml_model.as_str()),
            ("model_type", run.model_type().as_str()),
        ]);
        labels.extend(ours);
        obj.insert("labels".into(), json!(labels));
        if let Some(sa) = &self.service_account {
            obj.entry("serviceAccount")
                .or_insert_with(|| sa.clone().into());
        }
        let rc = obj
            .entry("runtimeConfig")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| {
                ValidationError::field(VERTEX_PIPELINE_JOB_FILE, "runtimeConfig must be an object")
            })?;
        if rc
            .get("gcsOutputDirectory")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            if !submission.pipeline_root.starts_with("gs://") {
                return Err(ValidationError::field(
                    "pipeline_root",
                    format!(
                        "Vertex AI needs a gs:// pipeline root, got {:?}",
                        submission.pipeline_root
                    ),
                ));
            }
            rc.insert(
                "gcsOutputDirectory".into(),
                submission.pipeline_root.clone().into(),
            );
        }
        Ok(body)
    }

    /// The job as Vertex returns it (JSON, with its pipelineSpec) and typed.
    async fn get_job_raw(&self, name: &str) -> GcpResult<(Value, PipelineJob)> {
        let v = self.http.get_json(&self.job_url(name), &[]).await?;
        let job = from_value("aiplatform.pipelineJobs.get", v.clone())?;
        Ok((v, job))
    }

    /// Submits the job; a GPU Trainer walks the fallback ladder. The typed form of
    /// [`PipelineExecutor::submit`].
    pub async fn submit_job(
        &self,
        submission: &PipelineSubmission,
    ) -> Result<PipelineHandle, SubmitError> {
        let invalid = |e: ValidationError| SubmitError::Other(e.into());
        let body = self.prepare_body(submission).map_err(invalid)?;
        let gpu = &submission
            .run
            .config
            .gpu_config
            .split_to(self.gpu_region.as_deref());
        if !gpu.gpu_enabled
            || gpu_fallback::trainer_machine_spec(&body)
                .map_err(invalid)?
                .is_none()
        {
            return self.create(submission, body).await;
        }
        let plan = self.gpu_plan(gpu).map_err(invalid)?;
        let mut attempts = Vec::with_capacity(plan.len());
        let mut outcome = Err(None);
        for (i, (config, region)) in plan.iter().enumerate() {
            let mut body = body.clone();
            if i > 0 {
                gpu_fallback::retarget(&mut body, config, region).map_err(invalid)?;
            }
            match self.create(submission, body).await {
                Ok(handle) => {
                    attempts.push(gpu_fallback::attempt(
                        config,
                        region,
                        GpuAttemptOutcome::Accepted,
                        None,
                    ));
                    outcome = Ok((handle, config.clone()));
                    break;
                }
                Err(e) => {
                    let refusal = match &e {
                        SubmitError::Gcp(g) => gpu_fallback::classify_error(g),
                        SubmitError::Other(_) => None,
                    };
                    let kind = refusal.map_or(GpuAttemptOutcome::Failed, Into::into);
                    attempts.push(gpu_fallback::attempt(
                        config,
                        region,
                        kind,
                        Some(e.to_string()),
                    ));
                    tracing::info!(run_id = submission.run.id, rung = i + 1, ?kind, error = %e, "vertex pipeline job: GPU config refused");
                    if refusal.is_none() {
                        outcome = Err(Some(e));
                        break;
                    }
                }
            }
        }
        let accepted = outcome.as_ref().ok().map(|(_, c)| c.clone());
        self.gpu_records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                submission.run.id,
                GpuFallbackRecord {
                    accepted,
                    attempts: attempts.clone(),
                },
            );
        match outcome {
            Ok((handle, _)) => Ok(handle),
            Err(Some(e)) => Err(e),
            Err(None) => Err(GcpError::GpuFallbackExhausted { attempts }.into()),
        }
    }

    /// The GPU configs a run tries and the Trainer region of each, all checked against the GPU
    /// and region rules before anything is submitted.
    fn gpu_plan(&self, gpu: &GpuConfig) -> Result<Vec<(GpuConfig, String)>, ValidationError> {
        self.gpu_ladder
            .plan(gpu)
            .into_iter()
            .enumerate()
            .map(|(i, config)| {
                let checked = config
                    .validate()
                    .and_then(|()| config.trainer_region(&self.region).map(str::to_string));
                match checked {
                    Ok(region) => Ok((config, region)),
                    Err(e) => Err(ValidationError::field(
                        e.field,
                        format!(
                            "GPU fallback attempt {} ({}x {} on {}): {}",
                            i + 1,
                            config.gpu_count,
                            config.gpu_type.vertex_name(),
                            config.machine_type,
                            e.reason
                        ),
                    )),
                }
            })
            .collect()
    }

    /// One pipelineJobs.create. Refusals for GPU quota or capacity come back at once, without
    /// the client's retries: they free when other jobs end, not within seconds.
    async fn create(
        &self,
        submission: &PipelineSubmission,
        body: Value,
    ) -> Result<PipelineHandle, SubmitError> {
        let job_id = names::pipeline_job_id(&submission.run);
        Ok(self.create_job(submission.run.id, &job_id, body).await?.0)
    }

    /// One pipelineJobs.create under `job_id` for run `run_id`. A job that already exists under
    /// that id (a retried create) is this run's and is returned with its JSON.
    async fn create_job(
        &self,
        run_id: RunId,
        job_id: &str,
        body: Value,
    ) -> Result<(PipelineHandle, Option<Value>), SubmitError> {
        let job_id = job_id.to_string();
        let url = format!("{}/v1/{}/pipelineJobs", self.base_url, self.parent);
        let name = format!("{}/pipelineJobs/{job_id}", self.parent);
        match self
            .http
            .post_json_with(
                &url,
                &[("pipelineJobId", job_id.as_str())],
                body,
                &gpu_fallback::retry_is_pointless,
            )
            .await
        {
            Ok(v) => {
                let job: PipelineJob = from_value("aiplatform.pipelineJobs.create", v)?;
                let job_name = if job.name.is_empty() { name } else { job.name };
                tracing::info!(job = %job_name, run_id, "vertex pipeline job created");
                Ok((PipelineHandle { job_name, job_id }, None))
            }
            Err(e) if e.is_already_exists() => {
                // A retried submit: the job exists; make sure it is this run's.
                let (raw, job) = self.get_job_raw(&name).await?;
                let owner = job.labels.get(RUN_ID_LABEL).cloned().unwrap_or_default();
                if owner != run_id.to_string() {
                    return Err(SubmitError::Other(trainyard_core::Error::Conflict(
                        format!(
                            "pipeline job {name} exists and belongs to run {owner:?}, not {run_id}"
                        ),
                    )));
                }
                tracing::info!(job = %name, "vertex pipeline job already submitted");
                Ok((
                    PipelineHandle {
                        job_name: if job.name.is_empty() { name } else { job.name },
                        job_id,
                    },
                    Some(raw),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Events for a job's current state, given what was reported before.
    fn stage_events(job: &PipelineJob, memory: &mut PollMemory) -> Vec<PipelineEvent> {
        let mut by_stage: BTreeMap<StageName, Vec<&TaskDetail>> = BTreeMap::new();
        for t in job.job_detail.iter().flat_map(|d| &d.task_details) {
            if let Some(stage) = task_stage(&t.task_name) {
                by_stage.entry(stage).or_default().push(t);
            }
        }
        let mut events = Vec::new();
        for (stage, tasks) in by_stage {
            let done = tasks
                .iter()
                .all(|t| matches!(t.state.as_str(), "SUCCEEDED" | "SKIPPED"));
            let started = tasks.iter().any(|t| {
                matches!(
                    t.state.as_str(),
                    "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCEL_PENDING" | "CANCELLING"
                )
            });
            let previous = memory.stages.get(&stage).copied();
            if done && tasks.iter().any(|t| t.state == "SUCCEEDED") {
                if previous != Some(Reported::Completed) {
                    events.push(PipelineEvent::StageCompleted { stage });
                    memory.stages.insert(stage, Reported::Completed);
                }
            } else if started && previous.is_none() {
                events.push(PipelineEvent::StageStarted { stage });
                memory.stages.insert(stage, Reported::Started);
            }
        }
        events
    }

    fn failed_task(job: &PipelineJob) -> Option<&TaskDetail> {
        job.job_detail
            .iter()
            .flat_map(|d| &d.task_details)
            .find(|t| t.state == "FAILED" && task_stage(&t.task_name).is_some())
    }

    fn running_stage(job: &PipelineJob) -> Option<StageName> {
        job.job_detail
            .iter()
            .flat_map(|d| &d.task_details)
            .filter(|t| t.state == "RUNNING")
            .find_map(|t| task_stage(&t.task_name))
    }

    fn task(job: &PipelineJob, stage: StageName) -> Option<&TaskDetail> {
        job.job_detail
            .iter()
            .flat_map(|d| &d.task_details)
            .find(|t| task_stage(&t.task_name) == Some(stage))
    }

    /// Every output artifact of the job: output key -> URI (task-qualified on collisions),
    /// plus the Pusher's destination and the job's own names.
    pub fn artifacts(job: &PipelineJob) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for t in job.job_detail.iter().flat_map(|d| &d.task_details) {
            for (key, list) in &t.outputs {
                let Some(a) = list.artifacts.iter().find(|a| !a.uri.is_empty()) else {
                    continue;
                };
                let k = if out.contains_key(key) {
                    format!("{}.{key}", t.task_name)
                } else {
                    key.clone()
                };
                out.insert(k, a.uri.clone());
                if let Some(dest) = a.metadata.get("pushed_destination").and_then(Value::as_str) {
                    out.insert("pushed_destination".into(), dest.to_string());
                }
            }
        }
        out.insert("pipeline_job".into(), job.name.clone());
        if let Some(rc) = &job.runtime_config {
            if !rc.gcs_output_directory.is_empty() {
                out.insert("pipeline_root".into(), rc.gcs_output_directory.clone());
            }
        }
        out
    }

    /// The Evaluator's verdict: the blessing artifact's `blessed` property, else a BLESSED
    /// marker file next to it. A pipeline without an Evaluator blesses everything it pushes.
    async fn blessed(&self, job: &PipelineJob) -> GcpResult<bool> {
        let Some(eval) = Self::task(job, StageName::Evaluate) else {
            return Ok(true);
        };
        let Some(blessing) = eval.first_uri("blessing") else {
            return Err(GcpError::decode(
                "aiplatform.pipelineJobs.get",
                "the Evaluator task has no blessing output",
            ));
        };
        match blessing.metadata.get("blessed") {
            Some(Value::Number(n)) => return Ok(n.as_f64() == Some(1.0)),
            Some(Value::Bool(b)) => return Ok(*b),
            _ => {}
        }
        let (bucket, object) = parse_gs_uri(&blessing.uri).ok_or_else(|| {
            GcpError::decode(
                "blessing artifact",
                format!("not a gs:// URI: {}", blessing.uri),
            )
        })?;
        let marker = format!("{}/BLESSED", object.trim_end_matches('/'));
        Ok(self.gcs.stat(bucket, &marker).await?.is_some())
    }

    /// training_metrics.json: next to the Trainer's model_run output, else the newest one this
    /// job wrote under its output directory.
    async fn training_metrics(&self, job: &PipelineJob, job_id: &str) -> GcpResult<Option<Value>> {
        let mut candidates = Vec::new();
        if let Some(a) = Self::task(job, StageName::Train).and_then(|t| t.first_uri("model_run")) {
            if let Some((b, o)) = parse_gs_uri(&a.uri) {
                candidates.push((
                    b.to_string(),
                    format!("{}/{TRAINING_METRICS_FILE}", o.trim_end_matches('/')),
                ));
            }
        }
        if candidates.is_empty() {
            if let Some(root) = job
                .runtime_config
                .as_ref()
                .map(|r| r.gcs_output_directory.as_str())
            {
                if let Some((b, o)) = parse_gs_uri(root) {
                    let prefix = if o.is_empty() {
                        String::new()
                    } else {
                        format!("{}/", o.trim_end_matches('/'))
                    };
                    let listing = self.gcs.list_all(b, &prefix, None).await?;
                    let suffix = format!("/{TRAINING_METRICS_FILE}");
                    let marker = format!("/{job_id}/");
                    if let Some(found) = listing
                        .objects
                        .iter()
                        .filter(|m| m.name.ends_with(&suffix) && m.name.contains(&marker))
                        .max_by(|a, b| a.updated.cmp(&b.updated).then(a.name.cmp(&b.name)))
                    {
                        candidates.push((b.to_string(), found.name.clone()));
                    }
                }
            }
        }
        for (bucket, object) in candidates {
            match self.gcs.read_object(&bucket, &object).await {
                Ok(bytes) => {
                    let v: Value = serde_json::from_slice(&bytes)
                        .map_err(|e| GcpError::decode(format!("gs://{bucket}/{object}"), e))?;
                    return Ok(Some(v));
                }
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    async fn poll_inner(&self, handle: &PipelineHandle) -> GcpResult<Vec<PipelineEvent>> {
        if self.memory_of(&handle.job_name, |m| m.finished) {
            return Ok(Vec::new());
        }
        let (raw, job) = self.get_job_raw(&handle.job_name).await?;
        let mut events = self.memory_of(&handle.job_name, |m| Self::stage_events(&job, m));
        let refusal = (job.state == "PIPELINE_STATE_FAILED")
            .then(|| Self::gpu_refusal(&raw, &job))
            .flatten();
        if let Some((refusal, message)) = refusal {
            let next = self.resubmit(&raw, &job, refusal, &message).await?;
            if matches!(next, PipelineEvent::Resubmitted { .. }) {
                // The run moves to the new job. This one is not marked finished: a caller that
                // polls it again (having lost the event) gets the same resubmission.
                events.push(next);
                return Ok(events);
            }
            return Ok(self.finish(&handle.job_name, events, next));
        }
        let terminal = match job.state.as_str() {
            "PIPELINE_STATE_SUCCEEDED" => {
                let Some(training_metrics) = self.training_metrics(&job, &handle.job_id).await?
                else {
                    return Ok(self.finish(
                        &handle.job_name,
                        events,
                        PipelineEvent::Failed {
                            error: format!(
                                "pipeline {} succeeded but wrote no {TRAINING_METRICS_FILE}",
                                handle.job_name
                            ),
                            stage: Some(StageName::Train),
                        },
                    ));
                };
                let blessed = self.blessed(&job).await?;
                Some(PipelineEvent::Completed {
                    training_metrics,
                    blessed,
                    artifacts: Self::artifacts(&job),
                })
            }
            "PIPELINE_STATE_FAILED" => {
                let task = Self::failed_task(&job);
                let error = job
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .filter(|m| !m.is_empty())
                    .or_else(|| {
                        task.and_then(|t| t.error.as_ref())
                            .map(|e| e.message.clone())
                    })
                    .unwrap_or_else(|| "the pipeline job failed".to_string());
                Some(PipelineEvent::Failed {
                    error,
                    stage: task.and_then(|t| task_stage(&t.task_name)),
                })
            }
            "PIPELINE_STATE_CANCELLED" => Some(PipelineEvent::Failed {
                error: "the pipeline job was cancelled".into(),
                stage: Self::running_stage(&job),
            }),
            _ => None,
        };
        Ok(match terminal {
            Some(t) => {
                events.push(t);
                self.finish(&handle.job_name, events, None::<PipelineEvent>)
            }
            None => events,
        })
    }

    /// Why a failed GPU job's Trainer was refused, when it was for quota or capacity (its custom
    /// job could not get the accelerators): the refusal and Vertex's message.
    fn gpu_refusal(raw: &Value, job: &PipelineJob) -> Option<(Refusal, String)> {
        let task = Self::failed_task(job)?;
        if task_stage(&task.task_name) != Some(StageName::Train) {
            return None;
        }
        gpu_fallback::trainer_gpu(raw)?;
        [task.error.as_ref(), job.error.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|e| {
                gpu_fallback::classify_status(e.code, &e.message).map(|r| (r, e.message.clone()))
            })
    }

    /// Resubmits a job whose Trainer was refused after creation on the next GPU config of the
    /// ladder, as the run's next job ([`attempt_job_id`]): the failed job's own pipelineSpec and
    /// runtimeConfig (read back from Vertex, so any process can do it) with the Trainer moved.
    /// Creates refused for quota or capacity step on like a submission's walk. Returns the
    /// `Resubmitted` event, or `Failed` when the ladder is spent or a create is refused
    /// otherwise; transient errors are returned for the next poll to repeat.
    async fn resubmit(
        &self,
        raw: &Value,
        job: &PipelineJob,
        refusal: Refusal,
        message: &str,
    ) -> GcpResult<PipelineEvent> {
        let kind = outcome_name(refusal.into());
        let reason = format!("{kind}: {message}");
        let failed = |error: String| PipelineEvent::Failed {
            error,
            stage: Some(StageName::Train),
        };
        let Some(current) = gpu_fallback::trainer_gpu(raw) else {
            return Ok(failed(reason));
        };
        let run_id: RunId = match job.labels.get(RUN_ID_LABEL).and_then(|v| v.parse().ok()) {
            Some(id) => id,
            None => {
                return Ok(failed(format!(
                    "{reason} (the job has no {RUN_ID_LABEL} label to resubmit it under)"
                )))
            }
        };
        let attempt: u32 = job
            .labels
            .get(JOB_ATTEMPT_LABEL)
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let job_id = job.name.rsplit('/').next().unwrap_or_default().to_string();
        let first_id = match job_id.strip_suffix(&format!("-a{attempt}")) {
            Some(base) if attempt > 1 => base.to_string(),
            _ => job_id.clone(),
        };
        let next_id = attempt_job_id(&first_id, attempt + 1);
        let mut body = raw.clone();
        if let Some(obj) = body.as_object_mut() {
            for k in OUTPUT_ONLY {
                obj.remove(k);
            }
            let labels = obj.entry("labels").or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(JOB_ATTEMPT_LABEL.into(), (attempt + 1).to_string().into());
            }
        }
        let current_region = current.training_region.clone().unwrap_or_default();
        let mut attempts = self.earlier_attempts(&first_id, attempt).await;
        attempts.push(gpu_fallback::attempt(
            &current,
            &current_region,
            refusal.into(),
            Some(format!("after creation: {message}")),
        ));
        let plan = match self.gpu_plan(&current) {
            Ok(plan) => plan,
            Err(e) => return Ok(failed(format!("{reason}; the GPU fallback ladder: {e}"))),
        };
        let mut refused = Vec::new();
        for (config, region) in plan.iter().skip(1) {
            let mut next = body.clone();
            if let Err(e) = gpu_fallback::retarget(&mut next, config, region) {
                return Ok(failed(format!("{reason}; cannot move the Trainer: {e}")));
            }
            match self.create_job(run_id, &next_id, next).await {
                Ok((handle, existing)) => {
                    // A job already under this id (an earlier poll's resubmit) runs on the
                    // config it was created with.
                    let gpu = existing
                        .as_ref()
                        .and_then(gpu_fallback::trainer_gpu)
                        .unwrap_or_else(|| GpuConfig {
                            training_region: Some(region.clone()),
                            ..config.clone()
                        });
                    let mut reason = reason.clone();
                    for r in &refused {
                        reason.push_str(&format!("; then refused at create: {r}"));
                    }
                    tracing::info!(run_id, job = %handle.job_name, %reason, "vertex pipeline job resubmitted on the next GPU config");
                    return Ok(PipelineEvent::Resubmitted {
                        job_name: handle.job_name,
                        job_id: handle.job_id,
                        gpu_config: Some(gpu),
                        reason,
                    });
                }
                Err(SubmitError::Gcp(e)) => match gpu_fallback::classify_error(&e) {
                    Some(r) => {
                        refused.push(format!(
                            "{}x {} on {}: {e}",
                            config.gpu_count,
                            config.gpu_type.vertex_name(),
                            config.machine_type
                        ));
                        attempts.push(gpu_fallback::attempt(
                            config,
                            region,
                            r.into(),
                            Some(e.to_string()),
                        ));
                    }
                    None if is_transient(&e) => return Err(e),
                    None => return Ok(failed(format!("{reason}; resubmitting failed: {e}"))),
                },
                Err(SubmitError::Other(e)) => {
                    return Ok(failed(format!("{reason}; resubmitting failed: {e}")))
                }
            }
        }
        Ok(failed(
            GcpError::GpuFallbackExhausted { attempts }.to_string(),
        ))
    }

    /// The GPU configs of a run's jobs before the `attempt`-th, read back from Vertex (each
    /// failed for quota or capacity after creation, or it would not have been resubmitted).
    async fn earlier_attempts(&self, first_id: &str, attempt: u32) -> Vec<GpuAttempt> {
        let mut out = Vec::new();
        for k in 1..attempt {
            let name = format!(
                "{}/pipelineJobs/{}",
                self.parent,
                attempt_job_id(first_id, k)
            );
            let Ok((raw, job)) = self.get_job_raw(&name).await else {
                continue;
            };
            let Some(gpu) = gpu_fallback::trainer_gpu(&raw) else {
                continue;
            };
            let (outcome, error) = match Self::gpu_refusal(&raw, &job) {
                Some((r, m)) => (r.into(), Some(format!("after creation: {m}"))),
                None => (GpuAttemptOutcome::Failed, None),
            };
            let region = gpu.training_region.clone().unwrap_or_default();
            out.push(gpu_fallback::attempt(&gpu, &region, outcome, error));
        }
        out
    }

    fn memory_of<T>(&self, job: &str, f: impl FnOnce(&mut PollMemory) -> T) -> T {
        let mut all = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        f(all.entry(job.to_string()).or_default())
    }

    fn finish(
        &self,
        job: &str,
        mut events: Vec<PipelineEvent>,
        last: impl Into<Option<PipelineEvent>>,
    ) -> Vec<PipelineEvent> {
        if let Some(e) = last.into() {
            events.push(e);
        }
        self.memory_of(job, |m| m.finished = true);
        events
    }
}

#[async_trait]
impl PipelineExecutor for VertexPipelineExecutor {
    async fn submit(
        &self,
        submission: &PipelineSubmission,
    ) -> trainyard_core::Result<PipelineHandle> {
        Ok(self.submit_job(submission).await?)
    }

    async fn poll(&self, handle: &PipelineHandle) -> trainyard_core::Result<Vec<PipelineEvent>> {
        Ok(self.poll_inner(handle).await?)
    }

    async fn cancel(&self, handle: &PipelineHandle) -> trainyard_core::Result<()> {
        let url = format!("{}:cancel", self.job_url(&handle.job_name));
        self.http.post_json(&url, &[], json!({})).await?;
        Ok(())
    }

    fn take_gpu_fallback(&self, run: RunId) -> Option<GpuFallbackRecord> {
        self.gpu_records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&run)
    }
}

/// `quota`, `capacity`, ...: an outcome as `artifacts["gpu_attempts"]` spells it.
fn outcome_name(outcome: GpuAttemptOutcome) -> String {
    serde_json::to_value(outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Errors the next poll may not meet: no answer, a server error, or retries spent on them.
fn is_transient(e: &GcpError) -> bool {
    match e.root() {
        GcpError::Transport { .. } => true,
        GcpError::Api { http_status, .. } => *http_status >= 500 || *http_status == 429,
        _ => false,
    }
}

/// Why a submission failed: Google's answer (which the ladder classifies; an exhausted ladder is
/// [`GcpError::GpuFallbackExhausted`]), or something else (bad job body, a job of another run).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Gcp(#[from] GcpError),
    #[error(transparent)]
    Other(#[from] trainyard_core::Error),
}

impl From<SubmitError> for trainyard_core::Error {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Gcp(g) => g.into(),
            SubmitError::Other(o) => o,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_map_to_stages() {
        assert_eq!(task_stage("BigQueryExampleGen"), Some(StageName::Examples));
        assert_eq!(task_stage("trainer"), Some(StageName::Train));
        assert_eq!(task_stage("Pusher"), Some(StageName::Register));
        assert_eq!(task_stage("tiny-train"), None);
    }

    fn job(state: &str, tasks: &[(&str, &str)]) -> PipelineJob {
        from_value(
            "t",
            json!({
                "name": "projects/p/locations/r/pipelineJobs/j",
                "state": state,
                "jobDetail": {"taskDetails": tasks.iter().map(|(n, s)| json!({"taskName": n, "state": s})).collect::<Vec<_>>()}
            }),
        )
        .unwrap()
    }

    #[test]
    fn stage_events_are_reported_once() {
        let mut mem = PollMemory::default();
        let j = job(
            "PIPELINE_STATE_RUNNING",
            &[
                ("CsvExampleGen", "SUCCEEDED"),
                ("StatisticsGen", "RUNNING"),
                ("Trainer", "PENDING"),
            ],
        );
        let e = VertexPipelineExecutor::stage_events(&j, &mut mem);
        assert_eq!(
            e,
            vec![
                PipelineEvent::StageCompleted {
                    stage: StageName::Examples
                },
                PipelineEvent::StageStarted {
                    stage: StageName::Stats
                },
            ]
        );
        assert!(VertexPipelineExecutor::stage_events(&j, &mut mem).is_empty());
        let j = job(
            "PIPELINE_STATE_RUNNING",
            &[
                ("CsvExampleGen", "SUCCEEDED"),
                ("StatisticsGen", "SUCCEEDED"),
                ("Trainer", "RUNNING"),
            ],
        );
        let e = VertexPipelineExecutor::stage_events(&j, &mut mem);
        assert_eq!(
            e,
            vec![
                PipelineEvent::StageCompleted {
                    stage: StageName::Stats
                },
                PipelineEvent::StageStarted {
                    stage: StageName::Train
                },
            ]
        );
    }
}
