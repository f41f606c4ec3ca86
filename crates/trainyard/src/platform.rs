//! The Platform: a project directory (trainyard.toml + its database) and the services over it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use trainyard_core::ports::{
    ArtifactStore, Clock, Deployer, ModelRegistry, PipelineCompiler, PipelineExecutor,
    ScheduleTrigger, Store, SystemClock,
};
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

/// Environment variable that overrides `[store] url`.
pub const STORE_URL_ENV: &str = "TRAINYARD_STORE_URL";

/// A project's trainyard.toml.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectConfig {
    pub project: ProjectSection,
    pub store: StoreSection,
    pub local: LocalSection,
    /// Google Cloud settings, used by `Backend::Gcp` (env overrides: `TRAINYARD_GCP_*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gcp: Option<trainyard_gcp::GcpConfig>,
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

impl ProjectConfig {
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| {
            Error::Validation(ValidationError::field(
                CONFIG_FILE,
                e.to_string()
                    .lines()
                    .next()
                    .unwrap_or("invalid TOML")
                    .to_string(),
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
    /// Reads run outputs in Cloud Storage (insights); local outputs need none.
    artifacts: Option<Arc<dyn ArtifactStore>>,
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
        Platform::open(dir).await
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
                let compiler = Arc::new(crate::RunCompiler::vertex(crate::VertexSettings {
                    project: config.project.clone(),
                    region: config.region.clone(),
                    tfx_image: None,
                    trainer_image: None,
                }));
                let root = format!("gs://{}/pipeline_root", config.bucket);
                let mut platform = platform
                    .with_executor(executor, compiler, root)
                    .with_model_registry(gcp.registry.clone())
                    .with_deployer(gcp.deployer.clone());
                platform.artifacts = Some(gcp.artifacts.clone());
                Ok(match gcp.scheduler {
                    Some(trigger) => platform.with_schedule_trigger(trigger),
                    None => platform,
                })
            }
        }
    }

    /// Opens an existing project directory with the embedded backends.
    pub async fn open(dir: impl AsRef<Path>) -> Result<Platform> {
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
            None => Arc::new(SqliteStore::open(dir.join(&config.store.sqlite_path)).await?),
        };
        Ok(Platform::with_store(dir, config, store, Arc::new(SystemClock)).with_local_serving())
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
            artifacts: None,
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
        let python = std::env::var(crate::PYTHON_ENV)
            .ok()
            .filter(|p| !p.is_empty())
            .or_else(|| self.config.local.python.clone());
        if let Some(python) = python {
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

    /// Schedules are also registered with an external trigger (e.g. Cloud Scheduler). Without
    /// one, the embedded scheduler fires them from the store.
    pub fn with_schedule_trigger(mut self, trigger: Arc<dyn ScheduleTrigger>) -> Platform {
        self.trigger = Some(trigger);
        self
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

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Training runs; a blessed run that completes is registered (and auto-deployed when
    /// its deployment_config says so) when a registry is configured.
    pub fn training(&self) -> TrainingService {
        TrainingService::new(self.store.clone(), self.clock.clone(), self.launch.clone())
            .with_registry(self.registry())
    }

    pub fn deployments(&self) -> DeploymentService {
        DeploymentService::new(
            self.store.clone(),
            self.clock.clone(),
            self.deployer.clone(),
        )
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
        ScheduleService::new(
            self.store.clone(),
            self.clock.clone(),
            self.training(),
            self.trigger.clone(),
        )
    }

    /// Run statistics, schema, weight statistics, logs and the metrics backfill.
    pub fn insights(&self) -> crate::insights::InsightsService {
        crate::insights::InsightsService::new(
            self.store.clone(),
            self.clock.clone(),
            self.artifacts.clone(),
        )
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
