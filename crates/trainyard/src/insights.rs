//! InsightsService: what a run's Data Insights and Training tabs show, its logs, and the
//! metrics backfill.
//!
//! - statistics and schema: the run's StatisticsGen and SchemaGen outputs, read from the local
//!   pipeline root or through the [`ArtifactStore`] (GCS) and summarized by trainyard-insights;
//! - weight statistics: what the generated trainer recorded per epoch and tower
//!   (training_metrics.json `weight_stats`, kept in the run's `training_history_json`);
//! - logs: the local runner's pipeline.log and per-component logs; for other executors the
//!   stage errors and the run's error message;
//! - backfill: re-extracts results from each finished run's stored training history (the
//!   spec's `backfill_ranking_metrics` management command).
//!
//! Every answer is a serde-serializable struct, so the CLI, Python and HTTP layers only
//! forward it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use trainyard_core::metrics::{extract_results, Metric, RunResults};
use trainyard_core::ports::{ArtifactStore, Clock, RunFilter, Store};
use trainyard_core::run::{RunId, TrainingRun};
use trainyard_core::{Error, Result, RunStatus};
pub use trainyard_insights::weights::{EpochWeightStats, NormPoint};
use trainyard_insights::{InsightsError, Schema};
pub use trainyard_insights::{SchemaSummary, StatisticsSummary, WeightStatsHistory};

use crate::records::mutate_run;

/// The summary types, for callers that name them.
pub use trainyard_insights::{
    schema::{Domain, Presence, SchemaType},
    stats::{HistogramBucket, TopValue},
    weights::{TensorHistogram, TensorStats, TowerStats, VariableInfo},
    CategoricalFeatureSummary, DatasetSummary, NumericFeatureSummary, SchemaFeatureSummary,
};

/// Name of the per-split statistics file StatisticsGen writes.
pub const FEATURE_STATS_FILE: &str = "FeatureStats.pb";
/// Name of the schema file SchemaGen writes (protobuf text format).
pub const SCHEMA_FILE: &str = "schema.pbtxt";

fn insights_err(e: InsightsError) -> Error {
    match e {
        InsightsError::NotFound(what) => Error::NotFound {
            entity: "run artifact",
            id: what,
        },
        other => Error::Backend(other.to_string()),
    }
}

/// A run's dataset statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatistics {
    pub run_id: RunId,
    /// The StatisticsGen output the summary was read from.
    pub source: String,
    #[serde(flatten)]
    pub summary: StatisticsSummary,
}

/// A run's inferred schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSchema {
    pub run_id: RunId,
    pub source: String,
    #[serde(flatten)]
    pub summary: SchemaSummary,
}

/// A run's weight and gradient statistics (all epochs, or the one asked for).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunWeightStats {
    pub run_id: RunId,
    pub histogram_bins: u32,
    pub towers: Vec<String>,
    pub epochs: Vec<EpochWeightStats>,
    /// Norm curves by tower (every recorded epoch, whatever epoch was asked for).
    pub norms: BTreeMap<String, Vec<NormPoint>>,
}

/// A run's logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunLogs {
    pub run_id: RunId,
    pub component: Option<String>,
    /// The file read, or "run record" when the logs come from the stored run.
    pub source: String,
    /// Components that have their own log.
    pub components: Vec<String>,
    pub text: String,
}

/// Options of [`InsightsService::backfill`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackfillOptions {
    /// Report what would change; write nothing.
    pub dry_run: bool,
    /// Overwrite results that are already set (default: only fill missing ones).
    pub force: bool,
}

/// What backfill did with one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BackfillOutcome {
    /// Results written (or, in a dry run, that would be): column -> new value.
    Updated {
        changes: BTreeMap<String, f64>,
    },
    Skipped {
        reason: String,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillItem {
    pub run_id: RunId,
    pub display_name: String,
    pub model_type: String,
    #[serde(flatten)]
    pub outcome: BackfillOutcome,
}

/// The management command's report: `Completed: N updated, N skipped, N errors`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackfillReport {
    pub dry_run: bool,
    pub force: bool,
    pub found: u64,
    pub updated: u64,
    pub skipped: u64,
    pub errors: u64,
    pub items: Vec<BackfillItem>,
}

/// Statuses whose training finished successfully: they have a training history to extract.
const TRAINED: [RunStatus; 5] = [
    RunStatus::Completed,
    RunStatus::NotBlessed,
    RunStatus::Deploying,
    RunStatus::Deployed,
    RunStatus::DeployFailed,
];

/// Columns to write: extracted values for missing columns, or (force) for every differing one.
fn backfill_changes(
    current: &RunResults,
    extracted: &RunResults,
    force: bool,
) -> BTreeMap<String, f64> {
    // is_blessed is the Evaluator's, never re-extracted: only the metric columns.
    Metric::ALL
        .iter()
        .filter_map(|c| {
            let new = extracted.value(*c)?;
            match current.value(*c) {
                None => Some((c.name().to_string(), new)),
                Some(old) if force && old != new => Some((c.name().to_string(), new)),
                Some(_) => None,
            }
        })
        .collect()
}

/// Where a run's files are: a local directory tree, or objects behind an ArtifactStore.
enum Files<'a> {
    Local,
    Remote(&'a Arc<dyn ArtifactStore>),
}

impl Files<'_> {
    /// Every file path under `prefix` (recursively).
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        match self {
            Files::Remote(a) => a.list(prefix).await,
            Files::Local => {
                let mut out = Vec::new();
                let mut stack = vec![PathBuf::from(prefix)];
                while let Some(dir) = stack.pop() {
                    let Ok(entries) = std::fs::read_dir(&dir) else {
                        continue;
                    };
                    for e in entries.flatten() {
                        let p = e.path();
                        if p.is_dir() {
                            stack.push(p);
                        } else {
                            out.push(p.display().to_string());
                        }
                    }
                }
                out.sort();
                Ok(out)
            }
        }
    }

    async fn read(&self, path: &str) -> Result<Vec<u8>> {
        match self {
            Files::Remote(a) => a.read(path).await,
            Files::Local => std::fs::read(path).map_err(|e| Error::Storage(format!("{path}: {e}"))),
        }
    }
}

/// The execution folder number in TFX's local layout (`.../statistics/<n>/...`), for picking
/// the newest output when a pipeline root holds several.
fn exec_number(segments: &[&str]) -> u64 {
    segments
        .iter()
        .rev()
        .find_map(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
}

/// Statistics files of the newest StatisticsGen output among `paths`: (split, path).
fn pick_statistics(paths: &[String]) -> Vec<(String, String)> {
    let mut groups: BTreeMap<(u64, String), Vec<(String, String)>> = BTreeMap::new();
    for p in paths {
        let segs: Vec<&str> = p.split('/').collect();
        let n = segs.len();
        if n < 3 || segs[n - 1] != FEATURE_STATS_FILE {
            continue;
        }
        let Some(split) = segs[n - 2].strip_prefix("Split-") else {
            continue;
        };
        // StatisticsGen's `statistics` output, never Transform's pre/post transform stats
        let from_statsgen = segs
            .windows(2)
            .any(|w| w[0].starts_with("StatisticsGen") && w[1] == "statistics");
        if !from_statsgen {
            continue;
        }
        let dir = segs[..n - 2].join("/");
        groups
            .entry((exec_number(&segs[..n - 2]), dir))
            .or_default()
            .push((split.to_string(), p.clone()));
    }
    groups
        .into_iter()
        .next_back()
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// The newest SchemaGen schema among `paths`.
fn pick_schema(paths: &[String]) -> Option<String> {
    paths
        .iter()
        .filter(|p| {
            let segs: Vec<&str> = p.split('/').collect();
            segs.last() == Some(&SCHEMA_FILE)
                && segs
                    .windows(2)
                    .any(|w| w[0].starts_with("SchemaGen") && w[1] == "schema")
        })
        .max_by_key(|p| {
            let segs: Vec<&str> = p.split('/').collect();
            (exec_number(&segs[..segs.len() - 1]), (*p).clone())
        })
        .cloned()
}

#[derive(Clone)]
pub struct InsightsService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    artifacts: Option<Arc<dyn ArtifactStore>>,
}

impl InsightsService {
    /// `artifacts` reads gs:// outputs; local directories are read directly.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        artifacts: Option<Arc<dyn ArtifactStore>>,
    ) -> Self {
        InsightsService {
            store,
            clock,
            artifacts,
        }
    }

    fn files_for(&self, location: &str) -> Result<Files<'_>> {
        if location.starts_with("gs://") {
            match &self.artifacts {
                Some(a) => Ok(Files::Remote(a)),
                None => Err(Error::Backend(format!(
                    "{location} is in Cloud Storage and this platform has no artifact store \
                     (open it with the gcp backend)"
                ))),
            }
        } else {
            Ok(Files::Local)
        }
    }

    /// The run's pipeline root: the stored artifact, else the local runner's job folder (set
    /// at submission, so it is known while the run is still going).
    fn pipeline_root(run: &TrainingRun) -> Option<String> {
        if let Some(r) = run.artifacts.get("pipeline_root") {
            return Some(r.trim_end_matches('/').to_string());
        }
        run.vertex_pipeline_job_name
            .as_deref()
            .filter(|n| Path::new(n).is_dir())
            .map(|n| n.trim_end_matches('/').to_string())
    }

    /// Candidate folders to search for a component output: the output's own URI when the
    /// executor recorded it (Vertex), then the local layout, then the whole root.
    fn search_prefixes(run: &TrainingRun, output: &str, component: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(uri) = run.artifacts.get(output) {
            out.push(uri.trim_end_matches('/').to_string());
        }
        if let Some(root) = Self::pipeline_root(run) {
            out.push(format!("{root}/{component}"));
            out.push(root);
        }
        out
    }

    /// Dataset statistics of a run, per split and combined.
    pub async fn statistics(&self, run_id: RunId) -> Result<RunStatistics> {
        let run = self.store.get_run(run_id).await?;
        for prefix in Self::search_prefixes(&run, "statistics", "StatisticsGen") {
            let files = self.files_for(&prefix)?;
            let mut found = pick_statistics(&files.list(&prefix).await?);
            if found.is_empty() {
                continue;
            }
            // train first, then the others by name
            found.sort_by_key(|(split, _)| (split != "train", split.clone()));
            let mut blobs = Vec::new();
            for (split, path) in &found {
                blobs.push((split.clone(), files.read(path).await?));
            }
            let summary = trainyard_insights::summarize_splits(
                blobs.iter().map(|(s, b)| (s.as_str(), b.as_slice())),
            )
            .map_err(insights_err)?;
            let source = found[0]
                .1
                .rsplitn(3, '/')
                .nth(2)
                .unwrap_or_default()
                .to_string();
            return Ok(RunStatistics {
                run_id,
                source,
                summary,
            });
        }
        Err(Error::not_found(
            "statistics (StatisticsGen output) of training run",
            run_id,
        ))
    }

    /// The schema SchemaGen inferred for a run.
    pub async fn schema(&self, run_id: RunId) -> Result<RunSchema> {
        let run = self.store.get_run(run_id).await?;
        for prefix in Self::search_prefixes(&run, "schema", "SchemaGen") {
            let files = self.files_for(&prefix)?;
            let Some(path) = pick_schema(&files.list(&prefix).await?) else {
                continue;
            };
            let bytes = files.read(&path).await?;
            let text = String::from_utf8(bytes)
                .map_err(|_| Error::Backend(format!("{path} is not UTF-8 text")))?;
            let schema = Schema::from_text(&text).map_err(insights_err)?;
            return Ok(RunSchema {
                run_id,
                source: path,
                summary: schema.summary(),
            });
        }
        Err(Error::not_found(
            "schema (SchemaGen output) of training run",
            run_id,
        ))
    }

    /// Weight and gradient statistics of a run (one epoch when `epoch` is given).
    pub async fn weight_stats(&self, run_id: RunId, epoch: Option<u32>) -> Result<RunWeightStats> {
        let run = self.store.get_run(run_id).await?;
        let Some(doc) = &run.training_history_json else {
            return Err(Error::not_found(
                "training history (training_metrics.json) of training run",
                run_id,
            ));
        };
        let history = WeightStatsHistory::from_training_metrics(doc).map_err(insights_err)?;
        let towers = history.towers();
        let norms = towers
            .iter()
            .map(|t| (t.clone(), history.norms(t)))
            .collect();
        let epochs = match epoch {
            None => history.epochs.clone(),
            Some(e) => vec![history
                .epoch(e)
                .cloned()
                .ok_or_else(|| Error::not_found("weight statistics of epoch", e))?],
        };
        Ok(RunWeightStats {
            run_id,
            histogram_bins: history.histogram_bins,
            towers,
            epochs,
            norms,
        })
    }

    /// The run's logs: the whole pipeline, or one component (`Trainer`, `StatisticsGen`, ...).
    pub async fn logs(&self, run_id: RunId, component: Option<&str>) -> Result<RunLogs> {
        let run = self.store.get_run(run_id).await?;
        let root = Self::pipeline_root(&run).filter(|r| !r.starts_with("gs://"));
        let log_dir = run.artifacts.get("component_logs").cloned().or_else(|| {
            root.as_ref()
                .map(|r| format!("{r}/{}", trainyard_local::COMPONENT_LOG_DIR))
        });
        let mut components: Vec<String> = log_dir
            .as_ref()
            .and_then(|d| std::fs::read_dir(d).ok())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".log")
                    .map(str::to_string)
            })
            .collect();
        components.sort();
        let file =
            match component {
                Some(c) => {
                    let Some(name) = components.iter().find(|n| n.eq_ignore_ascii_case(c)) else {
                        let has = if components.is_empty() {
                            "no per-component logs".to_string()
                        } else {
                            format!("logs of {}", components.join(", "))
                        };
                        return Err(Error::not_found(
                            "component log",
                            format!("{c} (run {run_id} has {has})"),
                        ));
                    };
                    log_dir.map(|d| format!("{d}/{name}.log"))
                }
                None => run.artifacts.get("log").cloned().or_else(|| {
                    root.map(|r| format!("{r}/{}", trainyard_local::PIPELINE_LOG_FILE))
                }),
            };
        if let Some(path) = file.filter(|p| Path::new(p).is_file()) {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::Storage(format!("{path}: {e}")))?;
            return Ok(RunLogs {
                run_id,
                component: component.map(str::to_string),
                source: path,
                components,
                text,
            });
        }
        // No log files (Vertex, or a run not started here): what the run record knows.
        let mut text = String::new();
        for s in run.stage_details.iter() {
            let wanted = component.is_none_or(|c| format!("{:?}", s.name).eq_ignore_ascii_case(c));
            if wanted {
                text.push_str(&format!("{:?}: {:?}", s.name, s.status));
                if let Some(e) = &s.error {
                    text.push_str(&format!(" - {e}"));
                }
                text.push('\n');
            }
        }
        if let Some(e) = &run.error_message {
            text.push_str(&format!("error: {e}\n"));
        }
        Ok(RunLogs {
            run_id,
            component: component.map(str::to_string),
            source: "run record".into(),
            components,
            text,
        })
    }

    /// Re-extracts results from each trained run's stored training history.
    pub async fn backfill(&self, options: BackfillOptions) -> Result<BackfillReport> {
        let mut report = BackfillReport {
            dry_run: options.dry_run,
            force: options.force,
            ..BackfillReport::default()
        };
        let mut runs = Vec::new();
        let mut filter = RunFilter {
            statuses: TRAINED.to_vec(),
            page_size: 200,
            ..RunFilter::default()
        };
        loop {
            let page = self.store.list_runs(&filter).await?;
            let n = page.runs.len();
            runs.extend(page.runs);
            if n == 0 || runs.len() as u64 >= page.total {
                break;
            }
            filter.page += 1;
        }
        runs.sort_by_key(|r| r.id);
        report.found = runs.len() as u64;
        for run in runs {
            let outcome = self.backfill_one(&run, options).await;
            match &outcome {
                BackfillOutcome::Updated { .. } => report.updated += 1,
                BackfillOutcome::Skipped { .. } => report.skipped += 1,
                BackfillOutcome::Error { .. } => report.errors += 1,
            }
            report.items.push(BackfillItem {
                run_id: run.id,
                display_name: run.display_name(),
                model_type: run.model_type().as_str().to_string(),
                outcome,
            });
        }
        Ok(report)
    }

    async fn backfill_one(&self, run: &TrainingRun, options: BackfillOptions) -> BackfillOutcome {
        let Some(doc) = &run.training_history_json else {
            return BackfillOutcome::Skipped {
                reason: "no stored training history".into(),
            };
        };
        let extracted = match extract_results(run.model_type(), doc) {
            Ok(r) => r,
            Err(e) => {
                return BackfillOutcome::Error {
                    message: e.to_string(),
                }
            }
        };
        let changes = backfill_changes(&run.results, &extracted, options.force);
        if changes.is_empty() {
            return BackfillOutcome::Skipped {
                reason: if options.force {
                    "results already match the training history".into()
                } else {
                    "results already set (use --force to re-extract)".into()
                },
            };
        }
        if options.dry_run {
            return BackfillOutcome::Updated { changes };
        }
        let mut written = BTreeMap::new();
        let result = mutate_run(&self.store, &self.clock, run.id, |r| {
            // against the newest row: another writer may have filled some columns meanwhile
            written = backfill_changes(&r.results, &extracted, options.force);
            for (c, v) in &written {
                if let Some(m) = Metric::parse(c) {
                    *r.results.slot(m) = Some(*v);
                }
            }
            Ok(())
        })
        .await;
        match result {
            Ok(_) => BackfillOutcome::Updated { changes: written },
            Err(e) => BackfillOutcome::Error {
                message: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_the_newest_statsgen_output_only() {
        let paths: Vec<String> = [
            "/r/StatisticsGen/statistics/2/Split-train/FeatureStats.pb",
            "/r/StatisticsGen/statistics/2/Split-eval/FeatureStats.pb",
            "/r/StatisticsGen/statistics/11/Split-train/FeatureStats.pb",
            "/r/Transform/pre_transform_stats/4/FeatureStats.pb",
            "/r/Transform/post_transform_stats/4/Split-train/FeatureStats.pb",
        ]
        .map(String::from)
        .to_vec();
        let got = pick_statistics(&paths);
        assert_eq!(
            got,
            vec![(
                "train".to_string(),
                "/r/StatisticsGen/statistics/11/Split-train/FeatureStats.pb".to_string()
            )]
        );
        let vertex = vec![
            "gs://b/root/123/job/StatisticsGen_77/statistics/Split-train/FeatureStats.pb"
                .to_string(),
        ];
        assert_eq!(pick_statistics(&vertex).len(), 1);
    }

    #[test]
    fn schema_of_schemagen_not_transform() {
        let paths: Vec<String> = [
            "/r/Transform/pre_transform_schema/4/schema.pbtxt",
            "/r/SchemaGen/schema/3/schema.pbtxt",
            "/r/SchemaGen/schema/10/schema.pbtxt",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            pick_schema(&paths).as_deref(),
            Some("/r/SchemaGen/schema/10/schema.pbtxt")
        );
    }

    #[test]
    fn backfill_fills_missing_and_force_overwrites_differences() {
        let current = RunResults {
            rmse: Some(0.9),
            ..RunResults::default()
        };
        let extracted = RunResults {
            rmse: Some(0.627),
            mae: Some(0.4199),
            is_blessed: Some(true),
            ..RunResults::default()
        };
        let plain = backfill_changes(&current, &extracted, false);
        assert_eq!(plain, BTreeMap::from([("mae".to_string(), 0.4199)]));
        let forced = backfill_changes(&current, &extracted, true);
        assert_eq!(forced.len(), 2);
        assert_eq!(forced["rmse"], 0.627);
        assert!(!forced.contains_key("is_blessed"));
    }
}
