//! The tokio runtime behind every call, and the two ways a call reaches it: blocking (with the
//! GIL released) and as an asyncio awaitable.
//!
//! Fork safety: tokio's worker threads do not exist in a forked child, so a runtime inherited
//! through `os.fork()` would hang every call. The runtime is tagged with the pid that built it;
//! a process with another pid builds its own and abandons (leaks, never drops: dropping would
//! join threads that are gone) the inherited one. The slot is a lock-free pointer, so no lock
//! held by a vanished parent thread can wedge the child.

use std::future::Future;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use tokio::runtime::{Builder, Runtime};

use crate::errors::PyTyError;

struct Slot {
    pid: u32,
    runtime: Runtime,
}

static SLOT: AtomicPtr<Slot> = AtomicPtr::new(ptr::null_mut());
/// Calls in progress: blocking ones (run on the caller's thread) and awaitables (tasks).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Set by the interpreter's atexit hook: no runtime thread attaches to Python any more.
static EXITING: AtomicBool = AtomicBool::new(false);
/// Runtime threads delivering a result to Python (attached, or about to attach).
static DELIVERING: AtomicUsize = AtomicUsize::new(0);

struct Delivering;

impl Drop for Delivering {
    fn drop(&mut self) {
        DELIVERING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Enters the delivery section unless the interpreter is exiting. Count first, then check:
/// the atexit hook sets the flag, then waits for the count, so either it waits for us or we
/// see the flag.
fn start_delivery() -> Option<Delivering> {
    DELIVERING.fetch_add(1, Ordering::SeqCst);
    let guard = Delivering;
    (!EXITING.load(Ordering::SeqCst)).then_some(guard)
}

/// The `atexit` hook (registered by trainyard/__init__.py). A runtime thread that delivers a
/// result releases the GIL inside the loop's `call_soon_threadsafe` (its self-pipe write); if
/// the main thread finishes and finalizes meanwhile, that thread's attempt to take the GIL back
/// ends it with `pthread_exit`, whose unwinding through Rust frames aborts the process. So at
/// exit, deliveries in progress finish first (GIL released, up to 5 s) and no new one starts.
#[pyfunction]
pub fn _before_exit(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    py.detach(|| {
        let start = Instant::now();
        while DELIVERING.load(Ordering::SeqCst) != 0 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_micros(200));
        }
    });
}

struct InFlight;

impl InFlight {
    fn enter() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits (up to `limit`) until no call of this module is in progress.
///
/// Run before `fork()` (Python's `os.register_at_fork(before=...)`): a thread that is inside
/// SQLite (or any library with process-wide locks) at the instant of the fork leaves those
/// locks held forever in the child, so calls running on other Python threads or as awaitables
/// get to finish first. (Store pools keep long-lived maintenance tasks, so "no task alive" is
/// never reached and is not waited for.)
pub fn quiesce(limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        if IN_FLIGHT.load(Ordering::SeqCst) == 0 {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn build() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().min(4)))
        .thread_name("trainyard-rt")
        .enable_all()
        .build()
        .expect("cannot start the trainyard tokio runtime")
}

/// This process's runtime (built on first use, and again in a forked child).
pub fn runtime() -> &'static Runtime {
    let pid = std::process::id();
    loop {
        let current = SLOT.load(Ordering::Acquire);
        // SAFETY: slots are leaked boxes, never freed, so a published pointer stays valid.
        if let Some(slot) = unsafe { current.as_ref() } {
            if slot.pid == pid {
                return &slot.runtime;
            }
        }
        let fresh = Box::into_raw(Box::new(Slot {
            pid,
            runtime: build(),
        }));
        match SLOT.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // The replaced slot (if any) belonged to the parent: it stays leaked.
            // SAFETY: `fresh` was just published and is never freed.
            Ok(_) => return unsafe { &(*fresh).runtime },
            Err(_) => {
                // Another thread of this process published first; ours was never shared.
                // SAFETY: `fresh` came from Box::into_raw above and nobody else has it.
                let lost = unsafe { Box::from_raw(fresh) };
                lost.runtime.shutdown_background();
            }
        }
    }
}

/// Runs a future to completion on the runtime with the GIL released.
pub fn block<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = Result<T, trainyard_core::Error>> + Send,
    T: Send,
{
    let rt = runtime();
    py.detach(|| {
        let _counted = InFlight::enter();
        rt.block_on(fut)
    })
    .map_err(|e| PyTyError(e).into())
}

/// Completes an asyncio future from the loop's thread, unless it was cancelled meanwhile.
#[pyfunction]
fn _resolve_future(fut: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if fut.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        fut.call_method1("set_result", (value,))?;
    } else {
        fut.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

/// Spawns a future on the runtime and returns an asyncio future (of the running loop) that
/// resolves with its result, or raises its mapped error.
pub fn awaitable<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, trainyard_core::Error>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let py_fut = event_loop.call_method0("create_future")?;
    let event_loop = event_loop.unbind();
    let target = py_fut.clone().unbind();
    let counted = InFlight::enter();
    runtime().spawn(async move {
        let _counted = counted;
        let result = fut.await;
        let mut handles = Some((event_loop, target));
        let delivering = start_delivery();
        let delivered = delivering.as_ref().and_then(|_| {
            Python::try_attach(|py| {
                // Dropped here, with the GIL held: dropping them without it would queue their
                // decrefs in pyo3's process-wide pool from a runtime thread.
                let Some((event_loop, target)) = handles.take() else {
                    return;
                };
                let outcome = result
                    .map_err(|e| PyErr::from(PyTyError(e)))
                    .and_then(|v| v.into_bound_py_any(py));
                let (ok, value) = match outcome {
                    Ok(obj) => (true, obj),
                    Err(e) => (false, e.into_value(py).into_bound(py).into_any()),
                };
                let resolve = match wrap_pyfunction!(_resolve_future, py) {
                    Ok(f) => f,
                    Err(e) => {
                        e.write_unraisable(py, None);
                        return;
                    }
                };
                // A loop closed before the result came has nobody to tell.
                let _ = event_loop.bind(py).call_method1(
                    "call_soon_threadsafe",
                    (resolve, target.bind(py), ok, value),
                );
            })
        });
        drop(delivering);
        if delivered.is_none() {
            // The interpreter is shutting down: nobody awaits any more, and Python objects
            // cannot be released without it.
            std::mem::forget(handles.take());
        }
    });
    Ok(py_fut)
}
