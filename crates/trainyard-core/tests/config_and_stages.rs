use chrono::{TimeZone, Utc};
use trainyard_core::config::{
    DeploymentConfig, DeploymentPreset, EvaluatorConfig, GpuConfig, ScheduleConfig, ScheduleKind,
    TrainingParams,
};
use trainyard_core::run::{ConfigPatch, NewTrainingRun, RunConfig, TrainingRun};
use trainyard_core::stages::{StageDetails, StageName, StageStatus};
use trainyard_core::{RunEvent, RunStatus};

#[test]
fn presets_match_the_spec() {
    let dev = DeploymentPreset::Development.resources().unwrap();
    assert_eq!(
        (dev.min_instances, dev.max_instances, dev.memory, dev.cpu),
        (0, 2, "2Gi", "1")
    );
    let prod = DeploymentPreset::Production.resources().unwrap();
    assert_eq!(
        (
            prod.min_instances,
            prod.max_instances,
            prod.memory,
            prod.cpu
        ),
        (1, 10, "4Gi", "2")
    );
    let high = DeploymentPreset::HighTraffic.resources().unwrap();
    assert_eq!(
        (
            high.min_instances,
            high.max_instances,
            high.memory,
            high.cpu
        ),
        (2, 50, "8Gi", "4")
    );
    assert!(DeploymentPreset::Custom.resources().is_none());
}

#[test]
fn deployment_config_parses_the_spec_payload() {
    let cfg: DeploymentConfig = serde_json::from_value(serde_json::json!({
        "enabled": true, "service_name": "my-model-serving", "custom_name": false,
        "preset": "production", "min_instances": 1, "max_instances": 10,
        "memory": "4Gi", "cpu": "2", "timeout": "300"
    }))
    .unwrap();
    assert!(cfg.enabled);
    cfg.validate().unwrap();
    let bad = DeploymentConfig {
        enabled: true,
        custom_name: true,
        service_name: "Bad_Name".into(),
        ..cfg.clone()
    };
    let err = bad.validate().unwrap_err();
    assert_eq!(err.field, "deployment_config.service_name");
    let bad = DeploymentConfig {
        min_instances: 11,
        ..cfg
    };
    assert_eq!(
        bad.validate().unwrap_err().field,
        "deployment_config.min_instances"
    );
}

#[test]
fn gpu_region_rules() {
    let gpu = GpuConfig {
        gpu_enabled: true,
        ..GpuConfig::default()
    };
    let err = gpu.trainer_region("europe-central2").unwrap_err();
    assert!(
        err.reason.contains("europe-central2") && err.reason.contains("europe-west4"),
        "{err}"
    );
    let split = GpuConfig {
        training_region: Some("europe-west4".into()),
        ..gpu.clone()
    };
    assert_eq!(
        split.trainer_region("europe-central2").unwrap(),
        "europe-west4"
    );
    // CPU training may stay in the orchestration region.
    assert_eq!(
        GpuConfig::default()
            .trainer_region("europe-central2")
            .unwrap(),
        "europe-central2"
    );
    let three = GpuConfig {
        gpu_count: 3,
        ..gpu
    };
    assert_eq!(three.validate().unwrap_err().field, "gpu_config.gpu_count");
    let json = serde_json::to_value(GpuConfig::default()).unwrap();
    assert_eq!(json["gpu_type"], "NVIDIA_TESLA_T4");
}

#[test]
fn training_params_reject_nonsense() {
    for bad in [
        TrainingParams {
            epochs: 0,
            ..Default::default()
        },
        TrainingParams {
            batch_size: 0,
            ..Default::default()
        },
        TrainingParams {
            learning_rate: f64::NAN,
            ..Default::default()
        },
        TrainingParams {
            learning_rate: -1.0,
            ..Default::default()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    TrainingParams::default().validate().unwrap();
}

#[test]
fn schedule_config_rules_and_rerun_copy() {
    let weekly = ScheduleConfig {
        schedule_type: ScheduleKind::Weekly,
        schedule_time: Some("09:00".into()),
        schedule_day_of_week: Some(0),
        schedule_timezone: "Europe/Warsaw".into(),
        cloud_scheduler_job_name: Some("projects/p/locations/l/jobs/j".into()),
        ..Default::default()
    };
    weekly.validate().unwrap();
    let copy = weekly.for_rerun();
    assert_eq!(copy.cloud_scheduler_job_name, None);
    assert_eq!(copy.schedule_time, weekly.schedule_time);
    for bad in [
        ScheduleConfig {
            schedule_time: Some("24:00".into()),
            ..weekly.clone()
        },
        ScheduleConfig {
            schedule_time: Some("9:00".into()),
            ..weekly.clone()
        },
        ScheduleConfig {
            schedule_day_of_week: Some(7),
            ..weekly.clone()
        },
        ScheduleConfig {
            schedule_day_of_week: None,
            ..weekly.clone()
        },
        ScheduleConfig {
            schedule_type: ScheduleKind::Monthly,
            schedule_day_of_month: Some(32),
            ..weekly.clone()
        },
        ScheduleConfig {
            schedule_type: ScheduleKind::Once,
            ..Default::default()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

#[test]
fn evaluator_blessing_direction() {
    let recall = EvaluatorConfig {
        enabled: true,
        blessing_metric: "recall_at_100".into(),
        blessing_threshold: 0.2,
    };
    assert!(recall.blesses(Some(0.25)));
    assert!(!recall.blesses(Some(0.1)));
    assert!(!recall.blesses(None));
    let rmse = EvaluatorConfig {
        enabled: true,
        blessing_metric: "rmse".into(),
        blessing_threshold: 0.7,
    };
    assert!(rmse.blesses(Some(0.6)));
    assert!(!rmse.blesses(Some(0.8)));
    assert!(EvaluatorConfig {
        enabled: false,
        ..rmse
    }
    .blesses(None));
}

fn t(s: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, s).unwrap()
}

#[test]
fn stages_derive_current_stage() {
    let mut st = StageDetails::new(false);
    assert_eq!(st.get(StageName::Deploy).status, StageStatus::Skipped);
    assert_eq!(
        StageDetails::new(true).get(StageName::Deploy).status,
        StageStatus::Pending
    );
    assert_eq!(st.current(), Some(StageName::Compile));
    st.start(StageName::Transform, t(5));
    for s in [
        StageName::Compile,
        StageName::Examples,
        StageName::Stats,
        StageName::Schema,
    ] {
        assert_eq!(st.get(s).status, StageStatus::Completed);
    }
    assert_eq!(st.current(), Some(StageName::Transform));
    st.complete(StageName::Transform, t(9));
    assert_eq!(st.get(StageName::Transform).duration_seconds(), Some(4.0));
    assert_eq!(st.current(), Some(StageName::Train));
    st.fail_current(t(12), "OOM");
    assert_eq!(st.get(StageName::Train).status, StageStatus::Failed);
    assert_eq!(st.current(), Some(StageName::Train));
    let json = serde_json::to_string(&st).unwrap();
    let back: StageDetails = serde_json::from_str(&json).unwrap();
    assert_eq!(back, st);
    assert!(serde_json::from_str::<StageDetails>("[]").is_err());
    assert!(StageName::parse("trainer").is_err());
    assert_eq!(
        StageName::from_component("CsvExampleGen"),
        Some(StageName::Examples)
    );
    assert_eq!(
        StageName::from_component("Pusher"),
        Some(StageName::Register)
    );
}

#[test]
fn run_transition_stamps_times_and_rejects_illegal_events() {
    let new = NewTrainingRun {
        ml_model: "shop".into(),
        name: "m".into(),
        ..Default::default()
    };
    new.validate().unwrap();
    let mut run = TrainingRun::new(new, None, t(0));
    run.transition(RunEvent::Submit, t(1)).unwrap();
    run.transition(RunEvent::Submitted, t(2)).unwrap();
    assert_eq!(run.started_at, Some(t(2)));
    let before = run.clone();
    let err = run
        .transition(RunEvent::Undeploy { is_blessed: true }, t(3))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("event `undeploy` is not allowed for a run that is running"),
        "{err}"
    );
    assert_eq!(run, before, "a rejected event changes nothing");
    run.transition(RunEvent::Finish { blessed: true }, t(12))
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.duration_seconds, Some(10.0));
}

#[test]
fn config_patch_validates_and_names_changes() {
    let config = RunConfig::default();
    let patch: ConfigPatch = serde_json::from_value(serde_json::json!({
        "training_params": {"epochs": 300, "batch_size": 16384},
        "gpu_config": {"gpu_type": "NVIDIA_TESLA_T4", "gpu_count": 4, "gpu_enabled": true}
    }))
    .unwrap();
    let (next, changed) = patch.apply_to(&config).unwrap();
    assert_eq!(changed, vec!["training_params", "gpu_config"]);
    assert_eq!(next.training_params.epochs, 300);
    assert_eq!(next.gpu_config.gpu_count, 4);
    assert!(serde_json::from_value::<ConfigPatch>(serde_json::json!({"name": "x"})).is_err());
    let bad: ConfigPatch =
        serde_json::from_value(serde_json::json!({"training_params": {"epochs": 0}})).unwrap();
    assert_eq!(
        bad.apply_to(&config).unwrap_err().field,
        "training_params.epochs"
    );
}
