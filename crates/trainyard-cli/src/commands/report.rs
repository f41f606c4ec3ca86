//! `trainyard report RUN --out FILE`: gathers a run, its epoch history, its registered model's
//! versions and the model's schedule (with the schedule's runs) through the services, and
//! writes the self-contained HTML page that trainyard-report renders.

use std::path::{Path, PathBuf};

use trainyard::core::ports::RunFilter;
use trainyard::core::run::{RunId, TrainingRun};
use trainyard::insights::WeightStatsHistory;
use trainyard::{Error, Platform};
use trainyard_report::{render, ReportInput, ScheduleData};

use crate::error::CliError;

/// Every run of a schedule, page by page.
async fn schedule_runs(p: &Platform, schedule_id: i64) -> Result<Vec<TrainingRun>, CliError> {
    let training = p.training();
    let mut filter = RunFilter {
        schedule_id: Some(schedule_id),
        page_size: 500,
        ..RunFilter::default()
    };
    let mut runs = Vec::new();
    loop {
        let page = training.list(&filter).await?;
        let done = page.runs.len() < filter.page_size as usize;
        runs.extend(page.runs);
        if done {
            return Ok(runs);
        }
        filter.page += 1;
    }
}

/// The run's weight and gradient statistics through InsightsService: none recorded (no
/// training history yet, or an older trainer) is an empty history; unreadable ones are the
/// reason, which the report shows in their place.
async fn weight_stats(
    p: &Platform,
    id: RunId,
) -> Result<Result<WeightStatsHistory, String>, CliError> {
    match p.insights().weight_stats(id, None).await {
        Ok(w) => Ok(Ok(WeightStatsHistory {
            histogram_bins: w.histogram_bins,
            epochs: w.epochs,
        })),
        Err(Error::NotFound { .. }) => Ok(Ok(WeightStatsHistory::default())),
        Err(Error::Backend(why)) => Ok(Err(why)),
        Err(e) => Err(e.into()),
    }
}

/// What the report of run `id` shows, read through the platform's services.
pub async fn gather(p: &Platform, id: RunId) -> Result<ReportInput, CliError> {
    let training = p.training();
    let run = training.get(id).await?;
    let history = training
        .history(id)
        .await?
        .into_iter()
        .map(|h| h.metrics)
        .collect();
    let (mut model, mut versions, mut schedule) = (None, Vec::new(), None);
    if let Some(model_id) = run.registered_model_id {
        let registry = p.registry();
        model = Some(registry.get(model_id).await?);
        versions = registry.versions(model_id).await?;
        // Through the service: its statistics are derived from the runs.
        if let Some(s) = p.schedules().for_model(model_id).await? {
            let runs = schedule_runs(p, s.id).await?;
            schedule = Some(ScheduleData { schedule: s, runs });
        }
    }
    let weight_stats = weight_stats(p, id).await?;
    Ok(ReportInput {
        run,
        history,
        model,
        versions,
        schedule,
        weight_stats,
        generated_at: p.clock().now(),
    })
}

/// Writes the report and says where.
pub async fn write(p: &Platform, id: RunId, out: Option<PathBuf>) -> Result<(), CliError> {
    let input = gather(p, id).await?;
    let out = out.unwrap_or_else(|| PathBuf::from(format!("training-run-{id}.html")));
    let html = render(&input);
    write_file(&out, &html)?;
    println!(
        "wrote {} ({} KB): {} ({}), {} epochs, {} versions, {}, {}",
        out.display(),
        html.len().div_ceil(1024),
        input.run.display_name(),
        input.run.status,
        input.history.len(),
        input.versions.len(),
        if input.schedule.is_some() {
            "schedule grid"
        } else {
            "no schedule"
        },
        match &input.weight_stats {
            Ok(w) if w.epochs.is_empty() => "no weight statistics".to_string(),
            Ok(w) => format!("weight statistics of {} towers", w.towers().len()),
            Err(_) => "unreadable weight statistics".to_string(),
        }
    );
    Ok(())
}

fn write_file(out: &Path, html: &str) -> Result<(), CliError> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::Failed(format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(out, html).map_err(|e| CliError::Failed(format!("{}: {e}", out.display())))
}
