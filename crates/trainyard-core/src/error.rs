//! Errors of the domain. Every fallible core function returns one of these; backends map their
//! own failures into [`Error`] so callers (CLI, HTTP, Python) see one set of kinds.

use thiserror::Error;

use crate::status::InvalidTransition;

/// Bad input: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    pub field: String,
    pub reason: String,
}

impl ValidationError {
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The error of every trainyard operation.
#[derive(Debug, Error)]
pub enum Error {
    #[error("invalid input: {0}")]
    Validation(#[from] ValidationError),
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    /// A uniqueness rule or a stale write (optimistic concurrency).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    #[error("metrics: {0}")]
    Metrics(#[from] crate::metrics::MetricsError),
    /// The store failed (IO, SQL, corrupt row).
    #[error("storage: {0}")]
    Storage(String),
    /// An executor, registry, deployer or scheduler backend failed.
    #[error("backend: {0}")]
    Backend(String),
}

impl Error {
    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        Error::NotFound {
            entity,
            id: id.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
