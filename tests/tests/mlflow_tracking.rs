//! Ending the MLflow runs that trainers killed outright (SIGKILL, OOM, a machine restart) left
//! RUNNING, against a REAL MLflow tracking server (`make test-pipeline` starts one and names it
//! in TRAINYARD_TEST_MLFLOW_URL; without it the server tests say so and pass): the REST
//! adapter (trainyard_local::MlflowTracking) on runs made through MLflow's own REST API, and
//! the facade ending them when a run ends failed (runner lost, through the control plane) or
//! cancelled, with an executor that stands in for the pipeline. Runs are matched on their run
//! key (`trainyard.run_key`), never on their id alone: two projects sharing the server and an
//! experiment both have a run 1. A tracking server that cannot be reached never fails the use
//! case (no server needed for that one).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use trainyard::core::ports::{
    PipelineCompiler, PipelineEvent, PipelineExecutor, PipelineHandle, PipelineSubmission,
    SystemClock,
};
use trainyard::core::run::{NewTrainingRun, RunConfig, RunId, TrainingRun};
use trainyard::core::stages::StageName;
use trainyard::core::tracking::{ExperimentTracking, RunKey, TrackingEnd, RUN_ID_TAG, RUN_KEY_TAG};
use trainyard::{ControlPlane, ControlPlaneConfig, Platform, ProjectConfig};
use trainyard_core::{Error, RunStatus};
use trainyard_local::MlflowTracking;

/// The test server's URL, or `None` (and a line saying the test is skipped).
fn server(test: &str) -> Option<String> {
    let url = testkit::mlflow_url();
    if url.is_none() {
        eprintln!("{test}: TRAINYARD_TEST_MLFLOW_URL unset: skipped (make test-pipeline runs it against a real MLflow server)");
    }
    url
}

/// A name no earlier test run used (the server's store may be kept between runs).
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// MLflow's REST API as a trainer's client uses it.
struct Mlflow {
    url: String,
    http: reqwest::Client,
}

impl Mlflow {
    fn new(url: &str) -> Self {
        Mlflow {
            url: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/api/2.0/mlflow/{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn experiment(&self, name: &str) -> String {
        self.post("experiments/create", json!({ "name": name }))
            .await["experiment_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A RUNNING run, as a trainer starts it, tagged with a trainyard run's id and key;
    /// `trainyard_run: None` for a run without those tags.
    async fn start_run(
        &self,
        experiment_id: &str,
        trainyard_run: Option<(RunId, &RunKey)>,
    ) -> String {
        let mut tags = vec![json!({"key": "trainyard.model_type", "value": "retrieval"})];
        if let Some((id, key)) = trainyard_run {
            tags.push(json!({"key": RUN_ID_TAG, "value": id.to_string()}));
            tags.push(json!({"key": RUN_KEY_TAG, "value": key.as_str()}));
        }
        let now = chrono::Utc::now().timestamp_millis();
        self.post(
            "runs/create",
            json!({ "experiment_id": experiment_id, "start_time": now, "tags": tags }),
        )
        .await["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn finish(&self, run_id: &str) {
        let now = chrono::Utc::now().timestamp_millis();
        self.post(
            "runs/update",
            json!({ "run_id": run_id, "status": "FINISHED", "end_time": now }),
        )
        .await;
    }

    /// A RUNNING run as the trainer of stored run `run` starts it.
    async fn start_trainer_run(&self, experiment_id: &str, run: &TrainingRun) -> String {
        let key = RunKey::of(run).unwrap();
        self.start_run(experiment_id, Some((run.id, &key))).await
    }

    /// (status, end_time) of a run.
    async fn state(&self, run_id: &str) -> (String, Option<i64>) {
        let resp = self
            .http
            .get(format!("{}/api/2.0/mlflow/runs/get", self.url))
            .query(&[("run_id", run_id)])
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        let info = &body["run"]["info"];
        (
            info["status"].as_str().unwrap().to_string(),
            info["end_time"].as_i64(),
        )
    }
}

/// A free port of 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The key of run `id` of a project created `at_ms` milliseconds into 2026-12-05.
fn key(id: RunId, at_ms: i64) -> RunKey {
    use chrono::TimeZone;
    let day = chrono::Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
    RunKey::new(id, day + chrono::Duration::milliseconds(at_ms))
}

#[tokio::test]
async fn the_adapter_ends_only_the_running_runs_of_that_trainyard_run() {
    let Some(url) = server("the_adapter_ends_only_the_running_runs_of_that_trainyard_run") else {
        return;
    };
    let api = Mlflow::new(&url);
    let experiment = unique("stale-adapter");
    let exp = api.experiment(&experiment).await;
    let other_exp = api.experiment(&unique("stale-adapter-other")).await;
    // trainyard run 7: two attempts killed outright, one that finished
    let run7 = key(7, 1_000);
    let killed = api.start_run(&exp, Some((7, &run7))).await;
    let killed_again = api.start_run(&exp, Some((7, &run7))).await;
    let finished = api.start_run(&exp, Some((7, &run7))).await;
    api.finish(&finished).await;
    // another trainyard run's, an untagged one, and run 7's tags in another experiment
    let run8 = key(8, 2_000);
    let other_run = api.start_run(&exp, Some((8, &run8))).await;
    let untagged = api.start_run(&exp, None).await;
    let elsewhere = api.start_run(&other_exp, Some((7, &run7))).await;
    // run 7 of another project (or of this one before it was initialised again) in the same
    // experiment: the same trainyard.run_id, another key
    let other_project_run7 = key(7, 5_000);
    let same_id = api.start_run(&exp, Some((7, &other_project_run7))).await;

    let tracking = MlflowTracking::new(&url).unwrap();
    let before = chrono::Utc::now().timestamp_millis();
    let ended = tracking
        .end_stale_runs(&experiment, &run7, TrackingEnd::Killed)
        .await
        .unwrap();
    assert_eq!(ended, 2);
    for id in [&killed, &killed_again] {
        let (status, end) = api.state(id).await;
        assert_eq!(status, "KILLED");
        assert!(end.is_some_and(|t| t >= before - 1000), "end_time {end:?}");
    }
    assert_eq!(api.state(&finished).await.0, "FINISHED");
    for id in [&other_run, &untagged, &elsewhere, &same_id] {
        assert_eq!(api.state(id).await.0, "RUNNING", "{id}");
    }

    // idempotent: nothing is left to end, and nothing ended is touched again
    let again = tracking
        .end_stale_runs(&experiment, &run7, TrackingEnd::Failed)
        .await
        .unwrap();
    assert_eq!(again, 0);
    assert_eq!(api.state(&killed).await.0, "KILLED");

    // a failed run's leftovers end FAILED
    let failed = tracking
        .end_stale_runs(&experiment, &run8, TrackingEnd::Failed)
        .await
        .unwrap();
    assert_eq!(failed, 1);
    assert_eq!(api.state(&other_run).await.0, "FAILED");

    // the other project's run 7 ends by its own key only
    let other_project = tracking
        .end_stale_runs(&experiment, &other_project_run7, TrackingEnd::Failed)
        .await
        .unwrap();
    assert_eq!(other_project, 1);
    assert_eq!(api.state(&same_id).await.0, "FAILED");
    assert_eq!(
        api.state(&killed).await.0,
        "KILLED",
        "run 7's stay as they were"
    );

    // an experiment that does not exist has nothing to end
    let none = tracking
        .end_stale_runs(&unique("no-such-experiment"), &run7, TrackingEnd::Killed)
        .await
        .unwrap();
    assert_eq!(none, 0);
    // leave nothing RUNNING in the server's store (later suites look for RUNNING runs)
    for id in [&untagged, &elsewhere] {
        api.finish(id).await;
    }
}

#[tokio::test]
async fn an_unreachable_tracking_server_is_a_backend_error_in_bounded_time() {
    let tracking = MlflowTracking::new(&format!("http://127.0.0.1:{}", closed_port())).unwrap();
    let started = std::time::Instant::now();
    let err = tracking
        .end_stale_runs("any", &key(1, 0), TrackingEnd::Killed)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err}");
    assert!(err.to_string().contains("mlflow"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A pipeline service whose job trains, then is lost (its runner killed outright: the local
/// runner reports it so) on the poll after `lost_after` polls; `None`: it trains on.
struct LostPipelines {
    lost_after: Option<usize>,
    polls: Mutex<usize>,
    cancels: Mutex<usize>,
}

impl LostPipelines {
    fn new(lost_after: Option<usize>) -> Arc<Self> {
        Arc::new(LostPipelines {
            lost_after,
            polls: Mutex::new(0),
            cancels: Mutex::new(0),
        })
    }
}

#[async_trait]
impl PipelineExecutor for LostPipelines {
    async fn submit(&self, sub: &PipelineSubmission) -> trainyard::Result<PipelineHandle> {
        Ok(PipelineHandle {
            job_name: sub.pipeline_root.clone(),
            job_id: format!("job-{}", sub.run.id),
        })
    }

    async fn poll(&self, _handle: &PipelineHandle) -> trainyard::Result<Vec<PipelineEvent>> {
        let mut polls = self.polls.lock().unwrap();
        *polls += 1;
        Ok(match (*polls, self.lost_after) {
            (1, _) => vec![PipelineEvent::StageStarted {
                stage: StageName::Train,
            }],
            (n, Some(after)) if n > after => vec![PipelineEvent::Failed {
                error: format!(
                    "{}: the pipeline's process group ended without an exit status",
                    trainyard_local::RUNNER_LOST
                ),
                stage: None,
            }],
            _ => Vec::new(),
        })
    }

    async fn cancel(&self, _handle: &PipelineHandle) -> trainyard::Result<()> {
        *self.cancels.lock().unwrap() += 1;
        Ok(())
    }
}

struct NoFiles;

impl PipelineCompiler for NoFiles {
    fn compile(
        &self,
        _run: &TrainingRun,
        _root: &str,
    ) -> trainyard::Result<BTreeMap<String, String>> {
        Ok(BTreeMap::new())
    }
}

fn fast() -> ControlPlaneConfig {
    ControlPlaneConfig {
        tick: Duration::from_millis(10),
        max_poll_interval: Duration::from_millis(10),
        lease_ttl: Duration::from_secs(15),
        ..ControlPlaneConfig::default()
    }
}

/// A project whose runs go to `pipelines`, logging to the MLflow server at `mlflow`.
async fn project(
    pipelines: Arc<LostPipelines>,
    mlflow: Option<String>,
) -> (tempfile::TempDir, Platform) {
    let dir = tempfile::tempdir().unwrap();
    let store = trainyard_store::SqliteStore::open(dir.path().join("trainyard.db"))
        .await
        .unwrap();
    let root = dir.path().display().to_string();
    let p = Platform::with_store(
        dir.path().to_path_buf(),
        ProjectConfig::default(),
        Arc::new(store),
        Arc::new(SystemClock),
    )
    .with_executor(pipelines, Arc::new(NoFiles), root)
    .with_mlflow_tracking_uri(mlflow);
    (dir, p)
}

/// A run of model config `experiment` (the trainer's MLflow experiment), carried to `running`
/// by the control plane returned (which holds the run's lease).
async fn running_run(p: &Platform, experiment: &str) -> (TrainingRun, ControlPlane) {
    let mut config = RunConfig::default();
    config.model_config.name = experiment.to_string();
    let run = p
        .training()
        .create_training_run(NewTrainingRun {
            ml_model: "shop".into(),
            name: "stale-mlflow".into(),
            description: String::new(),
            config,
        })
        .await
        .unwrap();
    p.training().submit(run.id).await.unwrap();
    let cp = p.control_plane(fast());
    for _ in 0..20 {
        cp.pass().await.unwrap();
        if p.store().get_run(run.id).await.unwrap().status == RunStatus::Running {
            break;
        }
    }
    let run = p.store().get_run(run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Running);
    (run, cp)
}

#[tokio::test]
async fn a_run_whose_runner_is_lost_fails_and_its_mlflow_run_ends_failed() {
    let Some(url) = server("a_run_whose_runner_is_lost_fails_and_its_mlflow_run_ends_failed")
    else {
        return;
    };
    let api = Mlflow::new(&url);
    let experiment = unique("stale-runner-lost");
    let (_dir, p) = project(LostPipelines::new(Some(2)), Some(url.clone())).await;
    let (run, cp) = running_run(&p, &experiment).await;
    // the trainer started its MLflow run, then was killed with its runner (SIGKILL)
    let exp = api.experiment(&experiment).await;
    let trainer_run = api.start_trainer_run(&exp, &run).await;
    let other_id = run.id + 1000;
    let other = api
        .start_run(&exp, Some((other_id, &key(other_id, 0))))
        .await;

    for _ in 0..50 {
        cp.pass().await.unwrap();
        if !p.store().get_run(run.id).await.unwrap().status.is_active() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done = p.store().get_run(run.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Failed);
    assert!(
        done.error_message
            .as_deref()
            .is_some_and(|m| m.starts_with(trainyard_local::RUNNER_LOST)),
        "{:?}",
        done.error_message
    );
    assert_eq!(api.state(&trainer_run).await.0, "FAILED");
    assert_eq!(
        api.state(&other).await.0,
        "RUNNING",
        "another run's is untouched"
    );
    api.finish(&other).await;
}

#[tokio::test]
async fn a_cancelled_runs_mlflow_run_ends_killed() {
    let Some(url) = server("a_cancelled_runs_mlflow_run_ends_killed") else {
        return;
    };
    let api = Mlflow::new(&url);
    let experiment = unique("stale-cancel");
    let pipelines = LostPipelines::new(None);
    let (_dir, p) = project(pipelines.clone(), Some(url.clone())).await;
    let (run, _cp) = running_run(&p, &experiment).await;
    let exp = api.experiment(&experiment).await;
    let trainer_run = api.start_trainer_run(&exp, &run).await;

    let cancelled = p.training().cancel(run.id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(
        *pipelines.cancels.lock().unwrap(),
        1,
        "the pipeline is stopped"
    );
    assert_eq!(api.state(&trainer_run).await.0, "KILLED");
}

#[tokio::test]
async fn two_projects_on_one_server_end_only_their_own_run_with_the_same_id() {
    let Some(url) = server("two_projects_on_one_server_end_only_their_own_run_with_the_same_id")
    else {
        return;
    };
    let api = Mlflow::new(&url);
    // one MLflow server, one model config name (the experiment), two projects: both count
    // their runs from 1
    let experiment = unique("stale-two-projects");
    let (_a_dir, a) = project(LostPipelines::new(Some(2)), Some(url.clone())).await;
    let b_pipelines = LostPipelines::new(None);
    let (_b_dir, b) = project(b_pipelines.clone(), Some(url.clone())).await;
    let (run_a, cp_a) = running_run(&a, &experiment).await;
    let (run_b, _cp_b) = running_run(&b, &experiment).await;
    assert_eq!(
        run_a.id, run_b.id,
        "the same trainyard run id in both projects"
    );
    assert_ne!(RunKey::of(&run_a), RunKey::of(&run_b));
    let exp = api.experiment(&experiment).await;
    let mlflow_a = api.start_trainer_run(&exp, &run_a).await;
    let mlflow_b = api.start_trainer_run(&exp, &run_b).await;

    // project A's runner is lost: its run fails, and only its MLflow run ends
    for _ in 0..50 {
        cp_a.pass().await.unwrap();
        if !a
            .store()
            .get_run(run_a.id)
            .await
            .unwrap()
            .status
            .is_active()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        a.store().get_run(run_a.id).await.unwrap().status,
        RunStatus::Failed
    );
    assert_eq!(api.state(&mlflow_a).await.0, "FAILED");
    assert_eq!(
        api.state(&mlflow_b).await.0,
        "RUNNING",
        "project B's run {} trains on",
        run_b.id
    );
    assert_eq!(
        b.store().get_run(run_b.id).await.unwrap().status,
        RunStatus::Running
    );

    // project B's run is cancelled: its own MLflow run ends KILLED, A's stays FAILED
    b.training().cancel(run_b.id).await.unwrap();
    assert_eq!(api.state(&mlflow_b).await.0, "KILLED");
    assert_eq!(api.state(&mlflow_a).await.0, "FAILED");
}

#[tokio::test]
async fn an_unreachable_tracking_server_never_fails_a_cancel() {
    let pipelines = LostPipelines::new(None);
    let uri = format!("http://127.0.0.1:{}", closed_port());
    let (_dir, p) = project(pipelines.clone(), Some(uri)).await;
    let (run, _cp) = running_run(&p, &unique("unreachable")).await;
    let cancelled = p.training().cancel(run.id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(*pipelines.cancels.lock().unwrap(), 1);
    assert_eq!(
        p.store().get_run(run.id).await.unwrap().status,
        RunStatus::Cancelled
    );
}
