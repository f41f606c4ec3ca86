//! The tour's committed pushed model (examples/tour/pushed_model, written by
//! examples/tour/make_pushed_model.py) is what a deploy expects of a retrieval model: it passes
//! the serving contract, takes the raw buyer features of the default feature config, and
//! trainyard-serve answers examples/tour/instances.json with K original product ids and their
//! scores. Needs the managed TF env (TRAINYARD_PYTHON; `make test-serve` sets it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const K: usize = 5;

fn tour() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tour")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the managed TF env (make test-serve)"]
async fn the_tour_model_meets_the_serving_contract_and_answers_original_ids() {
    let model = tour().join("pushed_model");
    // the Pusher's layout: one numeric version folder with the SavedModel
    let version = model.join("1");
    assert!(version.join("saved_model.pb").is_file());
    assert!(version.join("variables/variables.index").is_file());

    let sig = trainyard_serve::inspect(&model, &trainyard_serve::TfOptions::default()).unwrap();
    trainyard_serve::check_serving_contract(&sig).unwrap();
    assert_eq!(sig.version, 1);
    // the raw buyer features of the default feature config (examples/tour/retrieval_run.json
    // gives none), typed as the generated trainer's export types them
    let inputs: Vec<(&str, trainyard_serve::Dtype)> = sig
        .inputs
        .iter()
        .map(|(name, spec)| (name.as_str(), spec.dtype))
        .collect();
    use trainyard_serve::Dtype::*;
    assert_eq!(
        inputs,
        [
            ("city", String),
            ("customer_id", String),
            ("revenue", Float32),
            ("segment", String),
            ("timestamp", Int64),
        ]
    );
    for (name, dtype) in [("product_ids", String), ("scores", Float32)] {
        let out = &sig.outputs[name];
        assert_eq!(out.dtype, dtype, "{name}");
        assert_eq!(out.shape, Some(vec![-1, K as i64]), "{name}");
    }

    // served over REST, the tour's instances get K distinct catalog ids, best first
    let dir = tempfile::tempdir().unwrap();
    let ready_file = dir.path().join("ready.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainyard-serve"))
        .args(["--model", model.to_str().unwrap()])
        .args([
            "--name",
            "recommender",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ])
        .arg("--ready-file")
        .arg(&ready_file)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let ready: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&ready_file) {
            break serde_json::from_str(&text).unwrap();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("trainyard-serve exited before it was ready: {status}");
        }
        assert!(started.elapsed() < Duration::from_secs(120), "not ready");
        std::thread::sleep(Duration::from_millis(50));
    };
    let url = format!(
        "{}/v1/models/recommender:predict",
        ready["url"].as_str().unwrap()
    );
    let body = std::fs::read_to_string(tour().join("instances.json")).unwrap();
    let answer = reqwest::Client::new()
        .post(&url)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let answer: Value = answer.json().await.unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{answer}");

    let rows = answer["predictions"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{answer}");
    for row in rows {
        let ids: Vec<&str> = row["product_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let scores: Vec<f64> = serde_json::from_value(row["scores"].clone()).unwrap();
        assert_eq!((ids.len(), scores.len()), (K, K), "{row}");
        // original ids of trainyard-synth's catalog (P + 6 digits), never vocabulary indices
        for id in &ids {
            assert!(
                id.len() == 7 && id.starts_with('P') && id[1..].bytes().all(|b| b.is_ascii_digit()),
                "{id} is not a catalog product id"
            );
        }
        let mut distinct = ids.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), K, "{row}");
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{row}");
    }
    // the buyer's segment moves the ranking (an office buyer and a retail buyer differ)
    assert_ne!(rows[0]["product_ids"], rows[1]["product_ids"], "{answer}");
}
