//! Deployment rules: Cloud Run service names, the default name chain, the versioned model
//! folder a server must load, and the deployment status a user sees.

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const MAX_SERVICE_NAME_LEN: usize = 63;
pub const SERVICE_NAME_SUFFIX: &str = "-serving";
/// Suffix of a default Vertex AI endpoint name, so that a model's Cloud Run service and its
/// Vertex AI endpoint do not compete for one name.
pub const VERTEX_ENDPOINT_SUFFIX: &str = "-endpoint";
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
    /// Vertex AI endpoints, found by display name (Vertex allows 128 characters; the service
    /// name rule's 63 is the tighter one).
    VertexEndpoint,
}

impl ServingTarget {
    pub fn max_service_name_len(self) -> usize {
        match self {
            ServingTarget::Local | ServingTarget::VertexEndpoint => MAX_SERVICE_NAME_LEN,
            ServingTarget::CloudRun => CLOUD_RUN_MAX_SERVICE_NAME_LEN,
        }
    }
}

/// Where a deploy goes (`deploy --target`). An endpoint keeps the target it was created on:
/// its undeploy and live status ask that target's deployer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployTarget {
    /// The platform's serving deployer: trainyard-serve processes locally, Cloud Run services
    /// on Google Cloud.
    #[default]
    #[serde(alias = "cloud_run", alias = "cloud-run", alias = "local")]
    Service,
    /// A Vertex AI endpoint owned by the registered model, serving its registered Vertex
    /// Model Registry version (Google Cloud backend).
    #[serde(alias = "vertex-endpoint")]
    VertexEndpoint,
}

impl DeployTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployTarget::Service => "service",
            DeployTarget::VertexEndpoint => "vertex-endpoint",
        }
    }

    pub fn is_service(&self) -> bool {
        *self == DeployTarget::Service
    }
}

impl std::fmt::Display for DeployTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DeployTarget {
    type Err = crate::ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "service" | "cloud-run" | "local" => Ok(DeployTarget::Service),
            "vertex-endpoint" => Ok(DeployTarget::VertexEndpoint),
            other => Err(crate::ValidationError::field(
                "target",
                format!("unknown deploy target {other:?}; use service or vertex-endpoint"),
            )),
        }
    }
}

/// Machine types a Vertex AI endpoint may get for a deployment config, smallest first:
/// (name, vCPUs, memory in GiB). Vertex AI prediction machines (n1-standard family).
pub const VERTEX_MACHINE_TYPES: &[(&str, f64, f64)] = &[
    ("n1-standard-2", 2.0, 7.5),
    ("n1-standard-4", 4.0, 15.0),
    ("n1-standard-8", 8.0, 30.0),
    ("n1-standard-16", 16.0, 60.0),
    ("n1-standard-32", 32.0, 120.0),
];

/// The dedicated resources of a model deployed on a Vertex AI endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VertexResources {
    pub machine_type: String,
    pub min_replica_count: u32,
    pub max_replica_count: u32,
}

/// A Kubernetes-style CPU amount (`"2"`, `"0.5"`, `"500m"`) in cores.
fn parse_cpu(cpu: &str) -> Option<f64> {
    let cpu = cpu.trim();
    let v = match cpu.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok()? / 1000.0,
        None => cpu.parse::<f64>().ok()?,
    };
    (v.is_finite() && v > 0.0).then_some(v)
}

/// A memory amount (`"4Gi"`, `"512Mi"`, `"2G"`, `"2048M"`) in GiB.
fn parse_memory_gib(memory: &str) -> Option<f64> {
    let m = memory.trim();
    let (num, scale) = [
        ("Gi", 1.0),
        ("Mi", 1.0 / 1024.0),
        ("G", 1e9 / 1073741824.0),
        ("M", 1e6 / 1073741824.0),
    ]
    .iter()
    .find_map(|(suffix, scale)| m.strip_suffix(suffix).map(|n| (n, *scale)))?;
    let v = num.trim().parse::<f64>().ok()? * scale;
    (v.is_finite() && v > 0.0).then_some(v)
}

/// The Vertex AI resources of a deployment config (its preset's or custom figures): the
/// smallest machine type with at least its CPUs and memory; replicas from its instance counts,
/// at least 1 (Vertex AI endpoints do not scale to zero, so development's 0 becomes 1).
pub fn vertex_resources(
    config: &crate::config::DeploymentConfig,
) -> Result<VertexResources, crate::ValidationError> {
    let cpu = parse_cpu(&config.cpu).ok_or_else(|| {
        crate::ValidationError::field(
            "deployment_config.cpu",
            format!("{:?} is not a CPU amount (e.g. 2, 0.5, 500m)", config.cpu),
        )
    })?;
    let memory = parse_memory_gib(&config.memory).ok_or_else(|| {
        crate::ValidationError::field(
            "deployment_config.memory",
            format!(
                "{:?} is not a memory amount (e.g. 4Gi, 512Mi)",
                config.memory
            ),
        )
    })?;
    let machine_type = VERTEX_MACHINE_TYPES
        .iter()
        .find(|(_, c, m)| *c >= cpu && *m >= memory)
        .map(|(name, _, _)| name.to_string())
        .ok_or_else(|| {
            crate::ValidationError::field(
                "deployment_config",
                format!(
                    "{} CPUs and {} are more than the largest Vertex AI machine type here ({})",
                    config.cpu,
                    config.memory,
                    VERTEX_MACHINE_TYPES.last().map_or("", |m| m.0)
                ),
            )
        })?;
    let min_replica_count = config.min_instances.max(1);
    Ok(VertexResources {
        machine_type,
        min_replica_count,
        max_replica_count: config.max_instances.max(min_replica_count),
    })
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
/// default name always passes [`validate_service_name_for`]. Vertex AI endpoints end in
/// `-endpoint` instead of `-serving`.
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
    let suffix = match target {
        ServingTarget::VertexEndpoint => VERTEX_ENDPOINT_SUFFIX,
        ServingTarget::Local | ServingTarget::CloudRun => SERVICE_NAME_SUFFIX,
    };
    service_name_within(base, suffix, target.max_service_name_len())
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
