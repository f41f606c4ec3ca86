//! The local pipeline runner: runs a compiled local TFX pipeline (pipeline.py + modules) with
//! the managed env's Python as a detached process group, and turns what it prints into
//! [`PipelineEvent`]s: TFX's "Component X is running/finished." lines become stages, the
//! trainer's `[trainyard] EPOCH {...}` lines epochs, the evaluator's `[trainyard] BLESSING`
//! line the verdict; the exit status completes or fails the run.
//!
//! A run outlives the process that started it. Everything about it is on disk under its
//! pipeline root, so any process (a restarted server, a CLI following the run) can poll or
//! cancel it from its [`PipelineHandle`] alone (`job_name` is the root):
//!
//! - `pipeline.log` ([`PIPELINE_LOG_FILE`]): the pipeline's stdout and stderr, written straight
//!   to the file by the child (no pipe to a launcher that may die);
//! - `runner.json` ([`RUNNER_STATE_FILE`]): the job id, the pid/pgid of the group leader and
//!   its start time in `/proc/<pid>/stat` (a reused pid is not mistaken for the run);
//! - `runner.exit` ([`RUNNER_EXIT_FILE`]): the pipeline's exit status, written atomically by
//!   the wrapper shell when the pipeline exits (absent when the whole group was killed);
//! - `runner.cancel` ([`RUNNER_CANCEL_FILE`]): the job id of a cancelled job;
//! - `runner.lock`: serialises submits of one root across processes;
//! - `tmp/` ([`RUNNER_TMP_DIR`]): the pipeline's TMPDIR; when the run is concluded or
//!   cancelled it is renamed to `.tmp-discarded-<pid>-<n>` and deleted in the background;
//! - `logs/<Component>.log` ([`COMPONENT_LOG_DIR`]): per-component logs, derived from the log
//!   (cleared by an instance that replays from the start, rewritten from the whole log when
//!   the run is concluded);
//! - `modules/`: the submitted files (`pipeline.py` and the generated modules).
//!
//! The leader is `sh -c` in a session of its own (setsid): a terminal's SIGINT/SIGHUP and the
//! launcher's death do not reach it. Cancel signals the whole group.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
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
/// How long to wait for a SIGKILLed group to disappear.
const KILL_WAIT: Duration = Duration::from_secs(2);
/// Folder, under the pipeline root, of the per-component logs (`<Component>.log`): the lines
/// between TFX's "Component X is running." and "Component X is finished.".
pub const COMPONENT_LOG_DIR: &str = "logs";
/// The whole pipeline's output, under the pipeline root.
pub const PIPELINE_LOG_FILE: &str = "pipeline.log";
/// The runner's record of a started job ([`RunnerState`], JSON), under the pipeline root.
pub const RUNNER_STATE_FILE: &str = "runner.json";
/// The pipeline's exit status (a decimal integer and a newline), under the pipeline root.
pub const RUNNER_EXIT_FILE: &str = "runner.exit";
/// Present (holding the job id) once a job was cancelled, under the pipeline root.
pub const RUNNER_CANCEL_FILE: &str = "runner.cancel";
/// Locked (flock) while a submit of the root decides whether to start a process.
const RUNNER_LOCK_FILE: &str = "runner.lock";
/// The pipeline's TMPDIR, under the pipeline root (TFX packs user code into temp folders).
pub const RUNNER_TMP_DIR: &str = "tmp";
/// Where TFX's Pusher writes `<version>/saved_model.pb`, under the pipeline root.
const PUSHED_MODEL_DIR: &str = "pushed_model";
/// How the error of a run whose process group vanished without an exit status starts.
pub const RUNNER_LOST: &str = "runner lost";

/// What `runner.json` records about a started job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerState {
    /// The handle's job id (`local-<run id>-<millis>`).
    pub job_id: String,
    /// The group leader (the wrapper shell).
    pub pid: u32,
    /// Its process group (and session): equal to `pid`.
    pub pgid: u32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks after boot): tells the leader from a later
    /// process that reuses its pid.
    pub start_time: u64,
    pub started_at: DateTime<Utc>,
}

impl RunnerState {
    /// The state recorded under a pipeline root, if any (an unreadable file counts as none).
    pub fn read(root: &Path) -> Option<RunnerState> {
        let text = std::fs::read_to_string(root.join(RUNNER_STATE_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// What one instance has read of one job's log.
struct Cursor {
    /// Bytes of the log consumed so far.
    offset: u64,
    tail: VecDeque<String>,
    blessed: Option<bool>,
    stage: Option<StageName>,
    components: ComponentLogs,
    /// The terminal event was given (or the job was cancelled): polls return nothing.
    done: bool,
    /// Nothing was read yet: the first read clears the component logs it will rewrite.
    fresh: bool,
}

/// Runs local pipelines; one detached process group per run.
pub struct LocalRunner {
    python: PathBuf,
    cancel_grace: Duration,
    cursors: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Cursor>>>>,
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

/// The first JSON value of `text`, ignoring whatever follows it on the line.
fn first_json(text: &str) -> Option<serde_json::Value> {
    serde_json::Deserializer::from_str(text.trim_start())
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()
}

/// What one output line means.
fn parse_line(line: &str) -> Option<LineEvent> {
    if let Some(rest) = line.split("[trainyard] EPOCH ").nth(1) {
        let v = first_json(rest)?;
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
        let v = first_json(rest)?;
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

/// The per-component logs that [`ComponentLogs`] writes from a whole log, by component.
fn component_logs_of(log: &str) -> BTreeMap<String, String> {
    let mut logs: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in log.lines() {
        if let Some(name) = component_name(line, " is running.") {
            current = Some(name.to_string());
        }
        if let Some(name) = &current {
            let text = logs.entry(name.clone()).or_default();
            text.push_str(line);
            text.push('\n');
        }
        if component_name(line, " is finished.").is_some() {
            current = None;
        }
    }
    logs
}

/// Rewrites every component log from the whole pipeline log (each file atomically), so they
/// are exact whatever several pollers appended while the run went on.
fn rewrite_component_logs(root: &Path) {
    let Ok(bytes) = std::fs::read(root.join(PIPELINE_LOG_FILE)) else {
        return;
    };
    let dir = root.join(COMPONENT_LOG_DIR);
    let logs = component_logs_of(&String::from_utf8_lossy(&bytes));
    if logs.is_empty() {
        return;
    }
    let _ = std::fs::create_dir_all(&dir);
    for (name, text) in logs {
        let _ = write_atomic(&dir.join(format!("{name}.log")), text.as_bytes());
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

/// Whether the Pusher left a model: a numeric version folder with a saved_model.pb.
fn has_pushed_model(root: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(root.join(PUSHED_MODEL_DIR)) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name().to_string_lossy().parse::<u64>().is_ok()
            && e.path().join("saved_model.pb").is_file()
    })
}

/// Writes `path` through a temporary file and a rename, so readers see all of it or nothing.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Prefix, under the pipeline root, of a TMPDIR set aside for deletion.
const DISCARDED_TMP_PREFIX: &str = ".tmp-discarded-";

/// Removes the run's TMPDIR without holding up the caller: it is renamed away at once and
/// deleted by a background thread (TFX leaves many files there: deleting them took 37 s on a
/// loaded machine). Leftovers of a process that exited before its thread was done go too.
fn discard_tmp(root: &Path) {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let trash = root.join(format!(
        "{DISCARDED_TMP_PREFIX}{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::rename(root.join(RUNNER_TMP_DIR), &trash);
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let doomed: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(DISCARDED_TMP_PREFIX)
        })
        .map(|e| e.path())
        .collect();
    if !doomed.is_empty() {
        std::thread::spawn(move || {
            for dir in doomed {
                let _ = std::fs::remove_dir_all(dir);
            }
        });
    }
}

// ---- processes -------------------------------------------------------------------------

/// The fields of `/proc/<pid>/stat` the runner needs.
struct ProcStat {
    state: char,
    pgrp: u32,
    start_time: u64,
}

impl ProcStat {
    /// Running or sleeping, not a zombie waiting to be reaped.
    fn live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // the command name is in parentheses and may hold spaces: fields follow the last ')'
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The live (non-zombie) processes of group `pgid`, with their start times; `None` where
/// `/proc` cannot be read.
fn group_members(pgid: u32) -> Option<Vec<(u32, u64)>> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some(stat) = proc_stat(pid) {
            if stat.pgrp == pgid && stat.live() {
                members.push((pid, stat.start_time));
            }
        }
    }
    Some(members)
}

/// `kill(-pgid, sig)`; never for the groups 0 and 1 (ours and init's).
fn signal_group(pgid: u32, sig: libc::c_int) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(-pgid, sig) == 0 }
}

/// Whether any process of the group still exists (zombies waiting to be reaped do not count).
pub fn group_alive(pgid: u32) -> bool {
    if pgid <= 1 {
        return false;
    }
    match group_members(pgid) {
        Some(members) => !members.is_empty(),
        None => {
            signal_group(pgid, 0)
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
    }
}

/// Whether the job's wrapper shell (the group leader) is running.
fn leader_alive(state: &RunnerState) -> bool {
    proc_stat(state.pid).is_some_and(|s| s.live() && s.start_time == state.start_time)
}

/// The live processes of the job's group. A group whose leader pid now belongs to a later
/// process is another group: none of ours is left (a pgid is not reused while any member of
/// its group lives).
fn job_members(state: &RunnerState) -> Vec<u32> {
    if proc_stat(state.pgid).is_some_and(|s| s.live() && s.start_time != state.start_time) {
        return Vec::new();
    }
    match group_members(state.pgid) {
        Some(m) => m
            .into_iter()
            .filter(|(_, started)| *started >= state.start_time)
            .map(|(pid, _)| pid)
            .collect(),
        None if group_alive(state.pgid) => vec![state.pgid],
        None => Vec::new(),
    }
}

/// Waits until none of the job's processes is left, up to `limit`; whether none is.
async fn wait_gone(state: &RunnerState, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if job_members(state).is_empty() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGKILLs what is left of the job's group and waits for it to go.
async fn kill_group(state: &RunnerState) {
    if !job_members(state).is_empty() {
        signal_group(state.pgid, libc::SIGKILL);
        if !wait_gone(state, KILL_WAIT).await {
            tracing::warn!(pgid = state.pgid, "processes of a killed pipeline are left");
        }
    }
}

/// The exit status the wrapper recorded: `None` without a file, `Some(Err)` for an
/// unreadable one.
fn read_exit(root: &Path) -> Option<std::result::Result<i32, String>> {
    let text = std::fs::read_to_string(root.join(RUNNER_EXIT_FILE)).ok()?;
    Some(
        text.trim()
            .parse()
            .map_err(|_| format!("unreadable exit status {:?}", text.trim())),
    )
}

fn cancelled(root: &Path, job_id: &str) -> bool {
    std::fs::read_to_string(root.join(RUNNER_CANCEL_FILE)).is_ok_and(|t| t.trim() == job_id)
}

/// Whether a recorded job still owns its root: running (leader or orphans alive), finished
/// (exit status) or cancelled. A job that is none of these was lost before anything was
/// recorded about its end, and a new submit may start over.
fn still_owned(root: &Path, state: &RunnerState) -> bool {
    leader_alive(state)
        || root.join(RUNNER_EXIT_FILE).exists()
        || cancelled(root, &state.job_id)
        || !job_members(state).is_empty()
}

/// The wrapper: runs the pipeline, then records its exit status atomically in the root (cwd).
fn wrapper_script() -> String {
    format!(
        "\"$1\" \"$2\"\ns=$?\nprintf '%s\\n' \"$s\" > {RUNNER_EXIT_FILE}.tmp && mv -f {RUNNER_EXIT_FILE}.tmp {RUNNER_EXIT_FILE}\nexit \"$s\"\n"
    )
}

/// Whether `program` names an executable file (directly or on PATH).
fn executable(program: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 {
        return is_exe(program);
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| is_exe(&dir.join(program))))
}

/// Holds an exclusive flock on a file until dropped.
struct FileLock(#[allow(dead_code)] std::fs::File);

impl FileLock {
    fn acquire(path: &Path) -> std::io::Result<FileLock> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        loop {
            // SAFETY: flock(2) on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(FileLock(file));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

fn handle(sub: &PipelineSubmission, job_id: String) -> PipelineHandle {
    PipelineHandle {
        job_name: sub.pipeline_root.clone(),
        job_id,
    }
}

/// Starts the pipeline of `sub` unless its root already holds a job that owns it.
fn submit_blocking(python: &Path, sub: &PipelineSubmission) -> Result<PipelineHandle> {
    if !sub.files.contains_key(LOCAL_PIPELINE_FILE) {
        return Err(backend(format!(
            "the submission has no {LOCAL_PIPELINE_FILE}"
        )));
    }
    let root = PathBuf::from(&sub.pipeline_root);
    std::fs::create_dir_all(&root).map_err(backend)?;
    let _lock = FileLock::acquire(&root.join(RUNNER_LOCK_FILE)).map_err(backend)?;
    if let Some(state) = RunnerState::read(&root) {
        if still_owned(&root, &state) {
            tracing::info!(job = %state.job_id, root = %root.display(), "pipeline already submitted");
            return Ok(handle(sub, state.job_id));
        }
    }
    // A relative interpreter path means the launcher's working directory, not the root's
    // (kept as is otherwise: a venv's python must not be resolved through its symlink).
    let python = if python.is_relative() && python.components().count() > 1 {
        std::env::current_dir().map_err(backend)?.join(python)
    } else {
        python.to_path_buf()
    };
    let python = python.as_path();
    if !executable(python) {
        return Err(backend(format!(
            "cannot start {}: no such executable",
            python.display()
        )));
    }
    // A fresh start: nothing of a lost earlier attempt may be taken for this one's.
    for file in [RUNNER_EXIT_FILE, RUNNER_CANCEL_FILE, RUNNER_STATE_FILE] {
        let _ = std::fs::remove_file(root.join(file));
    }
    let _ = std::fs::remove_dir_all(root.join(COMPONENT_LOG_DIR));
    let root = root.canonicalize().map_err(backend)?;
    let modules = root.join("modules");
    std::fs::create_dir_all(&modules).map_err(backend)?;
    for (name, source) in &sub.files {
        std::fs::write(modules.join(name), source).map_err(backend)?;
    }
    let tmp = root.join(RUNNER_TMP_DIR);
    std::fs::create_dir_all(&tmp).map_err(backend)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(root.join(PIPELINE_LOG_FILE))
        .map_err(backend)?;
    let log_err = log.try_clone().map_err(backend)?;
    let mut command = std::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(wrapper_script())
        .arg("trainyard-pipeline")
        .arg(python)
        .arg(modules.join(LOCAL_PIPELINE_FILE))
        .current_dir(&root)
        .env("TF_USE_LEGACY_KERAS", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            // Its own session and group: no terminal's signals, cancel reaches every child.
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| backend(format!("cannot start {}: {e}", python.display())))?;
    let pid = child.id();
    let state = RunnerState {
        job_id: format!(
            "local-{}-{}",
            sub.run.id,
            chrono::Utc::now().timestamp_millis()
        ),
        pid,
        pgid: pid,
        // read before anything can reap it: a zombie's stat is still there
        start_time: proc_stat(pid).map(|s| s.start_time).unwrap_or(0),
        started_at: Utc::now(),
    };
    // Reaps the wrapper if this process outlives it (else it stays a zombie that looks
    // alive); when this process dies first, init does.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    let written = serde_json::to_vec_pretty(&state)
        .map_err(backend)
        .and_then(|json| write_atomic(&root.join(RUNNER_STATE_FILE), &json).map_err(backend));
    if let Err(e) = written {
        signal_group(state.pgid, libc::SIGKILL);
        return Err(backend(format!("cannot record the started pipeline: {e}")));
    }
    tracing::info!(job = %state.job_id, pid, root = %root.display(), "pipeline started");
    Ok(handle(sub, state.job_id))
}

impl Cursor {
    fn new(root: &Path) -> Cursor {
        Cursor {
            offset: 0,
            tail: VecDeque::new(),
            blessed: None,
            stage: None,
            components: ComponentLogs {
                dir: root.join(COMPONENT_LOG_DIR),
                current: None,
            },
            done: false,
            fresh: true,
        }
    }

    /// Reads the log from the offset: complete lines, or everything when `to_end` (the
    /// process is gone, so a last line without newline is whole).
    async fn read(&mut self, root: &Path, to_end: bool) -> Result<Vec<PipelineEvent>> {
        if std::mem::take(&mut self.fresh) {
            // a replay from the start rewrites the component logs
            let _ = tokio::fs::remove_dir_all(root.join(COMPONENT_LOG_DIR)).await;
        }
        let mut bytes = Vec::new();
        match std::fs::File::open(root.join(PIPELINE_LOG_FILE)) {
            Ok(mut f) => {
                f.seek(SeekFrom::Start(self.offset)).map_err(backend)?;
                f.read_to_end(&mut bytes).map_err(backend)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(backend(e)),
        }
        let used = if to_end {
            bytes.len()
        } else {
            bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
        };
        self.offset += used as u64;
        let chunk = &bytes[..used];
        let mut lines: Vec<&[u8]> = chunk.split(|b| *b == b'\n').collect();
        if chunk.is_empty() || chunk.ends_with(b"\n") {
            lines.pop();
        }
        let mut events = Vec::new();
        for raw in lines {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let line = String::from_utf8_lossy(raw);
            self.components.line(&line).await;
            match parse_line(&line) {
                Some(LineEvent::Pipeline(e)) => {
                    if let PipelineEvent::StageStarted { stage } = &e {
                        self.stage = Some(*stage);
                    }
                    events.push(e);
                }
                Some(LineEvent::Blessed(b)) => self.blessed = Some(b),
                None => {}
            }
            self.tail.push_back(line.into_owned());
            if self.tail.len() > ERROR_TAIL_LINES {
                self.tail.pop_front();
            }
        }
        Ok(events)
    }

    /// Nothing more is reported for this job; only the mark is kept (a server polls many).
    fn finish(&mut self) {
        self.done = true;
        self.tail = VecDeque::new();
        self.components.current = None;
    }

    /// The last lines of output, made fit for API bodies (no escapes, no local paths).
    fn tail(&self) -> String {
        let tail = self.tail.iter().cloned().collect::<Vec<_>>().join("\n");
        trainyard_core::sanitize::child_output(&tail)
    }

    /// The terminal event of a job whose process group is gone, from its exit status (none:
    /// the group was killed) and what the run left.
    fn conclude(
        &self,
        root: &Path,
        state: &RunnerState,
        exit: Option<std::result::Result<i32, String>>,
    ) -> PipelineEvent {
        let completed = |path: PathBuf, blessed: bool| match std::fs::read_to_string(&path)
            .map(|t| serde_json::from_str(&t))
        {
            Ok(Ok(training_metrics)) => PipelineEvent::Completed {
                training_metrics,
                blessed,
                artifacts: BTreeMap::from([
                    ("pipeline_root".to_string(), root.display().to_string()),
                    ("training_metrics".to_string(), path.display().to_string()),
                    (
                        "log".to_string(),
                        root.join(PIPELINE_LOG_FILE).display().to_string(),
                    ),
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
        };
        match exit {
            Some(Ok(0)) => match find_training_metrics(root) {
                Some(path) => completed(path, self.blessed.unwrap_or(false)),
                None => PipelineEvent::Failed {
                    error: "the pipeline finished without training metrics".into(),
                    stage: Some(StageName::Train),
                },
            },
            Some(Ok(code)) => {
                let how = if code > 128 {
                    format!("exit status: {code} (signal {})", code - 128)
                } else {
                    format!("exit status: {code}")
                };
                PipelineEvent::Failed {
                    error: format!("pipeline exited with {how}:\n{}", self.tail()),
                    stage: self.stage,
                }
            }
            Some(Err(unreadable)) => PipelineEvent::Failed {
                error: format!("pipeline ended with an {unreadable}:\n{}", self.tail()),
                stage: self.stage,
            },
            None => match (self.blessed, find_training_metrics(root)) {
                // killed after the model was blessed and pushed: the run did its work
                (Some(blessed), Some(path)) if has_pushed_model(root) => completed(path, blessed),
                _ => PipelineEvent::Failed {
                    error: format!(
                        "{RUNNER_LOST}: the pipeline's process group {} ended without an exit status (killed with its launcher?); last output:\n{}",
                        state.pgid,
                        self.tail()
                    ),
                    stage: self.stage,
                },
            },
        }
    }
}

impl LocalRunner {
    /// `python` is the managed env's interpreter.
    pub fn new(python: impl Into<PathBuf>) -> Self {
        LocalRunner {
            python: python.into(),
            cancel_grace: CANCEL_GRACE,
            cursors: Mutex::new(HashMap::new()),
        }
    }

    /// How long a cancelled pipeline gets between SIGTERM and SIGKILL (default 3 s).
    pub fn with_cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// The process group of a submitted job, from its root's state (tests check it is gone
    /// after cancel).
    pub fn process_group(&self, handle: &PipelineHandle) -> Option<u32> {
        RunnerState::read(Path::new(&handle.job_name))
            .filter(|s| s.job_id == handle.job_id)
            .map(|s| s.pgid)
    }

    fn cursor(&self, handle: &PipelineHandle) -> Result<Arc<tokio::sync::Mutex<Cursor>>> {
        let mut cursors = self
            .cursors
            .lock()
            .map_err(|_| backend("runner state poisoned"))?;
        Ok(cursors
            .entry(handle.job_id.clone())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Cursor::new(Path::new(
                    &handle.job_name,
                ))))
            })
            .clone())
    }
}

/// The job a handle names, from its root.
fn job_state(handle: &PipelineHandle) -> Option<RunnerState> {
    RunnerState::read(Path::new(&handle.job_name)).filter(|s| s.job_id == handle.job_id)
}

#[async_trait]
impl PipelineExecutor for LocalRunner {
    /// Starts the pipeline, detached; idempotent per pipeline root: a root whose job is
    /// running, finished or cancelled gives that job's handle and starts nothing.
    async fn submit(&self, sub: &PipelineSubmission) -> Result<PipelineHandle> {
        let python = self.python.clone();
        let sub = sub.clone();
        tokio::task::spawn_blocking(move || submit_blocking(&python, &sub))
            .await
            .map_err(backend)?
    }

    /// The events of the log lines this instance has not read yet (a new instance replays
    /// from the start); once the process group is gone, the terminal event, then nothing.
    async fn poll(&self, handle: &PipelineHandle) -> Result<Vec<PipelineEvent>> {
        let root = PathBuf::from(&handle.job_name);
        let state =
            job_state(handle).ok_or_else(|| Error::not_found("pipeline job", &handle.job_id))?;
        let cursor = self.cursor(handle)?;
        let mut cursor = cursor.lock().await;
        if cursor.done {
            return Ok(Vec::new());
        }
        if cancelled(&root, &state.job_id) {
            cursor.finish();
            return Ok(Vec::new());
        }
        // Whether it runs is decided before reading: a finished job's output is all written.
        if leader_alive(&state) {
            return cursor.read(&root, false).await;
        }
        // The wrapper is gone; orphans of a killed wrapper must not outlive the conclusion.
        kill_group(&state).await;
        let exit = read_exit(&root);
        let mut events = cursor.read(&root, true).await?;
        cursor.components.close().await;
        if cancelled(&root, &state.job_id) {
            cursor.finish();
            return Ok(Vec::new());
        }
        rewrite_component_logs(&root);
        events.push(cursor.conclude(&root, &state, exit));
        cursor.finish();
        discard_tmp(&root);
        Ok(events)
    }

    /// Records the cancel in the root (so no poller reports an end), SIGTERMs the group,
    /// waits the grace and SIGKILLs what is left. A finished or unknown job is Ok.
    async fn cancel(&self, handle: &PipelineHandle) -> Result<()> {
        let root = PathBuf::from(&handle.job_name);
        if let Ok(cursor) = self.cursor(handle) {
            let mut cursor = cursor.lock().await;
            cursor.components.close().await;
            cursor.finish();
        }
        let Some(state) = job_state(handle) else {
            return Ok(());
        };
        write_atomic(
            &root.join(RUNNER_CANCEL_FILE),
            format!("{}\n", state.job_id).as_bytes(),
        )
        .map_err(backend)?;
        if job_members(&state).is_empty() {
            return Ok(());
        }
        signal_group(state.pgid, libc::SIGTERM);
        if !wait_gone(&state, self.cancel_grace).await {
            kill_group(&state).await;
        }
        discard_tmp(&root);
        Ok(())
    }
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
    fn component_logs_from_a_whole_log_match_the_live_ones() {
        let log = "pipeline starts\nINFO:absl:Component CsvExampleGen is running.\nreading csv\n\
                   INFO:absl:Component CsvExampleGen is finished.\nbetween components\n\
                   INFO:absl:Component Trainer is running.\n[trainyard] EPOCH {}";
        let logs = component_logs_of(log);
        assert_eq!(
            logs.keys().collect::<Vec<_>>(),
            ["CsvExampleGen", "Trainer"]
        );
        assert_eq!(
            logs["CsvExampleGen"],
            "INFO:absl:Component CsvExampleGen is running.\nreading csv\nINFO:absl:Component CsvExampleGen is finished.\n"
        );
        assert_eq!(
            logs["Trainer"],
            "INFO:absl:Component Trainer is running.\n[trainyard] EPOCH {}\n"
        );
    }

    #[test]
    fn a_verdict_or_epoch_glued_to_other_output_still_counts() {
        // stdout and stderr share the log file: another thread's line may follow without a
        // newline in between
        assert!(matches!(
            parse_line(r#"[trainyard] BLESSING {"blessed": true}I1127 evaluator.py:1] done"#),
            Some(LineEvent::Blessed(true))
        ));
        assert!(matches!(
            parse_line(r#"[trainyard] EPOCH {"epoch": 3, "metrics": {}} W1127 warn"#),
            Some(LineEvent::Pipeline(PipelineEvent::EpochCompleted {
                epoch: 3,
                ..
            }))
        ));
    }

    #[test]
    fn own_process_stat_is_read() {
        let me = proc_stat(std::process::id()).unwrap();
        assert!(me.live());
        assert!(me.start_time > 0);
        // a command name with spaces and parentheses does not shift the fields
        let z = parse_stat("42 (a) b (c) Z 1 40 40 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 987654 0")
            .unwrap();
        assert_eq!(
            (z.state, z.pgrp, z.start_time, z.live()),
            ('Z', 40, 987654, false)
        );
        // never our own group or init's
        assert!(!group_alive(0) && !group_alive(1));
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
