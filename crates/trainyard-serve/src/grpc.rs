//! TF Serving's gRPC API (tonic, generated at build time from the proto subset in proto/):
//!   tensorflow.serving.PredictionService/Predict
//!   tensorflow.serving.PredictionService/GetModelMetadata   (metadata_field "signature_def")
//!   tensorflow.serving.ModelService/GetModelStatus
//! The service shares the [`Servable`] of the REST front end: the same model, the same batcher
//! (gRPC and REST requests merge into one session run), the same signature lookup and the same
//! metrics. Tensors are validated against the signature before anything runs; a client's
//! mistake is INVALID_ARGUMENT naming the input, an unknown model or version NOT_FOUND.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use crate::batcher::RowSlice;
use crate::error::{Result, ServeError};
use crate::metrics::LoadState;
use crate::request::{BadRequest, Batch, Format};
use crate::servable::{PredictError, Servable};
use crate::signature::{Dtype, ModelSignature, TensorSpec};
use crate::tensor::{Column, Values};
use crate::versions::{Models, NotServed, VersionRequest};

/// The generated messages and services, in their proto packages.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    pub mod tensorflow {
        tonic::include_proto!("tensorflow");
        pub mod error {
            tonic::include_proto!("tensorflow.error");
        }
        pub mod serving {
            tonic::include_proto!("tensorflow.serving");
        }
    }
}

use pb::tensorflow::serving::model_service_server::{ModelService, ModelServiceServer};
use pb::tensorflow::serving::model_spec::VersionChoice;
use pb::tensorflow::serving::prediction_service_server::{
    PredictionService, PredictionServiceServer,
};
use pb::tensorflow::serving::{
    model_version_status, GetModelMetadataRequest, GetModelMetadataResponse, GetModelStatusRequest,
    GetModelStatusResponse, ModelSpec, ModelVersionStatus, PredictRequest, PredictResponse,
    SignatureDefMap, StatusProto,
};
use pb::tensorflow::{tensor_info, tensor_shape_proto, DataType, SignatureDef, TensorInfo};
use pb::tensorflow::{TensorProto, TensorShapeProto};

/// The largest request message accepted (TF Serving's gRPC limit is INT_MAX; 64 MiB here).
pub const MAX_GRPC_MESSAGE_BYTES: usize = 64 << 20;

/// The `type_url` of the Any in GetModelMetadataResponse.metadata["signature_def"].
pub const SIGNATURE_DEF_MAP_TYPE_URL: &str =
    "type.googleapis.com/tensorflow.serving.SignatureDefMap";

/// Serves PredictionService and ModelService for `models` on `listener` until `shutdown`
/// resolves.
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    models: Arc<Models>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let svc = GrpcService { models };
    let served = tonic::transport::Server::builder()
        .add_service(
            PredictionServiceServer::new(svc.clone())
                .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        )
        .add_service(ModelServiceServer::new(svc))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    served.map_err(|e| ServeError::Server(format!("gRPC: {e}")))
}

#[derive(Clone)]
struct GrpcService {
    models: Arc<Models>,
}

impl GrpcService {
    /// The version a request's ModelSpec names (latest, a number or a label), if served.
    #[allow(clippy::result_large_err)] // tonic's Status is what the handlers return
    fn resolve(&self, spec: Option<&ModelSpec>) -> std::result::Result<Arc<Servable>, Status> {
        let spec = spec.ok_or_else(|| Status::invalid_argument("Missing ModelSpec"))?;
        self.models
            .resolve(&spec.name, &version_request(spec))
            .map_err(|e| match e {
                NotServed::Label(_) => Status::invalid_argument(e.to_string()),
                _ => Status::not_found(e.to_string()),
            })
    }
}

fn version_request(spec: &ModelSpec) -> VersionRequest {
    match &spec.version_choice {
        None => VersionRequest::Latest,
        Some(VersionChoice::Version(v)) => VersionRequest::Specific((*v).max(0) as u64),
        Some(VersionChoice::VersionLabel(l)) => VersionRequest::Label(l.clone()),
    }
}

fn spec_out(servable: &Servable, signature_name: &str) -> ModelSpec {
    ModelSpec {
        name: servable.name.clone(),
        signature_name: signature_name.to_string(),
        version_choice: Some(VersionChoice::Version(servable.version() as i64)),
    }
}

fn status_of(e: PredictError) -> Status {
    match e {
        PredictError::Invalid(m) => Status::invalid_argument(m),
        PredictError::Internal(m) => Status::internal(m),
    }
}

#[tonic::async_trait]
impl PredictionService for GrpcService {
    async fn predict(
        &self,
        request: Request<PredictRequest>,
    ) -> std::result::Result<Response<PredictResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let servable = self.resolve(req.model_spec.as_ref())?;
        let arrival = servable.arrival();
        let asked = req
            .model_spec
            .as_ref()
            .map(|s| s.signature_name.as_str())
            .unwrap_or_default();
        let parsed = servable.signature(asked).and_then(|sig| {
            check_output_filter(sig, &req.output_filter)?;
            batch_from_protos(sig, &req.inputs)
        });
        let signature_name = match &parsed {
            Ok(b) => b.signature.clone(),
            Err(_) => asked.to_string(),
        };
        let slice = servable
            .predict("grpc", started, parsed, arrival)
            .await
            .map_err(status_of)?;
        Ok(Response::new(PredictResponse {
            model_spec: Some(spec_out(&servable, &signature_name)),
            outputs: protos_from_slice(&slice, &req.output_filter),
        }))
    }

    async fn get_model_metadata(
        &self,
        request: Request<GetModelMetadataRequest>,
    ) -> std::result::Result<Response<GetModelMetadataResponse>, Status> {
        let req = request.into_inner();
        let servable = self.resolve(req.model_spec.as_ref())?;
        if req.metadata_field.is_empty() {
            return Err(Status::invalid_argument(
                "GetModelMetadataRequest must specify at least one metadata_field",
            ));
        }
        if let Some(f) = req.metadata_field.iter().find(|f| *f != "signature_def") {
            return Err(Status::invalid_argument(format!(
                "Metadata field {f} is not supported (only signature_def)"
            )));
        }
        let map = SignatureDefMap {
            signature_def: servable
                .model
                .signatures()
                .map(|s| (s.signature_name.clone(), signature_def(s)))
                .collect(),
        };
        let any = prost_types::Any {
            type_url: SIGNATURE_DEF_MAP_TYPE_URL.to_string(),
            value: prost::Message::encode_to_vec(&map),
        };
        Ok(Response::new(GetModelMetadataResponse {
            model_spec: Some(spec_out(&servable, "")),
            metadata: [("signature_def".to_string(), any)].into(),
        }))
    }
}

#[tonic::async_trait]
impl ModelService for GrpcService {
    async fn get_model_status(
        &self,
        request: Request<GetModelStatusRequest>,
    ) -> std::result::Result<Response<GetModelStatusResponse>, Status> {
        let req = request.into_inner();
        let spec = req
            .model_spec
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("Missing ModelSpec"))?;
        let want = version_request(spec);
        if spec.name != self.models.name() {
            return Err(Status::not_found(
                NotServed::Latest(spec.name.clone()).to_string(),
            ));
        }
        let statuses: Vec<ModelVersionStatus> = self
            .models
            .states()
            .into_iter()
            .filter(|(v, _)| match &want {
                VersionRequest::Latest => true,
                VersionRequest::Specific(w) => v == w,
                VersionRequest::Label(l) => self.models.label(l) == Some(*v),
            })
            .map(|(v, s)| ModelVersionStatus {
                version: v as i64,
                state: match s {
                    LoadState::Start => model_version_status::State::Start,
                    LoadState::Loading => model_version_status::State::Loading,
                    LoadState::Available => model_version_status::State::Available,
                    LoadState::Unloading => model_version_status::State::Unloading,
                    LoadState::End => model_version_status::State::End,
                } as i32,
                status: Some(StatusProto {
                    error_code: pb::tensorflow::error::Code::Ok as i32,
                    error_message: String::new(),
                }),
            })
            .collect();
        if statuses.is_empty() {
            return Err(Status::not_found(match want {
                VersionRequest::Label(l) => NotServed::Label(l).to_string(),
                VersionRequest::Specific(v) => {
                    NotServed::Specific(spec.name.clone(), v).to_string()
                }
                VersionRequest::Latest => NotServed::Latest(spec.name.clone()).to_string(),
            }));
        }
        Ok(Response::new(GetModelStatusResponse {
            model_version_status: statuses,
        }))
    }
}

/// TensorFlow's DataType number of a `DT_*` name (`DT_INVALID` for an unknown name).
fn data_type(tf_dtype: &str) -> i32 {
    DataType::from_str_name(tf_dtype).unwrap_or(DataType::DtInvalid) as i32
}

fn data_type_name(dt: i32) -> String {
    DataType::try_from(dt)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| format!("DataType {dt}"))
}

fn shape_proto(shape: Option<&[i64]>) -> TensorShapeProto {
    match shape {
        None => TensorShapeProto {
            dim: Vec::new(),
            unknown_rank: true,
        },
        Some(dims) => TensorShapeProto {
            dim: dims
                .iter()
                .map(|&size| tensor_shape_proto::Dim {
                    size,
                    name: String::new(),
                })
                .collect(),
            unknown_rank: false,
        },
    }
}

fn signature_def(sig: &ModelSignature) -> SignatureDef {
    let infos = |specs: &std::collections::BTreeMap<String, TensorSpec>| {
        specs
            .iter()
            .map(|(n, s)| {
                (
                    n.clone(),
                    TensorInfo {
                        dtype: data_type(&s.tf_dtype),
                        tensor_shape: Some(shape_proto(s.shape.as_deref())),
                        encoding: Some(tensor_info::Encoding::Name(s.tensor.clone())),
                    },
                )
            })
            .collect()
    };
    SignatureDef {
        inputs: infos(&sig.inputs),
        outputs: infos(&sig.outputs),
        method_name: sig.method_name.clone(),
        defaults: HashMap::new(),
    }
}

fn check_output_filter(sig: &ModelSignature, filter: &[String]) -> Result<(), BadRequest> {
    match filter.iter().find(|f| !sig.outputs.contains_key(*f)) {
        Some(f) => Err(BadRequest(format!(
            "output_filter: output tensor alias not found in signature: {f} (outputs: {})",
            sig.outputs.keys().cloned().collect::<Vec<_>>().join(", ")
        ))),
        None => Ok(()),
    }
}

/// The request's tensors as one batch-major column per signature input (in feed order),
/// validated against the signature: every input present and no other, the signature's dtype,
/// its rank and fixed dims, one batch size, element counts that match the shape.
pub fn batch_from_protos(
    sig: &ModelSignature,
    inputs: &HashMap<String, TensorProto>,
) -> Result<Batch, BadRequest> {
    let names = || sig.inputs.keys().cloned().collect::<Vec<_>>().join(", ");
    if let Some(unknown) = inputs.keys().find(|k| !sig.inputs.contains_key(*k)) {
        return Err(BadRequest(format!(
            "inputs.{unknown}: unknown input (signature \"{}\" takes: {})",
            sig.signature_name,
            names()
        )));
    }
    let mut columns = Vec::with_capacity(sig.inputs.len());
    let mut rows: Option<(u64, &str)> = None;
    // BTreeMap order = the model's feed order (sorted by name)
    for (name, spec) in &sig.inputs {
        let Some(t) = inputs.get(name) else {
            return Err(BadRequest(format!(
                "inputs.{name}: missing input (signature \"{}\" takes: {})",
                sig.signature_name,
                names()
            )));
        };
        let col = column_from_proto(name, spec, t)?;
        let n = col.dims[0];
        match rows {
            None => rows = Some((n, name)),
            Some((m, other)) if m != n => {
                return Err(BadRequest(format!(
                    "inputs.{name}: batch size {n} differs from {other}'s {m}"
                )))
            }
            _ => {}
        }
        columns.push(col);
    }
    let rows = rows.map(|(n, _)| n as usize).unwrap_or(0);
    if rows == 0 {
        return Err(BadRequest("inputs: empty batch, nothing to predict".into()));
    }
    Ok(Batch {
        signature: sig.signature_name.clone(),
        format: Format::Columns,
        rows,
        columns,
    })
}

fn column_from_proto(name: &str, spec: &TensorSpec, t: &TensorProto) -> Result<Column, BadRequest> {
    let field = format!("inputs.{name}");
    let bad = |m: String| Err(BadRequest(format!("{field}: {m}")));
    let want = data_type(&spec.tf_dtype);
    if t.dtype != want {
        return bad(format!(
            "expected {} (the signature's type), got {}",
            spec.tf_dtype,
            data_type_name(t.dtype)
        ));
    }
    let shape = t.tensor_shape.clone().unwrap_or_default();
    if shape.unknown_rank {
        return bad("the tensor's shape has an unknown rank".into());
    }
    let dims: Vec<i64> = shape.dim.iter().map(|d| d.size).collect();
    if dims.is_empty() {
        return bad("a scalar has no batch dimension (send a tensor of shape [batch, ...])".into());
    }
    if let Some(d) = dims.iter().find(|&&d| d < 0) {
        return bad(format!("negative dimension {d} in shape {dims:?}"));
    }
    if let Some(s) = &spec.shape {
        let fits = s.len() == dims.len() && s.iter().zip(&dims).all(|(&w, &g)| w < 0 || w == g);
        if !fits {
            return bad(format!(
                "shape {dims:?} does not fit the signature's {:?} (-1 = any size)",
                s
            ));
        }
    }
    let dims: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
    let n = dims.iter().product::<u64>() as usize;
    let values =
        values_from_proto(spec.dtype, t, n).map_err(|m| BadRequest(format!("{field}: {m}")))?;
    Ok(Column { dims, values })
}

/// `n` elements from the typed field, `tensor_content`, or one value repeated (TensorFlow's
/// rule for a shorter typed field: the last value fills the rest, so one value splats).
fn values_from_proto(
    dtype: Dtype,
    t: &TensorProto,
    n: usize,
) -> std::result::Result<Values, String> {
    fn typed<T: Clone>(v: &[T], n: usize) -> std::result::Result<Vec<T>, String> {
        match v.len() {
            len if len == n => Ok(v.to_vec()),
            1 => Ok(vec![v[0].clone(); n]),
            len => Err(format!("{len} values for a shape of {n} elements")),
        }
    }
    fn content<T, const W: usize>(
        bytes: &[u8],
        n: usize,
        read: fn([u8; W]) -> T,
    ) -> std::result::Result<Vec<T>, String> {
        if bytes.len() != n * W {
            return Err(format!(
                "tensor_content holds {} bytes, the shape needs {} ({n} x {W})",
                bytes.len(),
                n * W
            ));
        }
        Ok(bytes
            .chunks_exact(W)
            .map(|c| read(c.try_into().expect("chunk of W bytes")))
            .collect())
    }
    let raw = !t.tensor_content.is_empty();
    Ok(match dtype {
        Dtype::Float32 if raw => Values::F32(content(&t.tensor_content, n, f32::from_le_bytes)?),
        Dtype::Float32 => Values::F32(typed(&t.float_val, n)?),
        Dtype::Float64 if raw => Values::F64(content(&t.tensor_content, n, f64::from_le_bytes)?),
        Dtype::Float64 => Values::F64(typed(&t.double_val, n)?),
        Dtype::Int32 if raw => Values::I32(content(&t.tensor_content, n, i32::from_le_bytes)?),
        Dtype::Int32 => Values::I32(typed(&t.int_val, n)?),
        Dtype::Int64 if raw => Values::I64(content(&t.tensor_content, n, i64::from_le_bytes)?),
        Dtype::Int64 => Values::I64(typed(&t.int64_val, n)?),
        Dtype::Bool if raw => Values::Bool(content(&t.tensor_content, n, |b: [u8; 1]| b[0] != 0)?),
        Dtype::Bool => Values::Bool(typed(&t.bool_val, n)?),
        Dtype::String => {
            let strings = typed(&t.string_val, n)?;
            let mut out = Vec::with_capacity(n);
            for (i, b) in strings.into_iter().enumerate() {
                match String::from_utf8(b) {
                    Ok(s) => out.push(s),
                    Err(_) => {
                        return Err(format!(
                            "element {i} is not UTF-8, which this server cannot feed to a \
                             string input"
                        ))
                    }
                }
            }
            Values::Str(out)
        }
        Dtype::Unsupported => return Err("the signature's input type is not served".into()),
    })
}

/// One request's rows of a run, as TensorProtos with typed value fields (as TF Serving answers),
/// only the outputs in `filter` when it is not empty.
pub fn protos_from_slice(slice: &RowSlice, filter: &[String]) -> HashMap<String, TensorProto> {
    let out = &slice.output;
    out.names
        .iter()
        .zip(&out.columns)
        .filter(|(name, _)| filter.is_empty() || filter.contains(name))
        .map(|(name, col)| {
            let row = col.row_len();
            let (a, b) = (slice.start * row, (slice.start + slice.rows) * row);
            let mut dims = col.dims.clone();
            dims[0] = slice.rows as u64;
            let mut t = TensorProto {
                tensor_shape: Some(shape_proto(Some(
                    &dims.iter().map(|&d| d as i64).collect::<Vec<_>>(),
                ))),
                ..Default::default()
            };
            match &col.values {
                Values::Str(v) => {
                    t.dtype = DataType::DtString as i32;
                    t.string_val = v[a..b].iter().map(|s| s.as_bytes().to_vec()).collect();
                }
                Values::F32(v) => {
                    t.dtype = DataType::DtFloat as i32;
                    t.float_val = v[a..b].to_vec();
                }
                Values::F64(v) => {
                    t.dtype = DataType::DtDouble as i32;
                    t.double_val = v[a..b].to_vec();
                }
                Values::I32(v) => {
                    t.dtype = DataType::DtInt32 as i32;
                    t.int_val = v[a..b].to_vec();
                }
                Values::I64(v) => {
                    t.dtype = DataType::DtInt64 as i32;
                    t.int64_val = v[a..b].to_vec();
                }
                Values::Bool(v) => {
                    t.dtype = DataType::DtBool as i32;
                    t.bool_val = v[a..b].to_vec();
                }
            }
            (name.clone(), t)
        })
        .collect()
}

/// Serves REST on `rest` and, when given, gRPC on `grpc`, both on the same [`Models`] (one
/// batcher per version, one metrics registry), until `shutdown` resolves; then both finish
/// what is in flight and the batch threads are joined.
pub async fn serve_rest_and_grpc(
    rest: tokio::net::TcpListener,
    grpc: Option<tokio::net::TcpListener>,
    models: Arc<Models>,
    cfg: crate::ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = move |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let rest_fut = crate::server::serve_models(rest, models.clone(), cfg, stopped(rx.clone()));
    let result = match grpc {
        None => rest_fut.await,
        Some(g) => {
            let grpc_fut = serve_grpc(g, models.clone(), stopped(rx));
            let (r, g) = tokio::join!(rest_fut, grpc_fut);
            r.and(g)
        }
    };
    // the last reference joins the batch threads: off the async workers
    tokio::task::spawn_blocking(move || drop(models))
        .await
        .map_err(|e| ServeError::Server(format!("batch threads: {e}")))?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::SERVING_DEFAULT;

    fn sig() -> ModelSignature {
        let spec = |dtype: Dtype, tf: &str, shape: &[i64]| TensorSpec {
            dtype,
            tf_dtype: tf.into(),
            shape: Some(shape.to_vec()),
            tensor: "t:0".into(),
        };
        ModelSignature {
            model_path: "m/1".into(),
            version: 1,
            signature_name: SERVING_DEFAULT.into(),
            method_name: "tensorflow/serving/predict".into(),
            inputs: [
                ("city".to_string(), spec(Dtype::String, "DT_STRING", &[-1])),
                (
                    "revenue".to_string(),
                    spec(Dtype::Float32, "DT_FLOAT", &[-1]),
                ),
                (
                    "visits".to_string(),
                    spec(Dtype::Int64, "DT_INT64", &[-1, 1]),
                ),
            ]
            .into(),
            outputs: [(
                "scores".to_string(),
                spec(Dtype::Float32, "DT_FLOAT", &[-1, 2]),
            )]
            .into(),
        }
    }

    fn tensor(dtype: DataType, dims: &[i64]) -> TensorProto {
        TensorProto {
            dtype: dtype as i32,
            tensor_shape: Some(shape_proto(Some(dims))),
            ..Default::default()
        }
    }

    fn good() -> HashMap<String, TensorProto> {
        let mut city = tensor(DataType::DtString, &[2]);
        city.string_val = vec![b"W".to_vec(), b"K".to_vec()];
        let mut revenue = tensor(DataType::DtFloat, &[2]);
        // numpy arrays arrive as little-endian tensor_content
        revenue.tensor_content = [1.5f32, 2.0].iter().flat_map(|f| f.to_le_bytes()).collect();
        let mut visits = tensor(DataType::DtInt64, &[2, 1]);
        visits.int64_val = vec![3, 4];
        [
            ("city".to_string(), city),
            ("revenue".to_string(), revenue),
            ("visits".to_string(), visits),
        ]
        .into()
    }

    #[test]
    fn tensors_become_batch_major_columns_in_feed_order() {
        let b = batch_from_protos(&sig(), &good()).unwrap();
        assert_eq!(b.rows, 2);
        assert_eq!(b.signature, SERVING_DEFAULT);
        assert_eq!(
            b.columns[0].values,
            Values::Str(vec!["W".into(), "K".into()])
        );
        assert_eq!(b.columns[1].values, Values::F32(vec![1.5, 2.0]));
        assert_eq!(b.columns[2].dims, vec![2, 1]);
        assert_eq!(b.columns[2].values, Values::I64(vec![3, 4]));
        // one value splats over the shape
        let mut one = good();
        one.get_mut("city").unwrap().string_val = vec![b"W".to_vec()];
        let b = batch_from_protos(&sig(), &one).unwrap();
        assert_eq!(
            b.columns[0].values,
            Values::Str(vec!["W".into(), "W".into()])
        );
    }

    #[test]
    fn every_bad_tensor_is_refused_naming_the_input() {
        type Edit = Box<dyn Fn(&mut HashMap<String, TensorProto>)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|m| drop(m.remove("visits"))),
                "inputs.visits: missing",
            ),
            (
                Box::new(|m| drop(m.insert("extra".into(), tensor(DataType::DtFloat, &[2])))),
                "inputs.extra: unknown input",
            ),
            (
                Box::new(|m| m.get_mut("revenue").unwrap().dtype = DataType::DtDouble as i32),
                "inputs.revenue: expected DT_FLOAT",
            ),
            (
                Box::new(|m| {
                    m.get_mut("visits").unwrap().tensor_shape = Some(shape_proto(Some(&[2])))
                }),
                "inputs.visits: shape [2] does not fit",
            ),
            (
                Box::new(|m| m.get_mut("visits").unwrap().int64_val = vec![1, 2, 3]),
                "inputs.visits: 3 values for a shape of 2",
            ),
            (
                Box::new(|m| {
                    m.get_mut("revenue")
                        .unwrap()
                        .tensor_content
                        .pop()
                        .map(drop)
                        .unwrap()
                }),
                "inputs.revenue: tensor_content holds 7 bytes",
            ),
            (
                Box::new(|m| {
                    let c = m.get_mut("city").unwrap();
                    c.tensor_shape = Some(shape_proto(Some(&[3])));
                    c.string_val = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
                }),
                "batch size",
            ),
            (
                Box::new(|m| m.get_mut("city").unwrap().string_val[0] = vec![0xff, 0xfe]),
                "inputs.city: element 0 is not UTF-8",
            ),
            (
                Box::new(|m| {
                    m.get_mut("city").unwrap().tensor_shape = Some(shape_proto(Some(&[])))
                }),
                "inputs.city: a scalar has no batch dimension",
            ),
        ];
        for (edit, want) in cases {
            let mut m = good();
            edit(&mut m);
            let err = batch_from_protos(&sig(), &m).unwrap_err().0;
            assert!(err.contains(want), "want {want:?} in {err:?}");
        }
        let err = check_output_filter(&sig(), &["nope".into()]).unwrap_err().0;
        assert!(
            err.contains("output tensor alias not found in signature: nope"),
            "{err}"
        );
        check_output_filter(&sig(), &["scores".into()]).unwrap();
    }

    #[test]
    fn a_run_slice_becomes_typed_tensors_of_its_rows() {
        use crate::batcher::RunOutput;
        let output = Arc::new(RunOutput {
            names: vec!["ids".into(), "scores".into()],
            columns: vec![
                Column {
                    dims: vec![3, 2],
                    values: Values::Str(["a", "b", "c", "d", "e", "f"].map(String::from).to_vec()),
                },
                Column {
                    dims: vec![3, 2],
                    values: Values::F32(vec![6.0, 5.0, 4.0, 3.0, 2.0, 1.0]),
                },
            ],
            batch_rows: 3,
            batch_requests: 2,
        });
        let slice = RowSlice {
            output,
            start: 1,
            rows: 2,
        };
        let all = protos_from_slice(&slice, &[]);
        let ids = &all["ids"];
        assert_eq!(ids.dtype, DataType::DtString as i32);
        assert_eq!(
            ids.tensor_shape
                .as_ref()
                .unwrap()
                .dim
                .iter()
                .map(|d| d.size)
                .collect::<Vec<_>>(),
            vec![2, 2]
        );
        assert_eq!(
            ids.string_val,
            vec![b"c".to_vec(), b"d".to_vec(), b"e".to_vec(), b"f".to_vec()]
        );
        assert_eq!(all["scores"].float_val, vec![4.0, 3.0, 2.0, 1.0]);
        let only = protos_from_slice(&slice, &["scores".into()]);
        assert_eq!(only.keys().collect::<Vec<_>>(), vec!["scores"]);
    }

    #[test]
    fn signature_defs_carry_tensorflow_type_numbers_and_shapes() {
        let def = signature_def(&sig());
        assert_eq!(def.inputs["revenue"].dtype, 1, "DT_FLOAT = 1");
        assert_eq!(def.inputs["city"].dtype, 7, "DT_STRING = 7");
        assert_eq!(def.inputs["visits"].dtype, 9, "DT_INT64 = 9");
        let shape = def.inputs["visits"].tensor_shape.as_ref().unwrap();
        assert_eq!(
            shape.dim.iter().map(|d| d.size).collect::<Vec<_>>(),
            vec![-1, 1]
        );
        assert_eq!(def.method_name, "tensorflow/serving/predict");
    }
}
