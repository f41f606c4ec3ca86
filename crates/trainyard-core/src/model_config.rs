//! Model configuration: model type, towers, heads, loss, optimizer and serving algorithm.
//! Consumed by trainyard-codegen.
//!
//! Precedence at training time: the run's `TrainingParams` (optimizer name, learning rate,
//! epochs, batch size, early stopping; overridable per run through the Trainer's
//! custom_config) win over `ModelConfig::optimizer.name/learning_rate`, which are the model's
//! recommended values; `ModelConfig::optimizer.clipnorm` is always applied.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::OptimizerName;
use crate::feature_config::FeatureConfig;

/// The three TFRS model families the platform trains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelType {
    #[default]
    Retrieval,
    Ranking,
    /// Retrieval and ranking trained together; the spec's UI calls it `hybrid`, which is
    /// accepted as an alias ("multitask (hybrid) model").
    #[serde(alias = "hybrid")]
    Multitask,
}

impl std::str::FromStr for ModelType {
    type Err = String;

    /// `retrieval`, `ranking`, `multitask` or its alias `hybrid` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "retrieval" => Ok(ModelType::Retrieval),
            "ranking" => Ok(ModelType::Ranking),
            "multitask" | "hybrid" => Ok(ModelType::Multitask),
            other => Err(format!(
                "unknown model type {other:?} (retrieval, ranking, multitask or hybrid)"
            )),
        }
    }
}

impl ModelType {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::Retrieval => "retrieval",
            ModelType::Ranking => "ranking",
            ModelType::Multitask => "multitask",
        }
    }

    pub fn has_retrieval(self) -> bool {
        matches!(self, ModelType::Retrieval | ModelType::Multitask)
    }

    pub fn has_ranking(self) -> bool {
        matches!(self, ModelType::Ranking | ModelType::Multitask)
    }
}

/// Dense-layer activations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    Relu,
    Gelu,
    Tanh,
    Selu,
    Linear,
}

impl Activation {
    /// The Keras activation name (`None` for linear).
    pub fn keras(self) -> Option<&'static str> {
        match self {
            Activation::Relu => Some("relu"),
            Activation::Gelu => Some("gelu"),
            Activation::Tanh => Some("tanh"),
            Activation::Selu => Some("selu"),
            Activation::Linear => None,
        }
    }
}

/// One dense layer of a tower or head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseLayer {
    pub units: u32,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default)]
    pub dropout: f64,
    /// Synchronized batch normalization (global batch statistics under MirroredStrategy).
    #[serde(default)]
    pub batch_norm: bool,
}

impl DenseLayer {
    pub fn relu(units: u32) -> Self {
        Self {
            units,
            activation: Activation::Relu,
            dropout: 0.0,
            batch_norm: false,
        }
    }
}

/// A tower: hidden layers, then a linear projection to `output_embedding_dim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TowerConfig {
    pub layers: Vec<DenseLayer>,
    /// L2 on the tower's embeddings and kernels (0 = none).
    #[serde(default)]
    pub l2_regularization: f64,
}

/// Loss of the rating head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankingLoss {
    #[default]
    Mse,
    BinaryCrossentropy,
    Huber,
}

/// Weights of the two multitask losses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossWeights {
    pub retrieval: f64,
    pub ranking: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        Self {
            retrieval: 1.0,
            ranking: 1.0,
        }
    }
}

/// Optimizer of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    pub name: OptimizerName,
    pub learning_rate: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clipnorm: Option<f64>,
}

/// How serving finds the top-k products.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetrievalAlgorithm {
    #[default]
    BruteForce,
    Scann,
}

/// ScaNN index parameters (tfrs.layers.factorized_top_k.ScaNN).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannParams {
    /// 0 = choose from the number of candidates (about sqrt(n)).
    pub num_leaves: u32,
    /// 0 = a quarter of the leaves, at least 1. The export searches more (doubling) while
    /// probe queries get fewer than k candidates from the searched leaves, and a served batch
    /// with a short answer is answered by exact brute force: every query gets k products.
    pub num_leaves_to_search: u32,
    pub num_reordering_candidates: u32,
    pub dimensions_per_block: u32,
}

impl Default for ScannParams {
    fn default() -> Self {
        Self {
            num_leaves: 0,
            num_leaves_to_search: 0,
            num_reordering_candidates: 500,
            dimensions_per_block: 2,
        }
    }
}

/// The model of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub model_type: ModelType,
    pub buyer_tower: TowerConfig,
    pub product_tower: TowerConfig,
    /// Dimension of the buyer and product embeddings that retrieval scores by dot product.
    pub output_embedding_dim: u32,
    /// Hidden layers of the rating head (ranking, multitask); a 1-unit output follows.
    #[serde(default)]
    pub rating_head: Vec<DenseLayer>,
    #[serde(default)]
    pub loss: RankingLoss,
    #[serde(default)]
    pub loss_weights: LossWeights,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub retrieval_algorithm: RetrievalAlgorithm,
    #[serde(default)]
    pub scann: ScannParams,
    /// Products returned per request.
    pub top_k: u32,
}

impl Default for ModelConfig {
    /// A two-tower retrieval model sized for the synthetic B2B dataset.
    fn default() -> Self {
        Self {
            name: "synthetic-b2b-retrieval".into(),
            model_type: ModelType::Retrieval,
            buyer_tower: TowerConfig {
                layers: vec![DenseLayer::relu(64)],
                l2_regularization: 0.0,
            },
            product_tower: TowerConfig {
                layers: vec![DenseLayer::relu(64)],
                l2_regularization: 0.0,
            },
            output_embedding_dim: 32,
            rating_head: vec![DenseLayer::relu(64), DenseLayer::relu(32)],
            loss: RankingLoss::Mse,
            loss_weights: LossWeights::default(),
            // losses are global-batch MEANS (correct under distribution); Adam is insensitive
            // to that scale, Adagrad(0.1) tuned for TFRS's default SUM loss learns far slower
            optimizer: OptimizerConfig {
                name: OptimizerName::Adam,
                learning_rate: 0.01,
                clipnorm: Some(1.0),
            },
            retrieval_algorithm: RetrievalAlgorithm::BruteForce,
            scann: ScannParams::default(),
            top_k: 100,
        }
    }
}

/// Why a model config is unusable.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ModelConfigError {
    #[error("{what} must be between 1 and {max}, got {got}")]
    OutOfRange { what: String, max: u64, got: u64 },
    #[error("{what} must be in [{min}, {max}), got {got}")]
    BadFraction {
        what: String,
        min: f64,
        max: f64,
        got: f64,
    },
    #[error("{0} must be a finite positive number")]
    NotPositive(String),
    #[error("{0} model needs a target column in the feature config")]
    MissingTarget(&'static str),
    #[error("binary_crossentropy needs a target ending in a binarize transform")]
    BinaryLossNeedsBinaryTarget,
    #[error("multitask loss weights must be >= 0 and not both 0")]
    BadLossWeights,
}

impl ModelConfigError {
    /// The field at fault, as a path in the run config (`model_config.buyer_tower.layers[0].units`).
    pub fn field(&self) -> String {
        match self {
            ModelConfigError::OutOfRange { what, .. }
            | ModelConfigError::BadFraction { what, .. }
            | ModelConfigError::NotPositive(what) => format!("model_config.{what}"),
            ModelConfigError::MissingTarget(_) => "feature_config.target".into(),
            ModelConfigError::BinaryLossNeedsBinaryTarget => "model_config.loss".into(),
            ModelConfigError::BadLossWeights => "model_config.loss_weights".into(),
        }
    }
}

fn units(what: String, v: u32, max: u32) -> Result<(), ModelConfigError> {
    if v == 0 || v > max {
        return Err(ModelConfigError::OutOfRange {
            what,
            max: max.into(),
            got: v.into(),
        });
    }
    Ok(())
}

fn validate_layers(what: &str, layers: &[DenseLayer]) -> Result<(), ModelConfigError> {
    for (i, l) in layers.iter().enumerate() {
        units(format!("{what}[{i}].units"), l.units, 65_536)?;
        if !(l.dropout.is_finite() && (0.0..1.0).contains(&l.dropout)) {
            return Err(ModelConfigError::BadFraction {
                what: format!("{what}[{i}].dropout"),
                min: 0.0,
                max: 1.0,
                got: l.dropout,
            });
        }
    }
    Ok(())
}

impl ModelConfig {
    /// Checks the model config on its own.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        validate_layers("buyer_tower.layers", &self.buyer_tower.layers)?;
        validate_layers("product_tower.layers", &self.product_tower.layers)?;
        validate_layers("rating_head", &self.rating_head)?;
        for (what, l2) in [
            (
                "buyer_tower.l2_regularization",
                self.buyer_tower.l2_regularization,
            ),
            (
                "product_tower.l2_regularization",
                self.product_tower.l2_regularization,
            ),
        ] {
            if !(l2.is_finite() && (0.0..1.0).contains(&l2)) {
                return Err(ModelConfigError::BadFraction {
                    what: what.into(),
                    min: 0.0,
                    max: 1.0,
                    got: l2,
                });
            }
        }
        units(
            "output_embedding_dim".into(),
            self.output_embedding_dim,
            4096,
        )?;
        units("top_k".into(), self.top_k, 10_000)?;
        let lr = self.optimizer.learning_rate;
        if !(lr.is_finite() && lr > 0.0) {
            return Err(ModelConfigError::NotPositive(
                "optimizer.learning_rate".into(),
            ));
        }
        if let Some(c) = self.optimizer.clipnorm {
            if !(c.is_finite() && c > 0.0) {
                return Err(ModelConfigError::NotPositive("optimizer.clipnorm".into()));
            }
        }
        let w = &self.loss_weights;
        if self.model_type == ModelType::Multitask
            && !(w.retrieval.is_finite()
                && w.ranking.is_finite()
                && w.retrieval >= 0.0
                && w.ranking >= 0.0
                && w.retrieval + w.ranking > 0.0)
        {
            return Err(ModelConfigError::BadLossWeights);
        }
        if self.retrieval_algorithm == RetrievalAlgorithm::Scann {
            let s = &self.scann;
            units(
                "scann.num_reordering_candidates".into(),
                s.num_reordering_candidates,
                1_000_000,
            )?;
            units(
                "scann.dimensions_per_block".into(),
                s.dimensions_per_block,
                64,
            )?;
            if s.num_leaves_to_search > s.num_leaves && s.num_leaves > 0 {
                return Err(ModelConfigError::OutOfRange {
                    what: "scann.num_leaves_to_search".into(),
                    max: s.num_leaves.into(),
                    got: s.num_leaves_to_search.into(),
                });
            }
        }
        Ok(())
    }

    /// Checks this model config against the feature config it will be trained with.
    pub fn validate_with(&self, features: &FeatureConfig) -> Result<(), ModelConfigError> {
        self.validate()?;
        if self.model_type.has_ranking() {
            let Some(target) = &features.target else {
                return Err(ModelConfigError::MissingTarget(self.model_type.as_str()));
            };
            if self.loss == RankingLoss::BinaryCrossentropy && !target.is_binary() {
                return Err(ModelConfigError::BinaryLossNeedsBinaryTarget);
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
        let m = ModelConfig::default();
        m.validate_with(&FeatureConfig::default()).unwrap();
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["model_type"], "retrieval");
        assert_eq!(json["retrieval_algorithm"], "brute_force");
        assert_eq!(json["optimizer"]["name"], "adam");
        let back: ModelConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn hybrid_is_multitask() {
        let t: ModelType = serde_json::from_str("\"hybrid\"").unwrap();
        assert_eq!(t, ModelType::Multitask);
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"multitask\"");
        assert_eq!("Hybrid".parse::<ModelType>(), Ok(ModelType::Multitask));
        assert_eq!("ranking".parse::<ModelType>(), Ok(ModelType::Ranking));
        assert!("hybird".parse::<ModelType>().is_err());
    }

    #[test]
    fn errors_name_their_field() {
        let m = ModelConfig {
            output_embedding_dim: 0,
            ..ModelConfig::default()
        };
        assert_eq!(
            m.validate().unwrap_err().field(),
            "model_config.output_embedding_dim"
        );
        let mut m = ModelConfig::default();
        m.product_tower.layers[0].units = 0;
        assert_eq!(
            m.validate().unwrap_err().field(),
            "model_config.product_tower.layers[0].units"
        );
        let f = FeatureConfig {
            target: None,
            ..FeatureConfig::default()
        };
        let m = ModelConfig {
            model_type: ModelType::Ranking,
            ..ModelConfig::default()
        };
        assert_eq!(
            m.validate_with(&f).unwrap_err().field(),
            "feature_config.target"
        );
    }

    #[test]
    fn ranking_needs_target_and_binary_loss_needs_binary_target() {
        let mut f = FeatureConfig::default();
        let mut m = ModelConfig {
            model_type: ModelType::Ranking,
            ..ModelConfig::default()
        };
        m.validate_with(&f).unwrap();
        m.loss = RankingLoss::BinaryCrossentropy;
        assert_eq!(
            m.validate_with(&f),
            Err(ModelConfigError::BinaryLossNeedsBinaryTarget)
        );
        f.target = None;
        assert_eq!(
            m.validate_with(&f),
            Err(ModelConfigError::MissingTarget("ranking"))
        );
        // retrieval does not need one
        m.model_type = ModelType::Retrieval;
        m.validate_with(&f).unwrap();
    }

    #[test]
    fn rejects_bad_numbers() {
        let mut m = ModelConfig::default();
        m.buyer_tower.layers[0].dropout = 1.0;
        assert!(matches!(
            m.validate(),
            Err(ModelConfigError::BadFraction { .. })
        ));
        let m = ModelConfig {
            output_embedding_dim: 0,
            ..ModelConfig::default()
        };
        assert!(matches!(
            m.validate(),
            Err(ModelConfigError::OutOfRange { .. })
        ));
        let mut m = ModelConfig::default();
        m.optimizer.clipnorm = Some(-1.0);
        assert!(matches!(
            m.validate(),
            Err(ModelConfigError::NotPositive(_))
        ));
        let mut m = ModelConfig {
            model_type: ModelType::Multitask,
            ..ModelConfig::default()
        };
        m.loss_weights = LossWeights {
            retrieval: 0.0,
            ranking: 0.0,
        };
        assert_eq!(m.validate(), Err(ModelConfigError::BadLossWeights));
    }
}
