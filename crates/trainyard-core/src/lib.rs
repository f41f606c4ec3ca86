//! trainyard-core: the training domain of trainyard, as types and rules.
//!
//! Owns the entities (TrainingRun, RegisteredModel, TrainingSchedule, DeployedEndpoint,
//! TrainingMetricsHistory), the configuration types, the run status state machine, the nine
//! pipeline stages, metrics extraction, deployment naming rules and the ports (async traits)
//! that backends implement. Pure: no IO, no async runtime, no pyo3.

pub mod feature_config;
pub mod model_config;
