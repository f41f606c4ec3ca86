//! "Training insights": views of what the trainer recorded beyond the standard curves.
//!
//! Extension point: a new view (e.g. weight and gradient histograms once training_metrics.json
//! carries them) is a function from the run to [`Block`]s, added to [`blocks`]. Blocks are typed
//! so that every string still goes through the report's escaping; a new kind of drawing gets a
//! new `Block` variant and its renderer in [`Block::render`].

use std::collections::BTreeSet;

use trainyard_core::metrics::EpochMetrics;
use trainyard_core::run::TrainingRun;

use crate::charts::{LineChart, Series};
use crate::html::esc;

/// Most extra per-epoch metrics drawn (one chart each).
const MAX_EXTRA_CHARTS: usize = 8;

/// Per-epoch keys the training-curves section already draws.
const DRAWN_ELSEWHERE: &[&str] = &[
    "loss",
    "total_loss",
    "val_loss",
    "val_total_loss",
    "recall_at_5",
    "recall_at_10",
    "recall_at_50",
    "recall_at_100",
    "val_recall_at_5",
    "val_recall_at_10",
    "val_recall_at_50",
    "val_recall_at_100",
    "rmse",
    "mae",
    "val_rmse",
    "val_mae",
];

/// One piece of the insights section.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Chart(LineChart),
    Note(String),
}

impl Block {
    pub fn render(&self) -> String {
        match self {
            Block::Chart(c) => c.render(),
            Block::Note(n) => format!("<p class=\"note\">{}</p>\n", esc(n)),
        }
    }
}

/// Every insight view for a run, in display order.
pub fn blocks(_run: &TrainingRun, history: &[EpochMetrics]) -> Vec<Block> {
    let mut out = extra_epoch_metrics(history);
    if out.is_empty() {
        out.push(Block::Note(
            "No per-epoch metrics beyond the training curves were recorded for this run.".into(),
        ));
    }
    out
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
        .filter(|k| !DRAWN_ELSEWHERE.contains(k))
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
