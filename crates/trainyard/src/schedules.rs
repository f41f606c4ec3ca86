//! ScheduleService: retraining schedules of registered models, their timing, and their fires.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use trainyard_core::ports::{Clock, FireOutcome, RunFilter, ScheduleFirer, ScheduleTrigger, Store};
use trainyard_core::registry::RegisteredModel;
use trainyard_core::run::{
    validate_name, NewTrainingRun, RegisteredModelId, RunConfig, RunId, ScheduleId, TrainingRun,
};
use trainyard_core::schedule::ScheduleType;
use trainyard_core::schedule::{
    CatchUpPolicy, ConcurrencyPolicy, ScheduleStatus, TrainingSchedule,
};
use trainyard_core::timing::{ScheduleTiming, TimingPatch};
use trainyard_core::{Error, Result, RunEvent, RunStatus, ValidationError};

use crate::listing::{Page, PageRequest, ScheduleFilter};
use crate::records::CONFLICT_RETRIES;
use crate::registry::RegistryService;

/// Longest schedule name (the spec's CharField(100)).
pub const MAX_SCHEDULE_NAME: usize = 100;

/// What a caller gives to create a schedule (besides the training config's source).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewSchedule {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(flatten)]
    pub timing: ScheduleTiming,
    #[serde(default)]
    pub catch_up: CatchUpPolicy,
    #[serde(default)]
    pub concurrency: ConcurrencyPolicy,
}

impl NewSchedule {
    /// Its own keys besides the timing's ([`ScheduleTiming`]).
    pub const OWN_FIELDS: [&'static str; 4] = ["name", "description", "catch_up", "concurrency"];

    /// Every key a schedule body may have, `extra` (the body's own, e.g. the source run) too.
    pub fn known_fields(extra: &[&'static str]) -> Vec<&'static str> {
        let mut known = extra.to_vec();
        known.extend_from_slice(&Self::OWN_FIELDS);
        known.extend_from_slice(trainyard_core::strict::field_names::<ScheduleTiming>());
        known
    }

    /// Reads a schedule from JSON, refusing unknown keys with the nearest valid name.
    pub fn from_json(value: &serde_json::Value) -> Result<NewSchedule> {
        trainyard_core::strict::check_keys(value, &Self::known_fields(&[]), "")?;
        serde_json::from_value(value.clone()).map_err(|e| {
            Error::Validation(ValidationError::field(
                "schedule",
                trainyard_core::strict::explain(&e.to_string()),
            ))
        })
    }
}

/// The spec's wizard mode: a model name, its training config and the schedule, in one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WizardSchedule {
    pub ml_model: String,
    /// The RegisteredModel's name (created when missing).
    pub name: String,
    /// Defaults to "{name} - Retraining".
    #[serde(default)]
    pub schedule_name: Option<String>,
    #[serde(default)]
    pub schedule_description: String,
    #[serde(flatten)]
    pub config: RunConfig,
    #[serde(flatten)]
    pub timing: ScheduleTiming,
    #[serde(default)]
    pub catch_up: CatchUpPolicy,
    #[serde(default)]
    pub concurrency: ConcurrencyPolicy,
}

impl WizardSchedule {
    /// Its own keys besides the run config's and the timing's.
    pub const OWN_FIELDS: [&'static str; 6] = [
        "ml_model",
        "name",
        "schedule_name",
        "schedule_description",
        "catch_up",
        "concurrency",
    ];

    /// Every key a wizard body may have.
    pub fn known_fields() -> Vec<&'static str> {
        let mut known = Self::OWN_FIELDS.to_vec();
        known.extend_from_slice(trainyard_core::strict::field_names::<RunConfig>());
        known.extend_from_slice(trainyard_core::strict::field_names::<ScheduleTiming>());
        known
    }

    /// Reads a wizard body from JSON, refusing unknown keys (top level and nested) with the
    /// nearest valid name.
    pub fn from_json(value: &serde_json::Value) -> Result<WizardSchedule> {
        trainyard_core::strict::check_keys(value, &Self::known_fields(), "")?;
        let invalid = |e: serde_json::Error| {
            Error::Validation(ValidationError::field(
                "schedule",
                trainyard_core::strict::explain(&e.to_string()),
            ))
        };
        // The run config on its own first: flattened, its parts' unknown fields would pass.
        let mut own = Self::OWN_FIELDS.to_vec();
        own.extend_from_slice(trainyard_core::strict::field_names::<ScheduleTiming>());
        if let serde_json::Value::Object(m) = value {
            let config: serde_json::Map<_, _> = m
                .iter()
                .filter(|(k, _)| !own.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            serde_json::from_value::<RunConfig>(config.into()).map_err(invalid)?;
        }
        serde_json::from_value(value.clone()).map_err(invalid)
    }
}

/// Editable fields (timing, name, description); the training config stays frozen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEdit {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Timing fields to change, laid over the current timing inside the write's conflict
    /// retry (absent fields keep their value; a whole timing replaces every field).
    #[serde(default)]
    pub timing: Option<TimingPatch>,
    #[serde(default)]
    pub catch_up: Option<CatchUpPolicy>,
    #[serde(default)]
    pub concurrency: Option<ConcurrencyPolicy>,
}

/// The spec's preview of what a schedule created from a run would train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulePreview {
    pub source_run_id: RunId,
    pub source_run_name: String,
    pub source_run_number: u32,
    pub dataset_name: String,
    pub model_type: trainyard_core::ModelType,
    pub registered_model_id: Option<RegisteredModelId>,
    #[serde(flatten)]
    pub config: RunConfig,
}

/// What a run's `schedule_config` did to its model's schedule (the spec's Edit feature).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunScheduleSync {
    /// `schedule_type: "now"` (the default): the run asks for no schedule; any schedule of
    /// its model is left alone.
    NotRequested,
    /// The model had no schedule; this one was created from the run's config.
    Created { schedule: Box<TrainingSchedule> },
    /// The model's schedule took the run's timing (a finished one is active again, with the
    /// run's training config; a paused one stays paused).
    Updated { schedule: Box<TrainingSchedule> },
    /// The model's schedule already had this timing.
    Unchanged { schedule: Box<TrainingSchedule> },
    /// Nothing to schedule: a one-time date that has passed, or a cancelled schedule.
    NotScheduled {
        reason: String,
        schedule_id: Option<ScheduleId>,
    },
}

#[derive(Clone)]
pub struct ScheduleService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    registry: RegistryService,
    trigger: Option<Arc<dyn ScheduleTrigger>>,
    writer: ScheduleWriter,
}

/// Writes schedule records and keeps the external trigger in step with them. It needs only
/// the store, the clock and the trigger, so run creation can use it without a ScheduleService.
#[derive(Clone)]
pub(crate) struct ScheduleWriter {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    trigger: Option<Arc<dyn ScheduleTrigger>>,
}

/// Applies a run's `schedule_config` to its model's schedule: creates the schedule (training
/// the run's config) when the model has none, or moves the schedule's timing to the run's.
/// `now` asks for nothing. Called where runs are created and where their config is edited.
pub(crate) async fn apply_run_schedule_config(
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    trigger: Option<&Arc<dyn ScheduleTrigger>>,
    run: &TrainingRun,
) -> Result<RunScheduleSync> {
    ScheduleWriter {
        store: store.clone(),
        clock: clock.clone(),
        trigger: trigger.cloned(),
    }
    .sync_from_run(run)
    .await
}

fn validate_schedule_name(name: &str) -> Result<(), ValidationError> {
    validate_name("name", name)?;
    if name.chars().count() > MAX_SCHEDULE_NAME {
        return Err(ValidationError::field(
            "name",
            "must be at most 100 characters",
        ));
    }
    Ok(())
}

/// Training succeeded for these; `failed` counts only failures (a cancel is neither).
fn training_succeeded(s: RunStatus) -> bool {
    matches!(
        s,
        RunStatus::Completed
            | RunStatus::NotBlessed
            | RunStatus::Deploying
            | RunStatus::Deployed
            | RunStatus::DeployFailed
    )
}

impl ScheduleService {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        trigger: Option<Arc<dyn ScheduleTrigger>>,
    ) -> Self {
        let registry = RegistryService::new(store.clone(), clock.clone());
        let writer = ScheduleWriter {
            store: store.clone(),
            clock: clock.clone(),
            trigger: trigger.clone(),
        };
        ScheduleService {
            store,
            clock,
            registry,
            trigger,
            writer,
        }
    }

    /// The spec's Edit feature for a stored run: its `schedule_config` creates or updates its
    /// model's schedule (runs created or edited through TrainingService do this themselves).
    pub async fn apply_run_config(&self, run_id: RunId) -> Result<RunScheduleSync> {
        let run = self.store.get_run(run_id).await?;
        self.writer.sync_from_run(&run).await
    }

    /// A schedule that retrains a run's model with the run's config.
    pub async fn create_from_run(
        &self,
        run_id: RunId,
        new: NewSchedule,
    ) -> Result<TrainingSchedule> {
        let run = self.store.get_run(run_id).await?;
        let model = self
            .registry
            .get_or_create_for_training(
                &run.ml_model,
                &run.name,
                run.model_type(),
                &run.description,
            )
            .await?;
        if run.registered_model_id != Some(model.id) {
            let mut linked = run.clone();
            linked.registered_model_id = Some(model.id);
            self.store.update_run(&linked).await?;
        }
        self.create(&model, run.config.clone(), Some(run.id), new)
            .await
    }

    /// The wizard's "Schedule" button: creates the RegisteredModel when missing.
    pub async fn create_from_config(&self, wizard: WizardSchedule) -> Result<TrainingSchedule> {
        NewTrainingRun {
            ml_model: wizard.ml_model.clone(),
            name: wizard.name.clone(),
            description: String::new(),
            config: wizard.config.clone(),
        }
        .validate()?;
        let model = self
            .registry
            .get_or_create_for_training(
                &wizard.ml_model,
                &wizard.name,
                wizard.config.model_type(),
                "",
            )
            .await?;
        let schedule = NewSchedule {
            name: wizard
                .schedule_name
                .unwrap_or_else(|| format!("{} - Retraining", wizard.name)),
            description: wizard.schedule_description,
            timing: wizard.timing,
            catch_up: wizard.catch_up,
            concurrency: wizard.concurrency,
        };
        self.create(&model, wizard.config, None, schedule).await
    }

    /// A schedule for a registered model, with the config of its newest run.
    pub async fn create_for_model(
        &self,
        model_id: RegisteredModelId,
        new: NewSchedule,
    ) -> Result<TrainingSchedule> {
        let model = self.store.get_registered_model(model_id).await?;
        let newest = self
            .store
            .list_runs(&RunFilter {
                registered_model_id: Some(model_id),
                page_size: 1,
                ..RunFilter::default()
            })
            .await?
            .runs
            .pop()
            .ok_or_else(|| {
                Error::Validation(ValidationError::field(
                    "registered_model_id",
                    format!(
                        "model {:?} has no training run to take a config from",
                        model.model_name
                    ),
                ))
            })?;
        self.create(&model, newest.config, Some(newest.id), new)
            .await
    }

    async fn create(
        &self,
        model: &RegisteredModel,
        config: RunConfig,
        source: Option<RunId>,
        new: NewSchedule,
    ) -> Result<TrainingSchedule> {
        let saved = self.writer.insert(model, config, source, new).await?;
        if saved.timing.schedule_type.fires_on_creation() {
            return self.fire_on_creation(saved).await;
        }
        Ok(saved)
    }

    /// A `now` schedule's one fire, made at once by the call that created (or resumed, or
    /// edited) it, then the schedule is finished. Should this fail, the schedule stays due
    /// (`next_run_at` is its fire time) and the scheduler fires it; the key (schedule, fire
    /// time) makes the two one fire.
    async fn fire_on_creation(&self, s: TrainingSchedule) -> Result<TrainingSchedule> {
        let (id, Some(at)) = (s.id, s.next_run_at) else {
            return Ok(s);
        };
        if !s.is_active() {
            return Ok(s);
        }
        match self.fire_at(id, at, false).await {
            Ok(outcome) => {
                tracing::info!(schedule_id = id, ?outcome, "`now` schedule fired");
                let done = self
                    .mutate(id, |s| {
                        if s.is_active() && s.next_run_at == Some(at) {
                            s.next_run_at = None;
                            s.status = ScheduleStatus::Completed;
                        }
                        Ok(())
                    })
                    .await?;
                self.with_stats(done).await
            }
            Err(e) => {
                tracing::warn!(schedule_id = id, error = %e, "`now` fire failed; the scheduler will retry it");
                Ok(s)
            }
        }
    }

    /// What a schedule created from this run would train.
    pub async fn preview(&self, run_id: RunId) -> Result<SchedulePreview> {
        let run = self.store.get_run(run_id).await?;
        Ok(SchedulePreview {
            source_run_id: run.id,
            source_run_name: run.name.clone(),
            source_run_number: run.run_number,
            dataset_name: run.config.dataset.name.clone(),
            model_type: run.model_type(),
            registered_model_id: run.registered_model_id,
            config: run.config,
        })
    }

    /// A schedule with its statistics derived from its runs (never a stale counter).
    pub async fn get(&self, id: ScheduleId) -> Result<TrainingSchedule> {
        let s = self.store.get_schedule(id).await?;
        self.with_stats(s).await
    }

    /// Schedules filtered by model endpoint and status, newest first, one page of them.
    pub async fn list_page(
        &self,
        filter: &ScheduleFilter,
        page: PageRequest,
    ) -> Result<Page<TrainingSchedule>> {
        page.check()?;
        let mut all = self.list(filter.ml_model.as_deref()).await?;
        all.retain(|s| filter.status.is_none_or(|st| s.status == st));
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(Page::of(all, page))
    }

    /// The schedule of a registered model, if it has one.
    pub async fn for_model(&self, model_id: RegisteredModelId) -> Result<Option<TrainingSchedule>> {
        match self.store.schedule_for_model(model_id).await? {
            Some(s) => Ok(Some(self.with_stats(s).await?)),
            None => Ok(None),
        }
    }

    /// All schedules of a model endpoint (all endpoints: None), in store order.
    pub async fn list(&self, ml_model: Option<&str>) -> Result<Vec<TrainingSchedule>> {
        let mut out = Vec::new();
        for s in self.store.list_schedules(ml_model).await? {
            out.push(self.with_stats(s).await?);
        }
        Ok(out)
    }

    async fn with_stats(&self, mut s: TrainingSchedule) -> Result<TrainingSchedule> {
        let page = self
            .store
            .list_runs(&RunFilter {
                schedule_id: Some(s.id),
                page_size: 1,
                ..RunFilter::default()
            })
            .await?;
        let count = |pred: fn(RunStatus) -> bool| -> u32 {
            page.kpi
                .by_status
                .iter()
                .filter(|(st, _)| pred(**st))
                .map(|(_, n)| *n as u32)
                .sum()
        };
        s.total_runs = page.kpi.total as u32;
        s.successful_runs = count(training_succeeded);
        s.failed_runs = count(|st| st == RunStatus::Failed);
        s.last_run_at = page
            .runs
            .first()
            .and_then(|r| r.scheduled_fire_at)
            .or(s.last_run_at);
        Ok(s)
    }

    /// Loads, changes and saves a schedule, retrying on concurrent writes.
    async fn mutate<F>(&self, id: ScheduleId, f: F) -> Result<TrainingSchedule>
    where
        F: FnMut(&mut TrainingSchedule) -> Result<()> + Send,
    {
        self.writer.mutate(id, f).await
    }

    /// Edits name, description and timing (only while active or paused). A timing edited to
    /// `now` fires at once (an active schedule) and then the schedule is finished.
    pub async fn edit(&self, id: ScheduleId, edit: &ScheduleEdit) -> Result<TrainingSchedule> {
        let now = self.clock.now().with_nanosecond_floor();
        let s = self
            .mutate(id, |s| {
                if !s.status.is_editable() {
                    return Err(Error::Conflict(format!(
                        "schedule {id} is {:?}; only active or paused schedules can be edited",
                        s.status
                    )));
                }
                if let Some(name) = &edit.name {
                    validate_schedule_name(name)?;
                    s.name = name.trim().to_string();
                }
                if let Some(d) = &edit.description {
                    s.description.clone_from(d);
                }
                if let Some(patch) = edit.timing.as_ref().filter(|t| !t.is_empty()) {
                    let t = patch.apply(&s.timing);
                    t.validate(now)?;
                    s.timing = t.normalized()?;
                    s.next_run_at = if s.timing.schedule_type.fires_on_creation() {
                        s.timing.scheduled_datetime = Some(now);
                        Some(now)
                    } else {
                        s.timing.next_after(now)?
                    };
                }
                if let Some(c) = edit.catch_up {
                    s.catch_up = c;
                }
                if let Some(c) = edit.concurrency {
                    s.concurrency = c;
                }
                Ok(())
            })
            .await?;
        let mut s = s;
        let timed = edit.timing.as_ref().is_some_and(|t| !t.is_empty());
        if let (Some(trigger), true) = (&self.trigger, timed) {
            match trigger_cron(&s)? {
                Some(cron) => {
                    trigger.upsert(&s, &cron).await?;
                }
                // Fired from here from now on: the old cron job must not fire it again.
                None if !s.cloud_scheduler_job_name.is_empty() => {
                    trigger.delete(&s.cloud_scheduler_job_name).await?;
                    s = self
                        .mutate(id, |s| {
                            s.cloud_scheduler_job_name.clear();
                            Ok(())
                        })
                        .await?;
                }
                None => {}
            }
        }
        if timed && s.timing.schedule_type.fires_on_creation() {
            return self.fire_on_creation(s).await;
        }
        self.with_stats(s).await
    }

    pub async fn pause(&self, id: ScheduleId) -> Result<TrainingSchedule> {
        self.change_status(id, &[ScheduleStatus::Active], ScheduleStatus::Paused)
            .await
    }

    /// Resumes from now: fires missed while paused are not caught up.
    pub async fn resume(&self, id: ScheduleId) -> Result<TrainingSchedule> {
        self.change_status(id, &[ScheduleStatus::Paused], ScheduleStatus::Active)
            .await
    }

    /// Stops a schedule for good but keeps its record (delete removes it).
    pub async fn cancel(&self, id: ScheduleId) -> Result<TrainingSchedule> {
        let from = [ScheduleStatus::Active, ScheduleStatus::Paused];
        self.change_status(id, &from, ScheduleStatus::Cancelled)
            .await
    }

    /// Moves the record's status, then the external trigger's job to match.
    async fn change_status(
        &self,
        id: ScheduleId,
        from: &[ScheduleStatus],
        to: ScheduleStatus,
    ) -> Result<TrainingSchedule> {
        let s = self.set_status(id, from, to).await?;
        if to == ScheduleStatus::Active && s.timing.schedule_type.fires_on_creation() {
            // A `now` schedule paused before its fire: resuming fires it.
            return self.fire_on_creation(s).await;
        }
        if let Some(t) = &self.trigger {
            let job = &s.cloud_scheduler_job_name;
            if !job.is_empty() {
                match to {
                    ScheduleStatus::Paused => t.pause(job).await?,
                    ScheduleStatus::Active => t.resume(job).await?,
                    ScheduleStatus::Cancelled | ScheduleStatus::Completed => t.delete(job).await?,
                }
            }
        }
        self.with_stats(s).await
    }

    async fn set_status(
        &self,
        id: ScheduleId,
        from: &[ScheduleStatus],
        to: ScheduleStatus,
    ) -> Result<TrainingSchedule> {
        let now = self.clock.now();
        self.mutate(id, |s| {
            if !from.contains(&s.status) {
                return Err(Error::Conflict(format!(
                    "schedule {id} is {:?}; cannot make it {to:?}",
                    s.status
                )));
            }
            s.status = to;
            s.next_run_at = match to {
                // Its one fire, still due if it has not happened (the fire is keyed, so a
                // fire that did happen creates nothing new).
                ScheduleStatus::Active if s.timing.schedule_type.fires_on_creation() => {
                    s.timing.scheduled_datetime
                }
                ScheduleStatus::Active => s.timing.next_after(now)?,
                ScheduleStatus::Paused => s.next_run_at,
                ScheduleStatus::Completed | ScheduleStatus::Cancelled => None,
            };
            Ok(())
        })
        .await
    }

    /// Deletes the schedule record (and its trigger), freeing its model for a new schedule.
    pub async fn delete(&self, id: ScheduleId) -> Result<()> {
        let s = self.store.get_schedule(id).await?;
        if let Some(t) = &self.trigger {
            if !s.cloud_scheduler_job_name.is_empty() {
                t.delete(&s.cloud_scheduler_job_name).await?;
            }
        }
        self.store.delete_schedule(id).await
    }

    /// Fires now, outside the timetable (the next regular fire stays as it was).
    pub async fn trigger_now(&self, id: ScheduleId) -> Result<FireOutcome> {
        let at = self.clock.now();
        self.fire_at(id, at, true).await
    }

    /// The next `n` fires of a schedule.
    pub async fn upcoming(&self, id: ScheduleId, n: usize) -> Result<Vec<DateTime<Tz>>> {
        let s = self.store.get_schedule(id).await?;
        Ok(s.timing.upcoming(self.clock.now(), n)?)
    }

    /// Fires of the past 10 and next 30 weeks (the spec's schedule grid).
    pub async fn grid(&self, id: ScheduleId) -> Result<Vec<DateTime<Tz>>> {
        let s = self.store.get_schedule(id).await?;
        let now = self.clock.now();
        Ok(s.timing
            .fires_between(now - Duration::weeks(10), now + Duration::weeks(30))?)
    }

    /// Creates the run of one fire: idempotent on (schedule, fire time); `manual` fires a
    /// paused schedule too.
    async fn fire_at(
        &self,
        id: ScheduleId,
        fire_at: DateTime<Utc>,
        manual: bool,
    ) -> Result<FireOutcome> {
        let fire_at = fire_at.with_nanosecond_floor();
        if let Some(run) = self.store.run_for_fire(id, fire_at).await? {
            return Ok(FireOutcome::AlreadyFired { run: Box::new(run) });
        }
        let schedule = self.store.get_schedule(id).await?;
        let allowed = if manual {
            schedule.status.is_editable()
        } else {
            schedule.is_active()
        };
        if !allowed {
            return Ok(FireOutcome::Skipped {
                reason: format!("schedule is {:?}", schedule.status),
            });
        }
        let active = self
            .store
            .list_runs(&RunFilter {
                schedule_id: Some(id),
                statuses: vec![
                    RunStatus::Pending,
                    RunStatus::Scheduled,
                    RunStatus::Submitting,
                    RunStatus::Running,
                ],
                page_size: 1,
                ..RunFilter::default()
            })
            .await?
            .total;
        if active > 0 && schedule.concurrency == ConcurrencyPolicy::Skip && !manual {
            return Ok(FireOutcome::Skipped {
                reason: "the previous run of this schedule is still active (concurrency: skip)"
                    .into(),
            });
        }
        let model = self
            .store
            .get_registered_model(schedule.registered_model_id)
            .await?;
        let now = self.clock.now();
        let mut run = TrainingRun::new(
            NewTrainingRun {
                ml_model: schedule.ml_model.clone(),
                name: model.model_name.clone(),
                description: format!(
                    "Scheduled by {:?} for {}",
                    schedule.name,
                    fire_at.to_rfc3339()
                ),
                config: schedule.training_config.clone(),
            },
            Some(model.id),
            now,
        );
        run.schedule_id = Some(id);
        run.scheduled_fire_at = Some(fire_at);
        run.transition(RunEvent::Schedule, now)?;
        let run = match self.store.insert_run(&run).await {
            Ok(run) => run,
            // Another process or delivery created this fire's run first.
            Err(Error::Conflict(_)) => match self.store.run_for_fire(id, fire_at).await? {
                Some(run) => return Ok(FireOutcome::AlreadyFired { run: Box::new(run) }),
                None => {
                    return Err(Error::Conflict(format!(
                        "schedule {id}: fire {fire_at} conflicted"
                    )))
                }
            },
            Err(e) => return Err(e),
        };
        tracing::info!(schedule_id = id, run_id = run.id, %fire_at, "schedule fired");
        // The run is `scheduled`: the control plane submits it (under `queue`, once the runs
        // of this schedule before it have finished).
        Ok(FireOutcome::Created { run: Box::new(run) })
    }
}

impl ScheduleWriter {
    /// Validates and stores a new schedule for `model` and registers it with the trigger. A
    /// `now` schedule is bound to this instant (its fire time, due at once) and needs no
    /// trigger job. A model's finished `now` schedule gives way to the new one; any other
    /// schedule of the model is a conflict (one schedule per model).
    async fn insert(
        &self,
        model: &RegisteredModel,
        config: RunConfig,
        source: Option<RunId>,
        new: NewSchedule,
    ) -> Result<TrainingSchedule> {
        validate_schedule_name(&new.name)?;
        let now = self.clock.now().with_nanosecond_floor();
        new.timing.validate(now)?;
        if let Some(existing) = self.store.schedule_for_model(model.id).await? {
            let finished_now = existing.timing.schedule_type == ScheduleType::Now
                && !existing.status.is_editable();
            if !finished_now {
                return Err(Error::Conflict(format!(
                    "model {:?} already has schedule {} ({:?}); edit or delete it first",
                    model.model_name, existing.id, existing.name
                )));
            }
            self.store.delete_schedule(existing.id).await?;
        }
        let mut timing = new.timing.normalized()?;
        let next_run_at = if timing.schedule_type.fires_on_creation() {
            timing.scheduled_datetime = Some(now);
            Some(now)
        } else {
            timing.next_after(now)?
        };
        let mut frozen = config;
        // The frozen config trains now when fired; its own schedule fields do not apply.
        frozen.schedule_config = Default::default();
        let schedule = TrainingSchedule {
            id: 0,
            name: new.name.trim().to_string(),
            description: new.description,
            ml_model: model.ml_model.clone(),
            registered_model_id: model.id,
            source_training_run_id: source,
            next_run_at,
            timing,
            catch_up: new.catch_up,
            concurrency: new.concurrency,
            training_config: frozen,
            cloud_scheduler_job_name: String::new(),
            status: ScheduleStatus::Active,
            last_run_at: None,
            total_runs: 0,
            successful_runs: 0,
            failed_runs: 0,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let mut saved = self.store.insert_schedule(&schedule).await?;
        if let (Some(trigger), Some(cron)) = (&self.trigger, trigger_cron(&saved)?) {
            match trigger.upsert(&saved, &cron).await {
                Ok(job) => {
                    saved.cloud_scheduler_job_name = job;
                    saved = self.store.update_schedule(&saved).await?;
                }
                Err(e) => {
                    // No schedule without its trigger: undo the record, report the backend error.
                    self.store.delete_schedule(saved.id).await?;
                    return Err(e);
                }
            }
        }
        tracing::info!(schedule_id = saved.id, model = %model.model_name, r#type = ?saved.timing.schedule_type, "schedule created");
        Ok(saved)
    }

    /// See [`apply_run_schedule_config`].
    async fn sync_from_run(&self, run: &TrainingRun) -> Result<RunScheduleSync> {
        let Some(asked) = ScheduleTiming::from_run_config(&run.config.schedule_config) else {
            return Ok(RunScheduleSync::NotRequested);
        };
        let Some(model_id) = run.registered_model_id else {
            return Ok(RunScheduleSync::NotScheduled {
                reason: format!("training run {} has no registered model", run.id),
                schedule_id: None,
            });
        };
        let now = self.clock.now();
        let timing = asked.normalized()?;
        if timing.schedule_type == ScheduleType::Once && timing.next_after(now)?.is_none() {
            // A template's one-time date that has passed asks for nothing any more.
            return Ok(RunScheduleSync::NotScheduled {
                reason: "schedule_config.scheduled_datetime has passed".into(),
                schedule_id: None,
            });
        }
        // Twice at most: a schedule created by someone else between the read and the insert
        // is then updated.
        for _ in 0..2 {
            let Some(existing) = self.store.schedule_for_model(model_id).await? else {
                let model = self.store.get_registered_model(model_id).await?;
                let name: String = format!("{} - Retraining", run.name)
                    .chars()
                    .take(MAX_SCHEDULE_NAME)
                    .collect();
                let new = NewSchedule {
                    name: name.trim().to_string(),
                    description: format!(
                        "From the schedule_config of {} ({})",
                        run.display_name(),
                        run.name
                    ),
                    timing: timing.clone(),
                    catch_up: CatchUpPolicy::default(),
                    concurrency: ConcurrencyPolicy::default(),
                };
                match self
                    .insert(&model, run.config.clone(), Some(run.id), new)
                    .await
                {
                    Ok(s) => {
                        return Ok(RunScheduleSync::Created {
                            schedule: Box::new(s),
                        })
                    }
                    Err(Error::Conflict(_)) => continue,
                    Err(e) => return Err(e),
                }
            };
            return self.retime(existing, &timing, run, now).await;
        }
        Err(Error::Conflict(format!(
            "the schedule of registered model {model_id} kept changing; try again"
        )))
    }

    /// Moves an existing schedule to the timing a run's config asks for.
    async fn retime(
        &self,
        existing: TrainingSchedule,
        timing: &ScheduleTiming,
        run: &TrainingRun,
        now: DateTime<Utc>,
    ) -> Result<RunScheduleSync> {
        let id = existing.id;
        match existing.status {
            ScheduleStatus::Cancelled => {
                return Ok(RunScheduleSync::NotScheduled {
                    reason: format!(
                        "schedule {id} of this model is cancelled; delete it to schedule the model again"
                    ),
                    schedule_id: Some(id),
                })
            }
            ScheduleStatus::Active | ScheduleStatus::Paused if existing.timing == *timing => {
                return Ok(RunScheduleSync::Unchanged {
                    schedule: Box::new(existing),
                })
            }
            _ => {}
        }
        let mut frozen = run.config.clone();
        frozen.schedule_config = Default::default();
        let saved = self
            .mutate(id, |s| {
                if s.status == ScheduleStatus::Cancelled {
                    return Err(Error::Conflict(format!(
                        "schedule {id} was cancelled meanwhile"
                    )));
                }
                if s.status == ScheduleStatus::Completed {
                    // A finished schedule starts again from this run: its timing and config.
                    s.status = ScheduleStatus::Active;
                    s.training_config = frozen.clone();
                    s.source_training_run_id = Some(run.id);
                }
                s.timing = timing.clone();
                s.next_run_at = timing.next_after(now)?;
                Ok(())
            })
            .await?;
        if let (Some(trigger), Some(cron)) = (&self.trigger, trigger_cron(&saved)?) {
            trigger.upsert(&saved, &cron).await?;
        }
        tracing::info!(
            schedule_id = id,
            run_id = run.id,
            "schedule retimed from the run's schedule_config"
        );
        Ok(RunScheduleSync::Updated {
            schedule: Box::new(saved),
        })
    }

    /// Loads, changes and saves a schedule, retrying on concurrent writes.
    async fn mutate<F>(&self, id: ScheduleId, mut f: F) -> Result<TrainingSchedule>
    where
        F: FnMut(&mut TrainingSchedule) -> Result<()> + Send,
    {
        for _ in 0..CONFLICT_RETRIES {
            let mut s = self.store.get_schedule(id).await?;
            f(&mut s)?;
            s.updated_at = self.clock.now();
            match self.store.update_schedule(&s).await {
                Err(Error::Conflict(_)) => continue,
                other => return other,
            }
        }
        Err(Error::Conflict(format!(
            "schedule {id} kept changing; try again"
        )))
    }
}

/// The cron string an external trigger gets for a schedule; None for a `now` schedule, which
/// fires from the store when it is created and never again.
fn trigger_cron(s: &TrainingSchedule) -> Result<Option<String>> {
    if s.timing.schedule_type.fires_on_creation() {
        return Ok(None);
    }
    Ok(Some(s.timing.cron()?))
}

trait FloorToSecond {
    fn with_nanosecond_floor(self) -> Self;
}

impl FloorToSecond for DateTime<Utc> {
    /// Fire times are keys; sub-second noise from clocks must not make two keys of one fire.
    fn with_nanosecond_floor(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap_or(self)
    }
}

#[async_trait]
impl ScheduleFirer for ScheduleService {
    async fn fire(&self, schedule_id: ScheduleId, fire_at: DateTime<Utc>) -> Result<FireOutcome> {
        self.fire_at(schedule_id, fire_at, false).await
    }
}
