//! Typed errors of the model server. Each names what is missing or wrong, so the deployer and
//! the CLI can show it as it is.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServeError {
    /// Neither a TensorFlow package dir nor a Python that can find one.
    #[error(
        "TensorFlow C library not found: {reason}; set TRAINYARD_TF_LIB_DIR (or --tf-lib-dir) \
         to the tensorflow package dir of a pip TensorFlow, or TRAINYARD_PYTHON (or --python) \
         to a Python that has tensorflow installed"
    )]
    TfNotFound { reason: String },
    #[error("TensorFlow C library at {path} could not be loaded: {reason}")]
    TfLoad { path: PathBuf, reason: String },
    #[error("cannot prepare the TensorFlow library shim in {dir}: {source}")]
    Shim {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The model dir has no SavedModel, neither itself nor in a numeric version folder.
    #[error(
        "no SavedModel under {dir}: expected {dir}/saved_model.pb or a numeric version folder \
         holding saved_model.pb"
    )]
    NoSavedModel { dir: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The model uses ScaNN ops and scann's op library is not where the TF package says.
    #[error(
        "the model needs ScaNN's TensorFlow ops (Scann>...) but {path} does not exist: install \
         scann (matching the TensorFlow minor version) next to tensorflow"
    )]
    ScannOpsMissing { path: PathBuf },
    #[error("TensorFlow failed to {what}: {message}")]
    Tf { what: String, message: String },
    #[error("the model has no `{0}` signature")]
    NoSignature(String),
    /// The serving contract (DESIGN: serving returns original product ids, bug 4).
    #[error("model refused: {0}")]
    Contract(String),
    /// A registered version whose files no longer match its MANIFEST.json.
    #[error(
        "refusing to serve {dir}: {files} does not match its MANIFEST.json (the registered \
         version was modified after registration)"
    )]
    ModelModified { dir: PathBuf, files: String },
    #[error("server: {0}")]
    Server(String),
}

/// The exit code of `trainyard-serve` (and of `inspect`) when what failed is this machine's
/// TensorFlow setup (no TensorFlow, a library that does not load, no ScaNN ops), not the model
/// or the arguments: the local deployer reports it as a setup (backend) failure, not as a model
/// that cannot be served. Other failures exit 1, bad arguments 2.
pub const EXIT_SETUP: u8 = 3;

impl ServeError {
    /// Whether this machine's TensorFlow setup is what failed (see [`EXIT_SETUP`]).
    pub fn is_setup(&self) -> bool {
        matches!(
            self,
            ServeError::TfNotFound { .. }
                | ServeError::TfLoad { .. }
                | ServeError::Shim { .. }
                | ServeError::ScannOpsMissing { .. }
        )
    }

    /// The process's exit code for this error: [`EXIT_SETUP`] for a setup failure, else 1.
    pub fn exit_code(&self) -> u8 {
        if self.is_setup() {
            EXIT_SETUP
        } else {
            1
        }
    }

    pub(crate) fn tf(what: impl Into<String>, e: tensorflow::Status) -> Self {
        ServeError::Tf {
            what: what.into(),
            message: e.to_string(),
        }
    }
}

impl From<ServeError> for trainyard_core::Error {
    fn from(e: ServeError) -> Self {
        match e {
            ServeError::Contract(_)
            | ServeError::NoSavedModel { .. }
            | ServeError::ModelModified { .. } => trainyard_core::Error::Validation(
                trainyard_core::ValidationError::field("model", e.to_string()),
            ),
            other => trainyard_core::Error::Backend(other.to_string()),
        }
    }
}

pub type Result<T, E = ServeError> = std::result::Result<T, E>;
