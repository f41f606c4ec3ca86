//! `trainyard runs ...`: training runs.

use std::time::Duration;

use trainyard::core::model_config::ModelType;
use trainyard::core::ports::{PipelineEvent, RunFilter};
use trainyard::core::run::{ConfigPatch, TrainingRun};
use trainyard::core::stages::StageStatus;
use trainyard::core::RunStatus;
use trainyard::{Platform, Until};

use super::{parse_json, parse_new_run, Ctx};
use crate::cli::RunsCommand;
use crate::error::CliError;
use crate::output::{opt_f64, print_json, print_table};

pub async fn run(ctx: &Ctx, p: &Platform, cmd: RunsCommand) -> Result<(), CliError> {
    let out = ctx.out;
    let svc = p.training();
    match cmd {
        RunsCommand::List {
            statuses,
            model_type,
            registered_model,
            search,
            page,
            page_size,
        } => {
            let page = svc
                .list(&RunFilter {
                    ml_model: None,
                    statuses,
                    model_type,
                    registered_model_id: registered_model,
                    schedule_id: None,
                    search,
                    page,
                    page_size,
                    with_step: false,
                    mlflow_run_id: None,
                })
                .await?;
            out.render(&page, || {
                print_table(
                    &RUN_HEADERS,
                    &page.runs.iter().map(run_row).collect::<Vec<_>>(),
                );
                let counts: Vec<String> = page
                    .kpi
                    .by_status
                    .iter()
                    .map(|(s, n)| format!("{s} {n}"))
                    .collect();
                println!(
                    "\n{} matching (page {}); all: {} [{}]",
                    page.total,
                    page.page,
                    page.kpi.total,
                    counts.join(", ")
                );
            })
        }
        RunsCommand::Show { id } => {
            let r = svc.get(id).await?;
            out.render(&r, || print_run(&r))
        }
        RunsCommand::Create { config } => {
            let r = p.create_run(parse_new_run(&config)?).await?;
            out.render(&r, || {
                println!(
                    "created training run {} ({} of {:?})",
                    r.id,
                    r.display_name(),
                    r.name
                )
            })
        }
        RunsCommand::Submit {
            id,
            wait,
            timeout_secs,
        } => {
            let run = p.submit(id).await?;
            if !wait {
                return out.render(&run, || {
                    println!(
                        "submitted training run {id}: {} ({})",
                        run.status,
                        run.vertex_pipeline_job_id.as_deref().unwrap_or("-")
                    )
                });
            }
            println!(
                "submitted training run {id}: {} ({})",
                run.status,
                run.vertex_pipeline_job_id.as_deref().unwrap_or("-")
            );
            follow_until_settled(p, id, timeout_secs).await
        }
        RunsCommand::Follow { id, timeout_secs } => follow_until_settled(p, id, timeout_secs).await,
        RunsCommand::Cancel { id } => {
            let r = svc.cancel(id).await?;
            out.render(&r, || println!("training run {id} is {}", r.status))
        }
        RunsCommand::Rerun { id, no_submit } => {
            let r = svc.rerun_with(id, !no_submit && svc.can_submit()).await?;
            let r = p.carry_to_submitted(r).await?;
            out.render(&r, || {
                println!(
                    "Re-run created as {} (training run {})",
                    r.display_name(),
                    r.id
                )
            })
        }
        RunsCommand::Config { id, patch } => match patch {
            None => print_json(&svc.get_config(id).await?),
            Some(file) => {
                let patch: ConfigPatch = parse_json(&file)?;
                let (config, updated_fields) = svc.patch_config(id, &patch).await?;
                print_json(&serde_json::json!({"config": config, "updated_fields": updated_fields}))
            }
        },
        RunsCommand::Event { id, file } => {
            let event: PipelineEvent = parse_json(&file)?;
            let r = svc.handle_event(id, &event).await?;
            out.render(&r, || {
                println!(
                    "training run {id}: {} (stage {})",
                    r.status,
                    r.current_stage.map_or("-", |s| s.as_str())
                )
            })
        }
        RunsCommand::Stats(a) => super::insights::stats(ctx, p, a).await,
        RunsCommand::Schema(a) => super::insights::schema(ctx, p, a).await,
        RunsCommand::Logs(a) => super::insights::logs(p, a).await,
        RunsCommand::History { id } => {
            let rows = svc.history(id).await?;
            out.render(&rows, || {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|h| {
                        let m = &h.metrics;
                        vec![
                            m.epoch.to_string(),
                            opt_f64(m.loss),
                            opt_f64(m.val_loss),
                            opt_f64(m.recall_at_100),
                            opt_f64(m.rmse),
                            opt_f64(m.mae),
                        ]
                    })
                    .collect();
                print_table(
                    &["epoch", "loss", "val_loss", "recall@100", "rmse", "mae"],
                    &table,
                );
            })
        }
    }
}

pub fn run_row(r: &TrainingRun) -> Vec<String> {
    let metric = match r.model_type() {
        ModelType::Retrieval => format!("R@100 {}", opt_f64(r.results.recall_at_100)),
        _ => format!("RMSE {}", opt_f64(r.results.rmse)),
    };
    vec![
        r.id.to_string(),
        format!("#{}", r.run_number),
        r.name.clone(),
        r.model_type().as_str().to_string(),
        r.status.to_string(),
        r.current_stage.map_or("-", |s| s.as_str()).to_string(),
        metric,
        // The estimate of a finished run (0 on the local backend); `-` while it runs.
        r.cost_usd
            .map_or_else(|| "-".into(), |c| format!("${c:.2}")),
        r.created_at.format("%Y-%m-%d %H:%M").to_string(),
    ]
}

pub const RUN_HEADERS: [&str; 9] = [
    "id", "run", "name", "type", "status", "stage", "metric", "cost", "created",
];

pub fn print_run(r: &TrainingRun) {
    use trainyard::core::names::Named;
    print_table(&RUN_HEADERS, &[run_row(r)]);
    println!();
    let stages: Vec<Vec<String>> = r
        .stage_details
        .iter()
        .map(|s| {
            vec![
                s.name.as_str().to_string(),
                s.status.name().to_string(),
                s.duration_seconds()
                    .map_or_else(|| "-".into(), |d| format!("{d:.1}s")),
                s.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["stage", "status", "duration", "error"], &stages);
    if let Some(id) = &r.mlflow_run_id {
        println!("\nmlflow run: {id}");
    }
    if let Some(e) = &r.error_message {
        println!("\nerror: {e}");
    }
}

/// Follows a run until it settles (`runs submit --wait`, `runs follow`), printing progress;
/// Ctrl-C stops following and leaves the run to a server or the next call that follows it.
async fn follow_until_settled(p: &Platform, id: i64, timeout_secs: u64) -> Result<(), CliError> {
    let follow = follow_with_progress(p, id, Duration::from_secs(timeout_secs));
    let done = tokio::select! {
        done = follow => done?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\nstopped following training run {id}; it goes on (`trainyard server` carries it, `trainyard runs follow {id}` follows it again)");
            std::process::exit(130);
        }
    };
    println!();
    print_run(&done);
    match done.status {
        RunStatus::Failed => Err(CliError::Failed(format!("training run {id} failed"))),
        _ => Ok(()),
    }
}

/// Follows a run through the facade, printing stage changes and epochs as they are recorded.
pub(crate) async fn follow_with_progress(
    p: &Platform,
    id: i64,
    timeout: Duration,
) -> Result<TrainingRun, CliError> {
    let mut stage = None;
    let run = p
        .follow(id, Until::Settled, timeout, |run, epochs| {
            for epoch in epochs {
                let shown: Vec<String> = epoch
                    .metrics
                    .values
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.4}"))
                    .collect();
                println!("  epoch {}: {}", epoch.metrics.epoch, shown.join(", "));
            }
            if run.current_stage != stage {
                stage = run.current_stage;
                let bar: String = run
                    .stage_details
                    .iter()
                    .map(|s| match s.status {
                        StageStatus::Completed => '#',
                        StageStatus::Running => '>',
                        StageStatus::Failed => 'x',
                        StageStatus::Skipped => '-',
                        StageStatus::Pending => '.',
                    })
                    .collect();
                println!("[{bar}] {}", stage.map_or("done", |s| s.as_str()));
            }
        })
        .await?;
    Ok(run)
}
