//! The platform opened with the Google Cloud backends (`Backend::Gcp`, from trainyard.toml)
//! against the recording stand-in for Google's APIs: a run is followed from the store by a
//! platform that did not submit it, a GPU run refused for quota after creation moves down the
//! fallback ladder, and Cloud Run gets the configured image and a name within its limit.

#[path = "../../trainyard-gcp/tests/common/mod.rs"]
mod common;

use std::time::Duration;

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
    let dir = tempfile::tempdir().unwrap();
    let mut gcp = fake.config_with_credentials(dir.path()).await;
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

/// A run trained, registered and served by the Google Cloud backend: submitted, followed to
/// its registered version, deployed on Cloud Run with the configured image, scheduled in
/// Cloud Scheduler; and on a Vertex AI endpoint of its model, where the next version takes
/// all the traffic, the live status is read from the endpoint (unknown with the error when it
/// cannot be), and undeploy stops it.
#[tokio::test]
async fn submit_register_deploy_on_cloud_run_and_a_vertex_endpoint_then_schedule() {
    use trainyard::core::deployment::{DeployTarget, LiveDeploymentStatus};
    use trainyard::core::model_config::RetrievalAlgorithm;
    use trainyard::core::schedule::{CatchUpPolicy, ConcurrencyPolicy, ScheduleType};
    use trainyard::NewSchedule;

    let fake = FakeGoogle::start().await;
    let dir = project(&fake).await;
    let p = Platform::open_with(dir.path(), Backend::Gcp).await.unwrap();
    let trained = |name: &'static str| {
        let (p, fake) = (&p, &fake);
        async move {
            let run = p
                .training()
                .create_training_run(new_run(name, GpuConfig::default()))
                .await
                .unwrap();
            let run = p.submit(run.id).await.unwrap();
            put_outputs(fake, run.id, run.vertex_pipeline_job_id.as_deref().unwrap());
            let done = follow(p, run.id).await;
            assert!(
                done.vertex_model_version.is_some(),
                "registered: {:?}",
                done.status
            );
            done
        }
    };
    let first = trained("shop retrieval").await;
    let model = first.vertex_model_resource_name.clone().unwrap();
    assert!(model.starts_with("projects/"), "{model}");

    // Cloud Run: the image configured for the run's algorithm
    let on_run = p
        .deployments()
        .deploy(first.id, &DeployOptions::default())
        .await
        .unwrap();
    assert_eq!(on_run.status, RunStatus::Deployed);
    let posts = fake.requests_to("POST", "/services");
    assert_eq!(posts.len(), 1);
    let image = &posts[0].request.as_ref().unwrap()["template"]["containers"][0]["image"];
    let want = match first.config.model_config.retrieval_algorithm {
        RetrievalAlgorithm::Scann => SCANN_IMAGE,
        RetrievalAlgorithm::BruteForce => NATIVE_IMAGE,
    };
    assert_eq!(image, want);

    // Vertex AI endpoint: its own default name, created, the version deployed with the
    // preset's machine and replicas and all the traffic
    let vertex = DeployOptions {
        target: Some(DeployTarget::VertexEndpoint),
        preset: Some(trainyard::core::config::DeploymentPreset::HighTraffic),
        ..DeployOptions::default()
    };
    let deployed = p.deployments().deploy(first.id, &vertex).await.unwrap();
    assert_eq!(deployed.status, RunStatus::Deployed);
    let view = p.deployments().status(first.id).await.unwrap();
    let ep = view.endpoint.clone().unwrap();
    assert_eq!(ep.target, DeployTarget::VertexEndpoint);
    assert!(
        ep.service_name.ends_with("-endpoint"),
        "{}",
        ep.service_name
    );
    assert_eq!(view.status, LiveDeploymentStatus::Deployed);
    assert!(view.has_active_endpoint);
    let on_google = fake.endpoint(&ep.service_name).expect("endpoint created");
    assert_eq!(
        ep.service_url,
        format!(
            "{}/v1/{}:predict",
            fake.bases["aiplatform"],
            on_google["name"].as_str().unwrap()
        )
    );
    let deploys = fake.requests_to("POST", ":deployModel");
    assert_eq!(deploys.len(), 1);
    let body = deploys[0].request.clone().unwrap();
    assert_eq!(
        body["deployedModel"]["model"],
        format!("{model}@{}", first.vertex_model_version.as_deref().unwrap())
    );
    assert_eq!(
        body["deployedModel"]["dedicatedResources"],
        json!({"machineSpec": {"machineType": "n1-standard-4"}, "minReplicaCount": 2, "maxReplicaCount": 50})
    );
    assert_eq!(body["trafficSplit"], json!({"0": 100}));
    assert_eq!(
        fake.requests_to("POST", "/services").len(),
        1,
        "Cloud Run untouched"
    );

    // the next version on the same endpoint (its target is the endpoint's): all traffic to
    // it, the old version undeployed after, the old run released
    let second = trained("shop retrieval").await;
    assert_ne!(second.vertex_model_version, first.vertex_model_version);
    let again = DeployOptions {
        endpoint: Some(ep.service_name.clone()),
        ..DeployOptions::default()
    };
    p.deployments().deploy(second.id, &again).await.unwrap();
    let on_google = fake.endpoint(&ep.service_name).unwrap();
    let models = on_google["deployedModels"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{on_google}");
    assert_eq!(
        models[0]["modelVersionId"].as_str(),
        second.vertex_model_version.as_deref()
    );
    assert_eq!(
        on_google["trafficSplit"],
        json!({ models[0]["id"].as_str().unwrap(): 100 })
    );
    assert_eq!(fake.requests_to("POST", ":undeployModel").len(), 1);
    assert_eq!(
        p.deployments().status(second.id).await.unwrap().status,
        LiveDeploymentStatus::Deployed
    );
    let first_now = p.training().get(first.id).await.unwrap();
    assert_eq!(first_now.status, RunStatus::Completed);
    // a Cloud Run deploy to the Vertex endpoint is refused before anything changes
    let wrong = DeployOptions {
        endpoint: Some(ep.service_name.clone()),
        target: Some(DeployTarget::Service),
        ..DeployOptions::default()
    };
    let err = p.deployments().deploy(first.id, &wrong).await.unwrap_err();
    assert!(matches!(err, trainyard::core::Error::Conflict(_)), "{err}");

    // the endpoint cannot be read: unknown, with the error; nothing recorded changes
    fake.fail_requests("GET", "/endpoints", 403, "PERMISSION_DENIED");
    let view = p.deployments().status(second.id).await.unwrap();
    match &view.status {
        LiveDeploymentStatus::Unknown { error } => {
            assert!(error.contains("injected failure"), "{error}")
        }
        other => panic!("expected unknown, got {other:?}"),
    }
    assert!(!view.has_active_endpoint);
    assert_eq!(view.run_status, RunStatus::Deployed);
    fake.clear_failures();

    // undeploy: the endpoint serves nothing, the run is back to completed and idle
    p.deployments().undeploy(&ep.service_name).await.unwrap();
    assert_eq!(
        fake.endpoint(&ep.service_name).unwrap()["deployedModels"],
        json!([])
    );
    let view = p.deployments().status(second.id).await.unwrap();
    assert_eq!(view.run_status, RunStatus::Completed);
    assert_eq!(view.status, LiveDeploymentStatus::Idle);

    // without the Google Cloud backend, a Vertex deploy is refused as input
    let local = Platform::open(dir.path()).await.unwrap();
    let err = local
        .deployments()
        .deploy(second.id, &vertex)
        .await
        .unwrap_err();
    assert!(
        matches!(err, trainyard::core::Error::Validation(_))
            && err.to_string().contains("Google Cloud backend"),
        "{err}"
    );

    // schedule: a Cloud Scheduler job that calls the webhook
    let schedule = p
        .schedules()
        .create_from_run(
            first.id,
            NewSchedule {
                name: "nightly".into(),
                description: String::new(),
                timing: trainyard::core::timing::ScheduleTiming {
                    schedule_type: ScheduleType::Daily,
                    scheduled_datetime: None,
                    schedule_time: Some("02:30".into()),
                    schedule_day_of_week: None,
                    schedule_day_of_month: None,
                    schedule_timezone: "Europe/Warsaw".into(),
                },
                catch_up: CatchUpPolicy::Once,
                concurrency: ConcurrencyPolicy::Allow,
            },
        )
        .await
        .unwrap();
    let jobs = fake.requests_to("POST", "/jobs");
    assert_eq!(jobs.len(), 1);
    let job = jobs[0].request.clone().unwrap();
    assert_eq!(
        job["name"].as_str(),
        Some(schedule.cloud_scheduler_job_name.as_str())
    );
    assert_eq!(job["schedule"], "30 2 * * *");
    assert_eq!(job["timeZone"], "Europe/Warsaw");
    assert!(
        job["httpTarget"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("https://trainyard-abc-uc.a.run.app/"),
        "{job}"
    );

    // a preemptible GPU run: SPOT VMs in the GPU region, as submitted through the platform
    let spot = p
        .training()
        .create_training_run(new_run(
            "spot run",
            GpuConfig {
                gpu_enabled: true,
                preemptible: true,
                ..GpuConfig::default()
            },
        ))
        .await
        .unwrap();
    p.submit(spot.id).await.unwrap();
    let posted = creates(&fake).pop().unwrap();
    let text = posted["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
        ["custom_config"]["runtimeValue"]["constantValue"]["stringValue"]
        .as_str()
        .unwrap();
    let custom: Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        custom["ai_platform_training_args"]["scheduling"],
        json!({"strategy": "SPOT"})
    );
    assert_eq!(custom["ai_platform_vertex_region"], "europe-west4");
    // the trainer knows its trainyard run (its MLflow run is tagged with it), and the run's
    // key, which another project's run with the same id does not have
    assert_eq!(custom["trainyard_run_id"], json!(spot.id));
    let key = trainyard::core::tracking::RunKey::of(&spot).unwrap();
    assert_eq!(custom["trainyard_run_key"], json!(key.as_str()));
    assert!(key.as_str().starts_with(&format!("{}-", spot.id)), "{key}");
}
