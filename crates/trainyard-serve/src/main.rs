//! `trainyard-serve --model DIR --name NAME [...]` serves a SavedModel over TF Serving's REST
//! API; `trainyard-serve inspect --model DIR [--check]` prints its serving signature as JSON.
//! Exit codes: 0 ok, 1 a typed error (message on stderr), 2 bad arguments, 3 this machine's
//! TensorFlow setup (`error::EXIT_SETUP`: no TensorFlow, a library that does not load).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use trainyard_serve::versions::{Models, WatchConfig};
use trainyard_serve::{
    check_serving_contract_for, conn, write_ready_file, BatchConfig, Dtype, Limits, Metrics, Model,
    ReadyInfo, Servable, ServeError, ServerConfig, SessionConfig, TfOptions,
};

#[derive(Parser, Debug)]
#[command(
    name = "trainyard-serve",
    version,
    about,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the model's serving_default signature (inputs and outputs, dtype and shape) as JSON.
    Inspect {
        /// A SavedModel dir, or a dir of numeric version folders (the newest with
        /// saved_model.pb is used).
        #[arg(long)]
        model: PathBuf,
        /// Also apply the serving contract (product ids of the catalog's type); exit 1 when it
        /// is refused.
        #[arg(long)]
        check: bool,
        /// The type of the catalog's product ids (the `product_ids` output must match).
        #[arg(long, value_enum, default_value_t = ProductIdType::String)]
        product_id_type: ProductIdType,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// A SavedModel dir, or a dir of numeric version folders (the newest with saved_model.pb).
    #[arg(long, required = true)]
    model: Option<PathBuf>,
    /// The model name in /v1/models/{name}.
    #[arg(long, required = true)]
    name: Option<String>,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// 0 picks a free port (see --ready-file).
    #[arg(long, default_value_t = 8501)]
    port: u16,
    /// Also serve TF Serving's gRPC API (PredictionService, ModelService) on this port of
    /// --host; 0 picks a free port (see --ready-file).
    #[arg(long)]
    grpc_port: Option<u16>,
    #[arg(long, default_value_t = 64)]
    max_batch_size: usize,
    /// Longest wait for more requests to join a batch (only while some are still arriving).
    #[arg(long, default_value_t = 10_000)]
    batch_timeout_micros: u64,
    /// Threads running session runs at once.
    #[arg(long, default_value_t = 1)]
    batch_threads: usize,
    /// Largest predict body accepted (413 above it).
    #[arg(long, default_value_t = trainyard_serve::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Instances (rows) one predict request may carry (413 above it, naming the limit).
    #[arg(long, default_value_t = conn::DEFAULT_MAX_INSTANCES, value_parser = positive)]
    max_instances: usize,
    /// Bytes one predict answer may take (413 above it, naming the limit).
    #[arg(long, default_value_t = conn::DEFAULT_MAX_RESPONSE_BYTES, value_parser = positive)]
    max_response_bytes: usize,
    /// Seconds a client has to send a request head, from its first byte; then the connection
    /// is closed.
    #[arg(long, default_value = "10", value_parser = seconds)]
    header_timeout_secs: Duration,
    /// Seconds a client has to send a whole request body; a client that stalls is answered 408
    /// and its connection closed (its request never joins a batch).
    #[arg(long, default_value = "30", value_parser = seconds)]
    body_timeout_secs: Duration,
    /// Seconds a connection may stay open with no request in flight and no traffic (kept-alive
    /// connections, and new ones that send nothing); then it is closed.
    #[arg(long, default_value = "60", value_parser = seconds)]
    idle_timeout_secs: Duration,
    /// Connections served at once; more wait in the listen backlog until one closes.
    #[arg(long, default_value_t = conn::DEFAULT_MAX_CONNECTIONS, value_parser = positive)]
    max_connections: usize,
    /// On SIGTERM/SIGINT: stop accepting, let requests in flight finish, and after this many
    /// seconds close whatever is still open and exit.
    #[arg(long, default_value = "8", value_parser = seconds)]
    shutdown_timeout_secs: Duration,
    /// TensorFlow threads per op (default: TensorFlow's, one per core).
    #[arg(long)]
    intra_op_threads: Option<u32>,
    /// TensorFlow ops run at once (default: TensorFlow's, one per core).
    #[arg(long)]
    inter_op_threads: Option<u32>,
    /// Let idle TensorFlow threads spin (TensorFlow's default); by default they sleep, which
    /// leaves the cores to the HTTP side on small machines.
    #[arg(long)]
    tf_thread_spinning: bool,
    /// Keep a brute-force model's top k in the TensorFlow session. By default, when the model
    /// exports its query (a signature with serving_default's inputs returning one float
    /// [None, D], e.g. `query_embedding`) and its `candidates`/`identifiers` variables, the
    /// session computes the scores and the top k is taken in Rust, checked at load to answer
    /// as the session does.
    #[arg(long)]
    session_top_k: bool,
    /// Seconds between polls of the model base path for new numeric versions (a newer one is
    /// loaded, warmed up and swapped in; the old one drained and unloaded). 0 disables; no
    /// polling when --model is a SavedModel folder itself.
    #[arg(long, default_value_t = 1.0)]
    file_system_poll_wait_seconds: f64,
    /// A version label, LABEL=VERSION (repeatable): /v1/models/NAME/labels/LABEL and gRPC's
    /// version_label.
    #[arg(long = "version-label", value_parser = parse_label)]
    version_labels: Vec<(String, u64)>,
    /// The type of the catalog's product ids: the `product_ids` output must have it (string ids,
    /// or int64 for a catalog whose ids are INT64; int indices for a string catalog are refused).
    #[arg(long, value_enum, default_value_t = ProductIdType::String)]
    product_id_type: ProductIdType,
    /// Written (atomically) once the model is loaded and the socket bound:
    /// {"url", "pid", "model_path", "name"}.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct Common {
    /// The tensorflow package dir of a pip TensorFlow [env: TRAINYARD_TF_LIB_DIR].
    #[arg(long, global = true)]
    tf_lib_dir: Option<PathBuf>,
    /// A Python with tensorflow installed, asked where it is [env: TRAINYARD_PYTHON;
    /// default .venv-tf/bin/python].
    #[arg(long, global = true)]
    python: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ProductIdType {
    String,
    Int64,
}

impl ProductIdType {
    fn dtype(self) -> Dtype {
        match self {
            ProductIdType::String => Dtype::String,
            ProductIdType::Int64 => Dtype::Int64,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAINYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tensorflow_sys_runtime=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // TensorFlow's C++ logging: warnings and errors only, unless the caller chose otherwise
    if std::env::var_os("TF_CPP_MIN_LOG_LEVEL").is_none() {
        std::env::set_var("TF_CPP_MIN_LOG_LEVEL", "1");
    }
    init_logging(cli.common.log_format);
    let tf = tf_options(&cli.common);
    let result = match cli.command {
        Some(Command::Inspect {
            model,
            check,
            product_id_type,
        }) => inspect(model, check, product_id_type.dtype(), &tf),
        None => serve(cli.serve, &tf),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "trainyard-serve failed");
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn parse_label(s: &str) -> Result<(String, u64), String> {
    let (label, version) = s
        .split_once('=')
        .ok_or_else(|| format!("expected LABEL=VERSION, got {s:?}"))?;
    if label.is_empty() {
        return Err(format!("empty label in {s:?}"));
    }
    let version = version
        .parse::<u64>()
        .map_err(|_| format!("version of {label:?} is not a number: {version:?}"))?;
    Ok((label.to_string(), version))
}

fn tf_options(c: &Common) -> TfOptions {
    TfOptions {
        tf_lib_dir: c.tf_lib_dir.clone(),
        python: c.python.clone(),
    }
}

fn inspect(
    model: PathBuf,
    check: bool,
    product_id: Dtype,
    tf: &TfOptions,
) -> Result<(), ServeError> {
    let sig = trainyard_serve::inspect(&model, tf)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&sig).expect("signature serializes")
    );
    if check {
        check_serving_contract_for(&sig, product_id)?;
    }
    Ok(())
}

fn serve(args: ServeArgs, tf: &TfOptions) -> Result<(), ServeError> {
    // clap enforces both (required unless a subcommand is given)
    let (Some(model_dir), Some(name)) = (args.model, args.name) else {
        unreachable!("clap requires --model and --name")
    };
    let session = SessionConfig {
        intra_op_threads: args.intra_op_threads,
        inter_op_threads: args.inter_op_threads,
        disable_thread_spinning: !args.tf_thread_spinning,
        session_top_k: args.session_top_k,
    };
    let model = Model::load_with(&model_dir, tf, session)?;
    let product_id = args.product_id_type.dtype();
    check_serving_contract_for(model.signature(), product_id)?;
    let model_path = model.signature().model_path.clone();
    let batch = BatchConfig {
        max_batch_size: args.max_batch_size,
        batch_timeout: Duration::from_micros(args.batch_timeout_micros),
        threads: args.batch_threads,
    };
    let servable = Servable::start(
        name.clone(),
        Arc::new(model),
        batch,
        Arc::new(Metrics::new()),
    );
    // TF Serving's warm-up: replayed before the version is reported (ready file, status)
    let warmed = trainyard_serve::warmup::replay(&servable, &model_path)?;
    servable
        .metrics
        .record_warmup(&name, servable.version(), warmed);
    if warmed > 0 {
        tracing::info!(requests = warmed, "warm-up requests replayed");
    }
    let models = Models::new(Arc::new(servable));
    for (label, version) in &args.version_labels {
        models.set_label(label, *version);
    }
    let base = model_dir.canonicalize().map_err(|source| ServeError::Io {
        path: model_dir.clone(),
        source,
    })?;
    let mut watcher = (base != model_path && args.file_system_poll_wait_seconds > 0.0).then(|| {
        trainyard_serve::versions::watch(
            models.clone(),
            WatchConfig {
                base,
                interval: Duration::from_secs_f64(args.file_system_poll_wait_seconds),
                tf: tf.clone(),
                session,
                batch,
                product_id,
            },
        )
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError::Server(format!("tokio runtime: {e}")))?;
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .map_err(|e| {
                ServeError::Server(format!("cannot bind {}:{}: {e}", args.host, args.port))
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServeError::Server(e.to_string()))?;
        let url = format!("http://{addr}");
        let grpc = match args.grpc_port {
            None => None,
            Some(port) => Some(
                tokio::net::TcpListener::bind((args.host.as_str(), port))
                    .await
                    .map_err(|e| {
                        ServeError::Server(format!("cannot bind gRPC {}:{port}: {e}", args.host))
                    })?,
            ),
        };
        let grpc_url = match &grpc {
            None => None,
            Some(l) => Some(format!(
                "http://{}",
                l.local_addr()
                    .map_err(|e| ServeError::Server(e.to_string()))?
            )),
        };
        if let Some(path) = &args.ready_file {
            write_ready_file(
                path,
                &ReadyInfo {
                    url: url.clone(),
                    grpc_url: grpc_url.clone(),
                    pid: std::process::id(),
                    model_path: model_path.clone(),
                    name: name.clone(),
                },
            )?;
        }
        tracing::info!(%url, grpc_url = ?grpc_url, name = %name, model_path = %model_path.display(), "serving");
        let cfg = ServerConfig {
            name,
            batch,
            max_body_bytes: args.max_body_bytes,
            limits: Limits {
                header_timeout: args.header_timeout_secs,
                body_timeout: args.body_timeout_secs,
                idle_timeout: args.idle_timeout_secs,
                max_connections: args.max_connections,
                max_instances: args.max_instances,
                max_response_bytes: args.max_response_bytes,
                shutdown_timeout: args.shutdown_timeout_secs,
            },
        };
        trainyard_serve::serve_rest_and_grpc(listener, grpc, models, cfg, shutdown_signal())
            .await?;
        tracing::info!("stopped: in-flight requests finished");
        Ok::<(), ServeError>(())
    });
    if let Some(w) = watcher.as_mut() {
        w.stop();
    }
    // nothing of ours is left running; don't wait on stray blocking tasks past the deadline
    rt.shutdown_timeout(Duration::from_secs(1));
    served
}

/// A whole number of at least 1.
fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?}: must be a whole number of at least 1")),
    }
}

/// A positive number of seconds (fractions allowed: 0.5).
fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
        return Err(format!(
            "{s}: must be more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install the SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
