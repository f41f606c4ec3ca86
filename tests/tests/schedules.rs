use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use testkit::{sqlite_platform, utc, TestClock};
use trainyard::core::model_config::ModelType;
use trainyard::core::ports::{FireOutcome, PipelineEvent, ScheduleFirer};
use trainyard::core::run::NewTrainingRun;
use trainyard::core::schedule::{CatchUpPolicy, ConcurrencyPolicy, ScheduleStatus, ScheduleType};
use trainyard::core::timing::ScheduleTiming;
use trainyard::{Error, NewSchedule, Platform, ProjectConfig, ScheduleEdit, WizardSchedule};
use trainyard_core::RunStatus;
use trainyard_local::SchedulerConfig;

async fn platform(start: &str) -> (tempfile::TempDir, Platform, Arc<TestClock>) {
    sqlite_platform(utc(start), ProjectConfig::default()).await
}

fn daily(name: &str, time: &str) -> NewSchedule {
    NewSchedule {
        name: name.into(),
        description: String::new(),
        timing: ScheduleTiming {
            schedule_type: ScheduleType::Daily,
            scheduled_datetime: None,
            schedule_time: Some(time.into()),
            schedule_day_of_week: None,
            schedule_day_of_month: None,
            schedule_timezone: "Europe/Warsaw".into(),
        },
        catch_up: CatchUpPolicy::Once,
        concurrency: ConcurrencyPolicy::Allow,
    }
}

async fn source_run(p: &Platform, name: &str) -> trainyard::core::run::TrainingRun {
    p.training()
        .create_training_run(NewTrainingRun {
            ml_model: "shop".into(),
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn one_schedule_per_model_and_delete_frees_it() {
    let (_d, p, _c) = platform("2026-03-01T10:00:00Z").await;
    let svc = p.schedules();
    let run = source_run(&p, "retrieval").await;
    let s = svc
        .create_from_run(run.id, daily("nightly", "02:00"))
        .await
        .unwrap();
    assert_eq!(
        s.next_run_at,
        Some(utc("2026-03-02T01:00:00Z")),
        "02:00 in Warsaw (CET)"
    );
    assert_eq!(s.timing.cron().unwrap(), "0 2 * * *");
    assert_eq!(
        s.training_config.training_params,
        run.config.training_params
    );

    let err = svc
        .create_from_run(run.id, daily("again", "03:00"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)));
    assert!(
        err.to_string().contains(&format!("schedule {}", s.id)),
        "{err}"
    );
    let check = p.registry().check_name("shop", "retrieval").await.unwrap();
    assert_eq!((check.has_schedule, check.schedule_id), (true, Some(s.id)));

    svc.delete(s.id).await.unwrap();
    assert!(matches!(svc.get(s.id).await, Err(Error::NotFound { .. })));
    assert!(
        !p.registry()
            .check_name("shop", "retrieval")
            .await
            .unwrap()
            .has_schedule
    );
    svc.create_from_run(run.id, daily("again", "03:00"))
        .await
        .unwrap();
}

#[tokio::test]
async fn validation_rules_and_frozen_config() {
    let (_d, p, _c) = platform("2026-03-01T10:00:00Z").await;
    let svc = p.schedules();
    let run = source_run(&p, "m").await;
    let mut bad = daily("", "02:00");
    assert!(matches!(
        svc.create_from_run(run.id, bad.clone()).await,
        Err(Error::Validation(_))
    ));
    bad.name = "x".repeat(101);
    assert!(matches!(
        svc.create_from_run(run.id, bad.clone()).await,
        Err(Error::Validation(_))
    ));
    let mut once = daily("once", "02:00");
    once.timing.schedule_type = ScheduleType::Once;
    once.timing.scheduled_datetime = Some(utc("2026-02-01T00:00:00Z"));
    let err = svc.create_from_run(run.id, once).await.unwrap_err();
    assert!(err.to_string().contains("must be in the future"), "{err}");
    assert!(
        p.schedules().list(None).await.unwrap().is_empty(),
        "nothing stored"
    );

    // The training config cannot be edited through a schedule edit.
    let s = svc
        .create_from_run(run.id, daily("ok", "02:00"))
        .await
        .unwrap();
    let edit: Result<ScheduleEdit, _> =
        serde_json::from_value(serde_json::json!({"training_params": {"epochs": 1}}));
    assert!(edit.is_err());
    let edit: ScheduleEdit = serde_json::from_value(serde_json::json!({
        "name": "weekly now",
        "timing": {"schedule_type": "weekly", "schedule_time": "10:00", "schedule_day_of_week": 2, "schedule_timezone": "Europe/Warsaw"}
    }))
    .unwrap();
    let edited = svc.edit(s.id, &edit).await.unwrap();
    assert_eq!(edited.name, "weekly now");
    assert_eq!(
        edited.timing.cron().unwrap(),
        "0 10 * * 3",
        "Wednesday is cron day 3"
    );
    assert_eq!(edited.next_run_at, Some(utc("2026-03-04T09:00:00Z")));
    assert_eq!(edited.training_config, s.training_config);

    svc.cancel(s.id).await.unwrap();
    assert!(matches!(
        svc.edit(s.id, &edit).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(svc.resume(s.id).await, Err(Error::Conflict(_))));
}

#[tokio::test]
async fn fires_are_idempotent_per_schedule_and_time() {
    let (_d, p, _c) = platform("2026-03-01T10:00:00Z").await;
    let svc = Arc::new(p.schedules());
    let run = source_run(&p, "m").await;
    let s = svc
        .create_from_run(run.id, daily("d", "02:00"))
        .await
        .unwrap();
    let at = utc("2026-03-02T01:00:00Z");
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { svc.fire(s.id, at).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        match t.await.unwrap() {
            FireOutcome::Created { run } => {
                created += 1;
                ids.insert(run.id);
                assert_eq!(run.status, RunStatus::Scheduled);
                assert_eq!(run.schedule_id, Some(s.id));
                assert_eq!(run.name, "m");
            }
            FireOutcome::AlreadyFired { run } => {
                ids.insert(run.id);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1, "every delivery names the same run");
    assert_eq!(svc.get(s.id).await.unwrap().total_runs, 1);
}

#[tokio::test]
async fn scheduler_fires_catches_up_once_and_keeps_stats() {
    let (_d, p, clock) = platform("2026-03-01T10:00:00Z").await;
    let svc = p.schedules();
    let run = source_run(&p, "m").await;
    let s = svc
        .create_from_run(run.id, daily("d", "02:00"))
        .await
        .unwrap();
    let sched = p.embedded_scheduler(SchedulerConfig::default());

    assert_eq!(sched.tick().await.unwrap().created, 0, "not due yet");
    clock.set(utc("2026-03-02T01:00:05Z"));
    assert_eq!(sched.tick().await.unwrap().created, 1);
    assert_eq!(
        sched.tick().await.unwrap().created,
        0,
        "advanced past the fire"
    );
    assert_eq!(
        svc.get(s.id).await.unwrap().next_run_at,
        Some(utc("2026-03-03T01:00:00Z"))
    );

    // Three days down: one run for the missed window, then the next regular fire.
    clock.set(utc("2026-03-05T12:00:00Z"));
    let r = sched.tick().await.unwrap();
    assert_eq!(r.created, 1);
    let after = svc.get(s.id).await.unwrap();
    assert_eq!(after.next_run_at, Some(utc("2026-03-06T01:00:00Z")));
    assert_eq!(after.total_runs, 2);
    assert_eq!(
        after.last_run_at,
        Some(utc("2026-03-03T01:00:00Z")),
        "keyed by the first missed fire"
    );

    // Statistics follow the spawned runs' outcomes.
    let training = p.training();
    let runs = p
        .training()
        .list(&trainyard::core::ports::RunFilter {
            schedule_id: Some(s.id),
            ..Default::default()
        })
        .await
        .unwrap()
        .runs;
    let metrics = serde_json::json!({"loss": {"val_recall_at_100": [0.2]}});
    training
        .handle_event(
            runs[0].id,
            &PipelineEvent::Completed {
                training_metrics: metrics,
                blessed: true,
                artifacts: BTreeMap::new(),
            },
        )
        .await
        .unwrap();
    training
        .handle_event(
            runs[1].id,
            &PipelineEvent::Failed {
                error: "boom".into(),
                stage: None,
            },
        )
        .await
        .unwrap();
    let stats = svc.get(s.id).await.unwrap();
    assert_eq!(
        (stats.total_runs, stats.successful_runs, stats.failed_runs),
        (2, 1, 1)
    );
    assert_eq!(stats.success_rate(), Some(50.0));
}

#[tokio::test]
async fn catch_up_all_and_skip() {
    for (policy, expected) in [(CatchUpPolicy::All, 4), (CatchUpPolicy::Skip, 0)] {
        let (_d, p, clock) = platform("2026-03-01T10:00:00Z").await;
        let run = source_run(&p, "m").await;
        let mut new = daily("d", "02:00");
        new.catch_up = policy;
        let s = p.schedules().create_from_run(run.id, new).await.unwrap();
        let sched = p.embedded_scheduler(SchedulerConfig::default());
        clock.set(utc("2026-03-05T12:00:00Z")); // fires of the 2nd..5th were missed
        let mut created = 0;
        for _ in 0..6 {
            created += sched.tick().await.unwrap().created;
        }
        assert_eq!(created, expected, "{policy:?}");
        assert_eq!(
            p.schedules().get(s.id).await.unwrap().next_run_at,
            Some(utc("2026-03-06T01:00:00Z"))
        );
    }
}

#[tokio::test]
async fn concurrency_policies() {
    let (_d, p, _c) = platform("2026-03-01T10:00:00Z").await;
    let svc = p.schedules();
    let mut expectations = Vec::new();
    for (i, policy) in [
        ConcurrencyPolicy::Skip,
        ConcurrencyPolicy::Queue,
        ConcurrencyPolicy::Allow,
    ]
    .into_iter()
    .enumerate()
    {
        let run = source_run(&p, &format!("m{i}")).await;
        let mut new = daily("d", "02:00");
        new.concurrency = policy;
        let s = svc.create_from_run(run.id, new).await.unwrap();
        // The first fire's run is still active (scheduled: no executor here) at the second fire.
        assert!(matches!(
            svc.fire(s.id, utc("2026-03-02T01:00:00Z")).await.unwrap(),
            FireOutcome::Created { .. }
        ));
        let second = svc.fire(s.id, utc("2026-03-03T01:00:00Z")).await.unwrap();
        expectations.push((policy, second));
    }
    assert!(
        matches!(expectations[0].1, FireOutcome::Skipped { .. }),
        "{:?}",
        expectations[0]
    );
    assert!(
        matches!(&expectations[1].1, FireOutcome::Created { run } if run.status == RunStatus::Scheduled)
    );
    assert!(matches!(expectations[2].1, FireOutcome::Created { .. }));
}

#[tokio::test]
async fn once_pause_resume_trigger_and_wizard() {
    let (_d, p, clock) = platform("2026-03-01T10:00:00Z").await;
    let svc = p.schedules();
    let wizard: WizardSchedule = serde_json::from_value(serde_json::json!({
        "ml_model": "shop", "name": "ranker",
        "model_config": serde_json::to_value(trainyard::core::model_config::ModelConfig { model_type: ModelType::Ranking, ..Default::default() }).unwrap(),
        "schedule_type": "once", "scheduled_datetime": "2026-03-01T12:00:30Z", "schedule_timezone": "UTC"
    }))
    .unwrap();
    let s = svc.create_from_config(wizard).await.unwrap();
    assert_eq!(s.name, "ranker - Retraining");
    let model = p.registry().get(s.registered_model_id).await.unwrap();
    assert_eq!(
        (model.model_name.as_str(), model.model_type),
        ("ranker", ModelType::Ranking)
    );
    assert_eq!(
        s.next_run_at,
        Some(utc("2026-03-01T12:00:00Z")),
        "seconds dropped"
    );

    let paused = svc.pause(s.id).await.unwrap();
    assert_eq!(paused.status, ScheduleStatus::Paused);
    let sched = p.embedded_scheduler(SchedulerConfig::default());
    clock.set(utc("2026-03-01T12:30:00Z"));
    assert_eq!(
        sched.tick().await.unwrap().created,
        0,
        "paused schedules do not fire"
    );
    // Trigger now works while paused; it does not touch the timetable.
    assert!(matches!(
        svc.trigger_now(s.id).await.unwrap(),
        FireOutcome::Created { .. }
    ));
    let resumed = svc.resume(s.id).await.unwrap();
    assert_eq!(
        resumed.next_run_at, None,
        "a passed one-time fire is not caught up after a pause"
    );

    // A fresh one-time schedule completes after its fire.
    let run = source_run(&p, "solo").await;
    let mut once = daily("once", "00:00");
    once.timing = ScheduleTiming {
        schedule_type: ScheduleType::Once,
        scheduled_datetime: Some(utc("2026-03-01T13:00:00Z")),
        schedule_time: None,
        ..once.timing
    };
    let o = svc.create_from_run(run.id, once).await.unwrap();
    clock.set(utc("2026-03-01T13:00:01Z"));
    assert_eq!(sched.tick().await.unwrap().created, 1);
    let done = svc.get(o.id).await.unwrap();
    assert_eq!(
        (done.status, done.next_run_at),
        (ScheduleStatus::Completed, None)
    );

    // From a registered model: the newest run's config.
    let model_id = run.registered_model_id.unwrap();
    svc.delete(o.id).await.unwrap();
    let again = svc
        .create_for_model(model_id, daily("from model", "05:00"))
        .await
        .unwrap();
    let newest = p.registry().versions(model_id).await.unwrap()[0].id;
    assert_ne!(newest, run.id, "the fired run is newer than the source");
    assert_eq!(again.source_training_run_id, Some(newest));
    let preview = svc.preview(run.id).await.unwrap();
    assert_eq!(preview.source_run_name, "solo");
    assert_eq!(svc.upcoming(again.id, 3).await.unwrap().len(), 3);
    assert_eq!(
        svc.grid(again.id).await.unwrap().len(),
        280,
        "40 weeks of daily fires"
    );
}

fn now_timing() -> ScheduleTiming {
    ScheduleTiming {
        schedule_type: ScheduleType::Now,
        scheduled_datetime: None,
        schedule_time: None,
        schedule_day_of_week: None,
        schedule_day_of_month: None,
        schedule_timezone: "Europe/Warsaw".into(),
    }
}

async fn runs_of(p: &Platform, schedule_id: i64) -> Vec<trainyard::core::run::TrainingRun> {
    p.training()
        .list(&trainyard::core::ports::RunFilter {
            schedule_id: Some(schedule_id),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .runs
}

#[tokio::test]
async fn now_fires_at_creation_then_is_finished_and_frees_its_model() {
    let (_d, p, clock) = platform("2026-03-01T10:00:00.750Z").await;
    let svc = p.schedules();
    let run = source_run(&p, "m").await;
    let mut new = daily("run now", "00:00");
    new.timing = now_timing();
    let s = svc.create_from_run(run.id, new.clone()).await.unwrap();
    let created_at = utc("2026-03-01T10:00:00Z");
    assert_eq!(s.timing.schedule_type, ScheduleType::Now);
    assert_eq!(
        s.timing.scheduled_datetime,
        Some(created_at),
        "bound to its creation instant"
    );
    assert_eq!((s.status, s.next_run_at), (ScheduleStatus::Completed, None));
    assert_eq!((s.total_runs, s.last_run_at), (1, Some(created_at)));
    let fired = runs_of(&p, s.id).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].scheduled_fire_at, Some(created_at));
    assert_eq!(
        fired[0].status,
        RunStatus::Scheduled,
        "no executor: created only"
    );
    assert_eq!(fired[0].config.training_params, run.config.training_params);
    assert_eq!(
        s.timing.cron().unwrap(),
        "0 11 1 3 *",
        "its minute, in Warsaw"
    );

    // Nothing left for the scheduler, and a finished schedule does not fire on demand.
    clock.set(utc("2026-03-01T10:05:00Z"));
    let sched = p.embedded_scheduler(SchedulerConfig::default());
    assert_eq!(sched.tick().await.unwrap(), Default::default());
    assert!(matches!(
        svc.trigger_now(s.id).await.unwrap(),
        FireOutcome::Skipped { .. }
    ));
    assert_eq!(runs_of(&p, s.id).await.len(), 1);

    // A finished `now` schedule gives way to the model's next schedule, of any type...
    let d = svc
        .create_from_run(run.id, daily("nightly", "02:00"))
        .await
        .unwrap();
    assert!(matches!(svc.get(s.id).await, Err(Error::NotFound { .. })));
    // ...but a live schedule is not replaced by a `now` one.
    let err = svc.create_from_run(run.id, new).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert_eq!(svc.get(d.id).await.unwrap().status, ScheduleStatus::Active);
}

#[tokio::test]
async fn now_by_edit_resume_and_the_scheduler() {
    let (_d, p, clock) = platform("2026-03-01T10:00:00Z").await;
    let svc = p.schedules();
    let sched = p.embedded_scheduler(SchedulerConfig::default());

    // An active schedule edited to `now` fires at once and is finished.
    let a = source_run(&p, "a").await;
    let s = svc
        .create_from_run(a.id, daily("a", "02:00"))
        .await
        .unwrap();
    clock.set(utc("2026-03-01T10:10:00Z"));
    let edit = ScheduleEdit {
        timing: Some(now_timing().into()),
        ..Default::default()
    };
    let e = svc.edit(s.id, &edit).await.unwrap();
    assert_eq!((e.status, e.total_runs), (ScheduleStatus::Completed, 1));
    assert_eq!(
        runs_of(&p, s.id).await[0].scheduled_fire_at,
        Some(utc("2026-03-01T10:10:00Z"))
    );

    // A paused one waits, due, until it is resumed; resuming fires it once.
    let b = source_run(&p, "b").await;
    let s = svc
        .create_from_run(b.id, daily("b", "02:00"))
        .await
        .unwrap();
    svc.pause(s.id).await.unwrap();
    let e = svc.edit(s.id, &edit).await.unwrap();
    assert_eq!(
        (e.status, e.next_run_at, e.total_runs),
        (ScheduleStatus::Paused, Some(utc("2026-03-01T10:10:00Z")), 0)
    );
    assert_eq!(sched.tick().await.unwrap().created, 0);
    clock.set(utc("2026-03-01T11:00:00Z"));
    let r = svc.resume(s.id).await.unwrap();
    assert_eq!((r.status, r.total_runs), (ScheduleStatus::Completed, 1));
    assert_eq!(
        runs_of(&p, s.id).await[0].scheduled_fire_at,
        Some(utc("2026-03-01T10:10:00Z")),
        "keyed by the instant it was asked for"
    );

    // A `now` schedule whose creating call died before the fire: the scheduler fires it,
    // later than the skip grace and under catch_up: skip, since its one fire is never missed.
    let c = source_run(&p, "c").await;
    let mut s = svc
        .create_from_run(c.id, daily("c", "02:00"))
        .await
        .unwrap();
    s.timing = now_timing();
    s.timing.scheduled_datetime = Some(utc("2026-03-01T11:00:00Z"));
    s.next_run_at = s.timing.scheduled_datetime;
    s.catch_up = CatchUpPolicy::Skip;
    p.store().update_schedule(&s).await.unwrap();
    clock.set(utc("2026-03-01T11:30:00Z"));
    assert_eq!(sched.tick().await.unwrap().created, 1);
    let done = svc.get(s.id).await.unwrap();
    assert_eq!(
        (done.status, done.next_run_at, done.total_runs),
        (ScheduleStatus::Completed, None, 1)
    );
    assert_eq!(sched.tick().await.unwrap().created, 0);
}

fn weekly_config(time: &str) -> trainyard::core::config::ScheduleConfig {
    trainyard::core::config::ScheduleConfig {
        schedule_type: trainyard::core::config::ScheduleKind::Weekly,
        schedule_time: Some(time.into()),
        schedule_day_of_week: Some(0),
        schedule_timezone: "Europe/Warsaw".into(),
        ..Default::default()
    }
}

async fn run_with(
    p: &Platform,
    name: &str,
    epochs: u32,
    schedule: trainyard::core::config::ScheduleConfig,
) -> Result<trainyard::core::run::TrainingRun, Error> {
    let mut new = NewTrainingRun {
        ml_model: "shop".into(),
        name: name.into(),
        ..Default::default()
    };
    new.config.training_params.epochs = epochs;
    new.config.schedule_config = schedule;
    p.training().create_training_run(new).await
}

async fn model_schedule(
    p: &Platform,
    run: &trainyard::core::run::TrainingRun,
) -> Option<trainyard::core::schedule::TrainingSchedule> {
    p.store()
        .schedule_for_model(run.registered_model_id.unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_runs_schedule_config_creates_and_retimes_its_models_schedule() {
    use trainyard::core::config::{ScheduleConfig, ScheduleKind};
    use trainyard::core::run::ConfigPatch;
    use trainyard::RunScheduleSync;
    let (_d, p, clock) = platform("2026-03-04T10:00:00Z").await;
    let training = p.training();
    let svc = p.schedules();

    // `now` (the default) asks for no schedule.
    let plain = run_with(&p, "m", 5, ScheduleConfig::default())
        .await
        .unwrap();
    assert!(model_schedule(&p, &plain).await.is_none());

    // A weekly schedule_config creates the model's schedule from the run.
    let r1 = run_with(&p, "m", 7, weekly_config("09:00")).await.unwrap();
    let s = model_schedule(&p, &r1).await.expect("created");
    assert_eq!(s.name, "m - Retraining");
    assert_eq!(s.source_training_run_id, Some(r1.id));
    assert_eq!(
        (s.timing.schedule_type, s.timing.cron().unwrap()),
        (ScheduleType::Weekly, "0 9 * * 1".to_string())
    );
    assert_eq!(
        s.next_run_at,
        Some(utc("2026-03-09T08:00:00Z")),
        "Monday 09:00 CET"
    );
    assert_eq!(s.training_config.training_params.epochs, 7);
    assert_eq!(
        s.training_config.schedule_config,
        ScheduleConfig::default(),
        "frozen config trains now"
    );
    assert_eq!(s.status, ScheduleStatus::Active);

    // Another run of the model with another timing moves the schedule (its config stays frozen).
    let r2 = run_with(&p, "m", 9, weekly_config("10:30")).await.unwrap();
    let s2 = model_schedule(&p, &r2).await.unwrap();
    assert_eq!(s2.id, s.id);
    assert_eq!(s2.timing.cron().unwrap(), "30 10 * * 1");
    assert_eq!(s2.next_run_at, Some(utc("2026-03-09T09:30:00Z")));
    assert_eq!(s2.training_config.training_params.epochs, 7);
    // The same timing again changes nothing.
    assert!(matches!(
        svc.apply_run_config(r2.id).await.unwrap(),
        RunScheduleSync::Unchanged { .. }
    ));
    assert_eq!(model_schedule(&p, &r2).await.unwrap().version, s2.version);

    // A rerun copies the schedule_config but leaves the schedule alone.
    svc.edit(
        s.id,
        &ScheduleEdit {
            timing: Some(daily("x", "04:00").timing.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    training.cancel(r1.id).await.unwrap();
    let again = training.rerun(r1.id).await.unwrap();
    assert_eq!(again.config.schedule_config, r1.config.schedule_config);
    assert_eq!(
        model_schedule(&p, &r1)
            .await
            .unwrap()
            .timing
            .cron()
            .unwrap(),
        "0 4 * * *"
    );

    // Editing a finished run's schedule_config (the spec's Edit feature) retimes it; a paused
    // schedule stays paused; an edit that does not touch schedule_config leaves it alone.
    svc.pause(s.id).await.unwrap();
    let monthly = ScheduleConfig {
        schedule_type: ScheduleKind::Monthly,
        schedule_time: Some("02:00".into()),
        schedule_day_of_month: Some(15),
        schedule_timezone: "UTC".into(),
        ..Default::default()
    };
    let patch = ConfigPatch {
        schedule_config: Some(monthly.clone()),
        ..Default::default()
    };
    let (_, changed) = training.patch_config(r1.id, &patch).await.unwrap();
    assert_eq!(changed, vec!["schedule_config"]);
    let s3 = model_schedule(&p, &r1).await.unwrap();
    assert_eq!(
        (s3.status, s3.timing.cron().unwrap()),
        (ScheduleStatus::Paused, "0 2 15 * *".to_string())
    );
    assert_eq!(s3.next_run_at, Some(utc("2026-03-15T02:00:00Z")));
    // Back to `now`: the schedule is left as it is.
    let to_now = ConfigPatch {
        schedule_config: Some(ScheduleConfig::default()),
        ..Default::default()
    };
    training.patch_config(r1.id, &to_now).await.unwrap();
    assert_eq!(model_schedule(&p, &r1).await.unwrap().timing, s3.timing);

    // Bad timing in a schedule_config is refused before anything is written.
    let bad = ConfigPatch {
        schedule_config: Some(ScheduleConfig {
            schedule_timezone: "Mars/Olympus".into(),
            ..monthly.clone()
        }),
        ..Default::default()
    };
    let err = training.patch_config(r1.id, &bad).await.unwrap_err();
    assert!(
        matches!(&err, Error::Validation(v) if v.field == "schedule_config.schedule_timezone"),
        "{err}"
    );
    let before = training.list(&Default::default()).await.unwrap().total;
    let err = run_with(
        &p,
        "m",
        5,
        ScheduleConfig {
            schedule_type: ScheduleKind::Hourly,
            schedule_time: Some("00:10".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Validation(v) if v.field == "schedule_config.schedule_time"),
        "{err}"
    );
    assert_eq!(
        training.list(&Default::default()).await.unwrap().total,
        before
    );

    // A cancelled schedule is not brought back by a config.
    svc.cancel(s.id).await.unwrap();
    let weekly = ConfigPatch {
        schedule_config: Some(weekly_config("09:00")),
        ..Default::default()
    };
    training.patch_config(r1.id, &weekly).await.unwrap();
    assert_eq!(
        model_schedule(&p, &r1).await.unwrap().status,
        ScheduleStatus::Cancelled
    );
    assert!(matches!(
        svc.apply_run_config(r1.id).await.unwrap(),
        RunScheduleSync::NotScheduled { schedule_id: Some(id), .. } if id == s.id
    ));

    // One-time: a passed date asks for nothing; a finished one-time schedule starts again
    // from the run that asks for a new timing, with that run's config.
    let once_at = |t: &str| ScheduleConfig {
        schedule_type: ScheduleKind::Once,
        scheduled_datetime: Some(utc(t)),
        ..Default::default()
    };
    let past = run_with(&p, "solo", 3, once_at("2026-03-01T00:00:00Z"))
        .await
        .unwrap();
    assert!(model_schedule(&p, &past).await.is_none());
    let o1 = run_with(&p, "solo", 3, once_at("2026-03-04T12:00:00Z"))
        .await
        .unwrap();
    let o = model_schedule(&p, &o1).await.unwrap();
    assert_eq!(
        (o.timing.schedule_type, o.next_run_at),
        (ScheduleType::Once, Some(utc("2026-03-04T12:00:00Z")))
    );
    clock.set(utc("2026-03-04T12:00:05Z"));
    let sched = p.embedded_scheduler(SchedulerConfig::default());
    assert_eq!(sched.tick().await.unwrap().created, 1);
    assert_eq!(
        svc.get(o.id).await.unwrap().status,
        ScheduleStatus::Completed
    );
    let o2 = run_with(&p, "solo", 11, weekly_config("09:00"))
        .await
        .unwrap();
    let back = model_schedule(&p, &o2).await.unwrap();
    assert_eq!(back.id, o.id);
    assert_eq!(
        (back.status, back.source_training_run_id),
        (ScheduleStatus::Active, Some(o2.id))
    );
    assert_eq!(back.training_config.training_params.epochs, 11);
    assert_eq!(back.next_run_at, Some(utc("2026-03-09T08:00:00Z")));
}

/// Records what an external trigger (Cloud Scheduler) is asked to do.
#[derive(Default)]
struct RecordingTrigger(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl trainyard::core::ports::ScheduleTrigger for RecordingTrigger {
    async fn upsert(
        &self,
        s: &trainyard::core::schedule::TrainingSchedule,
        cron: &str,
    ) -> trainyard::Result<String> {
        self.0
            .lock()
            .unwrap()
            .push(format!("upsert {} {cron}", s.id));
        Ok(format!("jobs/{}", s.id))
    }
    async fn pause(&self, job: &str) -> trainyard::Result<()> {
        self.0.lock().unwrap().push(format!("pause {job}"));
        Ok(())
    }
    async fn resume(&self, job: &str) -> trainyard::Result<()> {
        self.0.lock().unwrap().push(format!("resume {job}"));
        Ok(())
    }
    async fn delete(&self, job: &str) -> trainyard::Result<()> {
        self.0.lock().unwrap().push(format!("delete {job}"));
        Ok(())
    }
}

#[tokio::test]
async fn the_external_trigger_gets_run_config_schedules_and_no_job_for_now() {
    let (_d, p, _c) = platform("2026-03-04T10:00:00Z").await;
    let trigger = Arc::new(RecordingTrigger::default());
    let p = p.with_schedule_trigger(trigger.clone());
    let calls = || std::mem::take(&mut *trigger.0.lock().unwrap());

    // A run's schedule_config: the schedule and its job.
    let r = run_with(&p, "m", 5, weekly_config("09:00")).await.unwrap();
    let s = model_schedule(&p, &r).await.unwrap();
    assert_eq!(s.cloud_scheduler_job_name, format!("jobs/{}", s.id));
    assert_eq!(calls(), vec![format!("upsert {} 0 9 * * 1", s.id)]);

    // Edited to `now`: its cron job goes (it fires from here), then it fires.
    let svc = p.schedules();
    let e = svc
        .edit(
            s.id,
            &ScheduleEdit {
                timing: Some(now_timing().into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(calls(), vec![format!("delete jobs/{}", s.id)]);
    assert_eq!(
        (e.status, e.total_runs, e.cloud_scheduler_job_name.as_str()),
        (ScheduleStatus::Completed, 1, "")
    );

    // A new `now` schedule has no job at all.
    let other = source_run(&p, "other").await;
    let mut new = daily("now", "00:00");
    new.timing = now_timing();
    let n = svc.create_from_run(other.id, new).await.unwrap();
    assert_eq!(
        (n.status, n.cloud_scheduler_job_name.as_str()),
        (ScheduleStatus::Completed, "")
    );
    assert!(calls().is_empty());
}

/// A timing edit names only what changes; the rest of the timing is the schedule's current
/// one at the moment of the write (the patch is applied inside the service's retry), and the
/// list is filtered, sorted newest first and paged by the service.
#[tokio::test]
async fn timing_patches_keep_unnamed_fields_and_lists_are_paged() {
    use trainyard::core::timing::TimingPatch;
    use trainyard::{PageRequest, ScheduleFilter};
    let (_d, p, _clock) = platform("2026-07-01T00:00:00Z").await;
    let svc = p.schedules();
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let run = source_run(&p, name).await;
        ids.push(
            svc.create_from_run(run.id, daily(name, "04:00"))
                .await
                .unwrap()
                .id,
        );
    }
    let s = svc
        .edit(
            ids[0],
            &ScheduleEdit {
                timing: Some(TimingPatch {
                    schedule_type: Some(ScheduleType::Weekly),
                    schedule_day_of_week: Some(2),
                    ..TimingPatch::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.timing.schedule_type, ScheduleType::Weekly);
    assert_eq!(s.timing.schedule_time.as_deref(), Some("04:00"), "kept");
    assert_eq!(s.timing.schedule_timezone, "Europe/Warsaw", "kept");
    assert_eq!(s.timing.cron().unwrap(), "0 4 * * 3");
    let s = svc
        .edit(
            ids[0],
            &ScheduleEdit {
                timing: Some(TimingPatch {
                    schedule_time: Some("10:30".into()),
                    ..TimingPatch::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(s.timing.cron().unwrap(), "30 10 * * 3");
    // A patch that breaks the timing is refused and changes nothing.
    let bad = ScheduleEdit {
        timing: Some(TimingPatch {
            schedule_type: Some(ScheduleType::Monthly),
            ..TimingPatch::default()
        }),
        ..Default::default()
    };
    assert!(matches!(
        svc.edit(ids[0], &bad).await,
        Err(Error::Validation(_))
    ));
    assert_eq!(svc.get(ids[0]).await.unwrap().version, s.version);

    svc.pause(ids[1]).await.unwrap();
    let all = ScheduleFilter::default();
    let page = svc.list_page(&all, PageRequest::new(1, 2)).await.unwrap();
    let got: Vec<i64> = page.items.iter().map(|s| s.id).collect();
    assert_eq!(got, [ids[2], ids[1]], "newest first");
    assert_eq!(page.pagination.total, 3);
    let paused = ScheduleFilter {
        status: Some(ScheduleStatus::Paused),
        ..ScheduleFilter::default()
    };
    let page = svc
        .list_page(&paused, PageRequest::new(1, 20))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, ids[1]);
}
