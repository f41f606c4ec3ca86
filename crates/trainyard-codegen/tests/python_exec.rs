//! Executes the generated modules for real in the managed Python env (DESIGN.md bug 12):
//! static checks, tf.Transform analysis, run_fn for every model type on 1 device and on a
//! 2-replica MirroredStrategy, training_metrics.json through trainyard's extractor, serving in a
//! process that never imported a generated module with raw features (original product ids, brute
//! force and ScaNN), the one-step SGD equivalence of 1 device vs 2 replicas, and recall@100 vs
//! the popularity baseline.
//!
//! Needs TRAINYARD_PYTHON (the managed env's python); ignored by plain `cargo test`.
//! Run: `make test-codegen` (or TRAINYARD_PYTHON=.venv-tf/bin/python cargo test -p
//! trainyard-codegen --test python_exec -- --ignored --test-threads=2).
//!
//! The harness commands run in three long-lived `harness.py worker` processes ([`Worker`]), so
//! TensorFlow/TFX/Beam are imported three times per run, not once per command; the tests may run
//! two at a time (each worker runs one command at a time).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};

use serde_json::Value;
use trainyard_codegen::{check_modules, generate, write_modules, CodegenError};
use trainyard_core::config::{EarlyStopping, GpuConfig, OptimizerName, TrainingParams};
use trainyard_core::feature_config::{
    BqType, FeatureConfig, FeatureSpec, FeatureTransform, TargetTransform,
};
use trainyard_core::metrics::extract_results;
use trainyard_core::model_config::{
    DenseLayer, ModelConfig, ModelType, OptimizerConfig, RankingLoss, RetrievalAlgorithm,
};
use trainyard_synth::{generate as synth, popularity_recall_at_k, SynthConfig};

const EPOCHS: u32 = 2;

fn python() -> PathBuf {
    match std::env::var_os("TRAINYARD_PYTHON") {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.exists(),
                "TRAINYARD_PYTHON={} does not exist: run `make pyenv`",
                p.display()
            );
            p
        }
        None => panic!(
            "TRAINYARD_PYTHON is not set. These tests execute the generated modules in the managed \
             Python env: run `make test-codegen` (it creates the env with `make pyenv`)."
        ),
    }
}

fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/harness.py")
}

/// Which long-lived harness process runs a command. TensorFlow's logical device config is set
/// once per process, so trainings are grouped by their number of logical CPU devices; models
/// are loaded in a process of their own that never imports a trainer module (as a fresh
/// serving process would).
#[derive(Clone, Copy, Debug)]
enum Worker {
    /// tf.Transform and the 1-device trainings
    OneDevice,
    /// the 2-replica trainings and the one-step SGD comparison (2 logical CPU devices)
    TwoDevices,
    /// `serve` only
    Serve,
}

impl Worker {
    fn slot(self) -> &'static Mutex<Option<WorkerProcess>> {
        static ONE: Mutex<Option<WorkerProcess>> = Mutex::new(None);
        static TWO: Mutex<Option<WorkerProcess>> = Mutex::new(None);
        static SERVE: Mutex<Option<WorkerProcess>> = Mutex::new(None);
        match self {
            Worker::OneDevice => &ONE,
            Worker::TwoDevices => &TWO,
            Worker::Serve => &SERVE,
        }
    }
}

/// A `harness.py worker` process: TensorFlow, TFX and Beam are imported once instead of once
/// per command. It ends when this test binary does (its stdin closes).
struct WorkerProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    dir: PathBuf,
    commands: usize,
}

impl WorkerProcess {
    fn start(kind: Worker) -> WorkerProcess {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("codegen-exec-workers")
            .join(format!("{kind:?}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new(python());
        cmd.arg(harness()).arg("worker");
        match kind {
            Worker::OneDevice => cmd.args(["--devices", "1"]),
            Worker::TwoDevices => cmd.args(["--devices", "2"]),
            Worker::Serve => cmd.args(["--devices", "1", "--only", "serve"]),
        };
        let mut child = cmd
            .env("TF_USE_LEGACY_KERAS", "1")
            .env("TF_CPP_MIN_LOG_LEVEL", "2")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("worker.log")).unwrap())
            .spawn()
            .expect("run the managed python");
        WorkerProcess {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
            dir,
            commands: 0,
        }
    }

    /// Runs one harness command: `Ok(its output)`, or `Err(why)` when it failed or the worker
    /// died (then the output's tail, or the worker's own log).
    fn call(&mut self, args: &[&str]) -> Result<String, String> {
        self.commands += 1;
        let log = self.dir.join(format!("{}-{}.log", self.commands, args[0]));
        let request = serde_json::json!({ "argv": args, "log": log });
        let sent = writeln!(self.stdin, "{request}").and_then(|()| self.stdin.flush());
        // the answer line (a stray line is skipped; end of file: the worker died)
        let mut ok = None;
        while sent.is_ok() && ok.is_none() {
            let mut line = String::new();
            match self.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    ok = serde_json::from_str::<Value>(&line)
                        .ok()
                        .and_then(|v| v["ok"].as_bool())
                }
            }
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        match ok {
            Some(true) => Ok(text),
            Some(false) => Err(format!("failed:\n{}", tail(&text, 60))),
            None => {
                let _ = self.child.kill(); // a worker that cannot answer is not waited on
                let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                let own = std::fs::read_to_string(self.dir.join("worker.log")).unwrap_or_default();
                Err(format!(
                    "the worker died ({status}):\n{}\nworker log:\n{}",
                    tail(&text, 60),
                    tail(&own, 30)
                ))
            }
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs a harness command in its long-lived worker (started on first use, restarted if it
/// died); panics with its output when it fails. Returns everything the command printed
/// (stdout and stderr).
fn run_harness(worker: Worker, args: &[&str]) -> String {
    let waited = std::time::Instant::now();
    let (result, started) = {
        let mut slot = worker.slot().lock().unwrap_or_else(PoisonError::into_inner);
        let started = std::time::Instant::now();
        let process = slot.get_or_insert_with(|| WorkerProcess::start(worker));
        let result = process.call(args);
        if result.is_err() && process.child.try_wait().ok().flatten().is_some() {
            *slot = None;
        }
        (result, started)
    };
    println!(
        "harness {} ({worker:?} worker): {:.1} s (after waiting {:.1} s for the worker)",
        args[0],
        started.elapsed().as_secs_f64(),
        (started - waited).as_secs_f64()
    );
    result.unwrap_or_else(|e| panic!("harness {args:?} {e}"))
}

fn params() -> TrainingParams {
    TrainingParams {
        epochs: EPOCHS,
        batch_size: 256,
        learning_rate: 0.01,
        optimizer: OptimizerName::Adam,
        early_stopping: EarlyStopping {
            enabled: true,
            patience: 3,
            monitor: "val_loss".into(),
            min_delta: 0.0,
        },
    }
}

fn model(model_type: ModelType, algo: RetrievalAlgorithm) -> ModelConfig {
    ModelConfig {
        name: format!("test-{}", model_type.as_str()),
        model_type,
        retrieval_algorithm: algo,
        optimizer: OptimizerConfig {
            name: OptimizerName::Adam,
            learning_rate: 0.01,
            clipnorm: Some(1.0),
        },
        rating_head: vec![DenseLayer::relu(32)],
        ..ModelConfig::default()
    }
}

struct Fixture {
    root: PathBuf,
    work: PathBuf,
    product_ids: HashSet<String>,
    popularity_recall_at_100: f64,
    /// a raw buyer request (first test interaction) and a product of it
    buyer_request: Value,
    /// the buyers of the first 64 test interactions
    buyer_requests: Vec<Value>,
    product_request: Value,
}

/// Synthetic data + one real tf.Transform analysis, shared by the tests of this binary.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // every worker starts now: the others import TensorFlow while the first runs tf.Transform
        for worker in [Worker::OneDevice, Worker::TwoDevices, Worker::Serve] {
            let mut slot = worker.slot().lock().unwrap_or_else(PoisonError::into_inner);
            slot.get_or_insert_with(|| WorkerProcess::start(worker));
        }
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("codegen-exec");
        let _ = std::fs::remove_dir_all(&root);
        let data = root.join("data");
        let cfg = SynthConfig::tiny();
        let ds = synth(&cfg).unwrap();
        ds.write_all(&data).unwrap();
        let split = ds.split(0.1, 0.1);
        let popularity = popularity_recall_at_k(split.train, split.test, 100);
        let buyer = |t: &trainyard_synth::Transaction| {
            let c = &ds.customers[t.customer];
            serde_json::json!({
                "customer_id": c.id, "city": c.city, "segment": c.segment,
                "revenue": c.revenue, "timestamp": t.timestamp,
            })
        };
        let buyer_requests: Vec<Value> = split.test.iter().take(64).map(buyer).collect();
        let t = &split.test[0];
        let p = &ds.products[t.product];
        let buyer_request = buyer_requests[0].clone();
        let mut product_request = buyer_request.clone();
        product_request["product_id"] = p.id.clone().into();
        product_request["category"] = p.category.clone().into();
        product_request["price"] = p.price.into();

        let modules = root.join("transform_modules");
        let gen = generate(
            &FeatureConfig::default(),
            &ModelConfig::default(),
            &params(),
            &GpuConfig::default(),
        )
        .unwrap();
        write_modules(&gen, &modules).unwrap();
        let work = root.join("work");
        let out = run_harness(
            Worker::OneDevice,
            &[
                "transform",
                "--modules",
                modules.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--work",
                work.to_str().unwrap(),
            ],
        );
        assert!(out.contains("TRANSFORM_OK"), "{out}");
        Fixture {
            root,
            work,
            product_ids: ds.products.iter().map(|p| p.id.clone()).collect(),
            popularity_recall_at_100: popularity,
            buyer_request,
            buyer_requests,
            product_request,
        }
    })
}

struct Trained {
    log: String,
    metrics: Value,
    serving_dir: PathBuf,
}

fn train(name: &str, m: &ModelConfig, devices: u32, gpu_count: u32, extra: &[&str]) -> Trained {
    let f = fixture();
    let modules = f.root.join(name).join("modules");
    let gen = generate(
        &FeatureConfig::default(),
        m,
        &params(),
        &GpuConfig::default(),
    )
    .unwrap();
    write_modules(&gen, &modules).unwrap();
    check_modules(&modules, &python()).unwrap();
    let out_dir = f.root.join(name).join("out");
    let (devices, gpu_count, epochs) = (
        devices.to_string(),
        gpu_count.to_string(),
        EPOCHS.to_string(),
    );
    let mut args = vec![
        "train",
        "--modules",
        modules.to_str().unwrap(),
        "--work",
        f.work.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--devices",
        &devices,
        "--gpu-count",
        &gpu_count,
        "--epochs",
        &epochs,
    ];
    args.extend_from_slice(extra);
    // TF's logical device config is per process: one worker per device count
    let worker = match devices.as_str() {
        "1" => Worker::OneDevice,
        "2" => Worker::TwoDevices,
        other => panic!("no harness worker with {other} logical CPU devices"),
    };
    let log = run_harness(worker, &args);
    assert!(log.contains("RUN_FN_OK"), "{log}");
    let metrics_path = out_dir.join("model_run/training_metrics.json");
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics_path).unwrap()).unwrap();
    assert_eq!(metrics["config_hash"], gen.config_hash.as_str());
    assert_eq!(metrics["model_type"], m.model_type.as_str());
    // weight and gradient statistics of every tower for every epoch, on 1 device and N replicas
    let epochs_done = metrics["loss"]["loss"].as_array().map_or(0, Vec::len);
    let stats = metrics["weight_stats"]["epochs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(stats.len(), epochs_done, "weight_stats per epoch");
    for e in &stats {
        for (tower, t) in e["towers"].as_object().unwrap() {
            assert!(
                t["gradients"].is_object(),
                "{tower} gradients: {}",
                t["gradients_error"]
            );
        }
    }
    Trained {
        log,
        metrics,
        serving_dir: out_dir.join("serving_model"),
    }
}

fn serve(serving_dir: &Path, instances: &[Value]) -> Value {
    let request = serde_json::json!({ "instances": instances }).to_string();
    let out = run_harness(
        Worker::Serve,
        &[
            "serve",
            "--serving-dir",
            serving_dir.to_str().unwrap(),
            "--request",
            &request,
        ],
    );
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("SERVE_RESULT "))
        .unwrap_or_else(|| panic!("no SERVE_RESULT in:\n{out}"));
    serde_json::from_str(line).unwrap()
}

fn per_epoch(metrics: &Value, key: &str) -> Vec<f64> {
    metrics["loss"][key]
        .as_array()
        .unwrap_or_else(|| panic!("loss.{key} missing in {metrics}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn assert_strategy(t: &Trained, replicas: u32) {
    if replicas > 1 {
        assert!(
            t.log
                .contains(&format!("Using MirroredStrategy with {replicas} replicas")),
            "no MirroredStrategy line in the trainer's log:\n{}",
            t.log
        );
        assert!(t.log.contains(&format!(
            "Model built with strategy: MirroredStrategy ({replicas} replicas)"
        )));
        assert!(t.log.contains("gpu_enabled=True, gpu_count=2"));
    } else {
        assert!(t.log.contains("Using default strategy"), "{}", t.log);
    }
    assert_eq!(t.metrics["run"]["num_replicas"], replicas);
    assert_eq!(t.metrics["run"]["epochs_completed"], EPOCHS);
}

/// Checks a retrieval response: k original product ids per query, scores descending.
fn assert_recommendations(resp: &Value, n_queries: usize, k: usize) {
    let f = fixture();
    assert_eq!(resp["__dtypes__"]["product_ids"], "string", "{resp}");
    let ids = resp["product_ids"].as_array().unwrap();
    let scores = resp["scores"].as_array().unwrap();
    assert_eq!(ids.len(), n_queries);
    for (row, srow) in ids.iter().zip(scores) {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), k);
        let distinct: HashSet<&str> = row.iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(distinct.len(), k, "duplicate products in {row:?}");
        for id in &distinct {
            assert!(
                f.product_ids.contains(*id),
                "{id:?} is not an original product id (a vocabulary index?)"
            );
            assert!(id.parse::<i64>().is_err(), "{id:?} looks like an index");
        }
        let s: Vec<f64> = srow
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(s.iter().all(|x| x.is_finite()));
        assert!(
            s.windows(2).all(|w| w[0] >= w[1] - 1e-4),
            "scores not sorted: {s:?}"
        );
    }
}

/// trainyard-serve: `TRAINYARD_SERVE_BIN`, else the workspace's debug build (`make test-codegen`
/// builds it).
fn trainyard_serve_bin() -> PathBuf {
    let bin = std::env::var_os("TRAINYARD_SERVE_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/trainyard-serve"),
        PathBuf::from,
    );
    assert!(
        bin.exists(),
        "{} missing: `cargo build -p trainyard-serve` or set TRAINYARD_SERVE_BIN (make test-codegen does)",
        bin.display()
    );
    bin
}

/// GET over HTTP/1.0 on 127.0.0.1: (status, body).
fn http_get(url: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// The trainer wrote TF Serving warm-up records (TFRecord of PredictionLog) into the export;
/// trainyard-serve replays every one of them before it reports the model AVAILABLE.
fn assert_trainyard_serve_replays_warmup(serving_dir: &Path) {
    let warmup = serving_dir.join("assets.extra/tf_serving_warmup_requests");
    assert!(warmup.is_file(), "{} missing", warmup.display());
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let log_path = dir.path().join("serve.log");
    let mut child = Command::new(trainyard_serve_bin())
        .env("TRAINYARD_PYTHON", python())
        .env("TRAINYARD_LOG", "info")
        .args([
            "--model",
            serving_dir.to_str().unwrap(),
            "--name",
            "recommender",
        ])
        .args(["--host", "127.0.0.1", "--port", "0", "--ready-file"])
        .arg(&ready)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let info: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            break serde_json::from_str(&text).unwrap();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "trainyard-serve exited ({status}) before ready:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "not ready in 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let url = info["url"].as_str().unwrap().to_string();
    let (status, body) = http_get(&format!("{url}/v1/models/recommender"));
    let (_, metrics) = http_get(&format!("{url}/monitoring/prometheus/metrics"));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("AVAILABLE"), "{body}");
    let replayed: Vec<f64> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("trainyard_serve_warmup_requests{")
                && l.contains("model_name=\"recommender\"")
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
        .collect();
    // one record per WARMUP_BATCH_SIZES entry of the trainer (1, 2 and 4 real ids)
    assert_eq!(
        replayed,
        vec![3.0],
        "warm-up metric in:\n{metrics}\nlog:\n{log}"
    );
    assert!(log.contains("warm-up requests replayed"), "{log}");
}

fn unknown_buyer() -> Value {
    serde_json::json!({
        "customer_id": "nobody", "city": "atlantis", "segment": "unknown",
        "revenue": 1.0, "timestamp": 0,
    })
}

#[test]
#[ignore = "needs the managed Python env (TRAINYARD_PYTHON); run via `make test-codegen`"]
fn static_checks_pass_for_every_variant_and_catch_undefined_names() {
    let py = python();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("codegen-static");
    let _ = std::fs::remove_dir_all(&root);
    // a feature config that uses every transform kind
    let mut features = FeatureConfig::default();
    features.product_features.push(FeatureSpec::new(
        "quantity_hint",
        BqType::Int64,
        FeatureTransform::Bucketize {
            num_buckets: 4,
            embedding_dim: None,
        },
    ));
    features.buyer_features.push(FeatureSpec::new(
        "first_order",
        BqType::Datetime,
        FeatureTransform::TimestampBucketize {
            num_buckets: 8,
            embedding_dim: 4,
        },
    ));
    features.buyer_features.push(FeatureSpec::new(
        "employees",
        BqType::Numeric,
        FeatureTransform::Normalize { log1p: false },
    ));
    let binary = {
        let mut f = features.clone();
        f.target.as_mut().unwrap().transforms = vec![
            TargetTransform::Log1p,
            TargetTransform::Binarize { threshold: 1.2 },
        ];
        f
    };
    let mut n = 0;
    for t in [
        ModelType::Retrieval,
        ModelType::Ranking,
        ModelType::Multitask,
    ] {
        for algo in [RetrievalAlgorithm::BruteForce, RetrievalAlgorithm::Scann] {
            for (fc, loss) in [
                (&features, RankingLoss::Mse),
                (&features, RankingLoss::Huber),
                (&binary, RankingLoss::BinaryCrossentropy),
            ] {
                let m = ModelConfig {
                    loss,
                    ..model(t, algo)
                };
                let gen = generate(fc, &m, &params(), &GpuConfig::default()).unwrap();
                let dir = root.join(format!("v{n}"));
                write_modules(&gen, &dir).unwrap();
                let report = check_modules(&dir, &py).unwrap();
                // transform, trainer and the trainers' support module
                assert_eq!(report.files.len(), 3);
                assert!(report.passed());
                n += 1;
            }
        }
    }
    // the checks fail on an undefined name (and on a syntax error)
    let bad = root.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("m.py"),
        "def f():\n    return undefined_thing + 1\n",
    )
    .unwrap();
    // next to a clean file: the failing file is named, the clean one is not
    std::fs::write(bad.join("ok.py"), "def g():\n    return 1\n").unwrap();
    match check_modules(&bad, &py) {
        Err(CodegenError::CheckFailed(msg)) => {
            assert!(msg.contains("undefined name"), "{msg}");
            assert!(msg.contains("m.py") && !msg.contains("ok.py"), "{msg}");
        }
        other => panic!("undefined name not caught: {other:?}"),
    }
    std::fs::write(bad.join("m.py"), "def f(:\n").unwrap();
    assert!(matches!(
        check_modules(&bad, &py),
        Err(CodegenError::CheckFailed(_))
    ));
    println!("static checks passed for {n} generated variants");
}

#[test]
#[ignore = "needs the managed Python env (TRAINYARD_PYTHON); run via `make test-codegen`"]
fn retrieval_brute_force_trains_serves_original_ids_and_beats_popularity() {
    let f = fixture();
    let m = model(ModelType::Retrieval, RetrievalAlgorithm::BruteForce);
    let t = train("retrieval_bf_1dev", &m, 1, 0, &[]);
    assert_strategy(&t, 1);
    for k in [5, 10, 50, 100] {
        let v = per_epoch(&t.metrics, &format!("recall_at_{k}"));
        assert_eq!(v.len(), EPOCHS as usize);
        assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
    }
    assert_eq!(per_epoch(&t.metrics, "loss").len(), EPOCHS as usize);
    assert_eq!(per_epoch(&t.metrics, "val_loss").len(), EPOCHS as usize);
    let r = extract_results(ModelType::Retrieval, &t.metrics).unwrap();
    let recall100 = r.recall_at_100.expect("recall_at_100 extracted");
    assert_eq!(
        Some(recall100),
        t.metrics["final_metrics"]["test_recall_at_100"].as_f64()
    );
    assert!(r.recall_at_5 <= r.recall_at_10 && r.recall_at_10 <= r.recall_at_50);
    assert!(r.final_loss.is_some_and(f64::is_finite));
    println!(
        "RECALL retrieval test recall@100 = {recall100:.4} vs popularity baseline recall@100 = {:.4}",
        f.popularity_recall_at_100
    );
    assert!(
        recall100 > f.popularity_recall_at_100,
        "model recall@100 {recall100:.4} does not beat popularity {:.4}",
        f.popularity_recall_at_100
    );

    let resp = serve(&t.serving_dir, &[f.buyer_request.clone(), unknown_buyer()]);
    assert_recommendations(&resp, 2, 100);
    // the export carries TF Serving warm-up requests, which trainyard-serve replays
    assert_trainyard_serve_replays_warmup(&t.serving_dir);

    // no tracking URI -> no MLflow: the client library is never imported, no run is recorded
    // (checked after run_fn in the 1-device worker: nothing there imports MLflow and modules
    // are never unloaded from sys.modules but the generated ones, so `False` holds for this
    // run_fn as it would in a fresh process)
    // (with a real MLflow server: tests/tests/local_run.rs and mlflow_tracking.rs, `make test-pipeline`)
    assert!(t.log.contains("MLFLOW_IMPORTED=False"), "{}", t.log);
    assert!(t.metrics.get("mlflow").is_none(), "{}", t.metrics);
}

#[test]
#[ignore = "needs the managed Python env (TRAINYARD_PYTHON); run via `make test-codegen`"]
fn retrieval_scann_trains_on_two_replicas_and_serves_original_ids() {
    let f = fixture();
    let m = model(ModelType::Retrieval, RetrievalAlgorithm::Scann);
    let t = train("retrieval_scann_2rep", &m, 2, 2, &[]);
    assert_strategy(&t, 2);
    assert!(t.log.contains("ScaNN index:"), "{}", t.log);
    let r = extract_results(ModelType::Retrieval, &t.metrics).unwrap();
    assert!(r.recall_at_100.is_some_and(|x| x > 0.0 && x <= 1.0));
    let resp = serve(&t.serving_dir, &[f.buyer_request.clone(), unknown_buyer()]);
    assert_recommendations(&resp, 2, 100);
    // every query gets k answers, also where ScaNN's searched leaves hold fewer candidates
    let resp = serve(&t.serving_dir, &f.buyer_requests);
    assert_recommendations(&resp, f.buyer_requests.len(), 100);
    // the exact completion of a short answer, which the export's probing makes rare
    let modules = f.root.join("retrieval_scann_2rep").join("modules");
    let out = run_harness(
        Worker::OneDevice,
        &["short-answers", "--modules", modules.to_str().unwrap()],
    );
    assert!(out.contains("SHORT_ANSWERS_OK"), "{out}");
}

fn check_ranking_metrics(t: &Trained, model_type: ModelType) {
    let rmse = per_epoch(&t.metrics, "val_rmse");
    let mae = per_epoch(&t.metrics, "val_mae");
    assert_eq!(rmse.len(), EPOCHS as usize);
    let r = extract_results(model_type, &t.metrics).unwrap();
    assert_eq!(r.rmse, rmse.last().copied());
    assert_eq!(r.mae, mae.last().copied());
    let test_rmse = r.test_rmse.expect("test_rmse");
    let test_mae = r.test_mae.expect("test_mae");
    // ratings live in [1, 5]: a trained model is far better than predicting 0 (rmse ~3.5)
    assert!(test_rmse > 0.0 && test_rmse < 1.5, "test_rmse {test_rmse}");
    assert!(
        test_mae > 0.0 && test_mae <= test_rmse + 1e-9,
        "mae {test_mae} rmse {test_rmse}"
    );
}

#[test]
#[ignore = "needs the managed Python env (TRAINYARD_PYTHON); run via `make test-codegen`"]
fn ranking_trains_on_one_and_two_replicas_and_serves_ratings() {
    let f = fixture();
    let m = model(ModelType::Ranking, RetrievalAlgorithm::BruteForce);
    for (name, devices, gpus) in [("ranking_1dev", 1, 0), ("ranking_2rep", 2, 2)] {
        let t = train(name, &m, devices, gpus, &[]);
        assert_strategy(&t, devices);
        check_ranking_metrics(&t, ModelType::Ranking);
        let resp = serve(&t.serving_dir, std::slice::from_ref(&f.product_request));
        let pred = resp["predicted_rating"].as_array().unwrap();
        assert_eq!(pred.len(), 1);
        let p = pred[0].as_f64().unwrap();
        assert!((0.0..=6.0).contains(&p), "predicted rating {p}");
    }
}

#[test]
#[ignore = "needs the managed Python env (TRAINYARD_PYTHON); run via `make test-codegen`"]
fn multitask_trains_on_one_and_two_replicas_and_serves_ids_and_ratings() {
    let f = fixture();
    for (name, devices, gpus, algo) in [
        ("multitask_bf_1dev", 1, 0, RetrievalAlgorithm::BruteForce),
        ("multitask_scann_2rep", 2, 2, RetrievalAlgorithm::Scann),
    ] {
        let m = model(ModelType::Multitask, algo);
        let t = train(name, &m, devices, gpus, &[]);
        assert_strategy(&t, devices);
        check_ranking_metrics(&t, ModelType::Multitask);
        let r = extract_results(ModelType::Multitask, &t.metrics).unwrap();
        assert!(r.recall_at_100.is_some_and(|x| x > 0.0));
        let resp = serve(&t.serving_dir, std::slice::from_ref(&f.buyer_request));
        assert_recommendations(&resp, 1, 100);
        let many = serve(&t.serving_dir, &f.buyer_requests);
        assert_recommendations(&many, f.buyer_requests.len(), 100);
        let ratings = resp["predicted_ratings"][0].as_array().unwrap();
        assert_eq!(ratings.len(), 100);
        assert!(ratings
            .iter()
            .all(|v| v.as_f64().is_some_and(|x| (0.0..=6.0).contains(&x))));
    }
}

#[test]
#[ignore = "needs the managed Python env (TRAINYARD_PYTHON); run via `make test-codegen`"]
fn one_sgd_step_is_the_same_on_one_device_and_two_replicas() {
    // DESIGN.md bug 2: with batch norm, L2 regularization and clipnorm in every model type
    let f = fixture();
    let mut dirs = Vec::new();
    for t in [
        ModelType::Retrieval,
        ModelType::Ranking,
        ModelType::Multitask,
    ] {
        let mut m = model(t, RetrievalAlgorithm::BruteForce);
        m.optimizer.name = OptimizerName::Sgd;
        m.optimizer.clipnorm = Some(1.0);
        for tower in [&mut m.buyer_tower, &mut m.product_tower] {
            tower.l2_regularization = 1e-3;
            tower.layers = vec![DenseLayer {
                batch_norm: true,
                ..DenseLayer::relu(32)
            }];
        }
        m.rating_head = vec![DenseLayer {
            batch_norm: true,
            ..DenseLayer::relu(16)
        }];
        let gen = generate(
            &FeatureConfig::default(),
            &m,
            &params(),
            &GpuConfig::default(),
        )
        .unwrap();
        let dir = f.root.join(format!("onestep_{}", t.as_str()));
        write_modules(&gen, &dir).unwrap();
        dirs.push(dir);
    }
    let mut args = vec!["onestep", "--work", f.work.to_str().unwrap(), "--modules"];
    args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
    let out = run_harness(Worker::TwoDevices, &args);
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("ONESTEP_RESULT "))
        .unwrap_or_else(|| panic!("{out}"));
    let res: Value = serde_json::from_str(line).unwrap();
    for t in ["retrieval", "ranking", "multitask"] {
        let diff = res[t]["max_weight_diff"].as_f64().unwrap();
        let moved = res[t]["max_step_size"].as_f64().unwrap();
        println!(
            "ONESTEP {t}: max|w(1 device) - w(2 replicas)| = {diff:.3e}, step size {moved:.3e}"
        );
        assert!(
            moved > 1e-3,
            "{t}: the step did not move the weights ({moved})"
        );
        assert!(
            diff < 1e-6,
            "{t}: 2 replicas differ from 1 device by {diff}"
        );
    }
}

#[test]
#[ignore = "needs the managed Python env (TRAINYARD_PYTHON); run via `make test-codegen`"]
fn doctor_reports_every_component() {
    let report = trainyard_codegen::doctor(&python()).unwrap();
    println!("{}", report.render());
    assert!(report.ok(), "{}", report.render());
    let names: Vec<&str> = report.components.iter().map(|c| c.name.as_str()).collect();
    for want in [
        "python",
        "tensorflow",
        "tf-keras",
        "tensorflow-recommenders",
        "tfx",
        "scann",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    let missing = trainyard_codegen::doctor(Path::new("/usr/bin/false"));
    assert!(missing.map(|r| !r.ok()).unwrap_or(true));
}

/// The default feature config with its columns renamed to Python keywords (`class`, `def`),
/// modules the generated code imports (`tf`, `np`) and names that are not identifiers
/// (`unit price`, `product-type.v2`), with the synthetic CSV column each is read from.
fn awkward_features() -> (FeatureConfig, Value) {
    let renames = [
        ("customer_id", "class"),
        ("city", "tf"),
        ("segment", "np"),
        ("revenue", "unit price"),
        ("timestamp", "def"),
        ("category", "product-type.v2"),
    ];
    let mut f = FeatureConfig::default();
    let mut map = serde_json::Map::new();
    for (from, to) in renames {
        for spec in f
            .buyer_features
            .iter_mut()
            .chain(f.product_features.iter_mut())
        {
            if spec.column == from {
                spec.column = to.into();
            }
        }
        for c in f
            .buyer_crosses
            .iter_mut()
            .flat_map(|x| x.columns.iter_mut())
        {
            if c == from {
                *c = to.into();
            }
        }
        map.insert(to.into(), from.into());
    }
    (f, Value::Object(map))
}

#[test]
#[ignore = "needs the managed Python env (TRAINYARD_PYTHON); run via `make test-codegen`"]
fn columns_named_like_keywords_modules_or_with_punctuation_train_and_serve() {
    let f = fixture();
    let (features, rename) = awkward_features();
    let root = f.root.join("awkward");
    // the first rows of each split suffice here (the test is about names, not about learning)
    let data = root.join("data");
    for (split, rows) in [("train", 1000), ("eval", 200), ("test", 200)] {
        let csv = std::fs::read_to_string(f.root.join("data").join(split).join("interactions.csv"))
            .unwrap();
        let head: Vec<&str> = csv.lines().take(1 + rows).collect();
        assert_eq!(head.len(), 1 + rows, "{split} has fewer than {rows} rows");
        std::fs::create_dir_all(data.join(split)).unwrap();
        std::fs::write(
            data.join(split).join("interactions.csv"),
            head.join("\n") + "\n",
        )
        .unwrap();
    }
    let work = root.join("work");
    // ranking: the columns of both towers are serving inputs
    let t = ModelType::Ranking;
    {
        let m = ModelConfig {
            rating_head: vec![DenseLayer::relu(8)],
            ..model(t, RetrievalAlgorithm::BruteForce)
        };
        let gen = generate(&features, &m, &params(), &GpuConfig::default()).unwrap();
        let modules = root.join(t.as_str()).join("modules");
        write_modules(&gen, &modules).unwrap();
        // py_compile + pyflakes: no SyntaxError for `class`, no shadowed `tf`
        check_modules(&modules, &python()).unwrap();
        {
            let out = run_harness(
                Worker::OneDevice,
                &[
                    "transform",
                    "--modules",
                    modules.to_str().unwrap(),
                    "--data",
                    data.to_str().unwrap(),
                    "--work",
                    work.to_str().unwrap(),
                    "--rename",
                    &rename.to_string(),
                ],
            );
            assert!(out.contains("TRANSFORM_OK"), "{out}");
        }
        let out_dir = root.join(t.as_str()).join("out");
        let log = run_harness(
            Worker::OneDevice,
            &[
                "train",
                "--modules",
                modules.to_str().unwrap(),
                "--work",
                work.to_str().unwrap(),
                "--out",
                out_dir.to_str().unwrap(),
                "--epochs",
                "1",
            ],
        );
        assert!(log.contains("RUN_FN_OK"), "{log}");
        // a request keyed by the serving keys (the column itself when it is an identifier)
        let mut req = serde_json::Map::new();
        for (k, v) in f.product_request.as_object().unwrap() {
            let column = rename
                .as_object()
                .unwrap()
                .iter()
                .find(|(_, from)| from.as_str() == Some(k.as_str()))
                .map_or(k.clone(), |(to, _)| to.clone());
            req.insert(
                trainyard_core::feature_config::column_key(&column),
                v.clone(),
            );
        }
        assert!(req.contains_key("class") && req.contains_key("unit_price"));
        let resp = serve(&out_dir.join("serving_model"), &[Value::Object(req)]);
        let rating = resp["predicted_rating"][0].as_f64().unwrap();
        assert!(rating.is_finite(), "{resp}");
    }
}
