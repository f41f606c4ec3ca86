//! Experiment tracking (MLflow) seen from the platform: the tags that tie a tracking run to
//! its trainyard run, how a run that ended without its trainer (failed, cancelled) ends its
//! tracking runs, and the port the facade calls to do so. No IO here: the MLflow REST adapter
//! is in trainyard-local.
//!
//! A trainer ends its own MLflow run (FINISHED, FAILED on an error, KILLED on SIGTERM), but a
//! trainer killed outright (SIGKILL after the cancel grace, OOM, a machine restart) cannot:
//! its MLflow run would stay RUNNING for ever. The facade ends such leftovers when the
//! trainyard run ends failed or cancelled.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::error::Result;
use crate::run::{RunId, TrainingRun};
use crate::status::RunStatus;

/// The tag every trainer puts on its MLflow run: the trainyard run's id (decimal), for people.
/// Ids are per project (each store counts 1, 2, ...), so two projects sharing one MLflow
/// server and one experiment have runs with the same id: what is ended is matched on
/// [`RUN_KEY_TAG`], never on this. The generated trainer (trainyard-codegen's trainer
/// template) writes the same name.
pub const RUN_ID_TAG: &str = "trainyard.run_id";

/// The trainer's custom_config key that carries the trainyard run id into the trainer.
pub const RUN_ID_SETTING: &str = "trainyard_run_id";

/// The tag every trainer puts on its MLflow run: the trainyard run's [`RunKey`], which no
/// other trainyard run shares (what [`ExperimentTracking::end_stale_runs`] matches).
pub const RUN_KEY_TAG: &str = "trainyard.run_key";

/// The trainer's custom_config key that carries the [`RunKey`] into the trainer.
pub const RUN_KEY_SETTING: &str = "trainyard_run_key";

/// What tells one trainyard run from every other one, in any project: its id and the instant
/// it was created (nanoseconds, as the store keeps it; it never changes, a rerun is a new run),
/// written `<id>-<created_at as RFC 3339, nanoseconds, UTC>`, e.g.
/// `7-2026-12-05T15:00:04.123456789Z`. Only digits, `-`, `:`, `.`, `T` and `Z`: it goes
/// into an MLflow search filter unquoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunKey(String);

impl RunKey {
    /// The key of run `id` created at `created_at`.
    pub fn new(id: RunId, created_at: DateTime<Utc>) -> RunKey {
        RunKey(format!(
            "{id}-{}",
            created_at.to_rfc3339_opts(SecondsFormat::Nanos, true)
        ))
    }

    /// The key of a stored run; `None` for an unstored one (id 0, e.g. a compile of a config
    /// that is no run): it has no tracking runs to end.
    pub fn of(run: &TrainingRun) -> Option<RunKey> {
        (run.id > 0).then(|| RunKey::new(run.id, run.created_at))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RunKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a tracking run left RUNNING by its trainer is ended (MLflow's RunStatus names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackingEnd {
    /// The trainyard run was cancelled.
    Killed,
    /// The trainyard run failed (an error, or its runner was lost).
    Failed,
}

impl TrackingEnd {
    /// MLflow's name of the status.
    pub fn as_mlflow(self) -> &'static str {
        match self {
            TrackingEnd::Killed => "KILLED",
            TrackingEnd::Failed => "FAILED",
        }
    }

    /// The end of the tracking runs of a trainyard run in `status`: cancelled -> KILLED,
    /// failed -> FAILED; any other status leaves them to their trainer (`None`).
    pub fn for_status(status: RunStatus) -> Option<TrackingEnd> {
        match status {
            RunStatus::Cancelled => Some(TrackingEnd::Killed),
            RunStatus::Failed => Some(TrackingEnd::Failed),
            _ => None,
        }
    }
}

/// The MLflow experiment a run's trainer logs to: the model config's name (the generated
/// trainer's MODEL_NAME; the compiled pipeline sets no `mlflow_experiment`). `None` when the
/// name is blank (such a trainer cannot create its experiment, so it tracks nothing).
pub fn experiment_of(run: &TrainingRun) -> Option<&str> {
    // as the trainer writes it (untrimmed): MLflow names the experiment exactly so
    let name = run.config.model_config.name.as_str();
    (!name.trim().is_empty()).then_some(name)
}

/// Ends the tracking runs a trainer left running.
#[async_trait]
pub trait ExperimentTracking: Send + Sync {
    /// Ends, with `end`, every run of `experiment` tagged [`RUN_KEY_TAG`] = `run` that is still
    /// RUNNING; returns how many it ended. Runs of other trainyard runs (those of another
    /// project with the same id included) and runs already ended are untouched, so calling it
    /// again ends nothing more. An experiment that does not exist has nothing to end (0).
    async fn end_stale_runs(&self, experiment: &str, run: &RunKey, end: TrackingEnd)
        -> Result<u32>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failed_and_cancelled_runs_end_their_tracking_runs() {
        assert_eq!(
            TrackingEnd::for_status(RunStatus::Cancelled),
            Some(TrackingEnd::Killed)
        );
        assert_eq!(
            TrackingEnd::for_status(RunStatus::Failed),
            Some(TrackingEnd::Failed)
        );
        for s in [
            RunStatus::Pending,
            RunStatus::Running,
            RunStatus::Completed,
            RunStatus::NotBlessed,
            RunStatus::Deployed,
        ] {
            assert_eq!(TrackingEnd::for_status(s), None, "{s}");
        }
        assert_eq!(TrackingEnd::Killed.as_mlflow(), "KILLED");
        assert_eq!(TrackingEnd::Failed.as_mlflow(), "FAILED");
    }

    #[test]
    fn a_run_key_is_the_id_and_the_creation_instant_to_the_nanosecond() {
        use chrono::TimeZone;
        let at = Utc.with_ymd_and_hms(2026, 12, 5, 15, 0, 4).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        assert_eq!(
            RunKey::new(7, at).as_str(),
            "7-2026-12-05T15:00:04.123456789Z"
        );
        // a whole second still has its nanoseconds (one spelling per instant)
        let whole = Utc.with_ymd_and_hms(2026, 12, 5, 15, 0, 4).unwrap();
        assert_eq!(
            RunKey::new(7, whole).to_string(),
            "7-2026-12-05T15:00:04.000000000Z"
        );
        // same id, another project's (or a re-initialised project's) run: another key
        assert_ne!(
            RunKey::new(7, at),
            RunKey::new(7, at + chrono::Duration::nanoseconds(1))
        );
        assert_ne!(RunKey::new(7, at), RunKey::new(8, at));
        let key = RunKey::new(7, at);
        assert!(key
            .as_str()
            .chars()
            .all(|c| c.is_ascii_digit() || "-:.TZ".contains(c)));

        let mut run = TrainingRun::new(crate::run::NewTrainingRun::default(), None, at);
        assert_eq!(RunKey::of(&run), None, "an unstored run has no key");
        run.id = 7;
        assert_eq!(RunKey::of(&run), Some(key.clone()));
        // the store keeps the run as JSON: created_at comes back to the nanosecond
        let back: TrainingRun =
            serde_json::from_str(&serde_json::to_string(&run).unwrap()).unwrap();
        assert_eq!(RunKey::of(&back), Some(key));
    }
}
