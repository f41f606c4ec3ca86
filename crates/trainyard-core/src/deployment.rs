//! Deployment rules: Cloud Run service names, the default name chain, the versioned model
//! folder a server must load, and the deployment status a user sees.

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const MAX_SERVICE_NAME_LEN: usize = 63;
pub const SERVICE_NAME_SUFFIX: &str = "-serving";
/// Cloud Run Admin API v2 refuses longer service ids: a serviceId "must contain fewer than 50
/// characters" (projects.locations.services.create).
pub const CLOUD_RUN_MAX_SERVICE_NAME_LEN: usize = 49;

/// Where endpoints are served, as far as their names are concerned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServingTarget {
    /// trainyard-serve processes on this machine: the DNS-label rule (63 characters).
    #[default]
    Local,
    /// Cloud Run services: at most [`CLOUD_RUN_MAX_SERVICE_NAME_LEN`] characters.
    CloudRun,
}

impl ServingTarget {
    pub fn max_service_name_len(self) -> usize {
        match self {
            ServingTarget::Local => MAX_SERVICE_NAME_LEN,
            ServingTarget::CloudRun => CLOUD_RUN_MAX_SERVICE_NAME_LEN,
        }
    }
}

/// Why a Cloud Run service name is rejected: one variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ServiceNameError {
    #[error("service name must not be empty")]
    Empty,
    #[error("service name is {len} characters; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("service name must not contain uppercase letters (found {ch:?} at position {pos}); use lowercase")]
    Uppercase { ch: char, pos: usize },
    #[error("service name may contain only lowercase letters, digits and hyphens (found {ch:?} at position {pos})")]
    InvalidChar { ch: char, pos: usize },
    #[error("service name must start with a letter")]
    MustStartWithLetter,
    #[error("service name must end with a letter or digit")]
    MustEndWithLetterOrDigit,
}

/// Checks a service name: lowercase letters, digits, hyphens; 1-63 characters; starts with a
/// letter; ends with a letter or digit.
pub fn validate_service_name(name: &str) -> Result<(), ServiceNameError> {
    validate_service_name_for(name, ServingTarget::Local)
}

/// [`validate_service_name`] with the length limit of `target` (49 characters on Cloud Run).
pub fn validate_service_name_for(
    name: &str,
    target: ServingTarget,
) -> Result<(), ServiceNameError> {
    let len = name.chars().count();
    if len == 0 {
        return Err(ServiceNameError::Empty);
    }
    let max = target.max_service_name_len();
    if len > max {
        return Err(ServiceNameError::TooLong { len, max });
    }
    for (pos, ch) in name.chars().enumerate() {
        if ch.is_uppercase() {
            return Err(ServiceNameError::Uppercase { ch, pos });
        }
        if !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-') {
            return Err(ServiceNameError::InvalidChar { ch, pos });
        }
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(ServiceNameError::MustStartWithLetter);
    }
    if name.ends_with('-') {
        return Err(ServiceNameError::MustEndWithLetterOrDigit);
    }
    Ok(())
}

/// Turns any text into a valid service name: lowercased, runs of other characters become one
/// hyphen, a leading non-letter gets an `m-` prefix, cut to fit with the suffix.
pub fn service_name_from(base: &str, suffix: &str) -> String {
    service_name_within(base, suffix, MAX_SERVICE_NAME_LEN)
}

/// [`service_name_from`] cut to at most `max` characters (e.g. a target's limit).
pub fn service_name_within(base: &str, suffix: &str, max: usize) -> String {
    let max = max.max(1);
    let mut slug = String::new();
    for ch in base.chars().flat_map(char::to_lowercase) {
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            slug.push(ch);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut slug = slug.trim_matches('-').to_string();
    if !slug.starts_with(|c: char| c.is_ascii_lowercase()) {
        slug.insert_str(0, if slug.is_empty() { "model" } else { "m-" });
    }
    let suffix: String = suffix
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect();
    let room = max.saturating_sub(suffix.len()).max(1);
    slug.truncate(room);
    let mut name = format!("{}{}", slug.trim_end_matches('-'), suffix);
    name.truncate(max);
    while name.ends_with('-') {
        name.pop();
    }
    name
}

/// The default service name: the first non-empty of `vertex_model_name`, the registered
/// model's name, the run's name, the model endpoint's name, plus `-serving`. Using the same
/// chain everywhere is what keeps models from landing on one shared service (bug 7).
pub fn default_service_name(
    vertex_model_name: Option<&str>,
    registered_model_name: Option<&str>,
    run_name: Option<&str>,
    ml_model_name: &str,
) -> String {
    default_service_name_for(
        ServingTarget::Local,
        vertex_model_name,
        registered_model_name,
        run_name,
        ml_model_name,
    )
}

/// [`default_service_name`] cut to fit `target`'s limit (49 characters on Cloud Run), so a
/// default name always passes [`validate_service_name_for`].
pub fn default_service_name_for(
    target: ServingTarget,
    vertex_model_name: Option<&str>,
    registered_model_name: Option<&str>,
    run_name: Option<&str>,
    ml_model_name: &str,
) -> String {
    let base = [vertex_model_name, registered_model_name, run_name]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or(ml_model_name);
    service_name_within(base, SERVICE_NAME_SUFFIX, target.max_service_name_len())
}

/// Picks the folder a server must load from a listing of object paths under `pushed_model/`:
/// the newest numeric version folder holding `saved_model.pb` (TFX's Pusher writes
/// `pushed_model/<unix-seconds>/`; bug 8 passed the parent). Returns e.g. `pushed_model/1768842986`.
pub fn versioned_model_path<'a, I>(paths: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(u64, String)> = None;
    for p in paths {
        let p = p.trim_end_matches('/');
        let Some(dir) = p.strip_suffix("/saved_model.pb") else {
            continue;
        };
        let leaf = dir.rsplit_once('/').map_or(dir, |(_, leaf)| leaf);
        if leaf.is_empty() || !leaf.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(version) = leaf.parse::<u64>() else {
            continue;
        };
        if best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, dir.to_string()));
        }
    }
    best.map(|(_, d)| d)
}

/// `deployment_status` of a run: what the pipeline's deploy step did (kept apart from the
/// endpoint's live state, bug 11).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    #[default]
    Pending,
    Deploying,
    Deployed,
    Failed,
    Skipped,
}

/// What a user is shown for a model's serving state, derived from the live deployer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum LiveDeploymentStatus {
    Deployed,
    Idle,
    NotBlessed,
    Unknown { error: String },
}

/// Derives the live status: an error asking the deployer gives `unknown`; a serving endpoint
/// gives `deployed`; otherwise `not_blessed` for an unblessed model, `idle` for a blessed one.
pub fn live_status(
    is_blessed: bool,
    endpoint_serving: Result<bool, String>,
) -> LiveDeploymentStatus {
    match endpoint_serving {
        Err(error) => LiveDeploymentStatus::Unknown { error },
        Ok(true) => LiveDeploymentStatus::Deployed,
        Ok(false) if !is_blessed => LiveDeploymentStatus::NotBlessed,
        Ok(false) => LiveDeploymentStatus::Idle,
    }
}
