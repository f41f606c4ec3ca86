//! The compiled IR for every model type and GPU layout: strict protobuf parse (kfp-pipeline-spec,
//! in the managed env) and the Trainer's job spec carrying exactly the configured GPUs.

use std::collections::BTreeMap;

use serde_json::Value;
use trainyard_core::config::{DataSource, EvaluatorConfig, GpuConfig, GpuType, TrainingParams};
use trainyard_core::model_config::ModelType;
use trainyard_pipeline::{local, vertex, PipelineError, PipelineInputs};

fn inputs(model_type: ModelType, gpu: GpuConfig) -> PipelineInputs {
    PipelineInputs {
        name: "recs".into(),
        pipeline_root: "gs://bucket/pipeline_root".into(),
        data: DataSource::BigQuery {
            query: "SELECT * FROM `p.d.t`".into(),
        },
        model_type,
        modules: BTreeMap::from([
            (
                "transform_module.py".into(),
                "def preprocessing_fn(inputs):\n    return inputs\n".into(),
            ),
            (
                "trainer_module.py".into(),
                "def run_fn(fn_args):\n    pass\n".into(),
            ),
        ]),
        training: TrainingParams::default(),
        gpu,
        evaluator: EvaluatorConfig::default(),
        sampling: Default::default(),
        serving_dir: "gs://bucket/serving".into(),
        project: "p".into(),
        region: "europe-central2".into(),
        tfx_image: "tfx".into(),
        trainer_image: "trainer".into(),
        trainer_gpu_image: "tfx-gpu".into(),
        labels: BTreeMap::from([("trainyard_run_id".into(), "7".into())]),
        mlflow_tracking_uri: None,
        trainyard_run_id: None,
        trainyard_run_key: None,
    }
}

fn layouts() -> Vec<(&'static str, GpuConfig)> {
    let gpu = |t, n, machine: &str| GpuConfig {
        gpu_enabled: true,
        gpu_type: t,
        gpu_count: n,
        machine_type: machine.into(),
        preemptible: false,
        training_region: Some("europe-west4".into()),
    };
    vec![
        ("cpu", GpuConfig::default()),
        ("2xT4", gpu(GpuType::NvidiaTeslaT4, 2, "n1-standard-16")),
        ("4xL4", gpu(GpuType::NvidiaL4, 4, "g2-standard-48")),
    ]
}

fn trainer_custom_config(job: &Value) -> Value {
    let s = job["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
        ["custom_config"]["runtimeValue"]["constantValue"]["stringValue"]
        .as_str()
        .unwrap();
    serde_json::from_str(s).unwrap()
}

#[test]
fn trainer_job_spec_carries_exactly_the_configured_gpus() {
    for model_type in [
        ModelType::Retrieval,
        ModelType::Ranking,
        ModelType::Multitask,
    ] {
        for (name, gpu) in layouts() {
            let job = vertex::compile(&inputs(model_type, gpu.clone()))
                .unwrap()
                .job;
            let cc = trainer_custom_config(&job);
            let executor = &job["pipelineSpec"]["deploymentSpec"]["executors"]["Trainer_executor"]
                ["container"]["args"][1];
            if gpu.gpu_enabled {
                let spec = &cc["ai_platform_training_args"]["worker_pool_specs"][0];
                assert_eq!(
                    spec["machine_spec"]["machine_type"],
                    gpu.machine_type.as_str(),
                    "{name}"
                );
                assert_eq!(
                    spec["machine_spec"]["accelerator_type"],
                    gpu.gpu_type.vertex_name(),
                    "{name}"
                );
                assert_eq!(
                    spec["machine_spec"]["accelerator_count"], gpu.gpu_count,
                    "{name}"
                );
                assert_eq!(spec["container_spec"]["image_uri"], "tfx-gpu");
                assert_eq!(
                    cc["ai_platform_vertex_region"], "europe-west4",
                    "split region: trainer in the GPU region"
                );
                assert_eq!(
                    cc["gpu_count"], gpu.gpu_count,
                    "the run_fn sees the same count"
                );
                assert_eq!(
                    executor,
                    "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor"
                );
            } else {
                assert!(cc.get("ai_platform_training_args").is_none());
                assert_eq!(cc["gpu_count"], 0);
                assert_eq!(executor, "tfx.components.trainer.executor.GenericExecutor");
            }
            assert_eq!(job["labels"]["trainyard_run_id"], "7");
        }
    }
}

#[test]
fn gpus_in_a_region_without_gpu_training_are_refused_before_submit() {
    let mut gpu = layouts().remove(1).1;
    gpu.training_region = None; // would train in europe-central2
    let err = vertex::compile(&inputs(ModelType::Retrieval, gpu)).unwrap_err();
    let PipelineError::Invalid(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(e.field, "gpu_config.training_region");
    assert!(e.reason.contains("europe-central2"), "{e}");
}

#[test]
fn compile_is_deterministic_and_bad_input_is_typed() {
    let a = vertex::compile(&inputs(ModelType::Ranking, GpuConfig::default())).unwrap();
    let b = vertex::compile(&inputs(ModelType::Ranking, GpuConfig::default())).unwrap();
    assert_eq!(
        serde_json::to_string(&a.job).unwrap(),
        serde_json::to_string(&b.job).unwrap()
    );
    assert_eq!(a.wheels, b.wheels, "wheel bytes are reproducible");
    let mut bad = inputs(ModelType::Ranking, GpuConfig::default());
    bad.name = "Has Spaces".into();
    assert!(matches!(
        vertex::compile(&bad),
        Err(PipelineError::Invalid(_))
    ));
    let mut missing = inputs(ModelType::Ranking, GpuConfig::default());
    missing.modules.remove("trainer_module.py");
    assert!(matches!(
        vertex::compile(&missing),
        Err(PipelineError::Invalid(_))
    ));
    // BigQuery data cannot run locally.
    let err = local::render(
        &inputs(ModelType::Ranking, GpuConfig::default()),
        "/m",
        "/m.db",
    )
    .unwrap_err();
    assert!(err.to_string().contains("BigQuery"), "{err}");
}

#[test]
#[ignore = "needs TRAINYARD_PYTHON (the managed env with kfp-pipeline-spec); run by make test"]
fn every_model_type_and_gpu_layout_parses_strictly() {
    let python = std::env::var("TRAINYARD_PYTHON")
        .expect("TRAINYARD_PYTHON must name the managed env's python");
    let mut jobs = serde_json::Map::new();
    for model_type in [
        ModelType::Retrieval,
        ModelType::Ranking,
        ModelType::Multitask,
    ] {
        for (name, gpu) in layouts() {
            for data in [
                DataSource::BigQuery {
                    query: "SELECT 1".into(),
                },
                DataSource::Csv {
                    path: "gs://b/d".into(),
                },
            ] {
                let mut i = inputs(model_type, gpu.clone());
                i.data = data.clone();
                let key = format!("{model_type:?}-{name}-{data:?}");
                jobs.insert(key, vertex::compile(&i).unwrap().job);
            }
        }
    }
    // A negative control: an unknown field must be reported.
    let mut broken = jobs.values().next().unwrap().clone();
    broken["pipelineSpec"]["components"]["Trainer"]["executorLable"] = Value::from("typo");
    jobs.insert("broken".into(), broken);
    let mut child = std::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/parse_strictly.py"
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &jobs).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let report: BTreeMap<String, Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.len(), 19);
    assert!(
        !report["broken"].is_empty(),
        "the strict parse must reject an unknown field"
    );
    for (case, problems) in report.into_iter().filter(|(c, _)| c != "broken") {
        assert!(problems.is_empty(), "{case}: {problems:?}");
    }
}

#[test]
fn a_preemptible_run_asks_vertex_for_spot_vms() {
    let mut gpu = layouts().remove(1).1;
    let on_demand = trainer_custom_config(
        &vertex::compile(&inputs(ModelType::Retrieval, gpu.clone()))
            .unwrap()
            .job,
    );
    assert!(
        on_demand["ai_platform_training_args"]
            .get("scheduling")
            .is_none(),
        "on demand: Vertex's default strategy"
    );
    gpu.preemptible = true;
    let cc = trainer_custom_config(
        &vertex::compile(&inputs(ModelType::Retrieval, gpu))
            .unwrap()
            .job,
    );
    // aiplatform v1 CustomJobSpec.scheduling.strategy (enum Scheduling.Strategy)
    assert_eq!(
        cc["ai_platform_training_args"]["scheduling"],
        serde_json::json!({"strategy": "SPOT"})
    );
}

#[test]
fn the_vertex_target_needs_a_project_and_a_cloud_storage_root() {
    let e = vertex::check_settings("", "gs://b/root").unwrap_err();
    assert_eq!(e.field, "gcp.project");
    let e = vertex::check_settings("  ", "gs://b/root").unwrap_err();
    assert_eq!(e.field, "gcp.project");
    for root in ["/tmp/root", "root", "gs://", "gs:///x", "s3://b/root"] {
        let e = vertex::check_settings("p", root).unwrap_err();
        assert_eq!(e.field, "pipeline_root", "{root}");
        assert!(e.reason.contains("gs://"), "{e}");
    }
    vertex::check_settings("p", "gs://b").unwrap();
    vertex::check_settings("p", "gs://b/pipeline_root/runs/7").unwrap();
}

fn executor_images(job: &Value) -> BTreeMap<String, String> {
    job["pipelineSpec"]["deploymentSpec"]["executors"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.trim_end_matches("_executor").to_string(),
                v["container"]["image"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// trainyard's trainer image runs every container that imports generated or trainyard code
/// (Transform, Trainer, trainyard's evaluator and split executor); its GPU variant runs the
/// Trainer's custom job when GPUs are asked for; the stock TFX image runs the rest.
#[test]
fn trainyard_components_run_in_the_trainer_images() {
    for (name, gpu) in layouts() {
        let mut i = inputs(ModelType::Retrieval, gpu.clone());
        i.sampling.sample_percent = 50; // ExampleGen runs trainyard_split
        let job = vertex::compile(&i).unwrap().job;
        let images = executor_images(&job);
        assert_eq!(images.len(), 7, "{images:?}");
        for c in ["BigQueryExampleGen", "Transform", "Trainer", "Evaluator"] {
            assert_eq!(images[c], "trainer", "{name}: {c} imports trainyard code");
        }
        for c in ["StatisticsGen", "SchemaGen", "Pusher"] {
            assert_eq!(images[c], "tfx", "{name}: {c} is stock TFX");
        }
        let cc = trainer_custom_config(&job);
        let pool_image =
            cc.pointer("/ai_platform_training_args/worker_pool_specs/0/container_spec/image_uri");
        if gpu.gpu_enabled {
            assert_eq!(
                pool_image,
                Some(&Value::from("tfx-gpu")),
                "{name}: GPU custom job"
            );
        } else {
            assert_eq!(
                pool_image, None,
                "{name}: a CPU Trainer trains in its own container"
            );
        }
    }
    // ExampleGen without trainyard's split is stock TFX.
    let job = vertex::compile(&inputs(ModelType::Ranking, GpuConfig::default()))
        .unwrap()
        .job;
    assert_eq!(executor_images(&job)["BigQueryExampleGen"], "tfx");
}

#[test]
fn the_trainer_gets_the_mlflow_tracking_uri_only_when_one_is_set() {
    let gpu = GpuConfig::default();
    let cc = trainer_custom_config(
        &vertex::compile(&inputs(ModelType::Retrieval, gpu.clone()))
            .unwrap()
            .job,
    );
    assert!(cc.get("mlflow_tracking_uri").is_none(), "{cc}");
    let mut with = inputs(ModelType::Retrieval, gpu);
    with.mlflow_tracking_uri = Some("https://mlflow.example.com".into());
    let compiled = vertex::compile(&with).unwrap();
    let cc = trainer_custom_config(&compiled.job);
    assert_eq!(cc["mlflow_tracking_uri"], "https://mlflow.example.com");
    // the local pipeline hands the Trainer the same settings
    with.data = DataSource::Csv {
        path: "/tmp/data".into(),
    };
    let files = local::files(&with, "/tmp/modules", "/tmp/metadata.sqlite").unwrap();
    let pipeline = files
        .iter()
        .find(|(name, _)| name.as_str() == "pipeline.py")
        .map(|(_, src)| src.as_str())
        .unwrap();
    assert!(
        pipeline.contains("https://mlflow.example.com"),
        "{pipeline}"
    );
}

#[test]
fn the_trainer_gets_the_trainyard_run_id_of_a_stored_run() {
    let gpu = GpuConfig::default();
    let cc = trainer_custom_config(
        &vertex::compile(&inputs(ModelType::Retrieval, gpu.clone()))
            .unwrap()
            .job,
    );
    assert!(cc.get("trainyard_run_id").is_none(), "{cc}");
    assert!(cc.get("trainyard_run_key").is_none(), "{cc}");
    let mut with = inputs(ModelType::Multitask, gpu);
    with.trainyard_run_id = Some(42);
    let key = "42-2026-12-05T15:00:04.123456789Z";
    with.trainyard_run_key = Some(key.into());
    let cc = trainer_custom_config(&vertex::compile(&with).unwrap().job);
    // a number, under the key the generated run_fn reads (its MLflow run's trainyard.run_id)
    assert_eq!(cc[trainyard_core::tracking::RUN_ID_SETTING], 42);
    // and the run key (its MLflow run's trainyard.run_key: what trainyard matches)
    assert_eq!(cc[trainyard_core::tracking::RUN_KEY_SETTING], key);
    assert_eq!(
        with.trainer_settings()["trainyard_run_id"],
        serde_json::json!(42)
    );
    assert_eq!(
        with.trainer_settings()["trainyard_run_key"],
        serde_json::json!(key)
    );
    // the local pipeline hands the Trainer the same settings
    with.data = DataSource::Csv {
        path: "/tmp/data".into(),
    };
    let files = local::files(&with, "/tmp/modules", "/tmp/metadata.sqlite").unwrap();
    let pipeline = &files
        .iter()
        .find(|(name, _)| name.as_str() == "pipeline.py")
        .unwrap()
        .1;
    let line = pipeline
        .lines()
        .find(|l| l.starts_with("TRAINER_SETTINGS = "))
        .unwrap();
    assert!(line.contains(r#"trainyard_run_id\":42"#), "{line}");
    assert!(
        line.contains(&format!(r#"trainyard_run_key\":\"{key}\""#)),
        "{line}"
    );
}
