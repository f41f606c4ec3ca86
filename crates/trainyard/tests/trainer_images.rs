//! `[gcp.images] trainer` / `trainer_gpu` reach the compiled pipeline: trainyard's trainer
//! image runs every component that imports generated or trainyard code (Transform, Trainer,
//! trainyard's evaluator and split executor), its GPU variant the Trainer's custom job when
//! GPUs are asked for; for `pipeline compile --target vertex` (from trainyard.toml) and for the
//! Vertex submit of `--backend gcp` (against the recording stand-in for Google's APIs).

#[path = "../../trainyard-gcp/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use serde_json::Value;

use common::FakeGoogle;
use trainyard::core::config::GpuConfig;
use trainyard::core::ports::{PipelineCompiler, VERTEX_PIPELINE_JOB_FILE};
use trainyard::core::run::{NewTrainingRun, RunConfig, TrainingRun};
use trainyard::{Backend, Platform, ProjectConfig, RunCompiler, VertexSettings, CONFIG_FILE};

const CPU_IMAGE: &str = "europe-central2-docker.pkg.dev/test-project/training/trainer@sha256:c0";
const GPU_IMAGE: &str = "europe-central2-docker.pkg.dev/test-project/training/trainer-gpu:7";

fn gpu() -> GpuConfig {
    GpuConfig {
        gpu_enabled: true,
        training_region: Some("europe-west4".into()),
        ..GpuConfig::default()
    }
}

fn new_run(name: &str, gpu: GpuConfig) -> NewTrainingRun {
    let mut config = RunConfig {
        gpu_config: gpu,
        ..RunConfig::default()
    };
    config.sampling_config.sample_percent = 50; // ExampleGen runs trainyard's split executor
    NewTrainingRun {
        ml_model: "shop".into(),
        name: name.into(),
        description: String::new(),
        config,
    }
}

/// Container image of every executor, and the GPU custom job's image (if any).
fn images(job: &Value) -> (BTreeMap<String, String>, Option<String>) {
    let executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.trim_end_matches("_executor").to_string(),
                v["container"]["image"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let text = job["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
        ["custom_config"]["runtimeValue"]["constantValue"]["stringValue"]
        .as_str()
        .unwrap();
    let cc: Value = serde_json::from_str(text).unwrap();
    let pool = cc
        .pointer("/ai_platform_training_args/worker_pool_specs/0/container_spec/image_uri")
        .map(|v| v.as_str().unwrap().to_string());
    (executors, pool)
}

fn assert_images(job: &Value, gpu: bool, cpu_image: &str, gpu_image: &str, tfx: &str) {
    let (executors, pool) = images(job);
    for c in ["CsvExampleGen", "Transform", "Trainer", "Evaluator"] {
        let name = if c == "CsvExampleGen" && !executors.contains_key(c) {
            "BigQueryExampleGen"
        } else {
            c
        };
        assert_eq!(executors[name], cpu_image, "{name}: {executors:?}");
    }
    for c in ["StatisticsGen", "SchemaGen", "Pusher"] {
        assert_eq!(executors[c], tfx, "{c}: {executors:?}");
    }
    if gpu {
        assert_eq!(pool.as_deref(), Some(gpu_image), "the GPU custom job");
    } else {
        assert_eq!(pool, None, "a CPU Trainer has no custom job");
    }
}

fn run_of(new: NewTrainingRun) -> TrainingRun {
    let mut run = TrainingRun::new(new, None, chrono::DateTime::UNIX_EPOCH);
    run.id = 3;
    run
}

#[test]
fn compile_for_vertex_takes_the_trainer_images_from_trainyard_toml() {
    let dir = tempfile::tempdir().unwrap();
    // no trainyard.toml: the Artifact Registry defaults of the given project and region
    let settings = VertexSettings::for_compile(dir.path(), "p1", "us-central1").unwrap();
    let compile = |settings: &VertexSettings, gpu: GpuConfig| -> Value {
        let files = RunCompiler::vertex(settings.clone())
            .compile(&run_of(new_run("images", gpu)), "gs://b/root")
            .unwrap();
        serde_json::from_str(&files[VERTEX_PIPELINE_JOB_FILE]).unwrap()
    };
    let tfx = trainyard_pipeline::DEFAULT_TFX_IMAGE;
    for (g, gpu_on) in [(GpuConfig::default(), false), (gpu(), true)] {
        assert_images(
            &compile(&settings, g),
            gpu_on,
            "us-central1-docker.pkg.dev/p1/ml-training/trainer:latest",
            "us-central1-docker.pkg.dev/p1/ml-training/trainer-gpu:latest",
            tfx,
        );
    }

    // [gcp.images] in trainyard.toml selects them
    let mut gcp = trainyard_gcp::GcpConfig::default();
    gcp.images.trainer = CPU_IMAGE.into();
    gcp.images.trainer_gpu = GPU_IMAGE.into();
    let config = ProjectConfig {
        gcp: Some(gcp),
        ..ProjectConfig::default()
    };
    std::fs::write(dir.path().join(CONFIG_FILE), config.to_toml()).unwrap();
    let settings = VertexSettings::for_compile(dir.path(), "p1", "us-central1").unwrap();
    assert_eq!(settings.project, "p1", "the flags' project wins");
    for (g, gpu_on) in [(GpuConfig::default(), false), (gpu(), true)] {
        assert_images(&compile(&settings, g), gpu_on, CPU_IMAGE, GPU_IMAGE, tfx);
    }
}

async fn gcp_project(fake: &FakeGoogle) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut gcp = fake.config_with_credentials(dir.path()).await;
    gcp.images.trainer = CPU_IMAGE.into();
    gcp.images.trainer_gpu = GPU_IMAGE.into();
    let config = ProjectConfig {
        gcp: Some(gcp),
        ..ProjectConfig::default()
    };
    std::fs::write(dir.path().join(CONFIG_FILE), config.to_toml()).unwrap();
    Platform::init(dir.path()).await.unwrap();
    dir
}

#[tokio::test]
async fn the_vertex_submit_runs_trainyard_components_in_the_configured_images() {
    let fake = FakeGoogle::start().await;
    let dir = gcp_project(&fake).await;
    let p = Platform::open_with(dir.path(), Backend::Gcp).await.unwrap();
    for (name, g, gpu_on) in [
        ("cpu run", GpuConfig::default(), false),
        ("gpu run", gpu(), true),
    ] {
        let run = p
            .training()
            .create_training_run(new_run(name, g))
            .await
            .unwrap();
        p.submit(run.id).await.unwrap();
        let posted: Vec<Value> = fake
            .requests_to("POST", "/pipelineJobs")
            .into_iter()
            .filter(|e| e.status == 200 && !e.path.ends_with(":cancel"))
            .map(|e| e.request.unwrap())
            .collect();
        let job = posted
            .iter()
            .find(|j| j["labels"]["trainyard_run_id"].as_str() == Some(run.id.to_string().as_str()))
            .expect("the run's job was posted");
        assert_images(
            job,
            gpu_on,
            CPU_IMAGE,
            GPU_IMAGE,
            trainyard_pipeline::DEFAULT_TFX_IMAGE,
        );
    }
}
