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
        match metric {
            "recall_at_5" => self.recall_at_5,
            "recall_at_10" => self.recall_at_10,
            "recall_at_50" => self.recall_at_50,
            "recall_at_100" => self.recall_at_100,
            "rmse" => self.rmse,
            "mae" => self.mae,
            "test_rmse" => self.test_rmse,
            "test_mae" => self.test_mae,
            "final_loss" | "loss" => self.final_loss,
            _ => None,
        }
    }

    /// Copies every value `other` has over this one (keeps this one's where `other` has none).
    pub fn merge_from(&mut self, other: &RunResults) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            recall_at_5,
            recall_at_10,
            recall_at_50,
            recall_at_100,
            rmse,
            mae,
            test_rmse,
            test_mae,
            final_loss,
            is_blessed
        );
    }
}

/// The KPI columns each model type shows (spec: "KPI Configuration by Model Type").
pub fn kpi_metrics(model_type: ModelType) -> &'static [&'static str] {
    match model_type {
        ModelType::Retrieval => &[
            "recall_at_5",
            "recall_at_10",
            "recall_at_50",
            "recall_at_100",
        ],
        ModelType::Ranking => &["rmse", "mae", "test_rmse", "test_mae"],
        ModelType::Multitask => &["recall_at_50", "recall_at_100", "rmse", "test_rmse"],
    }
}

const RECALL_KS: [u32; 4] = [5, 10, 50, 100];

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
        let mut recalls = [None; 4];
        for (slot, k) in recalls.iter_mut().zip(RECALL_KS) {
            *slot = p.first_of(
                &[&format!("test_recall_at_{k}"), &format!("recall_at_{k}")],
                &[&format!("val_recall_at_{k}"), &format!("recall_at_{k}")],
            )?;
        }
        [
            r.recall_at_5,
            r.recall_at_10,
            r.recall_at_50,
            r.recall_at_100,
        ] = recalls;
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
