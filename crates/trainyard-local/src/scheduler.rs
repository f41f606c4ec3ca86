//! The embedded scheduler: polls the Store for due schedules, fires each through a
//! [`ScheduleFirer`] (idempotent per schedule and fire time), then advances `next_run_at`
//! with an optimistic write. Firing before advancing is what makes a crash safe: a restarted
//! or concurrent scheduler re-fires the same key, which creates nothing new, and then advances.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use trainyard_core::ports::{Clock, FireOutcome, ScheduleFirer, Store};
use trainyard_core::schedule::{CatchUpPolicy, ScheduleStatus, TrainingSchedule};
use trainyard_core::{Error, Result};

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How often the store is polled for due schedules.
    pub tick: Duration,
    /// Most schedules handled per poll.
    pub batch: u32,
    /// Under `CatchUpPolicy::Skip`, a fire later than this counts as missed.
    pub skip_grace: chrono::Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            tick: Duration::from_millis(500),
            batch: 200,
            skip_grace: chrono::Duration::seconds(60),
        }
    }
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    pub created: usize,
    pub already_fired: usize,
    pub skipped: usize,
    pub errors: usize,
}

pub struct EmbeddedScheduler {
    store: Arc<dyn Store>,
    firer: Arc<dyn ScheduleFirer>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
}

const CONFLICT_RETRIES: usize = 8;

impl EmbeddedScheduler {
    pub fn new(
        store: Arc<dyn Store>,
        firer: Arc<dyn ScheduleFirer>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
    ) -> Self {
        EmbeddedScheduler {
            store,
            firer,
            clock,
            config,
        }
    }

    /// Fires everything due now. A schedule whose fire fails is left due and retried next tick.
    pub async fn tick(&self) -> Result<TickReport> {
        let now = self.clock.now();
        let mut report = TickReport::default();
        for schedule in self.store.due_schedules(now, self.config.batch).await? {
            let id = schedule.id;
            if let Err(e) = self.process(schedule, now, &mut report).await {
                report.errors += 1;
                tracing::warn!(schedule_id = id, error = %e, "schedule fire failed; will retry");
            }
        }
        Ok(report)
    }

    async fn process(
        &self,
        mut s: TrainingSchedule,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<()> {
        for _ in 0..CONFLICT_RETRIES {
            let Some(due) = s
                .next_run_at
                .filter(|t| *t <= now && s.status == ScheduleStatus::Active)
            else {
                return Ok(()); // another scheduler advanced it, or it was paused meanwhile
            };
            let (fire, next) = match s.catch_up {
                CatchUpPolicy::Once => (Some(due), s.timing.next_after(now)?),
                CatchUpPolicy::All => (Some(due), s.timing.next_after(due)?),
                // A `now` schedule's one fire is never "missed": it was asked for at once.
                CatchUpPolicy::Skip
                    if now - due > self.config.skip_grace
                        && !s.timing.schedule_type.fires_on_creation() =>
                {
                    (None, s.timing.next_after(now)?)
                }
                CatchUpPolicy::Skip => (Some(due), s.timing.next_after(now)?),
            };
            if let Some(at) = fire {
                match self.firer.fire(s.id, at).await? {
                    FireOutcome::Created { .. } => report.created += 1,
                    FireOutcome::AlreadyFired { .. } => report.already_fired += 1,
                    FireOutcome::Skipped { reason } => {
                        report.skipped += 1;
                        tracing::info!(schedule_id = s.id, %at, %reason, "fire skipped");
                    }
                }
            } else {
                report.skipped += 1;
                tracing::info!(schedule_id = s.id, %due, "missed fire skipped (catch_up: skip)");
            }
            s.next_run_at = next;
            if next.is_none() {
                s.status = ScheduleStatus::Completed;
            }
            s.updated_at = now;
            match self.store.update_schedule(&s).await {
                Ok(_) => return Ok(()),
                Err(Error::Conflict(_)) => s = self.store.get_schedule(s.id).await?,
                Err(Error::NotFound { .. }) => return Ok(()), // deleted meanwhile
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(format!(
            "schedule {} kept changing under the scheduler",
            s.id
        )))
    }

    /// Ticks until `shutdown` resolves.
    pub async fn run<F: Future<Output = ()>>(&self, shutdown: F) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            match self.tick().await {
                Ok(r) if r != TickReport::default() => tracing::debug!(?r, "scheduler tick"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "scheduler poll failed; retrying"),
            }
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep(self.config.tick) => {}
            }
        }
    }
}
