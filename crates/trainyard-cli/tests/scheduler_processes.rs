//! Several `trainyard scheduler run` processes on one database, one of them killed with
//! SIGKILL and restarted midway: every planted fire produces exactly one run.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use trainyard::core::ports::RunFilter;
use trainyard::core::run::NewTrainingRun;
use trainyard::core::schedule::{CatchUpPolicy, ConcurrencyPolicy, ScheduleType};
use trainyard::core::timing::ScheduleTiming;
use trainyard::{NewSchedule, Platform};

const FIRES: usize = 200;
const SPREAD_SECS: i64 = 10;

fn spawn_scheduler(project: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args([
            "--project",
            project.to_str().unwrap(),
            "scheduler",
            "run",
            "--tick-ms",
            "100",
        ])
        .env("TRAINYARD_LOG", "warn")
        .env_remove("TRAINYARD_STORE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn stop(mut child: Child) {
    // SIGTERM, the way a service manager stops it.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Plants FIRES due fires over the next seconds, runs `processes` schedulers, kills one.
async fn exactly_once(project: &Path, processes: usize) {
    let p = Platform::init(project).await.unwrap();
    let schedules = p.schedules();
    let t0: DateTime<Utc> = (Utc::now() + chrono::Duration::seconds(4)).trunc_subsecs(0);
    let mut planted = Vec::new();
    for i in 0..FIRES {
        let run = p
            .training()
            .create_training_run(NewTrainingRun {
                ml_model: "shop".into(),
                name: format!("model-{i}"),
                ..Default::default()
            })
            .await
            .unwrap();
        let s = schedules
            .create_from_run(
                run.id,
                NewSchedule {
                    name: format!("s{i}"),
                    description: String::new(),
                    timing: ScheduleTiming {
                        schedule_type: ScheduleType::Daily,
                        scheduled_datetime: None,
                        schedule_time: Some("03:00".into()),
                        schedule_day_of_week: None,
                        schedule_day_of_month: None,
                        schedule_timezone: "UTC".into(),
                    },
                    catch_up: CatchUpPolicy::Once,
                    concurrency: ConcurrencyPolicy::Allow,
                },
            )
            .await
            .unwrap();
        // Make the schedule due within the test window.
        let mut due = s.clone();
        due.next_run_at = Some(t0 + chrono::Duration::seconds(i as i64 % SPREAD_SECS));
        let due = p.store().update_schedule(&due).await.unwrap();
        planted.push((due.id, due.next_run_at.unwrap()));
    }

    let mut children: Vec<Child> = (0..processes).map(|_| spawn_scheduler(project)).collect();
    // Kill one mid-window, while fires are being made, and bring it back.
    let kill_at = t0 + chrono::Duration::seconds(SPREAD_SECS / 2);
    while Utc::now() < kill_at {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut victim = children.remove(0);
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    children.push(spawn_scheduler(project));

    // Wait until every planted fire has been handled (nothing due any more).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = Utc::now();
        let all_passed = now > t0 + chrono::Duration::seconds(SPREAD_SECS + 1);
        if all_passed && p.store().due_schedules(now, 10).await.unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "schedules still due after 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    children.into_iter().for_each(stop);

    for (id, at) in &planted {
        let runs = p
            .store()
            .list_runs(&RunFilter {
                schedule_id: Some(*id),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            runs.total, 1,
            "schedule {id}: {} runs for one fire",
            runs.total
        );
        assert_eq!(runs.runs[0].scheduled_fire_at, Some(*at), "schedule {id}");
    }
    let all = p
        .store()
        .list_runs(&RunFilter {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.runs.iter().filter(|r| r.schedule_id.is_some()).count(),
        FIRES
    );
}

fn init_project(dir: &Path, store_url: Option<&str>) {
    let mut toml = String::from("[project]\nml_model = \"shop\"\n");
    if let Some(url) = store_url {
        toml.push_str(&format!("\n[store]\nurl = \"{url}\"\n"));
    }
    std::fs::write(dir.join("trainyard.toml"), toml).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_on_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    init_project(dir.path(), None);
    exactly_once(dir.path(), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs TRAINYARD_TEST_POSTGRES_URL; run by make test"]
async fn three_schedulers_on_one_postgres_database() {
    let admin = std::env::var("TRAINYARD_TEST_POSTGRES_URL")
        .expect("TRAINYARD_TEST_POSTGRES_URL must point at a PostgreSQL server");
    let name = format!("ty_sched_{}", std::process::id());
    let url = trainyard_store::create_database(&admin, &name)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    init_project(dir.path(), Some(&url));
    exactly_once(dir.path(), 3).await;
}
