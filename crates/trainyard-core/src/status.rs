//! The training run status state machine. Every status change goes through [`apply`]; an
//! event that the current status does not allow is an [`InvalidTransition`], never a write.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The 11 statuses of a training run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Scheduled,
    Submitting,
    Running,
    Completed,
    Failed,
    Cancelled,
    NotBlessed,
    Deploying,
    Deployed,
    DeployFailed,
}

impl RunStatus {
    pub const ALL: [RunStatus; 11] = [
        RunStatus::Pending,
        RunStatus::Scheduled,
        RunStatus::Submitting,
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::NotBlessed,
        RunStatus::Deploying,
        RunStatus::Deployed,
        RunStatus::DeployFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Scheduled => "scheduled",
            RunStatus::Submitting => "submitting",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::NotBlessed => "not_blessed",
            RunStatus::Deploying => "deploying",
            RunStatus::Deployed => "deployed",
            RunStatus::DeployFailed => "deploy_failed",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Training has finished: the pipeline will not change this run any more. Rerun and edit
    /// need this; it includes the deploy statuses, which the spec's terminal list forgot
    /// (the same pattern as its auto-deploy bug).
    pub fn training_finished(self) -> bool {
        !self.is_active()
    }

    /// The pipeline still owns the run: config edits are refused.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            RunStatus::Pending | RunStatus::Scheduled | RunStatus::Submitting | RunStatus::Running
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum RunEvent {
    Schedule,
    Submit,
    Submitted,
    Finish { blessed: bool },
    Fail,
    Cancel,
    Deploy,
    Deployed,
    DeployError,
    Undeploy { is_blessed: bool },
}

impl RunEvent {
    pub const ALL: [RunEvent; 12] = [
        RunEvent::Schedule,
        RunEvent::Submit,
        RunEvent::Submitted,
        RunEvent::Finish { blessed: true },
        RunEvent::Finish { blessed: false },
        RunEvent::Fail,
        RunEvent::Cancel,
        RunEvent::Deploy,
        RunEvent::Deployed,
        RunEvent::DeployError,
        RunEvent::Undeploy { is_blessed: true },
        RunEvent::Undeploy { is_blessed: false },
    ];

    pub fn name(self) -> &'static str {
        match self {
            RunEvent::Schedule => "schedule",
            RunEvent::Submit => "submit",
            RunEvent::Submitted => "submitted",
            RunEvent::Finish { .. } => "finish",
            RunEvent::Fail => "fail",
            RunEvent::Cancel => "cancel",
            RunEvent::Deploy => "deploy",
            RunEvent::Deployed => "deployed",
            RunEvent::DeployError => "deploy_error",
            RunEvent::Undeploy { .. } => "undeploy",
        }
    }
}

/// An event the current status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("event `{}` is not allowed for a run that is {from}", event.name())]
pub struct InvalidTransition {
    pub from: RunStatus,
    pub event: RunEvent,
}

/// The transition function of the run state machine.
pub fn apply(from: RunStatus, event: RunEvent) -> Result<RunStatus, InvalidTransition> {
    use RunEvent as E;
    use RunStatus as S;
    let to = match (from, event) {
        (S::Pending, E::Schedule) => S::Scheduled,
        (S::Pending | S::Scheduled, E::Submit) => S::Submitting,
        (S::Submitting, E::Submitted) => S::Running,
        (S::Running, E::Finish { blessed: true }) => S::Completed,
        (S::Running, E::Finish { blessed: false }) => S::NotBlessed,
        (S::Pending | S::Scheduled | S::Submitting | S::Running, E::Fail) => S::Failed,
        (S::Pending | S::Scheduled | S::Submitting | S::Running, E::Cancel) => S::Cancelled,
        // `deploying` is allowed so the auto-deploy path, which marks the run first, can deploy
        // (bug 9); `deployed` is a redeploy; `deploy_failed` a retry.
        (
            S::Completed | S::NotBlessed | S::DeployFailed | S::Deployed | S::Deploying,
            E::Deploy,
        ) => S::Deploying,
        (S::Deploying, E::Deployed) => S::Deployed,
        (S::Deploying, E::DeployError) => S::DeployFailed,
        // Undeploy returns the run to its training outcome so it can be redeployed (bug 10).
        (S::Deployed, E::Undeploy { is_blessed: true }) => S::Completed,
        (S::Deployed, E::Undeploy { is_blessed: false }) => S::NotBlessed,
        _ => return Err(InvalidTransition { from, event }),
    };
    Ok(to)
}
