//! trainyard-serve's gRPC API called by TF Serving's official Python client
//! (tensorflow-serving-api in the managed env, tests/grpc_client.py) against a real exported
//! model, compared with the REST answers for the same instances; the second signature chosen
//! by `signature_name` (REST with `b64` values, and gRPC); the Prometheus metrics counting both.
//!   TRAINYARD_SERVE_TEST_MODELS  the export dir of scripts/serve-export-models.py
//!   TRAINYARD_PYTHON             the managed env's Python (TensorFlow + tensorflow-serving-api)
//! `make test-serve` sets both.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn models_dir() -> PathBuf {
    PathBuf::from(std::env::var("TRAINYARD_SERVE_TEST_MODELS").expect(
        "set TRAINYARD_SERVE_TEST_MODELS to the dir written by scripts/serve-export-models.py \
         (make test-serve does)",
    ))
}

fn python() -> PathBuf {
    PathBuf::from(std::env::var("TRAINYARD_PYTHON").expect("set TRAINYARD_PYTHON"))
}

fn expected() -> Value {
    let text = std::fs::read_to_string(models_dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A running server, killed if the test panics before it stops it.
struct Server {
    child: Option<Child>,
    ready: Value,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(model: &str, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let ready_file = dir.path().join("ready.json");
        let mut child = Command::new(env!("CARGO_BIN_EXE_trainyard-serve"))
            .env("TRAINYARD_LOG", "info")
            .args(["--model", models_dir().join(model).to_str().unwrap()])
            .args(["--name", "recommender", "--port", "0", "--ready-file"])
            .arg(&ready_file)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let ready = loop {
            if let Ok(text) = std::fs::read_to_string(&ready_file) {
                break serde_json::from_str::<Value>(&text).expect("ready file is whole JSON");
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("trainyard-serve exited before it was ready: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "not ready in 120 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Server {
            child: Some(child),
            ready,
            _dir: dir,
        }
    }

    fn url(&self) -> &str {
        self.ready["url"].as_str().unwrap()
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no exit 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn post(c: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let r = c.post(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, v)
}

fn floats(v: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<f64>) {
        match v {
            Value::Array(items) => items.iter().for_each(|x| walk(x, out)),
            other => out.push(other.as_f64().expect("a number")),
        }
    }
    walk(v, &mut out);
    out
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1.0),
            "{what}[{i}]: {a} != {b}"
        );
    }
}

/// `sample name` -> value for every line of the text format, keyed by name and sorted labels.
fn parse_metrics(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
            let labels = labels.strip_suffix('}').expect("closing brace");
            let map = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once("=\"").expect("label=\"value\"");
                    (k.to_string(), v.trim_end_matches('"').to_string())
                })
                .collect();
            let v = if value == "+Inf" {
                f64::INFINITY
            } else {
                value.parse().expect("a number")
            };
            (name.to_string(), map, v)
        })
        .collect()
}

fn metric(
    samples: &[(String, BTreeMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the managed TF env and exported models (make test-serve)"]
async fn official_grpc_client_gets_the_rest_answers_and_metrics_count_both() {
    use base64::Engine as _;
    let exp = expected();
    let server = Server::start("bf", &["--grpc-port", "0"]);
    let grpc_url = server.ready["grpc_url"]
        .as_str()
        .expect("the ready file names the gRPC url")
        .to_string();
    assert!(grpc_url.starts_with("http://127.0.0.1:"), "{grpc_url}");
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let predict_url = format!("{}/v1/models/recommender:predict", server.url());
    let instances = exp["instances"].as_array().unwrap();

    // REST: the default signature, and the second one by name with b64 ids
    let (status, rest) = post(&c, &predict_url, json!({ "instances": instances })).await;
    assert_eq!(status, 200, "{rest}");
    let rest_rows = rest["predictions"].as_array().unwrap();
    let emb = &exp["embedding"];
    let ids: Vec<String> = serde_json::from_value(emb["customer_ids"].clone()).unwrap();
    let b64: Vec<Value> = ids
        .iter()
        .map(|id| json!({"b64": base64::engine::general_purpose::STANDARD.encode(id)}))
        .collect();
    let (status, rest_emb) = post(
        &c,
        &predict_url,
        json!({"signature_name": "customer_embedding", "instances": b64}),
    )
    .await;
    assert_eq!(status, 200, "{rest_emb}");
    let rest_emb: Vec<f64> = rest_emb["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| floats(&row["query_embedding"]))
        .collect();
    assert_close(
        &rest_emb,
        &floats(&emb["query_embedding"]),
        "REST embedding",
    );
    // the default signature's features are refused by the other one, naming the field
    let (status, err) = post(
        &c,
        &predict_url,
        json!({"signature_name": "customer_embedding", "instances": [instances[0]]}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("unknown feature"),
        "{err}"
    );
    let (status, err) = post(
        &c,
        &predict_url,
        json!({"signature_name": "nope", "instances": [instances[0]]}),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("customer_embedding"),
        "the refusal lists the served signatures: {err}"
    );
    let rest_meta: Value = c
        .get(format!("{}/v1/models/recommender/metadata", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rest_defs = &rest_meta["metadata"]["signature_def"]["signature_def"];

    // gRPC through the official client
    let dir = tempfile::tempdir().unwrap();
    let req = dir.path().join("request.json");
    std::fs::write(
        &req,
        json!({"instances": instances, "embedding_ids": ids}).to_string(),
    )
    .unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/grpc_client.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(grpc_url.trim_start_matches("http://"))
        .arg("recommender")
        .arg(&req)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "grpc_client.py failed: {}",
        out.status
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "client output not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });

    // GetModelStatus
    assert_eq!(
        got["status"],
        json!([{"version": 1, "state": 30, "state_name": "AVAILABLE", "error_code": 0}])
    );
    // GetModelMetadata: every signature, the same tensors REST describes
    let meta = &got["metadata"];
    assert_eq!(
        meta["model_spec"],
        json!({"name": "recommender", "version": 1})
    );
    let defs = meta["signature_def"].as_object().unwrap();
    let mut keys: Vec<&String> = defs.keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["customer_embedding", "query_embedding", "serving_default"]
    );
    let sd = &defs["serving_default"];
    assert_eq!(sd["method_name"], "tensorflow/serving/predict");
    assert_eq!(sd["inputs"]["revenue"]["dtype"], "float32");
    assert_eq!(sd["inputs"]["visits"]["dtype"], "int64");
    assert_eq!(sd["inputs"]["visits"]["shape"], json!([-1, 1]));
    assert_eq!(sd["outputs"]["product_ids"]["dtype"], "string");
    assert_eq!(sd["outputs"]["product_ids"]["shape"], json!([-1, 10]));
    for (sig, def) in defs {
        for side in ["inputs", "outputs"] {
            for (name, info) in def[side].as_object().unwrap() {
                assert_eq!(
                    info["name"], rest_defs[sig][side][name]["name"],
                    "{sig}.{side}.{name}: gRPC and REST metadata name the same tensor"
                );
            }
        }
    }
    // Predict: the same answers as REST for the same instances
    let p = &got["predict"];
    assert_eq!(
        p["model_spec"],
        json!({"name": "recommender", "version": 1, "signature_name": "serving_default"})
    );
    let ids_out = &p["outputs"]["product_ids"];
    assert_eq!(ids_out["dtype"], "string");
    assert_eq!(ids_out["shape"], json!([instances.len(), 10]));
    let rest_ids: Vec<Value> = rest_rows
        .iter()
        .flat_map(|r| r["product_ids"].as_array().unwrap().clone())
        .collect();
    assert_eq!(ids_out["values"].as_array().unwrap(), &rest_ids);
    let rest_scores: Vec<f64> = rest_rows
        .iter()
        .flat_map(|r| floats(&r["scores"]))
        .collect();
    assert_eq!(p["outputs"]["scores"]["dtype"], "float32");
    assert_close(
        &floats(&p["outputs"]["scores"]["values"]),
        &rest_scores,
        "gRPC scores",
    );
    // the scores match Python's own run of the SavedModel too
    let want = exp["models"]["bf"].as_array().unwrap();
    let py_scores: Vec<f64> = want.iter().flat_map(|r| floats(&r["scores"])).collect();
    assert_close(
        &floats(&p["outputs"]["scores"]["values"]),
        &py_scores,
        "vs Python",
    );
    // output_filter
    let filtered = got["predict_filtered"].as_object().unwrap();
    assert_eq!(filtered.keys().collect::<Vec<_>>(), ["scores"]);
    assert_close(
        &floats(&filtered["scores"]["values"]),
        &rest_scores,
        "filtered",
    );
    // the second signature over gRPC
    assert_eq!(got["embedding"]["query_embedding"]["shape"], json!([3, 16]));
    assert_close(
        &floats(&got["embedding"]["query_embedding"]["values"]),
        &floats(&emb["query_embedding"]),
        "gRPC embedding",
    );
    // refusals carry TF Serving's codes and name what is wrong
    let e = &got["errors"];
    let check = |key: &str, code: &str, text: &str| {
        assert_eq!(e[key]["code"], code, "{key}: {}", e[key]);
        let details = e[key]["details"].as_str().unwrap();
        assert!(details.contains(text), "{key}: {details:?} lacks {text:?}");
    };
    check(
        "bad_dtype",
        "INVALID_ARGUMENT",
        "inputs.revenue: expected DT_FLOAT",
    );
    check("missing_input", "INVALID_ARGUMENT", "missing input");
    check(
        "unknown_signature",
        "INVALID_ARGUMENT",
        "no signature \"nope\"",
    );
    check("wrong_version", "NOT_FOUND", "Specific(recommender, 999)");
    check("wrong_model", "NOT_FOUND", "Latest(nobody)");
    check("classify", "UNIMPLEMENTED", "");

    // Prometheus metrics count both protocols per signature
    let r = c
        .get(format!("{}/monitoring/prometheus/metrics", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    let m = parse_metrics(&text);
    let count = |labels: &[(&str, &str)]| metric(&m, "trainyard_serve_request_count", labels);
    let ok = ("status", "OK");
    let sd = ("signature_name", "serving_default");
    let ce = ("signature_name", "customer_embedding");
    assert_eq!(count(&[("protocol", "rest"), sd, ok]), 1.0, "{text}");
    assert_eq!(count(&[("protocol", "rest"), ce, ok]), 1.0, "{text}");
    assert_eq!(count(&[("protocol", "grpc"), sd, ok]), 2.0, "{text}");
    assert_eq!(count(&[("protocol", "grpc"), ce, ok]), 1.0, "{text}");
    assert_eq!(
        count(&[("protocol", "grpc"), ("status", "INVALID_ARGUMENT")]),
        3.0,
        "{text}"
    );
    assert_eq!(
        count(&[("protocol", "rest"), ("status", "INVALID_ARGUMENT")]),
        2.0,
        "{text}"
    );
    // every answered request is in the latency histogram, every session run in batch sizes
    let answered = count(&[]);
    assert_eq!(
        metric(&m, "trainyard_serve_request_latency_seconds_count", &[]),
        answered
    );
    assert_eq!(
        metric(
            &m,
            "trainyard_serve_request_latency_seconds_bucket",
            &[("le", "+Inf")]
        ),
        answered
    );
    let runs = metric(&m, "trainyard_serve_batch_size_count", &[sd]);
    assert!(runs >= 3.0, "{text}");
    // rows of the serving_default runs: REST 12 + gRPC 12 + 12 (filtered) + the bad dtype
    // request is refused before it runs
    assert_eq!(
        metric(&m, "trainyard_serve_batch_size_sum", &[sd]),
        3.0 * instances.len() as f64,
        "{text}"
    );
    assert_eq!(
        metric(
            &m,
            "trainyard_serve_model_state",
            &[("version", "1"), ("state", "AVAILABLE")]
        ),
        1.0
    );

    let status = server.terminate();
    assert!(status.success(), "exit after SIGTERM: {status}");
}

/// A model whose `product_ids` are INT64 is served when the catalog's ids are INT64 (and
/// answers what Python computes), over REST and gRPC; the same model is refused for a string
/// catalog (the default), as a_model_returning_int64_indices_is_refused shows in serve_models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the managed TF env and exported models (make test-serve)"]
async fn an_int64_id_model_is_served_for_an_int64_catalog() {
    let exp = expected();
    let server = Server::start("bad", &["--product-id-type", "int64"]);
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let instances = exp["instances"].as_array().unwrap();
    let (status, got) = post(
        &c,
        &format!("{}/v1/models/recommender:predict", server.url()),
        json!({ "instances": instances }),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    let want = exp["models"]["bad"].as_array().unwrap();
    for (i, (g, w)) in got["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(want)
        .enumerate()
    {
        assert!(g["product_ids"][0].is_i64(), "row {i}: {g}");
        assert_eq!(g["product_ids"], w["product_ids"], "row {i}");
        assert_close(&floats(&g["scores"]), &floats(&w["scores"]), "int64 scores");
    }
    let status = server.terminate();
    assert!(status.success(), "exit after SIGTERM: {status}");
}
