//! Project-level commands: `init`, `validate`, `metrics`, `doctor`, `scheduler run`.

use std::path::PathBuf;

use trainyard::core::deployment::validate_service_name;
use trainyard::core::metrics::{extract_results_from_str, Metric};
use trainyard::Platform;

use super::{read_input, shutdown_signal, Ctx};
use crate::cli::{MetricsCommand, SchedulerCommand, ValidateCommand};
use crate::error::CliError;
use crate::output::{opt_f64, print_table};

pub async fn init(ctx: &Ctx, dir: Option<PathBuf>) -> Result<(), CliError> {
    let dir = dir.unwrap_or_else(|| ctx.project_dir());
    let p = Platform::init(&dir).await?;
    println!(
        "initialized trainyard project in {} (model endpoint {:?}, database {})",
        p.dir().display(),
        p.config().project.ml_model,
        p.config().store.sqlite_path
    );
    println!(
        "REST API token (serve-api): {}",
        p.api_token_path().display()
    );
    Ok(())
}

pub fn validate(cmd: ValidateCommand) -> Result<(), CliError> {
    match cmd {
        ValidateCommand::ServiceName { name } => match validate_service_name(&name) {
            Ok(()) => {
                println!("{name}: valid Cloud Run service name");
                Ok(())
            }
            Err(e) => Err(CliError::BadInput(format!("{name:?}: {e}"))),
        },
    }
}

pub async fn metrics(ctx: &Ctx, cmd: MetricsCommand) -> Result<(), CliError> {
    match cmd {
        MetricsCommand::Extract { file, model_type } => {
            let results = extract_results_from_str(model_type, &read_input(&file)?)
                .map_err(|e| CliError::BadInput(e.to_string()))?;
            ctx.out.render(&results, || {
                let rows: Vec<Vec<String>> = Metric::kpis(model_type)
                    .iter()
                    .chain(&[Metric::FinalLoss])
                    .map(|m| vec![m.to_string(), opt_f64(results.value(*m))])
                    .collect();
                print_table(&["metric", "value"], &rows);
            })
        }
        MetricsCommand::Backfill(a) => super::insights::backfill(ctx, &ctx.open().await?, a).await,
    }
}

pub fn doctor(ctx: &Ctx) -> Result<(), CliError> {
    // the project's [local] python when TRAINYARD_PYTHON is unset
    let python = trainyard::project_python(&ctx.project_dir());
    let report = trainyard_codegen::doctor(&python)?;
    print!("{}", report.render());
    if report.ok() {
        Ok(())
    } else {
        Err(CliError::Failed(
            "the managed Python env is incomplete (make pyenv)".into(),
        ))
    }
}

pub async fn scheduler(ctx: &Ctx, cmd: SchedulerCommand) -> Result<(), CliError> {
    let SchedulerCommand::Run { tick_ms } = cmd;
    let p = ctx.open().await?;
    let scheduler = p.embedded_scheduler(trainyard_local::SchedulerConfig {
        tick: std::time::Duration::from_millis(tick_ms.max(10)),
        ..Default::default()
    });
    eprintln!("scheduler running (poll every {tick_ms} ms); Ctrl-C or SIGTERM stops it");
    scheduler.run(shutdown_signal()).await?;
    eprintln!("scheduler stopped");
    Ok(())
}
