//! The test kit the cross-crate suites in `tests/tests/` share:
//! - [`TestClock`]: the one clock a test moves by hand;
//! - [`sqlite_platform`]: a platform on a temporary SQLite store and a test clock;
//! - [`RunBuilder`]: a training run on the synthetic CSV, with the knobs the suites turn;
//! - [`local_platform`]: a project on the tiny synthetic dataset with the local TFX runner;
//! - [`shared::trained_project`]: one REAL trained project (local TFX runs in the managed env),
//!   built once under `target/` and reused by every suite that only reads it while what
//!   produced it is unchanged.

pub mod shared;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use trainyard::core::config::{
    DataSource, DatasetSpec, DeploymentConfig, EvaluatorConfig, TrainingParams,
};
use trainyard::core::model_config::{ModelConfig, ModelType, RetrievalAlgorithm};
use trainyard::core::ports::Clock;
use trainyard::core::run::{NewTrainingRun, RunConfig};
use trainyard::{Platform, ProjectConfig, RunCompiler};
use trainyard_local::LocalRunner;

/// A clock the test sets and moves.
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    pub fn at(t: DateTime<Utc>) -> Arc<Self> {
        Arc::new(TestClock(Mutex::new(t)))
    }

    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }

    pub fn advance(&self, secs: i64) {
        *self.0.lock().unwrap() += chrono::Duration::seconds(secs);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// An RFC 3339 instant.
pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A platform on a fresh SQLite store in a temporary directory, timed by a [`TestClock`]
/// starting at `start`. Keep the directory alive as long as the platform.
pub async fn sqlite_platform(
    start: DateTime<Utc>,
    config: ProjectConfig,
) -> (tempfile::TempDir, Platform, Arc<TestClock>) {
    let dir = tempfile::tempdir().unwrap();
    let store = trainyard_store::SqliteStore::open(dir.path().join("t.db"))
        .await
        .unwrap();
    let clock = TestClock::at(start);
    let p = Platform::with_store(dir.path().into(), config, Arc::new(store), clock.clone());
    (dir, p, clock)
}

/// The managed env's interpreter (`TRAINYARD_PYTHON`), for the suites that run real pipelines.
pub fn python() -> PathBuf {
    std::env::var_os("TRAINYARD_PYTHON")
        .expect("TRAINYARD_PYTHON must name the managed env's python (make pyenv)")
        .into()
}

/// The tiny synthetic dataset (deterministic: seed 42).
pub fn synth() -> trainyard_synth::Dataset {
    trainyard_synth::generate(&trainyard_synth::SynthConfig::tiny()).unwrap()
}

/// Opens the project at `dir` with the local TFX runner of the managed env as its executor.
pub async fn open_local(dir: &Path) -> (Platform, Arc<LocalRunner>) {
    let root = dir.canonicalize().unwrap();
    let runner = Arc::new(LocalRunner::new(python()));
    let p = Platform::open(&root).await.unwrap().with_executor(
        runner.clone(),
        Arc::new(RunCompiler::local(&root).with_mlflow_tracking_uri(mlflow_url())),
        root.display().to_string(),
    );
    (p, runner)
}

/// The real MLflow tracking server of the test run, if any (`make test` starts one,
/// mk/mlflow.mk): local runs then log to it.
pub fn mlflow_url() -> Option<String> {
    std::env::var("TRAINYARD_TEST_MLFLOW_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A new project at `dir` holding the tiny synthetic dataset as `data/interactions.csv`, with
/// the local TFX runner of the managed env as its executor.
pub async fn local_platform(dir: &Path) -> (Platform, Arc<LocalRunner>) {
    let data = synth();
    data.write_joined(&dir.join("data/interactions.csv"), &data.transactions)
        .unwrap();
    Platform::init(dir).await.unwrap();
    open_local(dir).await
}

/// A training run of ml_model "shop" on the project's `data/` CSV: retrieval, one epoch,
/// batch 512, evaluator and deployment off unless set.
#[derive(Debug, Clone)]
pub struct RunBuilder(NewTrainingRun);

impl RunBuilder {
    pub fn new(name: &str, model_type: ModelType) -> Self {
        RunBuilder(NewTrainingRun {
            ml_model: "shop".into(),
            name: name.into(),
            description: String::new(),
            config: RunConfig {
                dataset: DatasetSpec {
                    name: "synthetic".into(),
                    source: DataSource::Csv {
                        path: "data".into(),
                    },
                },
                model_config: ModelConfig {
                    model_type,
                    ..ModelConfig::default()
                },
                training_params: TrainingParams {
                    epochs: 1,
                    batch_size: 512,
                    ..TrainingParams::default()
                },
                ..RunConfig::default()
            },
        })
    }

    pub fn epochs(mut self, epochs: u32) -> Self {
        self.0.config.training_params.epochs = epochs;
        self
    }

    /// Every epoch runs (no early stopping).
    pub fn all_epochs(mut self) -> Self {
        self.0.config.training_params.early_stopping.enabled = false;
        self
    }

    /// The evaluator blesses when `metric` passes `threshold`.
    pub fn blessing(mut self, metric: &str, threshold: f64) -> Self {
        self.0.config.evaluator_config = EvaluatorConfig {
            enabled: true,
            blessing_metric: metric.into(),
            blessing_threshold: Some(threshold),
        };
        self
    }

    pub fn retrieval_algorithm(mut self, algorithm: RetrievalAlgorithm) -> Self {
        self.0.config.model_config.retrieval_algorithm = algorithm;
        self
    }

    pub fn top_k(mut self, k: u32) -> Self {
        self.0.config.model_config.top_k = k as _;
        self
    }

    pub fn auto_deploy(mut self, enabled: bool) -> Self {
        self.0.config.deployment_config = DeploymentConfig {
            enabled,
            ..DeploymentConfig::default()
        };
        self
    }

    pub fn build(self) -> NewTrainingRun {
        self.0
    }
}

/// A CSV's header and rows (no quoting: the synthetic data has none).
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (header, rows)
}
