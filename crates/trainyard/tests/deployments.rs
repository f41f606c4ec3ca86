//! Registry and deployment services over the filesystem registry and a recording deployer
//! (the real trainyard-serve deployer is exercised by the gated end-to-end test). Each of
//! DESIGN.md's bugs 7-11 has a test here that fails on the buggy behaviour.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;
use trainyard::core::config::{DeploymentConfig, DeploymentPreset};
use trainyard::core::deployment::{DeploymentStatus, LiveDeploymentStatus};
use trainyard::core::model_config::{ModelConfig, ModelType};
use trainyard::core::ports::{DeployRequest, Deployer, PipelineEvent};
use trainyard::core::registry::RegistryEventKind;
use trainyard::core::run::{NewTrainingRun, RunConfig, TrainingRun};
use trainyard::core::stages::{StageName, StageStatus};
use trainyard::{DeployOptions, Error, ModelFilter, Platform};
use trainyard_core::RunStatus;

/// Records deploys; serves what it deployed until undeployed or `down`.
#[derive(Default)]
struct RecordingDeployer {
    serving: Mutex<BTreeMap<String, String>>,
    deploys: Mutex<Vec<DeployRequest>>,
    fail_next: Mutex<bool>,
    down: Mutex<bool>,
    refuse_models: Mutex<BTreeSet<String>>,
}

#[async_trait]
impl Deployer for RecordingDeployer {
    async fn deploy(&self, request: &DeployRequest) -> trainyard::Result<String> {
        if std::mem::take(&mut *self.fail_next.lock().unwrap()) {
            return Err(Error::Backend("quota exceeded".into()));
        }
        self.deploys.lock().unwrap().push(request.clone());
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
        if *self.down.lock().unwrap() {
            return Ok(false);
        }
        Ok(self.serving.lock().unwrap().contains_key(service_name))
    }
    async fn check_model(&self, model_path: &str) -> trainyard::Result<()> {
        if self.refuse_models.lock().unwrap().contains(model_path) {
            return Err(Error::Validation(trainyard_core::ValidationError::field(
                "model",
                "product_ids are int64",
            )));
        }
        Ok(())
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    platform: Platform,
    deployer: Arc<RecordingDeployer>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let deployer = Arc::new(RecordingDeployer::default());
    let platform = Platform::init(dir.path())
        .await
        .unwrap()
        .with_deployer(deployer.clone());
    Fixture {
        dir,
        platform,
        deployer,
    }
}

fn new_run(name: &str, deploy: bool) -> NewTrainingRun {
    NewTrainingRun {
        ml_model: "shop".into(),
        name: name.into(),
        description: String::new(),
        config: RunConfig {
            model_config: ModelConfig {
                model_type: ModelType::Retrieval,
                ..ModelConfig::default()
            },
            deployment_config: DeploymentConfig {
                enabled: deploy,
                ..DeploymentConfig::default()
            },
            ..RunConfig::default()
        },
    }
}

/// A pushed SavedModel folder as TFX's Pusher leaves it (a numeric version folder).
fn push_folder(root: &Path, marker: &str) -> String {
    let pushed = root.join("pushed_model").join("1764000000");
    std::fs::create_dir_all(pushed.join("variables")).unwrap();
    std::fs::write(pushed.join("saved_model.pb"), marker).unwrap();
    std::fs::write(pushed.join("variables/variables.index"), b"i").unwrap();
    root.display().to_string()
}

/// Creates a run and feeds it the events of a finished pipeline.
async fn finished_run(f: &Fixture, name: &str, blessed: bool, deploy: bool) -> TrainingRun {
    let training = f.platform.training();
    let run = training
        .create_training_run(new_run(name, deploy))
        .await
        .unwrap();
    let root = f.dir.path().join("runs").join(run.id.to_string());
    let root = push_folder(&root, &format!("model of run {}", run.id));
    training
        .handle_event(
            run.id,
            &PipelineEvent::Completed {
                training_metrics: json!({
                    "loss": {"loss": [1.0, 0.5]},
                    "final_metrics": {"test_recall_at_100": 0.41, "test_recall_at_50": 0.3,
                                      "test_recall_at_10": 0.1, "test_recall_at_5": 0.05}
                }),
                blessed,
                artifacts: BTreeMap::from([("pipeline_root".to_string(), root)]),
            },
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_completed_blessed_run_is_registered_as_the_next_version() {
    let f = fixture().await;
    let v1 = finished_run(&f, "recs", true, false).await;
    assert_eq!(v1.status, RunStatus::Completed);
    assert_eq!(v1.vertex_model_version.as_deref(), Some("1"));
    assert_eq!(
        v1.stage_details.get(StageName::Register).status,
        StageStatus::Completed
    );
    let copy = Path::new(&v1.artifacts[trainyard::REGISTERED_MODEL_ARTIFACT]);
    assert_eq!(
        std::fs::read_to_string(copy.join("saved_model.pb")).unwrap(),
        format!("model of run {}", v1.id)
    );
    let manifest = trainyard_local::LocalModelRegistry::verify(copy).unwrap();
    assert_eq!(manifest.labels["training_run_id"], v1.id.to_string());
    assert_eq!(manifest.labels["model_type"], "retrieval");
    assert_eq!(manifest.labels["is_blessed"], "true");
    assert_eq!(manifest.labels["recall_at_100"], "0_4100");

    let v2 = finished_run(&f, "recs", true, false).await;
    assert_eq!(v2.vertex_model_version.as_deref(), Some("2"));
    let registry = f.platform.registry();
    let model = registry.get(v1.registered_model_id.unwrap()).await.unwrap();
    assert_eq!(model.total_versions, 2);
    assert_eq!(model.latest_version_id, Some(v2.id));
    assert_eq!(model.latest_version_number, "2");
    assert!(model.first_registered_at.is_some());
    let versions = registry.model_versions(model.id).await.unwrap();
    let numbers: Vec<&str> = versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(numbers, ["1", "2"]);
    assert_eq!(versions[0].metrics["recall_at_100"], Some(0.41));
    assert_eq!(
        versions[0].metrics.keys().collect::<Vec<_>>(),
        [
            "recall_at_10",
            "recall_at_100",
            "recall_at_5",
            "recall_at_50"
        ]
    );

    // Pushing again is a conflict that names the version.
    let again = f.platform.lifecycle().push(v1.id).await.unwrap_err();
    assert!(
        matches!(&again, Error::Conflict(m) if m.contains("version 1")),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_not_blessed_run_cannot_be_pushed() {
    let f = fixture().await;
    let run = finished_run(&f, "recs", false, false).await;
    assert_eq!(run.status, RunStatus::NotBlessed);
    let err = f.platform.lifecycle().push(run.id).await.unwrap_err();
    assert!(
        matches!(&err, Error::Validation(v) if v.reason.contains("not blessed")),
        "{err:?}"
    );
    let after = f.platform.training().get(run.id).await.unwrap();
    assert!(after.vertex_model_version.is_none());
    assert!(!f
        .dir
        .path()
        .join("registry")
        .join("shop")
        .join("recs")
        .join("1")
        .exists());
}

/// Bug 9: auto-deploy must accept its own `deploying` status.
#[tokio::test]
async fn auto_deploy_after_registration_ends_deployed() {
    let f = fixture().await;
    let run = finished_run(&f, "recs", true, true).await;
    assert_eq!(
        run.status,
        RunStatus::Deployed,
        "{:?}",
        run.deployment_error
    );
    assert_eq!(run.deployment_status, DeploymentStatus::Deployed);
    assert_eq!(
        run.stage_details.get(StageName::Deploy).status,
        StageStatus::Completed
    );
    // Bug 8: served from the registered copy of the versioned folder, not the base path.
    let deploys = f.deployer.deploys.lock().unwrap().clone();
    assert_eq!(deploys.len(), 1);
    assert!(
        Path::new(&deploys[0].model_path)
            .join("saved_model.pb")
            .is_file(),
        "{}",
        deploys[0].model_path
    );
    assert_eq!(deploys[0].service_name, "recs-serving");
    assert_eq!(deploys[0].image, "tf-serving-native:latest");
}

#[tokio::test]
async fn a_failed_auto_deploy_is_recorded_and_the_registration_kept() {
    let f = fixture().await;
    *f.deployer.fail_next.lock().unwrap() = true;
    let run = finished_run(&f, "recs", true, true).await;
    assert_eq!(run.status, RunStatus::DeployFailed);
    assert_eq!(run.vertex_model_version.as_deref(), Some("1"));
    assert!(run.deployment_error.contains("quota exceeded"));
    assert_eq!(
        run.stage_details.get(StageName::Deploy).status,
        StageStatus::Failed
    );
    // deploy_failed -> deploying is allowed: a retry deploys it.
    let retried = f
        .platform
        .deployments()
        .deploy(run.id, &DeployOptions::default())
        .await
        .unwrap();
    assert_eq!(retried.status, RunStatus::Deployed);
}

/// Bug 7: models get their own services, and an endpoint of one model refuses another's.
#[tokio::test]
async fn each_model_deploys_to_its_own_service() {
    let f = fixture().await;
    let a = finished_run(&f, "Product Recs", true, false).await;
    let b = finished_run(&f, "basket_ranker", true, false).await;
    let d = f.platform.deployments();
    let a = d.deploy(a.id, &DeployOptions::default()).await.unwrap();
    let b = d.deploy(b.id, &DeployOptions::default()).await.unwrap();
    let names: Vec<String> = f
        .deployer
        .deploys
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.service_name.clone())
        .collect();
    assert_eq!(names, ["product-recs-serving", "basket-ranker-serving"]);
    assert_ne!(a.deployed_endpoint_id, b.deployed_endpoint_id);

    let refused = d
        .deploy(
            b.id,
            &DeployOptions {
                endpoint: Some("product-recs-serving".into()),
                ..DeployOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(&refused, Error::Conflict(m) if m.contains("another registered model")));
    // Naming a new endpoint the same as another model's is refused too.
    let refused = d
        .deploy(
            b.id,
            &DeployOptions {
                service_name: Some("product-recs-serving".into()),
                ..DeployOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Conflict(_)));
    let bad = d
        .deploy(
            b.id,
            &DeployOptions {
                service_name: Some("Bad_Name".into()),
                ..DeployOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(&bad, Error::Validation(v) if v.field == "service_name"));
    assert_eq!(f.deployer.deploys.lock().unwrap().len(), 2);
}

/// Bug 10: undeploy returns the run to completed, so it can be deployed again; v2 replaces
/// v1 on the same endpoint and the history shows both.
#[tokio::test]
async fn undeploy_then_redeploy_and_switch_versions() {
    let f = fixture().await;
    let d = f.platform.deployments();
    let v1 = finished_run(&f, "recs", true, false).await;
    d.deploy(v1.id, &DeployOptions::default()).await.unwrap();
    let ep = d.undeploy("recs-serving").await.unwrap();
    assert!(!ep.is_active);
    let v1 = f.platform.training().get(v1.id).await.unwrap();
    assert_eq!(v1.status, RunStatus::Completed);
    assert!(v1.deployed_endpoint_id.is_none());
    let model = f
        .platform
        .registry()
        .get(v1.registered_model_id.unwrap())
        .await
        .unwrap();
    assert!(!model.is_deployed);

    let v1 = d.deploy(v1.id, &DeployOptions::default()).await.unwrap();
    assert_eq!(v1.status, RunStatus::Deployed);

    let v2 = finished_run(&f, "recs", true, false).await;
    let v2 = d
        .deploy(
            v2.id,
            &DeployOptions {
                endpoint: Some("recs-serving".into()),
                preset: Some(DeploymentPreset::Development),
                ..DeployOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v2.status, RunStatus::Deployed);
    assert_eq!(v2.config.deployment_config.memory, "2Gi");
    // v1 no longer serves there.
    let v1 = f.platform.training().get(v1.id).await.unwrap();
    assert_eq!(v1.status, RunStatus::Completed);
    let endpoint = d.endpoint("recs-serving").await.unwrap();
    assert_eq!(endpoint.deployed_version, "2");
    assert_eq!(endpoint.deployed_training_run_id, Some(v2.id));

    let registry = f.platform.registry();
    let model_id = v2.registered_model_id.unwrap();
    registry
        .set_alias(model_id, "production", "1")
        .await
        .unwrap();
    registry
        .set_alias(model_id, "production", "2")
        .await
        .unwrap();
    registry.set_alias(model_id, "staging", "1").await.unwrap();
    let aliases = registry.aliases(model_id).await.unwrap();
    assert_eq!(aliases["production"], "2");
    assert_eq!(aliases["staging"], "1");
    let history = registry.history(model_id).await.unwrap();
    let production: Vec<&str> = history
        .iter()
        .filter(|e| e.kind == RegistryEventKind::Alias && e.name == "production")
        .map(|e| e.model_version.as_str())
        .collect();
    assert_eq!(production, ["1", "2"]);
    let served: Vec<&str> = history
        .iter()
        .filter(|e| e.kind == RegistryEventKind::Endpoint)
        .map(|e| e.model_version.as_str())
        .collect();
    assert_eq!(served, ["1", "", "1", "2"]);
    assert!(matches!(
        registry.set_alias(model_id, "production", "9").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        registry.set_alias(model_id, "Prod!", "1").await,
        Err(Error::Validation(_))
    ));
    // A redeploy hands the model's aliases to the server as version labels.
    d.deploy(v2.id, &DeployOptions::default()).await.unwrap();
    let last = f.deployer.deploys.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        last.labels,
        [("production".to_string(), 2), ("staging".to_string(), 1)].into()
    );
    registry.remove_alias(model_id, "staging").await.unwrap();
    assert!(!registry
        .aliases(model_id)
        .await
        .unwrap()
        .contains_key("staging"));
}

/// Bug 11: the recorded deployment result and the live endpoint state are separate answers.
#[tokio::test]
async fn recorded_deployment_and_live_state_stay_distinct() {
    let f = fixture().await;
    let d = f.platform.deployments();
    let run = finished_run(&f, "recs", true, true).await;
    let view = d.status(run.id).await.unwrap();
    assert_eq!(view.status, LiveDeploymentStatus::Deployed);
    assert!(view.has_active_endpoint);
    let listing = f
        .platform
        .registry()
        .list_with_kpi(&ModelFilter::default())
        .await
        .unwrap();
    assert_eq!(listing.kpi.total, 1);
    assert_eq!(listing.kpi.registered, 1);
    assert_eq!(listing.kpi.deployed, 1);
    let row = &listing.registered_models[0];
    assert!(row.model.is_deployed && row.has_active_endpoint && !row.is_outdated);

    // The server goes away: the record still says the pipeline deployed it, the live state
    // says idle, and the model is not "outdated" because of it.
    *f.deployer.down.lock().unwrap() = true;
    let view = d.status(run.id).await.unwrap();
    assert_eq!(view.deployment_status, DeploymentStatus::Deployed);
    assert!(!view.has_active_endpoint);
    assert_eq!(view.status, LiveDeploymentStatus::Idle);
    let listing = f
        .platform
        .registry()
        .list_with_kpi(&ModelFilter::default())
        .await
        .unwrap();
    let row = &listing.registered_models[0];
    assert!(row.model.is_deployed && !row.has_active_endpoint && !row.is_outdated);

    // A newer registered version makes the deployed one outdated.
    *f.deployer.down.lock().unwrap() = false;
    finished_run(&f, "recs", true, false).await;
    let listing = f
        .platform
        .registry()
        .list_with_kpi(&ModelFilter {
            deployed: Some(true),
            ..ModelFilter::default()
        })
        .await
        .unwrap();
    assert!(listing.registered_models[0].is_outdated);
    let none = f
        .platform
        .registry()
        .list_with_kpi(&ModelFilter {
            model_type: Some(ModelType::Ranking),
            ..ModelFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(none.kpi.total, 0);
}

#[tokio::test]
async fn a_model_serving_indices_is_refused_before_anything_changes() {
    let f = fixture().await;
    let run = finished_run(&f, "recs", true, false).await;
    let path = run.artifacts[trainyard::REGISTERED_MODEL_ARTIFACT].clone();
    f.deployer.refuse_models.lock().unwrap().insert(path);
    let err = f
        .platform
        .deployments()
        .deploy(run.id, &DeployOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err:?}");
    let after = f.platform.training().get(run.id).await.unwrap();
    assert_eq!(after.status, RunStatus::Completed);
    assert!(f.deployer.deploys.lock().unwrap().is_empty());
    assert!(f
        .platform
        .deployments()
        .endpoints(None)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_unregistered_run_cannot_be_deployed() {
    let f = fixture().await;
    let run = f
        .platform
        .training()
        .create_training_run(new_run("recs", false))
        .await
        .unwrap();
    let err = f
        .platform
        .deployments()
        .deploy(run.id, &DeployOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation(v) if v.reason.contains("registry push")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_registered_version_changed_after_registration_is_not_deployed() {
    let f = fixture().await;
    let run = finished_run(&f, "recs", true, false).await;
    let version = Path::new(&run.artifacts[trainyard::REGISTERED_MODEL_ARTIFACT]).to_path_buf();
    // flip one byte of the registered graph (the registry made it read-only)
    let pb = version.join("saved_model.pb");
    let mut perms = std::fs::metadata(&pb).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&pb, perms).unwrap();
    let mut bytes = std::fs::read(&pb).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&pb, bytes).unwrap();

    let err = f
        .platform
        .deployments()
        .deploy(run.id, &DeployOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation(_))
            && err
                .to_string()
                .contains("saved_model.pb (checksum differs)")
            && err.to_string().contains("MANIFEST.json"),
        "{err:?}"
    );
    // nothing deployed, nothing changed
    assert!(f.deployer.deploys.lock().unwrap().is_empty());
    let after = f.platform.training().get(run.id).await.unwrap();
    assert_eq!(after.status, RunStatus::Completed);
    assert_eq!(after.deployment_status, run.deployment_status);
    assert!(f
        .platform
        .deployments()
        .endpoints(None)
        .await
        .unwrap()
        .is_empty());
}
