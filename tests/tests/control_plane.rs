//! The control plane over a real store (SQLite; PostgreSQL for the multi-server case), the real
//! filesystem registry, and an executor and deployer that live outside the control planes (as a
//! pipeline service and a serving platform do) and count what they were asked to do. A
//! control plane "dies" by being dropped (or its task aborted) without giving up its leases.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::json;
use testkit::TestClock;
use trainyard::core::config::DeploymentConfig;
use trainyard::core::ports::{
    Clock, DeployRequest, Deployer, PipelineCompiler, PipelineEvent, PipelineExecutor,
    PipelineHandle, PipelineSubmission, Store, SystemClock,
};
use trainyard::core::run::{NewTrainingRun, RunConfig, RunId, TrainingRun};
use trainyard::core::schedule::{ConcurrencyPolicy, ScheduleType};
use trainyard::core::stages::StageName;
use trainyard::core::timing::ScheduleTiming;
use trainyard::{ControlPlaneConfig, NewSchedule, Platform, ProjectConfig};
use trainyard_core::RunStatus;

/// A pipeline service: one job per run (a repeated submit returns the existing job, as the
/// local runner's state file and Vertex's deterministic job ids do), which finishes after
/// `polls_to_finish` polls, having pushed a model folder under the pipeline root.
struct FakePipelines {
    polls_to_finish: usize,
    jobs: Mutex<HashMap<String, usize>>,
    creates: Mutex<Vec<RunId>>,
    submit_calls: Mutex<usize>,
}

impl FakePipelines {
    fn new(polls_to_finish: usize) -> Arc<Self> {
        Arc::new(FakePipelines {
            polls_to_finish,
            jobs: Mutex::new(HashMap::new()),
            creates: Mutex::new(Vec::new()),
            submit_calls: Mutex::new(0),
        })
    }
}

#[async_trait]
impl PipelineExecutor for FakePipelines {
    async fn submit(&self, sub: &PipelineSubmission) -> trainyard::Result<PipelineHandle> {
        *self.submit_calls.lock().unwrap() += 1;
        let job_id = format!("job-{}", sub.run.id);
        let mut jobs = self.jobs.lock().unwrap();
        if !jobs.contains_key(&job_id) {
            let pushed = std::path::Path::new(&sub.pipeline_root)
                .join("pushed_model")
                .join("1764000000");
            std::fs::create_dir_all(&pushed).unwrap();
            std::fs::write(pushed.join("saved_model.pb"), format!("run {}", sub.run.id)).unwrap();
            jobs.insert(job_id.clone(), 0);
            self.creates.lock().unwrap().push(sub.run.id);
        }
        Ok(PipelineHandle {
            job_name: sub.pipeline_root.clone(),
            job_id,
        })
    }

    async fn poll(&self, handle: &PipelineHandle) -> trainyard::Result<Vec<PipelineEvent>> {
        let mut jobs = self.jobs.lock().unwrap();
        let polls = jobs
            .get_mut(&handle.job_id)
            .expect("a job that was created");
        *polls += 1;
        Ok(match *polls {
            1 => vec![PipelineEvent::StageStarted {
                stage: StageName::Train,
            }],
            n if n == self.polls_to_finish => vec![PipelineEvent::Completed {
                training_metrics: json!({
                    "loss": {"loss": [1.0, 0.5]},
                    "final_metrics": {"test_recall_at_100": 0.4, "test_recall_at_50": 0.3,
                                      "test_recall_at_10": 0.1, "test_recall_at_5": 0.05}
                }),
                blessed: true,
                artifacts: BTreeMap::from([("pipeline_root".to_string(), handle.job_name.clone())]),
            }],
            _ => Vec::new(),
        })
    }

    async fn cancel(&self, _handle: &PipelineHandle) -> trainyard::Result<()> {
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

/// A serving platform: services replaced in place; every call counted.
#[derive(Default)]
struct FakeServing {
    calls: Mutex<Vec<DeployRequest>>,
    serving: Mutex<HashMap<String, String>>,
}

#[async_trait]
impl Deployer for FakeServing {
    async fn deploy(&self, request: &DeployRequest) -> trainyard::Result<String> {
        self.calls.lock().unwrap().push(request.clone());
        self.serving
            .lock()
            .unwrap()
            .insert(request.service_name.clone(), request.model_path.clone());
        Ok(format!("http://127.0.0.1/{}", request.service_name))
    }
    async fn undeploy(&self, service_name: &str) -> trainyard::Result<()> {
        self.serving.lock().unwrap().remove(service_name);
        Ok(())
    }
    async fn is_serving(&self, service_name: &str) -> trainyard::Result<bool> {
        Ok(self.serving.lock().unwrap().contains_key(service_name))
    }
}

struct World {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    pipelines: Arc<FakePipelines>,
    serving: Arc<FakeServing>,
}

impl World {
    async fn sqlite(clock: Arc<dyn Clock>, polls_to_finish: usize) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            trainyard_store::SqliteStore::open(dir.path().join("trainyard.db"))
                .await
                .unwrap(),
        );
        World::over(dir, store, clock, polls_to_finish)
    }

    fn over(
        dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        polls_to_finish: usize,
    ) -> World {
        World {
            dir,
            store,
            clock,
            pipelines: FakePipelines::new(polls_to_finish),
            serving: Arc::new(FakeServing::default()),
        }
    }

    /// One process's view of the project: its own services over the shared store and the
    /// shared external backends.
    fn platform(&self) -> Platform {
        Platform::with_store(
            self.dir.path().to_path_buf(),
            ProjectConfig::default(),
            self.store.clone(),
            self.clock.clone(),
        )
        .with_local_serving()
        .with_deployer(self.serving.clone())
        .with_executor(
            self.pipelines.clone(),
            Arc::new(NoFiles),
            self.dir.path().display().to_string(),
        )
    }

    async fn new_run(&self, name: &str) -> TrainingRun {
        self.platform()
            .training()
            .create_training_run(NewTrainingRun {
                ml_model: "shop".into(),
                name: name.into(),
                description: String::new(),
                config: RunConfig {
                    deployment_config: DeploymentConfig {
                        enabled: true,
                        ..DeploymentConfig::default()
                    },
                    ..RunConfig::default()
                },
            })
            .await
            .unwrap()
    }

    fn creates_of(&self, id: RunId) -> usize {
        self.pipelines
            .creates
            .lock()
            .unwrap()
            .iter()
            .filter(|r| **r == id)
            .count()
    }

    /// Distinct (service, model) deploys: a repeated deploy of the same version to the same
    /// service replaces it in place and is one deploy.
    fn distinct_deploys(&self) -> HashSet<(String, String)> {
        self.serving
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.service_name.clone(), r.model_path.clone()))
            .collect()
    }
}

fn fast() -> ControlPlaneConfig {
    ControlPlaneConfig {
        tick: Duration::from_millis(20),
        max_poll_interval: Duration::from_millis(20),
        lease_ttl: Duration::from_secs(15),
        ..ControlPlaneConfig::default()
    }
}

fn daily() -> ScheduleTiming {
    ScheduleTiming {
        schedule_type: ScheduleType::Daily,
        scheduled_datetime: None,
        schedule_time: Some("02:00".into()),
        schedule_day_of_week: None,
        schedule_day_of_month: None,
        schedule_timezone: "UTC".into(),
    }
}

async fn status(w: &World, id: RunId) -> TrainingRun {
    w.store.get_run(id).await.unwrap()
}

#[tokio::test]
async fn a_submitted_run_is_trained_registered_and_deployed_by_the_control_plane() {
    let w = World::sqlite(Arc::new(SystemClock), 3).await;
    let run = w.new_run("product-recs").await;
    let queued = w.platform().training().submit(run.id).await.unwrap();
    assert_eq!(queued.status, RunStatus::Scheduled, "submit records intent");
    assert_eq!(
        w.creates_of(run.id),
        0,
        "nothing runs before a control plane does"
    );

    let cp = w.platform().control_plane(fast());
    for _ in 0..50 {
        cp.pass().await.unwrap();
        if status(&w, run.id).await.status == RunStatus::Deployed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let done = status(&w, run.id).await;
    assert_eq!(done.status, RunStatus::Deployed);
    assert_eq!(done.vertex_model_version.as_deref(), Some("1"));
    assert_eq!(done.next_step(), None);
    assert_eq!(w.creates_of(run.id), 1);
    assert_eq!(w.serving.calls.lock().unwrap().len(), 1);
    // finished work leaves no lease behind
    let leases = w.store.live_leases("run:", Utc::now()).await.unwrap();
    assert!(leases.is_empty(), "{leases:?}");
}

#[tokio::test]
async fn a_dead_owners_run_is_taken_over_once_its_lease_expires_and_nothing_repeats() {
    let clock = TestClock::at(Utc::now());
    let w = World::sqlite(clock.clone(), 4).await;
    let run = w.new_run("product-recs").await;
    w.platform().training().submit(run.id).await.unwrap();

    let a = w.platform().control_plane(fast());
    a.pass().await.unwrap(); // submits
    a.pass().await.unwrap(); // first poll: training
    assert_eq!(status(&w, run.id).await.status, RunStatus::Running);
    drop(a); // killed: its lease stays until it expires

    let b = w.platform().control_plane(fast());
    let report = b.pass().await.unwrap();
    assert_eq!(report.held_elsewhere, 1, "a live lease keeps others off");
    assert_eq!(status(&w, run.id).await.status, RunStatus::Running);

    clock.advance(16);
    for _ in 0..10 {
        b.pass().await.unwrap();
        clock.advance(1);
    }
    let done = status(&w, run.id).await;
    assert_eq!(done.status, RunStatus::Deployed, "{:?}", done.error_message);
    assert_eq!(w.creates_of(run.id), 1, "one pipeline");
    assert_eq!(done.vertex_model_version.as_deref(), Some("1"));
    assert_eq!(w.serving.calls.lock().unwrap().len(), 1, "one deploy");
}

#[tokio::test]
async fn a_crash_between_submitting_and_recording_it_resubmits_to_the_same_job() {
    let w = World::sqlite(Arc::new(SystemClock), 3).await;
    let run = w.new_run("product-recs").await;
    let training = w.platform().training();
    training.submit(run.id).await.unwrap();
    // A process marked it submitting and died before recording the job.
    training.mark_submitting(run.id).await.unwrap();
    let cp = w.platform().control_plane(fast());
    for _ in 0..20 {
        cp.pass().await.unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status(&w, run.id).await.status, RunStatus::Deployed);
    assert_eq!(w.creates_of(run.id), 1);
}

/// A process killed while deploying, after the run's registration was recorded and before the
/// model's version cache was refreshed: once the deploy is stale the control plane deploys
/// again and the model shows the version.
#[tokio::test]
async fn a_deploy_killed_midway_is_repeated_and_the_models_versions_are_refreshed() {
    let clock = TestClock::at(Utc::now());
    let w = World::sqlite(clock.clone(), 3).await;
    let run = w.new_run("product-recs").await;
    w.platform().training().submit(run.id).await.unwrap();
    let cp = w.platform().control_plane(fast());
    for _ in 0..10 {
        cp.pass().await.unwrap();
        clock.advance(1);
    }
    let mut r = status(&w, run.id).await;
    assert_eq!(r.status, RunStatus::Deployed);
    // the state a kill leaves: deploying, and a model that does not know its version yet
    r.transition(trainyard_core::RunEvent::Deploy, clock.now())
        .unwrap();
    r.deployment_started_at = Some(clock.now());
    w.store.update_run(&r).await.unwrap();
    let model_id = r.registered_model_id.unwrap();
    let mut m = w.store.get_registered_model(model_id).await.unwrap();
    m.latest_version_number = String::new();
    m.latest_version_id = None;
    m.total_versions = 0;
    w.store.update_registered_model(&m).await.unwrap();

    cp.pass().await.unwrap();
    assert_eq!(
        status(&w, run.id).await.status,
        RunStatus::Deploying,
        "not stale yet"
    );
    clock.advance(trainyard_core::control::STALE_DEPLOY_SECONDS + 1);
    cp.pass().await.unwrap();
    let done = status(&w, run.id).await;
    assert_eq!(done.status, RunStatus::Deployed);
    assert_eq!(w.serving.calls.lock().unwrap().len(), 2, "deployed again");
    let m = w.store.get_registered_model(model_id).await.unwrap();
    assert_eq!(
        (m.latest_version_number.as_str(), m.total_versions),
        ("1", 1)
    );
    assert_eq!(m.latest_version_id, Some(run.id));
}

#[tokio::test]
async fn queued_fires_start_one_at_a_time_in_fire_order() {
    let clock = TestClock::at(Utc::now());
    let w = World::sqlite(clock.clone(), 3).await;
    let source = w.new_run("nightly").await;
    let schedules = w.platform().schedules();
    let schedule = schedules
        .create_from_run(
            source.id,
            NewSchedule {
                name: "nightly".into(),
                description: String::new(),
                timing: daily(),
                catch_up: Default::default(),
                concurrency: ConcurrencyPolicy::Queue,
            },
        )
        .await
        .unwrap();
    let mut fired = Vec::new();
    for _ in 0..3 {
        let outcome = schedules.trigger_now(schedule.id).await.unwrap();
        let trainyard::core::ports::FireOutcome::Created { run } = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(run.status, RunStatus::Scheduled);
        fired.push(run.id);
        clock.advance(1);
    }
    let cp = w.platform().control_plane(fast());
    let mut started_order = Vec::new();
    for _ in 0..40 {
        cp.pass().await.unwrap();
        clock.advance(1);
        let mut in_flight = 0;
        for id in &fired {
            let r = status(&w, *id).await;
            if matches!(r.status, RunStatus::Submitting | RunStatus::Running) {
                in_flight += 1;
            }
            if r.status != RunStatus::Scheduled && !started_order.contains(id) {
                started_order.push(*id);
            }
        }
        assert!(in_flight <= 1, "queue runs one at a time");
    }
    assert_eq!(started_order, fired, "in fire order");
    // Each became the next version and was deployed to the model's endpoint in turn; a
    // replaced version goes back to completed.
    let mut versions = Vec::new();
    for (i, id) in fired.iter().enumerate() {
        let r = status(&w, *id).await;
        let last = i == fired.len() - 1;
        let expected = if last {
            RunStatus::Deployed
        } else {
            RunStatus::Completed
        };
        assert_eq!(r.status, expected, "run {id}");
        assert_eq!(
            r.stage_details.get(StageName::Deploy).status,
            trainyard::core::stages::StageStatus::Completed
        );
        versions.push(r.vertex_model_version.clone().unwrap());
    }
    assert_eq!(versions, vec!["1", "2", "3"]);
}

#[tokio::test]
async fn cancel_is_recorded_and_the_control_plane_leaves_the_run_alone() {
    let w = World::sqlite(Arc::new(SystemClock), 50).await;
    let run = w.new_run("product-recs").await;
    let training = w.platform().training();
    training.submit(run.id).await.unwrap();
    let cp = w.platform().control_plane(fast());
    cp.pass().await.unwrap();
    assert_eq!(status(&w, run.id).await.status, RunStatus::Running);
    // another process cancels it
    let cancelled = w.platform().training().cancel(run.id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    for _ in 0..60 {
        cp.pass().await.unwrap();
    }
    let after = status(&w, run.id).await;
    assert_eq!(after.status, RunStatus::Cancelled);
    assert!(after.vertex_model_version.is_none());
}

/// Two servers on one PostgreSQL store, each with the embedded scheduler; 50 schedules come
/// due at once; one server is killed while the runs train. Every fire becomes exactly one
/// run, and each run is trained (one pipeline), registered (version 1) and deployed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs TRAINYARD_TEST_POSTGRES_URL; run by make test"]
async fn postgres_two_servers_one_killed_fifty_fires_each_carried_exactly_once() {
    let admin = std::env::var("TRAINYARD_TEST_POSTGRES_URL")
        .expect("TRAINYARD_TEST_POSTGRES_URL must point at a PostgreSQL server");
    let db = format!("ty_cp_{}", std::process::id());
    let url = trainyard_store::create_database(&admin, &db).await.unwrap();
    let store: Arc<dyn Store> =
        Arc::new(trainyard_store::PostgresStore::connect(&url).await.unwrap());
    let w = World::over(
        tempfile::tempdir().unwrap(),
        store,
        Arc::new(SystemClock),
        6,
    );

    // 50 models, each with a daily schedule made due now.
    let n = 50;
    let schedules = w.platform().schedules();
    for i in 0..n {
        let run = w.new_run(&format!("model-{i:02}")).await;
        let s = schedules
            .create_from_run(
                run.id,
                NewSchedule {
                    name: format!("s{i}"),
                    description: String::new(),
                    timing: daily(),
                    catch_up: Default::default(),
                    concurrency: ConcurrencyPolicy::Allow,
                },
            )
            .await
            .unwrap();
        let mut due = w.store.get_schedule(s.id).await.unwrap();
        due.next_run_at = Some(Utc::now() - chrono::Duration::seconds(1));
        w.store.update_schedule(&due).await.unwrap();
    }
    let config = ControlPlaneConfig {
        tick: Duration::from_millis(50),
        max_poll_interval: Duration::from_millis(100),
        lease_ttl: Duration::from_secs(2),
        ..ControlPlaneConfig::server()
    };
    let a = w.platform().control_plane(config.clone());
    let b = w.platform().control_plane(config);
    let a_task = tokio::spawn(async move { a.run(std::future::pending::<()>()).await });
    let b_handle = tokio::spawn(async move { b.run(std::future::pending::<()>()).await });

    // Kill server A once pipelines are running.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let running = w.pipelines.creates.lock().unwrap().len();
        if running >= 10 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a_task.abort();

    let scheduled_runs = |w: &World| {
        let store = w.store.clone();
        async move {
            let mut all = Vec::new();
            let mut page = 1;
            loop {
                let p = store
                    .list_runs(&trainyard::core::ports::RunFilter {
                        page,
                        page_size: 200,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                let len = p.runs.len();
                all.extend(p.runs.into_iter().filter(|r| r.schedule_id.is_some()));
                if len < 200 {
                    break;
                }
                page += 1;
            }
            all
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let runs = scheduled_runs(&w).await;
        let deployed = runs
            .iter()
            .filter(|r| r.status == RunStatus::Deployed)
            .count();
        if deployed == n || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b_handle.abort();

    let runs = scheduled_runs(&w).await;
    assert_eq!(runs.len(), n, "exactly one run per fire");
    for r in &runs {
        assert_eq!(
            r.status,
            RunStatus::Deployed,
            "run {} {:?}",
            r.id,
            r.error_message
        );
        assert_eq!(w.creates_of(r.id), 1, "run {}: one pipeline", r.id);
        assert_eq!(r.vertex_model_version.as_deref(), Some("1"), "run {}", r.id);
    }
    let deploys = w.distinct_deploys();
    assert_eq!(deploys.len(), n, "one deploy per run");
    let calls = w.serving.calls.lock().unwrap().len();
    println!(
        "50 fires: {} pipelines, {} submit calls, {} deploy calls ({} distinct)",
        w.pipelines.creates.lock().unwrap().len(),
        w.pipelines.submit_calls.lock().unwrap(),
        calls,
        deploys.len()
    );
}
