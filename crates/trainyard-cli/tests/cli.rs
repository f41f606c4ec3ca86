use std::path::Path;
use std::process::{Command, Output};

use trainyard_core::metrics::{extract_results_from_str, RunResults};
use trainyard_core::ModelType;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../trainyard-core/tests/fixtures/multitask_training_metrics.json"
);

fn trainyard(args: &[&str], project: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainyard"));
    cmd.args(args).env_remove("TRAINYARD_PROJECT");
    if let Some(p) = project {
        cmd.arg("--project").arg(p);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version() {
    let o = trainyard(&["--version"], None);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o).trim(),
        format!("trainyard {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn service_name_validation_exit_codes() {
    let o = trainyard(&["validate", "service-name", "Bad_Name"], None);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("uppercase"), "{err}");

    let o = trainyard(&["validate", "service-name", "bad-"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("must end with a letter or digit"));

    let o = trainyard(&["validate", "service-name", "good-name-1"], None);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn metrics_extract_prints_the_library_numbers() {
    let o = trainyard(
        &[
            "metrics",
            "extract",
            FIXTURE,
            "--model-type",
            "multitask",
            "--json",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let printed: RunResults = serde_json::from_str(&stdout(&o)).unwrap();
    let library = extract_results_from_str(
        ModelType::Multitask,
        &std::fs::read_to_string(FIXTURE).unwrap(),
    )
    .unwrap();
    assert_eq!(printed, library);
    assert_eq!(printed.rmse, Some(0.6270));
    assert_eq!(printed.test_rmse, Some(0.6071));

    let o = trainyard(
        &[
            "metrics",
            "extract",
            "/nonexistent.json",
            "--model-type",
            "ranking",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    let o = trainyard(
        &["metrics", "extract", FIXTURE, "--model-type", "regression"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).trim_end().lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn init_create_list_show() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("proj");
    let o = trainyard(&["init", project.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(project.join("trainyard.toml").exists());
    assert!(project.join("trainyard.db").exists());

    let run_json = dir.path().join("run.json");
    std::fs::write(
        &run_json,
        r#"{"name": "product-retrieval", "training_params": {"epochs": 3}}"#,
    )
    .unwrap();
    for expected in 1..=2 {
        let o = trainyard(
            &[
                "runs",
                "create",
                "--config",
                run_json.to_str().unwrap(),
                "--json",
            ],
            Some(&project),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["run_number"], expected);
        assert_eq!(v["status"], "pending");
        assert_eq!(v["ml_model"], "default");
    }

    let o = trainyard(&["runs", "list", "--json"], Some(&project));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["total"], 2);
    assert_eq!(v["runs"][0]["run_number"], 2);

    let o = trainyard(&["runs", "list"], Some(&project));
    assert!(stdout(&o).contains("product-retrieval"), "{}", stdout(&o));

    let o = trainyard(&["runs", "show", "1", "--json"], Some(&project));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["current_stage"], "compile");
    assert_eq!(v["stage_details"].as_array().unwrap().len(), 9);

    let o = trainyard(&["runs", "show", "99"], Some(&project));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not found"));

    let o = trainyard(&["runs", "list", "--status", "runing"], Some(&project));
    assert_eq!(o.status.code(), Some(2));

    // Bad JSON in a run file is bad input and stores nothing.
    std::fs::write(
        &run_json,
        r#"{"name": "x", "training_params": {"epochs": "many"}}"#,
    )
    .unwrap();
    let o = trainyard(
        &["runs", "create", "--config", run_json.to_str().unwrap()],
        Some(&project),
    );
    assert_eq!(o.status.code(), Some(2));
    let o = trainyard(&["runs", "list", "--json"], Some(&project));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["total"], 2);

    // The gcp backend without a [gcp] section names the missing setting.
    let o = trainyard(&["--backend", "gcp", "runs", "list"], Some(&project));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("gcp.project"), "{}", stderr(&o));

    // A directory without trainyard.toml.
    let o = trainyard(&["runs", "list"], Some(dir.path()));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("trainyard init"));
}

#[test]
fn pipeline_compile_is_deterministic_for_both_targets() {
    let dir = tempfile::tempdir().unwrap();
    let run = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/tour/retrieval_run.json"
    );
    let mut outputs = Vec::new();
    for i in 0..2 {
        let out = dir.path().join(format!("v{i}/job.json"));
        let o = trainyard(
            &[
                "pipeline",
                "compile",
                "--run",
                run,
                "--target",
                "vertex",
                "--out",
                out.to_str().unwrap(),
                "--pipeline-root",
                "gs://bucket/root",
                "--gcp-project",
                "p",
                "--gcp-region",
                "europe-west4",
            ],
            None,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        outputs.push(std::fs::read(&out).unwrap());
        let wheels = std::fs::read_dir(dir.path().join(format!("v{i}/_wheels")))
            .unwrap()
            .count();
        assert_eq!(wheels, 2);
    }
    assert_eq!(outputs[0], outputs[1]);
    let job: serde_json::Value = serde_json::from_slice(&outputs[0]).unwrap();
    assert_eq!(
        job["pipelineSpec"]["root"]["dag"]["tasks"]
            .as_object()
            .unwrap()
            .len(),
        7
    );

    let local = dir.path().join("local");
    let o = trainyard(
        &[
            "pipeline",
            "compile",
            "--run",
            run,
            "--target",
            "local",
            "--out",
            local.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "pipeline.py",
        "transform_module.py",
        "trainer_module.py",
        "trainyard_evaluator.py",
    ] {
        assert!(local.join(f).is_file(), "{f}");
    }
    let o = trainyard(
        &[
            "pipeline",
            "compile",
            "--run",
            run,
            "--target",
            "vertex",
            "--out",
            "/tmp/x.json",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "vertex needs a pipeline root");
}

#[test]
fn submit_without_a_managed_env_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let o = trainyard(&["init", dir.path().to_str().unwrap()], None);
    assert!(o.status.success());
    let run_json = dir.path().join("run.json");
    std::fs::write(&run_json, r#"{"name": "m"}"#).unwrap();
    assert!(trainyard(
        &["runs", "create", "--config", run_json.to_str().unwrap()],
        Some(dir.path())
    )
    .status
    .success());
    let o = Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args([
            "--project",
            dir.path().to_str().unwrap(),
            "runs",
            "submit",
            "1",
        ])
        .env_remove("TRAINYARD_PYTHON")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("make pyenv"), "{}", stderr(&o));
}

#[test]
fn codegen_writes_deterministic_modules_and_refuses_bad_configs() {
    use trainyard_core::feature_config::FeatureConfig;
    use trainyard_core::model_config::ModelConfig;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("features.json");
    let m = dir.path().join("model.json");
    std::fs::write(
        &f,
        serde_json::to_string(&FeatureConfig::default()).unwrap(),
    )
    .unwrap();
    std::fs::write(&m, serde_json::to_string(&ModelConfig::default()).unwrap()).unwrap();
    let mut sources = Vec::new();
    for i in 0..2 {
        let out = dir.path().join(format!("out{i}"));
        let o = trainyard(
            &[
                "codegen",
                "--feature-config",
                f.to_str().unwrap(),
                "--model-config",
                m.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            None,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        sources.push((
            std::fs::read_to_string(out.join("trainer_module.py")).unwrap(),
            std::fs::read_to_string(out.join("transform_module.py")).unwrap(),
        ));
    }
    assert_eq!(sources[0], sources[1], "byte-identical output");
    assert!(sources[0].0.contains("def run_fn(fn_args)"));
    assert!(sources[0].1.contains("def preprocessing_fn(inputs)"));

    let bad = ModelConfig {
        output_embedding_dim: 0,
        ..ModelConfig::default()
    };
    std::fs::write(&m, serde_json::to_string(&bad).unwrap()).unwrap();
    let out = dir.path().join("bad");
    let o = trainyard(
        &[
            "codegen",
            "--feature-config",
            f.to_str().unwrap(),
            "--model-config",
            m.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).trim_end().lines().count(), 1, "{}", stderr(&o));
    assert!(!out.exists(), "nothing written for a bad config");
}

#[test]
fn schedules_of_type_now_and_from_a_runs_schedule_config() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("proj");
    assert!(trainyard(&["init", project.to_str().unwrap()], None)
        .status
        .success());

    // Preview: a `now` timing fires once, at the instant asked about; it has no cron string.
    let o = trainyard(
        &[
            "schedule",
            "preview",
            "--type",
            "now",
            "--tz",
            "Europe/Warsaw",
            "--after",
            "2026-07-01T07:45:00Z",
            "--json",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v, serde_json::json!(["2026-07-01T09:45:00+02:00"]));
    let o = trainyard(&["schedule", "cron", "--type", "now"], None);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("schedule_type"), "{}", stderr(&o));

    // A run whose schedule_config is weekly creates its model's schedule.
    let run_json = dir.path().join("run.json");
    std::fs::write(
        &run_json,
        r#"{"name": "weekly-model", "schedule_config": {"schedule_type": "weekly",
            "schedule_time": "09:00", "schedule_day_of_week": 0, "schedule_timezone": "UTC"}}"#,
    )
    .unwrap();
    let o = trainyard(
        &["runs", "create", "--config", run_json.to_str().unwrap()],
        Some(&project),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = trainyard(&["schedule", "show", "1", "--json"], Some(&project));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["schedule"]["schedule_type"], "weekly", "{v}");
    assert_eq!(v["schedule"]["name"], "weekly-model - Retraining");

    // One schedule per model: `now` replaces it once it is deleted, fires at once, finishes.
    let now = [
        "schedule",
        "create",
        "--from-run",
        "1",
        "--name",
        "Retrain now",
        "--type",
        "now",
    ];
    let o = trainyard(&now, Some(&project));
    assert_eq!(
        o.status.code(),
        Some(2),
        "the weekly schedule holds the model"
    );
    assert!(
        stderr(&o).contains("already has schedule 1"),
        "{}",
        stderr(&o)
    );
    assert!(trainyard(&["schedule", "delete", "1"], Some(&project))
        .status
        .success());
    let o = trainyard(&now, Some(&project));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("fired now: training run 2 (Training #2), status scheduled"),
        "{}",
        stdout(&o)
    );
    let o = trainyard(&["schedule", "show", "2", "--json"], Some(&project));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["schedule"]["status"], "completed", "{v}");
    assert_eq!(v["schedule"]["total_runs"], 1);
    assert_eq!(v["upcoming"], serde_json::json!([]));
}

#[test]
fn pipeline_compile_for_vertex_refuses_an_empty_project_and_a_local_root() {
    let dir = tempfile::tempdir().unwrap();
    let run = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/tour/retrieval_run.json"
    );
    let out = dir.path().join("job.json");
    let compile = |root: &str, project: &str| {
        trainyard(
            &[
                "pipeline",
                "compile",
                "--run",
                run,
                "--target",
                "vertex",
                "--out",
                out.to_str().unwrap(),
                "--pipeline-root",
                root,
                "--gcp-project",
                project,
                "--gcp-region",
                "europe-west4",
            ],
            None,
        )
    };
    let o = compile("gs://bucket/root", "");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("gcp.project"), "{}", stderr(&o));
    let o = compile("/tmp/root", "p");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("pipeline_root"), "{}", stderr(&o));
    assert!(!out.exists(), "nothing was written");
}

/// `trainyard serve` becomes the model server: a supervisor's SIGTERM to the pid it started
/// stops the server and frees the port (a child left behind would keep holding it).
#[test]
fn serve_passes_sigterm_to_the_model_server_and_frees_the_port() {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    // A stand-in for trainyard-serve: takes its flags and listens on --port until killed.
    let fake = dir.path().join("fake-serve");
    std::fs::write(
        &fake,
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --port ] && PORT=$2; shift; done\n\
         exec python3 -c 'import socket,time,sys\ns=socket.socket()\ns.bind((\"127.0.0.1\",int(sys.argv[1])))\ns.listen()\nprint(\"listening\",flush=True)\nwhile True: time.sleep(1)' \"$PORT\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args(["serve", "--model", dir.path().to_str().unwrap()])
        .args(["--port", &port.to_string()])
        .current_dir(dir.path())
        .env_remove("TRAINYARD_PROJECT")
        .env("TRAINYARD_SERVE_BIN", &fake)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = [0u8; 9];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut line)
        .unwrap();
    assert_eq!(&line, b"listening");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nothing holds the port any more.
    let start = Instant::now();
    while TcpListener::bind(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the model server still holds port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pipeline_compile_for_vertex_runs_trainyard_components_in_the_configured_trainer_image() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("trainyard.toml"),
        "[gcp]\n[gcp.images]\ntrainer = \"registry.example/trainer@sha256:c0\"\n",
    )
    .unwrap();
    let run = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/tour/retrieval_run.json"
    );
    let out = dir.path().join("job.json");
    let o = trainyard(
        &[
            "pipeline",
            "compile",
            "--run",
            run,
            "--target",
            "vertex",
            "--out",
            out.to_str().unwrap(),
            "--pipeline-root",
            "gs://bucket/root",
            "--gcp-project",
            "p1",
            "--gcp-region",
            "europe-west4",
        ],
        Some(dir.path()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let job: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let image = |c: &str| {
        job["pipelineSpec"]["deploymentSpec"]["executors"][format!("{c}_executor")]["container"]
            ["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for c in ["Transform", "Trainer", "Evaluator"] {
        assert_eq!(image(c), "registry.example/trainer@sha256:c0", "{c}");
    }
    assert_eq!(image("Pusher"), "gcr.io/tfx-oss-public/tfx:1.16.0");
}

#[test]
fn argument_errors_keep_their_reason_on_one_line() {
    for (args, reason) in [
        (
            &["deploy", "1", "--preset", "nope"][..],
            "[possible values: development, production, high_traffic]",
        ),
        (
            &["deploy", "1", "--preset", "custom"][..],
            "[possible values: development, production, high_traffic]",
        ),
        (
            &["quickstart", "--data-size", "huge"][..],
            "[possible values: tiny, small, large]",
        ),
        (&["runs", "show"][..], "not provided: <ID>"),
        (&["deploy"][..], "not provided: <RUN>"),
    ] {
        let o = trainyard(args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(reason), "{args:?}: {err}");
        assert!(!err.contains("Usage:"), "{err}");
    }
    // both spellings of the high-traffic preset parse (and the command then finds no run 99)
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p");
    assert!(trainyard(&["init", project.to_str().unwrap()], None)
        .status
        .success());
    for preset in ["high_traffic", "high-traffic"] {
        let o = trainyard(&["deploy", "99", "--preset", preset], Some(&project));
        let err = stderr(&o);
        assert!(err.contains("training run 99 not found"), "{preset}: {err}");
    }
}

/// The clap types live in `src/cli.rs` only; a command file parses nothing itself.
#[test]
fn command_files_declare_no_clap_types() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/commands");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for needle in [
            "#[arg(",
            "#[command(",
            "#[value(",
            "derive(Debug, Args",
            "Subcommand)]",
            "ValueEnum)]",
            "Parser)]",
        ] {
            assert!(
                !text.contains(needle),
                "{} has {needle}: clap types belong in src/cli.rs",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} command files");
}

#[test]
fn warnings_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p");
    assert!(trainyard(&["init", project.to_str().unwrap()], None)
        .status
        .success());
    // a real warning: the project's API token file readable by others is narrowed (and said so)
    let token = project.join(".trainyard/api_token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = trainyard(&["init", project.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let warned = stderr(&o);
    assert!(
        warned.contains("WARN") && warned.contains("readable by others"),
        "{warned}"
    );
    assert!(!warned.contains('\u{1b}'), "colour codes: {warned:?}");
    let mode = std::fs::metadata(&token).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// The README's tour: the committed pushed model copied where the completion callback says
/// (`runs/1/pushed_model`, relative: the project's), and the callback registers it as version 1
/// whatever the working directory of the command (here: the crate's, not the project's).
#[test]
fn the_tours_completion_registers_the_committed_model() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("my-project");
    let tour = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tour");
    assert!(trainyard(&["init", project.to_str().unwrap()], None)
        .status
        .success());
    let config = tour.join("retrieval_run.json");
    let o = trainyard(
        &["runs", "create", "--config", config.to_str().unwrap()],
        Some(&project),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    copy_tree(
        &tour.join("pushed_model"),
        &project.join("runs/1/pushed_model"),
    );
    let event = tour.join("04_completed.json");
    let o = trainyard(
        &["runs", "event", "1", event.to_str().unwrap()],
        Some(&project),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("WARN"), "{}", stderr(&o));

    let o = trainyard(&["runs", "show", "1", "--json"], Some(&project));
    assert!(o.status.success(), "{}", stderr(&o));
    let shown: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let run = shown.get("run").unwrap_or(&shown);
    assert_eq!(run["vertex_model_version"], "1", "{shown}");
    assert_eq!(
        run["artifacts"]["pushed_model"],
        project
            .canonicalize()
            .unwrap()
            .join("runs/1/pushed_model")
            .display()
            .to_string()
    );
    let o = trainyard(
        &["registry", "versions", "product-retrieval", "--json"],
        Some(&project),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let registered = project.join("registry");
    let saved: Vec<_> = walk(&registered)
        .into_iter()
        .filter(|p| p.ends_with("saved_model.pb"))
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(
        std::fs::read(&saved[0]).unwrap(),
        std::fs::read(tour.join("pushed_model/1/saved_model.pb")).unwrap()
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Deploying where TensorFlow cannot be found is this machine's setup, not bad input: exit 1
/// (failure) with trainyard-serve's reason naming the settings, not 2 ("invalid input"); and
/// the run stays deployable (nothing changed).
#[test]
fn deploying_without_tensorflow_is_a_setup_failure_not_bad_input() {
    let serve = Path::new(env!("CARGO_BIN_EXE_trainyard"))
        .parent()
        .unwrap()
        .join("trainyard-serve");
    assert!(
        serve.is_file(),
        "{} is not built: `cargo build -p trainyard-serve` (make test-setup does)",
        serve.display()
    );
    let tour = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tour");
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p");
    let ok = |o: Output| assert!(o.status.success(), "{}", stderr(&o));
    ok(trainyard(&["init", project.to_str().unwrap()], None));
    let file = |name: &str| format!("{tour}/{name}");
    ok(trainyard(
        &["runs", "create", "--config", &file("retrieval_run.json")],
        Some(&project),
    ));
    for ev in ["01_submitted", "02_train_started", "03_epoch_0"] {
        ok(trainyard(
            &["runs", "event", "1", &file(&format!("{ev}.json"))],
            Some(&project),
        ));
    }
    std::fs::create_dir_all(project.join("runs/1")).unwrap();
    ok(Command::new("cp")
        .args(["-r", &file("pushed_model")])
        .arg(project.join("runs/1/"))
        .output()
        .unwrap());
    ok(trainyard(
        &["runs", "event", "1", &file("04_completed.json")],
        Some(&project),
    ));
    let no_tf = dir.path().join("no-tf");
    std::fs::create_dir_all(&no_tf).unwrap();
    let deploy = || {
        Command::new(env!("CARGO_BIN_EXE_trainyard"))
            .arg("--project")
            .arg(&project)
            .args(["deploy", "1", "--json"])
            .env_remove("TRAINYARD_PROJECT")
            .env("TRAINYARD_SERVE_BIN", &serve)
            .env("TRAINYARD_TF_LIB_DIR", &no_tf)
            .env("TRAINYARD_PYTHON", dir.path().join("no-such-python"))
            .output()
            .unwrap()
    };
    let o = deploy();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("TensorFlow C library not found") && !err.contains("invalid input"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let run: serde_json::Value = serde_json::from_str(&stdout(&trainyard(
        &["runs", "show", "1", "--json"],
        Some(&project),
    )))
    .unwrap();
    assert_eq!(run["status"], "completed", "{run}");
}
