//! trainyard._native: the Python extension module of the trainyard wheel.
//!
//! The pure-Python package `trainyard` (python/trainyard) re-exports it. This is the only crate
//! that depends on pyo3; it wraps the facade (`trainyard`) and maps its errors in one place
//! (errors.rs).

use pyo3::prelude::*;

mod codegen;
mod convert;
mod deployments;
mod errors;
mod fork;
mod insights;
mod models;
mod platform;
mod predict;
mod registry;
mod runtime;
mod services;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    models::register(m)?;
    services::register(m)?;
    registry::register(m)?;
    deployments::register(m)?;
    insights::register(m)?;
    m.add_class::<platform::PyPlatform>()?;
    m.add_class::<platform::PyControlPlane>()?;
    m.add_function(wrap_pyfunction!(codegen::generate, m)?)?;
    m.add_function(wrap_pyfunction!(predict::predict, m)?)?;
    m.add_function(wrap_pyfunction!(predict::predict_async, m)?)?;
    m.add_function(wrap_pyfunction!(fork::_before_fork, m)?)?;
    m.add_function(wrap_pyfunction!(fork::_after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::_before_exit, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
