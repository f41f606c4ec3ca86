//! Results extraction from the trainer's `training_metrics.json`.
//!
//! Shape (written by the generated trainer, see the spec's RMSE/MAE bug fix):
//! `loss` holds per-epoch arrays (`loss`, `val_loss`, `recall_at_k`/`val_recall_at_k`,
//! `val_rmse`, `val_mae`, ...); `final_metrics` holds scalars (`test_rmse`, `test_mae`,
//! `test_recall_at_k`, `final_loss`, ...). Validation RMSE/MAE are the LAST epoch of
//! `loss.val_rmse`/`loss.val_mae` (bug 3 of the platform read them from `final_metrics`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::model_config::ModelType;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetricsError {
    #[error("training metrics are not valid JSON: {0}")]
    Json(String),
    #[error("training metrics must be a JSON object")]
    NotAnObject,
    #[error("`{key}` must be {expected}")]
    WrongType { key: String, expected: &'static str },
}

/// A result metric of a training run: one results column, with its label, its direction, and
/// the model types whose trainer reports it. The one list of metric names in the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    #[serde(rename = "recall_at_5")]
    RecallAt5,
    #[serde(rename = "recall_at_10")]
    RecallAt10,
    #[serde(rename = "recall_at_50")]
    RecallAt50,
    #[serde(rename = "recall_at_100")]
    RecallAt100,
    Rmse,
    Mae,
    TestRmse,
    TestMae,
    FinalLoss,
}

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HigherIsBetter,
    LowerIsBetter,
}

impl Metric {
    /// Every metric, in display order.
    pub const ALL: [Metric; 9] = [
        Metric::RecallAt5,
        Metric::RecallAt10,
        Metric::RecallAt50,
        Metric::RecallAt100,
        Metric::Rmse,
        Metric::Mae,
        Metric::TestRmse,
        Metric::TestMae,
        Metric::FinalLoss,
    ];
    /// The recall@k metrics, k ascending (the k of [`crate::config::RECALL_KS`]).
    pub const RECALLS: [Metric; 4] = [
        Metric::RecallAt5,
        Metric::RecallAt10,
        Metric::RecallAt50,
        Metric::RecallAt100,
    ];

    /// The column name (`recall_at_100`), as in the API, the store and training_metrics.json.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::RecallAt5 => "recall_at_5",
            Metric::RecallAt10 => "recall_at_10",
            Metric::RecallAt50 => "recall_at_50",
            Metric::RecallAt100 => "recall_at_100",
            Metric::Rmse => "rmse",
            Metric::Mae => "mae",
            Metric::TestRmse => "test_rmse",
            Metric::TestMae => "test_mae",
            Metric::FinalLoss => "final_loss",
        }
    }

    /// The label a person reads (`Recall@100`, `Test RMSE`).
    pub const fn label(self) -> &'static str {
        match self {
            Metric::RecallAt5 => "Recall@5",
            Metric::RecallAt10 => "Recall@10",
            Metric::RecallAt50 => "Recall@50",
            Metric::RecallAt100 => "Recall@100",
            Metric::Rmse => "RMSE",
            Metric::Mae => "MAE",
            Metric::TestRmse => "Test RMSE",
            Metric::TestMae => "Test MAE",
            Metric::FinalLoss => "Final loss",
        }
    }

    pub const fn direction(self) -> Direction {
        match self {
            Metric::RecallAt5 | Metric::RecallAt10 | Metric::RecallAt50 | Metric::RecallAt100 => {
                Direction::HigherIsBetter
            }
            Metric::Rmse | Metric::Mae | Metric::TestRmse | Metric::TestMae | Metric::FinalLoss => {
                Direction::LowerIsBetter
            }
        }
    }

    pub const fn lower_is_better(self) -> bool {
        matches!(self.direction(), Direction::LowerIsBetter)
    }

    /// The metric named `name`; `loss` is accepted for `final_loss`.
    pub fn parse(name: &str) -> Option<Metric> {
        match name {
            "loss" => Some(Metric::FinalLoss),
            _ => Metric::ALL.into_iter().find(|m| m.name() == name),
        }
    }

    /// The KPI columns a model type shows (spec: "KPI Configuration by Model Type").
    pub const fn kpis(model_type: ModelType) -> &'static [Metric] {
        match model_type {
            ModelType::Retrieval => &Metric::RECALLS,
            ModelType::Ranking => &[Metric::Rmse, Metric::Mae, Metric::TestRmse, Metric::TestMae],
            ModelType::Multitask => &[
                Metric::RecallAt50,
                Metric::RecallAt100,
                Metric::Rmse,
                Metric::TestRmse,
            ],
        }
    }

    /// The metrics a model type's trainer reports (and blessing can read).
    pub fn reported_by(model_type: ModelType) -> Vec<Metric> {
        Metric::ALL
            .into_iter()
            .filter(|m| match m {
                Metric::FinalLoss => true,
                m if Metric::RECALLS.contains(m) => model_type.has_retrieval(),
                _ => model_type.has_ranking(),
            })
            .collect()
    }

    /// The metric a model type blesses on by default: recall@100 when it retrieves, else rmse.
    pub fn blessing_default(model_type: ModelType) -> Metric {
        if model_type.has_retrieval() {
            Metric::RecallAt100
        } else {
            Metric::Rmse
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::parse(s).ok_or_else(|| {
            let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
            format!("unknown metric {s:?} (one of {})", names.join(", "))
        })
    }
}

/// The results columns of a training run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunResults {
    pub recall_at_5: Option<f64>,
    pub recall_at_10: Option<f64>,
    pub recall_at_50: Option<f64>,
    pub recall_at_100: Option<f64>,
    pub rmse: Option<f64>,
    pub mae: Option<f64>,
    pub test_rmse: Option<f64>,
    pub test_mae: Option<f64>,
    pub final_loss: Option<f64>,
    pub is_blessed: Option<bool>,
}

impl RunResults {
    /// A result by its column name (used for blessing thresholds and KPIs).
    pub fn get(&self, metric: &str) -> Option<f64> {
        Metric::parse(metric).and_then(|m| self.value(m))
    }

    pub fn value(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::RecallAt5 => self.recall_at_5,
            Metric::RecallAt10 => self.recall_at_10,
            Metric::RecallAt50 => self.recall_at_50,
            Metric::RecallAt100 => self.recall_at_100,
            Metric::Rmse => self.rmse,
            Metric::Mae => self.mae,
            Metric::TestRmse => self.test_rmse,
            Metric::TestMae => self.test_mae,
            Metric::FinalLoss => self.final_loss,
        }
    }

    pub fn slot(&mut self, metric: Metric) -> &mut Option<f64> {
        match metric {
            Metric::RecallAt5 => &mut self.recall_at_5,
            Metric::RecallAt10 => &mut self.recall_at_10,
            Metric::RecallAt50 => &mut self.recall_at_50,
            Metric::RecallAt100 => &mut self.recall_at_100,
            Metric::Rmse => &mut self.rmse,
            Metric::Mae => &mut self.mae,
            Metric::TestRmse => &mut self.test_rmse,
            Metric::TestMae => &mut self.test_mae,
            Metric::FinalLoss => &mut self.final_loss,
        }
    }

    /// Copies every value `other` has over this one (keeps this one's where `other` has none).
    pub fn merge_from(&mut self, other: &RunResults) {
        for m in Metric::ALL {
            if let Some(v) = other.value(m) {
                *self.slot(m) = Some(v);
            }
        }
        if other.is_blessed.is_some() {
            self.is_blessed = other.is_blessed;
        }
    }
}

struct Parsed<'a> {
    loss: Option<&'a serde_json::Map<String, Value>>,
    final_metrics: Option<&'a serde_json::Map<String, Value>>,
}

impl<'a> Parsed<'a> {
    fn new(doc: &'a Value) -> Result<Self, MetricsError> {
        let obj = doc.as_object().ok_or(MetricsError::NotAnObject)?;
        let section =
            |key: &str| -> Result<Option<&'a serde_json::Map<String, Value>>, MetricsError> {
                match obj.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Object(m)) => Ok(Some(m)),
                    Some(_) => Err(MetricsError::WrongType {
                        key: key.to_string(),
                        expected: "an object",
                    }),
                }
            };
        Ok(Parsed {
            loss: section("loss")?,
            final_metrics: section("final_metrics")?,
        })
    }

    /// Last finite number of `loss[key]` (an array, one value per epoch).
    fn last_epoch(&self, key: &str) -> Result<Option<f64>, MetricsError> {
        let Some(v) = self.loss.and_then(|l| l.get(key)) else {
            return Ok(None);
        };
        let arr = v.as_array().ok_or_else(|| MetricsError::WrongType {
            key: format!("loss.{key}"),
            expected: "an array of numbers",
        })?;
        Ok(arr.iter().rev().find_map(finite))
    }

    fn final_value(&self, key: &str) -> Result<Option<f64>, MetricsError> {
        match self.final_metrics.and_then(|m| m.get(key)) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => finite(v).map(Some).ok_or_else(|| MetricsError::WrongType {
                key: format!("final_metrics.{key}"),
                expected: "a finite number",
            }),
        }
    }

    /// First key with a value: final_metrics keys first, then the last epoch of loss arrays.
    fn first_of(&self, finals: &[&str], per_epoch: &[&str]) -> Result<Option<f64>, MetricsError> {
        for k in finals {
            if let Some(v) = self.final_value(k)? {
                return Ok(Some(v));
            }
        }
        for k in per_epoch {
            if let Some(v) = self.last_epoch(k)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
}

fn finite(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

/// Extracts the results columns for a model type from a parsed training_metrics.json.
///
/// Retrieval (and multitask) recall@k: `final_metrics.test_recall_at_k`, else
/// `final_metrics.recall_at_k`, else the last epoch of `loss.val_recall_at_k` / `loss.recall_at_k`.
/// Ranking (and multitask): rmse/mae = last epoch of `loss.val_rmse`/`loss.val_mae`;
/// test_rmse/test_mae from `final_metrics`. final_loss: `final_metrics.final_loss` or the last
/// epoch of `loss.loss`. is_blessed is the Evaluator's to set, not the trainer's.
pub fn extract_results(model_type: ModelType, doc: &Value) -> Result<RunResults, MetricsError> {
    let p = Parsed::new(doc)?;
    let mut r = RunResults {
        final_loss: p.first_of(&["final_loss"], &["loss", "total_loss"])?,
        ..RunResults::default()
    };
    if matches!(model_type, ModelType::Retrieval | ModelType::Multitask) {
        for m in Metric::RECALLS {
            let name = m.name();
            *r.slot(m) = p.first_of(
                &[&format!("test_{name}"), name],
                &[&format!("val_{name}"), name],
            )?;
        }
    }
    if matches!(model_type, ModelType::Ranking | ModelType::Multitask) {
        r.rmse = p.last_epoch("val_rmse")?;
        r.mae = p.last_epoch("val_mae")?;
        r.test_rmse = p.final_value("test_rmse")?;
        r.test_mae = p.final_value("test_mae")?;
    }
    Ok(r)
}

/// The MLflow run a trainer logged to: `mlflow.run_id` of training_metrics.json (written only
/// when tracking was on). An MLflow run id is 1 to 64 ASCII letters, digits, `-` or `_`.
pub fn extract_mlflow_run_id(doc: &Value) -> Result<Option<String>, MetricsError> {
    let obj = doc.as_object().ok_or(MetricsError::NotAnObject)?;
    let Some(mlflow) = obj.get("mlflow").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let wrong = |key: &str, expected| MetricsError::WrongType {
        key: key.to_string(),
        expected,
    };
    let mlflow = mlflow
        .as_object()
        .ok_or_else(|| wrong("mlflow", "an object"))?;
    match mlflow.get("run_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id))
            if !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(Some(id.clone()))
        }
        Some(_) => Err(wrong(
            "mlflow.run_id",
            "an MLflow run id (1 to 64 letters, digits, '-' or '_')",
        )),
    }
}

/// Parses and extracts in one step.
pub fn extract_results_from_str(
    model_type: ModelType,
    json: &str,
) -> Result<RunResults, MetricsError> {
    let doc: Value = serde_json::from_str(json).map_err(|e| MetricsError::Json(e.to_string()))?;
    extract_results(model_type, &doc)
}

/// One epoch of training history (TrainingMetricsHistory without its run id).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: u32,
    pub loss: Option<f64>,
    pub val_loss: Option<f64>,
    pub recall_at_5: Option<f64>,
    pub recall_at_10: Option<f64>,
    pub recall_at_50: Option<f64>,
    pub recall_at_100: Option<f64>,
    pub rmse: Option<f64>,
    pub mae: Option<f64>,
    /// Every per-epoch value of that epoch, by its key in training_metrics.json.
    #[serde(default)]
    pub values: BTreeMap<String, f64>,
}

impl EpochMetrics {
    /// A per-epoch value by key: the typed columns (`loss`, `val_loss`, recall@k, rmse, mae),
    /// else the raw value of that key.
    pub fn get(&self, key: &str) -> Option<f64> {
        match key {
            "loss" => self.loss,
            "val_loss" => self.val_loss,
            "recall_at_5" => self.recall_at_5,
            "recall_at_10" => self.recall_at_10,
            "recall_at_50" => self.recall_at_50,
            "recall_at_100" => self.recall_at_100,
            "rmse" => self.rmse,
            "mae" => self.mae,
            other => self.values.get(other).copied(),
        }
    }

    /// Whether a raw per-epoch key is shown under a typed column (`val_recall_at_100` is
    /// recall@100, `total_loss` is the loss).
    pub fn is_typed_key(key: &str) -> bool {
        let base = key.strip_prefix("val_").unwrap_or(key);
        matches!(base, "loss" | "total_loss" | "rmse" | "mae")
            || Metric::RECALLS.iter().any(|m| m.name() == base)
    }

    /// Builds a row from named values, filling the typed columns from their usual keys
    /// (`val_recall_at_k` wins over `recall_at_k`; `val_rmse` over `rmse`).
    pub fn from_values(epoch: u32, values: BTreeMap<String, f64>) -> Self {
        let pick = |keys: &[&str]| keys.iter().find_map(|k| values.get(*k).copied());
        EpochMetrics {
            epoch,
            loss: pick(&["loss", "total_loss"]),
            val_loss: pick(&["val_loss", "val_total_loss"]),
            recall_at_5: pick(&["val_recall_at_5", "recall_at_5"]),
            recall_at_10: pick(&["val_recall_at_10", "recall_at_10"]),
            recall_at_50: pick(&["val_recall_at_50", "recall_at_50"]),
            recall_at_100: pick(&["val_recall_at_100", "recall_at_100"]),
            rmse: pick(&["val_rmse", "rmse"]),
            mae: pick(&["val_mae", "mae"]),
            values,
        }
    }
}

/// Per-epoch rows from the `loss` arrays; epoch numbers start at 0. Arrays of different length
/// give rows up to the longest, each with the values it has.
pub fn epoch_history(doc: &Value) -> Result<Vec<EpochMetrics>, MetricsError> {
    let p = Parsed::new(doc)?;
    let Some(loss) = p.loss else {
        return Ok(Vec::new());
    };
    let mut per_epoch: Vec<BTreeMap<String, f64>> = Vec::new();
    for (key, v) in loss {
        let arr = v.as_array().ok_or_else(|| MetricsError::WrongType {
            key: format!("loss.{key}"),
            expected: "an array of numbers",
        })?;
        if per_epoch.len() < arr.len() {
            per_epoch.resize_with(arr.len(), BTreeMap::new);
        }
        for (i, x) in arr.iter().enumerate() {
            if let Some(x) = finite(x) {
                per_epoch[i].insert(key.clone(), x);
            }
        }
    }
    Ok(per_epoch
        .into_iter()
        .enumerate()
        .map(|(i, values)| EpochMetrics::from_values(i as u32, values))
        .collect())
}
