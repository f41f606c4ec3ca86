//! DeploymentService: serve a registered version on an endpoint owned by its RegisteredModel,
//! undeploy it, and say whether it is serving — asked of the live deployer every time, never
//! read from a stored flag.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use trainyard_core::config::{DeploymentConfig, DeploymentPreset};
use trainyard_core::deployment::{
    default_service_name_for, live_status, validate_service_name_for, DeployTarget,
    DeploymentStatus, LiveDeploymentStatus, ServingTarget,
};
use trainyard_core::model_config::RetrievalAlgorithm;
use trainyard_core::ports::{Clock, DeployRequest, Deployer, Store};
use trainyard_core::registry::{DeployedEndpoint, RegistryEvent, RegistryEventKind};
use trainyard_core::run::{RegisteredModelId, RunId, TrainingRun};
use trainyard_core::stages::StageName;
use trainyard_core::{Error, Result, RunEvent, RunStatus, ValidationError};

use crate::records::{mutate_model, mutate_run};

/// Run artifact key of the folder the registry keeps for a registered version.
pub const REGISTERED_MODEL_ARTIFACT: &str = "registered_model_uri";

/// Serving images by retrieval algorithm (DESIGN: brute force -> native TF Serving image,
/// ScaNN -> a ScaNN-capable image). The local deployer runs trainyard-serve for both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServingImages {
    pub native: String,
    pub scann: String,
}

impl Default for ServingImages {
    fn default() -> Self {
        ServingImages {
            native: "tf-serving-native:latest".into(),
            scann: "tf-serving-scann:latest".into(),
        }
    }
}

impl ServingImages {
    pub fn for_run(&self, run: &TrainingRun) -> &str {
        match run.config.model_config.retrieval_algorithm {
            RetrievalAlgorithm::Scann => &self.scann,
            RetrievalAlgorithm::BruteForce => &self.native,
        }
    }
}

/// How to deploy: resources and which endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeployOptions {
    /// A named preset; `custom` needs `resources`. Default: the run's deployment_config.
    pub preset: Option<DeploymentPreset>,
    /// Custom resources (min/max instances, memory, cpu, timeout).
    pub resources: Option<DeploymentConfig>,
    /// Update this existing endpoint; it must belong to the run's registered model.
    pub endpoint: Option<String>,
    /// Name for a new endpoint; default: the DESIGN.md chain + "-serving".
    pub service_name: Option<String>,
    /// Where to serve: `service` (trainyard-serve locally, Cloud Run on Google Cloud) or
    /// `vertex_endpoint` (a Vertex AI endpoint serving the registered Vertex version).
    /// Default: the named endpoint's target, else `service`.
    pub target: Option<DeployTarget>,
}

/// Deployment of one run as users see it. `deployment_status` is what the pipeline and the
/// last deploy did; `has_active_endpoint` and `status` are what the endpoint does right now.
/// They are kept apart on purpose (DESIGN bug 11).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentView {
    pub training_run_id: RunId,
    pub run_status: RunStatus,
    pub deployment_status: DeploymentStatus,
    pub has_active_endpoint: bool,
    pub status: LiveDeploymentStatus,
    pub endpoint: Option<DeployedEndpoint>,
}

/// An endpoint and whether it is serving now (`None` with the error when that is unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointView {
    #[serde(flatten)]
    pub endpoint: DeployedEndpoint,
    pub serving: Option<bool>,
    pub error: Option<String>,
}

#[derive(Clone)]
pub struct DeploymentService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    deployer: Option<Arc<dyn Deployer>>,
    /// Vertex AI endpoints (`DeployTarget::VertexEndpoint`); Google Cloud backend only.
    vertex: Option<Arc<dyn Deployer>>,
    images: ServingImages,
}

impl DeploymentService {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        deployer: Option<Arc<dyn Deployer>>,
    ) -> Self {
        DeploymentService {
            store,
            clock,
            deployer,
            vertex: None,
            images: ServingImages::default(),
        }
    }

    /// Deploys with `target: vertex_endpoint` go to `deployer` (Vertex AI endpoints).
    pub fn with_vertex_endpoints(mut self, deployer: Option<Arc<dyn Deployer>>) -> Self {
        self.vertex = deployer;
        self
    }

    pub fn with_images(mut self, images: ServingImages) -> Self {
        self.images = images;
        self
    }

    /// Whether a deployer is configured.
    pub fn can_deploy(&self) -> bool {
        self.deployer.is_some()
    }

    /// The deployer of `target`.
    fn deployer_for(&self, target: DeployTarget) -> Result<&Arc<dyn Deployer>> {
        match target {
            DeployTarget::Service => self.deployer.as_ref().ok_or_else(|| {
                Error::Backend("no deployer is configured for this platform".into())
            }),
            DeployTarget::VertexEndpoint => self.vertex.as_ref().ok_or_else(|| {
                Error::Validation(ValidationError::field(
                    "target",
                    "Vertex AI endpoints need the Google Cloud backend (--backend gcp, [gcp] in trainyard.toml)",
                ))
            }),
        }
    }

    /// What a deploy to `target` serves: the model folder (service), or the registered Vertex
    /// Model Registry version `projects/../models/ID@VERSION` (Vertex AI endpoint).
    fn model_to_serve(
        &self,
        run: &TrainingRun,
        version: &str,
        target: DeployTarget,
    ) -> Result<String> {
        match target {
            DeployTarget::Service => model_path_of(run),
            DeployTarget::VertexEndpoint => match run.vertex_model_resource_name.as_deref() {
                Some(name) if name.starts_with("projects/") => Ok(format!(
                    "{}@{version}",
                    trainyard_gcp::vertex_registry::strip_version(name)
                )),
                _ => Err(Error::Validation(ValidationError::field(
                    "target",
                    format!(
                        "run {} is not registered in Vertex AI Model Registry (it was registered \
                         without the Google Cloud backend); push it with --backend gcp first",
                        run.id
                    ),
                ))),
            },
        }
    }

    /// The endpoint named `service_name`.
    pub async fn endpoint(&self, service_name: &str) -> Result<DeployedEndpoint> {
        self.store
            .list_endpoints(None)
            .await?
            .into_iter()
            .find(|e| e.service_name == service_name)
            .ok_or_else(|| Error::not_found("endpoint", service_name))
    }

    /// Deploys a registered run. Input errors (not registered, a name that breaks the rules,
    /// an endpoint of another model, a model serving indices) change nothing. Once the deploy
    /// starts the run moves deploying -> deployed, or deploy_failed with the error kept (and
    /// the error is returned).
    pub async fn deploy(&self, run_id: RunId, options: &DeployOptions) -> Result<TrainingRun> {
        let run = self.store.get_run(run_id).await?;
        let version = run.vertex_model_version.clone().ok_or_else(|| {
            Error::Validation(ValidationError::field(
                "training_run",
                format!(
                    "run {run_id} is not registered; push it to the registry first (`trainyard registry push {run_id}`)"
                ),
            ))
        })?;
        // Refuse a status the state machine refuses before touching anything.
        trainyard_core::status::apply(run.status, RunEvent::Deploy)?;
        let model_id = run.registered_model_id.ok_or_else(|| {
            Error::Validation(ValidationError::field(
                "training_run",
                format!("run {run_id} has no registered model"),
            ))
        })?;
        let model = self.store.get_registered_model(model_id).await?;
        let config = resolve_config(&run.config.deployment_config, options)?;
        let (existing, target) = self.pick_endpoint(&run, &model, &config, options).await?;
        let service_name = match &existing {
            Endpoint::Existing(ep) => ep.service_name.clone(),
            Endpoint::New(name) => name.clone(),
        };
        let deployer = self.deployer_for(target)?;
        let model_path = self.model_to_serve(&run, &version, target)?;
        if target == DeployTarget::Service {
            // A registered version is served only as it was registered (its MANIFEST.json
            // checksums); a changed file refuses the deploy before anything changes.
            let to_verify = std::path::PathBuf::from(&model_path);
            tokio::task::spawn_blocking(move || {
                trainyard_local::LocalModelRegistry::verify_if_registered(&to_verify)
            })
            .await
            .map_err(|e| Error::Backend(format!("verify task failed: {e}")))??;
        }
        deployer.check_model(&model_path).await?;

        let now = self.clock.now();
        mutate_run(&self.store, &self.clock, run_id, |r| {
            r.transition(RunEvent::Deploy, now)?;
            r.deployment_status = DeploymentStatus::Deploying;
            r.deployment_started_at = Some(now);
            r.deployment_completed_at = None;
            r.deployment_error.clear();
            r.update_stages(|s| s.start(StageName::Deploy, now));
            Ok(())
        })
        .await?;
        // The model's aliases become the server's version labels (TF Serving's /labels/NAME).
        let events = self.store.registry_events(model_id).await?;
        let labels = trainyard_core::registry::current_aliases(&events)
            .into_iter()
            .filter_map(|(alias, v)| v.parse().ok().map(|v| (alias, v)))
            .collect();
        let request = DeployRequest {
            service_name: service_name.clone(),
            model_path,
            image: self.images.for_run(&run).to_string(),
            config: config.clone(),
            labels,
        };
        let url = match deployer.deploy(&request).await {
            Ok(url) => url,
            Err(e) => {
                let error = e.to_string();
                tracing::warn!(run_id, service = %service_name, %target, error = %error, "deploy failed");
                let now = self.clock.now();
                mutate_run(&self.store, &self.clock, run_id, |r| {
                    r.transition(RunEvent::DeployError, now)?;
                    r.deployment_status = DeploymentStatus::Failed;
                    r.deployment_error.clone_from(&error);
                    r.update_stages(|s| s.fail(StageName::Deploy, now, error.clone()));
                    Ok(())
                })
                .await?;
                return Err(e);
            }
        };

        let now = self.clock.now();
        let endpoint = match existing {
            Endpoint::Existing(mut ep) => {
                let replaced = ep.deployed_training_run_id.filter(|id| *id != run_id);
                ep.service_url = url;
                ep.deployed_version.clone_from(&version);
                ep.deployed_training_run_id = Some(run_id);
                ep.is_active = true;
                ep.deployment_config = config.clone();
                ep.updated_at = now;
                let ep = self.store.update_endpoint(&ep).await?;
                if let Some(old) = replaced {
                    self.release_run(old, ep.id).await?;
                }
                ep
            }
            Endpoint::New(name) => {
                self.store
                    .insert_endpoint(&DeployedEndpoint {
                        id: 0,
                        registered_model_id: model_id,
                        service_name: name,
                        service_url: url,
                        deployed_version: version.clone(),
                        deployed_training_run_id: Some(run_id),
                        is_active: true,
                        deployment_config: config.clone(),
                        target,
                        created_at: now,
                        updated_at: now,
                        version: 0,
                    })
                    .await?
            }
        };
        let run = mutate_run(&self.store, &self.clock, run_id, |r| {
            r.transition(RunEvent::Deployed, now)?;
            r.deployment_status = DeploymentStatus::Deployed;
            r.deployment_completed_at = Some(now);
            r.deployed_endpoint_id = Some(endpoint.id);
            r.config.deployment_config.clone_from(&config);
            r.config
                .deployment_config
                .service_name
                .clone_from(&endpoint.service_name);
            r.update_stages(|s| s.complete(StageName::Deploy, now));
            Ok(())
        })
        .await?;
        self.record_endpoint_event(&endpoint, Some(run_id), &version)
            .await?;
        tracing::info!(run_id, service = %endpoint.service_name, url = %endpoint.service_url, version = %version, "deployed");
        self.sync_model_deployment(model_id).await?;
        Ok(run)
    }

    /// The endpoint a deploy goes to, and its target: the named existing one (which must be
    /// this model's, on the asked target), or a new one named by the options or the default
    /// chain. A new name that is taken by this model's endpoint updates it; taken by another
    /// model's, it is refused.
    async fn pick_endpoint(
        &self,
        run: &TrainingRun,
        model: &trainyard_core::registry::RegisteredModel,
        config: &DeploymentConfig,
        options: &DeployOptions,
    ) -> Result<(Endpoint, DeployTarget)> {
        let all = self.store.list_endpoints(None).await?;
        let owned_or_refused = |ep: DeployedEndpoint| -> Result<(Endpoint, DeployTarget)> {
            if ep.registered_model_id == model.id {
                match options.target {
                    Some(t) if t != ep.target => Err(Error::Conflict(format!(
                        "endpoint {} is served by {}, not {t}; deploy there with --target {} or name another endpoint",
                        ep.service_name, ep.target, ep.target
                    ))),
                    _ => {
                        let target = ep.target;
                        Ok((Endpoint::Existing(Box::new(ep)), target))
                    }
                }
            } else {
                Err(Error::Conflict(format!(
                    "endpoint {} belongs to another registered model (id {}); a version of {:?} cannot be deployed to it",
                    ep.service_name, ep.registered_model_id, model.model_name
                )))
            }
        };
        if let Some(name) = &options.endpoint {
            let ep = all
                .into_iter()
                .find(|e| &e.service_name == name)
                .ok_or_else(|| Error::not_found("endpoint", name))?;
            return owned_or_refused(ep);
        }
        let deploy_target = options.target.unwrap_or_default();
        let target = match deploy_target {
            DeployTarget::Service => self
                .deployer
                .as_ref()
                .map_or(ServingTarget::Local, |d| d.serving_target()),
            DeployTarget::VertexEndpoint => self.deployer_for(deploy_target)?.serving_target(),
        };
        let name = match (&options.service_name, config.custom_name) {
            (Some(n), _) => n.clone(),
            (None, true) if !config.service_name.is_empty() => config.service_name.clone(),
            _ => default_service_name_for(
                target,
                run.vertex_model_name.as_deref(),
                Some(&model.model_name),
                Some(&run.name),
                &run.ml_model,
            ),
        };
        validate_service_name_for(&name, target).map_err(|e| {
            Error::Validation(ValidationError::field(
                "service_name",
                format!("{name:?}: {e}"),
            ))
        })?;
        match all.into_iter().find(|e| e.service_name == name) {
            Some(ep) => owned_or_refused(ep),
            None => Ok((Endpoint::New(name), deploy_target)),
        }
    }

    /// Stops serving on an endpoint: the server is stopped, the endpoint marked inactive and
    /// the run it served goes back to completed (or not_blessed), so it can be deployed again.
    pub async fn undeploy(&self, service_name: &str) -> Result<DeployedEndpoint> {
        let mut ep = self.endpoint(service_name).await?;
        self.deployer_for(ep.target)?.undeploy(service_name).await?;
        let served = ep.deployed_training_run_id;
        ep.is_active = false;
        ep.updated_at = self.clock.now();
        let ep = self.store.update_endpoint(&ep).await?;
        if let Some(run_id) = served {
            self.release_run(run_id, ep.id).await?;
        }
        self.record_endpoint_event(&ep, None, "").await?;
        tracing::info!(service = %ep.service_name, "undeployed");
        self.sync_model_deployment(ep.registered_model_id).await?;
        Ok(ep)
    }

    /// A run no longer served by endpoint `endpoint_id` leaves `deployed`.
    async fn release_run(&self, run_id: RunId, endpoint_id: i64) -> Result<()> {
        let now = self.clock.now();
        let result = mutate_run(&self.store, &self.clock, run_id, |r| {
            if r.deployed_endpoint_id != Some(endpoint_id) {
                return Ok(());
            }
            if r.status == RunStatus::Deployed {
                let is_blessed = r.results.is_blessed.unwrap_or(true);
                r.transition(RunEvent::Undeploy { is_blessed }, now)?;
            }
            r.deployed_endpoint_id = None;
            Ok(())
        })
        .await;
        match result {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn record_endpoint_event(
        &self,
        ep: &DeployedEndpoint,
        run_id: Option<RunId>,
        version: &str,
    ) -> Result<()> {
        self.store
            .insert_registry_event(&RegistryEvent {
                id: 0,
                registered_model_id: ep.registered_model_id,
                kind: RegistryEventKind::Endpoint,
                name: ep.service_name.clone(),
                training_run_id: run_id,
                model_version: version.to_string(),
                at: self.clock.now(),
                version: 0,
            })
            .await?;
        Ok(())
    }

    /// The model's deployment record (is_deployed, deployed_version_id) from its active
    /// endpoints, written after every deploy and undeploy.
    async fn sync_model_deployment(&self, model_id: RegisteredModelId) -> Result<()> {
        let active: Vec<DeployedEndpoint> = self
            .store
            .list_endpoints(Some(model_id))
            .await?
            .into_iter()
            .filter(|e| e.is_active)
            .collect();
        let deployed_version_id = active
            .iter()
            .max_by_key(|e| e.updated_at)
            .and_then(|e| e.deployed_training_run_id);
        mutate_model(&self.store, &self.clock, model_id, |model| {
            model.is_deployed = !active.is_empty();
            model.deployed_version_id = deployed_version_id;
        })
        .await?;
        Ok(())
    }

    /// Whether an active endpoint serves right now; `Err` with the reason when that cannot be
    /// told (shown as "unknown").
    pub async fn is_serving(&self, ep: &DeployedEndpoint) -> std::result::Result<bool, String> {
        if !ep.is_active {
            return Ok(false);
        }
        let deployer = self.deployer_for(ep.target).map_err(|e| e.to_string())?;
        if ep.target == DeployTarget::VertexEndpoint {
            // An endpoint can serve several models: ask for the version it should serve.
            if let Some(run_id) = ep.deployed_training_run_id {
                // A deleted run: whether the endpoint serves anything at all.
                let run = match self.store.get_run(run_id).await {
                    Ok(run) => Some(run),
                    Err(Error::NotFound { .. }) => None,
                    Err(e) => return Err(e.to_string()),
                };
                let model = run.and_then(|run| {
                    self.model_to_serve(&run, &ep.deployed_version, ep.target)
                        .ok()
                });
                if let Some(model) = model {
                    return deployer
                        .serves(&ep.service_name, &model)
                        .await
                        .map_err(|e| e.to_string());
                }
            }
        }
        deployer
            .is_serving(&ep.service_name)
            .await
            .map_err(|e| e.to_string())
    }

    /// The run's deployment: its recorded result and its endpoint's live state.
    pub async fn status(&self, run_id: RunId) -> Result<DeploymentView> {
        let run = self.store.get_run(run_id).await?;
        let endpoint = match run.deployed_endpoint_id {
            Some(id) => match self.store.get_endpoint(id).await {
                Ok(ep) => Some(ep),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let serving = match &endpoint {
            Some(ep) if ep.deployed_training_run_id == Some(run_id) => self.is_serving(ep).await,
            _ => Ok(false),
        };
        let has_active_endpoint = matches!(serving, Ok(true));
        let is_blessed = run.results.is_blessed.unwrap_or(false);
        Ok(DeploymentView {
            training_run_id: run_id,
            run_status: run.status,
            deployment_status: run.deployment_status,
            has_active_endpoint,
            status: live_status(is_blessed, serving),
            endpoint,
        })
    }

    /// A model's endpoints (all when `None`) with their live state.
    pub async fn endpoints(
        &self,
        model_id: Option<RegisteredModelId>,
    ) -> Result<Vec<EndpointView>> {
        let mut out = Vec::new();
        for ep in self.store.list_endpoints(model_id).await? {
            let live = self.is_serving(&ep).await;
            out.push(EndpointView {
                serving: live.as_ref().ok().copied(),
                error: live.err(),
                endpoint: ep,
            });
        }
        Ok(out)
    }

    /// [`DeploymentService::undeploy`] of the endpoint with this id (the REST route's key).
    pub async fn undeploy_by_id(&self, id: i64) -> Result<DeployedEndpoint> {
        let name = self.store.get_endpoint(id).await?.service_name;
        self.undeploy(&name).await
    }
}

enum Endpoint {
    Existing(Box<DeployedEndpoint>),
    New(String),
}

/// Resources of a deploy: the run's deployment_config, overridden by a preset or custom
/// resources from the options.
fn resolve_config(base: &DeploymentConfig, options: &DeployOptions) -> Result<DeploymentConfig> {
    let mut config = match (&options.resources, options.preset) {
        (Some(custom), _) => DeploymentConfig {
            preset: DeploymentPreset::Custom,
            ..custom.clone()
        },
        (None, Some(DeploymentPreset::Custom)) => {
            return Err(Error::Validation(ValidationError::field(
                "preset",
                "the custom preset needs resources (min/max instances, memory, cpu)",
            )))
        }
        (None, Some(preset)) => DeploymentConfig::from_preset(preset),
        (None, None) => base.clone(),
    };
    config.enabled = base.enabled;
    if options.service_name.is_none() {
        config.service_name.clone_from(&base.service_name);
        config.custom_name = base.custom_name;
    }
    if config.min_instances > config.max_instances {
        return Err(Error::Validation(ValidationError::field(
            "min_instances",
            format!(
                "{} is more than max_instances {}",
                config.min_instances, config.max_instances
            ),
        )));
    }
    Ok(config)
}

/// Where a run's model is served from: the registry's copy of its version, else the
/// pushed_model folder of its pipeline (the deployer picks the newest numeric version in it).
pub(crate) fn model_path_of(run: &TrainingRun) -> Result<String> {
    if let Some(uri) = run.artifacts.get(REGISTERED_MODEL_ARTIFACT) {
        return Ok(uri.clone());
    }
    pushed_model_path(run)
}

/// `<pipeline_root>/pushed_model`, where the Pusher writes.
pub(crate) fn pushed_model_path(run: &TrainingRun) -> Result<String> {
    run.artifacts
        .get("pushed_model")
        .cloned()
        .or_else(|| {
            run.artifacts
                .get("pipeline_root")
                .map(|root| format!("{}/pushed_model", root.trim_end_matches('/')))
        })
        .ok_or_else(|| {
            Error::Validation(ValidationError::field(
                "training_run",
                format!(
                    "run {} has no pushed model (no pipeline_root artifact)",
                    run.id
                ),
            ))
        })
}
