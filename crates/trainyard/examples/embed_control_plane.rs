//! Embedding the control plane in a Rust service: the service spawns trainyard's control plane
//! on its own tokio runtime (what `trainyard server` does besides serving the REST API), then
//! only records intent — a submit — and reads state. The control plane submits the run, tracks
//! its pipeline, registers the blessed model as version 1 and would deploy it when asked to.
//!
//! The pipeline executor here is the service's own (a stand-in that finishes after a few
//! polls), to show the port; a real service keeps the platform's local runner or Vertex AI.
//!
//!     cargo run -p trainyard --example embed_control_plane

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use trainyard::core::ports::{
    PipelineCompiler, PipelineEvent, PipelineExecutor, PipelineHandle, PipelineSubmission,
};
use trainyard::core::run::{NewTrainingRun, TrainingRun};
use trainyard::{ControlPlaneConfig, Platform};
use trainyard_core::RunStatus;

/// A pipeline service of the embedding application: pushes a model folder and reports the
/// end of training on the third poll.
#[derive(Default)]
struct InHousePipelines {
    polls: Mutex<BTreeMap<String, u32>>,
}

#[async_trait]
impl PipelineExecutor for InHousePipelines {
    async fn submit(&self, sub: &PipelineSubmission) -> trainyard::Result<PipelineHandle> {
        let pushed = std::path::Path::new(&sub.pipeline_root).join("pushed_model/1");
        std::fs::create_dir_all(&pushed).map_err(|e| trainyard::Error::Backend(e.to_string()))?;
        std::fs::write(pushed.join("saved_model.pb"), b"model")
            .map_err(|e| trainyard::Error::Backend(e.to_string()))?;
        Ok(PipelineHandle {
            job_name: sub.pipeline_root.clone(),
            job_id: format!("inhouse-{}", sub.run.id),
        })
    }

    async fn poll(&self, handle: &PipelineHandle) -> trainyard::Result<Vec<PipelineEvent>> {
        let mut polls = self.polls.lock().unwrap();
        let n = polls.entry(handle.job_id.clone()).or_default();
        *n += 1;
        Ok(match *n {
            1 => vec![PipelineEvent::EpochCompleted {
                epoch: 1,
                metrics: BTreeMap::from([("loss".to_string(), 0.9)]),
            }],
            3 => vec![PipelineEvent::Completed {
                training_metrics: serde_json::json!({
                    "loss": {"loss": [0.9]},
                    "final_metrics": {"test_recall_at_100": 0.42}
                }),
                blessed: true,
                artifacts: BTreeMap::from([("pipeline_root".into(), handle.job_name.clone())]),
            }],
            _ => Vec::new(),
        })
    }

    async fn cancel(&self, _handle: &PipelineHandle) -> trainyard::Result<()> {
        Ok(())
    }
}

struct NoFiles;

impl PipelineCompiler for NoFiles {
    fn compile(&self, _: &TrainingRun, _: &str) -> trainyard::Result<BTreeMap<String, String>> {
        Ok(BTreeMap::new())
    }
}

#[tokio::main]
async fn main() -> trainyard::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| trainyard::Error::Backend(e.to_string()))?;
    let platform = Platform::init(dir.path()).await?.with_executor(
        Arc::new(InHousePipelines::default()),
        Arc::new(NoFiles),
        dir.path().display().to_string(),
    );

    // The service's control plane: the same work as `trainyard server`, on this runtime.
    let control = platform
        .control_plane(ControlPlaneConfig {
            tick: Duration::from_millis(50),
            max_poll_interval: Duration::from_millis(100),
            ..ControlPlaneConfig::server()
        })
        .spawn();
    // its first pass announces it (a `server:` lease) within a tick
    let mut announced = false;
    for _ in 0..100 {
        announced = platform.server_running().await?;
        if announced {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(announced, "announced as a server");

    // Request handlers only record intent...
    let training = platform.training();
    let run = training
        .create_training_run(NewTrainingRun {
            ml_model: "shop".into(),
            name: "product-recs".into(),
            ..NewTrainingRun::default()
        })
        .await?;
    let queued = training.submit(run.id).await?;
    println!("run {} is {} (intent recorded)", queued.id, queued.status);

    // ... and read state: the control plane carries the run to a registered version.
    let mut last = queued.status;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let done = loop {
        let now = training.get(run.id).await?;
        if now.status != last {
            println!("run {} is {}", now.id, now.status);
            last = now.status;
        }
        if now.vertex_model_version.is_some() || tokio::time::Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    control.stop().await?;
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.vertex_model_version.as_deref(), Some("1"));
    assert!(!training.history(run.id).await?.is_empty());
    println!(
        "registered as version 1 of {:?}",
        done.vertex_model_name.unwrap_or_default()
    );
    assert!(
        !platform.server_running().await?,
        "a stopped control plane gives up its lease"
    );
    println!("embed_control_plane: ok");
    Ok(())
}
