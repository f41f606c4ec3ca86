//! The control plane (DESIGN.md "Control plane"): drives every run from its recorded state to
//! a terminal one, so that no run depends on a foreground process following it.
//!
//! Front ends record intent (a submit request moves a run to `scheduled`, a schedule fire
//! creates a `scheduled` run, a completion leaves a registration due) and read state. The
//! [`ControlPlane`] finds runs that are owed a step ([`TrainingRun::next_step`], an indexed
//! column of the store), claims each with a lease in the store, and takes the step: submit,
//! track the pipeline, register, deploy. Every step is idempotent, so a process that dies at
//! any point repeats nothing when another (or the same one, restarted) takes the work over
//! once its lease expires. `trainyard server` runs one with the embedded scheduler; a CLI or
//! notebook call with no server around runs one for the duration of the call.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use trainyard_core::control::Step;
use trainyard_core::ports::{PipelineEvent, RunFilter};
use trainyard_core::run::{RunId, ScheduleId, TrainingRun};
use trainyard_core::schedule::ConcurrencyPolicy;
use trainyard_core::{Error, Result, RunStatus};

use crate::lifecycle::Lifecycle;
use crate::pipelines::handle_of;
use crate::{Platform, TrainingService};

/// Lease key prefix of a server's presence.
pub const SERVER_LEASE_PREFIX: &str = "server:";
const RUN_LEASE_PREFIX: &str = "run:";
/// Runs read per page while looking for due steps.
const PAGE: u32 = 500;

#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// Pause between passes over the due work.
    pub tick: Duration,
    /// How long a claim lasts without renewal; a dead holder's work waits this long at most.
    pub lease_ttl: Duration,
    /// Longest pause between polls of one pipeline when it reports nothing new (polls back
    /// off from `tick` up to this; any event resets it).
    pub max_poll_interval: Duration,
    /// Only these runs (an embedded control plane working for one call); None: every run.
    pub runs: Option<BTreeSet<RunId>>,
    /// Fire due schedules with the embedded scheduler (a server without Cloud Scheduler).
    pub scheduler: bool,
    /// Announce this process as a server (a `server:` lease), so calls made meanwhile leave
    /// the work to it.
    pub announce: bool,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        ControlPlaneConfig {
            tick: Duration::from_millis(500),
            lease_ttl: Duration::from_secs(15),
            max_poll_interval: Duration::from_secs(10),
            runs: None,
            scheduler: false,
            announce: false,
        }
    }
}

impl ControlPlaneConfig {
    /// A long-running server: every run, the embedded scheduler, announced.
    pub fn server() -> Self {
        ControlPlaneConfig {
            scheduler: true,
            announce: true,
            ..ControlPlaneConfig::default()
        }
    }

    /// The control plane of one call: only `runs`, no scheduler, not announced.
    pub fn embedded(runs: impl IntoIterator<Item = RunId>) -> Self {
        ControlPlaneConfig {
            runs: Some(runs.into_iter().collect()),
            ..ControlPlaneConfig::default()
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Steps taken, by step.
    pub steps: BTreeMap<&'static str, usize>,
    /// Due runs another owner holds.
    pub held_elsewhere: usize,
    /// Steps that failed (kept on the run where they belong; retried on a later pass).
    pub errors: usize,
}

/// Backoff of one tracked pipeline.
struct PollState {
    next_at: DateTime<Utc>,
    interval: Duration,
}

pub struct ControlPlane {
    platform: Platform,
    training: TrainingService,
    lifecycle: Lifecycle,
    owner: String,
    config: ControlPlaneConfig,
    polls: Mutex<HashMap<RunId, PollState>>,
}

fn new_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(15))
}

impl ControlPlane {
    pub fn new(platform: Platform, config: ControlPlaneConfig) -> Self {
        ControlPlane {
            training: platform.training(),
            lifecycle: platform.lifecycle(),
            platform,
            owner: new_owner(),
            config,
            polls: Mutex::new(HashMap::new()),
        }
    }

    /// This process's name in the leases it holds.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn now(&self) -> DateTime<Utc> {
        self.platform.clock().now()
    }

    async fn claim(&self, key: &str) -> Result<bool> {
        let now = self.now();
        self.platform
            .store()
            .acquire_lease(
                key,
                &self.owner,
                now,
                now + chrono_of(self.config.lease_ttl),
            )
            .await
    }

    /// Every run the store says is owed a step, oldest first.
    async fn due_runs(&self) -> Result<Vec<TrainingRun>> {
        let mut runs = Vec::new();
        let mut filter = RunFilter {
            with_step: true,
            page_size: PAGE,
            ..RunFilter::default()
        };
        loop {
            let page = self.platform.store().list_runs(&filter).await?;
            let n = page.runs.len();
            runs.extend(page.runs);
            if n < PAGE as usize {
                break;
            }
            filter.page += 1;
        }
        if let Some(only) = &self.config.runs {
            runs.retain(|r| only.contains(&r.id));
        }
        runs.sort_by_key(|r| r.id);
        Ok(runs)
    }

    /// One pass over the due work: renews this process's claims and takes each due step it
    /// can claim.
    pub async fn pass(&self) -> Result<PassReport> {
        if self.config.announce {
            self.claim(&format!("{SERVER_LEASE_PREFIX}{}", self.owner))
                .await?;
        }
        let mut report = PassReport::default();
        let runs = self.due_runs().await?;
        let queues = self.queue_heads(&runs).await?;
        for run in runs {
            let now = self.now();
            let Some(step) = run.next_step() else {
                continue;
            };
            if !run.step_ready(now) || !self.poll_due(&run, step, now) {
                continue;
            }
            if run.status == RunStatus::Scheduled {
                if let Some(schedule_id) = run.schedule_id {
                    if queues
                        .get(&schedule_id)
                        .is_some_and(|head| *head != Some(run.id))
                    {
                        continue; // `queue`: waits for the runs of its schedule before it
                    }
                }
            }
            let key = format!("{RUN_LEASE_PREFIX}{}", run.id);
            if !self.claim(&key).await? {
                report.held_elsewhere += 1;
                continue;
            }
            match self.take(&run, step).await {
                Ok(after) => {
                    *report.steps.entry(step.as_str()).or_default() += 1;
                    if after.next_step().is_none() {
                        self.forget(run.id);
                        self.platform
                            .store()
                            .release_lease(&key, &self.owner)
                            .await?;
                    }
                }
                Err(e) => {
                    report.errors += 1;
                    tracing::warn!(run_id = run.id, step = step.as_str(), error = %e, "control plane step failed; will retry");
                }
            }
        }
        Ok(report)
    }

    /// Under the `queue` policy, the one scheduled run of each schedule that may start: the
    /// oldest, and none while a run of that schedule is submitting or running.
    async fn queue_heads(
        &self,
        runs: &[TrainingRun],
    ) -> Result<HashMap<ScheduleId, Option<RunId>>> {
        let mut heads: HashMap<ScheduleId, Option<RunId>> = HashMap::new();
        let mut policies: HashMap<ScheduleId, bool> = HashMap::new();
        for run in runs {
            let Some(id) = run.schedule_id else { continue };
            let queued = match policies.get(&id) {
                Some(q) => *q,
                None => {
                    let q = match self.platform.store().get_schedule(id).await {
                        Ok(s) => s.concurrency == ConcurrencyPolicy::Queue,
                        Err(Error::NotFound { .. }) => false,
                        Err(e) => return Err(e),
                    };
                    policies.insert(id, q);
                    q
                }
            };
            if !queued {
                continue;
            }
            match run.status {
                // a run in flight blocks the queue: no scheduled run of it is the head
                RunStatus::Submitting | RunStatus::Running => {
                    heads.insert(id, None);
                }
                RunStatus::Scheduled => {
                    heads.entry(id).or_insert(Some(run.id));
                }
                _ => {}
            }
        }
        Ok(heads)
    }

    /// Tracked pipelines are polled with backoff while they report nothing new.
    fn poll_due(&self, run: &TrainingRun, step: Step, now: DateTime<Utc>) -> bool {
        if step != Step::Track {
            return true;
        }
        let polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        polls.get(&run.id).is_none_or(|p| now >= p.next_at)
    }

    fn record_poll(&self, id: RunId, had_events: bool) {
        let mut polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        let state = polls.entry(id).or_insert(PollState {
            next_at: self.now(),
            interval: self.config.tick,
        });
        state.interval = if had_events {
            self.config.tick
        } else {
            // A backed-off run is not visited, so its claim is not renewed, until its next
            // poll: that must come while the claim still holds, whatever the settings.
            (state.interval * 2)
                .min(self.config.max_poll_interval)
                .min(self.config.lease_ttl / 2)
        };
        state.next_at = self.now() + chrono_of(state.interval);
    }

    fn forget(&self, id: RunId) {
        self.polls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    async fn take(&self, run: &TrainingRun, step: Step) -> Result<TrainingRun> {
        match step {
            Step::Submit => match self.training.launch(run.id).await {
                Ok(run) => Ok(run),
                // The failure is on the run (failed, with the error): the step is done.
                Err(e) => {
                    let after = self.platform.store().get_run(run.id).await?;
                    if after.status == RunStatus::Failed {
                        Ok(after)
                    } else {
                        Err(e)
                    }
                }
            },
            Step::Track => self.track(run).await,
            Step::Register | Step::Deploy => self.lifecycle.advance(run.id).await,
        }
    }

    /// Polls a running pipeline and applies what it reports. A run with no job recorded (a
    /// webhook-driven pipeline) is left to its callbacks.
    async fn track(&self, run: &TrainingRun) -> Result<TrainingRun> {
        let Some(handle) = handle_of(run) else {
            return Ok(run.clone());
        };
        let events = self.training.poll_events(&handle).await?;
        self.record_poll(run.id, !events.is_empty());
        let mut after = run.clone();
        for event in &events {
            match self.training.handle_event(run.id, event).await {
                Ok(r) => after = r,
                // The run moved on elsewhere (cancelled, finished by a callback): stop here.
                Err(Error::Conflict(_) | Error::InvalidTransition(_)) => {
                    return self.platform.store().get_run(run.id).await;
                }
                Err(e) => return Err(e),
            }
            if matches!(
                event,
                PipelineEvent::Completed { .. } | PipelineEvent::Failed { .. }
            ) {
                break;
            }
        }
        Ok(after)
    }

    /// Passes until `shutdown` resolves; with `scheduler`, the embedded scheduler fires
    /// schedules beside it. Claims are given up on the way out.
    pub async fn run<F>(&self, shutdown: F) -> Result<()>
    where
        F: Future<Output = ()> + Send,
    {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let scheduler = self.config.scheduler.then(|| {
            let scheduler = self
                .platform
                .embedded_scheduler(trainyard_local::SchedulerConfig::default());
            let mut rx = stop_rx.clone();
            tokio::spawn(async move {
                let stop = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                if let Err(e) = scheduler.run(stop).await {
                    tracing::error!(error = %e, "the embedded scheduler stopped");
                }
            })
        });
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "control plane pass failed; will retry");
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(self.config.tick) => {}
            }
        }
        let _ = stop_tx.send(true);
        if let Some(task) = scheduler {
            let _ = task.await;
        }
        self.release_all().await;
        Ok(())
    }

    /// Gives up this process's claims (a clean stop: others need not wait for them to expire).
    pub async fn release_all(&self) {
        let store = self.platform.store();
        let now = self.now();
        for prefix in [RUN_LEASE_PREFIX, SERVER_LEASE_PREFIX] {
            if let Ok(leases) = store.live_leases(prefix, now).await {
                for lease in leases.into_iter().filter(|l| l.owner == self.owner) {
                    let _ = store.release_lease(&lease.key, &self.owner).await;
                }
            }
        }
    }

    /// Runs the control plane on the current tokio runtime until the handle is stopped or
    /// dropped: how a Rust service (or the Python wheel's runtime) embeds a server's work.
    pub fn spawn(self) -> ControlPlaneHandle {
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let cp = Arc::new(self);
        let task = tokio::spawn({
            let cp = cp.clone();
            async move {
                let stop = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                cp.run(stop).await
            }
        });
        ControlPlaneHandle {
            stop: tx,
            task: Some(task),
            owner: cp.owner.clone(),
        }
    }
}

/// A spawned control plane; [`ControlPlaneHandle::stop`] ends it and gives up its claims.
pub struct ControlPlaneHandle {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<Result<()>>>,
    owner: String,
}

impl ControlPlaneHandle {
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub async fn stop(mut self) -> Result<()> {
        let _ = self.stop.send(true);
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| Error::Backend(format!("control plane task: {e}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for ControlPlaneHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// How far a call carries a run before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The pipeline was handed to its executor (or the run ended before that).
    Submitted,
    /// Training finished and what follows it (registration, auto-deploy) is done.
    Settled,
}

impl Until {
    fn reached(self, run: &TrainingRun) -> bool {
        match self {
            Until::Submitted => !matches!(
                run.status,
                RunStatus::Pending | RunStatus::Scheduled | RunStatus::Submitting
            ),
            Until::Settled => {
                !run.status.is_active()
                    && !matches!(run.next_step(), Some(Step::Register | Step::Deploy))
            }
        }
    }
}

impl Platform {
    /// The post-training lifecycle (registration, auto-deploy) over this platform's backends.
    pub fn lifecycle(&self) -> Lifecycle {
        Lifecycle::new(self.store().clone(), self.registry(), self.deployments())
    }

    /// A control plane over this platform.
    pub fn control_plane(&self, config: ControlPlaneConfig) -> ControlPlane {
        ControlPlane::new(self.clone(), config)
    }

    /// Whether a `trainyard server` (or an embedding service's control plane) is running on
    /// this project's store now.
    pub async fn server_running(&self) -> Result<bool> {
        let now = self.clock().now();
        Ok(!self
            .store()
            .live_leases(SERVER_LEASE_PREFIX, now)
            .await?
            .is_empty())
    }

    /// Carries a run to `until` and returns it as it then is: a running server does the work
    /// and this call reads the store; with none, this call takes the run's steps itself (an
    /// embedded control plane for just this run, which a server started meanwhile takes over
    /// from once its claim lapses). `on_change` sees the run whenever it changed, with the
    /// epochs recorded since the last call. Any process can follow any run this way.
    pub async fn follow<F>(
        &self,
        id: RunId,
        until: Until,
        timeout: Duration,
        mut on_change: F,
    ) -> Result<TrainingRun>
    where
        F: FnMut(&TrainingRun, &[trainyard_core::run::TrainingMetricsHistory]) + Send,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        let embedded = self.control_plane(ControlPlaneConfig::embedded([id]));
        let training = self.training();
        let mut seen_version = -1;
        let mut seen_epochs = 0usize;
        let result = loop {
            if !self.server_running().await? {
                embedded.pass().await?;
            }
            let run = training.get(id).await?;
            if run.version != seen_version {
                seen_version = run.version;
                let history = training.history(id).await?;
                let fresh = history.get(seen_epochs..).unwrap_or_default();
                seen_epochs = history.len();
                on_change(&run, fresh);
            }
            if until.reached(&run) {
                break Ok(run);
            }
            if tokio::time::Instant::now() >= deadline {
                break Err(Error::Backend(format!(
                    "training run {id} still {} after {timeout:?}",
                    run.status
                )));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        embedded.release_all().await;
        result
    }

    /// "Submit": records the request, then returns once a running server has it or, with
    /// none, once this call has handed the pipeline to its executor (the pipeline itself does
    /// not depend on this process). A submission that fails the run is returned as an error.
    pub async fn submit(&self, id: RunId) -> Result<TrainingRun> {
        let run = self.training().submit(id).await?;
        self.carry_to_submitted(run).await
    }

    /// Submits a run and follows it until it settles (training, registration, auto-deploy);
    /// `_poll` is kept for callers of the earlier signature.
    pub async fn run_to_completion(
        &self,
        id: RunId,
        _poll: Duration,
        timeout: Duration,
    ) -> Result<TrainingRun> {
        self.training().submit(id).await?;
        self.follow(id, Until::Settled, timeout, |_, _| {}).await
    }

    /// [`Self::submit`] for a run already recorded as `scheduled` (a rerun, a schedule fire).
    pub async fn carry_to_submitted(&self, run: TrainingRun) -> Result<TrainingRun> {
        if run.status != RunStatus::Scheduled || self.server_running().await? {
            return Ok(run);
        }
        let id = run.id;
        let run = self
            .follow(id, Until::Submitted, SUBMIT_TIMEOUT, |_, _| {})
            .await?;
        if run.status == RunStatus::Failed {
            return Err(Error::Backend(format!(
                "training run {id} failed to submit: {}",
                run.error_message.as_deref().unwrap_or("no reason recorded")
            )));
        }
        Ok(run)
    }
}

/// Longest a call waits for its own submission (compiling and starting a pipeline).
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(600);
