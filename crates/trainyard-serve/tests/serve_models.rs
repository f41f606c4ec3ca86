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

/// Columns for `serving_default` of the test models (inputs in feed order) from JSON instances.
fn columns_of(
    model: &trainyard_serve::Model,
    instances: &[Value],
) -> Vec<trainyard_serve::tensor::Column> {
    use trainyard_serve::tensor::{Column, Values};
    let n = instances.len() as u64;
    model
        .input_specs()
        .map(|(name, _)| {
            let col = instances.iter().map(|i| &i[name]);
            match name {
                "customer_id" | "city" => Column {
                    dims: vec![n],
                    values: Values::Str(col.map(|v| v.as_str().unwrap().to_string()).collect()),
                },
                "revenue" => Column {
                    dims: vec![n],
                    values: Values::F32(col.map(|v| v.as_f64().unwrap() as f32).collect()),
                },
                "visits" => Column {
                    dims: vec![n, 1],
                    values: Values::I64(col.map(|v| v[0].as_i64().unwrap()).collect()),
                },
                other => panic!("unexpected input {other}"),
            }
        })
        .collect()
}

/// `serving_default`'s answers as JSON rows (what the REST API returns).
fn rows_of(model: &trainyard_serve::Model, out: &[trainyard_serve::tensor::Column]) -> Vec<Value> {
    use trainyard_serve::tensor::Values;
    let names: Vec<&str> = model.output_names().collect();
    let col = |name: &str| &out[names.iter().position(|n| *n == name).unwrap()];
    let (ids, scores) = (col("product_ids"), col("scores"));
    let k = ids.dims[1] as usize;
    let (Values::Str(ids), Values::F32(scores)) = (&ids.values, &scores.values) else {
        panic!("product_ids strings and scores floats")
    };
    (0..ids.len() / k)
        .map(|r| json!({"product_ids": ids[r * k..(r + 1) * k], "scores": scores[r * k..(r + 1) * k]}))
        .collect()
}

/// Same ids in the same order, scores within 1e-6.
fn assert_identical(got: &Value, want: &Value, what: &str) {
    assert_eq!(
        got["product_ids"], want["product_ids"],
        "{what}: product_ids"
    );
    let g: Vec<f64> = serde_json::from_value(got["scores"].clone()).unwrap();
    let w: Vec<f64> = serde_json::from_value(want["scores"].clone()).unwrap();
    assert_eq!(g.len(), w.len(), "{what}");
    for (a, b) in g.iter().zip(&w) {
        assert!((a - b).abs() <= 1e-6, "{what}: score {a} != {b}");
    }
}

#[test]
#[ignore = "needs the managed TF env and exported models (make test-serve)"]
fn brute_force_top_k_in_rust_answers_exactly_as_the_session_and_python() {
    use trainyard_serve::{Model, SessionConfig, TfOptions};
    let tf = TfOptions::default();
    let bf = models_dir().join("bf");
    let rust = Model::load(&bf, &tf).unwrap();
    let info = rust
        .rust_top_k()
        .expect("bf exports query_embedding: top k in Rust");
    assert_eq!(
        (info.query_signature.as_str(), info.candidates, info.k),
        ("query_embedding", 1000, 10)
    );
    let session_cfg = SessionConfig {
        session_top_k: true,
        ..SessionConfig::default()
    };
    let session = Model::load_with(&bf, &tf, session_cfg).unwrap();
    assert_eq!(session.rust_top_k(), None);
    // a model without a query signature keeps TF's TopK
    let bad = Model::load(&models_dir().join("bad"), &tf).unwrap();
    assert_eq!(bad.rust_top_k(), None);

    // Python's answers for the exported requests: all rows in one call, and each alone
    let exp = expected();
    let instances = exp["instances"].as_array().unwrap();
    let got = rows_of(&rust, &rust.run(&columns_of(&rust, instances)).unwrap());
    for (i, (g, w)) in got
        .iter()
        .zip(exp["models"]["bf"].as_array().unwrap())
        .enumerate()
    {
        assert_identical(g, w, &format!("batch row {i} vs Python"));
    }
    for (i, inst) in instances.iter().enumerate() {
        let one = rows_of(
            &rust,
            &rust
                .run(&columns_of(&rust, std::slice::from_ref(inst)))
                .unwrap(),
        );
        assert_identical(
            &one[0],
            &exp["single"]["bf"][i],
            &format!("row {i} alone vs Python"),
        );
    }
    // and the session's TopK on 300 more rows: every customer, cities, numbers that move the
    // query (unknown customers and cities included)
    let cities = [
        "Warsaw", "Krakow", "Gdansk", "Poznan", "Wroclaw", "Atlantis",
    ];
    let many: Vec<Value> = (0..300)
        .map(|i| {
            json!({
                "customer_id": if i % 50 == 49 { "NOBODY".to_string() } else { format!("C{:04}", i % 200) },
                "city": cities[i % cities.len()],
                "revenue": (i * 37 % 1000) as f64 * 3.5,
                "visits": [(i * 7 % 40) as i64],
            })
        })
        .collect();
    let cols = columns_of(&rust, &many);
    let (a, b) = (
        rows_of(&rust, &rust.run(&cols).unwrap()),
        rows_of(&session, &session.run(&cols).unwrap()),
    );
    assert_eq!(a.len(), 300);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_identical(x, y, &format!("row {i}: Rust vs the session's TopK"));
    }
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
    // no TF: typed error naming the settings, exit 3 (runs everywhere: fails before loading)
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
    // a setup failure, not a bad model: its own exit code (the deployer tells them apart)
    assert_eq!(
        out.status.code(),
        Some(i32::from(trainyard_serve::error::EXIT_SETUP))
    );
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

/// A raw connection that sends a request head and part of its body, then stalls.
fn stalled_body(url: &str) -> std::net::TcpStream {
    use std::io::Write;
    let hostport = url.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    let head = format!(
        "POST /v1/models/recommender:predict HTTP/1.1\r\nHost: {hostport}\r\n\
         Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{{\"instances\": [{{\"cus"
    );
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// Reads until the server closes (or `limit` passes): what came and how long it took.
fn read_until_closed(s: &mut std::net::TcpStream, limit: Duration) -> (String, Duration) {
    use std::io::Read;
    s.set_read_timeout(Some(limit)).unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

/// p50 latency of `clients` concurrent clients each sending `each` one-instance predicts.
async fn concurrent_p50(url: &str, instances: &[Value], clients: usize, each: usize) -> Duration {
    let mut tasks = Vec::new();
    for t in 0..clients {
        let (c, url) = (client(), url.to_string());
        let rows: Vec<Value> = instances.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in 0..each {
                let body = json!({ "instances": [rows[(t * each + i) % rows.len()]] }).to_string();
                let started = Instant::now();
                let (s, v) = post(&c, &url, body).await;
                lat.push(started.elapsed());
                assert_eq!(s, 200, "{v}");
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all[all.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the managed TF env and exported models (make test-serve)"]
async fn a_stalled_client_does_not_slow_other_predicts() {
    let exp = expected();
    let instances = exp["instances"].as_array().unwrap().clone();
    // a long batch timeout: a batcher that waited for the stalled request would add 50 ms to
    // every batch
    let server = Server::start(
        "bf",
        &[
            "--batch-timeout-micros",
            "50000",
            "--body-timeout-secs",
            "8",
        ],
    );
    let url = server.predict_url();
    concurrent_p50(&url, &instances, 2, 5).await; // warm-up
    let unloaded = concurrent_p50(&url, &instances, 4, 10).await;
    let stalled_at = Instant::now();
    let mut stalled = stalled_body(&server.url);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let loaded = concurrent_p50(&url, &instances, 4, 10).await;
    let measured_in = stalled_at.elapsed();
    eprintln!(
        "p50 of 4x10 concurrent predicts: unloaded {unloaded:?}, with a stalled body open {loaded:?}"
    );
    assert!(
        measured_in < Duration::from_secs(7),
        "the measurement took {measured_in:?}: the stalled body was no longer open"
    );
    assert!(
        loaded <= unloaded * 3 + Duration::from_millis(10),
        "a stalled client slowed the others: p50 {unloaded:?} -> {loaded:?}"
    );
    // the stalled client itself: 408 naming the body timeout, then its connection is closed
    let (got, _) = tokio::task::spawn_blocking(move || {
        read_until_closed(&mut stalled, Duration::from_secs(15))
    })
    .await
    .unwrap();
    let waited = stalled_at.elapsed();
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(
        got.contains("body_timeout_ms") && got.contains("8000"),
        "{got}"
    );
    assert!(
        waited >= Duration::from_millis(7500) && waited < Duration::from_secs(12),
        "answered after {waited:?}, body timeout 8 s"
    );
    // and serving goes on
    let (s, v) = post(
        &client(),
        &url,
        json!({"instances": [instances[0]]}).to_string(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the managed TF env and exported models (make test-serve)"]
async fn sigterm_with_a_stalled_client_exits_within_the_shutdown_deadline() {
    let exp = expected();
    let instances = exp["instances"].as_array().unwrap().clone();
    let server = Server::start(
        "bf",
        &["--shutdown-timeout-secs", "2", "--body-timeout-secs", "60"],
    );
    let url = server.predict_url();
    let (s, v) = post(
        &client(),
        &url,
        json!({"instances": [instances[0]]}).to_string(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let _stalled = stalled_body(&server.url);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!("exit {took:?} after SIGTERM with a stalled body open (deadline 2 s)");
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "exited {took:?} after SIGTERM; shutdown deadline 2 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the managed TF env and exported models (make test-serve)"]
async fn too_many_instances_or_too_large_an_answer_is_refused_naming_the_limit() {
    let exp = expected();
    let instances = exp["instances"].as_array().unwrap().clone();
    let server = Server::start(
        "bf",
        &["--max-instances", "8", "--max-response-bytes", "1500"],
    );
    let (c, url) = (client(), server.predict_url());
    let rows = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| instances[i % instances.len()].clone())
            .collect()
    };

    let (s, v) = post(&c, &url, json!({ "instances": rows(9) }).to_string()).await;
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["limit"], "max_instances", "{v}");
    assert_eq!(v["limit_value"], 8, "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("--max-instances") && msg.contains('8') && msg.contains('9'),
        "{msg}"
    );
    // the columnar form counts rows the same way
    let mut columns = serde_json::Map::new();
    for key in instances[0].as_object().unwrap().keys() {
        let col: Vec<Value> = rows(9).iter().map(|r| r[key].clone()).collect();
        columns.insert(key.clone(), Value::Array(col));
    }
    let (s, v) = post(&c, &url, json!({ "inputs": columns }).to_string()).await;
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["limit"], "max_instances", "{v}");

    // one instance fits in 1500 bytes, eight do not
    let (s, v) = post(&c, &url, json!({ "instances": rows(1) }).to_string()).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.to_string().len() < 1500, "{v}");
    let (s, v) = post(&c, &url, json!({ "instances": rows(8) }).to_string()).await;
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["limit"], "max_response_bytes", "{v}");
    assert_eq!(v["limit_value"], 1500, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("--max-response-bytes"),
        "{v}"
    );
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the managed TF env and exported models (make test-serve)"]
async fn idle_and_half_sent_connections_are_closed_after_their_timeouts() {
    use std::io::Write;
    let server = Server::start(
        "bf",
        &["--idle-timeout-secs", "1.5", "--header-timeout-secs", "0.5"],
    );
    let hostport = server.url.strip_prefix("http://").unwrap().to_string();
    let (idle, half) = tokio::task::spawn_blocking(move || {
        // a kept-alive connection after one answer
        let mut s = std::net::TcpStream::connect(&hostport).unwrap();
        let req = format!("GET /v1/models/recommender HTTP/1.1\r\nHost: {hostport}\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let idle = read_until_closed(&mut s, Duration::from_secs(10));
        // half a request head
        let mut s = std::net::TcpStream::connect(&hostport).unwrap();
        s.write_all(b"GET /v1/models/recommender HTTP/1.1\r\nHo")
            .unwrap();
        let half = read_until_closed(&mut s, Duration::from_secs(10));
        (idle, half)
    })
    .await
    .unwrap();
    assert!(idle.0.starts_with("HTTP/1.1 200"), "{}", idle.0);
    assert!(idle.0.contains("AVAILABLE"), "{}", idle.0);
    assert!(
        idle.1 >= Duration::from_millis(1300) && idle.1 < Duration::from_secs(4),
        "kept-alive idle connection closed after {:?}, idle timeout 1.5 s",
        idle.1
    );
    assert!(half.0.is_empty(), "{}", half.0);
    assert!(
        half.1 >= Duration::from_millis(400) && half.1 < Duration::from_millis(1400),
        "half-sent head closed after {:?}, header timeout 0.5 s",
        half.1
    );
    assert!(server.terminate().success());
}

#[test]
#[ignore = "needs the managed TF env and exported models (make test-serve)"]
fn a_registered_version_is_served_only_while_it_matches_its_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let v = tmp.path().join("1");
    copy_dir(&models_dir().join("bf").join("1"), &v);
    let files = hash_files(&v);
    let manifest = json!({"model_name": "recs", "version": "1", "files": files});
    std::fs::write(v.join("MANIFEST.json"), manifest.to_string()).unwrap();
    // as registered: it loads
    let sig = trainyard_serve::inspect(tmp.path(), &trainyard_serve::TfOptions::default()).unwrap();
    assert!(sig.outputs.contains_key("product_ids"));
    // one byte of the graph flipped: refused before loading, naming the file
    let pb = v.join("saved_model.pb");
    let mut bytes = std::fs::read(&pb).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&pb, bytes).unwrap();
    let out = bin()
        .args([
            "--model",
            tmp.path().to_str().unwrap(),
            "--name",
            "recommender",
            "--port",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("saved_model.pb (checksum differs)") && err.contains("MANIFEST.json"),
        "{err}"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// relative path -> hex SHA-256, as the registry writes them.
fn hash_files(dir: &std::path::Path) -> serde_json::Map<String, Value> {
    use sha2::{Digest, Sha256};
    fn walk(
        base: &std::path::Path,
        dir: &std::path::Path,
        out: &mut serde_json::Map<String, Value>,
    ) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                let sum: String = Sha256::digest(std::fs::read(&p).unwrap())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                out.insert(rel, Value::String(sum));
            }
        }
    }
    let mut out = serde_json::Map::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn a_model_changed_after_registration_is_refused_before_loading() {
    // runs everywhere: the check comes before TensorFlow is looked for
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("3");
    std::fs::create_dir_all(&v).unwrap();
    std::fs::write(v.join("saved_model.pb"), b"graph, changed").unwrap();
    let manifest = json!({"files": {"saved_model.pb": "00".repeat(32)}});
    std::fs::write(v.join("MANIFEST.json"), manifest.to_string()).unwrap();
    let out = bin()
        .env("TRAINYARD_TF_LIB_DIR", dir.path())
        .args([
            "--model",
            dir.path().to_str().unwrap(),
            "--name",
            "m",
            "--port",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve")
            && err.contains("saved_model.pb (checksum differs)")
            && !err.contains("TensorFlow C library"),
        "{err}"
    );
}

#[test]
fn limit_flags_are_documented_and_checked() {
    let out = bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--header-timeout-secs",
        "--body-timeout-secs",
        "--idle-timeout-secs",
        "--max-connections",
        "--max-instances",
        "--max-response-bytes",
        "--shutdown-timeout-secs",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    for bad in [
        ["--body-timeout-secs", "0"],
        ["--idle-timeout-secs", "soon"],
        ["--max-instances", "0"],
    ] {
        let out = bin()
            .args(["--model", "x", "--name", "m"])
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}
