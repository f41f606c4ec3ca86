//! Compiling a training run's pipeline for Vertex AI Pipelines: the KFP v2 PipelineJob body
//! and the user-code wheels it references, natively (no Python, no TFX).
//!
//! `cargo run -p trainyard --example compile_vertex`

use chrono::Utc;
use trainyard::core::config::{DataSource, DatasetSpec, GpuConfig};
use trainyard::core::model_config::{ModelConfig, ModelType};
use trainyard::core::ports::{PipelineCompiler, VERTEX_PIPELINE_JOB_FILE};
use trainyard::core::run::{NewTrainingRun, RunConfig, TrainingRun};
use trainyard::{RunCompiler, VertexSettings, WHEEL_FILE_PREFIX};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut run = TrainingRun::new(
        NewTrainingRun {
            ml_model: "shop".into(),
            name: "product-retrieval".into(),
            description: String::new(),
            config: RunConfig {
                dataset: DatasetSpec {
                    name: "transactions".into(),
                    source: DataSource::BigQuery {
                        query: "SELECT * FROM `my-project.shop.transactions`".into(),
                    },
                },
                model_config: ModelConfig {
                    model_type: ModelType::Retrieval,
                    ..ModelConfig::default()
                },
                // Two T4s on the trainer: the compiled job must really ask for them.
                gpu_config: GpuConfig {
                    gpu_enabled: true,
                    ..GpuConfig::default()
                },
                ..RunConfig::default()
            },
        },
        None,
        Utc::now(),
    );
    run.id = 42;
    run.run_number = 1;

    let compiler = RunCompiler::vertex(VertexSettings {
        project: "my-project".into(),
        region: "europe-west4".into(),
        ..VertexSettings::default()
    });
    let started = std::time::Instant::now();
    let files = compiler.compile(&run, "gs://my-bucket/pipeline_root/runs/42")?;
    let took = started.elapsed();

    let job: serde_json::Value = serde_json::from_str(&files[VERTEX_PIPELINE_JOB_FILE])?;
    let spec = &job["pipelineSpec"];
    let tasks = spec["root"]["dag"]["tasks"]
        .as_object()
        .expect("the pipeline has tasks");
    println!(
        "{} ({} tasks) compiled in {:.1} ms",
        job["displayName"].as_str().unwrap_or("?"),
        tasks.len(),
        took.as_secs_f64() * 1000.0
    );
    let mut names: Vec<&String> = tasks.keys().collect();
    names.sort();
    for name in names {
        println!("  task {name}");
    }
    let wheels: Vec<&String> = files
        .keys()
        .filter(|k| k.starts_with(WHEEL_FILE_PREFIX))
        .collect();
    println!("user-code wheels: {wheels:?}");
    assert!(!wheels.is_empty(), "the trainer module ships as a wheel");

    let text = files[VERTEX_PIPELINE_JOB_FILE].as_str();
    assert!(
        text.contains("NVIDIA_TESLA_T4"),
        "the trainer asks for its GPUs"
    );
    assert!(text.contains("BigQueryExampleGen"), "BigQuery input");
    println!("compile_vertex: ok");
    Ok(())
}
