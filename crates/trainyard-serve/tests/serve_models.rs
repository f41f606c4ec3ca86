//! trainyard-serve against real SavedModels exported by scripts/serve-export-models.py in the
//! managed env (`make test-serve` sets it up):
//!   TRAINYARD_SERVE_TEST_MODELS  the export dir (bf/, scann/, bad/, expected.json)
//!   TRAINYARD_PYTHON             the managed env's Python (how the server finds TensorFlow)
//! The expected answers are what the same SavedModels return in Python for the same inputs.

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

fn expected() -> Value {
    let text = std::fs::read_to_string(models_dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainyard-serve"));
    // each test spawns its own server; TF's thread pools stay small on this 2-core machine
    c.env("TRAINYARD_LOG", "info");
    c
}

/// A running server, killed if the test panics before it stops it.
struct Server {
    child: Option<Child>,
    url: String,
    ready: Value,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(model: &str, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let ready_file = dir.path().join("ready.json");
        let mut child = bin()
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
            url: ready["url"].as_str().unwrap().to_string(),
            child: Some(child),
            ready,
            _dir: dir,
        }
    }

    fn predict_url(&self) -> String {
        format!("{}/v1/models/recommender:predict", self.url)
    }

    /// SIGTERM, and the exit status.
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

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn post(c: &reqwest::Client, url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = c
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, v)
}

/// A row of a multi-row call equals what Python gives for that row in the same call; ScaNN's
/// batched search may answer a row in a batch as it does alone, so either of those is the
/// model's answer there (brute force: both are the same).
fn assert_row_eq(got: &Value, batch: &Value, alone: &Value, what: &str) {
    if got["product_ids"] == alone["product_ids"] && got["product_ids"] != batch["product_ids"] {
        assert_prediction_eq(got, alone, what)
    } else {
        assert_prediction_eq(got, batch, what)
    }
}

/// Same ids in the same order; scores equal to f32 rounding of a different batch shape.
/// ScaNN is approximate, and the same SavedModel run by the C API and by Python can differ in
/// which partition candidates make the top k (seen on some exports, up to 3 of 10 ids, stable
/// per export): there every shared id must carry the same score (same embeddings, same exact
/// reordering) and at least half of Python's ids must be returned.
fn assert_prediction_eq(got: &Value, want: &Value, what: &str) {
    if what.starts_with("scann") {
        return assert_scann_agrees(got, want, what);
    }
    assert_eq!(
        got["product_ids"], want["product_ids"],
        "{what}: product_ids"
    );
    let g: Vec<f64> = serde_json::from_value(got["scores"].clone()).unwrap();
    let w: Vec<f64> = serde_json::from_value(want["scores"].clone()).unwrap();
    assert_eq!(g.len(), w.len(), "{what}: scores length");
    for (a, b) in g.iter().zip(&w) {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{what}: score {a} != {b}"
        );
    }
}

fn assert_scann_agrees(got: &Value, want: &Value, what: &str) {
    let ids =
        |v: &Value| -> Vec<String> { serde_json::from_value(v["product_ids"].clone()).unwrap() };
    let scores = |v: &Value| -> Vec<f64> { serde_json::from_value(v["scores"].clone()).unwrap() };
    let (gi, wi, gs, ws) = (ids(got), ids(want), scores(got), scores(want));
    assert_eq!(gi.len(), wi.len(), "{what}: product_ids length");
    let allowed = wi.len() / 2;
    let missing = wi.iter().filter(|id| !gi.contains(id)).count();
    assert!(
        missing <= allowed,
        "{what}: {missing} of {} ids differ from Python's ({gi:?} vs {wi:?})",
        wi.len()
    );
    for (i, id) in gi.iter().enumerate() {
        if let Some(j) = wi.iter().position(|w| w == id) {
            let (a, b) = (gs[i], ws[j]);
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{what}: score of {id} {a} != {b}"
            );
        }
    }
}

fn assert_well_formed(pred: &Value, catalog: &[Value], k: usize) {
    let ids = pred["product_ids"].as_array().unwrap();
    let scores: Vec<f64> = serde_json::from_value(pred["scores"].clone()).unwrap();
    assert_eq!(ids.len(), k);
    assert_eq!(scores.len(), k);
    for id in ids {
        assert!(
            id.is_string() && catalog.contains(id),
            "{id} is not a catalog product id"
        );
    }
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "scores not descending: {scores:?}"
    );
}

/// Serves `model`, checks the ready file, every instance alone and all together against Python,
/// the columnar form, status and metadata, then SIGTERM -> exit 0.
async fn serves_like_python(model: &str) {
    let exp = expected();
    let server = Server::start(model, &[]);
    // the ready file names the resolved versioned dir: bf/1, not the newer bf/7 without a model
    let want_path = models_dir().join(model).join("1").canonicalize().unwrap();
    assert_eq!(
        server.ready["model_path"].as_str().map(PathBuf::from),
        Some(want_path)
    );
    assert_eq!(server.ready["name"], "recommender");
    assert_eq!(
        server.ready["pid"].as_u64(),
        server.child.as_ref().map(|c| c.id() as u64)
    );
    assert!(server.url.starts_with("http://127.0.0.1:"));

    let c = client();
    let instances = exp["instances"].as_array().unwrap();
    let want = exp["models"][model].as_array().unwrap();
    let alone = exp["single"][model].as_array().unwrap();
    let catalog = exp["catalog"].as_array().unwrap();
    let k = exp["k"].as_u64().unwrap() as usize;

    let (status, all) = post(
        &c,
        &server.predict_url(),
        json!({ "instances": instances }).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{all}");
    let preds = all["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), instances.len());
    for (i, (p, w)) in preds.iter().zip(want).enumerate() {
        assert_row_eq(p, w, &alone[i], &format!("{model} batch row {i}"));
        assert_well_formed(p, catalog, k);
    }
    for (i, inst) in instances.iter().enumerate() {
        let (status, one) = post(
            &c,
            &server.predict_url(),
            json!({ "instances": [inst] }).to_string(),
        )
        .await;
        assert_eq!(status, 200, "{one}");
        assert_prediction_eq(
            &one["predictions"][0],
            &alone[i],
            &format!("{model} instance {i}"),
        );
    }
    // TF Serving's columnar form gives the same answers, column-wise
    let mut cols = serde_json::Map::new();
    for name in ["customer_id", "city", "revenue", "visits"] {
        cols.insert(
            name.into(),
            instances.iter().map(|i| i[name].clone()).collect(),
        );
    }
    let (status, columnar) = post(
        &c,
        &server.predict_url(),
        json!({ "inputs": cols }).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{columnar}");
    for (i, w) in want.iter().enumerate() {
        let row = json!({
            "product_ids": columnar["outputs"]["product_ids"][i],
            "scores": columnar["outputs"]["scores"][i],
        });
        assert_row_eq(&row, w, &alone[i], &format!("{model} columnar row {i}"));
    }

    let status: Value = c
        .get(format!("{}/v1/models/recommender", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status,
        json!({"model_version_status": [{"version": "1", "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]})
    );
    let meta: Value = c
        .get(format!("{}/v1/models/recommender/metadata", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sig = &meta["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(sig["outputs"]["product_ids"]["dtype"], "DT_STRING");
    assert_eq!(sig["inputs"]["visits"]["dtype"], "DT_INT64");
    assert_eq!(
        sig["inputs"]["visits"]["tensor_shape"]["dim"][1]["size"],
        "1"
    );

    let exit = server.terminate();
    assert!(exit.success(), "SIGTERM exit: {exit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the managed TF env and exported models (make test-serve)"]
async fn brute_force_model_serves_what_python_computes() {
    serves_like_python("bf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the managed TF env and exported models (make test-serve)"]
async fn scann_model_loads_its_op_library_and_serves_what_python_computes() {
    serves_like_python("scann").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the managed TF env and exported models (make test-serve)"]
async fn malformed_requests_get_4xx_naming_the_field_and_serving_goes_on() {
    let exp = expected();
    let server = Server::start("bf", &["--max-body-bytes", "65536"]);
    let c = client();
    let url = server.predict_url();
    let valid = json!({ "instances": [exp["instances"][1]] }).to_string();
    let want = &exp["single"]["bf"][1];
    let good = r#""customer_id":"C0001","city":"Warsaw","revenue":1.5,"visits":[2]"#;
    let cases: Vec<(String, u16, &str)> = vec![
        (r#"{"instances":[]}"#.into(), 400, "instances"),
        (r#"{"instances":"C0001"}"#.into(), 400, "instances"),
        (r#"{"instances":[{"customer_id":"#.into(), 400, "invalid JSON"),
        (
            r#"{"instances":[{"customer_id":"C0001","city":"Warsaw","revenue":1.5}]}"#.into(),
            400,
            "instances[0].visits",
        ),
        (
            format!(r#"{{"instances":[{{{good},"segment":"smb"}}]}}"#),
            400,
            "instances[0].segment",
        ),
        (
            r#"{"instances":[{"customer_id":17,"city":"Warsaw","revenue":1.5,"visits":[2]}]}"#
                .into(),
            400,
            "instances[0].customer_id",
        ),
        (
            r#"{"instances":[{"customer_id":"C0001","city":"Warsaw","revenue":"high","visits":[2]}]}"#
                .into(),
            400,
            "instances[0].revenue",
        ),
        (
            r#"{"instances":[{"customer_id":"C0001","city":"Warsaw","revenue":1.5,"visits":[2.5]}]}"#
                .into(),
            400,
            "instances[0].visits",
        ),
        (
            format!(r#"{{"instances":[{{{good}}},{{"customer_id":"C0002","city":["Warsaw","Krakow"],"revenue":1,"visits":1}}]}}"#),
            400,
            "instances[1].city",
        ),
        (r#"{"inputs":{"customer_id":["C1"]}}"#.into(), 400, "inputs.city"),
        (r#"[1,2,3]"#.into(), 400, "body"),
    ];
    for (body, status, field) in cases {
        let (got, err) = post(&c, &url, body.clone()).await;
        assert_eq!(got, status, "{body} -> {err}");
        let msg = err["error"].as_str().unwrap_or_default();
        assert!(msg.contains(field), "{body} -> {msg:?} should name {field}");
        // the server keeps serving: the next valid request gets the right answer
        let (ok, v) = post(&c, &url, valid.clone()).await;
        assert_eq!(ok, 200, "after {body}: {v}");
        assert_prediction_eq(&v["predictions"][0], want, "after a bad request");
    }

    // a 10 MB body is refused quickly, without reading it all
    let big = format!(
        r#"{{"instances":[{{"customer_id":"{}"}}]}}"#,
        "x".repeat(10 << 20)
    );
    let started = Instant::now();
    let r = c.post(&url).body(big).send().await;
    match r {
        Ok(r) => {
            assert_eq!(r.status().as_u16(), 413);
            let v: Value = r.json().await.unwrap();
            assert!(v["error"].as_str().unwrap().contains("body"), "{v}");
        }
        // the server may close the connection before the client has sent everything
        Err(e) => assert!(!e.is_timeout(), "{e}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "10 MB body took {:?}",
        started.elapsed()
    );
    let (ok, v) = post(&c, &url, valid.clone()).await;
    assert_eq!(ok, 200, "after the 10 MB body: {v}");

    // routing: unknown model 404, unknown verb 404, GET :predict 405
    let (s, v) = post(
        &c,
        &format!("{}/v1/models/other:predict", server.url),
        valid.clone(),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("other"));
    let (s, _) = post(
        &c,
        &format!("{}/v1/models/recommender:classify", server.url),
        valid.clone(),
    )
    .await;
    assert_eq!(s, 404);
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let r = c
        .get(format!("{}/v1/models/recommender/versions/99", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the managed TF env and exported models (make test-serve)"]
async fn concurrent_requests_are_batched_and_answer_as_sequential_ones() {
    let exp = expected();
    // a long timeout so that concurrent requests surely meet in one run
    let server = Server::start("bf", &["--batch-timeout-micros", "20000"]);
    let c = client();
    let url = server.predict_url();
    let instances = exp["instances"].as_array().unwrap().clone();
    // sequential answers: every request of 1-3 instances alone
    let bodies: Vec<String> = (0..48)
        .map(|i| {
            let n = 1 + i % 3;
            let rows: Vec<Value> = (0..n)
                .map(|j| instances[(i * 5 + j) % instances.len()].clone())
                .collect();
            json!({ "instances": rows }).to_string()
        })
        .collect();
    let mut sequential = Vec::new();
    for b in &bodies {
        let (s, v) = post(&c, &url, b.clone()).await;
        assert_eq!(s, 200, "{v}");
        sequential.push(v);
    }
    let mut tasks = Vec::new();
    for (i, b) in bodies.iter().cloned().enumerate() {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let r = c.post(&url).body(b).send().await.unwrap();
            let batch = r
                .headers()
                .get("x-trainyard-batch")
                .map(|h| h.to_str().unwrap().to_string())
                .unwrap_or_default();
            (
                i,
                r.status().as_u16(),
                batch,
                r.json::<Value>().await.unwrap(),
            )
        }));
    }
    let mut merged = 0;
    for t in tasks {
        let (i, status, batch, v) = t.await.unwrap();
        assert_eq!(status, 200, "{v}");
        let seq = sequential[i]["predictions"].as_array().unwrap();
        let got = v["predictions"].as_array().unwrap();
        assert_eq!(
            got.len(),
            seq.len(),
            "request {i}: one prediction per instance"
        );
        for (g, s) in got.iter().zip(seq) {
            assert_prediction_eq(g, s, &format!("concurrent request {i}"));
        }
        // "rows/requests" of the session run that answered it
        let requests: usize = batch
            .split('/')
            .nth(1)
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("x-trainyard-batch header: {batch:?}"));
        if requests > 1 {
            merged += 1;
        }
    }
    assert!(
        merged > 0,
        "48 concurrent requests never shared a session run"
    );
    assert!(server.terminate().success());
}

#[test]
#[ignore = "needs the managed TF env and exported models (make test-serve)"]
fn a_model_returning_int64_indices_is_refused() {
    let bad = models_dir().join("bad");
    // the library check the deployer calls
    let sig = trainyard_serve::inspect(&bad, &trainyard_serve::TfOptions::default()).unwrap();
    assert_eq!(
        sig.outputs["product_ids"].dtype,
        trainyard_serve::Dtype::Int64
    );
    let err = trainyard_serve::check_serving_contract(&sig).unwrap_err();
    assert!(
        matches!(err, trainyard_serve::ServeError::Contract(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("product_ids"));
    // ... and the good model passes it
    let good = trainyard_serve::inspect(
        &models_dir().join("bf"),
        &trainyard_serve::TfOptions::default(),
    )
    .unwrap();
    trainyard_serve::check_serving_contract(&good).unwrap();

    // the binary refuses to serve it: exit 1, the reason on stderr, no ready file
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let out = bin()
        .args([
            "--model",
            bad.to_str().unwrap(),
            "--name",
            "m",
            "--port",
            "0",
        ])
        .arg("--ready-file")
        .arg(&ready)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("product_ids"));
    assert!(!ready.exists());
    // inspect prints the signature (exit 0); inspect --check refuses it (exit 1)
    let out = bin()
        .args(["inspect", "--model", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["outputs"]["product_ids"]["dtype"], "int64");
    let out = bin()
        .args(["inspect", "--check", "--model", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn missing_tensorflow_and_bad_arguments_are_reported() {
    // no TF: typed error naming the settings, exit 1 (runs everywhere: fails before loading)
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .env("TRAINYARD_TF_LIB_DIR", dir.path())
        .args(["inspect", "--model", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // the model dir is checked first: an empty dir has no SavedModel
    assert!(err.contains("no SavedModel"), "{err}");
    std::fs::write(dir.path().join("saved_model.pb"), b"").unwrap();
    let out = bin()
        .env("TRAINYARD_TF_LIB_DIR", dir.path())
        .args(["inspect", "--model", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TensorFlow C library not found") && err.contains("TRAINYARD_TF_LIB_DIR"),
        "{err}"
    );
    // bad arguments: exit 2
    let out = bin().args(["--model", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin()
        .args(["--model", "x", "--name", "m", "--port", "http"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
