//! The TF Serving REST surface (axum):
//!   POST /v1/models/{name}[/versions/{v}]:predict
//!   GET  /v1/models/{name}[/versions/{v}]            model status (the health check)
//!   GET  /v1/models/{name}[/versions/{v}]/metadata   signature metadata
//! Errors are `{"error": "..."}` with a 4xx for the client's mistakes.

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::json;

use crate::batcher::{BatchConfig, Batcher, RowSlice};
use crate::conn::{serve_http, Limits};
use crate::error::{Result, ServeError};
use crate::model::Model;
use crate::request::{parse_predict, Format};
use crate::signature::{ModelSignature, TensorSpec, SERVING_DEFAULT};

/// Default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The model name in the URL path.
    pub name: String,
    pub batch: BatchConfig,
    pub max_body_bytes: usize,
    /// Timeouts and caps on connections, requests and answers.
    pub limits: Limits,
}

impl ServerConfig {
    pub fn new(name: impl Into<String>) -> Self {
        ServerConfig {
            name: name.into(),
            batch: BatchConfig::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            limits: Limits::default(),
        }
    }
}

struct AppState {
    cfg: ServerConfig,
    signature: ModelSignature,
    inputs: Vec<(String, TensorSpec)>,
    batcher: Batcher,
    metadata: Bytes,
    status: Bytes,
}

/// Serves `model` on `listener` until `shutdown` resolves, then stops accepting, finishes the
/// requests in flight and the batches queued (closing connections still open after
/// `cfg.limits.shutdown_timeout`), and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    model: Arc<Model>,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let limits = cfg.limits.clone();
    let state = Arc::new(app_state(model, cfg));
    let app = router(state.clone());
    serve_http(listener, app, &limits, shutdown).await;
    // joins the batch threads (blocking) once every connection is done
    tokio::task::spawn_blocking(move || drop(state))
        .await
        .map_err(|e| ServeError::Server(format!("batch threads: {e}")))
}

fn app_state(model: Arc<Model>, cfg: ServerConfig) -> AppState {
    let signature = model.signature().clone();
    let inputs = model
        .input_specs()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .collect();
    let version = signature.version.to_string();
    let status = json!({"model_version_status": [{
        "version": version,
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }]});
    let tensor = |specs: &std::collections::BTreeMap<String, TensorSpec>| {
        specs
            .iter()
            .map(|(n, s)| {
                let shape = match &s.shape {
                    None => json!({"dim": [], "unknown_rank": true}),
                    Some(d) => json!({
                        "dim": d.iter().map(|x| json!({"size": x.to_string(), "name": ""})).collect::<Vec<_>>(),
                        "unknown_rank": false,
                    }),
                };
                (n.clone(), json!({"dtype": s.tf_dtype, "tensor_shape": shape, "name": s.tensor}))
            })
            .collect::<serde_json::Map<_, _>>()
    };
    let metadata = json!({
        "model_spec": {"name": cfg.name, "signature_name": "", "version": version},
        "metadata": {"signature_def": {"signature_def": {SERVING_DEFAULT: {
            "inputs": tensor(&signature.inputs),
            "outputs": tensor(&signature.outputs),
            "method_name": signature.method_name,
        }}}},
    });
    let batcher = Batcher::start(model, cfg.batch);
    AppState {
        cfg,
        signature,
        inputs,
        batcher,
        metadata: Bytes::from(metadata.to_string()),
        status: Bytes::from(status.to_string()),
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/models/{*rest}", any(models))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({ "error": message.into() }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A refusal by one of the server's limits: `{"error", "limit", "limit_value"}`, where `limit`
/// is the flag that sets it.
fn limit_error(status: StatusCode, message: String, limit: &str, value: u64) -> Response {
    let body = json!({ "error": message, "limit": limit, "limit_value": value }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json_bytes(body: impl Into<Body>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.into(),
    )
        .into_response()
}

#[derive(Debug, PartialEq, Eq)]
enum Verb {
    Status,
    Metadata,
    Predict,
}

/// `name[/versions/v][/metadata | :predict]` -> (name, version, verb).
fn parse_path(rest: &str) -> Option<(&str, Option<&str>, Verb)> {
    let (path, verb) = match rest.rsplit_once(':') {
        Some((p, "predict")) => (p, Verb::Predict),
        Some(_) => return None,
        None => match rest.strip_suffix("/metadata") {
            Some(p) => (p, Verb::Metadata),
            None => (rest, Verb::Status),
        },
    };
    let mut parts = path.split('/');
    let name = parts.next().filter(|n| !n.is_empty())?;
    let version = match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => None,
        (Some("versions"), Some(v), None) if !v.is_empty() => Some(v),
        _ => return None,
    };
    Some((name, version, verb))
}

async fn models(
    State(st): State<Arc<AppState>>,
    Path(rest): Path<String>,
    method: Method,
    req: Request,
) -> Response {
    let Some((name, version, verb)) = parse_path(&rest) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no such endpoint: /v1/models/{rest}"),
        );
    };
    if name != st.cfg.name {
        return error(
            StatusCode::NOT_FOUND,
            format!("Servable not found for request: Latest({name})"),
        );
    }
    if let Some(v) = version {
        if v != st.signature.version.to_string() {
            return error(
                StatusCode::NOT_FOUND,
                format!("Servable not found for request: Specific({name}, {v})"),
            );
        }
    }
    match (verb, method) {
        (Verb::Status, Method::GET) => json_bytes(st.status.clone()),
        (Verb::Metadata, Method::GET) => json_bytes(st.metadata.clone()),
        (Verb::Predict, Method::POST) => predict(&st, req).await,
        (_, m) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{m} is not allowed here (GET status or metadata, POST :predict)"),
        ),
    }
}

async fn predict(st: &AppState, req: Request) -> Response {
    let limit = st.cfg.max_body_bytes;
    let limits = &st.cfg.limits;
    let too_large = || {
        limit_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: larger than the limit of {limit} bytes (--max-body-bytes)"),
            "max_body_bytes",
            limit as u64,
        )
    };
    // refuse a declared oversize body before reading any of it
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    // The whole body within the body timeout: a client that stalls is answered 408 and its
    // connection closed. It is not counted as arriving by the batcher while it is read, so it
    // never holds a batch back.
    let read = Limited::new(req.into_body(), limit).collect();
    let body = match tokio::time::timeout(limits.body_timeout, read).await {
        Err(_) => {
            let ms = limits.body_timeout.as_millis() as u64;
            let mut r = limit_error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "body: not received within the body timeout of {ms} ms (--body-timeout-secs)"
                ),
                "body_timeout_ms",
                ms,
            );
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return r;
        }
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    let arrival = st.batcher.arrival();
    let inputs: Vec<(&str, &TensorSpec)> = st.inputs.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let batch = match parse_predict(&body, &inputs) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.0),
    };
    if batch.rows > limits.max_instances {
        return limit_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "instances: {} in one request, more than the limit of {} (--max-instances); split the request",
                batch.rows, limits.max_instances
            ),
            "max_instances",
            limits.max_instances as u64,
        );
    }
    let format = batch.format;
    match st.batcher.submit(batch, arrival).await {
        Ok(slice) => {
            let max = limits.max_response_bytes;
            let mut out = CappedWriter {
                buf: Vec::new(),
                cap: max,
            };
            let written = match format {
                Format::Rows => serde_json::to_writer(&mut out, &Predictions(&slice)),
                Format::Columns => serde_json::to_writer(&mut out, &Outputs(&slice)),
            };
            match written {
                Ok(()) => {
                    // which session run answered: "rows/requests" (shows the batcher at work)
                    let run = format!(
                        "{}/{}",
                        slice.output.batch_rows, slice.output.batch_requests
                    );
                    let mut r = json_bytes(out.buf);
                    if let Ok(v) = header::HeaderValue::from_str(&run) {
                        r.headers_mut().insert("x-trainyard-batch", v);
                    }
                    r
                }
                Err(e) if e.is_io() => limit_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "response: the answer to {} instances is larger than the limit of {max} bytes (--max-response-bytes); send fewer instances per request",
                        slice.rows
                    ),
                    "max_response_bytes",
                    max as u64,
                ),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("encode: {e}")),
            }
        }
        Err(e) if e.contains("INVALID_ARGUMENT") || e.contains("InvalidArgument") => {
            error(StatusCode::BAD_REQUEST, e)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// A `Vec` that refuses to grow past `cap` bytes (an encoding error stops the serializer).
struct CappedWriter {
    buf: Vec<u8>,
    cap: usize,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.cap {
            return Err(std::io::Error::other("response size limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `{"predictions": [{output: row value, ...}, ...]}` straight from the run's tensors.
struct Predictions<'a>(&'a RowSlice);

impl Serialize for Predictions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        struct Rows<'a>(&'a RowSlice);
        impl Serialize for Rows<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.rows))?;
                for i in 0..self.0.rows {
                    seq.serialize_element(&Row(self.0, self.0.start + i))?;
                }
                seq.end()
            }
        }
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("predictions", &Rows(self.0))?;
        m.end()
    }
}

struct Row<'a>(&'a RowSlice, usize);

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let out = &self.0.output;
        let mut m = s.serialize_map(Some(out.names.len()))?;
        for (name, col) in out.names.iter().zip(&out.columns) {
            m.serialize_entry(
                name,
                &Cell {
                    col,
                    start: self.1 * col.row_len(),
                    dims: &col.dims[1..],
                },
            )?;
        }
        m.end()
    }
}

struct Cell<'a> {
    col: &'a crate::tensor::Column,
    start: usize,
    dims: &'a [u64],
}

impl Serialize for Cell<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.col.values.serialize_nested(self.start, self.dims, s)
    }
}

/// Columnar answer: `{"outputs": {output: [row values]}}`.
struct Outputs<'a>(&'a RowSlice);

impl Serialize for Outputs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        struct Cols<'a>(&'a RowSlice);
        impl Serialize for Cols<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                let out = &self.0.output;
                let mut m = s.serialize_map(Some(out.names.len()))?;
                for (name, col) in out.names.iter().zip(&out.columns) {
                    let mut dims = col.dims.clone();
                    dims[0] = self.0.rows as u64;
                    m.serialize_entry(
                        name,
                        &Cell {
                            col,
                            start: self.0.start * col.row_len(),
                            dims: &dims,
                        },
                    )?;
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("outputs", &Cols(self.0))?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_name_version_and_verb() {
        assert_eq!(parse_path("m"), Some(("m", None, Verb::Status)));
        assert_eq!(parse_path("m:predict"), Some(("m", None, Verb::Predict)));
        assert_eq!(
            parse_path("m/versions/12:predict"),
            Some(("m", Some("12"), Verb::Predict))
        );
        assert_eq!(parse_path("m/metadata"), Some(("m", None, Verb::Metadata)));
        assert_eq!(
            parse_path("m/versions/3/metadata"),
            Some(("m", Some("3"), Verb::Metadata))
        );
        assert_eq!(parse_path("m:classify"), None);
        assert_eq!(parse_path("m/labels/x"), None);
        assert_eq!(parse_path(":predict"), None);
    }
}
