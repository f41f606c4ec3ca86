//! Version management like TF Serving's, against a real exported model: the server watches a
//! base path; a version pushed while a bounded load runs is loaded in the background (its
//! warm-up requests, written by TF's TFRecordWriter with tensorflow-serving-api's protos,
//! replayed first), swapped in atomically and the old one drained and unloaded, with zero
//! failed requests; /versions/N and /labels/NAME pick versions.
//!   TRAINYARD_SERVE_TEST_MODELS  the export dir of scripts/serve-export-models.py
//!   TRAINYARD_PYTHON             the managed env's Python (how the server finds TensorFlow)

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

/// A running server, killed if the test panics before it stops it.
struct Server {
    child: Option<Child>,
    ready: Value,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(model: &std::path::Path, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let ready_file = dir.path().join("ready.json");
        let mut child = Command::new(env!("CARGO_BIN_EXE_trainyard-serve"))
            .env("TRAINYARD_LOG", "info")
            .args(["--model", model.to_str().unwrap()])
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

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.starts_with(&format!("{name}{{"))
                && labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the managed TF env and exported models (make test-serve)"]
async fn a_pushed_version_is_warmed_up_and_swapped_in_under_load_with_zero_failures() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let exp = expected();
    let base = tempfile::tempdir().unwrap();
    copy_dir(&models_dir().join("bf/1"), &base.path().join("1"));
    let server = Server::start(
        base.path(),
        &[
            "--file-system-poll-wait-seconds",
            "0.2",
            "--version-label",
            "stable=1",
        ],
    );
    let url = server.url().to_string();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let instance = exp["instances"][0].clone();
    let want_ids = exp["single"]["bf"][0]["product_ids"].clone();
    let body = json!({ "instances": [instance] });

    // the label names version 1; version 1 and the latest answer
    for path in ["labels/stable", "versions/1", ""] {
        let r = c
            .post(format!("{url}/v1/models/recommender/{path}:predict").replace("/:", ":"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(r.headers()["x-trainyard-model-version"], "1", "{path}");
    }

    // a bounded load: 3 clients in a loop until told to stop (at most 90 s)
    let stop = Arc::new(AtomicBool::new(false));
    let newest = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (c, url, body, stop, newest, want_ids) = (
            c.clone(),
            url.clone(),
            body.clone(),
            stop.clone(),
            newest.clone(),
            want_ids.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut seen: Vec<(u16, u64)> = Vec::new();
            let started = Instant::now();
            while !stop.load(Ordering::Acquire) && started.elapsed() < Duration::from_secs(90) {
                let r = c
                    .post(format!("{url}/v1/models/recommender:predict"))
                    .json(&body)
                    .send()
                    .await;
                let (status, version, ids) = match r {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let version = r
                            .headers()
                            .get("x-trainyard-model-version")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        (status, version, v["predictions"][0]["product_ids"].clone())
                    }
                    Err(_) => (0, 0, Value::Null),
                };
                if status == 200 {
                    assert_eq!(ids, want_ids, "version {version} answered differently");
                }
                newest.fetch_max(version, Ordering::AcqRel);
                seen.push((status, version));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // push version 2 (warm-up requests in assets.extra) the way a pusher does: write, rename
    let staging = base.path().join(".incoming-2");
    copy_dir(&models_dir().join("bf/1"), &staging);
    std::fs::create_dir_all(staging.join("assets.extra")).unwrap();
    std::fs::copy(
        models_dir().join("warmup/tf_serving_warmup_requests"),
        staging.join("assets.extra/tf_serving_warmup_requests"),
    )
    .unwrap();
    std::fs::rename(&staging, base.path().join("2")).unwrap();
    let pushed = Instant::now();
    while newest.load(Ordering::Acquire) < 2 {
        assert!(
            pushed.elapsed() < Duration::from_secs(80),
            "version 2 never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Release);
    let mut total = 0;
    for task in clients {
        let seen = task.await.unwrap();
        total += seen.len();
        let failed: Vec<_> = seen.iter().filter(|(s, _)| *s != 200).collect();
        assert!(
            failed.is_empty(),
            "failed requests during the switch: {failed:?}"
        );
        assert!(
            seen.windows(2).all(|w| w[0].1 <= w[1].1),
            "a client went back to an older version: {seen:?}"
        );
        assert_eq!(seen.last().unwrap().1, 2, "answers switched to version 2");
        assert!(
            seen.iter().any(|(_, v)| *v == 1),
            "the load started on version 1"
        );
    }
    assert!(total >= 10, "only {total} requests in the load");

    // the old version drains and unloads
    let started = Instant::now();
    let status = loop {
        let (code, status) = get(&c, &format!("{url}/v1/models/recommender")).await;
        assert_eq!(code, 200);
        if status["model_version_status"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["version"] == "1" && s["state"] == "END")
        {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "version 1 not unloaded: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        status["model_version_status"][0],
        json!({"version": "2", "state": "AVAILABLE",
               "status": {"error_code": "OK", "error_message": ""}})
    );
    // /versions/N picks only a served version; the label still names version 1
    let code = |path: &str| {
        let (c, url, body) = (c.clone(), url.clone(), body.clone());
        let path = path.to_string();
        async move {
            c.post(format!("{url}/v1/models/recommender/{path}:predict"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(code("versions/2").await, 200);
    assert_eq!(code("versions/1").await, 404);
    assert_eq!(code("labels/stable").await, 404);
    assert_eq!(code("labels/nope").await, 404);
    // warm-up ran before version 2 served; the state metric follows the versions
    let text = c
        .get(format!("{url}/monitoring/prometheus/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric_value(
            &text,
            "trainyard_serve_warmup_requests",
            &[("version", "2")]
        ),
        Some(3.0),
        "{text}"
    );
    for (v, state) in [("1", "END"), ("2", "AVAILABLE")] {
        assert_eq!(
            metric_value(
                &text,
                "trainyard_serve_model_state",
                &[("version", v), ("state", state)]
            ),
            Some(1.0),
            "{text}"
        );
    }
    let status = server.terminate();
    assert!(status.success(), "exit after SIGTERM: {status}");
}
