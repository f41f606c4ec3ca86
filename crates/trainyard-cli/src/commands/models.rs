//! `trainyard models ...`: registered models.

use trainyard::core::names::Named;
use trainyard::{ModelFilter, ModelSummary, Platform};

use super::Ctx;
use crate::cli::ModelsCommand;
use crate::error::CliError;
use crate::output::{print_json, print_table};

const HEADERS: [&str; 7] = [
    "id",
    "name",
    "type",
    "registered versions",
    "registered",
    "deployed",
    "schedule",
];

fn row(m: &ModelSummary) -> Vec<String> {
    vec![
        m.model.id.to_string(),
        m.model.model_name.clone(),
        m.model.model_type.as_str().to_string(),
        m.model.total_versions.to_string(),
        m.is_registered.to_string(),
        m.model.is_deployed.to_string(),
        m.schedule_status.map_or("-", |s| s.name()).to_string(),
    ]
}

pub async fn run(ctx: &Ctx, p: &Platform, cmd: ModelsCommand) -> Result<(), CliError> {
    let reg = p.registry();
    match cmd {
        ModelsCommand::List { filter, page } => {
            let filter = ModelFilter {
                ml_model: filter.ml_model,
                model_type: filter.model_type,
                search: filter.search,
                ..ModelFilter::default()
            };
            let listing = reg.list_page(&filter, page.request()).await?;
            ctx.out.render(&listing, || {
                print_table(
                    &HEADERS,
                    &listing
                        .registered_models
                        .iter()
                        .map(row)
                        .collect::<Vec<_>>(),
                );
                crate::output::print_models_page(&listing.pagination);
            })
        }
        ModelsCommand::Show { model } => {
            let m = reg.find(None, &model).await?;
            ctx.out.render(&m, || print_table(&HEADERS, &[row(&m)]))
        }
        ModelsCommand::CheckName { name } => {
            let check = reg.check_name(&p.ml_model_or(None), &name).await?;
            print_json(&check)
        }
    }
}
