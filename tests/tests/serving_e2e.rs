//! From a blessed run to predictions that return real product ids, on the embedded defaults:
//! the SavedModels of real local TFX runs (the shared trained project, testkit::shared) are
//! handed to a project of this test as its runs' pipeline output (the completion event the
//! local runner sends), registered as v1 in the filesystem registry, auto-deployed as a
//! trainyard-serve process and asked for predictions over HTTP; a ScaNN run of the same model
//! becomes v2 and redeploying the endpoint switches it. Run by `make test` (mk/pipeline.mk)
//! with TRAINYARD_PYTHON set and trainyard-serve built.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::shared::{trained_project, TOP_K};
use testkit::{open_local, synth, RunBuilder};
use trainyard::core::deployment::{DeploymentStatus, LiveDeploymentStatus};
use trainyard::core::model_config::{ModelType, RetrievalAlgorithm};
use trainyard::core::ports::PipelineEvent;
use trainyard::core::registry::RegistryEventKind;
use trainyard::core::run::TrainingRun;
use trainyard::{DeployOptions, Platform, Until};
use trainyard_core::RunStatus;

/// A run of this project whose pipeline produced what `trained` (a shared run) holds: the
/// completion event the local runner sends, then followed until registration and any
/// auto-deploy are done.
async fn completed_as(
    p: &Platform,
    trained: &TrainingRun,
    algorithm: RetrievalAlgorithm,
    deploy: bool,
) -> TrainingRun {
    let run = p
        .training()
        .create_training_run(
            RunBuilder::new("shop-recs", ModelType::Retrieval)
                .retrieval_algorithm(algorithm)
                .top_k(TOP_K)
                .blessing("recall_at_100", 0.0)
                .auto_deploy(deploy)
                .build(),
        )
        .await
        .unwrap();
    let metrics_file = trained.artifacts["training_metrics"].as_str();
    let training_metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(metrics_file).unwrap()).unwrap();
    // what the runner reports (not what the shared project's registry added)
    let artifacts = trained
        .artifacts
        .iter()
        .filter(|(k, _)| {
            ["pipeline_root", "training_metrics", "log", "component_logs"].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    p.training()
        .handle_event(
            run.id,
            &PipelineEvent::Completed {
                training_metrics,
                blessed: true,
                artifacts,
            },
        )
        .await
        .unwrap();
    p.follow(run.id, Until::Settled, Duration::from_secs(120), |_, _| {})
        .await
        .unwrap()
}

async fn post(url: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The request features the served signature takes, from the customer's row.
async fn instance(base: &str, customer: &trainyard_synth::Customer, ts: i64) -> Value {
    let meta: Value = reqwest::get(format!("{base}/v1/models/recommender/metadata"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = meta.to_string();
    let all = json!({
        "customer_id": customer.id, "city": customer.city, "segment": customer.segment,
        "revenue": customer.revenue, "timestamp": ts,
    });
    let mut out = serde_json::Map::new();
    for (k, v) in all.as_object().unwrap() {
        if text.contains(&format!("\"{k}\"")) {
            out.insert(k.clone(), v.clone());
        }
    }
    assert!(out.contains_key("customer_id"), "signature: {meta}");
    Value::Object(out)
}

fn assert_real_ids(answer: &Value, catalog: &BTreeSet<String>, n: usize) {
    let predictions = answer["predictions"].as_array().expect("predictions");
    assert_eq!(predictions.len(), n, "{answer}");
    for p in predictions {
        let ids: Vec<&str> = p["product_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().expect("product ids are strings, not indices"))
            .collect();
        let scores: Vec<f64> = p["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(ids.len(), 20, "top_k ids");
        assert_eq!(scores.len(), ids.len());
        for id in &ids {
            assert!(catalog.contains(*id), "{id} is not a product of the data");
        }
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "scores descend: {scores:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs TRAINYARD_PYTHON and trainyard-serve; run by make test"]
async fn blessed_run_to_v1_deployed_then_scann_v2_switches_the_endpoint() {
    let shared = trained_project().await;
    let trained_bf = shared.run(shared.retrieval).await;
    let trained_scann = shared.run(shared.scann).await;
    let dir = tempfile::tempdir().unwrap();
    let data = synth();
    let catalog: BTreeSet<String> = data.products.iter().map(|p| p.id.clone()).collect();
    Platform::init(dir.path()).await.unwrap();
    let (p, _) = open_local(dir.path()).await;

    // v1: brute force, auto-registered and auto-deployed when the pipeline completes.
    let v1 = completed_as(&p, &trained_bf, RetrievalAlgorithm::BruteForce, true).await;
    assert_eq!(
        v1.status,
        RunStatus::Deployed,
        "{:?} {}",
        v1.error_message,
        v1.deployment_error
    );
    assert_eq!(v1.vertex_model_version.as_deref(), Some("1"));
    let d = p.deployments();
    let ep = d.endpoint("shop-recs-serving").await.unwrap();
    let base = ep.service_url.clone();
    let predict = format!("{base}/v1/models/recommender:predict");
    let c0 = &data.customers[0];
    let c1 = &data.customers[1];
    let body = json!({"instances": [instance(&base, c0, 1_700_000_000).await,
                                    instance(&base, c1, 1_700_000_000).await]});
    let (status, answer) = post(&predict, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_real_ids(&answer, &catalog, 2);

    // Bad requests get 4xx with a message and the endpoint keeps serving.
    for bad in [
        json!({"instances": []}),
        json!({"instances": [{"no_such_feature": 1}]}),
        json!({"instances": [{"customer_id": 12}]}),
    ] {
        let (status, answer) = post(&predict, &bad).await;
        assert!((400..500).contains(&status), "{bad} -> {status} {answer}");
        assert!(answer.to_string().len() > 10, "a message: {answer}");
    }
    let (status, answer) = post(&predict, &body).await;
    assert_eq!(status, 200, "{answer}");

    // Another process (a restarted host) re-attaches to the running endpoint.
    let (reopened, _) = open_local(dir.path()).await;
    let view = reopened.deployments().status(v1.id).await.unwrap();
    assert_eq!(view.status, LiveDeploymentStatus::Deployed);
    assert!(view.has_active_endpoint);

    // v2: ScaNN, same model; registered, then deployed onto the same endpoint.
    let v2 = completed_as(&p, &trained_scann, RetrievalAlgorithm::Scann, false).await;
    assert_eq!(v2.status, RunStatus::Completed, "{:?}", v2.error_message);
    assert_eq!(v2.vertex_model_version.as_deref(), Some("2"));
    let v2 = d
        .deploy(
            v2.id,
            &DeployOptions {
                endpoint: Some("shop-recs-serving".into()),
                ..DeployOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v2.status, RunStatus::Deployed, "{}", v2.deployment_error);
    let ep = d.endpoint("shop-recs-serving").await.unwrap();
    assert_eq!(ep.deployed_version, "2");
    assert_eq!(ep.service_url, base, "the endpoint keeps its URL");
    let (status, answer) = post(&predict, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_real_ids(&answer, &catalog, 2);
    let v1 = p.training().get(v1.id).await.unwrap();
    assert_eq!(v1.status, RunStatus::Completed, "v1 was replaced");

    let registry = p.registry();
    let model_id = v2.registered_model_id.unwrap();
    registry
        .set_alias(model_id, "production", "1")
        .await
        .unwrap();
    registry
        .set_alias(model_id, "production", "2")
        .await
        .unwrap();
    let history = registry.history(model_id).await.unwrap();
    let served: Vec<&str> = history
        .iter()
        .filter(|e| e.kind == RegistryEventKind::Endpoint)
        .map(|e| e.model_version.as_str())
        .collect();
    assert_eq!(served, ["1", "2"]);

    // The server dies: the live state says so, the record keeps what the deploy did.
    let state = trainyard_local::LocalDeployer::new(
        dir.path().join(".trainyard/endpoints"),
        "trainyard-serve",
    )
    .state("shop-recs-serving")
    .unwrap()
    .unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &state.pid.to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let view = d.status(v2.id).await.unwrap();
    assert_eq!(view.deployment_status, DeploymentStatus::Deployed);
    assert!(!view.has_active_endpoint);
    assert_eq!(view.status, LiveDeploymentStatus::Idle);

    // Undeploy: the endpoint goes inactive and the run back to completed.
    d.undeploy("shop-recs-serving").await.unwrap();
    let v2 = p.training().get(v2.id).await.unwrap();
    assert_eq!(v2.status, RunStatus::Completed);
}
