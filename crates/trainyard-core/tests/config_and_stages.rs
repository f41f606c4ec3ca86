use chrono::{TimeZone, Utc};
use trainyard_core::config::{
    DeploymentConfig, DeploymentPreset, EvaluatorConfig, GpuConfig, ScheduleConfig, ScheduleKind,
    TrainingParams,
};
use trainyard_core::feature_config::FeatureConfig;
use trainyard_core::model_config::{DenseLayer, ModelType};
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
    let recall = EvaluatorConfig::new("recall_at_100", 0.2);
    assert!(recall.blesses(ModelType::Retrieval, Some(0.25)));
    assert!(!recall.blesses(ModelType::Retrieval, Some(0.1)));
    assert!(!recall.blesses(ModelType::Retrieval, None));
    assert!(!recall.blesses(ModelType::Retrieval, Some(f64::NAN)));
    let rmse = EvaluatorConfig::new("rmse", 0.7);
    assert!(rmse.blesses(ModelType::Ranking, Some(0.6)));
    assert!(!rmse.blesses(ModelType::Ranking, Some(0.8)));
    assert!(EvaluatorConfig {
        enabled: false,
        ..rmse
    }
    .blesses(ModelType::Ranking, None));
}

#[test]
fn evaluator_defaults_bless_every_model_type() {
    let d = EvaluatorConfig::default();
    for (t, metric, lower) in [
        (ModelType::Retrieval, "recall_at_100", false),
        (ModelType::Ranking, "rmse", true),
        (ModelType::Multitask, "recall_at_100", false),
    ] {
        d.validate(t).unwrap();
        assert_eq!(d.metric(t), metric);
        assert_eq!(d.lower_is_better(t), lower);
        // no threshold: any measured value blesses, a missing or NaN one does not
        assert!(d.blesses(t, Some(if lower { 3.5 } else { 0.001 })));
        assert!(!d.blesses(t, None));
        assert!(!d.blesses(t, Some(f64::INFINITY)));
    }
    // a default ranking / multitask run is valid as created
    for t in [ModelType::Ranking, ModelType::Multitask] {
        let mut c = RunConfig::default();
        c.model_config.model_type = t;
        c.validate().unwrap();
    }
}

#[test]
fn evaluator_metrics_and_thresholds_per_model_type() {
    let field = |e: EvaluatorConfig, t: ModelType| e.validate(t).unwrap_err().field;
    // a metric the model type never reports
    assert_eq!(
        field(EvaluatorConfig::new("rmse", 1.0), ModelType::Retrieval),
        "evaluator_config.blessing_metric"
    );
    let e = EvaluatorConfig::new("recall_at_100", 0.1)
        .validate(ModelType::Ranking)
        .unwrap_err();
    assert!(e.reason.contains("rmse, mae, test_rmse, test_mae"), "{e}");
    assert!(EvaluatorConfig::new("recall_at_7", 0.1)
        .validate(ModelType::Retrieval)
        .is_err());
    // multitask has both
    for m in ["recall_at_50", "rmse", "test_mae", "final_loss"] {
        EvaluatorConfig::new(m, 0.5)
            .validate(ModelType::Multitask)
            .unwrap();
    }
    // thresholds that can never pass
    for (m, t, th) in [
        ("rmse", ModelType::Ranking, 0.0),
        ("mae", ModelType::Multitask, -1.0),
        ("recall_at_10", ModelType::Retrieval, 1.5),
        ("recall_at_10", ModelType::Retrieval, -0.1),
        ("recall_at_10", ModelType::Retrieval, f64::NAN),
    ] {
        assert_eq!(
            field(EvaluatorConfig::new(m, th), t),
            "evaluator_config.blessing_threshold",
            "{m} {th}"
        );
    }
    EvaluatorConfig::new("recall_at_10", 0.0)
        .validate(ModelType::Retrieval)
        .unwrap();
    EvaluatorConfig::new("recall_at_10", 1.0)
        .validate(ModelType::Retrieval)
        .unwrap();
    // JSON: a threshold is a number, or absent/null for none
    let e: EvaluatorConfig = serde_json::from_value(
        serde_json::json!({"blessing_metric": "rmse", "blessing_threshold": 0.9}),
    )
    .unwrap();
    assert_eq!(e, EvaluatorConfig::new("rmse", 0.9));
    let e: EvaluatorConfig = serde_json::from_value(serde_json::json!({})).unwrap();
    assert_eq!(e, EvaluatorConfig::default());
}

#[test]
fn creation_validates_features_model_and_evaluator_naming_the_field() {
    // a ranking run with empty towers, no features, output dim 0 and an
    // unknown product id column is refused at creation, one field at a time
    let json = serde_json::json!({
        "ml_model": "shop", "name": "bad",
        "feature_config": {
            "name": "f", "buyer_features": [], "product_features": [],
            "product_id_column": "sku"
        },
        "model_config": {
            "name": "m", "model_type": "ranking",
            "buyer_tower": {"layers": []}, "product_tower": {"layers": []},
            "output_embedding_dim": 0,
            "optimizer": {"name": "adam", "learning_rate": 0.01}, "top_k": 10
        }
    });
    let mut new: NewTrainingRun = serde_json::from_value(json).unwrap();
    assert_eq!(
        new.validate().unwrap_err().field,
        "feature_config.buyer_features"
    );
    new.config.feature_config.buyer_features = FeatureConfig::default().buyer_features;
    assert_eq!(
        new.validate().unwrap_err().field,
        "feature_config.product_features"
    );
    new.config.feature_config.product_features = FeatureConfig::default().product_features;
    let e = new.validate().unwrap_err();
    assert_eq!(e.field, "feature_config.product_id_column");
    assert!(e.reason.contains("\"sku\""), "{e}");
    new.config.feature_config.product_id_column = "product_id".into();
    assert_eq!(
        new.validate().unwrap_err().field,
        "model_config.output_embedding_dim"
    );
    new.config.model_config.output_embedding_dim = 16;
    assert_eq!(
        new.validate().unwrap_err().field,
        "feature_config.target",
        "ranking needs a target"
    );
    new.config.feature_config.target = FeatureConfig::default().target;
    new.config.model_config.buyer_tower.layers = vec![DenseLayer::relu(0)];
    assert_eq!(
        new.validate().unwrap_err().field,
        "model_config.buyer_tower.layers[0].units"
    );
    new.config.model_config.buyer_tower.layers.clear();
    // a tower without hidden layers is a linear projection of its features: valid
    new.validate().unwrap();
    // spec type names and the hybrid model type are accepted
    let json = serde_json::json!({
        "ml_model": "shop", "name": "hybrid",
        "model_config": {
            "name": "m", "model_type": "hybrid",
            "buyer_tower": {"layers": []}, "product_tower": {"layers": []},
            "output_embedding_dim": 16,
            "optimizer": {"name": "adam", "learning_rate": 0.01}, "top_k": 10
        }
    });
    let mut new: NewTrainingRun = serde_json::from_value(json).unwrap();
    assert_eq!(new.config.model_type(), ModelType::Multitask);
    new.validate().unwrap();
    let mut f = serde_json::to_value(FeatureConfig::default()).unwrap();
    f["buyer_features"][3]["bq_type"] = "FLOAT".into();
    f["target"]["bq_type"] = "INTEGER".into();
    new.config.feature_config = serde_json::from_value(f).unwrap();
    new.validate().unwrap();
}

#[test]
fn config_patch_validates_the_evaluator_against_the_model_type() {
    let mut config = RunConfig::default();
    config.model_config.model_type = ModelType::Ranking;
    let bad: ConfigPatch = serde_json::from_value(serde_json::json!({
        "evaluator_config": {"blessing_metric": "rmse", "blessing_threshold": 0.0}
    }))
    .unwrap();
    assert_eq!(
        bad.apply_to(&config).unwrap_err().field,
        "evaluator_config.blessing_threshold"
    );
    let bad: ConfigPatch = serde_json::from_value(serde_json::json!({
        "evaluator_config": {"blessing_metric": "recall_at_100", "blessing_threshold": 0.1}
    }))
    .unwrap();
    assert_eq!(
        bad.apply_to(&config).unwrap_err().field,
        "evaluator_config.blessing_metric"
    );
    let ok: ConfigPatch = serde_json::from_value(serde_json::json!({
        "evaluator_config": {"blessing_metric": "test_rmse", "blessing_threshold": 1.2}
    }))
    .unwrap();
    let (next, changed) = ok.apply_to(&config).unwrap();
    assert_eq!(changed, vec!["evaluator_config"]);
    assert!(next.evaluator_config.blesses(ModelType::Ranking, Some(1.1)));
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

#[test]
fn sampling_config_is_checked_at_creation() {
    use trainyard_core::config::{SamplingConfig, SplitStrategy};
    let mut c = RunConfig::default();
    assert!(c.sampling_config.is_default_split());
    c.validate().unwrap();
    let json = serde_json::json!({
        "sample_percent": 20, "split_strategy": "time_holdout",
        "date_column": "timestamp", "holdout_days": 14
    });
    c.sampling_config = serde_json::from_value(json).unwrap();
    assert_eq!(c.sampling_config.split_strategy, SplitStrategy::TimeHoldout);
    c.validate().unwrap();
    for (bad, field) in [
        (
            SamplingConfig {
                sample_percent: 0,
                ..SamplingConfig::default()
            },
            "sampling_config.sample_percent",
        ),
        (
            SamplingConfig {
                split_strategy: SplitStrategy::StrictTemporal,
                ..SamplingConfig::default()
            },
            "sampling_config.date_column",
        ),
        (
            SamplingConfig {
                split_strategy: SplitStrategy::TimeHoldout,
                date_column: Some("timestamp".into()),
                holdout_days: 0,
                ..SamplingConfig::default()
            },
            "sampling_config.holdout_days",
        ),
    ] {
        c.sampling_config = bad;
        assert_eq!(c.validate().unwrap_err().field, field);
    }
}

#[test]
fn early_stopping_watches_a_value_the_model_type_logs() {
    let mut c = RunConfig::default();
    c.training_params.early_stopping.monitor = "val_rmse".into();
    let e = c.validate().unwrap_err();
    assert_eq!(e.field, "training_params.early_stopping.monitor");
    assert!(e.reason.contains("val_recall_at_100"), "{e}");
    c.model_config.model_type = ModelType::Multitask;
    c.validate().unwrap();
    c.model_config.model_type = ModelType::Retrieval;
    c.training_params.early_stopping.monitor = "val_recall_at_50".into();
    c.validate().unwrap();
    // disabled: not checked
    c.training_params.early_stopping.monitor = "val_rmse".into();
    c.training_params.early_stopping.enabled = false;
    c.validate().unwrap();
}

#[test]
fn high_traffic_preset_reads_both_spellings_and_writes_one() {
    use trainyard_core::config::DeploymentPreset;
    for spelling in ["\"high_traffic\"", "\"high-traffic\""] {
        let p: DeploymentPreset = serde_json::from_str(spelling).unwrap();
        assert_eq!(p, DeploymentPreset::HighTraffic, "{spelling}");
    }
    assert_eq!(
        serde_json::to_string(&DeploymentPreset::HighTraffic).unwrap(),
        "\"high_traffic\""
    );
    assert!(serde_json::from_str::<DeploymentPreset>("\"high traffic\"").is_err());
}
