//! A run that asks for GPUs where TensorFlow sees none fails loudly: the generated trainer
//! raises GpuNotVisibleError instead of training on CPU, and the run ends `failed` with its
//! train stage failed and the error in the run (the spec's "GPUs allocated but not used", at
//! the container level). A real local TFX pipeline in the managed env; GPUs are hidden from
//! TensorFlow (CUDA_VISIBLE_DEVICES=-1), so the test means the same on a machine that has one.
//! Run by `make test-trainer-image` (mk/trainer-image.mk) with TRAINYARD_PYTHON set.

use std::sync::Arc;
use std::time::Duration;

use trainyard::core::config::{DataSource, DatasetSpec, GpuConfig, TrainingParams};
use trainyard::core::run::{NewTrainingRun, RunConfig};
use trainyard::core::stages::{StageName, StageStatus};
use trainyard::{Platform, RunCompiler};
use trainyard_core::RunStatus;
use trainyard_local::LocalRunner;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs TRAINYARD_PYTHON (the managed TFX env); run by make test-trainer-image"]
async fn a_gpu_run_without_a_visible_gpu_fails_its_train_stage() {
    let python = std::env::var("TRAINYARD_PYTHON")
        .expect("TRAINYARD_PYTHON must name the managed env's python (make pyenv)");
    // The pipeline process inherits this: TensorFlow sees no GPU, whatever the machine has,
    // and nothing lets CPU devices stand in for them.
    std::env::set_var("CUDA_VISIBLE_DEVICES", "-1");
    std::env::remove_var("TRAINYARD_CPU_STANDS_IN_FOR_GPU");

    let dir = tempfile::tempdir().unwrap();
    let data = trainyard_synth::generate(&trainyard_synth::SynthConfig::tiny()).unwrap();
    data.write_joined(
        &dir.path().join("data/interactions.csv"),
        &data.transactions,
    )
    .unwrap();
    let p = Platform::init(dir.path()).await.unwrap();
    let root = dir.path().canonicalize().unwrap();
    let p = p.with_executor(
        Arc::new(LocalRunner::new(python)),
        Arc::new(RunCompiler::local(&root)),
        root.display().to_string(),
    );
    let run = p
        .training()
        .create_training_run(NewTrainingRun {
            ml_model: "shop".into(),
            name: "gpu-without-gpu".into(),
            description: String::new(),
            config: RunConfig {
                dataset: DatasetSpec {
                    name: "synthetic".into(),
                    source: DataSource::Csv {
                        path: "data".into(),
                    },
                },
                training_params: TrainingParams {
                    epochs: 1,
                    batch_size: 512,
                    ..TrainingParams::default()
                },
                gpu_config: GpuConfig {
                    gpu_enabled: true,
                    gpu_count: 2,
                    ..GpuConfig::default()
                },
                ..RunConfig::default()
            },
        })
        .await
        .unwrap();
    let done = p
        .run_to_completion(run.id, Duration::from_millis(500), Duration::from_secs(600))
        .await
        .unwrap();
    let error = done.error_message.clone().unwrap_or_default();
    assert_eq!(done.status, RunStatus::Failed, "trained anyway: {error}");
    let train = done.stage_details.get(StageName::Train);
    assert_eq!(train.status, StageStatus::Failed, "{train:?}");
    assert!(
        error.contains("GpuNotVisibleError")
            && error.contains("GPU_NOT_VISIBLE: gpu_config asks for 2 GPU(s)")
            && error.contains("refusing to train on CPU"),
        "the run's error must say why: {error}"
    );
    assert!(
        done.results.final_loss.is_none() && done.training_history_json.is_none(),
        "no training happened"
    );
}
