//! The Platform class (its services are properties) and the ControlPlane it starts.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use trainyard::{Backend, ControlPlaneConfig, ControlPlaneHandle};

use crate::ctx::Ctx;
use crate::deployments::PyDeployments;
use crate::insights::PyInsights;
use crate::registry::PyRegistry;
use crate::repr::{py_bool, pyq};
use crate::runtime::block;
use crate::schedules::PySchedules;
use crate::training::PyTraining;

fn backend_of(name: &str) -> PyResult<Backend> {
    crate::convert::from_json("backend", serde_json::Value::String(name.into()))
}

/// A trainyard project: a directory with trainyard.toml and its database.
#[pyclass(module = "trainyard._native", name = "Platform", frozen)]
pub struct PyPlatform {
    pub ctx: Arc<Ctx>,
}

service_methods! {
    impl PyPlatform {
        ops {}
        static_ops {
            /// Opens an existing project: its directory (with trainyard.toml) or its
            /// trainyard.toml. `backend` is "local" (embedded defaults) or "gcp" (Vertex AI and
            /// Cloud Scheduler from the [gcp] section).
            #[pyo3(signature = (dir, backend="local"))]
            fn open(dir: PathBuf, backend: &str) -> PyPlatform
                as stub(
                    "dir: Union[str, os.PathLike[str]], backend: str = \"local\""
                        -> "Platform"
                )
            {
                let backend = backend_of(backend)?;
                Box::pin(async move {
                    Ok(PyPlatform {
                        ctx: Ctx::open(dir, false, backend).await?,
                    })
                })
            }

            /// Creates a project directory (trainyard.toml unless present, and the database),
            /// then opens it.
            #[pyo3(signature = (dir, backend="local"))]
            fn init(dir: PathBuf, backend: &str) -> PyPlatform
                as stub(
                    "dir: Union[str, os.PathLike[str]], backend: str = \"local\""
                        -> "Platform"
                )
            {
                let backend = backend_of(backend)?;
                Box::pin(async move {
                    Ok(PyPlatform {
                        ctx: Ctx::open(dir, true, backend).await?,
                    })
                })
            }
        }
        methods {
            /// This project with the local pipeline runner as its executor (TFX LocalDagRunner in the
            /// managed Python env: $TRAINYARD_PYTHON or [local] python); ValidationError without one.
            fn with_local_runner(&self, py: Python<'_>) -> PyResult<PyPlatform> {
                let ctx = self.ctx.clone();
                block(py, async move {
                    Ok(PyPlatform {
                        ctx: ctx.with_local_runner().await?,
                    })
                })
            }

            /// Starts this project's control plane in the background (on the wheel's runtime): what
            /// `trainyard server` runs besides the REST API — the embedded scheduler, and the steps
            /// that submit, track, register and deploy runs. While it runs, submitted runs advance
            /// with no call following them; `stop()` (or the end of the process) ends it.
            fn start_control_plane(&self, py: Python<'_>) -> PyResult<PyControlPlane> {
                let ctx = self.ctx.clone();
                block(py, async move {
                    let platform = ctx.platform().await?;
                    let config = ControlPlaneConfig {
                        scheduler: !platform.has_schedule_trigger(),
                        ..ControlPlaneConfig::server()
                    };
                    let handle = platform.control_plane(config).spawn();
                    Ok(PyControlPlane {
                        owner: handle.owner().to_string(),
                        handle: Mutex::new(Some(handle)),
                    })
                })
            }

            /// "local" or "gcp".
            #[getter]
            fn backend(&self) -> &'static str {
                match self.ctx.backend {
                    Backend::Local => "local",
                    Backend::Gcp => "gcp",
                }
            }

            /// Whether runs can be submitted (a pipeline executor is configured).
            #[getter]
            fn can_submit(&self, py: Python<'_>) -> PyResult<bool> {
                let ctx = self.ctx.clone();
                block(py, async move {
                    Ok(ctx.platform().await?.training().can_submit())
                })
            }

            /// The project directory.
            #[getter]
            fn dir(&self) -> String {
                self.ctx.dir.display().to_string()
            }

            /// The model endpoint runs belong to unless a call names another ([project] ml_model).
            #[getter]
            fn ml_model(&self) -> &str {
                &self.ctx.ml_model
            }

            // The services, each a view of this project.
            #[getter]
            fn training(&self) -> PyTraining { PyTraining { ctx: self.ctx.clone() } }
            #[getter]
            fn schedules(&self) -> PySchedules { PySchedules { ctx: self.ctx.clone() } }
            #[getter]
            fn registry(&self) -> PyRegistry { PyRegistry { ctx: self.ctx.clone() } }
            /// Deploy, undeploy, and the live state of runs and endpoints.
            #[getter]
            fn deployments(&self) -> PyDeployments { PyDeployments { ctx: self.ctx.clone() } }
            /// A run's dataset statistics, schema, weight statistics and logs; the metrics backfill.
            #[getter]
            fn insights(&self) -> PyInsights { PyInsights { ctx: self.ctx.clone() } }

            fn __repr__(&self) -> String {
                format!(
                    "Platform(dir={}, ml_model={}, backend={})",
                    pyq(&self.ctx.dir.display().to_string()),
                    pyq(&self.ctx.ml_model),
                    pyq(self.backend())
                )
            }
        }
    }
}

/// A control plane started by `Platform.start_control_plane()`.
#[pyclass(module = "trainyard._native", name = "ControlPlane", frozen)]
pub struct PyControlPlane {
    owner: String,
    handle: Mutex<Option<ControlPlaneHandle>>,
}

#[pymethods]
impl PyControlPlane {
    /// The name it holds its leases under.
    #[getter]
    fn owner(&self) -> &str {
        &self.owner
    }

    /// Whether it is running (not stopped yet).
    #[getter]
    fn running(&self) -> bool {
        self.handle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Stops it and gives up its leases (a server started elsewhere takes the work over at
    /// once); stopping twice is harmless.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let handle = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take();
        match handle {
            Some(h) => block(py, async move { h.stop().await }),
            None => Ok(()),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "ControlPlane(owner={}, running={})",
            pyq(&self.owner),
            py_bool(self.running())
        )
    }
}
