//! The context every object of one opened project holds, and the future type of an operation
//! (a leaf: it depends on the facade only).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use trainyard::{Backend, Platform};
use trainyard_core::Result;

/// The future one operation runs (blocking or awaited).
pub type Op<T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'static>>;

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
    pub backend: Backend,
    local_runner: bool,
    slot: Mutex<(u32, Platform)>,
}

impl Ctx {
    pub async fn open(path: PathBuf, init: bool, backend: Backend) -> Result<Arc<Ctx>> {
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
    pub async fn with_local_runner(&self) -> Result<Arc<Ctx>> {
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

impl Ctx {
    /// A use case on this process's platform, as the future of an operation; `f` gets the
    /// platform and this context (to bind what it returns).
    pub fn op<T, F, Fut>(self: &Arc<Self>, f: F) -> Op<T>
    where
        T: Send + 'static,
        F: FnOnce(Platform, Arc<Ctx>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send,
    {
        let ctx = self.clone();
        Box::pin(async move { f(ctx.platform().await?, ctx).await })
    }

    /// A use case of one facade service (`service` picks it from the platform: a method like
    /// `Platform::schedules`, or `Platform::clone` for the platform's own), its result made a
    /// Python object by `wrap`.
    pub fn service_op<S, T, R, F, Fut>(
        self: &Arc<Self>,
        service: fn(&Platform) -> S,
        f: F,
        wrap: fn(T, &Arc<Ctx>) -> R,
    ) -> Op<R>
    where
        S: Send + 'static,
        T: Send + 'static,
        R: Send + 'static,
        F: FnOnce(S) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send,
    {
        self.op(move |p, ctx| async move { Ok(wrap(f(service(&p)).await?, &ctx)) })
    }
}
