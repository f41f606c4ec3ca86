//! The report in a real browser: a project whose runs are filled through the facade services
//! (pipeline events, as the runners and webhooks send them), `trainyard report` run as a
//! process, and the page loaded in headless Chromium, checking its DOM and a screenshot.
//!
//! Ignored by default: `make test-report` installs Chromium and sets TRAINYARD_BIN (the built
//! CLI) and CHROMIUM (the browser).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use trainyard::core::model_config::{ModelConfig, ModelType};
use trainyard::core::ports::{Clock, FireOutcome, PipelineEvent};
use trainyard::core::run::{NewTrainingRun, RunConfig, TrainingRun};
use trainyard::core::schedule::ScheduleType;
use trainyard::core::stages::StageName;
use trainyard::core::timing::ScheduleTiming;
use trainyard::{NewSchedule, Platform, ProjectConfig};
use trainyard_store::SqliteStore;

/// A clock the test moves, so stages and fires get realistic, distinct times.
struct SteppedClock(Mutex<DateTime<Utc>>);

impl SteppedClock {
    fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }
    fn advance(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

fn env_path(var: &str) -> PathBuf {
    PathBuf::from(
        std::env::var(var).unwrap_or_else(|_| {
            panic!("{var} is not set: run this test through `make test-report`")
        }),
    )
}

/// training_metrics.json of a retrieval trainer: per-epoch arrays and final scalars.
fn metrics_doc(epochs: usize, quality: f64) -> serde_json::Value {
    let series =
        |f: &dyn Fn(f64) -> f64| -> Vec<f64> { (0..epochs).map(|e| f(e as f64)).collect() };
    json!({
        "loss": {
            "loss": series(&|e| 9000.0 / (e + 1.0) + 500.0),
            "val_loss": series(&|e| 9500.0 / (e + 1.0) + 700.0),
            "regularization_loss": series(&|e| 0.8 - 0.05 * e),
            "val_recall_at_5": series(&|e| quality * (0.05 + 0.01 * e)),
            "val_recall_at_10": series(&|e| quality * (0.09 + 0.015 * e)),
            "val_recall_at_50": series(&|e| quality * (0.25 + 0.03 * e)),
            "val_recall_at_100": series(&|e| quality * (0.35 + 0.04 * e)),
        },
        "final_metrics": {
            "test_recall_at_100": quality * (0.35 + 0.04 * (epochs as f64 - 1.0)) - 0.01,
        },
        "weight_stats": weight_stats_doc(epochs),
    })
}

/// Towers of the fixture's weight statistics and the histogram size (the trainer's default is
/// 30 bins; fewer keep the fixture small).
const TOWERS: [(&str, u64); 2] = [("buyer_tower", 4 * 1001), ("product_tower", 4 * 301)];
const BINS: usize = 12;

/// Statistics of `n` values drawn from N(mean, sd), binned as the trainer does (edges from
/// the min to the max, the last bin closed).
fn tensor_doc(n: u64, mean: f64, sd: f64, variables: serde_json::Value) -> serde_json::Value {
    let (lo, hi) = (mean - 3.0 * sd, mean + 3.0 * sd);
    let edges: Vec<f64> = (0..=BINS)
        .map(|i| lo + (hi - lo) * i as f64 / BINS as f64)
        .collect();
    let pdf = |x: f64| (-0.5 * ((x - mean) / sd).powi(2)).exp();
    let weights: Vec<f64> = edges.windows(2).map(|w| pdf((w[0] + w[1]) / 2.0)).collect();
    let total: f64 = weights.iter().sum();
    let mut counts: Vec<u64> = weights
        .iter()
        .map(|w| (w / total * n as f64).floor() as u64)
        .collect();
    counts[BINS / 2] += n - counts.iter().sum::<u64>();
    let abs_mean = sd * (2.0 / std::f64::consts::PI).sqrt() + mean.abs();
    json!({
        "count": n, "nonfinite": 0,
        "l1_norm": n as f64 * abs_mean,
        "l2_norm": (n as f64 * (sd * sd + mean * mean)).sqrt(),
        "mean": mean, "std": sd, "min": lo, "max": hi,
        "histogram": {"bin_edges": edges, "counts": counts},
        "variables": variables,
    })
}

/// training_metrics.json `weight_stats` as the generated trainer writes it: per epoch and
/// tower, the weights (spreading out as training goes on) and the probe batch's gradients
/// (shrinking).
fn weight_stats_doc(epochs: usize) -> serde_json::Value {
    let epochs: Vec<serde_json::Value> = (0..epochs)
        .map(|e| {
            let e_f = e as f64;
            let towers: serde_json::Map<String, serde_json::Value> = TOWERS
                .iter()
                .enumerate()
                .map(|(i, (name, n))| {
                    let vars = json!([{"name": format!("{name}/embedding/embeddings:0"), "shape": [n / 4, 4]}]);
                    let sd = 0.05 * (1.0 + 0.3 * e_f) * (1.0 + i as f64);
                    (
                        name.to_string(),
                        json!({
                            "weights": tensor_doc(*n, 0.001 * e_f, sd, vars.clone()),
                            "gradients": tensor_doc(*n, 0.0, 0.01 / (1.0 + e_f), vars),
                        }),
                    )
                })
                .collect();
            json!({"epoch": e, "towers": towers})
        })
        .collect();
    json!({"histogram_bins": BINS, "epochs": epochs})
}

/// Drives one run through a whole pipeline: stages with times, epochs, then the verdict.
async fn train(
    p: &Platform,
    clock: &SteppedClock,
    run: &TrainingRun,
    quality: f64,
    outcome: Result<bool, &str>,
) -> TrainingRun {
    let t = p.training();
    let ev = |e: PipelineEvent| e;
    t.handle_event(
        run.id,
        &ev(PipelineEvent::Submitted {
            job_name: Some(format!("job-{}", run.id)),
            job_id: Some(format!("{}", run.id)),
        }),
    )
    .await
    .unwrap();
    for (stage, secs) in [
        (StageName::Examples, 25),
        (StageName::Stats, 20),
        (StageName::Schema, 5),
        (StageName::Transform, 70),
        (StageName::Train, 0),
    ] {
        t.handle_event(run.id, &PipelineEvent::StageStarted { stage })
            .await
            .unwrap();
        clock.advance(Duration::seconds(secs));
    }
    let doc = metrics_doc(6, quality);
    for epoch in 0..6u32 {
        clock.advance(Duration::seconds(40));
        let metrics: BTreeMap<String, f64> = doc["loss"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v[epoch as usize].as_f64().unwrap()))
            .collect();
        t.handle_event(run.id, &PipelineEvent::EpochCompleted { epoch, metrics })
            .await
            .unwrap();
    }
    match outcome {
        Err(error) => t
            .handle_event(
                run.id,
                &PipelineEvent::Failed {
                    error: error.into(),
                    stage: None,
                },
            )
            .await
            .unwrap(),
        Ok(blessed) => {
            t.handle_event(
                run.id,
                &PipelineEvent::StageStarted {
                    stage: StageName::Evaluate,
                },
            )
            .await
            .unwrap();
            clock.advance(Duration::seconds(35));
            t.handle_event(
                run.id,
                &PipelineEvent::Completed {
                    training_metrics: doc,
                    blessed,
                    artifacts: BTreeMap::new(),
                },
            )
            .await
            .unwrap()
        }
    }
}

fn fired(outcome: FireOutcome) -> TrainingRun {
    match outcome {
        FireOutcome::Created { run } => *run,
        other => panic!("the schedule did not fire: {other:?}"),
    }
}

/// Builds the project; returns the id of the run to report on and its recall@100.
async fn build_project(dir: &Path) -> (i64, f64) {
    Platform::init(dir).await.unwrap();
    let store = Arc::new(SqliteStore::open(dir.join("trainyard.db")).await.unwrap());
    // The history starts six weeks ago so the grid's past weeks hold runs; the CLI draws the
    // grid at the real "now".
    let start = Utc::now() - Duration::weeks(6);
    let clock = Arc::new(SteppedClock(Mutex::new(start)));
    let p = Platform::with_store(
        dir.to_path_buf(),
        ProjectConfig::default(),
        store,
        clock.clone(),
    );
    let v1 = p
        .training()
        .create_training_run(NewTrainingRun {
            ml_model: "shop".into(),
            name: "product-retrieval".into(),
            description: "first model".into(),
            config: RunConfig {
                model_config: ModelConfig {
                    model_type: ModelType::Retrieval,
                    ..ModelConfig::default()
                },
                ..RunConfig::default()
            },
        })
        .await
        .unwrap();
    let v1 = train(&p, &clock, &v1, 0.8, Ok(true)).await;
    let schedule = p
        .schedules()
        .create_from_run(
            v1.id,
            NewSchedule {
                name: "weekly <i>retraining</i> & co".into(),
                description: String::new(),
                timing: ScheduleTiming {
                    schedule_type: ScheduleType::Weekly,
                    scheduled_datetime: None,
                    schedule_time: Some("09:00".into()),
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
    // Three fires, a week apart: a better model, a failure, a model below the bar.
    let mut reported = None;
    for (week, quality, outcome) in [
        (1, 1.0, Ok(true)),
        (2, 1.0, Err("trainer OOM")),
        (3, 0.5, Ok(false)),
    ] {
        clock.set(start + Duration::weeks(week));
        let run = fired(p.schedules().trigger_now(schedule.id).await.unwrap());
        let run = train(&p, &clock, &run, quality, outcome).await;
        if week == 1 {
            reported = Some(run);
        }
    }
    let run = reported.unwrap();
    (run.id, run.results.recall_at_100.unwrap())
}

/// Text of the first `<svg ... data-chart="id" ...>...</svg>` in the DOM.
fn chart<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("data-chart=\"{id}\""))
        .unwrap_or_else(|| panic!("chart {id} is missing from the DOM"));
    let start = dom[..at].rfind("<svg").unwrap();
    let end = dom[at..].find("</svg>").unwrap() + at;
    &dom[start..end]
}

fn chromium(args: &[&str]) -> std::process::Output {
    let out = Command::new(env_path("CHROMIUM"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
        ])
        .args(args)
        .output()
        .expect("chromium starts");
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the built CLI: make test-report"]
async fn report_renders_in_chromium_with_every_chart() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let (run_id, recall_100) = build_project(&project).await;

    let html_path = dir.path().join("out").join("report.html");
    let out = Command::new(env_path("TRAINYARD_BIN"))
        .arg("--project")
        .arg(&project)
        .args(["report", &run_id.to_string(), "--out"])
        .arg(&html_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "trainyard report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("4 versions"), "{stdout}");
    let html = std::fs::read_to_string(&html_path).unwrap();
    trainyard_report::self_contained(&html).unwrap();

    let url = format!("file://{}", html_path.display());
    let dom = String::from_utf8(chromium(&["--dump-dom", &url]).stdout).unwrap();
    assert!(
        dom.contains("<body>") || dom.contains("<body "),
        "no DOM: {dom:.200}"
    );
    for id in [
        "loss",
        "recall",
        "stages",
        "versions",
        "schedule-grid",
        "insights-regularization_loss",
    ] {
        let svg = chart(&dom, id);
        let marks = svg.matches("<path").count() + svg.matches("<rect").count();
        assert!(marks > 0, "chart {id} is empty: {svg:.300}");
    }
    assert!(
        !dom.contains("data-chart-empty"),
        "a chart fell back to its note"
    );
    // Training insights: a norm line per tower with a point per epoch, and ridgelines with a
    // row per epoch and tower, each row one step per recorded bin.
    assert!(stdout.contains("weight statistics of 2 towers"), "{stdout}");
    for id in trainyard_report::insights::WEIGHT_CHART_IDS {
        let svg = chart(&dom, id);
        if id.ends_with("ridgeline") {
            let rows: Vec<&str> = svg.split("<path class=\"ridge\"").skip(1).collect();
            assert_eq!(rows.len(), 6 * TOWERS.len(), "{id}");
            for row in rows {
                let d = row
                    .split(" d=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                assert_eq!(d.matches('H').count(), BINS, "{id}: {d}");
            }
        } else {
            for (tower, _) in TOWERS {
                assert_eq!(
                    svg.matches(&format!("<circle class=\"point\" data-series=\"{tower}\""))
                        .count(),
                    6,
                    "{id} {tower}"
                );
            }
        }
    }
    // The run's recall@100 as the report formats it, and its other KPIs.
    let shown = trainyard_report::format_metric(recall_100);
    assert!(dom.contains(&shown), "recall@100 {shown} not shown");
    for label in ["Recall@5", "Recall@10", "Recall@50", "Recall@100"] {
        assert!(dom.contains(label), "{label}");
    }
    // Loss per epoch: 6 epochs of loss and of val_loss.
    assert_eq!(chart(&dom, "loss").matches("<circle").count(), 12);
    // The KPI chart has the three versions with results (the failed one has none).
    assert_eq!(
        chart(&dom, "versions")
            .matches("data-series=\"recall_at_100\" cx=")
            .count(),
        3
    );
    let grid = chart(&dom, "schedule-grid");
    assert_eq!(grid.matches("class=\"week\"").count(), 40);
    assert_eq!(grid.matches("<rect").count(), 280);
    for class in ["run-succeeded", "run-failed", "run-not-blessed", "planned"] {
        assert!(grid.contains(class), "grid has no {class} day");
    }
    // The schedule name's markup stayed text.
    assert!(dom.contains("weekly &lt;i&gt;retraining&lt;/i&gt; &amp; co"));
    assert!(!dom.contains("<i>retraining"));

    let png_path = dir.path().join("report.png");
    chromium(&[
        &format!("--screenshot={}", png_path.display()),
        "--window-size=1280,2400",
        &url,
    ]);
    // Kept for people to look at when asked (make test-report keeps them under target/report).
    if let Ok(keep) = std::env::var("TRAINYARD_REPORT_ARTIFACTS") {
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&html_path, Path::new(&keep).join("report.html")).unwrap();
        std::fs::copy(&png_path, Path::new(&keep).join("report.png")).unwrap();
    }
    check_screenshot(&png_path);
}

/// The screenshot exists, is not tiny, and is a picture rather than one flat color.
fn check_screenshot(path: &Path) {
    let bytes = std::fs::read(path).expect("screenshot written");
    assert!(bytes.len() > 20_000, "screenshot is {} bytes", bytes.len());
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1280, 2400));
    let channels = info.line_size / info.width as usize;
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| &p[..3.min(channels)])
        .collect();
    let distinct: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    assert!(distinct.len() > 50, "only {} colors", distinct.len());
    // The most common color (the page background) must leave room for content.
    let mut counts: BTreeMap<&[u8], usize> = BTreeMap::new();
    for p in &pixels {
        *counts.entry(p).or_default() += 1;
    }
    let top = counts.values().max().copied().unwrap_or(0);
    assert!(
        top < pixels.len() * 95 / 100,
        "{}% of the screenshot is one color",
        top * 100 / pixels.len()
    );
    // Series colors of the charts are on the page (the blue of the first series).
    assert!(
        pixels
            .iter()
            .any(|p| p[0] < 60 && p[1] > 80 && p[1] < 120 && p[2] > 200),
        "no chart line color in the screenshot"
    );
}
