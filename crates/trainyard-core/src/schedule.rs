//! TrainingSchedule: recurring (or one-time) retraining of one RegisteredModel from a frozen
//! training config.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::run::{RegisteredModelId, RunConfig, RunId, ScheduleId};
use crate::timing::ScheduleTiming;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleType {
    /// Fires once, immediately: its fire time is the instant it is created (or its timing is
    /// edited to `now`); afterwards it is a finished one-time schedule.
    Now,
    Once,
    Hourly,
    Daily,
    Weekly,
    Monthly,
}

impl ScheduleType {
    pub fn is_recurring(self) -> bool {
        !matches!(self, ScheduleType::Now | ScheduleType::Once)
    }

    /// Whether the schedule fires when it is created rather than at a time of its timing.
    pub fn fires_on_creation(self) -> bool {
        self == ScheduleType::Now
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

/// What the scheduler does with fires missed while it was down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUpPolicy {
    /// One run for the whole missed window (keyed by its first missed fire).
    #[default]
    Once,
    /// One run per missed fire.
    All,
    /// No run for missed fires; wait for the next one.
    Skip,
}

/// What a fire does while the previous run of the same schedule is still active.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyPolicy {
    /// No run for this fire.
    #[default]
    Skip,
    /// Create the run as `scheduled`; it is submitted when the previous one finishes.
    Queue,
    /// Create and submit the run anyway.
    Allow,
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

    #[serde(flatten)]
    pub timing: ScheduleTiming,
    #[serde(default)]
    pub catch_up: CatchUpPolicy,
    #[serde(default)]
    pub concurrency: ConcurrencyPolicy,

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
