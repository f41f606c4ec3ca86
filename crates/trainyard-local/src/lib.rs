//! trainyard-local: the embedded backends that run everything on one machine.
//!
//! Owns the local pipeline runner ([`LocalRunner`]: TFX's LocalDagRunner in the managed
//! Python env, as a child process group) and the durable in-process scheduler ([`EmbeddedScheduler`]): it fires due schedules from
//! the Store, so its state survives restarts and several scheduler processes can share one
//! database without firing anything twice.

mod deployer;
mod registry;
mod runner;
mod scheduler;

pub use deployer::{
    check_product_ids_are_strings, project_identity, LocalDeployer, LocalEndpointState,
    SERVED_MODEL_NAME,
};
pub use registry::{pushed_version_dir, LocalModelRegistry, VersionManifest, MANIFEST_FILE};
pub use runner::{group_alive, LocalRunner, COMPONENT_LOG_DIR, PIPELINE_LOG_FILE};
pub use scheduler::{EmbeddedScheduler, SchedulerConfig, TickReport};
