//! `trainyard.predict`: the client of an endpoint's TF Serving REST API.
//!
//! In Rust (reqwest) rather than Python's urllib because it then behaves like every other call
//! of the wheel: the awaitable runs on the shared runtime (no thread per request, the event
//! loop never blocks), the blocking form releases the GIL, and HTTP failures become domain
//! errors mapped to Python in errors.rs like all the others. reqwest is already linked in (the
//! GCP backends use it), so the wheel grows by nothing.

use std::time::Duration;

use pyo3::prelude::*;
use serde_json::{json, Value};
use trainyard_core::{Error, Result, ValidationError};

use crate::convert::{py_to_json, Json};
use crate::errors::invalid;

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::Validation(ValidationError::field(field, reason))
}

/// The predict URL and body, checked before anything is sent.
fn request(
    endpoint_url: &str,
    instances: &Bound<'_, PyAny>,
    model_name: &str,
    timeout: f64,
) -> PyResult<(String, Value, Duration)> {
    let base = endpoint_url.trim().trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) || base.contains('?') {
        return Err(invalid(
            "endpoint_url",
            format!("{endpoint_url:?} is not an http(s) base URL like http://127.0.0.1:8501"),
        ));
    }
    let valid_name = !model_name.is_empty()
        && model_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid_name {
        return Err(invalid(
            "model_name",
            format!("{model_name:?} must be letters, digits, '-', '_' or '.'"),
        ));
    }
    let instances = match py_to_json(instances)? {
        Value::Array(items) if !items.is_empty() => items,
        Value::Array(_) => return Err(invalid("instances", "must not be empty")),
        _ => {
            return Err(invalid(
                "instances",
                "must be a list of instances (dicts of feature values)",
            ))
        }
    };
    if !(timeout.is_finite() && timeout > 0.0 && timeout <= 3600.0) {
        return Err(invalid("timeout", "must be between 0 and 3600 seconds"));
    }
    Ok((
        format!("{base}/v1/models/{model_name}:predict"),
        json!({ "instances": instances }),
        Duration::from_secs_f64(timeout),
    ))
}

/// POSTs the body; 4xx is the caller's mistake (ValidationError with the server's message),
/// anything else that is not a 200 with `predictions` is a BackendError.
async fn post(url: String, body: Value, timeout: Duration) -> Result<Json> {
    // A client per call: nothing pooled survives into a forked child.
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| Error::Backend(format!("cannot build an HTTP client: {e}")))?;
    let response = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(|e| Error::Backend(format!("POST {url}: {e}")))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| Error::Backend(format!("POST {url}: reading the answer: {e}")))?;
    let answer: Option<Value> = serde_json::from_str(&text).ok();
    // TF Serving's errors are {"error": "..."}; anything else is shown as it came.
    let message = || match answer.as_ref().and_then(|a| a.get("error")) {
        Some(Value::String(s)) => s.clone(),
        _ => text.chars().take(500).collect(),
    };
    if status.is_client_error() {
        return Err(bad(
            "instances",
            format!("{url} answered {status}: {}", message()),
        ));
    }
    if !status.is_success() {
        return Err(Error::Backend(format!(
            "{url} answered {status}: {}",
            message()
        )));
    }
    match answer {
        Some(Value::Object(mut map)) if map.contains_key("predictions") => {
            Ok(Json(map.remove("predictions").unwrap_or(Value::Null)))
        }
        _ => Err(Error::Backend(format!(
            "{url} answered {status} without \"predictions\": {}",
            text.chars().take(500).collect::<String>()
        ))),
    }
}

function_twins! {
    /// Sends `instances` (a list of dicts of feature values) to an endpoint's
    /// `{endpoint_url}/v1/models/{model_name}:predict` and returns its `predictions`.
    #[pyo3(signature = (endpoint_url, instances, model_name="recommender", *, timeout=60.0))]
    fn predict(
        endpoint_url: &str,
        instances: &Bound<'_, PyAny>,
        model_name: &str,
        timeout: f64,
    ) -> Json
        as stub(
            "endpoint_url: str, \
            instances: Sequence[_Input], \
            model_name: str = \"recommender\", \
            *, \
            timeout: float = 60.0"
                -> "builtins.list[Any]"
        )
    {
        let (url, body, timeout) = request(endpoint_url, instances, model_name, timeout)?;
        Box::pin(post(url, body, timeout))
    }
}
