//! The Platform: a project directory (trainyard.toml + its database) and the services over it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use trainyard_core::model_config::RetrievalAlgorithm;
use trainyard_core::ports::{
    ArtifactStore, Clock, Deployer, ModelRegistry, PipelineCompiler, PipelineExecutor,
    ScheduleTrigger, Store, SystemClock,
};
use trainyard_core::run::{NewTrainingRun, TrainingRun};
use trainyard_core::{Error, Result, ValidationError};
use trainyard_store::SqliteStore;

use crate::deployments::DeploymentService;
use crate::registry::RegistryService;
use crate::schedules::ScheduleService;
use crate::training::{Launch, TrainingService};

pub const CONFIG_FILE: &str = "trainyard.toml";

/// `[project]` of trainyard.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectSection {
    /// The model endpoint runs belong to unless a caller names another.
    pub ml_model: String,
}

impl Default for ProjectSection {
    fn default() -> Self {
        ProjectSection {
            ml_model: "default".into(),
        }
    }
}

/// `[store]` of trainyard.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// SQLite database file, relative to the project directory.
    pub sqlite_path: String,
    /// A PostgreSQL URL (`postgres://user@host:port/db`) to use instead of SQLite, so that
    /// several service or scheduler processes share one database. `TRAINYARD_STORE_URL`
    /// overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            sqlite_path: "trainyard.db".into(),
            url: None,
        }
    }
}

/// `[local]` of trainyard.toml: the embedded backends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalSection {
    /// The managed env's Python that runs local pipelines (`TRAINYARD_PYTHON` overrides).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
}

/// `[server]` of trainyard.toml: how the REST API (`serve-api`, `server`) may be reached. The
/// API always requires its token (`<project>/.trainyard/api_token`); these settings widen who
/// may reach it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Host names (the requests' Host header) the API answers besides the loopback names
    /// `localhost`, `127.0.0.1` and `[::1]`; a name with a port (`api.example.com:443`) matches
    /// only that port. Anything else is refused (403) against DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// A TLS-terminating proxy sits in front of the API. Required before the API may listen
    /// on a non-loopback address: the token must not cross a network in clear text.
    pub tls_terminated_by_proxy: bool,
}

/// Environment variable that overrides `[store] url`.
pub const STORE_URL_ENV: &str = "TRAINYARD_STORE_URL";

/// Environment variable that overrides the project's API token file.
pub const API_TOKEN_ENV: &str = "TRAINYARD_API_TOKEN";
/// The API token's file in the project's `.trainyard` folder (owner-only, mode 0600).
pub const API_TOKEN_FILE: &str = "api_token";
/// Longest token accepted (from the environment or the file).
const MAX_TOKEN_LEN: usize = 512;

/// Where the API token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiTokenSource {
    /// `TRAINYARD_API_TOKEN`.
    Env,
    /// The project's token file.
    File(PathBuf),
}

/// The secret every management route of the REST API requires (`Authorization: Bearer`), as
/// Jupyter's server token: generated on `init` (or the first start of an older project) and
/// kept in the project. Its `Debug` form never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    value: String,
    source: ApiTokenSource,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("value", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

impl ApiToken {
    /// A token given by the caller (an embedding app, tests); refused when empty, longer than
    /// 512 characters, or not visible ASCII (it travels in a header).
    pub fn new(value: impl Into<String>, source: ApiTokenSource) -> Result<ApiToken> {
        let value = value.into();
        let what = match &source {
            ApiTokenSource::Env => API_TOKEN_ENV.to_string(),
            ApiTokenSource::File(p) => p.display().to_string(),
        };
        if value.is_empty() {
            return Err(Error::Validation(ValidationError::field(
                what,
                "the API token is empty (delete the token file to generate a new one)",
            )));
        }
        if value.len() > MAX_TOKEN_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Validation(ValidationError::field(
                what,
                "the API token must be 1 to 512 visible ASCII characters",
            )));
        }
        Ok(ApiToken { value, source })
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    pub fn source(&self) -> &ApiTokenSource {
        &self.source
    }
}

/// 32 random bytes from the system's generator, as 64 hex digits.
fn generate_token() -> Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Storage("no random numbers for the API token".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads the token file, creating it (with a new token, mode 0600) when missing. Creation is
/// atomic: the token is written to a private temp file that is hard-linked into place, so a
/// concurrent starter reads either nothing (and links its own) or a whole token.
fn token_file(path: &Path) -> Result<ApiToken> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    if !path.exists() {
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let _ = std::fs::remove_file(&tmp);
        let token = generate_token()?;
        let written = opts.open(&tmp).and_then(|mut f| {
            use std::io::Write;
            f.write_all(format!("{token}\n").as_bytes())?;
            f.sync_all()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_err(&tmp, e));
        }
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(path, e)),
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            // Readable by others: narrow it before trusting it.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io_err(path, e))?;
            tracing::warn!(path = %path.display(), "the API token file was readable by others; now 0600");
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    ApiToken::new(text.trim(), ApiTokenSource::File(path.to_path_buf()))
}

/// A project's database must be there: missing or empty means it was deleted or truncated, and
/// opening it would silently start over with no runs.
fn check_database_file(db: &Path) -> Result<()> {
    let why = match std::fs::metadata(db) {
        Ok(m) if m.len() > 0 => return Ok(()),
        Ok(_) => "is empty",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "is missing",
        Err(e) => return Err(io_err(db, e)),
    };
    Err(Error::Storage(format!(
        "the project database {} {why}; restore it from a backup, or run `trainyard init` \
         to create a new empty one",
        db.display()
    )))
}

/// A project's trainyard.toml.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectConfig {
    pub project: ProjectSection,
    pub store: StoreSection,
    pub local: LocalSection,
    pub server: ServerSection,
    /// Google Cloud settings, used by `Backend::Gcp` (env overrides: `TRAINYARD_GCP_*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gcp: Option<trainyard_gcp::GcpConfig>,
    /// Figures replacing the built-in price table's (`cost_usd` of cloud runs).
    #[serde(skip_serializing_if = "trainyard_core::pricing::PricingOverrides::is_empty")]
    pub pricing: trainyard_core::pricing::PricingOverrides,
}

/// Where pipelines, schedules and models go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Embedded defaults: everything on this machine.
    #[default]
    Local,
    /// Google Cloud: Vertex AI, Cloud Scheduler, Cloud Run, GCS (from `[gcp]`).
    Gcp,
}

impl trainyard_core::names::Named for Backend {
    const ALL: &'static [Self] = &[Backend::Local, Backend::Gcp];

    fn name(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Gcp => "gcp",
        }
    }
}

impl ProjectConfig {
    pub fn from_toml(text: &str) -> Result<Self> {
        // The position and the reason on one line (toml's own first line is only the
        // position: the reason used to be cut off with the lines after it).
        toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("line {line}, column {column}: ")
                })
                .unwrap_or_default();
            let reason = trainyard_core::strict::explain(e.message().trim());
            Error::Validation(ValidationError::field(
                CONFIG_FILE,
                format!("{at}{}", reason.replace('\n', " ")),
            ))
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config types always serialize to TOML")
    }
}

/// The services of one project, sharing one store and clock.
#[derive(Clone)]
pub struct Platform {
    dir: PathBuf,
    config: ProjectConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    launch: Option<Launch>,
    trigger: Option<Arc<dyn ScheduleTrigger>>,
    model_registry: Option<Arc<dyn ModelRegistry>>,
    deployer: Option<Arc<dyn Deployer>>,
    /// Vertex AI endpoints, the second deploy target (Google Cloud backend).
    vertex_endpoints: Option<Arc<dyn Deployer>>,
    /// Reads run outputs in Cloud Storage (insights); local outputs need none.
    artifacts: Option<Arc<dyn ArtifactStore>>,
    /// Serving images of the deploy target (`[gcp.images]`); `None`: the deployer's defaults.
    serving_images: Option<crate::ServingImages>,
    /// Prices finished runs; `None` (local backend): they cost 0.
    pricing: Option<trainyard_core::pricing::CostModel>,
    /// Logs of submitted pipeline jobs (Cloud Logging); `None`: the local runner's log files.
    pipeline_logs: Option<Arc<dyn trainyard_core::ports::PipelineLogReader>>,
    /// The MLflow server trainers log to: ends what killed trainers left running.
    tracking: Option<Arc<dyn trainyard_core::tracking::ExperimentTracking>>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Storage(format!("{}: {e}", path.display()))
}

impl Platform {
    /// Creates a project directory: writes trainyard.toml (unless present) and the database.
    pub async fn init(dir: impl AsRef<Path>) -> Result<Platform> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let path = dir.join(CONFIG_FILE);
        if !path.exists() {
            std::fs::write(&path, ProjectConfig::default().to_toml())
                .map_err(|e| io_err(&path, e))?;
        }
        let platform = Platform::open_or_create(dir, true).await?;
        token_file(&platform.api_token_path())?;
        Ok(platform)
    }

    /// Opens a project directory with the backends of `backend`.
    pub async fn open_with(dir: impl AsRef<Path>, backend: Backend) -> Result<Platform> {
        let platform = Platform::open(dir).await?;
        match backend {
            Backend::Local => Ok(platform),
            Backend::Gcp => {
                let config = platform
                    .config
                    .gcp
                    .clone()
                    .unwrap_or_default()
                    .with_env_overrides();
                let gcp =
                    trainyard_gcp::GcpBackends::from_config(&config).map_err(|e| match e {
                        // A missing or bad setting is the user's input, not a backend failure.
                        trainyard_gcp::GcpError::Config(why) => {
                            Error::Validation(ValidationError::field("gcp", why))
                        }
                        other => other.into(),
                    })?;
                let executor = Arc::new(crate::pipelines::WheelUploadingExecutor {
                    artifacts: gcp.artifacts.clone(),
                    inner: gcp.executor.clone(),
                });
                let compiler = Arc::new(
                    crate::RunCompiler::vertex(crate::VertexSettings::from_gcp(&config))
                        .with_mlflow_tracking_uri(crate::pipelines::mlflow_tracking_uri()),
                );
                let root = format!("gs://{}/pipeline_root", config.bucket);
                let mut platform = platform
                    .with_executor(executor, compiler, root)
                    .with_model_registry(gcp.registry.clone())
                    .with_deployer(gcp.deployer.clone())
                    .with_vertex_endpoints(gcp.endpoints.clone());
                platform.artifacts = Some(gcp.artifacts.clone());
                platform.pipeline_logs = Some(gcp.logs.clone());
                let table = trainyard_core::pricing::PriceTable::builtin()
                    .with_overrides(&platform.config.pricing)
                    .map_err(|e| {
                        Error::Validation(ValidationError::field("pricing", e.to_string()))
                    })?;
                platform.pricing = Some(trainyard_core::pricing::CostModel {
                    table,
                    region: config.region.clone(),
                });
                // Cloud Run serves the configured (or Artifact Registry default) images.
                platform.serving_images = Some(crate::ServingImages {
                    native: config.serving_image(RetrievalAlgorithm::BruteForce),
                    scann: config.serving_image(RetrievalAlgorithm::Scann),
                });
                Ok(match gcp.scheduler {
                    Some(trigger) => platform.with_schedule_trigger(trigger),
                    None => platform,
                })
            }
        }
    }

    /// Opens an existing project directory with the embedded backends. Its SQLite database
    /// must exist and not be empty: a deleted or truncated database is an error (`init`
    /// creates one), never silently replaced by an empty one.
    pub async fn open(dir: impl AsRef<Path>) -> Result<Platform> {
        Platform::open_or_create(dir, false).await
    }

    async fn open_or_create(dir: impl AsRef<Path>, create: bool) -> Result<Platform> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Validation(ValidationError::field(
                    "project",
                    format!(
                        "{} has no {CONFIG_FILE}; run `trainyard init` there first",
                        dir.display()
                    ),
                ))
            } else {
                io_err(&path, e)
            }
        })?;
        let config = ProjectConfig::from_toml(&text)?;
        let url = std::env::var(STORE_URL_ENV)
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| config.store.url.clone());
        let store: Arc<dyn Store> = match url {
            Some(url) => trainyard_store::open_url(&url).await?,
            None => {
                let db = dir.join(&config.store.sqlite_path);
                if !create {
                    check_database_file(&db)?;
                }
                Arc::new(SqliteStore::open(db).await?)
            }
        };
        Ok(
            Platform::with_store(dir, config, store, Arc::new(SystemClock))
                .with_local_serving()
                .with_local_executor()
                .with_mlflow_tracking_uri(crate::pipelines::mlflow_tracking_uri()),
        )
    }

    /// A platform over any store and clock (tests, embedding apps).
    pub fn with_store(
        dir: PathBuf,
        config: ProjectConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Platform {
        Platform {
            dir,
            config,
            store,
            clock,
            launch: None,
            trigger: None,
            model_registry: None,
            deployer: None,
            vertex_endpoints: None,
            artifacts: None,
            serving_images: None,
            pricing: None,
            pipeline_logs: None,
            tracking: None,
        }
    }

    /// Registered versions go to `registry` (filesystem registry, Vertex AI Model Registry).
    pub fn with_model_registry(mut self, registry: Arc<dyn ModelRegistry>) -> Platform {
        self.model_registry = Some(registry);
        self
    }

    /// Endpoints are served by `deployer` (local trainyard-serve processes, Cloud Run).
    pub fn with_deployer(mut self, deployer: Arc<dyn Deployer>) -> Platform {
        self.deployer = Some(deployer);
        self
    }

    /// Deploys with `target: vertex_endpoint` go to `deployer` (Vertex AI endpoints).
    pub fn with_vertex_endpoints(mut self, deployer: Arc<dyn Deployer>) -> Platform {
        self.vertex_endpoints = Some(deployer);
        self
    }

    /// The embedded registry and deployer: versions under `<project>/registry` (recorded as
    /// absolute paths, so they work from any directory), endpoints as trainyard-serve
    /// processes recorded under `<project>/.trainyard/endpoints` and owned by the project's
    /// identity (a copy of the project never controls this one's servers).
    pub fn with_local_serving(self) -> Platform {
        let dir = std::fs::canonicalize(&self.dir)
            .or_else(|_| std::path::absolute(&self.dir))
            .unwrap_or_else(|_| self.dir.clone());
        let registry = Arc::new(trainyard_local::LocalModelRegistry::new(
            dir.join("registry"),
        ));
        let serve_bin = trainyard_local::LocalDeployer::default_serve_bin();
        let mut deployer = match trainyard_local::LocalDeployer::for_project(&dir, &serve_bin) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "no project identity: endpoints are keyed by their state dir only");
                trainyard_local::LocalDeployer::new(
                    dir.join(".trainyard").join("endpoints"),
                    serve_bin,
                )
            }
        };
        if let Some(python) = crate::pipelines::managed_python(&self.config) {
            deployer = deployer.with_env(crate::PYTHON_ENV, python);
        }
        self.with_model_registry(registry)
            .with_deployer(Arc::new(deployer))
    }

    /// Runs are compiled by `compiler` and submitted to `executor`; artifacts go under
    /// `pipeline_root` (a directory or a gs:// prefix).
    pub fn with_executor(
        mut self,
        executor: Arc<dyn PipelineExecutor>,
        compiler: Arc<dyn PipelineCompiler>,
        pipeline_root: impl Into<String>,
    ) -> Platform {
        self.launch = Some(Launch {
            executor,
            compiler,
            pipeline_root: pipeline_root.into(),
        });
        self
    }

    /// Runs that end failed or cancelled end the tracking runs their trainers left RUNNING
    /// through `tracking` (see [`Platform::with_mlflow_tracking_uri`]).
    pub fn with_experiment_tracking(
        mut self,
        tracking: Arc<dyn trainyard_core::tracking::ExperimentTracking>,
    ) -> Platform {
        self.tracking = Some(tracking);
        self
    }

    /// The MLflow tracking server the compiled trainers log to (`open` passes
    /// `$MLFLOW_TRACKING_URI`, as its compiler does): a run that ends failed or cancelled ends
    /// the MLflow runs its trainer left RUNNING there (a trainer killed outright cannot).
    /// `None`, blank, or a URI with no REST API (`file:`, a database): nothing is ended.
    pub fn with_mlflow_tracking_uri(mut self, uri: Option<String>) -> Platform {
        let uri = uri.filter(|u| !u.trim().is_empty());
        self.tracking = match uri.as_deref().map(trainyard_local::MlflowTracking::new) {
            Some(Ok(t)) => Some(Arc::new(t.with_env_credentials())),
            // a file: or database store has no server to ask: nothing to warn about on every
            // command (the message names no credentials either way)
            Some(Err(e)) => {
                tracing::debug!(error = %e, "MLflow runs of failed or cancelled runs are not ended");
                None
            }
            None => None,
        };
        self
    }

    /// Finished runs are priced with `model` (the Google Cloud backend sets one up from the
    /// built-in table and `[pricing]`); without one they cost 0.
    pub fn with_cost_model(mut self, model: trainyard_core::pricing::CostModel) -> Platform {
        self.pricing = Some(model);
        self
    }

    /// Schedules are also registered with an external trigger (e.g. Cloud Scheduler). Without
    /// one, the embedded scheduler fires them from the store.
    pub fn with_schedule_trigger(mut self, trigger: Arc<dyn ScheduleTrigger>) -> Platform {
        self.trigger = Some(trigger);
        self
    }

    /// Whether schedules fire through an external trigger (Cloud Scheduler) rather than the
    /// embedded scheduler.
    pub fn has_schedule_trigger(&self) -> bool {
        self.trigger.is_some()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &ProjectConfig {
        &self.config
    }

    /// `<project>/.trainyard/api_token`.
    pub fn api_token_path(&self) -> PathBuf {
        self.dir.join(".trainyard").join(API_TOKEN_FILE)
    }

    /// The REST API's token: `TRAINYARD_API_TOKEN` when set, else the project's token file,
    /// created (mode 0600) when missing (projects made before tokens existed).
    pub fn api_token(&self) -> Result<ApiToken> {
        match std::env::var(API_TOKEN_ENV) {
            Ok(v) if !v.is_empty() => ApiToken::new(v, ApiTokenSource::Env),
            _ => token_file(&self.api_token_path()),
        }
    }

    /// The model endpoint a call names, or the project's (`[project] ml_model`) when it names
    /// none: the one place the default is resolved.
    pub fn ml_model_or(&self, given: Option<&str>) -> String {
        given
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map_or_else(|| self.config.project.ml_model.clone(), str::to_string)
    }

    /// Creates a pending run; an empty `ml_model` is the project's.
    pub async fn create_run(&self, mut new: NewTrainingRun) -> Result<TrainingRun> {
        new.ml_model = self.ml_model_or(Some(&new.ml_model));
        self.training().create_training_run(new).await
    }

    /// The store, for embedders and tests; front ends call the services instead.
    #[doc(hidden)]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Training runs; relative local paths in a pipeline's events are the project's (resolved
    /// against this directory, never the working directory). A blessed run that completes is
    /// registered (and auto-deployed when its deployment_config says so) when a registry is
    /// configured.
    pub fn training(&self) -> TrainingService {
        TrainingService::new(self.store.clone(), self.clock.clone(), self.launch.clone())
            .with_artifact_base(&self.dir)
            .with_lifecycle(self.lifecycle())
            .with_schedule_trigger(self.trigger.clone())
            .with_pricing(self.pricing.clone())
            .with_experiment_tracking(self.tracking.clone())
    }

    pub fn deployments(&self) -> DeploymentService {
        let service = DeploymentService::new(
            self.store.clone(),
            self.clock.clone(),
            self.deployer.clone(),
        )
        .with_vertex_endpoints(self.vertex_endpoints.clone());
        match &self.serving_images {
            Some(images) => service.with_images(images.clone()),
            None => service,
        }
    }

    /// The durable in-process scheduler over this platform's store, firing through its
    /// ScheduleService.
    pub fn embedded_scheduler(
        &self,
        config: trainyard_local::SchedulerConfig,
    ) -> trainyard_local::EmbeddedScheduler {
        trainyard_local::EmbeddedScheduler::new(
            self.store.clone(),
            Arc::new(self.schedules()),
            self.clock.clone(),
            config,
        )
    }

    pub fn schedules(&self) -> ScheduleService {
        ScheduleService::new(self.store.clone(), self.clock.clone(), self.trigger.clone())
    }

    /// Run statistics, schema, weight statistics, logs and the metrics backfill.
    pub fn insights(&self) -> crate::insights::InsightsService {
        crate::insights::InsightsService::new(
            self.store.clone(),
            self.clock.clone(),
            self.artifacts.clone(),
        )
        .with_pipeline_logs(self.pipeline_logs.clone())
    }

    pub fn registry(&self) -> RegistryService {
        let service = RegistryService::new(self.store.clone(), self.clock.clone())
            .with_deployments(self.deployments());
        match &self.model_registry {
            Some(backend) => service.with_backend(backend.clone()),
            None => service,
        }
    }
}
