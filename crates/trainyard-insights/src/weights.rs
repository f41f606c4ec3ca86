//! Per-epoch weight and gradient statistics of each tower, as the generated trainer writes
//! them into training_metrics.json under [`WEIGHT_STATS_KEY`]:
//!
//! ```json
//! "weight_stats": {"histogram_bins": 30, "epochs": [
//!   {"epoch": 0, "towers": {"buyer_tower": {"weights": TensorStats, "gradients": TensorStats}}}
//! ]}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::InsightsError;

/// The key of training_metrics.json that holds the statistics.
pub const WEIGHT_STATS_KEY: &str = "weight_stats";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariableInfo {
    pub name: String,
    pub shape: Vec<u64>,
}

impl VariableInfo {
    pub fn size(&self) -> u64 {
        self.shape.iter().product()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorHistogram {
    /// `counts.len() + 1` increasing edges; the last bin includes its right edge.
    pub bin_edges: Vec<f64>,
    pub counts: Vec<u64>,
}

/// Statistics of every value of a tower's trainable variables (or of their gradients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorStats {
    /// Values, NaN/inf included.
    pub count: u64,
    /// NaN or infinite values (left out of everything below).
    #[serde(default)]
    pub nonfinite: u64,
    pub l1_norm: f64,
    pub l2_norm: f64,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
    pub histogram: TensorHistogram,
    /// The variables the values come from.
    #[serde(default)]
    pub variables: Vec<VariableInfo>,
}

impl TensorStats {
    /// Checks the histogram against the counts and the variables' sizes.
    pub fn check(&self, what: &str) -> Result<(), InsightsError> {
        let bad = |why: String| InsightsError::WeightStats(format!("{what}: {why}"));
        let h = &self.histogram;
        if h.bin_edges.len() != h.counts.len() + 1 {
            return Err(bad(format!(
                "{} bin edges for {} bins",
                h.bin_edges.len(),
                h.counts.len()
            )));
        }
        if h.bin_edges.windows(2).any(|w| w[0] > w[1]) {
            return Err(bad("bin edges are not increasing".into()));
        }
        let binned: u64 = h.counts.iter().sum();
        if binned + self.nonfinite != self.count {
            return Err(bad(format!(
                "histogram holds {binned} values (+{} non-finite), count is {}",
                self.nonfinite, self.count
            )));
        }
        if !self.variables.is_empty() {
            let size: u64 = self.variables.iter().map(VariableInfo::size).sum();
            if size != self.count {
                return Err(bad(format!(
                    "variables hold {size} values, count is {}",
                    self.count
                )));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TowerStats {
    pub weights: TensorStats,
    /// Gradients of the training loss on a fixed probe batch; None when they could not be
    /// computed (the trainer logs why, as `gradients_error`).
    #[serde(default)]
    pub gradients: Option<TensorStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradients_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochWeightStats {
    pub epoch: u32,
    pub towers: BTreeMap<String, TowerStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightStatsHistory {
    #[serde(default)]
    pub histogram_bins: u32,
    #[serde(default)]
    pub epochs: Vec<EpochWeightStats>,
}

/// One point of a tower's norm curves (the Training tab's line charts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormPoint {
    pub epoch: u32,
    pub weights_l1: f64,
    pub weights_l2: f64,
    pub weights_mean: f64,
    pub weights_std: f64,
    pub weights_min: f64,
    pub weights_max: f64,
    pub gradients_l1: Option<f64>,
    pub gradients_l2: Option<f64>,
}

impl WeightStatsHistory {
    /// Reads `weight_stats` from a parsed training_metrics.json; an empty history when the
    /// trainer did not record any (older runs).
    pub fn from_training_metrics(doc: &Value) -> Result<Self, InsightsError> {
        match doc.get(WEIGHT_STATS_KEY) {
            None | Some(Value::Null) => Ok(WeightStatsHistory::default()),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| InsightsError::WeightStats(format!("{WEIGHT_STATS_KEY}: {e}"))),
        }
    }

    pub fn towers(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .epochs
            .iter()
            .flat_map(|e| e.towers.keys().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn epoch(&self, epoch: u32) -> Option<&EpochWeightStats> {
        self.epochs.iter().find(|e| e.epoch == epoch)
    }

    /// Norm curves of one tower, by epoch.
    pub fn norms(&self, tower: &str) -> Vec<NormPoint> {
        self.epochs
            .iter()
            .filter_map(|e| {
                let t = e.towers.get(tower)?;
                let w = &t.weights;
                Some(NormPoint {
                    epoch: e.epoch,
                    weights_l1: w.l1_norm,
                    weights_l2: w.l2_norm,
                    weights_mean: w.mean,
                    weights_std: w.std,
                    weights_min: w.min,
                    weights_max: w.max,
                    gradients_l1: t.gradients.as_ref().map(|g| g.l1_norm),
                    gradients_l2: t.gradients.as_ref().map(|g| g.l2_norm),
                })
            })
            .collect()
    }

    /// Checks every histogram (see [`TensorStats::check`]).
    pub fn check(&self) -> Result<(), InsightsError> {
        for e in &self.epochs {
            for (tower, t) in &e.towers {
                t.weights
                    .check(&format!("epoch {} {tower} weights", e.epoch))?;
                if let Some(g) = &t.gradients {
                    g.check(&format!("epoch {} {tower} gradients", e.epoch))?;
                }
            }
        }
        Ok(())
    }
}
