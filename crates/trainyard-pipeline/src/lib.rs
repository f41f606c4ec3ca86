//! trainyard-pipeline: the training pipeline of the spec as data, compiled two ways.
//!
//! Owns the typed description of the TFX pipeline (ExampleGen -> StatisticsGen -> SchemaGen ->
//! Transform -> Trainer -> Evaluator -> Pusher) and its two targets: a Vertex AI PipelineJob
//! whose PipelineSpec is what TFX's KubeflowV2DagRunner compiles for the same pipeline
//! ([`vertex`], natively, no Python), and a Python module that runs it with TFX's
//! LocalDagRunner ([`local`]). Pure generators: no IO.

pub mod local;
pub mod vertex;
mod wheel;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use trainyard_core::config::{
    DataSource, EvaluatorConfig, GpuConfig, SamplingConfig, TrainingParams,
};
use trainyard_core::model_config::ModelType;
use trainyard_core::ValidationError;

pub use wheel::{user_code_version_hash, UserCodeWheel};

/// The evaluator module shipped beside the generated modules (and in trainyard's images).
pub const EVALUATOR_MODULE: &str = "trainyard_evaluator.py";
pub const EVALUATOR_SOURCE: &str = include_str!("trainyard_evaluator.py");
/// ExampleGen's sampling and split executor, shipped beside the generated modules (and in
/// trainyard's images) when a run samples or splits by time.
pub const SPLIT_MODULE: &str = "trainyard_split.py";
pub const SPLIT_SOURCE: &str = include_str!("trainyard_split.py");
pub const TRANSFORM_MODULE: &str = "transform_module.py";
pub const TRAINER_MODULE: &str = "trainer_module.py";

/// Name of the local pipeline module.
pub fn local_pipeline_file() -> &'static str {
    trainyard_core::ports::LOCAL_PIPELINE_FILE
}

/// TFX version the compiled IR claims (what the managed env and images run).
pub const TFX_VERSION: &str = "1.16.0";
/// Default container image of the stock TFX components (StatisticsGen, SchemaGen, Pusher, and
/// ExampleGen without trainyard's split executor); also the base of trainyard's trainer images
/// (`deploy/trainer/Dockerfile`).
pub const DEFAULT_TFX_IMAGE: &str = "gcr.io/tfx-oss-public/tfx:1.16.0";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("cannot package the user modules: {0}")]
    Packaging(String),
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// Everything the pipeline is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineInputs {
    /// Pipeline name (KFP: lowercase letters, digits, hyphens).
    pub name: String,
    /// Where the pipeline writes its artifacts (a directory or gs:// prefix).
    pub pipeline_root: String,
    pub data: DataSource,
    pub model_type: ModelType,
    /// Generated modules: file name -> source (transform_module.py, trainer_module.py).
    pub modules: BTreeMap<String, String>,
    pub training: TrainingParams,
    pub gpu: GpuConfig,
    pub evaluator: EvaluatorConfig,
    /// Share of rows read and the train/eval split (ExampleGen).
    #[serde(default)]
    pub sampling: SamplingConfig,
    /// Where the Pusher writes the serving model (versioned sub-folders).
    pub serving_dir: String,
    /// Google Cloud project (Vertex target).
    #[serde(default)]
    pub project: String,
    /// Orchestration region (Vertex target).
    #[serde(default)]
    pub region: String,
    /// Image of the stock TFX components.
    #[serde(default = "default_tfx_image")]
    pub tfx_image: String,
    /// trainyard's trainer image (`deploy/trainer/`): the components that import generated or
    /// trainyard code (ExampleGen with trainyard's split executor, Transform, Trainer,
    /// Evaluator), and the Trainer itself when it trains on CPU.
    #[serde(default = "default_tfx_image")]
    pub trainer_image: String,
    /// The GPU variant of the trainer image: the Trainer's Vertex custom job when GPUs are
    /// asked for.
    #[serde(default = "default_tfx_image")]
    pub trainer_gpu_image: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// MLflow tracking server the Trainer logs to (its custom_config `mlflow_tracking_uri`);
    /// None: no MLflow.
    #[serde(default)]
    pub mlflow_tracking_uri: Option<String>,
    /// The trainyard run this pipeline trains (the Trainer's custom_config `trainyard_run_id`:
    /// its MLflow run is tagged `trainyard.run_id` with it); None: not a stored run.
    #[serde(default)]
    pub trainyard_run_id: Option<i64>,
    /// That run's [`trainyard_core::tracking::RunKey`], which no other trainyard run shares
    /// (custom_config `trainyard_run_key`, the MLflow tag `trainyard.run_key`: what trainyard
    /// matches when it ends an MLflow run a killed trainer left RUNNING); None: not a stored run.
    #[serde(default)]
    pub trainyard_run_key: Option<String>,
}

fn default_tfx_image() -> String {
    DEFAULT_TFX_IMAGE.into()
}

/// How the Evaluator blesses: which final_metrics key, which direction, which threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Blessing {
    pub metric_key: String,
    pub threshold: f64,
    pub lower_is_better: bool,
    pub enabled: bool,
}

impl PipelineInputs {
    pub fn validate(&self) -> Result<()> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 128
            && self.name.starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !name_ok {
            return Err(ValidationError::field(
                "pipeline.name",
                "must start with a lowercase letter and hold only lowercase letters, digits and hyphens (at most 128)",
            )
            .into());
        }
        if self.pipeline_root.is_empty() {
            return Err(
                ValidationError::field("pipeline.pipeline_root", "must not be empty").into(),
            );
        }
        for m in [TRANSFORM_MODULE, TRAINER_MODULE] {
            if !self.modules.contains_key(m) {
                return Err(
                    ValidationError::field("pipeline.modules", format!("{m} is missing")).into(),
                );
            }
        }
        self.training.validate()?;
        self.gpu.validate()?;
        self.sampling.validate()?;
        Ok(())
    }

    /// The split rule ExampleGen's trainyard_split executor reads from its custom_config
    /// (the same JSON in the local and the Vertex pipeline); `None` for ExampleGen's default
    /// (every row, hash split 2:1), which compiles exactly as plain TFX.
    pub fn split_rule(&self) -> Option<serde_json::Value> {
        let s = &self.sampling;
        if s.is_default_split() {
            return None;
        }
        let mut rule = serde_json::json!({
            "sample_percent": s.sample_percent,
            "split_strategy": s.split_strategy.as_str(),
            "holdout_days": s.holdout_days,
        });
        if let Some(c) = &s.date_column {
            rule["date_column"] = c.clone().into();
        }
        Some(rule)
    }

    /// The generated modules plus trainyard's evaluator (and split executor when the run
    /// samples or splits by time): what the user-code wheel holds.
    pub fn all_modules(&self) -> BTreeMap<String, String> {
        let mut m = self.modules.clone();
        m.insert(EVALUATOR_MODULE.into(), EVALUATOR_SOURCE.into());
        if self.split_rule().is_some() {
            m.insert(SPLIT_MODULE.into(), SPLIT_SOURCE.into());
        }
        m
    }

    /// The Trainer's custom_config: the run settings the generated run_fn reads.
    pub fn trainer_settings(&self) -> serde_json::Value {
        let es = &self.training.early_stopping;
        let mut settings = serde_json::json!({
            "epochs": self.training.epochs,
            "batch_size": self.training.batch_size,
            "learning_rate": self.training.learning_rate,
            "optimizer": serde_json::to_value(self.training.optimizer).unwrap_or_default(),
            "early_stopping": {
                "enabled": es.enabled, "patience": es.patience, "monitor": es.monitor, "min_delta": es.min_delta,
            },
            "gpu_enabled": self.gpu.gpu_enabled,
            "gpu_count": self.gpu.accelerator_count(),
        });
        if let Some(uri) = self
            .mlflow_tracking_uri
            .as_deref()
            .filter(|u| !u.is_empty())
        {
            settings["mlflow_tracking_uri"] = uri.into();
        }
        if let Some(id) = self.trainyard_run_id {
            settings[trainyard_core::tracking::RUN_ID_SETTING] = id.into();
        }
        if let Some(key) = self.trainyard_run_key.as_deref().filter(|k| !k.is_empty()) {
            settings[trainyard_core::tracking::RUN_KEY_SETTING] = key.into();
        }
        settings
    }

    /// The blessing rule: the run's evaluator config read against the trainer's final_metrics
    /// (`recall_at_k` -> `test_recall_at_k`; `rmse`/`mae` -> the last validation epoch). An
    /// empty metric is the model type's default; no threshold becomes the most lenient finite
    /// one (the evaluator never blesses a missing or non-finite value).
    pub fn blessing(&self) -> Blessing {
        let e = &self.evaluator;
        let metric = e.metric(self.model_type);
        let lower_is_better = e.lower_is_better(self.model_type);
        let metric_key = match metric.as_str() {
            "rmse" | "mae" => format!("final_val_{metric}"),
            m if m.starts_with("recall_at_") => format!("test_{m}"),
            m => m.to_string(),
        };
        let threshold =
            e.blessing_threshold
                .unwrap_or(if lower_is_better { f64::MAX } else { f64::MIN });
        Blessing {
            metric_key,
            threshold,
            lower_is_better,
            enabled: e.enabled,
        }
    }
}

/// Python's `json.dumps(v, sort_keys=True)` text (", " and ": " separators), which is how TFX
/// writes dict-valued parameters such as custom_config.
pub fn python_json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}: {}", Value::String(k.clone()), python_json(&m[k])))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(python_json).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}
