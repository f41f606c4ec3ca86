//! One use case, three front ends. Each case of the table runs through the CLI (the real
//! binary), the REST API (the real router on a random 127.0.0.1 port) and Python (the wheel,
//! in the venv `make test-python` builds), each on its own freshly seeded project, and the
//! normalized results must be equal to each other and to what the case expects.
//!
//! The Python leg needs the wheel built from this tree: `TRAINYARD_TEST_PYTHON` names an
//! interpreter that imports it (`make test-front-ends` builds the wheel, installs it in a
//! fresh venv and sets the variable). Without it the Python leg is skipped with a message
//! saying so, and the CLI and REST legs still run (plain `cargo test`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use trainyard::core::run::NewTrainingRun;
use trainyard::core::schedule::ScheduleType;
use trainyard::core::timing::ScheduleTiming;
use trainyard::http::api;
use trainyard::http::ApiSecurity;
use trainyard::{NewSchedule, Platform};

/// A seeded project: three runs (and so three registered models, created in the order
/// alpha, beta, gamma) and a weekly schedule on alpha's model (Monday 06:00 Europe/Warsaw).
struct Project {
    _dir: tempfile::TempDir,
    path: PathBuf,
    ml_model: String,
    schedule_id: i64,
    alpha_run: i64,
}

fn seed(rt: &tokio::runtime::Runtime) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proj");
    rt.block_on(async {
        let p = Platform::init(&path).await.unwrap();
        let mut ids = Vec::new();
        for name in ["alpha", "beta", "gamma"] {
            let run = p
                .create_run(NewTrainingRun {
                    name: name.into(),
                    ..NewTrainingRun::default()
                })
                .await
                .unwrap();
            ids.push(run.id);
        }
        let schedule = p
            .schedules()
            .create_from_run(
                ids[0],
                NewSchedule {
                    name: "weekly".into(),
                    description: String::new(),
                    timing: ScheduleTiming {
                        schedule_type: ScheduleType::Weekly,
                        scheduled_datetime: None,
                        schedule_time: Some("06:00".into()),
                        schedule_day_of_week: Some(0),
                        schedule_day_of_month: None,
                        schedule_timezone: "Europe/Warsaw".into(),
                    },
                    catch_up: Default::default(),
                    concurrency: Default::default(),
                },
            )
            .await
            .unwrap();
        Project {
            ml_model: p.config().project.ml_model.clone(),
            schedule_id: schedule.id,
            alpha_run: ids[0],
            path,
            _dir: dir,
        }
    })
}

// ---- the CLI leg -------------------------------------------------------------------------

fn cli(project: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .arg("--project")
        .arg(project)
        .args(args)
        .env_remove("TRAINYARD_PROJECT")
        .env_remove("TRAINYARD_BACKEND")
        .output()
        .unwrap()
}

fn cli_json(project: &Path, args: &[&str]) -> Value {
    let o = cli(project, args);
    assert!(
        o.status.success(),
        "trainyard {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "trainyard {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

fn write(project: &Path, name: &str, value: &Value) -> String {
    let file = project.join(name);
    std::fs::write(&file, value.to_string()).unwrap();
    file.display().to_string()
}

// ---- the REST leg ------------------------------------------------------------------------

struct Rest {
    base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn rest(rt: &tokio::runtime::Runtime, project: &Path) -> Rest {
    rt.block_on(async {
        let platform = Platform::open(project).await.unwrap();
        let token = platform.api_token().unwrap().value().to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let security = ApiSecurity::for_platform(&platform).unwrap();
        let app = api::app(platform, None, security);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(api::serve(listener, app, async {
            let _ = stopped.await;
        }));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        Rest {
            base,
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap(),
            _stop: stop,
        }
    })
}

impl Rest {
    fn call(
        &self,
        rt: &tokio::runtime::Runtime,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        rt.block_on(async {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let v: Value = resp.json().await.unwrap();
            assert!(status.is_success(), "{method} {path}: {status} {v}");
            v
        })
    }
}

// ---- the Python leg ----------------------------------------------------------------------

/// The interpreter of the Python leg: `TRAINYARD_TEST_PYTHON`, which must import the wheel
/// built from this tree (`make test-front-ends` builds one and sets it).
fn python() -> Option<PathBuf> {
    let candidate = PathBuf::from(std::env::var_os("TRAINYARD_TEST_PYTHON")?);
    let ok = Command::new(&candidate)
        .args(["-c", "import trainyard"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "TRAINYARD_TEST_PYTHON={} cannot import trainyard",
        candidate.display()
    );
    Some(candidate)
}

/// Runs `body` (Python; `p` is the opened Platform, `out(value)` prints the result as JSON;
/// an exception becomes `{"error": message}`).
fn py(python: &Path, project: &Path, body: &str) -> Value {
    let script = format!(
        "import json, sys, trainyard\n\
         p = trainyard.Platform.open(sys.argv[1])\n\
         def out(v):\n    print(json.dumps(v))\n\
         try:\n{}\nexcept Exception as e:\n    out({{'error': str(e)}})\n",
        body.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let o = Command::new(python)
        .args(["-c", &script])
        .arg(project)
        .env_remove("TRAINYARD_PROJECT")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "python: not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

// ---- the cases ---------------------------------------------------------------------------

type Leg = fn(&Ctx, &Project) -> Option<Value>;

struct Ctx {
    rt: tokio::runtime::Runtime,
    python: Option<PathBuf>,
}

struct Case {
    name: &'static str,
    expected: fn(&Project) -> Value,
    cli: Leg,
    rest: Leg,
    python: Leg,
}

const PARTIAL: &str = r#"{"model_config": {"model_type": "ranking"}}"#;

fn run_summary(run: &Value) -> Value {
    json!({
        "name": run["name"],
        "ml_model": run["ml_model"],
        "model_type": run["model_config"]["model_type"],
        "model_name": run["model_config"]["name"],
        "epochs": run["training_params"]["epochs"],
        "status": run["status"],
    })
}

fn model_summary(m: &Value) -> Value {
    json!({"id": m["id"], "model_name": m["model_name"], "model_type": m["model_type"]})
}

/// The model names of listing pages in order, and where the last page lies.
fn pages_summary(pages: &[Value]) -> Value {
    let names: Vec<Value> = pages
        .iter()
        .flat_map(|v| v["registered_models"].as_array().unwrap().clone())
        .map(|m| m["model_name"].clone())
        .collect();
    json!({"names": names, "last_page": pages.last().unwrap()["pagination"]})
}

fn timing_of(s: &Value) -> Value {
    json!({
        "schedule_type": s["schedule_type"],
        "schedule_time": s["schedule_time"],
        "schedule_day_of_week": s["schedule_day_of_week"],
        "schedule_timezone": s["schedule_timezone"],
    })
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "create a run from a partial config (merged over the defaults)",
            expected: |p| {
                let defaults = trainyard::core::run::RunConfig::default();
                json!({
                    "name": "delta",
                    "ml_model": p.ml_model,
                    "model_type": "ranking",
                    "model_name": defaults.model_config.name,
                    "epochs": defaults.training_params.epochs,
                    "status": "pending",
                })
            },
            cli: |_, p| {
                let mut body: Value = serde_json::from_str(PARTIAL).unwrap();
                body["name"] = json!("delta");
                let file = write(&p.path, "partial.json", &body);
                Some(run_summary(&cli_json(
                    &p.path,
                    &["runs", "create", "--config", &file, "--json"],
                )))
            },
            rest: |c, p| {
                let r = rest(&c.rt, &p.path);
                let mut body: Value = serde_json::from_str(PARTIAL).unwrap();
                body["name"] = json!("delta");
                let v = r.call(
                    &c.rt,
                    reqwest::Method::POST,
                    &format!("/api/models/{}/training-runs/", p.ml_model),
                    Some(body),
                );
                Some(run_summary(&v["training_run"]))
            },
            python: |c, p| {
                let v = py(
                    c.python.as_deref()?,
                    &p.path,
                    &format!("out(p.training.create('delta', {PARTIAL}).to_dict())"),
                );
                Some(run_summary(&v))
            },
        },
        Case {
            name: "list models, newest first, page by page",
            expected: |_| {
                json!({
                    "names": ["gamma", "beta", "alpha"],
                    "last_page": {
                        "page": 2, "page_size": 2, "total": 3, "total_pages": 2,
                        "has_next": false, "has_previous": true,
                    },
                })
            },
            cli: |_, p| {
                let pages = ["1", "2"].map(|page| {
                    cli_json(
                        &p.path,
                        &[
                            "models",
                            "list",
                            "--page",
                            page,
                            "--page-size",
                            "2",
                            "--json",
                        ],
                    )
                });
                // `registry list` pages the same listing (with its own table).
                let registry_pages = ["1", "2"].map(|page| {
                    cli_json(
                        &p.path,
                        &[
                            "registry",
                            "list",
                            "--page",
                            page,
                            "--page-size",
                            "2",
                            "--json",
                        ],
                    )
                });
                assert_eq!(pages_summary(&registry_pages), pages_summary(&pages));
                Some(pages_summary(&pages))
            },
            rest: |c, p| {
                let r = rest(&c.rt, &p.path);
                let pages = [1, 2].map(|page| {
                    r.call(
                        &c.rt,
                        reqwest::Method::GET,
                        &format!("/api/registered-models/?page={page}&page_size=2"),
                        None,
                    )
                });
                Some(pages_summary(&pages))
            },
            python: |c, p| {
                let v = py(
                    c.python.as_deref()?,
                    &p.path,
                    "out([p.registry.list_page(page=n, page_size=2).to_dict() for n in (1, 2)])",
                );
                Some(pages_summary(v.as_array()?))
            },
        },
        Case {
            name: "find a model by name, and by id",
            expected: |_| {
                json!({
                    "by_name": {"id": 2, "model_name": "beta", "model_type": "retrieval"},
                    "by_id": {"id": 3, "model_name": "gamma", "model_type": "retrieval"},
                })
            },
            cli: |_, p| {
                let find = |key: &str| {
                    model_summary(&cli_json(&p.path, &["models", "show", key, "--json"]))
                };
                Some(json!({"by_name": find("beta"), "by_id": find("3")}))
            },
            rest: |c, p| {
                let r = rest(&c.rt, &p.path);
                let find = |key: &str| {
                    let v = r.call(
                        &c.rt,
                        reqwest::Method::GET,
                        &format!("/api/registered-models/{key}/"),
                        None,
                    );
                    model_summary(&v["registered_model"])
                };
                Some(json!({"by_name": find("beta"), "by_id": find("3")}))
            },
            python: |c, p| {
                let v = py(
                    c.python.as_deref()?,
                    &p.path,
                    "out({'by_name': p.registry.find('beta').to_dict(), 'by_id': p.registry.find(3).to_dict()})",
                );
                Some(
                    json!({"by_name": model_summary(&v["by_name"]), "by_id": model_summary(&v["by_id"])}),
                )
            },
        },
        Case {
            name: "compile: the local target's files; vertex needs a region",
            expected: |_| {
                json!({
                    "local_files": ["pipeline.py", "trainer_module.py", "trainyard_evaluator.py", "trainyard_trainer_support.py", "transform_module.py"],
                    "vertex_without_region_names": "region",
                })
            },
            cli: |_, p| {
                let run = write(&p.path, "run.json", &json!({"name": "alpha"}));
                let out = p.path.join("compiled");
                let o = cli(
                    &p.path,
                    &[
                        "pipeline",
                        "compile",
                        "--run",
                        &run,
                        "--target",
                        "local",
                        "--out",
                        out.to_str().unwrap(),
                    ],
                );
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                let mut files: Vec<String> = std::fs::read_dir(&out)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|f| f.ends_with(".py"))
                    .collect();
                files.sort();
                let job = p.path.join("job.json");
                let o = cli(
                    &p.path,
                    &[
                        "pipeline",
                        "compile",
                        "--run",
                        &run,
                        "--target",
                        "vertex",
                        "--out",
                        job.to_str().unwrap(),
                        "--pipeline-root",
                        "gs://b/root",
                        "--gcp-project",
                        "p",
                    ],
                );
                assert_eq!(o.status.code(), Some(2));
                let err = String::from_utf8_lossy(&o.stderr);
                Some(json!({
                    "local_files": files,
                    "vertex_without_region_names": if err.contains("region") { "region" } else { "-" },
                }))
            },
            // The REST API offers no compile.
            rest: |_, _| None,
            python: |c, p| {
                let v = py(
                    c.python.as_deref()?,
                    &p.path,
                    &format!(
                        "files = sorted(f.split('/')[-1] for f in p.training.compile({id}, 'local') if f.endswith('.py'))\n\
                         try:\n    p.training.compile({id}, 'vertex', pipeline_root='gs://b/root', project='p')\n    err = ''\n\
                         except Exception as e:\n    err = str(e)\n\
                         out({{'local_files': files, 'vertex_without_region_names': 'region' if 'region' in err else '-'}})",
                        id = p.alpha_run
                    ),
                );
                Some(v)
            },
        },
        Case {
            name: "generate modules from partial configs (merged over the defaults); an unknown field is refused",
            expected: |_| {
                let mut c = trainyard::core::run::RunConfig::default();
                c.model_config.model_type = trainyard::core::ModelType::Ranking;
                let m = trainyard_codegen::generate(
                    &c.feature_config,
                    &c.model_config,
                    &c.training_params,
                    &c.gpu_config,
                )
                .unwrap();
                json!({"files": m.files, "unknown_field_refused": true})
            },
            cli: |_, p| {
                let features = write(&p.path, "features.json", &json!({}));
                let model = write(&p.path, "model.json", &json!({"model_type": "ranking"}));
                let params = write(&p.path, "params.json", &json!({}));
                let out = p.path.join("modules");
                let args = |model: &str| {
                    let mut a = vec!["codegen", "--feature-config", &features];
                    a.extend(["--model-config", model, "--training-params", &params]);
                    a.extend(["--out", out.to_str().unwrap()]);
                    a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
                };
                let argv = args(&model);
                let o = cli(&p.path, &argv.iter().map(String::as_str).collect::<Vec<_>>());
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                let files: serde_json::Map<String, Value> = std::fs::read_dir(&out)
                    .unwrap()
                    .map(|e| {
                        let e = e.unwrap();
                        let source = std::fs::read_to_string(e.path()).unwrap();
                        (e.file_name().to_string_lossy().into_owned(), json!(source))
                    })
                    .collect();
                let typo = write(&p.path, "typo.json", &json!({"modle_type": "ranking"}));
                let argv = args(&typo);
                let o = cli(&p.path, &argv.iter().map(String::as_str).collect::<Vec<_>>());
                let err = String::from_utf8_lossy(&o.stderr);
                let refused = o.status.code() == Some(2)
                    && err.contains("model_config")
                    && err.contains("did you mean `model_type`");
                assert!(refused, "{err}");
                Some(json!({"files": files, "unknown_field_refused": refused}))
            },
            // The REST API offers no code generation.
            rest: |_, _| None,
            python: |c, p| {
                let v = py(
                    c.python.as_deref()?,
                    &p.path,
                    "from trainyard import codegen\n\
                     files = codegen.generate({}, {'model_type': 'ranking'}, {})\n\
                     try:\n    codegen.generate({}, {'modle_type': 'ranking'})\n    refused = False\n\
                     except trainyard.ValidationError as e:\n    \
                     refused = e.field == 'model_config' and 'did you mean `model_type`' in e.reason\n\
                     out({'files': files, 'unknown_field_refused': refused})",
                );
                Some(v)
            },
        },
        Case {
            name: "patch a schedule's time only (the rest of its timing stays)",
            expected: |_| {
                json!({
                    "schedule_type": "weekly",
                    "schedule_time": "10:30",
                    "schedule_day_of_week": 0,
                    "schedule_timezone": "Europe/Warsaw",
                })
            },
            cli: |_, p| {
                let file = write(
                    &p.path,
                    "edit.json",
                    &json!({"timing": {"schedule_time": "10:30"}}),
                );
                Some(timing_of(&cli_json(
                    &p.path,
                    &["schedule", "edit", &p.schedule_id.to_string(), &file],
                )))
            },
            rest: |c, p| {
                let r = rest(&c.rt, &p.path);
                let v = r.call(
                    &c.rt,
                    reqwest::Method::PUT,
                    &format!("/api/training/schedules/{}/", p.schedule_id),
                    Some(json!({"schedule_time": "10:30"})),
                );
                Some(timing_of(&v["schedule"]))
            },
            python: |c, p| {
                let v = py(
                    c.python.as_deref()?,
                    &p.path,
                    &format!(
                        "out(p.schedules.edit({}, {{'timing': {{'schedule_time': '10:30'}}}}).to_dict())",
                        p.schedule_id
                    ),
                );
                Some(timing_of(&v))
            },
        },
    ]
}

#[test]
fn every_front_end_gives_the_same_answer() {
    let ctx = Ctx {
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
        python: python(),
    };
    if ctx.python.is_none() {
        eprintln!(
            "front_ends: Python leg SKIPPED: TRAINYARD_TEST_PYTHON is not set \
             (`make test-front-ends` builds the wheel and runs all three legs)"
        );
    }
    let mut failures = Vec::new();
    for case in cases() {
        for (leg, run) in [
            ("cli", case.cli),
            ("rest", case.rest),
            ("python", case.python),
        ] {
            let project = seed(&ctx.rt);
            let expected = (case.expected)(&project);
            match run(&ctx, &project) {
                None => eprintln!("front_ends: {}: {leg}: not offered", case.name),
                Some(got) if got == expected => {}
                Some(got) => failures.push(format!(
                    "{}: {leg}:\n  got      {got}\n  expected {expected}",
                    case.name
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
