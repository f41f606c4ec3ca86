//! Feature configuration: which columns feed the buyer (query) and product (candidate) towers
//! and how each is transformed. Consumed by trainyard-codegen, which turns it into a
//! tf.Transform `preprocessing_fn` and the towers of the trainer module.
//!
//! Transformed feature names are part of the contract between the two generated modules; they
//! are defined here once ([`FeatureSpec::output_names`], [`FeatureCross::output_name`],
//! [`TARGET_OUTPUT`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// BigQuery column types the platform reads (spec: BigQuery -> TF types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BqType {
    String,
    Bytes,
    /// Also accepted as `INTEGER` (the spec's legacy SQL name).
    #[serde(alias = "INTEGER")]
    Int64,
    /// Also accepted as `FLOAT` (the spec's legacy SQL name).
    #[serde(alias = "FLOAT")]
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

    /// The identifier generated code, transformed feature names and the serving signature know
    /// this column by ([`column_key`]).
    pub fn key(&self) -> String {
        column_key(&self.column)
    }

    /// Names of the transformed features this column produces.
    pub fn output_names(&self) -> Vec<String> {
        let c = &self.key();
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
            .then(|| format!("{}__vocab", self.key()))
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
        let keys: Vec<String> = self.columns.iter().map(|c| column_key(c)).collect();
        format!("{}__cross", keys.join("_x_"))
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

/// What is wrong with a feature config, at [`FeatureConfigError::path`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FeatureProblem {
    #[error("the {0} tower has no features")]
    EmptyTower(&'static str),
    #[error("column name {0:?} must be 1 to {MAX_COLUMN_LEN} characters, not blank, without control characters")]
    BadColumnName(String),
    #[error("column {0:?} is used more than once")]
    DuplicateColumn(String),
    #[error(
        "columns {0:?} and {1:?} both become the identifier {2:?} in generated code and serving"
    )]
    KeyCollision(String, String, String),
    #[error("transform {transform} does not apply to BigQuery type {}", bq_type.as_str())]
    TransformTypeMismatch {
        transform: &'static str,
        bq_type: BqType,
    },
    #[error("must be between 1 and {max}, got {got}")]
    OutOfRange { max: u32, got: u32 },
    #[error("a cyclical transform needs at least one period, each once")]
    BadPeriods,
    #[error("{0:?} is not a product feature")]
    UnknownProductId(String),
    #[error("product id column {0:?} must have a vocabulary transform")]
    ProductIdNotVocabulary(String),
    #[error("cross {cross:?}: {reason}")]
    BadCross { cross: String, reason: String },
    #[error("target {column:?}: {reason}")]
    BadTarget { column: String, reason: String },
    #[error("transformed feature {0:?} is produced twice")]
    DuplicateOutput(String),
}

/// Why a feature config is unusable: the field (a path inside the feature config, e.g.
/// `buyer_features[2].transform.embedding_dim`) and the problem.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{path}: {problem}")]
pub struct FeatureConfigError {
    pub path: String,
    pub problem: FeatureProblem,
}

impl FeatureConfigError {
    fn at(path: impl Into<String>, problem: FeatureProblem) -> Self {
        Self {
            path: path.into(),
            problem,
        }
    }
}

const MAX_DIM: u32 = 1024;
const MAX_BUCKETS: u32 = 10_000_000;
/// BigQuery's limit on column names.
pub const MAX_COLUMN_LEN: usize = 300;

/// Any name BigQuery could give a column: non-blank, at most 300 characters, no control
/// characters. Python keywords, module names and punctuation are fine: generated code uses
/// [`column_key`] wherever it needs an identifier.
fn valid_column(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= MAX_COLUMN_LEN && !s.chars().any(char::is_control)
}

/// Whether `s` is usable as-is as a serving input name and in generated identifiers:
/// `^[A-Za-z][A-Za-z0-9_]*$` (TensorFlow's rule for signature argument names).
fn is_plain_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The identifier a column is known by in generated code, transformed feature names,
/// vocabulary files and the serving signature: the column itself when it matches
/// `^[A-Za-z][A-Za-z0-9_]*$` (Python keywords such as `class` and module names such as `tf`
/// included: generated code never uses it bare), else every other character replaced by `_`
/// and, when it does not start with a letter, prefixed with `col_`. `self` becomes `col_self`
/// (a signature input named `self` clashes with the serving method's own parameter).
pub fn column_key(column: &str) -> String {
    // `self` would collide with the serving method's own parameter when TensorFlow calls the
    // signature with keyword arguments
    if column == "self" {
        return "col_self".into();
    }
    if is_plain_identifier(column) {
        return column.to_string();
    }
    let body: String = column
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if body.starts_with(|c: char| c.is_ascii_alphabetic()) {
        body
    } else {
        format!("col_{body}")
    }
}

fn range(path: String, v: u32, max: u32) -> Result<(), FeatureConfigError> {
    if v == 0 || v > max {
        return Err(FeatureConfigError::at(
            path,
            FeatureProblem::OutOfRange { max, got: v },
        ));
    }
    Ok(())
}

impl FeatureSpec {
    /// Checks one feature; `at` is its path (`buyer_features[0]`).
    fn validate(&self, at: &str) -> Result<(), FeatureConfigError> {
        let c = &self.column;
        if !valid_column(c) {
            return Err(FeatureConfigError::at(
                format!("{at}.column"),
                FeatureProblem::BadColumnName(c.clone()),
            ));
        }
        let mismatch = |transform| {
            FeatureConfigError::at(
                format!("{at}.transform"),
                FeatureProblem::TransformTypeMismatch {
                    transform,
                    bq_type: self.bq_type,
                },
            )
        };
        let field = |name: &str| format!("{at}.transform.{name}");
        match &self.transform {
            FeatureTransform::Vocabulary {
                embedding_dim,
                num_oov_buckets,
                top_k,
            } => {
                if matches!(self.bq_type, BqType::Float64 | BqType::Numeric) {
                    return Err(mismatch("vocabulary"));
                }
                range(field("embedding_dim"), *embedding_dim, MAX_DIM)?;
                range(field("num_oov_buckets"), *num_oov_buckets, 1000)?;
                if let Some(k) = top_k {
                    range(field("top_k"), *k, MAX_BUCKETS)?;
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
                range(field("num_buckets"), *num_buckets, 10_000)?;
                if let Some(d) = embedding_dim {
                    range(field("embedding_dim"), *d, MAX_DIM)?;
                }
            }
            FeatureTransform::Cyclical { periods } => {
                if !self.bq_type.is_time() {
                    return Err(mismatch("cyclical"));
                }
                let set: BTreeSet<_> = periods.iter().collect();
                if periods.is_empty() || set.len() != periods.len() {
                    return Err(FeatureConfigError::at(
                        field("periods"),
                        FeatureProblem::BadPeriods,
                    ));
                }
            }
            FeatureTransform::TimestampBucketize {
                num_buckets,
                embedding_dim,
            } => {
                if !self.bq_type.is_time() {
                    return Err(mismatch("timestamp_bucketize"));
                }
                range(field("num_buckets"), *num_buckets, 10_000)?;
                range(field("embedding_dim"), *embedding_dim, MAX_DIM)?;
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

    /// Every column the config reads, with its path: features, then the target.
    fn columns_with_paths(&self) -> Vec<(String, &str)> {
        let mut out: Vec<(String, &str)> = Vec::new();
        for (tower, features) in [
            ("buyer_features", &self.buyer_features),
            ("product_features", &self.product_features),
        ] {
            for (i, f) in features.iter().enumerate() {
                out.push((format!("{tower}[{i}].column"), f.column.as_str()));
            }
        }
        if let Some(t) = &self.target {
            out.push(("target.column".into(), t.column.as_str()));
        }
        out
    }

    /// Checks the config on its own; the model type's needs (a target for ranking and
    /// multitask) are checked by [`crate::model_config::ModelConfig::validate_with`]. The
    /// error names the field, relative to the feature config.
    pub fn validate(&self) -> Result<(), FeatureConfigError> {
        if self.buyer_features.is_empty() {
            return Err(FeatureConfigError::at(
                "buyer_features",
                FeatureProblem::EmptyTower("buyer"),
            ));
        }
        if self.product_features.is_empty() {
            return Err(FeatureConfigError::at(
                "product_features",
                FeatureProblem::EmptyTower("product"),
            ));
        }
        for (tower, features) in [
            ("buyer_features", &self.buyer_features),
            ("product_features", &self.product_features),
        ] {
            for (i, f) in features.iter().enumerate() {
                f.validate(&format!("{tower}[{i}]"))?;
            }
        }
        // columns are distinct, and so are the identifiers generated code knows them by
        let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
        let mut keys: BTreeMap<String, &str> = BTreeMap::new();
        for (path, column) in self.columns_with_paths() {
            if !valid_column(column) {
                return Err(FeatureConfigError::at(
                    path,
                    FeatureProblem::BadColumnName(column.to_string()),
                ));
            }
            if seen.insert(column, ()).is_some() {
                let problem = if path == "target.column" {
                    FeatureProblem::BadTarget {
                        column: column.to_string(),
                        reason: "must not also be an input feature".into(),
                    }
                } else {
                    FeatureProblem::DuplicateColumn(column.to_string())
                };
                return Err(FeatureConfigError::at(path, problem));
            }
            let key = column_key(column);
            if let Some(other) = keys.insert(key.clone(), column) {
                return Err(FeatureConfigError::at(
                    path,
                    FeatureProblem::KeyCollision(other.to_string(), column.to_string(), key),
                ));
            }
        }
        match self.product_id_feature() {
            Some(f) if matches!(f.transform, FeatureTransform::Vocabulary { .. }) => {}
            Some(_) => {
                return Err(FeatureConfigError::at(
                    "product_id_column",
                    FeatureProblem::ProductIdNotVocabulary(self.product_id_column.clone()),
                ))
            }
            None => {
                return Err(FeatureConfigError::at(
                    "product_id_column",
                    FeatureProblem::UnknownProductId(self.product_id_column.clone()),
                ))
            }
        }
        for (tower, features, crosses, field) in [
            (
                "buyer",
                &self.buyer_features,
                &self.buyer_crosses,
                "buyer_crosses",
            ),
            (
                "product",
                &self.product_features,
                &self.product_crosses,
                "product_crosses",
            ),
        ] {
            let mut names = BTreeSet::new();
            for (i, cross) in crosses.iter().enumerate() {
                let name = cross.output_name();
                let at = format!("{field}[{i}]");
                let bad = |sub: &str, reason: String| {
                    FeatureConfigError::at(
                        format!("{at}{sub}"),
                        FeatureProblem::BadCross {
                            cross: cross.columns.join(" x "),
                            reason,
                        },
                    )
                };
                if cross.columns.len() < 2 {
                    return Err(bad(".columns", "needs at least two columns".into()));
                }
                let distinct: BTreeSet<_> = cross.columns.iter().collect();
                if distinct.len() != cross.columns.len() {
                    return Err(bad(".columns", "lists a column twice".into()));
                }
                for col in &cross.columns {
                    match features.iter().find(|f| &f.column == col) {
                        None => {
                            return Err(bad(
                                ".columns",
                                format!("{col:?} is not a {tower} feature"),
                            ))
                        }
                        Some(f) if !f.is_crossable() => {
                            return Err(bad(
                                ".columns",
                                format!("{col:?} must be a vocabulary or bucketized feature"),
                            ))
                        }
                        Some(_) => {}
                    }
                }
                range(
                    format!("{at}.hash_buckets"),
                    cross.hash_buckets,
                    MAX_BUCKETS,
                )?;
                range(format!("{at}.embedding_dim"), cross.embedding_dim, MAX_DIM)?;
                if !names.insert(name.clone()) {
                    return Err(bad("", "is defined twice".into()));
                }
            }
        }
        // every transformed feature name is produced once (crosses of both towers included)
        let mut outputs = BTreeSet::new();
        let produced = self
            .all_features()
            .flat_map(|f| f.output_names())
            .chain(self.buyer_crosses.iter().map(|c| c.output_name()))
            .chain(self.product_crosses.iter().map(|c| c.output_name()));
        for name in produced {
            if !outputs.insert(name.clone()) {
                return Err(FeatureConfigError::at(
                    "product_crosses",
                    FeatureProblem::DuplicateOutput(name),
                ));
            }
        }
        if let Some(t) = &self.target {
            let bad = |path: String, reason: &str| {
                FeatureConfigError::at(
                    path,
                    FeatureProblem::BadTarget {
                        column: t.column.clone(),
                        reason: reason.to_string(),
                    },
                )
            };
            if !t.bq_type.is_numeric() {
                return Err(bad(
                    "target.bq_type".into(),
                    "must be INT64, FLOAT64 or NUMERIC",
                ));
            }
            for (i, tr) in t.transforms.iter().enumerate() {
                let at = format!("target.transforms[{i}]");
                match tr {
                    TargetTransform::Clip { min, max }
                        if !(min.is_finite() && max.is_finite() && min < max) =>
                    {
                        return Err(bad(at, "clip needs finite min < max"))
                    }
                    TargetTransform::Binarize { threshold } if !threshold.is_finite() => {
                        return Err(bad(at, "binarize threshold must be finite"))
                    }
                    _ => {}
                }
            }
            let binarize_at = t
                .transforms
                .iter()
                .position(|x| matches!(x, TargetTransform::Binarize { .. }));
            if let Some(i) = binarize_at.filter(|i| i + 1 != t.transforms.len()) {
                return Err(bad(
                    format!("target.transforms[{i}]"),
                    "binarize must be the last transform",
                ));
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

    fn err(c: &FeatureConfig) -> FeatureConfigError {
        c.validate().unwrap_err()
    }

    #[test]
    fn rejects_mismatched_transform() {
        let mut c = FeatureConfig::default();
        c.buyer_features[0].transform = FeatureTransform::Normalize { log1p: false };
        let e = err(&c);
        assert_eq!(e.path, "buyer_features[0].transform");
        assert!(matches!(
            e.problem,
            FeatureProblem::TransformTypeMismatch { .. }
        ));
    }

    #[test]
    fn product_id_must_be_a_vocabulary_product_feature() {
        let c = FeatureConfig {
            product_id_column: "price".into(),
            ..FeatureConfig::default()
        };
        assert_eq!(
            err(&c),
            FeatureConfigError::at(
                "product_id_column",
                FeatureProblem::ProductIdNotVocabulary("price".into())
            )
        );
        let c = FeatureConfig {
            product_id_column: "sku".into(),
            ..FeatureConfig::default()
        };
        let e = err(&c);
        assert_eq!(e.path, "product_id_column");
        assert_eq!(e.problem, FeatureProblem::UnknownProductId("sku".into()));
        assert!(
            e.to_string().contains("\"sku\" is not a product feature"),
            "{e}"
        );
    }

    #[test]
    fn empty_towers_and_zero_sizes_name_the_field() {
        let mut c = FeatureConfig::default();
        c.buyer_features.clear();
        assert_eq!(err(&c).path, "buyer_features");
        let mut c = FeatureConfig::default();
        c.product_features.clear();
        assert_eq!(err(&c).path, "product_features");
        let mut c = FeatureConfig::default();
        c.product_features[1].transform = FeatureTransform::Vocabulary {
            embedding_dim: 0,
            num_oov_buckets: 1,
            top_k: None,
        };
        let e = err(&c);
        assert_eq!(e.path, "product_features[1].transform.embedding_dim");
        assert_eq!(e.problem, FeatureProblem::OutOfRange { max: 1024, got: 0 });
        let mut c = FeatureConfig::default();
        c.buyer_crosses[0].hash_buckets = 0;
        assert_eq!(err(&c).path, "buyer_crosses[0].hash_buckets");
    }

    #[test]
    fn rejects_cross_of_unknown_or_continuous_columns() {
        let mut c = FeatureConfig::default();
        c.buyer_crosses[0].columns = vec!["city".into(), "revenue".into()];
        let e = err(&c);
        assert_eq!(e.path, "buyer_crosses[0].columns");
        assert!(matches!(e.problem, FeatureProblem::BadCross { .. }));
        c.buyer_crosses[0].columns = vec!["city".into(), "category".into()];
        assert!(matches!(err(&c).problem, FeatureProblem::BadCross { .. }));
    }

    #[test]
    fn rejects_duplicates_blank_names_and_bad_target() {
        let mut c = FeatureConfig::default();
        c.product_features.push(c.buyer_features[1].clone());
        assert_eq!(
            err(&c),
            FeatureConfigError::at(
                "product_features[3].column",
                FeatureProblem::DuplicateColumn("city".into())
            )
        );

        let mut c = FeatureConfig::default();
        c.buyer_features[1].column = " ".into();
        assert_eq!(err(&c).path, "buyer_features[1].column");
        c.buyer_features[1].column = "a\nb".into();
        assert!(matches!(err(&c).problem, FeatureProblem::BadColumnName(_)));

        let mut c = FeatureConfig::default();
        c.target.as_mut().unwrap().transforms = vec![
            TargetTransform::Binarize { threshold: 3.0 },
            TargetTransform::Log1p,
        ];
        let e = err(&c);
        assert_eq!(e.path, "target.transforms[0]");
        assert!(matches!(e.problem, FeatureProblem::BadTarget { .. }));

        let mut c = FeatureConfig::default();
        c.target.as_mut().unwrap().column = "city".into();
        assert_eq!(err(&c).path, "target.column");
    }

    #[test]
    fn any_column_name_gets_a_safe_distinct_key() {
        assert_eq!(column_key("customer_id"), "customer_id");
        // keywords and module names are valid keys: generated code never uses them bare
        assert_eq!(column_key("class"), "class");
        assert_eq!(column_key("tf"), "tf");
        assert_eq!(column_key("unit price"), "unit_price");
        assert_eq!(column_key("x-y.z"), "x_y_z");
        assert_eq!(column_key("_private"), "col__private");
        assert_eq!(column_key("2nd"), "col_2nd");
        assert_eq!(column_key("self"), "col_self");
        assert_eq!(column_key("prix_\u{e9}"), "prix__");

        let mut c = FeatureConfig::default();
        c.buyer_features[1].column = "class".into();
        c.buyer_features[2].column = "seg-ment".into();
        c.buyer_crosses[0].columns = vec!["class".into(), "seg-ment".into()];
        c.validate().unwrap();
        assert_eq!(c.buyer_crosses[0].output_name(), "class_x_seg_ment__cross");
        assert_eq!(c.buyer_features[2].output_names(), vec!["seg_ment__idx"]);
        assert_eq!(
            c.buyer_features[2].vocab_filename().as_deref(),
            Some("seg_ment__vocab")
        );

        // two columns that would share a key are refused, naming both
        c.buyer_features[0].column = "seg ment".into();
        let e = err(&c);
        assert_eq!(e.path, "buyer_features[2].column");
        assert_eq!(
            e.problem,
            FeatureProblem::KeyCollision("seg ment".into(), "seg-ment".into(), "seg_ment".into())
        );
    }

    #[test]
    fn spec_type_aliases_are_accepted() {
        let t: BqType = serde_json::from_str("\"INTEGER\"").unwrap();
        assert_eq!(t, BqType::Int64);
        let t: BqType = serde_json::from_str("\"FLOAT\"").unwrap();
        assert_eq!(t, BqType::Float64);
        assert_eq!(
            serde_json::to_string(&BqType::Float64).unwrap(),
            "\"FLOAT64\""
        );
        assert!(serde_json::from_str::<BqType>("\"REAL\"").is_err());
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
