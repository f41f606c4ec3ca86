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

/// A JSON body read with the path of the first field that does not fit (`training_params.epochs`).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
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
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0")
            || (req.headers().get(header::CONTENT_TYPE).is_none()
                && req.headers().get(header::CONTENT_LENGTH).is_none()
                && req.headers().get(header::TRANSFER_ENCODING).is_none());
        if empty {
            return Ok(ApiJsonOrDefault(T::default()));
        }
        ApiJson::<T>::from_request(req, state)
            .await
            .map(|ApiJson(v)| ApiJsonOrDefault(v))
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
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::InvalidBody,
        format!("{at}{inner}"),
    )
    .with_field(field)
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
