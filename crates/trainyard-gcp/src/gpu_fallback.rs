//! The GPU fallback ladder on Vertex AI: which refusals of `pipelineJobs.create` mean "try other
//! GPUs" (quota, capacity), and the compiled PipelineJob moved onto another GPU config.
//!
//! Vertex AI refuses an accelerator it has no quota for with HTTP 429 and
//! `{"error": {"code": 429, "message": "The following quota metrics exceed quota limits:
//! aiplatform.googleapis.com/custom_model_training_nvidia_t4_gpus", "status": "RESOURCE_EXHAUSTED"}}`;
//! capacity shortages come back as RESOURCE_EXHAUSTED or FAILED_PRECONDITION naming
//! insufficient capacity or resources. A 429 for the *request rate* of the API
//! (`..._requests`, "per minute") is no GPU problem: the HTTP client retries it and the walk
//! stops on it, since other GPUs would meet the same limit.

use serde_json::Value;
use trainyard_core::config::{GpuAttempt, GpuAttemptOutcome, GpuConfig};
use trainyard_core::ports::VERTEX_PIPELINE_JOB_FILE;
use trainyard_core::stages::StageName;
use trainyard_core::ValidationError;

use crate::error::GcpError;
use crate::vertex_pipelines::task_stage;

/// Why Vertex AI refused a GPU config in a way another config may not be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Quota,
    Capacity,
}

impl From<Refusal> for GpuAttemptOutcome {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Quota => GpuAttemptOutcome::Quota,
            Refusal::Capacity => GpuAttemptOutcome::Capacity,
        }
    }
}

/// Phrases of quota refusals. Not bare "quota": "requires a quota project" is an auth setup error.
const QUOTA_PHRASES: &[&str] = &[
    "exceed quota",
    "exceeds quota",
    "quota exceeded",
    "quota limit",
    "quota metric",
    "insufficient quota",
    "out of quota",
    "quota_exceeded",
];

const CAPACITY_PHRASES: &[&str] = &[
    "insufficient capacity",
    "not enough resources",
    "enough resources available",
    "resources are insufficient",
    "insufficient resources",
    "resource_pool_exhausted",
    "resource pool exhausted",
    "stockout",
    "out of capacity",
];

/// Rate limits of the API itself (requests per minute), which other GPUs do not escape.
const RATE_PHRASES: &[&str] = &["per minute", "requests per", "_requests", "rate limit"];

/// Quota metrics of what a job holds while it runs (accelerators, training CPUs).
const ALLOCATION_PHRASES: &[&str] = &["custom_model_training", "gpu", "accelerator"];

fn has(message: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| message.contains(p))
}

/// Classifies an error answer to `pipelineJobs.create`: `Some` when a different GPU config
/// might be accepted (quota or capacity), `None` when the walk must stop.
pub fn classify(http_status: u16, status: Option<&str>, message: &str) -> Option<Refusal> {
    let m = message.to_ascii_lowercase();
    let capacity = has(&m, CAPACITY_PHRASES);
    let exhausted = http_status == 429 || status == Some("RESOURCE_EXHAUSTED");
    if exhausted {
        if capacity {
            return Some(Refusal::Capacity);
        }
        if has(&m, RATE_PHRASES) && !has(&m, ALLOCATION_PHRASES) {
            return None;
        }
        return Some(Refusal::Quota);
    }
    let precondition = matches!(http_status, 400 | 403)
        || matches!(
            status,
            Some("FAILED_PRECONDITION" | "INVALID_ARGUMENT" | "PERMISSION_DENIED")
        );
    if !precondition {
        return None;
    }
    if capacity {
        Some(Refusal::Capacity)
    } else if has(&m, QUOTA_PHRASES) {
        Some(Refusal::Quota)
    } else {
        None
    }
}

/// [`classify`] of a client error, looking through retry exhaustion.
pub fn classify_error(e: &GcpError) -> Option<Refusal> {
    match e.root() {
        GcpError::Api {
            http_status,
            status,
            message,
            ..
        } => classify(*http_status, status.as_deref(), message),
        _ => None,
    }
}

/// [`classify`] of a google.rpc.Status that Vertex AI reports after a job was created (a failed
/// Trainer task's error, whose custom job was refused for quota or capacity): code 8
/// (RESOURCE_EXHAUSTED, also when only the message names it) is read as a 429 answer, any other
/// code as a refusal that counts only when its message names quota or capacity.
pub fn classify_status(code: i32, message: &str) -> Option<Refusal> {
    let lower = message.to_ascii_lowercase();
    let exhausted = code == 8
        || lower.contains("resource_exhausted")
        || lower.contains("resourceexhausted")
        || lower.contains("resource exhausted");
    if exhausted {
        classify(429, Some("RESOURCE_EXHAUSTED"), message)
    } else {
        classify(400, Some("FAILED_PRECONDITION"), message)
    }
}

/// The GPU config a compiled (or fetched) PipelineJob's Trainer runs on, with the region of its
/// custom job; `None` for a CPU Trainer or a job without one.
pub fn trainer_gpu(body: &Value) -> Option<GpuConfig> {
    let mut body = body.clone();
    let (_, config) = custom_config(&mut body).ok()??;
    let spec = config.pointer("/ai_platform_training_args/worker_pool_specs/0/machine_spec")?;
    let gpu_type = serde_json::from_value(spec.get("accelerator_type")?.clone()).ok()?;
    let gpu_count = u32::try_from(spec.get("accelerator_count")?.as_u64()?).ok()?;
    let preemptible = config
        .pointer("/ai_platform_training_args/scheduling/strategy")
        .and_then(Value::as_str)
        == Some(SPOT_STRATEGY);
    Some(GpuConfig {
        gpu_enabled: true,
        gpu_type,
        gpu_count,
        machine_type: spec.get("machine_type")?.as_str()?.to_string(),
        preemptible,
        training_region: config
            .get("ai_platform_vertex_region")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// `Scheduling.strategy` (aiplatform v1 CustomJobSpec) of a preemptible Trainer: Spot VMs.
pub const SPOT_STRATEGY: &str = "SPOT";

/// Whether retrying the same create is pointless: capacity, or a quota on what running jobs
/// hold (GPUs), which frees in minutes to hours, not within the client's retry budget. Generic
/// RESOURCE_EXHAUSTED answers keep the client's retries and step the ladder once they are spent.
pub fn retry_is_pointless(http_status: u16, status: Option<&str>, message: &str) -> bool {
    match classify(http_status, status, message) {
        Some(Refusal::Capacity) => true,
        Some(Refusal::Quota) => has(&message.to_ascii_lowercase(), ALLOCATION_PHRASES),
        None => false,
    }
}

fn bad(reason: impl Into<String>) -> ValidationError {
    ValidationError::field(VERTEX_PIPELINE_JOB_FILE, reason)
}

/// The Trainer task's custom_config parameter (a JSON string) in a compiled PipelineJob.
fn custom_config_slot(body: &mut Value) -> Option<&mut Value> {
    let tasks = body
        .pointer_mut("/pipelineSpec/root/dag/tasks")?
        .as_object_mut()?;
    let (_, trainer) = tasks.iter_mut().find(|(key, task)| {
        let name = task
            .pointer("/taskInfo/name")
            .and_then(Value::as_str)
            .unwrap_or(key);
        task_stage(name) == Some(StageName::Train)
    })?;
    trainer.pointer_mut("/inputs/parameters/custom_config/runtimeValue/constantValue/stringValue")
}

fn custom_config(body: &mut Value) -> Result<Option<(&mut Value, Value)>, ValidationError> {
    let Some(slot) = custom_config_slot(body) else {
        return Ok(None);
    };
    let text = slot
        .as_str()
        .ok_or_else(|| bad("the Trainer's custom_config is not a string"))?;
    let config: Value = serde_json::from_str(text)
        .map_err(|e| bad(format!("the Trainer's custom_config is not JSON: {e}")))?;
    Ok(Some((slot, config)))
}

/// The Trainer's GPU worker pool (`machine_spec` of its first worker pool) in a compiled
/// PipelineJob; `None` when the Trainer runs without one (CPU training).
pub fn trainer_machine_spec(body: &Value) -> Result<Option<Value>, ValidationError> {
    let mut body = body.clone();
    let Some((_, config)) = custom_config(&mut body)? else {
        return Ok(None);
    };
    Ok(config
        .pointer("/ai_platform_training_args/worker_pool_specs/0/machine_spec")
        .cloned())
}

/// Moves a compiled PipelineJob onto `gpu`: the Trainer's worker pool (machine type,
/// accelerator type and count), the region of its custom job, and the GPU settings its run_fn
/// reads from custom_config (which override the trainer module's defaults, so the user-code
/// wheel stays as it is). Exactly the fields the compiler derives from a GpuConfig.
pub fn retarget(body: &mut Value, gpu: &GpuConfig, region: &str) -> Result<(), ValidationError> {
    let (slot, mut config) =
        custom_config(body)?.ok_or_else(|| bad("the PipelineJob has no Trainer custom_config"))?;
    let spec = config
        .pointer_mut("/ai_platform_training_args/worker_pool_specs/0/machine_spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| bad("the Trainer has no GPU worker pool to move"))?;
    spec.insert("machine_type".into(), gpu.machine_type.clone().into());
    spec.insert("accelerator_type".into(), gpu.gpu_type.vertex_name().into());
    spec.insert("accelerator_count".into(), gpu.gpu_count.into());
    let obj = config
        .as_object_mut()
        .ok_or_else(|| bad("the Trainer's custom_config is not an object"))?;
    obj.insert("ai_platform_vertex_region".into(), region.into());
    if let Some(args) = obj
        .get_mut("ai_platform_training_args")
        .and_then(Value::as_object_mut)
    {
        if gpu.preemptible {
            args.insert(
                "scheduling".into(),
                serde_json::json!({"strategy": SPOT_STRATEGY}),
            );
        } else {
            args.remove("scheduling");
        }
    }
    obj.insert("gpu_enabled".into(), gpu.gpu_enabled.into());
    obj.insert("gpu_count".into(), gpu.accelerator_count().into());
    *slot = Value::String(config.to_string());
    Ok(())
}

/// An attempt of `gpu` in `region`.
pub fn attempt(
    gpu: &GpuConfig,
    region: &str,
    outcome: GpuAttemptOutcome,
    error: Option<String>,
) -> GpuAttempt {
    GpuAttempt {
        machine_type: gpu.machine_type.clone(),
        accelerator_type: gpu.gpu_type,
        accelerator_count: gpu.gpu_count,
        region: region.to_string(),
        outcome,
        error,
    }
}

/// One line per attempt, for the error of an exhausted ladder.
pub fn describe(attempts: &[GpuAttempt]) -> String {
    attempts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let outcome = serde_json::to_value(a.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!(
                "{}. {}x {} on {} in {}: {outcome}{}",
                i + 1,
                a.accelerator_count,
                a.accelerator_type.vertex_name(),
                a.machine_type,
                a.region,
                a.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Error bodies as Google sends them, through the client's own parser.
    fn answer(http: u16, body: &str) -> Option<Refusal> {
        let (status, message) = crate::http::parse_google_error(body);
        classify(http, status.as_deref(), &message)
    }

    #[test]
    fn accelerator_quota_and_capacity_step_the_ladder() {
        let t4 = r#"{"error": {"code": 429, "message": "The following quota metrics exceed quota limits: aiplatform.googleapis.com/custom_model_training_nvidia_t4_gpus", "status": "RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(answer(429, t4), Some(Refusal::Quota));
        let (s, m) = crate::http::parse_google_error(t4);
        assert!(retry_is_pointless(429, s.as_deref(), &m));
        // the list form some front ends return, with ErrorInfo details
        let l4 = r#"[{"error": {"code": 429, "message": "The following quota metrics exceed quota limits: aiplatform.googleapis.com/custom_model_training_nvidia_l4_gpus", "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com"}]}}]"#;
        assert_eq!(answer(429, l4), Some(Refusal::Quota));
        let cpus = r#"{"error": {"code": 400, "message": "The following quota metrics exceed quota limits: aiplatform.googleapis.com/custom_model_training_cpus", "status": "FAILED_PRECONDITION"}}"#;
        assert_eq!(answer(400, cpus), Some(Refusal::Quota));
        let capacity = r#"{"error": {"code": 400, "message": "Insufficient capacity for NVIDIA_L4 in europe-west4. Please try a different region or accelerator.", "status": "FAILED_PRECONDITION"}}"#;
        assert_eq!(answer(400, capacity), Some(Refusal::Capacity));
        let resources = r#"{"error": {"code": 429, "message": "The zone does not have enough resources available to fulfill the request. Try a different zone, or try again later.", "status": "RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(answer(429, resources), Some(Refusal::Capacity));
        let (s, m) = crate::http::parse_google_error(resources);
        assert!(retry_is_pointless(429, s.as_deref(), &m));
        // a bare RESOURCE_EXHAUSTED is quota, but worth the client's retries first
        let generic = r#"{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(answer(429, generic), Some(Refusal::Quota));
        let (s, m) = crate::http::parse_google_error(generic);
        assert!(!retry_is_pointless(429, s.as_deref(), &m));
    }

    #[test]
    fn other_refusals_stop_the_walk() {
        // the API's own request rate: other GPUs would meet the same limit
        let rate = r#"{"error": {"code": 429, "message": "Quota exceeded for quota metric 'Resource management (CRUD) requests' and limit 'Resource management (CRUD) requests per minute per region' of service 'aiplatform.googleapis.com'", "status": "RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(answer(429, rate), None);
        let create_rate = r#"{"error": {"code": 429, "message": "Quota exceeded for aiplatform.googleapis.com/pipeline_job_create_requests", "status": "RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(answer(429, create_rate), None);
        // "quota project" is an auth setup error, not a quota refusal
        let adc = r#"{"error": {"code": 403, "message": "Your application is authenticating by using local Application Default Credentials. The aiplatform.googleapis.com API requires a quota project, which is not set by default.", "status": "PERMISSION_DENIED"}}"#;
        assert_eq!(answer(403, adc), None);
        let invalid = r#"{"error": {"code": 400, "message": "Accelerator \"NVIDIA_L4\" is not supported for machine type \"n1-standard-16\".", "status": "INVALID_ARGUMENT"}}"#;
        assert_eq!(answer(400, invalid), None);
        let denied = r#"{"error": {"code": 403, "message": "Permission 'aiplatform.pipelineJobs.create' denied on resource", "status": "PERMISSION_DENIED"}}"#;
        assert_eq!(answer(403, denied), None);
        // a server error that merely mentions quota
        assert_eq!(classify(500, Some("INTERNAL"), "quota exceeded"), None);
        assert_eq!(
            classify(404, Some("NOT_FOUND"), "not enough resources"),
            None
        );
        // 400 with a quota message but no status
        assert_eq!(
            classify(400, None, "Quota exceeded for NVIDIA_TESLA_T4"),
            Some(Refusal::Quota)
        );
        assert!(!retry_is_pointless(503, Some("UNAVAILABLE"), "try again"));
    }

    #[test]
    fn errors_are_classified_through_retry_exhaustion() {
        let api = GcpError::Api {
            method: "POST".into(),
            url: "u".into(),
            http_status: 429,
            status: Some("RESOURCE_EXHAUSTED".into()),
            message: "Resource has been exhausted (e.g. check quota).".into(),
        };
        let wrapped = GcpError::RetriesExhausted {
            attempts: 5,
            elapsed: std::time::Duration::from_secs(2),
            last: Box::new(api),
        };
        assert_eq!(classify_error(&wrapped), Some(Refusal::Quota));
        let transport = GcpError::Transport {
            method: "POST".into(),
            url: "u".into(),
            message: "connection failed".into(),
        };
        assert_eq!(classify_error(&transport), None);
    }
}
