//! The local pipeline runner: runs a compiled local TFX pipeline (pipeline.py + modules) with
//! the managed env's Python as a child process group, and turns what it prints into
//! [`PipelineEvent`]s: TFX's "Component X is running/finished." lines become stages, the
//! trainer's `[trainyard] EPOCH {...}` lines epochs, the evaluator's `[trainyard] BLESSING`
//! line the verdict; the exit status completes or fails the run.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use trainyard_core::ports::{
    PipelineEvent, PipelineExecutor, PipelineHandle, PipelineSubmission, LOCAL_PIPELINE_FILE,
    TRAINING_METRICS_FILE,
};
use trainyard_core::stages::StageName;
use trainyard_core::{Error, Result};

/// Lines of output kept for a failure's error message.
const ERROR_TAIL_LINES: usize = 25;
/// How long a cancelled pipeline gets to stop before SIGKILL.
const CANCEL_GRACE: Duration = Duration::from_secs(3);
/// Folder, under the pipeline root, of the per-component logs (`<Component>.log`): the lines
/// between TFX's "Component X is running." and "Component X is finished.".
pub const COMPONENT_LOG_DIR: &str = "logs";
/// The whole pipeline's output, under the pipeline root.
pub const PIPELINE_LOG_FILE: &str = "pipeline.log";

#[derive(Default)]
struct Job {
    events: VecDeque<PipelineEvent>,
    pgid: Option<u32>,
    cancelled: bool,
    finished: bool,
}

/// Runs local pipelines; one child process group per run.
pub struct LocalRunner {
    python: PathBuf,
    jobs: Arc<Mutex<HashMap<String, Job>>>,
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

/// What one output line means.
fn parse_line(line: &str) -> Option<LineEvent> {
    if let Some(rest) = line.split("[trainyard] EPOCH ").nth(1) {
        let v: serde_json::Value = serde_json::from_str(rest.trim()).ok()?;
        let epoch = v.get("epoch")?.as_u64()? as u32;
        let metrics: BTreeMap<String, f64> = v
            .get("metrics")?
            .as_object()?
            .iter()
            .filter_map(|(k, x)| Some((k.clone(), x.as_f64()?)))
            .collect();
        return Some(LineEvent::Pipeline(PipelineEvent::EpochCompleted {
            epoch,
            metrics,
        }));
    }
    if let Some(rest) = line.split("[trainyard] BLESSING ").nth(1) {
        let v: serde_json::Value = serde_json::from_str(rest.trim()).ok()?;
        return Some(LineEvent::Blessed(v.get("blessed")?.as_bool()?));
    }
    let component = |marker: &str| StageName::from_component(component_name(line, marker)?);
    if let Some(stage) = component(" is running.") {
        return Some(LineEvent::Pipeline(PipelineEvent::StageStarted { stage }));
    }
    if let Some(stage) = component(" is finished.") {
        return Some(LineEvent::Pipeline(PipelineEvent::StageCompleted { stage }));
    }
    None
}

/// The TFX component a "Component X is running." / "... is finished." line names.
fn component_name<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let i = line.find("Component ")?;
    let rest = &line[i + "Component ".len()..];
    let name = rest
        .strip_suffix(marker)
        .or_else(|| rest.trim_end().strip_suffix(marker))?
        .trim();
    // a component id, never free text that happens to contain the words
    (!name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    .then_some(name)
}

/// Appends each line to the log of the component that is running when it is printed.
struct ComponentLogs {
    dir: PathBuf,
    current: Option<tokio::fs::File>,
}

impl ComponentLogs {
    async fn line(&mut self, line: &str) {
        if let Some(name) = component_name(line, " is running.") {
            let _ = tokio::fs::create_dir_all(&self.dir).await;
            self.current = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(format!("{name}.log")))
                .await
                .ok();
        }
        if let Some(f) = self.current.as_mut() {
            let _ = f.write_all(line.as_bytes()).await;
            let _ = f.write_all(b"\n").await;
        }
        if component_name(line, " is finished.").is_some() {
            self.close().await;
        }
    }

    /// Flushes the open log (tokio's File may still hold the last write when dropped).
    async fn close(&mut self) {
        if let Some(mut f) = self.current.take() {
            let _ = f.flush().await;
        }
    }
}

enum LineEvent {
    Pipeline(PipelineEvent),
    Blessed(bool),
}

/// The newest training_metrics.json the Trainer wrote under the pipeline root.
fn find_training_metrics(root: &Path) -> Option<PathBuf> {
    let run_dir = root.join("Trainer").join("model_run");
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(run_dir).ok()?.flatten() {
        let id: u64 = entry.file_name().to_string_lossy().parse().unwrap_or(0);
        let file = entry.path().join(TRAINING_METRICS_FILE);
        if file.is_file() && best.as_ref().is_none_or(|(b, _)| id > *b) {
            best = Some((id, file));
        }
    }
    best.map(|(_, p)| p)
}

impl LocalRunner {
    /// `python` is the managed env's interpreter.
    pub fn new(python: impl Into<PathBuf>) -> Self {
        LocalRunner {
            python: python.into(),
            jobs: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn jobs(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Job>>> {
        self.jobs
            .lock()
            .map_err(|_| backend("runner state poisoned"))
    }

    /// The process group of a running job (tests check it is gone after cancel).
    pub fn process_group(&self, handle: &PipelineHandle) -> Option<u32> {
        self.jobs.lock().ok()?.get(&handle.job_id)?.pgid
    }
}

fn push(jobs: &Arc<Mutex<HashMap<String, Job>>>, id: &str, event: PipelineEvent) {
    if let Ok(mut jobs) = jobs.lock() {
        if let Some(job) = jobs.get_mut(id) {
            if !job.cancelled {
                job.events.push_back(event);
            }
        }
    }
}

#[async_trait]
impl PipelineExecutor for LocalRunner {
    async fn submit(&self, sub: &PipelineSubmission) -> Result<PipelineHandle> {
        let root = PathBuf::from(&sub.pipeline_root);
        let modules = root.join("modules");
        tokio::fs::create_dir_all(&modules).await.map_err(backend)?;
        if !sub.files.contains_key(LOCAL_PIPELINE_FILE) {
            return Err(backend(format!(
                "the submission has no {LOCAL_PIPELINE_FILE}"
            )));
        }
        for (name, source) in &sub.files {
            tokio::fs::write(modules.join(name), source)
                .await
                .map_err(backend)?;
        }
        let log_path = root.join(PIPELINE_LOG_FILE);
        let mut log = tokio::fs::File::create(&log_path).await.map_err(backend)?;
        let mut child = Command::new(&self.python)
            .arg(modules.join(LOCAL_PIPELINE_FILE))
            .current_dir(&root)
            .env("TF_USE_LEGACY_KERAS", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so cancel reaches Beam's and TF's children too.
            .process_group(0)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| backend(format!("cannot start {}: {e}", self.python.display())))?;
        let pgid = child.id();
        let job_id = format!(
            "local-{}-{}",
            sub.run.id,
            chrono::Utc::now().timestamp_millis()
        );
        self.jobs()?.insert(
            job_id.clone(),
            Job {
                pgid,
                ..Job::default()
            },
        );

        // stdout and stderr, line by line, into one channel.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child.stderr.take().map(|s| Box::new(s) as _),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let jobs = self.jobs.clone();
        let id = job_id.clone();
        let job_name = root.display().to_string();
        tokio::spawn(async move {
            let mut tail: VecDeque<String> = VecDeque::new();
            let mut blessed = None;
            let mut stage = None;
            let mut components = ComponentLogs {
                dir: root.join(COMPONENT_LOG_DIR),
                current: None,
            };
            while let Some(line) = rx.recv().await {
                let _ = log.write_all(line.as_bytes()).await;
                let _ = log.write_all(b"\n").await;
                components.line(&line).await;
                match parse_line(&line) {
                    Some(LineEvent::Pipeline(e)) => {
                        if let PipelineEvent::StageStarted { stage: s } = &e {
                            stage = Some(*s);
                        }
                        push(&jobs, &id, e);
                    }
                    Some(LineEvent::Blessed(b)) => blessed = Some(b),
                    None => {}
                }
                tail.push_back(line);
                if tail.len() > ERROR_TAIL_LINES {
                    tail.pop_front();
                }
            }
            let _ = log.flush().await;
            components.close().await;
            let status = child.wait().await;
            let cancelled = jobs
                .lock()
                .map(|j| j.get(&id).is_some_and(|j| j.cancelled))
                .unwrap_or(false);
            let final_event = match status {
                _ if cancelled => None,
                Ok(s) if s.success() => Some(match find_training_metrics(&root) {
                    Some(path) => {
                        match std::fs::read_to_string(&path).map(|t| serde_json::from_str(&t)) {
                            Ok(Ok(training_metrics)) => PipelineEvent::Completed {
                                training_metrics,
                                blessed: blessed.unwrap_or(false),
                                artifacts: BTreeMap::from([
                                    ("pipeline_root".to_string(), root.display().to_string()),
                                    ("training_metrics".to_string(), path.display().to_string()),
                                    ("log".to_string(), log_path.display().to_string()),
                                    (
                                        "component_logs".to_string(),
                                        root.join(COMPONENT_LOG_DIR).display().to_string(),
                                    ),
                                ]),
                            },
                            _ => PipelineEvent::Failed {
                                error: format!("unreadable {}", path.display()),
                                stage: Some(StageName::Train),
                            },
                        }
                    }
                    None => PipelineEvent::Failed {
                        error: "the pipeline finished without training metrics".into(),
                        stage: Some(StageName::Train),
                    },
                }),
                Ok(s) => {
                    let lines: Vec<String> = tail.into_iter().collect();
                    Some(PipelineEvent::Failed {
                        // Child output, made fit for API bodies (no escapes, no local paths).
                        error: format!(
                            "pipeline exited with {s}:\n{}",
                            trainyard_core::sanitize::child_output(&lines.join("\n"))
                        ),
                        stage,
                    })
                }
                Err(e) => Some(PipelineEvent::Failed {
                    error: format!("cannot wait for the pipeline: {e}"),
                    stage,
                }),
            };
            if let Some(e) = final_event {
                push(&jobs, &id, e);
            }
            if let Ok(mut jobs) = jobs.lock() {
                if let Some(job) = jobs.get_mut(&id) {
                    job.finished = true;
                }
            }
        });
        Ok(PipelineHandle { job_name, job_id })
    }

    async fn poll(&self, handle: &PipelineHandle) -> Result<Vec<PipelineEvent>> {
        let mut jobs = self.jobs()?;
        let job = jobs
            .get_mut(&handle.job_id)
            .ok_or_else(|| Error::not_found("pipeline job", &handle.job_id))?;
        Ok(job.events.drain(..).collect())
    }

    async fn cancel(&self, handle: &PipelineHandle) -> Result<()> {
        let pgid = {
            let mut jobs = self.jobs()?;
            let job = jobs
                .get_mut(&handle.job_id)
                .ok_or_else(|| Error::not_found("pipeline job", &handle.job_id))?;
            job.cancelled = true;
            job.events.clear();
            if job.finished {
                return Ok(());
            }
            job.pgid
        };
        let Some(pgid) = pgid else { return Ok(()) };
        let signal = |sig: &str| {
            std::process::Command::new("kill")
                .args([sig, "--", &format!("-{pgid}")])
                .stderr(Stdio::null())
                .status()
        };
        let _ = signal("-TERM");
        let deadline = tokio::time::Instant::now() + CANCEL_GRACE;
        while tokio::time::Instant::now() < deadline {
            let finished = self.jobs()?.get(&handle.job_id).is_some_and(|j| j.finished);
            if finished && !group_alive(pgid) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = signal("-KILL");
        Ok(())
    }
}

/// Whether any process of the group still exists (`kill -0 -PGID`).
pub fn group_alive(pgid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_component_gets_its_own_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut logs = ComponentLogs {
            dir: dir.path().join(COMPONENT_LOG_DIR),
            current: None,
        };
        for line in [
            "pipeline starts",
            "INFO:absl:Component CsvExampleGen is running.",
            "reading csv",
            "INFO:absl:Component CsvExampleGen is finished.",
            "between components",
            "INFO:absl:Component Trainer is running.",
            "[trainyard] EPOCH {}",
        ] {
            logs.line(line).await;
        }
        logs.close().await;
        let read = |n: &str| std::fs::read_to_string(dir.path().join("logs").join(n)).unwrap();
        assert_eq!(
            read("CsvExampleGen.log"),
            "INFO:absl:Component CsvExampleGen is running.\nreading csv\nINFO:absl:Component CsvExampleGen is finished.\n"
        );
        assert_eq!(
            read("Trainer.log"),
            "INFO:absl:Component Trainer is running.\n[trainyard] EPOCH {}\n"
        );
    }

    #[test]
    fn lines_become_events() {
        let started = parse_line("INFO:absl:Component CsvExampleGen is running.");
        assert!(matches!(
            started,
            Some(LineEvent::Pipeline(PipelineEvent::StageStarted {
                stage: StageName::Examples
            }))
        ));
        let done =
            parse_line("I1127 16:00:00 local_dag_runner.py:110] Component Evaluator is finished.");
        assert!(matches!(
            done,
            Some(LineEvent::Pipeline(PipelineEvent::StageCompleted {
                stage: StageName::Evaluate
            }))
        ));
        let epoch = parse_line(
            r#"[trainyard] EPOCH {"epoch": 1, "metrics": {"loss": 2.5, "recall_at_100": 0.2}}"#,
        );
        let Some(LineEvent::Pipeline(PipelineEvent::EpochCompleted { epoch, metrics })) = epoch
        else {
            panic!()
        };
        assert_eq!(
            (epoch, metrics["loss"], metrics["recall_at_100"]),
            (1, 2.5, 0.2)
        );
        assert!(matches!(
            parse_line(r#"[trainyard] BLESSING {"blessed": false}"#),
            Some(LineEvent::Blessed(false))
        ));
        assert!(parse_line("Component Unknown is running.").is_none());
        assert_eq!(
            component_name("INFO:absl:Component Trainer is running.", " is running."),
            Some("Trainer")
        );
        assert_eq!(
            component_name("the Component we like is running.", " is running."),
            None
        );
        assert!(parse_line("[trainyard] EPOCH {broken").is_none());
    }
}
