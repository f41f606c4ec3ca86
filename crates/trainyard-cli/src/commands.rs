//! The command tree and what each command does.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use trainyard::core::deployment::validate_service_name;
use trainyard::core::metrics::{extract_results_from_str, kpi_metrics};
use trainyard::core::model_config::ModelType;
use trainyard::core::ports::{PipelineEvent, RunFilter};
use trainyard::core::run::{ConfigPatch, NewTrainingRun, TrainingRun};
use trainyard::core::RunStatus;
use trainyard::{Error, Platform};

use crate::output::{opt_f64, print_json, print_table};

#[derive(Debug, Parser)]
#[command(
    name = "trainyard",
    version,
    about = "Train, schedule, register and deploy TensorFlow Recommenders models"
)]
pub struct Cli {
    /// Project directory (holds trainyard.toml); defaults to $TRAINYARD_PROJECT or the current directory.
    #[arg(long, global = true, env = "TRAINYARD_PROJECT")]
    project: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a project directory with trainyard.toml and its SQLite database.
    Init { dir: Option<PathBuf> },
    /// Training runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Registered models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Check names and configs without changing anything.
    #[command(subcommand)]
    Validate(ValidateCommand),
    /// Training metrics.
    #[command(subcommand)]
    Metrics(MetricsCommand),
}

#[derive(Debug, Args)]
struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// List runs, newest first, with KPI counts.
    List {
        /// Only these statuses (repeatable).
        #[arg(long = "status")]
        statuses: Vec<String>,
        #[arg(long, value_enum)]
        model_type: Option<ModelTypeArg>,
        #[arg(long)]
        registered_model: Option<i64>,
        /// Substring of the run name.
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show one run.
    Show {
        id: i64,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Create a pending run from a JSON file (ml_model defaults to the project's).
    Create {
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Cancel a pending, scheduled, submitting or running run.
    Cancel { id: i64 },
    /// Create a new run with the config of a finished one.
    Rerun {
        id: i64,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show a run's config, or edit it with --patch FILE (finished runs only).
    Config {
        id: i64,
        #[arg(long)]
        patch: Option<PathBuf>,
    },
    /// Apply a pipeline callback (JSON file, or - for stdin), as the webhooks do.
    Event {
        id: i64,
        file: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Per-epoch metrics history.
    History {
        id: i64,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// List registered models.
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Whether a model name exists and has a schedule.
    CheckName { name: String },
}

#[derive(Debug, Subcommand)]
enum ValidateCommand {
    /// Check a Cloud Run service name; exit 2 with the broken rule when invalid.
    ServiceName { name: String },
}

#[derive(Debug, Subcommand)]
enum MetricsCommand {
    /// Extract a run's results from a training_metrics.json file.
    Extract {
        file: PathBuf,
        #[arg(long, value_enum)]
        model_type: ModelTypeArg,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModelTypeArg {
    Retrieval,
    Ranking,
    Multitask,
}

impl From<ModelTypeArg> for ModelType {
    fn from(m: ModelTypeArg) -> Self {
        match m {
            ModelTypeArg::Retrieval => ModelType::Retrieval,
            ModelTypeArg::Ranking => ModelType::Ranking,
            ModelTypeArg::Multitask => ModelType::Multitask,
        }
    }
}

/// A command's failure: bad input (exit 2) or anything else (exit 1).
#[derive(Debug)]
pub enum CliError {
    BadInput(String),
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::BadInput(_) => 2,
            CliError::Failed(_) => 1,
        }
    }

    pub fn message(&self) -> String {
        let (CliError::BadInput(m) | CliError::Failed(m)) = self;
        m.lines().next().unwrap_or_default().to_string()
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        match e {
            Error::Storage(_) | Error::Backend(_) => CliError::Failed(e.to_string()),
            _ => CliError::BadInput(e.to_string()),
        }
    }
}

fn read_input(path: &Path) -> Result<String, CliError> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    text.map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CliError> {
    serde_json::from_str(&read_input(path)?)
        .map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))
}

fn project_dir(cli_project: &Option<PathBuf>) -> PathBuf {
    cli_project.clone().unwrap_or_else(|| PathBuf::from("."))
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Init { dir } => {
            let dir = dir.unwrap_or_else(|| project_dir(&cli.project));
            let p = Platform::init(&dir).await?;
            println!(
                "initialized trainyard project in {} (model endpoint {:?}, database {})",
                p.dir().display(),
                p.config().project.ml_model,
                p.config().store.sqlite_path
            );
            Ok(())
        }
        Command::Validate(ValidateCommand::ServiceName { name }) => {
            match validate_service_name(&name) {
                Ok(()) => {
                    println!("{name}: valid Cloud Run service name");
                    Ok(())
                }
                Err(e) => Err(CliError::BadInput(format!("{name:?}: {e}"))),
            }
        }
        Command::Metrics(MetricsCommand::Extract {
            file,
            model_type,
            out,
        }) => {
            let model_type = ModelType::from(model_type);
            let results = extract_results_from_str(model_type, &read_input(&file)?)
                .map_err(|e| CliError::BadInput(e.to_string()))?;
            if out.json {
                return print_json(&results);
            }
            let rows: Vec<Vec<String>> = kpi_metrics(model_type)
                .iter()
                .chain(&["final_loss"])
                .map(|m| vec![m.to_string(), opt_f64(results.get(m))])
                .collect();
            print_table(&["metric", "value"], &rows);
            Ok(())
        }
        Command::Runs(cmd) => {
            let p = Platform::open(project_dir(&cli.project)).await?;
            runs(&p, cmd).await
        }
        Command::Models(cmd) => {
            let p = Platform::open(project_dir(&cli.project)).await?;
            models(&p, cmd).await
        }
    }
}

fn run_row(r: &TrainingRun) -> Vec<String> {
    let metric = match r.model_type() {
        ModelType::Retrieval => format!("R@100 {}", opt_f64(r.results.recall_at_100)),
        _ => format!("RMSE {}", opt_f64(r.results.rmse)),
    };
    vec![
        r.id.to_string(),
        format!("#{}", r.run_number),
        r.name.clone(),
        format!("{:?}", r.model_type()).to_lowercase(),
        r.status.to_string(),
        r.current_stage.map_or("-", |s| s.as_str()).to_string(),
        metric,
        r.created_at.format("%Y-%m-%d %H:%M").to_string(),
    ]
}

const RUN_HEADERS: [&str; 8] = [
    "id", "run", "name", "type", "status", "stage", "metric", "created",
];

fn print_run(r: &TrainingRun) {
    print_table(&RUN_HEADERS, &[run_row(r)]);
    println!();
    let stages: Vec<Vec<String>> = r
        .stage_details
        .iter()
        .map(|s| {
            vec![
                s.name.as_str().to_string(),
                format!("{:?}", s.status).to_lowercase(),
                s.duration_seconds()
                    .map_or_else(|| "-".into(), |d| format!("{d:.1}s")),
                s.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["stage", "status", "duration", "error"], &stages);
    if let Some(e) = &r.error_message {
        println!("\nerror: {e}");
    }
}

async fn runs(p: &Platform, cmd: RunsCommand) -> Result<(), CliError> {
    let svc = p.training();
    match cmd {
        RunsCommand::List {
            statuses,
            model_type,
            registered_model,
            search,
            page,
            page_size,
            out,
        } => {
            let statuses = statuses
                .iter()
                .map(|s| {
                    RunStatus::parse(s)
                        .ok_or_else(|| CliError::BadInput(format!("unknown status {s:?}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let page = svc
                .list(&RunFilter {
                    ml_model: None,
                    statuses,
                    model_type: model_type.map(Into::into),
                    registered_model_id: registered_model,
                    schedule_id: None,
                    search,
                    page,
                    page_size,
                })
                .await?;
            if out.json {
                return print_json(&page);
            }
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
            Ok(())
        }
        RunsCommand::Show { id, out } => {
            let r = svc.get(id).await?;
            if out.json {
                return print_json(&r);
            }
            print_run(&r);
            Ok(())
        }
        RunsCommand::Create { config, out } => {
            let mut new: NewTrainingRun = parse_json(&config)?;
            if new.ml_model.is_empty() {
                new.ml_model.clone_from(&p.config().project.ml_model);
            }
            let r = svc.create_training_run(new).await?;
            if out.json {
                return print_json(&r);
            }
            println!(
                "created training run {} ({} of {:?})",
                r.id,
                r.display_name(),
                r.name
            );
            Ok(())
        }
        RunsCommand::Cancel { id } => {
            let r = svc.cancel(id).await?;
            println!("training run {id} is {}", r.status);
            Ok(())
        }
        RunsCommand::Rerun { id, out } => {
            let r = svc.rerun(id).await?;
            if out.json {
                return print_json(&r);
            }
            println!(
                "Re-run created as {} (training run {})",
                r.display_name(),
                r.id
            );
            Ok(())
        }
        RunsCommand::Config { id, patch } => match patch {
            None => print_json(&svc.get_config(id).await?),
            Some(file) => {
                let patch: ConfigPatch = parse_json(&file)?;
                let (config, updated_fields) = svc.patch_config(id, &patch).await?;
                print_json(&serde_json::json!({"config": config, "updated_fields": updated_fields}))
            }
        },
        RunsCommand::Event { id, file, out } => {
            let event: PipelineEvent = parse_json(&file)?;
            let r = svc.handle_event(id, &event).await?;
            if out.json {
                return print_json(&r);
            }
            println!(
                "training run {id}: {} (stage {})",
                r.status,
                r.current_stage.map_or("-", |s| s.as_str())
            );
            Ok(())
        }
        RunsCommand::History { id, out } => {
            let rows = svc.history(id).await?;
            if out.json {
                return print_json(&rows);
            }
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
            Ok(())
        }
    }
}

async fn models(p: &Platform, cmd: ModelsCommand) -> Result<(), CliError> {
    let reg = p.registry();
    match cmd {
        ModelsCommand::List { out } => {
            let models = reg.list(None).await?;
            if out.json {
                return print_json(&models);
            }
            let rows: Vec<Vec<String>> = models
                .iter()
                .map(|m| {
                    vec![
                        m.id.to_string(),
                        m.model_name.clone(),
                        format!("{:?}", m.model_type).to_lowercase(),
                        m.total_versions.to_string(),
                        m.is_registered().to_string(),
                        m.is_deployed.to_string(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "id",
                    "name",
                    "type",
                    "registered versions",
                    "registered",
                    "deployed",
                ],
                &rows,
            );
            Ok(())
        }
        ModelsCommand::CheckName { name } => {
            let check = reg.check_name(&p.config().project.ml_model, &name).await?;
            print_json(&check)
        }
    }
}
