//! The TF Serving REST surface (axum):
//!   POST /v1/models/{name}[/versions/{v} | /labels/{l}]:predict
//!   GET  /v1/models/{name}[/versions/{v} | /labels/{l}]            model status (health check)
//!   GET  /v1/models/{name}[/versions/{v} | /labels/{l}]/metadata   signature metadata
//!   GET  /monitoring/prometheus/metrics             Prometheus metrics (see metrics.rs)
//! Errors are `{"error": "..."}` with a 4xx for the client's mistakes.

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::json;

use crate::batcher::{BatchConfig, RowSlice};
use crate::conn::{serve_http, Limits};
use crate::error::{Result, ServeError};
use crate::metrics::Metrics;
use crate::model::Model;
use crate::request::{parse_predict_as, Format};
use crate::servable::{PredictError, Servable};
use crate::versions::{Models, VersionRequest};

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
    models: Arc<Models>,
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
    let servable = Arc::new(Servable::start(
        cfg.name.clone(),
        model,
        cfg.batch,
        Arc::new(Metrics::new()),
    ));
    serve_models(listener, Models::new(servable), cfg, shutdown).await
}

/// [`serve`] for model versions the caller shares (with the gRPC front end, the watcher).
pub(crate) async fn serve_models(
    listener: tokio::net::TcpListener,
    models: Arc<Models>,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let limits = cfg.limits.clone();
    let state = Arc::new(AppState { cfg, models });
    let app = router(state.clone());
    serve_http(listener, app, &limits, shutdown).await;
    // joins the batch threads (blocking) once every connection is done
    tokio::task::spawn_blocking(move || drop(state))
        .await
        .map_err(|e| ServeError::Server(format!("batch threads: {e}")))
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/models/{*rest}", any(models))
        .route(
            "/monitoring/prometheus/metrics",
            axum::routing::get(|State(st): State<Arc<AppState>>| async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    st.models.metrics().render(),
                )
            }),
        )
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

/// Which version a path names.
#[derive(Debug, PartialEq, Eq)]
enum Pick<'a> {
    Latest,
    Version(&'a str),
    Label(&'a str),
}

/// `name[/versions/v | /labels/l][/metadata | :predict]` -> (name, version, verb).
fn parse_path(rest: &str) -> Option<(&str, Pick<'_>, Verb)> {
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
        (None, _, _) => Pick::Latest,
        (Some("versions"), Some(v), None) if !v.is_empty() => Pick::Version(v),
        (Some("labels"), Some(l), None) if !l.is_empty() => Pick::Label(l),
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
    let want = match version {
        Pick::Latest => VersionRequest::Latest,
        Pick::Label(l) => VersionRequest::Label(l.to_string()),
        Pick::Version(v) => match v.parse::<u64>() {
            Ok(v) => VersionRequest::Specific(v),
            Err(_) => {
                return error(
                    StatusCode::NOT_FOUND,
                    format!("Servable not found for request: Specific({name}, {v})"),
                )
            }
        },
    };
    // status lists every version the server knows (loading, unloading, ended too)
    if verb == Verb::Status && method == Method::GET && name == st.models.name() {
        let states: Vec<_> = st
            .models
            .states()
            .into_iter()
            .filter(|(v, _)| match &want {
                VersionRequest::Latest => true,
                VersionRequest::Specific(w) => v == w,
                VersionRequest::Label(l) => st.models.label(l) == Some(*v),
            })
            .map(|(v, s)| {
                json!({
                    "version": v.to_string(),
                    "state": s.as_str(),
                    "status": {"error_code": "OK", "error_message": ""},
                })
            })
            .collect();
        if !states.is_empty() {
            return json_bytes(json!({ "model_version_status": states }).to_string());
        }
    }
    let servable = match st.models.resolve(name, &want) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::NOT_FOUND, e.to_string()),
    };
    match (verb, method) {
        (Verb::Status, Method::GET) => json_bytes(servable.status_json().to_string()),
        (Verb::Metadata, Method::GET) => json_bytes(servable.metadata_json().to_string()),
        (Verb::Predict, Method::POST) => predict(&st, &servable, req).await,
        (_, m) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{m} is not allowed here (GET status or metadata, POST :predict)"),
        ),
    }
}

async fn predict(st: &AppState, servable: &Servable, req: Request) -> Response {
    let started = std::time::Instant::now();
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
    // Counted as arriving only now that its body is read (a stalled body holds no batch).
    let arrival = servable.arrival();
    let parsed = parse_predict_as(&body, |sig| servable.inputs_of(sig));
    if let Ok(batch) = &parsed {
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
    }
    let format = parsed.as_ref().map(|b| b.format).unwrap_or(Format::Rows);
    match servable.predict("rest", started, parsed, arrival).await {
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
                    // which model version answered (TF Serving's REST answer does not say)
                    r.headers_mut().insert(
                        "x-trainyard-model-version",
                        header::HeaderValue::from(servable.version()),
                    );
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
        Err(PredictError::Invalid(e)) => error(StatusCode::BAD_REQUEST, e),
        Err(PredictError::Internal(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
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
        assert_eq!(parse_path("m"), Some(("m", Pick::Latest, Verb::Status)));
        assert_eq!(
            parse_path("m:predict"),
            Some(("m", Pick::Latest, Verb::Predict))
        );
        assert_eq!(
            parse_path("m/versions/12:predict"),
            Some(("m", Pick::Version("12"), Verb::Predict))
        );
        assert_eq!(
            parse_path("m/metadata"),
            Some(("m", Pick::Latest, Verb::Metadata))
        );
        assert_eq!(
            parse_path("m/versions/3/metadata"),
            Some(("m", Pick::Version("3"), Verb::Metadata))
        );
        assert_eq!(
            parse_path("m/labels/stable:predict"),
            Some(("m", Pick::Label("stable"), Verb::Predict))
        );
        assert_eq!(parse_path("m:classify"), None);
        assert_eq!(parse_path("m/labels"), None);
        assert_eq!(parse_path("m/tags/x"), None);
        assert_eq!(parse_path(":predict"), None);
    }
}
