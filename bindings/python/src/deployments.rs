//! `platform.deployments`: deploy a registered run to an endpoint, undeploy, and the live
//! state of runs and endpoints; with the Endpoint and DeploymentView result classes. Every
//! operation is declared once (see macros.rs): blocking, and `<name>_async`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use serde_json::Value;
use trainyard::{DeployOptions, DeploymentView, EndpointView};
use trainyard_core::config::{DeploymentConfig, DeploymentPreset};
use trainyard_core::deployment::LiveDeploymentStatus;
use trainyard_core::registry::DeployedEndpoint;

use crate::convert::{field_names, from_json, py_to_json, reject_unknown_keys};
use crate::ctx::{Ctx, Op};
use crate::models::PyRun;
use crate::repr::{py_bool, py_repr_opt, pyq, to_py_string};

/// An endpoint and whether it serves right now: `serving` is None (with `error`) when the
/// deployer could not tell.
#[pyclass(module = "trainyard._native", name = "Endpoint", frozen)]
pub struct PyEndpoint {
    pub inner: EndpointView,
}

view_methods! {
    impl PyEndpoint(v) {
        get {
            id: i64 = v.endpoint.id;
            registered_model_id: i64 = v.endpoint.registered_model_id;
            service_name: &str = &v.endpoint.service_name;
            /// Base URL of the TF Serving REST API (`trainyard.predict(url, ...)`).
            service_url: &str = &v.endpoint.service_url;
            deployed_version: &str = &v.endpoint.deployed_version;
            deployed_training_run_id: Option<i64> = v.endpoint.deployed_training_run_id;
            /// The record: the last deploy left it active (undeploy clears it).
            is_active: bool = v.endpoint.is_active;
            /// Live: the server answers now (None when that cannot be told; see `error`).
            serving: Option<bool> = v.serving;
            error: Option<&str> = v.error.as_deref();
            created_at: DateTime<Utc> = v.endpoint.created_at;
            updated_at: DateTime<Utc> = v.endpoint.updated_at;
        }
        dict {
            deployment_config = &v.endpoint.deployment_config;
        }
        repr(Endpoint {
            service_name = pyq(&v.endpoint.service_name),
            url = pyq(&v.endpoint.service_url),
            deployed_version = pyq(&v.endpoint.deployed_version),
            training_run_id = py_repr_opt(v.endpoint.deployed_training_run_id),
            is_active = py_bool(v.endpoint.is_active),
            serving = v.serving.map_or("None", py_bool),
        });
    }
}

fn live_status(status: &LiveDeploymentStatus) -> &'static str {
    match status {
        LiveDeploymentStatus::Deployed => "deployed",
        LiveDeploymentStatus::Idle => "idle",
        LiveDeploymentStatus::NotBlessed => "not_blessed",
        LiveDeploymentStatus::Unknown { .. } => "unknown",
    }
}

/// A run's deployment: `deployment_status` is what the pipeline and the last deploy did (the
/// record); `has_active_endpoint` and `status` are what its endpoint does right now.
#[pyclass(module = "trainyard._native", name = "DeploymentView", frozen)]
pub struct PyDeploymentView {
    pub inner: DeploymentView,
    /// The endpoint with its live state (see `status`).
    pub endpoint: Option<EndpointView>,
}

view_methods! {
    impl PyDeploymentView(v) {
        get {
            training_run_id: i64 = v.training_run_id;
            run_status: &'static str = v.run_status.as_str();
            /// The record: "pending", "deploying", "deployed", "failed" or "skipped".
            deployment_status: String = to_py_string(&v.deployment_status);
            /// Live: the run's endpoint is serving it now.
            has_active_endpoint: bool = v.has_active_endpoint;
            /// Live: "deployed", "idle", "not_blessed" or "unknown" (see `status_error`).
            status: &'static str = live_status(&v.status);
            /// Why the status is "unknown".
            status_error: Option<&str> = match &v.status {
                LiveDeploymentStatus::Unknown { error } => Some(error),
                _ => None,
            };
        }
        repr(DeploymentView {
            training_run_id = v.training_run_id,
            deployment_status = pyq(&to_py_string(&v.deployment_status)),
            status = pyq(live_status(&v.status)),
            has_active_endpoint = py_bool(v.has_active_endpoint),
            endpoint = py_repr_opt(v.endpoint.as_ref().map(|e| pyq(&e.service_name))),
        });
        methods {
            #[getter]
            fn endpoint(&self) -> Option<PyEndpoint> {
                self.endpoint.clone().map(|inner| PyEndpoint { inner })
            }
        }
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
    /// A use case that returns an endpoint, with the deployer's live answer about it.
    fn live_op<F, Fut>(&self, f: F) -> Op<PyEndpoint>
    where
        F: FnOnce(trainyard::DeploymentService) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = trainyard_core::Result<DeployedEndpoint>> + Send,
    {
        self.ctx.op(move |p, _| async move {
            let endpoint = f(p.deployments()).await?;
            Ok(PyEndpoint {
                inner: live(&p.deployments(), endpoint).await,
            })
        })
    }
}

/// An endpoint with the deployer's live answer.
async fn live(d: &trainyard::DeploymentService, endpoint: DeployedEndpoint) -> EndpointView {
    let state = d.is_serving(&endpoint).await;
    EndpointView {
        serving: state.as_ref().ok().copied(),
        error: state.err(),
        endpoint,
    }
}

service_methods! {
    impl PyDeployments {
        ops {
            /// Deploys a registered run; returns the run (status "deployed"). `preset` is
            /// "development", "production", "high_traffic" or "custom" (with `resources`, a
            /// dict of min_instances, max_instances, memory, cpu, timeout); `endpoint` names an
            /// existing endpoint of the same model to update; `service_name` names a new one
            /// (default: the model name + "-serving"). An unregistered run or bad options are a
            /// ValidationError, an endpoint of another model a Conflict, an unknown `endpoint`
            /// NotFound — all before anything changes; a server that fails to start is a
            /// BackendError and the run is left "deploy_failed" with the error.
            /// `target="vertex_endpoint"` serves the registered Vertex AI Model Registry version
            /// on a Vertex AI endpoint (Google Cloud backend); default: the named endpoint's
            /// target, else a service (trainyard-serve / Cloud Run).
            #[pyo3(signature = (run_id, *, preset=None, resources=None, endpoint=None, service_name=None, target=None))]
            fn deploy(
                &self,
                run_id: i64,
                preset: Option<String>,
                resources: Option<&Bound<'_, PyAny>>,
                endpoint: Option<String>,
                service_name: Option<String>,
                target: Option<String>,
            ) -> PyRun
                as stub(
                    "run_id: int, \
                    *, \
                    preset: Optional[str] = None, \
                    resources: Optional[DeploymentConfig] = None, \
                    endpoint: Optional[str] = None, \
                    service_name: Optional[str] = None, \
                    target: Optional[str] = None"
                        -> "Run"
                )
            {
                let options = deploy_options(preset, resources, endpoint, service_name, target)?;
                self.ctx.op(move |p, ctx| async move {
                    let run = p.deployments().deploy(run_id, &options).await?;
                    Ok(PyRun::new(run, &ctx))
                })
            }

            /// Stops serving on an endpoint; the run it served goes back to "completed".
            fn undeploy(&self, service_name: String) -> PyEndpoint
                as stub(
                    "service_name: str"
                        -> "Endpoint"
                )
            {
                self.live_op(move |d| async move { d.undeploy(&service_name).await })
            }

            /// The run's deployment record next to its endpoint's live state.
            fn status(&self, run_id: i64) -> PyDeploymentView
                as stub(
                    "run_id: int"
                        -> "DeploymentView"
                )
            {
                self.ctx.op(move |p, _| async move {
                    let d = p.deployments();
                    let view = d.status(run_id).await?;
                    let endpoint = match &view.endpoint {
                        // The view asked the deployer about this endpoint already: no second
                        // call.
                        Some(ep) if ep.deployed_training_run_id == Some(run_id) => {
                            let (serving, error) = match &view.status {
                                LiveDeploymentStatus::Unknown { error } => {
                                    (None, Some(error.clone()))
                                }
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

            /// Endpoints of a registered model (all when `model_id` is None), each with its
            /// live state.
            #[pyo3(signature = (model_id=None))]
            fn endpoints(&self, model_id: Option<i64>) -> Vec<PyEndpoint>
                as stub(
                    "model_id: Optional[int] = None"
                        -> "builtins.list[Endpoint]"
                )
            {
                self.ctx.op(move |p, _| async move {
                    let all = p.deployments().endpoints(model_id).await?;
                    Ok(all.into_iter().map(|inner| PyEndpoint { inner }).collect())
                })
            }

            /// The endpoint named `service_name` with its live state; NotFound when there is
            /// none.
            fn endpoint(&self, service_name: String) -> PyEndpoint
                as stub(
                    "service_name: str"
                        -> "Endpoint"
                )
            {
                self.live_op(move |d| async move { d.endpoint(&service_name).await })
            }
        }
        methods {
            fn __repr__(&self) -> String {
                format!("DeploymentService(dir={})", pyq(&self.ctx.dir.display().to_string()))
            }
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDeployments>()?;
    m.add_class::<PyEndpoint>()?;
    m.add_class::<PyDeploymentView>()?;
    Ok(())
}
