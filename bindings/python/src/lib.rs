//! trainyard._native: the Python extension module of the trainyard wheel.
//!
//! The pure-Python package `trainyard` (python/trainyard) re-exports it. This is the only crate
//! that depends on pyo3; it wraps the facade (`trainyard`) and maps its errors in one place
//! (errors.rs).
//!
//! Modules, and what they may use (the import graph is a tree over the leaves):
//! - leaves: `macros` (the declaration macros), `errors` (the exception classes and the one
//!   error mapping), `repr` (how values print), `ctx` (an opened project, the `Op` future),
//!   `runtime` (the tokio runtime; it names only `errors`), `convert` (Python <-> serde; it
//!   names only `errors`), `fork`;
//! - result classes: `models` (Run, Schedule, RegisteredModel, NameCheck, RunPage,
//!   FireOutcome);
//! - one file per facade service, each with its own result classes: `training`, `schedules`,
//!   `registry`, `deployments`, `insights`; and `platform`, whose properties are those services;
//! - free functions: `codegen`, `predict`.

use pyo3::prelude::*;

#[macro_use]
mod macros;

mod codegen;
mod convert;
mod ctx;
mod deployments;
mod errors;
mod fork;
mod insights;
mod models;
mod platform;
mod predict;
mod registry;
mod repr;
mod runtime;
mod schedules;
mod training;

/// The REST API's OpenAPI document (JSON): scripts/gen-config-types.py types the config dicts
/// of the stubs (python/trainyard/config_types.py) from its schemas.
#[pyfunction]
fn _openapi_json() -> PyResult<String> {
    trainyard::http::api::openapi()
        .to_json()
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
}

/// The result metrics (core's `Metric`): name, label and whether higher is better, in display
/// order — what the notebook helpers chart, so Python keeps no list of its own.
#[pyfunction]
fn _metrics() -> Vec<(&'static str, &'static str, bool)> {
    trainyard::core::metrics::Metric::ALL
        .iter()
        .map(|m| (m.name(), m.label(), !m.lower_is_better()))
        .collect()
}

/// The stub lines of every operation declared through `service_methods!` / `function_twins!`:
/// (class name, "" for the module; kind: method | static | function; name; parameters without
/// `self`; the blocking twin's return type). scripts/gen-stubs.py writes the generated sections
/// of _native.pyi from them (`make python-stubs`; `make test-python` checks they are current).
#[pyfunction]
fn _stubs() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
)> {
    use pyo3::PyTypeInfo;
    fn class<T: PyTypeInfo>(
        stubs: &'static [macros::Stub],
    ) -> (&'static str, &'static [macros::Stub]) {
        (T::NAME, stubs)
    }
    let tables = [
        class::<platform::PyPlatform>(platform::PyPlatform::STUBS),
        class::<training::PyTraining>(training::PyTraining::STUBS),
        class::<schedules::PySchedules>(schedules::PySchedules::STUBS),
        class::<registry::PyRegistry>(registry::PyRegistry::STUBS),
        class::<deployments::PyDeployments>(deployments::PyDeployments::STUBS),
        class::<insights::PyInsights>(insights::PyInsights::STUBS),
        ("", predict::STUBS),
    ];
    tables
        .iter()
        .flat_map(|(scope, stubs)| {
            stubs
                .iter()
                .map(move |s| (*scope, s.kind.as_str(), s.name, s.params, s.returns))
        })
        .collect()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    models::register(m)?;
    m.add_class::<training::PyTraining>()?;
    m.add_class::<schedules::PySchedules>()?;
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
    m.add_function(wrap_pyfunction!(_openapi_json, m)?)?;
    m.add_function(wrap_pyfunction!(_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(_stubs, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
