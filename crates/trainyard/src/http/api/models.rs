//! Registered models: the spec's "RegisteredModel Endpoints" (list with schedule info and KPI,
//! details, versions, check-name) and the registry's aliases and history.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use trainyard_core::registry::{NameCheck, RegistryEvent};
use trainyard_core::run::{RegisteredModelId, TrainingRun};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use super::params::{self, Pagination};
use crate::registry::{ModelFilter, ModelSummary, ModelVersion, RegistryKpi};
use crate::{PageRequest, Platform};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelListQuery {
    /// Only models of this model endpoint.
    pub ml_model: Option<String>,
    #[param(schema_with = params::model_type_schema)]
    pub model_type: Option<String>,
    /// Registered to the registry at least once.
    #[param(value_type = Option<bool>)]
    pub registered: Option<String>,
    /// Has an active endpoint on record.
    #[param(value_type = Option<bool>)]
    pub deployed: Option<String>,
    #[param(value_type = Option<bool>)]
    pub has_schedule: Option<String>,
    /// Case-insensitive substring of the model name.
    pub search: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1)]
    pub page: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelListResponse {
    pub success: bool,
    /// Each model with its schedule, aliases, latest version's KPI metrics, the recorded
    /// `is_deployed` and the live `has_active_endpoint`.
    #[schema(value_type = Vec<Object>)]
    pub registered_models: Vec<ModelSummary>,
    /// total, registered, with_schedule, deployed over the filtered models.
    #[schema(value_type = Object)]
    pub kpi: RegistryKpi,
    pub pagination: Pagination,
}

/// List registered models with schedule, KPI and deployment state, newest first.
#[utoipa::path(get, path = "/api/registered-models/", tag = "registered-models",
    params(ModelListQuery),
    responses((status = 200, body = ModelListResponse), (status = 400, body = ErrorBody)))]
pub async fn list_models(
    State(p): State<Platform>,
    ApiQuery(q): ApiQuery<ModelListQuery>,
) -> Result<Json<ModelListResponse>, ApiError> {
    let model_type = match q.model_type.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(params::enum_value("model_type", t, &params::model_types())?),
    };
    let filter = ModelFilter {
        ml_model: q.ml_model.clone().filter(|m| !m.trim().is_empty()),
        model_type,
        registered: params::boolean("registered", &q.registered)?,
        deployed: params::boolean("deployed", &q.deployed)?,
        has_schedule: params::boolean("has_schedule", &q.has_schedule)?,
        search: q
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    let (page, size) = params::page(&q.page, &q.page_size)?;
    let listing = p
        .registry()
        .list_page(&filter, PageRequest::new(page, size))
        .await?;
    Ok(Json(ModelListResponse {
        success: true,
        registered_models: listing.registered_models,
        kpi: listing.kpi,
        pagination: listing.pagination,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct ModelResponse {
    pub success: bool,
    #[schema(value_type = Object)]
    pub registered_model: ModelSummary,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelFindQuery {
    /// Look a name up in this model endpoint only (default: every endpoint; a name held in
    /// several must then be given by id, or with its endpoint).
    pub ml_model: Option<String>,
}

/// Get a registered model as the list shows it, by id or by name (a name made of digits is
/// found by name when no model has that id).
#[utoipa::path(get, path = "/api/registered-models/{id}/", tag = "registered-models",
    params(("id" = String, Path, description = "Registered model id, or its name"),
        ModelFindQuery),
    responses((status = 200, body = ModelResponse),
        (status = 400, body = ErrorBody, description = "A name held in several model endpoints"),
        (status = 404, body = ErrorBody)))]
pub async fn get_model(
    State(p): State<Platform>,
    ApiPath(key): ApiPath<String>,
    ApiQuery(q): ApiQuery<ModelFindQuery>,
) -> Result<Json<ModelResponse>, ApiError> {
    let ml_model = q
        .ml_model
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty());
    Ok(Json(ModelResponse {
        success: true,
        registered_model: p.registry().find(ml_model, &key).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct VersionsResponse {
    pub success: bool,
    /// The model's training runs, newest first.
    #[schema(value_type = Vec<Object>)]
    pub versions: Vec<TrainingRun>,
    /// The registered versions, oldest first, with their KPI metrics, aliases and endpoints.
    #[schema(value_type = Vec<Object>)]
    pub registered_versions: Vec<ModelVersion>,
}

/// All versions (training runs) of a registered model, and its registered versions with KPI.
#[utoipa::path(get, path = "/api/registered-models/{id}/versions/", tag = "registered-models",
    params(("id" = i64, Path, description = "Registered model id")),
    responses((status = 200, body = VersionsResponse), (status = 404, body = ErrorBody)))]
pub async fn model_versions(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RegisteredModelId>,
) -> Result<Json<VersionsResponse>, ApiError> {
    let registry = p.registry();
    Ok(Json(VersionsResponse {
        success: true,
        versions: registry.versions(id).await?,
        registered_versions: registry.model_versions(id).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct AliasesResponse {
    pub success: bool,
    /// alias -> version
    pub aliases: BTreeMap<String, String>,
}

/// A model's aliases.
#[utoipa::path(get, path = "/api/registered-models/{id}/aliases/", tag = "registered-models",
    params(("id" = i64, Path, description = "Registered model id")),
    responses((status = 200, body = AliasesResponse), (status = 404, body = ErrorBody)))]
pub async fn model_aliases(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RegisteredModelId>,
) -> Result<Json<AliasesResponse>, ApiError> {
    let registry = p.registry();
    registry.get(id).await?;
    Ok(Json(AliasesResponse {
        success: true,
        aliases: registry.aliases(id).await?,
    }))
}

/// Which version an alias points at.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AliasBody {
    /// A registered version of the model ("1", "2", ...).
    pub version: String,
}

#[derive(Serialize, ToSchema)]
pub struct AliasEventResponse {
    pub success: bool,
    /// The history entry the change made.
    #[schema(value_type = Object)]
    pub event: RegistryEvent,
    pub aliases: BTreeMap<String, String>,
}

/// Point an alias at a registered version (moving it if it pointed elsewhere).
#[utoipa::path(put, path = "/api/registered-models/{id}/aliases/{alias}/", tag = "registered-models",
    params(("id" = i64, Path, description = "Registered model id"),
        ("alias" = String, Path, description = "Alias, e.g. production")),
    request_body = AliasBody,
    responses((status = 200, body = AliasEventResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_alias(
    State(p): State<Platform>,
    ApiPath((id, alias)): ApiPath<(RegisteredModelId, String)>,
    ApiJson(body): ApiJson<AliasBody>,
) -> Result<Json<AliasEventResponse>, ApiError> {
    let registry = p.registry();
    registry.get(id).await?;
    let event = registry.set_alias(id, &alias, &body.version).await?;
    Ok(Json(AliasEventResponse {
        success: true,
        event,
        aliases: registry.aliases(id).await?,
    }))
}

/// Remove an alias.
#[utoipa::path(delete, path = "/api/registered-models/{id}/aliases/{alias}/", tag = "registered-models",
    params(("id" = i64, Path, description = "Registered model id"),
        ("alias" = String, Path, description = "Alias")),
    responses((status = 200, body = AliasEventResponse), (status = 404, body = ErrorBody)))]
pub async fn remove_alias(
    State(p): State<Platform>,
    ApiPath((id, alias)): ApiPath<(RegisteredModelId, String)>,
) -> Result<Json<AliasEventResponse>, ApiError> {
    let registry = p.registry();
    registry.get(id).await?;
    let event = registry.remove_alias(id, &alias).await?;
    Ok(Json(AliasEventResponse {
        success: true,
        event,
        aliases: registry.aliases(id).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct HistoryResponse {
    pub success: bool,
    /// Alias moves and endpoint changes, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub history: Vec<RegistryEvent>,
}

/// Which version held which alias, and served on which endpoint, when.
#[utoipa::path(get, path = "/api/registered-models/{id}/history/", tag = "registered-models",
    params(("id" = i64, Path, description = "Registered model id")),
    responses((status = 200, body = HistoryResponse), (status = 404, body = ErrorBody)))]
pub async fn model_history(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RegisteredModelId>,
) -> Result<Json<HistoryResponse>, ApiError> {
    Ok(Json(HistoryResponse {
        success: true,
        history: p.registry().history(id).await?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckNameQuery {
    /// The model name to check.
    #[param(required = true)]
    pub name: Option<String>,
    /// Model endpoint (default: the project's).
    pub ml_model: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CheckNameResponse {
    pub success: bool,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub check: NameCheck,
}

/// Whether a model name exists, and whether it has a schedule.
#[utoipa::path(get, path = "/api/registered-models/check-name/", tag = "registered-models",
    params(CheckNameQuery),
    responses((status = 200, body = CheckNameResponse), (status = 400, body = ErrorBody)))]
pub async fn check_name(
    State(p): State<Platform>,
    ApiQuery(q): ApiQuery<CheckNameQuery>,
) -> Result<Json<CheckNameResponse>, ApiError> {
    let name = q
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("name", "name: is required"))?;
    let ml_model = p.ml_model_or(q.ml_model.as_deref());
    Ok(Json(CheckNameResponse {
        success: true,
        check: p.registry().check_name(&ml_model, name).await?,
    }))
}
