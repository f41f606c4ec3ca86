//! What follows training, in one place: a blessed completion is registered as the next
//! version of its model, and a registered run with auto-deploy on is deployed. The steps are
//! taken when a completion is applied and again by the control plane for any run whose step
//! is still due (a process that died between steps), so each must be idempotent: registries
//! return the version a run already has, deployers replace a service in place.

use std::sync::Arc;

use trainyard_core::control::Step;
use trainyard_core::ports::Store;
use trainyard_core::run::{RunId, TrainingRun};
use trainyard_core::Result;

use crate::deployments::{DeployOptions, DeploymentService};
use crate::registry::RegistryService;

#[derive(Clone)]
pub struct Lifecycle {
    store: Arc<dyn Store>,
    registry: RegistryService,
    deployments: DeploymentService,
}

impl Lifecycle {
    pub fn new(
        store: Arc<dyn Store>,
        registry: RegistryService,
        deployments: DeploymentService,
    ) -> Self {
        Lifecycle {
            store,
            registry,
            deployments,
        }
    }

    /// Whether blessed completions can become registry versions here.
    pub fn can_register(&self) -> bool {
        self.registry.can_register()
    }

    /// The user's "Push to registry": registers a completed, blessed run, then deploys it
    /// when its deployment_config is enabled. Registration errors are returned; an auto-deploy
    /// failure is recorded on the run (deploy_failed) and not returned, since the
    /// registration itself succeeded.
    pub async fn push(&self, run_id: RunId) -> Result<TrainingRun> {
        let run = self.registry.register(run_id).await?;
        self.deploy_if_due(run).await
    }

    /// Takes every post-training step due for the run now. A failed step is recorded on the
    /// run (its stage, or deploy_failed) and ends the walk; the run is returned as it is then.
    pub async fn advance(&self, run_id: RunId) -> Result<TrainingRun> {
        let run = self.store.get_run(run_id).await?;
        match run.next_step() {
            Some(Step::Register) if self.can_register() => {
                match self.registry.register(run_id).await {
                    Ok(run) => self.deploy_if_due(run).await,
                    Err(e) => {
                        tracing::warn!(run_id, error = %e, "registration after completion failed");
                        self.store.get_run(run_id).await
                    }
                }
            }
            Some(Step::Deploy) => {
                // Registered earlier, possibly by a process killed before it refreshed the
                // model's version cache: refreshing is idempotent (counted from the runs).
                if let Some(model_id) = run.registered_model_id {
                    self.registry
                        .update_after_registration(model_id, &run)
                        .await?;
                }
                self.deploy_if_due(run).await
            }
            _ => Ok(run),
        }
    }

    async fn deploy_if_due(&self, run: TrainingRun) -> Result<TrainingRun> {
        if run.next_step() != Some(Step::Deploy) || !self.deployments.can_deploy() {
            return Ok(run);
        }
        let id = run.id;
        match self.deployments.deploy(id, &DeployOptions::default()).await {
            Ok(run) => Ok(run),
            Err(e) => {
                tracing::warn!(run_id = id, error = %e, "auto-deploy after registration failed");
                self.store.get_run(id).await
            }
        }
    }
}
