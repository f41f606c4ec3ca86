//! A pipeline event that names a relative local artifact path (`pushed_model`, `pipeline_root`)
//! means a path in the project, not in the working directory of whoever applies the event
//! (`trainyard runs event` run from anywhere, a webhook to a server started elsewhere). This
//! test changes the working directory, so it is the only test in this file (its own process).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use trainyard::core::model_config::{ModelConfig, ModelType};
use trainyard::core::ports::PipelineEvent;
use trainyard::core::run::{NewTrainingRun, RunConfig};
use trainyard::core::stages::{StageName, StageStatus};
use trainyard::Platform;

fn retrieval(name: &str) -> NewTrainingRun {
    NewTrainingRun {
        ml_model: "shop".into(),
        name: name.into(),
        description: String::new(),
        config: RunConfig {
            model_config: ModelConfig {
                model_type: ModelType::Retrieval,
                ..ModelConfig::default()
            },
            ..RunConfig::default()
        },
    }
}

fn completed(artifacts: &[(&str, String)]) -> PipelineEvent {
    PipelineEvent::Completed {
        training_metrics: json!({"final_metrics": {"test_recall_at_100": 0.4}}),
        blessed: true,
        artifacts: artifacts
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    }
}

#[tokio::test]
async fn relative_artifact_paths_in_events_are_the_projects_not_the_working_directorys() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path().canonicalize().unwrap();
    let project = tmp.join("project");
    let elsewhere = tmp.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let platform = Platform::init(&project).await.unwrap();
    let training = platform.training();

    // The Pusher's layout under the project; the working directory holds a decoy of the same
    // relative path, which must not be what gets registered.
    let push = |base: &Path, content: &[u8]| {
        let v = base.join("runs/1/pushed_model/1764000000");
        std::fs::create_dir_all(&v).unwrap();
        std::fs::write(v.join("saved_model.pb"), content).unwrap();
    };
    push(&project, b"the project's model");
    push(&elsewhere, b"a decoy in the working directory");
    std::env::set_current_dir(&elsewhere).unwrap();

    let run = training
        .create_training_run(retrieval("recs"))
        .await
        .unwrap();
    let run = training
        .handle_event(
            run.id,
            &completed(&[("pushed_model", "runs/1/pushed_model".into())]),
        )
        .await
        .unwrap();
    let register = run.stage_details.get(StageName::Register);
    assert_eq!(register.status, StageStatus::Completed, "{register:?}");
    assert_eq!(run.vertex_model_version.as_deref(), Some("1"));
    assert_eq!(
        run.artifacts["pushed_model"],
        project.join("runs/1/pushed_model").display().to_string()
    );
    let registered = Path::new(&run.artifacts[trainyard::REGISTERED_MODEL_ARTIFACT]).to_path_buf();
    assert_eq!(
        std::fs::read(registered.join("saved_model.pb")).unwrap(),
        b"the project's model"
    );

    // pipeline_root too; absolute paths and gs:// URIs are kept as they are.
    let run2 = training
        .create_training_run(retrieval("recs"))
        .await
        .unwrap();
    let absolute = project.join("runs/1").display().to_string();
    let run2 = training
        .handle_event(
            run2.id,
            &completed(&[
                ("pipeline_root", absolute.clone()),
                ("log", "runs/2/pipeline.log".into()),
                ("model_uri", "gs://bucket/root/pushed_model".into()),
                ("note", "relative/but/not/a/path/artifact".into()),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(run2.artifacts["pipeline_root"], absolute);
    assert_eq!(
        run2.artifacts["log"],
        project.join("runs/2/pipeline.log").display().to_string()
    );
    assert_eq!(run2.artifacts["model_uri"], "gs://bucket/root/pushed_model");
    assert_eq!(run2.artifacts["note"], "relative/but/not/a/path/artifact");
    assert_eq!(run2.vertex_model_version.as_deref(), Some("2"));
}
