//! The exception hierarchy of the wheel, and the ONE place where Rust errors become Python
//! exceptions ([`PyTyError`] -> `PyErr`). Every other module returns `trainyard_core::Error`
//! (or a `PyErr` that Python itself raised) and lets `?` go through here. A leaf module.
//!
//! Each class also subclasses the builtin exception a Python caller would reach for, so
//! `except ValueError` or `except LookupError` catch what they mean:
//!
//! | class             | bases                               |
//! |-------------------|-------------------------------------|
//! | TrainyardError    | Exception                           |
//! | ValidationError   | TrainyardError, ValueError          |
//! | MetricsError      | ValidationError                     |
//! | NotFound          | TrainyardError, LookupError         |
//! | Conflict          | TrainyardError                      |
//! | InvalidTransition | TrainyardError                      |
//! | StorageError      | TrainyardError, OSError             |
//! | BackendError      | TrainyardError                      |
//!
//! NotFound is a LookupError, not a KeyError: KeyError's `str()` is the repr of its argument,
//! so every message would print quoted. Conflict, InvalidTransition and BackendError have no
//! builtin that means the same (a backend error may be a refused connection, a missing
//! executor or a timeout alike: the core error does not tell them apart).
//!
//! The `source()` chain of the Rust error becomes the exception's `__cause__` chain (each link
//! a plain `Exception` with that error's message).

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use trainyard_core::Error;

/// The classes, in creation order (a parent before its children).
#[derive(Clone, Copy)]
enum Class {
    Trainyard,
    Validation,
    Metrics,
    NotFound,
    Conflict,
    InvalidTransition,
    Storage,
    Backend,
}

/// (class, name, parent among ours, builtin base, docstring)
type ClassDef = (
    Class,
    &'static str,
    Option<Class>,
    Option<&'static str>,
    &'static str,
);

#[rustfmt::skip]
const CLASSES: [ClassDef; 8] = [
    (Class::Trainyard, "TrainyardError", None, None, "Base class of every error trainyard raises."),
    (Class::Validation, "ValidationError", Some(Class::Trainyard), Some("ValueError"), "Bad input; `field` names the input and `reason` says why."),
    (Class::Metrics, "MetricsError", Some(Class::Validation), None, "A training_metrics.json document of the wrong shape."),
    (Class::NotFound, "NotFound", Some(Class::Trainyard), Some("LookupError"), "No such entity; `entity` and `id` name it."),
    (Class::Conflict, "Conflict", Some(Class::Trainyard), None, "A uniqueness rule, a state that refuses the operation, or a concurrent write."),
    (Class::InvalidTransition, "InvalidTransition", Some(Class::Trainyard), None, "The run's status does not allow the event; `from_status` and `event` name them."),
    (Class::Storage, "StorageError", Some(Class::Trainyard), Some("OSError"), "The store (database, files) failed."),
    (Class::Backend, "BackendError", Some(Class::Trainyard), None, "A backend (pipeline executor, registry, deployer, scheduler) failed or is not configured."),
];

static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn build(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let builtins = py.import("builtins")?;
    let type_ = builtins.getattr("type")?;
    let mut made: Vec<Py<PyType>> = Vec::with_capacity(CLASSES.len());
    for (_, name, parent, builtin, doc) in CLASSES {
        let mut bases: Vec<Bound<'_, PyAny>> = Vec::new();
        match parent {
            Some(p) => bases.push(made[p as usize].bind(py).clone().into_any()),
            None => bases.push(py.get_type::<PyException>().into_any()),
        }
        if let Some(b) = builtin {
            bases.push(builtins.getattr(b)?);
        }
        let namespace = PyDict::new(py);
        namespace.set_item("__module__", "trainyard")?;
        namespace.set_item("__doc__", doc)?;
        let class = type_.call1((name, PyTuple::new(py, bases)?, namespace))?;
        made.push(class.cast_into::<PyType>()?.unbind());
    }
    Ok(made)
}

fn class(py: Python<'_>, which: Class) -> Bound<'_, PyType> {
    let all = TYPES.get_or_init(py, || {
        build(py).expect("cannot create the trainyard exception classes")
    });
    all[which as usize].bind(py).clone()
}

/// A trainyard error on its way to Python.
#[derive(Debug)]
pub struct PyTyError(pub Error);

impl From<Error> for PyTyError {
    fn from(e: Error) -> Self {
        PyTyError(e)
    }
}

impl From<PyTyError> for PyErr {
    fn from(PyTyError(e): PyTyError) -> PyErr {
        Python::attach(|py| exception(py, &e, std::error::Error::source(&e)))
    }
}

/// The exception of `e`, with `cause` and its own sources as the `__cause__` chain.
fn exception(
    py: Python<'_>,
    e: &Error,
    cause: Option<&(dyn std::error::Error + 'static)>,
) -> PyErr {
    // Attributes that let callers branch on more than the class.
    let mut attrs: Vec<(&'static str, String)> = Vec::new();
    let which = match e {
        Error::Validation(v) => {
            attrs.push(("field", v.field.clone()));
            attrs.push(("reason", v.reason.clone()));
            Class::Validation
        }
        Error::Metrics(m) => {
            attrs.push(("field", "training_metrics".into()));
            attrs.push(("reason", m.to_string()));
            Class::Metrics
        }
        Error::NotFound { entity, id } => {
            attrs.push(("entity", entity.to_string()));
            attrs.push(("id", id.clone()));
            Class::NotFound
        }
        Error::Conflict(_) => Class::Conflict,
        Error::InvalidTransition(t) => {
            attrs.push(("from_status", t.from.as_str().into()));
            attrs.push(("event", t.event.name().into()));
            Class::InvalidTransition
        }
        Error::Storage(_) => Class::Storage,
        Error::Backend(_) => Class::Backend,
    };
    let err = PyErr::from_type(class(py, which), e.to_string());
    let value = err.value(py);
    for (k, v) in attrs {
        // Setting an attribute on a fresh exception instance cannot fail.
        let _ = value.setattr(k, v);
    }
    err.set_cause(py, cause.map(|c| chain(py, c)));
    err
}

/// `source` and the errors below it, as linked Python exceptions.
fn chain(py: Python<'_>, source: &(dyn std::error::Error + 'static)) -> PyErr {
    let err = PyException::new_err(source.to_string());
    err.set_cause(py, source.source().map(|next| chain(py, next)));
    err
}

/// Maps a core error into the Python exception (for callers holding a bare `Error`).
pub fn to_py_err(e: Error) -> PyErr {
    PyTyError(e).into()
}

/// Maps a core error made from another error (`cause`, e.g. a codegen error), whose chain
/// becomes the exception's `__cause__`.
pub fn to_py_err_caused_by(e: Error, cause: &(dyn std::error::Error + 'static)) -> PyErr {
    Python::attach(|py| exception(py, &e, Some(cause)))
}

/// Bad input from Python, as a core validation error (mapped like every other error).
pub fn invalid(field: &str, reason: impl Into<String>) -> PyErr {
    to_py_err(Error::Validation(trainyard_core::ValidationError::field(
        field, reason,
    )))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for (which, name, ..) in CLASSES {
        m.add(name, class(py, which))?;
    }
    Ok(())
}
