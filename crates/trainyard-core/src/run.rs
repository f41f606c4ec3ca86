//! TrainingRun: one execution of the training pipeline for a named model, and its per-epoch
//! history. Field names are the spec's Data Model.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{
    DatasetSpec, DeploymentConfig, EvaluatorConfig, GpuConfig, SamplingConfig, ScheduleConfig,
    TrainingParams,
};
use crate::deployment::DeploymentStatus;
use crate::error::{Error, ValidationError};
use crate::feature_config::FeatureConfig;
use crate::metrics::{EpochMetrics, RunResults};
use crate::model_config::{ModelConfig, ModelType};
use crate::stages::{StageDetails, StageName};
use crate::status::{apply, RunEvent, RunStatus};

pub type RunId = i64;
pub type RegisteredModelId = i64;
pub type ScheduleId = i64;
pub type EndpointId = i64;

/// Limits on names a user types.
pub const MAX_NAME_LEN: usize = 255;

/// Validates a run or model name: non-empty after trimming, at most 255 characters, no control characters.
pub fn validate_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.trim().is_empty() {
        return Err(ValidationError::field(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(ValidationError::field(
            field,
            "must be at most 255 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Everything that defines what a run trains; copied on rerun, frozen into schedules.
///
/// Unknown fields are refused when it is read on its own; where it is flattened into a larger
/// body ([`NewTrainingRun`], schedule bodies) the readers check the keys with
/// [`crate::strict::check_keys`] (serde cannot deny unknown fields through `flatten`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub dataset: DatasetSpec,
    /// Share of the rows read and the train/eval split.
    pub sampling_config: SamplingConfig,
    pub feature_config: FeatureConfig,
    pub model_config: ModelConfig,
    pub training_params: TrainingParams,
    pub gpu_config: GpuConfig,
    pub evaluator_config: EvaluatorConfig,
    pub deployment_config: DeploymentConfig,
    pub schedule_config: ScheduleConfig,
}

impl RunConfig {
    /// A run config from JSON whose sections may be partial (merged over their defaults);
    /// `own` names the caller's other keys, which are ignored here. Unknown keys are refused
    /// with the nearest name.
    pub fn from_partial_json(
        value: &serde_json::Value,
        own: &[&str],
    ) -> Result<RunConfig, ValidationError> {
        check_run_keys(value, own)?;
        let mut value = value.clone();
        if let serde_json::Value::Object(m) = &mut value {
            m.retain(|k, _| !own.contains(&k.as_str()));
        }
        crate::strict::over_defaults::<RunConfig>(&mut value);
        serde_json::from_value(value)
            .map_err(|e| ValidationError::field("config", crate::strict::explain(&e.to_string())))
    }

    pub fn model_type(&self) -> ModelType {
        self.model_config.model_type
    }

    /// Checks every part of the config, each error naming its field as a path in the run
    /// config (`feature_config.product_id_column`, `model_config.buyer_tower.layers[0].units`,
    /// `evaluator_config.blessing_threshold`, ...). Run creation, config patches and schedules
    /// all go through here, so the CLI, the HTTP API and Python refuse the same configs.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.feature_config.validate().map_err(|e| {
            ValidationError::field(format!("feature_config.{}", e.path), e.problem.to_string())
        })?;
        self.model_config
            .validate_with(&self.feature_config)
            .map_err(|e| ValidationError::field(e.field(), e.to_string()))?;
        self.training_params.validate()?;
        self.gpu_config.validate()?;
        self.evaluator_config.validate(self.model_type())?;
        self.sampling_config.validate()?;
        let es = &self.training_params.early_stopping;
        let allowed = early_stopping_monitors(self.model_type());
        if es.enabled && !allowed.contains(&es.monitor) {
            return Err(ValidationError::field(
                "training_params.early_stopping.monitor",
                format!(
                    "{:?} is not logged by {} models (one of {})",
                    es.monitor,
                    self.model_type().as_str(),
                    allowed.join(", ")
                ),
            ));
        }
        self.deployment_config.validate()?;
        self.schedule_config.validate()?;
        Ok(())
    }
}

/// Refuses a key of `value` that is neither one of `own` nor a [`RunConfig`] part, naming the
/// nearest valid one. Callers whose body holds a run config beside their own fields use it.
pub fn check_run_keys(value: &serde_json::Value, own: &[&str]) -> Result<(), ValidationError> {
    let mut known: Vec<&str> = own.to_vec();
    known.extend_from_slice(crate::strict::field_names::<RunConfig>());
    crate::strict::check_keys(value, &known, "")
}

/// The per-epoch values the generated trainer logs for a model type, which early stopping can
/// watch.
pub fn early_stopping_monitors(model_type: ModelType) -> Vec<String> {
    let mut out: Vec<String> = ["loss", "val_loss", "regularization_loss"]
        .map(String::from)
        .to_vec();
    if model_type.has_retrieval() {
        out.extend(
            crate::config::RECALL_KS
                .iter()
                .map(|k| format!("val_recall_at_{k}")),
        );
    }
    if model_type.has_ranking() {
        out.extend(["val_rmse", "val_mae"].map(String::from));
    }
    out
}

/// The config fields a user may edit on a finished run (spec "Edit Feature").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigPatch {
    pub training_params: Option<TrainingParams>,
    pub gpu_config: Option<GpuConfig>,
    pub evaluator_config: Option<EvaluatorConfig>,
    pub deployment_config: Option<DeploymentConfig>,
    pub schedule_config: Option<ScheduleConfig>,
}

impl ConfigPatch {
    /// Applies the patch to a copy of `config`, validates the result and names what changed.
    pub fn apply_to(
        &self,
        config: &RunConfig,
    ) -> Result<(RunConfig, Vec<&'static str>), ValidationError> {
        let mut next = config.clone();
        let mut changed = Vec::new();
        macro_rules! patch {
            ($($f:ident),*) => {$(
                if let Some(v) = &self.$f {
                    if *v != next.$f { changed.push(stringify!($f)); }
                    next.$f = v.clone();
                }
            )*};
        }
        patch!(
            training_params,
            gpu_config,
            evaluator_config,
            deployment_config,
            schedule_config
        );
        next.validate()?;
        Ok((next, changed))
    }
}

/// A training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRun {
    pub id: RunId,
    /// The model endpoint (project) this run belongs to.
    pub ml_model: String,
    /// 1, 2, ... per `ml_model`; allocated by the store.
    pub run_number: u32,
    pub name: String,
    pub description: String,
    pub registered_model_id: Option<RegisteredModelId>,
    /// The schedule that fired this run, and the fire time it was for: together the
    /// idempotency key of a fire (unique in the store).
    #[serde(default)]
    pub schedule_id: Option<ScheduleId>,
    #[serde(default)]
    pub scheduled_fire_at: Option<DateTime<Utc>>,

    #[serde(flatten)]
    pub config: RunConfig,

    pub status: RunStatus,
    /// Derived from `stage_details`; kept in the row for listing and filtering.
    pub current_stage: Option<StageName>,
    pub stage_details: StageDetails,

    #[serde(flatten)]
    pub results: RunResults,

    pub vertex_pipeline_job_name: Option<String>,
    pub vertex_pipeline_job_id: Option<String>,
    pub vertex_model_name: Option<String>,
    pub vertex_model_resource_name: Option<String>,
    pub vertex_model_version: Option<String>,

    pub deploy_enabled: bool,
    pub deployment_status: DeploymentStatus,
    pub deployment_error: String,
    pub deployment_started_at: Option<DateTime<Utc>>,
    pub deployment_completed_at: Option<DateTime<Utc>>,
    pub deployed_endpoint_id: Option<EndpointId>,

    pub artifacts: BTreeMap<String, String>,
    pub training_history_json: Option<serde_json::Value>,

    pub cost_usd: Option<f64>,
    pub duration_seconds: Option<f64>,
    pub error_message: Option<String>,
    pub mlflow_run_id: Option<String>,

    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub registered_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,

    /// Row version for optimistic concurrency: a write based on an older version is a Conflict.
    pub version: i64,
}

/// What a caller gives to create a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewTrainingRun {
    pub ml_model: String,
    pub name: String,
    pub description: String,
    #[serde(flatten)]
    pub config: RunConfig,
}

impl NewTrainingRun {
    /// Its own fields; the rest of its keys are [`RunConfig`]'s.
    pub const OWN_FIELDS: [&'static str; 3] = ["ml_model", "name", "description"];

    /// Reads a new run from JSON, refusing unknown fields (top-level ones through the key
    /// check, nested ones through the parts' `deny_unknown_fields`) with the nearest name.
    /// Config sections given in part are merged over their defaults
    /// ([`crate::strict::over_defaults`]), as in every front end.
    pub fn from_json(value: &serde_json::Value) -> Result<NewTrainingRun, ValidationError> {
        check_run_keys(value, &Self::OWN_FIELDS)?;
        let mut value = value.clone();
        crate::strict::over_defaults::<RunConfig>(&mut value);
        serde_json::from_value(value)
            .map_err(|e| ValidationError::field("config", crate::strict::explain(&e.to_string())))
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name("ml_model", &self.ml_model)?;
        validate_name("name", &self.name)?;
        self.config.validate()
    }
}

impl TrainingRun {
    /// A new pending run (id and run_number are assigned by the store).
    pub fn new(
        new: NewTrainingRun,
        registered_model_id: Option<RegisteredModelId>,
        now: DateTime<Utc>,
    ) -> Self {
        let deploy_enabled = new.config.deployment_config.enabled;
        let stage_details = StageDetails::new(deploy_enabled);
        TrainingRun {
            id: 0,
            ml_model: new.ml_model,
            run_number: 0,
            name: new.name,
            description: new.description,
            registered_model_id,
            schedule_id: None,
            scheduled_fire_at: None,
            config: new.config,
            status: RunStatus::Pending,
            current_stage: stage_details.current(),
            stage_details,
            results: RunResults::default(),
            vertex_pipeline_job_name: None,
            vertex_pipeline_job_id: None,
            vertex_model_name: None,
            vertex_model_resource_name: None,
            vertex_model_version: None,
            deploy_enabled,
            deployment_status: if deploy_enabled {
                DeploymentStatus::Pending
            } else {
                DeploymentStatus::Skipped
            },
            deployment_error: String::new(),
            deployment_started_at: None,
            deployment_completed_at: None,
            deployed_endpoint_id: None,
            artifacts: BTreeMap::new(),
            training_history_json: None,
            cost_usd: None,
            duration_seconds: None,
            error_message: None,
            mlflow_run_id: None,
            created_at: now,
            started_at: None,
            completed_at: None,
            registered_at: None,
            updated_at: now,
            version: 0,
        }
    }

    pub fn model_type(&self) -> ModelType {
        self.config.model_type()
    }

    /// "Training #N"
    pub fn display_name(&self) -> String {
        format!("Training #{}", self.run_number)
    }

    /// Moves the status through the state machine, stamping times on the way.
    pub fn transition(&mut self, event: RunEvent, now: DateTime<Utc>) -> Result<RunStatus, Error> {
        let to = apply(self.status, event)?;
        match to {
            RunStatus::Running => {
                self.started_at.get_or_insert(now);
            }
            RunStatus::Completed
            | RunStatus::NotBlessed
            | RunStatus::Failed
            | RunStatus::Cancelled
                if self.status.is_active() =>
            {
                self.completed_at = Some(now);
                if let Some(start) = self.started_at {
                    self.duration_seconds = Some((now - start).num_milliseconds() as f64 / 1000.0);
                }
            }
            _ => {}
        }
        self.status = to;
        self.updated_at = now;
        Ok(to)
    }

    /// Mutates the stages and re-derives `current_stage`.
    pub fn update_stages(&mut self, f: impl FnOnce(&mut StageDetails)) {
        f(&mut self.stage_details);
        self.current_stage = self.stage_details.current();
    }
}

/// One row of TrainingMetricsHistory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingMetricsHistory {
    pub training_run_id: RunId,
    #[serde(flatten)]
    pub metrics: EpochMetrics,
    pub recorded_at: DateTime<Utc>,
}
