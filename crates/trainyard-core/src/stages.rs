//! The nine pipeline stages of a training run, each with a status and times.
//! `current_stage` is derived from them, never stored on its own.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageName {
    Compile,
    Examples,
    Stats,
    Schema,
    Transform,
    Train,
    Evaluate,
    Register,
    Deploy,
}

impl StageName {
    pub const ALL: [StageName; 9] = [
        StageName::Compile,
        StageName::Examples,
        StageName::Stats,
        StageName::Schema,
        StageName::Transform,
        StageName::Train,
        StageName::Evaluate,
        StageName::Register,
        StageName::Deploy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Compile => "compile",
            StageName::Examples => "examples",
            StageName::Stats => "stats",
            StageName::Schema => "schema",
            StageName::Transform => "transform",
            StageName::Train => "train",
            StageName::Evaluate => "evaluate",
            StageName::Register => "register",
            StageName::Deploy => "deploy",
        }
    }

    pub fn parse(s: &str) -> Result<StageName, ValidationError> {
        StageName::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                ValidationError::field(
                    "stage",
                    format!("unknown stage {s:?}; expected one of compile, examples, stats, schema, transform, train, evaluate, register, deploy"),
                )
            })
    }

    /// The stage a TFX component belongs to (`CsvExampleGen`, `Trainer`, `Pusher`, ...).
    pub fn from_component(component: &str) -> Option<StageName> {
        let c = component.rsplit('.').next().unwrap_or(component);
        let stage = if c.ends_with("ExampleGen") {
            StageName::Examples
        } else {
            match c {
                "StatisticsGen" => StageName::Stats,
                "SchemaGen" | "ImportSchemaGen" => StageName::Schema,
                "Transform" => StageName::Transform,
                "Trainer" => StageName::Train,
                "Evaluator" => StageName::Evaluate,
                "Pusher" => StageName::Register,
                _ => return None,
            }
        };
        Some(stage)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Skipped,
}

impl StageStatus {
    pub fn is_done(self) -> bool {
        matches!(self, StageStatus::Completed | StageStatus::Skipped)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageDetail {
    pub name: StageName,
    pub status: StageStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StageDetail {
    pub fn duration_seconds(&self) -> Option<f64> {
        let (s, e) = (self.started_at?, self.completed_at?);
        Some((e - s).num_milliseconds() as f64 / 1000.0)
    }
}

/// All nine stages of one run, in pipeline order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct StageDetails(Vec<StageDetail>);

impl StageDetails {
    /// Fresh stages: everything pending; deploy pending with auto-deploy, skipped without.
    pub fn new(deploy_enabled: bool) -> Self {
        StageDetails(
            StageName::ALL
                .into_iter()
                .map(|name| StageDetail {
                    name,
                    status: if name == StageName::Deploy && !deploy_enabled {
                        StageStatus::Skipped
                    } else {
                        StageStatus::Pending
                    },
                    started_at: None,
                    completed_at: None,
                    error: None,
                })
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = &StageDetail> {
        self.0.iter()
    }

    pub fn get(&self, name: StageName) -> &StageDetail {
        // The constructor and deserializer guarantee all nine, in order.
        &self.0[name as usize]
    }

    fn get_mut(&mut self, name: StageName) -> &mut StageDetail {
        &mut self.0[name as usize]
    }

    /// The running stage; else the failed one; else the first pending; None when all are done.
    pub fn current(&self) -> Option<StageName> {
        let find = |st: StageStatus| self.0.iter().find(|d| d.status == st).map(|d| d.name);
        find(StageStatus::Running)
            .or_else(|| find(StageStatus::Failed))
            .or_else(|| find(StageStatus::Pending))
    }

    /// Marks a stage running; earlier stages still pending are completed at the same instant
    /// (a pipeline only starts a stage once the ones before it are done).
    pub fn start(&mut self, name: StageName, at: DateTime<Utc>) {
        for d in self.0.iter_mut().take_while(|d| d.name < name) {
            if d.status == StageStatus::Pending || d.status == StageStatus::Running {
                d.started_at.get_or_insert(at);
                d.status = StageStatus::Completed;
                d.completed_at = Some(at);
            }
        }
        let d = self.get_mut(name);
        d.status = StageStatus::Running;
        d.started_at.get_or_insert(at);
        d.completed_at = None;
        d.error = None;
    }

    pub fn complete(&mut self, name: StageName, at: DateTime<Utc>) {
        if self.get(name).status != StageStatus::Running {
            self.start(name, at);
        }
        let d = self.get_mut(name);
        d.status = StageStatus::Completed;
        d.completed_at = Some(at);
    }

    pub fn fail(&mut self, name: StageName, at: DateTime<Utc>, error: impl Into<String>) {
        let d = self.get_mut(name);
        d.status = StageStatus::Failed;
        d.started_at.get_or_insert(at);
        d.completed_at = Some(at);
        d.error = Some(error.into());
    }

    pub fn skip(&mut self, name: StageName) {
        self.get_mut(name).status = StageStatus::Skipped;
    }

    /// Fails the stage in progress (or the first pending one) when a whole run fails.
    pub fn fail_current(&mut self, at: DateTime<Utc>, error: impl Into<String>) {
        if let Some(name) = self.current() {
            self.fail(name, at, error);
        }
    }

    /// Stops pending and running stages when a run is cancelled: they are marked skipped.
    pub fn cancel_remaining(&mut self, at: DateTime<Utc>) {
        for d in &mut self.0 {
            match d.status {
                StageStatus::Running => {
                    d.status = StageStatus::Failed;
                    d.completed_at = Some(at);
                    d.error = Some("cancelled".into());
                }
                StageStatus::Pending => d.status = StageStatus::Skipped,
                _ => {}
            }
        }
    }
}

impl Default for StageDetails {
    fn default() -> Self {
        StageDetails::new(false)
    }
}

impl<'de> Deserialize<'de> for StageDetails {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let v: Vec<StageDetail> = Vec::deserialize(de)?;
        let in_order = v.len() == 9 && v.iter().zip(StageName::ALL).all(|(d, n)| d.name == n);
        if !in_order {
            return Err(serde::de::Error::custom(
                "stage_details must list the nine stages in pipeline order",
            ));
        }
        Ok(StageDetails(v))
    }
}
