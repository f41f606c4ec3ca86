//! The local deployer: each endpoint is a `trainyard-serve` process on 127.0.0.1, started in
//! its own process group so it outlives the command that deployed it. Its state file
//! (`<state_dir>/<service>.json`) is the only record of it; every status question is answered
//! by looking at the process and asking the server, so a restart of the host process
//! re-attaches to endpoints that are still up and reports the others as gone — never a stale
//! "deployed".

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
    serve_bin: PathBuf,
    env: Vec<(String, String)>,
    ready_timeout: Duration,
}

impl LocalDeployer {
    pub fn new(state_dir: impl Into<PathBuf>, serve_bin: impl Into<PathBuf>) -> Self {
        LocalDeployer {
            state_dir: state_dir.into(),
            serve_bin: serve_bin.into(),
            env: Vec::new(),
            ready_timeout: Duration::from_secs(180),
        }
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

    async fn stop(&self, state: &LocalEndpointState) {
        if !is_our_server(state.pid) {
            return;
        }
        let _ = signal(state.pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        while is_our_server(state.pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if is_our_server(state.pid) {
            let _ = signal(state.pid, "KILL");
        }
    }

    async fn start(&self, request: &DeployRequest, port: u16) -> Result<LocalEndpointState> {
        let service = &request.service_name;
        let ready = self.state_dir.join(format!("{service}.ready.json"));
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
        let previous = self.state(&request.service_name)?;
        let mut port = 0;
        if let Some(old) = &previous {
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

    async fn undeploy(&self, service_name: &str) -> Result<()> {
        if let Some(state) = self.state(service_name)? {
            self.stop(&state).await;
            let _ = std::fs::remove_file(self.state_path(service_name));
            let _ = std::fs::remove_file(self.state_dir.join(format!("{service_name}.ready.json")));
        }
        Ok(())
    }

    /// Serving = the recorded process is our server and it answers its health check. A
    /// process that is up but does not answer is an error (shown as "unknown"), not a yes.
    async fn is_serving(&self, service_name: &str) -> Result<bool> {
        let Some(state) = self.state(service_name)? else {
            return Ok(false);
        };
        if !is_our_server(state.pid) {
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
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            return Err(Error::Validation(ValidationError::field(
                "model",
                format!(
                    "{model_path} cannot be served: {}",
                    trainyard_core::sanitize::child_output(msg.trim())
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

/// Whether `pid` is a live (not zombie) trainyard-serve process.
fn is_our_server(pid: u32) -> bool {
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
        .map(|c| String::from_utf8_lossy(&c).contains("trainyard-serve"))
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
            })
            .await
            .unwrap_err();
        assert!(matches!(bad, Error::Validation(_)), "{bad:?}");
    }
}
