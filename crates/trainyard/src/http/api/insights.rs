//! The spec's run insight endpoints: logs, dataset statistics, schema, weight statistics.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use trainyard_core::run::RunId;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::params;
use crate::insights::{RunLogs, RunSchema, RunStatistics, RunWeightStats};
use crate::Platform;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Only this pipeline component's lines (e.g. Trainer).
    pub component: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LogsResponse {
    pub success: bool,
    #[schema(value_type = Object)]
    pub logs: RunLogs,
}

/// A run's pipeline logs.
#[utoipa::path(get, path = "/api/training-runs/{id}/logs/", tag = "training-runs",
    params(("id" = i64, Path, description = "Training run id"), LogsQuery),
    responses((status = 200, body = LogsResponse), (status = 404, body = ErrorBody)))]
pub async fn run_logs(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> Result<Json<LogsResponse>, ApiError> {
    let component = q.component.as_deref().filter(|c| !c.trim().is_empty());
    Ok(Json(LogsResponse {
        success: true,
        logs: p.insights().logs(id, component).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct StatisticsResponse {
    pub success: bool,
    #[schema(value_type = Object)]
    pub statistics: RunStatistics,
}

/// A run's dataset statistics (the pipeline's StatisticsGen output).
#[utoipa::path(get, path = "/api/training-runs/{id}/statistics/", tag = "training-runs",
    params(("id" = i64, Path, description = "Training run id")),
    responses((status = 200, body = StatisticsResponse), (status = 404, body = ErrorBody)))]
pub async fn run_statistics(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
) -> Result<Json<StatisticsResponse>, ApiError> {
    Ok(Json(StatisticsResponse {
        success: true,
        statistics: p.insights().statistics(id).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct SchemaResponse {
    pub success: bool,
    #[schema(value_type = Object)]
    pub schema: RunSchema,
}

/// A run's inferred schema (the pipeline's SchemaGen output).
#[utoipa::path(get, path = "/api/training-runs/{id}/schema/", tag = "training-runs",
    params(("id" = i64, Path, description = "Training run id")),
    responses((status = 200, body = SchemaResponse), (status = 404, body = ErrorBody)))]
pub async fn run_schema(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
) -> Result<Json<SchemaResponse>, ApiError> {
    Ok(Json(SchemaResponse {
        success: true,
        schema: p.insights().schema(id).await?,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WeightStatsQuery {
    /// One epoch (default: all).
    #[param(value_type = Option<u32>)]
    pub epoch: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WeightStatsResponse {
    pub success: bool,
    #[schema(value_type = Object)]
    pub weight_stats: RunWeightStats,
}

/// A run's per-epoch weight and gradient statistics.
#[utoipa::path(get, path = "/api/training-runs/{id}/weight-stats/", tag = "training-runs",
    params(("id" = i64, Path, description = "Training run id"), WeightStatsQuery),
    responses((status = 200, body = WeightStatsResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn run_weight_stats(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
    ApiQuery(q): ApiQuery<WeightStatsQuery>,
) -> Result<Json<WeightStatsResponse>, ApiError> {
    let epoch = params::number::<u32>("epoch", &q.epoch)?;
    Ok(Json(WeightStatsResponse {
        success: true,
        weight_stats: p.insights().weight_stats(id, epoch).await?,
    }))
}
