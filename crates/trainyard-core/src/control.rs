//! The control plane's view of a run: which step is due next, derived from the run's recorded
//! state alone (DESIGN.md "Control plane"). Whoever holds a run's lease performs that step;
//! every step is idempotent, so a crash between doing it and recording it repeats nothing.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::run::TrainingRun;
use crate::stages::{StageName, StageStatus};
use crate::status::RunStatus;

/// A deploy that has been `deploying` this long without finishing is taken to have lost its
/// process and is repeated (deployers replace a service in place, so a repeat is harmless).
pub const STALE_DEPLOY_SECONDS: i64 = 180;

/// The next thing the platform owes a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Queued (`scheduled`) or caught between submit and its record (`submitting`): hand it to
    /// the executor, which returns the existing job when there is one.
    Submit,
    /// A pipeline is running: poll it and apply what it reports.
    Track,
    /// Completed and blessed, not yet a registry version.
    Register,
    /// Registered with auto-deploy on, not yet deployed (or a deploy that lost its process).
    Deploy,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Submit => "submit",
            Step::Track => "track",
            Step::Register => "register",
            Step::Deploy => "deploy",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        [Step::Submit, Step::Track, Step::Register, Step::Deploy]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

impl TrainingRun {
    /// The step the control plane owes this run, if any; `pending` runs wait for a submit
    /// request (which moves them to `scheduled`).
    pub fn next_step(&self) -> Option<Step> {
        let stage = |name: StageName| self.stage_details.get(name).status;
        match self.status {
            RunStatus::Scheduled | RunStatus::Submitting => Some(Step::Submit),
            RunStatus::Running => Some(Step::Track),
            // The Pusher reports under the register stage, so only a failed registration (kept
            // for a person to look at) or one skipped for want of a registry ends this step.
            RunStatus::Completed
                if self.results.is_blessed == Some(true)
                    && self.vertex_model_version.is_none()
                    && !matches!(
                        stage(StageName::Register),
                        StageStatus::Failed | StageStatus::Skipped
                    ) =>
            {
                Some(Step::Register)
            }
            RunStatus::Completed
                if self.vertex_model_version.is_some()
                    && self.deploy_enabled
                    && stage(StageName::Deploy) == StageStatus::Pending =>
            {
                Some(Step::Deploy)
            }
            RunStatus::Deploying => Some(Step::Deploy),
            _ => None,
        }
    }

    /// Whether the due step may be taken at `now`: a `deploying` run is left to the process
    /// deploying it until that deploy is stale.
    pub fn step_ready(&self, now: DateTime<Utc>) -> bool {
        match (self.next_step(), self.status) {
            (Some(_), RunStatus::Deploying) => self
                .deployment_started_at
                .is_none_or(|t| now - t >= Duration::seconds(STALE_DEPLOY_SECONDS)),
            (step, _) => step.is_some(),
        }
    }
}
