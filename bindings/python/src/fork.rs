//! `os.register_at_fork` hooks. A forked child has only the forking thread; any lock another
//! thread held at that instant stays held in the child forever. Two kinds matter here:
//!
//! - calls of this module in progress (on other Python threads, or awaitables): the hook waits
//!   for them (see [`crate::runtime::quiesce`]);
//! - SQLite's process-wide mutexes, taken by the store's connection threads even when no call
//!   is running (a pool dropped by the garbage collector closes its connections in the
//!   background, which takes the unix VFS lock and the page-cache and malloc locks). The hook
//!   takes them itself, so none is held by another thread at the fork, and both processes
//!   release them afterwards, as glibc does for malloc's own locks.
//!
//! Lock order: SQLite takes VFS1 and LRU before MEM (it allocates while holding them) and
//! never VFS1 and LRU together, so MAIN, VFS1, LRU, MEM in that order cannot deadlock with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use libsqlite3_sys as ffi;
use pyo3::prelude::*;

const SQLITE_LOCKS: [i32; 4] = [
    ffi::SQLITE_MUTEX_STATIC_MAIN,
    ffi::SQLITE_MUTEX_STATIC_VFS1,
    ffi::SQLITE_MUTEX_STATIC_LRU,
    ffi::SQLITE_MUTEX_STATIC_MEM,
];

static HELD: AtomicBool = AtomicBool::new(false);

fn sqlite_locks() -> impl DoubleEndedIterator<Item = *mut ffi::sqlite3_mutex> {
    // SAFETY: static mutex ids return SQLite's statically allocated mutexes (never freed).
    SQLITE_LOCKS
        .into_iter()
        .map(|id| unsafe { ffi::sqlite3_mutex_alloc(id) })
        .filter(|m| !m.is_null())
}

/// The `before` hook: waits for in-flight calls (up to 5 s), then takes SQLite's global locks.
/// Returns whether the calls finished in time.
#[pyfunction]
pub fn _before_fork(py: Python<'_>) -> bool {
    py.detach(|| {
        let idle = crate::runtime::quiesce(Duration::from_secs(5));
        if !HELD.swap(true, Ordering::SeqCst) {
            for m in sqlite_locks() {
                // SAFETY: a valid static mutex; released by `_after_fork` in this thread.
                unsafe { ffi::sqlite3_mutex_enter(m) };
            }
        }
        idle
    })
}

/// The `after_in_parent` and `after_in_child` hook: releases what `_before_fork` took.
#[pyfunction]
pub fn _after_fork() {
    if HELD.swap(false, Ordering::SeqCst) {
        for m in sqlite_locks().rev() {
            // SAFETY: taken by `_before_fork` on this same thread (the forking one).
            unsafe { ffi::sqlite3_mutex_leave(m) };
        }
    }
}
