use proptest::prelude::*;
use trainyard_core::deployment::{
    default_service_name, service_name_from, validate_service_name, versioned_model_path,
    ServiceNameError,
};

#[test]
fn length_limit_is_63() {
    let ok = format!("a{}", "b".repeat(62));
    assert_eq!(ok.len(), 63);
    assert_eq!(validate_service_name(&ok), Ok(()));
    let long = format!("a{}", "b".repeat(63));
    assert_eq!(
        validate_service_name(&long),
        Err(ServiceNameError::TooLong { len: 64, max: 63 })
    );
    assert_eq!(validate_service_name(""), Err(ServiceNameError::Empty));
}

#[test]
fn each_rule_names_itself() {
    assert_eq!(
        validate_service_name("1model"),
        Err(ServiceNameError::MustStartWithLetter)
    );
    assert_eq!(
        validate_service_name("-model"),
        Err(ServiceNameError::MustStartWithLetter)
    );
    assert_eq!(
        validate_service_name("model-"),
        Err(ServiceNameError::MustEndWithLetterOrDigit)
    );
    assert_eq!(
        validate_service_name("myModel"),
        Err(ServiceNameError::Uppercase { ch: 'M', pos: 2 })
    );
    assert_eq!(
        validate_service_name("my_model"),
        Err(ServiceNameError::InvalidChar { ch: '_', pos: 2 })
    );
    assert!(validate_service_name("Bad_Name")
        .unwrap_err()
        .to_string()
        .contains("uppercase"));
    assert!(validate_service_name("my_model")
        .unwrap_err()
        .to_string()
        .contains("lowercase letters, digits and hyphens"));
    assert_eq!(validate_service_name("a"), Ok(()));
    assert_eq!(validate_service_name("model-2-serving"), Ok(()));
}

#[test]
fn chain_picks_the_first_present_name() {
    assert_eq!(
        default_service_name(Some("Vertex_Name"), Some("rm"), Some("run"), "ep"),
        "vertex-name-serving"
    );
    assert_eq!(
        default_service_name(None, Some("rm"), Some("run"), "ep"),
        "rm-serving"
    );
    assert_eq!(
        default_service_name(Some("  "), None, Some("Run 7"), "ep"),
        "run-7-serving"
    );
    assert_eq!(
        default_service_name(None, None, None, "endpoint"),
        "endpoint-serving"
    );
    // Different models never share a service (bug 7).
    assert_ne!(
        default_service_name(None, Some("model-a"), None, "ep"),
        default_service_name(None, Some("model-b"), None, "ep")
    );
}

#[test]
fn newest_numeric_version_with_saved_model() {
    let listing = [
        "runs/7/pushed_model/1700000000/saved_model.pb",
        "runs/7/pushed_model/1800000000/variables/variables.index",
        "runs/7/pushed_model/999/saved_model.pb",
        "runs/7/pushed_model/tmp-2000000000/saved_model.pb",
        "runs/7/pushed_model/1768842986/saved_model.pb",
    ];
    assert_eq!(
        versioned_model_path(listing).as_deref(),
        Some("runs/7/pushed_model/1768842986")
    );
    assert_eq!(versioned_model_path(["pushed_model/saved_model.pb"]), None);
    assert_eq!(versioned_model_path(Vec::<&str>::new()), None);
}

proptest! {
    #[test]
    fn every_generated_name_is_valid(base in "\\PC{0,90}", suffix in "[-a-z0-9_A-Z]{0,12}") {
        let name = service_name_from(&base, &suffix);
        prop_assert_eq!(validate_service_name(&name), Ok(()), "{:?} -> {:?}", base, name);
    }

    #[test]
    fn every_default_name_is_valid(a in proptest::option::of("\\PC{0,80}"), b in proptest::option::of("\\PC{0,80}"), c in "\\PC{0,80}") {
        let name = default_service_name(a.as_deref(), b.as_deref(), None, &c);
        prop_assert_eq!(validate_service_name(&name), Ok(()), "{:?}", name);
    }

    #[test]
    fn validator_never_panics(s in "\\PC{0,100}") {
        let _ = validate_service_name(&s);
    }
}

#[test]
fn cloud_run_names_are_at_most_49_characters_and_defaults_fit() {
    use trainyard_core::deployment::{
        default_service_name_for, validate_service_name_for, ServingTarget,
        CLOUD_RUN_MAX_SERVICE_NAME_LEN,
    };
    assert_eq!(CLOUD_RUN_MAX_SERVICE_NAME_LEN, 49);
    let n49 = format!("m{}", "x".repeat(48));
    let n50 = format!("m{}", "x".repeat(49));
    assert_eq!(
        validate_service_name_for(&n49, ServingTarget::CloudRun),
        Ok(())
    );
    assert_eq!(
        validate_service_name_for(&n50, ServingTarget::CloudRun),
        Err(ServiceNameError::TooLong { len: 50, max: 49 })
    );
    // 50-63 characters stay fine for local serving
    assert_eq!(
        validate_service_name_for(&n50, ServingTarget::Local),
        Ok(())
    );
    assert!(validate_service_name_for(&n50, ServingTarget::CloudRun)
        .unwrap_err()
        .to_string()
        .contains("at most 49"));
    let long = "Nightly shop retrieval with every feature we have so far";
    let cloud = default_service_name_for(ServingTarget::CloudRun, None, Some(long), None, "ep");
    assert_eq!(cloud.len(), 49, "{cloud}");
    assert!(cloud.ends_with("-serving"));
    assert_eq!(
        validate_service_name_for(&cloud, ServingTarget::CloudRun),
        Ok(())
    );
    let local = default_service_name_for(ServingTarget::Local, None, Some(long), None, "ep");
    assert_eq!(local, default_service_name(None, Some(long), None, "ep"));
    assert!(local.len() > 49);
}

#[test]
fn vertex_endpoints_get_the_presets_machine_and_at_least_one_replica() {
    use trainyard_core::config::{DeploymentConfig, DeploymentPreset};
    use trainyard_core::deployment::{
        default_service_name_for, vertex_resources, DeployTarget, ServingTarget,
    };
    let r = |p| vertex_resources(&DeploymentConfig::from_preset(p)).unwrap();
    let dev = r(DeploymentPreset::Development);
    assert_eq!(
        (
            dev.machine_type.as_str(),
            dev.min_replica_count,
            dev.max_replica_count
        ),
        ("n1-standard-2", 1, 2),
        "Vertex endpoints do not scale to zero"
    );
    let prod = r(DeploymentPreset::Production);
    assert_eq!(
        (
            prod.machine_type.as_str(),
            prod.min_replica_count,
            prod.max_replica_count
        ),
        ("n1-standard-2", 1, 10)
    );
    let high = r(DeploymentPreset::HighTraffic);
    assert_eq!(
        (
            high.machine_type.as_str(),
            high.min_replica_count,
            high.max_replica_count
        ),
        ("n1-standard-4", 2, 50)
    );
    let custom = |cpu: &str, memory: &str| {
        vertex_resources(&DeploymentConfig {
            cpu: cpu.into(),
            memory: memory.into(),
            ..DeploymentConfig::from_preset(DeploymentPreset::Custom)
        })
    };
    assert_eq!(
        custom("500m", "16Gi").unwrap().machine_type,
        "n1-standard-8"
    );
    assert_eq!(custom("8", "2048Mi").unwrap().machine_type, "n1-standard-8");
    for (cpu, memory, field) in [
        ("two", "4Gi", "deployment_config.cpu"),
        ("2", "lots", "deployment_config.memory"),
        ("0", "4Gi", "deployment_config.cpu"),
        ("64", "4Gi", "deployment_config"),
    ] {
        assert_eq!(
            custom(cpu, memory).unwrap_err().field,
            field,
            "{cpu} {memory}"
        );
    }
    // targets: parsed from the CLI's spelling, the API's, refused otherwise
    assert_eq!(
        "vertex-endpoint".parse::<DeployTarget>().unwrap(),
        DeployTarget::VertexEndpoint
    );
    assert_eq!(
        serde_json::from_str::<DeployTarget>("\"vertex_endpoint\"").unwrap(),
        DeployTarget::VertexEndpoint
    );
    assert_eq!(
        "service".parse::<DeployTarget>().unwrap(),
        DeployTarget::Service
    );
    assert!("vertex".parse::<DeployTarget>().is_err());
    // a model's Vertex endpoint and Cloud Run service do not share a default name
    let vertex =
        default_service_name_for(ServingTarget::VertexEndpoint, None, Some("shop"), None, "x");
    let run = default_service_name_for(ServingTarget::CloudRun, None, Some("shop"), None, "x");
    assert_eq!(
        (vertex.as_str(), run.as_str()),
        ("shop-endpoint", "shop-serving")
    );
}
