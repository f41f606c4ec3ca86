//! trainyard-gcp: Google Cloud backends of trainyard's ports, over REST (reqwest + rustls).
//!
//! | port | backend |
//! |---|---|
//! | `PipelineExecutor` | [`VertexPipelineExecutor`] (Vertex AI Pipelines) |
//! | `ModelRegistry` | [`VertexModelRegistry`] (Vertex AI Model Registry) |
//! | `Deployer` | [`CloudRunDeployer`] (Cloud Run Admin API v2) |
//! | `ArtifactStore` | [`GcsClient`] (Cloud Storage JSON API) |
//! | `ScheduleTrigger` | [`CloudSchedulerTrigger`] (Cloud Scheduler -> OIDC webhook) |
//! | `Deployer` (second target) | [`VertexEndpoints`] (Vertex AI endpoints: deployModel / undeployModel) |
//! | live deployment status | [`VertexEndpoints::live_status`] |
//! | `PipelineLogReader` | [`CloudLogging`] (Cloud Logging `entries:list`) |
//!
//! All of them share one [`GcpHttp`]: Application Default Credentials ([`auth`]), cached
//! tokens, Google error bodies parsed into [`GcpError`], bounded retries with backoff and
//! jitter. Every base URL comes from [`GcpConfig`] and can point at an emulator.

pub mod auth;
pub mod cloud_logging;
pub mod cloud_run;
pub mod config;
pub mod error;
pub mod gcs;
pub mod gpu_fallback;
pub mod http;
pub mod lro;
pub mod names;
pub mod scheduler;
pub mod vertex_endpoints;
pub mod vertex_pipelines;
pub mod vertex_registry;

use std::sync::Arc;

pub use auth::{Credentials, Secret, TokenCache};
pub use cloud_logging::CloudLogging;
pub use cloud_run::CloudRunDeployer;
pub use config::GcpConfig;
pub use error::{GcpError, GcpResult};
pub use gcs::GcsClient;
pub use http::GcpHttp;
pub use scheduler::CloudSchedulerTrigger;
pub use vertex_endpoints::VertexEndpoints;
pub use vertex_pipelines::VertexPipelineExecutor;
pub use vertex_registry::VertexModelRegistry;

/// Every Google Cloud backend, built from one config and sharing one HTTP client.
#[derive(Debug, Clone)]
pub struct GcpBackends {
    pub config: GcpConfig,
    pub http: GcpHttp,
    pub artifacts: Arc<GcsClient>,
    pub executor: Arc<VertexPipelineExecutor>,
    pub registry: Arc<VertexModelRegistry>,
    pub deployer: Arc<CloudRunDeployer>,
    pub endpoints: Arc<VertexEndpoints>,
    /// Logs of pipeline jobs.
    pub logs: Arc<CloudLogging>,
    /// `None` without `webhook_base_url` or an OIDC service account.
    pub scheduler: Option<Arc<CloudSchedulerTrigger>>,
}

impl GcpBackends {
    /// Validates the config, finds credentials (`gcp.credentials_file`, else Application Default
    /// Credentials) and builds every backend.
    pub fn from_config(config: &GcpConfig) -> GcpResult<Self> {
        config.validate()?;
        Self::with_http(config, GcpHttp::from_config(config)?)
    }

    /// Builds every backend on a given HTTP client (e.g. anonymous, for emulators).
    pub fn with_http(config: &GcpConfig, http: GcpHttp) -> GcpResult<Self> {
        config.validate()?;
        let scheduler = match CloudSchedulerTrigger::new(http.clone(), config) {
            Ok(s) => Some(Arc::new(s)),
            Err(GcpError::Config(why)) => {
                tracing::debug!(%why, "cloud scheduler trigger not configured");
                None
            }
            Err(e) => return Err(e),
        };
        Ok(GcpBackends {
            config: config.clone(),
            artifacts: Arc::new(GcsClient::from_config(http.clone(), config)),
            executor: Arc::new(VertexPipelineExecutor::new(http.clone(), config)),
            registry: Arc::new(VertexModelRegistry::new(http.clone(), config)),
            deployer: Arc::new(CloudRunDeployer::new(http.clone(), config)),
            endpoints: Arc::new(VertexEndpoints::new(http.clone(), config)),
            logs: Arc::new(CloudLogging::new(http.clone(), config)),
            scheduler,
            http,
        })
    }
}
