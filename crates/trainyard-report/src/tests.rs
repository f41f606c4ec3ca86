//! Renderer tests on hand-built domain values (no store, no clock).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc, Weekday};
use trainyard_core::metrics::{EpochMetrics, RunResults};
use trainyard_core::model_config::{ModelConfig, ModelType};
use trainyard_core::registry::RegisteredModel;
use trainyard_core::run::{NewTrainingRun, RunConfig, TrainingRun};
use trainyard_core::schedule::{
    CatchUpPolicy, ConcurrencyPolicy, ScheduleStatus, ScheduleType, TrainingSchedule,
};
use trainyard_core::stages::StageName;
use trainyard_core::timing::ScheduleTiming;
use trainyard_core::RunStatus;
use trainyard_insights::weights::{EpochWeightStats, TensorHistogram, TensorStats, TowerStats};

use super::*;

/// Wednesday 2026-03-18 12:00 UTC.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 18, 12, 0, 0).unwrap()
}

fn run(id: i64, number: u32, name: &str, model_type: ModelType) -> TrainingRun {
    let mut r = TrainingRun::new(
        NewTrainingRun {
            ml_model: "shop".into(),
            name: name.into(),
            description: String::new(),
            config: RunConfig {
                model_config: ModelConfig {
                    model_type,
                    ..ModelConfig::default()
                },
                ..RunConfig::default()
            },
        },
        Some(7),
        now() - Duration::days(30) + Duration::days(i64::from(number)),
    );
    r.id = id;
    r.run_number = number;
    r
}

fn finished(mut r: TrainingRun, results: RunResults) -> TrainingRun {
    let t0 = r.created_at;
    r.update_stages(|s| {
        s.start(StageName::Compile, t0);
        s.start(StageName::Train, t0 + Duration::seconds(40));
        s.complete(StageName::Train, t0 + Duration::seconds(160));
        s.complete(StageName::Register, t0 + Duration::seconds(175));
    });
    r.status = RunStatus::Completed;
    r.results = results;
    r
}

fn history(n: u32, model_type: ModelType) -> Vec<EpochMetrics> {
    (0..n)
        .map(|e| {
            let x = f64::from(e);
            let mut v = BTreeMap::from([
                ("loss".to_string(), 100.0 / (x + 1.0)),
                ("val_loss".to_string(), 110.0 / (x + 1.0)),
                ("regularization_loss".to_string(), 0.5 - x * 0.01),
            ]);
            if model_type != ModelType::Ranking {
                v.insert("val_recall_at_100".into(), 0.1 + x * 0.05);
                v.insert("val_recall_at_10".into(), 0.02 + x * 0.01);
            }
            if model_type != ModelType::Retrieval {
                v.insert("val_rmse".into(), 1.5 - x * 0.1);
                v.insert("val_mae".into(), 1.2 - x * 0.1);
            }
            EpochMetrics::from_values(e, v)
        })
        .collect()
}

fn model(model_type: ModelType) -> RegisteredModel {
    let mut m = RegisteredModel::new("shop", "product-retrieval", model_type, "", now());
    m.id = 7;
    m
}

fn weekly(tz: &str, status: ScheduleStatus) -> TrainingSchedule {
    TrainingSchedule {
        id: 3,
        name: "weekly retrain".into(),
        description: String::new(),
        ml_model: "shop".into(),
        registered_model_id: 7,
        source_training_run_id: Some(1),
        timing: ScheduleTiming {
            schedule_type: ScheduleType::Weekly,
            scheduled_datetime: None,
            schedule_time: Some("09:00".into()),
            schedule_day_of_week: Some(0),
            schedule_day_of_month: None,
            schedule_timezone: tz.into(),
        },
        catch_up: CatchUpPolicy::Once,
        concurrency: ConcurrencyPolicy::Skip,
        training_config: RunConfig::default(),
        cloud_scheduler_job_name: String::new(),
        status,
        last_run_at: None,
        next_run_at: None,
        total_runs: 0,
        successful_runs: 0,
        failed_runs: 0,
        // Created five weeks before "now".
        created_at: now() - Duration::weeks(5),
        updated_at: now(),
        version: 1,
    }
}

fn retrieval_results(r100: f64) -> RunResults {
    RunResults {
        recall_at_5: Some(0.0123),
        recall_at_10: Some(0.0456),
        recall_at_50: Some(0.2345),
        recall_at_100: Some(r100),
        final_loss: Some(12.345678),
        is_blessed: Some(true),
        ..RunResults::default()
    }
}

fn full_input() -> ReportInput {
    let v1 = finished(
        run(1, 1, "product-retrieval", ModelType::Retrieval),
        retrieval_results(0.3111),
    );
    let v2 = finished(
        run(2, 2, "product-retrieval", ModelType::Retrieval),
        retrieval_results(0.4321),
    );
    ReportInput {
        run: v2.clone(),
        history: history(5, ModelType::Retrieval),
        model: Some(model(ModelType::Retrieval)),
        versions: vec![v2, v1],
        schedule: Some(ScheduleData {
            schedule: weekly("UTC", ScheduleStatus::Active),
            runs: Vec::new(),
        }),
        weight_stats: Ok(weight_history(3, &["buyer_tower", "product_tower"])),
        generated_at: now(),
    }
}

/// Histogram and norms of `n` values spread evenly over [lo, hi] into `bins` bins.
fn tensor(lo: f64, hi: f64, bins: usize, n: u64) -> TensorStats {
    let edges: Vec<f64> = (0..=bins)
        .map(|i| lo + (hi - lo) * i as f64 / bins as f64)
        .collect();
    let mut counts = vec![n / bins as u64; bins];
    counts[bins / 2] += n % bins as u64;
    TensorStats {
        count: n,
        nonfinite: 0,
        l1_norm: n as f64 * (hi - lo) / 4.0,
        l2_norm: (n as f64).sqrt() * (hi - lo) / 3.0,
        mean: (lo + hi) / 2.0,
        std: (hi - lo) / 3.5,
        min: lo,
        max: hi,
        histogram: TensorHistogram {
            bin_edges: edges,
            counts,
        },
        variables: Vec::new(),
    }
}

/// `epochs` epochs of weight stats for `towers`; bin counts differ per tower (7 + tower index)
/// so that a test can tell the rows apart, and the weights spread out as training goes on.
fn weight_history(epochs: u32, towers: &[&str]) -> WeightStatsHistory {
    WeightStatsHistory {
        histogram_bins: 30,
        epochs: (0..epochs)
            .map(|e| EpochWeightStats {
                epoch: e,
                towers: towers
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let spread = 0.05 * f64::from(e + 1) * (i + 1) as f64;
                        (
                            t.to_string(),
                            TowerStats {
                                weights: tensor(-spread, spread, 7 + i, 500),
                                gradients: Some(tensor(-spread / 100.0, spread / 50.0, 5 + i, 500)),
                                gradients_error: None,
                            },
                        )
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn svg<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("data-chart=\"{id}\""))
        .unwrap_or_else(|| panic!("no chart {id}"));
    let end = html[start..].find("</svg>").unwrap() + start;
    &html[start..end]
}

#[test]
fn user_strings_are_escaped_and_the_page_loads_nothing() {
    let mut input = full_input();
    input.run.name = "<script>alert('x')</script>".into();
    input.run.description = "a \"quoted\" & <b>bold</b> description".into();
    input.run.config.dataset.name = "</pre><script>evil()</script>".into();
    input.run.error_message = Some("<img src=x onerror=alert(1)>".into());
    let html = render(&input);
    assert!(!html.contains("<script"), "raw script tag in the page");
    assert!(!html.contains("<img"));
    assert!(!html.contains("<b>bold"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("a &quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt; description"));
    assert!(html.contains("&lt;/pre&gt;&lt;script&gt;evil()"));
    self_contained(&html).unwrap();
    // The negative control: the check does catch a page that loads something.
    assert!(self_contained("<p><script src=\"https://cdn.example/x.js\"></script>").is_err());
    for bad in [
        "<p onclick=\"x()\">hi</p>",
        "<svg><image href='https://example.com/a.png'/></svg>",
        "<div style=\"background:url(https://example.com/a.png)\"></div>",
        "<a data-x=1 href=https://example.com>x</a>",
    ] {
        assert!(self_contained(bad).is_err(), "{bad}");
    }
    // An escaped quote inside a value does not end it: no attribute is smuggled in.
    self_contained("<p title=\"&quot; onclick=x() href=y\" class=a>ok</p>").unwrap();
    assert!(html.contains("Content-Security-Policy"));
}

#[test]
fn full_report_has_every_chart_and_the_metric_values() {
    let input = full_input();
    let html = render(&input);
    for id in ["loss", "recall", "stages", "versions", "schedule-grid"] {
        let chart = svg(&html, id);
        assert!(
            chart.contains("<path") || chart.contains("<rect"),
            "chart {id} has no marks"
        );
    }
    // Retrieval: no RMSE/MAE chart.
    assert!(!html.contains("data-chart=\"error\""));
    for value in ["0.0123", "0.0456", "0.2345", "0.4321", "12.35"] {
        assert!(html.contains(value), "{value} missing");
    }
    // Both versions are in the KPI chart: the recall@100 line has two points, and the
    // report's own version (#2) is highlighted.
    let versions = svg(&html, "versions");
    assert_eq!(
        versions
            .matches("<circle class=\"point\" data-series=\"recall_at_100\"")
            .count(),
        2
    );
    assert!(versions.contains("class=\"highlight\""));
    assert!(html.contains("<tr class=\"current\" data-run=\"2\">"));
    // Loss chart: 5 epochs of loss and of val_loss.
    let loss = svg(&html, "loss");
    assert_eq!(loss.matches("<circle").count(), 10);
    // Stage timeline: compile..register have times; deploy was skipped (no auto-deploy).
    let stages = svg(&html, "stages");
    assert_eq!(stages.matches("<rect class=\"stage").count(), 8);
    assert!(stages.contains("2 min 00 s"), "train lasted 120 s");
    // Insights: the regularization loss the curves do not show.
    assert!(html.contains("data-chart=\"insights-regularization_loss\""));
    // Config as pretty JSON.
    assert!(html.contains("&quot;training_params&quot;: {"));
}

#[test]
fn curves_follow_the_model_type() {
    for (mt, recall, error) in [
        (ModelType::Retrieval, true, false),
        (ModelType::Ranking, false, true),
        (ModelType::Multitask, true, true),
    ] {
        let charts = curve_charts(mt, &history(3, mt));
        let ids: Vec<&str> = charts.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.contains(&"recall"), recall, "{mt:?}");
        assert_eq!(ids.contains(&"error"), error, "{mt:?}");
        assert!(charts.iter().all(LineChart::has_data), "{mt:?}");
    }
    // Ranking KPIs are RMSE/MAE/test RMSE/test MAE.
    let mut input = full_input();
    input.run = run(9, 9, "rank", ModelType::Ranking);
    input.run.results = RunResults {
        rmse: Some(0.8765),
        mae: Some(0.6543),
        test_rmse: Some(0.9012),
        test_mae: Some(0.7012),
        ..RunResults::default()
    };
    input.model = Some(model(ModelType::Ranking));
    input.versions = vec![input.run.clone()];
    let html = render(&input);
    for v in ["0.8765", "0.6543", "0.9012", "0.7012"] {
        assert!(html.contains(v), "{v}");
    }
    assert_eq!(
        svg(&html, "versions")
            .matches("<circle class=\"point\"")
            .count(),
        4
    );
}

#[test]
fn empty_data_shows_notes_instead_of_broken_charts() {
    let input = ReportInput {
        run: run(1, 1, "fresh", ModelType::Multitask),
        history: Vec::new(),
        model: None,
        versions: Vec::new(),
        schedule: None,
        weight_stats: Ok(WeightStatsHistory::default()),
        generated_at: now(),
    };
    let html = render(&input);
    assert!(!html.contains("<svg id="), "no chart without data");
    for id in [
        "final-metrics",
        "loss",
        "recall",
        "error",
        "stages",
        "versions",
        "schedule-grid",
        insights::WEIGHT_STATS_EMPTY_ID,
    ] {
        assert!(
            html.contains(&format!("class=\"no-data\" data-chart-empty=\"{id}\"")),
            "no note for {id}"
        );
    }
    assert!(!html.contains("NaN") && !html.contains("inf"));
    self_contained(&html).unwrap();
}

#[test]
fn grid_has_forty_weeks_with_fires_and_runs_colored_by_status() {
    let mut input = full_input();
    let schedule = weekly("UTC", ScheduleStatus::Active);
    // Runs of the schedule on the Mondays 4, 3 and 2 weeks back; the one a week back is
    // missing. (Mondays at 09:00 UTC: now is Wednesday 2026-03-18.)
    let monday = |weeks_back: i64| {
        Utc.with_ymd_and_hms(2026, 3, 16, 9, 0, 0).unwrap() - Duration::weeks(weeks_back)
    };
    let mut runs = Vec::new();
    for (i, (back, status)) in [
        (4, RunStatus::Completed),
        (3, RunStatus::Failed),
        (2, RunStatus::NotBlessed),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = run(
            10 + i as i64,
            10 + i as u32,
            "product-retrieval",
            ModelType::Retrieval,
        );
        r.schedule_id = Some(schedule.id);
        r.scheduled_fire_at = Some(monday(back));
        r.status = status;
        runs.push(r);
    }
    // A run of another schedule on the same model does not color this grid.
    let mut other = run(20, 20, "product-retrieval", ModelType::Retrieval);
    other.schedule_id = Some(99);
    other.scheduled_fire_at = Some(monday(1));
    runs.push(other);
    input.schedule = Some(ScheduleData { schedule, runs });
    let grid = input.grid().unwrap();
    assert_eq!(grid.weeks.len(), 40);
    assert_eq!(grid.weeks[10][0].date.to_string(), "2026-03-16");
    let states: Vec<(String, DayState)> = grid
        .days()
        .filter(|d| d.state != DayState::Empty)
        .map(|d| (d.date.to_string(), d.state))
        .collect();
    // Created 2026-02-11: fires on 02-16 completed, 02-23 failed, 03-02 not blessed, 03-09
    // (no run of this schedule: missed), 03-16 (this Monday, passed, no run: missed), then
    // 29 planned Mondays.
    let expected = [
        ("2026-02-16", DayState::Run(RunStatus::Completed)),
        ("2026-02-23", DayState::Run(RunStatus::Failed)),
        ("2026-03-02", DayState::Run(RunStatus::NotBlessed)),
        ("2026-03-09", DayState::Missed),
        ("2026-03-16", DayState::Missed),
        ("2026-03-23", DayState::Planned),
    ];
    for (got, (date, state)) in states.iter().zip(expected) {
        assert_eq!((got.0.as_str(), got.1), (date, state));
    }
    assert_eq!(grid.planned_count(), 29);
    assert_eq!(states.len(), 5 + 29);
    assert!(grid
        .days()
        .filter(|d| d.state == DayState::Planned)
        .all(|d| d.date.weekday() == Weekday::Mon && d.fires == 1));

    let html = render(&input);
    let svg = svg(&html, "schedule-grid");
    assert_eq!(svg.matches("<g class=\"week\"").count(), 40);
    assert_eq!(svg.matches("<rect class=\"day").count(), 280);
    assert_eq!(svg.matches("class=\"day planned").count(), 29);
    assert_eq!(svg.matches("class=\"day run run-failed").count(), 1);
    assert!(svg.contains("data-date=\"2026-03-18\""));
    assert!(svg.contains("class=\"day empty today\""));
}

#[test]
fn grid_days_are_local_and_paused_fires_are_held() {
    // Monday 09:00 in Auckland is Sunday evening UTC: the cells must still be Mondays.
    let input = ReportInput {
        schedule: Some(ScheduleData {
            schedule: weekly("Pacific/Auckland", ScheduleStatus::Paused),
            runs: Vec::new(),
        }),
        ..full_input()
    };
    let grid = input.grid().unwrap();
    let held: Vec<_> = grid.days().filter(|d| d.state == DayState::Held).collect();
    assert!(held.len() >= 29, "{}", held.len());
    assert!(held.iter().all(|d| d.date.weekday() == Weekday::Mon));
    assert_eq!(grid.planned_count(), held.len());
    assert!(grid.days().all(|d| d.state != DayState::Planned));
}

/// The `d` of each ridge path of a ridgeline svg, with its `data-group`.
fn ridges(svg: &str) -> Vec<(&str, &str)> {
    svg.split("<path class=\"ridge\"")
        .skip(1)
        .map(|p| {
            let attr = |name: &str| {
                p.split(&format!(" {name}=\""))
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
            };
            (attr("data-group"), attr("d"))
        })
        .collect()
}

#[test]
fn weight_stats_draw_norm_curves_and_ridgelines_per_tower_and_epoch() {
    let input = full_input();
    let history = input.weight_stats.clone().unwrap();
    let html = render(&input);
    self_contained(&html).unwrap();
    assert!(!html.contains(&format!(
        "data-chart-empty=\"{}\"",
        insights::WEIGHT_STATS_EMPTY_ID
    )));
    // Norm curves: a line per tower with a point per epoch, values as recorded.
    for id in [
        "insights-weights-l2",
        "insights-weights-l1",
        "insights-gradients-l2",
    ] {
        let chart = svg(&html, id);
        assert_eq!(chart.matches("<path class=\"series\"").count(), 2, "{id}");
        for tower in ["buyer_tower", "product_tower"] {
            assert_eq!(
                chart
                    .matches(&format!("<circle class=\"point\" data-series=\"{tower}\""))
                    .count(),
                3,
                "{id} {tower}"
            );
        }
    }
    let l2 = history.epochs[2].towers["product_tower"].weights.l2_norm;
    assert!(svg(&html, "insights-weights-l2")
        .contains(&format!("product_tower 2: {}</title>", format_metric(l2))));
    let g2 = history.epochs[1].towers["buyer_tower"]
        .gradients
        .as_ref()
        .unwrap()
        .l2_norm;
    assert!(svg(&html, "insights-gradients-l2")
        .contains(&format!("buyer_tower 1: {}</title>", format_metric(g2))));
    // Ridgelines: rows = epochs x towers, each with one step per recorded bin.
    for (id, gradients) in [
        ("insights-weights-ridgeline", false),
        ("insights-gradients-ridgeline", true),
    ] {
        let chart = svg(&html, id);
        let rows = ridges(chart);
        assert_eq!(rows.len(), 3 * 2, "{id}");
        let mut at = 0;
        for tower in ["buyer_tower", "product_tower"] {
            for e in &history.epochs {
                let t = &e.towers[tower];
                let recorded = if gradients {
                    t.gradients.as_ref().unwrap()
                } else {
                    &t.weights
                };
                let (group, d) = rows[at];
                assert_eq!(group, tower, "{id} row {at}");
                assert_eq!(
                    d.matches('H').count(),
                    recorded.histogram.counts.len(),
                    "{id} {tower} epoch {}",
                    e.epoch
                );
                at += 1;
            }
        }
        assert!(chart.contains("data-group=\"product_tower\" data-row=\"2\""));
    }
}

#[test]
fn missing_gradients_and_unreadable_stats_are_visible_notes() {
    let mut input = full_input();
    let mut history = weight_history(2, &["buyer_tower"]);
    for e in &mut history.epochs {
        let t = e.towers.get_mut("buyer_tower").unwrap();
        t.gradients = None;
        t.gradients_error = Some("probe batch <empty>".into());
    }
    input.weight_stats = Ok(history);
    let html = render(&input);
    // The weights are drawn; both gradient charts say why they are not.
    assert_eq!(ridges(svg(&html, "insights-weights-ridgeline")).len(), 2);
    svg(&html, "insights-weights-l2");
    for id in ["insights-gradients-l2", "insights-gradients-ridgeline"] {
        assert!(!html.contains(&format!("data-chart=\"{id}\"")), "{id}");
        assert!(html.contains(&format!(
            "<p class=\"no-data\" data-chart-empty=\"{id}\">No gradient statistics were recorded: probe batch &lt;empty&gt;</p>"
        )));
    }

    input.weight_stats = Err("weight_stats: missing field `epoch`".into());
    let html = render(&input);
    assert!(html.contains(&format!(
        "data-chart-empty=\"{}\">The weight and gradient statistics cannot be read: weight_stats: missing field `epoch`",
        insights::WEIGHT_STATS_EMPTY_ID
    )));
    for id in insights::WEIGHT_CHART_IDS {
        assert!(!html.contains(&format!("data-chart=\"{id}\"")), "{id}");
    }
    // The rest of the page is still there.
    svg(&html, "loss");
}

#[test]
fn tower_names_are_escaped_everywhere_they_appear() {
    let mut input = full_input();
    let evil = "<b onmouseover=\"x()\">tower</b>&'";
    input.weight_stats = Ok(weight_history(2, &[evil, "plain"]));
    let html = render(&input);
    self_contained(&html).unwrap();
    assert!(!html.contains("<b onmouseover") && !html.contains("<b "));
    let escaped = "&lt;b onmouseover=&quot;x()&quot;&gt;tower&lt;/b&gt;&amp;&#39;";
    let ridgeline = svg(&html, "insights-weights-ridgeline");
    assert!(ridgeline.contains(&format!("data-group=\"{escaped}\"")));
    assert_eq!(
        ridges(ridgeline)
            .iter()
            .filter(|(g, _)| *g == escaped)
            .count(),
        2
    );
    assert!(svg(&html, "insights-weights-l2").contains(&format!("data-series=\"{escaped}\"")));
    // The legend names the tower as text.
    assert!(html.contains(&format!("</span>{escaped} <span class=\"last\">")));
}
