//! Registered models: the spec's "RegisteredModel Endpoints" (list with schedule info and KPI,
//! details, versions, check-name).

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use trainyard_core::registry::{NameCheck, RegisteredModel};
use trainyard_core::run::{RegisteredModelId, ScheduleId, TrainingRun};
use trainyard_core::schedule::{ScheduleStatus, TrainingSchedule};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::params::{self, Pagination};
use crate::Platform;

/// A registered model with what the registry table shows beside it.
#[derive(Serialize, ToSchema)]
pub struct ModelView {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub model: RegisteredModel,
    pub is_registered: bool,
    pub has_schedule: bool,
    pub schedule_id: Option<ScheduleId>,
    #[schema(schema_with = params::schedule_status_schema)]
    pub schedule_status: Option<ScheduleStatus>,
}

fn view(model: RegisteredModel, schedule: Option<&TrainingSchedule>) -> ModelView {
    ModelView {
        is_registered: model.is_registered(),
        has_schedule: schedule.is_some(),
        schedule_id: schedule.map(|s| s.id),
        schedule_status: schedule.map(|s| s.status),
        model,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelListQuery {
    /// Only models of this model endpoint.
    pub ml_model: Option<String>,
    #[param(schema_with = params::model_type_schema)]
    pub model_type: Option<String>,
    #[param(value_type = Option<bool>)]
    pub has_schedule: Option<String>,
    /// Case-insensitive substring of the model name.
    pub search: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1)]
    pub page: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
}

/// Counts over the models that match the filters.
#[derive(Serialize, ToSchema)]
pub struct ModelKpi {
    pub total: u64,
    pub registered: u64,
    pub with_schedule: u64,
    pub deployed: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ModelListResponse {
    pub success: bool,
    pub registered_models: Vec<ModelView>,
    pub kpi: ModelKpi,
    pub pagination: Pagination,
}

/// List registered models with their schedule, newest first.
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
    let has_schedule = params::boolean("has_schedule", &q.has_schedule)?;
    let (page, size) = params::page(&q.page, &q.page_size)?;
    let ml_model = q.ml_model.as_deref().filter(|m| !m.trim().is_empty());
    let search = q
        .search
        .as_deref()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());

    let schedules: HashMap<RegisteredModelId, TrainingSchedule> = p
        .schedules()
        .list(ml_model)
        .await?
        .into_iter()
        .map(|s| (s.registered_model_id, s))
        .collect();
    let mut models: Vec<ModelView> = p
        .registry()
        .list(ml_model)
        .await?
        .into_iter()
        .filter(|m| model_type.is_none_or(|t| m.model_type == t))
        .filter(|m| {
            search
                .as_deref()
                .is_none_or(|s| m.model_name.to_lowercase().contains(s))
        })
        .map(|m| {
            let s = schedules.get(&m.id);
            view(m, s)
        })
        .filter(|v| has_schedule.is_none_or(|h| v.has_schedule == h))
        .collect();
    models.sort_by(|a, b| {
        b.model
            .created_at
            .cmp(&a.model.created_at)
            .then(b.model.id.cmp(&a.model.id))
    });
    let count = |f: fn(&ModelView) -> bool| models.iter().filter(|v| f(v)).count() as u64;
    let kpi = ModelKpi {
        total: models.len() as u64,
        registered: count(|v| v.is_registered),
        with_schedule: count(|v| v.has_schedule),
        deployed: count(|v| v.model.is_deployed),
    };
    let (items, pagination) = params::page_of(models, page, size);
    Ok(Json(ModelListResponse {
        success: true,
        registered_models: items,
        kpi,
        pagination,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct ModelResponse {
    pub success: bool,
    pub registered_model: ModelView,
}

/// Get a registered model with its schedule info.
#[utoipa::path(get, path = "/api/registered-models/{id}/", tag = "registered-models",
    params(("id" = i64, Path, description = "Registered model id")),
    responses((status = 200, body = ModelResponse), (status = 404, body = ErrorBody)))]
pub async fn get_model(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RegisteredModelId>,
) -> Result<Json<ModelResponse>, ApiError> {
    let model = p.registry().get(id).await?;
    let check = p
        .registry()
        .check_name(&model.ml_model, &model.model_name)
        .await?;
    let schedule = match check.schedule_id {
        Some(sid) => Some(p.schedules().get(sid).await?),
        None => None,
    };
    Ok(Json(ModelResponse {
        success: true,
        registered_model: view(model, schedule.as_ref()),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct VersionsResponse {
    pub success: bool,
    /// The model's training runs, newest first.
    #[schema(value_type = Vec<Object>)]
    pub versions: Vec<TrainingRun>,
}

/// All versions (training runs) of a registered model.
#[utoipa::path(get, path = "/api/registered-models/{id}/versions/", tag = "registered-models",
    params(("id" = i64, Path, description = "Registered model id")),
    responses((status = 200, body = VersionsResponse), (status = 404, body = ErrorBody)))]
pub async fn model_versions(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RegisteredModelId>,
) -> Result<Json<VersionsResponse>, ApiError> {
    Ok(Json(VersionsResponse {
        success: true,
        versions: p.registry().versions(id).await?,
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
    let ml_model = q
        .ml_model
        .clone()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| p.config().project.ml_model.clone());
    Ok(Json(CheckNameResponse {
        success: true,
        check: p.registry().check_name(&ml_model, name).await?,
    }))
}
