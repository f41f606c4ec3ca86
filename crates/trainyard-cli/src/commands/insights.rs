//! `trainyard runs stats|schema|logs` and `trainyard metrics backfill`: thin printers over
//! the facade's InsightsService.

use std::time::Duration;

use trainyard::insights::{BackfillOptions, BackfillOutcome};
use trainyard::Platform;

use super::Ctx;
use crate::cli::{BackfillArgs, LogsArgs, SchemaArgs, StatsArgs};
use crate::error::CliError;
use crate::output::{print_json, print_table};

fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
    }
}

pub async fn stats(ctx: &Ctx, p: &Platform, a: StatsArgs) -> Result<(), CliError> {
    let s = p.insights().statistics(a.run).await?;
    if ctx.out.json() {
        return print_json(&s);
    }
    let d = match &a.split {
        None => &s.summary.combined,
        Some(name) => s
            .summary
            .splits
            .iter()
            .find(|d| &d.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = s.summary.splits.iter().map(|d| d.name.as_str()).collect();
                CliError::BadInput(format!(
                    "run {} has no split {name:?} (splits: {})",
                    a.run,
                    names.join(", ")
                ))
            })?,
    };
    println!("statistics of training run {} ({})", a.run, d.name);
    println!(
        "examples {}  features {}  numeric/categorical {}/{} ({:.0}% numeric)  avg missing {:.2}%",
        d.total_examples,
        d.feature_count,
        d.numeric_feature_count,
        d.categorical_feature_count,
        d.numeric_ratio * 100.0,
        d.avg_missing_pct
    );
    let rows: Vec<Vec<String>> = d
        .numeric_features
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.count.to_string(),
                format!("{:.2}", f.missing_pct),
                num(f.mean),
                num(f.std_dev),
                format!("{:.2}", f.zeros_pct),
                num(f.min),
                f.median.map_or("-".into(), num),
                num(f.max),
            ]
        })
        .collect();
    println!();
    print_table(
        &[
            "numeric", "count", "missing%", "mean", "std", "zeros%", "min", "median", "max",
        ],
        &rows,
    );
    let rows: Vec<Vec<String>> = d
        .categorical_features
        .iter()
        .map(|f| {
            let top: Vec<String> = f
                .top_values
                .iter()
                .take(3)
                .map(|t| format!("{} ({})", t.value, num(t.frequency)))
                .collect();
            vec![
                f.name.clone(),
                f.count.to_string(),
                format!("{:.2}", f.missing_pct),
                if f.exact {
                    f.unique.to_string()
                } else {
                    format!(">={}", f.unique)
                },
                top.join(", "),
            ]
        })
        .collect();
    println!();
    print_table(
        &["categorical", "count", "missing%", "unique", "top values"],
        &rows,
    );
    Ok(())
}

pub async fn schema(ctx: &Ctx, p: &Platform, a: SchemaArgs) -> Result<(), CliError> {
    let s = p.insights().schema(a.run).await?;
    if ctx.out.json() {
        return print_json(&s);
    }
    println!(
        "schema of training run {}: {} features, {} required ({})",
        a.run, s.summary.feature_count, s.summary.required_count, s.source
    );
    let rows: Vec<Vec<String>> = s
        .summary
        .features
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                serde_json::to_value(f.feature_type)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                if f.required { "required" } else { "optional" }.into(),
                f.shape.clone(),
                f.constraints.join("; "),
            ]
        })
        .collect();
    print_table(
        &["feature", "type", "presence", "shape", "constraints"],
        &rows,
    );
    Ok(())
}

pub async fn logs(p: &Platform, a: LogsArgs) -> Result<(), CliError> {
    let insights = p.insights();
    let mut printed = 0usize;
    loop {
        let logs = insights.logs(a.run, a.component.as_deref()).await?;
        // logs only grow; print what is new since the last read
        if logs.text.len() > printed {
            print!("{}", &logs.text[printed..]);
            printed = logs.text.len();
        }
        if !a.follow || logs.source == "run record" {
            return Ok(());
        }
        let run = p.training().get(a.run).await?;
        if run.status.training_finished() {
            let last = insights.logs(a.run, a.component.as_deref()).await?;
            if last.text.len() > printed {
                print!("{}", &last.text[printed..]);
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn backfill(ctx: &Ctx, p: &Platform, a: BackfillArgs) -> Result<(), CliError> {
    let r = p
        .insights()
        .backfill(BackfillOptions {
            dry_run: a.dry_run,
            force: a.force,
        })
        .await?;
    if ctx.out.json() {
        return print_json(&r);
    }
    println!("Found {} training run(s) to process.", r.found);
    let n = r.items.len();
    for (i, item) in r.items.iter().enumerate() {
        println!(
            "[{}/{n}] Processing TrainingRun {} ({}, type={})...",
            i + 1,
            item.run_id,
            item.display_name,
            item.model_type
        );
        match &item.outcome {
            BackfillOutcome::Updated { changes } => {
                let parts: Vec<String> = changes
                    .iter()
                    .map(|(k, v)| format!("{}={v:.4}", k.to_uppercase()))
                    .collect();
                let verb = if r.dry_run { "Would update" } else { "Updated" };
                println!("  {verb}: {}", parts.join(", "));
            }
            BackfillOutcome::Skipped { reason } => println!("  Skipped: {reason}"),
            BackfillOutcome::Error { message } => println!("  Error: {message}"),
        }
    }
    println!(
        "{}: {} updated, {} skipped, {} errors",
        if r.dry_run {
            "Dry run (nothing written)"
        } else {
            "Completed"
        },
        r.updated,
        r.skipped,
        r.errors
    );
    Ok(())
}
