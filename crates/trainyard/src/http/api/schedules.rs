//! Retraining schedules: the spec's "Schedule Feature" endpoints (create from a run, from the
//! wizard or for a registered model; preview; edit timing; pause, resume, cancel, delete,
//! trigger) and the next fires.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use trainyard_core::ports::FireOutcome;
use trainyard_core::run::{RegisteredModelId, RunConfig, RunId, ScheduleId, MAX_NAME_LEN};
use trainyard_core::schedule::{CatchUpPolicy, ConcurrencyPolicy, ScheduleType, TrainingSchedule};
use trainyard_core::timing::{rfc3339_local, ScheduleTiming, TimingPatch};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, ToSchema};

use super::error::{
    from_value, refuse_unknown_keys, require_object, without_keys, ApiError, ApiJson, ApiPath,
    ApiQuery, ErrorBody,
};
use super::params::{self, Pagination};
use super::schema;
use crate::schedules::MAX_SCHEDULE_NAME;
use crate::{
    NewSchedule, PageRequest, Platform, ScheduleEdit, ScheduleFilter, SchedulePreview,
    WizardSchedule,
};

/// A schedule as the API shows it: the record plus what the spec's serializer derives.
#[derive(Serialize, ToSchema)]
pub struct ScheduleView {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub schedule: TrainingSchedule,
    /// Successful runs / total runs in percent; null before the first run.
    pub success_rate: Option<f64>,
    pub is_recurring: bool,
    /// The unix-cron string of the timing (in `schedule_timezone`).
    pub cron: String,
}

impl From<TrainingSchedule> for ScheduleView {
    fn from(schedule: TrainingSchedule) -> Self {
        ScheduleView {
            success_rate: schedule.success_rate(),
            is_recurring: schedule.timing.schedule_type.is_recurring(),
            // Stored timings were validated when saved; an unreadable one shows no cron.
            cron: schedule.timing.cron().unwrap_or_default(),
            schedule,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ScheduleResponse {
    pub success: bool,
    pub schedule: ScheduleView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn schedule_response(s: TrainingSchedule, message: Option<String>) -> Json<ScheduleResponse> {
    Json(ScheduleResponse {
        success: true,
        schedule: s.into(),
        message,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScheduleListQuery {
    /// Only schedules of this model endpoint.
    pub ml_model: Option<String>,
    #[param(schema_with = params::schedule_status_schema)]
    pub status: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1)]
    pub page: Option<String>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub page_size: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ScheduleListResponse {
    pub success: bool,
    pub schedules: Vec<ScheduleView>,
    pub pagination: Pagination,
}

/// List schedules, newest first.
#[utoipa::path(get, path = "/api/training/schedules/", tag = "schedules", params(ScheduleListQuery),
    responses((status = 200, body = ScheduleListResponse), (status = 400, body = ErrorBody)))]
pub async fn list_schedules(
    State(p): State<Platform>,
    ApiQuery(q): ApiQuery<ScheduleListQuery>,
) -> Result<Json<ScheduleListResponse>, ApiError> {
    let status = match q.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(params::enum_value(
            "status",
            s,
            &params::schedule_statuses(),
        )?),
    };
    let (page, size) = params::page(&q.page, &q.page_size)?;
    let filter = ScheduleFilter {
        ml_model: q.ml_model.clone().filter(|m| !m.trim().is_empty()),
        status,
    };
    let listing = p
        .schedules()
        .list_page(&filter, PageRequest::new(page, size))
        .await?;
    Ok(Json(ScheduleListResponse {
        success: true,
        schedules: listing.items.into_iter().map(ScheduleView::from).collect(),
        pagination: listing.pagination,
    }))
}

fn timing_properties() -> Vec<(&'static str, RefOr<Schema>)> {
    let day = |min: i64, max: i64, what: &str| -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min))
            .maximum(Some(max))
            .description(Some(what))
            .into()
    };
    vec![
        ("schedule_type", params::schedule_type_schema()),
        (
            "scheduled_datetime",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::DateTime,
                )))
                .description(Some(
                    "once: the instant to fire (in the future); now: set to the instant of \
                     creation, when it fires",
                ))
                .into(),
        ),
        (
            "schedule_time",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-2][0-9]:[0-5][0-9]$"))
                .description(Some("HH:MM; hourly uses the minute (00, 15, 30, 45)"))
                .into(),
        ),
        (
            "schedule_day_of_week",
            day(0, 6, "weekly: 0=Monday .. 6=Sunday"),
        ),
        ("schedule_day_of_month", day(1, 31, "monthly: 1-31")),
        (
            "schedule_timezone",
            schema::string("IANA time zone (default UTC)"),
        ),
        ("catch_up", params::catch_up_schema()),
        ("concurrency", params::concurrency_schema()),
    ]
}

fn with_timing(
    mut fields: Vec<(&'static str, RefOr<Schema>)>,
) -> Vec<(&'static str, RefOr<Schema>)> {
    fields.extend(timing_properties());
    fields
}

/// Body of POST /api/training/schedules/: `registered_model_id` (the model's newest run's
/// config), or the wizard's model name + training config.
pub struct CreateScheduleBody;

impl utoipa::PartialSchema for CreateScheduleBody {
    fn schema() -> RefOr<Schema> {
        let schedule_name = schema::name("Schedule name", MAX_SCHEDULE_NAME);
        let for_model = schema::object(
            "A schedule for a registered model, training its newest run's config",
            vec![
                (
                    "registered_model_id",
                    schema::integer("Registered model id"),
                ),
                ("name", schedule_name.clone()),
                ("schedule_type", params::schedule_type_schema()),
            ],
            with_timing(vec![("description", schema::string("Free text"))]),
            &Default::default(),
        );
        let wizard = schema::object(
            "The wizard: a model name (created when missing), its training config and the \
             schedule",
            vec![
                ("name", schema::name("Registered model name", MAX_NAME_LEN)),
                ("schedule_type", params::schedule_type_schema()),
            ],
            with_timing(vec![
                (
                    "ml_model",
                    schema::string("Model endpoint (default: the project's)"),
                ),
                ("schedule_name", schedule_name),
                ("schedule_description", schema::string("Free text")),
            ]),
            &schema::defaults_of::<RunConfig>(),
        );
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(for_model)
            .item(wizard)
            .into()
    }
}

impl ToSchema for CreateScheduleBody {}

/// The schedule bodies' own (non-flattened) fields, read first so that a bad one is named:
/// `#[serde(flatten)]` in the service types hides the path of every field.
#[derive(Deserialize)]
#[allow(dead_code)] // read for their errors only
struct OwnFields {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    schedule_name: Option<String>,
    #[serde(default)]
    schedule_description: Option<String>,
    #[serde(default)]
    ml_model: Option<String>,
    #[serde(default)]
    catch_up: Option<CatchUpPolicy>,
    #[serde(default)]
    concurrency: Option<ConcurrencyPolicy>,
}

/// Reads the parts of a schedule body that the full parse would report without a field.
fn check_parts(body: &Value) -> Result<(), ApiError> {
    require_object(body)?;
    from_value::<OwnFields>(body)?;
    from_value::<ScheduleTiming>(body)?;
    Ok(())
}

#[derive(Deserialize)]
struct ForModel {
    registered_model_id: RegisteredModelId,
    #[serde(flatten)]
    schedule: NewSchedule,
}

/// Create a schedule for a registered model or from the wizard's config.
#[utoipa::path(post, path = "/api/training/schedules/", tag = "schedules",
    request_body = CreateScheduleBody,
    responses((status = 201, body = ScheduleResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_schedule(
    State(p): State<Platform>,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<(StatusCode, Json<ScheduleResponse>), ApiError> {
    check_parts(&body)?;
    let by_model = body
        .get("registered_model_id")
        .is_some_and(|v| !v.is_null());
    let schedule = if by_model {
        refuse_unknown_keys(&body, &NewSchedule::known_fields(&["registered_model_id"]))?;
        let b: ForModel = from_value(&body)?;
        p.schedules()
            .create_for_model(b.registered_model_id, b.schedule)
            .await?
    } else {
        if let Value::Object(m) = &mut body {
            // Absent or empty: the project's (a value of another type is refused below).
            if m.get("ml_model").is_none_or(Value::is_string) {
                let given = m
                    .get("ml_model")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                m.insert(
                    "ml_model".into(),
                    Value::String(p.ml_model_or(given.as_deref())),
                );
            }
        }
        // `registered_model_id: null` says "wizard" explicitly.
        let mut known = WizardSchedule::known_fields();
        known.push("registered_model_id");
        refuse_unknown_keys(&body, &known)?;
        let mut own = WizardSchedule::OWN_FIELDS.to_vec();
        own.push("registered_model_id");
        own.extend_from_slice(trainyard_core::strict::field_names::<ScheduleTiming>());
        from_value::<RunConfig>(&without_keys(&body, &own))?;
        let w: WizardSchedule = from_value(&body)?;
        p.schedules().create_from_config(w).await?
    };
    Ok(created(schedule))
}

fn created(s: TrainingSchedule) -> (StatusCode, Json<ScheduleResponse>) {
    let message = format!("Schedule '{}' created successfully", s.name);
    (StatusCode::CREATED, schedule_response(s, Some(message)))
}

/// Body of from-run: the source run and the schedule.
#[derive(Deserialize)]
pub struct FromRunBody {
    pub source_training_run_id: RunId,
    #[serde(flatten)]
    pub schedule: NewSchedule,
}

impl utoipa::PartialSchema for FromRunBody {
    fn schema() -> RefOr<Schema> {
        schema::object(
            "A schedule that retrains a run's model with the run's config",
            vec![
                (
                    "source_training_run_id",
                    schema::integer("Source training run id"),
                ),
                ("name", schema::name("Schedule name", MAX_SCHEDULE_NAME)),
                ("schedule_type", params::schedule_type_schema()),
            ],
            with_timing(vec![("description", schema::string("Free text"))]),
            &Default::default(),
        )
    }
}

impl ToSchema for FromRunBody {}

/// Create a schedule from a training run (one schedule per registered model: 409 otherwise).
#[utoipa::path(post, path = "/api/training/schedules/from-run/", tag = "schedules",
    request_body = FromRunBody,
    responses((status = 201, body = ScheduleResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_from_run(
    State(p): State<Platform>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<ScheduleResponse>), ApiError> {
    check_parts(&body)?;
    refuse_unknown_keys(
        &body,
        &NewSchedule::known_fields(&["source_training_run_id"]),
    )?;
    let b: FromRunBody = from_value(&body)?;
    let s = p
        .schedules()
        .create_from_run(b.source_training_run_id, b.schedule)
        .await?;
    Ok(created(s))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// The run a schedule would be created from.
    #[param(value_type = i64, required = true)]
    pub source_run_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PreviewResponse {
    pub success: bool,
    #[schema(value_type = Object)]
    pub preview: SchedulePreview,
}

/// What a schedule created from a run would train.
#[utoipa::path(get, path = "/api/training/schedules/preview/", tag = "schedules",
    params(PreviewQuery),
    responses((status = 200, body = PreviewResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn preview(
    State(p): State<Platform>,
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> Result<Json<PreviewResponse>, ApiError> {
    let id = params::number::<RunId>("source_run_id", &q.source_run_id)?
        .ok_or_else(|| ApiError::bad_request("source_run_id", "source_run_id: is required"))?;
    Ok(Json(PreviewResponse {
        success: true,
        preview: p.schedules().preview(id).await?,
    }))
}

/// Get a schedule with its statistics.
#[utoipa::path(get, path = "/api/training/schedules/{id}/", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleResponse), (status = 404, body = ErrorBody)))]
pub async fn get_schedule(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<ScheduleId>,
) -> Result<Json<ScheduleResponse>, ApiError> {
    Ok(schedule_response(p.schedules().get(id).await?, None))
}

/// The spec's PUT body: name, description and timing fields, flat; absent fields keep their
/// value. The training config stays frozen.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub schedule_type: Option<ScheduleType>,
    pub scheduled_datetime: Option<DateTime<Utc>>,
    pub schedule_time: Option<String>,
    pub schedule_day_of_week: Option<u8>,
    pub schedule_day_of_month: Option<u8>,
    pub schedule_timezone: Option<String>,
    pub catch_up: Option<CatchUpPolicy>,
    pub concurrency: Option<ConcurrencyPolicy>,
}

impl From<EditBody> for ScheduleEdit {
    /// The timing fields given become a patch the service lays over the current timing
    /// inside its write (no read-then-write here).
    fn from(b: EditBody) -> Self {
        let timing = TimingPatch {
            schedule_type: b.schedule_type,
            scheduled_datetime: b.scheduled_datetime,
            schedule_time: b.schedule_time,
            schedule_day_of_week: b.schedule_day_of_week,
            schedule_day_of_month: b.schedule_day_of_month,
            schedule_timezone: b.schedule_timezone,
        };
        ScheduleEdit {
            name: b.name,
            description: b.description,
            timing: (!timing.is_empty()).then_some(timing),
            catch_up: b.catch_up,
            concurrency: b.concurrency,
        }
    }
}

impl utoipa::PartialSchema for EditBody {
    fn schema() -> RefOr<Schema> {
        schema::object(
            "Name, description and timing; absent fields keep their value",
            vec![],
            with_timing(vec![
                ("name", schema::name("Schedule name", MAX_SCHEDULE_NAME)),
                ("description", schema::string("Free text")),
            ]),
            &Default::default(),
        )
    }
}

impl ToSchema for EditBody {}

/// Edit a schedule's name, description and timing (active or paused schedules only).
#[utoipa::path(put, path = "/api/training/schedules/{id}/", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id")), request_body = EditBody,
    responses((status = 200, body = ScheduleResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn edit_schedule(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<ScheduleId>,
    ApiJson(body): ApiJson<EditBody>,
) -> Result<Json<ScheduleResponse>, ApiError> {
    let s = p.schedules().edit(id, &body.into()).await?;
    Ok(schedule_response(
        s,
        Some("Schedule updated successfully".into()),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct DeletedResponse {
    pub success: bool,
    pub message: String,
}

/// Delete a schedule (and its trigger), freeing its registered model for a new one.
#[utoipa::path(delete, path = "/api/training/schedules/{id}/", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 200, body = DeletedResponse), (status = 404, body = ErrorBody)))]
pub async fn delete_schedule(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<ScheduleId>,
) -> Result<Json<DeletedResponse>, ApiError> {
    p.schedules().delete(id).await?;
    Ok(Json(DeletedResponse {
        success: true,
        message: format!("Schedule {id} deleted"),
    }))
}

/// Pause an active schedule.
#[utoipa::path(post, path = "/api/training/schedules/{id}/pause/", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn pause_schedule(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<ScheduleId>,
) -> Result<Json<ScheduleResponse>, ApiError> {
    Ok(schedule_response(p.schedules().pause(id).await?, None))
}

/// Resume a paused schedule (fires missed while paused are not caught up).
#[utoipa::path(post, path = "/api/training/schedules/{id}/resume/", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn resume_schedule(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<ScheduleId>,
) -> Result<Json<ScheduleResponse>, ApiError> {
    Ok(schedule_response(p.schedules().resume(id).await?, None))
}

/// Cancel a schedule for good (the record stays; delete removes it).
#[utoipa::path(post, path = "/api/training/schedules/{id}/cancel/", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn cancel_schedule(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<ScheduleId>,
) -> Result<Json<ScheduleResponse>, ApiError> {
    Ok(schedule_response(p.schedules().cancel(id).await?, None))
}

#[derive(Serialize, ToSchema)]
pub struct TriggerResponse {
    pub success: bool,
    /// The run this fire created (or had already created); null when skipped.
    pub training_run_id: Option<RunId>,
    /// `{"outcome": "created" | "already_fired" | "skipped", ...}`
    #[schema(value_type = Object)]
    pub result: FireOutcome,
}

/// Fire a schedule now, outside its timetable (paused schedules too).
#[utoipa::path(post, path = "/api/training/schedules/{id}/trigger/", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id")),
    responses((status = 200, body = TriggerResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn trigger_schedule(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<ScheduleId>,
) -> Result<Json<TriggerResponse>, ApiError> {
    let outcome = p.schedules().trigger_now(id).await?;
    let training_run_id = match &outcome {
        FireOutcome::Created { run } | FireOutcome::AlreadyFired { run } => Some(run.id),
        FireOutcome::Skipped { .. } => None,
    };
    Ok(Json(TriggerResponse {
        success: true,
        training_run_id,
        result: outcome,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpcomingQuery {
    /// How many fires (1-1000, default 5).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub count: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UpcomingResponse {
    pub success: bool,
    /// RFC 3339 times in the schedule's time zone.
    pub fires: Vec<String>,
}

/// The next fires of a schedule.
#[utoipa::path(get, path = "/api/training/schedules/{id}/upcoming/", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id"), UpcomingQuery),
    responses((status = 200, body = UpcomingResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn upcoming(
    State(p): State<Platform>,
    ApiPath(id): ApiPath<ScheduleId>,
    ApiQuery(q): ApiQuery<UpcomingQuery>,
) -> Result<Json<UpcomingResponse>, ApiError> {
    let count = params::number::<usize>("count", &q.count)?.unwrap_or(5);
    let fires = p.schedules().upcoming(id, count).await?;
    Ok(Json(UpcomingResponse {
        success: true,
        fires: fires.iter().map(rfc3339_local).collect(),
    }))
}
