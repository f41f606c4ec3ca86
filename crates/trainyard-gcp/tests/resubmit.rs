//! GPU fallback after creation, and following a job from a fresh executor: against the
//! recording stand-in for Vertex AI ([`FakeGoogle`]), with PipelineJobs from the real compiler.
//! A created job whose Trainer is refused for quota once it runs is resubmitted, by whichever
//! executor polls it, on the ladder's next rung under the run's next deterministic job id.

mod common;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use common::{flows::BUCKET, FakeGoogle};
use trainyard_core::config::{DataSource, EvaluatorConfig, GpuConfig, GpuType, TrainingParams};
use trainyard_core::model_config::ModelType;
use trainyard_core::ports::{
    PipelineEvent, PipelineExecutor, PipelineHandle, PipelineSubmission, VERTEX_PIPELINE_JOB_FILE,
};
use trainyard_core::stages::StageName;
use trainyard_gcp::gpu_fallback::{classify_status, trainer_gpu, Refusal};
use trainyard_gcp::vertex_pipelines::{attempt_job_id, JOB_ATTEMPT_LABEL};
use trainyard_gcp::{names, GcpConfig, VertexPipelineExecutor};
use trainyard_pipeline::{vertex, PipelineInputs};

const ROOT: &str = "gs://trainyard-test/pipeline_root/runs/7";
const T4_QUOTA: &str = "The following quota metrics exceed quota limits: aiplatform.googleapis.com/custom_model_training_nvidia_t4_gpus";

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

fn compiled(gpu: &GpuConfig) -> Value {
    let inputs = PipelineInputs {
        name: "run-7-nightly".into(),
        pipeline_root: ROOT.into(),
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
        serving_dir: format!("{ROOT}/pushed_model"),
        project: "test-project".into(),
        region: "europe-central2".into(),
        tfx_image: "tfx".into(),
        trainer_image: "trainer".into(),
        trainer_gpu_image: "tfx-gpu".into(),
        labels: BTreeMap::new(),
        mlflow_tracking_uri: None,
        trainyard_run_id: None,
        trainyard_run_key: None,
        sampling: Default::default(),
    };
    vertex::compile(&inputs).unwrap().job
}

fn submission(id: i64, gpu: &GpuConfig) -> PipelineSubmission {
    let mut run = common::run(id, 3, "shop");
    run.config.gpu_config = gpu.clone();
    PipelineSubmission {
        run,
        pipeline_root: ROOT.into(),
        files: BTreeMap::from([(
            VERTEX_PIPELINE_JOB_FILE.to_string(),
            compiled(gpu).to_string(),
        )]),
    }
}

fn executor(cfg: &GcpConfig) -> VertexPipelineExecutor {
    VertexPipelineExecutor::new(common::flows::http(cfg), cfg)
}

/// The object the fake's succeeded job points its Trainer's model_run at.
fn put_metrics(fake: &FakeGoogle, job_id: &str) {
    fake.put_object(
        BUCKET,
        &format!("pipeline_root/runs/7/123/{job_id}/Trainer_7/model_run/training_metrics.json"),
        common::flows::training_metrics().to_string().as_bytes(),
    );
}

/// Successful pipelineJobs.create calls: (job id, posted body).
fn created(fake: &FakeGoogle) -> Vec<(String, Value)> {
    fake.requests_to("POST", "/pipelineJobs")
        .into_iter()
        .filter(|e| e.status == 200 && !e.path.ends_with(":cancel"))
        .map(|e| {
            let id = e
                .query
                .iter()
                .find(|(k, _)| k == "pipelineJobId")
                .map(|(_, v)| v.clone())
                .unwrap();
            (id, e.request.unwrap())
        })
        .collect()
}

fn quota_status() -> Value {
    json!({"code": 8, "message": format!("RESOURCE_EXHAUSTED: {T4_QUOTA}")})
}

/// Polls until `pred` holds for an event (at most 8 polls); returns every event seen.
async fn poll_until(
    exec: &VertexPipelineExecutor,
    h: &PipelineHandle,
    pred: impl Fn(&PipelineEvent) -> bool,
) -> Vec<PipelineEvent> {
    let mut all = Vec::new();
    for _ in 0..8 {
        let events = exec.poll(h).await.expect("poll");
        let done = events.iter().any(&pred);
        all.extend(events);
        if done {
            return all;
        }
    }
    panic!("never happened: {all:?}");
}

fn is_end(e: &PipelineEvent) -> bool {
    matches!(
        e,
        PipelineEvent::Completed { .. } | PipelineEvent::Failed { .. }
    )
}

#[test]
fn statuses_after_creation_are_classified_by_the_create_time_rules() {
    assert_eq!(classify_status(8, T4_QUOTA), Some(Refusal::Quota));
    assert_eq!(
        classify_status(8, "Resource has been exhausted (e.g. check quota)."),
        Some(Refusal::Quota)
    );
    assert_eq!(
        classify_status(
            9,
            "Job failed: the resources are insufficient in zone europe-west4-a"
        ),
        Some(Refusal::Capacity)
    );
    assert_eq!(classify_status(13, T4_QUOTA), Some(Refusal::Quota));
    assert_eq!(
        classify_status(
            9,
            "The replica workerpool0-0 exited with a non-zero status of 1."
        ),
        None
    );
    // the API's own request rate is not the GPUs' problem
    assert_eq!(
        classify_status(
            8,
            "Quota exceeded for aiplatform.googleapis.com/pipeline_job_create_requests"
        ),
        None
    );
    assert_eq!(attempt_job_id("ty-shop-3-7-x", 1), "ty-shop-3-7-x");
    assert_eq!(attempt_job_id("ty-shop-3-7-x", 2), "ty-shop-3-7-x-a2");
    let long = format!("ty-{}", "m".repeat(124));
    assert_eq!(attempt_job_id(&long, 3).len(), 128);
    assert!(attempt_job_id(&long, 3).ends_with("-a3"));
}

#[tokio::test]
async fn a_trainer_refused_for_quota_after_creation_is_resubmitted_on_the_next_rung() {
    let fake = FakeGoogle::start().await;
    fake.fail_trainer("NVIDIA_TESLA_T4", 2, quota_status());
    let cfg = fake.config();
    let exec = executor(&cfg);
    let sub = submission(7, &t4x2());
    let first = exec.submit(&sub).await.unwrap();
    assert_eq!(first.job_id, names::pipeline_job_id(&sub.run));

    let events = poll_until(&exec, &first, |e| {
        matches!(e, PipelineEvent::Resubmitted { .. }) || is_end(e)
    })
    .await;
    let second_id = attempt_job_id(&first.job_id, 2);
    let t4x4 = gpu(GpuType::NvidiaTeslaT4, 4, "n1-standard-32");
    let resubmitted = events.last().unwrap().clone();
    match &resubmitted {
        PipelineEvent::Resubmitted {
            job_name,
            job_id,
            gpu_config,
            reason,
        } => {
            assert_eq!(job_id, &second_id);
            assert!(job_name.ends_with(&format!("/pipelineJobs/{second_id}")));
            assert_eq!(gpu_config.as_ref(), Some(&t4x4));
            assert!(reason.starts_with("quota: "), "{reason}");
            assert!(reason.contains("custom_model_training_nvidia_t4_gpus"));
        }
        other => panic!("expected Resubmitted, got {other:?}"),
    }
    assert!(
        !events.iter().any(is_end),
        "the run goes on: no terminal event for the refused job"
    );

    // the new job is the failed one's pipeline, read back from Vertex, on rung 2
    let creates = created(&fake);
    assert_eq!(creates.len(), 2);
    assert_eq!(creates[1].0, second_id);
    let body = &creates[1].1;
    let want = compiled(&t4x4);
    assert_eq!(trainer_gpu(body), Some(t4x4.clone()));
    assert_eq!(
        body["pipelineSpec"]["deploymentSpec"],
        want["pipelineSpec"]["deploymentSpec"]
    );
    let custom_config = |job: &Value| -> Value {
        let text = job["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
            ["custom_config"]["runtimeValue"]["constantValue"]["stringValue"]
            .as_str()
            .unwrap();
        serde_json::from_str(text).unwrap()
    };
    assert_eq!(custom_config(body), custom_config(&want));
    assert_eq!(body["labels"]["trainyard_run_id"], "7");
    assert_eq!(body["labels"][JOB_ATTEMPT_LABEL], "2");
    assert_eq!(body["runtimeConfig"]["gcsOutputDirectory"], ROOT);
    for output_only in ["name", "state", "jobDetail", "error", "createTime"] {
        assert!(body.get(output_only).is_none(), "{output_only} was posted");
    }

    // A restarted server polling the refused job again (it lost the event) gets the same job:
    // the create answers ALREADY_EXISTS, nothing new starts.
    let restarted = executor(&cfg);
    let again = restarted.poll(&first).await.unwrap();
    assert_eq!(again.last(), Some(&resubmitted));
    assert_eq!(
        created(&fake).len(),
        2,
        "no second job for one resubmission"
    );

    // The run follows the new job to its end.
    let second = PipelineHandle {
        job_name: format!("{}/pipelineJobs/{second_id}", cfg.parent()),
        job_id: second_id.clone(),
    };
    put_metrics(&fake, &second_id);
    let events = poll_until(&restarted, &second, is_end).await;
    match events.last().unwrap() {
        PipelineEvent::Completed {
            blessed, artifacts, ..
        } => {
            assert!(blessed);
            assert_eq!(artifacts["pipeline_job"], second.job_name);
        }
        other => panic!("expected Completed, got {other:?}"),
    }
    assert!(restarted.poll(&second).await.unwrap().is_empty());
    assert_eq!(created(&fake).len(), 2);
}

#[tokio::test]
async fn a_trainer_failing_otherwise_is_not_resubmitted() {
    let fake = FakeGoogle::start().await;
    fake.fail_trainer(
        "NVIDIA_TESLA_T4",
        2,
        json!({"code": 9, "message": "The replica workerpool0-0 exited with a non-zero status of 1."}),
    );
    let exec = executor(&fake.config());
    let h = exec.submit(&submission(7, &t4x2())).await.unwrap();
    let events = poll_until(&exec, &h, is_end).await;
    match events.last().unwrap() {
        PipelineEvent::Failed { error, stage } => {
            assert_eq!(*stage, Some(StageName::Train));
            assert!(error.contains("DAG failed"), "{error}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(!events
        .iter()
        .any(|e| matches!(e, PipelineEvent::Resubmitted { .. })));
    assert_eq!(created(&fake).len(), 1);
}

#[tokio::test]
async fn a_spent_ladder_fails_the_run_naming_every_attempt() {
    let fake = FakeGoogle::start().await;
    for (t, n) in [("NVIDIA_TESLA_T4", 2), ("NVIDIA_TESLA_T4", 4)] {
        fake.fail_trainer(t, n, quota_status());
    }
    fake.fail_trainer(
        "NVIDIA_L4",
        2,
        json!({"code": 8, "message": "The zone does not have enough resources available to fulfill the request."}),
    );
    let cfg = fake.config();
    let exec = executor(&cfg);
    let mut handle = exec.submit(&submission(7, &t4x2())).await.unwrap();
    let mut moves = Vec::new();
    let last = loop {
        // each job from a fresh executor: nothing is remembered between attempts
        let events = poll_until(&executor(&cfg), &handle, |e| {
            matches!(e, PipelineEvent::Resubmitted { .. }) || is_end(e)
        })
        .await;
        match events.last().unwrap().clone() {
            PipelineEvent::Resubmitted {
                job_name, job_id, ..
            } => {
                moves.push(job_id.clone());
                handle = PipelineHandle { job_name, job_id };
            }
            end => break end,
        }
    };
    let first = names::pipeline_job_id(&submission(7, &t4x2()).run);
    assert_eq!(
        moves,
        vec![attempt_job_id(&first, 2), attempt_job_id(&first, 3)]
    );
    assert_eq!(created(&fake).len(), 3, "one job per rung");
    let PipelineEvent::Failed { error, stage } = last else {
        panic!("expected Failed, got {last:?}");
    };
    assert_eq!(stage, Some(StageName::Train));
    for needle in [
        "no GPU config of the fallback ladder was accepted",
        "1. 2x NVIDIA_TESLA_T4 on n1-standard-16 in europe-west4: quota (after creation",
        "2. 4x NVIDIA_TESLA_T4 on n1-standard-32 in europe-west4: quota (after creation",
        "3. 2x NVIDIA_L4 on g2-standard-24 in europe-west4: capacity (after creation",
    ] {
        assert!(error.contains(needle), "{needle:?} not in {error}");
    }
}

#[tokio::test]
async fn a_fresh_executor_reports_each_stage_and_the_end_once() {
    let fake = FakeGoogle::start().await;
    let cfg = fake.config();
    let sub = submission(7, &GpuConfig::default());
    let h = executor(&cfg).submit(&sub).await.unwrap();
    put_metrics(&fake, &h.job_id);
    // the submitting server sees the job pending, then running, then goes away
    let gone = executor(&cfg);
    assert!(gone.poll(&h).await.unwrap().is_empty(), "pending");
    assert!(!gone.poll(&h).await.unwrap().is_empty(), "running");
    drop(gone);
    // a restarted one (new memory) follows it from Vertex alone
    let restarted = executor(&cfg);
    let mut events = Vec::new();
    for _ in 0..5 {
        events.extend(restarted.poll(&h).await.unwrap());
    }
    let ends: Vec<_> = events.iter().filter(|e| is_end(e)).collect();
    assert_eq!(ends.len(), 1, "{events:?}");
    assert!(matches!(
        events.last(),
        Some(PipelineEvent::Completed { blessed: true, .. })
    ));
    let mut seen = std::collections::BTreeSet::new();
    for e in &events {
        if let PipelineEvent::StageCompleted { stage } = e {
            assert!(seen.insert(*stage), "{stage:?} completed twice: {events:?}");
        }
    }
    for stage in [
        StageName::Examples,
        StageName::Stats,
        StageName::Schema,
        StageName::Transform,
        StageName::Train,
        StageName::Evaluate,
        StageName::Register,
    ] {
        assert!(seen.contains(&stage), "{stage:?} missing: {events:?}");
    }
}
