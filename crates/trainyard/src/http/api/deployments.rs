//! The spec's "Deployment API": push a run to the registry, deploy it on an endpoint of its
//! registered model, its live deployment status, the endpoints, undeploy.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use trainyard_core::config::{DeploymentConfig, DeploymentPreset};
use trainyard_core::names::Named;
use trainyard_core::registry::DeployedEndpoint;
use trainyard_core::run::{EndpointId, RegisteredModelId, RunId};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use super::error::{ApiError, ApiJsonOrDefault, ApiPath, ErrorBody};
use super::runs::RunResponse;
use super::schema;
use crate::deployments::{DeployOptions, DeploymentView, EndpointView};
use crate::Platform;

/// Register a completed, blessed run as the next version of its model (then deploy it when
/// its deployment_config is enabled).
#[utoipa::path(post, path = "/api/training-runs/{id}/push/", tag = "deployments",
    params(("id" = i64, Path, description = "Training run id")),
    responses((status = 200, body = RunResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 502, body = ErrorBody)))]
pub async fn push_run(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
) -> Result<Json<RunResponse>, ApiError> {
    let run = p.lifecycle().push(id).await?;
    let message = format!(
        "{} registered as version {} of {:?}",
        run.display_name(),
        run.vertex_model_version.clone().unwrap_or_default(),
        run.vertex_model_name.clone().unwrap_or_default()
    );
    Ok(Json(RunResponse {
        success: true,
        training_run: run,
        message: Some(message),
    }))
}

/// Body of a deploy (all optional; an empty body deploys with the run's deployment_config).
pub struct DeployBody;

impl utoipa::PartialSchema for DeployBody {
    fn schema() -> RefOr<Schema> {
        let preset_names: Vec<String> = DeploymentPreset::ALL
            .iter()
            .map(|p| p.name().to_string())
            .collect();
        let preset = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(preset_names))
            .description(Some(
                "development, production, high_traffic; custom needs resources",
            ))
            .into();
        let resources =
            schema::infer(&serde_json::to_value(DeploymentConfig::default()).unwrap_or_default());
        let service_name = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"))
            .description(Some(
                "Name of a new endpoint (default: <model name>-serving)",
            ))
            .into();
        schema::object(
            "How to deploy; every field is optional",
            vec![],
            vec![
                ("preset", preset),
                ("resources", RefOr::T(resources)),
                (
                    "endpoint",
                    schema::string("Update this existing endpoint of the run's model"),
                ),
                ("service_name", service_name),
                (
                    "target",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["service", "vertex_endpoint"]))
                        .description(Some(
                            "service (trainyard-serve, or Cloud Run on Google Cloud) or vertex_endpoint \
                             (a Vertex AI endpoint of the model); default: the endpoint's target, else service",
                        ))
                        .into(),
                ),
            ],
            &Default::default(),
        )
    }
}

impl ToSchema for DeployBody {}

/// Deploy a registered run (spec: deploy-cloud-run; the local backend runs trainyard-serve).
#[utoipa::path(post, path = "/api/training-runs/{id}/deploy-cloud-run/", tag = "deployments",
    params(("id" = i64, Path, description = "Training run id")),
    request_body(content = DeployBody, description = "Optional"),
    responses((status = 200, body = RunResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn deploy_run(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
    ApiJsonOrDefault(options): ApiJsonOrDefault<DeployOptions>,
) -> Result<Json<RunResponse>, ApiError> {
    let run = p.deployments().deploy(id, &options).await?;
    Ok(Json(RunResponse {
        success: true,
        training_run: run,
        message: Some("Deployed".into()),
    }))
}

/// Deploy a registered run on a Vertex AI endpoint of its model (spec: deploy; Google Cloud
/// backend): the endpoint is created or reused, the registered Vertex version gets all the
/// traffic and the version it served before is undeployed.
#[utoipa::path(post, path = "/api/training-runs/{id}/deploy/", tag = "deployments",
    params(("id" = i64, Path, description = "Training run id")),
    request_body(content = DeployBody, description = "Optional; target is vertex_endpoint"),
    responses((status = 200, body = RunResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn deploy_run_vertex(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
    ApiJsonOrDefault(options): ApiJsonOrDefault<DeployOptions>,
) -> Result<Json<RunResponse>, ApiError> {
    use trainyard_core::deployment::DeployTarget;
    if options
        .target
        .is_some_and(|t| t != DeployTarget::VertexEndpoint)
    {
        return Err(
            trainyard_core::Error::Validation(trainyard_core::ValidationError::field(
                "target",
                "this route deploys to a Vertex AI endpoint; use /deploy-cloud-run/ for a service",
            ))
            .into(),
        );
    }
    let options = DeployOptions {
        target: Some(DeployTarget::VertexEndpoint),
        ..options
    };
    let run = p.deployments().deploy(id, &options).await?;
    Ok(Json(RunResponse {
        success: true,
        training_run: run,
        message: Some("Deployed to a Vertex AI endpoint".into()),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct DeploymentResponse {
    pub success: bool,
    /// The recorded deployment_status and the endpoint's live state (deployed / idle /
    /// not_blessed / unknown), kept apart.
    #[schema(value_type = Object)]
    pub deployment: DeploymentView,
}

/// A run's deployment: what was recorded and what its endpoint does now.
#[utoipa::path(get, path = "/api/training-runs/{id}/deployment/", tag = "deployments",
    params(("id" = i64, Path, description = "Training run id")),
    responses((status = 200, body = DeploymentResponse), (status = 404, body = ErrorBody)))]
pub async fn deployment_status(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
) -> Result<Json<DeploymentResponse>, ApiError> {
    Ok(Json(DeploymentResponse {
        success: true,
        deployment: p.deployments().status(id).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct EndpointsResponse {
    pub success: bool,
    /// Each endpoint with `serving` asked of the deployer now (null, with `error`, when that
    /// cannot be told).
    #[schema(value_type = Vec<Object>)]
    pub endpoints: Vec<EndpointView>,
}

/// The endpoints owned by a registered model.
#[utoipa::path(get, path = "/api/registered-models/{id}/endpoints/", tag = "deployments",
    params(("id" = i64, Path, description = "Registered model id")),
    responses((status = 200, body = EndpointsResponse), (status = 404, body = ErrorBody)))]
pub async fn model_endpoints(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RegisteredModelId>,
) -> Result<Json<EndpointsResponse>, ApiError> {
    p.registry().get(id).await?;
    Ok(Json(EndpointsResponse {
        success: true,
        endpoints: p.deployments().endpoints(Some(id)).await?,
    }))
}

/// Every endpoint.
#[utoipa::path(get, path = "/api/endpoints/", tag = "deployments",
    responses((status = 200, body = EndpointsResponse)))]
pub async fn list_endpoints(
    State(p): State<Platform>,
) -> Result<Json<EndpointsResponse>, ApiError> {
    Ok(Json(EndpointsResponse {
        success: true,
        endpoints: p.deployments().endpoints(None).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct EndpointResponse {
    pub success: bool,
    #[schema(value_type = Object)]
    pub endpoint: DeployedEndpoint,
    pub message: String,
}

/// Stop serving on an endpoint; the run it served returns to completed (or not_blessed).
#[utoipa::path(post, path = "/api/endpoints/{id}/undeploy/", tag = "deployments",
    params(("id" = i64, Path, description = "Endpoint id")),
    responses((status = 200, body = EndpointResponse), (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody)))]
pub async fn undeploy_endpoint(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<EndpointId>,
) -> Result<Json<EndpointResponse>, ApiError> {
    let endpoint = p.deployments().undeploy_by_id(id).await?;
    Ok(Json(EndpointResponse {
        success: true,
        message: format!("Endpoint {} undeployed", endpoint.service_name),
        endpoint,
    }))
}
