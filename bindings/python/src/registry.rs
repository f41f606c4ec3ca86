//! `platform.registry`: the facade's RegistryService (every operation declared once, see
//! macros.rs), and its typed results ModelVersion, ModelSummary, ModelListing and
//! RegistryEvent. Like models.rs, each wraps the facade's serde type and offers `to_dict()`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use trainyard::{
    ModelFilter, ModelListing, ModelPage, ModelSummary, ModelVersion, PageRequest, Platform,
    DEFAULT_PAGE_SIZE,
};
use trainyard_core::registry::{RegisteredModel, RegistryEvent};
use trainyard_core::run::TrainingRun;

use crate::ctx::Ctx;
use crate::errors::invalid;
use crate::models::{PyNameCheck, PyRegisteredModel, PyRun};
use crate::repr::{py_bool, py_repr_opt, pyq, to_py_string};

/// One registered version of a model: its run, KPI metrics, aliases and serving endpoints.
#[pyclass(module = "trainyard._native", name = "ModelVersion", frozen)]
pub struct PyModelVersion {
    pub inner: ModelVersion,
}

view_methods! {
    impl PyModelVersion(v) {
        get {
            /// The registry's version number ("1", "2", ...).
            version: &str = &v.version;
            training_run_id: i64 = v.training_run_id;
            run_number: u32 = v.run_number;
            run_name: &str = &v.run_name;
            /// The run's status (e.g. "completed", "deployed").
            status: &'static str = v.status.as_str();
            registered_at: Option<DateTime<Utc>> = v.registered_at;
            is_blessed: bool = v.is_blessed;
            /// Aliases pointing at this version.
            aliases: Vec<String> = v.aliases.clone();
            /// Service names of the active endpoints serving this version (the record).
            endpoints: Vec<String> = v.endpoints.clone();
        }
        dict {
            /// The KPI metrics of the model type: {name: value or None}.
            metrics = &v.metrics;
        }
        from_dict("model_version");
        eq(PyModelVersion);
        repr(ModelVersion {
            version = pyq(&v.version),
            training_run_id = v.training_run_id,
            status = pyq(v.status.as_str()),
            aliases = format!("{:?}", v.aliases),
            endpoints = format!("{:?}", v.endpoints),
        });
    }
}

/// One row of the model list: the model, its schedule, aliases, latest metrics, and both its
/// deployment record (`is_deployed`) and whether an endpoint serves now
/// (`has_active_endpoint`) — kept apart on purpose.
#[pyclass(module = "trainyard._native", name = "ModelSummary", frozen)]
pub struct PyModelSummary {
    pub inner: ModelSummary,
}

view_methods! {
    impl PyModelSummary(s) {
        get {
            model: PyRegisteredModel = PyRegisteredModel { inner: s.model.clone() };
            id: i64 = s.model.id;
            model_name: &str = &s.model.model_name;
            model_type: &'static str = s.model.model_type.as_str();
            /// Registered to the registry at least once.
            is_registered: bool = s.is_registered;
            /// The deployment record: the last deploy or undeploy left an active endpoint.
            is_deployed: bool = s.model.is_deployed;
            /// Asked of the deployer now: an active endpoint of this model is serving.
            has_active_endpoint: bool = s.has_active_endpoint;
            /// Deployed, but not the latest version.
            is_outdated: bool = s.is_outdated;
            has_schedule: bool = s.has_schedule;
            schedule_id: Option<i64> = s.schedule_id;
            schedule_status: Option<String> = s.schedule_status.as_ref().map(to_py_string);
        }
        dict {
            /// {alias: version}
            aliases = &s.aliases;
            /// The latest version's KPI metrics.
            metrics = &s.metrics;
        }
        repr(ModelSummary {
            id = s.model.id,
            model_name = pyq(&s.model.model_name),
            latest_version = pyq(&s.model.latest_version_number),
            is_deployed = py_bool(s.model.is_deployed),
            has_active_endpoint = py_bool(s.has_active_endpoint),
            has_schedule = py_bool(s.has_schedule),
        });
    }
}

/// The filtered model list with the registry's KPI row.
#[pyclass(module = "trainyard._native", name = "ModelListing", frozen)]
pub struct PyModelListing {
    pub inner: ModelListing,
}

fn summaries(l: &ModelListing) -> Vec<PyModelSummary> {
    l.registered_models
        .iter()
        .map(|inner| PyModelSummary {
            inner: inner.clone(),
        })
        .collect()
}

view_methods! {
    impl PyModelListing(l) {
        get {
            registered_models: Vec<PyModelSummary> = summaries(l);
        }
        dict {
            /// {"total", "registered", "with_schedule", "deployed"} over the filtered models.
            kpi = &l.kpi;
        }
        repr(ModelListing {
            models = l.registered_models.len(),
            total = l.kpi.total,
            registered = l.kpi.registered,
            with_schedule = l.kpi.with_schedule,
            deployed = l.kpi.deployed,
        });
        methods {
            fn __len__(&self) -> usize {
                self.inner.registered_models.len()
            }
            fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                let list = pyo3::types::PyList::new(py, summaries(&self.inner))?;
                list.try_iter().map(|i| i.into_any())
            }
        }
    }
}

/// One page of the filtered model list (newest first), with the KPI row over every filtered
/// model and where the page lies.
#[pyclass(module = "trainyard._native", name = "ModelPage", frozen)]
pub struct PyModelPage {
    pub inner: ModelPage,
}

view_methods! {
    impl PyModelPage(p) {
        get {
            registered_models: Vec<PyModelSummary> = p
                .registered_models
                .iter()
                .map(|inner| PyModelSummary { inner: inner.clone() })
                .collect();
            /// This page's number, from 1.
            page: u32 = p.pagination.page;
            page_size: u32 = p.pagination.page_size;
            /// Models matching the whole filter (all pages).
            total: u64 = p.pagination.total;
            total_pages: u64 = p.pagination.total_pages;
            has_next: bool = p.pagination.has_next;
            has_previous: bool = p.pagination.has_previous;
        }
        dict {
            /// {"total", "registered", "with_schedule", "deployed"} over the filtered models.
            kpi = &p.kpi;
        }
        repr(ModelPage {
            page = p.pagination.page,
            page_size = p.pagination.page_size,
            models = p.registered_models.len(),
            total = p.pagination.total,
        });
        methods {
            fn __len__(&self) -> usize {
                self.inner.registered_models.len()
            }
            fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                let list = pyo3::types::PyList::new(py, self.registered_models())?;
                list.try_iter().map(|i| i.into_any())
            }
        }
    }
}

/// One change of an alias or an endpoint: `kind` is "alias" or "endpoint", `name` the alias
/// or service name; `training_run_id` is None when the alias was removed or the endpoint
/// undeployed.
#[pyclass(module = "trainyard._native", name = "RegistryEvent", frozen)]
pub struct PyRegistryEvent {
    pub inner: RegistryEvent,
}

view_methods! {
    impl PyRegistryEvent(e) {
        get {
            id: i64 = e.id;
            registered_model_id: i64 = e.registered_model_id;
            kind: String = to_py_string(&e.kind);
            name: &str = &e.name;
            training_run_id: Option<i64> = e.training_run_id;
            /// The version now held; "" when none.
            model_version: &str = &e.model_version;
            at: DateTime<Utc> = e.at;
        }
        eq(PyRegistryEvent);
        repr(RegistryEvent {
            kind = pyq(&to_py_string(&e.kind)),
            name = pyq(&e.name),
            model_version = pyq(&e.model_version),
            training_run_id = py_repr_opt(e.training_run_id),
            at = pyq(&e.at.to_rfc3339()),
        });
    }
}

/// The filter of the model listings (`list_with_kpi`, `list_page`).
fn model_filter(
    ml_model: Option<String>,
    model_type: Option<String>,
    registered: Option<bool>,
    deployed: Option<bool>,
    has_schedule: Option<bool>,
    search: Option<String>,
) -> PyResult<ModelFilter> {
    Ok(ModelFilter {
        ml_model,
        model_type: model_type
            .as_deref()
            .map(crate::convert::model_type)
            .transpose()?,
        registered,
        deployed,
        has_schedule,
        search,
    })
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

// `list_page`'s default page size, written as a literal so Python's signature shows it.
const _: () = assert!(DEFAULT_PAGE_SIZE == 20);

/// A model given as its id (3 or "3") or its name.
fn model_key(model: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = model.extract::<String>() {
        return Ok(s);
    }
    match model.extract::<i64>() {
        Ok(n) if !model.is_instance_of::<pyo3::types::PyBool>() => Ok(n.to_string()),
        _ => Err(invalid("model", "must be a model id or name")),
    }
}

/// Registered models and their versions.
#[pyclass(module = "trainyard._native", name = "RegistryService", frozen)]
pub struct PyRegistry {
    pub ctx: Arc<Ctx>,
}

// The `wrap`s of `Ctx::service_op`: facade values as Python objects.

fn models(all: Vec<RegisteredModel>, _: &Arc<Ctx>) -> Vec<PyRegisteredModel> {
    all.into_iter()
        .map(|inner| PyRegisteredModel { inner })
        .collect()
}

fn runs(all: Vec<TrainingRun>, ctx: &Arc<Ctx>) -> Vec<PyRun> {
    all.into_iter().map(|r| PyRun::new(r, ctx)).collect()
}

fn model_versions(all: Vec<ModelVersion>, _: &Arc<Ctx>) -> Vec<PyModelVersion> {
    all.into_iter()
        .map(|inner| PyModelVersion { inner })
        .collect()
}

fn events(all: Vec<RegistryEvent>, _: &Arc<Ctx>) -> Vec<PyRegistryEvent> {
    all.into_iter()
        .map(|inner| PyRegistryEvent { inner })
        .collect()
}

fn event(inner: RegistryEvent, _: &Arc<Ctx>) -> PyRegistryEvent {
    PyRegistryEvent { inner }
}

fn same<T>(v: T, _: &Arc<Ctx>) -> T {
    v
}

service_methods! {
    impl PyRegistry {
        ops {
            #[pyo3(signature = (ml_model=None))]
            fn list(&self, ml_model: Option<String>) -> Vec<PyRegisteredModel>
                as stub(
                    "ml_model: Optional[str] = None"
                        -> "builtins.list[RegisteredModel]"
                )
            {
                self.ctx.service_op(
                    Platform::registry,
                    move |r| async move { r.list(ml_model.as_deref()).await },
                    models,
                )
            }

            fn get(&self, id: i64) -> PyRegisteredModel
                as stub(
                    "id: int"
                        -> "RegisteredModel"
                )
            {
                self.ctx.service_op(
                    Platform::registry,
                    move |r| async move { r.get(id).await },
                    |inner, _| PyRegisteredModel { inner },
                )
            }

            /// Every run of a model (its versions), newest first.
            fn versions(&self, id: i64) -> Vec<PyRun>
                as stub(
                    "id: int"
                        -> "builtins.list[Run]"
                )
            {
                self.ctx.service_op(
                    Platform::registry,
                    move |r| async move { r.versions(id).await },
                    runs,
                )
            }

            /// Whether `model_name` exists under `ml_model` (default: the project's), and its
            /// schedule.
            #[pyo3(signature = (model_name, ml_model=None))]
            fn check_name(&self, model_name: String, ml_model: Option<String>) -> PyNameCheck
                as stub(
                    "model_name: str, ml_model: Optional[str] = None"
                        -> "NameCheck"
                )
            {
                let ml_model = ml_model.unwrap_or_else(|| self.ctx.ml_model.clone());
                self.ctx.service_op(
                    Platform::registry,
                    move |r| async move { r.check_name(&ml_model, &model_name).await },
                    |inner, _| PyNameCheck { inner },
                )
            }

            /// "Push to registry": registers a completed, blessed run as the next version of
            /// its model (and deploys it when its deployment_config is enabled); returns the
            /// run. A not-blessed or unfinished run is a ValidationError, an already registered
            /// one a Conflict.
            fn push(&self, run_id: i64) -> PyRun as stub("run_id: int" -> "Run") {
                self.ctx.op(move |p, ctx| async move {
                    Ok(PyRun::new(p.lifecycle().push(run_id).await?, &ctx))
                })
            }

            /// Registered versions of a model, oldest first, with KPI metrics, aliases and
            /// endpoints (`versions` lists every run of the model, registered or not).
            fn model_versions(&self, model_id: i64) -> Vec<PyModelVersion>
                as stub(
                    "model_id: int"
                        -> "builtins.list[ModelVersion]"
                )
            {
                self.ctx.service_op(
                    Platform::registry,
                    move |r| async move { r.model_versions(model_id).await },
                    model_versions,
                )
            }

            /// The run registered as `version` ("3" or 3) of a model.
            fn version_run(&self, model_id: i64, version: &Bound<'_, PyAny>) -> PyRun
                as stub(
                    "model_id: int, version: _Version"
                        -> "Run"
                )
            {
                let version = version_of(version)?;
                self.ctx.service_op(
                    Platform::registry,
                    move |r| async move { r.version_run(model_id, &version).await },
                    PyRun::new,
                )
            }

            /// Models with schedule, aliases, latest metrics and live endpoint state, filtered,
            /// and the KPI row over the filtered set.
            #[pyo3(signature = (*, ml_model=None, model_type=None, registered=None, deployed=None, has_schedule=None, search=None))]
            #[allow(clippy::too_many_arguments)]
            fn list_with_kpi(
                &self,
                ml_model: Option<String>,
                model_type: Option<String>,
                registered: Option<bool>,
                deployed: Option<bool>,
                has_schedule: Option<bool>,
                search: Option<String>,
            ) -> PyModelListing
                as stub(
                    "*, \
                    ml_model: Optional[str] = None, \
                    model_type: Optional[str] = None, \
                    registered: Optional[bool] = None, \
                    deployed: Optional[bool] = None, \
                    has_schedule: Optional[bool] = None, \
                    search: Optional[str] = None"
                        -> "ModelListing"
                )
            {
                let filter =
                    model_filter(ml_model, model_type, registered, deployed, has_schedule, search)?;
                self.ctx.service_op(
                    Platform::registry,
                    move |r| async move { r.list_with_kpi(&filter).await },
                    |inner, _| PyModelListing { inner },
                )
            }

            /// One page of `list_with_kpi`'s models (newest first), with the KPI row over every
            /// filtered model; `page` from 1, `page_size` 1 to 100.
            #[pyo3(signature = (*, ml_model=None, model_type=None, registered=None, deployed=None, has_schedule=None, search=None, page=1, page_size=20))]
            #[allow(clippy::too_many_arguments)]
            fn list_page(
                &self,
                ml_model: Option<String>,
                model_type: Option<String>,
                registered: Option<bool>,
                deployed: Option<bool>,
                has_schedule: Option<bool>,
                search: Option<String>,
                page: u32,
                page_size: u32,
            ) -> PyModelPage
                as stub(
                    "*, \
                    ml_model: Optional[str] = None, \
                    model_type: Optional[str] = None, \
                    registered: Optional[bool] = None, \
                    deployed: Optional[bool] = None, \
                    has_schedule: Optional[bool] = None, \
                    search: Optional[str] = None, \
                    page: int = 1, \
                    page_size: int = 20"
                        -> "ModelPage"
                )
            {
                let filter =
                    model_filter(ml_model, model_type, registered, deployed, has_schedule, search)?;
                let page = PageRequest::new(page, page_size);
                self.ctx.service_op(
                    Platform::registry,
                    move |r| async move { r.list_page(&filter, page).await },
                    |inner, _| PyModelPage { inner },
                )
            }

            /// A model as the list shows it, by id (3 or "3") or by name: in `ml_model` when
            /// given, else across every model endpoint (a name held in several is a
            /// ValidationError: give its id or endpoint). A name made of digits is found by
            /// name when no model has that id.
            #[pyo3(signature = (model, ml_model=None))]
            fn find(&self, model: &Bound<'_, PyAny>, ml_model: Option<String>) -> PyModelSummary
                as stub(
                    "model: Union[int, str], ml_model: Optional[str] = None"
                        -> "ModelSummary"
                )
            {
                let key = model_key(model)?;
                self.ctx.service_op(
                    Platform::registry,
                    move |r| async move { r.find(ml_model.as_deref(), &key).await },
                    |inner, _| PyModelSummary { inner },
                )
            }

            /// Current aliases of a model: {alias: version}.
            fn aliases(&self, model_id: i64) -> BTreeMap<String, String>
                as stub(
                    "model_id: int"
                        -> "dict[str, str]"
                )
            {
                self.ctx.service_op(
                    Platform::registry,
                    move |r| async move { r.aliases(model_id).await },
                    same,
                )
            }

            /// Points `alias` (e.g. "production") at a registered version ("3" or 3), moving it
            /// if it pointed elsewhere; NotFound for a version the model does not have.
            fn set_alias(
                &self,
                model_id: i64,
                alias: String,
                version: &Bound<'_, PyAny>,
            ) -> PyRegistryEvent
                as stub(
                    "model_id: int, alias: str, version: _Version"
                        -> "RegistryEvent"
                )
            {
                let version = version_of(version)?;
                self.ctx.service_op(
                    Platform::registry,
                    move |r| async move { r.set_alias(model_id, &alias, &version).await },
                    event,
                )
            }

            /// Removes an alias; NotFound when it points nowhere.
            fn remove_alias(&self, model_id: i64, alias: String) -> PyRegistryEvent
                as stub(
                    "model_id: int, alias: str"
                        -> "RegistryEvent"
                )
            {
                self.ctx.service_op(
                    Platform::registry,
                    move |r| async move { r.remove_alias(model_id, &alias).await },
                    event,
                )
            }

            /// Which version held which alias, and served on which endpoint, when (oldest
            /// first).
            fn history(&self, model_id: i64) -> Vec<PyRegistryEvent>
                as stub(
                    "model_id: int"
                        -> "builtins.list[RegistryEvent]"
                )
            {
                self.ctx.service_op(
                    Platform::registry,
                    move |r| async move { r.history(model_id).await },
                    events,
                )
            }
        }
        methods {
            fn __repr__(&self) -> String {
                format!("RegistryService(dir={})", pyq(&self.ctx.dir.display().to_string()))
            }
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRegistry>()?;
    m.add_class::<PyModelVersion>()?;
    m.add_class::<PyModelSummary>()?;
    m.add_class::<PyModelListing>()?;
    m.add_class::<PyModelPage>()?;
    m.add_class::<PyRegistryEvent>()?;
    Ok(())
}
