//! Reading query parameters with the parameter named in the error, pagination, and the OpenAPI
//! schemas of the core enums (built from the enums themselves, so they cannot drift).

use std::str::FromStr;

use serde::Serialize;
use trainyard_core::model_config::ModelType;
use trainyard_core::schedule::{CatchUpPolicy, ConcurrencyPolicy, ScheduleStatus, ScheduleType};
use trainyard_core::RunStatus;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

use super::error::ApiError;

pub use crate::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// An optional number parameter; a value that is not one is a 400 naming `field`.
pub fn number<T: FromStr>(field: &str, raw: &Option<String>) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    raw.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<T>()
                .map_err(|e| ApiError::bad_request(field, format!("{field}: {s:?}: {e}")))
        })
        .transpose()
}

/// A boolean parameter: true/false/1/0.
pub fn boolean(field: &str, raw: &Option<String>) -> Result<Option<bool>, ApiError> {
    match raw.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if s == "true" || s == "1" => Ok(Some(true)),
        Some(s) if s == "false" || s == "0" => Ok(Some(false)),
        Some(s) => Err(ApiError::bad_request(
            field,
            format!("{field}: {s:?} is not true or false"),
        )),
    }
}

/// A value of a snake_case enum of the domain (as serde names it).
pub fn enum_value<T>(field: &str, raw: &str, allowed: &[T]) -> Result<T, ApiError>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    serde_json::from_value(serde_json::Value::String(raw.trim().to_string())).map_err(|_| {
        ApiError::bad_request(
            field,
            format!(
                "{field}: {raw:?} is not one of {}",
                names(allowed).join(", ")
            ),
        )
    })
}

fn names<T: Serialize>(values: &[T]) -> Vec<String> {
    values
        .iter()
        .filter_map(|v| match serde_json::to_value(v) {
            Ok(serde_json::Value::String(s)) => Some(s),
            _ => None,
        })
        .collect()
}

/// Page and page size: page from 1, size 1..=MAX_PAGE_SIZE.
pub fn page(page: &Option<String>, page_size: &Option<String>) -> Result<(u32, u32), ApiError> {
    let p = number::<u32>("page", page)?.unwrap_or(1);
    if p == 0 {
        return Err(ApiError::bad_request("page", "page: starts at 1"));
    }
    let size = number::<u32>("page_size", page_size)?.unwrap_or(DEFAULT_PAGE_SIZE);
    if size == 0 || size > MAX_PAGE_SIZE {
        return Err(ApiError::bad_request(
            "page_size",
            format!("page_size: must be 1 to {MAX_PAGE_SIZE}"),
        ));
    }
    Ok((p, size))
}

pub use crate::Pagination;

// The variant lists below are checked by an exhaustive match, so a new variant in core is a
// compile error here rather than a schema that silently lacks it.

pub fn model_types() -> [ModelType; 3] {
    let _exhaustive = |m: ModelType| match m {
        ModelType::Retrieval | ModelType::Ranking | ModelType::Multitask => {}
    };
    [
        ModelType::Retrieval,
        ModelType::Ranking,
        ModelType::Multitask,
    ]
}

pub fn schedule_types() -> [ScheduleType; 6] {
    let _exhaustive = |t: ScheduleType| match t {
        ScheduleType::Now
        | ScheduleType::Once
        | ScheduleType::Hourly
        | ScheduleType::Daily
        | ScheduleType::Weekly
        | ScheduleType::Monthly => {}
    };
    [
        ScheduleType::Now,
        ScheduleType::Once,
        ScheduleType::Hourly,
        ScheduleType::Daily,
        ScheduleType::Weekly,
        ScheduleType::Monthly,
    ]
}

pub fn schedule_statuses() -> [ScheduleStatus; 4] {
    let _exhaustive = |s: ScheduleStatus| match s {
        ScheduleStatus::Active
        | ScheduleStatus::Paused
        | ScheduleStatus::Completed
        | ScheduleStatus::Cancelled => {}
    };
    [
        ScheduleStatus::Active,
        ScheduleStatus::Paused,
        ScheduleStatus::Completed,
        ScheduleStatus::Cancelled,
    ]
}

pub fn catch_up_policies() -> [CatchUpPolicy; 3] {
    let _exhaustive = |c: CatchUpPolicy| match c {
        CatchUpPolicy::Once | CatchUpPolicy::All | CatchUpPolicy::Skip => {}
    };
    [CatchUpPolicy::Once, CatchUpPolicy::All, CatchUpPolicy::Skip]
}

pub fn concurrency_policies() -> [ConcurrencyPolicy; 3] {
    let _exhaustive = |c: ConcurrencyPolicy| match c {
        ConcurrencyPolicy::Skip | ConcurrencyPolicy::Queue | ConcurrencyPolicy::Allow => {}
    };
    [
        ConcurrencyPolicy::Skip,
        ConcurrencyPolicy::Queue,
        ConcurrencyPolicy::Allow,
    ]
}

fn string_enum<T: Serialize>(values: &[T], description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names(values)))
        .description(Some(description))
        .into()
}

/// The `status` filter: one status, or several separated by commas.
pub fn run_status_filter_schema() -> RefOr<Schema> {
    let one = names(&RunStatus::ALL).join("|");
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^({one})(,({one}))*$")))
        .description(Some(
            "One training run status, or several separated by commas",
        ))
        .into()
}

pub fn model_type_schema() -> RefOr<Schema> {
    string_enum(&model_types(), "Model type")
}

pub fn schedule_type_schema() -> RefOr<Schema> {
    string_enum(&schedule_types(), "Schedule type")
}

pub fn schedule_status_schema() -> RefOr<Schema> {
    string_enum(&schedule_statuses(), "Schedule status")
}

pub fn catch_up_schema() -> RefOr<Schema> {
    string_enum(
        &catch_up_policies(),
        "What the scheduler does with fires missed while it was down",
    )
}

pub fn concurrency_schema() -> RefOr<Schema> {
    string_enum(
        &concurrency_policies(),
        "What a fire does while the previous run is still active",
    )
}
