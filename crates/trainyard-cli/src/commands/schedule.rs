//! `trainyard schedule ...`: retraining schedules.

use chrono::{DateTime, Utc};
use trainyard::core::names::Named;
use trainyard::core::ports::{FireOutcome, RunFilter};
use trainyard::core::schedule::TrainingSchedule;
use trainyard::core::timing::{rfc3339_local, ScheduleTiming};
use trainyard::{NewSchedule, ScheduleEdit, ScheduleFilter, WizardSchedule};

use super::{parse_json, Ctx};
use crate::cli::{ScheduleCommand, TimingArgs};
use crate::error::CliError;
use crate::output::print_table;

/// The timing the flags describe, checked for shape.
fn timing(args: &TimingArgs) -> Result<ScheduleTiming, CliError> {
    let kind = args.kind.ok_or_else(|| {
        CliError::BadInput(
            "--type is required (now, once, hourly, daily, weekly or monthly)".into(),
        )
    })?;
    let scheduled_datetime = args
        .datetime
        .as_deref()
        .map(|d| {
            DateTime::parse_from_rfc3339(d)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| CliError::BadInput(format!("--datetime {d:?}: {e}")))
        })
        .transpose()?;
    let timing = ScheduleTiming {
        schedule_type: kind,
        scheduled_datetime,
        schedule_time: args.time.clone(),
        schedule_day_of_week: args.day_of_week,
        schedule_day_of_month: args.day_of_month,
        schedule_timezone: args.tz.clone(),
    };
    timing
        .validate_shape()
        .map_err(|e| CliError::BadInput(e.to_string()))?;
    Ok(timing)
}

pub fn schedule_row(s: &TrainingSchedule) -> Vec<String> {
    vec![
        s.id.to_string(),
        s.name.clone(),
        s.timing.schedule_type.name().to_string(),
        s.timing.cron().unwrap_or_default(),
        s.timing.schedule_timezone.clone(),
        s.status.name().to_string(),
        s.next_run_at.map_or_else(|| "-".into(), |t| t.to_rfc3339()),
        format!("{}/{}/{}", s.total_runs, s.successful_runs, s.failed_runs),
    ]
}

pub const SCHEDULE_HEADERS: [&str; 8] = [
    "id",
    "name",
    "type",
    "cron",
    "tz",
    "status",
    "next_run_at",
    "runs total/ok/failed",
];

fn fire_summary(o: &FireOutcome) -> String {
    match o {
        FireOutcome::Created { run } => {
            format!("created training run {} ({})", run.id, run.display_name())
        }
        FireOutcome::AlreadyFired { run } => format!("already fired: training run {}", run.id),
        FireOutcome::Skipped { reason } => format!("skipped: {reason}"),
    }
}

pub async fn run(ctx: &Ctx, cmd: ScheduleCommand) -> Result<(), CliError> {
    let out = ctx.out;
    // Cron strings and previews need no project.
    let cmd = match cmd {
        ScheduleCommand::Cron { timing: t } => {
            println!(
                "{}",
                timing(&t)?
                    .cron()
                    .map_err(|e| CliError::BadInput(e.to_string()))?
            );
            return Ok(());
        }
        ScheduleCommand::Preview {
            timing: t,
            after,
            count,
        } => {
            let after = match after {
                Some(a) => DateTime::parse_from_rfc3339(&a)
                    .map_err(|e| CliError::BadInput(format!("--after {a:?}: {e}")))?
                    .with_timezone(&Utc),
                None => Utc::now(),
            };
            let fires = timing(&t)?
                .upcoming(after, count)
                .map_err(|e| CliError::BadInput(e.to_string()))?;
            let fires: Vec<String> = fires.iter().map(rfc3339_local).collect();
            return out.render(&fires, || fires.iter().for_each(|f| println!("{f}")));
        }
        other => other,
    };
    let p = ctx.open().await?;
    let svc = p.schedules();
    match cmd {
        ScheduleCommand::Create {
            from_run,
            model,
            wizard,
            name,
            description,
            timing: t,
            catch_up,
            concurrency,
        } => {
            let s = if let Some(file) = wizard {
                let value: serde_json::Value = parse_json(&file)?;
                let mut w = WizardSchedule::from_json(&value)
                    .map_err(|e| CliError::BadInput(format!("{}: {e}", file.display())))?;
                w.ml_model = p.ml_model_or(Some(&w.ml_model));
                svc.create_from_config(w).await?
            } else {
                let name = name.ok_or_else(|| CliError::BadInput("--name is required".into()))?;
                let new = NewSchedule {
                    name,
                    description,
                    timing: timing(&t)?,
                    catch_up,
                    concurrency,
                };
                match (from_run, model) {
                    (Some(run), None) => svc.create_from_run(run, new).await?,
                    (None, Some(model)) => svc.create_for_model(model, new).await?,
                    _ => {
                        return Err(CliError::BadInput(
                            "one of --from-run, --model or --wizard is required".into(),
                        ))
                    }
                }
            };
            if out.json() {
                return out.render(&s, || {});
            }
            if s.timing.schedule_type.fires_on_creation() {
                // Fired by the create call itself (or, should that have failed, by the scheduler).
                let fired = p
                    .training()
                    .list(&RunFilter {
                        schedule_id: Some(s.id),
                        page_size: 1,
                        ..RunFilter::default()
                    })
                    .await?
                    .runs
                    .pop();
                match fired {
                    Some(run) => println!(
                        "Schedule {:?} created (id {}) and fired now: training run {} ({}), status {}",
                        s.name,
                        s.id,
                        run.id,
                        run.display_name(),
                        run.status
                    ),
                    None => println!(
                        "Schedule {:?} created (id {}); due now, the scheduler fires it",
                        s.name, s.id
                    ),
                }
                return Ok(());
            }
            println!(
                "Schedule {:?} created (id {}), next run {}",
                s.name,
                s.id,
                s.next_run_at.map_or("-".into(), |t| t.to_rfc3339())
            );
            Ok(())
        }
        ScheduleCommand::List {
            ml_model,
            status,
            page,
        } => {
            let filter = ScheduleFilter { ml_model, status };
            let listing = svc.list_page(&filter, page.request()).await?;
            if out.json() {
                // The schedules themselves, as before paging (the page is in the flags).
                return out.render(&listing.items, || {});
            }
            print_table(
                &SCHEDULE_HEADERS,
                &listing.items.iter().map(schedule_row).collect::<Vec<_>>(),
            );
            Ok(())
        }
        ScheduleCommand::Show { id, count } => {
            let s = svc.get(id).await?;
            let next: Vec<String> = svc
                .upcoming(id, count)
                .await?
                .iter()
                .map(rfc3339_local)
                .collect();
            out.render(
                &serde_json::json!({"schedule": s, "success_rate": s.success_rate(), "upcoming": next}),
                || {
                    print_table(&SCHEDULE_HEADERS, &[schedule_row(&s)]);
                    println!("\nnext {count} fires ({}):", s.timing.schedule_timezone);
                    next.iter().for_each(|f| println!("  {f}"));
                },
            )
        }
        ScheduleCommand::Edit { id, file } => {
            let edit: ScheduleEdit = parse_json(&file)?;
            crate::output::print_json(&svc.edit(id, &edit).await?)
        }
        ScheduleCommand::Pause { id } => {
            let s = svc.pause(id).await?;
            out.render(&s, || println!("schedule {id} paused"))
        }
        ScheduleCommand::Resume { id } => {
            let s = svc.resume(id).await?;
            out.render(&s, || {
                println!(
                    "schedule {id} resumed; next run {}",
                    s.next_run_at.map_or("-".into(), |t| t.to_rfc3339())
                )
            })
        }
        ScheduleCommand::Cancel { id } => {
            let s = svc.cancel(id).await?;
            out.render(&s, || println!("schedule {id} cancelled"))
        }
        ScheduleCommand::Delete { id } => {
            svc.delete(id).await?;
            out.render(&serde_json::json!({"deleted": id}), || {
                println!("schedule {id} deleted")
            })
        }
        ScheduleCommand::Trigger { id } => {
            let mut outcome = svc.trigger_now(id).await?;
            // With no server running, this command submits the run it created.
            if let FireOutcome::Created { run } = &mut outcome {
                **run = p.carry_to_submitted((**run).clone()).await?;
            }
            out.render(&outcome, || println!("{}", fire_summary(&outcome)))
        }
        ScheduleCommand::Cron { .. } | ScheduleCommand::Preview { .. } => Ok(()),
    }
}
