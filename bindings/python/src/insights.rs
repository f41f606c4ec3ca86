//! `platform.insights`: a run's dataset statistics and schema (the Data Insights tab), its
//! weight and gradient statistics (the Training tab), its pipeline logs, and the metrics
//! backfill; with their result classes. Nested parts (features, epochs, items) are plain dicts,
//! as the facade serializes them; `to_dict()` is what the CLI's `--json` and the HTTP API give.
//! Every operation is blocking (GIL released) and `<name>_async`, both over one `*_op` future.

use std::sync::Arc;

use pyo3::prelude::*;
use trainyard::insights::{
    BackfillOptions, BackfillReport, DatasetSummary, RunLogs, RunSchema, RunStatistics,
    RunWeightStats,
};
use trainyard_core::{Error, ValidationError};

use crate::convert::to_py;
use crate::errors::invalid;
use crate::models::{py_bool, py_repr_opt, pyq};
use crate::platform::Ctx;
use crate::runtime::{awaitable, block};
use crate::services::Op;

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

#[pymethods]
impl PyRunStatistics {
    #[getter]
    fn run_id(&self) -> i64 {
        self.inner.run_id
    }
    /// The StatisticsGen output the summary was read from.
    #[getter]
    fn source(&self) -> &str {
        &self.inner.source
    }
    /// The split the summary fields describe; None when they describe all splits combined.
    #[getter]
    fn split(&self) -> Option<&str> {
        self.split
            .map(|i| self.inner.summary.splits[i].name.as_str())
    }
    /// The run's splits ("train" first).
    #[getter]
    fn split_names(&self) -> Vec<String> {
        self.inner
            .summary
            .splits
            .iter()
            .map(|d| d.name.clone())
            .collect()
    }
    #[getter]
    fn total_examples(&self) -> u64 {
        self.dataset().total_examples
    }
    #[getter]
    fn feature_count(&self) -> u64 {
        self.dataset().feature_count
    }
    #[getter]
    fn numeric_feature_count(&self) -> u64 {
        self.dataset().numeric_feature_count
    }
    #[getter]
    fn categorical_feature_count(&self) -> u64 {
        self.dataset().categorical_feature_count
    }
    /// Numeric features / all features (0..1).
    #[getter]
    fn numeric_ratio(&self) -> f64 {
        self.dataset().numeric_ratio
    }
    /// Missing values in percent, averaged over the features.
    #[getter]
    fn avg_missing_pct(&self) -> f64 {
        self.dataset().avg_missing_pct
    }
    /// One dict per numeric feature: name, type, count, missing, missing_pct, num_values,
    /// mean, std_dev, zeros, zeros_pct, min, median, max, histogram ([{low, high, count}]).
    #[getter]
    fn numeric_features<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.dataset().numeric_features)
    }
    /// One dict per categorical feature: name, type, count, missing, missing_pct,
    /// num_values, unique, exact, top_values ([{value, frequency}]), avg_length.
    #[getter]
    fn categorical_features<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.dataset().categorical_features)
    }
    /// The summary of each split, as dicts.
    #[getter]
    fn splits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.summary.splits)
    }
    /// The summary of all splits together, as a dict.
    #[getter]
    fn combined<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.summary.combined)
    }
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
    /// Every split and the combined summary (whatever split was asked for).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        let d = self.dataset();
        format!(
            "RunStatistics(run_id={}, split={}, total_examples={}, numeric_features={}, categorical_features={}, avg_missing_pct={:.2})",
            self.inner.run_id,
            py_repr_opt(self.split().map(pyq)),
            d.total_examples,
            d.numeric_feature_count,
            d.categorical_feature_count,
            d.avg_missing_pct
        )
    }
}

/// The schema SchemaGen inferred for a run.
#[pyclass(module = "trainyard._native", name = "RunSchema", frozen)]
pub struct PyRunSchema {
    pub inner: RunSchema,
}

#[pymethods]
impl PyRunSchema {
    #[getter]
    fn run_id(&self) -> i64 {
        self.inner.run_id
    }
    /// The schema.pbtxt read.
    #[getter]
    fn source(&self) -> &str {
        &self.inner.source
    }
    #[getter]
    fn feature_count(&self) -> u64 {
        self.inner.summary.feature_count
    }
    #[getter]
    fn required_count(&self) -> u64 {
        self.inner.summary.required_count
    }
    /// {type: number of features}
    #[getter]
    fn by_type<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.summary.by_type)
    }
    /// One dict per feature: name, type, required, presence, shape, domain, constraints,
    /// deprecated.
    #[getter]
    fn features<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.summary.features)
    }
    /// The features: a pandas DataFrame indexed by name when pandas is installed, else the
    /// list of dicts.
    fn frame<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        notebook(py)?.call_method1("feature_frame", (self.features(py)?, "schema"))
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        format!(
            "RunSchema(run_id={}, feature_count={}, required_count={}, source={})",
            self.inner.run_id,
            self.inner.summary.feature_count,
            self.inner.summary.required_count,
            pyq(&self.inner.source)
        )
    }
}

/// What the generated trainer recorded per epoch and tower: statistics and histograms of the
/// weights and of the gradients, and the norm curves of every recorded epoch.
#[pyclass(module = "trainyard._native", name = "RunWeightStats", frozen)]
pub struct PyRunWeightStats {
    pub inner: RunWeightStats,
}

#[pymethods]
impl PyRunWeightStats {
    #[getter]
    fn run_id(&self) -> i64 {
        self.inner.run_id
    }
    #[getter]
    fn histogram_bins(&self) -> u32 {
        self.inner.histogram_bins
    }
    #[getter]
    fn towers(&self) -> Vec<String> {
        self.inner.towers.clone()
    }
    /// The epochs asked for: [{epoch, towers: {tower: {weights, gradients, ...}}}], where
    /// weights/gradients hold count, nonfinite, l1_norm, l2_norm, mean, std, min, max,
    /// histogram {bin_edges, counts} and variables.
    #[getter]
    fn epochs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.epochs)
    }
    /// {tower: [{epoch, weights_l1, weights_l2, weights_mean, weights_std, weights_min,
    /// weights_max, gradients_l1, gradients_l2}]} over every recorded epoch.
    #[getter]
    fn norms<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.norms)
    }
    /// The norm curves: a pandas DataFrame indexed by (tower, epoch) when pandas is
    /// installed, else a list of dicts with a `tower` key.
    fn norms_frame<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        notebook(py)?.call_method1("norms_frame", (self.norms(py)?,))
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    fn __len__(&self) -> usize {
        self.inner.epochs.len()
    }
    fn __repr__(&self) -> String {
        format!(
            "RunWeightStats(run_id={}, towers={:?}, epochs={:?}, histogram_bins={})",
            self.inner.run_id,
            self.inner.towers,
            self.inner
                .epochs
                .iter()
                .map(|e| e.epoch)
                .collect::<Vec<_>>(),
            self.inner.histogram_bins
        )
    }
}

/// A run's logs: the local runner's pipeline or component log file, or (Vertex, or a run not
/// started here) what the run record knows (`source` "run record").
#[pyclass(module = "trainyard._native", name = "RunLogs", frozen)]
pub struct PyRunLogs {
    pub inner: RunLogs,
}

#[pymethods]
impl PyRunLogs {
    #[getter]
    fn run_id(&self) -> i64 {
        self.inner.run_id
    }
    /// The component asked for; None for the whole pipeline.
    #[getter]
    fn component(&self) -> Option<&str> {
        self.inner.component.as_deref()
    }
    /// The file read, or "run record".
    #[getter]
    fn source(&self) -> &str {
        &self.inner.source
    }
    /// Components that have their own log.
    #[getter]
    fn components(&self) -> Vec<String> {
        self.inner.components.clone()
    }
    #[getter]
    fn text(&self) -> &str {
        &self.inner.text
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    /// The log text.
    fn __str__(&self) -> &str {
        &self.inner.text
    }
    fn __repr__(&self) -> String {
        format!(
            "RunLogs(run_id={}, component={}, source={}, components={:?}, lines={})",
            self.inner.run_id,
            py_repr_opt(self.inner.component.as_deref().map(pyq)),
            pyq(&self.inner.source),
            self.inner.components,
            self.inner.text.lines().count()
        )
    }
}

/// What `backfill` did: counts, and per run an item {run_id, display_name, model_type,
/// outcome: "updated" (with changes {column: value}), "skipped" (with reason) or "error"
/// (with message)}.
#[pyclass(module = "trainyard._native", name = "BackfillReport", frozen)]
pub struct PyBackfillReport {
    pub inner: BackfillReport,
}

#[pymethods]
impl PyBackfillReport {
    #[getter]
    fn dry_run(&self) -> bool {
        self.inner.dry_run
    }
    #[getter]
    fn force(&self) -> bool {
        self.inner.force
    }
    /// Trained runs considered.
    #[getter]
    fn found(&self) -> u64 {
        self.inner.found
    }
    #[getter]
    fn updated(&self) -> u64 {
        self.inner.updated
    }
    #[getter]
    fn skipped(&self) -> u64 {
        self.inner.skipped
    }
    #[getter]
    fn errors(&self) -> u64 {
        self.inner.errors
    }
    #[getter]
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.items)
    }
    /// The management command's last line: "Completed: N updated, N skipped, N errors".
    #[getter]
    fn summary(&self) -> String {
        format!(
            "{}: {} updated, {} skipped, {} errors",
            if self.inner.dry_run {
                "Dry run"
            } else {
                "Completed"
            },
            self.inner.updated,
            self.inner.skipped,
            self.inner.errors
        )
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        let r = &self.inner;
        format!(
            "BackfillReport(dry_run={}, force={}, found={}, updated={}, skipped={}, errors={})",
            py_bool(r.dry_run),
            py_bool(r.force),
            r.found,
            r.updated,
            r.skipped,
            r.errors
        )
    }
}

/// Run insights: statistics, schema, weight statistics, logs, and the metrics backfill.
#[pyclass(module = "trainyard._native", name = "InsightsService", frozen)]
pub struct PyInsights {
    pub ctx: Arc<Ctx>,
}

impl PyInsights {
    fn statistics_op(&self, run_id: i64, split: Option<String>) -> Op<PyRunStatistics> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let stats = ctx.platform().await?.insights().statistics(run_id).await?;
            PyRunStatistics::new(stats, split.as_deref())
        })
    }

    fn schema_op(&self, run_id: i64) -> Op<PyRunSchema> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let inner = ctx.platform().await?.insights().schema(run_id).await?;
            Ok(PyRunSchema { inner })
        })
    }

    fn weight_stats_op(&self, run_id: i64, epoch: Option<i64>) -> PyResult<Op<PyRunWeightStats>> {
        let epoch = epoch
            .map(|e| {
                u32::try_from(e).map_err(|_| {
                    invalid("epoch", format!("{e} is not an epoch number (0 or more)"))
                })
            })
            .transpose()?;
        let ctx = self.ctx.clone();
        Ok(Box::pin(async move {
            let inner = ctx
                .platform()
                .await?
                .insights()
                .weight_stats(run_id, epoch)
                .await?;
            Ok(PyRunWeightStats { inner })
        }))
    }

    fn logs_op(&self, run_id: i64, component: Option<String>) -> Op<PyRunLogs> {
        let ctx = self.ctx.clone();
        // An empty component means the whole pipeline, as in the HTTP API.
        let component = component.filter(|c| !c.trim().is_empty());
        Box::pin(async move {
            let inner = ctx
                .platform()
                .await?
                .insights()
                .logs(run_id, component.as_deref())
                .await?;
            Ok(PyRunLogs { inner })
        })
    }

    fn backfill_op(&self, dry_run: bool, force: bool) -> Op<PyBackfillReport> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let inner = ctx
                .platform()
                .await?
                .insights()
                .backfill(BackfillOptions { dry_run, force })
                .await?;
            Ok(PyBackfillReport { inner })
        })
    }
}

#[pymethods]
impl PyInsights {
    /// The run's dataset statistics (its StatisticsGen output): every split combined, or the
    /// one named by `split` ("train", "eval", ...). A run without that output is NotFound; an
    /// unknown split a ValidationError listing the run's splits.
    #[pyo3(signature = (run_id, split=None))]
    fn statistics(
        &self,
        py: Python<'_>,
        run_id: i64,
        split: Option<String>,
    ) -> PyResult<PyRunStatistics> {
        block(py, self.statistics_op(run_id, split))
    }

    #[pyo3(signature = (run_id, split=None))]
    fn statistics_async<'py>(
        &self,
        py: Python<'py>,
        run_id: i64,
        split: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.statistics_op(run_id, split))
    }

    /// The schema SchemaGen inferred for the run; NotFound without that output.
    fn schema(&self, py: Python<'_>, run_id: i64) -> PyResult<PyRunSchema> {
        block(py, self.schema_op(run_id))
    }

    fn schema_async<'py>(&self, py: Python<'py>, run_id: i64) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.schema_op(run_id))
    }

    /// Weight and gradient statistics of every epoch, or of `epoch` (NotFound when it was
    /// not recorded). A run whose trainer recorded none has no epochs; a run without a
    /// training history is NotFound.
    #[pyo3(signature = (run_id, epoch=None))]
    fn weight_stats(
        &self,
        py: Python<'_>,
        run_id: i64,
        epoch: Option<i64>,
    ) -> PyResult<PyRunWeightStats> {
        block(py, self.weight_stats_op(run_id, epoch)?)
    }

    #[pyo3(signature = (run_id, epoch=None))]
    fn weight_stats_async<'py>(
        &self,
        py: Python<'py>,
        run_id: i64,
        epoch: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.weight_stats_op(run_id, epoch)?)
    }

    /// The run's pipeline log, or one component's (`"Trainer"`, `"StatisticsGen"`, ...;
    /// NotFound naming the components that have logs when it has none).
    #[pyo3(signature = (run_id, component=None))]
    fn logs(&self, py: Python<'_>, run_id: i64, component: Option<String>) -> PyResult<PyRunLogs> {
        block(py, self.logs_op(run_id, component))
    }

    #[pyo3(signature = (run_id, component=None))]
    fn logs_async<'py>(
        &self,
        py: Python<'py>,
        run_id: i64,
        component: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.logs_op(run_id, component))
    }

    /// Re-extracts results from each trained run's stored training history: fills missing
    /// results (`force`: also overwrites ones that differ); `dry_run` reports and writes
    /// nothing.
    #[pyo3(signature = (*, dry_run=false, force=false))]
    fn backfill(&self, py: Python<'_>, dry_run: bool, force: bool) -> PyResult<PyBackfillReport> {
        block(py, self.backfill_op(dry_run, force))
    }

    #[pyo3(signature = (*, dry_run=false, force=false))]
    fn backfill_async<'py>(
        &self,
        py: Python<'py>,
        dry_run: bool,
        force: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.backfill_op(dry_run, force))
    }

    fn __repr__(&self) -> String {
        format!(
            "InsightsService(dir={})",
            pyq(&self.ctx.dir.display().to_string())
        )
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
