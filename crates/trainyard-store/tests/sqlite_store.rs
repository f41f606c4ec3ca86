use std::sync::Arc;

use chrono::{TimeZone, Utc};
use trainyard_core::config::ScheduleConfig;
use trainyard_core::metrics::EpochMetrics;
use trainyard_core::model_config::{ModelConfig, ModelType};
use trainyard_core::ports::{RunFilter, Store};
use trainyard_core::registry::{DeployedEndpoint, RegisteredModel};
use trainyard_core::run::{NewTrainingRun, RunConfig, TrainingRun};
use trainyard_core::schedule::{ScheduleStatus, ScheduleType, TrainingSchedule};
use trainyard_core::{Error, RunEvent, RunStatus};
use trainyard_store::SqliteStore;

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 24, 9, 49, 38).unwrap()
}

fn run(ml_model: &str, name: &str, model_type: ModelType) -> TrainingRun {
    let config = RunConfig {
        model_config: ModelConfig {
            model_type,
            ..ModelConfig::default()
        },
        ..RunConfig::default()
    };
    let new = NewTrainingRun {
        ml_model: ml_model.into(),
        name: name.into(),
        description: String::new(),
        config,
    };
    TrainingRun::new(new, None, now())
}

async fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("trainyard.db"))
        .await
        .unwrap();
    (dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_get_consecutive_run_numbers() {
    let (_dir, store) = open().await;
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .insert_run(&run("shop", &format!("r{i}"), ModelType::Retrieval))
                .await
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap().unwrap().run_number);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=20).collect::<Vec<u32>>());
    // Another model endpoint counts on its own.
    let other = store
        .insert_run(&run("other", "x", ModelType::Ranking))
        .await
        .unwrap();
    assert_eq!(other.run_number, 1);
}

#[tokio::test]
async fn stale_update_is_a_conflict_and_changes_nothing() {
    let (_dir, store) = open().await;
    let created = store
        .insert_run(&run("shop", "a", ModelType::Retrieval))
        .await
        .unwrap();
    assert_eq!(created.version, 1);

    let mut first = created.clone();
    first.transition(RunEvent::Submit, now()).unwrap();
    let saved = store.update_run(&first).await.unwrap();
    assert_eq!(saved.version, 2);

    // A second writer still holding version 1.
    let mut stale = created.clone();
    stale.name = "renamed by a stale writer".into();
    stale.transition(RunEvent::Cancel, now()).unwrap();
    let err = store.update_run(&stale).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("version 1"), "{err}");

    let stored = store.get_run(created.id).await.unwrap();
    assert_eq!(stored, saved);
    assert_eq!(stored.status, RunStatus::Submitting);
    assert_eq!(stored.name, "a");

    let mut missing = saved.clone();
    missing.id = 9999;
    assert!(matches!(
        store.update_run(&missing).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn runs_round_trip_every_field() {
    let (_dir, store) = open().await;
    let mut r = run("shop", "full", ModelType::Multitask);
    r.results.rmse = Some(0.627);
    r.vertex_pipeline_job_id = Some("job-1".into());
    r.artifacts.insert("pushed_model".into(), "/tmp/x".into());
    r.config.schedule_config = ScheduleConfig {
        schedule_timezone: "Europe/Warsaw".into(),
        ..Default::default()
    };
    let saved = store.insert_run(&r).await.unwrap();
    let back = store.get_run(saved.id).await.unwrap();
    assert_eq!(back, saved);
    assert_eq!(back.results.rmse, Some(0.627));
    assert!(matches!(
        store.get_run(12345).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn list_filters_paginates_and_counts() {
    let (_dir, store) = open().await;
    for i in 0..7 {
        let mt = if i % 2 == 0 {
            ModelType::Retrieval
        } else {
            ModelType::Ranking
        };
        let mut r = store
            .insert_run(&run("shop", &format!("model_{i}"), mt))
            .await
            .unwrap();
        if i < 3 {
            r.transition(RunEvent::Fail, now()).unwrap();
            store.update_run(&r).await.unwrap();
        }
    }
    store
        .insert_run(&run("elsewhere", "model_x", ModelType::Retrieval))
        .await
        .unwrap();

    let all = store
        .list_runs(&RunFilter {
            ml_model: Some("shop".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.total, 7);
    assert_eq!(all.kpi.count(RunStatus::Failed), 3);
    assert_eq!(all.kpi.count(RunStatus::Pending), 4);
    assert_eq!(all.runs.first().unwrap().name, "model_6", "newest first");

    let failed = store
        .list_runs(&RunFilter {
            ml_model: Some("shop".into()),
            statuses: vec![RunStatus::Failed],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.total, 3);
    assert!(failed.runs.iter().all(|r| r.status == RunStatus::Failed));
    assert_eq!(failed.kpi.total, 7, "KPIs ignore the status filter");

    let ranking = store
        .list_runs(&RunFilter {
            model_type: Some(ModelType::Ranking),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ranking.total, 3);

    let page2 = store
        .list_runs(&RunFilter {
            ml_model: Some("shop".into()),
            page: 2,
            page_size: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page2
            .runs
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["model_3", "model_2", "model_1"]
    );

    // LIKE wildcards in the search are literal.
    let search = store
        .list_runs(&RunFilter {
            search: Some("L_5".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(search.total, 1);
    assert_eq!(search.runs[0].name, "model_5");
    let none = store
        .list_runs(&RunFilter {
            search: Some("%".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(none.total, 0);

    assert!(matches!(
        store
            .list_runs(&RunFilter {
                page: 0,
                ..Default::default()
            })
            .await,
        Err(Error::Validation(_))
    ));
}

fn schedule(rm: i64) -> TrainingSchedule {
    TrainingSchedule {
        id: 0,
        name: "weekly".into(),
        description: String::new(),
        ml_model: "shop".into(),
        registered_model_id: rm,
        source_training_run_id: None,
        schedule_type: ScheduleType::Weekly,
        scheduled_datetime: None,
        schedule_time: Some("09:00".into()),
        schedule_day_of_week: Some(0),
        schedule_day_of_month: None,
        schedule_timezone: "Europe/Warsaw".into(),
        training_config: RunConfig::default(),
        cloud_scheduler_job_name: String::new(),
        status: ScheduleStatus::Active,
        last_run_at: None,
        next_run_at: None,
        total_runs: 0,
        successful_runs: 0,
        failed_runs: 0,
        created_at: now(),
        updated_at: now(),
        version: 0,
    }
}

#[tokio::test]
async fn registered_models_are_unique_per_endpoint_and_hold_one_schedule() {
    let (_dir, store) = open().await;
    let m = RegisteredModel::new("shop", "product-retrieval", ModelType::Retrieval, "", now());
    let saved = store.insert_registered_model(&m).await.unwrap();
    assert!(matches!(
        store.insert_registered_model(&m).await,
        Err(Error::Conflict(_))
    ));
    let elsewhere = RegisteredModel::new(
        "other",
        "product-retrieval",
        ModelType::Retrieval,
        "",
        now(),
    );
    store.insert_registered_model(&elsewhere).await.unwrap();
    assert_eq!(
        store
            .find_registered_model("shop", "product-retrieval")
            .await
            .unwrap()
            .unwrap()
            .id,
        saved.id
    );
    assert!(store
        .find_registered_model("shop", "nope")
        .await
        .unwrap()
        .is_none());

    let s = store.insert_schedule(&schedule(saved.id)).await.unwrap();
    let err = store
        .insert_schedule(&schedule(saved.id))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)));
    assert!(
        err.to_string().contains(&format!("schedule {}", s.id)),
        "{err}"
    );
    assert!(matches!(
        store.insert_schedule(&schedule(424242)).await,
        Err(Error::Validation(_))
    ));

    // Delete removes the record and frees the model for a new schedule (bug 5).
    store.delete_schedule(s.id).await.unwrap();
    assert!(store.schedule_for_model(saved.id).await.unwrap().is_none());
    assert!(matches!(
        store.get_schedule(s.id).await,
        Err(Error::NotFound { .. })
    ));
    store.insert_schedule(&schedule(saved.id)).await.unwrap();
    assert!(matches!(
        store.delete_schedule(s.id).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn endpoints_have_unique_service_names() {
    let (_dir, store) = open().await;
    let m = store
        .insert_registered_model(&RegisteredModel::new(
            "shop",
            "m",
            ModelType::Retrieval,
            "",
            now(),
        ))
        .await
        .unwrap();
    let ep = DeployedEndpoint {
        id: 0,
        registered_model_id: m.id,
        service_name: "m-serving".into(),
        service_url: "http://127.0.0.1:8501".into(),
        deployed_version: "1".into(),
        deployed_training_run_id: None,
        is_active: true,
        deployment_config: Default::default(),
        created_at: now(),
        updated_at: now(),
        version: 0,
    };
    let saved = store.insert_endpoint(&ep).await.unwrap();
    assert!(matches!(
        store.insert_endpoint(&ep).await,
        Err(Error::Conflict(_))
    ));
    let mut off = saved.clone();
    off.is_active = false;
    store.update_endpoint(&off).await.unwrap();
    assert!(!store.list_endpoints(Some(m.id)).await.unwrap()[0].is_active);
    assert!(store
        .list_endpoints(Some(m.id + 1))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn epoch_history_upserts_per_epoch() {
    let (_dir, store) = open().await;
    let r = store
        .insert_run(&run("shop", "h", ModelType::Ranking))
        .await
        .unwrap();
    let row = |epoch, rmse| EpochMetrics {
        epoch,
        rmse: Some(rmse),
        ..Default::default()
    };
    store
        .record_epochs(r.id, &[row(0, 0.9), row(1, 0.8)], now())
        .await
        .unwrap();
    store
        .record_epochs(r.id, &[row(1, 0.75)], now())
        .await
        .unwrap();
    let h = store.history(r.id).await.unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[1].metrics.rmse, Some(0.75));
    assert!(store
        .record_epochs(777, &[row(0, 1.0)], now())
        .await
        .is_err());
}

#[tokio::test]
async fn reopening_keeps_data_and_backup_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let id = {
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), 1);
        let r = store
            .insert_run(&run("shop", "keep", ModelType::Retrieval))
            .await
            .unwrap();
        store.backup_to(dir.path().join("backup.db")).await.unwrap();
        r.id
    };
    let again = SqliteStore::open(&path).await.unwrap();
    assert_eq!(again.get_run(id).await.unwrap().name, "keep");
    let backup = SqliteStore::open(dir.path().join("backup.db"))
        .await
        .unwrap();
    assert_eq!(backup.get_run(id).await.unwrap().name, "keep");
}
