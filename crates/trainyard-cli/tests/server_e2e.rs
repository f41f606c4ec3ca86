//! The platform runs itself: the real `trainyard` binary as `trainyard server` (and as CLI
//! calls), the real local runner, filesystem registry and (for deploys) trainyard-serve. The
//! one stand-in is the pipeline: a script in the place of the managed env's Python that, when
//! asked to run a pipeline module, prints TFX's component lines, sleeps in the Trainer, writes
//! training metrics and a pushed SavedModel (a real one when `TRAINYARD_SERVE_TEST_MODELS` is
//! set) and blesses it; anything else it hands to the real interpreter (trainyard-serve asks
//! it where TensorFlow is). Every process it starts appends a line to `starts.log` in the run
//! folder, so tests count pipelines.
//!
//! Run by `make test-server` (`--ignored`): it needs the built binaries.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join(name)
}

const FAKE_PYTHON: &str = r#"#!/bin/sh
# A pipeline stand-in in the place of the managed env's Python (see server_e2e.rs).
case "$1" in
  */modules/pipeline.py) ;;
  *) exec "${REAL_PYTHON:-python3}" "$@" ;;
esac
root=$(pwd)
echo "start $$" >> "$root/starts.log"
for c in CsvExampleGen StatisticsGen SchemaGen Transform; do
  echo "INFO:absl:Component $c is running."
  echo "INFO:absl:Component $c is finished."
done
echo "INFO:absl:Component Trainer is running."
i=1
while [ "$i" -le "${FAKE_EPOCHS:-2}" ]; do
  sleep "${FAKE_EPOCH_SECS:-0.3}"
  echo "[trainyard] EPOCH {\"epoch\": $i, \"metrics\": {\"loss\": 1.$i, \"val_recall_at_100\": 0.3$i}}"
  i=$((i + 1))
done
mkdir -p "$root/Trainer/model_run/7"
cat > "$root/Trainer/model_run/7/training_metrics.json" <<EOF
{"loss": {"loss": [1.1, 1.2], "val_recall_at_100": [0.31, 0.32]},
 "final_metrics": {"test_recall_at_5": 0.05, "test_recall_at_10": 0.1, "test_recall_at_50": 0.3, "test_recall_at_100": 0.4}}
EOF
echo "INFO:absl:Component Trainer is finished."
echo "INFO:absl:Component Evaluator is running."
echo '[trainyard] BLESSING {"blessed": true}'
echo "INFO:absl:Component Evaluator is finished."
echo "INFO:absl:Component Pusher is running."
pushed="$root/pushed_model/1764000000"
mkdir -p "$pushed"
if [ -n "$FAKE_MODEL" ]; then
  cp -r "$FAKE_MODEL"/. "$pushed"/
else
  echo "not a real model" > "$pushed/saved_model.pb"
fi
echo "INFO:absl:Component Pusher is finished."
"#;

struct Project {
    _dir: tempfile::TempDir,
    path: PathBuf,
    env: Vec<(String, String)>,
}

impl Project {
    fn new(epoch_secs: f64, model: Option<PathBuf>) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proj");
        let fake = dir.path().join("python");
        std::fs::write(&fake, FAKE_PYTHON).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut env = vec![
            ("TRAINYARD_PYTHON".to_string(), fake.display().to_string()),
            ("FAKE_EPOCH_SECS".to_string(), epoch_secs.to_string()),
            ("FAKE_EPOCHS".to_string(), "2".to_string()),
            (
                "TRAINYARD_SERVE_BIN".to_string(),
                bin("trainyard-serve").display().to_string(),
            ),
            ("TRAINYARD_LOG".to_string(), "warn".to_string()),
        ];
        if let Ok(real) = std::env::var("REAL_PYTHON") {
            env.push(("REAL_PYTHON".into(), real));
        }
        if let Some(m) = model {
            env.push(("FAKE_MODEL".into(), m.display().to_string()));
        }
        let p = Project {
            _dir: dir,
            path,
            env,
        };
        let o = p.run(&["init", p.path.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        p
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("trainyard"));
        c.args(args)
            .env("TRAINYARD_PROJECT", &self.path)
            .env_remove("TRAINYARD_STORE_URL")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "trainyard {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    fn run_json(&self, id: i64) -> Value {
        self.json(&["runs", "show", &id.to_string(), "--json"])
    }

    /// A run (auto-deploy as asked) from a config with no schedule.
    fn create_run(&self, name: &str, deploy: bool) -> i64 {
        let config = self.path.join(format!("{name}.json"));
        std::fs::write(
            &config,
            serde_json::json!({
                "name": name,
                "dataset": {"name": "synthetic-b2b", "source": {"kind": "csv", "path": "data"}},
                "training_params": {"epochs": 2},
                "evaluator_config": {"enabled": true, "blessing_metric": "recall_at_100",
                                     "blessing_threshold": 0.05},
                "deployment_config": {"enabled": deploy},
            })
            .to_string(),
        )
        .unwrap();
        let v = self.json(&[
            "runs",
            "create",
            "--config",
            config.to_str().unwrap(),
            "--json",
        ]);
        v["id"].as_i64().expect("run id")
    }

    fn server(&self) -> Server {
        let mut child = self
            .command(&["server", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // the start line names the address once the API is up
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let line = lines.next().expect("a start line").unwrap();
        assert!(line.contains("http://127.0.0.1:"), "{line}");
        std::thread::spawn(move || for _ in lines {});
        Server(Some(child))
    }

    fn wait_for(&self, id: i64, what: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.run_json(id);
            if done(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} not {what} after {secs} s: {} {} {}",
                v["status"],
                v["current_stage"],
                v["error_message"]
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn root_of(&self, id: i64) -> PathBuf {
        self.path
            .canonicalize()
            .unwrap()
            .join("runs")
            .join(id.to_string())
    }

    fn starts(&self, id: i64) -> usize {
        std::fs::read_to_string(self.root_of(id).join("starts.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    fn pgid(&self, id: i64) -> i32 {
        let state: Value = serde_json::from_str(
            &std::fs::read_to_string(self.root_of(id).join("runner.json")).unwrap(),
        )
        .unwrap();
        state["pgid"].as_i64().unwrap() as i32
    }
}

struct Server(Option<Child>);

impl Server {
    fn kill9(mut self) {
        let mut c = self.0.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn stop(mut self) {
        if let Some(c) = self.0.take() {
            term_and_wait(c);
        }
    }
}

fn term_and_wait(mut c: Child) {
    unsafe_kill(c.id() as i32, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if c.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = c.kill();
    let _ = c.wait();
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn unsafe_kill(pid: i32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &pid.to_string()])
        .status();
}

fn group_alive(pgid: i32) -> bool {
    Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["status"] == status
}

fn training(v: &Value) -> bool {
    v["status"] == "running" && v["current_stage"] == "train"
}

fn test_model() -> Option<PathBuf> {
    std::env::var("TRAINYARD_SERVE_TEST_MODELS")
        .ok()
        .map(|d| Path::new(&d).join("bf").join("1"))
}

/// A server in the background; a submit, a rerun and a `now` schedule each go from the request
/// to a registered next version serving on the model's endpoint with no other command.
#[test]
#[ignore = "needs the built binaries and serve test models; run by make test-server"]
fn a_server_carries_submits_reruns_and_now_fires_to_deployed_versions() {
    let model = test_model().expect("TRAINYARD_SERVE_TEST_MODELS (make serve-test-models)");
    let p = Project::new(0.2, Some(model));
    let server = p.server();
    let first = p.create_run("product-recs", true);
    let out = p.ok(&["runs", "submit", &first.to_string()]);
    assert!(out.contains("submitted"), "{out}");
    let v = p.wait_for(first, "deployed", 90, is("deployed"));
    assert_eq!(v["vertex_model_version"], "1");

    let rerun = p.json(&["runs", "rerun", &first.to_string(), "--json"]);
    let second = rerun["id"].as_i64().unwrap();
    let v = p.wait_for(second, "deployed", 90, is("deployed"));
    assert_eq!(v["vertex_model_version"], "2");

    let s = p.json(&[
        "schedule",
        "create",
        "--from-run",
        &first.to_string(),
        "--name",
        "retrain now",
        "--type",
        "now",
        "--json",
    ]);
    assert!(s.to_string().contains(r#""schedule_type":"now""#), "{s}");
    let runs = p.json(&["runs", "list", "--json"]);
    let third = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .max()
        .unwrap();
    assert!(third > second, "the now fire created a run");
    let v = p.wait_for(third, "deployed", 90, is("deployed"));
    assert_eq!(v["vertex_model_version"], "3");
    // the endpoint moved with each version and serves the newest
    let endpoints = p.json(&["endpoints", "--json"]);
    let list = endpoints.as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 1, "one endpoint per model: {endpoints}");
    assert_eq!(list[0]["deployed_version"], "3", "{endpoints}");
    for id in [first, second] {
        assert_eq!(
            p.run_json(id)["status"],
            "completed",
            "replaced versions go back"
        );
        assert_eq!(p.starts(id), 1);
    }
    let service = list[0]["service_name"].as_str().unwrap().to_string();
    server.stop();
    p.ok(&["undeploy", &service]);
}

/// kill -9 of the server while the pipeline trains: a restarted server re-attaches to the
/// still-running pipeline and completes the run (once); with the pipeline killed too, it
/// concludes "runner lost" and leaves no process behind.
#[test]
#[ignore = "needs the built binaries; run by make test-server"]
fn a_killed_server_is_replaced_without_losing_or_repeating_work() {
    let p = Project::new(2.0, None);
    let a = p.server();
    let kept = p.create_run("kept", false);
    let lost = p.create_run("lost", false);
    p.ok(&["runs", "submit", &kept.to_string()]);
    p.ok(&["runs", "submit", &lost.to_string()]);
    p.wait_for(kept, "training", 60, training);
    p.wait_for(lost, "training", 60, training);
    a.kill9();
    let pgid = p.pgid(lost);
    unsafe_kill(-pgid, "-KILL");
    let restarted = Instant::now();
    let b = p.server();
    let v = p.wait_for(kept, "completed", 30, is("completed"));
    assert_eq!(v["vertex_model_version"], "1", "registered once");
    assert_eq!(p.starts(kept), 1, "the pipeline was not started again");
    let v = p.wait_for(lost, "failed", 30, is("failed"));
    assert!(
        v["error_message"]
            .as_str()
            .unwrap()
            .starts_with("runner lost"),
        "{v}"
    );
    assert!(restarted.elapsed() < Duration::from_secs(30));
    assert!(!group_alive(pgid), "no orphan of the lost pipeline");
    assert!(
        !group_alive(p.pgid(kept)),
        "the finished pipeline left nothing"
    );
    b.stop();
}

/// kill -9 (and Ctrl-C) of a `runs submit --wait` with no server: the pipeline goes on, and a
/// server started later finishes the run.
#[test]
#[ignore = "needs the built binaries; run by make test-server"]
fn a_killed_submit_wait_leaves_a_run_a_later_server_finishes() {
    let p = Project::new(1.5, None);
    let id = p.create_run("waited", false);
    let mut cli = p
        .command(&["runs", "submit", &id.to_string(), "--wait"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    p.wait_for(id, "training", 60, training);
    cli.kill().unwrap();
    cli.wait().unwrap();
    // SIGINT of a second follower: it stops following, the run goes on
    let mut follower = p
        .command(&["runs", "follow", &id.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    unsafe_kill(follower.id() as i32, "-INT");
    let code = follower.wait().unwrap().code();
    assert_eq!(code, Some(130));
    assert_eq!(p.run_json(id)["status"], "running");
    let server = p.server();
    let v = p.wait_for(id, "completed", 40, is("completed"));
    assert_eq!(v["vertex_model_version"], "1");
    assert_eq!(p.starts(id), 1);
    server.stop();
}
