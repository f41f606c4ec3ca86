//! `trainyard.codegen.generate`: the TFX transform and TFRS trainer modules from configs.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use trainyard_codegen::CodegenError;
use trainyard_core::config::{GpuConfig, TrainingParams};
use trainyard_core::{Error, ValidationError};

use crate::convert::from_py;
use crate::errors::to_py_err_caused_by;

/// Codegen's errors as the domain's kinds (mapped to Python in errors.rs like all others; the
/// codegen error and its sources become the exception's `__cause__`).
fn domain_error(e: &CodegenError) -> Error {
    let field = match e {
        CodegenError::FeatureConfig(_) => "feature_config",
        CodegenError::ModelConfig(_) => "model_config",
        CodegenError::TrainingParams(_) => "training_params",
        CodegenError::GpuConfig(_) => "gpu_config",
        _ => return Error::Backend(e.to_string()),
    };
    Error::Validation(ValidationError::field(field, e.to_string()))
}

/// {file name: Python source} of the generated transform and trainer modules.
#[pyfunction]
#[pyo3(signature = (feature_config, model_config, training_params=None, gpu_config=None))]
pub fn generate(
    py: Python<'_>,
    feature_config: &Bound<'_, PyAny>,
    model_config: &Bound<'_, PyAny>,
    training_params: Option<&Bound<'_, PyAny>>,
    gpu_config: Option<&Bound<'_, PyAny>>,
) -> PyResult<BTreeMap<String, String>> {
    let features = from_py("feature_config", feature_config)?;
    let model = from_py("model_config", model_config)?;
    let params: TrainingParams = match training_params {
        Some(p) => from_py("training_params", p)?,
        None => TrainingParams::default(),
    };
    let gpu: GpuConfig = match gpu_config {
        Some(g) => from_py("gpu_config", g)?,
        None => GpuConfig::default(),
    };
    let modules = py
        .detach(|| trainyard_codegen::generate(&features, &model, &params, &gpu))
        .map_err(|e| to_py_err_caused_by(domain_error(&e), &e))?;
    Ok(modules.files)
}
