//! TrainingSchedule: recurring (or one-time) retraining of one RegisteredModel from a frozen
//! training config.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::run::{RegisteredModelId, RunConfig, RunId, ScheduleId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleType {
    Once,
    Hourly,
    Daily,
    Weekly,
    Monthly,
}

impl ScheduleType {
    pub fn is_recurring(self) -> bool {
        self != ScheduleType::Once
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleStatus {
    #[default]
    Active,
    Paused,
    Completed,
    Cancelled,
}

impl ScheduleStatus {
    /// Timing fields may be edited only while active or paused.
    pub fn is_editable(self) -> bool {
        matches!(self, ScheduleStatus::Active | ScheduleStatus::Paused)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSchedule {
    pub id: ScheduleId,
    pub name: String,
    pub description: String,
    pub ml_model: String,
    /// Exactly one schedule per registered model (enforced by the store's schema).
    pub registered_model_id: RegisteredModelId,
    pub source_training_run_id: Option<RunId>,

    pub schedule_type: ScheduleType,
    pub scheduled_datetime: Option<DateTime<Utc>>,
    /// "HH:MM"; for hourly only the minute counts.
    pub schedule_time: Option<String>,
    /// 0=Monday .. 6=Sunday
    pub schedule_day_of_week: Option<u8>,
    /// 1..=31
    pub schedule_day_of_month: Option<u8>,
    /// IANA time zone name.
    pub schedule_timezone: String,

    /// Training configuration frozen at creation.
    pub training_config: RunConfig,

    pub cloud_scheduler_job_name: String,

    pub status: ScheduleStatus,
    pub last_run_at: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub total_runs: u32,
    pub successful_runs: u32,
    pub failed_runs: u32,

    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl TrainingSchedule {
    pub fn is_active(&self) -> bool {
        self.status == ScheduleStatus::Active
    }

    /// Percentage of successful runs; None before the first run.
    pub fn success_rate(&self) -> Option<f64> {
        (self.total_runs > 0)
            .then(|| f64::from(self.successful_runs) / f64::from(self.total_runs) * 100.0)
    }
}
