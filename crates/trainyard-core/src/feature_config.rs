//! Feature configuration: which columns feed the buyer (query) and product (candidate) towers
//! and how each is transformed. Consumed by trainyard-codegen, which turns it into a
//! tf.Transform `preprocessing_fn` and the towers of the trainer module.
//!
//! Transformed feature names are part of the contract between the two generated modules; they
//! are defined here once ([`FeatureSpec::output_names`], [`FeatureCross::output_name`],
//! [`TARGET_OUTPUT`]).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// BigQuery column types the platform reads (spec: BigQuery -> TF types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BqType {
    String,
    Bytes,
    Int64,
    Float64,
    Numeric,
    Timestamp,
    Datetime,
    Date,
}

/// The TensorFlow dtype a BigQuery type is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TfDtype {
    String,
    Int64,
    Float32,
}

impl TfDtype {
    /// The Python expression naming the dtype (`tf.string`, ...).
    pub fn python(self) -> &'static str {
        match self {
            TfDtype::String => "tf.string",
            TfDtype::Int64 => "tf.int64",
            TfDtype::Float32 => "tf.float32",
        }
    }
}

impl BqType {
    /// STRING/BYTES->string, INT64->int64, FLOAT64/NUMERIC->float32,
    /// TIMESTAMP/DATETIME->int64 (epoch seconds), DATE->string.
    pub fn tf_dtype(self) -> TfDtype {
        match self {
            BqType::String | BqType::Bytes | BqType::Date => TfDtype::String,
            BqType::Int64 | BqType::Timestamp | BqType::Datetime => TfDtype::Int64,
            BqType::Float64 | BqType::Numeric => TfDtype::Float32,
        }
    }

    /// The BigQuery type name (`STRING`, `INT64`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BqType::String => "STRING",
            BqType::Bytes => "BYTES",
            BqType::Int64 => "INT64",
            BqType::Float64 => "FLOAT64",
            BqType::Numeric => "NUMERIC",
            BqType::Timestamp => "TIMESTAMP",
            BqType::Datetime => "DATETIME",
            BqType::Date => "DATE",
        }
    }

    fn is_numeric(self) -> bool {
        matches!(self, BqType::Int64 | BqType::Float64 | BqType::Numeric)
    }

    fn is_time(self) -> bool {
        matches!(self, BqType::Timestamp | BqType::Datetime)
    }
}

/// Periodic components a timestamp can be encoded by (sin/cos pairs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CyclicalPeriod {
    HourOfDay,
    DayOfWeek,
    DayOfYear,
}

impl CyclicalPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            CyclicalPeriod::HourOfDay => "hour_of_day",
            CyclicalPeriod::DayOfWeek => "day_of_week",
            CyclicalPeriod::DayOfYear => "day_of_year",
        }
    }

    /// (length of one cycle in seconds, offset in seconds added before taking the phase).
    /// 1970-01-01 was a Thursday, so day_of_week is shifted to start on Monday.
    pub fn seconds(self) -> (u64, u64) {
        match self {
            CyclicalPeriod::HourOfDay => (86_400, 0),
            CyclicalPeriod::DayOfWeek => (7 * 86_400, 3 * 86_400),
            CyclicalPeriod::DayOfYear => (31_556_952, 0),
        }
    }
}

/// How one raw column becomes model input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FeatureTransform {
    /// id / category: `tft.compute_and_apply_vocabulary` with OOV buckets, then an embedding.
    Vocabulary {
        embedding_dim: u32,
        #[serde(default = "one")]
        num_oov_buckets: u32,
        /// Keep only the most frequent values (None: all).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        top_k: Option<u32>,
    },
    /// numeric: z-score (optionally of log1p(x) for skewed amounts), fed as one float.
    Normalize {
        #[serde(default)]
        log1p: bool,
    },
    /// numeric: quantile buckets; embedded when `embedding_dim` is set, else one-hot.
    Bucketize {
        num_buckets: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        embedding_dim: Option<u32>,
    },
    /// timestamp: sin/cos of each period.
    Cyclical { periods: Vec<CyclicalPeriod> },
    /// timestamp: quantile buckets of the epoch seconds, embedded.
    TimestampBucketize {
        num_buckets: u32,
        embedding_dim: u32,
    },
}

fn one() -> u32 {
    1
}

/// One input column and its transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    pub column: String,
    pub bq_type: BqType,
    pub transform: FeatureTransform,
}

impl FeatureSpec {
    pub fn new(column: &str, bq_type: BqType, transform: FeatureTransform) -> Self {
        Self {
            column: column.to_string(),
            bq_type,
            transform,
        }
    }

    /// Names of the transformed features this column produces.
    pub fn output_names(&self) -> Vec<String> {
        let c = &self.column;
        match &self.transform {
            FeatureTransform::Vocabulary { .. } => vec![format!("{c}__idx")],
            FeatureTransform::Normalize { .. } => vec![format!("{c}__z")],
            FeatureTransform::Bucketize { .. } | FeatureTransform::TimestampBucketize { .. } => {
                vec![format!("{c}__bucket")]
            }
            FeatureTransform::Cyclical { periods } => periods
                .iter()
                .flat_map(|p| {
                    [
                        format!("{c}__{}_sin", p.as_str()),
                        format!("{c}__{}_cos", p.as_str()),
                    ]
                })
                .collect(),
        }
    }

    /// The vocabulary file name of a vocabulary feature.
    pub fn vocab_filename(&self) -> Option<String> {
        matches!(self.transform, FeatureTransform::Vocabulary { .. })
            .then(|| format!("{}__vocab", self.column))
    }

    /// Whether this feature can take part in a hashed cross (it has a discrete value).
    fn is_crossable(&self) -> bool {
        matches!(
            self.transform,
            FeatureTransform::Vocabulary { .. }
                | FeatureTransform::Bucketize { .. }
                | FeatureTransform::TimestampBucketize { .. }
        )
    }
}

/// A hashed feature cross of two or more columns of the same tower, embedded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureCross {
    pub columns: Vec<String>,
    pub hash_buckets: u32,
    pub embedding_dim: u32,
}

impl FeatureCross {
    pub fn output_name(&self) -> String {
        format!("{}__cross", self.columns.join("_x_"))
    }
}

/// Transforms applied to the ranking target, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetTransform {
    /// log(1 + max(x, 0)); served predictions are mapped back with expm1.
    Log1p,
    Clip {
        min: f64,
        max: f64,
    },
    /// 1.0 where x >= threshold else 0.0 (for binary_crossentropy).
    Binarize {
        threshold: f64,
    },
}

/// The ranking / multitask target column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub column: String,
    pub bq_type: BqType,
    #[serde(default)]
    pub transforms: Vec<TargetTransform>,
}

impl TargetConfig {
    /// Whether the target ends up in {0, 1}.
    pub fn is_binary(&self) -> bool {
        matches!(
            self.transforms.last(),
            Some(TargetTransform::Binarize { .. })
        )
    }
}

/// Name of the transformed target feature.
pub const TARGET_OUTPUT: &str = "__target__";

/// Which columns feed which tower, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    pub name: String,
    /// Query tower inputs (the buyer and the context of the purchase).
    pub buyer_features: Vec<FeatureSpec>,
    /// Candidate tower inputs; must include `product_id_column` as a vocabulary feature.
    pub product_features: Vec<FeatureSpec>,
    #[serde(default)]
    pub buyer_crosses: Vec<FeatureCross>,
    #[serde(default)]
    pub product_crosses: Vec<FeatureCross>,
    /// The column whose original values serving returns as `product_ids`.
    pub product_id_column: String,
    /// Required for ranking and multitask models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetConfig>,
}

impl Default for FeatureConfig {
    /// The synthetic B2B purchase dataset (trainyard-synth): customers (customer_id, city,
    /// segment, revenue), products (product_id, category, price), transactions (timestamp,
    /// quantity, rating), joined into one row per transaction.
    fn default() -> Self {
        use FeatureTransform::*;
        let vocab = |d| Vocabulary {
            embedding_dim: d,
            num_oov_buckets: 1,
            top_k: None,
        };
        Self {
            name: "synthetic-b2b".into(),
            buyer_features: vec![
                FeatureSpec::new("customer_id", BqType::String, vocab(32)),
                FeatureSpec::new("city", BqType::String, vocab(8)),
                FeatureSpec::new("segment", BqType::String, vocab(4)),
                FeatureSpec::new("revenue", BqType::Float64, Normalize { log1p: true }),
                FeatureSpec::new(
                    "timestamp",
                    BqType::Timestamp,
                    Cyclical {
                        periods: vec![CyclicalPeriod::DayOfWeek, CyclicalPeriod::HourOfDay],
                    },
                ),
            ],
            product_features: vec![
                FeatureSpec::new("product_id", BqType::String, vocab(32)),
                FeatureSpec::new("category", BqType::String, vocab(8)),
                FeatureSpec::new(
                    "price",
                    BqType::Float64,
                    Bucketize {
                        num_buckets: 10,
                        embedding_dim: Some(4),
                    },
                ),
            ],
            buyer_crosses: vec![FeatureCross {
                columns: vec!["city".into(), "segment".into()],
                hash_buckets: 256,
                embedding_dim: 8,
            }],
            product_crosses: vec![],
            product_id_column: "product_id".into(),
            target: Some(TargetConfig {
                column: "rating".into(),
                bq_type: BqType::Float64,
                transforms: vec![TargetTransform::Clip { min: 1.0, max: 5.0 }],
            }),
        }
    }
}

/// Why a feature config is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FeatureConfigError {
    #[error("the {tower} tower has no features")]
    EmptyTower { tower: &'static str },
    #[error("column name {0:?} is not a valid identifier (letters, digits, underscore; no leading digit)")]
    BadColumnName(String),
    #[error("column {0:?} is used more than once")]
    DuplicateColumn(String),
    #[error(
        "column {column:?}: transform {transform} does not apply to BigQuery type {bq_type:?}"
    )]
    TransformTypeMismatch {
        column: String,
        transform: &'static str,
        bq_type: BqType,
    },
    #[error("column {column:?}: {what} must be between 1 and {max}")]
    OutOfRange {
        column: String,
        what: &'static str,
        max: u32,
    },
    #[error("column {0:?}: cyclical transform needs at least one period, each once")]
    BadPeriods(String),
    #[error("product id column {0:?} must be a product feature with a vocabulary transform")]
    ProductIdNotVocabulary(String),
    #[error("cross {cross:?}: {reason}")]
    BadCross { cross: String, reason: String },
    #[error("target {column:?}: {reason}")]
    BadTarget { column: String, reason: String },
}

const MAX_DIM: u32 = 1024;
const MAX_BUCKETS: u32 = 10_000_000;

fn valid_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.contains("__")
}

fn range(column: &str, what: &'static str, v: u32, max: u32) -> Result<(), FeatureConfigError> {
    if v == 0 || v > max {
        return Err(FeatureConfigError::OutOfRange {
            column: column.to_string(),
            what,
            max,
        });
    }
    Ok(())
}

impl FeatureSpec {
    fn validate(&self) -> Result<(), FeatureConfigError> {
        let c = &self.column;
        if !valid_ident(c) {
            return Err(FeatureConfigError::BadColumnName(c.clone()));
        }
        let mismatch = |transform| FeatureConfigError::TransformTypeMismatch {
            column: c.clone(),
            transform,
            bq_type: self.bq_type,
        };
        match &self.transform {
            FeatureTransform::Vocabulary {
                embedding_dim,
                num_oov_buckets,
                top_k,
            } => {
                if matches!(self.bq_type, BqType::Float64 | BqType::Numeric) {
                    return Err(mismatch("vocabulary"));
                }
                range(c, "embedding_dim", *embedding_dim, MAX_DIM)?;
                range(c, "num_oov_buckets", *num_oov_buckets, 1000)?;
                if let Some(k) = top_k {
                    range(c, "top_k", *k, MAX_BUCKETS)?;
                }
            }
            FeatureTransform::Normalize { .. } => {
                if !self.bq_type.is_numeric() {
                    return Err(mismatch("normalize"));
                }
            }
            FeatureTransform::Bucketize {
                num_buckets,
                embedding_dim,
            } => {
                if !self.bq_type.is_numeric() {
                    return Err(mismatch("bucketize"));
                }
                range(c, "num_buckets", *num_buckets, 10_000)?;
                if let Some(d) = embedding_dim {
                    range(c, "embedding_dim", *d, MAX_DIM)?;
                }
            }
            FeatureTransform::Cyclical { periods } => {
                if !self.bq_type.is_time() {
                    return Err(mismatch("cyclical"));
                }
                let set: BTreeSet<_> = periods.iter().collect();
                if periods.is_empty() || set.len() != periods.len() {
                    return Err(FeatureConfigError::BadPeriods(c.clone()));
                }
            }
            FeatureTransform::TimestampBucketize {
                num_buckets,
                embedding_dim,
            } => {
                if !self.bq_type.is_time() {
                    return Err(mismatch("timestamp_bucketize"));
                }
                range(c, "num_buckets", *num_buckets, 10_000)?;
                range(c, "embedding_dim", *embedding_dim, MAX_DIM)?;
            }
        }
        Ok(())
    }
}

impl FeatureConfig {
    /// All features, buyer tower first.
    pub fn all_features(&self) -> impl Iterator<Item = &FeatureSpec> {
        self.buyer_features
            .iter()
            .chain(self.product_features.iter())
    }

    /// The product id feature (validated configs always have one).
    pub fn product_id_feature(&self) -> Option<&FeatureSpec> {
        self.product_features
            .iter()
            .find(|f| f.column == self.product_id_column)
    }

    /// Checks the config on its own; the model type's needs (a target for ranking and
    /// multitask) are checked by [`crate::model_config::ModelConfig::validate_with`].
    pub fn validate(&self) -> Result<(), FeatureConfigError> {
        if self.buyer_features.is_empty() {
            return Err(FeatureConfigError::EmptyTower { tower: "buyer" });
        }
        if self.product_features.is_empty() {
            return Err(FeatureConfigError::EmptyTower { tower: "product" });
        }
        let mut seen = BTreeSet::new();
        for f in self.all_features() {
            f.validate()?;
            if !seen.insert(f.column.as_str()) {
                return Err(FeatureConfigError::DuplicateColumn(f.column.clone()));
            }
        }
        match self.product_id_feature() {
            Some(f) if matches!(f.transform, FeatureTransform::Vocabulary { .. }) => {}
            _ => {
                return Err(FeatureConfigError::ProductIdNotVocabulary(
                    self.product_id_column.clone(),
                ))
            }
        }
        for (tower, features, crosses) in [
            ("buyer", &self.buyer_features, &self.buyer_crosses),
            ("product", &self.product_features, &self.product_crosses),
        ] {
            let mut names = BTreeSet::new();
            for cross in crosses {
                let name = cross.output_name();
                let bad = |reason: String| FeatureConfigError::BadCross {
                    cross: name.clone(),
                    reason,
                };
                if cross.columns.len() < 2 {
                    return Err(bad("needs at least two columns".into()));
                }
                let distinct: BTreeSet<_> = cross.columns.iter().collect();
                if distinct.len() != cross.columns.len() {
                    return Err(bad("lists a column twice".into()));
                }
                for col in &cross.columns {
                    match features.iter().find(|f| &f.column == col) {
                        None => return Err(bad(format!("{col:?} is not a {tower} feature"))),
                        Some(f) if !f.is_crossable() => {
                            return Err(bad(format!(
                                "{col:?} must be a vocabulary or bucketized feature"
                            )))
                        }
                        Some(_) => {}
                    }
                }
                range(&name, "hash_buckets", cross.hash_buckets, MAX_BUCKETS)
                    .map_err(|e| bad(e.to_string()))?;
                range(&name, "embedding_dim", cross.embedding_dim, MAX_DIM)
                    .map_err(|e| bad(e.to_string()))?;
                if !names.insert(name.clone()) {
                    return Err(bad("is defined twice".into()));
                }
            }
        }
        if let Some(t) = &self.target {
            let bad = |reason: &str| FeatureConfigError::BadTarget {
                column: t.column.clone(),
                reason: reason.to_string(),
            };
            if !valid_ident(&t.column) {
                return Err(FeatureConfigError::BadColumnName(t.column.clone()));
            }
            if !t.bq_type.is_numeric() {
                return Err(bad("must be INT64, FLOAT64 or NUMERIC"));
            }
            if seen.contains(t.column.as_str()) {
                return Err(bad("must not also be an input feature"));
            }
            for tr in &t.transforms {
                match tr {
                    TargetTransform::Clip { min, max }
                        if !(min.is_finite() && max.is_finite() && min < max) =>
                    {
                        return Err(bad("clip needs finite min < max"))
                    }
                    TargetTransform::Binarize { threshold } if !threshold.is_finite() => {
                        return Err(bad("binarize threshold must be finite"))
                    }
                    _ => {}
                }
            }
            let binarize_at = t
                .transforms
                .iter()
                .position(|x| matches!(x, TargetTransform::Binarize { .. }));
            if binarize_at.is_some_and(|i| i + 1 != t.transforms.len()) {
                return Err(bad("binarize must be the last transform"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_round_trips() {
        let c = FeatureConfig::default();
        c.validate().unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let back: FeatureConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert!(json.contains("\"bq_type\":\"FLOAT64\""), "{json}");
        assert!(json.contains("\"kind\":\"vocabulary\""), "{json}");
    }

    #[test]
    fn bq_types_map_to_tf_types() {
        assert_eq!(BqType::Bytes.tf_dtype(), TfDtype::String);
        assert_eq!(BqType::Numeric.tf_dtype(), TfDtype::Float32);
        assert_eq!(BqType::Datetime.tf_dtype(), TfDtype::Int64);
        assert_eq!(BqType::Date.tf_dtype(), TfDtype::String);
    }

    #[test]
    fn rejects_mismatched_transform() {
        let mut c = FeatureConfig::default();
        c.buyer_features[0].transform = FeatureTransform::Normalize { log1p: false };
        assert!(matches!(
            c.validate(),
            Err(FeatureConfigError::TransformTypeMismatch { .. })
        ));
    }

    #[test]
    fn rejects_product_id_without_vocabulary() {
        let c = FeatureConfig {
            product_id_column: "price".into(),
            ..FeatureConfig::default()
        };
        assert_eq!(
            c.validate(),
            Err(FeatureConfigError::ProductIdNotVocabulary("price".into()))
        );
    }

    #[test]
    fn rejects_cross_of_unknown_or_continuous_columns() {
        let mut c = FeatureConfig::default();
        c.buyer_crosses[0].columns = vec!["city".into(), "revenue".into()];
        assert!(matches!(
            c.validate(),
            Err(FeatureConfigError::BadCross { .. })
        ));
        c.buyer_crosses[0].columns = vec!["city".into(), "category".into()];
        assert!(matches!(
            c.validate(),
            Err(FeatureConfigError::BadCross { .. })
        ));
    }

    #[test]
    fn rejects_duplicates_bad_names_and_bad_target() {
        let mut c = FeatureConfig::default();
        c.product_features.push(c.buyer_features[1].clone());
        assert_eq!(
            c.validate(),
            Err(FeatureConfigError::DuplicateColumn("city".into()))
        );

        let mut c = FeatureConfig::default();
        c.buyer_features[1].column = "a b".into();
        assert!(matches!(
            c.validate(),
            Err(FeatureConfigError::BadColumnName(_))
        ));

        let mut c = FeatureConfig::default();
        c.target.as_mut().unwrap().transforms = vec![
            TargetTransform::Binarize { threshold: 3.0 },
            TargetTransform::Log1p,
        ];
        assert!(matches!(
            c.validate(),
            Err(FeatureConfigError::BadTarget { .. })
        ));
    }

    #[test]
    fn output_names_are_distinct() {
        let c = FeatureConfig::default();
        let mut names: Vec<String> = c.all_features().flat_map(|f| f.output_names()).collect();
        names.extend(c.buyer_crosses.iter().map(|x| x.output_name()));
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
