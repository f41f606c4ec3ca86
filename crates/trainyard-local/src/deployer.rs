//! The local deployer: each endpoint is a `trainyard-serve` process on 127.0.0.1, started in
//! its own process group so it outlives the command that deployed it. Its state file
//! (`<state_dir>/<service>.json`) is the only record of it; every status question is answered
//! by looking at the process and asking the server, so a restart of the host process
//! re-attaches to endpoints that are still up and reports the others as gone — never a stale
//! "deployed".
//!
//! Endpoints belong to a project identity ([`project_identity`]): a random id kept in the
//! project and bound to its directory, recorded in each state file and on the server's command
//! line. A copy of the project (a backup) gets an identity of its own, so the state files it
//! copied never let it stop or report the original's servers.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use trainyard_core::deployment::validate_service_name;
use trainyard_core::ports::{DeployRequest, Deployer};
use trainyard_core::{Error, Result, ValidationError};

/// The model name every endpoint serves under: `POST /v1/models/recommender:predict`.
pub const SERVED_MODEL_NAME: &str = "recommender";

/// What the deployer remembers about a running endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalEndpointState {
    pub service_name: String,
    /// The identity of the project that started the server (empty in states written before
    /// identities existed).
    #[serde(default)]
    pub project_id: String,
    pub pid: u32,
    pub url: String,
    pub model_path: String,
    pub log: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// What `trainyard-serve --ready-file` writes once it is listening.
#[derive(Debug, Deserialize)]
struct ReadyFile {
    url: String,
    pid: u32,
}

#[derive(Debug, Clone)]
pub struct LocalDeployer {
    state_dir: PathBuf,
    project_id: String,
    serve_bin: PathBuf,
    env: Vec<(String, String)>,
    ready_timeout: Duration,
}

impl LocalDeployer {
    /// A deployer recording endpoints in `state_dir` (made absolute), with no project identity:
    /// it controls only servers whose command line names its own state dir.
    pub fn new(state_dir: impl Into<PathBuf>, serve_bin: impl Into<PathBuf>) -> Self {
        let state_dir = state_dir.into();
        LocalDeployer {
            state_dir: std::path::absolute(&state_dir).unwrap_or(state_dir),
            project_id: String::new(),
            serve_bin: serve_bin.into(),
            env: Vec::new(),
            ready_timeout: Duration::from_secs(180),
        }
    }

    /// The deployer of the project at `project_dir`: state under
    /// `<project>/.trainyard/endpoints`, servers owned by the project's identity.
    pub fn for_project(project_dir: &Path, serve_bin: impl Into<PathBuf>) -> Result<Self> {
        let id = project_identity(project_dir)?;
        Ok(
            LocalDeployer::new(project_dir.join(".trainyard").join("endpoints"), serve_bin)
                .with_project_id(id),
        )
    }

    /// Servers started by this deployer carry `id`; only states and processes with it are
    /// controlled.
    pub fn with_project_id(mut self, id: impl Into<String>) -> Self {
        self.project_id = id.into();
        self
    }

    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// Environment for the server processes (e.g. where TensorFlow is).
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn with_ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// `trainyard-serve` next to the running executable (cargo puts test binaries one level
    /// deeper, in deps/), else the one on PATH.
    pub fn default_serve_bin() -> PathBuf {
        if let Ok(p) = std::env::var("TRAINYARD_SERVE_BIN") {
            return PathBuf::from(p);
        }
        if let Ok(exe) = std::env::current_exe() {
            for dir in exe.ancestors().skip(1).take(2) {
                let candidate = dir.join("trainyard-serve");
                if candidate.is_file() {
                    return candidate;
                }
            }
        }
        PathBuf::from("trainyard-serve")
    }

    fn state_path(&self, service: &str) -> PathBuf {
        self.state_dir.join(format!("{service}.json"))
    }

    /// The recorded state of an endpoint, if it has one.
    pub fn state(&self, service: &str) -> Result<Option<LocalEndpointState>> {
        let path = self.state_path(service);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::Backend(format!("{} is unreadable: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Backend(format!("{}: {e}", path.display()))),
        }
    }

    /// The ready file of a service: its path is on the server's command line, and names the
    /// project identity, so the process says whose it is.
    fn ready_path(&self, service: &str) -> PathBuf {
        if self.project_id.is_empty() {
            self.state_dir.join(format!("{service}.ready.json"))
        } else {
            self.state_dir
                .join(format!("{service}.{}.ready.json", self.project_id))
        }
    }

    /// Whether a recorded state is this project's (a copied state file is not).
    fn owns(&self, state: &LocalEndpointState) -> bool {
        state.project_id == self.project_id
    }

    /// Whether `state`'s process is alive and is the server this deployer started for it.
    fn is_running(&self, state: &LocalEndpointState) -> bool {
        let ready = self.ready_path(&state.service_name);
        self.owns(state) && is_our_server(state.pid, &ready.display().to_string())
    }

    async fn stop(&self, state: &LocalEndpointState) {
        if !self.is_running(state) {
            return;
        }
        let _ = signal(state.pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.is_running(state) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if self.is_running(state) {
            let _ = signal(state.pid, "KILL");
        }
    }

    async fn start(&self, request: &DeployRequest, port: u16) -> Result<LocalEndpointState> {
        let service = &request.service_name;
        let ready = self.ready_path(service);
        let log_path = self.state_dir.join(format!("{service}.log"));
        let _ = std::fs::remove_file(&ready);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::Backend(format!("{}: {e}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| Error::Backend(format!("{}: {e}", log_path.display())))?;
        let mut cmd = tokio::process::Command::new(&self.serve_bin);
        cmd.arg("--model")
            .arg(&request.model_path)
            .args(["--name", SERVED_MODEL_NAME, "--host", "127.0.0.1"])
            .arg("--port")
            .arg(port.to_string())
            .arg("--ready-file")
            .arg(&ready)
            .args(
                request
                    .labels
                    .iter()
                    .flat_map(|(label, v)| ["--version-label".to_string(), format!("{label}={v}")]),
            )
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            // Its own group: a Ctrl-C of the deploying command does not reach the server.
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd.spawn().map_err(|e| {
            Error::Backend(format!(
                "cannot start {} (set TRAINYARD_SERVE_BIN or build it with `cargo build -p trainyard-serve`): {e}",
                self.serve_bin.display()
            ))
        })?;
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                if let Ok(r) = serde_json::from_str::<ReadyFile>(&text) {
                    // Reap the server when it exits while this process lives (no zombie).
                    tokio::spawn(async move {
                        let _ = child.wait().await;
                    });
                    return Ok(LocalEndpointState {
                        service_name: service.clone(),
                        project_id: self.project_id.clone(),
                        pid: r.pid,
                        url: r.url,
                        model_path: request.model_path.clone(),
                        log: log_path.display().to_string(),
                        started_at: chrono::Utc::now(),
                    });
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::Backend(format!(
                    "trainyard-serve for {service} exited with {status} before it was ready:\n{}",
                    tail(&log_path, 15)
                )));
            }
            if Instant::now() > deadline {
                let _ = child.start_kill();
                return Err(Error::Backend(format!(
                    "trainyard-serve for {service} was not ready within {:?}:\n{}",
                    self.ready_timeout,
                    tail(&log_path, 15)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[async_trait]
impl Deployer for LocalDeployer {
    /// Starts the endpoint's server, replacing the one it had (on the same port when that
    /// port is free again, so clients keep their URL).
    async fn deploy(&self, request: &DeployRequest) -> Result<String> {
        validate_service_name(&request.service_name).map_err(|e| {
            Error::Validation(ValidationError::field("service_name", e.to_string()))
        })?;
        std::fs::create_dir_all(&self.state_dir)
            .map_err(|e| Error::Backend(format!("{}: {e}", self.state_dir.display())))?;
        verify_registered(&request.model_path).await?;
        let previous = self.state(&request.service_name)?;
        let mut port = 0;
        // Only this project's server is replaced (and its port reused); a state copied from
        // another project is left alone with its server.
        if let Some(old) = previous.as_ref().filter(|s| self.owns(s)) {
            self.stop(old).await;
            port = port_of(&old.url).unwrap_or(0);
        }
        let state = match self.start(request, port).await {
            Ok(s) => s,
            // The old port was taken meanwhile: any free one.
            Err(_) if port != 0 => self.start(request, 0).await?,
            Err(e) => return Err(e),
        };
        let text =
            serde_json::to_string_pretty(&state).map_err(|e| Error::Backend(e.to_string()))?;
        let path = self.state_path(&request.service_name);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::Backend(format!("{}: {e}", path.display())))?;
        Ok(state.url)
    }

    /// Stops this project's server of the endpoint and forgets it. A state file copied from
    /// another project is forgotten without touching that project's server.
    async fn undeploy(&self, service_name: &str) -> Result<()> {
        if let Some(state) = self.state(service_name)? {
            if self.owns(&state) {
                self.stop(&state).await;
            } else {
                tracing::warn!(
                    service = service_name,
                    pid = state.pid,
                    "endpoint state belongs to another project (a copy?): its server is left alone"
                );
            }
            let _ = std::fs::remove_file(self.state_path(service_name));
            let _ = std::fs::remove_file(self.ready_path(service_name));
        }
        Ok(())
    }

    /// Serving = the recorded process is our server and it answers its health check. A
    /// process that is up but does not answer is an error (shown as "unknown"), not a yes.
    async fn is_serving(&self, service_name: &str) -> Result<bool> {
        let Some(state) = self.state(service_name)? else {
            return Ok(false);
        };
        if !self.is_running(&state) {
            return Ok(false);
        }
        match http_get_status(&state.url, &format!("/v1/models/{SERVED_MODEL_NAME}")).await {
            Ok(200) => Ok(true),
            Ok(code) => Err(Error::Backend(format!(
                "endpoint {service_name} answers its health check with HTTP {code}"
            ))),
            Err(e) => Err(Error::Backend(format!(
                "endpoint {service_name} (pid {}) does not answer at {}: {e}",
                state.pid, state.url
            ))),
        }
    }

    /// Loads the model's signature with `trainyard-serve inspect`; a retrieval model whose
    /// `product_ids` are not strings (vocabulary indices) is refused.
    async fn check_model(&self, model_path: &str) -> Result<()> {
        verify_registered(model_path).await?;
        let out = tokio::process::Command::new(&self.serve_bin)
            .args(["inspect", "--check", "--model", model_path])
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| {
                Error::Backend(format!(
                    "cannot run {} inspect: {e}",
                    self.serve_bin.display()
                ))
            })?;
        if out.status.code() == Some(SERVE_EXIT_SETUP) {
            // No TensorFlow here (or one that does not load): this machine's setup, not the
            // model, so not bad input.
            let msg = String::from_utf8_lossy(&out.stderr);
            let reason = failure_reason(&msg);
            return Err(Error::Backend(format!(
                "cannot check {model_path} for serving here: {}",
                trainyard_core::sanitize::child_output(
                    reason.strip_prefix("error: ").unwrap_or(reason)
                )
            )));
        }
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            return Err(Error::Validation(ValidationError::field(
                "model",
                format!(
                    "{model_path} cannot be served: {}",
                    trainyard_core::sanitize::child_output(failure_reason(&msg))
                ),
            )));
        }
        let signature: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            Error::Backend(format!("trainyard-serve inspect printed no signature: {e}"))
        })?;
        check_product_ids_are_strings(&signature)
            .map_err(|reason| Error::Validation(ValidationError::field("model", reason)))
    }
}

/// trainyard-serve's exit code for a failed TensorFlow setup (`trainyard_serve::error::EXIT_SETUP`).
const SERVE_EXIT_SETUP: i32 = 3;

/// Why `trainyard-serve` failed, from its stderr: from its last `error:` line on (its log lines
/// come first and would hide the reason in a one-line message), else all of it.
fn failure_reason(stderr: &str) -> &str {
    let text = stderr.trim();
    match text.rfind("\nerror: ") {
        Some(at) => &text[at + 1..],
        None => text,
    }
}

/// The signature check on `inspect`'s JSON: wherever an output named `product_ids` appears,
/// its dtype must be a string type.
pub fn check_product_ids_are_strings(signature: &serde_json::Value) -> Result<(), String> {
    fn find<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map {
                    if k == "product_ids" {
                        out.push(child);
                    }
                    find(child, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| find(i, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    find(signature, &mut found);
    for info in found {
        let dtype = info
            .get("dtype")
            .and_then(|d| d.as_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !dtype.is_empty() && !dtype.contains("string") {
            return Err(format!(
                "the serving signature returns product_ids as {dtype}, not strings: it would answer with vocabulary indices instead of product ids; regenerate the trainer so serving maps indices back to ids"
            ));
        }
    }
    Ok(())
}

fn port_of(url: &str) -> Option<u16> {
    url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
}

/// A registered version (a folder with MANIFEST.json) must match its checksums to be served.
async fn verify_registered(model_path: &str) -> Result<()> {
    let path = PathBuf::from(model_path);
    tokio::task::spawn_blocking(move || crate::LocalModelRegistry::verify_if_registered(&path))
        .await
        .map_err(|e| Error::Backend(format!("verify task failed: {e}")))?
}

/// The identity of the project at `project_dir`: a random id kept in
/// `<project>/.trainyard/project-id.json` with the device and inode of the directory it was
/// made for. A copy of the project (another directory, so another inode) makes itself a new id
/// the first time it is opened; a project moved within its filesystem keeps its id.
pub fn project_identity(project_dir: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    #[derive(Serialize, Deserialize)]
    struct Identity {
        id: String,
        dev: u64,
        ino: u64,
    }
    let meta = std::fs::metadata(project_dir)
        .map_err(|e| Error::Backend(format!("{}: {e}", project_dir.display())))?;
    let (dev, ino) = (meta.dev(), meta.ino());
    let path = project_dir.join(".trainyard").join("project-id.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(found) = serde_json::from_str::<Identity>(&text) {
            if found.dev == dev && found.ino == ino && !found.id.is_empty() {
                return Ok(found.id);
            }
        }
    }
    let id = random_id();
    let text = serde_json::to_string_pretty(&Identity {
        id: id.clone(),
        dev,
        ino,
    })
    .map_err(|e| Error::Backend(e.to_string()))?;
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(path.parent().expect("a parent"))?;
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)
    };
    match write() {
        Ok(()) => Ok(id),
        // A read-only project: an id that still tells this directory from its copies.
        Err(e) => {
            tracing::debug!(error = %e, "cannot record the project id; using the directory's");
            Ok(format!("dir-{dev:x}-{ino:x}"))
        }
    }
}

/// 128 random bits as hex (from the kernel; time and pid when that fails).
fn random_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let from_kernel = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !from_kernel {
        use sha2::Digest;
        let seed = format!(
            "{:?}{}{:?}",
            std::time::SystemTime::now(),
            std::process::id(),
            std::thread::current().id()
        );
        bytes.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes())[..16]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `pid` is a live (not zombie) trainyard-serve process whose command line holds
/// `marker` (the ready file path that names its state dir and project).
fn is_our_server(pid: u32, marker: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state letter follows the parenthesised command name.
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().next());
    if matches!(state, Some("Z") | Some("X") | None) {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let cmdline = String::from_utf8_lossy(&c);
            cmdline.contains("trainyard-serve") && cmdline.contains(marker)
        })
        .unwrap_or(false)
}

fn signal(pid: u32, sig: &str) -> std::io::Result<std::process::ExitStatus> {
    std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
}

/// The last `lines` of a server log, fit for an error message (no escapes, no local paths).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    trainyard_core::sanitize::child_output(&all[all.len().saturating_sub(lines)..].join("\n"))
}

/// A minimal HTTP/1.1 GET returning the status code (health checks on 127.0.0.1 only).
async fn http_get_status(base: &str, path: &str) -> std::io::Result<u16> {
    let hostport = base
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other(format!("not an http URL: {base}")))?
        .trim_end_matches('/');
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect(hostport).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        let head = String::from_utf8_lossy(&buf[..buf.len().min(64)]).to_string();
        head.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {head:?}")))
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| std::io::Error::other("timed out after 5 s"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn product_ids_must_be_strings() {
        let good = json!({"outputs": {"product_ids": {"dtype": "DT_STRING", "shape": [-1, 100]},
                                      "scores": {"dtype": "DT_FLOAT"}}});
        assert!(check_product_ids_are_strings(&good).is_ok());
        let bad = json!({"outputs": {"product_ids": {"dtype": "DT_INT64"}}});
        let err = check_product_ids_are_strings(&bad).unwrap_err();
        assert!(err.contains("vocabulary indices"), "{err}");
        let bad32 = json!({"signature": [{"outputs": {"product_ids": {"dtype": "int32"}}}]});
        assert!(check_product_ids_are_strings(&bad32).is_err());
    }

    #[test]
    fn ports_come_from_urls() {
        assert_eq!(port_of("http://127.0.0.1:8501"), Some(8501));
        assert_eq!(port_of("http://127.0.0.1:8501/"), Some(8501));
        assert_eq!(port_of("garbage"), None);
    }

    #[tokio::test]
    async fn an_endpoint_without_a_live_server_is_not_serving() {
        let tmp = tempfile::tempdir().unwrap();
        let d = LocalDeployer::new(tmp.path(), "/nonexistent/trainyard-serve");
        assert!(!d.is_serving("recs-serving").await.unwrap());
        // A state file left behind by a server that died (pid of a finished process).
        let dead = std::process::Command::new("true").spawn().unwrap();
        let pid = dead.id();
        let mut dead = dead;
        dead.wait().unwrap();
        let state = LocalEndpointState {
            service_name: "recs-serving".into(),
            project_id: String::new(),
            pid,
            url: "http://127.0.0.1:1".into(),
            model_path: "/m".into(),
            log: "/l".into(),
            started_at: chrono::Utc::now(),
        };
        std::fs::write(
            tmp.path().join("recs-serving.json"),
            serde_json::to_string(&state).unwrap(),
        )
        .unwrap();
        assert!(!d.is_serving("recs-serving").await.unwrap());
        // Undeploy of a dead endpoint cleans up; of an unknown one is a no-op.
        d.undeploy("recs-serving").await.unwrap();
        assert!(d.state("recs-serving").unwrap().is_none());
        d.undeploy("never-deployed").await.unwrap();
        let err = d
            .deploy(&DeployRequest {
                service_name: "recs-serving".into(),
                model_path: "/m".into(),
                image: String::new(),
                config: Default::default(),
                labels: Default::default(),
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("TRAINYARD_SERVE_BIN"), "{err}");
        let bad = d
            .deploy(&DeployRequest {
                service_name: "Bad_Name".into(),
                model_path: "/m".into(),
                image: String::new(),
                config: Default::default(),
                labels: Default::default(),
            })
            .await
            .unwrap_err();
        assert!(matches!(bad, Error::Validation(_)), "{bad:?}");
    }

    /// A stand-in for trainyard-serve: writes its ready file and idles until signalled.
    fn fake_serve_bin(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        let bin = dir.join("trainyard-serve");
        std::fs::write(
            &bin,
            r#"#!/bin/sh
ready=""
while [ $# -gt 0 ]; do
  if [ "$1" = "--ready-file" ]; then ready="$2"; fi
  shift
done
printf '{"url": "http://127.0.0.1:9", "pid": %s}' "$$" > "$ready.tmp"
mv "$ready.tmp" "$ready"
while :; do sleep 0.1; done
"#,
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    /// A stand-in for trainyard-serve that fails as it does, with `code` and an error line.
    fn failing_serve_bin(dir: &Path, code: i32, line: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        let bin = dir.join(format!("trainyard-serve-{code}"));
        std::fs::write(
            &bin,
            format!("#!/bin/sh\necho 'some log line' >&2\necho '{line}' >&2\nexit {code}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    #[tokio::test]
    async fn missing_tensorflow_is_a_setup_failure_and_a_bad_model_is_bad_input() {
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model");
        std::fs::create_dir_all(&model).unwrap();
        let path = model.display().to_string();
        let no_tf = failing_serve_bin(
            &tmp.path().join("bin"),
            SERVE_EXIT_SETUP,
            "error: TensorFlow C library not found: set TRAINYARD_PYTHON",
        );
        let d = LocalDeployer::for_project(tmp.path(), &no_tf).unwrap();
        let err = d.check_model(&path).await.unwrap_err();
        assert!(
            matches!(&err, Error::Backend(m) if m.contains("TensorFlow C library not found")
                && !m.contains("some log line")),
            "{err:?}"
        );
        let refused = failing_serve_bin(
            &tmp.path().join("bin"),
            1,
            "error: model refused: product_ids are int64",
        );
        let d = LocalDeployer::for_project(tmp.path(), &refused).unwrap();
        let err = d.check_model(&path).await.unwrap_err();
        assert!(
            matches!(&err, Error::Validation(v) if v.field == "model" && v.reason.contains("model refused")),
            "{err:?}"
        );
    }

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                let state = s
                    .rsplit(')')
                    .next()
                    .and_then(|s| s.split_whitespace().next());
                !matches!(state, Some("Z") | Some("X") | None)
            })
            .unwrap_or(false)
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }

    fn request(service: &str) -> DeployRequest {
        DeployRequest {
            service_name: service.into(),
            model_path: "/models/recs".into(),
            image: String::new(),
            config: Default::default(),
            labels: [("production".to_string(), 3)].into(),
        }
    }

    /// Kills the fake servers a test started, even when it fails half-way.
    struct KillOnDrop(Vec<u32>);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            for pid in self
                .0
                .iter()
                .filter(|p| is_our_server(**p, "trainyard-serve"))
            {
                let _ = signal(*pid, "KILL");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_copy_of_the_project_never_controls_the_originals_server() {
        let mut started = KillOnDrop(Vec::new());
        let tmp = tempfile::tempdir().unwrap();
        let bin = fake_serve_bin(&tmp.path().join("bin"));
        let project = tmp.path().join("project");
        std::fs::create_dir_all(&project).unwrap();
        let original = LocalDeployer::for_project(&project, &bin)
            .unwrap()
            .with_ready_timeout(Duration::from_secs(20));
        assert_eq!(original.project_id().len(), 32);
        // the same project opened again keeps its identity
        assert_eq!(project_identity(&project).unwrap(), original.project_id());
        original.deploy(&request("recs-serving")).await.unwrap();
        let state = original.state("recs-serving").unwrap().unwrap();
        started.0.push(state.pid);
        // the model's aliases reach the server as version labels
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", state.pid)).unwrap();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        assert!(
            args.windows(2)
                .any(|w| w == [&b"--version-label"[..], &b"production=3"[..]]),
            "{:?}",
            String::from_utf8_lossy(&cmdline)
        );
        assert_eq!(state.project_id, original.project_id());
        assert!(alive(state.pid));
        assert!(original.is_running(&state));

        // a backup: the copied state file names the original's server
        let backup = tmp.path().join("backup");
        copy_dir(&project, &backup);
        let copy = LocalDeployer::for_project(&backup, &bin)
            .unwrap()
            .with_ready_timeout(Duration::from_secs(20));
        assert_ne!(copy.project_id(), original.project_id());
        assert_eq!(copy.state("recs-serving").unwrap().unwrap().pid, state.pid);
        assert!(!copy.is_serving("recs-serving").await.unwrap());
        // deploying in the copy starts the copy's own server, leaving the original's running
        copy.deploy(&request("recs-serving")).await.unwrap();
        let copy_state = copy.state("recs-serving").unwrap().unwrap();
        started.0.push(copy_state.pid);
        assert_ne!(copy_state.pid, state.pid);
        // undeploy in the copy stops only the copy's server
        copy.undeploy("recs-serving").await.unwrap();
        assert!(copy.state("recs-serving").unwrap().is_none());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            alive(state.pid),
            "undeploy in the copy stopped the original's server"
        );
        assert!(!alive(copy_state.pid), "the copy's own server still runs");
        // a state copied in from elsewhere, undeployed: forgotten, the server untouched
        copy_dir(&project, &backup);
        copy.undeploy("recs-serving").await.unwrap();
        assert!(alive(state.pid));

        // the original still controls its own
        assert!(original.state("recs-serving").unwrap().is_some());
        original.undeploy("recs-serving").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(state.pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !alive(state.pid),
            "the original's undeploy did not stop its server"
        );
    }

    #[tokio::test]
    async fn a_registered_version_that_changed_is_not_deployed() {
        let tmp = tempfile::tempdir().unwrap();
        let version = tmp.path().join("1");
        std::fs::create_dir_all(&version).unwrap();
        std::fs::write(version.join("saved_model.pb"), b"graph").unwrap();
        let manifest = serde_json::json!({
            "model_name": "recs", "version": "1", "training_run_id": 1, "source": "/p",
            "labels": {}, "registered_at": "2026-01-01T00:00:00Z",
            "files": {"saved_model.pb": "00".repeat(32)},
        });
        std::fs::write(version.join("MANIFEST.json"), manifest.to_string()).unwrap();
        let bin = fake_serve_bin(&tmp.path().join("bin"));
        let d = LocalDeployer::for_project(tmp.path(), &bin).unwrap();
        let path = version.display().to_string();
        let err = d.check_model(&path).await.unwrap_err();
        assert!(
            matches!(&err, Error::Validation(_)) && err.to_string().contains("saved_model.pb"),
            "{err:?}"
        );
        let err = d
            .deploy(&DeployRequest {
                model_path: path,
                ..request("recs-serving")
            })
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("saved_model.pb (checksum differs)"),
            "{err}"
        );
        assert!(d.state("recs-serving").unwrap().is_none());
    }

    #[test]
    fn a_failed_inspect_is_reported_by_its_error_line_not_its_log() {
        let stderr =
            "2026-12-05T14:29:20Z  INFO trainyard_serve::model: files match MANIFEST.json\n\
                      2026-12-05T14:29:21Z ERROR trainyard_serve: trainyard-serve failed\n\
                      error: TensorFlow C library not found: set TRAINYARD_PYTHON\n";
        assert_eq!(
            failure_reason(stderr),
            "error: TensorFlow C library not found: set TRAINYARD_PYTHON"
        );
        assert_eq!(failure_reason("  just this\n"), "just this");
    }
}
