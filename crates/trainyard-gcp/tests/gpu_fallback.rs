//! The GPU fallback ladder against a local server faking Vertex AI's pipelineJobs.create: it
//! answers by the accelerators the posted job's Trainer asks for, with Vertex's error shapes.
//! Posted jobs are real ones from the pipeline compiler, and every rung's job is checked
//! against what the compiler itself makes for that rung's GpuConfig.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use common::{config_for, google_error, serve};
use trainyard_core::config::{
    DataSource, EvaluatorConfig, GpuAttemptOutcome, GpuConfig, GpuLadder, GpuRung, GpuType,
    TrainingParams,
};
use trainyard_core::model_config::ModelType;
use trainyard_core::ports::{PipelineExecutor, PipelineSubmission, VERTEX_PIPELINE_JOB_FILE};
use trainyard_core::run::TrainingRun;
use trainyard_gcp::vertex_pipelines::SubmitError;
use trainyard_gcp::{GcpConfig, GcpError, GcpHttp, VertexPipelineExecutor};
use trainyard_pipeline::{vertex, PipelineInputs};

const T4_QUOTA: &str = "The following quota metrics exceed quota limits: aiplatform.googleapis.com/custom_model_training_nvidia_t4_gpus";
const L4_CAPACITY: &str =
    "The zone does not have enough resources available to fulfill the request. Try a different zone, or try again later.";

/// What the fake answers for a Trainer asking for `(accelerator_type, count)`.
type Answer = (u16, String);

#[derive(Clone, Default)]
struct FakeVertex {
    answers: Arc<HashMap<(String, u64), Answer>>,
    /// (pipelineJobId, body) of every create, in order.
    creates: Arc<Mutex<Vec<(String, Value)>>>,
}

impl FakeVertex {
    fn creates(&self) -> Vec<(String, Value)> {
        self.creates.lock().unwrap().clone()
    }

    fn accepted(&self) -> usize {
        self.creates()
            .iter()
            .filter(|(_, b)| self.answer(b).0 == 200)
            .count()
    }

    fn answer(&self, body: &Value) -> Answer {
        let spec = machine_spec(body);
        let key = (
            spec["accelerator_type"].as_str().unwrap_or("").to_string(),
            spec["accelerator_count"].as_u64().unwrap_or(0),
        );
        self.answers
            .get(&key)
            .cloned()
            .unwrap_or((200, String::new()))
    }
}

async fn create_job(
    State(fake): State<FakeVertex>,
    Query(q): Query<BTreeMap<String, String>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let id = q.get("pipelineJobId").cloned().unwrap_or_default();
    fake.creates
        .lock()
        .unwrap()
        .push((id.clone(), body.clone()));
    let (status, text) = fake.answer(&body);
    let status = StatusCode::from_u16(status).unwrap();
    if status.is_success() {
        let job = json!({
            "name": format!("projects/test-project/locations/europe-central2/pipelineJobs/{id}"),
            "state": "PIPELINE_STATE_PENDING",
            "labels": body["labels"],
        });
        return (status, axum::Json(job)).into_response();
    }
    (status, [("content-type", "application/json")], text).into_response()
}

async fn start(answers: Vec<((GpuType, u64), Answer)>) -> (GcpConfig, FakeVertex) {
    let fake = FakeVertex {
        answers: Arc::new(
            answers
                .into_iter()
                .map(|((t, n), a)| ((t.vertex_name().to_string(), n), a))
                .collect(),
        ),
        ..FakeVertex::default()
    };
    let app = axum::Router::new()
        .route(
            "/v1/projects/test-project/locations/europe-central2/pipelineJobs",
            axum::routing::post(create_job),
        )
        .with_state(fake.clone());
    let addr = serve(app).await;
    (config_for(&format!("http://{addr}")), fake)
}

fn executor(config: &GcpConfig) -> VertexPipelineExecutor {
    let http = GcpHttp::new(
        trainyard_gcp::Credentials::Static(trainyard_gcp::Secret::new("ya29.gpu-test")),
        config.retry.clone(),
    )
    .unwrap();
    VertexPipelineExecutor::new(http, config)
}

fn quota(message: &str) -> Answer {
    (429, google_error(429, "RESOURCE_EXHAUSTED", message))
}

fn gpu(t: GpuType, n: u32, machine: &str) -> GpuConfig {
    GpuConfig {
        gpu_enabled: true,
        gpu_type: t,
        gpu_count: n,
        machine_type: machine.into(),
        preemptible: false,
        training_region: Some("europe-west4".into()),
    }
}

fn t4x2() -> GpuConfig {
    gpu(GpuType::NvidiaTeslaT4, 2, "n1-standard-16")
}

/// The compiler's PipelineJob for a run on `gpu` (orchestrated in europe-central2).
fn compiled(gpu: &GpuConfig) -> Value {
    let inputs = PipelineInputs {
        name: "run-7-nightly".into(),
        pipeline_root: "gs://trainyard-test/pipeline_root/runs/7".into(),
        data: DataSource::BigQuery {
            query: "SELECT * FROM `p.d.t`".into(),
        },
        model_type: ModelType::Retrieval,
        modules: BTreeMap::from([
            (
                "transform_module.py".into(),
                "def preprocessing_fn(inputs):\n    return inputs\n".into(),
            ),
            (
                "trainer_module.py".into(),
                "def run_fn(fn_args):\n    pass\n".into(),
            ),
        ]),
        training: TrainingParams::default(),
        gpu: gpu.clone(),
        evaluator: EvaluatorConfig::default(),
        sampling: Default::default(),
        serving_dir: "gs://trainyard-test/pipeline_root/runs/7/pushed_model".into(),
        project: "test-project".into(),
        region: "europe-central2".into(),
        tfx_image: "tfx".into(),
        trainer_image: "trainer".into(),
        trainer_gpu_image: "tfx-gpu".into(),
        labels: BTreeMap::new(),
        mlflow_tracking_uri: None,
        trainyard_run_id: None,
        trainyard_run_key: None,
    };
    vertex::compile(&inputs).unwrap().job
}

fn submission(gpu: &GpuConfig) -> PipelineSubmission {
    let mut run: TrainingRun = common::run(7, 3, "shop");
    run.config.gpu_config = gpu.clone();
    PipelineSubmission {
        run,
        pipeline_root: "gs://trainyard-test/pipeline_root/runs/7".into(),
        files: BTreeMap::from([(
            VERTEX_PIPELINE_JOB_FILE.to_string(),
            compiled(gpu).to_string(),
        )]),
    }
}

fn custom_config(body: &Value) -> Value {
    let s = body["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
        ["custom_config"]["runtimeValue"]["constantValue"]["stringValue"]
        .as_str()
        .expect("the Trainer has a custom_config");
    serde_json::from_str(s).unwrap()
}

fn machine_spec(body: &Value) -> Value {
    custom_config(body)["ai_platform_training_args"]["worker_pool_specs"][0]["machine_spec"].clone()
}

/// (machine type, accelerator type, count, region) of a posted job's Trainer.
fn pool(body: &Value) -> (String, String, u64, String) {
    let spec = machine_spec(body);
    (
        spec["machine_type"].as_str().unwrap().to_string(),
        spec["accelerator_type"].as_str().unwrap().to_string(),
        spec["accelerator_count"].as_u64().unwrap(),
        custom_config(body)["ai_platform_vertex_region"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

/// A posted job is the compiler's job for `gpu`, except for what only the executor adds.
fn assert_is_compiled_for(body: &Value, gpu: &GpuConfig) {
    let want = compiled(gpu);
    assert_eq!(custom_config(body), custom_config(&want), "custom_config");
    assert_eq!(
        body["pipelineSpec"]["deploymentSpec"], want["pipelineSpec"]["deploymentSpec"],
        "executors"
    );
    let strip = |v: &Value| {
        let mut v = v["pipelineSpec"].clone();
        v["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]["custom_config"] = json!(null);
        v
    };
    assert_eq!(strip(body), strip(&want), "the rest of the pipeline spec");
}

#[tokio::test]
async fn quota_refusals_walk_the_ladder_until_a_config_is_accepted() {
    let (config, fake) = start(vec![
        ((GpuType::NvidiaTeslaT4, 2), quota(T4_QUOTA)),
        ((GpuType::NvidiaTeslaT4, 4), quota(T4_QUOTA)),
    ])
    .await;
    assert_eq!(config.gpu_fallback, GpuLadder::default());
    let exec = executor(&config);
    let sub = submission(&t4x2());
    let handle = exec.submit(&sub).await.unwrap();

    let creates = fake.creates();
    // quota answers are final: no client retries (fast_retry allows 5 attempts)
    assert_eq!(creates.len(), 3, "one create per rung");
    let pools: Vec<_> = creates.iter().map(|(_, b)| pool(b)).collect();
    let west4 = "europe-west4".to_string();
    assert_eq!(
        pools,
        vec![
            (
                "n1-standard-16".into(),
                "NVIDIA_TESLA_T4".into(),
                2,
                west4.clone()
            ),
            (
                "n1-standard-32".into(),
                "NVIDIA_TESLA_T4".into(),
                4,
                west4.clone()
            ),
            (
                "g2-standard-24".into(),
                "NVIDIA_L4".into(),
                2,
                west4.clone()
            ),
        ]
    );
    let rungs = [
        t4x2(),
        gpu(GpuType::NvidiaTeslaT4, 4, "n1-standard-32"),
        gpu(GpuType::NvidiaL4, 2, "g2-standard-24"),
    ];
    for ((job_id, body), rung) in creates.iter().zip(&rungs) {
        assert_is_compiled_for(body, rung);
        assert_eq!(
            job_id, &handle.job_id,
            "every rung creates the run's job id"
        );
        assert_eq!(body["labels"]["trainyard_run_id"], "7");
    }
    assert!(handle.job_name.ends_with(&handle.job_id));

    let record = exec.take_gpu_fallback(7).expect("the walk is recorded");
    assert_eq!(record.accepted.as_ref(), Some(&rungs[2]));
    let outcomes: Vec<_> = record.attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            GpuAttemptOutcome::Quota,
            GpuAttemptOutcome::Quota,
            GpuAttemptOutcome::Accepted
        ]
    );
    assert!(record.attempts[0]
        .error
        .as_deref()
        .unwrap()
        .contains("custom_model_training_nvidia_t4_gpus"));
    assert_eq!(record.attempts[2].error, None);
    assert_eq!(record.attempts[1].machine_type, "n1-standard-32");
    assert_eq!(record.attempts[1].accelerator_count, 4);
    assert!(exec.take_gpu_fallback(7).is_none(), "taken once");
}

#[tokio::test]
async fn a_run_on_a_later_rung_starts_there_and_a_rung_may_move_the_trainer() {
    let (config, fake) = start(vec![((GpuType::NvidiaTeslaT4, 4), quota(T4_QUOTA))]).await;
    let ladder = GpuLadder(vec![
        GpuRung::new(GpuType::NvidiaTeslaT4, 2, "n1-standard-16"),
        GpuRung::new(GpuType::NvidiaTeslaT4, 4, "n1-standard-32"),
        GpuRung {
            training_region: Some("us-central1".into()),
            ..GpuRung::new(GpuType::NvidiaL4, 2, "g2-standard-24")
        },
    ]);
    let exec = executor(&config).with_gpu_ladder(ladder);
    let start_gpu = gpu(GpuType::NvidiaTeslaT4, 4, "n1-standard-32");
    exec.submit(&submission(&start_gpu)).await.unwrap();
    let creates = fake.creates();
    assert_eq!(creates.len(), 2);
    assert_eq!(pool(&creates[0].1).0, "n1-standard-32");
    let l4 = GpuConfig {
        training_region: Some("us-central1".into()),
        ..gpu(GpuType::NvidiaL4, 2, "g2-standard-24")
    };
    assert_eq!(pool(&creates[1].1).3, "us-central1");
    assert_is_compiled_for(&creates[1].1, &l4);
    let record = exec.take_gpu_fallback(7).unwrap();
    assert_eq!(record.accepted, Some(l4));
    assert_eq!(record.attempts[1].region, "us-central1");
}

#[tokio::test]
async fn a_refusal_that_is_not_quota_stops_the_walk() {
    let invalid = google_error(
        400,
        "INVALID_ARGUMENT",
        "Accelerator \"NVIDIA_TESLA_T4\" is not supported for machine type \"n1-standard-16\".",
    );
    let (config, fake) = start(vec![((GpuType::NvidiaTeslaT4, 2), (400, invalid))]).await;
    let exec = executor(&config);
    let err = exec.submit_job(&submission(&t4x2())).await.unwrap_err();
    assert_eq!(
        fake.creates().len(),
        1,
        "no fallback after a non-quota error"
    );
    match &err {
        SubmitError::Gcp(GcpError::Api { http_status, .. }) => assert_eq!(*http_status, 400),
        other => panic!("{other:?}"),
    }
    let record = exec.take_gpu_fallback(7).unwrap();
    assert_eq!(record.accepted, None);
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(record.attempts[0].outcome, GpuAttemptOutcome::Failed);
}

#[tokio::test]
async fn every_rung_refused_is_a_typed_error_naming_each_attempt() {
    let (config, fake) = start(vec![
        ((GpuType::NvidiaTeslaT4, 2), quota(T4_QUOTA)),
        ((GpuType::NvidiaTeslaT4, 4), quota(T4_QUOTA)),
        ((GpuType::NvidiaL4, 2), quota(L4_CAPACITY)),
    ])
    .await;
    let exec = executor(&config);
    let err = exec.submit_job(&submission(&t4x2())).await.unwrap_err();
    assert_eq!(fake.creates().len(), 3);
    assert_eq!(fake.accepted(), 0, "nothing was submitted");
    let SubmitError::Gcp(GcpError::GpuFallbackExhausted { attempts }) = &err else {
        panic!("{err:?}");
    };
    let outcomes: Vec<_> = attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            GpuAttemptOutcome::Quota,
            GpuAttemptOutcome::Quota,
            GpuAttemptOutcome::Capacity
        ]
    );
    let text = err.to_string();
    for needle in [
        "1. 2x NVIDIA_TESLA_T4 on n1-standard-16 in europe-west4: quota",
        "2. 4x NVIDIA_TESLA_T4 on n1-standard-32 in europe-west4: quota",
        "3. 2x NVIDIA_L4 on g2-standard-24 in europe-west4: capacity",
        "enough resources",
    ] {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
    // through the port: a backend error with the same text
    let core = exec.submit(&submission(&t4x2())).await.unwrap_err();
    assert!(
        matches!(&core, trainyard_core::Error::Backend(m) if m.contains("3. 2x NVIDIA_L4")),
        "{core:?}"
    );
}

#[tokio::test]
async fn an_empty_ladder_tries_once() {
    let (mut config, fake) = start(vec![((GpuType::NvidiaTeslaT4, 2), quota(T4_QUOTA))]).await;
    config.gpu_fallback = GpuLadder::none();
    config.validate().unwrap();
    let exec = executor(&config);
    let err = exec.submit_job(&submission(&t4x2())).await.unwrap_err();
    assert_eq!(fake.creates().len(), 1);
    assert!(
        matches!(&err, SubmitError::Gcp(GcpError::GpuFallbackExhausted { attempts }) if attempts.len() == 1),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_bare_resource_exhausted_is_retried_before_stepping() {
    let generic = quota("Resource has been exhausted (e.g. check quota).");
    let (config, fake) = start(vec![((GpuType::NvidiaTeslaT4, 2), generic)]).await;
    let exec = executor(&config);
    exec.submit(&submission(&t4x2())).await.unwrap();
    let creates = fake.creates();
    let attempts = config.retry.max_attempts as usize;
    assert_eq!(
        creates.len(),
        attempts + 1,
        "the client's retries, then rung 2"
    );
    assert_eq!(pool(&creates[attempts].1).2, 4);
    let record = exec.take_gpu_fallback(7).unwrap();
    assert!(record.attempts[0]
        .error
        .as_deref()
        .unwrap()
        .contains(&format!("gave up after {attempts} attempts")));
}

#[tokio::test]
async fn cpu_runs_and_bad_rungs_do_not_walk() {
    let (config, fake) = start(vec![]).await;
    let exec = executor(&config);
    let cpu = GpuConfig {
        training_region: Some("europe-west4".into()),
        ..GpuConfig::default()
    };
    exec.submit(&submission(&cpu)).await.unwrap();
    assert_eq!(fake.creates().len(), 1);
    assert!(
        exec.take_gpu_fallback(7).is_none(),
        "CPU runs have no ladder"
    );

    // a rung that would put GPU training in a region without it: refused before any create
    let exec = executor(&config).with_gpu_ladder(GpuLadder(vec![GpuRung {
        training_region: Some("europe-central2".into()),
        ..GpuRung::new(GpuType::NvidiaL4, 2, "g2-standard-24")
    }]));
    let err = exec.submit(&submission(&t4x2())).await.unwrap_err();
    match err {
        trainyard_core::Error::Validation(v) => {
            assert_eq!(v.field, "gpu_config.training_region");
            assert!(v.reason.contains("attempt 2 (2x NVIDIA_L4"), "{v}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.creates().len(), 1, "nothing more was posted");
}

#[test]
fn the_ladder_is_read_from_the_gcp_section() {
    let cfg: GcpConfig = serde_json::from_value(json!({
        "project": "p", "region": "europe-central2", "bucket": "b",
        "gpu_fallback": [
            {"gpu_type": "NVIDIA_L4", "gpu_count": 1, "machine_type": "g2-standard-8"},
            {"gpu_type": "NVIDIA_TESLA_T4", "gpu_count": 4, "machine_type": "n1-standard-32", "training_region": "us-central1"}
        ]
    }))
    .unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.gpu_fallback.0.len(), 2);
    assert_eq!(GcpConfig::default().gpu_fallback, GpuLadder::default());
    let bad: GcpConfig = serde_json::from_value(json!({
        "project": "p", "region": "r", "bucket": "b",
        "gpu_fallback": [{"gpu_type": "NVIDIA_L4", "gpu_count": 3, "machine_type": "g2-standard-24"}]
    }))
    .unwrap();
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("gcp.gpu_fallback[0].gpu_count"), "{e}");
}
