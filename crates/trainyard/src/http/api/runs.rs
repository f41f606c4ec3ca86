//! Training runs: the spec's "Training Run CRUD", rerun, edit (config) and metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use trainyard_core::ports::{RunFilter, RunKpi};
use trainyard_core::run::{
    ConfigPatch, NewTrainingRun, RunConfig, RunId, TrainingMetricsHistory, TrainingRun,
    MAX_NAME_LEN,
};
use trainyard_core::{Error, RunStatus};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, ToSchema};

use super::error::{
    from_value, refuse_unknown_keys, require_object, without_keys, ApiError, ApiJson, ApiPath,
    ApiQuery, ErrorBody,
};
use super::params::{self, Pagination};
use super::schema;
use crate::{Platform, RunConfigView};
use trainyard_core::strict;

/// Filters and page of a run listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunListQuery {
    /// Only runs of this model endpoint (the `/api/training-runs/` listing only).
    pub ml_model: Option<String>,
    /// One status or several, comma-separated (`running,failed`).
    #[param(schema_with = params::run_status_filter_schema)]
    pub status: Option<String>,
    #[param(schema_with = params::model_type_schema)]
    pub model_type: Option<String>,
    #[param(value_type = Option<i64>)]
    pub registered_model_id: Option<String>,
    #[param(value_type = Option<i64>)]
    pub schedule_id: Option<String>,
    /// Case-insensitive substring of the run name.
    pub search: Option<String>,
    /// Only the run whose trainer logged to this MLflow run.
    pub mlflow_run_id: Option<String>,
    /// From 1.
    #[param(value_type = Option<u32>, minimum = 1)]
    pub page: Option<String>,
    /// 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
}

impl RunListQuery {
    fn filter(&self, ml_model: Option<String>) -> Result<RunFilter, ApiError> {
        let statuses = match self.status.as_deref().map(str::trim) {
            None | Some("") => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|s| params::enum_value("status", s, &RunStatus::ALL))
                .collect::<Result<_, _>>()?,
        };
        let model_type = match self.model_type.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) => Some(params::enum_value("model_type", t, &params::model_types())?),
        };
        let (page, page_size) = params::page(&self.page, &self.page_size)?;
        Ok(RunFilter {
            ml_model,
            statuses,
            model_type,
            registered_model_id: params::number("registered_model_id", &self.registered_model_id)?,
            schedule_id: params::number("schedule_id", &self.schedule_id)?,
            search: self.search.clone().filter(|s| !s.trim().is_empty()),
            mlflow_run_id: self.mlflow_run_id.clone().filter(|s| !s.trim().is_empty()),
            page,
            page_size,
            ..RunFilter::default()
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct RunListResponse {
    pub success: bool,
    /// Newest first.
    #[schema(value_type = Vec<Object>)]
    pub training_runs: Vec<TrainingRun>,
    pub pagination: Pagination,
    /// Counts by status over the runs that match every filter but `status`.
    #[schema(value_type = Object)]
    pub kpi: RunKpi,
}

#[derive(Serialize, ToSchema)]
pub struct RunResponse {
    pub success: bool,
    #[schema(value_type = Object)]
    pub training_run: TrainingRun,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn run_response(run: TrainingRun, message: Option<String>) -> Json<RunResponse> {
    Json(RunResponse {
        success: true,
        training_run: run,
        message,
    })
}

async fn list(p: &Platform, filter: RunFilter) -> Result<Json<RunListResponse>, ApiError> {
    let page = p.training().list(&filter).await?;
    Ok(Json(RunListResponse {
        success: true,
        pagination: Pagination::new(page.page, page.page_size, page.total),
        training_runs: page.runs,
        kpi: page.kpi,
    }))
}

/// List the training runs of a model endpoint.
#[utoipa::path(get, path = "/api/models/{ml_model}/training-runs/", tag = "training-runs",
    params(("ml_model" = String, Path, description = "Model endpoint (project) name"), RunListQuery),
    responses((status = 200, body = RunListResponse), (status = 400, body = ErrorBody)))]
pub async fn list_model_runs(
    State(p): State<Platform>,
    ApiPath(ml_model): ApiPath<String>,
    ApiQuery(q): ApiQuery<RunListQuery>,
) -> Result<Json<RunListResponse>, ApiError> {
    let filter = q.filter(Some(ml_model))?;
    list(&p, filter).await
}

/// List training runs of every model endpoint (or of `ml_model`).
#[utoipa::path(get, path = "/api/training-runs/", tag = "training-runs", params(RunListQuery),
    responses((status = 200, body = RunListResponse), (status = 400, body = ErrorBody)))]
pub async fn list_runs(
    State(p): State<Platform>,
    ApiQuery(q): ApiQuery<RunListQuery>,
) -> Result<Json<RunListResponse>, ApiError> {
    let ml_model = q.ml_model.clone().filter(|m| !m.trim().is_empty());
    let filter = q.filter(ml_model)?;
    list(&p, filter).await
}

/// A new training run: its name (the registered model's name), whether to submit it, and
/// the config parts (read from the same object as a [`RunConfig`]).
#[derive(Debug, Deserialize)]
pub struct CreateRunBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Submit the pipeline at once (needs a configured executor; 409 without one).
    #[serde(default)]
    pub submit: bool,
}

impl CreateRunBody {
    /// Its own keys; the body's other keys are the run config's parts.
    pub const FIELDS: [&'static str; 3] = ["name", "description", "submit"];
}

impl utoipa::PartialSchema for CreateRunBody {
    fn schema() -> RefOr<Schema> {
        schema::object(
            "A new training run: its name (also its registered model's name) and config; \
             every config part has defaults",
            vec![(
                "name",
                schema::name("Run and registered model name", MAX_NAME_LEN),
            )],
            vec![
                ("description", schema::string("Free text")),
                (
                    "submit",
                    schema::boolean("Submit the pipeline at once (409 without an executor)"),
                ),
            ],
            &schema::defaults_of::<RunConfig>(),
        )
    }
}

impl ToSchema for CreateRunBody {}

fn require_executor(p: &Platform) -> Result<(), ApiError> {
    if p.training().can_submit() {
        Ok(())
    } else {
        Err(Error::Conflict(
            "no pipeline executor is configured for this server; the run cannot be submitted"
                .into(),
        )
        .into())
    }
}

/// Create a training run (and submit it when `submit` is true).
#[utoipa::path(post, path = "/api/models/{ml_model}/training-runs/", tag = "training-runs",
    params(("ml_model" = String, Path, description = "Model endpoint (project) name")),
    request_body = CreateRunBody,
    responses((status = 201, body = RunResponse), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_run(
    State(p): State<Platform>,
    ApiPath(ml_model): ApiPath<String>,
    ApiJson(value): ApiJson<Value>,
) -> Result<(StatusCode, Json<RunResponse>), ApiError> {
    require_object(&value)?;
    let mut known = CreateRunBody::FIELDS.to_vec();
    known.extend_from_slice(strict::field_names::<RunConfig>());
    refuse_unknown_keys(&value, &known)?;
    // Config sections given in part are merged over their defaults, as in every front end.
    let mut config = without_keys(&value, &CreateRunBody::FIELDS);
    strict::over_defaults::<RunConfig>(&mut config);
    let config: RunConfig = from_value(&config)?;
    let body: CreateRunBody = from_value(&value)?;
    if body.submit {
        require_executor(&p)?;
    }
    let training = p.training();
    let run = training
        .create_training_run(NewTrainingRun {
            ml_model,
            name: body.name,
            description: body.description,
            config,
        })
        .await?;
    let run = if body.submit {
        training.submit(run.id).await?
    } else {
        run
    };
    let message = format!("Training run created as {}", run.display_name());
    Ok((StatusCode::CREATED, run_response(run, Some(message))))
}

/// Get a training run.
#[utoipa::path(get, path = "/api/training-runs/{id}/", tag = "training-runs",
    params(("id" = i64, Path, description = "Training run id")),
    responses((status = 200, body = RunResponse), (status = 404, body = ErrorBody)))]
pub async fn get_run(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
) -> Result<Json<RunResponse>, ApiError> {
    Ok(run_response(p.training().get(id).await?, None))
}

/// Cancel a pending, scheduled, submitting or running run (stops its pipeline).
#[utoipa::path(post, path = "/api/training-runs/{id}/cancel/", tag = "training-runs",
    params(("id" = i64, Path, description = "Training run id")),
    responses((status = 200, body = RunResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn cancel_run(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
) -> Result<Json<RunResponse>, ApiError> {
    let run = p.training().cancel(id).await?;
    Ok(run_response(
        run,
        Some(format!("{} cancelled", run_name(id))),
    ))
}

fn run_name(id: RunId) -> String {
    format!("training run {id}")
}

/// Submit a pending or scheduled run to the pipeline executor.
#[utoipa::path(post, path = "/api/training-runs/{id}/submit/", tag = "training-runs",
    params(("id" = i64, Path, description = "Training run id")),
    responses((status = 200, body = RunResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn submit_run(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
) -> Result<Json<RunResponse>, ApiError> {
    // The id is checked first so an unknown run is a 404 whatever the server's executor.
    p.training().get(id).await?;
    require_executor(&p)?;
    Ok(run_response(p.training().submit(id).await?, None))
}

/// A new run with the name and config of a run whose training has finished.
#[utoipa::path(post, path = "/api/training-runs/{id}/rerun/", tag = "training-runs",
    params(("id" = i64, Path, description = "Training run id")),
    responses((status = 201, body = RunResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn rerun_run(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
) -> Result<(StatusCode, Json<RunResponse>), ApiError> {
    let run = p.training().rerun(id).await?;
    let message = format!("Re-run created as {}", run.display_name());
    Ok((StatusCode::CREATED, run_response(run, Some(message))))
}

#[derive(Serialize, ToSchema)]
pub struct ConfigResponse {
    pub success: bool,
    /// id, name and the run's config.
    #[schema(value_type = Object)]
    pub config: RunConfigView,
    /// PATCH only: the parts that changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_fields: Option<Vec<&'static str>>,
}

/// A run's config (the edit form's source).
#[utoipa::path(get, path = "/api/training-runs/{id}/config/", tag = "training-runs",
    params(("id" = i64, Path, description = "Training run id")),
    responses((status = 200, body = ConfigResponse), (status = 404, body = ErrorBody)))]
pub async fn get_config(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
) -> Result<Json<ConfigResponse>, ApiError> {
    Ok(Json(ConfigResponse {
        success: true,
        config: p.training().get_config(id).await?,
        updated_fields: None,
    }))
}

/// The editable parts of a finished run's config; absent parts stay as they are.
pub struct ConfigPatchBody;

impl utoipa::PartialSchema for ConfigPatchBody {
    fn schema() -> RefOr<Schema> {
        // The patchable parts, each shaped like the run config's part of the same name.
        let config = schema::defaults_of::<RunConfig>();
        let parts = schema::defaults_of::<ConfigPatch>()
            .keys()
            .filter_map(|k| config.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        schema::object(
            "Editable parts of a finished run's config; absent parts stay as they are",
            vec![],
            vec![],
            &parts,
        )
    }
}

impl ToSchema for ConfigPatchBody {}

/// Edit a finished run's training params, GPU, evaluator, deployment or schedule config.
#[utoipa::path(patch, path = "/api/training-runs/{id}/config/", tag = "training-runs",
    params(("id" = i64, Path, description = "Training run id")),
    request_body = ConfigPatchBody,
    responses((status = 200, body = ConfigResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn patch_config(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
    ApiJson(patch): ApiJson<ConfigPatch>,
) -> Result<Json<ConfigResponse>, ApiError> {
    let (config, fields) = p.training().patch_config(id, &patch).await?;
    Ok(Json(ConfigResponse {
        success: true,
        config,
        updated_fields: Some(fields),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct MetricsResponse {
    pub success: bool,
    /// One row per epoch, in epoch order.
    #[schema(value_type = Vec<Object>)]
    pub metrics: Vec<TrainingMetricsHistory>,
}

/// Per-epoch metrics history.
#[utoipa::path(get, path = "/api/training-runs/{id}/metrics/", tag = "training-runs",
    params(("id" = i64, Path, description = "Training run id")),
    responses((status = 200, body = MetricsResponse), (status = 404, body = ErrorBody)))]
pub async fn run_metrics(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<RunId>,
) -> Result<Json<MetricsResponse>, ApiError> {
    Ok(Json(MetricsResponse {
        success: true,
        metrics: p.training().history(id).await?,
    }))
}
