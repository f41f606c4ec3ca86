//! Benchmark (not a test): the control plane's cost per tracked run. N runs are `running` in a
//! SQLite project, each with a pipeline that reports nothing new (the steady state of a long
//! training); one control plane claims and polls them for a while with its default settings
//! (0.5 s passes, polls backing off to 10 s). Reported: process CPU per tracked run per second
//! of wall time, CPU per pass, and pass latency (a pass must stay well under the lease TTL).
//!
//!     cargo run --release -p trainyard --example bench_control_plane -- [RUNS] [SECONDS]
//!
//! `benches/control_plane/run.sh` runs it at two sizes, so the per-run cost can be compared.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use trainyard::core::ports::{
    PipelineCompiler, PipelineEvent, PipelineExecutor, PipelineHandle, PipelineSubmission, Store,
};
use trainyard::core::run::{NewTrainingRun, TrainingRun};
use trainyard::core::RunEvent;
use trainyard::{ControlPlaneConfig, Platform};

struct Quiet;

#[async_trait]
impl PipelineExecutor for Quiet {
    async fn submit(&self, sub: &PipelineSubmission) -> trainyard::Result<PipelineHandle> {
        Ok(PipelineHandle {
            job_name: sub.pipeline_root.clone(),
            job_id: format!("job-{}", sub.run.id),
        })
    }
    async fn poll(&self, _: &PipelineHandle) -> trainyard::Result<Vec<PipelineEvent>> {
        Ok(Vec::new())
    }
    async fn cancel(&self, _: &PipelineHandle) -> trainyard::Result<()> {
        Ok(())
    }
}

struct NoFiles;

impl PipelineCompiler for NoFiles {
    fn compile(&self, _: &TrainingRun, _: &str) -> trainyard::Result<BTreeMap<String, String>> {
        Ok(BTreeMap::new())
    }
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // fields 14 and 15 of stat (utime, stime), counted after the ")" as 11 and 12
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main]
async fn main() -> trainyard::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().map_err(|e| trainyard::Error::Backend(e.to_string()))?;
    let platform = Platform::init(dir.path()).await?.with_executor(
        Arc::new(Quiet),
        Arc::new(NoFiles),
        dir.path().display().to_string(),
    );
    let store: Arc<dyn Store> = platform.store().clone();
    let training = platform.training();
    let model = training
        .create_training_run(NewTrainingRun {
            ml_model: "bench".into(),
            name: "bench".into(),
            ..NewTrainingRun::default()
        })
        .await?;
    let now = chrono::Utc::now();
    for i in 0..n {
        let mut run = model.clone();
        run.id = 0;
        run.name = format!("bench-{i}");
        run.transition(RunEvent::Submit, now)?;
        run.transition(RunEvent::Submitted, now)?;
        run.vertex_pipeline_job_name = Some(format!("root-{i}"));
        run.vertex_pipeline_job_id = Some(format!("job-{i}"));
        store.insert_run(&run).await?;
    }
    let cp = platform.control_plane(ControlPlaneConfig::default());
    // the first pass claims every run
    let t = Instant::now();
    cp.pass().await?;
    let claim_ms = t.elapsed().as_secs_f64() * 1000.0;

    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let mut pass_ms = Vec::new();
    while wall0.elapsed() < Duration::from_secs(secs) {
        let t = Instant::now();
        let report = cp.pass().await?;
        pass_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(report.errors, 0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cpu = cpu_seconds() - cpu0;
    let wall = wall0.elapsed().as_secs_f64();
    pass_ms.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| pass_ms[((pass_ms.len() - 1) as f64 * q) as usize];
    println!(
        "tracked runs {n}: first pass (claims) {claim_ms:.0} ms; {} passes in {wall:.1} s; \
         pass p50 {:.1} ms, p99 {:.1} ms; CPU {:.3} s = {:.2}% of a core, \
         {:.1} µs of CPU per tracked run per second",
        pass_ms.len(),
        p(0.5),
        p(0.99),
        cpu,
        cpu / wall * 100.0,
        cpu / wall / n as f64 * 1e6
    );
    Ok(())
}
