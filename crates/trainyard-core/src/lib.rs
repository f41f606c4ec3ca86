//! trainyard-core: the training domain of trainyard, as types and rules.
//!
//! Owns the entities (TrainingRun, RegisteredModel, TrainingSchedule, DeployedEndpoint,
//! TrainingMetricsHistory), the configuration types, the run status state machine, the nine
//! pipeline stages, metrics extraction, deployment naming rules and the ports (async traits)
//! that backends implement. Pure: no IO, no async runtime, no pyo3.

pub mod config;
pub mod control;
pub mod deployment;
pub mod error;
pub mod feature_config;
pub mod metrics;
pub mod model_config;
pub mod names;
pub mod ports;
pub mod pricing;
pub mod registry;
pub mod run;
pub mod sanitize;
pub mod schedule;
pub mod stages;
pub mod status;
pub mod strict;
pub mod timing;
pub mod tracking;

pub use error::{Error, Result, ValidationError};
pub use model_config::ModelType;
pub use status::{apply, InvalidTransition, RunEvent, RunStatus};
