//! `platform.training`: the facade's TrainingService (and the Platform's submit and follow).
//! Every operation is declared once (see macros.rs): blocking, and `<name>_async`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use trainyard::Platform;
use trainyard_core::ports::{PipelineEvent, RunFilter};
use trainyard_core::run::{ConfigPatch, NewTrainingRun, RunConfig};
use trainyard_core::RunStatus;

use crate::convert::{
    field_names, from_json, from_py, model_type, over_defaults, py_to_json, reject_unknown_keys,
    Json,
};
use crate::ctx::Ctx;
use crate::errors::invalid;
use crate::models::{PyRun, PyRunPage};
use crate::repr::pyq;

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

/// `follow`'s timeout (its `poll` is only checked: the facade's loop needs none).
fn follow_timeout(poll: f64, timeout: f64) -> PyResult<Duration> {
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
    secs("poll", poll, 0.01)?;
    secs("timeout", timeout, 0.0)
}

#[allow(clippy::too_many_arguments)]
fn run_filter(
    ml_model: Option<String>,
    status: Option<&Bound<'_, PyAny>>,
    model_type_: Option<String>,
    registered_model_id: Option<i64>,
    schedule_id: Option<i64>,
    search: Option<String>,
    page: u32,
    page_size: u32,
) -> PyResult<RunFilter> {
    if page == 0 {
        return Err(invalid("page", "pages are numbered from 1"));
    }
    if page_size == 0 || page_size > 500 {
        return Err(invalid("page_size", "must be between 1 and 500"));
    }
    Ok(RunFilter {
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
    })
}

/// Training runs of a platform.
#[pyclass(module = "trainyard._native", name = "TrainingService", frozen)]
pub struct PyTraining {
    pub ctx: Arc<Ctx>,
}

service_methods! {
    impl PyTraining {
        ops {
            /// Creates a pending run named `name` (its RegisteredModel is created when missing).
            /// `config` is a dict of the run config sections (dataset, feature_config,
            /// model_config, training_params, gpu_config, evaluator_config, deployment_config,
            /// schedule_config), merged over the defaults.
            #[pyo3(signature = (name, config=None, *, ml_model=None, description=String::new()))]
            fn create(
                &self,
                name: String,
                config: Option<&Bound<'_, PyAny>>,
                ml_model: Option<String>,
                description: String,
            ) -> PyRun
                as stub(
                    "name: str, \
                    config: Optional[RunConfig] = None, \
                    *, \
                    ml_model: Optional[str] = None, \
                    description: str = ..."
                        -> "Run"
                )
            {
                let new = NewTrainingRun {
                    ml_model: ml_model.unwrap_or_else(|| self.ctx.ml_model.clone()),
                    name,
                    description,
                    config: run_config(config)?,
                };
                self.ctx.service_op(
                    Platform::training,
                    move |t| async move { t.create_training_run(new).await },
                    PyRun::new,
                )
            }

            /// Submits a pending run: returns once a running `trainyard server` has the request
            /// or, with none, once this call started the pipeline (which does not depend on
            /// this process); BackendError when the submission failed.
            fn submit(&self, id: i64) -> PyRun as stub("id: int" -> "Run") {
                self.ctx.service_op(Platform::clone, move |p| async move { p.submit(id).await }, PyRun::new)
            }

            /// Follows the run until training and what follows it (registration, auto-deploy)
            /// are done (or `timeout` seconds pass: BackendError); returns the run as it then
            /// is. With no server running, this call carries the run meanwhile. `poll` is kept
            /// for compatibility.
            #[pyo3(signature = (id, poll=2.0, timeout=3600.0))]
            fn follow(&self, id: i64, poll: f64, timeout: f64) -> PyRun
                as stub(
                    "id: int, poll: float = 2.0, timeout: float = 3600.0"
                        -> "Run"
                )
            {
                let timeout = follow_timeout(poll, timeout)?;
                self.ctx.service_op(
                    Platform::clone,
                    move |p| async move {
                        p.follow(id, trainyard::Until::Settled, timeout, |_, _| {}).await
                    },
                    PyRun::new,
                )
            }

            /// Marks a pending or scheduled run as handed to an executor (status `submitting`).
            fn mark_submitting(&self, id: i64) -> PyRun as stub("id: int" -> "Run") {
                self.ctx.service_op(
                    Platform::training,
                    move |t| async move { t.mark_submitting(id).await },
                    PyRun::new,
                )
            }

            fn get(&self, id: i64) -> PyRun as stub("id: int" -> "Run") {
                self.ctx.service_op(Platform::training, move |t| async move { t.get(id).await }, PyRun::new)
            }

            /// One page of runs, newest first, with KPI counts. `status` is a status name or a
            /// list.
            #[pyo3(signature = (*, ml_model=None, status=None, model_type=None, registered_model_id=None, schedule_id=None, search=None, page=1, page_size=20))]
            #[allow(clippy::too_many_arguments)]
            fn list(
                &self,
                ml_model: Option<String>,
                status: Option<&Bound<'_, PyAny>>,
                model_type: Option<String>,
                registered_model_id: Option<i64>,
                schedule_id: Option<i64>,
                search: Option<String>,
                page: u32,
                page_size: u32,
            ) -> PyRunPage
                as stub(
                    "*, \
                    ml_model: Optional[str] = None, \
                    status: Union[str, Sequence[str], None] = None, \
                    model_type: Optional[str] = None, \
                    registered_model_id: Optional[int] = None, \
                    schedule_id: Optional[int] = None, \
                    search: Optional[str] = None, \
                    page: int = 1, \
                    page_size: int = 20"
                        -> "RunPage"
                )
            {
                let filter = run_filter(
                    ml_model,
                    status,
                    model_type,
                    registered_model_id,
                    schedule_id,
                    search,
                    page,
                    page_size,
                )?;
                self.ctx.op(move |p, ctx| async move {
                    let inner = p.training().list(&filter).await?;
                    Ok(PyRunPage { inner, ctx })
                })
            }

            /// Cancels a pending, scheduled, submitting or running run.
            fn cancel(&self, id: i64) -> PyRun as stub("id: int" -> "Run") {
                self.ctx.service_op(Platform::training, move |t| async move { t.cancel(id).await }, PyRun::new)
            }

            /// A new run with the name and config of a run whose training has finished,
            /// submitted (and, with no server running, started by this call) unless `submit`
            /// is false.
            #[pyo3(signature = (id, *, submit=true))]
            fn rerun(&self, id: i64, submit: bool) -> PyRun
                as stub(
                    "id: int, *, submit: bool = True"
                        -> "Run"
                )
            {
                self.ctx.service_op(
                    Platform::clone,
                    move |p| async move {
                        let training = p.training();
                        let run = training
                            .rerun_with(id, submit && training.can_submit())
                            .await?;
                        p.carry_to_submitted(run).await
                    },
                    PyRun::new,
                )
            }

            /// The run's config as a dict: {"id", "name", and every config section}.
            fn config(&self, id: i64) -> Json as stub("id: int" -> "_JsonDict") {
                self.ctx
                    .op(move |p, _| async move { Json::of(&p.training().get_config(id).await?) })
            }

            /// Edits training_params, gpu_config, evaluator_config, deployment_config or
            /// schedule_config of a finished run; returns (config dict, names of changed
            /// sections).
            fn patch_config(&self, id: i64, patch: &Bound<'_, PyAny>) -> (Json, Vec<String>)
                as stub(
                    "id: int, patch: ConfigPatch"
                        -> "tuple[_JsonDict, builtins.list[str]]"
                )
            {
                let patch: ConfigPatch = from_py("patch", patch)?;
                self.ctx.op(move |p, _| async move {
                    let (view, changed) = p.training().patch_config(id, &patch).await?;
                    Ok((
                        Json::of(&view)?,
                        changed.into_iter().map(String::from).collect(),
                    ))
                })
            }

            /// Per-epoch metrics rows (dicts), oldest epoch first.
            fn history(&self, id: i64) -> Json
                as stub(
                    "id: int"
                        -> "builtins.list[_JsonDict]"
                )
            {
                self.ctx
                    .op(move |p, _| async move { Json::of(&p.training().history(id).await?) })
            }

            /// Applies one pipeline event, e.g. {"event": "stage_started", "stage": "train"},
            /// {"event": "epoch_completed", "epoch": 0, "metrics": {...}}, {"event":
            /// "completed", "training_metrics": {...}, "blessed": True}, {"event": "failed",
            /// "error": "..."}.
            fn handle_event(&self, id: i64, event: &Bound<'_, PyAny>) -> PyRun
                as stub(
                    "id: int, event: _Input"
                        -> "Run"
                )
            {
                let event: PipelineEvent = from_py("event", event)?;
                self.ctx.service_op(
                    Platform::training,
                    move |t| async move { t.handle_event(id, &event).await },
                    PyRun::new,
                )
            }
        }
        methods {
            /// The files a run's pipeline is made of, {name: content}: for target "local" the
            /// generated modules and the LocalDagRunner pipeline module; for "vertex" the Vertex
            /// AI PipelineJob body (pipeline_job.json) and the user-code wheels (base64, under
            /// `_wheels/`). `pipeline_root` defaults to `<project>/runs/<id>` (local) or is
            /// required as a gs:// prefix (vertex), as are `project` and `region`.
            #[pyo3(signature = (id, target="local", *, pipeline_root=None, project=None, region=None))]
            fn compile(
                &self,
                py: Python<'_>,
                id: i64,
                target: &str,
                pipeline_root: Option<String>,
                project: Option<String>,
                region: Option<String>,
            ) -> PyResult<BTreeMap<String, String>> {
                let ctx = self.ctx.clone();
                let target = target.to_string();
                crate::runtime::block(py, async move {
                    use trainyard_core::names::Named;
                    let target = trainyard::CompileTarget::from_name(&target).ok_or_else(|| {
                        trainyard_core::Error::Validation(trainyard_core::ValidationError::field(
                            "target",
                            format!("unknown target {target:?}; expected local or vertex"),
                        ))
                    })?;
                    let options = trainyard::CompileOptions {
                        target,
                        pipeline_root,
                        project,
                        region,
                    };
                    ctx.platform().await?.compile_run(id, &options).await
                })
            }

            fn __repr__(&self) -> String {
                format!("TrainingService(dir={})", pyq(&self.ctx.dir.display().to_string()))
            }
        }
    }
}
