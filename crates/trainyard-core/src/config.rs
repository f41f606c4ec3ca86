//! Run configuration types: training parameters, GPU settings, evaluator, deployment and the
//! schedule config embedded in a run. Field names follow the training-domain spec's JSON.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::metrics::Metric;
use crate::model_config::ModelType;

/// Optimizers the generated trainer knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerName {
    #[default]
    Adagrad,
    Adam,
    Sgd,
}

/// Early stopping on a validation metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyStopping {
    pub enabled: bool,
    pub patience: u32,
    /// Metric watched, e.g. `val_loss` or `val_rmse`.
    pub monitor: String,
    pub min_delta: f64,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        Self {
            enabled: true,
            patience: 3,
            monitor: "val_loss".into(),
            min_delta: 0.0,
        }
    }
}

/// `training_params` of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingParams {
    pub epochs: u32,
    pub batch_size: u32,
    pub learning_rate: f64,
    pub optimizer: OptimizerName,
    pub early_stopping: EarlyStopping,
}

impl Default for TrainingParams {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 4096,
            // Adam at 0.01 trains the generated (global-batch-mean) losses well; Adagrad at the
            // tutorials' 0.1 barely moves them.
            learning_rate: 0.01,
            optimizer: OptimizerName::Adam,
            early_stopping: EarlyStopping::default(),
        }
    }
}

impl TrainingParams {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.epochs == 0 || self.epochs > 10_000 {
            return Err(ValidationError::field(
                "training_params.epochs",
                "must be between 1 and 10000",
            ));
        }
        if self.batch_size == 0 || self.batch_size > 1 << 20 {
            return Err(ValidationError::field(
                "training_params.batch_size",
                "must be between 1 and 1048576",
            ));
        }
        if !(self.learning_rate.is_finite()
            && self.learning_rate > 0.0
            && self.learning_rate <= 10.0)
        {
            return Err(ValidationError::field(
                "training_params.learning_rate",
                "must be a finite number in (0, 10]",
            ));
        }
        Ok(())
    }
}

/// Accelerators, named as Vertex AI's `acceleratorType` enum names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GpuType {
    #[default]
    #[serde(rename = "NVIDIA_TESLA_T4")]
    NvidiaTeslaT4,
    #[serde(rename = "NVIDIA_L4")]
    NvidiaL4,
    #[serde(rename = "NVIDIA_TESLA_V100")]
    NvidiaTeslaV100,
    #[serde(rename = "NVIDIA_TESLA_P100")]
    NvidiaTeslaP100,
    #[serde(rename = "NVIDIA_TESLA_A100")]
    NvidiaTeslaA100,
    #[serde(rename = "NVIDIA_A100_80GB")]
    NvidiaA100_80gb,
    #[serde(rename = "NVIDIA_H100_80GB")]
    NvidiaH100_80gb,
}

impl GpuType {
    pub const ALL: [GpuType; 7] = [
        GpuType::NvidiaTeslaT4,
        GpuType::NvidiaL4,
        GpuType::NvidiaTeslaV100,
        GpuType::NvidiaTeslaP100,
        GpuType::NvidiaTeslaA100,
        GpuType::NvidiaA100_80gb,
        GpuType::NvidiaH100_80gb,
    ];

    /// The Vertex AI accelerator enum name.
    pub fn vertex_name(self) -> &'static str {
        match self {
            GpuType::NvidiaTeslaT4 => "NVIDIA_TESLA_T4",
            GpuType::NvidiaL4 => "NVIDIA_L4",
            GpuType::NvidiaTeslaV100 => "NVIDIA_TESLA_V100",
            GpuType::NvidiaTeslaP100 => "NVIDIA_TESLA_P100",
            GpuType::NvidiaTeslaA100 => "NVIDIA_TESLA_A100",
            GpuType::NvidiaA100_80gb => "NVIDIA_A100_80GB",
            GpuType::NvidiaH100_80gb => "NVIDIA_H100_80GB",
        }
    }
}

impl GpuType {
    /// The Compute Engine machine series this accelerator is attached to (Vertex AI custom
    /// training refuses other pairings): T4, V100 and P100 on N1, L4 on G2, A100 40GB on A2
    /// High-GPU, A100 80GB on A2 Ultra-GPU, H100 on A3 High-GPU.
    pub fn machine_series(self) -> &'static str {
        match self {
            GpuType::NvidiaTeslaT4 | GpuType::NvidiaTeslaV100 | GpuType::NvidiaTeslaP100 => "n1-",
            GpuType::NvidiaL4 => "g2-standard-",
            GpuType::NvidiaTeslaA100 => "a2-highgpu-",
            GpuType::NvidiaA100_80gb => "a2-ultragpu-",
            GpuType::NvidiaH100_80gb => "a3-highgpu-",
        }
    }

    /// An example machine of the series, for messages.
    fn example_machine(self) -> &'static str {
        match self {
            GpuType::NvidiaTeslaT4 | GpuType::NvidiaTeslaV100 | GpuType::NvidiaTeslaP100 => {
                "n1-standard-16"
            }
            GpuType::NvidiaL4 => "g2-standard-24",
            GpuType::NvidiaTeslaA100 => "a2-highgpu-2g",
            GpuType::NvidiaA100_80gb => "a2-ultragpu-2g",
            GpuType::NvidiaH100_80gb => "a3-highgpu-2g",
        }
    }
}

/// Regions where Vertex AI custom training has no GPUs, though quota may say otherwise
/// (spec: "GPU Quota and Regional Availability").
pub const REGIONS_WITHOUT_GPU_TRAINING: &[&str] = &["europe-central2"];

/// Default region for GPU training jobs when the orchestration region has none.
pub const DEFAULT_GPU_TRAINING_REGION: &str = "europe-west4";

/// `gpu_config` of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuConfig {
    pub gpu_enabled: bool,
    pub gpu_type: GpuType,
    pub gpu_count: u32,
    pub machine_type: String,
    pub preemptible: bool,
    /// Region for the Trainer's custom job; `None` means the orchestration region.
    pub training_region: Option<String>,
}

impl Default for GpuConfig {
    /// CPU training; flipping `gpu_enabled` gives the spec's default 2x T4 on n1-standard-16.
    fn default() -> Self {
        Self {
            gpu_enabled: false,
            gpu_type: GpuType::NvidiaTeslaT4,
            gpu_count: 2,
            machine_type: "n1-standard-16".into(),
            preemptible: false,
            training_region: None,
        }
    }
}

impl GpuConfig {
    /// Number of accelerators actually requested (0 when GPUs are off).
    pub fn accelerator_count(&self) -> u32 {
        if self.gpu_enabled {
            self.gpu_count
        } else {
            0
        }
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.gpu_enabled && !matches!(self.gpu_count, 1 | 2 | 4 | 8) {
            return Err(ValidationError::field(
                "gpu_config.gpu_count",
                "must be 1, 2, 4 or 8 when GPUs are enabled",
            ));
        }
        if self.machine_type.trim().is_empty() {
            return Err(ValidationError::field(
                "gpu_config.machine_type",
                "must not be empty",
            ));
        }
        let series = self.gpu_type.machine_series();
        if self.gpu_enabled && !self.machine_type.starts_with(series) {
            return Err(ValidationError::field(
                "gpu_config.machine_type",
                format!(
                    "{} GPUs are attached to {series}* machines (e.g. {}), not {}",
                    self.gpu_type.vertex_name(),
                    self.gpu_type.example_machine(),
                    self.machine_type
                ),
            ));
        }
        Ok(())
    }

    /// This config with its Trainer moved to `gpu_region` (`[gcp] gpu_region`, given when the
    /// orchestration region has no GPU training) when it uses GPUs and names no region itself.
    pub fn split_to(&self, gpu_region: Option<&str>) -> GpuConfig {
        let mut out = self.clone();
        if out.gpu_enabled && out.training_region.is_none() {
            out.training_region = gpu_region.map(str::to_string);
        }
        out
    }

    /// The region the Trainer runs in, given the pipeline's orchestration region. GPU training
    /// in a region without GPU support is rejected before anything is submitted.
    pub fn trainer_region<'a>(
        &'a self,
        orchestration_region: &'a str,
    ) -> Result<&'a str, ValidationError> {
        let region = self
            .training_region
            .as_deref()
            .unwrap_or(orchestration_region);
        if self.gpu_enabled && REGIONS_WITHOUT_GPU_TRAINING.contains(&region) {
            return Err(ValidationError::field(
                "gpu_config.training_region",
                format!(
                    "Vertex AI has no GPU training in {region}; set training_region (e.g. {DEFAULT_GPU_TRAINING_REGION})"
                ),
            ));
        }
        Ok(region)
    }
}

/// One rung of the GPU fallback ladder: an accelerator setup to try when the ones before it
/// were refused for quota or capacity. The run's other GPU settings (preemptible, and the
/// training region unless the rung names one) carry over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuRung {
    /// Accelerator, as Vertex AI names it.
    pub gpu_type: GpuType,
    /// Accelerators per replica: 1, 2, 4 or 8.
    pub gpu_count: u32,
    /// Compute Engine machine type that takes these accelerators (e.g. g2-* for L4).
    pub machine_type: String,
    /// Region for the Trainer on this rung; unset keeps the run's `training_region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_region: Option<String>,
}

impl GpuRung {
    pub fn new(gpu_type: GpuType, gpu_count: u32, machine_type: &str) -> Self {
        GpuRung {
            gpu_type,
            gpu_count,
            machine_type: machine_type.into(),
            training_region: None,
        }
    }

    /// Whether `gpu` asks for this rung's accelerators and machine.
    pub fn matches(&self, gpu: &GpuConfig) -> bool {
        gpu.gpu_enabled
            && gpu.gpu_type == self.gpu_type
            && gpu.gpu_count == self.gpu_count
            && gpu.machine_type == self.machine_type
    }

    /// `base` moved onto this rung.
    pub fn apply_to(&self, base: &GpuConfig) -> GpuConfig {
        GpuConfig {
            gpu_enabled: true,
            gpu_type: self.gpu_type,
            gpu_count: self.gpu_count,
            machine_type: self.machine_type.clone(),
            preemptible: base.preemptible,
            training_region: self
                .training_region
                .clone()
                .or_else(|| base.training_region.clone()),
        }
    }
}

impl std::fmt::Display for GpuRung {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x {} on {}",
            self.gpu_count,
            self.gpu_type.vertex_name(),
            self.machine_type
        )
    }
}

/// The GPU fallback ladder (spec "GPU Fallback Strategy"), tried in order when Vertex AI refuses
/// a GPU Trainer for quota or capacity. A run starts on its own `gpu_config` and falls back to
/// the rungs after the one it matches (all of them when it matches none). Empty: no fallback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GpuLadder(pub Vec<GpuRung>);

impl Default for GpuLadder {
    /// 2x T4 on n1-standard-16 -> 4x T4 on n1-standard-32 -> 2x L4 on g2-standard-24.
    fn default() -> Self {
        GpuLadder(vec![
            GpuRung::new(GpuType::NvidiaTeslaT4, 2, "n1-standard-16"),
            GpuRung::new(GpuType::NvidiaTeslaT4, 4, "n1-standard-32"),
            GpuRung::new(GpuType::NvidiaL4, 2, "g2-standard-24"),
        ])
    }
}

impl GpuLadder {
    /// No fallback.
    pub fn none() -> Self {
        GpuLadder(Vec::new())
    }

    /// Each rung must be a valid GPU config (count 1, 2, 4 or 8; a machine type; a region with
    /// GPU training when it names one), and no rung may repeat another.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (i, rung) in self.0.iter().enumerate() {
            let at = |e: ValidationError| {
                let field = e
                    .field
                    .replace("gpu_config.", &format!("gpu_fallback[{i}]."));
                ValidationError::field(field, e.reason)
            };
            let gpu = rung.apply_to(&GpuConfig::default());
            gpu.validate().map_err(at)?;
            if let Some(region) = &rung.training_region {
                gpu.trainer_region(region).map_err(at)?;
            }
            if self.0[..i].contains(rung) {
                return Err(ValidationError::field(
                    format!("gpu_fallback[{i}]"),
                    format!("{rung} repeats an earlier rung"),
                ));
            }
        }
        Ok(())
    }

    /// The GPU configs a run with `gpu` tries, in order: its own, then the rungs after the one
    /// it matches (every rung when it matches none), without repeats. A CPU run tries only its
    /// own config.
    pub fn plan(&self, gpu: &GpuConfig) -> Vec<GpuConfig> {
        let mut plan = vec![gpu.clone()];
        if !gpu.gpu_enabled {
            return plan;
        }
        let start = self
            .0
            .iter()
            .position(|r| r.matches(gpu))
            .map_or(0, |i| i + 1);
        for rung in &self.0[start..] {
            let next = rung.apply_to(gpu);
            if !plan.contains(&next) {
                plan.push(next);
            }
        }
        plan
    }
}

/// How Vertex AI answered one GPU config of a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuAttemptOutcome {
    /// The pipeline job was created with this config.
    Accepted,
    /// Refused for quota (e.g. `custom_model_training_nvidia_t4_gpus`): the next rung is tried.
    Quota,
    /// Refused for capacity (not enough resources in the region): the next rung is tried.
    Capacity,
    /// Refused for another reason: the walk stopped here.
    Failed,
}

impl GpuAttemptOutcome {
    /// The refusal kind that leads the reason of a resubmission (`quota: ...`,
    /// `capacity: ...`); anything else is `Failed`.
    pub fn of_reason(reason: &str) -> GpuAttemptOutcome {
        match reason.split_once(':').map(|(kind, _)| kind.trim()) {
            Some("quota") => GpuAttemptOutcome::Quota,
            Some("capacity") => GpuAttemptOutcome::Capacity,
            _ => GpuAttemptOutcome::Failed,
        }
    }
}

/// A run's GPU attempts (the JSON of `artifacts["gpu_attempts"]`, absent or unreadable: none)
/// with a resubmission appended: `failed`, the config whose created job failed for `reason`,
/// then `next`, the config of the new job (accepted). Regions are the configs' training
/// regions, else the region of the last attempt recorded.
pub fn record_resubmission(
    attempts_json: Option<&str>,
    failed: &GpuConfig,
    next: &GpuConfig,
    reason: &str,
) -> Vec<GpuAttempt> {
    let mut attempts: Vec<GpuAttempt> = attempts_json
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let last_region = attempts
        .last()
        .map(|a| a.region.clone())
        .unwrap_or_default();
    let failed_region = failed.training_region.clone().unwrap_or(last_region);
    let next_region = next
        .training_region
        .clone()
        .unwrap_or_else(|| failed_region.clone());
    let attempt = |gpu: &GpuConfig, region: String, outcome, error| GpuAttempt {
        machine_type: gpu.machine_type.clone(),
        accelerator_type: gpu.gpu_type,
        accelerator_count: gpu.gpu_count,
        region,
        outcome,
        error,
    };
    attempts.push(attempt(
        failed,
        failed_region,
        GpuAttemptOutcome::of_reason(reason),
        Some(reason.to_string()),
    ));
    attempts.push(attempt(
        next,
        next_region,
        GpuAttemptOutcome::Accepted,
        None,
    ));
    attempts
}

/// One submission attempt on the GPU fallback ladder, as recorded on the run
/// (`artifacts["gpu_attempts"]`, a JSON list of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuAttempt {
    pub machine_type: String,
    pub accelerator_type: GpuType,
    pub accelerator_count: u32,
    /// Region of the Trainer's custom job.
    pub region: String,
    pub outcome: GpuAttemptOutcome,
    /// Vertex AI's answer when it refused.
    #[serde(default)]
    pub error: Option<String>,
}

/// What a submission that walked the GPU fallback ladder did: every attempt, and the config
/// that was accepted (`None` when none was).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuFallbackRecord {
    pub accepted: Option<GpuConfig>,
    pub attempts: Vec<GpuAttempt>,
}

/// Key of the attempts (JSON) in a run's `artifacts`.
pub const GPU_ATTEMPTS_ARTIFACT: &str = "gpu_attempts";

/// `evaluator_config` of a run: whether the Evaluator blesses, and on which threshold.
///
/// Metrics a model type can bless on ([`EvaluatorConfig::allowed_metrics`]): retrieval
/// `recall_at_{5,10,50,100}` (held-out test recall, higher is better, threshold in [0, 1]);
/// ranking `rmse`, `mae` (last validation epoch), `test_rmse`, `test_mae` (lower is better,
/// threshold > 0); multitask both; every type `final_loss` (lower is better, threshold > 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluatorConfig {
    pub enabled: bool,
    /// e.g. `recall_at_100` (retrieval) or `rmse` (ranking, multitask); empty: the model
    /// type's default ([`EvaluatorConfig::default_metric`]).
    pub blessing_metric: String,
    /// `None`: no threshold, any finite value of the metric blesses.
    pub blessing_threshold: Option<f64>,
}

impl Default for EvaluatorConfig {
    /// Enabled, the model type's default metric, no threshold: a run created with defaults
    /// is blessed when its trainer measured the metric, whatever the model type.
    fn default() -> Self {
        Self {
            enabled: true,
            blessing_metric: String::new(),
            blessing_threshold: None,
        }
    }
}

/// Recall cut-offs the generated trainer measures.
pub const RECALL_KS: [u32; 4] = [5, 10, 50, 100];

/// Whether smaller values of a blessing metric are better (false for an unknown name).
pub fn metric_lower_is_better(metric: &str) -> bool {
    Metric::parse(metric).is_some_and(Metric::lower_is_better)
}

impl EvaluatorConfig {
    /// A config blessing on `metric` at `threshold`.
    pub fn new(metric: &str, threshold: f64) -> Self {
        Self {
            enabled: true,
            blessing_metric: metric.into(),
            blessing_threshold: Some(threshold),
        }
    }

    /// The metric a model type blesses on by default: recall@100 when it retrieves, else rmse.
    pub fn default_metric(model_type: ModelType) -> &'static str {
        Metric::blessing_default(model_type).name()
    }

    /// The metrics a model type's trainer reports and can bless on.
    pub fn allowed_metrics(model_type: ModelType) -> Vec<String> {
        Metric::reported_by(model_type)
            .into_iter()
            .map(|m| m.name().to_string())
            .collect()
    }

    /// The metric blessing reads for a run of `model_type` (the default when none is set).
    pub fn metric(&self, model_type: ModelType) -> String {
        let m = self.blessing_metric.trim();
        if m.is_empty() {
            Self::default_metric(model_type).to_string()
        } else {
            m.to_string()
        }
    }

    /// Metrics where lower is better bless when the value is at or below the threshold.
    pub fn lower_is_better(&self, model_type: ModelType) -> bool {
        metric_lower_is_better(&self.metric(model_type))
    }

    /// Whether a metric value passes (always true when disabled; never for a missing or
    /// non-finite value).
    pub fn blesses(&self, model_type: ModelType, value: Option<f64>) -> bool {
        if !self.enabled {
            return true;
        }
        match (value, self.blessing_threshold) {
            (Some(v), _) if !v.is_finite() => false,
            (None, _) => false,
            (Some(_), None) => true,
            (Some(v), Some(t)) if self.lower_is_better(model_type) => v <= t,
            (Some(v), Some(t)) => v >= t,
        }
    }

    /// The metric must be one the model type reports, and the threshold one that a value of it
    /// can pass: recall in [0, 1], rmse/mae/loss above 0.
    pub fn validate(&self, model_type: ModelType) -> Result<(), ValidationError> {
        let metric = self.metric(model_type);
        let allowed = Self::allowed_metrics(model_type);
        if !allowed.contains(&metric) {
            return Err(ValidationError::field(
                "evaluator_config.blessing_metric",
                format!(
                    "{metric:?} is not measured for {} models (one of {})",
                    model_type.as_str(),
                    allowed.join(", ")
                ),
            ));
        }
        let Some(t) = self.blessing_threshold else {
            return Ok(());
        };
        let field = "evaluator_config.blessing_threshold";
        if !t.is_finite() {
            return Err(ValidationError::field(field, "must be a finite number"));
        }
        if metric_lower_is_better(&metric) {
            if t <= 0.0 {
                return Err(ValidationError::field(
                    field,
                    format!("{metric} is never at or below {t}: use a threshold above 0"),
                ));
            }
        } else if !(0.0..=1.0).contains(&t) {
            return Err(ValidationError::field(
                field,
                format!("{metric} is between 0 and 1, so {t} can never be the threshold"),
            ));
        }
        Ok(())
    }
}

/// The spec's deployment presets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentPreset {
    Development,
    #[default]
    Production,
    /// `high-traffic` is accepted too (the CLI's spelling before).
    #[serde(alias = "high-traffic")]
    HighTraffic,
    Custom,
}

/// Resources of one preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetResources {
    pub min_instances: u32,
    pub max_instances: u32,
    pub memory: &'static str,
    pub cpu: &'static str,
}

impl DeploymentPreset {
    /// Resources of a named preset; `None` for `Custom`.
    pub fn resources(self) -> Option<PresetResources> {
        let (min_instances, max_instances, memory, cpu) = match self {
            DeploymentPreset::Development => (0, 2, "2Gi", "1"),
            DeploymentPreset::Production => (1, 10, "4Gi", "2"),
            DeploymentPreset::HighTraffic => (2, 50, "8Gi", "4"),
            DeploymentPreset::Custom => return None,
        };
        Some(PresetResources {
            min_instances,
            max_instances,
            memory,
            cpu,
        })
    }
}

/// `deployment_config` of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeploymentConfig {
    pub enabled: bool,
    pub service_name: String,
    pub custom_name: bool,
    pub preset: DeploymentPreset,
    pub min_instances: u32,
    pub max_instances: u32,
    pub memory: String,
    pub cpu: String,
    /// Request timeout in seconds, as a string in the spec's JSON.
    pub timeout: String,
}

impl Default for DeploymentConfig {
    fn default() -> Self {
        Self::from_preset(DeploymentPreset::Production)
    }
}

impl DeploymentConfig {
    /// A disabled config with a named preset's resources.
    pub fn from_preset(preset: DeploymentPreset) -> Self {
        let r = preset.resources().unwrap_or(PresetResources {
            min_instances: 1,
            max_instances: 10,
            memory: "4Gi",
            cpu: "2",
        });
        Self {
            enabled: false,
            service_name: String::new(),
            custom_name: false,
            preset,
            min_instances: r.min_instances,
            max_instances: r.max_instances,
            memory: r.memory.into(),
            cpu: r.cpu.into(),
            timeout: "300".into(),
        }
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.min_instances > self.max_instances {
            return Err(ValidationError::field(
                "deployment_config.min_instances",
                "must not exceed max_instances",
            ));
        }
        if self.max_instances == 0 {
            return Err(ValidationError::field(
                "deployment_config.max_instances",
                "must be at least 1",
            ));
        }
        let timeout_ok = self
            .timeout
            .parse::<u32>()
            .map(|t| (1..=3600).contains(&t))
            .unwrap_or(false);
        if !timeout_ok {
            return Err(ValidationError::field(
                "deployment_config.timeout",
                "must be a whole number of seconds between 1 and 3600",
            ));
        }
        if self.enabled && self.custom_name {
            crate::deployment::validate_service_name(&self.service_name).map_err(|e| {
                ValidationError::field("deployment_config.service_name", e.to_string())
            })?;
        }
        Ok(())
    }
}

/// Schedule kinds in a run's embedded `schedule_config` (`now` means no schedule).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    #[default]
    Now,
    Once,
    Hourly,
    Daily,
    Weekly,
    Monthly,
}

/// `schedule_config` embedded in a run (spec "Edit Feature": Schedule Config Schema). A type
/// other than `now` creates the schedule of the run's registered model when the run is created
/// or this config is edited (training the run's config), or moves an existing schedule's
/// timing to it; `now` leaves the model's schedule as it is. A rerun copies it without
/// touching the schedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// `now` (the run itself trains now; no schedule) or the schedule's type.
    pub schedule_type: ScheduleKind,
    /// "HH:MM"
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_time: Option<String>,
    /// 0=Monday .. 6=Sunday
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_day_of_week: Option<u8>,
    /// 1..=31
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_day_of_month: Option<u8>,
    /// IANA time zone; empty is UTC.
    pub schedule_timezone: String,
    /// `once`: the instant to fire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_datetime: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_scheduler_job_name: Option<String>,
}

impl ScheduleConfig {
    /// The copy a rerun takes: everything but the Cloud Scheduler job, which belongs to the source.
    pub fn for_rerun(&self) -> Self {
        Self {
            cloud_scheduler_job_name: None,
            ..self.clone()
        }
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(t) = &self.schedule_time {
            parse_hh_mm(t).ok_or_else(|| {
                ValidationError::field(
                    "schedule_config.schedule_time",
                    "must be HH:MM (00:00-23:59)",
                )
            })?;
        }
        if let Some(d) = self.schedule_day_of_week {
            if d > 6 {
                return Err(ValidationError::field(
                    "schedule_config.schedule_day_of_week",
                    "must be 0 (Monday) to 6 (Sunday)",
                ));
            }
        }
        if let Some(d) = self.schedule_day_of_month {
            if !(1..=31).contains(&d) {
                return Err(ValidationError::field(
                    "schedule_config.schedule_day_of_month",
                    "must be 1 to 31",
                ));
            }
        }
        let needs_time = !matches!(self.schedule_type, ScheduleKind::Now | ScheduleKind::Once);
        if needs_time && self.schedule_time.is_none() {
            return Err(ValidationError::field(
                "schedule_config.schedule_time",
                "is required for recurring schedules",
            ));
        }
        if self.schedule_type == ScheduleKind::Weekly && self.schedule_day_of_week.is_none() {
            return Err(ValidationError::field(
                "schedule_config.schedule_day_of_week",
                "is required for weekly schedules",
            ));
        }
        if self.schedule_type == ScheduleKind::Monthly && self.schedule_day_of_month.is_none() {
            return Err(ValidationError::field(
                "schedule_config.schedule_day_of_month",
                "is required for monthly schedules",
            ));
        }
        if self.schedule_type == ScheduleKind::Once && self.scheduled_datetime.is_none() {
            return Err(ValidationError::field(
                "schedule_config.scheduled_datetime",
                "is required for a one-time schedule",
            ));
        }
        // The rules of the schedule it asks for (time zone, hourly minutes), by the same code.
        if let Some(timing) = crate::timing::ScheduleTiming::from_run_config(self) {
            timing.validate_shape().map_err(|e| {
                ValidationError::field(format!("schedule_config.{}", e.field), e.reason)
            })?;
        }
        Ok(())
    }
}

/// Parses "HH:MM" into (hour, minute).
pub fn parse_hh_mm(s: &str) -> Option<(u8, u8)> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u8 = h.parse().ok()?;
    let m: u8 = m.parse().ok()?;
    (h < 24 && m < 60).then_some((h, m))
}

/// How the training rows are split into train and eval (spec "Sampling Section").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitStrategy {
    /// A hash of each row: 2/3 train, 1/3 eval (TFX ExampleGen's default split).
    #[default]
    Random,
    /// The last `holdout_days` days (by `date_column`, counted back from the newest day in the
    /// data) are eval; every earlier row is train.
    TimeHoldout,
    /// Chronological: the oldest 2/3 of the rows are train, the newest 1/3 eval, cut at a day
    /// boundary so that no train row is on or after the first eval day.
    StrictTemporal,
}

impl SplitStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitStrategy::Random => "random",
            SplitStrategy::TimeHoldout => "time_holdout",
            SplitStrategy::StrictTemporal => "strict_temporal",
        }
    }

    pub fn is_temporal(self) -> bool {
        !matches!(self, SplitStrategy::Random)
    }
}

/// `sampling_config` of a run: which share of the rows is read, and how they are split.
/// Compiled into ExampleGen the same way for the local and the Vertex pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingConfig {
    /// Percentage of the rows kept (1-100), chosen by a hash of the row (deterministic).
    pub sample_percent: u32,
    /// `random` (hash, 2:1 train:eval), `time_holdout` (the last `holdout_days` days are eval)
    /// or `strict_temporal` (the oldest 2/3 of the rows train, the newest 1/3 eval).
    pub split_strategy: SplitStrategy,
    /// The column the temporal strategies order by: a TIMESTAMP/DATETIME (epoch seconds) or
    /// DATE (`YYYY-MM-DD`) column of the data; it need not be a model feature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_column: Option<String>,
    /// Days held out for eval by `time_holdout`.
    pub holdout_days: u32,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            sample_percent: 100,
            split_strategy: SplitStrategy::Random,
            date_column: None,
            holdout_days: 7,
        }
    }
}

impl SamplingConfig {
    /// Whether this is ExampleGen's plain behaviour (every row, hash split 2:1).
    pub fn is_default_split(&self) -> bool {
        self.sample_percent == 100 && self.split_strategy == SplitStrategy::Random
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(1..=100).contains(&self.sample_percent) {
            return Err(ValidationError::field(
                "sampling_config.sample_percent",
                "must be between 1 and 100",
            ));
        }
        if self.split_strategy.is_temporal() {
            let ok = self.date_column.as_deref().is_some_and(|c| {
                !c.trim().is_empty() && c.len() <= 300 && !c.chars().any(char::is_control)
            });
            if !ok {
                return Err(ValidationError::field(
                    "sampling_config.date_column",
                    format!(
                        "a {} split needs the date column to order the rows by",
                        self.split_strategy.as_str()
                    ),
                ));
            }
        }
        if self.split_strategy == SplitStrategy::TimeHoldout
            && !(1..=3650).contains(&self.holdout_days)
        {
            return Err(ValidationError::field(
                "sampling_config.holdout_days",
                "must be between 1 and 3650 for a time_holdout split",
            ));
        }
        Ok(())
    }
}

/// Where the training data comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// A BigQuery query run by BigQueryExampleGen.
    BigQuery { query: String },
    /// CSV files in a directory (local runs).
    Csv { path: String },
    /// Parquet files in a directory (local runs).
    Parquet { path: String },
}

/// The `dataset` a run trains on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    pub name: String,
    pub source: DataSource,
}

impl Default for DatasetSpec {
    fn default() -> Self {
        Self {
            name: "synthetic-b2b".into(),
            source: DataSource::Csv {
                path: "data".into(),
            },
        }
    }
}

#[cfg(test)]
mod gpu_ladder_tests {
    use super::*;

    fn gpu(t: GpuType, n: u32, machine: &str) -> GpuConfig {
        GpuConfig {
            gpu_enabled: true,
            gpu_type: t,
            gpu_count: n,
            machine_type: machine.into(),
            preemptible: true,
            training_region: Some("europe-west4".into()),
        }
    }

    /// An accelerator on a machine series Vertex AI does not attach it to is refused before
    /// submit, naming a machine that takes it; a CPU run's machine type is free.
    #[test]
    fn accelerators_must_sit_on_their_machine_series() {
        for (t, ok, bad) in [
            (GpuType::NvidiaTeslaT4, "n1-standard-16", "g2-standard-24"),
            (GpuType::NvidiaL4, "g2-standard-24", "n1-standard-16"),
            (GpuType::NvidiaTeslaA100, "a2-highgpu-2g", "a2-ultragpu-2g"),
            (GpuType::NvidiaA100_80gb, "a2-ultragpu-2g", "a2-highgpu-2g"),
            (GpuType::NvidiaH100_80gb, "a3-highgpu-2g", "n1-standard-32"),
        ] {
            assert!(gpu(t, 2, ok).validate().is_ok(), "{t:?} on {ok}");
            let e = gpu(t, 2, bad).validate().unwrap_err();
            assert_eq!(e.field, "gpu_config.machine_type");
            assert!(e.reason.contains(ok.rsplit_once('-').unwrap().0), "{e}");
            assert!(e.reason.contains(t.vertex_name()), "{e}");
            let cpu = GpuConfig {
                gpu_enabled: false,
                ..gpu(t, 2, bad)
            };
            assert!(cpu.validate().is_ok());
        }
        // the default ladder's rungs all pass
        assert!(GpuLadder::default().validate().is_ok());
    }

    #[test]
    fn plan_starts_at_the_run_and_falls_down_the_ladder() {
        let ladder = GpuLadder::default();
        let t4x2 = gpu(GpuType::NvidiaTeslaT4, 2, "n1-standard-16");
        let plan = ladder.plan(&t4x2);
        let shape: Vec<(GpuType, u32, &str)> = plan
            .iter()
            .map(|g| (g.gpu_type, g.gpu_count, g.machine_type.as_str()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (GpuType::NvidiaTeslaT4, 2, "n1-standard-16"),
                (GpuType::NvidiaTeslaT4, 4, "n1-standard-32"),
                (GpuType::NvidiaL4, 2, "g2-standard-24"),
            ]
        );
        // the run's other settings ride along
        assert!(plan
            .iter()
            .all(|g| g.preemptible && g.training_region.as_deref() == Some("europe-west4")));
        // a run on rung 2 only falls back to rung 3
        let plan = ladder.plan(&gpu(GpuType::NvidiaTeslaT4, 4, "n1-standard-32"));
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[1].gpu_type, GpuType::NvidiaL4);
        // a config off the ladder is tried first, then every rung
        let a100 = gpu(GpuType::NvidiaTeslaA100, 1, "a2-highgpu-1g");
        let plan = ladder.plan(&a100);
        assert_eq!(plan.len(), 4);
        assert_eq!(plan[0], a100);
        // no fallback for CPU runs or with an empty ladder
        assert_eq!(ladder.plan(&GpuConfig::default()).len(), 1);
        assert_eq!(GpuLadder::none().plan(&t4x2), vec![t4x2]);
    }

    #[test]
    fn rungs_follow_the_gpu_rules() {
        GpuLadder::default().validate().unwrap();
        GpuLadder::none().validate().unwrap();
        let mut bad = GpuLadder::default();
        bad.0[1].gpu_count = 3;
        assert_eq!(
            bad.validate().unwrap_err().field,
            "gpu_fallback[1].gpu_count"
        );
        let mut warsaw = GpuLadder::default();
        warsaw.0[2].training_region = Some("europe-central2".into());
        let e = warsaw.validate().unwrap_err();
        assert_eq!(e.field, "gpu_fallback[2].training_region");
        let mut twice = GpuLadder::default();
        twice.0.push(twice.0[0].clone());
        assert_eq!(twice.validate().unwrap_err().field, "gpu_fallback[3]");
        let mut blank = GpuLadder::default();
        blank.0[0].machine_type = " ".into();
        assert_eq!(
            blank.validate().unwrap_err().field,
            "gpu_fallback[0].machine_type"
        );
    }

    #[test]
    fn ladder_and_attempts_serialize_as_documented() {
        let v = serde_json::to_value(GpuLadder::default()).unwrap();
        assert_eq!(
            v[2],
            serde_json::json!({"gpu_type": "NVIDIA_L4", "gpu_count": 2, "machine_type": "g2-standard-24"})
        );
        let parsed: GpuLadder = serde_json::from_value(serde_json::json!([
            {"gpu_type": "NVIDIA_L4", "gpu_count": 1, "machine_type": "g2-standard-8", "training_region": "us-central1"}
        ]))
        .unwrap();
        assert_eq!(parsed.0[0].training_region.as_deref(), Some("us-central1"));
        assert!(serde_json::from_value::<GpuLadder>(serde_json::json!([{"gpu": "x"}])).is_err());
        let a = GpuAttempt {
            machine_type: "n1-standard-16".into(),
            accelerator_type: GpuType::NvidiaTeslaT4,
            accelerator_count: 2,
            region: "europe-west4".into(),
            outcome: GpuAttemptOutcome::Quota,
            error: Some("quota".into()),
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["outcome"], "quota");
        assert_eq!(v["accelerator_type"], "NVIDIA_TESLA_T4");
    }
}
