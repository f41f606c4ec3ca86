//! google.longrunning.Operation: waiting for model uploads and Cloud Run changes.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::config::OperationSettings;
use crate::error::{GcpError, GcpResult};
use crate::http::{from_value, GcpHttp};

/// google.rpc.Status
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RpcStatus {
    pub code: i32,
    pub message: String,
}

/// google.longrunning.Operation
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Operation {
    pub name: String,
    pub done: bool,
    pub error: Option<RpcStatus>,
    pub response: Option<Value>,
    pub metadata: Option<Value>,
}

impl Operation {
    /// The response of a finished operation, or its error.
    pub fn into_result(self) -> GcpResult<Value> {
        if let Some(e) = self.error {
            return Err(GcpError::Operation {
                operation: self.name,
                code: e.code,
                message: e.message,
            });
        }
        Ok(self.response.unwrap_or(Value::Null))
    }
}

/// Polls `{base}/{version}/{operation.name}` until done, backing off from
/// `poll_initial_ms` to `poll_max_ms`, for at most `timeout_secs`.
pub async fn wait(
    http: &GcpHttp,
    base_url: &str,
    version: &str,
    operation: Operation,
    settings: &OperationSettings,
) -> GcpResult<Value> {
    if operation.done {
        return operation.into_result();
    }
    if operation.name.is_empty() {
        return Err(GcpError::decode(
            "long-running operation",
            "not done and has no name to poll",
        ));
    }
    let started = Instant::now();
    let timeout = Duration::from_secs(settings.timeout_secs);
    let mut delay = Duration::from_millis(settings.poll_initial_ms.max(1));
    let max = Duration::from_millis(settings.poll_max_ms.max(settings.poll_initial_ms));
    let url = format!("{base_url}/{version}/{}", operation.name);
    loop {
        if started.elapsed() + delay > timeout {
            return Err(GcpError::OperationTimeout {
                operation: operation.name,
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(delay).await;
        let op: Operation = from_value(&url, http.get_json(&url, &[]).await?)?;
        tracing::debug!(operation = %op.name, done = op.done, "gcp operation polled");
        if op.done {
            return op.into_result();
        }
        delay = (delay * 2).min(max);
    }
}
