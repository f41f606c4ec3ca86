//! The typed result classes: Run, Schedule, RegisteredModel, NameCheck, RunPage, FireOutcome.
//! Each wraps its domain type, offers `to_dict()` (JSON-shaped) and, where a caller could hold
//! one, `from_dict()`.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use pyo3::prelude::*;
use trainyard_core::metrics::Metric;
use trainyard_core::ports::{FireOutcome, RunPage};
use trainyard_core::registry::{NameCheck, RegisteredModel};
use trainyard_core::run::TrainingRun;
use trainyard_core::schedule::TrainingSchedule;
use trainyard_core::stages::StageStatus;
use trainyard_core::Error;

use crate::convert::{local_times, to_py};
use crate::ctx::Ctx;
use crate::errors::to_py_err;
use crate::repr::{escape, fmt_metric, py_bool, py_repr_opt, pyq, to_py_string};
use crate::runtime::block;

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
            to_py_err(Error::Backend(
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

view_methods! {
    impl PyRun(r) {
        get {
            id: i64 = r.id;
            ml_model: &str = &r.ml_model;
            run_number: u32 = r.run_number;
            name: &str = &r.name;
            description: &str = &r.description;
            /// "Training #N"
            display_name: String = r.display_name();
            registered_model_id: Option<i64> = r.registered_model_id;
            schedule_id: Option<i64> = r.schedule_id;
            scheduled_fire_at: Option<DateTime<Utc>> = r.scheduled_fire_at;
            status: &'static str = r.status.as_str();
            current_stage: Option<&'static str> = r.current_stage.map(|s| s.as_str());
            model_type: &'static str = r.model_type().as_str();
            is_blessed: Option<bool> = r.results.is_blessed;
            recall_at_100: Option<f64> = r.results.recall_at_100;
            rmse: Option<f64> = r.results.rmse;
            mae: Option<f64> = r.results.mae;
            final_loss: Option<f64> = r.results.final_loss;
            error_message: Option<&str> = r.error_message.as_deref();
            vertex_pipeline_job_name: Option<&str> = r.vertex_pipeline_job_name.as_deref();
            vertex_pipeline_job_id: Option<&str> = r.vertex_pipeline_job_id.as_deref();
            /// The MLflow run the trainer logged to (None without a tracking URI).
            mlflow_run_id: Option<&str> = r.mlflow_run_id.as_deref();
            duration_seconds: Option<f64> = r.duration_seconds;
            created_at: DateTime<Utc> = r.created_at;
            started_at: Option<DateTime<Utc>> = r.started_at;
            completed_at: Option<DateTime<Utc>> = r.completed_at;
            updated_at: DateTime<Utc> = r.updated_at;
            version: i64 = r.version;
        }
        dict {
            /// The nine stages, in pipeline order: dicts with name, status, started_at, completed_at.
            stages = &r.stage_details;
            /// The results columns (recall_at_k, rmse, mae, test_rmse, test_mae, final_loss, is_blessed).
            results = &r.results;
            /// The run's configuration as a dict.
            config = &r.config;
            artifacts = &r.artifacts;
            deployment_status = &r.deployment_status;
        }
        from_dict("run", ctx: None);
        eq(PyRun);
        repr(Run {
            id = r.id,
            ml_model = pyq(&r.ml_model),
            name = pyq(&r.name),
            run_number = r.run_number,
            status = pyq(r.status.as_str()),
            stage = py_repr_opt(r.current_stage.map(|s| pyq(s.as_str()))),
        });
        methods {
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
                for m in Metric::kpis(r.model_type())
                    .iter()
                    .chain([&Metric::FinalLoss])
                {
                    html.push_str(&format!(
                        "<tr><td>{m}</td><td>{}</td></tr>",
                        fmt_metric(r.results.value(*m))
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

        }
    }
}

/// A page of runs with the KPI counts of the filter.
#[pyclass(module = "trainyard._native", name = "RunPage", frozen)]
pub struct PyRunPage {
    pub inner: RunPage,
    pub ctx: Arc<Ctx>,
}

view_methods! {
    impl PyRunPage(p) {
        get {
            /// Runs matching the whole filter (all pages).
            total: u64 = p.total;
            page: u32 = p.page;
            page_size: u32 = p.page_size;
        }
        dict {
            /// {"total": n, "by_status": {status: n}} over the filter's non-status criteria.
            kpi = &p.kpi;
        }
        repr(RunPage {
            page = p.page,
            page_size = p.page_size,
            runs = p.runs.len(),
            total = p.total,
        });
        methods {
            #[getter]
            fn runs(&self) -> Vec<PyRun> {
                self.inner
                    .runs
                    .iter()
                    .map(|r| PyRun::new(r.clone(), &self.ctx))
                    .collect()
            }
            fn __len__(&self) -> usize {
                self.inner.runs.len()
            }
            fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                let list = pyo3::types::PyList::new(py, self.runs())?;
                list.try_iter().map(|i| i.into_any())
            }
        }
    }
}

/// A retraining schedule.
#[pyclass(module = "trainyard._native", name = "Schedule", frozen)]
pub struct PySchedule {
    pub inner: TrainingSchedule,
}

view_methods! {
    impl PySchedule(s) {
        get {
            id: i64 = s.id;
            name: &str = &s.name;
            description: &str = &s.description;
            ml_model: &str = &s.ml_model;
            registered_model_id: i64 = s.registered_model_id;
            source_training_run_id: Option<i64> = s.source_training_run_id;
            schedule_type: String = to_py_string(&s.timing.schedule_type);
            timezone: &str = &s.timing.schedule_timezone;
            /// The unix-cron string (Cloud Scheduler's format) in `timezone`.
            cron: PyResult<String> = s.timing.cron().map_err(|e| to_py_err(e.into()));
            status: String = to_py_string(&s.status);
            catch_up: String = to_py_string(&s.catch_up);
            concurrency: String = to_py_string(&s.concurrency);
            last_run_at: Option<DateTime<Utc>> = s.last_run_at;
            next_run_at: Option<DateTime<Utc>> = s.next_run_at;
            total_runs: u32 = s.total_runs;
            successful_runs: u32 = s.successful_runs;
            failed_runs: u32 = s.failed_runs;
            /// Percent of successful runs; None before the first run.
            success_rate: Option<f64> = s.success_rate();
            created_at: DateTime<Utc> = s.created_at;
            updated_at: DateTime<Utc> = s.updated_at;
        }
        dict {
            /// The timing fields as a dict (the only editable part, with name and description).
            timing = &s.timing;
            /// The training config frozen at creation.
            training_config = &s.training_config;
        }
        from_dict("schedule");
        eq(PySchedule);
        repr(Schedule {
            id = s.id,
            name = pyq(&s.name),
            type = pyq(&to_py_string(&s.timing.schedule_type)),
            cron = pyq(&s.timing.cron().unwrap_or_default()),
            timezone = pyq(&s.timing.schedule_timezone),
            status = pyq(&to_py_string(&s.status)),
            next_run_at = py_repr_opt(s.next_run_at.map(|t| pyq(&t.to_rfc3339()))),
        });
        methods {
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
                    .map_err(|e| to_py_err(e.into()))?;
                Ok(local_times(&fires))
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

        }
    }
}

/// A named model whose versions are training runs.
#[pyclass(module = "trainyard._native", name = "RegisteredModel", frozen)]
pub struct PyRegisteredModel {
    pub inner: RegisteredModel,
}

view_methods! {
    impl PyRegisteredModel(m) {
        get {
            id: i64 = m.id;
            ml_model: &str = &m.ml_model;
            model_name: &str = &m.model_name;
            model_type: &'static str = m.model_type.as_str();
            description: &str = &m.description;
            latest_version_id: Option<i64> = m.latest_version_id;
            latest_version_number: &str = &m.latest_version_number;
            total_versions: u32 = m.total_versions;
            is_deployed: bool = m.is_deployed;
            is_active: bool = m.is_active;
            created_at: DateTime<Utc> = m.created_at;
        }
        from_dict("registered_model");
        eq(PyRegisteredModel);
        repr(RegisteredModel {
            id = m.id,
            ml_model = pyq(&m.ml_model),
            model_name = pyq(&m.model_name),
            model_type = pyq(m.model_type.as_str()),
            total_versions = m.total_versions,
        });
    }
}

/// The answer of check-name.
#[pyclass(module = "trainyard._native", name = "NameCheck", frozen)]
pub struct PyNameCheck {
    pub inner: NameCheck,
}

view_methods! {
    impl PyNameCheck(c) {
        get {
            exists: bool = c.exists;
            registered_model_id: Option<i64> = c.registered_model_id;
            has_schedule: bool = c.has_schedule;
            schedule_id: Option<i64> = c.schedule_id;
        }
        repr(NameCheck {
            exists = py_bool(c.exists),
            registered_model_id = py_repr_opt(c.registered_model_id),
            has_schedule = py_bool(c.has_schedule),
            schedule_id = py_repr_opt(c.schedule_id),
        });
    }
}

/// What one schedule fire did: outcome "created", "already_fired" or "skipped".
#[pyclass(module = "trainyard._native", name = "FireOutcome", frozen)]
pub struct PyFireOutcome {
    pub inner: FireOutcome,
    pub ctx: Arc<Ctx>,
}

view_methods! {
    impl PyFireOutcome(f) {
        get {
            outcome: &'static str = match f {
                FireOutcome::Created { .. } => "created",
                FireOutcome::AlreadyFired { .. } => "already_fired",
                FireOutcome::Skipped { .. } => "skipped",
            };
            reason: Option<&str> = match f {
                FireOutcome::Skipped { reason } => Some(reason),
                _ => None,
            };
        }
        methods {
            #[getter]
            fn run(&self) -> Option<PyRun> {
                match &self.inner {
                    FireOutcome::Created { run } | FireOutcome::AlreadyFired { run } => {
                        Some(PyRun::new((**run).clone(), &self.ctx))
                    }
                    FireOutcome::Skipped { .. } => None,
                }
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
