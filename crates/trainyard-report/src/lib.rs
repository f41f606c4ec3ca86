//! trainyard-report: a training run as one self-contained HTML page.
//!
//! [`render`] turns plain data ([`ReportInput`]: the run, its per-epoch history, its
//! registered model's versions and the model's schedule with that schedule's runs) into HTML
//! with inline CSS and inline SVG charts drawn here. The page loads nothing: no scripts, no
//! external URLs, and a Content-Security-Policy that forbids them, so it can be mailed,
//! archived or opened offline.
//!
//! Stable hooks for tools and tests: every chart is `<svg data-chart="ID">` (ids `loss`,
//! `recall`, `error`, `stages`, `versions`, `schedule-grid`, `insights-*`, among them the weight
//! statistics' [`insights::WEIGHT_CHART_IDS`]); a chart without data
//! is `<p class="no-data" data-chart-empty="ID">`; sections are `<section id="...">`.

pub mod charts;
mod grid;
pub mod html;
pub mod insights;
pub mod ridgeline;

use std::fmt::Write;

use chrono::{DateTime, Utc};
use trainyard_core::metrics::{EpochMetrics, Metric};
use trainyard_core::model_config::ModelType;
use trainyard_core::registry::RegisteredModel;
use trainyard_core::run::TrainingRun;
use trainyard_core::schedule::TrainingSchedule;
use trainyard_core::stages::StageStatus;
pub use trainyard_insights::WeightStatsHistory;

use charts::{stage_timeline, LineChart, Series, StageBar};
pub use grid::{DayState, Grid, PAST_WEEKS, WEEKS};
use html::{duration, esc, metric, metric_label, opt_metric};

/// A schedule and the runs it created.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleData {
    pub schedule: TrainingSchedule,
    pub runs: Vec<TrainingRun>,
}

/// Everything a report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportInput {
    pub run: TrainingRun,
    /// Per-epoch rows (TrainingMetricsHistory), any order.
    pub history: Vec<EpochMetrics>,
    /// The registered model the run is a version of.
    pub model: Option<RegisteredModel>,
    /// All runs of that model (its versions), any order; may include `run`.
    pub versions: Vec<TrainingRun>,
    /// The model's retraining schedule, if it has one.
    pub schedule: Option<ScheduleData>,
    /// The towers' per-epoch weight and gradient statistics (training_metrics.json
    /// `weight_stats`; empty when the trainer recorded none); `Err` says why they could not be
    /// read, and the report shows it instead of the charts.
    pub weight_stats: Result<WeightStatsHistory, String>,
    /// "Now" for the schedule grid and the footer.
    pub generated_at: DateTime<Utc>,
}

impl ReportInput {
    /// The schedule grid this report draws (None without a schedule).
    pub fn grid(&self) -> Option<Grid> {
        self.schedule
            .as_ref()
            .map(|s| grid::build(&s.schedule, &s.runs, self.generated_at))
    }
}

const CSS: &str = r#"
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f9fafb;--card:#fff}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#111827;color:#f9fafb;padding:20px 32px}
header h1{margin:0 0 4px;font-size:22px}
header .sub{color:#d1d5db}
main{max-width:1100px;margin:0 auto;padding:16px 32px 48px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:16px 0}
section h2{margin:0 0 12px;font-size:17px}
section h3{margin:16px 0 6px;font-size:15px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}
dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;background:#e5e7eb;color:#111827}
.badge.completed,.badge.deployed{background:#dcfce7;color:#166534}
.badge.failed,.badge.deploy_failed{background:#fee2e2;color:#991b1b}
.badge.not_blessed,.badge.cancelled{background:#fef3c7;color:#92400e}
.badge.running,.badge.submitting,.badge.deploying{background:#dbeafe;color:#1e40af}
.kpis{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:12px}
.kpi{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:120px}
.kpi .label{color:var(--muted);font-size:12px}
.kpi .value{font-size:20px;font-weight:600}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);font-variant-numeric:tabular-nums}
th{color:var(--muted);font-weight:600}
tr.current{background:#eff6ff}
figure.chart{margin:8px 0 16px}
figure.chart figcaption{font-weight:600;margin-bottom:4px}
svg{width:100%;height:auto;display:block}
svg .grid{stroke:var(--line);stroke-width:1}
svg .axis{stroke:#9ca3af;stroke-width:1}
svg .tick{fill:var(--muted);font-size:11px}
svg .axis-label{fill:var(--fg);font-size:12px}
svg .series{fill:none;stroke-width:2}
svg .ridge{stroke:#1e3a8a;stroke-width:1;fill-opacity:.85}
svg .highlight{stroke:#f59e0b;stroke-width:2;stroke-dasharray:4 3}
svg .stage{fill:#9ca3af}
svg .stage.completed{fill:#22c55e}
svg .stage.running{fill:#3b82f6}
svg .stage.failed{fill:#ef4444}
svg .day{fill:#ebedf0}
svg .day.planned{fill:#93c5fd}
svg .day.held{fill:#e9d5ff}
svg .day.missed{fill:#fde68a}
svg .day.run-succeeded{fill:#16a34a}
svg .day.run-not-blessed{fill:#f59e0b}
svg .day.run-failed{fill:#dc2626}
svg .day.run-cancelled{fill:#6b7280}
svg .day.run-active{fill:#2563eb}
svg .day.today{stroke:#111827;stroke-width:1.5}
svg.key{display:inline-block;width:12px;height:12px;vertical-align:-1px;margin-right:4px}
ul.legend{list-style:none;padding:0;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:4px 16px;color:var(--muted);font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
.legend .last{color:var(--fg);font-variant-numeric:tabular-nums}
.no-data{color:var(--muted);font-style:italic;border:1px dashed var(--line);border-radius:6px;padding:16px;text-align:center}
pre{background:#f3f4f6;border-radius:6px;padding:12px;overflow:auto;font-size:12px;max-height:480px}
footer{color:var(--muted);font-size:12px;text-align:center;padding:16px}
"#;

fn ts(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "–".into(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Renders the whole page.
pub fn render(input: &ReportInput) -> String {
    let run = &input.run;
    let mut s = String::with_capacity(64 * 1024);
    let title = format!("{} · {}", run.name, run.display_name());
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"trainyard-report {}\">\n\
         <title>{}</title>\n<style>{CSS}</style></head>\n<body>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&title)
    );
    header(&mut s, input);
    s.push_str("<main>\n");
    overview(&mut s, input);
    final_metrics(&mut s, input);
    curves(&mut s, input);
    stages(&mut s, input);
    versions(&mut s, input);
    schedule(&mut s, input);
    insights_section(&mut s, input);
    config(&mut s, input);
    let _ = write!(
        s,
        "</main>\n<footer>Generated by trainyard at {}</footer>\n</body></html>\n",
        esc(&ts(Some(input.generated_at)))
    );
    s
}

fn header(s: &mut String, input: &ReportInput) {
    let run = &input.run;
    let status = run.status.as_str();
    let _ = writeln!(
        s,
        "<header><h1 id=\"run-name\">{}</h1><div class=\"sub\">{} · {} model · model endpoint {} · <span class=\"badge {status}\" id=\"run-status\">{status}</span></div></header>",
        esc(&run.name),
        esc(&run.display_name()),
        run.model_type().as_str(),
        esc(&run.ml_model),
    );
}

fn overview(s: &mut String, input: &ReportInput) {
    let run = &input.run;
    s.push_str("<section id=\"overview\"><h2>Overview</h2><dl class=\"facts\">\n");
    let mut fact = |k: &str, v: String| {
        let _ = writeln!(s, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v));
    };
    if !run.description.is_empty() {
        fact("Description", run.description.clone());
    }
    fact("Dataset", run.config.dataset.name.clone());
    fact(
        "Registered model",
        input
            .model
            .as_ref()
            .map_or_else(|| "–".into(), |m| m.model_name.clone()),
    );
    fact("Created", ts(Some(run.created_at)));
    fact("Started", ts(run.started_at));
    fact("Completed", ts(run.completed_at));
    fact(
        "Duration",
        run.duration_seconds.map_or_else(|| "–".into(), duration),
    );
    fact(
        "Blessed",
        match run.results.is_blessed {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => "not evaluated".into(),
        },
    );
    if let Some(e) = &run.error_message {
        fact("Error", e.clone());
    }
    if let Some(j) = &run.vertex_pipeline_job_name {
        fact("Pipeline job", j.clone());
    }
    s.push_str("</dl></section>\n");
}

/// Final metrics: the model type's KPIs and the final loss.
fn final_metrics(s: &mut String, input: &ReportInput) {
    let run = &input.run;
    s.push_str("<section id=\"final-metrics\"><h2>Final metrics</h2>\n");
    let keys: Vec<&str> = Metric::kpis(run.model_type())
        .iter()
        .chain([&Metric::FinalLoss])
        .map(|m| m.name())
        .collect();
    if keys.iter().all(|k| run.results.get(k).is_none()) {
        s.push_str(&charts::no_data(
            "final-metrics",
            "No results recorded yet: the run has not finished training.",
        ));
    } else {
        s.push_str("<div class=\"kpis\">");
        for k in &keys {
            let _ = write!(
                s,
                "<div class=\"kpi\" data-metric=\"{k}\"><div class=\"label\">{}</div><div class=\"value\">{}</div></div>",
                esc(&metric_label(k)),
                opt_metric(run.results.get(k))
            );
        }
        s.push_str("</div>\n");
    }
    s.push_str("</section>\n");
}

fn epoch_series(history: &[EpochMetrics], key: &str, label: &str) -> Series {
    let mut rows: Vec<&EpochMetrics> = history.iter().collect();
    rows.sort_by_key(|e| e.epoch);
    let pick = |e: &EpochMetrics| e.get(key);
    Series {
        key: key.into(),
        label: label.into(),
        points: rows
            .iter()
            .filter_map(|e| pick(e).map(|v| (f64::from(e.epoch), v)))
            .collect(),
    }
}

/// The training-curve charts a model type shows.
pub fn curve_charts(model_type: ModelType, history: &[EpochMetrics]) -> Vec<LineChart> {
    let chart = |id: &str, title: &str, y: &str, series: Vec<Series>| LineChart {
        id: id.into(),
        title: title.into(),
        x_label: "epoch".into(),
        x_prefix: String::new(),
        y_label: y.into(),
        series,
        highlight_x: None,
        empty_note: format!("No per-epoch {y} recorded for this run."),
    };
    let mut out = vec![chart(
        "loss",
        "Loss per epoch",
        "loss",
        vec![
            epoch_series(history, "loss", "Loss"),
            epoch_series(history, "val_loss", "Validation loss"),
        ],
    )];
    if matches!(model_type, ModelType::Retrieval | ModelType::Multitask) {
        out.push(chart(
            "recall",
            "Recall@k per epoch",
            "recall",
            Metric::RECALLS
                .iter()
                .map(|m| epoch_series(history, m.name(), m.label()))
                .collect(),
        ));
    }
    if matches!(model_type, ModelType::Ranking | ModelType::Multitask) {
        out.push(chart(
            "error",
            "RMSE and MAE per epoch",
            "rating error",
            vec![
                epoch_series(history, "rmse", "RMSE"),
                epoch_series(history, "mae", "MAE"),
            ],
        ));
    }
    out
}

fn curves(s: &mut String, input: &ReportInput) {
    s.push_str("<section id=\"training-curves\"><h2>Training curves</h2>\n");
    for c in curve_charts(input.run.model_type(), &input.history) {
        s.push_str(&c.render());
    }
    s.push_str("</section>\n");
}

fn stages(s: &mut String, input: &ReportInput) {
    let run = &input.run;
    let origin = run.stage_details.iter().filter_map(|d| d.started_at).min();
    let bars: Vec<StageBar> = run
        .stage_details
        .iter()
        .map(|d| StageBar {
            name: d.name.as_str().into(),
            status: stage_status(d.status).into(),
            span: match (origin, d.started_at, d.completed_at) {
                (Some(o), Some(a), Some(b)) => Some((secs(a - o), secs(b - o))),
                // A running stage extends to "now".
                (Some(o), Some(a), None) if d.status == StageStatus::Running => {
                    Some((secs(a - o), secs(input.generated_at - o)))
                }
                _ => None,
            },
        })
        .collect();
    s.push_str("<section id=\"stages\"><h2>Pipeline stages</h2>\n");
    s.push_str(&stage_timeline(
        "stages",
        &bars,
        "No stage has started yet.",
    ));
    s.push_str("<table id=\"stage-table\"><thead><tr><th>stage</th><th>status</th><th>started</th><th>duration</th><th>error</th></tr></thead><tbody>\n");
    for d in run.stage_details.iter() {
        let _ = writeln!(
            s,
            "<tr data-stage=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            d.name.as_str(),
            d.name.as_str(),
            stage_status(d.status),
            esc(&ts(d.started_at)),
            d.duration_seconds().map_or_else(|| "–".into(), duration),
            esc(d.error.as_deref().unwrap_or(""))
        );
    }
    s.push_str("</tbody></table></section>\n");
}

fn secs(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

fn stage_status(s: StageStatus) -> &'static str {
    match s {
        StageStatus::Pending => "pending",
        StageStatus::Running => "running",
        StageStatus::Completed => "completed",
        StageStatus::Failed => "failed",
        StageStatus::Skipped => "skipped",
    }
}

/// The registered model's versions, oldest first (the report's own run included).
fn sorted_versions(input: &ReportInput) -> Vec<&TrainingRun> {
    let mut v: Vec<&TrainingRun> = input.versions.iter().collect();
    if !v.iter().any(|r| r.id == input.run.id) && input.model.is_some() {
        v.push(&input.run);
    }
    v.sort_by_key(|r| (r.run_number, r.id));
    v
}

/// The versions KPI chart: one line per KPI of the model type, x = run number.
pub fn versions_chart(input: &ReportInput) -> LineChart {
    let model_type = input
        .model
        .as_ref()
        .map_or(input.run.model_type(), |m| m.model_type);
    let versions = sorted_versions(input);
    LineChart {
        id: "versions".into(),
        title: "KPIs by version".into(),
        x_label: "training run".into(),
        x_prefix: "#".into(),
        y_label: "value".into(),
        series: Metric::kpis(model_type)
            .iter()
            .map(|m| Series {
                key: m.name().into(),
                label: m.label().into(),
                points: versions
                    .iter()
                    .filter_map(|r| r.results.value(*m).map(|v| (f64::from(r.run_number), v)))
                    .collect(),
            })
            .collect(),
        highlight_x: Some(f64::from(input.run.run_number)),
        empty_note: "No version of this model has results yet.".into(),
    }
}

fn versions(s: &mut String, input: &ReportInput) {
    s.push_str("<section id=\"versions\"><h2>Registered model versions</h2>\n");
    let Some(model) = &input.model else {
        s.push_str(&charts::no_data(
            "versions",
            "This run is not a version of a registered model.",
        ));
        s.push_str("</section>\n");
        return;
    };
    let _ = writeln!(
        s,
        "<p>{} ({} model): {} version{}; the dashed line marks this run.</p>",
        esc(&model.model_name),
        model.model_type.as_str(),
        sorted_versions(input).len(),
        if sorted_versions(input).len() == 1 {
            ""
        } else {
            "s"
        }
    );
    s.push_str(&versions_chart(input).render());
    let kpis = Metric::kpis(model.model_type);
    s.push_str(
        "<table id=\"versions-table\"><thead><tr><th>run</th><th>status</th><th>blessed</th>",
    );
    for k in kpis {
        let _ = write!(s, "<th>{}</th>", esc(k.label()));
    }
    s.push_str("<th>created</th></tr></thead><tbody>\n");
    for r in sorted_versions(input).into_iter().rev() {
        let current = if r.id == input.run.id {
            " class=\"current\""
        } else {
            ""
        };
        let _ = write!(
            s,
            "<tr{current} data-run=\"{}\"><td>{}</td><td><span class=\"badge {}\">{}</span></td><td>{}</td>",
            r.run_number,
            esc(&r.display_name()),
            r.status.as_str(),
            r.status.as_str(),
            match r.results.is_blessed {
                Some(true) => "yes",
                Some(false) => "no",
                None => "–",
            }
        );
        for k in kpis {
            let _ = write!(s, "<td>{}</td>", opt_metric(r.results.value(*k)));
        }
        let _ = writeln!(s, "<td>{}</td></tr>", esc(&ts(Some(r.created_at))));
    }
    s.push_str("</tbody></table></section>\n");
}

fn schedule(s: &mut String, input: &ReportInput) {
    s.push_str("<section id=\"schedule\"><h2>Retraining schedule</h2>\n");
    let (Some(data), Some(grid)) = (&input.schedule, input.grid()) else {
        s.push_str(&charts::no_data(
            "schedule-grid",
            "This model has no retraining schedule.",
        ));
        s.push_str("</section>\n");
        return;
    };
    let sc = &data.schedule;
    let cron = sc.timing.cron().unwrap_or_else(|e| e.to_string());
    s.push_str("<dl class=\"facts\">\n");
    let mut fact = |k: &str, v: String| {
        let _ = writeln!(s, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&v));
    };
    fact("Name", sc.name.clone());
    fact("Status", format!("{:?}", sc.status).to_lowercase());
    fact(
        "When",
        format!(
            "{}, cron \"{cron}\" in {}",
            format!("{:?}", sc.timing.schedule_type).to_lowercase(),
            sc.timing.schedule_timezone
        ),
    );
    fact(
        "Runs",
        format!(
            "{} total, {} successful, {} failed{}",
            sc.total_runs,
            sc.successful_runs,
            sc.failed_runs,
            sc.success_rate()
                .map_or_else(String::new, |r| format!(" ({r:.0}% success)"))
        ),
    );
    fact("Last run", ts(sc.last_run_at));
    fact("Next run", ts(sc.next_run_at));
    s.push_str("</dl>\n");
    s.push_str(&grid.render());
    s.push_str("</section>\n");
}

fn insights_section(s: &mut String, input: &ReportInput) {
    s.push_str("<section id=\"training-insights\"><h2>Training insights</h2>\n");
    for b in insights::blocks(input) {
        s.push_str(&b.render());
    }
    s.push_str("</section>\n");
}

fn config(s: &mut String, input: &ReportInput) {
    let json = serde_json::to_string_pretty(&input.run.config)
        .unwrap_or_else(|e| format!("config cannot be shown: {e}"));
    let _ = writeln!(
        s,
        "<section id=\"config\"><h2>Configuration</h2><pre id=\"config-json\">{}</pre></section>",
        esc(&json)
    );
}

/// Checks a rendered page against the self-containment rules (for tests): no scripts, no
/// element that loads anything, no CSS that fetches. Only real markup counts: escaped user
/// text never contains a raw `<`, so it cannot look like a tag here.
pub fn self_contained(html: &str) -> Result<(), String> {
    let lower = html.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>').ok_or("unclosed tag")?;
        let tag = &after[..close];
        for bad in ["script", "iframe", "object", "embed", "link ", "img "] {
            if tag.starts_with(bad) {
                return Err(format!("report has a <{bad}> element"));
            }
        }
        for (name, value) in attributes(tag) {
            let loads = ["src", "href", "xlink:href", "srcset"].contains(&name);
            let handler = name.starts_with("on");
            if loads || handler || value.contains("url(") {
                return Err(format!("report has a tag with {name}={value:?}: <{tag}>"));
            }
        }
        rest = &after[close..];
    }
    let style = lower
        .split("<style>")
        .nth(1)
        .and_then(|s| s.split("</style>").next())
        .unwrap_or("");
    if style.contains("url(") || style.contains("@import") {
        return Err("report CSS fetches something".into());
    }
    Ok(())
}

/// The attributes of a tag's text (`name a="1" b=2 c`), values unquoted. A quoted value runs
/// to its closing quote, so escaped user text inside it (`&quot; onclick=...`) stays a value.
fn attributes(tag: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = tag
        .trim_end_matches('/')
        .split_once(char::is_whitespace)
        .map_or("", |(_, r)| r);
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return out;
        }
        let end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = &rest[..end];
        rest = rest[end..].trim_start();
        let Some(after_eq) = rest.strip_prefix('=') else {
            out.push((name, ""));
            continue;
        };
        let after_eq = after_eq.trim_start();
        let (value, next) = match after_eq.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let body = &after_eq[1..];
                let close = body.find(q).unwrap_or(body.len());
                (&body[..close], body.get(close + 1..).unwrap_or(""))
            }
            _ => {
                let end = after_eq.find(char::is_whitespace).unwrap_or(after_eq.len());
                (&after_eq[..end], &after_eq[end..])
            }
        };
        out.push((name, value));
        rest = next;
    }
}

/// Formats a metric the way the report does (for tests and callers that look values up).
pub fn format_metric(x: f64) -> String {
    metric(x)
}

#[cfg(test)]
mod tests;
