//! The typed result classes: Run, Schedule, RegisteredModel, NameCheck, RunPage, FireOutcome.
//! Each wraps its domain type, offers `to_dict()` (JSON-shaped) and, where a caller could hold
//! one, `from_dict()`.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use pyo3::prelude::*;
use pyo3::types::PyType;
use trainyard_core::metrics::kpi_metrics;
use trainyard_core::ports::{FireOutcome, RunPage};
use trainyard_core::registry::{NameCheck, RegisteredModel};
use trainyard_core::run::TrainingRun;
use trainyard_core::schedule::TrainingSchedule;
use trainyard_core::stages::StageStatus;
use trainyard_core::Error;

use crate::convert::{from_py, local_times, to_py};
use crate::platform::Ctx;
use crate::runtime::block;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt_metric(v: Option<f64>) -> String {
    v.map_or_else(|| "&mdash;".to_string(), |x| format!("{x:.4}"))
}

/// A string as Python's repr writes it (single quotes).
pub fn pyq(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

pub fn py_repr_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "None".into(), |x| x.to_string())
}

/// A bool as Python's repr writes it.
pub fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn notebook(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("trainyard._notebook")
}

/// A training run.
#[pyclass(module = "trainyard._native", name = "Run", frozen)]
pub struct PyRun {
    pub inner: TrainingRun,
    pub ctx: Option<Arc<Ctx>>,
}

impl PyRun {
    pub fn new(inner: TrainingRun, ctx: &Arc<Ctx>) -> Self {
        PyRun {
            inner,
            ctx: Some(ctx.clone()),
        }
    }

    fn ctx(&self) -> PyResult<Arc<Ctx>> {
        self.ctx.clone().ok_or_else(|| {
            crate::errors::to_py_err(Error::Backend(
                "this Run was built with Run.from_dict and is not bound to a platform; \
                 get it with platform.training.get(id)"
                    .into(),
            ))
        })
    }

    fn history_rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let ctx = self.ctx()?;
        let id = self.inner.id;
        let rows = block(py, async move {
            ctx.platform().await?.training().history(id).await
        })?;
        to_py(py, &rows)
    }
}

#[pymethods]
impl PyRun {
    #[getter]
    fn id(&self) -> i64 {
        self.inner.id
    }
    #[getter]
    fn ml_model(&self) -> &str {
        &self.inner.ml_model
    }
    #[getter]
    fn run_number(&self) -> u32 {
        self.inner.run_number
    }
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }
    #[getter]
    fn description(&self) -> &str {
        &self.inner.description
    }
    /// "Training #N"
    #[getter]
    fn display_name(&self) -> String {
        self.inner.display_name()
    }
    #[getter]
    fn registered_model_id(&self) -> Option<i64> {
        self.inner.registered_model_id
    }
    #[getter]
    fn schedule_id(&self) -> Option<i64> {
        self.inner.schedule_id
    }
    #[getter]
    fn scheduled_fire_at(&self) -> Option<DateTime<Utc>> {
        self.inner.scheduled_fire_at
    }
    #[getter]
    fn status(&self) -> &'static str {
        self.inner.status.as_str()
    }
    #[getter]
    fn current_stage(&self) -> Option<&'static str> {
        self.inner.current_stage.map(|s| s.as_str())
    }
    #[getter]
    fn model_type(&self) -> &'static str {
        self.inner.model_type().as_str()
    }
    /// The nine stages, in pipeline order: dicts with name, status, started_at, completed_at.
    #[getter]
    fn stages<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.stage_details)
    }
    /// The results columns (recall_at_k, rmse, mae, test_rmse, test_mae, final_loss, is_blessed).
    #[getter]
    fn results<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.results)
    }
    /// The run's configuration as a dict.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.config)
    }
    #[getter]
    fn is_blessed(&self) -> Option<bool> {
        self.inner.results.is_blessed
    }
    #[getter]
    fn recall_at_100(&self) -> Option<f64> {
        self.inner.results.recall_at_100
    }
    #[getter]
    fn rmse(&self) -> Option<f64> {
        self.inner.results.rmse
    }
    #[getter]
    fn mae(&self) -> Option<f64> {
        self.inner.results.mae
    }
    #[getter]
    fn final_loss(&self) -> Option<f64> {
        self.inner.results.final_loss
    }
    #[getter]
    fn error_message(&self) -> Option<&str> {
        self.inner.error_message.as_deref()
    }
    /// The MLflow run the trainer logged to (None when tracking was off).
    #[getter]
    fn mlflow_run_id(&self) -> Option<&str> {
        self.inner.mlflow_run_id.as_deref()
    }
    #[getter]
    fn vertex_pipeline_job_name(&self) -> Option<&str> {
        self.inner.vertex_pipeline_job_name.as_deref()
    }
    #[getter]
    fn vertex_pipeline_job_id(&self) -> Option<&str> {
        self.inner.vertex_pipeline_job_id.as_deref()
    }
    #[getter]
    fn artifacts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.artifacts)
    }
    #[getter]
    fn deployment_status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.deployment_status)
    }
    #[getter]
    fn duration_seconds(&self) -> Option<f64> {
        self.inner.duration_seconds
    }
    #[getter]
    fn created_at(&self) -> DateTime<Utc> {
        self.inner.created_at
    }
    #[getter]
    fn started_at(&self) -> Option<DateTime<Utc>> {
        self.inner.started_at
    }
    #[getter]
    fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.inner.completed_at
    }
    #[getter]
    fn updated_at(&self) -> DateTime<Utc> {
        self.inner.updated_at
    }
    #[getter]
    fn version(&self) -> i64 {
        self.inner.version
    }

    /// Every field, JSON-shaped (datetimes as RFC 3339 strings).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }

    /// A Run from `to_dict()` output (not bound to a platform: history() needs one).
    #[classmethod]
    fn from_dict(_cls: &Bound<'_, PyType>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyRun {
            inner: from_py("run", data)?,
            ctx: None,
        })
    }

    /// Per-epoch metrics: a pandas DataFrame when pandas is installed, else a list of dicts.
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let rows = self.history_rows(py)?;
        notebook(py)?.call_method1("history_frame", (rows,))
    }

    /// Draws the loss and recall curves with matplotlib; returns the Figure.
    #[pyo3(signature = (ax=None))]
    fn plot<'py>(
        &self,
        py: Python<'py>,
        ax: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rows = self.history_rows(py)?;
        let title = format!("{} ({})", self.inner.name, self.inner.display_name());
        notebook(py)?.call_method1("plot_history", (rows, title, ax))
    }

    fn _repr_html_(&self) -> String {
        let r = &self.inner;
        let status_color = match r.status.as_str() {
            "completed" | "deployed" => "#2e7d32",
            "failed" | "deploy_failed" => "#c62828",
            "running" | "submitting" | "deploying" => "#1565c0",
            "cancelled" | "not_blessed" => "#6d4c41",
            _ => "#757575",
        };
        let mut html = format!(
            "<div class=\"trainyard-run\"><b>{}</b> &middot; {} &middot; {} \
             <span style=\"background:{status_color};color:white;padding:1px 6px;border-radius:3px\">{}</span>",
            escape(&r.name),
            escape(&r.display_name()),
            r.model_type().as_str(),
            r.status
        );
        html.push_str(
            "<table class=\"trainyard-stages\" style=\"border-collapse:collapse;margin:4px 0\"><tr>",
        );
        for s in r.stage_details.iter() {
            let (bg, mark) = match s.status {
                StageStatus::Completed => ("#a5d6a7", "&#10003;"),
                StageStatus::Running => ("#90caf9", "&#9654;"),
                StageStatus::Failed => ("#ef9a9a", "&#10007;"),
                StageStatus::Skipped => ("#e0e0e0", "&ndash;"),
                StageStatus::Pending => ("#fafafa", "&middot;"),
            };
            let status = to_py_string(&s.status);
            html.push_str(&format!(
                "<td class=\"stage stage-{status}\" title=\"{}: {status}\" \
                 style=\"background:{bg};border:1px solid #bbb;padding:2px 6px\">{} {mark}</td>",
                s.name.as_str(),
                s.name.as_str()
            ));
        }
        html.push_str("</tr></table><table class=\"trainyard-metrics\">");
        for m in kpi_metrics(r.model_type())
            .iter()
            .copied()
            .chain(["final_loss"])
        {
            html.push_str(&format!(
                "<tr><td>{m}</td><td>{}</td></tr>",
                fmt_metric(r.results.get(m))
            ));
        }
        if let Some(b) = r.results.is_blessed {
            html.push_str(&format!("<tr><td>blessed</td><td>{b}</td></tr>"));
        }
        html.push_str("</table>");
        if let Some(e) = &r.error_message {
            html.push_str(&format!(
                "<div class=\"error\" style=\"color:#c62828\">{}</div>",
                escape(e)
            ));
        }
        html.push_str("</div>");
        html
    }

    fn __repr__(&self) -> String {
        let r = &self.inner;
        format!(
            "Run(id={}, ml_model={}, name={}, run_number={}, status={}, stage={})",
            r.id,
            pyq(&r.ml_model),
            pyq(&r.name),
            r.run_number,
            pyq(r.status.as_str()),
            r.current_stage
                .map_or_else(|| "None".into(), |s| pyq(s.as_str()))
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyRun>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }
}

/// A unit enum's serde name ("completed", "weekly", ...).
pub fn to_py_string<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// A page of runs with the KPI counts of the filter.
#[pyclass(module = "trainyard._native", name = "RunPage", frozen)]
pub struct PyRunPage {
    pub inner: RunPage,
    pub ctx: Arc<Ctx>,
}

#[pymethods]
impl PyRunPage {
    #[getter]
    fn runs(&self) -> Vec<PyRun> {
        self.inner
            .runs
            .iter()
            .map(|r| PyRun::new(r.clone(), &self.ctx))
            .collect()
    }
    /// Runs matching the whole filter (all pages).
    #[getter]
    fn total(&self) -> u64 {
        self.inner.total
    }
    #[getter]
    fn page(&self) -> u32 {
        self.inner.page
    }
    #[getter]
    fn page_size(&self) -> u32 {
        self.inner.page_size
    }
    /// {"total": n, "by_status": {status: n}} over the filter's non-status criteria.
    #[getter]
    fn kpi<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.kpi)
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    fn __len__(&self) -> usize {
        self.inner.runs.len()
    }
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let list = pyo3::types::PyList::new(py, self.runs())?;
        list.try_iter().map(|i| i.into_any())
    }
    fn __repr__(&self) -> String {
        format!(
            "RunPage(page={}, page_size={}, runs={}, total={})",
            self.inner.page,
            self.inner.page_size,
            self.inner.runs.len(),
            self.inner.total
        )
    }
}

/// A retraining schedule.
#[pyclass(module = "trainyard._native", name = "Schedule", frozen)]
pub struct PySchedule {
    pub inner: TrainingSchedule,
}

#[pymethods]
impl PySchedule {
    #[getter]
    fn id(&self) -> i64 {
        self.inner.id
    }
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }
    #[getter]
    fn description(&self) -> &str {
        &self.inner.description
    }
    #[getter]
    fn ml_model(&self) -> &str {
        &self.inner.ml_model
    }
    #[getter]
    fn registered_model_id(&self) -> i64 {
        self.inner.registered_model_id
    }
    #[getter]
    fn source_training_run_id(&self) -> Option<i64> {
        self.inner.source_training_run_id
    }
    #[getter]
    fn schedule_type(&self) -> String {
        to_py_string(&self.inner.timing.schedule_type)
    }
    #[getter]
    fn timezone(&self) -> &str {
        &self.inner.timing.schedule_timezone
    }
    /// The timing fields as a dict (the only editable part, with name and description).
    #[getter]
    fn timing<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.timing)
    }
    /// The unix-cron string (Cloud Scheduler's format) in `timezone`.
    #[getter]
    fn cron(&self) -> PyResult<String> {
        self.inner
            .timing
            .cron()
            .map_err(|e| crate::errors::to_py_err(e.into()))
    }
    #[getter]
    fn status(&self) -> String {
        to_py_string(&self.inner.status)
    }
    #[getter]
    fn catch_up(&self) -> String {
        to_py_string(&self.inner.catch_up)
    }
    #[getter]
    fn concurrency(&self) -> String {
        to_py_string(&self.inner.concurrency)
    }
    /// The training config frozen at creation.
    #[getter]
    fn training_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.training_config)
    }
    #[getter]
    fn last_run_at(&self) -> Option<DateTime<Utc>> {
        self.inner.last_run_at
    }
    #[getter]
    fn next_run_at(&self) -> Option<DateTime<Utc>> {
        self.inner.next_run_at
    }
    #[getter]
    fn total_runs(&self) -> u32 {
        self.inner.total_runs
    }
    #[getter]
    fn successful_runs(&self) -> u32 {
        self.inner.successful_runs
    }
    #[getter]
    fn failed_runs(&self) -> u32 {
        self.inner.failed_runs
    }
    /// Percent of successful runs; None before the first run.
    #[getter]
    fn success_rate(&self) -> Option<f64> {
        self.inner.success_rate()
    }
    #[getter]
    fn created_at(&self) -> DateTime<Utc> {
        self.inner.created_at
    }
    #[getter]
    fn updated_at(&self) -> DateTime<Utc> {
        self.inner.updated_at
    }

    /// The next `count` fires after `after` (default now), in the schedule's time zone.
    #[pyo3(signature = (count=5, after=None))]
    fn upcoming(
        &self,
        count: usize,
        after: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<DateTime<FixedOffset>>> {
        let after = match after {
            Some(a) => crate::convert::instant("after", a)?,
            None => Utc::now(),
        };
        let fires = self
            .inner
            .timing
            .upcoming(after, count)
            .map_err(|e| crate::errors::to_py_err(e.into()))?;
        Ok(local_times(&fires))
    }

    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }

    #[classmethod]
    fn from_dict(_cls: &Bound<'_, PyType>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PySchedule {
            inner: from_py("schedule", data)?,
        })
    }

    fn _repr_html_(&self) -> String {
        let s = &self.inner;
        let mut html = format!(
            "<div class=\"trainyard-schedule\"><b>{}</b> &middot; {} &middot; <code>{}</code> ({})",
            escape(&s.name),
            to_py_string(&s.status),
            escape(&s.timing.cron().unwrap_or_default()),
            escape(&s.timing.schedule_timezone)
        );
        html.push_str(&format!(
            "<div>runs: {} total, {} successful, {} failed</div>",
            s.total_runs, s.successful_runs, s.failed_runs
        ));
        let fires = if s.is_active() || s.status == trainyard_core::schedule::ScheduleStatus::Paused
        {
            s.timing.upcoming(Utc::now(), 5).unwrap_or_default()
        } else {
            Vec::new()
        };
        html.push_str("<div>next fires:</div><ol class=\"next-fires\">");
        for f in &fires {
            html.push_str(&format!(
                "<li>{}</li>",
                trainyard_core::timing::rfc3339_local(f)
            ));
        }
        html.push_str("</ol></div>");
        html
    }

    fn __repr__(&self) -> String {
        let s = &self.inner;
        format!(
            "Schedule(id={}, name={}, type={}, cron={}, timezone={}, status={}, next_run_at={})",
            s.id,
            pyq(&s.name),
            pyq(&to_py_string(&s.timing.schedule_type)),
            pyq(&s.timing.cron().unwrap_or_default()),
            pyq(&s.timing.schedule_timezone),
            pyq(&to_py_string(&s.status)),
            py_repr_opt(s.next_run_at.map(|t| pyq(&t.to_rfc3339())))
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PySchedule>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }
}

/// A named model whose versions are training runs.
#[pyclass(module = "trainyard._native", name = "RegisteredModel", frozen)]
pub struct PyRegisteredModel {
    pub inner: RegisteredModel,
}

#[pymethods]
impl PyRegisteredModel {
    #[getter]
    fn id(&self) -> i64 {
        self.inner.id
    }
    #[getter]
    fn ml_model(&self) -> &str {
        &self.inner.ml_model
    }
    #[getter]
    fn model_name(&self) -> &str {
        &self.inner.model_name
    }
    #[getter]
    fn model_type(&self) -> &'static str {
        self.inner.model_type.as_str()
    }
    #[getter]
    fn description(&self) -> &str {
        &self.inner.description
    }
    #[getter]
    fn latest_version_id(&self) -> Option<i64> {
        self.inner.latest_version_id
    }
    #[getter]
    fn latest_version_number(&self) -> &str {
        &self.inner.latest_version_number
    }
    #[getter]
    fn total_versions(&self) -> u32 {
        self.inner.total_versions
    }
    #[getter]
    fn is_deployed(&self) -> bool {
        self.inner.is_deployed
    }
    #[getter]
    fn is_active(&self) -> bool {
        self.inner.is_active
    }
    #[getter]
    fn created_at(&self) -> DateTime<Utc> {
        self.inner.created_at
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    #[classmethod]
    fn from_dict(_cls: &Bound<'_, PyType>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyRegisteredModel {
            inner: from_py("registered_model", data)?,
        })
    }
    fn __repr__(&self) -> String {
        let m = &self.inner;
        format!(
            "RegisteredModel(id={}, ml_model={}, model_name={}, model_type={}, total_versions={})",
            m.id,
            pyq(&m.ml_model),
            pyq(&m.model_name),
            pyq(m.model_type.as_str()),
            m.total_versions
        )
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyRegisteredModel>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }
}

/// The answer of check-name.
#[pyclass(module = "trainyard._native", name = "NameCheck", frozen)]
pub struct PyNameCheck {
    pub inner: NameCheck,
}

#[pymethods]
impl PyNameCheck {
    #[getter]
    fn exists(&self) -> bool {
        self.inner.exists
    }
    #[getter]
    fn registered_model_id(&self) -> Option<i64> {
        self.inner.registered_model_id
    }
    #[getter]
    fn has_schedule(&self) -> bool {
        self.inner.has_schedule
    }
    #[getter]
    fn schedule_id(&self) -> Option<i64> {
        self.inner.schedule_id
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        let c = &self.inner;
        format!(
            "NameCheck(exists={}, registered_model_id={}, has_schedule={}, schedule_id={})",
            if c.exists { "True" } else { "False" },
            py_repr_opt(c.registered_model_id),
            if c.has_schedule { "True" } else { "False" },
            py_repr_opt(c.schedule_id)
        )
    }
}

/// What one schedule fire did: outcome "created", "already_fired" or "skipped".
#[pyclass(module = "trainyard._native", name = "FireOutcome", frozen)]
pub struct PyFireOutcome {
    pub inner: FireOutcome,
    pub ctx: Arc<Ctx>,
}

#[pymethods]
impl PyFireOutcome {
    #[getter]
    fn outcome(&self) -> &'static str {
        match self.inner {
            FireOutcome::Created { .. } => "created",
            FireOutcome::AlreadyFired { .. } => "already_fired",
            FireOutcome::Skipped { .. } => "skipped",
        }
    }
    #[getter]
    fn run(&self) -> Option<PyRun> {
        match &self.inner {
            FireOutcome::Created { run } | FireOutcome::AlreadyFired { run } => {
                Some(PyRun::new((**run).clone(), &self.ctx))
            }
            FireOutcome::Skipped { .. } => None,
        }
    }
    #[getter]
    fn reason(&self) -> Option<&str> {
        match &self.inner {
            FireOutcome::Skipped { reason } => Some(reason),
            _ => None,
        }
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        match &self.inner {
            FireOutcome::Skipped { reason } => {
                format!("FireOutcome(outcome='skipped', reason={})", pyq(reason))
            }
            FireOutcome::Created { run } | FireOutcome::AlreadyFired { run } => format!(
                "FireOutcome(outcome={}, run_id={})",
                pyq(self.outcome()),
                run.id
            ),
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRun>()?;
    m.add_class::<PyRunPage>()?;
    m.add_class::<PySchedule>()?;
    m.add_class::<PyRegisteredModel>()?;
    m.add_class::<PyNameCheck>()?;
    m.add_class::<PyFireOutcome>()?;
    Ok(())
}
