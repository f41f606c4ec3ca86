//! `[gcp]` of trainyard.toml, with environment overrides.
//!
//! ```toml
//! [gcp]
//! project = "my-project"
//! region = "europe-central2"
//! gpu_region = "europe-west4"
//! bucket = "my-project-trainyard"
//! service_account = "trainer@my-project.iam.gserviceaccount.com"
//! webhook_base_url = "https://trainyard-abc-uc.a.run.app"
//!
//! [gcp.images]
//! brute_force = "europe-central2-docker.pkg.dev/my-project/ml-serving/tf-serving-native:latest"
//! scann = "europe-central2-docker.pkg.dev/my-project/ml-serving/tf-serving-scann:latest"
//! # trainyard's trainer images (deploy/trainer/): Transform, Trainer, evaluator, split
//! trainer = "europe-central2-docker.pkg.dev/my-project/ml-training/trainer:latest"
//! trainer_gpu = "europe-central2-docker.pkg.dev/my-project/ml-training/trainer-gpu:latest"
//!
//! # GPU fallback ladder (this is the default; `gpu_fallback = []` turns fallback off)
//! [[gcp.gpu_fallback]]
//! gpu_type = "NVIDIA_TESLA_T4"
//! gpu_count = 2
//! machine_type = "n1-standard-16"
//! [[gcp.gpu_fallback]]
//! gpu_type = "NVIDIA_TESLA_T4"
//! gpu_count = 4
//! machine_type = "n1-standard-32"
//! [[gcp.gpu_fallback]]
//! gpu_type = "NVIDIA_L4"
//! gpu_count = 2
//! machine_type = "g2-standard-24"
//!
//! [gcp.endpoints]          # only for emulators and tests; Google's hosts by default
//! storage = "http://127.0.0.1:4443"
//! ```
//!
//! Environment variables override the file (see [`ENV_VARS`]); `GOOGLE_APPLICATION_CREDENTIALS`,
//! `CLOUDSDK_CONFIG`, `GCE_METADATA_HOST` and `STORAGE_EMULATOR_HOST` keep their usual meaning.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use trainyard_core::config::GpuLadder;
use trainyard_core::model_config::RetrievalAlgorithm;

use crate::error::{GcpError, GcpResult};

/// `[gcp.images]`: serving containers by retrieval algorithm, and trainyard's trainer images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServingImages {
    /// Native TF Serving image (brute-force retrieval, ranking). Empty: the Artifact Registry
    /// default `{region}-docker.pkg.dev/{project}/ml-serving/tf-serving-native:latest`.
    pub brute_force: String,
    /// ScaNN-capable image. Empty: `.../ml-serving/tf-serving-scann:latest`.
    pub scann: String,
    /// trainyard's trainer image (deploy/trainer/Dockerfile: TFX 1.16 + the managed env's
    /// pinned stack + trainyard's evaluator and split executor): ExampleGen with trainyard's
    /// split, Transform, Trainer and Evaluator run in it. Empty: the Artifact Registry default
    /// `{region}-docker.pkg.dev/{project}/ml-training/trainer:latest`.
    pub trainer: String,
    /// Its GPU variant (CUDA libraries for TensorFlow): the Trainer's custom job of runs that
    /// ask for GPUs. Empty: `.../ml-training/trainer-gpu:latest`.
    pub trainer_gpu: String,
}

/// Artifact Registry repository of the default trainer images (`deploy/trainer/cloudbuild.yaml`
/// pushes there).
pub const TRAINING_REPOSITORY: &str = "ml-training";

/// The default trainer image of a project and region: `trainer` (CPU) or `trainer-gpu`.
pub fn default_trainer_image(region: &str, project: &str, gpu: bool) -> String {
    let name = if gpu { "trainer-gpu" } else { "trainer" };
    format!("{region}-docker.pkg.dev/{project}/{TRAINING_REPOSITORY}/{name}:latest")
}

/// Base URLs of every Google endpoint the crate calls; each is Google's own host unless set.
/// Tests and emulators point them at 127.0.0.1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiEndpoints {
    /// Vertex AI; default `https://{region}-aiplatform.googleapis.com` (the regional host).
    pub vertex: Option<String>,
    /// Cloud Run Admin API v2; default `https://run.googleapis.com`.
    pub cloud_run: Option<String>,
    /// Cloud Storage JSON API; default `https://storage.googleapis.com`.
    pub storage: Option<String>,
    /// Cloud Scheduler; default `https://cloudscheduler.googleapis.com`.
    pub scheduler: Option<String>,
    /// Cloud Logging; default `https://logging.googleapis.com`.
    pub logging: Option<String>,
    /// OAuth2 token endpoint, replacing the `token_uri` of credential files.
    pub token: Option<String>,
    /// Metadata server `host[:port]`; default `GCE_METADATA_HOST` or `metadata.google.internal`.
    pub metadata_host: Option<String>,
}

/// Retry budget of every API call: exponential backoff with full jitter on 429, 5xx and
/// connection errors, bounded in attempts and in total time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// No new attempt starts after this much time since the first one.
    pub max_elapsed_ms: u64,
    pub max_attempts: u32,
    /// Timeout of one HTTP attempt.
    pub request_timeout_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            max_elapsed_ms: 120_000,
            max_attempts: 8,
            request_timeout_ms: 60_000,
        }
    }
}

impl RetrySettings {
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms)
    }
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms)
    }
    pub fn max_elapsed(&self) -> Duration {
        Duration::from_millis(self.max_elapsed_ms)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// How long-running operations (model upload, Cloud Run deploys) are awaited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperationSettings {
    pub poll_initial_ms: u64,
    pub poll_max_ms: u64,
    pub timeout_secs: u64,
}

impl Default for OperationSettings {
    fn default() -> Self {
        OperationSettings {
            poll_initial_ms: 1_000,
            poll_max_ms: 15_000,
            timeout_secs: 1_200,
        }
    }
}

/// Cloud Scheduler job settings shared by every schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Cloud Scheduler location; default: `region`.
    pub region: Option<String>,
    /// Identity whose OIDC token signs webhook calls; default: `service_account`.
    pub service_account: Option<String>,
    /// Webhook path under `webhook_base_url`; `{id}` is the schedule id.
    pub webhook_path: String,
    /// OIDC audience; default: `webhook_base_url`.
    pub audience: Option<String>,
    pub retry_count: u32,
    pub attempt_deadline_secs: u32,
    pub min_backoff_secs: u32,
    pub max_backoff_secs: u32,
    pub max_doublings: u32,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            region: None,
            service_account: None,
            webhook_path: "/api/training/schedules/{id}/webhook/".into(),
            audience: None,
            retry_count: 3,
            attempt_deadline_secs: 180,
            min_backoff_secs: 5,
            max_backoff_secs: 3600,
            max_doublings: 5,
        }
    }
}

/// `[gcp]` of trainyard.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcpConfig {
    pub project: String,
    /// Orchestration region: Vertex AI Pipelines, Model Registry, Endpoints, Cloud Run.
    pub region: String,
    /// Region for GPU training jobs when `region` has no GPUs.
    pub gpu_region: Option<String>,
    /// Bucket for pipeline roots and artifacts (name, without gs://).
    pub bucket: String,
    /// Service account the pipelines and Cloud Run services run as.
    pub service_account: Option<String>,
    pub images: ServingImages,
    /// Base URL of trainyard's HTTP router, for Cloud Scheduler webhooks.
    pub webhook_base_url: Option<String>,
    /// Vertex AI endpoint whose deployedModels give the live deployment status: a resource
    /// name (`projects/.../endpoints/123`) or a display name.
    pub vertex_endpoint: Option<String>,
    /// Service-account key file to use instead of Application Default Credentials.
    pub credentials_file: Option<PathBuf>,
    pub endpoints: ApiEndpoints,
    pub retry: RetrySettings,
    pub operations: OperationSettings,
    pub scheduler: SchedulerSettings,
    /// Largest object `ArtifactStore::read` returns, in bytes.
    pub max_read_bytes: u64,
    /// GPU configs the Vertex executor falls back to, in order, when Vertex AI refuses a GPU
    /// Trainer for quota or capacity; a run starts at its own gpu_config. Empty: no fallback.
    pub gpu_fallback: GpuLadder,
}

impl Default for GcpConfig {
    fn default() -> Self {
        GcpConfig {
            project: String::new(),
            region: "us-central1".into(),
            gpu_region: None,
            bucket: String::new(),
            service_account: None,
            images: ServingImages::default(),
            webhook_base_url: None,
            vertex_endpoint: None,
            credentials_file: None,
            endpoints: ApiEndpoints::default(),
            retry: RetrySettings::default(),
            operations: OperationSettings::default(),
            scheduler: SchedulerSettings::default(),
            max_read_bytes: 64 << 20,
            gpu_fallback: GpuLadder::default(),
        }
    }
}

/// The environment variables that override `[gcp]` (name, what it sets).
pub const ENV_VARS: &[(&str, &str)] = &[
    ("TRAINYARD_GCP_PROJECT", "project"),
    ("TRAINYARD_GCP_REGION", "region"),
    ("TRAINYARD_GCP_GPU_REGION", "gpu_region"),
    ("TRAINYARD_GCP_BUCKET", "bucket"),
    ("TRAINYARD_GCP_SERVICE_ACCOUNT", "service_account"),
    ("TRAINYARD_GCP_IMAGE_BRUTE_FORCE", "images.brute_force"),
    ("TRAINYARD_GCP_IMAGE_SCANN", "images.scann"),
    ("TRAINYARD_GCP_IMAGE_TRAINER", "images.trainer"),
    ("TRAINYARD_GCP_IMAGE_TRAINER_GPU", "images.trainer_gpu"),
    ("TRAINYARD_GCP_WEBHOOK_BASE_URL", "webhook_base_url"),
    ("TRAINYARD_GCP_VERTEX_ENDPOINT", "vertex_endpoint"),
    ("TRAINYARD_GCP_CREDENTIALS_FILE", "credentials_file"),
    ("TRAINYARD_GCP_SCHEDULER_REGION", "scheduler.region"),
    (
        "TRAINYARD_GCP_SCHEDULER_SERVICE_ACCOUNT",
        "scheduler.service_account",
    ),
    ("TRAINYARD_GCP_VERTEX_URL", "endpoints.vertex"),
    ("TRAINYARD_GCP_RUN_URL", "endpoints.cloud_run"),
    ("TRAINYARD_GCP_STORAGE_URL", "endpoints.storage"),
    ("TRAINYARD_GCP_SCHEDULER_URL", "endpoints.scheduler"),
    ("TRAINYARD_GCP_LOGGING_URL", "endpoints.logging"),
    ("TRAINYARD_GCP_TOKEN_URL", "endpoints.token"),
    (
        "STORAGE_EMULATOR_HOST",
        "endpoints.storage (when TRAINYARD_GCP_STORAGE_URL is unset)",
    ),
    (
        "GCE_METADATA_HOST",
        "endpoints.metadata_host (when not set in the file)",
    ),
];

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl GcpConfig {
    /// Applies the environment of this process (see [`ENV_VARS`]).
    pub fn with_env_overrides(self) -> Self {
        self.with_overrides_from(|k| std::env::var(k).ok())
    }

    /// Applies overrides from any variable lookup (testable without touching the process env).
    pub fn with_overrides_from(mut self, env: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| non_empty(env(k));
        if let Some(v) = get("TRAINYARD_GCP_PROJECT") {
            self.project = v;
        }
        if let Some(v) = get("TRAINYARD_GCP_REGION") {
            self.region = v;
        }
        if let Some(v) = get("TRAINYARD_GCP_GPU_REGION") {
            self.gpu_region = Some(v);
        }
        if let Some(v) = get("TRAINYARD_GCP_BUCKET") {
            self.bucket = v.trim_start_matches("gs://").trim_end_matches('/').into();
        }
        if let Some(v) = get("TRAINYARD_GCP_SERVICE_ACCOUNT") {
            self.service_account = Some(v);
        }
        if let Some(v) = get("TRAINYARD_GCP_IMAGE_BRUTE_FORCE") {
            self.images.brute_force = v;
        }
        if let Some(v) = get("TRAINYARD_GCP_IMAGE_SCANN") {
            self.images.scann = v;
        }
        if let Some(v) = get("TRAINYARD_GCP_IMAGE_TRAINER") {
            self.images.trainer = v;
        }
        if let Some(v) = get("TRAINYARD_GCP_IMAGE_TRAINER_GPU") {
            self.images.trainer_gpu = v;
        }
        if let Some(v) = get("TRAINYARD_GCP_WEBHOOK_BASE_URL") {
            self.webhook_base_url = Some(v);
        }
        if let Some(v) = get("TRAINYARD_GCP_VERTEX_ENDPOINT") {
            self.vertex_endpoint = Some(v);
        }
        if let Some(v) = get("TRAINYARD_GCP_CREDENTIALS_FILE") {
            self.credentials_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get("TRAINYARD_GCP_SCHEDULER_REGION") {
            self.scheduler.region = Some(v);
        }
        if let Some(v) = get("TRAINYARD_GCP_SCHEDULER_SERVICE_ACCOUNT") {
            self.scheduler.service_account = Some(v);
        }
        if let Some(v) = get("TRAINYARD_GCP_VERTEX_URL") {
            self.endpoints.vertex = Some(v);
        }
        if let Some(v) = get("TRAINYARD_GCP_RUN_URL") {
            self.endpoints.cloud_run = Some(v);
        }
        if let Some(v) = get("TRAINYARD_GCP_STORAGE_URL") {
            self.endpoints.storage = Some(v);
        } else if let Some(v) = get("STORAGE_EMULATOR_HOST") {
            let url = if v.contains("://") {
                v
            } else {
                format!("http://{v}")
            };
            self.endpoints.storage = Some(url);
        }
        if let Some(v) = get("TRAINYARD_GCP_SCHEDULER_URL") {
            self.endpoints.scheduler = Some(v);
        }
        if let Some(v) = get("TRAINYARD_GCP_LOGGING_URL") {
            self.endpoints.logging = Some(v);
        }
        if let Some(v) = get("TRAINYARD_GCP_TOKEN_URL") {
            self.endpoints.token = Some(v);
        }
        if self.endpoints.metadata_host.is_none() {
            self.endpoints.metadata_host = get("GCE_METADATA_HOST");
        }
        self
    }

    /// Checks what every backend needs.
    pub fn validate(&self) -> GcpResult<()> {
        let bad = |field: &str, why: &str| Err(GcpError::Config(format!("{field}: {why}")));
        if self.project.trim().is_empty() {
            return bad("gcp.project", "is required");
        }
        if self.region.trim().is_empty() {
            return bad("gcp.region", "is required");
        }
        if self.bucket.trim().is_empty() {
            return bad("gcp.bucket", "is required");
        }
        if self.bucket.contains('/') {
            return bad("gcp.bucket", "is a bucket name, without gs:// or a path");
        }
        if self.retry.max_attempts == 0 {
            return bad("gcp.retry.max_attempts", "must be at least 1");
        }
        if let Err(e) = self.gpu_fallback.validate() {
            return bad(&format!("gcp.{}", e.field), &e.reason);
        }
        Ok(())
    }

    fn trimmed(url: &str) -> String {
        url.trim_end_matches('/').to_string()
    }

    pub fn vertex_base_url(&self) -> String {
        self.endpoints.vertex.as_deref().map_or_else(
            || format!("https://{}-aiplatform.googleapis.com", self.region),
            Self::trimmed,
        )
    }

    pub fn cloud_run_base_url(&self) -> String {
        self.endpoints
            .cloud_run
            .as_deref()
            .map_or_else(|| "https://run.googleapis.com".into(), Self::trimmed)
    }

    pub fn storage_base_url(&self) -> String {
        self.endpoints
            .storage
            .as_deref()
            .map_or_else(|| "https://storage.googleapis.com".into(), Self::trimmed)
    }

    pub fn scheduler_base_url(&self) -> String {
        self.endpoints.scheduler.as_deref().map_or_else(
            || "https://cloudscheduler.googleapis.com".into(),
            Self::trimmed,
        )
    }

    pub fn logging_base_url(&self) -> String {
        self.endpoints
            .logging
            .as_deref()
            .map_or_else(|| "https://logging.googleapis.com".into(), Self::trimmed)
    }

    /// The region GPU training runs in when a run names none (`gpu_config.training_region`):
    /// `gpu_region`, when the orchestration `region` has no Vertex GPU training (e.g.
    /// europe-central2). `None` keeps such runs in `region`, where the GPU rules refuse them
    /// before submission, naming the alternative.
    pub fn gpu_training_region(&self) -> Option<&str> {
        let without_gpus =
            trainyard_core::config::REGIONS_WITHOUT_GPU_TRAINING.contains(&self.region.trim());
        self.gpu_region
            .as_deref()
            .map(str::trim)
            .filter(|r| without_gpus && !r.is_empty())
    }

    /// The serving image for a retrieval algorithm (configured, or the Artifact Registry default).
    pub fn serving_image(&self, algorithm: RetrievalAlgorithm) -> String {
        let (configured, name) = match algorithm {
            RetrievalAlgorithm::BruteForce => (&self.images.brute_force, "tf-serving-native"),
            RetrievalAlgorithm::Scann => (&self.images.scann, "tf-serving-scann"),
        };
        if configured.trim().is_empty() {
            format!(
                "{}-docker.pkg.dev/{}/ml-serving/{name}:latest",
                self.region, self.project
            )
        } else {
            configured.clone()
        }
    }

    /// The trainer image (configured, or the Artifact Registry default): its GPU variant for
    /// runs that ask for GPUs.
    pub fn trainer_image(&self, gpu: bool) -> String {
        let configured = if gpu {
            &self.images.trainer_gpu
        } else {
            &self.images.trainer
        };
        if configured.trim().is_empty() {
            default_trainer_image(&self.region, &self.project, gpu)
        } else {
            configured.trim().to_string()
        }
    }

    /// `projects/{project}/locations/{region}`
    pub fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn toml_section_parses_and_env_overrides_win() {
        let cfg: GcpConfig = serde_json::from_value(serde_json::json!({
            "project": "p1", "region": "europe-central2", "bucket": "b1",
            "images": {"scann": "img/scann:1"},
            "endpoints": {"storage": "http://127.0.0.1:1/"}
        }))
        .unwrap();
        assert_eq!(cfg.serving_image(RetrievalAlgorithm::Scann), "img/scann:1");
        assert_eq!(
            cfg.serving_image(RetrievalAlgorithm::BruteForce),
            "europe-central2-docker.pkg.dev/p1/ml-serving/tf-serving-native:latest"
        );
        assert_eq!(cfg.storage_base_url(), "http://127.0.0.1:1");
        assert_eq!(
            cfg.vertex_base_url(),
            "https://europe-central2-aiplatform.googleapis.com"
        );
        let env: HashMap<&str, &str> = [
            ("TRAINYARD_GCP_PROJECT", "p2"),
            ("TRAINYARD_GCP_BUCKET", "gs://b2/"),
            ("TRAINYARD_GCP_VERTEX_URL", "http://127.0.0.1:9"),
            ("STORAGE_EMULATOR_HOST", "127.0.0.1:4443"),
            ("GCE_METADATA_HOST", "127.0.0.1:8089"),
            ("TRAINYARD_GCP_REGION", "  "),
        ]
        .into_iter()
        .collect();
        let cfg = cfg.with_overrides_from(|k| env.get(k).map(|v| v.to_string()));
        assert_eq!(cfg.project, "p2");
        assert_eq!(cfg.bucket, "b2");
        assert_eq!(cfg.region, "europe-central2", "blank env must not override");
        assert_eq!(cfg.vertex_base_url(), "http://127.0.0.1:9");
        // STORAGE_EMULATOR_HOST (the variable Google's client libraries honour) beats the file
        assert_eq!(cfg.storage_base_url(), "http://127.0.0.1:4443");
        assert_eq!(
            cfg.endpoints.metadata_host.as_deref(),
            Some("127.0.0.1:8089")
        );
        cfg.validate().unwrap();
        let unknown = serde_json::from_value::<GcpConfig>(serde_json::json!({"projct": "x"}));
        assert!(unknown.is_err(), "typos in [gcp] must be rejected");
    }

    #[test]
    fn gpu_region_takes_gpu_runs_of_a_region_without_gpus() {
        let mut cfg = GcpConfig {
            region: "europe-central2".into(),
            ..GcpConfig::default()
        };
        assert_eq!(
            cfg.gpu_training_region(),
            None,
            "unset: refused later, not moved"
        );
        cfg.gpu_region = Some("europe-west4".into());
        assert_eq!(cfg.gpu_training_region(), Some("europe-west4"));
        cfg.region = "us-central1".into();
        assert_eq!(
            cfg.gpu_training_region(),
            None,
            "a region with GPUs keeps them"
        );
    }

    #[test]
    fn trainer_images_are_configured_or_default_to_artifact_registry() {
        let mut cfg = GcpConfig {
            project: "p1".into(),
            region: "europe-central2".into(),
            ..GcpConfig::default()
        };
        assert_eq!(
            cfg.trainer_image(false),
            "europe-central2-docker.pkg.dev/p1/ml-training/trainer:latest"
        );
        assert_eq!(
            cfg.trainer_image(true),
            "europe-central2-docker.pkg.dev/p1/ml-training/trainer-gpu:latest"
        );
        cfg.images.trainer_gpu = "img/gpu@sha256:abc".into();
        assert_eq!(cfg.trainer_image(true), "img/gpu@sha256:abc");
        assert!(cfg.trainer_image(false).ends_with("/trainer:latest"));
        let cfg: GcpConfig = serde_json::from_value(serde_json::json!({
            "images": {"trainer": "img/cpu:1"}
        }))
        .unwrap();
        assert_eq!(cfg.trainer_image(false), "img/cpu:1");
        let cfg = cfg.with_overrides_from(|k| {
            (k == "TRAINYARD_GCP_IMAGE_TRAINER_GPU").then(|| "img/gpu:2".to_string())
        });
        assert_eq!(cfg.trainer_image(true), "img/gpu:2");
    }

    #[test]
    fn validate_names_the_missing_field() {
        let e = GcpConfig::default().validate().unwrap_err();
        assert!(e.to_string().contains("gcp.project"), "{e}");
    }
}
