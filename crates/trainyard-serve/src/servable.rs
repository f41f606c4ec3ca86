//! What the REST and gRPC front ends share: the loaded model, its batcher (requests from both
//! protocols merge into the same session runs), the signature lookup that validation uses, and
//! the metrics every predict is counted in.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use crate::batcher::{Arrival, BatchConfig, Batcher, RowSlice};
use crate::metrics::{LoadState, Metrics, RequestRecord};
use crate::model::Model;
use crate::request::{BadRequest, Batch};
use crate::signature::{ModelSignature, TensorSpec};

/// Why a predict failed: the client's mistake (REST 400, gRPC INVALID_ARGUMENT) or the
/// server's (500, INTERNAL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PredictError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Internal(String),
}

impl PredictError {
    /// TF Serving's status name (the `status` label of the request count).
    pub fn status_name(&self) -> &'static str {
        match self {
            PredictError::Invalid(_) => "INVALID_ARGUMENT",
            PredictError::Internal(_) => "INTERNAL",
        }
    }
}

/// A model served under a name, with its batcher and the shared metrics.
pub struct Servable {
    pub name: String,
    pub model: Arc<Model>,
    pub metrics: Arc<Metrics>,
    batcher: Batcher,
}

impl std::fmt::Debug for Servable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Servable")
            .field("name", &self.name)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Servable {
    /// Starts the batch threads for `model` and marks its version AVAILABLE.
    pub fn start(
        name: impl Into<String>,
        model: Arc<Model>,
        batch: BatchConfig,
        metrics: Arc<Metrics>,
    ) -> Servable {
        let name = name.into();
        let version = model.version();
        let observe = {
            let (metrics, name) = (metrics.clone(), name.clone());
            Arc::new(move |sig: &str, rows: usize| metrics.record_batch(&name, version, sig, rows))
        };
        let batcher = Batcher::start_observed(model.clone(), batch, observe);
        metrics.set_load_state(&name, version, LoadState::Available);
        Servable {
            name,
            model,
            metrics,
            batcher,
        }
    }

    pub fn version(&self) -> u64 {
        self.model.version()
    }

    /// Call when a request arrives, before reading its body (see [`Batcher::arrival`]).
    pub fn arrival(&self) -> Arrival {
        self.batcher.arrival()
    }

    /// The signature a request names (`""` = `serving_default`), or a refusal naming the
    /// signatures the model serves.
    pub fn signature(&self, name: &str) -> Result<&ModelSignature, BadRequest> {
        let name = if name.is_empty() {
            crate::signature::SERVING_DEFAULT
        } else {
            name
        };
        self.model.signature_named(name).ok_or_else(|| {
            BadRequest(format!(
                "signature_name: the model has no signature \"{name}\" (it serves: {})",
                self.model
                    .signatures()
                    .map(|s| s.signature_name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// Input specs of a signature in feed order (for request validation).
    pub fn inputs_of(&self, name: &str) -> Result<Vec<(&str, &TensorSpec)>, BadRequest> {
        let sig = self.signature(name)?;
        Ok(self
            .model
            .input_specs_of(&sig.signature_name)
            .expect("a named signature has inputs"))
    }

    /// Runs a parsed request (merged with others into a session run) and counts it in the
    /// metrics, refusals included; `started` is when it arrived.
    pub async fn predict(
        &self,
        protocol: &'static str,
        started: Instant,
        parsed: Result<Batch, BadRequest>,
        arrival: Arrival,
    ) -> Result<RowSlice, PredictError> {
        let (signature, result) = match parsed {
            Err(e) => {
                drop(arrival);
                ("".to_string(), Err(PredictError::Invalid(e.0)))
            }
            Ok(batch) => {
                let sig = batch.signature.clone();
                let r = self.batcher.submit(batch, arrival).await.map_err(|e| {
                    if e.contains("INVALID_ARGUMENT") || e.contains("InvalidArgument") {
                        PredictError::Invalid(e)
                    } else {
                        PredictError::Internal(e)
                    }
                });
                (sig, r)
            }
        };
        let status = match &result {
            Ok(_) => "OK",
            Err(e) => e.status_name(),
        };
        self.metrics.record_request(RequestRecord {
            model: &self.name,
            version: self.version(),
            signature: &signature,
            protocol,
            status,
            latency: started.elapsed(),
        });
        result
    }

    /// TF Serving's REST model status body.
    pub fn status_json(&self) -> serde_json::Value {
        json!({"model_version_status": [{
            "version": self.version().to_string(),
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }]})
    }

    /// TF Serving's REST metadata body: every served signature.
    pub fn metadata_json(&self) -> serde_json::Value {
        let tensor = |specs: &std::collections::BTreeMap<String, TensorSpec>| {
            specs
                .iter()
                .map(|(n, s)| {
                    let shape = match &s.shape {
                        None => json!({"dim": [], "unknown_rank": true}),
                        Some(d) => json!({
                            "dim": d.iter().map(|x| json!({"size": x.to_string(), "name": ""})).collect::<Vec<_>>(),
                            "unknown_rank": false,
                        }),
                    };
                    (
                        n.clone(),
                        json!({"dtype": s.tf_dtype, "tensor_shape": shape, "name": s.tensor}),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
        };
        let defs: serde_json::Map<_, _> = self
            .model
            .signatures()
            .map(|sig| {
                (
                    sig.signature_name.clone(),
                    json!({
                        "inputs": tensor(&sig.inputs),
                        "outputs": tensor(&sig.outputs),
                        "method_name": sig.method_name,
                    }),
                )
            })
            .collect();
        json!({
            "model_spec": {"name": self.name, "signature_name": "", "version": self.version().to_string()},
            "metadata": {"signature_def": {"signature_def": defs}},
        })
    }
}
