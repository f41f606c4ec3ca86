//! `platform.insights`: a run's dataset statistics and schema (the Data Insights tab), its
//! weight and gradient statistics (the Training tab), its pipeline logs, and the metrics
//! backfill; with their result classes. Nested parts (features, epochs, items) are plain dicts,
//! as the facade serializes them; `to_dict()` is what the CLI's `--json` and the HTTP API give.
//! Every operation is declared once (see macros.rs): blocking, and `<name>_async`.

use std::sync::Arc;

use pyo3::prelude::*;
use trainyard::insights::{
    BackfillOptions, BackfillReport, DatasetSummary, RunLogs, RunSchema, RunStatistics,
    RunWeightStats,
};
use trainyard_core::{Error, ValidationError};

use crate::ctx::Ctx;
use crate::errors::invalid;
use crate::repr::{py_bool, py_repr_opt, pyq};

fn notebook(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("trainyard._notebook")
}

/// A run's dataset statistics. The summary fields describe the split asked for, or every
/// split combined; `splits` and `combined` hold all of them.
#[pyclass(module = "trainyard._native", name = "RunStatistics", frozen)]
pub struct PyRunStatistics {
    pub inner: RunStatistics,
    /// Index into `inner.summary.splits`; None: the combined summary.
    pub split: Option<usize>,
}

impl PyRunStatistics {
    /// Picks `split` among the run's splits; an unknown name is a ValidationError on `split`
    /// that lists the run's splits.
    fn new(inner: RunStatistics, split: Option<&str>) -> Result<Self, Error> {
        let split = match split {
            None => None,
            Some(name) => {
                let splits = &inner.summary.splits;
                let at = splits.iter().position(|d| d.name == name).ok_or_else(|| {
                    let names: Vec<&str> = splits.iter().map(|d| d.name.as_str()).collect();
                    Error::Validation(ValidationError::field(
                        "split",
                        format!(
                            "run {} has no split {name:?} (splits: {})",
                            inner.run_id,
                            names.join(", ")
                        ),
                    ))
                })?;
                Some(at)
            }
        };
        Ok(PyRunStatistics { inner, split })
    }

    fn dataset(&self) -> &DatasetSummary {
        match self.split {
            Some(i) => &self.inner.summary.splits[i],
            None => &self.inner.summary.combined,
        }
    }
}

view_methods! {
    impl PyRunStatistics(self as s) {
        get {
            run_id: i64 = s.inner.run_id;
            /// The StatisticsGen output the summary was read from.
            source: &str = &s.inner.source;
            /// The split the summary fields describe; None when they describe all splits
            /// combined.
            split: Option<&str> = s.split.map(|i| s.inner.summary.splits[i].name.as_str());
            /// The run's splits ("train" first).
            split_names: Vec<String> = s.inner.summary.splits.iter().map(|d| d.name.clone()).collect();
            total_examples: u64 = s.dataset().total_examples;
            feature_count: u64 = s.dataset().feature_count;
            numeric_feature_count: u64 = s.dataset().numeric_feature_count;
            categorical_feature_count: u64 = s.dataset().categorical_feature_count;
            /// Numeric features / all features (0..1).
            numeric_ratio: f64 = s.dataset().numeric_ratio;
            /// Missing values in percent, averaged over the features.
            avg_missing_pct: f64 = s.dataset().avg_missing_pct;
        }
        dict {
            /// One dict per numeric feature: name, type, count, missing, missing_pct,
            /// num_values, mean, std_dev, zeros, zeros_pct, min, median, max, histogram
            /// ([{low, high, count}]).
            numeric_features = &s.dataset().numeric_features;
            /// One dict per categorical feature: name, type, count, missing, missing_pct,
            /// num_values, unique, exact, top_values ([{value, frequency}]), avg_length.
            categorical_features = &s.dataset().categorical_features;
            /// The summary of each split, as dicts.
            splits = &s.inner.summary.splits;
            /// The summary of all splits together, as a dict.
            combined = &s.inner.summary.combined;
        }
        repr(RunStatistics {
            run_id = s.inner.run_id,
            split = py_repr_opt(s.split.map(|i| pyq(&s.inner.summary.splits[i].name))),
            total_examples = s.dataset().total_examples,
            numeric_features = s.dataset().numeric_feature_count,
            categorical_features = s.dataset().categorical_feature_count,
            avg_missing_pct = format!("{:.2}", s.dataset().avg_missing_pct),
        });
        methods {
            /// The numeric features: a pandas DataFrame indexed by name when pandas is installed,
            /// else the list of dicts.
            fn numeric_frame<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                notebook(py)?.call_method1("feature_frame", (self.numeric_features(py)?, "numeric"))
            }
            /// The categorical features, like `numeric_frame()`.
            fn categorical_frame<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                notebook(py)?.call_method1(
                    "feature_frame",
                    (self.categorical_features(py)?, "categorical"),
                )
            }
        }
    }
}

/// The schema SchemaGen inferred for a run.
#[pyclass(module = "trainyard._native", name = "RunSchema", frozen)]
pub struct PyRunSchema {
    pub inner: RunSchema,
}

view_methods! {
    impl PyRunSchema(s) {
        get {
            run_id: i64 = s.run_id;
            /// The schema.pbtxt read.
            source: &str = &s.source;
            feature_count: u64 = s.summary.feature_count;
            required_count: u64 = s.summary.required_count;
        }
        dict {
            /// {type: number of features}
            by_type = &s.summary.by_type;
            /// One dict per feature: name, type, required, presence, shape, domain,
            /// constraints, deprecated.
            features = &s.summary.features;
        }
        repr(RunSchema {
            run_id = s.run_id,
            feature_count = s.summary.feature_count,
            required_count = s.summary.required_count,
            source = pyq(&s.source),
        });
        methods {
            /// The features: a pandas DataFrame indexed by name when pandas is installed, else the
            /// list of dicts.
            fn frame<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                notebook(py)?.call_method1("feature_frame", (self.features(py)?, "schema"))
            }
        }
    }
}

/// What the generated trainer recorded per epoch and tower: statistics and histograms of the
/// weights and of the gradients, and the norm curves of every recorded epoch.
#[pyclass(module = "trainyard._native", name = "RunWeightStats", frozen)]
pub struct PyRunWeightStats {
    pub inner: RunWeightStats,
}

view_methods! {
    impl PyRunWeightStats(w) {
        get {
            run_id: i64 = w.run_id;
            histogram_bins: u32 = w.histogram_bins;
            towers: Vec<String> = w.towers.clone();
        }
        dict {
            /// The epochs asked for: [{epoch, towers: {tower: {weights, gradients, ...}}}],
            /// where weights/gradients hold count, nonfinite, l1_norm, l2_norm, mean, std,
            /// min, max, histogram {bin_edges, counts} and variables.
            epochs = &w.epochs;
            /// {tower: [{epoch, weights_l1, weights_l2, weights_mean, weights_std,
            /// weights_min, weights_max, gradients_l1, gradients_l2}]} over every recorded
            /// epoch.
            norms = &w.norms;
        }
        repr(RunWeightStats {
            run_id = w.run_id,
            towers = format!("{:?}", w.towers),
            epochs = format!("{:?}", w.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>()),
            histogram_bins = w.histogram_bins,
        });
        methods {
            /// The norm curves: a pandas DataFrame indexed by (tower, epoch) when pandas is
            /// installed, else a list of dicts with a `tower` key.
            fn norms_frame<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                notebook(py)?.call_method1("norms_frame", (self.norms(py)?,))
            }
            fn __len__(&self) -> usize {
                self.inner.epochs.len()
            }
        }
    }
}

/// A run's logs: the local runner's pipeline or component log file, or (Vertex, or a run not
/// started here) what the run record knows (`source` "run record").
#[pyclass(module = "trainyard._native", name = "RunLogs", frozen)]
pub struct PyRunLogs {
    pub inner: RunLogs,
}

view_methods! {
    impl PyRunLogs(l) {
        get {
            run_id: i64 = l.run_id;
            /// The component asked for; None for the whole pipeline.
            component: Option<&str> = l.component.as_deref();
            /// The file read, or "run record".
            source: &str = &l.source;
            /// Components that have their own log.
            components: Vec<String> = l.components.clone();
            text: &str = &l.text;
        }
        repr(RunLogs {
            run_id = l.run_id,
            component = py_repr_opt(l.component.as_deref().map(pyq)),
            source = pyq(&l.source),
            components = format!("{:?}", l.components),
            lines = l.text.lines().count(),
        });
        methods {
            /// The log text.
            fn __str__(&self) -> &str {
                &self.inner.text
            }
        }
    }
}

/// What `backfill` did: counts, and per run an item {run_id, display_name, model_type,
/// outcome: "updated" (with changes {column: value}), "skipped" (with reason) or "error"
/// (with message)}.
#[pyclass(module = "trainyard._native", name = "BackfillReport", frozen)]
pub struct PyBackfillReport {
    pub inner: BackfillReport,
}

view_methods! {
    impl PyBackfillReport(r) {
        get {
            dry_run: bool = r.dry_run;
            force: bool = r.force;
            /// Trained runs considered.
            found: u64 = r.found;
            updated: u64 = r.updated;
            skipped: u64 = r.skipped;
            errors: u64 = r.errors;
            /// The management command's last line: "Completed: N updated, N skipped, N
            /// errors".
            summary: String = format!(
                "{}: {} updated, {} skipped, {} errors",
                if r.dry_run { "Dry run" } else { "Completed" },
                r.updated,
                r.skipped,
                r.errors
            );
        }
        dict {
            items = &r.items;
        }
        repr(BackfillReport {
            dry_run = py_bool(r.dry_run),
            force = py_bool(r.force),
            found = r.found,
            updated = r.updated,
            skipped = r.skipped,
            errors = r.errors,
        });
    }
}

/// Run insights: statistics, schema, weight statistics, logs, and the metrics backfill.
#[pyclass(module = "trainyard._native", name = "InsightsService", frozen)]
pub struct PyInsights {
    pub ctx: Arc<Ctx>,
}

service_methods! {
    impl PyInsights {
        ops {
            /// The run's dataset statistics (its StatisticsGen output): every split combined, or
            /// the one named by `split` ("train", "eval", ...). A run without that output is
            /// NotFound; an unknown split a ValidationError listing the run's splits.
            #[pyo3(signature = (run_id, split=None))]
            fn statistics(&self, run_id: i64, split: Option<String>) -> PyRunStatistics
                as stub(
                    "run_id: int, split: Optional[str] = None"
                        -> "RunStatistics"
                )
            {
                self.ctx.op(move |p, _| async move {
                    let stats = p.insights().statistics(run_id).await?;
                    PyRunStatistics::new(stats, split.as_deref())
                })
            }

            /// The schema SchemaGen inferred for the run; NotFound without that output.
            fn schema(&self, run_id: i64) -> PyRunSchema
                as stub(
                    "run_id: int"
                        -> "RunSchema"
                )
            {
                self.ctx.op(move |p, _| async move {
                    let inner = p.insights().schema(run_id).await?;
                    Ok(PyRunSchema { inner })
                })
            }

            /// Weight and gradient statistics of every epoch, or of `epoch` (NotFound when it
            /// was not recorded). A run whose trainer recorded none has no epochs; a run
            /// without a training history is NotFound.
            #[pyo3(signature = (run_id, epoch=None))]
            fn weight_stats(&self, run_id: i64, epoch: Option<i64>) -> PyRunWeightStats
                as stub(
                    "run_id: int, epoch: Optional[int] = None"
                        -> "RunWeightStats"
                )
            {
                let epoch = epoch
                    .map(|e| {
                        u32::try_from(e).map_err(|_| {
                            invalid("epoch", format!("{e} is not an epoch number (0 or more)"))
                        })
                    })
                    .transpose()?;
                self.ctx.op(move |p, _| async move {
                    let inner = p.insights().weight_stats(run_id, epoch).await?;
                    Ok(PyRunWeightStats { inner })
                })
            }

            /// The run's pipeline log, or one component's (`"Trainer"`, `"StatisticsGen"`,
            /// ...; NotFound naming the components that have logs when it has none).
            #[pyo3(signature = (run_id, component=None))]
            fn logs(&self, run_id: i64, component: Option<String>) -> PyRunLogs
                as stub(
                    "run_id: int, component: Optional[str] = None"
                        -> "RunLogs"
                )
            {
                // An empty component means the whole pipeline, as in the HTTP API.
                let component = component.filter(|c| !c.trim().is_empty());
                self.ctx.op(move |p, _| async move {
                    let inner = p.insights().logs(run_id, component.as_deref()).await?;
                    Ok(PyRunLogs { inner })
                })
            }

            /// Re-extracts results from each trained run's stored training history: fills
            /// missing results (`force`: also overwrites ones that differ); `dry_run` reports
            /// and writes nothing.
            #[pyo3(signature = (*, dry_run=false, force=false))]
            fn backfill(&self, dry_run: bool, force: bool) -> PyBackfillReport
                as stub(
                    "*, dry_run: bool = False, force: bool = False"
                        -> "BackfillReport"
                )
            {
                self.ctx.op(move |p, _| async move {
                    let inner = p.insights().backfill(BackfillOptions { dry_run, force }).await?;
                    Ok(PyBackfillReport { inner })
                })
            }
        }
        methods {
            fn __repr__(&self) -> String {
                format!("InsightsService(dir={})", pyq(&self.ctx.dir.display().to_string()))
            }
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyInsights>()?;
    m.add_class::<PyRunStatistics>()?;
    m.add_class::<PyRunSchema>()?;
    m.add_class::<PyRunWeightStats>()?;
    m.add_class::<PyRunLogs>()?;
    m.add_class::<PyBackfillReport>()?;
    Ok(())
}
