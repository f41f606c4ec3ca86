//! trainyard-insights: what the Data Insights and Training tabs of a run show.
//!
//! - [`stats`]: TFDV statistics (StatisticsGen's binary `DatasetFeatureStatisticsList`,
//!   decoded with prost from the message subset in [`proto`]) summarized per split and overall;
//! - [`schema`]: SchemaGen's `schema.pbtxt` (protobuf text format, read by [`textproto`]);
//! - [`weights`]: the per-epoch weight and gradient statistics the generated trainer records.
//!
//! Pure: bytes and JSON in, serde-serializable summaries out; finding the files of a run is
//! the facade's job (trainyard::InsightsService).

pub mod proto;
pub mod schema;
pub mod stats;
pub mod textproto;
pub mod weights;

use thiserror::Error;

pub use schema::{Schema, SchemaFeatureSummary, SchemaSummary};
pub use stats::{
    summarize_splits, CategoricalFeatureSummary, DatasetSummary, NumericFeatureSummary,
    StatisticsSummary,
};
pub use weights::{TensorStats, WeightStatsHistory, WEIGHT_STATS_KEY};

#[derive(Debug, Clone, PartialEq, Error)]
pub enum InsightsError {
    #[error("statistics protobuf: {0}")]
    Decode(String),
    #[error("schema text format, line {line}: {message}")]
    TextFormat { line: usize, message: String },
    #[error("schema: {field} {reason}")]
    Schema { field: String, reason: String },
    #[error("weight statistics: {0}")]
    WeightStats(String),
    #[error("{0} not found")]
    NotFound(String),
}

impl InsightsError {
    pub(crate) fn schema(field: impl Into<String>, reason: impl Into<String>) -> Self {
        InsightsError::Schema {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
