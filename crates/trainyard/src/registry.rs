//! RegistryService: named models (RegisteredModel) and their versions: registering a blessed
//! run as the next version, listing with KPIs, aliases and their history.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use trainyard_core::metrics::Metric;
use trainyard_core::model_config::ModelType;
use trainyard_core::ports::{Clock, ModelRegistry, RunFilter, Store};
use trainyard_core::registry::{
    validate_alias, NameCheck, RegisteredModel, RegistryEvent, RegistryEventKind,
};
use trainyard_core::run::{validate_name, RegisteredModelId, RunId, TrainingRun};
use trainyard_core::schedule::ScheduleStatus;
use trainyard_core::stages::StageName;
use trainyard_core::{Error, Result, RunStatus, ValidationError};

use crate::deployments::{pushed_model_path, DeploymentService, REGISTERED_MODEL_ARTIFACT};
use crate::listing::{Page, PageRequest, Pagination};
use crate::records::{mutate_model, mutate_run};

/// Filters of the model list (spec: type, status, schedule, search).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelFilter {
    pub ml_model: Option<String>,
    pub model_type: Option<ModelType>,
    /// Registered to the registry at least once.
    pub registered: Option<bool>,
    /// Has an active endpoint on record.
    pub deployed: Option<bool>,
    pub has_schedule: Option<bool>,
    /// Case-insensitive substring of the model name.
    pub search: Option<String>,
}

/// The spec's KPI row of the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryKpi {
    pub total: u64,
    pub registered: u64,
    pub with_schedule: u64,
    pub deployed: u64,
}

/// One row of the model list. `is_deployed` is the deployment record (what the last deploy or
/// undeploy did); `has_active_endpoint` is the live answer of the deployer. Badges that mean
/// "the pipeline deployed this" read the first, "is it up now" the second (DESIGN bug 11).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    #[serde(flatten)]
    pub model: RegisteredModel,
    pub is_registered: bool,
    pub has_schedule: bool,
    pub schedule_id: Option<i64>,
    pub schedule_status: Option<ScheduleStatus>,
    pub has_active_endpoint: bool,
    /// Deployed, but not the latest version.
    pub is_outdated: bool,
    pub aliases: BTreeMap<String, String>,
    /// The latest version's KPI metrics.
    pub metrics: BTreeMap<String, Option<f64>>,
}

/// One page of the model list, the KPI row over every filtered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPage {
    pub registered_models: Vec<ModelSummary>,
    pub kpi: RegistryKpi,
    pub pagination: Pagination,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelListing {
    pub registered_models: Vec<ModelSummary>,
    pub kpi: RegistryKpi,
}

/// One registered version of a model with its KPI metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub version: String,
    pub training_run_id: RunId,
    pub run_number: u32,
    pub run_name: String,
    pub status: RunStatus,
    pub registered_at: Option<chrono::DateTime<chrono::Utc>>,
    pub is_blessed: bool,
    pub metrics: BTreeMap<String, Option<f64>>,
    pub aliases: Vec<String>,
    /// Endpoints serving this version according to the record.
    pub endpoints: Vec<String>,
}

#[derive(Clone)]
pub struct RegistryService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    backend: Option<Arc<dyn ModelRegistry>>,
    deployments: Option<DeploymentService>,
}

impl RegistryService {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        RegistryService {
            store,
            clock,
            backend: None,
            deployments: None,
        }
    }

    /// Registers versions in `backend` (filesystem registry, Vertex AI Model Registry).
    pub fn with_backend(mut self, backend: Arc<dyn ModelRegistry>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Deploys after registration when a run's deployment_config is enabled, and answers
    /// live deployment questions in listings.
    pub fn with_deployments(mut self, deployments: DeploymentService) -> Self {
        self.deployments = Some(deployments);
        self
    }

    /// Whether registration is possible (a registry backend is configured).
    pub fn can_register(&self) -> bool {
        self.backend.is_some()
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

    /// Registers a blessed, completed run as the next version of its model (what follows, the
    /// auto-deploy, is the lifecycle's: `Platform::lifecycle().push`). A not-blessed run is
    /// refused. A registry failure fails the register stage (kept on the run) and is
    /// returned. Registries return the version a run already has, so a repeat after a crash
    /// between registering and recording creates nothing.
    pub async fn register(&self, run_id: RunId) -> Result<TrainingRun> {
        let run = self.store.get_run(run_id).await?;
        if run.status == RunStatus::NotBlessed || run.results.is_blessed == Some(false) {
            return Err(Error::Validation(ValidationError::field(
                "training_run",
                format!(
                    "run {run_id} was not blessed by the evaluator, so it cannot be registered; only blessed models become versions"
                ),
            )));
        }
        if !matches!(run.status, RunStatus::Completed) && run.vertex_model_version.is_none() {
            return Err(Error::Validation(ValidationError::field(
                "training_run",
                format!(
                    "run {run_id} is {}; only a completed, blessed run can be registered",
                    run.status
                ),
            )));
        }
        if let Some(v) = &run.vertex_model_version {
            return Err(Error::Conflict(format!(
                "run {run_id} is already registered as version {v} of {:?}",
                run.vertex_model_name.clone().unwrap_or_default()
            )));
        }
        let backend = self.backend.as_ref().ok_or_else(|| {
            Error::Backend("no model registry is configured for this platform".into())
        })?;
        let model = match run.registered_model_id {
            Some(id) => self.store.get_registered_model(id).await?,
            None => {
                self.get_or_create_for_training(
                    &run.ml_model,
                    &run.name,
                    run.model_type(),
                    &run.description,
                )
                .await?
            }
        };
        let model_path = pushed_model_path(&run)?;
        let labels = registration_labels(&run);
        let registered = match backend.register(&model, &run, &model_path, &labels).await {
            Ok(v) => v,
            Err(e) => {
                let now = self.clock.now();
                let error = e.to_string();
                tracing::warn!(run_id, error = %error, "registration failed");
                mutate_run(&self.store, &self.clock, run_id, |r| {
                    r.update_stages(|s| s.fail(StageName::Register, now, error.clone()));
                    Ok(())
                })
                .await?;
                return Err(e);
            }
        };
        let now = self.clock.now();
        let run = mutate_run(&self.store, &self.clock, run_id, |r| {
            r.registered_model_id = Some(model.id);
            r.vertex_model_name = Some(model.model_name.clone());
            r.vertex_model_resource_name = Some(registered.model_resource_name.clone());
            r.vertex_model_version = Some(registered.version.clone());
            r.registered_at = Some(now);
            if let Some(uri) = &registered.artifact_uri {
                r.artifacts
                    .insert(REGISTERED_MODEL_ARTIFACT.to_string(), uri.clone());
            }
            r.update_stages(|s| {
                s.start(StageName::Register, now);
                s.complete(StageName::Register, now);
            });
            Ok(())
        })
        .await?;
        self.update_after_registration(model.id, &run).await?;
        tracing::info!(run_id, model = %model.model_name, version = %registered.version, "registered");
        Ok(run)
    }

    /// The spec's update_after_registration: first_registered_at, resource name, latest
    /// version cache and total_versions, from the runs registered to the model.
    pub async fn update_after_registration(
        &self,
        model_id: RegisteredModelId,
        run: &TrainingRun,
    ) -> Result<RegisteredModel> {
        let total = self
            .versions(model_id)
            .await?
            .iter()
            .filter(|r| r.vertex_model_version.is_some())
            .count() as u32;
        let version = run
            .vertex_model_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        mutate_model(&self.store, &self.clock, model_id, |model| {
            model.first_registered_at = model.first_registered_at.or(run.registered_at);
            if let Some(name) = &run.vertex_model_resource_name {
                model.vertex_model_resource_name.clone_from(name);
            }
            if model.latest_version_number.parse::<u64>().unwrap_or(0) <= version {
                model.latest_version_id = Some(run.id);
                model.latest_version_number = run.vertex_model_version.clone().unwrap_or_default();
            }
            model.total_versions = total;
        })
        .await
    }

    /// Registered versions of a model, oldest first, with the KPI set of its model type.
    pub async fn model_versions(&self, model_id: RegisteredModelId) -> Result<Vec<ModelVersion>> {
        let model = self.store.get_registered_model(model_id).await?;
        let aliases = self.aliases(model_id).await?;
        let endpoints = self.store.list_endpoints(Some(model_id)).await?;
        let mut out: Vec<ModelVersion> = self
            .versions(model_id)
            .await?
            .into_iter()
            .filter_map(|run| {
                let version = run.vertex_model_version.clone()?;
                Some(ModelVersion {
                    metrics: kpi_of(model.model_type, &run),
                    aliases: aliases
                        .iter()
                        .filter(|(_, v)| **v == version)
                        .map(|(a, _)| a.clone())
                        .collect(),
                    endpoints: endpoints
                        .iter()
                        .filter(|e| e.is_active && e.deployed_training_run_id == Some(run.id))
                        .map(|e| e.service_name.clone())
                        .collect(),
                    version,
                    training_run_id: run.id,
                    run_number: run.run_number,
                    run_name: run.name.clone(),
                    status: run.status,
                    registered_at: run.registered_at,
                    is_blessed: run.results.is_blessed.unwrap_or(false),
                })
            })
            .collect();
        out.sort_by_key(|v| v.version.parse::<u64>().unwrap_or(u64::MAX));
        Ok(out)
    }

    /// Models with their schedule, aliases, latest metrics and live endpoint state, filtered,
    /// and the KPI row over the filtered set.
    pub async fn list_with_kpi(&self, filter: &ModelFilter) -> Result<ModelListing> {
        let search = filter.search.as_deref().map(str::to_lowercase);
        let mut rows = Vec::new();
        let mut kpi = RegistryKpi::default();
        for model in self
            .store
            .list_registered_models(filter.ml_model.as_deref())
            .await?
        {
            let schedule = self.store.schedule_for_model(model.id).await?;
            let keep = filter.model_type.is_none_or(|t| t == model.model_type)
                && filter.registered.is_none_or(|r| r == model.is_registered())
                && filter.deployed.is_none_or(|d| d == model.is_deployed)
                && filter.has_schedule.is_none_or(|h| h == schedule.is_some())
                && search
                    .as_ref()
                    .is_none_or(|s| model.model_name.to_lowercase().contains(s));
            if !keep {
                continue;
            }
            let has_active_endpoint = match &self.deployments {
                Some(d) => {
                    let mut any = false;
                    for ep in self.store.list_endpoints(Some(model.id)).await? {
                        if ep.is_active && d.is_serving(&ep).await == Ok(true) {
                            any = true;
                            break;
                        }
                    }
                    any
                }
                None => false,
            };
            let metrics = match model.latest_version_id {
                Some(id) => kpi_of(model.model_type, &self.store.get_run(id).await?),
                None => BTreeMap::new(),
            };
            kpi.total += 1;
            kpi.registered += u64::from(model.is_registered());
            kpi.with_schedule += u64::from(schedule.is_some());
            kpi.deployed += u64::from(model.is_deployed);
            rows.push(ModelSummary {
                is_registered: model.is_registered(),
                has_schedule: schedule.is_some(),
                schedule_id: schedule.as_ref().map(|s| s.id),
                schedule_status: schedule.as_ref().map(|s| s.status),
                has_active_endpoint,
                is_outdated: model.is_deployed
                    && model.deployed_version_id.is_some()
                    && model.deployed_version_id != model.latest_version_id,
                aliases: self.aliases(model.id).await?,
                metrics,
                model,
            });
        }
        rows.sort_by(|a, b| {
            b.model
                .created_at
                .cmp(&a.model.created_at)
                .then(b.model.id.cmp(&a.model.id))
        });
        Ok(ModelListing {
            registered_models: rows,
            kpi,
        })
    }

    /// One page of [`RegistryService::list_with_kpi`] (newest first), with the KPI row over
    /// every filtered model.
    pub async fn list_page(&self, filter: &ModelFilter, page: PageRequest) -> Result<ModelPage> {
        page.check()?;
        let listing = self.list_with_kpi(filter).await?;
        let page = Page::of(listing.registered_models, page);
        Ok(ModelPage {
            registered_models: page.items,
            kpi: listing.kpi,
            pagination: page.pagination,
        })
    }

    /// A model as the list shows it, by id.
    pub async fn summary(&self, id: RegisteredModelId) -> Result<ModelSummary> {
        let model = self.get(id).await?;
        // The list's row of this model: narrowed by endpoint and name, then picked by id.
        let filter = ModelFilter {
            ml_model: Some(model.ml_model.clone()),
            search: Some(model.model_name.clone()),
            ..ModelFilter::default()
        };
        self.list_with_kpi(&filter)
            .await?
            .registered_models
            .into_iter()
            .find(|m| m.model.id == id)
            .ok_or_else(|| Error::not_found("registered model", id))
    }

    /// A model by id, or by name: in `ml_model` when given, else across every model
    /// endpoint (a name held in several must be given by id, or with its endpoint). A name
    /// made of digits is found by name when no model has that id.
    pub async fn find(&self, ml_model: Option<&str>, key: &str) -> Result<ModelSummary> {
        let key = key.trim();
        if let Ok(id) = key.parse::<RegisteredModelId>() {
            match self.summary(id).await {
                Err(Error::NotFound { .. }) => {}
                // an id in another endpoint than the one asked for is not that endpoint's
                Ok(found) if ml_model.is_some_and(|m| found.model.ml_model != m) => {}
                other => return other,
            }
        }
        let Some(ml_model) = ml_model else {
            let mut found: Vec<RegisteredModel> = self
                .list(None)
                .await?
                .into_iter()
                .filter(|m| m.model_name == key)
                .collect();
            return match found.len() {
                0 => Err(Error::not_found("registered model", key)),
                1 => self.summary(found.remove(0).id).await,
                n => Err(Error::Validation(trainyard_core::ValidationError::field(
                    "model",
                    format!("{n} registered models are named {key:?}; give its id"),
                ))),
            };
        };
        match self.store.find_registered_model(ml_model, key).await? {
            Some(m) => self.summary(m.id).await,
            None => Err(Error::not_found("registered model", key)),
        }
    }

    /// The run registered as `version` of a model.
    pub async fn version_run(
        &self,
        model_id: RegisteredModelId,
        version: &str,
    ) -> Result<TrainingRun> {
        self.versions(model_id)
            .await?
            .into_iter()
            .find(|r| r.vertex_model_version.as_deref() == Some(version))
            .ok_or_else(|| Error::not_found("model version", format!("{model_id}/{version}")))
    }

    /// Points `alias` of a model at one of its registered versions (moving it if it pointed
    /// elsewhere); the change is kept in the model's history.
    pub async fn set_alias(
        &self,
        model_id: RegisteredModelId,
        alias: &str,
        version: &str,
    ) -> Result<RegistryEvent> {
        validate_alias(alias)?;
        let run = self.version_run(model_id, version).await?;
        self.store
            .insert_registry_event(&RegistryEvent {
                id: 0,
                registered_model_id: model_id,
                kind: RegistryEventKind::Alias,
                name: alias.to_string(),
                training_run_id: Some(run.id),
                model_version: version.to_string(),
                at: self.clock.now(),
                version: 0,
            })
            .await
    }

    /// Removes an alias; removing one that points nowhere is NotFound.
    pub async fn remove_alias(
        &self,
        model_id: RegisteredModelId,
        alias: &str,
    ) -> Result<RegistryEvent> {
        if !self.aliases(model_id).await?.contains_key(alias) {
            return Err(Error::not_found("alias", alias));
        }
        self.store
            .insert_registry_event(&RegistryEvent {
                id: 0,
                registered_model_id: model_id,
                kind: RegistryEventKind::Alias,
                name: alias.to_string(),
                training_run_id: None,
                model_version: String::new(),
                at: self.clock.now(),
                version: 0,
            })
            .await
    }

    /// Current aliases of a model: alias -> version.
    pub async fn aliases(&self, model_id: RegisteredModelId) -> Result<BTreeMap<String, String>> {
        let events = self.store.registry_events(model_id).await?;
        Ok(trainyard_core::registry::current_aliases(&events))
    }

    /// Which version held which alias, and served on which endpoint, when (oldest first).
    pub async fn history(&self, model_id: RegisteredModelId) -> Result<Vec<RegistryEvent>> {
        self.store.get_registered_model(model_id).await?;
        self.store.registry_events(model_id).await
    }
}

/// Labels of a registered version (spec: training_run_id, model_type, metrics, is_blessed).
/// Values follow Vertex AI's label rules (lowercase letters, digits, '_' and '-'), so a
/// metric like 0.4573 is written 0_4573.
pub fn registration_labels(run: &TrainingRun) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("training_run_id".to_string(), run.id.to_string()),
        ("model_endpoint".to_string(), label_value(&run.ml_model)),
        (
            "model_type".to_string(),
            run.model_type().as_str().to_string(),
        ),
        (
            "is_blessed".to_string(),
            run.results.is_blessed.unwrap_or(false).to_string(),
        ),
    ]);
    for metric in Metric::kpis(run.model_type()) {
        if let Some(v) = run.results.value(*metric) {
            labels.insert(metric.name().to_string(), label_value(&format!("{v:.4}")));
        }
    }
    labels
}

fn label_value(v: &str) -> String {
    v.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect()
}

fn kpi_of(model_type: ModelType, run: &TrainingRun) -> BTreeMap<String, Option<f64>> {
    Metric::kpis(model_type)
        .iter()
        .map(|m| (m.name().to_string(), run.results.value(*m)))
        .collect()
}
