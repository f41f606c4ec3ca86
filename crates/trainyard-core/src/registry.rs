//! RegisteredModel: a named model whose versions are training runs, and DeployedEndpoint:
//! a serving endpoint owned by one registered model.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model_config::ModelType;
use crate::run::{EndpointId, RegisteredModelId, RunId, ScheduleId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    pub id: RegisteredModelId,
    pub ml_model: String,
    /// Unique per `ml_model`; becomes the registry's model name.
    pub model_name: String,
    pub model_type: ModelType,
    pub description: String,
    pub vertex_model_resource_name: String,
    pub first_registered_at: Option<DateTime<Utc>>,
    pub latest_version_id: Option<RunId>,
    pub latest_version_number: String,
    pub total_versions: u32,
    pub is_deployed: bool,
    pub deployed_version_id: Option<RunId>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

impl RegisteredModel {
    pub fn new(
        ml_model: &str,
        model_name: &str,
        model_type: ModelType,
        description: &str,
        now: DateTime<Utc>,
    ) -> Self {
        RegisteredModel {
            id: 0,
            ml_model: ml_model.into(),
            model_name: model_name.into(),
            model_type,
            description: description.into(),
            vertex_model_resource_name: String::new(),
            first_registered_at: None,
            latest_version_id: None,
            latest_version_number: String::new(),
            total_versions: 0,
            is_deployed: false,
            deployed_version_id: None,
            is_active: true,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Registered to a model registry at least once.
    pub fn is_registered(&self) -> bool {
        !self.vertex_model_resource_name.is_empty()
    }
}

/// Answer of check-name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameCheck {
    pub exists: bool,
    pub registered_model_id: Option<RegisteredModelId>,
    pub has_schedule: bool,
    pub schedule_id: Option<ScheduleId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployedEndpoint {
    pub id: EndpointId,
    pub registered_model_id: RegisteredModelId,
    /// Unique; a valid Cloud Run service name.
    pub service_name: String,
    pub service_url: String,
    pub deployed_version: String,
    pub deployed_training_run_id: Option<RunId>,
    pub is_active: bool,
    pub deployment_config: crate::config::DeploymentConfig,
    /// What serves it: a service (trainyard-serve / Cloud Run) or a Vertex AI endpoint.
    #[serde(
        default,
        skip_serializing_if = "crate::deployment::DeployTarget::is_service"
    )]
    pub target: crate::deployment::DeployTarget,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// What a registry event is about: an alias (e.g. `production`) or a serving endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistryEventKind {
    Alias,
    Endpoint,
}

/// One change of which version an alias points at, or which version an endpoint serves.
/// Append-only: the current state of an alias or endpoint is its newest event, and the list
/// of events is the history users ask for ("which version was `production` last Tuesday").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryEvent {
    pub id: i64,
    pub registered_model_id: RegisteredModelId,
    pub kind: RegistryEventKind,
    /// The alias, or the endpoint's service name.
    pub name: String,
    /// The version now held; `None` when the alias was removed or the endpoint undeployed.
    pub training_run_id: Option<RunId>,
    /// The registry's version number of `training_run_id` ("1", "2", ...); empty when none.
    pub model_version: String,
    pub at: DateTime<Utc>,
    pub version: i64,
}

/// The aliases a model's events leave in place (oldest event first): alias -> version.
pub fn current_aliases<'a>(
    events: impl IntoIterator<Item = &'a RegistryEvent>,
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for e in events {
        if e.kind != RegistryEventKind::Alias {
            continue;
        }
        match e.training_run_id {
            Some(_) => out.insert(e.name.clone(), e.model_version.clone()),
            None => out.remove(&e.name),
        };
    }
    out
}

/// Aliases are short lowercase labels like `production` or `staging`.
pub fn validate_alias(alias: &str) -> Result<(), crate::ValidationError> {
    let ok = !alias.is_empty()
        && alias.len() <= 63
        && alias.starts_with(|c: char| c.is_ascii_lowercase())
        && alias
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(crate::ValidationError::field(
            "alias",
            format!(
                "{alias:?} is not a valid alias: use 1-63 lowercase letters, digits, '-' or '_', starting with a letter"
            ),
        ))
    }
}

#[cfg(test)]
mod alias_tests {
    use super::validate_alias;

    #[test]
    fn aliases_are_short_lowercase_labels() {
        for ok in ["production", "staging", "canary-2", "a_b"] {
            assert!(validate_alias(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Production", "2nd", "-x", "has space", &"x".repeat(64)] {
            let e = validate_alias(bad).unwrap_err();
            assert_eq!(e.field, "alias", "{bad}");
        }
    }
}
