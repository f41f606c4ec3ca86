//! Experiment tracking (MLflow) seen from the platform: the tag that ties a tracking run to
//! its trainyard run, how a run that ended without its trainer (failed, cancelled) ends its
//! tracking runs, and the port the facade calls to do so. No IO here: the MLflow REST adapter
//! is in trainyard-local.
//!
//! A trainer ends its own MLflow run (FINISHED, FAILED on an error, KILLED on SIGTERM), but a
//! trainer killed outright (SIGKILL after the cancel grace, OOM, a machine restart) cannot:
//! its MLflow run would stay RUNNING for ever. The facade ends such leftovers when the
//! trainyard run ends failed or cancelled.

use async_trait::async_trait;

use crate::error::Result;
use crate::run::{RunId, TrainingRun};
use crate::status::RunStatus;

/// The tag every trainer puts on its MLflow run: the trainyard run's id (decimal). The
/// generated trainer (trainyard-codegen's trainer template) writes the same name.
pub const RUN_ID_TAG: &str = "trainyard.run_id";

/// The trainer's custom_config key that carries the trainyard run id into the trainer.
pub const RUN_ID_SETTING: &str = "trainyard_run_id";

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
    let name = run.config.model_config.name.trim();
    (!name.is_empty()).then_some(name)
}

/// Ends the tracking runs a trainer left running.
#[async_trait]
pub trait ExperimentTracking: Send + Sync {
    /// Ends, with `end`, every run of `experiment` tagged [`RUN_ID_TAG`] = `run` that is still
    /// RUNNING; returns how many it ended. Runs of other trainyard runs and runs already ended
    /// are untouched, so calling it again ends nothing more. An experiment that does not exist
    /// has nothing to end (0).
    async fn end_stale_runs(&self, experiment: &str, run: RunId, end: TrackingEnd) -> Result<u32>;
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
}
