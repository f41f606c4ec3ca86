//! From a training run to a pipeline an executor runs: the code generator makes the transform
//! and trainer modules, the pipeline builder the local TFX pipeline module or the Vertex IR.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use trainyard_core::config::DataSource;
use trainyard_core::ports::{PipelineCompiler, PipelineHandle, VERTEX_PIPELINE_JOB_FILE};
use trainyard_core::run::{NewTrainingRun, RunId, TrainingRun};
use trainyard_core::tracking::RunKey;
use trainyard_core::{Error, Result, ValidationError};
use trainyard_pipeline::PipelineInputs;

use crate::Platform;

/// Where a compiled pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A local TFX pipeline module for LocalDagRunner.
    Local,
    /// A Vertex AI PipelineJob body (and its user-code wheels, base64, under `_wheels/`).
    Vertex,
}

/// Prefix of the wheel entries in a vertex submission's files (content base64-encoded).
pub const WHEEL_FILE_PREFIX: &str = "_wheels/";

/// Google Cloud settings the Vertex target needs.
#[derive(Debug, Clone, Default)]
pub struct VertexSettings {
    pub project: String,
    pub region: String,
    /// Stock TFX components; default [`trainyard_pipeline::DEFAULT_TFX_IMAGE`].
    pub tfx_image: Option<String>,
    /// trainyard's trainer image (`[gcp.images] trainer`): Transform, Trainer, evaluator,
    /// split. Default: `{region}-docker.pkg.dev/{project}/ml-training/trainer:latest`.
    pub trainer_image: Option<String>,
    /// Its GPU variant (`[gcp.images] trainer_gpu`), for the Trainer of runs that ask for GPUs.
    /// Default: `.../ml-training/trainer-gpu:latest`.
    pub trainer_gpu_image: Option<String>,
    /// Trainer region of GPU runs that name none (`GcpConfig::gpu_training_region`: `[gcp]
    /// gpu_region` when `region` has no GPU training).
    pub gpu_region: Option<String>,
}

impl VertexSettings {
    /// The settings `[gcp]` gives (file and environment overrides applied by the caller):
    /// project, region, the trainer images of `[gcp.images]` (or their defaults), gpu_region.
    pub fn from_gcp(config: &trainyard_gcp::GcpConfig) -> Self {
        VertexSettings {
            project: config.project.clone(),
            region: config.region.clone(),
            tfx_image: None,
            trainer_image: Some(config.trainer_image(false)),
            trainer_gpu_image: Some(config.trainer_image(true)),
            gpu_region: config.gpu_training_region().map(str::to_string),
        }
    }

    /// `pipeline compile --target vertex`: `project` and `region` as given; the trainer images
    /// and gpu_region from `[gcp]` of `project_dir`'s trainyard.toml (and the `TRAINYARD_GCP_*`
    /// environment) when it has one, else the defaults.
    pub fn for_compile(project_dir: &Path, project: &str, region: &str) -> Result<Self> {
        let path = project_dir.join(crate::CONFIG_FILE);
        let gcp = match std::fs::read_to_string(&path) {
            Ok(text) => crate::ProjectConfig::from_toml(&text)?.gcp,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::Storage(format!("{}: {e}", path.display()))),
        };
        let mut gcp = gcp.unwrap_or_default().with_env_overrides();
        gcp.project = project.to_string();
        gcp.region = region.to_string();
        Ok(VertexSettings::from_gcp(&gcp))
    }
}

/// Compiles runs with the code generator and the pipeline builder.
#[derive(Debug, Clone)]
pub struct RunCompiler {
    target: Target,
    /// Relative data paths are resolved against this directory (the project).
    base_dir: PathBuf,
    vertex: VertexSettings,
    /// MLflow tracking server the trainers log to; None: no MLflow.
    mlflow_tracking_uri: Option<String>,
}

/// Environment variable naming the MLflow tracking server trainers log to (local and Vertex
/// runs; unset or empty: no MLflow).
pub const MLFLOW_TRACKING_URI_ENV: &str = "MLFLOW_TRACKING_URI";

/// The MLflow tracking URI of this process ([`MLFLOW_TRACKING_URI_ENV`]), if any.
pub fn mlflow_tracking_uri() -> Option<String> {
    std::env::var(MLFLOW_TRACKING_URI_ENV)
        .ok()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
}

fn pipeline_name(run: &TrainingRun) -> String {
    let slug = trainyard_core::deployment::service_name_from(&run.name, "");
    format!("run-{}-{slug}", run.id)
        .chars()
        .take(120)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::Validation(ValidationError::field("pipeline", e.to_string()))
}

impl RunCompiler {
    pub fn local(base_dir: impl Into<PathBuf>) -> Self {
        RunCompiler {
            target: Target::Local,
            base_dir: base_dir.into(),
            vertex: VertexSettings::default(),
            mlflow_tracking_uri: None,
        }
    }

    pub fn vertex(vertex: VertexSettings) -> Self {
        RunCompiler {
            target: Target::Vertex,
            base_dir: PathBuf::from("."),
            vertex,
            mlflow_tracking_uri: None,
        }
    }

    /// Trainers of the runs it compiles log to this MLflow tracking server (the Trainer's
    /// custom_config `mlflow_tracking_uri`, in the local pipeline and in the Vertex IR alike).
    pub fn with_mlflow_tracking_uri(mut self, uri: Option<String>) -> Self {
        self.mlflow_tracking_uri = uri.filter(|u| !u.trim().is_empty());
        self
    }

    /// The pipeline's inputs for a run: generated modules, data, settings.
    pub fn inputs(&self, run: &TrainingRun, pipeline_root: &str) -> Result<PipelineInputs> {
        let c = &run.config;
        let mut gpu = c.gpu_config.clone();
        if self.target == Target::Vertex {
            trainyard_pipeline::vertex::check_settings(&self.vertex.project, pipeline_root)?;
            gpu = gpu.split_to(self.vertex.gpu_region.as_deref());
        }
        let modules = trainyard_codegen::generate(
            &c.feature_config,
            &c.model_config,
            &c.training_params,
            &c.gpu_config,
        )?;
        let data = match &c.dataset.source {
            DataSource::Csv { path } => DataSource::Csv {
                path: self.resolve(path),
            },
            DataSource::Parquet { path } => DataSource::Parquet {
                path: self.resolve(path),
            },
            bq => bq.clone(),
        };
        let trainer_image = |configured: &Option<String>, gpu: bool| {
            configured
                .clone()
                .filter(|i| !i.trim().is_empty())
                .unwrap_or_else(|| {
                    trainyard_gcp::config::default_trainer_image(
                        &self.vertex.region,
                        &self.vertex.project,
                        gpu,
                    )
                })
        };
        Ok(PipelineInputs {
            name: pipeline_name(run),
            pipeline_root: pipeline_root.to_string(),
            data,
            model_type: run.model_type(),
            modules: modules.files,
            training: c.training_params.clone(),
            gpu,
            evaluator: c.evaluator_config.clone(),
            sampling: c.sampling_config.clone(),
            serving_dir: format!("{}/pushed_model", pipeline_root.trim_end_matches('/')),
            project: self.vertex.project.clone(),
            region: self.vertex.region.clone(),
            tfx_image: self
                .vertex
                .tfx_image
                .clone()
                .unwrap_or_else(|| trainyard_pipeline::DEFAULT_TFX_IMAGE.to_string()),
            trainer_image: trainer_image(&self.vertex.trainer_image, false),
            trainer_gpu_image: trainer_image(&self.vertex.trainer_gpu_image, true),
            labels: BTreeMap::from([
                ("trainyard_run_id".to_string(), run.id.to_string()),
                (
                    "trainyard_model_type".to_string(),
                    run.model_type().as_str().to_string(),
                ),
            ]),
            mlflow_tracking_uri: self.mlflow_tracking_uri.clone(),
            // a stored run's id (a compile of an unstored config has none: id 0)
            trainyard_run_id: (run.id > 0).then_some(run.id),
            // what tells it from runs of other projects with the same id (its MLflow run's
            // trainyard.run_key: what is ended when it fails or is cancelled)
            trainyard_run_key: RunKey::of(run).map(|k| k.to_string()),
        })
    }

    fn resolve(&self, path: &str) -> String {
        let p = Path::new(path);
        if p.is_absolute() || path.contains("://") {
            path.to_string()
        } else {
            self.base_dir.join(p).display().to_string()
        }
    }
}

impl PipelineCompiler for RunCompiler {
    fn compile(&self, run: &TrainingRun, pipeline_root: &str) -> Result<BTreeMap<String, String>> {
        let inputs = self.inputs(run, pipeline_root)?;
        match self.target {
            Target::Local => {
                let root = Path::new(pipeline_root);
                let modules_dir = root.join("modules").display().to_string();
                let metadata = root.join("metadata.sqlite").display().to_string();
                Ok(
                    trainyard_pipeline::local::files(&inputs, &modules_dir, &metadata)
                        .map_err(invalid)?
                        .into_iter()
                        .collect(),
                )
            }
            Target::Vertex => {
                let compiled = trainyard_pipeline::vertex::compile(&inputs).map_err(invalid)?;
                let mut files = BTreeMap::from([(
                    VERTEX_PIPELINE_JOB_FILE.to_string(),
                    serde_json::to_string_pretty(&compiled.job).map_err(invalid)?,
                )]);
                for w in compiled.wheels {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(&w.bytes);
                    files.insert(format!("{WHEEL_FILE_PREFIX}{}", w.file_name), encoded);
                }
                Ok(files)
            }
        }
    }
}

/// Environment variable naming the managed env's Python for local runs.
pub const PYTHON_ENV: &str = "TRAINYARD_PYTHON";

/// The managed env's Python for this project: `$TRAINYARD_PYTHON`, else `[local] python` of
/// trainyard.toml. The one lookup for local pipelines and local model servers.
pub fn managed_python(config: &crate::ProjectConfig) -> Option<String> {
    std::env::var(PYTHON_ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .or_else(|| config.local.python.clone())
}

/// The interpreter `doctor` examines for the project at `project_dir`: `TRAINYARD_PYTHON`,
/// else the project's `[local] python` (when its trainyard.toml is readable), else a `.venv-tf`
/// in the working directory or one above it, else `python3`.
pub fn project_python(project_dir: &std::path::Path) -> std::path::PathBuf {
    let config = std::fs::read_to_string(project_dir.join(crate::CONFIG_FILE))
        .ok()
        .and_then(|text| crate::ProjectConfig::from_toml(&text).ok())
        .unwrap_or_default();
    managed_python(&config)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            trainyard_codegen::default_python(&std::env::current_dir().unwrap_or_default())
        })
}

fn no_python() -> Error {
    Error::Validation(ValidationError::field(
        "local.python",
        format!("no managed Python env: run `make pyenv` and set {PYTHON_ENV} (or [local] python in trainyard.toml)"),
    ))
}

/// The local runner when no managed Python is configured: following and cancelling runs
/// needs none, starting one is refused with the setting to fix.
struct WithoutPython(trainyard_local::LocalRunner);

#[async_trait::async_trait]
impl trainyard_core::ports::PipelineExecutor for WithoutPython {
    async fn submit(
        &self,
        _sub: &trainyard_core::ports::PipelineSubmission,
    ) -> Result<PipelineHandle> {
        Err(no_python())
    }

    async fn poll(
        &self,
        handle: &PipelineHandle,
    ) -> Result<Vec<trainyard_core::ports::PipelineEvent>> {
        self.0.poll(handle).await
    }

    async fn cancel(&self, handle: &PipelineHandle) -> Result<()> {
        self.0.cancel(handle).await
    }

    fn ready(&self) -> Result<()> {
        Err(no_python())
    }
}

impl Platform {
    /// The local runner over the managed Python env ([`managed_python`]); artifacts go under
    /// `<project>/runs/<id>`. Fails when no env is configured.
    pub fn with_local_runner(self) -> Result<Platform> {
        if managed_python(self.config()).is_none() {
            return Err(no_python());
        }
        Ok(self.with_local_executor())
    }

    /// The local runner, whether or not a managed env is configured: runs can be followed
    /// and cancelled without one, and submitting without one is refused naming the setting.
    pub(crate) fn with_local_executor(self) -> Platform {
        let root = self
            .dir()
            .canonicalize()
            .unwrap_or_else(|_| self.dir().to_path_buf());
        let executor: Arc<dyn trainyard_core::ports::PipelineExecutor> =
            match managed_python(self.config()) {
                Some(python) => Arc::new(trainyard_local::LocalRunner::new(python)),
                None => Arc::new(WithoutPython(trainyard_local::LocalRunner::new("python3"))),
            };
        let compiler =
            Arc::new(RunCompiler::local(&root).with_mlflow_tracking_uri(mlflow_tracking_uri()));
        self.with_executor(executor, compiler, root.display().to_string())
    }
}

/// The executor handle a submitted run keeps in its job fields.
pub fn handle_of(run: &TrainingRun) -> Option<PipelineHandle> {
    Some(PipelineHandle {
        job_name: run.vertex_pipeline_job_name.clone()?,
        job_id: run.vertex_pipeline_job_id.clone()?,
    })
}

/// Uploads the user-code wheels of a Vertex submission to `<pipeline_root>/_wheels/` before
/// handing the PipelineJob to the executor, which only posts the job body.
pub struct WheelUploadingExecutor {
    pub artifacts: Arc<dyn trainyard_core::ports::ArtifactStore>,
    pub inner: Arc<dyn trainyard_core::ports::PipelineExecutor>,
}

#[async_trait::async_trait]
impl trainyard_core::ports::PipelineExecutor for WheelUploadingExecutor {
    async fn submit(
        &self,
        sub: &trainyard_core::ports::PipelineSubmission,
    ) -> Result<PipelineHandle> {
        for (name, encoded) in sub
            .files
            .iter()
            .filter(|(n, _)| n.starts_with(WHEEL_FILE_PREFIX))
        {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| Error::Backend(format!("{name}: {e}")))?;
            let path = format!("{}/{name}", sub.pipeline_root.trim_end_matches('/'));
            self.artifacts.write(&path, &bytes).await?;
        }
        self.inner.submit(sub).await
    }

    async fn poll(
        &self,
        handle: &PipelineHandle,
    ) -> Result<Vec<trainyard_core::ports::PipelineEvent>> {
        self.inner.poll(handle).await
    }

    async fn cancel(&self, handle: &PipelineHandle) -> Result<()> {
        self.inner.cancel(handle).await
    }

    fn ready(&self) -> Result<()> {
        self.inner.ready()
    }

    fn take_gpu_fallback(&self, run: RunId) -> Option<trainyard_core::config::GpuFallbackRecord> {
        self.inner.take_gpu_fallback(run)
    }
}

/// How to compile a run's pipeline: the one set of defaults and required fields of every
/// front end. Vertex needs a `gs://` pipeline root, a project and a region (none has a
/// default: a job in the wrong region or project is worse than an error naming the field).
/// Local roots default to `<out>/root` ([`compile_to`]) or `<project>/runs/<id>`
/// ([`Platform::compile_run`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompileOptions {
    pub target: CompileTarget,
    pub pipeline_root: Option<String>,
    /// Google Cloud project (vertex).
    pub project: Option<String>,
    /// Orchestration region (vertex).
    pub region: Option<String>,
}

/// [`Target`] as users name it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompileTarget {
    #[default]
    Local,
    Vertex,
}

impl trainyard_core::names::Named for CompileTarget {
    const ALL: &'static [Self] = &[CompileTarget::Local, CompileTarget::Vertex];

    fn name(self) -> &'static str {
        match self {
            CompileTarget::Local => "local",
            CompileTarget::Vertex => "vertex",
        }
    }
}

/// What [`compile_to`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompileOutput {
    pub target: CompileTarget,
    pub pipeline_root: String,
    /// Every file written, in order.
    pub written: Vec<PathBuf>,
    /// User-code wheels among them (vertex: to upload to `<pipeline_root>/_wheels/`).
    pub wheels: usize,
}

fn required_for_vertex(field: &str, v: &Option<String>) -> Result<String> {
    v.clone().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        Error::Validation(ValidationError::field(
            field,
            "is required for the vertex target",
        ))
    })
}

impl CompileOptions {
    /// The compiler and the pipeline root; `local_root` gives the local default.
    fn resolve(
        &self,
        base_dir: &Path,
        local_root: impl FnOnce() -> String,
    ) -> Result<(RunCompiler, String)> {
        match self.target {
            CompileTarget::Local => Ok((
                RunCompiler::local(base_dir),
                self.pipeline_root
                    .clone()
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(local_root),
            )),
            CompileTarget::Vertex => {
                let root = required_for_vertex("pipeline_root", &self.pipeline_root)?;
                // An empty project is named by the pipeline's own check (`gcp.project`).
                let project = self.project.clone().unwrap_or_default();
                trainyard_pipeline::vertex::check_settings(&project, &root)?;
                let region = required_for_vertex("gcp.region", &self.region)?;
                // the trainer images and gpu_region of the project's [gcp], if it has one
                // the Trainer logs to $MLFLOW_TRACKING_URI when it is set
                let compiler =
                    RunCompiler::vertex(VertexSettings::for_compile(base_dir, &project, &region)?)
                        .with_mlflow_tracking_uri(mlflow_tracking_uri());
                Ok((compiler, root))
            }
        }
    }
}

/// Compiles a run config (not stored; a fixed creation time keeps the output a function of the
/// config alone) into files: `vertex` writes the PipelineJob body to `out` and its user-code
/// wheels to `_wheels/` beside it; `local` writes pipeline.py and the modules into the `out`
/// directory. Relative data paths resolve against `base_dir`; an empty `ml_model` is
/// `default`. Nothing is written when the options or the config are refused.
pub fn compile_to(
    mut new: NewTrainingRun,
    options: &CompileOptions,
    base_dir: &Path,
    out: &Path,
) -> Result<CompileOutput> {
    if new.ml_model.is_empty() {
        new.ml_model = "default".into();
    }
    new.validate()?;
    let run = TrainingRun::new(new, None, chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
    let io = |e: std::io::Error| Error::Backend(format!("{}: {e}", out.display()));
    match options.target {
        CompileTarget::Vertex => {
            let (compiler, root) = options.resolve(base_dir, String::new)?;
            let inputs = compiler.inputs(&run, &root)?;
            let compiled = trainyard_pipeline::vertex::compile(&inputs).map_err(invalid)?;
            let dir = out
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir.join("_wheels")).map_err(io)?;
            let job = serde_json::to_string_pretty(&compiled.job).map_err(invalid)? + "\n";
            std::fs::write(out, job).map_err(io)?;
            let mut written = vec![out.to_path_buf()];
            for w in &compiled.wheels {
                let path = dir.join("_wheels").join(&w.file_name);
                std::fs::write(&path, &w.bytes).map_err(io)?;
                written.push(path);
            }
            Ok(CompileOutput {
                target: options.target,
                pipeline_root: root,
                wheels: compiled.wheels.len(),
                written,
            })
        }
        CompileTarget::Local => {
            std::fs::create_dir_all(out).map_err(io)?;
            let out = out.canonicalize().map_err(io)?;
            let (compiler, root) =
                options.resolve(base_dir, || out.join("root").display().to_string())?;
            let inputs = compiler.inputs(&run, &root)?;
            let files = trainyard_pipeline::local::files(
                &inputs,
                &out.display().to_string(),
                &format!("{root}/metadata.sqlite"),
            )
            .map_err(invalid)?;
            let mut written = Vec::new();
            for (name, source) in &files {
                let path = out.join(name);
                std::fs::write(&path, source).map_err(io)?;
                written.push(path);
            }
            Ok(CompileOutput {
                target: options.target,
                pipeline_root: root,
                written,
                wheels: 0,
            })
        }
    }
}

impl Platform {
    /// The files a stored run's pipeline is made of, {name: content} (what the executor is
    /// handed): local: the generated modules and the LocalDagRunner module, rooted at
    /// `<project>/runs/<id>` unless `pipeline_root` says otherwise; vertex: the PipelineJob
    /// body and the user-code wheels (base64, under `_wheels/`).
    pub async fn compile_run(
        &self,
        id: RunId,
        options: &CompileOptions,
    ) -> Result<BTreeMap<String, String>> {
        let run = self.training().get(id).await?;
        let base = self
            .dir()
            .canonicalize()
            .unwrap_or_else(|_| self.dir().to_path_buf());
        let (compiler, root) = options.resolve(&base, || {
            base.join("runs").join(id.to_string()).display().to_string()
        })?;
        compiler.compile(&run, &root)
    }
}
