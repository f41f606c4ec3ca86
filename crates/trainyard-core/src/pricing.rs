//! Cost estimates of training runs (`cost_usd`): machine type, accelerators, region and
//! duration priced from a versioned table.
//!
//! The built-in table ([`PriceTable::builtin`], version [`PRICE_TABLE_VERSION`], as of
//! [`PRICE_TABLE_AS_OF`]) holds on-demand list prices in USD per hour of Vertex AI custom
//! training in us-central1 (source: Google Cloud, "Vertex AI pricing", custom-trained models,
//! <https://cloud.google.com/vertex-ai/pricing>), plus the Vertex AI Pipelines fee per run.
//! Other regions are priced with a multiplier over us-central1. Prices change and differ by
//! contract: every figure can be overridden in trainyard.toml:
//!
//! ```toml
//! [pricing]
//! pipeline_run_fee = 0.03
//! spot_factor = 0.4
//! component_machine_type = "e2-standard-4"
//! [pricing.machine_per_hour]
//! "n1-standard-16" = 0.80
//! [pricing.accelerator_per_hour]
//! NVIDIA_TESLA_T4 = 0.35
//! [pricing.region_multiplier]
//! "europe-west4" = 1.1
//! ```
//!
//! The estimate of a run: the pipeline fee, plus the Trainer stage's hours at its machine and
//! accelerators (in its Trainer region; Spot price when preemptible), plus the other pipeline
//! stages' hours (examples, statistics, schema, transform, evaluation, push) at the component
//! machine in the orchestration region. Runs on the local backend cost 0.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::GpuConfig;
use crate::run::TrainingRun;
use crate::stages::StageName;

/// Version of the built-in price table; bumped whenever a figure changes.
pub const PRICE_TABLE_VERSION: u32 = 1;
/// The date the built-in figures were taken from the source.
pub const PRICE_TABLE_AS_OF: &str = "2026-11-01";

/// Why a run could not be priced.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PricingError {
    #[error("no price for machine type {0:?}; add it under [pricing.machine_per_hour]")]
    UnknownMachine(String),
    #[error("no price for accelerator {0:?}; add it under [pricing.accelerator_per_hour]")]
    UnknownAccelerator(String),
    #[error("pricing.{field}: {value} is not a price (a finite number >= 0)")]
    BadPrice { field: String, value: f64 },
}

/// Prices in USD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    pub version: u32,
    pub as_of: String,
    pub source: String,
    /// Per run of a pipeline (Vertex AI Pipelines).
    pub pipeline_run_fee: f64,
    /// Machine type -> USD per hour (us-central1, on demand).
    pub machine_per_hour: BTreeMap<String, f64>,
    /// Accelerator (Vertex AI enum name) -> USD per hour per accelerator.
    pub accelerator_per_hour: BTreeMap<String, f64>,
    /// Region -> factor over us-central1 prices (absent: 1).
    pub region_multiplier: BTreeMap<String, f64>,
    /// Spot (preemptible) price as a fraction of on demand.
    pub spot_factor: f64,
    /// Machine of the pipeline components other than a GPU Trainer.
    pub component_machine_type: String,
}

/// `[pricing]` of trainyard.toml: figures that replace the built-in table's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricingOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_run_fee: Option<f64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub machine_per_hour: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub accelerator_per_hour: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub region_multiplier: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot_factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component_machine_type: Option<String>,
}

impl PricingOverrides {
    pub fn is_empty(&self) -> bool {
        *self == PricingOverrides::default()
    }
}

fn table(rows: &[(&str, f64)]) -> BTreeMap<String, f64> {
    rows.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

impl PriceTable {
    /// The built-in table (see the module docs for its source and date).
    pub fn builtin() -> PriceTable {
        PriceTable {
            version: PRICE_TABLE_VERSION,
            as_of: PRICE_TABLE_AS_OF.into(),
            source: "https://cloud.google.com/vertex-ai/pricing (custom training, us-central1, on demand)".into(),
            pipeline_run_fee: 0.03,
            // Vertex AI custom training lists 1.15x the Compute Engine on-demand price; g2 and
            // a2 machines are priced without their GPUs, which are counted as accelerators.
            machine_per_hour: table(&[
                ("e2-standard-4", 0.1541),
                ("e2-standard-8", 0.3082),
                ("e2-standard-16", 0.6164),
                ("n1-standard-4", 0.2185),
                ("n1-standard-8", 0.437),
                ("n1-standard-16", 0.874),
                ("n1-standard-32", 1.748),
                ("n1-highmem-8", 0.5446),
                ("n1-highmem-16", 1.0893),
                ("g2-standard-4", 0.169),
                ("g2-standard-8", 0.3378),
                ("g2-standard-12", 0.5066),
                ("g2-standard-16", 0.6755),
                ("g2-standard-24", 1.0118),
                ("g2-standard-32", 1.3502),
                ("g2-standard-48", 2.0235),
                ("a2-highgpu-1g", 0.8502),
                ("a2-highgpu-2g", 1.7004),
                ("a2-highgpu-4g", 3.4008),
                ("a2-highgpu-8g", 6.8016),
            ]),
            accelerator_per_hour: table(&[
                ("NVIDIA_TESLA_T4", 0.4025),
                ("NVIDIA_L4", 0.644),
                ("NVIDIA_TESLA_V100", 2.852),
                ("NVIDIA_TESLA_P100", 1.679),
                ("NVIDIA_TESLA_A100", 3.3741),
                ("NVIDIA_A100_80GB", 4.5195),
                ("NVIDIA_H100_80GB", 11.06),
            ]),
            // Approximate regional premiums over us-central1.
            region_multiplier: table(&[
                ("us-central1", 1.0),
                ("us-east1", 1.0),
                ("us-west1", 1.0),
                ("europe-west1", 1.1),
                ("europe-west4", 1.1),
                ("europe-central2", 1.2),
                ("asia-southeast1", 1.15),
            ]),
            spot_factor: 0.4,
            component_machine_type: "e2-standard-4".into(),
        }
    }

    /// This table with `overrides` applied; every price must be finite and not negative.
    pub fn with_overrides(mut self, o: &PricingOverrides) -> Result<PriceTable, PricingError> {
        let check = |field: String, value: f64| {
            if value.is_finite() && value >= 0.0 {
                Ok(value)
            } else {
                Err(PricingError::BadPrice { field, value })
            }
        };
        if let Some(v) = o.pipeline_run_fee {
            self.pipeline_run_fee = check("pipeline_run_fee".into(), v)?;
        }
        if let Some(v) = o.spot_factor {
            self.spot_factor = check("spot_factor".into(), v)?;
        }
        if let Some(m) = &o.component_machine_type {
            self.component_machine_type.clone_from(m);
        }
        for (name, map, into) in [
            (
                "machine_per_hour",
                &o.machine_per_hour,
                &mut self.machine_per_hour,
            ),
            (
                "accelerator_per_hour",
                &o.accelerator_per_hour,
                &mut self.accelerator_per_hour,
            ),
            (
                "region_multiplier",
                &o.region_multiplier,
                &mut self.region_multiplier,
            ),
        ] {
            for (k, v) in map {
                into.insert(k.clone(), check(format!("{name}.{k}"), *v)?);
            }
        }
        Ok(self)
    }

    fn machine(&self, machine_type: &str) -> Result<f64, PricingError> {
        self.machine_per_hour
            .get(machine_type)
            .copied()
            .ok_or_else(|| PricingError::UnknownMachine(machine_type.into()))
    }

    fn region(&self, region: &str) -> f64 {
        self.region_multiplier.get(region).copied().unwrap_or(1.0)
    }

    /// USD per hour of a Trainer on `gpu` in `region` (the component machine without GPUs).
    pub fn trainer_per_hour(&self, gpu: &GpuConfig, region: &str) -> Result<f64, PricingError> {
        let mut rate = if gpu.gpu_enabled {
            let name = gpu.gpu_type.vertex_name();
            let accelerator = self
                .accelerator_per_hour
                .get(name)
                .copied()
                .ok_or_else(|| PricingError::UnknownAccelerator(name.into()))?;
            self.machine(&gpu.machine_type)? + accelerator * f64::from(gpu.gpu_count)
        } else {
            self.machine(&self.component_machine_type)?
        };
        if gpu.gpu_enabled && gpu.preemptible {
            rate *= self.spot_factor;
        }
        Ok(rate * self.region(region))
    }

    /// The estimated cost of `run`, orchestrated in `region`, in USD rounded to 1/10000.
    pub fn estimate(&self, run: &TrainingRun, region: &str) -> Result<f64, PricingError> {
        let hours = |stage: StageName| {
            run.stage_details
                .get(stage)
                .duration_seconds()
                .unwrap_or(0.0)
                .max(0.0)
                / 3600.0
        };
        let gpu = &run.config.gpu_config;
        let trainer_region = gpu.training_region.as_deref().unwrap_or(region);
        let train = hours(StageName::Train) * self.trainer_per_hour(gpu, trainer_region)?;
        let others: f64 = [
            StageName::Examples,
            StageName::Stats,
            StageName::Schema,
            StageName::Transform,
            StageName::Evaluate,
            StageName::Register,
        ]
        .into_iter()
        .map(hours)
        .sum();
        let components = others * self.machine(&self.component_machine_type)? * self.region(region);
        let total = self.pipeline_run_fee + train + components;
        Ok((total * 10_000.0).round() / 10_000.0)
    }
}

/// How a platform prices its runs: on a cloud backend, a table and the orchestration region;
/// `None` (the local backend) prices every run at 0.
#[derive(Debug, Clone, PartialEq)]
pub struct CostModel {
    pub table: PriceTable,
    pub region: String,
}

impl CostModel {
    pub fn estimate(&self, run: &TrainingRun) -> Result<f64, PricingError> {
        self.table.estimate(run, &self.region)
    }
}
