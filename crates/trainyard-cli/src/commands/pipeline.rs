//! `trainyard pipeline compile` and `trainyard codegen`.

use std::path::PathBuf;

use trainyard::{CompileOptions, CompileTarget};

use super::{parse_json, parse_new_run, Ctx};
use crate::cli::PipelineCommand;
use crate::error::CliError;

pub fn run(ctx: &Ctx, cmd: PipelineCommand) -> Result<(), CliError> {
    match cmd {
        PipelineCommand::Compile {
            run,
            target,
            out,
            pipeline_root,
            gcp_project,
            gcp_region,
        } => {
            let new = parse_new_run(&run)?;
            let options = CompileOptions {
                target,
                pipeline_root,
                project: gcp_project,
                region: gcp_region,
            };
            // the project (--project, else the working directory): its [gcp] settings apply
            // and relative data paths resolve against it, as for a stored run
            let base = ctx
                .project_dir()
                .canonicalize()
                .map_err(|e| CliError::Failed(format!("{}: {e}", ctx.project_dir().display())))?;
            let done = trainyard::compile_to(new, &options, &base, &out)?;
            ctx.out.render(&done, || match done.target {
                CompileTarget::Vertex => println!(
                    "wrote {} and {} wheels (upload them to {}/_wheels/)",
                    out.display(),
                    done.wheels,
                    done.pipeline_root
                ),
                CompileTarget::Local => {
                    let dir = done
                        .written
                        .first()
                        .and_then(|f| f.parent())
                        .map(|d| d.display().to_string())
                        .unwrap_or_default();
                    println!(
                        "wrote {} files to {dir} (run: TF_USE_LEGACY_KERAS=1 python {dir}/pipeline.py)",
                        done.written.len(),
                    )
                }
            })
        }
    }
}

/// `codegen`: generate modules (deterministic) or check existing ones.
pub fn codegen(
    feature_config: Option<PathBuf>,
    model_config: Option<PathBuf>,
    training_params: Option<PathBuf>,
    gpu_config: Option<PathBuf>,
    out: Option<PathBuf>,
    check: Option<PathBuf>,
) -> Result<(), CliError> {
    if let Some(dir) = check {
        let python =
            trainyard_codegen::default_python(&std::env::current_dir().unwrap_or_default());
        let report = trainyard_codegen::check_modules(&dir, &python)
            .map_err(|e| CliError::BadInput(e.to_string()))?;
        println!(
            "{} modules pass py_compile, pyflakes and ruff format --check",
            report.files.len()
        );
        return Ok(());
    }
    let (Some(features), Some(model), Some(out)) = (feature_config, model_config, out) else {
        return Err(CliError::BadInput(
            "--feature-config, --model-config and --out are required".into(),
        ));
    };
    // Each config file may give only some fields: the facade merges them over the defaults.
    let read = |p: Option<PathBuf>| p.map(|p| parse_json::<serde_json::Value>(&p)).transpose();
    let inputs = trainyard::CodegenInputs {
        feature_config: read(Some(features))?,
        model_config: read(Some(model))?,
        training_params: read(training_params)?,
        gpu_config: read(gpu_config)?,
    };
    let modules = trainyard::generate_modules(&inputs).map_err(trainyard::Error::from)?;
    let written = trainyard_codegen::write_modules(&modules, &out)?;
    for path in written {
        println!("wrote {}", path.display());
    }
    println!("config-sha256 {}", modules.config_hash);
    Ok(())
}
