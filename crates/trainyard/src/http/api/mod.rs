//! The REST API of `trainyard serve-api` (feature `http`): the spec's endpoints for training
//! runs, schedules, registered models and deployments over the facade services, with an OpenAPI 3 document
//! generated from the handlers and their types (`/openapi.json`).
//!
//! Responses follow the spec's shapes (`{"success": true, "training_run": {...}}`); every error
//! is `{"success": false, "error": "...", "kind": "...", "field": "..."}` with the status
//! [`error::status_of`] gives its kind.

mod deployments;
pub mod error;
mod insights;
mod models;
mod params;
mod runs;
mod schedules;
mod schema;
mod webhooks;

use std::future::Future;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{status_of, ApiError, ErrorBody, ErrorKind};

use super::{webhook_router, ApiSecurity, WebhookAuth};
use crate::Platform;

/// Path the OpenAPI document is served at (public: see [`crate::http::security`]).
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Readiness route (public: no project data, for probes that cannot hold a secret).
pub const HEALTH_PATH: &str = "/healthz";
/// Name of the management token's security scheme in the OpenAPI document.
pub const API_TOKEN_SCHEME: &str = "api_token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "trainyard",
        description = "Training runs, retraining schedules and registered models of a trainyard project"
    ),
    components(schemas(ErrorBody, ErrorKind)),
    tags(
        (name = "training-runs", description = "Training runs: create, list, cancel, rerun, edit"),
        (name = "schedules", description = "Retraining schedules of registered models"),
        (name = "registered-models", description = "Named models whose versions are runs"),
        (name = "deployments", description = "Registry push, deploy, endpoints, undeploy"),
        (name = "health", description = "Readiness (no token)"),
        (name = "webhooks", description = "Pipeline callbacks and the Cloud Scheduler webhook (bearer token)"),
    )
)]
struct ApiDoc;

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HealthResponse {
    /// Always "ok" when the server answers.
    pub status: &'static str,
}

/// Readiness: answers while the server runs (no token needed).
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = HealthResponse)))]
async fn health() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok" })
}

/// Declares the bearer token on every management operation (all but the public ones).
fn secure_document(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            API_TOKEN_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The project's API token (<project>/.trainyard/api_token or \
                         TRAINYARD_API_TOKEN), printed when the server starts",
                    ))
                    .build(),
            ),
        );
    doc.security = Some(vec![SecurityRequirement::new(
        API_TOKEN_SCHEME,
        Vec::<String>::new(),
    )]);
    // Public operations say so with an empty requirement (health) or are not in the document
    // (/openapi.json itself).
}

fn routes() -> OpenApiRouter<Platform> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(runs::list_runs))
        .routes(routes!(runs::list_model_runs, runs::create_run))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::cancel_run))
        .routes(routes!(runs::submit_run))
        .routes(routes!(runs::rerun_run))
        .routes(routes!(runs::get_config, runs::patch_config))
        .routes(routes!(runs::run_metrics))
        .routes(routes!(insights::run_logs))
        .routes(routes!(insights::run_statistics))
        .routes(routes!(insights::run_schema))
        .routes(routes!(insights::run_weight_stats))
        .routes(routes!(
            schedules::list_schedules,
            schedules::create_schedule
        ))
        .routes(routes!(schedules::create_from_run))
        .routes(routes!(schedules::preview))
        .routes(routes!(
            schedules::get_schedule,
            schedules::edit_schedule,
            schedules::delete_schedule
        ))
        .routes(routes!(schedules::pause_schedule))
        .routes(routes!(schedules::resume_schedule))
        .routes(routes!(schedules::cancel_schedule))
        .routes(routes!(schedules::trigger_schedule))
        .routes(routes!(schedules::upcoming))
        .routes(routes!(models::list_models))
        .routes(routes!(models::check_name))
        .routes(routes!(models::get_model))
        .routes(routes!(models::model_versions))
        .routes(routes!(models::model_aliases))
        .routes(routes!(models::set_alias, models::remove_alias))
        .routes(routes!(models::model_history))
        .routes(routes!(deployments::push_run))
        .routes(routes!(deployments::deploy_run))
        .routes(routes!(deployments::deploy_run_vertex))
        .routes(routes!(deployments::deployment_status))
        .routes(routes!(deployments::model_endpoints))
        .routes(routes!(deployments::list_endpoints))
        .routes(routes!(deployments::undeploy_endpoint))
}

/// The OpenAPI document of the whole API, webhooks included (needs no project).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().split_for_parts().1;
    secure_document(&mut doc);
    webhooks::document(&mut doc);
    doc
}

/// The API routes, `/openapi.json`, and (when `webhooks` is given) the webhook routes; unknown
/// paths answer a JSON 404. The served document lists exactly the mounted routes.
///
/// Every route but the webhooks sits behind `security` (token, Host allowlist, JSON-only side
/// effects: [`crate::http::security`]): this is the one place the management router is built,
/// so whatever serves it (`serve-api`, `server`, an embedding app) gets the checks.
pub fn app(platform: Platform, webhooks: Option<WebhookAuth>, security: ApiSecurity) -> Router {
    let (api, mut doc) = routes().with_state(platform.clone()).split_for_parts();
    secure_document(&mut doc);
    if webhooks.is_some() {
        webhooks::document(&mut doc);
    }
    let doc = std::sync::Arc::new(doc);
    let mut app = api.route(
        OPENAPI_PATH,
        get(move || {
            let doc = doc.clone();
            async move { Json(doc.as_ref().clone()) }
        }),
    );
    // The fallback is inside the layer: an unknown path without the token is a 401, not a
    // map of which paths exist.
    app = app
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, ErrorKind::NotFound, "no such route")
        })
        .layer(axum::middleware::from_fn_with_state(
            security,
            crate::http::security::guard,
        ));
    if let Some(auth) = webhooks {
        app = app.merge(webhook_router(platform, auth));
    }
    app
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
