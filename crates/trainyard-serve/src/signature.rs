//! The serving signature of a SavedModel, as data, and the serving contract check.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tensorflow::DataType;

use crate::error::{Result, ServeError};

pub const SERVING_DEFAULT: &str = "serving_default";

/// The element types the server reads from and writes to JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    String,
    Int64,
    Int32,
    Float32,
    Float64,
    Bool,
    /// Any other TensorFlow type (named in `TensorSpec::tf_dtype`): reported, not served.
    Unsupported,
}

impl Dtype {
    pub fn from_tf(dt: DataType) -> Dtype {
        match dt {
            DataType::String => Dtype::String,
            DataType::Int64 => Dtype::Int64,
            DataType::Int32 => Dtype::Int32,
            DataType::Float => Dtype::Float32,
            DataType::Double => Dtype::Float64,
            DataType::Bool => Dtype::Bool,
            _ => Dtype::Unsupported,
        }
    }

    /// What a JSON value for this type must be, for error messages.
    pub fn json_kind(self) -> &'static str {
        match self {
            Dtype::String => "a string",
            Dtype::Int64 | Dtype::Int32 => "an integer",
            Dtype::Float32 | Dtype::Float64 => "a number",
            Dtype::Bool => "true or false",
            Dtype::Unsupported => "nothing (unsupported type)",
        }
    }
}

/// A signature input or output: dtype and shape (`-1` = any size; `None` = unknown rank).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub dtype: Dtype,
    /// TensorFlow's name of the type, e.g. `DT_STRING`.
    pub tf_dtype: String,
    pub shape: Option<Vec<i64>>,
    /// The graph tensor, e.g. `serving_default_customer_id:0`.
    pub tensor: String,
}

impl TensorSpec {
    pub(crate) fn from_info(info: &tensorflow::TensorInfo) -> TensorSpec {
        let shape = info.shape();
        let dims = shape
            .dims()
            .map(|n| (0..n).map(|i| shape[i].unwrap_or(-1)).collect());
        TensorSpec {
            dtype: Dtype::from_tf(info.dtype()),
            tf_dtype: tf_dtype_name(info.dtype()),
            shape: dims,
            tensor: format!("{}:{}", info.name().name, info.name().index),
        }
    }
}

/// TensorFlow's `DT_*` name of a data type.
pub fn tf_dtype_name(dt: DataType) -> String {
    let s = match dt {
        DataType::Float => "DT_FLOAT",
        DataType::Double => "DT_DOUBLE",
        DataType::Int32 => "DT_INT32",
        DataType::Int64 => "DT_INT64",
        DataType::String => "DT_STRING",
        DataType::Bool => "DT_BOOL",
        DataType::UInt8 => "DT_UINT8",
        DataType::Int8 => "DT_INT8",
        DataType::Int16 => "DT_INT16",
        DataType::Half => "DT_HALF",
        DataType::BFloat16 => "DT_BFLOAT16",
        other => return format!("DT_{other:?}").to_uppercase(),
    };
    s.to_string()
}

/// `serving_default` of a SavedModel, plus where it was loaded from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSignature {
    /// The versioned folder that holds saved_model.pb.
    pub model_path: PathBuf,
    /// Its numeric folder name (TF Serving's model version); 1 for an unversioned dir.
    pub version: u64,
    pub signature_name: String,
    pub method_name: String,
    pub inputs: BTreeMap<String, TensorSpec>,
    pub outputs: BTreeMap<String, TensorSpec>,
}

/// The serving contract a deployer enforces before it routes traffic to a model (DESIGN bug 4:
/// serving returned vocabulary indices instead of product ids):
/// - a `product_ids` output must be a string tensor (original ids, never int indices);
/// - a retrieval-shaped signature (a `scores` output) must have `product_ids`;
/// - every input must have a type the server can read from JSON.
pub fn check_serving_contract(sig: &ModelSignature) -> Result<()> {
    check_serving_contract_for(sig, Dtype::String)
}

/// [`check_serving_contract`] for a catalog whose product ids are of type `product_id`
/// (`Dtype::String` or `Dtype::Int64`): the `product_ids` output must have the catalog's type,
/// so an INT64-id catalog's model is served while a model returning int indices for a string
/// catalog is still refused.
pub fn check_serving_contract_for(sig: &ModelSignature, product_id: Dtype) -> Result<()> {
    let refuse = |m: String| Err(ServeError::Contract(m));
    if !matches!(product_id, Dtype::String | Dtype::Int64) {
        return refuse(format!(
            "catalog product ids of type {product_id:?}: only string and int64 ids are served"
        ));
    }
    if let Some(pid) = sig.outputs.get("product_ids") {
        if product_id == Dtype::Int64 && pid.dtype != Dtype::Int64 {
            return refuse(format!(
                "output `product_ids` of {} is {}, but the catalog's product ids are INT64",
                sig.model_path.display(),
                pid.tf_dtype
            ));
        }
        if product_id == Dtype::String && pid.dtype != Dtype::String {
            return refuse(format!(
                "output `product_ids` of {} is {}, not a string tensor: the model returns \
                 vocabulary indices instead of the original product ids (export the ids from \
                 the Transform vocabulary)",
                sig.model_path.display(),
                pid.tf_dtype
            ));
        }
    } else if sig.outputs.contains_key("scores") {
        return refuse(format!(
            "{} has a `scores` output but no `product_ids`: a retrieval model must return the \
             original product ids",
            sig.model_path.display()
        ));
    }
    if let Some((name, spec)) = sig
        .inputs
        .iter()
        .find(|(_, s)| s.dtype == Dtype::Unsupported)
    {
        return refuse(format!(
            "input `{name}` has type {}, which JSON requests cannot feed",
            spec.tf_dtype
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dtype: Dtype, shape: &[i64]) -> TensorSpec {
        TensorSpec {
            dtype,
            tf_dtype: format!("{dtype:?}"),
            shape: Some(shape.to_vec()),
            tensor: "t:0".into(),
        }
    }

    fn sig(outputs: &[(&str, Dtype)]) -> ModelSignature {
        ModelSignature {
            model_path: "m/1".into(),
            version: 1,
            signature_name: SERVING_DEFAULT.into(),
            method_name: "tensorflow/serving/predict".into(),
            inputs: [("customer_id".to_string(), spec(Dtype::String, &[-1]))].into(),
            outputs: outputs
                .iter()
                .map(|(n, d)| (n.to_string(), spec(*d, &[-1, 10])))
                .collect(),
        }
    }

    #[test]
    fn string_product_ids_pass_and_int_indices_are_refused() {
        check_serving_contract(&sig(&[
            ("product_ids", Dtype::String),
            ("scores", Dtype::Float32),
        ]))
        .unwrap();
        let err = check_serving_contract(&sig(&[
            ("product_ids", Dtype::Int64),
            ("scores", Dtype::Float32),
        ]))
        .unwrap_err();
        assert!(matches!(err, ServeError::Contract(_)));
        assert!(err.to_string().contains("product_ids"), "{err}");
    }

    #[test]
    fn int64_product_ids_pass_only_for_an_int64_catalog() {
        let int_ids = sig(&[("product_ids", Dtype::Int64), ("scores", Dtype::Float32)]);
        let str_ids = sig(&[("product_ids", Dtype::String), ("scores", Dtype::Float32)]);
        check_serving_contract_for(&int_ids, Dtype::Int64).unwrap();
        assert!(check_serving_contract_for(&int_ids, Dtype::String).is_err());
        let err = check_serving_contract_for(&str_ids, Dtype::Int64).unwrap_err();
        assert!(
            err.to_string().contains("catalog's product ids are INT64"),
            "{err}"
        );
        assert!(check_serving_contract_for(&str_ids, Dtype::Float32).is_err());
    }

    #[test]
    fn scores_without_product_ids_are_refused_and_ranking_passes() {
        assert!(check_serving_contract(&sig(&[("scores", Dtype::Float32)])).is_err());
        check_serving_contract(&sig(&[("predicted_rating", Dtype::Float32)])).unwrap();
    }
}
