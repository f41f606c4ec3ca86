//! The services of a platform: training runs, schedules, registry. Every operation exists as a
//! blocking method (GIL released while it runs) and as `<name>_async`, an awaitable; both run
//! the same future, built by a `*_op` function.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use pyo3::prelude::*;
use serde_json::Value;
use trainyard::{ModelFilter, NewSchedule, ScheduleEdit, WizardSchedule};
use trainyard_core::model_config::ModelType;
use trainyard_core::ports::{PipelineEvent, RunFilter};
use trainyard_core::run::{ConfigPatch, NewTrainingRun, RunConfig};
use trainyard_core::timing::ScheduleTiming;
use trainyard_core::{Result, RunStatus};

use crate::convert::{
    field_names, from_json, from_py, instant, local_times, over_defaults, py_to_json,
    reject_unknown_keys, Json,
};
use crate::errors::invalid;
use crate::models::{PyFireOutcome, PyNameCheck, PyRegisteredModel, PyRun, PyRunPage, PySchedule};
use crate::platform::Ctx;
use crate::registry::{PyModelListing, PyModelVersion, PyRegistryEvent};
use crate::runtime::{awaitable, block};

pub(crate) type Op<T> = std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send + 'static>>;

/// Both faces of one operation: `sync!(py, op)` blocks, `aw!(py, op)` returns an awaitable.
macro_rules! sync {
    ($py:expr, $op:expr) => {
        block($py, $op)
    };
}
macro_rules! aw {
    ($py:expr, $op:expr) => {
        awaitable($py, $op)
    };
}

fn run_config(config: Option<&Bound<'_, PyAny>>) -> PyResult<RunConfig> {
    let Some(config) = config else {
        return Ok(RunConfig::default());
    };
    let mut json = py_to_json(config)?;
    let names = field_names::<RunConfig>();
    let allowed: Vec<&str> = names.iter().map(String::as_str).collect();
    reject_unknown_keys("config", &json, &allowed)?;
    over_defaults::<RunConfig>(&mut json);
    from_json("config", json)
}

fn model_type(s: &str) -> PyResult<ModelType> {
    from_json("model_type", Value::String(s.into()))
}

fn statuses(status: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<RunStatus>> {
    let names: Vec<String> = match status {
        None => return Ok(Vec::new()),
        Some(s) => match s.extract::<String>() {
            Ok(one) => vec![one],
            Err(_) => s.extract::<Vec<String>>().map_err(|_| {
                invalid("status", "must be a status name or a list of status names")
            })?,
        },
    };
    names
        .iter()
        .map(|n| {
            RunStatus::parse(n).ok_or_else(|| {
                let all: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                invalid(
                    "status",
                    format!("unknown status {n:?}; expected one of {}", all.join(", ")),
                )
            })
        })
        .collect()
}

fn durations(poll: f64, timeout: f64) -> PyResult<(Duration, Duration)> {
    let secs = |field: &str, v: f64, min: f64| {
        if v.is_finite() && v >= min && v <= 7.0 * 86400.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(invalid(
                field,
                format!("must be between {min} and 604800 seconds"),
            ))
        }
    };
    Ok((secs("poll", poll, 0.01)?, secs("timeout", timeout, 0.0)?))
}

/// Training runs of a platform.
#[pyclass(module = "trainyard._native", name = "TrainingService", frozen)]
pub struct PyTraining {
    pub ctx: Arc<Ctx>,
}

impl PyTraining {
    /// A use case of the Platform itself (submit, follow: they may carry the run here).
    fn platform_op<F, Fut>(&self, f: F) -> Op<PyRun>
    where
        F: FnOnce(trainyard::Platform) -> Fut + Send + 'static,
        Fut: Future<Output = Result<trainyard_core::run::TrainingRun>> + Send,
    {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let run = f(ctx.platform().await?).await?;
            Ok(PyRun::new(run, &ctx))
        })
    }

    fn run_op<F, Fut>(&self, f: F) -> Op<PyRun>
    where
        F: FnOnce(trainyard::TrainingService) -> Fut + Send + 'static,
        Fut: Future<Output = Result<trainyard_core::run::TrainingRun>> + Send,
    {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let run = f(ctx.platform().await?.training()).await?;
            Ok(PyRun::new(run, &ctx))
        })
    }

    fn create_op(
        &self,
        name: String,
        config: Option<&Bound<'_, PyAny>>,
        ml_model: Option<String>,
        description: String,
    ) -> PyResult<Op<PyRun>> {
        let new = NewTrainingRun {
            ml_model: ml_model.unwrap_or_else(|| self.ctx.ml_model.clone()),
            name,
            description,
            config: run_config(config)?,
        };
        Ok(self.run_op(move |t| async move { t.create_training_run(new).await }))
    }

    #[allow(clippy::too_many_arguments)]
    fn list_op(
        &self,
        ml_model: Option<String>,
        status: Option<&Bound<'_, PyAny>>,
        model_type_: Option<String>,
        registered_model_id: Option<i64>,
        schedule_id: Option<i64>,
        search: Option<String>,
        page: u32,
        page_size: u32,
    ) -> PyResult<Op<PyRunPage>> {
        if page == 0 {
            return Err(invalid("page", "pages are numbered from 1"));
        }
        if page_size == 0 || page_size > 500 {
            return Err(invalid("page_size", "must be between 1 and 500"));
        }
        let filter = RunFilter {
            ml_model,
            statuses: statuses(status)?,
            model_type: model_type_.as_deref().map(model_type).transpose()?,
            registered_model_id,
            schedule_id,
            search,
            page,
            page_size,
            with_step: false,
            mlflow_run_id: None,
        };
        let ctx = self.ctx.clone();
        Ok(Box::pin(async move {
            let page = ctx.platform().await?.training().list(&filter).await?;
            Ok(PyRunPage { inner: page, ctx })
        }))
    }

    fn config_op(&self, id: i64) -> Op<Json> {
        let ctx = self.ctx.clone();
        Box::pin(async move { Json::of(&ctx.platform().await?.training().get_config(id).await?) })
    }

    fn patch_op(&self, id: i64, patch: &Bound<'_, PyAny>) -> PyResult<Op<(Json, Vec<String>)>> {
        let patch: ConfigPatch = from_py("patch", patch)?;
        let ctx = self.ctx.clone();
        Ok(Box::pin(async move {
            let (view, changed) = ctx
                .platform()
                .await?
                .training()
                .patch_config(id, &patch)
                .await?;
            Ok((
                Json::of(&view)?,
                changed.into_iter().map(String::from).collect(),
            ))
        }))
    }

    fn history_op(&self, id: i64) -> Op<Json> {
        let ctx = self.ctx.clone();
        Box::pin(async move { Json::of(&ctx.platform().await?.training().history(id).await?) })
    }

    fn event_op(&self, id: i64, event: &Bound<'_, PyAny>) -> PyResult<Op<PyRun>> {
        let event: PipelineEvent = from_py("event", event)?;
        Ok(self.run_op(move |t| async move { t.handle_event(id, &event).await }))
    }
}

#[pymethods]
impl PyTraining {
    /// Creates a pending run named `name` (its RegisteredModel is created when missing).
    /// `config` is a dict of the run config sections (dataset, feature_config, model_config,
    /// training_params, gpu_config, evaluator_config, deployment_config, schedule_config).
    #[pyo3(signature = (name, config=None, *, ml_model=None, description=String::new()))]
    fn create(
        &self,
        py: Python<'_>,
        name: String,
        config: Option<&Bound<'_, PyAny>>,
        ml_model: Option<String>,
        description: String,
    ) -> PyResult<PyRun> {
        sync!(py, self.create_op(name, config, ml_model, description)?)
    }

    #[pyo3(signature = (name, config=None, *, ml_model=None, description=String::new()))]
    fn create_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        config: Option<&Bound<'_, PyAny>>,
        ml_model: Option<String>,
        description: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.create_op(name, config, ml_model, description)?)
    }

    /// Submits a pending run: returns once a running `trainyard server` has the request or,
    /// with none, once this call started the pipeline (which does not depend on this
    /// process); BackendError when the submission failed.
    fn submit(&self, py: Python<'_>, id: i64) -> PyResult<PyRun> {
        sync!(
            py,
            self.platform_op(move |p| async move { p.submit(id).await })
        )
    }

    fn submit_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(
            py,
            self.platform_op(move |p| async move { p.submit(id).await })
        )
    }

    /// The files a run's pipeline is made of, {name: content}: for target "local" the
    /// generated modules and the LocalDagRunner pipeline module; for "vertex" the Vertex AI
    /// PipelineJob body (pipeline_job.json) and the user-code wheels (base64, under
    /// `_wheels/`). `pipeline_root` defaults to `<project>/runs/<id>` (local) or is required as
    /// a gs:// prefix (vertex), as are `project` and `region`.
    #[pyo3(signature = (id, target="local", *, pipeline_root=None, project=None, region=None))]
    fn compile(
        &self,
        py: Python<'_>,
        id: i64,
        target: &str,
        pipeline_root: Option<String>,
        project: Option<String>,
        region: Option<String>,
    ) -> PyResult<std::collections::BTreeMap<String, String>> {
        let ctx = self.ctx.clone();
        let target = target.to_string();
        sync!(py, async move {
            use trainyard_core::ports::PipelineCompiler;
            let run = ctx.platform().await?.training().get(id).await?;
            let need = |field: &str, v: Option<String>| {
                v.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                    trainyard_core::Error::Validation(trainyard_core::ValidationError::field(
                        field,
                        "is required for the vertex target",
                    ))
                })
            };
            let (compiler, root) = match target.as_str() {
                "local" => {
                    let base = ctx.dir.canonicalize().unwrap_or_else(|_| ctx.dir.clone());
                    let root = pipeline_root.unwrap_or_else(|| {
                        base.join("runs").join(id.to_string()).display().to_string()
                    });
                    (trainyard::RunCompiler::local(base), root)
                }
                "vertex" => {
                    let root = need("pipeline_root", pipeline_root)?;
                    let settings = trainyard::VertexSettings {
                        project: need("project", project)?,
                        region: need("region", region)?,
                        tfx_image: None,
                        trainer_image: None,
                        gpu_region: None,
                    };
                    (trainyard::RunCompiler::vertex(settings), root)
                }
                other => {
                    return Err(trainyard_core::Error::Validation(
                        trainyard_core::ValidationError::field(
                            "target",
                            format!("unknown target {other:?}; expected local or vertex"),
                        ),
                    ))
                }
            };
            compiler.compile(&run, &root)
        })
    }

    /// Follows the run until training and what follows it (registration, auto-deploy) are
    /// done (or `timeout` seconds pass: BackendError); returns the run as it then is. With no
    /// server running, this call carries the run meanwhile. `poll` is kept for compatibility.
    #[pyo3(signature = (id, poll=2.0, timeout=3600.0))]
    fn follow(&self, py: Python<'_>, id: i64, poll: f64, timeout: f64) -> PyResult<PyRun> {
        let (_, timeout) = durations(poll, timeout)?;
        sync!(
            py,
            self.platform_op(move |p| async move { follow(p, id, timeout).await })
        )
    }

    #[pyo3(signature = (id, poll=2.0, timeout=3600.0))]
    fn follow_async<'py>(
        &self,
        py: Python<'py>,
        id: i64,
        poll: f64,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (_, timeout) = durations(poll, timeout)?;
        aw!(
            py,
            self.platform_op(move |p| async move { follow(p, id, timeout).await })
        )
    }

    /// Marks a pending or scheduled run as handed to an executor (status `submitting`).
    fn mark_submitting(&self, py: Python<'_>, id: i64) -> PyResult<PyRun> {
        sync!(
            py,
            self.run_op(move |t| async move { t.mark_submitting(id).await })
        )
    }

    fn mark_submitting_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(
            py,
            self.run_op(move |t| async move { t.mark_submitting(id).await })
        )
    }

    fn get(&self, py: Python<'_>, id: i64) -> PyResult<PyRun> {
        sync!(py, self.run_op(move |t| async move { t.get(id).await }))
    }

    fn get_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.run_op(move |t| async move { t.get(id).await }))
    }

    /// One page of runs, newest first, with KPI counts. `status` is a status name or a list.
    #[pyo3(signature = (*, ml_model=None, status=None, model_type=None, registered_model_id=None, schedule_id=None, search=None, page=1, page_size=20))]
    #[allow(clippy::too_many_arguments)]
    fn list(
        &self,
        py: Python<'_>,
        ml_model: Option<String>,
        status: Option<&Bound<'_, PyAny>>,
        model_type: Option<String>,
        registered_model_id: Option<i64>,
        schedule_id: Option<i64>,
        search: Option<String>,
        page: u32,
        page_size: u32,
    ) -> PyResult<PyRunPage> {
        let op = self.list_op(
            ml_model,
            status,
            model_type,
            registered_model_id,
            schedule_id,
            search,
            page,
            page_size,
        )?;
        sync!(py, op)
    }

    #[pyo3(signature = (*, ml_model=None, status=None, model_type=None, registered_model_id=None, schedule_id=None, search=None, page=1, page_size=20))]
    #[allow(clippy::too_many_arguments)]
    fn list_async<'py>(
        &self,
        py: Python<'py>,
        ml_model: Option<String>,
        status: Option<&Bound<'_, PyAny>>,
        model_type: Option<String>,
        registered_model_id: Option<i64>,
        schedule_id: Option<i64>,
        search: Option<String>,
        page: u32,
        page_size: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = self.list_op(
            ml_model,
            status,
            model_type,
            registered_model_id,
            schedule_id,
            search,
            page,
            page_size,
        )?;
        aw!(py, op)
    }

    /// Cancels a pending, scheduled, submitting or running run.
    fn cancel(&self, py: Python<'_>, id: i64) -> PyResult<PyRun> {
        sync!(py, self.run_op(move |t| async move { t.cancel(id).await }))
    }

    fn cancel_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.run_op(move |t| async move { t.cancel(id).await }))
    }

    /// A new run with the name and config of a run whose training has finished.
    #[pyo3(signature = (id, *, submit=true))]
    fn rerun(&self, py: Python<'_>, id: i64, submit: bool) -> PyResult<PyRun> {
        sync!(py, self.platform_op(move |p| rerun(p, id, submit)))
    }

    #[pyo3(signature = (id, *, submit=true))]
    fn rerun_async<'py>(
        &self,
        py: Python<'py>,
        id: i64,
        submit: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.platform_op(move |p| rerun(p, id, submit)))
    }

    /// The run's config as a dict: {"id", "name", and every config section}.
    fn config(&self, py: Python<'_>, id: i64) -> PyResult<Json> {
        sync!(py, self.config_op(id))
    }

    fn config_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.config_op(id))
    }

    /// Edits training_params, gpu_config, evaluator_config, deployment_config or
    /// schedule_config of a finished run; returns (config dict, names of changed sections).
    fn patch_config(
        &self,
        py: Python<'_>,
        id: i64,
        patch: &Bound<'_, PyAny>,
    ) -> PyResult<(Json, Vec<String>)> {
        sync!(py, self.patch_op(id, patch)?)
    }

    fn patch_config_async<'py>(
        &self,
        py: Python<'py>,
        id: i64,
        patch: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.patch_op(id, patch)?)
    }

    /// Per-epoch metrics rows (dicts), oldest epoch first.
    fn history(&self, py: Python<'_>, id: i64) -> PyResult<Json> {
        sync!(py, self.history_op(id))
    }

    fn history_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.history_op(id))
    }

    /// Applies one pipeline event, e.g. {"event": "stage_started", "stage": "train"},
    /// {"event": "epoch_completed", "epoch": 0, "metrics": {...}}, {"event": "completed",
    /// "training_metrics": {...}, "blessed": True}, {"event": "failed", "error": "..."}.
    fn handle_event(&self, py: Python<'_>, id: i64, event: &Bound<'_, PyAny>) -> PyResult<PyRun> {
        sync!(py, self.event_op(id, event)?)
    }

    fn handle_event_async<'py>(
        &self,
        py: Python<'py>,
        id: i64,
        event: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.event_op(id, event)?)
    }

    fn __repr__(&self) -> String {
        format!(
            "TrainingService(dir={})",
            crate::models::pyq(&self.ctx.dir.display().to_string())
        )
    }
}

/// A schedule's dict, its keys checked (NewSchedule's timing is flattened).
fn new_schedule(schedule: &Bound<'_, PyAny>) -> PyResult<NewSchedule> {
    let json = py_to_json(schedule)?;
    reject_unknown_keys("schedule", &json, &NewSchedule::known_fields(&[]))?;
    from_json("schedule", json)
}

/// The wizard's dict, its config sections merged over the defaults like `create`'s.
fn wizard_of(wizard: &Bound<'_, PyAny>) -> PyResult<WizardSchedule> {
    let mut json = py_to_json(wizard)?;
    reject_unknown_keys("wizard", &json, &WizardSchedule::known_fields())?;
    over_defaults::<RunConfig>(&mut json);
    from_json("wizard", json)
}

/// Retraining schedules of a platform.
#[pyclass(module = "trainyard._native", name = "ScheduleService", frozen)]
pub struct PySchedules {
    pub ctx: Arc<Ctx>,
}

impl PySchedules {
    fn sched_op<F, Fut>(&self, f: F) -> Op<PySchedule>
    where
        F: FnOnce(trainyard::ScheduleService) -> Fut + Send + 'static,
        Fut: Future<Output = Result<trainyard_core::schedule::TrainingSchedule>> + Send,
    {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            Ok(PySchedule {
                inner: f(ctx.platform().await?.schedules()).await?,
            })
        })
    }

    fn times_op<F, Fut>(&self, f: F) -> Op<Vec<DateTime<FixedOffset>>>
    where
        F: FnOnce(trainyard::ScheduleService) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<DateTime<chrono_tz::Tz>>>> + Send,
    {
        let ctx = self.ctx.clone();
        Box::pin(async move { Ok(local_times(&f(ctx.platform().await?.schedules()).await?)) })
    }

    fn list_op(&self, ml_model: Option<String>) -> Op<Vec<PySchedule>> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let all = ctx
                .platform()
                .await?
                .schedules()
                .list(ml_model.as_deref())
                .await?;
            Ok(all.into_iter().map(|inner| PySchedule { inner }).collect())
        })
    }

    fn trigger_op(&self, id: i64) -> Op<PyFireOutcome> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let inner = ctx.platform().await?.schedules().trigger_now(id).await?;
            Ok(PyFireOutcome { inner, ctx })
        })
    }

    fn delete_op(&self, id: i64) -> Op<Json> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            ctx.platform().await?.schedules().delete(id).await?;
            Ok(Json(Value::Null))
        })
    }

    fn preview_run_op(&self, run_id: i64) -> Op<Json> {
        let ctx = self.ctx.clone();
        Box::pin(async move { Json::of(&ctx.platform().await?.schedules().preview(run_id).await?) })
    }
}

#[pymethods]
impl PySchedules {
    /// The unix-cron string of a timing dict (schedule_type, schedule_time, ...).
    #[staticmethod]
    fn cron(timing: &Bound<'_, PyAny>) -> PyResult<String> {
        from_py::<ScheduleTiming>("timing", timing)?
            .cron()
            .map_err(|e| crate::errors::to_py_err(e.into()))
    }

    /// The next `count` fires of a timing dict after `after` (default now), as aware datetimes
    /// in the timing's zone. Needs no project.
    #[staticmethod]
    #[pyo3(signature = (timing, count=5, after=None))]
    fn preview(
        timing: &Bound<'_, PyAny>,
        count: usize,
        after: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<DateTime<FixedOffset>>> {
        let t: ScheduleTiming = from_py("timing", timing)?;
        let after = match after {
            Some(a) => instant("after", a)?,
            None => Utc::now(),
        };
        let fires = t
            .upcoming(after, count)
            .map_err(|e| crate::errors::to_py_err(e.into()))?;
        Ok(local_times(&fires))
    }

    /// A schedule retraining a run's model with the run's config. `schedule` is a dict with
    /// name, description, the timing fields, catch_up and concurrency.
    fn create_from_run(
        &self,
        py: Python<'_>,
        run_id: i64,
        schedule: &Bound<'_, PyAny>,
    ) -> PyResult<PySchedule> {
        let new = new_schedule(schedule)?;
        sync!(
            py,
            self.sched_op(move |s| async move { s.create_from_run(run_id, new).await })
        )
    }

    fn create_from_run_async<'py>(
        &self,
        py: Python<'py>,
        run_id: i64,
        schedule: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let new = new_schedule(schedule)?;
        aw!(
            py,
            self.sched_op(move |s| async move { s.create_from_run(run_id, new).await })
        )
    }

    /// The wizard: model name, training config and timing in one dict (the model is created
    /// when missing).
    fn create_from_wizard(
        &self,
        py: Python<'_>,
        wizard: &Bound<'_, PyAny>,
    ) -> PyResult<PySchedule> {
        let w = wizard_of(wizard)?;
        sync!(
            py,
            self.sched_op(move |s| async move { s.create_from_config(w).await })
        )
    }

    fn create_from_wizard_async<'py>(
        &self,
        py: Python<'py>,
        wizard: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let w = wizard_of(wizard)?;
        aw!(
            py,
            self.sched_op(move |s| async move { s.create_from_config(w).await })
        )
    }

    /// A schedule for a registered model, with the config of its newest run.
    fn create_for_model(
        &self,
        py: Python<'_>,
        model_id: i64,
        schedule: &Bound<'_, PyAny>,
    ) -> PyResult<PySchedule> {
        let new = new_schedule(schedule)?;
        sync!(
            py,
            self.sched_op(move |s| async move { s.create_for_model(model_id, new).await })
        )
    }

    fn create_for_model_async<'py>(
        &self,
        py: Python<'py>,
        model_id: i64,
        schedule: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let new = new_schedule(schedule)?;
        aw!(
            py,
            self.sched_op(move |s| async move { s.create_for_model(model_id, new).await })
        )
    }

    /// What a schedule created from this run would train (a dict).
    fn preview_from_run(&self, py: Python<'_>, run_id: i64) -> PyResult<Json> {
        sync!(py, self.preview_run_op(run_id))
    }

    fn preview_from_run_async<'py>(
        &self,
        py: Python<'py>,
        run_id: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.preview_run_op(run_id))
    }

    #[pyo3(signature = (ml_model=None))]
    fn list(&self, py: Python<'_>, ml_model: Option<String>) -> PyResult<Vec<PySchedule>> {
        sync!(py, self.list_op(ml_model))
    }

    #[pyo3(signature = (ml_model=None))]
    fn list_async<'py>(
        &self,
        py: Python<'py>,
        ml_model: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.list_op(ml_model))
    }

    fn get(&self, py: Python<'_>, id: i64) -> PyResult<PySchedule> {
        sync!(py, self.sched_op(move |s| async move { s.get(id).await }))
    }

    fn get_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.sched_op(move |s| async move { s.get(id).await }))
    }

    /// Edits name, description, timing, catch_up or concurrency (a dict); the training config
    /// stays frozen, and a key outside these is a ValidationError.
    fn edit(&self, py: Python<'_>, id: i64, edit: &Bound<'_, PyAny>) -> PyResult<PySchedule> {
        let e: ScheduleEdit = from_py("edit", edit)?;
        sync!(
            py,
            self.sched_op(move |s| async move { s.edit(id, &e).await })
        )
    }

    fn edit_async<'py>(
        &self,
        py: Python<'py>,
        id: i64,
        edit: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let e: ScheduleEdit = from_py("edit", edit)?;
        aw!(
            py,
            self.sched_op(move |s| async move { s.edit(id, &e).await })
        )
    }

    fn pause(&self, py: Python<'_>, id: i64) -> PyResult<PySchedule> {
        sync!(py, self.sched_op(move |s| async move { s.pause(id).await }))
    }

    fn pause_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.sched_op(move |s| async move { s.pause(id).await }))
    }

    fn resume(&self, py: Python<'_>, id: i64) -> PyResult<PySchedule> {
        sync!(
            py,
            self.sched_op(move |s| async move { s.resume(id).await })
        )
    }

    fn resume_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(
            py,
            self.sched_op(move |s| async move { s.resume(id).await })
        )
    }

    fn cancel(&self, py: Python<'_>, id: i64) -> PyResult<PySchedule> {
        sync!(
            py,
            self.sched_op(move |s| async move { s.cancel(id).await })
        )
    }

    fn cancel_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(
            py,
            self.sched_op(move |s| async move { s.cancel(id).await })
        )
    }

    /// Deletes the schedule record, freeing its model for a new schedule.
    fn delete(&self, py: Python<'_>, id: i64) -> PyResult<()> {
        sync!(py, self.delete_op(id)).map(|_| ())
    }

    fn delete_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.delete_op(id))
    }

    /// Fires now, outside the timetable (a paused schedule too).
    fn trigger(&self, py: Python<'_>, id: i64) -> PyResult<PyFireOutcome> {
        sync!(py, self.trigger_op(id))
    }

    fn trigger_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.trigger_op(id))
    }

    /// The next `count` fires of a schedule, in its time zone.
    #[pyo3(signature = (id, count=5))]
    fn upcoming(
        &self,
        py: Python<'_>,
        id: i64,
        count: usize,
    ) -> PyResult<Vec<DateTime<FixedOffset>>> {
        sync!(
            py,
            self.times_op(move |s| async move { s.upcoming(id, count).await })
        )
    }

    #[pyo3(signature = (id, count=5))]
    fn upcoming_async<'py>(
        &self,
        py: Python<'py>,
        id: i64,
        count: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        aw!(
            py,
            self.times_op(move |s| async move { s.upcoming(id, count).await })
        )
    }

    /// Fires of the past 10 and the next 30 weeks (the schedule grid).
    fn grid(&self, py: Python<'_>, id: i64) -> PyResult<Vec<DateTime<FixedOffset>>> {
        sync!(py, self.times_op(move |s| async move { s.grid(id).await }))
    }

    fn grid_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.times_op(move |s| async move { s.grid(id).await }))
    }

    fn __repr__(&self) -> String {
        format!(
            "ScheduleService(dir={})",
            crate::models::pyq(&self.ctx.dir.display().to_string())
        )
    }
}

/// Registered models and their versions.
#[pyclass(module = "trainyard._native", name = "RegistryService", frozen)]
pub struct PyRegistry {
    pub ctx: Arc<Ctx>,
}

impl PyRegistry {
    fn list_op(&self, ml_model: Option<String>) -> Op<Vec<PyRegisteredModel>> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let all = ctx
                .platform()
                .await?
                .registry()
                .list(ml_model.as_deref())
                .await?;
            Ok(all
                .into_iter()
                .map(|inner| PyRegisteredModel { inner })
                .collect())
        })
    }

    fn get_op(&self, id: i64) -> Op<PyRegisteredModel> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            Ok(PyRegisteredModel {
                inner: ctx.platform().await?.registry().get(id).await?,
            })
        })
    }

    fn versions_op(&self, id: i64) -> Op<Vec<PyRun>> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let runs = ctx.platform().await?.registry().versions(id).await?;
            Ok(runs.into_iter().map(|r| PyRun::new(r, &ctx)).collect())
        })
    }

    fn check_op(&self, model_name: String, ml_model: Option<String>) -> Op<PyNameCheck> {
        let ctx = self.ctx.clone();
        let ml_model = ml_model.unwrap_or_else(|| ctx.ml_model.clone());
        Box::pin(async move {
            Ok(PyNameCheck {
                inner: ctx
                    .platform()
                    .await?
                    .registry()
                    .check_name(&ml_model, &model_name)
                    .await?,
            })
        })
    }

    fn registry_op<T, F, Fut>(&self, f: F) -> Op<T>
    where
        T: Send + 'static,
        F: FnOnce(trainyard::RegistryService, Arc<Ctx>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send,
    {
        let ctx = self.ctx.clone();
        Box::pin(async move { f(ctx.platform().await?.registry(), ctx).await })
    }

    fn push_op(&self, run_id: i64) -> Op<PyRun> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let run = ctx.platform().await?.lifecycle().push(run_id).await?;
            Ok(PyRun::new(run, &ctx))
        })
    }

    fn model_versions_op(&self, model_id: i64) -> Op<Vec<PyModelVersion>> {
        self.registry_op(move |r, _| async move {
            let all = r.model_versions(model_id).await?;
            Ok(all
                .into_iter()
                .map(|inner| PyModelVersion { inner })
                .collect())
        })
    }

    fn version_run_op(&self, model_id: i64, version: String) -> Op<PyRun> {
        self.registry_op(move |r, ctx| async move {
            Ok(PyRun::new(r.version_run(model_id, &version).await?, &ctx))
        })
    }

    fn list_with_kpi_op(&self, filter: ModelFilter) -> Op<PyModelListing> {
        self.registry_op(move |r, _| async move {
            Ok(PyModelListing {
                inner: r.list_with_kpi(&filter).await?,
            })
        })
    }

    fn aliases_op(&self, model_id: i64) -> Op<std::collections::BTreeMap<String, String>> {
        self.registry_op(move |r, _| async move { r.aliases(model_id).await })
    }

    fn set_alias_op(&self, model_id: i64, alias: String, version: String) -> Op<PyRegistryEvent> {
        self.registry_op(move |r, _| async move {
            Ok(PyRegistryEvent {
                inner: r.set_alias(model_id, &alias, &version).await?,
            })
        })
    }

    fn remove_alias_op(&self, model_id: i64, alias: String) -> Op<PyRegistryEvent> {
        self.registry_op(move |r, _| async move {
            Ok(PyRegistryEvent {
                inner: r.remove_alias(model_id, &alias).await?,
            })
        })
    }

    fn history_op(&self, model_id: i64) -> Op<Vec<PyRegistryEvent>> {
        self.registry_op(move |r, _| async move {
            let all = r.history(model_id).await?;
            Ok(all
                .into_iter()
                .map(|inner| PyRegistryEvent { inner })
                .collect())
        })
    }
}

/// A version given as "3" or 3.
fn version_of(version: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = version.extract::<String>() {
        return Ok(s);
    }
    match version.extract::<u64>() {
        Ok(n) if !version.is_instance_of::<pyo3::types::PyBool>() => Ok(n.to_string()),
        _ => Err(invalid(
            "version",
            "must be a version number like \"3\" or 3",
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn model_filter(
    ml_model: Option<String>,
    model_type_: Option<String>,
    registered: Option<bool>,
    deployed: Option<bool>,
    has_schedule: Option<bool>,
    search: Option<String>,
) -> PyResult<ModelFilter> {
    Ok(ModelFilter {
        ml_model,
        model_type: model_type_.as_deref().map(model_type).transpose()?,
        registered,
        deployed,
        has_schedule,
        search,
    })
}

#[pymethods]
impl PyRegistry {
    #[pyo3(signature = (ml_model=None))]
    fn list(&self, py: Python<'_>, ml_model: Option<String>) -> PyResult<Vec<PyRegisteredModel>> {
        sync!(py, self.list_op(ml_model))
    }

    #[pyo3(signature = (ml_model=None))]
    fn list_async<'py>(
        &self,
        py: Python<'py>,
        ml_model: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.list_op(ml_model))
    }

    fn get(&self, py: Python<'_>, id: i64) -> PyResult<PyRegisteredModel> {
        sync!(py, self.get_op(id))
    }

    fn get_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.get_op(id))
    }

    /// Every run of a model (its versions), newest first.
    fn versions(&self, py: Python<'_>, id: i64) -> PyResult<Vec<PyRun>> {
        sync!(py, self.versions_op(id))
    }

    fn versions_async<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.versions_op(id))
    }

    /// Whether `model_name` exists under `ml_model` (default: the project's), and its schedule.
    #[pyo3(signature = (model_name, ml_model=None))]
    fn check_name(
        &self,
        py: Python<'_>,
        model_name: String,
        ml_model: Option<String>,
    ) -> PyResult<PyNameCheck> {
        sync!(py, self.check_op(model_name, ml_model))
    }

    #[pyo3(signature = (model_name, ml_model=None))]
    fn check_name_async<'py>(
        &self,
        py: Python<'py>,
        model_name: String,
        ml_model: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.check_op(model_name, ml_model))
    }

    /// "Push to registry": registers a completed, blessed run as the next version of its
    /// model (and deploys it when its deployment_config is enabled); returns the run. A
    /// not-blessed or unfinished run is a ValidationError, an already registered one a
    /// Conflict.
    fn push(&self, py: Python<'_>, run_id: i64) -> PyResult<PyRun> {
        sync!(py, self.push_op(run_id))
    }

    fn push_async<'py>(&self, py: Python<'py>, run_id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.push_op(run_id))
    }

    /// Registered versions of a model, oldest first, with KPI metrics, aliases and endpoints
    /// (`versions` lists every run of the model, registered or not).
    fn model_versions(&self, py: Python<'_>, model_id: i64) -> PyResult<Vec<PyModelVersion>> {
        sync!(py, self.model_versions_op(model_id))
    }

    fn model_versions_async<'py>(
        &self,
        py: Python<'py>,
        model_id: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.model_versions_op(model_id))
    }

    /// The run registered as `version` ("3" or 3) of a model.
    fn version_run(
        &self,
        py: Python<'_>,
        model_id: i64,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<PyRun> {
        let version = version_of(version)?;
        sync!(py, self.version_run_op(model_id, version))
    }

    fn version_run_async<'py>(
        &self,
        py: Python<'py>,
        model_id: i64,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let version = version_of(version)?;
        aw!(py, self.version_run_op(model_id, version))
    }

    /// Models with schedule, aliases, latest metrics and live endpoint state, filtered, and
    /// the KPI row over the filtered set.
    #[pyo3(signature = (*, ml_model=None, model_type=None, registered=None, deployed=None, has_schedule=None, search=None))]
    #[allow(clippy::too_many_arguments)]
    fn list_with_kpi(
        &self,
        py: Python<'_>,
        ml_model: Option<String>,
        model_type: Option<String>,
        registered: Option<bool>,
        deployed: Option<bool>,
        has_schedule: Option<bool>,
        search: Option<String>,
    ) -> PyResult<PyModelListing> {
        let filter = model_filter(
            ml_model,
            model_type,
            registered,
            deployed,
            has_schedule,
            search,
        )?;
        sync!(py, self.list_with_kpi_op(filter))
    }

    #[pyo3(signature = (*, ml_model=None, model_type=None, registered=None, deployed=None, has_schedule=None, search=None))]
    #[allow(clippy::too_many_arguments)]
    fn list_with_kpi_async<'py>(
        &self,
        py: Python<'py>,
        ml_model: Option<String>,
        model_type: Option<String>,
        registered: Option<bool>,
        deployed: Option<bool>,
        has_schedule: Option<bool>,
        search: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filter = model_filter(
            ml_model,
            model_type,
            registered,
            deployed,
            has_schedule,
            search,
        )?;
        aw!(py, self.list_with_kpi_op(filter))
    }

    /// Current aliases of a model: {alias: version}.
    fn aliases(
        &self,
        py: Python<'_>,
        model_id: i64,
    ) -> PyResult<std::collections::BTreeMap<String, String>> {
        sync!(py, self.aliases_op(model_id))
    }

    fn aliases_async<'py>(&self, py: Python<'py>, model_id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.aliases_op(model_id))
    }

    /// Points `alias` (e.g. "production") at a registered version ("3" or 3), moving it if
    /// it pointed elsewhere; NotFound for a version the model does not have.
    fn set_alias(
        &self,
        py: Python<'_>,
        model_id: i64,
        alias: String,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<PyRegistryEvent> {
        let version = version_of(version)?;
        sync!(py, self.set_alias_op(model_id, alias, version))
    }

    fn set_alias_async<'py>(
        &self,
        py: Python<'py>,
        model_id: i64,
        alias: String,
        version: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let version = version_of(version)?;
        aw!(py, self.set_alias_op(model_id, alias, version))
    }

    /// Removes an alias; NotFound when it points nowhere.
    fn remove_alias(
        &self,
        py: Python<'_>,
        model_id: i64,
        alias: String,
    ) -> PyResult<PyRegistryEvent> {
        sync!(py, self.remove_alias_op(model_id, alias))
    }

    fn remove_alias_async<'py>(
        &self,
        py: Python<'py>,
        model_id: i64,
        alias: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.remove_alias_op(model_id, alias))
    }

    /// Which version held which alias, and served on which endpoint, when (oldest first).
    fn history(&self, py: Python<'_>, model_id: i64) -> PyResult<Vec<PyRegistryEvent>> {
        sync!(py, self.history_op(model_id))
    }

    fn history_async<'py>(&self, py: Python<'py>, model_id: i64) -> PyResult<Bound<'py, PyAny>> {
        aw!(py, self.history_op(model_id))
    }

    fn __repr__(&self) -> String {
        format!(
            "RegistryService(dir={})",
            crate::models::pyq(&self.ctx.dir.display().to_string())
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTraining>()?;
    m.add_class::<PySchedules>()?;
    m.add_class::<PyRegistry>()?;
    Ok(())
}

async fn follow(
    p: trainyard::Platform,
    id: i64,
    timeout: std::time::Duration,
) -> Result<trainyard_core::run::TrainingRun> {
    p.follow(id, trainyard::Until::Settled, timeout, |_, _| {})
        .await
}

/// A rerun, submitted (and, with no server running, started by this call) unless `submit`
/// is false.
async fn rerun(
    p: trainyard::Platform,
    id: i64,
    submit: bool,
) -> Result<trainyard_core::run::TrainingRun> {
    let training = p.training();
    let run = training
        .rerun_with(id, submit && training.can_submit())
        .await?;
    p.carry_to_submitted(run).await
}
