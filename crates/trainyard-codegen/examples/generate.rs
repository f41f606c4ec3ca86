//! Generates modules from JSON configs (defaults for any not given), e.g. for benchmarks:
//! `cargo run -p trainyard-codegen --example generate -- OUT_DIR [model.json] [features.json] [params.json] [gpu.json]`

use std::path::PathBuf;

use trainyard_codegen::{generate, write_modules};
use trainyard_core::config::{GpuConfig, TrainingParams};
use trainyard_core::feature_config::FeatureConfig;
use trainyard_core::model_config::ModelConfig;

fn load<T: serde::de::DeserializeOwned + Default>(path: Option<&String>) -> T {
    match path {
        Some(p) if p != "-" => {
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{p}: {e}"))
        }
        _ => T::default(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out =
        PathBuf::from(args.first().expect(
            "usage: generate OUT_DIR [model.json] [features.json] [params.json] [gpu.json]",
        ));
    let model: ModelConfig = load(args.get(1));
    let features: FeatureConfig = load(args.get(2));
    let params: TrainingParams = load(args.get(3));
    let gpu: GpuConfig = load(args.get(4));
    match generate(&features, &model, &params, &gpu)
        .and_then(|m| write_modules(&m, &out).map(|p| (m, p)))
    {
        Ok((m, paths)) => {
            for p in paths {
                println!("{}", p.display());
            }
            println!("config-sha256 {}", m.config_hash);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
