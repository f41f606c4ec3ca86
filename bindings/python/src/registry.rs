//! The typed results of the registry: ModelVersion, ModelSummary, ModelListing and
//! RegistryEvent. Like models.rs, each wraps the facade's serde type and offers `to_dict()`.

use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::PyType;
use trainyard::{ModelListing, ModelSummary, ModelVersion};
use trainyard_core::registry::RegistryEvent;

use crate::convert::{from_py, to_py};
use crate::models::{py_bool, py_repr_opt, pyq, to_py_string, PyRegisteredModel};

/// One registered version of a model: its run, KPI metrics, aliases and serving endpoints.
#[pyclass(module = "trainyard._native", name = "ModelVersion", frozen)]
pub struct PyModelVersion {
    pub inner: ModelVersion,
}

#[pymethods]
impl PyModelVersion {
    /// The registry's version number ("1", "2", ...).
    #[getter]
    fn version(&self) -> &str {
        &self.inner.version
    }
    #[getter]
    fn training_run_id(&self) -> i64 {
        self.inner.training_run_id
    }
    #[getter]
    fn run_number(&self) -> u32 {
        self.inner.run_number
    }
    #[getter]
    fn run_name(&self) -> &str {
        &self.inner.run_name
    }
    /// The run's status (e.g. "completed", "deployed").
    #[getter]
    fn status(&self) -> &'static str {
        self.inner.status.as_str()
    }
    #[getter]
    fn registered_at(&self) -> Option<DateTime<Utc>> {
        self.inner.registered_at
    }
    #[getter]
    fn is_blessed(&self) -> bool {
        self.inner.is_blessed
    }
    /// The KPI metrics of the model type: {name: value or None}.
    #[getter]
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.metrics)
    }
    /// Aliases pointing at this version.
    #[getter]
    fn aliases(&self) -> Vec<String> {
        self.inner.aliases.clone()
    }
    /// Service names of the active endpoints serving this version (the record).
    #[getter]
    fn endpoints(&self) -> Vec<String> {
        self.inner.endpoints.clone()
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    #[classmethod]
    fn from_dict(_cls: &Bound<'_, PyType>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyModelVersion {
            inner: from_py("model_version", data)?,
        })
    }
    fn __repr__(&self) -> String {
        let v = &self.inner;
        format!(
            "ModelVersion(version={}, training_run_id={}, status={}, aliases={:?}, endpoints={:?})",
            pyq(&v.version),
            v.training_run_id,
            pyq(v.status.as_str()),
            v.aliases,
            v.endpoints
        )
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyModelVersion>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }
}

/// One row of the model list: the model, its schedule, aliases, latest metrics, and both its
/// deployment record (`is_deployed`) and whether an endpoint serves now
/// (`has_active_endpoint`) — kept apart on purpose.
#[pyclass(module = "trainyard._native", name = "ModelSummary", frozen)]
pub struct PyModelSummary {
    pub inner: ModelSummary,
}

#[pymethods]
impl PyModelSummary {
    #[getter]
    fn model(&self) -> PyRegisteredModel {
        PyRegisteredModel {
            inner: self.inner.model.clone(),
        }
    }
    #[getter]
    fn id(&self) -> i64 {
        self.inner.model.id
    }
    #[getter]
    fn model_name(&self) -> &str {
        &self.inner.model.model_name
    }
    #[getter]
    fn model_type(&self) -> &'static str {
        self.inner.model.model_type.as_str()
    }
    /// Registered to the registry at least once.
    #[getter]
    fn is_registered(&self) -> bool {
        self.inner.is_registered
    }
    /// The deployment record: the last deploy or undeploy left an active endpoint.
    #[getter]
    fn is_deployed(&self) -> bool {
        self.inner.model.is_deployed
    }
    /// Asked of the deployer now: an active endpoint of this model is serving.
    #[getter]
    fn has_active_endpoint(&self) -> bool {
        self.inner.has_active_endpoint
    }
    /// Deployed, but not the latest version.
    #[getter]
    fn is_outdated(&self) -> bool {
        self.inner.is_outdated
    }
    #[getter]
    fn has_schedule(&self) -> bool {
        self.inner.has_schedule
    }
    #[getter]
    fn schedule_id(&self) -> Option<i64> {
        self.inner.schedule_id
    }
    #[getter]
    fn schedule_status(&self) -> Option<String> {
        self.inner.schedule_status.as_ref().map(to_py_string)
    }
    /// {alias: version}
    #[getter]
    fn aliases<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.aliases)
    }
    /// The latest version's KPI metrics.
    #[getter]
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.metrics)
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        let s = &self.inner;
        format!(
            "ModelSummary(id={}, model_name={}, latest_version={}, is_deployed={}, has_active_endpoint={}, has_schedule={})",
            s.model.id,
            pyq(&s.model.model_name),
            pyq(&s.model.latest_version_number),
            py_bool(s.model.is_deployed),
            py_bool(s.has_active_endpoint),
            py_bool(s.has_schedule)
        )
    }
}

/// The filtered model list with the registry's KPI row.
#[pyclass(module = "trainyard._native", name = "ModelListing", frozen)]
pub struct PyModelListing {
    pub inner: ModelListing,
}

impl PyModelListing {
    fn rows(&self) -> Vec<PyModelSummary> {
        self.inner
            .registered_models
            .iter()
            .map(|inner| PyModelSummary {
                inner: inner.clone(),
            })
            .collect()
    }
}

#[pymethods]
impl PyModelListing {
    #[getter]
    fn registered_models(&self) -> Vec<PyModelSummary> {
        self.rows()
    }
    /// {"total", "registered", "with_schedule", "deployed"} over the filtered models.
    #[getter]
    fn kpi<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.kpi)
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    fn __len__(&self) -> usize {
        self.inner.registered_models.len()
    }
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let list = pyo3::types::PyList::new(py, self.rows())?;
        list.try_iter().map(|i| i.into_any())
    }
    fn __repr__(&self) -> String {
        let k = &self.inner.kpi;
        format!(
            "ModelListing(models={}, total={}, registered={}, with_schedule={}, deployed={})",
            self.inner.registered_models.len(),
            k.total,
            k.registered,
            k.with_schedule,
            k.deployed
        )
    }
}

/// One change of an alias or an endpoint: `kind` is "alias" or "endpoint", `name` the alias
/// or service name; `training_run_id` is None when the alias was removed or the endpoint
/// undeployed.
#[pyclass(module = "trainyard._native", name = "RegistryEvent", frozen)]
pub struct PyRegistryEvent {
    pub inner: RegistryEvent,
}

#[pymethods]
impl PyRegistryEvent {
    #[getter]
    fn id(&self) -> i64 {
        self.inner.id
    }
    #[getter]
    fn registered_model_id(&self) -> i64 {
        self.inner.registered_model_id
    }
    #[getter]
    fn kind(&self) -> String {
        to_py_string(&self.inner.kind)
    }
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }
    #[getter]
    fn training_run_id(&self) -> Option<i64> {
        self.inner.training_run_id
    }
    /// The version now held; "" when none.
    #[getter]
    fn model_version(&self) -> &str {
        &self.inner.model_version
    }
    #[getter]
    fn at(&self) -> DateTime<Utc> {
        self.inner.at
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        let e = &self.inner;
        format!(
            "RegistryEvent(kind={}, name={}, model_version={}, training_run_id={}, at={})",
            pyq(&to_py_string(&e.kind)),
            pyq(&e.name),
            pyq(&e.model_version),
            py_repr_opt(e.training_run_id),
            pyq(&e.at.to_rfc3339())
        )
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyRegistryEvent>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyModelVersion>()?;
    m.add_class::<PyModelSummary>()?;
    m.add_class::<PyModelListing>()?;
    m.add_class::<PyRegistryEvent>()?;
    Ok(())
}
