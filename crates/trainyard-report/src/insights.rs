//! "Training insights": views of what the trainer recorded beyond the standard curves.
//!
//! Extension point: a new view is a function from the [`ReportInput`] to [`Block`]s, added to
//! [`blocks`]. Blocks are typed so that every string still goes through the report's escaping;
//! a new kind of drawing gets a new `Block` variant and its renderer in [`Block::render`].
//!
//! Views: the towers' weight and gradient statistics (norm curves, a line per tower; ridgelines
//! of the per-epoch histograms, a panel per tower), then one chart per extra per-epoch metric.

use std::collections::BTreeSet;

use trainyard_core::metrics::EpochMetrics;
use trainyard_insights::weights::TensorStats;
use trainyard_insights::WeightStatsHistory;

use crate::charts::{no_data, LineChart, Series};
use crate::html::esc;
use crate::ridgeline::{RidgePanel, RidgeRow, Ridgeline};
use crate::ReportInput;

/// Most extra per-epoch metrics drawn (one chart each).
const MAX_EXTRA_CHARTS: usize = 8;

/// Chart ids of the weight statistics views (and of the note when there are none).
pub const WEIGHT_CHART_IDS: [&str; 5] = [
    "insights-weights-l2",
    "insights-weights-l1",
    "insights-gradients-l2",
    "insights-weights-ridgeline",
    "insights-gradients-ridgeline",
];
pub const WEIGHT_STATS_EMPTY_ID: &str = "insights-weight-stats";

/// One piece of the insights section.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(String),
    Chart(LineChart),
    Ridgeline(Ridgeline),
    Note(String),
    /// A chart that has nothing to draw: the visible `no-data` note under its id.
    NoData {
        id: String,
        note: String,
    },
}

impl Block {
    pub fn render(&self) -> String {
        match self {
            Block::Heading(h) => format!("<h3>{}</h3>\n", esc(h)),
            Block::Chart(c) => c.render(),
            Block::Ridgeline(r) => r.render(),
            Block::Note(n) => format!("<p class=\"note\">{}</p>\n", esc(n)),
            Block::NoData { id, note } => no_data(id, note),
        }
    }
}

/// Every insight view for a run, in display order.
pub fn blocks(input: &ReportInput) -> Vec<Block> {
    let mut out = vec![Block::Heading("Weights and gradients".into())];
    out.extend(weight_stats(&input.weight_stats));
    out.push(Block::Heading("Other per-epoch metrics".into()));
    let extra = extra_epoch_metrics(&input.history);
    if extra.is_empty() {
        out.push(Block::Note(
            "No per-epoch metrics beyond the training curves were recorded for this run.".into(),
        ));
    }
    out.extend(extra);
    out
}

/// Norm curves and histogram ridgelines of the towers' weights and gradients.
pub fn weight_stats(stats: &Result<WeightStatsHistory, String>) -> Vec<Block> {
    let history = match stats {
        Ok(h) if !h.epochs.is_empty() => h,
        Ok(_) => {
            return vec![Block::NoData {
                id: WEIGHT_STATS_EMPTY_ID.into(),
                note: "No weight or gradient statistics were recorded for this run \
                       (training_metrics.json has no weight_stats)."
                    .into(),
            }]
        }
        Err(why) => {
            return vec![Block::NoData {
                id: WEIGHT_STATS_EMPTY_ID.into(),
                note: format!("The weight and gradient statistics cannot be read: {why}"),
            }]
        }
    };
    let towers = history.towers();
    // Why gradients are missing, when the trainer said (the first reason is enough).
    let gradients_error = history
        .epochs
        .iter()
        .flat_map(|e| e.towers.values())
        .find_map(|t| t.gradients_error.clone());
    let no_gradients = match &gradients_error {
        Some(why) => format!("No gradient statistics were recorded: {why}"),
        None => "No gradient statistics were recorded for this run.".into(),
    };
    let norm_chart =
        |id: &str, title: &str, y: &str, pick: &dyn Fn(&TensorStats) -> f64, gradients: bool| {
            LineChart {
                id: id.into(),
                title: title.into(),
                x_label: "epoch".into(),
                x_prefix: String::new(),
                y_label: y.into(),
                series: towers
                    .iter()
                    .map(|tower| Series {
                        key: tower.clone(),
                        label: tower.clone(),
                        points: history
                            .epochs
                            .iter()
                            .filter_map(|e| {
                                let t = e.towers.get(tower)?;
                                let s = if gradients {
                                    t.gradients.as_ref()?
                                } else {
                                    &t.weights
                                };
                                Some((f64::from(e.epoch), pick(s)))
                            })
                            .collect(),
                    })
                    .collect(),
                highlight_x: None,
                empty_note: if gradients {
                    no_gradients.clone()
                } else {
                    "No weight norms were recorded for this run.".into()
                },
            }
        };
    let ridgeline = |id: &str, title: &str, x: &str, gradients: bool| Ridgeline {
        id: id.into(),
        title: title.into(),
        row_label: "epoch".into(),
        x_label: x.into(),
        panels: towers
            .iter()
            .map(|tower| RidgePanel {
                name: tower.clone(),
                rows: history
                    .epochs
                    .iter()
                    .filter_map(|e| {
                        let t = e.towers.get(tower)?;
                        let s = if gradients {
                            t.gradients.as_ref()?
                        } else {
                            &t.weights
                        };
                        Some(RidgeRow {
                            key: e.epoch,
                            bin_edges: s.histogram.bin_edges.clone(),
                            counts: s.histogram.counts.clone(),
                        })
                    })
                    .collect(),
            })
            .collect(),
        empty_note: if gradients {
            no_gradients.clone()
        } else {
            "No weight histograms were recorded for this run.".into()
        },
    };
    let [w2, w1, g2, wr, gr] = WEIGHT_CHART_IDS;
    vec![
        Block::Chart(norm_chart(
            w2,
            "Weights' L2 norm per epoch, by tower",
            "L2 norm",
            &|s| s.l2_norm,
            false,
        )),
        Block::Chart(norm_chart(
            w1,
            "Weights' L1 norm per epoch, by tower",
            "L1 norm",
            &|s| s.l1_norm,
            false,
        )),
        Block::Chart(norm_chart(
            g2,
            "Gradients' L2 norm per epoch (fixed probe batch), by tower",
            "L2 norm",
            &|s| s.l2_norm,
            true,
        )),
        Block::Ridgeline(ridgeline(
            wr,
            "Weight histograms per epoch, by tower (each row scaled to its tallest bin)",
            "weight value",
            false,
        )),
        Block::Ridgeline(ridgeline(
            gr,
            "Gradient histograms per epoch (fixed probe batch), by tower (each row scaled to its tallest bin)",
            "gradient value",
            true,
        )),
    ]
}

/// Lowercase letters, digits, `-` and `_`: safe inside ids.
fn slug(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// One chart per per-epoch value the standard curves do not show (e.g. regularization loss).
fn extra_epoch_metrics(history: &[EpochMetrics]) -> Vec<Block> {
    let keys: BTreeSet<&str> = history
        .iter()
        .flat_map(|e| e.values.keys().map(String::as_str))
        .filter(|k| !trainyard_core::metrics::EpochMetrics::is_typed_key(k)) // drawn in the training curves
        .collect();
    keys.into_iter()
        .take(MAX_EXTRA_CHARTS)
        .map(|key| {
            let points = history
                .iter()
                .filter_map(|e| e.values.get(key).map(|v| (f64::from(e.epoch), *v)))
                .collect();
            Block::Chart(LineChart {
                id: format!("insights-{}", slug(key)),
                title: key.to_string(),
                x_label: "epoch".into(),
                x_prefix: String::new(),
                y_label: key.to_string(),
                series: vec![Series {
                    key: key.to_string(),
                    label: key.to_string(),
                    points,
                }],
                highlight_x: None,
                empty_note: format!("No finite values of {key}."),
            })
        })
        .collect()
}
