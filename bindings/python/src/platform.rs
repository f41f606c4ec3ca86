//! The Platform class and the shared context every object of one platform holds.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use trainyard::Platform;
use trainyard_core::Result;

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
    slot: Mutex<(u32, Platform)>,
}

impl Ctx {
    async fn open(path: PathBuf, init: bool) -> Result<Arc<Ctx>> {
        let dir = project_dir(path)?;
        let platform = if init {
            Platform::init(&dir).await?
        } else {
            Platform::open(&dir).await?
        };
        Ok(Arc::new(Ctx {
            dir,
            ml_model: platform.config().project.ml_model.clone(),
            slot: Mutex::new((std::process::id(), platform)),
        }))
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
        let fresh = Platform::open(&self.dir).await?;
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
    #[staticmethod]
    fn open(py: Python<'_>, dir: PathBuf) -> PyResult<PyPlatform> {
        block(py, async move {
            Ok(PyPlatform {
                ctx: Ctx::open(dir, false).await?,
            })
        })
    }

    /// Creates a project directory (trainyard.toml unless present, and the database), then opens it.
    #[staticmethod]
    fn init(py: Python<'_>, dir: PathBuf) -> PyResult<PyPlatform> {
        block(py, async move {
            Ok(PyPlatform {
                ctx: Ctx::open(dir, true).await?,
            })
        })
    }

    /// `await Platform.open_async(dir)`
    #[staticmethod]
    fn open_async(py: Python<'_>, dir: PathBuf) -> PyResult<Bound<'_, PyAny>> {
        awaitable(py, async move {
            Ok(PyPlatform {
                ctx: Ctx::open(dir, false).await?,
            })
        })
    }

    /// `await Platform.init_async(dir)`
    #[staticmethod]
    fn init_async(py: Python<'_>, dir: PathBuf) -> PyResult<Bound<'_, PyAny>> {
        awaitable(py, async move {
            Ok(PyPlatform {
                ctx: Ctx::open(dir, true).await?,
            })
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

    fn __repr__(&self) -> String {
        format!(
            "Platform(dir={}, ml_model={})",
            crate::models::pyq(&self.ctx.dir.display().to_string()),
            crate::models::pyq(&self.ctx.ml_model)
        )
    }
}
