//! RegistryService: named models (RegisteredModel) and their versions.

use std::sync::Arc;

use trainyard_core::model_config::ModelType;
use trainyard_core::ports::{Clock, RunFilter, Store};
use trainyard_core::registry::{NameCheck, RegisteredModel};
use trainyard_core::run::{validate_name, TrainingRun};
use trainyard_core::{Error, Result};

#[derive(Clone)]
pub struct RegistryService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl RegistryService {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        RegistryService { store, clock }
    }

    /// The model named `model_name` under `ml_model`, created when missing. A name already
    /// used by another model type is refused: all versions of a model share its type.
    pub async fn get_or_create_for_training(
        &self,
        ml_model: &str,
        model_name: &str,
        model_type: ModelType,
        description: &str,
    ) -> Result<RegisteredModel> {
        validate_name("model_name", model_name)?;
        let found = match self
            .store
            .find_registered_model(ml_model, model_name)
            .await?
        {
            Some(m) => m,
            None => {
                let new = RegisteredModel::new(
                    ml_model,
                    model_name,
                    model_type,
                    description,
                    self.clock.now(),
                );
                match self.store.insert_registered_model(&new).await {
                    Ok(m) => return Ok(m),
                    // Another caller created it between our read and insert.
                    Err(Error::Conflict(_)) => self
                        .store
                        .find_registered_model(ml_model, model_name)
                        .await?
                        .ok_or_else(|| Error::not_found("registered model", model_name))?,
                    Err(e) => return Err(e),
                }
            }
        };
        if found.model_type != model_type {
            return Err(Error::Conflict(format!(
                "model {model_name:?} is a {:?} model; a {:?} run cannot be one of its versions",
                found.model_type, model_type
            )));
        }
        Ok(found)
    }

    pub async fn get(&self, id: i64) -> Result<RegisteredModel> {
        self.store.get_registered_model(id).await
    }

    pub async fn list(&self, ml_model: Option<&str>) -> Result<Vec<RegisteredModel>> {
        self.store.list_registered_models(ml_model).await
    }

    /// The spec's check-name: {exists, registered_model_id, has_schedule, schedule_id}.
    pub async fn check_name(&self, ml_model: &str, model_name: &str) -> Result<NameCheck> {
        let Some(m) = self
            .store
            .find_registered_model(ml_model, model_name)
            .await?
        else {
            return Ok(NameCheck {
                exists: false,
                registered_model_id: None,
                has_schedule: false,
                schedule_id: None,
            });
        };
        let schedule = self.store.schedule_for_model(m.id).await?;
        Ok(NameCheck {
            exists: true,
            registered_model_id: Some(m.id),
            has_schedule: schedule.is_some(),
            schedule_id: schedule.map(|s| s.id),
        })
    }

    /// All runs of a model, newest first.
    pub async fn versions(&self, id: i64) -> Result<Vec<TrainingRun>> {
        self.store.get_registered_model(id).await?;
        let mut filter = RunFilter {
            registered_model_id: Some(id),
            page_size: 500,
            ..RunFilter::default()
        };
        let mut runs = Vec::new();
        loop {
            let page = self.store.list_runs(&filter).await?;
            let done = page.runs.len() < filter.page_size as usize;
            runs.extend(page.runs);
            if done {
                return Ok(runs);
            }
            filter.page += 1;
        }
    }
}
