//! The webhook router (feature `http`): the spec's schedule webhook, called by Cloud Scheduler
//! with a Google OIDC token, and the pipeline callback routes. Applications mount it into
//! their own axum app, or `trainyard serve-api` serves it.

pub mod api;
mod oidc;
pub mod security;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Timelike, Utc};
use serde::Deserialize;
use serde_json::json;
use trainyard_core::ports::{FireOutcome, PipelineEvent, ScheduleFirer};
use trainyard_core::stages::StageName;
use trainyard_core::Error;

pub use security::{check_bind, ApiSecurity, BindError};

pub use oidc::{AuthError, IdClaims, OidcConfig, OidcVerifier, GOOGLE_ISSUERS, GOOGLE_JWKS_URL};

use crate::Platform;

/// Header in which Cloud Scheduler sends the scheduled time of a delivery.
pub const SCHEDULE_TIME_HEADER: &str = "x-cloudscheduler-scheduletime";

/// How pipeline callbacks prove who they are.
#[derive(Clone)]
pub enum CallbackAuth {
    /// `Authorization: Bearer <secret>`.
    SharedSecret(String),
    /// A Google OIDC token, as for the schedule webhook.
    Oidc(Arc<OidcVerifier>),
}

/// Authentication of every webhook route.
#[derive(Clone)]
pub struct WebhookAuth {
    /// Verifies Cloud Scheduler's token on the schedule webhook.
    pub scheduler: Arc<OidcVerifier>,
    pub callbacks: CallbackAuth,
}

#[derive(Clone)]
struct AppState {
    platform: Platform,
    auth: WebhookAuth,
}

/// The routes:
/// `POST /api/training/schedules/{id}/webhook/` and
/// `POST /api/training-runs/{id}/webhook/{stage-complete,epoch-complete,failed,completed}/`.
pub fn webhook_router(platform: Platform, auth: WebhookAuth) -> Router {
    Router::new()
        .route(
            "/api/training/schedules/{id}/webhook/",
            post(schedule_webhook),
        )
        .route(
            "/api/training-runs/{id}/webhook/stage-complete/",
            post(stage_complete),
        )
        .route(
            "/api/training-runs/{id}/webhook/epoch-complete/",
            post(epoch_complete),
        )
        .route("/api/training-runs/{id}/webhook/failed/", post(failed))
        .route(
            "/api/training-runs/{id}/webhook/completed/",
            post(completed),
        )
        .with_state(AppState { platform, auth })
}

/// A JSON error response with the status its kind maps to.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"success": false, "error": self.1}))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        // One mapping of error kinds to statuses for every route (see api::status_of).
        ApiError(api::status_of(&e).0, e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        tracing::warn!(error = %e, "webhook authentication refused");
        ApiError(StatusCode::UNAUTHORIZED, e.to_string())
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Missing)
}

/// Compares without leaking, through timing, how much of the secret matched.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn check_callback(auth: &CallbackAuth, headers: &HeaderMap) -> Result<(), AuthError> {
    let token = bearer(headers)?;
    match auth {
        CallbackAuth::SharedSecret(secret) if same_secret(token, secret) => Ok(()),
        CallbackAuth::SharedSecret(_) => Err(AuthError::Secret),
        CallbackAuth::Oidc(v) => v.verify(token).await.map(|_| ()),
    }
}

/// The fire time of a delivery: Cloud Scheduler's header, else the current minute (so that
/// retries of one delivery share one key).
fn fire_time(headers: &HeaderMap, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    match headers.get(SCHEDULE_TIME_HEADER) {
        Some(v) => {
            let text = v.to_str().map_err(|_| {
                ApiError(StatusCode::BAD_REQUEST, "bad schedule time header".into())
            })?;
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    ApiError(
                        StatusCode::BAD_REQUEST,
                        format!("{SCHEDULE_TIME_HEADER}: {e}"),
                    )
                })
        }
        None => Ok(now
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(now)),
    }
}

async fn schedule_webhook(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    st.auth.scheduler.verify(bearer(&headers)?).await?;
    let at = fire_time(&headers, st.platform.clock().now())?;
    let outcome = st.platform.schedules().fire(id, at).await?;
    let run_id = match &outcome {
        FireOutcome::Created { run } | FireOutcome::AlreadyFired { run } => Some(run.id),
        FireOutcome::Skipped { .. } => None,
    };
    Ok(Json(
        json!({"success": true, "fire_at": at, "training_run_id": run_id, "result": outcome}),
    ))
}

async fn apply(
    st: &AppState,
    headers: &HeaderMap,
    id: i64,
    event: PipelineEvent,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_callback(&st.auth.callbacks, headers).await?;
    let run = st.platform.training().handle_event(id, &event).await?;
    Ok(Json(json!({
        "success": true,
        "training_run_id": run.id,
        "status": run.status,
        "current_stage": run.current_stage,
    })))
}

#[derive(Deserialize)]
struct StageBody {
    stage: StageName,
}

async fn stage_complete(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    api::error::ApiJson(b): api::error::ApiJson<StageBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    apply(
        &st,
        &headers,
        id,
        PipelineEvent::StageCompleted { stage: b.stage },
    )
    .await
}

#[derive(Deserialize)]
struct EpochBody {
    epoch: u32,
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
}

async fn epoch_complete(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    api::error::ApiJson(b): api::error::ApiJson<EpochBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    apply(
        &st,
        &headers,
        id,
        PipelineEvent::EpochCompleted {
            epoch: b.epoch,
            metrics: b.metrics,
        },
    )
    .await
}

#[derive(Deserialize)]
struct FailedBody {
    error: String,
    #[serde(default)]
    stage: Option<StageName>,
}

async fn failed(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    api::error::ApiJson(b): api::error::ApiJson<FailedBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    apply(
        &st,
        &headers,
        id,
        PipelineEvent::Failed {
            error: b.error,
            stage: b.stage,
        },
    )
    .await
}

#[derive(Deserialize)]
struct CompletedBody {
    training_metrics: serde_json::Value,
    blessed: bool,
    #[serde(default)]
    artifacts: BTreeMap<String, String>,
}

async fn completed(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    api::error::ApiJson(b): api::error::ApiJson<CompletedBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let event = PipelineEvent::Completed {
        training_metrics: b.training_metrics,
        blessed: b.blessed,
        artifacts: b.artifacts,
    };
    apply(&st, &headers, id, event).await
}
