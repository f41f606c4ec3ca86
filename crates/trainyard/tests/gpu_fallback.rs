//! The GPU fallback ladder through the training service: a run compiled for Vertex AI, submitted
//! by the Vertex executor to a local server that refuses T4s for quota the way Vertex AI does;
//! the run records every attempt and the GPUs it got.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use trainyard::core::config::{GpuConfig, GpuType, GPU_ATTEMPTS_ARTIFACT};
use trainyard::core::ports::ArtifactStore;
use trainyard::core::run::{NewTrainingRun, RunConfig};
use trainyard::{Platform, RunCompiler, VertexSettings, WheelUploadingExecutor};
use trainyard_core::RunStatus;
use trainyard_gcp::{Credentials, GcpConfig, GcpHttp, Secret, VertexPipelineExecutor};

const REGION: &str = "europe-west4";

/// Answers pipelineJobs.create: 429 RESOURCE_EXHAUSTED for any accelerator in `refused`.
#[derive(Clone)]
struct FakeVertex {
    refused: Vec<&'static str>,
    /// Accelerator type and count of each create's Trainer, in order.
    creates: Arc<Mutex<Vec<(String, u64)>>>,
}

async fn create_job(
    State(fake): State<FakeVertex>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let config: Value = serde_json::from_str(
        body["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
            ["custom_config"]["runtimeValue"]["constantValue"]["stringValue"]
            .as_str()
            .unwrap_or("{}"),
    )
    .unwrap();
    let spec = &config["ai_platform_training_args"]["worker_pool_specs"][0]["machine_spec"];
    let accelerator = spec["accelerator_type"].as_str().unwrap_or("").to_string();
    let count = spec["accelerator_count"].as_u64().unwrap_or(0);
    fake.creates
        .lock()
        .unwrap()
        .push((accelerator.clone(), count));
    if fake.refused.contains(&accelerator.as_str()) {
        let metric = format!(
            "custom_model_training_{}_gpus",
            accelerator.replace("TESLA_", "").to_lowercase()
        );
        let error = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": format!("The following quota metrics exceed quota limits: aiplatform.googleapis.com/{metric}")}});
        return (StatusCode::TOO_MANY_REQUESTS, axum::Json(error)).into_response();
    }
    let job = json!({"name": format!("projects/p/locations/{REGION}/pipelineJobs/job-1"), "state": "PIPELINE_STATE_PENDING"});
    axum::Json(job).into_response()
}

/// Wheels the submission uploads.
#[derive(Default)]
struct MemoryStore(Mutex<BTreeMap<String, Vec<u8>>>);

#[async_trait::async_trait]
impl ArtifactStore for MemoryStore {
    async fn list(&self, prefix: &str) -> trainyard::core::Result<Vec<String>> {
        let m = self.0.lock().unwrap();
        Ok(m.keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
    async fn read(&self, path: &str) -> trainyard::core::Result<Vec<u8>> {
        let m = self.0.lock().unwrap();
        m.get(path)
            .cloned()
            .ok_or_else(|| trainyard::core::Error::not_found("object", path))
    }
    async fn write(&self, path: &str, bytes: &[u8]) -> trainyard::core::Result<()> {
        self.0.lock().unwrap().insert(path.into(), bytes.to_vec());
        Ok(())
    }
}

async fn platform(
    refused: Vec<&'static str>,
) -> (tempfile::TempDir, Platform, FakeVertex, Arc<MemoryStore>) {
    let fake = FakeVertex {
        refused,
        creates: Arc::default(),
    };
    let app = axum::Router::new()
        .route(
            &format!("/v1/projects/p/locations/{REGION}/pipelineJobs"),
            axum::routing::post(create_job),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut gcp = GcpConfig {
        project: "p".into(),
        region: REGION.into(),
        bucket: "b".into(),
        ..GcpConfig::default()
    };
    gcp.endpoints.vertex = Some(format!("http://{addr}"));
    gcp.validate().unwrap();
    let http = GcpHttp::new(Credentials::Static(Secret::new("t")), gcp.retry.clone()).unwrap();
    let store = Arc::new(MemoryStore::default());
    let executor = Arc::new(WheelUploadingExecutor {
        artifacts: store.clone(),
        inner: Arc::new(VertexPipelineExecutor::new(http, &gcp)),
    });
    let compiler = Arc::new(RunCompiler::vertex(VertexSettings {
        project: gcp.project.clone(),
        region: gcp.region.clone(),
        ..VertexSettings::default()
    }));
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::init(dir.path()).await.unwrap().with_executor(
        executor,
        compiler,
        "gs://b/pipeline_root",
    );
    (dir, p, fake, store)
}

fn gpu_run() -> NewTrainingRun {
    NewTrainingRun {
        ml_model: "shop".into(),
        name: "gpu run".into(),
        description: String::new(),
        config: RunConfig {
            gpu_config: GpuConfig {
                gpu_enabled: true,
                ..GpuConfig::default()
            },
            ..RunConfig::default()
        },
    }
}

fn attempts(run: &trainyard::core::run::TrainingRun) -> Vec<Value> {
    let text = run
        .artifacts
        .get(GPU_ATTEMPTS_ARTIFACT)
        .expect("the run records its GPU attempts");
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn the_run_records_each_attempt_and_the_gpus_it_got() {
    let (_dir, p, fake, store) = platform(vec!["NVIDIA_TESLA_T4"]).await;
    let training = p.training();
    let run = training.create_training_run(gpu_run()).await.unwrap();
    let run = p.submit(run.id).await.unwrap();

    assert_eq!(
        *fake.creates.lock().unwrap(),
        vec![
            ("NVIDIA_TESLA_T4".to_string(), 2),
            ("NVIDIA_TESLA_T4".to_string(), 4),
            ("NVIDIA_L4".to_string(), 2)
        ]
    );
    assert_eq!(run.status, RunStatus::Running);
    assert!(run.vertex_pipeline_job_name.is_some());
    let gpu = &run.config.gpu_config;
    assert_eq!(
        (gpu.gpu_type, gpu.gpu_count, gpu.machine_type.as_str()),
        (GpuType::NvidiaL4, 2, "g2-standard-24")
    );
    let a = attempts(&run);
    let rows: Vec<(&str, &str, u64, &str)> = a
        .iter()
        .map(|x| {
            (
                x["machine_type"].as_str().unwrap(),
                x["accelerator_type"].as_str().unwrap(),
                x["accelerator_count"].as_u64().unwrap(),
                x["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("n1-standard-16", "NVIDIA_TESLA_T4", 2, "quota"),
            ("n1-standard-32", "NVIDIA_TESLA_T4", 4, "quota"),
            ("g2-standard-24", "NVIDIA_L4", 2, "accepted"),
        ]
    );
    assert!(a[0]["error"]
        .as_str()
        .unwrap()
        .contains("custom_model_training_nvidia_t4_gpus"));
    // the stored run says the same
    let stored = training.get(run.id).await.unwrap();
    assert_eq!(stored.config.gpu_config, run.config.gpu_config);
    assert_eq!(attempts(&stored), a);
    // the wheels went up once, before the first create
    let wheels = store.list("gs://b/pipeline_root/").await.unwrap();
    assert_eq!(wheels.len(), 2, "{wheels:?}");
}

#[tokio::test]
async fn a_run_refused_on_every_rung_fails_naming_each_attempt() {
    let (_dir, p, fake, _store) = platform(vec!["NVIDIA_TESLA_T4", "NVIDIA_L4"]).await;
    let training = p.training();
    let run = training.create_training_run(gpu_run()).await.unwrap();
    let err = p.submit(run.id).await.unwrap_err();
    assert!(err.to_string().contains("no GPU config"), "{err}");
    assert_eq!(fake.creates.lock().unwrap().len(), 3);
    let run = training.get(run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let message = run.error_message.clone().unwrap();
    for rung in [
        "2x NVIDIA_TESLA_T4 on n1-standard-16",
        "4x NVIDIA_TESLA_T4 on n1-standard-32",
        "2x NVIDIA_L4 on g2-standard-24",
    ] {
        assert!(message.contains(rung), "{rung} not in {message}");
    }
    assert_eq!(attempts(&run).len(), 3);
    assert!(
        run.vertex_pipeline_job_name.is_none(),
        "nothing was submitted"
    );
    // no config was accepted: the run keeps the GPUs it asked for
    assert_eq!(run.config.gpu_config.gpu_count, 2);
    assert_eq!(run.config.gpu_config.gpu_type, GpuType::NvidiaTeslaT4);
}

#[test]
fn the_ladder_is_set_per_project_in_trainyard_toml() {
    let text = r#"
[gcp]
project = "p"
region = "europe-central2"
bucket = "b"

[[gcp.gpu_fallback]]
gpu_type = "NVIDIA_L4"
gpu_count = 2
machine_type = "g2-standard-24"
training_region = "europe-west4"

[[gcp.gpu_fallback]]
gpu_type = "NVIDIA_TESLA_T4"
gpu_count = 4
machine_type = "n1-standard-32"
"#;
    let gcp = trainyard::ProjectConfig::from_toml(text)
        .unwrap()
        .gcp
        .unwrap();
    gcp.validate().unwrap();
    let ladder = &gcp.gpu_fallback.0;
    assert_eq!(ladder.len(), 2);
    assert_eq!(ladder[0].gpu_type, GpuType::NvidiaL4);
    assert_eq!(ladder[0].training_region.as_deref(), Some("europe-west4"));
    let off = trainyard::ProjectConfig::from_toml(
        "[gcp]\nproject = \"p\"\nbucket = \"b\"\ngpu_fallback = []\n",
    )
    .unwrap();
    assert!(off.gcp.unwrap().gpu_fallback.0.is_empty());
}
