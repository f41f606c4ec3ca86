//! The one place where errors become HTTP responses, and the extractors that turn malformed
//! requests into such errors (never axum's plain-text rejections, never a 5xx).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use trainyard_core::Error;
use utoipa::ToSchema;

/// What went wrong, as clients branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A field's value breaks a rule (400).
    Validation,
    /// The body is not JSON (400) or a query/path parameter cannot be read (400).
    BadRequest,
    /// Well-formed JSON of the wrong shape: a missing field, a wrong type (422).
    InvalidBody,
    UnsupportedMediaType,
    /// No API token, or a wrong one (401).
    Unauthorized,
    /// The request's Host is not allowed (403).
    Forbidden,
    NotFound,
    /// A uniqueness rule, a stale write, or an operation the current state refuses (409).
    Conflict,
    /// The run's status does not allow the event (409).
    InvalidTransition,
    /// Metrics a pipeline reported cannot be read (400).
    Metrics,
    Storage,
    Backend,
}

/// The error body: the spec's `{"success": false, "error": "..."}`, plus the kind and, for bad
/// input, the field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    /// Human-readable message.
    pub error: String,
    pub kind: ErrorKind,
    /// The offending field (dotted path into the body, or the parameter name), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                success: false,
                error: message.into(),
                kind,
                field: None,
            },
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.body.field = (!field.is_empty() && field != ".").then_some(field);
        self
    }

    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorKind::BadRequest, message).with_field(field)
    }
}

/// The status and kind of each domain error.
pub fn status_of(e: &Error) -> (StatusCode, ErrorKind) {
    match e {
        Error::Validation(_) => (StatusCode::BAD_REQUEST, ErrorKind::Validation),
        Error::Metrics(_) => (StatusCode::BAD_REQUEST, ErrorKind::Metrics),
        Error::NotFound { .. } => (StatusCode::NOT_FOUND, ErrorKind::NotFound),
        Error::Conflict(_) => (StatusCode::CONFLICT, ErrorKind::Conflict),
        Error::InvalidTransition(_) => (StatusCode::CONFLICT, ErrorKind::InvalidTransition),
        Error::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Storage),
        // A backend (executor, registry, deployer, scheduler) failed: we are its gateway.
        Error::Backend(_) => (StatusCode::BAD_GATEWAY, ErrorKind::Backend),
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, kind) = status_of(&e);
        if status.is_server_error() {
            tracing::error!(error = %e, "api request failed");
        }
        let field = match &e {
            Error::Validation(v) => Some(v.field.clone()),
            _ => None,
        };
        let err = ApiError::new(status, kind, e.to_string());
        match field {
            Some(f) => err.with_field(f),
            None => err,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// A content type, when given, must be JSON.
fn check_json_content_type(req: &Request) -> Result<(), ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if !(essence == "application/json" || essence.ends_with("+json")) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorKind::UnsupportedMediaType,
                format!("expected a JSON body (Content-Type: application/json), got {ct:?}"),
            ));
        }
    }
    Ok(())
}

/// A JSON body read with the path of the first field that does not fit (`training_params.epochs`).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        check_json_content_type(&req)?;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), ErrorKind::BadRequest, e.body_text()))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON body that may be left out: an empty body reads as `T::default()`.
pub struct ApiJsonOrDefault<T>(pub T);

impl<S, T> FromRequest<S> for ApiJsonOrDefault<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // An empty body (none sent, or `Content-Type: application/json` with nothing, as the
        // management layer requires of bodiless calls) reads as the defaults.
        check_json_content_type(&req)?;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), ErrorKind::BadRequest, e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(ApiJsonOrDefault(T::default()));
        }
        parse_json(&bytes).map(ApiJsonOrDefault)
    }
}

/// Parses a whole JSON document into `T`: bad syntax is 400, a bad shape 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(shape_error)?;
    // Trailing characters after the document.
    de.end().map(|()| value).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::BadRequest,
            format!("the body is not valid JSON: {e}"),
        )
    })
}

/// Reads `T` out of a parsed body. Types with `#[serde(flatten)]` parts lose the path into
/// those parts, so handlers read such parts on their own first (the field is then named).
pub fn from_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(shape_error)
}

/// Bodies of this API are JSON objects.
pub fn require_object(value: &serde_json::Value) -> Result<(), ApiError> {
    if value.is_object() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::InvalidBody,
            "the body must be a JSON object",
        ))
    }
}

fn shape_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let field = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::BadRequest,
            format!("the body is not valid JSON: {inner}"),
        );
    }
    let at = if field == "." {
        String::new()
    } else {
        format!("{field}: ")
    };
    let message = trainyard_core::strict::explain(&inner.to_string());
    // serde_path_to_error's path of an unknown field ends with the field itself.
    let field = match unknown_field(&message) {
        Some(name) if field == "." => name.to_string(),
        _ => field,
    };
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::InvalidBody,
        format!("{at}{message}"),
    )
    .with_field(field)
}

/// The name in "unknown field `NAME`, ...".
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// Refuses a body key outside `known` (bodies made of flattened parts, whose serde types
/// cannot deny unknown fields): 422 naming the key and its nearest valid name.
pub fn refuse_unknown_keys(body: &serde_json::Value, known: &[&str]) -> Result<(), ApiError> {
    trainyard_core::strict::check_keys(body, known, "").map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::InvalidBody,
            e.reason,
        )
        .with_field(e.field)
    })
}

/// `body` without the keys in `drop` (to read a flattened part on its own, strictly).
pub fn without_keys(body: &serde_json::Value, drop: &[&str]) -> serde_json::Value {
    match body {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.iter()
                .filter(|(k, _)| !drop.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Query parameters; a bad one is a 400.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::bad_request("", e.body_text()))
    }
}

/// Path parameters (ids); a bad one is a 400.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| ApiError::bad_request("id", e.body_text()))
    }
}
