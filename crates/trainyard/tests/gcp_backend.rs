//! The platform opened with the Google Cloud backends (`Backend::Gcp`, from trainyard.toml)
//! against the recording stand-in for Google's APIs: a run is followed from the store by a
//! platform that did not submit it, a GPU run refused for quota after creation moves down the
//! fallback ladder, and Cloud Run gets the configured image and a name within its limit.

#[path = "../../trainyard-gcp/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use axum::routing::post;
use serde_json::{json, Value};

use common::FakeGoogle;
use trainyard::core::config::{GpuConfig, GpuType, GPU_ATTEMPTS_ARTIFACT};
use trainyard::core::run::{NewTrainingRun, RunConfig, TrainingRun};
use trainyard::core::stages::StageName;
use trainyard::{Backend, DeployOptions, Platform, ProjectConfig, CONFIG_FILE};
use trainyard_core::RunStatus;
use trainyard_gcp::vertex_pipelines::attempt_job_id;

const BUCKET: &str = "trainyard-test";
const NATIVE_IMAGE: &str = "europe-central2-docker.pkg.dev/test-project/serving/native:7";
const SCANN_IMAGE: &str = "europe-central2-docker.pkg.dev/test-project/serving/scann:7";

/// A project whose trainyard.toml points every Google API at `fake` (and OAuth at a token
/// endpoint of its own), with serving images and a GPU region configured.
async fn project(fake: &FakeGoogle) -> tempfile::TempDir {
    let token = axum::Router::new().route(
        "/token",
        post(|| async {
            axum::Json(
                json!({"access_token": "ya29.fake", "expires_in": 3600, "token_type": "Bearer"}),
            )
        }),
    );
    let token_addr = common::serve(token).await;
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("adc.json");
    std::fs::write(
        &creds,
        r#"{"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"}"#,
    )
    .unwrap();
    let mut gcp = fake.config();
    gcp.credentials_file = Some(creds);
    gcp.endpoints.token = Some(format!("http://{token_addr}/token"));
    gcp.gpu_region = Some("europe-west4".into());
    gcp.images.brute_force = NATIVE_IMAGE.into();
    gcp.images.scann = SCANN_IMAGE.into();
    let config = ProjectConfig {
        gcp: Some(gcp),
        ..ProjectConfig::default()
    };
    std::fs::write(dir.path().join(CONFIG_FILE), config.to_toml()).unwrap();
    Platform::init(dir.path()).await.unwrap();
    dir
}

fn new_run(name: &str, gpu: GpuConfig) -> NewTrainingRun {
    NewTrainingRun {
        ml_model: "shop".into(),
        name: name.into(),
        description: String::new(),
        config: RunConfig {
            gpu_config: gpu,
            ..RunConfig::default()
        },
    }
}

/// What the fake's succeeded job `job_id` of run `run_id` points at: training_metrics.json
/// beside the Trainer's model_run, and a pushed SavedModel.
fn put_outputs(fake: &FakeGoogle, run_id: i64, job_id: &str) {
    fake.put_object(
        BUCKET,
        &format!(
            "pipeline_root/runs/{run_id}/123/{job_id}/Trainer_7/model_run/training_metrics.json"
        ),
        common::flows::training_metrics().to_string().as_bytes(),
    );
    for f in ["saved_model.pb", "variables/variables.index"] {
        fake.put_object(
            BUCKET,
            &format!(
                "pipeline_root/runs/{run_id}/123/{job_id}/Pusher_7/pushed_model/1768842986/{f}"
            ),
            b"x",
        );
    }
}

fn creates(fake: &FakeGoogle) -> Vec<Value> {
    fake.requests_to("POST", "/pipelineJobs")
        .into_iter()
        .filter(|e| e.status == 200 && !e.path.ends_with(":cancel"))
        .map(|e| e.request.unwrap())
        .collect()
}

async fn follow(p: &Platform, id: i64) -> TrainingRun {
    p.follow(
        id,
        trainyard::Until::Settled,
        Duration::from_secs(30),
        |_, _| {},
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_reopened_platform_follows_a_run_from_the_store_and_deploys_it_as_configured() {
    let fake = FakeGoogle::start().await;
    let dir = project(&fake).await;
    let name = "Nightly shop retrieval with every feature we have so far";
    let run = {
        let p = Platform::open_with(dir.path(), Backend::Gcp).await.unwrap();
        let training = p.training();
        let run = training
            .create_training_run(new_run(name, GpuConfig::default()))
            .await
            .unwrap();
        let run = p.submit(run.id).await.unwrap();
        assert_eq!(run.status, RunStatus::Running);
        // this server sees the job pending and running, then goes away
        let handle = trainyard::handle_of(&run).unwrap();
        for _ in 0..2 {
            for e in training.poll_events(&handle).await.unwrap() {
                training.handle_event(run.id, &e).await.unwrap();
            }
        }
        run
    };
    let job_id = run.vertex_pipeline_job_id.clone().unwrap();
    put_outputs(&fake, run.id, &job_id);

    let p = Platform::open_with(dir.path(), Backend::Gcp).await.unwrap();
    let done = follow(&p, run.id).await;
    assert!(done.status.training_finished(), "{:?}", done.status);
    assert_eq!(done.results.recall_at_100, Some(0.4213));
    assert_eq!(done.results.is_blessed, Some(true));
    for stage in [StageName::Examples, StageName::Train, StageName::Evaluate] {
        assert_eq!(
            done.stage_details.get(stage).status,
            trainyard::core::stages::StageStatus::Completed,
            "{stage:?}"
        );
    }
    assert_eq!(creates(&fake).len(), 1, "the job was submitted once");
    assert_eq!(p.training().history(run.id).await.unwrap().len(), 3);
    // a second follow finds nothing more to do
    let again = follow(&p, run.id).await;
    assert_eq!(again.version, done.version);

    // Cloud Run: the configured image, a default name within its 49 characters
    let run = p.training().get(run.id).await.unwrap();
    assert!(
        run.vertex_model_version.is_some(),
        "registered: {:?} {:?}",
        run.status,
        run.stage_details.get(StageName::Register)
    );
    let deployed = p
        .deployments()
        .deploy(run.id, &DeployOptions::default())
        .await
        .unwrap();
    assert_eq!(deployed.status, RunStatus::Deployed);
    let posts = fake.requests_to("POST", "/services");
    assert_eq!(posts.len(), 1);
    let service_id = &posts[0]
        .query
        .iter()
        .find(|(k, _)| k == "serviceId")
        .unwrap()
        .1;
    assert!(service_id.len() <= 49, "{service_id}");
    assert!(service_id.ends_with("-serving"), "{service_id}");
    let image = posts[0].request.as_ref().unwrap()["template"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        image == NATIVE_IMAGE || image == SCANN_IMAGE,
        "the configured image, not a bare name: {image}"
    );
    // a longer name asked for explicitly is refused before anything is deployed
    let long = DeployOptions {
        service_name: Some("a".repeat(50)),
        ..DeployOptions::default()
    };
    let err = p.deployments().deploy(run.id, &long).await.unwrap_err();
    assert!(err.to_string().contains("at most 49"), "{err}");
    assert_eq!(fake.requests_to("POST", "/services").len(), 1);
}

#[tokio::test]
async fn a_gpu_run_refused_for_quota_after_creation_moves_down_the_ladder() {
    let fake = FakeGoogle::start().await;
    fake.fail_trainer(
        "NVIDIA_TESLA_T4",
        2,
        json!({"code": 8, "message": "The following quota metrics exceed quota limits: aiplatform.googleapis.com/custom_model_training_nvidia_t4_gpus"}),
    );
    let dir = project(&fake).await;
    let p = Platform::open_with(dir.path(), Backend::Gcp).await.unwrap();
    let training = p.training();
    // 2x T4 and no training_region: europe-central2 has no GPUs, so gpu_region takes it
    let gpu = GpuConfig {
        gpu_enabled: true,
        ..GpuConfig::default()
    };
    let run = training
        .create_training_run(new_run("gpu run", gpu))
        .await
        .unwrap();
    let run = p.submit(run.id).await.unwrap();
    let first = run.vertex_pipeline_job_id.clone().unwrap();
    let second = attempt_job_id(&first, 2);
    put_outputs(&fake, run.id, &second);

    let done = follow(&p, run.id).await;
    assert!(done.status.training_finished(), "{:?}", done.status);
    assert_eq!(
        done.vertex_pipeline_job_id.as_deref(),
        Some(second.as_str())
    );
    let posted = creates(&fake);
    assert_eq!(posted.len(), 2);
    let region = |body: &Value| -> String {
        let text = body["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
            ["custom_config"]["runtimeValue"]["constantValue"]["stringValue"]
            .as_str()
            .unwrap();
        let c: Value = serde_json::from_str(text).unwrap();
        c["ai_platform_vertex_region"].as_str().unwrap().to_string()
    };
    assert_eq!(region(&posted[0]), "europe-west4", "gpu_region split");
    let g = &done.config.gpu_config;
    assert_eq!(
        (g.gpu_type, g.gpu_count, g.machine_type.as_str()),
        (GpuType::NvidiaTeslaT4, 4, "n1-standard-32")
    );
    assert_eq!(g.training_region.as_deref(), Some("europe-west4"));
    let attempts: Vec<Value> =
        serde_json::from_str(&done.artifacts[GPU_ATTEMPTS_ARTIFACT]).unwrap();
    let rows: Vec<(&str, u64, &str)> = attempts
        .iter()
        .map(|a| {
            (
                a["machine_type"].as_str().unwrap(),
                a["accelerator_count"].as_u64().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("n1-standard-16", 2, "accepted"),
            ("n1-standard-16", 2, "quota"),
            ("n1-standard-32", 4, "accepted"),
        ]
    );
    assert!(attempts[1]["error"]
        .as_str()
        .unwrap()
        .contains("custom_model_training_nvidia_t4_gpus"));
    assert_eq!(attempts[1]["region"], "europe-west4");
}
