//! The exception hierarchy of the wheel, and the ONE place where Rust errors become Python
//! exceptions ([`PyTyError`] -> `PyErr`). Every other module returns `trainyard_core::Error`
//! (or a `PyErr` that Python itself raised) and lets `?` go through here.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use trainyard_core::Error;

create_exception!(
    trainyard,
    TrainyardError,
    PyException,
    "Base class of every error trainyard raises."
);
create_exception!(
    trainyard,
    ValidationError,
    TrainyardError,
    "Bad input; `field` names the input and `reason` says why."
);
create_exception!(
    trainyard,
    MetricsError,
    ValidationError,
    "A training_metrics.json document of the wrong shape."
);
create_exception!(
    trainyard,
    NotFound,
    TrainyardError,
    "No such entity; `entity` and `id` name it."
);
create_exception!(
    trainyard,
    Conflict,
    TrainyardError,
    "A uniqueness rule, a state that refuses the operation, or a concurrent write."
);
create_exception!(
    trainyard,
    InvalidTransition,
    TrainyardError,
    "The run's status does not allow the event; `from_status` and `event` name them."
);
create_exception!(
    trainyard,
    StorageError,
    TrainyardError,
    "The store (database, files) failed."
);
create_exception!(
    trainyard,
    BackendError,
    TrainyardError,
    "A backend (pipeline executor, registry, deployer, scheduler) failed or is not configured."
);

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
        let message = e.to_string();
        // Attributes that let callers branch on more than the class.
        let mut attrs: Vec<(&'static str, Option<String>)> = Vec::new();
        let err = match &e {
            Error::Validation(v) => {
                attrs.push(("field", Some(v.field.clone())));
                attrs.push(("reason", Some(v.reason.clone())));
                ValidationError::new_err(message)
            }
            Error::Metrics(m) => {
                attrs.push(("field", Some("training_metrics".into())));
                attrs.push(("reason", Some(m.to_string())));
                MetricsError::new_err(message)
            }
            Error::NotFound { entity, id } => {
                attrs.push(("entity", Some(entity.to_string())));
                attrs.push(("id", Some(id.clone())));
                NotFound::new_err(message)
            }
            Error::Conflict(_) => Conflict::new_err(message),
            Error::InvalidTransition(t) => {
                attrs.push(("from_status", Some(t.from.as_str().into())));
                attrs.push(("event", Some(t.event.name().into())));
                InvalidTransition::new_err(message)
            }
            Error::Storage(_) => StorageError::new_err(message),
            Error::Backend(_) => BackendError::new_err(message),
        };
        if !attrs.is_empty() {
            Python::attach(|py| {
                let value = err.value(py);
                for (k, v) in attrs {
                    // Setting an attribute on a fresh exception instance cannot fail.
                    let _ = value.setattr(k, v);
                }
            });
        }
        err
    }
}

/// Maps a core error into the Python exception (for callers holding a bare `Error`).
pub fn to_py_err(e: Error) -> PyErr {
    PyTyError(e).into()
}

/// Bad input from Python, as a core validation error (mapped like every other error).
pub fn invalid(field: &str, reason: impl Into<String>) -> PyErr {
    to_py_err(Error::Validation(trainyard_core::ValidationError::field(
        field, reason,
    )))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("TrainyardError", py.get_type::<TrainyardError>())?;
    m.add("ValidationError", py.get_type::<ValidationError>())?;
    m.add("MetricsError", py.get_type::<MetricsError>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("Conflict", py.get_type::<Conflict>())?;
    m.add("InvalidTransition", py.get_type::<InvalidTransition>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("BackendError", py.get_type::<BackendError>())?;
    Ok(())
}
