//! `trainyard.codegen.generate`: the TFX transform and TFRS trainer modules from configs.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use trainyard::{CodegenInputs, GenerateError};

use crate::convert::py_to_json;
use crate::errors::{to_py_err, to_py_err_caused_by};

/// {file name: Python source} of the generated transform and trainer modules. Each config may
/// give only some fields: the facade merges it over the defaults (unknown fields are refused).
#[pyfunction]
#[pyo3(signature = (feature_config, model_config, training_params=None, gpu_config=None))]
pub fn generate(
    py: Python<'_>,
    feature_config: &Bound<'_, PyAny>,
    model_config: &Bound<'_, PyAny>,
    training_params: Option<&Bound<'_, PyAny>>,
    gpu_config: Option<&Bound<'_, PyAny>>,
) -> PyResult<BTreeMap<String, String>> {
    let json = |v: Option<&Bound<'_, PyAny>>| v.map(py_to_json).transpose();
    let inputs = CodegenInputs {
        feature_config: json(Some(feature_config))?,
        model_config: json(Some(model_config))?,
        training_params: json(training_params)?,
        gpu_config: json(gpu_config)?,
    };
    let modules = py
        .detach(|| trainyard::generate_modules(&inputs))
        .map_err(|e| match e {
            GenerateError::Input(v) => to_py_err(v.into()),
            // The codegen error and its sources become the exception's `__cause__`.
            GenerateError::Codegen(c) => to_py_err_caused_by(c.domain_error(), &c),
        })?;
    Ok(modules.files)
}
