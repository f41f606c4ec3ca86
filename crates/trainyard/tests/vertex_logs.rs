//! `runs logs` of a Vertex run (InsightsService::logs, which the CLI, the API and the Python
//! wheel call): the pipeline job's Cloud Logging entries, read through the platform opened
//! with `--backend gcp` against the recording stand-in for Google's APIs.

#[path = "../../trainyard-gcp/tests/common/mod.rs"]
mod common;

use common::FakeGoogle;
use trainyard::core::run::NewTrainingRun;
use trainyard::{Backend, Platform, ProjectConfig, CONFIG_FILE};

async fn gcp_project(fake: &FakeGoogle) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let gcp = fake.config_with_credentials(dir.path()).await;
    let config = ProjectConfig {
        gcp: Some(gcp),
        ..ProjectConfig::default()
    };
    std::fs::write(dir.path().join(CONFIG_FILE), config.to_toml()).unwrap();
    Platform::init(dir.path()).await.unwrap();
    dir
}

#[tokio::test]
async fn logs_of_a_vertex_run_come_from_cloud_logging() {
    let fake = FakeGoogle::start().await;
    let dir = gcp_project(&fake).await;
    let p = Platform::open_with(dir.path(), Backend::Gcp).await.unwrap();
    let run = p
        .training()
        .create_training_run(NewTrainingRun {
            ml_model: "shop".into(),
            name: "vertex logs".into(),
            description: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    let run = p.submit(run.id).await.unwrap();
    let job_id = run.vertex_pipeline_job_id.clone().unwrap();

    // the fake's job advances on each read: pending (only the job's own events), then
    // examples done and statistics running
    let pending = p.insights().logs(run.id, None).await.unwrap();
    assert!(pending.components.is_empty(), "{pending:?}");
    assert_eq!(pending.text.lines().count(), 1, "{}", pending.text);
    assert!(pending.text.contains("[pipeline]"), "{}", pending.text);
    let logs = p.insights().logs(run.id, None).await.unwrap();
    assert!(
        logs.source
            .starts_with("cloud logging: projects/test-project "),
        "{}",
        logs.source
    );
    assert!(logs.source.contains(&job_id), "{}", logs.source);
    assert_eq!(logs.components, ["BigQueryExampleGen", "StatisticsGen"]);
    let lines: Vec<&str> = logs.text.lines().collect();
    assert_eq!(lines.len(), 1 + 2 * 2, "{}", logs.text);
    assert!(
        lines[0].contains("[pipeline]") && lines[0].contains(&job_id),
        "{}",
        lines[0]
    );
    assert!(
        logs.text.contains("ERROR   [StatisticsGen] custom job"),
        "{}",
        logs.text
    );

    // one component; then one that has no logs, named with those that have
    let one = p.insights().logs(run.id, Some("transform")).await.unwrap();
    assert_eq!(one.component.as_deref(), Some("transform"));
    assert!(
        one.text.lines().all(|l| l.contains("[Transform]")) && one.text.lines().count() == 2,
        "{}",
        one.text
    );
    let err = p.insights().logs(run.id, Some("Tuner")).await.unwrap_err();
    assert!(
        matches!(&err, trainyard_core::Error::NotFound { id, .. } if id.contains("Trainer")),
        "{err:?}"
    );
    let listed = fake.requests_to("POST", "/v2/entries:list");
    assert!(!listed.is_empty());
    assert!(listed.iter().all(|e| e.status == 200));
}
