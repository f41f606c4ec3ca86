//! Errors of the Google Cloud backends, and their mapping onto [`trainyard_core::Error`] at the
//! port boundary.

use std::time::Duration;

use thiserror::Error;

/// What went wrong talking to Google Cloud.
#[derive(Debug, Error)]
pub enum GcpError {
    /// The API answered with an error status. `status` is Google's canonical code name
    /// (`NOT_FOUND`, `ALREADY_EXISTS`, `RESOURCE_EXHAUSTED`, ...) when the body carried one.
    #[error("{method} {url}: HTTP {http_status}{}: {message}", status.as_deref().map(|s| format!(" {s}")).unwrap_or_default())]
    Api {
        method: String,
        /// The request URL without its query string.
        url: String,
        http_status: u16,
        status: Option<String>,
        message: String,
    },
    /// The request never got an HTTP answer (connection refused, reset, timeout).
    #[error("{method} {url}: {message}")]
    Transport {
        method: String,
        url: String,
        message: String,
    },
    /// Retryable failures went on past the retry budget; `last` is the final failure.
    #[error("gave up after {attempts} attempts in {:.1}s: {last}", elapsed.as_secs_f64())]
    RetriesExhausted {
        attempts: u32,
        elapsed: Duration,
        last: Box<GcpError>,
    },
    /// A long-running operation finished with an error (google.rpc.Status).
    #[error("operation {operation} failed: {} ({code}): {message}", rpc_code_name(*code))]
    Operation {
        operation: String,
        code: i32,
        message: String,
    },
    /// A long-running operation did not finish in time.
    #[error("operation {operation} not done after {:.0}s", waited.as_secs_f64())]
    OperationTimeout { operation: String, waited: Duration },
    /// Getting an access token failed. Never carries the token or the key.
    #[error("auth: {0}")]
    Auth(String),
    /// A response did not have the shape the API documents.
    #[error("unexpected response from {context}: {message}")]
    Decode { context: String, message: String },
    /// Configuration is missing or wrong.
    #[error("gcp config: {0}")]
    Config(String),
    /// The caller asked for something impossible (e.g. no pushed model to deploy).
    #[error("{0}")]
    Invalid(String),
    /// Every GPU config of the fallback ladder was refused for quota or capacity; nothing was
    /// submitted.
    #[error(
        "no GPU config of the fallback ladder was accepted: {}",
        crate::gpu_fallback::describe(attempts)
    )]
    GpuFallbackExhausted {
        attempts: Vec<trainyard_core::config::GpuAttempt>,
    },
}

pub type GcpResult<T> = std::result::Result<T, GcpError>;

impl GcpError {
    pub(crate) fn decode(context: impl Into<String>, message: impl ToString) -> Self {
        GcpError::Decode {
            context: context.into(),
            message: message.to_string(),
        }
    }

    /// The error behind retry exhaustion, or this one.
    pub fn root(&self) -> &GcpError {
        match self {
            GcpError::RetriesExhausted { last, .. } => last.root(),
            e => e,
        }
    }

    /// HTTP status of an API error (looking through retry exhaustion).
    pub fn http_status(&self) -> Option<u16> {
        match self.root() {
            GcpError::Api { http_status, .. } => Some(*http_status),
            _ => None,
        }
    }

    /// Google's canonical status name of an API or operation error.
    pub fn status(&self) -> Option<&str> {
        match self.root() {
            GcpError::Api { status, .. } => status.as_deref(),
            GcpError::Operation { code, .. } => Some(rpc_code_name(*code)),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.http_status() == Some(404) || self.status() == Some("NOT_FOUND")
    }

    pub fn is_already_exists(&self) -> bool {
        self.status() == Some("ALREADY_EXISTS")
            || (self.http_status() == Some(409) && self.status() != Some("ABORTED"))
    }
}

/// Name of a google.rpc.Code.
pub fn rpc_code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN_CODE",
    }
}

impl From<GcpError> for trainyard_core::Error {
    fn from(e: GcpError) -> Self {
        if e.is_not_found() {
            return trainyard_core::Error::NotFound {
                entity: "google cloud resource",
                id: e.to_string(),
            };
        }
        if e.is_already_exists() || e.status() == Some("ABORTED") {
            return trainyard_core::Error::Conflict(e.to_string());
        }
        match e {
            GcpError::Invalid(reason) => trainyard_core::Error::Validation(
                trainyard_core::ValidationError::field("gcp", reason),
            ),
            other => trainyard_core::Error::Backend(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(http_status: u16, status: Option<&str>) -> GcpError {
        GcpError::Api {
            method: "GET".into(),
            url: "https://x/v1/a".into(),
            http_status,
            status: status.map(str::to_string),
            message: "boom".into(),
        }
    }

    #[test]
    fn maps_to_core_kinds() {
        assert!(matches!(
            trainyard_core::Error::from(api(404, Some("NOT_FOUND"))),
            trainyard_core::Error::NotFound { .. }
        ));
        assert!(matches!(
            trainyard_core::Error::from(api(409, Some("ALREADY_EXISTS"))),
            trainyard_core::Error::Conflict(_)
        ));
        let e = trainyard_core::Error::from(api(403, Some("PERMISSION_DENIED")));
        match e {
            trainyard_core::Error::Backend(m) => {
                assert!(m.contains("HTTP 403 PERMISSION_DENIED: boom"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let wrapped = GcpError::RetriesExhausted {
            attempts: 3,
            elapsed: Duration::from_secs(1),
            last: Box::new(api(404, None)),
        };
        assert!(wrapped.is_not_found());
        let op = GcpError::Operation {
            operation: "o".into(),
            code: 6,
            message: "dup".into(),
        };
        assert_eq!(op.status(), Some("ALREADY_EXISTS"));
        assert!(op.to_string().contains("ALREADY_EXISTS (6): dup"));
    }
}
