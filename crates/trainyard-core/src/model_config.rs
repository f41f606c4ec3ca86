//! Model configuration: model type, towers, heads, loss, optimizer and serving algorithm.
//! Consumed by trainyard-codegen.

use serde::{Deserialize, Serialize};

/// The three TFRS model families the platform trains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelType {
    #[default]
    Retrieval,
    Ranking,
    Multitask,
}

/// Placeholder until the code-generator issue fills it in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub name: String,
    pub model_type: ModelType,
}
