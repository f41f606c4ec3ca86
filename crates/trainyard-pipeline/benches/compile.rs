//! Warm compile time of the Vertex target, user-code wheel packaging included: prints the
//! median of many in-process compiles (seconds) as `RUST_WARM_SECONDS <x>`. Driven by
//! benches/pipeline_compile.py, which measures TFX on the same pipeline in the same command.

use std::collections::BTreeMap;
use std::time::Instant;

use trainyard_core::config::{DataSource, EvaluatorConfig, GpuConfig, TrainingParams};
use trainyard_core::model_config::ModelType;
use trainyard_pipeline::{vertex, PipelineInputs};

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: compile INPUTS.json [ITERATIONS]");
    let iterations: usize = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let inputs: PipelineInputs = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).expect("PipelineInputs JSON"),
        Err(_) => PipelineInputs {
            name: "bench".into(),
            pipeline_root: "/tmp/trainyard-bench/root".into(),
            data: DataSource::Csv {
                path: "/tmp/data".into(),
            },
            model_type: ModelType::Retrieval,
            modules: BTreeMap::new(),
            training: TrainingParams::default(),
            gpu: GpuConfig::default(),
            evaluator: EvaluatorConfig::default(),
            sampling: Default::default(),
            serving_dir: "/tmp/serving".into(),
            project: String::new(),
            region: String::new(),
            tfx_image: "tfx".into(),
            trainer_image: "tfx".into(),
            trainer_gpu_image: "tfx".into(),
            labels: BTreeMap::new(),
            mlflow_tracking_uri: None,
            trainyard_run_id: None,
            trainyard_run_key: None,
        },
    };
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        let compiled = vertex::compile(&inputs).expect("compile");
        std::hint::black_box(&compiled);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!("RUST_WARM_SECONDS {:.9}", times[times.len() / 2]);
}
