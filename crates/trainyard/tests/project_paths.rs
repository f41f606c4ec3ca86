//! Registered versions are recorded as absolute paths, so a project registered from one working
//! directory deploys from any other (they were `demo-project/registry/...`, relative to the
//! registering command's directory). This test changes the working directory, so it is the
//! only test in this file (its own process).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;
use trainyard::core::model_config::{ModelConfig, ModelType};
use trainyard::core::ports::{DeployRequest, Deployer, PipelineEvent};
use trainyard::core::run::{NewTrainingRun, RunConfig};
use trainyard::{DeployOptions, Platform};

/// Records what it was asked to deploy.
#[derive(Default)]
struct Recording(Mutex<Vec<DeployRequest>>);

#[async_trait]
impl Deployer for Recording {
    async fn deploy(&self, request: &DeployRequest) -> trainyard::Result<String> {
        self.0.lock().unwrap().push(request.clone());
        Ok("http://127.0.0.1:1".into())
    }
    async fn undeploy(&self, _: &str) -> trainyard::Result<()> {
        Ok(())
    }
    async fn is_serving(&self, _: &str) -> trainyard::Result<bool> {
        Ok(true)
    }
    async fn check_model(&self, _: &str) -> trainyard::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_version_registered_from_one_directory_deploys_from_another() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path().canonicalize().unwrap();
    std::fs::create_dir_all(tmp.join("elsewhere")).unwrap();
    std::env::set_current_dir(&tmp).unwrap();

    // registered with the project given relative to the working directory
    let platform = Platform::init("demo-project").await.unwrap();
    let training = platform.training();
    let run = training
        .create_training_run(NewTrainingRun {
            ml_model: "shop".into(),
            name: "recs".into(),
            description: String::new(),
            config: RunConfig {
                model_config: ModelConfig {
                    model_type: ModelType::Retrieval,
                    ..ModelConfig::default()
                },
                ..RunConfig::default()
            },
        })
        .await
        .unwrap();
    let root = tmp.join("demo-project/runs/1");
    let pushed = root.join("pushed_model/1764000000");
    std::fs::create_dir_all(&pushed).unwrap();
    std::fs::write(pushed.join("saved_model.pb"), b"graph").unwrap();
    let run = training
        .handle_event(
            run.id,
            &PipelineEvent::Completed {
                training_metrics: json!({"final_metrics": {"test_recall_at_100": 0.4}}),
                blessed: true,
                artifacts: BTreeMap::from([(
                    "pipeline_root".to_string(),
                    root.display().to_string(),
                )]),
            },
        )
        .await
        .unwrap();
    assert_eq!(run.vertex_model_version.as_deref(), Some("1"));
    let recorded = run.artifacts[trainyard::REGISTERED_MODEL_ARTIFACT].clone();
    assert!(Path::new(&recorded).is_absolute(), "{recorded}");
    drop(platform);

    // deployed from another directory
    std::env::set_current_dir(tmp.join("elsewhere")).unwrap();
    let deployer = Arc::new(Recording::default());
    let platform = Platform::open(tmp.join("demo-project"))
        .await
        .unwrap()
        .with_deployer(deployer.clone());
    platform
        .deployments()
        .deploy(run.id, &DeployOptions::default())
        .await
        .unwrap();
    let deploys = deployer.0.lock().unwrap().clone();
    assert_eq!(deploys.len(), 1);
    let model = Path::new(&deploys[0].model_path);
    assert!(
        model.join("saved_model.pb").is_file(),
        "deploy from another directory got {}",
        model.display()
    );
}
