//! How entities map to table rows: full JSON in `data`, plus the columns queries filter,
//! join and constrain on. Shared by every SQL backend.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use trainyard_core::registry::{DeployedEndpoint, RegisteredModel, RegistryEvent};
use trainyard_core::run::TrainingRun;
use trainyard_core::schedule::TrainingSchedule;
use trainyard_core::{Error, ValidationError};

pub(crate) fn storage(e: impl std::fmt::Display) -> Error {
    let message = e.to_string();
    readonly::note(&message);
    Error::Storage(message)
}

/// Recycling of SQLite connections after a "readonly database" error. SQLite opens a file it
/// cannot write read-only without saying so, and such a connection stays read-only after the
/// file is writable again: without this, the pool kept failing a share of writes until a
/// restart. Every connection that existed when such an error was seen is closed instead of
/// reused (newer ones are recycled by their own error).
pub(crate) mod readonly {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    static START: OnceLock<Instant> = OnceLock::new();
    /// Nanoseconds since START of the last readonly error, plus one (0: never).
    static LAST: AtomicU64 = AtomicU64::new(0);

    fn now() -> u64 {
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
    }

    /// Records `message` when it is SQLite's readonly error (code 8 and its extended codes).
    pub(crate) fn note(message: &str) {
        if message.contains("readonly database") || message.contains("(code: 8)") {
            LAST.store(now(), Ordering::SeqCst);
        }
    }

    /// Whether a connection `age` old was open when the last readonly error happened.
    pub(crate) fn is_stale(age: Duration) -> bool {
        let last = LAST.load(Ordering::SeqCst);
        last != 0 && now().saturating_sub(age.as_nanos() as u64) <= last
    }
}

/// Maps constraint violations to the domain's kinds; everything else is a storage error.
pub(crate) fn db_error(e: sqlx::Error, what: &str) -> Error {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return Error::Conflict(format!("{what} already exists ({})", db.message()));
        }
        if db.is_foreign_key_violation() {
            return Error::Validation(ValidationError::field(
                what,
                "refers to a record that does not exist",
            ));
        }
    }
    storage(e)
}

/// Fixed-width UTC text: sorts in time order.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_ts(s: &str) -> trainyard_core::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)
        .map_err(storage)?
        .with_timezone(&Utc))
}

pub(crate) fn enum_str<T: Serialize>(v: &T) -> trainyard_core::Result<String> {
    match serde_json::to_value(v).map_err(storage)? {
        serde_json::Value::String(s) => Ok(s),
        other => Err(Error::Storage(format!(
            "expected a string enum, got {other}"
        ))),
    }
}

/// A column value to bind.
pub(crate) enum Col {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

/// An entity stored as JSON with `id` and `version` columns beside it.
pub(crate) trait Stored: Serialize + DeserializeOwned + Clone + Send + Sync {
    const TABLE: &'static str;
    const ENTITY: &'static str;
    fn identity(&self) -> (i64, i64);
    fn set_identity(&mut self, id: i64, version: i64);
    /// The columns besides id/version/data, as (name, value).
    fn columns(&self) -> trainyard_core::Result<Vec<(&'static str, Col)>>;
}

macro_rules! identity {
    () => {
        fn identity(&self) -> (i64, i64) {
            (self.id, self.version)
        }
        fn set_identity(&mut self, id: i64, version: i64) {
            self.id = id;
            self.version = version;
        }
    };
}

impl Stored for TrainingRun {
    const TABLE: &'static str = "training_runs";
    const ENTITY: &'static str = "training run";
    identity!();
    fn columns(&self) -> trainyard_core::Result<Vec<(&'static str, Col)>> {
        Ok(vec![
            ("ml_model", Col::Text(self.ml_model.clone())),
            ("run_number", Col::Int(i64::from(self.run_number))),
            ("name", Col::Text(self.name.clone())),
            ("status", Col::Text(self.status.as_str().into())),
            ("model_type", Col::Text(enum_str(&self.model_type())?)),
            ("registered_model_id", Col::OptInt(self.registered_model_id)),
            ("created_at", Col::Text(ts(self.created_at))),
            ("schedule_id", Col::OptInt(self.schedule_id)),
            (
                "scheduled_fire_at",
                Col::OptText(self.scheduled_fire_at.map(ts)),
            ),
            // The control plane's work queue: indexed, so finding due runs reads no history.
            (
                "next_step",
                Col::OptText(self.next_step().map(|s| s.as_str().to_string())),
            ),
            // Indexed: from an MLflow run back to the trainyard run that logged it.
            ("mlflow_run_id", Col::OptText(self.mlflow_run_id.clone())),
        ])
    }
}

impl Stored for RegisteredModel {
    const TABLE: &'static str = "registered_models";
    const ENTITY: &'static str = "registered model";
    identity!();
    fn columns(&self) -> trainyard_core::Result<Vec<(&'static str, Col)>> {
        Ok(vec![
            ("ml_model", Col::Text(self.ml_model.clone())),
            ("model_name", Col::Text(self.model_name.clone())),
            ("model_type", Col::Text(enum_str(&self.model_type)?)),
        ])
    }
}

impl Stored for TrainingSchedule {
    const TABLE: &'static str = "training_schedules";
    const ENTITY: &'static str = "schedule";
    identity!();
    fn columns(&self) -> trainyard_core::Result<Vec<(&'static str, Col)>> {
        Ok(vec![
            ("registered_model_id", Col::Int(self.registered_model_id)),
            ("ml_model", Col::Text(self.ml_model.clone())),
            ("status", Col::Text(enum_str(&self.status)?)),
            ("next_run_at", Col::OptText(self.next_run_at.map(ts))),
        ])
    }
}

impl Stored for DeployedEndpoint {
    const TABLE: &'static str = "deployed_endpoints";
    const ENTITY: &'static str = "endpoint";
    identity!();
    fn columns(&self) -> trainyard_core::Result<Vec<(&'static str, Col)>> {
        Ok(vec![
            ("registered_model_id", Col::Int(self.registered_model_id)),
            ("service_name", Col::Text(self.service_name.clone())),
            ("is_active", Col::Int(i64::from(self.is_active))),
        ])
    }
}

impl Stored for RegistryEvent {
    const TABLE: &'static str = "registry_events";
    const ENTITY: &'static str = "registry event";
    identity!();
    fn columns(&self) -> trainyard_core::Result<Vec<(&'static str, Col)>> {
        Ok(vec![(
            "registered_model_id",
            Col::Int(self.registered_model_id),
        )])
    }
}
