//! Every operation the crate offers, driven through the public backends against
//! [`FakeGoogle`], with assertions on what each sends and returns. tests/flows.rs runs them
//! as they are; tests/contract.rs runs them and then checks every recorded request and
//! response against Google's discovery documents.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{json, Value};

use trainyard_core::config::{DeploymentConfig, DeploymentPreset};
use trainyard_core::deployment::LiveDeploymentStatus;
use trainyard_core::model_config::RetrievalAlgorithm;
use trainyard_core::ports::{
    ArtifactStore, DeployRequest, Deployer, ModelRegistry, PipelineEvent, PipelineExecutor,
    PipelineLogReader, PipelineSubmission, ScheduleTrigger, VERTEX_PIPELINE_JOB_FILE,
};
use trainyard_core::stages::StageName;
use trainyard_core::ModelType;
use trainyard_gcp::auth::{Credentials, Secret};
use trainyard_gcp::{
    names, CloudLogging, CloudRunDeployer, CloudSchedulerTrigger, GcpConfig, GcpHttp, GcsClient,
    VertexEndpoints, VertexModelRegistry, VertexPipelineExecutor,
};

use super::{registered_model, run, schedule, FakeGoogle};

pub const BUCKET: &str = "trainyard-test";

pub fn http(cfg: &GcpConfig) -> GcpHttp {
    GcpHttp::new(
        Credentials::Static(Secret::new("ya29.flow-test-token")),
        cfg.retry.clone(),
    )
    .unwrap()
}

/// A PipelineJob as the pipeline builder compiles it (KFP v2 IR of a TFX pipeline).
pub fn pipeline_job_json(display_name: &str) -> String {
    let component = |exec: &str| json!({"executorLabel": exec, "outputDefinitions": {"artifacts": {"examples": {"artifactType": {"instanceSchema": "title: tfx.Examples\ntype: object\n"}}}}});
    json!({
        "displayName": display_name,
        "labels": {"platform": "trainyard"},
        "pipelineSpec": {
            "pipelineInfo": {"name": "shop-recs-pipeline"},
            "schemaVersion": "2.1.0",
            "sdkVersion": "tfx-1.16.0",
            "root": {"dag": {"tasks": {
                "BigQueryExampleGen": {"taskInfo": {"name": "BigQueryExampleGen"}, "componentRef": {"name": "BigQueryExampleGen"}},
                "Trainer": {"taskInfo": {"name": "Trainer"}, "componentRef": {"name": "Trainer"}, "dependentTasks": ["BigQueryExampleGen"]}
            }}},
            "components": {"BigQueryExampleGen": component("BigQueryExampleGen_executor"), "Trainer": component("Trainer_executor")},
            "deploymentSpec": {"executors": {
                "BigQueryExampleGen_executor": {"container": {"image": "gcr.io/tfx-oss-public/tfx:1.16.0", "command": ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]}},
                "Trainer_executor": {"container": {"image": "gcr.io/tfx-oss-public/tfx:1.16.0", "command": ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]}}
            }}
        },
        "runtimeConfig": {"parameterValues": {"epochs": 3, "learning_rate": 0.1, "model_name": "shop-recs"}}
    })
    .to_string()
}

pub fn training_metrics() -> Value {
    json!({
        "loss": {"loss": [0.9, 0.7, 0.61], "val_loss": [1.0, 0.8, 0.7]},
        "final_metrics": {"test_recall_at_5": 0.08, "test_recall_at_10": 0.13, "test_recall_at_50": 0.31, "test_recall_at_100": 0.4213, "final_loss": 0.61}
    })
}

fn seed_pushed_models(fake: &FakeGoogle) {
    for name in [
        "runs/17/pushed_model/1768800000/saved_model.pb",
        "runs/17/pushed_model/1768800000/variables/variables.index",
        "runs/17/pushed_model/1768842986/saved_model.pb",
        "runs/17/pushed_model/1768842986/variables/variables.data-00000-of-00001",
        "runs/17/pushed_model/1768842986/variables/variables.index",
        // newer, but incomplete: no saved_model.pb
        "runs/17/pushed_model/1768900000/variables/variables.index",
        "runs/17/pushed_model/README",
    ] {
        fake.put_object(BUCKET, name, b"x");
    }
}

async fn poll_to_end(
    exec: &VertexPipelineExecutor,
    h: &trainyard_core::ports::PipelineHandle,
) -> Vec<PipelineEvent> {
    let mut all = Vec::new();
    for _ in 0..10 {
        let events = exec.poll(h).await.expect("poll");
        let done = events.iter().any(|e| {
            matches!(
                e,
                PipelineEvent::Completed { .. } | PipelineEvent::Failed { .. }
            )
        });
        all.extend(events);
        if done {
            assert!(
                exec.poll(h).await.unwrap().is_empty(),
                "nothing after the end"
            );
            return all;
        }
    }
    panic!("pipeline never finished: {all:?}");
}

pub async fn pipeline_flow(fake: &FakeGoogle) {
    let cfg = fake.config();
    let exec = VertexPipelineExecutor::new(http(&cfg), &cfg);
    let r = run(17, 3, "Shop Recs");
    let mut files = BTreeMap::new();
    files.insert(
        VERTEX_PIPELINE_JOB_FILE.to_string(),
        pipeline_job_json("shop-recs-training-3"),
    );
    let sub = PipelineSubmission {
        run: r.clone(),
        pipeline_root: "gs://trainyard-test/pipeline_root/shop".into(),
        files,
    };
    let h = exec.submit(&sub).await.expect("submit");
    let id = names::pipeline_job_id(&r);
    assert!(id.starts_with("ty-shop-recs-3-17-20261127094938"), "{id}");
    assert_eq!(h.job_id, id);
    assert_eq!(
        h.job_name,
        format!("projects/test-project/locations/europe-central2/pipelineJobs/{id}")
    );
    // A retried submit finds the job instead of creating a twin.
    let again = exec.submit(&sub).await.expect("resubmit");
    assert_eq!(again, h);
    let posts = fake.requests_to("POST", "/pipelineJobs");
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].status, 409);
    assert_eq!(fake.state.lock().unwrap().pipeline_jobs.len(), 1);
    let sent = posts[0].request.clone().unwrap();
    assert_eq!(sent["labels"]["trainyard_run_id"], "17");
    assert_eq!(sent["labels"]["platform"], "trainyard");
    assert_eq!(
        sent["runtimeConfig"]["gcsOutputDirectory"],
        "gs://trainyard-test/pipeline_root/shop"
    );
    assert_eq!(
        sent["serviceAccount"],
        "trainer@test-project.iam.gserviceaccount.com"
    );
    assert_eq!(
        posts[0].query,
        vec![("pipelineJobId".to_string(), id.clone())]
    );

    fake.put_object(
        BUCKET,
        &format!("pipeline_root/shop/123/{id}/Trainer_7/model_run/training_metrics.json"),
        training_metrics().to_string().as_bytes(),
    );
    let events = poll_to_end(&exec, &h).await;
    let stages: Vec<&PipelineEvent> = events
        .iter()
        .filter(|e| !matches!(e, PipelineEvent::Completed { .. }))
        .collect();
    use PipelineEvent::{StageCompleted as C, StageStarted as S};
    assert_eq!(
        stages,
        vec![
            &C {
                stage: StageName::Examples
            },
            &S {
                stage: StageName::Stats
            },
            &C {
                stage: StageName::Stats
            },
            &C {
                stage: StageName::Schema
            },
            &C {
                stage: StageName::Transform
            },
            &S {
                stage: StageName::Train
            },
            &C {
                stage: StageName::Train
            },
            &C {
                stage: StageName::Evaluate
            },
            &C {
                stage: StageName::Register
            },
        ]
    );
    match events.last().unwrap() {
        PipelineEvent::Completed {
            training_metrics: tm,
            blessed,
            artifacts,
        } => {
            assert_eq!(tm, &training_metrics());
            assert!(blessed);
            let results =
                trainyard_core::metrics::extract_results(ModelType::Retrieval, tm).unwrap();
            assert_eq!(results.recall_at_100, Some(0.4213));
            assert_eq!(
                artifacts["pushed_destination"],
                format!("gs://trainyard-test/runs/{id}/pushed_model/1768842986")
            );
            assert!(artifacts["model_run"].ends_with("/Trainer_7/model_run"));
            assert_eq!(artifacts["pipeline_job"], h.job_name);
        }
        other => panic!("expected Completed, got {other:?}"),
    }

    // A failing pipeline ends with Failed naming the stage and Vertex's message.
    let r2 = run(18, 4, "Shop Recs");
    let mut sub2 = sub.clone();
    sub2.run = r2;
    sub2.files.insert(
        VERTEX_PIPELINE_JOB_FILE.into(),
        pipeline_job_json("shop-recs-fail-4"),
    );
    let h2 = exec.submit(&sub2).await.unwrap();
    let events = poll_to_end(&exec, &h2).await;
    match events.last().unwrap() {
        PipelineEvent::Failed { error, stage } => {
            assert_eq!(*stage, Some(StageName::Train));
            assert!(error.contains("[Trainer]"), "{error}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }

    // cancel
    let r3 = run(19, 5, "Shop Recs");
    let mut sub3 = sub.clone();
    sub3.run = r3;
    let h3 = exec.submit(&sub3).await.unwrap();
    exec.cancel(&h3).await.expect("cancel");
    assert_eq!(
        fake.state.lock().unwrap().pipeline_jobs[&h3.job_name].0["state"],
        "PIPELINE_STATE_CANCELLING"
    );
    // A local pipeline root cannot go to Vertex.
    let mut bad = sub.clone();
    bad.run = run(20, 6, "Shop Recs");
    bad.pipeline_root = "/tmp/root".into();
    let mut job: Value = serde_json::from_str(&bad.files[VERTEX_PIPELINE_JOB_FILE]).unwrap();
    job["runtimeConfig"]
        .as_object_mut()
        .unwrap()
        .remove("gcsOutputDirectory");
    bad.files
        .insert(VERTEX_PIPELINE_JOB_FILE.into(), job.to_string());
    let err = exec.submit(&bad).await.unwrap_err();
    assert!(matches!(err, trainyard_core::Error::Validation(_)), "{err}");
}

pub async fn registry_flow(fake: &FakeGoogle) {
    seed_pushed_models(fake);
    let cfg = fake.config();
    let reg = VertexModelRegistry::new(http(&cfg), &cfg);
    let mut model = registered_model("Shop Recs Retrieval");
    let mut r = run(17, 3, "shop");
    r.results.recall_at_100 = Some(0.4213);
    r.results.is_blessed = Some(true);
    let extra: BTreeMap<String, String> = [("team".to_string(), "Recs".to_string())].into();
    let path = "gs://trainyard-test/runs/17/pushed_model";
    let v1 = reg
        .register(&model, &r, path, &extra)
        .await
        .expect("register new model");
    assert_eq!(
        v1.model_resource_name,
        "projects/123/locations/europe-central2/models/shop-recs-retrieval"
    );
    assert_eq!(v1.version, "1");
    let uploads = fake.requests_to("POST", "models:upload");
    let body = uploads[0].request.clone().unwrap();
    assert_eq!(body["modelId"], "shop-recs-retrieval");
    assert!(body.get("parentModel").is_none());
    let m = &body["model"];
    assert_eq!(
        m["artifactUri"],
        "gs://trainyard-test/runs/17/pushed_model/1768842986"
    );
    assert_eq!(m["labels"]["training_run_id"], "17");
    assert_eq!(m["labels"]["model_type"], "retrieval");
    assert_eq!(m["labels"]["is_blessed"], "true");
    assert_eq!(m["labels"]["recall_at_100"], "0_4213");
    assert_eq!(m["labels"]["team"], "recs");
    assert_eq!(m["versionAliases"], json!(["run-3"]));
    assert_eq!(
        m["containerSpec"]["imageUri"],
        cfg.serving_image(RetrievalAlgorithm::BruteForce)
    );

    model.vertex_model_resource_name = v1.model_resource_name.clone();
    let mut r2 = run(18, 4, "shop");
    r2.results.is_blessed = Some(false);
    let v2 = reg
        .register(&model, &r2, path, &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(v2.version, "2");
    // retried: found by its training_run_id label, no twin version
    let again = reg
        .register(&model, &r2, path, &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(again, v2);
    let uploads = fake.requests_to("POST", "models:upload");
    assert_eq!(uploads.len(), 2);
    assert_eq!(
        uploads[1].request.as_ref().unwrap()["parentModel"],
        v1.model_resource_name.as_str()
    );
    assert_eq!(
        uploads[1].request.as_ref().unwrap()["model"]["labels"]["is_blessed"],
        "false"
    );
    // A record that lost its resource name: the model id exists, so it becomes a version.
    let fresh = registered_model("Shop Recs Retrieval");
    let v3 = reg
        .register(&fresh, &run(19, 5, "shop"), path, &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(v3.version, "3");
    let versions = reg.list_versions(&model).await.unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| v.version.as_str())
            .collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    assert!(fake
        .requests_to("GET", ":listVersions")
        .iter()
        .any(|e| e.query.iter().any(|(k, _)| k == "pageToken")));
    // nothing to register: no saved_model.pb anywhere
    let err = reg
        .register(
            &model,
            &run(21, 7, "shop"),
            "gs://trainyard-test/runs/none/pushed_model",
            &BTreeMap::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no version folder"), "{err}");
}

pub async fn endpoints_flow(fake: &FakeGoogle) {
    let cfg = fake.config();
    let model = "projects/123/locations/europe-central2/models/shop-recs-retrieval";
    fake.add_endpoint(json!({
        "name": "projects/123/locations/europe-central2/endpoints/5550001",
        "displayName": "recs-endpoint",
        "deployedModels": [{"id": "111", "model": model, "modelVersionId": "2",
            "displayName": "shop-recs-retrieval", "createTime": "2026-11-27T10:00:00Z",
            "dedicatedResources": {"machineSpec": {"machineType": "n1-standard-2"}, "minReplicaCount": 1, "maxReplicaCount": 2}}],
        "etag": "AMEw9yN", "createTime": "2026-11-27T10:00:00Z", "updateTime": "2026-11-27T10:00:00Z"
    }));
    let ep = VertexEndpoints::new(http(&cfg), &cfg);
    assert_eq!(
        ep.live_status(None, model, Some("2"), true).await,
        LiveDeploymentStatus::Deployed
    );
    assert_eq!(
        ep.live_status(None, &format!("{model}@2"), None, false)
            .await,
        LiveDeploymentStatus::Deployed
    );
    assert_eq!(
        ep.live_status(None, model, Some("1"), true).await,
        LiveDeploymentStatus::Idle
    );
    assert_eq!(
        ep.live_status(
            Some("projects/123/locations/europe-central2/endpoints/5550001"),
            model,
            Some("1"),
            false
        )
        .await,
        LiveDeploymentStatus::NotBlessed
    );
    // a missing endpoint: nothing is deployed
    assert_eq!(
        ep.live_status(Some("no-such-endpoint"), model, None, true)
            .await,
        LiveDeploymentStatus::Idle
    );
    // an API failure: unknown, with the error kept
    let mut dead = cfg.clone();
    dead.endpoints.vertex = Some("http://127.0.0.1:9".into());
    dead.retry.max_attempts = 2;
    let ep = VertexEndpoints::new(http(&dead), &dead);
    match ep.live_status(None, model, None, true).await {
        LiveDeploymentStatus::Unknown { error } => {
            assert!(error.contains("connection failed"), "{error}")
        }
        other => panic!("expected unknown, got {other:?}"),
    }
}

/// Vertex AI endpoints as a deploy target: create the endpoint, deploy a registered version
/// with the preset's machine and replicas and all traffic, move to the next version (the old
/// one undeployed after), redeploy without repeating, undeploy.
pub async fn vertex_deploy_flow(fake: &FakeGoogle) {
    let cfg = fake.config();
    let model = "projects/123/locations/europe-central2/models/shop-vertex";
    fake.state.lock().unwrap().models.insert(
        model.into(),
        vec![
            json!({"name": model, "versionId": "1", "displayName": "shop-vertex"}),
            json!({"name": model, "versionId": "2", "displayName": "shop-vertex"}),
        ],
    );
    let ep = VertexEndpoints::new(http(&cfg), &cfg);
    assert_eq!(
        ep.serving_target(),
        trainyard_core::deployment::ServingTarget::VertexEndpoint
    );
    let mut req = DeployRequest {
        service_name: "shop-vertex-serving".into(),
        model_path: format!("{model}@1"),
        image: String::new(),
        config: DeploymentConfig::from_preset(DeploymentPreset::Production),
        labels: Default::default(),
    };
    assert!(!ep.is_serving(&req.service_name).await.unwrap());
    let url = ep.deploy(&req).await.expect("deploy v1");
    let created = fake.requests_to("POST", "/endpoints");
    let creates: Vec<_> = created
        .iter()
        .filter(|e| e.path.ends_with("/endpoints"))
        .collect();
    assert_eq!(creates.len(), 1, "the endpoint is created");
    assert_eq!(
        creates[0].request.as_ref().unwrap()["displayName"],
        "shop-vertex-serving"
    );
    let name = fake.endpoint("shop-vertex-serving").unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(url, format!("{}/v1/{name}:predict", cfg.vertex_base_url()));
    let deploys = fake.requests_to("POST", ":deployModel");
    assert_eq!(deploys.len(), 1);
    assert_eq!(
        deploys[0].request.clone().unwrap(),
        json!({"deployedModel": {"model": format!("{model}@1"), "displayName": "shop-vertex-serving",
            "dedicatedResources": {"machineSpec": {"machineType": "n1-standard-2"},
                "minReplicaCount": 1, "maxReplicaCount": 10}},
            "trafficSplit": {"0": 100}})
    );
    assert!(ep
        .serves(&req.service_name, &format!("{model}@1"))
        .await
        .unwrap());
    assert!(!ep
        .serves(&req.service_name, &format!("{model}@2"))
        .await
        .unwrap());

    // the next version, high traffic: the same endpoint, all traffic to it, the old one gone
    req.model_path = format!("{model}@2");
    req.config = DeploymentConfig::from_preset(DeploymentPreset::HighTraffic);
    ep.deploy(&req).await.expect("deploy v2");
    let creates = fake
        .requests_to("POST", "/endpoints")
        .into_iter()
        .filter(|e| e.path.ends_with("/endpoints"))
        .count();
    assert_eq!(creates, 1, "the endpoint is reused");
    let deploys = fake.requests_to("POST", ":deployModel");
    assert_eq!(deploys.len(), 2);
    let body = deploys[1].request.clone().unwrap();
    assert_eq!(
        body["deployedModel"]["dedicatedResources"],
        json!({"machineSpec": {"machineType": "n1-standard-4"}, "minReplicaCount": 2, "maxReplicaCount": 50})
    );
    let undeploys = fake.requests_to("POST", ":undeployModel");
    assert_eq!(undeploys.len(), 1, "the old version is undeployed after");
    let endpoint = fake.endpoint("shop-vertex-serving").unwrap();
    let deployed = endpoint["deployedModels"].as_array().unwrap();
    assert_eq!(deployed.len(), 1);
    assert_eq!(deployed[0]["modelVersionId"], "2");
    let new_id = deployed[0]["id"].as_str().unwrap();
    assert_eq!(endpoint["trafficSplit"], json!({ new_id: 100 }));
    assert_eq!(
        undeploys[0].request.clone().unwrap()["trafficSplit"],
        json!({ new_id: 100 })
    );
    assert!(!ep
        .serves(&req.service_name, &format!("{model}@1"))
        .await
        .unwrap());
    assert!(ep
        .serves(&req.service_name, &format!("{model}@2"))
        .await
        .unwrap());
    // a retried deploy of what is already there repeats nothing
    ep.deploy(&req).await.expect("redeploy v2");
    assert_eq!(fake.requests_to("POST", ":deployModel").len(), 2);

    // bad input is refused before any request
    let before = fake.exchanges().len();
    let bad = DeployRequest {
        model_path: "gs://trainyard-test/runs/17/pushed_model".into(),
        ..req.clone()
    };
    let err = ep.deploy(&bad).await.unwrap_err();
    assert!(
        matches!(err, trainyard_core::Error::Validation(_)),
        "{err:?}"
    );
    let huge = DeployRequest {
        config: DeploymentConfig {
            cpu: "64".into(),
            ..req.config.clone()
        },
        ..req.clone()
    };
    assert!(matches!(
        ep.deploy(&huge).await.unwrap_err(),
        trainyard_core::Error::Validation(_)
    ));
    assert_eq!(fake.exchanges().len(), before);

    // a refused deploy is an error, and leaves the served version alone
    fake.fail_requests("POST", ":deployModel", 400, "FAILED_PRECONDITION");
    req.model_path = format!("{model}@1");
    let err = ep.deploy(&req).await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    fake.clear_failures();
    assert!(ep
        .serves(&req.service_name, &format!("{model}@2"))
        .await
        .unwrap());

    // undeploy: no model left, the endpoint stays for the next deploy; twice is fine
    ep.undeploy(&req.service_name).await.expect("undeploy");
    assert!(!ep.is_serving(&req.service_name).await.unwrap());
    let endpoint = fake.endpoint("shop-vertex-serving").unwrap();
    assert_eq!(endpoint["deployedModels"], json!([]));
    ep.undeploy(&req.service_name)
        .await
        .expect("undeploy again");
    ep.undeploy("no-such-endpoint")
        .await
        .expect("undeploy of nothing");
}

pub async fn deploy_flow(fake: &FakeGoogle) {
    seed_pushed_models(fake);
    let cfg = fake.config();
    let dep = CloudRunDeployer::new(http(&cfg), &cfg);
    let mut req = DeployRequest {
        service_name: "shop-recs-serving".into(),
        model_path: "gs://trainyard-test/runs/17/pushed_model".into(),
        image: cfg.serving_image(RetrievalAlgorithm::Scann),
        config: DeploymentConfig::from_preset(DeploymentPreset::Development),
        labels: Default::default(),
    };
    let url = dep.deploy(&req).await.expect("deploy");
    assert_eq!(url, "https://shop-recs-serving-abc123-lm.a.run.app");
    let create = fake.requests_to("POST", "/services");
    assert_eq!(create.len(), 1);
    assert_eq!(
        create[0].query,
        vec![("serviceId".to_string(), "shop-recs-serving".to_string())]
    );
    let body = create[0].request.clone().unwrap();
    let c = &body["template"]["containers"][0];
    assert_eq!(c["image"], cfg.serving_image(RetrievalAlgorithm::Scann));
    assert!(c["image"].as_str().unwrap().contains("tf-serving-scann"));
    assert_eq!(
        c["env"][0],
        json!({"name": "MODEL_PATH", "value": "gs://trainyard-test/runs/17/pushed_model/1768842986"})
    );
    assert_eq!(
        c["resources"]["limits"],
        json!({"cpu": "1", "memory": "2Gi"})
    );
    assert_eq!(
        body["template"]["scaling"],
        json!({"minInstanceCount": 0, "maxInstanceCount": 2})
    );
    assert_eq!(body["template"]["timeout"], "300s");
    assert!(dep.is_serving("shop-recs-serving").await.unwrap());

    // redeploy with another preset updates the same service
    req.config = DeploymentConfig::from_preset(DeploymentPreset::HighTraffic);
    req.config.timeout = "600".into();
    let url2 = dep.deploy(&req).await.unwrap();
    assert_eq!(url2, url);
    let patch = fake.requests_to("PATCH", "/services/shop-recs-serving");
    assert_eq!(patch.len(), 1);
    let body = patch[0].request.clone().unwrap();
    assert_eq!(
        body["template"]["scaling"],
        json!({"minInstanceCount": 2, "maxInstanceCount": 50})
    );
    assert_eq!(body["template"]["timeout"], "600s");

    // bad names never reach the API
    let before = fake.exchanges().len();
    let mut bad = req.clone();
    bad.service_name = "Shop_Recs".into();
    let err = dep.deploy(&bad).await.unwrap_err();
    assert!(matches!(err, trainyard_core::Error::Validation(_)), "{err}");
    bad.service_name = format!("shop-{}-serving", "r".repeat(45));
    let err = dep.deploy(&bad).await.unwrap_err();
    assert!(err.to_string().contains("fewer than 50"), "{err}");
    assert_eq!(fake.exchanges().len(), before);

    dep.undeploy("shop-recs-serving").await.expect("undeploy");
    assert!(!dep.is_serving("shop-recs-serving").await.unwrap());
    dep.undeploy("shop-recs-serving")
        .await
        .expect("undeploy twice");
}

pub async fn scheduler_flow(fake: &FakeGoogle) {
    let cfg = fake.config();
    let trig = CloudSchedulerTrigger::new(http(&cfg), &cfg).unwrap();
    let mut s = schedule(7, "Europe/Berlin", "active");
    let name = trig.upsert(&s, "30 2 * * *").await.expect("create job");
    assert_eq!(
        name,
        "projects/test-project/locations/europe-central2/jobs/trainyard-schedule-7"
    );
    let create = fake.requests_to("POST", "/jobs");
    let job = create[0].request.clone().unwrap();
    assert_eq!(job["schedule"], "30 2 * * *");
    assert_eq!(job["timeZone"], "Europe/Berlin");
    let t = &job["httpTarget"];
    assert_eq!(
        t["uri"],
        "https://trainyard-abc-uc.a.run.app/api/training/schedules/7/webhook/"
    );
    assert_eq!(t["httpMethod"], "POST");
    assert_eq!(
        t["oidcToken"],
        json!({"serviceAccountEmail": "trainer@test-project.iam.gserviceaccount.com", "audience": "https://trainyard-abc-uc.a.run.app"})
    );
    let payload = base64::engine::general_purpose::STANDARD
        .decode(t["body"].as_str().unwrap())
        .unwrap();
    let payload: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(payload["schedule_id"], 7);

    s.cloud_scheduler_job_name = name.clone();
    s.timing.schedule_timezone = "America/New_York".into();
    assert_eq!(trig.upsert(&s, "0 3 * * 1").await.unwrap(), name);
    let patch = fake.requests_to("PATCH", "/jobs/trainyard-schedule-7");
    assert_eq!(patch.len(), 1);
    assert_eq!(patch[0].request.as_ref().unwrap()["schedule"], "0 3 * * 1");
    assert!(patch[0].query.iter().any(|(k, _)| k == "updateMask"));
    let state = |n: &str| fake.state.lock().unwrap().jobs[n]["state"].clone();
    trig.pause(&name).await.unwrap();
    assert_eq!(state(&name), "PAUSED");
    trig.resume(&name).await.unwrap();
    assert_eq!(state(&name), "ENABLED");
    trig.run_now(&name).await.unwrap();
    trig.delete(&name).await.unwrap();
    assert!(!fake.state.lock().unwrap().jobs.contains_key(&name));
    trig.delete(&name)
        .await
        .expect("deleting a deleted job is fine");
    // the job vanished behind our back: the upsert recreates it
    assert_eq!(trig.upsert(&s, "0 3 * * 1").await.unwrap(), name);
    assert_eq!(state(&name), "ENABLED");
    // a paused schedule gets a paused job
    let paused = schedule(8, "UTC", "paused");
    let n8 = trig.upsert(&paused, "15 * * * *").await.unwrap();
    assert_eq!(state(&n8), "PAUSED");
    let err = trig.upsert(&paused, "daily").await.unwrap_err();
    assert!(matches!(err, trainyard_core::Error::Validation(_)), "{err}");
}

pub async fn artifact_flow(fake: &FakeGoogle) {
    let cfg = fake.config();
    let store = GcsClient::from_config(http(&cfg), &cfg);
    let notes = br#"{"hello": "world"}"#;
    store
        .write("runs/42/notes.json", notes)
        .await
        .expect("write");
    store
        .write("gs://trainyard-test/runs/42/a b/c?.txt", b"odd name")
        .await
        .unwrap();
    for i in 0..3 {
        store
            .write(&format!("runs/42/extra/{i}.bin"), &[i as u8; 3])
            .await
            .unwrap();
    }
    assert_eq!(store.read("runs/42/notes.json").await.unwrap(), notes);
    assert_eq!(
        store
            .read("gs://trainyard-test/runs/42/a b/c?.txt")
            .await
            .unwrap(),
        b"odd name"
    );
    let listed = store.list("gs://trainyard-test/runs/42/").await.unwrap();
    assert_eq!(listed.len(), 5, "{listed:?}");
    assert!(listed.contains(&"gs://trainyard-test/runs/42/a b/c?.txt".to_string()));
    let names = store.list("runs/42/extra/").await.unwrap();
    assert_eq!(
        names,
        [
            "runs/42/extra/0.bin",
            "runs/42/extra/1.bin",
            "runs/42/extra/2.bin"
        ]
    );
    assert!(
        fake.requests_to("GET", "/storage/v1/b/trainyard-test/o")
            .iter()
            .any(|e| e.query.iter().any(|(k, _)| k == "pageToken")),
        "listing must follow nextPageToken"
    );
    let err = store.read("runs/42/missing.json").await.unwrap_err();
    assert!(
        matches!(err, trainyard_core::Error::NotFound { .. }),
        "{err}"
    );
}

/// `runs logs` of a Vertex run: the pipeline job's tasks (pipelineJobs.get), then their
/// Cloud Logging entries (entries:list, paged), the whole job or one component.
pub async fn logs_flow(fake: &FakeGoogle) {
    let cfg = fake.config();
    let exec = VertexPipelineExecutor::new(http(&cfg), &cfg);
    let r = run(18, 4, "Shop Logs");
    let sub = PipelineSubmission {
        run: r.clone(),
        pipeline_root: "gs://trainyard-test/pipeline_root/logs".into(),
        files: BTreeMap::from([(
            VERTEX_PIPELINE_JOB_FILE.to_string(),
            pipeline_job_json("shop-logs-training-4"),
        )]),
    };
    let h = exec.submit(&sub).await.expect("submit");
    for _ in 0..3 {
        exec.poll(&h).await.expect("poll"); // the fake's job runs to its end
    }
    let logs = CloudLogging::new(http(&cfg), &cfg);
    let all = logs.read_logs(&h, None, 100).await.expect("read logs");
    assert_eq!(
        all.components,
        [
            "BigQueryExampleGen",
            "Evaluator",
            "Pusher",
            "SchemaGen",
            "StatisticsGen",
            "Trainer",
            "Transform"
        ]
    );
    // the job's event, then two lines per task's custom job, across pages of 2
    assert_eq!(all.entries.len(), 1 + 2 * 7, "{all:?}");
    assert!(!all.truncated);
    assert_eq!(all.entries[0].component, None);
    assert!(
        all.entries[0].message.contains(&h.job_id),
        "{:?}",
        all.entries[0]
    );
    let trainer: Vec<_> = all
        .entries
        .iter()
        .filter(|e| e.component.as_deref() == Some("Trainer"))
        .collect();
    assert_eq!(trainer.len(), 2);
    assert_eq!(trainer[1].severity, "ERROR");
    let sent = fake.requests_to("POST", "/v2/entries:list");
    assert!(sent.len() >= 8, "paged: {}", sent.len());
    let body = sent[0].request.clone().unwrap();
    assert_eq!(body["resourceNames"], json!(["projects/test-project"]));
    assert_eq!(body["orderBy"], "timestamp asc");
    let filter = body["filter"].as_str().unwrap();
    assert!(
        filter.contains(&format!("resource.labels.pipeline_job_id=\"{}\"", h.job_id))
            && filter.contains("resource.type=\"ml_job\"")
            && filter.contains("timestamp>="),
        "{filter}"
    );
    assert_eq!(sent[1].request.as_ref().unwrap()["pageToken"], "2");

    // one component, case-insensitively; a limit truncates
    let one = logs
        .read_logs(&h, Some("trainer"), 1)
        .await
        .expect("trainer logs");
    assert_eq!(one.entries.len(), 1);
    assert!(one.truncated);
    assert_eq!(one.entries[0].component.as_deref(), Some("Trainer"));
    assert!(!one.source.contains("pipeline_job_id"), "{}", one.source);
    let err = logs.read_logs(&h, Some("Tuner"), 10).await.unwrap_err();
    assert!(
        matches!(&err, trainyard_core::Error::NotFound { id, .. } if id.contains("Trainer, Transform")),
        "{err:?}"
    );
}

pub async fn all_flows(fake: &FakeGoogle) {
    pipeline_flow(fake).await;
    logs_flow(fake).await;
    registry_flow(fake).await;
    endpoints_flow(fake).await;
    vertex_deploy_flow(fake).await;
    deploy_flow(fake).await;
    scheduler_flow(fake).await;
    artifact_flow(fake).await;
}
