//! `platform.deployments`: deploy a registered run to an endpoint, undeploy, and the live
//! state of runs and endpoints; with the Endpoint and DeploymentView result classes. Every
//! operation is blocking (GIL released) and `<name>_async`, both over one `*_op` future.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use serde_json::Value;
use trainyard::{DeployOptions, DeploymentView, EndpointView};
use trainyard_core::config::{DeploymentConfig, DeploymentPreset};
use trainyard_core::deployment::LiveDeploymentStatus;

use crate::convert::{field_names, from_json, py_to_json, reject_unknown_keys, to_py};
use crate::models::{py_bool, py_repr_opt, pyq, to_py_string, PyRun};
use crate::platform::Ctx;
use crate::runtime::{awaitable, block};
use crate::services::Op;

/// An endpoint and whether it serves right now: `serving` is None (with `error`) when the
/// deployer could not tell.
#[pyclass(module = "trainyard._native", name = "Endpoint", frozen)]
pub struct PyEndpoint {
    pub inner: EndpointView,
}

#[pymethods]
impl PyEndpoint {
    #[getter]
    fn id(&self) -> i64 {
        self.inner.endpoint.id
    }
    #[getter]
    fn registered_model_id(&self) -> i64 {
        self.inner.endpoint.registered_model_id
    }
    #[getter]
    fn service_name(&self) -> &str {
        &self.inner.endpoint.service_name
    }
    /// Base URL of the TF Serving REST API (`trainyard.predict(url, ...)`).
    #[getter]
    fn service_url(&self) -> &str {
        &self.inner.endpoint.service_url
    }
    #[getter]
    fn deployed_version(&self) -> &str {
        &self.inner.endpoint.deployed_version
    }
    #[getter]
    fn deployed_training_run_id(&self) -> Option<i64> {
        self.inner.endpoint.deployed_training_run_id
    }
    /// The record: the last deploy left it active (undeploy clears it).
    #[getter]
    fn is_active(&self) -> bool {
        self.inner.endpoint.is_active
    }
    /// Live: the server answers now (None when that cannot be told; see `error`).
    #[getter]
    fn serving(&self) -> Option<bool> {
        self.inner.serving
    }
    #[getter]
    fn error(&self) -> Option<&str> {
        self.inner.error.as_deref()
    }
    #[getter]
    fn deployment_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.endpoint.deployment_config)
    }
    #[getter]
    fn created_at(&self) -> DateTime<Utc> {
        self.inner.endpoint.created_at
    }
    #[getter]
    fn updated_at(&self) -> DateTime<Utc> {
        self.inner.endpoint.updated_at
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        let e = &self.inner.endpoint;
        format!(
            "Endpoint(service_name={}, url={}, deployed_version={}, training_run_id={}, is_active={}, serving={})",
            pyq(&e.service_name),
            pyq(&e.service_url),
            pyq(&e.deployed_version),
            py_repr_opt(e.deployed_training_run_id),
            py_bool(e.is_active),
            self.inner.serving.map_or("None", py_bool)
        )
    }
}

/// A run's deployment: `deployment_status` is what the pipeline and the last deploy did (the
/// record); `has_active_endpoint` and `status` are what its endpoint does right now.
#[pyclass(module = "trainyard._native", name = "DeploymentView", frozen)]
pub struct PyDeploymentView {
    pub inner: DeploymentView,
    /// The endpoint with its live state (see `status_op`).
    pub endpoint: Option<EndpointView>,
}

#[pymethods]
impl PyDeploymentView {
    #[getter]
    fn training_run_id(&self) -> i64 {
        self.inner.training_run_id
    }
    #[getter]
    fn run_status(&self) -> &'static str {
        self.inner.run_status.as_str()
    }
    /// The record: "pending", "deploying", "deployed", "failed" or "skipped".
    #[getter]
    fn deployment_status(&self) -> String {
        to_py_string(&self.inner.deployment_status)
    }
    /// Live: the run's endpoint is serving it now.
    #[getter]
    fn has_active_endpoint(&self) -> bool {
        self.inner.has_active_endpoint
    }
    /// Live: "deployed", "idle", "not_blessed" or "unknown" (see `status_error`).
    #[getter]
    fn status(&self) -> &'static str {
        match self.inner.status {
            LiveDeploymentStatus::Deployed => "deployed",
            LiveDeploymentStatus::Idle => "idle",
            LiveDeploymentStatus::NotBlessed => "not_blessed",
            LiveDeploymentStatus::Unknown { .. } => "unknown",
        }
    }
    /// Why the status is "unknown".
    #[getter]
    fn status_error(&self) -> Option<&str> {
        match &self.inner.status {
            LiveDeploymentStatus::Unknown { error } => Some(error),
            _ => None,
        }
    }
    #[getter]
    fn endpoint(&self) -> Option<PyEndpoint> {
        self.endpoint.clone().map(|inner| PyEndpoint { inner })
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        let v = &self.inner;
        format!(
            "DeploymentView(training_run_id={}, deployment_status={}, status={}, has_active_endpoint={}, endpoint={})",
            v.training_run_id,
            pyq(&to_py_string(&v.deployment_status)),
            pyq(self.status()),
            py_bool(v.has_active_endpoint),
            py_repr_opt(v.endpoint.as_ref().map(|e| pyq(&e.service_name)))
        )
    }
}

/// The deploy options of the keyword arguments; a bad preset or resources dict is a
/// ValidationError naming it.
fn deploy_options(
    preset: Option<String>,
    resources: Option<&Bound<'_, PyAny>>,
    endpoint: Option<String>,
    service_name: Option<String>,
    target: Option<String>,
) -> PyResult<DeployOptions> {
    let target = target
        .map(|t| from_json("target", Value::String(t)))
        .transpose()?;
    let preset: Option<DeploymentPreset> = preset
        .map(|p| from_json("preset", Value::String(p)))
        .transpose()?;
    let resources: Option<DeploymentConfig> = match resources {
        None => None,
        Some(r) => {
            let json = py_to_json(r)?;
            let names = field_names::<DeploymentConfig>();
            let allowed: Vec<&str> = names.iter().map(String::as_str).collect();
            reject_unknown_keys("resources", &json, &allowed)?;
            Some(from_json("resources", json)?)
        }
    };
    Ok(DeployOptions {
        preset,
        resources,
        endpoint,
        service_name,
        target,
    })
}

/// Serving registered versions on endpoints.
#[pyclass(module = "trainyard._native", name = "DeploymentService", frozen)]
pub struct PyDeployments {
    pub ctx: Arc<Ctx>,
}

impl PyDeployments {
    fn deploy_op(&self, run_id: i64, options: DeployOptions) -> Op<PyRun> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let run = ctx
                .platform()
                .await?
                .deployments()
                .deploy(run_id, &options)
                .await?;
            Ok(PyRun::new(run, &ctx))
        })
    }

    fn undeploy_op(&self, service_name: String) -> Op<PyEndpoint> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let d = ctx.platform().await?.deployments();
            let endpoint = d.undeploy(&service_name).await?;
            Ok(PyEndpoint {
                inner: live(&d, endpoint).await,
            })
        })
    }

    fn status_op(&self, run_id: i64) -> Op<PyDeploymentView> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let d = ctx.platform().await?.deployments();
            let view = d.status(run_id).await?;
            let endpoint = match &view.endpoint {
                // The view asked the deployer about this endpoint already: no second call.
                Some(ep) if ep.deployed_training_run_id == Some(run_id) => {
                    let (serving, error) = match &view.status {
                        LiveDeploymentStatus::Unknown { error } => (None, Some(error.clone())),
                        _ => (Some(view.has_active_endpoint), None),
                    };
                    Some(EndpointView {
                        endpoint: ep.clone(),
                        serving,
                        error,
                    })
                }
                // The endpoint serves another run now: its own live state.
                Some(ep) => Some(live(&d, ep.clone()).await),
                None => None,
            };
            Ok(PyDeploymentView {
                inner: view,
                endpoint,
            })
        })
    }

    fn endpoints_op(&self, model_id: Option<i64>) -> Op<Vec<PyEndpoint>> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let all = ctx
                .platform()
                .await?
                .deployments()
                .endpoints(model_id)
                .await?;
            Ok(all.into_iter().map(|inner| PyEndpoint { inner }).collect())
        })
    }

    fn endpoint_op(&self, service_name: String) -> Op<PyEndpoint> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let d = ctx.platform().await?.deployments();
            let endpoint = d.endpoint(&service_name).await?;
            Ok(PyEndpoint {
                inner: live(&d, endpoint).await,
            })
        })
    }
}

/// An endpoint with the deployer's live answer.
async fn live(
    d: &trainyard::DeploymentService,
    endpoint: trainyard_core::registry::DeployedEndpoint,
) -> EndpointView {
    let state = d.is_serving(&endpoint).await;
    EndpointView {
        serving: state.as_ref().ok().copied(),
        error: state.err(),
        endpoint,
    }
}

#[pymethods]
impl PyDeployments {
    /// Deploys a registered run; returns the run (status "deployed"). `preset` is
    /// "development", "production", "high_traffic" or "custom" (with `resources`, a dict of
    /// min_instances, max_instances, memory, cpu, timeout); `endpoint` names an existing
    /// endpoint of the same model to update; `service_name` names a new one (default: the
    /// model name + "-serving"). An unregistered run or bad options are a ValidationError, an
    /// endpoint of another model a Conflict, an unknown `endpoint` NotFound — all before
    /// anything changes; a server that fails to start is a BackendError and the run is left
    /// "deploy_failed" with the error. `target="vertex_endpoint"` serves the registered Vertex
    /// AI Model Registry version on a Vertex AI endpoint (Google Cloud backend); default: the
    /// named endpoint's target, else a service (trainyard-serve / Cloud Run).
    #[pyo3(signature = (run_id, *, preset=None, resources=None, endpoint=None, service_name=None, target=None))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn deploy(
        &self,
        py: Python<'_>,
        run_id: i64,
        preset: Option<String>,
        resources: Option<&Bound<'_, PyAny>>,
        endpoint: Option<String>,
        service_name: Option<String>,
        target: Option<String>,
    ) -> PyResult<PyRun> {
        let options = deploy_options(preset, resources, endpoint, service_name, target)?;
        block(py, self.deploy_op(run_id, options))
    }

    #[pyo3(signature = (run_id, *, preset=None, resources=None, endpoint=None, service_name=None, target=None))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn deploy_async<'py>(
        &self,
        py: Python<'py>,
        run_id: i64,
        preset: Option<String>,
        resources: Option<&Bound<'_, PyAny>>,
        endpoint: Option<String>,
        service_name: Option<String>,
        target: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = deploy_options(preset, resources, endpoint, service_name, target)?;
        awaitable(py, self.deploy_op(run_id, options))
    }

    /// Stops serving on an endpoint; the run it served goes back to "completed".
    fn undeploy(&self, py: Python<'_>, service_name: String) -> PyResult<PyEndpoint> {
        block(py, self.undeploy_op(service_name))
    }

    fn undeploy_async<'py>(
        &self,
        py: Python<'py>,
        service_name: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.undeploy_op(service_name))
    }

    /// The run's deployment record next to its endpoint's live state.
    fn status(&self, py: Python<'_>, run_id: i64) -> PyResult<PyDeploymentView> {
        block(py, self.status_op(run_id))
    }

    fn status_async<'py>(&self, py: Python<'py>, run_id: i64) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.status_op(run_id))
    }

    /// Endpoints of a registered model (all when `model_id` is None), each with its live state.
    #[pyo3(signature = (model_id=None))]
    fn endpoints(&self, py: Python<'_>, model_id: Option<i64>) -> PyResult<Vec<PyEndpoint>> {
        block(py, self.endpoints_op(model_id))
    }

    #[pyo3(signature = (model_id=None))]
    fn endpoints_async<'py>(
        &self,
        py: Python<'py>,
        model_id: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.endpoints_op(model_id))
    }

    /// The endpoint named `service_name` with its live state; NotFound when there is none.
    fn endpoint(&self, py: Python<'_>, service_name: String) -> PyResult<PyEndpoint> {
        block(py, self.endpoint_op(service_name))
    }

    fn endpoint_async<'py>(
        &self,
        py: Python<'py>,
        service_name: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.endpoint_op(service_name))
    }

    fn __repr__(&self) -> String {
        format!(
            "DeploymentService(dir={})",
            pyq(&self.ctx.dir.display().to_string())
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDeployments>()?;
    m.add_class::<PyEndpoint>()?;
    m.add_class::<PyDeploymentView>()?;
    Ok(())
}
