//! Code generation from config inputs (`trainyard codegen`, `trainyard.codegen.generate`): the
//! one place that reads them. Each input may be partial: like a run config's sections
//! ([`strict::over_defaults`]), it is merged over the run config's default for that section, so
//! `{}` or `{"model_type": "ranking"}` is a complete config; unknown fields are still refused
//! with the nearest name, the error naming the input.

use serde_json::Value;
use trainyard_core::config::{GpuConfig, TrainingParams};
use trainyard_core::feature_config::FeatureConfig;
use trainyard_core::model_config::ModelConfig;
use trainyard_core::run::RunConfig;
use trainyard_core::{strict, Error, ValidationError};

pub use trainyard_codegen::{CodegenError, GeneratedModules};

/// The config inputs of code generation as given (JSON); an absent one is its default.
#[derive(Debug, Clone, Default)]
pub struct CodegenInputs {
    pub feature_config: Option<Value>,
    pub model_config: Option<Value>,
    pub training_params: Option<Value>,
    pub gpu_config: Option<Value>,
}

/// The configs the inputs make, each merged over its default.
#[derive(Debug, Clone, PartialEq)]
pub struct CodegenConfigs {
    pub feature_config: FeatureConfig,
    pub model_config: ModelConfig,
    pub training_params: TrainingParams,
    pub gpu_config: GpuConfig,
}

/// Why modules were not generated: an input that is not a config (refused before generating),
/// or what the generator refused (its error, with its source chain).
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Input(#[from] ValidationError),
    #[error(transparent)]
    Codegen(#[from] CodegenError),
}

impl From<GenerateError> for Error {
    fn from(e: GenerateError) -> Self {
        match e {
            GenerateError::Input(v) => Error::Validation(v),
            GenerateError::Codegen(c) => c.into(),
        }
    }
}

impl CodegenInputs {
    /// Each input merged over the run config's default section, then read strictly.
    pub fn resolve(&self) -> Result<CodegenConfigs, ValidationError> {
        let defaults = RunConfig::default();
        Ok(CodegenConfigs {
            feature_config: section(
                "feature_config",
                &self.feature_config,
                defaults.feature_config,
            )?,
            model_config: section("model_config", &self.model_config, defaults.model_config)?,
            training_params: section(
                "training_params",
                &self.training_params,
                defaults.training_params,
            )?,
            gpu_config: section("gpu_config", &self.gpu_config, defaults.gpu_config)?,
        })
    }
}

fn section<T>(name: &str, given: &Option<Value>, default: T) -> Result<T, ValidationError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let Some(given) = given else {
        return Ok(default);
    };
    if !given.is_object() {
        return Err(ValidationError::field(name, "must be a JSON object"));
    }
    let mut merged =
        serde_json::to_value(&default).map_err(|e| ValidationError::field(name, e.to_string()))?;
    strict::merge(&mut merged, given.clone());
    serde_json::from_value(merged)
        .map_err(|e| ValidationError::field(name, strict::explain(&e.to_string())))
}

/// The transform and trainer modules of `inputs` (deterministic), every front end's one call.
pub fn generate_modules(inputs: &CodegenInputs) -> Result<GeneratedModules, GenerateError> {
    let c = inputs.resolve()?;
    Ok(trainyard_codegen::generate(
        &c.feature_config,
        &c.model_config,
        &c.training_params,
        &c.gpu_config,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use trainyard_core::ModelType;

    #[test]
    fn partial_inputs_are_merged_over_the_defaults() {
        let inputs = CodegenInputs {
            feature_config: Some(json!({})),
            model_config: Some(json!({"model_type": "ranking"})),
            training_params: Some(json!({"epochs": 3})),
            gpu_config: None,
        };
        let c = inputs.resolve().unwrap();
        let d = RunConfig::default();
        assert_eq!(c.feature_config, d.feature_config);
        assert_eq!(c.model_config.model_type, ModelType::Ranking);
        assert_eq!(c.model_config.name, d.model_config.name);
        assert_eq!(c.training_params.epochs, 3);
        assert_eq!(c.training_params.batch_size, d.training_params.batch_size);
        assert_eq!(c.gpu_config, d.gpu_config);
        assert_eq!(
            CodegenInputs::default().resolve().unwrap().model_config,
            d.model_config
        );
        let modules = generate_modules(&inputs).unwrap();
        assert!(modules.files.len() >= 2);
    }

    #[test]
    fn unknown_fields_and_non_objects_are_refused_naming_the_input() {
        let bad = CodegenInputs {
            model_config: Some(json!({"modle_type": "ranking"})),
            ..CodegenInputs::default()
        };
        let e = bad.resolve().unwrap_err();
        assert_eq!(e.field, "model_config");
        assert!(
            e.reason
                .contains("unknown field `modle_type`, did you mean `model_type`?"),
            "{e}"
        );
        let e = CodegenInputs {
            gpu_config: Some(json!([1])),
            ..CodegenInputs::default()
        }
        .resolve()
        .unwrap_err();
        assert_eq!(e.field, "gpu_config");
        // What the generator refuses keeps its kind and field.
        let e = generate_modules(&CodegenInputs {
            training_params: Some(json!({"epochs": 0})),
            ..CodegenInputs::default()
        })
        .unwrap_err();
        assert!(matches!(e, GenerateError::Codegen(_)), "{e:?}");
        match Error::from(e) {
            Error::Validation(v) => assert_eq!(v.field, "training_params"),
            other => panic!("{other:?}"),
        }
    }
}
