//! `make test-faults`: a hostile-but-realistic user's attempts against the real binary
//! (`target/debug/trainyard`, a `serve-api` child on 127.0.0.1), each with the refusal or
//! outcome it must get. Every probe is one row of a table; the suite prints the table and fails
//! on the first row whose outcome differs. Bounded: a few hundred requests and ~40 short CLI
//! processes, well under a minute.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_trainyard");
const WEBHOOK_SECRET: &str = "fault-webhook-secret";

fn cli(project: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    if let Some(p) = project {
        cmd.arg("--project").arg(p);
    }
    cmd.args(args)
        .env_remove("TRAINYARD_API_TOKEN")
        .env_remove("TRAINYARD_STORE_URL")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The probes run so far (each printed as a row when it is checked).
#[derive(Default)]
struct Table(Vec<&'static str>);

impl Table {
    /// Records a probe; `ok` decides whether its outcome is the expected one.
    fn check(&mut self, probe: &'static str, expected: &'static str, ok: bool, got: String) {
        let mark = if ok { "ok  " } else { "FAIL" };
        println!("{mark} {probe:<58} expected {expected:<34} got {got}");
        self.0.push(probe);
        assert!(ok, "probe {probe:?}: expected {expected}, got {got}");
    }
}

fn init(dir: &Path, name: &str) -> PathBuf {
    let project = dir.join(name);
    let o = cli(None, &["init", project.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    project
}

struct Server {
    child: Child,
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve-api --port 0` on the project; the address is read from its first line.
fn serve(project: &Path, env_token: Option<&str>) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.arg("--project")
        .arg(project)
        .args([
            "serve-api",
            "--port",
            "0",
            "--webhook-secret",
            WEBHOOK_SECRET,
        ])
        .env_remove("TRAINYARD_API_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(t) = env_token {
        cmd.env("TRAINYARD_API_TOKEN", t);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let token = match env_token {
        Some(t) => t.to_string(),
        None => std::fs::read_to_string(project.join(".trainyard/api_token"))
            .unwrap()
            .trim()
            .to_string(),
    };
    Server {
        child,
        base,
        token,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    }
}

impl Server {
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    async fn authed(&self, method: Method, path: &str, body: Option<&str>) -> (StatusCode, String) {
        let bearer = self.bearer();
        self.send(
            method,
            path,
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await
    }

    async fn run_count(&self) -> u64 {
        let (st, text) = self.authed(Method::GET, "/api/training-runs/", None).await;
        assert_eq!(st, StatusCode::OK, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        v["pagination"]["total"].as_u64().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_table() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut t = Table::default();
    let project = init(dir.path(), "proj");

    // ---- CLI input --------------------------------------------------------------------------
    for (probe, args) in [
        (
            "cli: unknown status filter",
            vec!["runs", "list", "--status", "runing"],
        ),
        ("cli: non-numeric run id", vec!["runs", "show", "abc"]),
        ("cli: unknown subcommand", vec!["runz"]),
    ] {
        let o = cli(Some(&project), &args);
        let lines = stderr(&o).trim_end().lines().count();
        t.check(
            probe,
            "exit 2, one line on stderr",
            o.status.code() == Some(2) && lines == 1,
            format!("exit {:?}, {lines} line(s)", o.status.code()),
        );
    }

    let run_file = dir.path().join("typo.json");
    std::fs::write(
        &run_file,
        r#"{"name": "typo", "trainig_params": {"epochs": 2}}"#,
    )
    .unwrap();
    let o = cli(
        Some(&project),
        &["runs", "create", "--config", run_file.to_str().unwrap()],
    );
    let e = stderr(&o);
    t.check(
        "cli: misspelled run config part (trainig_params)",
        "exit 2 naming training_params",
        o.status.code() == Some(2) && e.contains("did you mean `training_params`"),
        format!("exit {:?}: {}", o.status.code(), e.trim()),
    );
    std::fs::write(
        &run_file,
        r#"{"name": "typo", "training_params": {"epoch": 2}}"#,
    )
    .unwrap();
    let o = cli(
        Some(&project),
        &["runs", "create", "--config", run_file.to_str().unwrap()],
    );
    let e = stderr(&o);
    t.check(
        "cli: misspelled nested field (training_params.epoch)",
        "exit 2 naming epochs",
        o.status.code() == Some(2) && e.contains("did you mean `epochs`"),
        format!("exit {:?}: {}", o.status.code(), e.trim()),
    );
    let o = cli(Some(&project), &["runs", "list", "--json"]);
    let total = serde_json::from_slice::<Value>(&o.stdout).unwrap()["total"].clone();
    t.check(
        "cli: the refused configs stored nothing",
        "0 runs",
        total == 0,
        format!("{total} runs"),
    );

    // ---- project files ------------------------------------------------------------------------
    let broken = init(dir.path(), "broken-toml");
    let toml = broken.join("trainyard.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, format!("{text}\n[stroe]\nurl = \"x\"\n")).unwrap();
    let o = cli(Some(&broken), &["runs", "list"]);
    let e = stderr(&o);
    t.check(
        "toml: misspelled section [stroe]",
        "exit 2, reason + nearest name",
        o.status.code() == Some(2)
            && e.trim_end().lines().count() == 1
            && e.contains("did you mean `store`")
            && e.contains("line "),
        format!("exit {:?}: {}", o.status.code(), e.replace('\n', " | ")),
    );
    std::fs::write(&toml, "[project]\nml_model = \n").unwrap();
    let o = cli(Some(&broken), &["runs", "list"]);
    let e = stderr(&o);
    t.check(
        "toml: syntax error",
        "exit 2, position and reason in one line",
        o.status.code() == Some(2)
            && e.trim_end().lines().count() == 1
            && e.contains("line 2")
            && e.contains("string"),
        format!("exit {:?}: {}", o.status.code(), e.replace('\n', " | ")),
    );

    let gone = init(dir.path(), "deleted-db");
    std::fs::remove_file(gone.join("trainyard.db")).unwrap();
    let o = cli(Some(&gone), &["runs", "list"]);
    t.check(
        "db: deleted database file",
        "error naming `trainyard init`, no new file",
        !o.status.success()
            && stderr(&o).contains("trainyard init")
            && !gone.join("trainyard.db").exists(),
        format!("exit {:?}: {}", o.status.code(), stderr(&o).trim()),
    );
    std::fs::write(gone.join("trainyard.db"), b"").unwrap();
    let o = cli(Some(&gone), &["runs", "list"]);
    t.check(
        "db: empty database file",
        "error naming `trainyard init`",
        !o.status.success() && stderr(&o).contains("is empty"),
        format!("exit {:?}: {}", o.status.code(), stderr(&o).trim()),
    );
    let o = cli(None, &["init", gone.to_str().unwrap()]);
    let o2 = cli(Some(&gone), &["runs", "list", "--json"]);
    t.check(
        "db: `init` asked for explicitly",
        "a new database",
        o.status.success() && o2.status.success(),
        format!(
            "init exit {:?}, list exit {:?}",
            o.status.code(),
            o2.status.code()
        ),
    );

    // ---- concurrent writers -----------------------------------------------------------------
    let conc = init(dir.path(), "concurrent");
    let conc_file = dir.path().join("conc.json");
    std::fs::write(&conc_file, r#"{"name": "racer"}"#).unwrap();
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let conc = conc.clone();
            let file = conc_file.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| {
                        cli(
                            Some(&conc),
                            &["runs", "create", "--config", file.to_str().unwrap()],
                        )
                        .status
                        .success()
                    })
                    .filter(|ok| *ok)
                    .count()
            })
        })
        .collect();
    let created: usize = writers.into_iter().map(|h| h.join().unwrap()).sum();
    let o = cli(
        Some(&conc),
        &["runs", "list", "--json", "--page-size", "100"],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut numbers: Vec<u64> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_number"].as_u64().unwrap())
        .collect();
    numbers.sort();
    t.check(
        "store: 4 concurrent writers x 5 runs",
        "20 runs numbered 1..=20",
        created == 20 && numbers == (1..=20).collect::<Vec<_>>(),
        format!("{created} created, numbers {numbers:?}"),
    );

    // ---- the API ------------------------------------------------------------------------------
    let s = serve(&project, None);
    let (st, _) = s.send(Method::GET, "/api/training-runs/", &[], None).await;
    t.check("api: no token", "401", st == 401, st.to_string());
    let wrong = format!("Bearer {}0", s.token);
    let (st, _) = s
        .send(
            Method::GET,
            "/api/training-runs/",
            &[("authorization", &wrong)],
            None,
        )
        .await;
    t.check("api: wrong token", "401", st == 401, st.to_string());
    let (st, _) = s
        .send(
            Method::POST,
            "/api/models/default/training-runs/",
            &[("content-type", "application/json")],
            Some(r#"{"name": "no-token"}"#),
        )
        .await;
    t.check(
        "api: create without token",
        "401",
        st == 401,
        st.to_string(),
    );
    let (st, _) = s.authed(Method::GET, "/api/training-runs/", None).await;
    t.check(
        "api: the token from the project file",
        "200",
        st == 200,
        st.to_string(),
    );
    let (st, _) = s.send(Method::GET, "/healthz", &[], None).await;
    t.check(
        "api: health probe without token",
        "200",
        st == 200,
        st.to_string(),
    );

    let bearer = s.bearer();
    for (probe, ct, body) in [
        (
            "api: cross-site form POST (urlencoded) creating a run",
            Some("application/x-www-form-urlencoded"),
            "name=evil",
        ),
        (
            "api: text/plain POST (a no-preflight fetch)",
            Some("text/plain"),
            r#"{"name":"evil"}"#,
        ),
        (
            "api: POST without a content type",
            None,
            r#"{"name":"evil"}"#,
        ),
    ] {
        let mut headers = vec![("authorization", bearer.as_str())];
        if let Some(ct) = ct {
            headers.push(("content-type", ct));
        }
        let (st, _) = s
            .send(
                Method::POST,
                "/api/models/default/training-runs/",
                &headers,
                Some(body),
            )
            .await;
        t.check(probe, "415", st == 415, st.to_string());
    }
    t.check(
        "api: ... and nothing was created",
        "0 runs",
        s.run_count().await == 0,
        format!("{} runs", s.run_count().await),
    );

    let (st, text) = s
        .authed(
            Method::POST,
            "/api/models/default/training-runs/",
            Some(r#"{"name": "m", "trainig_params": {"epochs": 2}}"#),
        )
        .await;
    t.check(
        "api: misspelled config part at create",
        "422 naming training_params",
        st == 422
            && text.contains("did you mean `training_params`")
            && text.contains(r#""field":"trainig_params""#),
        format!("{st} {text}"),
    );
    let (st, text) = s
        .authed(
            Method::POST,
            "/api/models/default/training-runs/",
            Some(r#"{"name": "kept"}"#),
        )
        .await;
    assert_eq!(st, 201, "{text}");
    let id = serde_json::from_str::<Value>(&text).unwrap()["training_run"]["id"].clone();
    let (st, _) = s
        .send(
            Method::POST,
            &format!("/api/training-runs/{id}/cancel/"),
            &[("authorization", &bearer)],
            None,
        )
        .await;
    t.check(
        "api: bodiless cancel without a content type",
        "415",
        st == 415,
        st.to_string(),
    );
    let (st, text) = s
        .authed(
            Method::PATCH,
            &format!("/api/training-runs/{id}/config/"),
            Some(r#"{"training_params": {"epoch": 3}}"#),
        )
        .await;
    t.check(
        "api: misspelled field at patch",
        "4xx naming epochs",
        st.is_client_error() && text.contains("did you mean `epochs`"),
        format!("{st} {text}"),
    );

    let port = s.base.rsplit(':').next().unwrap().to_string();
    let evil = format!("evil.example:{port}");
    let (st, text) = s
        .send(
            Method::GET,
            "/api/training-runs/",
            &[("host", &evil), ("authorization", &bearer)],
            None,
        )
        .await;
    t.check(
        "api: DNS rebinding (foreign Host, valid token)",
        "403, no data in the body",
        st == 403 && !text.contains("kept"),
        format!("{st} {text}"),
    );

    // Webhooks keep their own authentication and do not take the API token.
    let hook = format!("/api/training-runs/{id}/webhook/failed/");
    let body = r#"{"error": "forged"}"#;
    for (probe, auth) in [
        ("webhook: unsigned callback", None),
        ("webhook: forged secret", Some("Bearer not-the-secret")),
        (
            "webhook: the API token instead of the secret",
            Some(bearer.as_str()),
        ),
    ] {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        let (st, _) = s.send(Method::POST, &hook, &headers, Some(body)).await;
        t.check(probe, "401", st == 401, st.to_string());
    }
    let (st, _) = s
        .send(
            Method::POST,
            "/api/training/schedules/1/webhook/",
            &[("authorization", "Bearer x.y.z")],
            None,
        )
        .await;
    t.check(
        "webhook: schedule fire with a forged OIDC token",
        "401",
        st == 401,
        st.to_string(),
    );
    let (_, text) = s
        .authed(Method::GET, &format!("/api/training-runs/{id}/"), None)
        .await;
    let status = serde_json::from_str::<Value>(&text).unwrap()["training_run"]["status"].clone();
    t.check(
        "webhook: ... and the run is untouched",
        "pending",
        status == "pending",
        status.to_string(),
    );

    // A closed stdout: 120 runs listed as JSON into a reader that stops after one line.
    for i in 0..120 {
        let (st, text) = s
            .authed(
                Method::POST,
                "/api/models/default/training-runs/",
                Some(&format!(r#"{{"name": "bulk-{i}"}}"#)),
            )
            .await;
        assert_eq!(st, 201, "{text}");
    }
    drop(s);
    let mut child = Command::new(BIN)
        .arg("--project")
        .arg(&project)
        .args(["runs", "list", "--json", "--page-size", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let code = child.wait().unwrap().code();
    t.check(
        "cli: `runs list | head -1` (stdout closed early)",
        "exit 0 or 141, no panic",
        matches!(code, Some(0) | Some(141)) && !err.contains("panicked"),
        format!("exit {code:?} {}", err.trim()),
    );
    let mut child = Command::new(BIN)
        .arg("--project")
        .arg(&project)
        .args(["runs", "list", "--page-size", "100"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let code = child.wait().unwrap().code();
    t.check(
        "cli: table `runs list | head -1`",
        "exit 0 or 141, no panic",
        matches!(code, Some(0) | Some(141)) && !err.contains("panicked"),
        format!("exit {code:?} {}", err.trim()),
    );

    // TRAINYARD_API_TOKEN overrides the file; the file's token is then refused.
    let s = serve(&project, Some("env-token-for-the-fault-suite"));
    let (st, _) = s.authed(Method::GET, "/api/training-runs/", None).await;
    t.check(
        "api: TRAINYARD_API_TOKEN accepted",
        "200",
        st == 200,
        st.to_string(),
    );
    let file_token = std::fs::read_to_string(project.join(".trainyard/api_token")).unwrap();
    let file_bearer = format!("Bearer {}", file_token.trim());
    let (st, _) = s
        .send(
            Method::GET,
            "/api/training-runs/",
            &[("authorization", &file_bearer)],
            None,
        )
        .await;
    t.check(
        "api: the file's token while overridden",
        "401",
        st == 401,
        st.to_string(),
    );
    drop(s);

    // Listening beyond loopback needs stated TLS termination.
    for host in ["0.0.0.0", "::"] {
        let o = Command::new(BIN)
            .arg("--project")
            .arg(&project)
            .args(["serve-api", "--host", host, "--port", "0"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        t.check(
            if host == "::" {
                "serve-api --host :: without TLS"
            } else {
                "serve-api --host 0.0.0.0 without TLS"
            },
            "exit 2 naming tls_terminated_by_proxy",
            o.status.code() == Some(2)
                && stderr(&o).contains("tls_terminated_by_proxy")
                && o.stdout.is_empty(),
            format!("exit {:?}: {}", o.status.code(), stderr(&o).trim()),
        );
    }
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(project.join(".trainyard/api_token"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    t.check(
        "token file permissions",
        "0600",
        mode == 0o600,
        format!("{mode:o}"),
    );

    let took = started.elapsed();
    println!("{} probes in {:.1} s", t.0.len(), took.as_secs_f64());
    assert!(
        took < Duration::from_secs(90),
        "the suite must stay bounded: {took:?}"
    );
}
