//! trainyard-serve: the model server. Loads a pushed SavedModel through the TensorFlow C API
//! (dlopened from the pip wheel, ScaNN's ops registered when the graph needs them) and serves it
//! with TF Serving's REST contract and its gRPC API (`PredictionService`, `ModelService`; see
//! [`grpc`]), merging concurrent requests of both into one session run.
//!
//! ```no_run
//! # async fn run() -> Result<(), trainyard_serve::ServeError> {
//! use std::sync::Arc;
//! use trainyard_serve::{check_serving_contract, Model, ServerConfig, TfOptions};
//! let model = Model::load("runs/1/pushed_model".as_ref(), &TfOptions::default())?;
//! check_serving_contract(model.signature())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8501").await.unwrap();
//! trainyard_serve::serve(listener, Arc::new(model), ServerConfig::new("recommender"), async {})
//!     .await
//! # }
//! ```

pub mod batcher;
pub mod conn;
pub mod error;
pub mod grpc;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod request;
pub mod servable;
pub mod server;
pub mod signature;
pub mod tensor;
pub mod tflib;
pub mod topk;
pub mod versions;
pub mod warmup;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use batcher::BatchConfig;
pub use conn::Limits;
pub use error::{Result, ServeError};
pub use grpc::{serve_grpc, serve_rest_and_grpc};
pub use metrics::Metrics;
pub use model::{inspect, resolve_model_dir, Model, RustTopKInfo, SessionConfig};
pub use servable::Servable;
pub use server::{serve, ServerConfig, DEFAULT_MAX_BODY_BYTES};
pub use signature::{
    check_serving_contract, check_serving_contract_for, Dtype, ModelSignature, TensorSpec,
};
pub use tflib::{TfOptions, TfRuntime};

/// What `--ready-file` holds once the model is loaded and the socket bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyInfo {
    pub url: String,
    /// `http://host:port` of the gRPC API, when `--grpc-port` was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_url: Option<String>,
    pub pid: u32,
    pub model_path: PathBuf,
    pub name: String,
}

/// Writes `info` to `path` atomically (a temp file in the same dir, then rename), so a reader
/// polling for the file never sees it half-written.
pub fn write_ready_file(path: &Path, info: &ReadyInfo) -> Result<()> {
    let io = |source| ServeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ready".into());
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let body = serde_json::to_vec_pretty(info).expect("ReadyInfo serializes");
    std::fs::write(&tmp, body).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}
