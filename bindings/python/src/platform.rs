//! The Platform class and the shared context every object of one platform holds.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use trainyard::{Backend, ControlPlaneConfig, ControlPlaneHandle, Platform};
use trainyard_core::Result;

use crate::deployments::PyDeployments;
use crate::insights::PyInsights;
use crate::runtime::{awaitable, block};
use crate::services::{PyRegistry, PySchedules, PyTraining};

/// A project directory, or the directory of a given trainyard.toml.
fn project_dir(path: PathBuf) -> Result<PathBuf> {
    if !path.is_file() {
        return Ok(path);
    }
    if path.file_name() == Some(std::ffi::OsStr::new(trainyard::CONFIG_FILE)) {
        return Ok(path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| PathBuf::from(".")));
    }
    Err(trainyard_core::Error::Validation(
        trainyard_core::ValidationError::field(
            "project",
            format!(
                "{} is a file; pass a project directory or its {}",
                path.display(),
                trainyard::CONFIG_FILE
            ),
        ),
    ))
}

/// One opened project. The inner Platform belongs to the process that opened it: a forked
/// child reopens the project (its store's connections and threads stayed with the parent).
pub struct Ctx {
    pub dir: PathBuf,
    pub ml_model: String,
    /// How the platform was opened, to open it again the same way in a forked child.
    backend: Backend,
    local_runner: bool,
    slot: Mutex<(u32, Platform)>,
}

fn backend_of(name: &str) -> PyResult<Backend> {
    crate::convert::from_json("backend", serde_json::Value::String(name.into()))
}

impl Ctx {
    async fn open(path: PathBuf, init: bool, backend: Backend) -> Result<Arc<Ctx>> {
        let dir = project_dir(path)?;
        if init {
            Platform::init(&dir).await?;
        }
        let platform = Platform::open_with(&dir, backend).await?;
        Ok(Arc::new(Ctx {
            dir,
            ml_model: platform.config().project.ml_model.clone(),
            backend,
            local_runner: false,
            slot: Mutex::new((std::process::id(), platform)),
        }))
    }

    /// A context over the same project whose platform submits to the local runner.
    async fn with_local_runner(&self) -> Result<Arc<Ctx>> {
        let platform = self.platform().await?.with_local_runner()?;
        Ok(Arc::new(Ctx {
            dir: self.dir.clone(),
            ml_model: self.ml_model.clone(),
            backend: self.backend,
            local_runner: true,
            slot: Mutex::new((std::process::id(), platform)),
        }))
    }

    async fn reopen(&self) -> Result<Platform> {
        let platform = Platform::open_with(&self.dir, self.backend).await?;
        if self.local_runner {
            return platform.with_local_runner();
        }
        Ok(platform)
    }

    /// The platform of this process.
    pub async fn platform(&self) -> Result<Platform> {
        let pid = std::process::id();
        {
            let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if slot.0 == pid {
                return Ok(slot.1.clone());
            }
        }
        let fresh = self.reopen().await?;
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.0 != pid {
            let inherited = std::mem::replace(&mut *slot, (pid, fresh));
            // Its pool talks to connection threads that only exist in the parent: never drop it.
            std::mem::forget(inherited);
        }
        Ok(slot.1.clone())
    }
}

/// A trainyard project: a directory with trainyard.toml and its database.
#[pyclass(module = "trainyard._native", name = "Platform", frozen)]
pub struct PyPlatform {
    pub ctx: Arc<Ctx>,
}

#[pymethods]
impl PyPlatform {
    /// Opens an existing project: its directory (with trainyard.toml) or its trainyard.toml.
    /// `backend` is "local" (embedded defaults) or "gcp" (Vertex AI and Cloud Scheduler from
    /// the [gcp] section).
    #[staticmethod]
    #[pyo3(signature = (dir, backend="local"))]
    fn open(py: Python<'_>, dir: PathBuf, backend: &str) -> PyResult<PyPlatform> {
        let backend = backend_of(backend)?;
        block(py, async move {
            Ok(PyPlatform {
                ctx: Ctx::open(dir, false, backend).await?,
            })
        })
    }

    /// Creates a project directory (trainyard.toml unless present, and the database), then
    /// opens it.
    #[staticmethod]
    #[pyo3(signature = (dir, backend="local"))]
    fn init(py: Python<'_>, dir: PathBuf, backend: &str) -> PyResult<PyPlatform> {
        let backend = backend_of(backend)?;
        block(py, async move {
            Ok(PyPlatform {
                ctx: Ctx::open(dir, true, backend).await?,
            })
        })
    }

    /// `await Platform.open_async(dir)`
    #[staticmethod]
    #[pyo3(signature = (dir, backend="local"))]
    fn open_async<'py>(
        py: Python<'py>,
        dir: PathBuf,
        backend: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let backend = backend_of(backend)?;
        awaitable(py, async move {
            Ok(PyPlatform {
                ctx: Ctx::open(dir, false, backend).await?,
            })
        })
    }

    /// `await Platform.init_async(dir)`
    #[staticmethod]
    #[pyo3(signature = (dir, backend="local"))]
    fn init_async<'py>(
        py: Python<'py>,
        dir: PathBuf,
        backend: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let backend = backend_of(backend)?;
        awaitable(py, async move {
            Ok(PyPlatform {
                ctx: Ctx::open(dir, true, backend).await?,
            })
        })
    }

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

    #[getter]
    fn training(&self) -> PyTraining {
        PyTraining {
            ctx: self.ctx.clone(),
        }
    }

    #[getter]
    fn schedules(&self) -> PySchedules {
        PySchedules {
            ctx: self.ctx.clone(),
        }
    }

    #[getter]
    fn registry(&self) -> PyRegistry {
        PyRegistry {
            ctx: self.ctx.clone(),
        }
    }

    /// Deploy, undeploy, and the live state of runs and endpoints.
    #[getter]
    fn deployments(&self) -> PyDeployments {
        PyDeployments {
            ctx: self.ctx.clone(),
        }
    }

    /// A run's dataset statistics, schema, weight statistics and logs; the metrics backfill.
    #[getter]
    fn insights(&self) -> PyInsights {
        PyInsights {
            ctx: self.ctx.clone(),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Platform(dir={}, ml_model={}, backend={})",
            crate::models::pyq(&self.ctx.dir.display().to_string()),
            crate::models::pyq(&self.ctx.ml_model),
            crate::models::pyq(self.backend())
        )
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
            crate::models::pyq(&self.owner),
            if self.running() { "True" } else { "False" }
        )
    }
}
