//! A SavedModel loaded through the TensorFlow C API, run with plain-Rust tensors.

use std::path::{Path, PathBuf};

use tensorflow::{
    DataType, Graph, Operation, Output, SavedModelBundle, SessionOptions, SessionRunArgs, Tensor,
    TensorType,
};

use crate::error::{Result, ServeError};
use crate::signature::{Dtype, ModelSignature, TensorSpec, SERVING_DEFAULT};
use crate::tensor::{Column, Values};
use crate::tflib::{self, TfOptions};

/// The folder a server loads for `dir`: `dir` itself when it holds saved_model.pb, else the
/// newest numeric version folder under it that holds saved_model.pb (TFX's Pusher layout;
/// DESIGN bug 8). Returns the folder and its version (1 for an unversioned dir).
pub fn resolve_model_dir(dir: &Path) -> Result<(PathBuf, u64)> {
    let dir = &dir.canonicalize().map_err(|source| ServeError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let version_of = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u64>().ok())
    };
    if dir.join("saved_model.pb").is_file() {
        return Ok((dir.to_path_buf(), version_of(dir).unwrap_or(1)));
    }
    let entries = std::fs::read_dir(dir).map_err(|source| ServeError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    // a listing of the files that exist, in the form core's rule reads
    let listing: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("saved_model.pb").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .map(|name| format!("{name}/saved_model.pb"))
        .collect();
    let picked =
        trainyard_core::deployment::versioned_model_path(listing.iter().map(String::as_str))
            .ok_or_else(|| ServeError::NoSavedModel {
                dir: dir.to_path_buf(),
            })?;
    let path = dir.join(picked);
    let version = version_of(&path).unwrap_or(1);
    Ok((path, version))
}

/// TensorFlow session settings (ConfigProto). `None`/`false` keep TensorFlow's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionConfig {
    /// Threads one op may use (TF default: one per core).
    pub intra_op_threads: Option<u32>,
    /// Ops run at once (TF default: one per core).
    pub inter_op_threads: Option<u32>,
    /// Idle TF threads sleep instead of spinning, leaving the cores to the HTTP side.
    pub disable_thread_spinning: bool,
    /// Keep brute-force retrieval's top k in the TF session (`tf.math.top_k`) even when the
    /// model allows ranking in Rust (see [`Model::rust_top_k`]).
    pub session_top_k: bool,
}

impl SessionConfig {
    /// The serialized ConfigProto (hand-encoded: three fields do not need a protobuf stack).
    fn to_proto(self) -> Vec<u8> {
        fn varint(out: &mut Vec<u8>, mut v: u64) {
            while v >= 0x80 {
                out.push((v as u8) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }
        let mut out = Vec::new();
        if let Some(n) = self.intra_op_threads {
            out.push(2 << 3); // intra_op_parallelism_threads = 2 (varint)
            varint(&mut out, n.into());
        }
        if let Some(n) = self.inter_op_threads {
            out.push(5 << 3); // inter_op_parallelism_threads = 5 (varint)
            varint(&mut out, n.into());
        }
        if self.disable_thread_spinning {
            // experimental = 16 (message) { disable_thread_spinning = 9 (varint): true }
            varint(&mut out, (16 << 3) | 2);
            out.extend_from_slice(&[2, 9 << 3, 1]);
        }
        out
    }
}

struct Binding {
    op: Operation,
    index: i32,
}

/// One signature bound to its graph tensors.
struct BoundSignature {
    signature: ModelSignature,
    /// In the order of `signature.inputs` / `signature.outputs` (sorted by name).
    inputs: Vec<(String, TensorSpec, Binding)>,
    outputs: Vec<(String, TensorSpec, Binding)>,
}

/// A loaded SavedModel with every signature it exports (`serving_default` required).
/// `run` may be called from several threads at once (a TF session is thread-safe).
pub struct Model {
    bundle: SavedModelBundle,
    _graph: Graph,
    /// By signature name; always holds `serving_default`.
    signatures: std::collections::BTreeMap<String, BoundSignature>,
    /// `serving_default` scored in the session and ranked in Rust, when the model allows it.
    rust_top_k: Option<RustTopK>,
}

/// Brute-force retrieval the way TFRS's `BruteForce` layer computes it,
/// `top_k(query @ candidates^T)` then `gather(identifiers, indices)`, with the MatMul run by
/// the session (the same op over the same variable as the model's own, so the same scores)
/// and the top k taken in Rust ([`crate::topk`]): TF's TopK sorts more than it needs to and
/// costs several times the MatMul on 100k candidates.
///
/// Used when the model allows it: `serving_default` returns ids and float scores `[None, k]`;
/// another signature (`query_embedding` preferred) takes the same inputs and returns one float
/// `[None, D]`; the graph holds one `candidates` variable `[N, D]` (float) and one
/// `identifiers` variable `[N]` of the ids' type. At load, both ways answer probe requests and
/// must agree (ids equal, scores within 1e-6), or the session's TopK is kept.
struct RustTopK {
    /// The signature giving serving_default's query.
    query: String,
    /// query `[B, D]` x candidates `[N, D]`^T, added to the graph.
    scores: Operation,
    n: usize,
    k: usize,
    /// The identifiers variable's value (`Str` or `I64`), read once.
    ids: Values,
    /// Positions of the ids and of the scores in serving_default's (sorted) outputs.
    ids_out: usize,
    scores_out: usize,
}

/// What [`Model::rust_top_k`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustTopKInfo {
    pub query_signature: String,
    pub candidates: usize,
    pub k: usize,
}

/// Signature keys a SavedModel holds that are not callable signatures.
const NOT_SERVED: &[&str] = &["__saved_model_init_op"];

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("signatures", &self.signatures.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Whether the graph uses ScaNN's custom ops (they live in the `Scann>` op namespace).
fn needs_scann(saved_model_pb: &Path) -> Result<bool> {
    let bytes = std::fs::read(saved_model_pb).map_err(|source| ServeError::Io {
        path: saved_model_pb.to_path_buf(),
        source,
    })?;
    Ok(bytes.windows(6).any(|w| w == b"Scann>"))
}

impl Model {
    /// Loads the servable under `dir` (see [`resolve_model_dir`]), loading TensorFlow and,
    /// when the graph needs them, ScaNN's ops first.
    pub fn load(dir: &Path, tf: &TfOptions) -> Result<Model> {
        Self::load_with(dir, tf, SessionConfig::default())
    }

    /// [`Model::load`] with TensorFlow session settings.
    pub fn load_with(dir: &Path, tf: &TfOptions, session: SessionConfig) -> Result<Model> {
        let (path, version) = resolve_model_dir(dir)?;
        Self::load_version(path, version, tf, session)
    }

    /// Loads exactly the SavedModel folder `path` as `version` (no version resolution).
    pub fn load_version(
        path: PathBuf,
        version: u64,
        tf: &TfOptions,
        session: SessionConfig,
    ) -> Result<Model> {
        // a registered version is served only as registered (before TensorFlow reads a byte)
        if crate::manifest::verify(&path)? {
            tracing::info!(model_path = %path.display(), "files match MANIFEST.json");
        }
        let rt = tflib::init(tf)?;
        if needs_scann(&path.join("saved_model.pb"))? {
            tflib::load_scann_ops(rt)?;
        }
        let started = std::time::Instant::now();
        let (bundle, graph) = match Self::load_bundle(&path, session) {
            // a Scann op the byte scan missed (e.g. a renamed namespace): register and retry
            Err(e) if e.to_string().contains("Op type not registered 'Scann") => {
                tflib::load_scann_ops(rt)?;
                Self::load_bundle(&path, session)?
            }
            other => other?,
        };
        let model = Self::bind(bundle, graph, path, version, !session.session_top_k)?;
        tracing::info!(
            model_path = %model.signature().model_path.display(),
            version,
            signatures = ?model.signatures.keys().collect::<Vec<_>>(),
            load_ms = started.elapsed().as_millis() as u64,
            "loaded SavedModel"
        );
        Ok(model)
    }

    fn load_bundle(path: &Path, session: SessionConfig) -> Result<(SavedModelBundle, Graph)> {
        let mut graph = Graph::new();
        let mut opts = SessionOptions::new();
        opts.set_config(&session.to_proto())
            .map_err(|e| ServeError::tf("set the session config", e))?;
        let bundle = SavedModelBundle::load(&opts, ["serve"], &mut graph, path)
            .map_err(|e| ServeError::tf(format!("load the SavedModel {}", path.display()), e))?;
        Ok((bundle, graph))
    }

    fn bind(
        bundle: SavedModelBundle,
        mut graph: Graph,
        path: PathBuf,
        version: u64,
        try_rust_top_k: bool,
    ) -> Result<Model> {
        let defs = bundle.meta_graph_def().signatures();
        if !defs.contains_key(SERVING_DEFAULT) {
            return Err(ServeError::NoSignature(SERVING_DEFAULT.into()));
        }
        let mut signatures = std::collections::BTreeMap::new();
        for (key, sig) in defs {
            if NOT_SERVED.contains(&key.as_str()) {
                continue;
            }
            match Self::bind_signature(&graph, key, sig, &path, version) {
                Ok(b) => {
                    signatures.insert(key.clone(), b);
                }
                Err(e) if key == SERVING_DEFAULT => return Err(e),
                // another signature the server cannot feed (e.g. sparse inputs): not served
                Err(e) => tracing::warn!(signature = %key, error = %e, "signature not served"),
            }
        }
        let plan = if try_rust_top_k {
            plan_rust_top_k(&mut graph, &bundle, &signatures)
        } else {
            Err("--session-top-k".into())
        };
        let mut model = Model {
            bundle,
            _graph: graph,
            signatures,
            rust_top_k: None,
        };
        match plan {
            Err(why) => tracing::debug!(reason = %why, "top k taken by the session"),
            Ok(plan) => {
                model.rust_top_k = Some(plan);
                match model.check_rust_top_k() {
                    Ok(rows) => tracing::info!(
                        query_signature = %model.rust_top_k.as_ref().map(|p| p.query.as_str()).unwrap_or(""),
                        probe_rows = rows,
                        "brute-force top k taken in Rust (probe answers equal the session's)"
                    ),
                    Err(why) => {
                        tracing::warn!(reason = %why, "brute-force top k stays in the session");
                        model.rust_top_k = None;
                    }
                }
            }
        }
        Ok(model)
    }

    /// When `serving_default` is ranked in Rust: its query signature, candidates and k.
    pub fn rust_top_k(&self) -> Option<RustTopKInfo> {
        self.rust_top_k.as_ref().map(|p| RustTopKInfo {
            query_signature: p.query.clone(),
            candidates: p.n,
            k: p.k,
        })
    }

    /// Runs probe rows through the session's TopK and through Rust; `Err` names a difference.
    fn check_rust_top_k(&self) -> std::result::Result<usize, String> {
        let sd = self.default_sig();
        let rows = 8usize;
        let mut probe = Vec::new();
        for (name, spec, _) in &sd.inputs {
            let dims: Vec<u64> = match &spec.shape {
                Some(d) if !d.is_empty() && d[1..].iter().all(|&x| x >= 0) => {
                    std::iter::once(rows as u64)
                        .chain(d[1..].iter().map(|&x| x as u64))
                        .collect()
                }
                _ => return Err(format!("input `{name}` has no known row shape")),
            };
            let per: usize = dims[1..].iter().product::<u64>() as usize;
            let n = rows * per;
            let values = match spec.dtype {
                Dtype::String => Values::Str((0..n).map(|i| format!("probe-{i}")).collect()),
                Dtype::Int64 => Values::I64((0..n as i64).collect()),
                Dtype::Int32 => Values::I32((0..n as i32).collect()),
                Dtype::Float32 => Values::F32((0..n).map(|i| i as f32 * 0.37).collect()),
                Dtype::Float64 => Values::F64((0..n).map(|i| i as f64 * 0.37).collect()),
                Dtype::Bool => Values::Bool((0..n).map(|i| i % 2 == 0).collect()),
                Dtype::Unsupported => return Err(format!("input `{name}`: unsupported type")),
            };
            probe.push(Column { dims, values });
        }
        let want = self
            .run_session(SERVING_DEFAULT, &probe)
            .map_err(|e| e.to_string())?;
        let got = self.run_rust_top_k(&probe).map_err(|e| e.to_string())?;
        let plan = self.rust_top_k.as_ref().expect("planned");
        if got[plan.ids_out] != want[plan.ids_out] {
            return Err("the probe's ids differ from the session's".into());
        }
        match (&got[plan.scores_out].values, &want[plan.scores_out].values) {
            (Values::F32(a), Values::F32(b))
                if a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-6) => {}
            _ => return Err("the probe's scores differ from the session's".into()),
        }
        Ok(rows)
    }

    fn bind_signature(
        graph: &Graph,
        key: &str,
        sig: &tensorflow::SignatureDef,
        path: &Path,
        version: u64,
    ) -> Result<BoundSignature> {
        let bind = |infos: &std::collections::HashMap<String, tensorflow::TensorInfo>| {
            let mut v = infos
                .iter()
                .map(|(name, info)| {
                    let op = graph
                        .operation_by_name_required(&info.name().name)
                        .map_err(|e| ServeError::tf(format!("find the tensor of `{name}`"), e))?;
                    let binding = Binding {
                        op,
                        index: info.name().index,
                    };
                    Ok((name.clone(), TensorSpec::from_info(info), binding))
                })
                .collect::<Result<Vec<_>>>()?;
            v.sort_by(|a, b| a.0.cmp(&b.0));
            Ok::<_, ServeError>(v)
        };
        let inputs = bind(sig.inputs())?;
        let outputs = bind(sig.outputs())?;
        let signature = ModelSignature {
            model_path: path.to_path_buf(),
            version,
            signature_name: key.to_string(),
            method_name: sig.method_name().to_string(),
            inputs: inputs
                .iter()
                .map(|(n, s, _)| (n.clone(), s.clone()))
                .collect(),
            outputs: outputs
                .iter()
                .map(|(n, s, _)| (n.clone(), s.clone()))
                .collect(),
        };
        Ok(BoundSignature {
            signature,
            inputs,
            outputs,
        })
    }

    fn default_sig(&self) -> &BoundSignature {
        &self.signatures[SERVING_DEFAULT]
    }

    /// `serving_default`.
    pub fn signature(&self) -> &ModelSignature {
        &self.default_sig().signature
    }

    /// Every served signature, by name.
    pub fn signatures(&self) -> impl Iterator<Item = &ModelSignature> {
        self.signatures.values().map(|b| &b.signature)
    }

    /// The signature called `name`, if the model serves it.
    pub fn signature_named(&self, name: &str) -> Option<&ModelSignature> {
        self.signatures.get(name).map(|b| &b.signature)
    }

    /// The version this model was loaded as.
    pub fn version(&self) -> u64 {
        self.signature().version
    }

    /// Input specs of `serving_default` in feed order (sorted by name).
    pub fn input_specs(&self) -> impl Iterator<Item = (&str, &TensorSpec)> {
        self.default_sig()
            .inputs
            .iter()
            .map(|(n, s, _)| (n.as_str(), s))
    }

    /// Input specs of the signature `name` in feed order; `None` for an unknown signature.
    pub fn input_specs_of(&self, name: &str) -> Option<Vec<(&str, &TensorSpec)>> {
        let b = self.signatures.get(name)?;
        Some(b.inputs.iter().map(|(n, s, _)| (n.as_str(), s)).collect())
    }

    /// Output names of `serving_default` in the order `run` returns them.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.default_sig()
            .outputs
            .iter()
            .map(|(n, _, _)| n.as_str())
    }

    /// Output names of the signature `name` in the order `run_signature` returns them.
    pub fn output_names_of(&self, name: &str) -> Vec<&str> {
        self.signatures
            .get(name)
            .map(|b| b.outputs.iter().map(|(n, _, _)| n.as_str()).collect())
            .unwrap_or_default()
    }

    /// One session run of `serving_default`: `inputs` in the order of
    /// [`Model::input_specs`]; returns every output in the order of [`Model::output_names`].
    pub fn run(&self, inputs: &[Column]) -> Result<Vec<Column>> {
        self.run_signature(SERVING_DEFAULT, inputs)
    }

    /// One run of the signature `name` (inputs and outputs in its sorted order): a session run,
    /// and for `serving_default` of a brute-force model the top k in Rust (see
    /// [`Model::rust_top_k`]).
    pub fn run_signature(&self, name: &str, inputs: &[Column]) -> Result<Vec<Column>> {
        if name == SERVING_DEFAULT && self.rust_top_k.is_some() {
            return self.run_rust_top_k(inputs);
        }
        self.run_session(name, inputs)
    }

    /// Scores in the session (the query signature's inputs fed, the MatMul fetched), the top k
    /// and the ids' gather in Rust, rows spread over the cores.
    fn run_rust_top_k(&self, inputs: &[Column]) -> Result<Vec<Column>> {
        let plan = self.rust_top_k.as_ref().expect("a planned Rust top k");
        let sig = &self.signatures[&plan.query];
        assert_eq!(inputs.len(), sig.inputs.len(), "one column per input");
        let feeds = inputs.iter().map(to_tensor).collect::<Result<Vec<_>>>()?;
        let mut args = SessionRunArgs::new();
        add_feeds(&mut args, &sig.inputs, &feeds);
        let tok = args.request_fetch(&plan.scores, 0);
        self.bundle
            .session
            .run(&mut args)
            .map_err(|e| ServeError::tf("run the query signature and the scores", e))?;
        let scores: Tensor<f32> = args
            .fetch(tok)
            .map_err(|e| ServeError::tf("fetch the scores", e))?;
        let rows = scores.dims().first().copied().unwrap_or(0) as usize;
        if scores.dims() != [rows as u64, plan.n as u64] {
            return Err(ServeError::Tf {
                what: "score the candidates".into(),
                message: format!(
                    "scores of shape {:?}, expected [_, {}]",
                    scores.dims(),
                    plan.n
                ),
            });
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // a thread per row is worth it only once the rows outweigh spawning (~20 us)
        let threads = if rows >= 2 { threads } else { 1 };
        let top = crate::topk::top_k_rows(&scores, rows, plan.n, plan.k, threads);
        let k = plan.k.min(plan.n);
        let mut out_scores = Vec::with_capacity(rows * k);
        let mut out_ids = match &plan.ids {
            Values::Str(_) => Values::Str(Vec::with_capacity(rows * k)),
            _ => Values::I64(Vec::with_capacity(rows * k)),
        };
        for row in &top {
            for &(i, s) in row {
                out_scores.push(s);
                match (&mut out_ids, &plan.ids) {
                    (Values::Str(o), Values::Str(ids)) => o.push(ids[i as usize].clone()),
                    (Values::I64(o), Values::I64(ids)) => o.push(ids[i as usize]),
                    _ => unreachable!("ids are strings or int64"),
                }
            }
        }
        let dims = vec![rows as u64, k as u64];
        let mut cols = vec![None, None];
        cols[plan.ids_out] = Some(Column {
            dims: dims.clone(),
            values: out_ids,
        });
        cols[plan.scores_out] = Some(Column {
            dims,
            values: Values::F32(out_scores),
        });
        Ok(cols.into_iter().map(|c| c.expect("both outputs")).collect())
    }

    /// One session run of the signature `name`.
    fn run_session(&self, name: &str, inputs: &[Column]) -> Result<Vec<Column>> {
        let sig = self
            .signatures
            .get(name)
            .ok_or_else(|| ServeError::NoSignature(name.to_string()))?;
        assert_eq!(inputs.len(), sig.inputs.len(), "one column per input");
        let feeds = inputs.iter().map(to_tensor).collect::<Result<Vec<_>>>()?;
        let mut args = SessionRunArgs::new();
        add_feeds(&mut args, &sig.inputs, &feeds);
        let tokens: Vec<_> = sig
            .outputs
            .iter()
            .map(|(_, _, b)| args.request_fetch(&b.op, b.index))
            .collect();
        self.bundle
            .session
            .run(&mut args)
            .map_err(|e| ServeError::tf("run the signature", e))?;
        sig.outputs
            .iter()
            .zip(tokens)
            .map(|((name, spec, _), tok)| {
                let err = |e| ServeError::tf(format!("fetch `{name}`"), e);
                Ok(match spec.dtype {
                    Dtype::String => column(args.fetch::<String>(tok).map_err(err)?, Values::Str),
                    Dtype::Int64 => column(args.fetch::<i64>(tok).map_err(err)?, Values::I64),
                    Dtype::Int32 => column(args.fetch::<i32>(tok).map_err(err)?, Values::I32),
                    Dtype::Float32 => column(args.fetch::<f32>(tok).map_err(err)?, Values::F32),
                    Dtype::Float64 => column(args.fetch::<f64>(tok).map_err(err)?, Values::F64),
                    Dtype::Bool => column(args.fetch::<bool>(tok).map_err(err)?, Values::Bool),
                    Dtype::Unsupported => {
                        return Err(ServeError::Tf {
                            what: format!("fetch `{name}`"),
                            message: format!("output type {} is not served", spec.tf_dtype),
                        })
                    }
                })
            })
            .collect()
    }
}

fn add_feeds<'a>(
    args: &mut SessionRunArgs<'a>,
    inputs: &'a [(String, TensorSpec, Binding)],
    feeds: &'a [Feed],
) {
    for ((_, _, b), t) in inputs.iter().zip(feeds) {
        match t {
            Feed::Str(t) => args.add_feed(&b.op, b.index, t),
            Feed::I64(t) => args.add_feed(&b.op, b.index, t),
            Feed::I32(t) => args.add_feed(&b.op, b.index, t),
            Feed::F32(t) => args.add_feed(&b.op, b.index, t),
            Feed::F64(t) => args.add_feed(&b.op, b.index, t),
            Feed::Bool(t) => args.add_feed(&b.op, b.index, t),
        }
    }
}

/// The one `VarHandleOp` called `name` (or `…/name`) of type `dtype`, with its shape.
fn variable(
    graph: &Graph,
    name: &str,
    dtype: DataType,
) -> std::result::Result<(Operation, Vec<i64>), String> {
    let suffix = format!("/{name}");
    let mut found = Vec::new();
    for op in graph.operation_iter() {
        if op.op_type().ok().as_deref() != Some("VarHandleOp") {
            continue;
        }
        let op_name = op.name().unwrap_or_default();
        if op_name != name && !op_name.ends_with(&suffix) {
            continue;
        }
        if op.get_attr_type("dtype").ok() != Some(dtype) {
            continue;
        }
        let shape = op.get_attr_shape("shape").map_err(|e| e.to_string())?;
        let dims = match shape.dims() {
            Some(n) => (0..n).map(|i| shape[i].unwrap_or(-1)).collect(),
            None => return Err(format!("variable `{op_name}` has an unknown shape")),
        };
        found.push((op, dims));
    }
    match found.len() {
        1 => Ok(found.pop().expect("one")),
        n => Err(format!("{n} `{name}` variables of type {dtype}")),
    }
}

/// Adds `ReadVariableOp(var)` to the graph.
fn read_variable(
    graph: &mut Graph,
    var: &Operation,
    dtype: DataType,
    name: &str,
) -> std::result::Result<Operation, String> {
    let mut d = graph
        .new_operation("ReadVariableOp", name)
        .map_err(|e| e.to_string())?;
    d.add_input(Output {
        operation: var.clone(),
        index: 0,
    });
    d.set_attr_type("dtype", dtype).map_err(|e| e.to_string())?;
    d.finish().map_err(|e| e.to_string())
}

/// Whether the model allows ranking in Rust (see [`RustTopK`]); adds the score MatMul to the
/// graph and reads the identifiers. `Err` says why not.
fn plan_rust_top_k(
    graph: &mut Graph,
    bundle: &SavedModelBundle,
    signatures: &std::collections::BTreeMap<String, BoundSignature>,
) -> std::result::Result<RustTopK, String> {
    let sd = signatures
        .get(SERVING_DEFAULT)
        .ok_or("no serving_default")?;
    if sd.outputs.len() != 2 {
        return Err("serving_default does not have exactly two outputs".into());
    }
    let k_of = |spec: &TensorSpec| match spec.shape.as_deref() {
        Some([_, k]) if *k > 0 => Some(*k as usize),
        _ => None,
    };
    let scores_out = sd
        .outputs
        .iter()
        .position(|(_, s, _)| s.dtype == Dtype::Float32 && k_of(s).is_some())
        .ok_or("serving_default has no float [None, k] output")?;
    let ids_out = 1 - scores_out;
    let (ids_spec, scores_spec) = (&sd.outputs[ids_out].1, &sd.outputs[scores_out].1);
    let k = k_of(scores_spec).expect("checked");
    if k_of(ids_spec) != Some(k) {
        return Err("the ids output is not [None, k]".into());
    }
    let ids_dtype = match ids_spec.dtype {
        Dtype::String => DataType::String,
        Dtype::Int64 => DataType::Int64,
        _ => return Err("the ids output is neither string nor int64".into()),
    };
    let same_inputs = |b: &BoundSignature| {
        b.inputs.len() == sd.inputs.len()
            && b.inputs
                .iter()
                .zip(&sd.inputs)
                .all(|(a, s)| a.0 == s.0 && a.1.dtype == s.1.dtype && a.1.shape == s.1.shape)
    };
    let query_dim = |b: &BoundSignature| match b.outputs.as_slice() {
        [(_, s, _)] if s.dtype == Dtype::Float32 => match s.shape.as_deref() {
            Some([_, d]) if *d > 0 => Some(*d),
            _ => None,
        },
        _ => None,
    };
    let mut names: Vec<&String> = signatures
        .keys()
        .filter(|n| *n != SERVING_DEFAULT)
        .collect();
    names.sort_by_key(|n| *n != "query_embedding");
    let (query, dim) = names
        .into_iter()
        .find_map(|n| {
            let b = &signatures[n];
            (same_inputs(b))
                .then(|| query_dim(b))
                .flatten()
                .map(|d| (n.clone(), d))
        })
        .ok_or("no signature returns serving_default's query (same inputs, one float [None, D])")?;
    let (cand, cdims) = variable(graph, "candidates", DataType::Float)?;
    let (idv, idims) = variable(graph, "identifiers", ids_dtype)?;
    let n = match (cdims.as_slice(), idims.as_slice()) {
        ([n, d], [m]) if n == m && *d == dim && *n > 0 => *n as usize,
        _ => {
            return Err(format!(
                "candidates {cdims:?} and identifiers {idims:?} do not fit a query of {dim}"
            ))
        }
    };
    let q = &signatures[&query].outputs[0].2;
    let cand_read = read_variable(graph, &cand, DataType::Float, "trainyard_top_k/candidates")?;
    let ids_read = read_variable(graph, &idv, ids_dtype, "trainyard_top_k/identifiers")?;
    let mut d = graph
        .new_operation("MatMul", "trainyard_top_k/scores")
        .map_err(|e| e.to_string())?;
    d.add_input(Output {
        operation: q.op.clone(),
        index: q.index,
    });
    d.add_input(Output {
        operation: cand_read,
        index: 0,
    });
    d.set_attr_type("T", DataType::Float)
        .map_err(|e| e.to_string())?;
    d.set_attr_bool("transpose_a", false)
        .map_err(|e| e.to_string())?;
    d.set_attr_bool("transpose_b", true)
        .map_err(|e| e.to_string())?;
    let scores = d.finish().map_err(|e| e.to_string())?;
    let mut args = SessionRunArgs::new();
    let tok = args.request_fetch(&ids_read, 0);
    bundle
        .session
        .run(&mut args)
        .map_err(|e| format!("read the identifiers: {e}"))?;
    let ids = match ids_dtype {
        DataType::String => Values::Str(
            args.fetch::<String>(tok)
                .map_err(|e| e.to_string())?
                .to_vec(),
        ),
        _ => Values::I64(args.fetch::<i64>(tok).map_err(|e| e.to_string())?.to_vec()),
    };
    if ids.len() != n {
        return Err(format!("{} identifiers for {n} candidates", ids.len()));
    }
    Ok(RustTopK {
        query,
        scores,
        n,
        k,
        ids,
        ids_out,
        scores_out,
    })
}

enum Feed {
    Str(Tensor<String>),
    I64(Tensor<i64>),
    I32(Tensor<i32>),
    F32(Tensor<f32>),
    F64(Tensor<f64>),
    Bool(Tensor<bool>),
}

fn tensor<T: TensorType>(dims: &[u64], v: &[T]) -> Result<Tensor<T>> {
    Tensor::new(dims)
        .with_values(v)
        .map_err(|e| ServeError::tf("build an input tensor", e))
}

fn to_tensor(c: &Column) -> Result<Feed> {
    Ok(match &c.values {
        Values::Str(v) => Feed::Str(tensor(&c.dims, v)?),
        Values::I64(v) => Feed::I64(tensor(&c.dims, v)?),
        Values::I32(v) => Feed::I32(tensor(&c.dims, v)?),
        Values::F32(v) => Feed::F32(tensor(&c.dims, v)?),
        Values::F64(v) => Feed::F64(tensor(&c.dims, v)?),
        Values::Bool(v) => Feed::Bool(tensor(&c.dims, v)?),
    })
}

fn column<T: TensorType + Clone>(t: Tensor<T>, wrap: fn(Vec<T>) -> Values) -> Column {
    Column {
        dims: t.dims().to_vec(),
        values: wrap(t.to_vec()),
    }
}

/// Loads `dir` and returns its `serving_default` signature.
pub fn inspect(dir: &Path, tf: &TfOptions) -> Result<ModelSignature> {
    Ok(Model::load(dir, tf)?.signature().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_config_encodes_as_a_config_proto() {
        assert!(SessionConfig::default().to_proto().is_empty());
        let all = SessionConfig {
            intra_op_threads: Some(2),
            inter_op_threads: Some(300),
            disable_thread_spinning: true,
            session_top_k: true,
        };
        // field 2 = 2; field 5 = 300 (varint ac 02); field 16 {field 9 = true}
        assert_eq!(
            all.to_proto(),
            vec![0x10, 2, 0x28, 0xac, 0x02, 0x82, 0x01, 2, 0x48, 1]
        );
    }

    #[test]
    fn resolves_the_newest_version_that_holds_a_saved_model() {
        let tmp = tempfile::tempdir().unwrap();
        for (v, has_pb) in [("1", true), ("2", true), ("10", false), ("latest", true)] {
            let d = tmp.path().join(v);
            std::fs::create_dir_all(&d).unwrap();
            if has_pb {
                std::fs::write(d.join("saved_model.pb"), b"").unwrap();
            }
        }
        let root = tmp.path().canonicalize().unwrap();
        let (p, v) = resolve_model_dir(tmp.path()).unwrap();
        assert_eq!((p, v), (root.join("2"), 2));
        // a dir that is itself the SavedModel is used as it is
        assert_eq!(
            resolve_model_dir(&tmp.path().join("1")).unwrap(),
            (root.join("1"), 1)
        );
        let empty = tempfile::tempdir().unwrap();
        let err = resolve_model_dir(empty.path()).unwrap_err();
        assert!(matches!(err, ServeError::NoSavedModel { .. }), "{err:?}");
    }
}
