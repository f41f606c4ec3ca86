//! trainyard-local: the embedded backends that run everything on one machine.
//!
//! Owns the local pipeline runner ([`LocalRunner`]: TFX's LocalDagRunner in the managed
//! Python env, as a detached process group whose state is on disk under the run's folder, so
//! any process can follow or cancel it) and the durable in-process scheduler
//! ([`EmbeddedScheduler`]): it fires due schedules from the Store, so its state survives
//! restarts and several scheduler processes can share one database without firing anything
//! twice. [`MlflowTracking`] ends, over MLflow's REST API, the tracking runs that trainers
//! killed outright left RUNNING.

mod deployer;
mod mlflow;
mod registry;
mod runner;
mod scheduler;

pub use deployer::{
    check_product_ids_are_strings, project_identity, LocalDeployer, LocalEndpointState,
    SERVED_MODEL_NAME,
};
pub use mlflow::MlflowTracking;
pub use registry::{pushed_version_dir, LocalModelRegistry, VersionManifest, MANIFEST_FILE};
pub use runner::{
    group_alive, LocalRunner, RunnerState, COMPONENT_LOG_DIR, PIPELINE_LOG_FILE,
    RUNNER_CANCEL_FILE, RUNNER_EXIT_FILE, RUNNER_LOST, RUNNER_STATE_FILE, RUNNER_TMP_DIR,
};
pub use scheduler::{EmbeddedScheduler, SchedulerConfig, TickReport};
