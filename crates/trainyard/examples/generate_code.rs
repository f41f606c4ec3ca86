//! Code generation only: the tf.Transform `preprocessing_fn` and the TFX trainer `run_fn` for a
//! feature config and a model config, written to a directory, without running anything.
//!
//! `cargo run -p trainyard --example generate_code [-- OUT_DIR]`

use std::path::PathBuf;

use trainyard::core::config::{GpuConfig, TrainingParams};
use trainyard::core::feature_config::FeatureConfig;
use trainyard::core::model_config::{ModelConfig, ModelType};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().join("modules"));

    // The default feature config describes the synthetic B2B dataset (trainyard-synth).
    let features = FeatureConfig::default();
    for model_type in [
        ModelType::Retrieval,
        ModelType::Ranking,
        ModelType::Multitask,
    ] {
        let model = ModelConfig {
            model_type,
            ..ModelConfig::default()
        };
        let modules = trainyard_codegen::generate(
            &features,
            &model,
            &TrainingParams::default(),
            &GpuConfig::default(),
        )?;
        let dir = out.join(model_type.as_str());
        let written = trainyard_codegen::write_modules(&modules, &dir)?;
        println!(
            "{}: {} files, config sha256 {}",
            model_type.as_str(),
            written.len(),
            &modules.config_hash[..12]
        );
        for (name, source) in &modules.files {
            println!("  {name:<28} {:>6} bytes", source.len());
        }
        let all: String = modules.files.values().cloned().collect();
        assert!(all.contains("def preprocessing_fn("), "transform module");
        assert!(all.contains("def run_fn("), "trainer module");
    }

    // Bad input is a typed error, not a broken module.
    let bad = ModelConfig {
        model_type: ModelType::Ranking,
        ..ModelConfig::default()
    };
    let no_target = FeatureConfig {
        target: None,
        ..FeatureConfig::default()
    };
    let err = trainyard_codegen::generate(
        &no_target,
        &bad,
        &TrainingParams::default(),
        &GpuConfig::default(),
    )
    .expect_err("a ranking model needs a target");
    println!("refused: {err}");
    println!("generate_code: ok");
    Ok(())
}
