//! Feature configuration: which columns feed the buyer (query) and product (candidate) towers
//! and how each is transformed. Consumed by trainyard-codegen.

use serde::{Deserialize, Serialize};

/// Placeholder until the code-generator issue fills it in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureConfig {
    pub name: String,
}
