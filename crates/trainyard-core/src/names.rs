//! The names of the domain's enums, declared once: every front end (CLI values, REST
//! parameters, Python strings, tables) reads them from here rather than mirroring the enums.
//! The names are the enums' serde names (a test keeps them equal).

use crate::config::DeploymentPreset;
use crate::model_config::ModelType;
use crate::schedule::{CatchUpPolicy, ConcurrencyPolicy, ScheduleStatus, ScheduleType};
use crate::stages::StageStatus;
use crate::status::RunStatus;

/// An enum with a fixed list of snake_case names.
pub trait Named: Sized + Copy + PartialEq + 'static {
    /// Every variant, in declaration order.
    const ALL: &'static [Self];

    fn name(self) -> &'static str;

    /// Other names accepted on input (e.g. `hybrid` for `multitask`).
    fn aliases(self) -> &'static [&'static str] {
        &[]
    }

    /// The variant of a name or alias (exact, snake_case).
    fn from_name(s: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.name() == s || v.aliases().contains(&s))
    }

    /// All names, for messages ("one of a, b, c").
    fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|v| v.name()).collect()
    }
}

macro_rules! named {
    ($t:ty { $($v:ident => $n:literal),+ $(,)? }) => {
        impl Named for $t {
            const ALL: &'static [Self] = &[$(<$t>::$v),+];
            fn name(self) -> &'static str {
                match self { $(<$t>::$v => $n),+ }
            }
        }
    };
}

impl Named for ModelType {
    const ALL: &'static [Self] = &[
        ModelType::Retrieval,
        ModelType::Ranking,
        ModelType::Multitask,
    ];

    fn name(self) -> &'static str {
        self.as_str()
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            ModelType::Multitask => &["hybrid"],
            _ => &[],
        }
    }
}

impl Named for RunStatus {
    const ALL: &'static [Self] = &RunStatus::ALL;

    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Named for DeploymentPreset {
    const ALL: &'static [Self] = &[
        DeploymentPreset::Development,
        DeploymentPreset::Production,
        DeploymentPreset::HighTraffic,
        DeploymentPreset::Custom,
    ];

    fn name(self) -> &'static str {
        match self {
            DeploymentPreset::Development => "development",
            DeploymentPreset::Production => "production",
            DeploymentPreset::HighTraffic => "high_traffic",
            DeploymentPreset::Custom => "custom",
        }
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            DeploymentPreset::HighTraffic => &["high-traffic"],
            _ => &[],
        }
    }
}

named!(ScheduleType { Now => "now", Once => "once", Hourly => "hourly", Daily => "daily", Weekly => "weekly", Monthly => "monthly" });
named!(ScheduleStatus { Active => "active", Paused => "paused", Completed => "completed", Cancelled => "cancelled" });
named!(CatchUpPolicy { Once => "once", All => "all", Skip => "skip" });
named!(ConcurrencyPolicy { Skip => "skip", Queue => "queue", Allow => "allow" });
named!(StageStatus { Pending => "pending", Running => "running", Completed => "completed", Failed => "failed", Skipped => "skipped" });

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_serde<
        T: Named + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    >() {
        for v in T::ALL {
            assert_eq!(serde_json::to_value(v).unwrap(), v.name(), "{v:?}");
            for a in v.aliases() {
                let back: T = serde_json::from_value(serde_json::json!(a)).unwrap();
                assert_eq!(back, *v);
            }
            assert_eq!(T::from_name(v.name()), Some(*v));
        }
        assert_eq!(T::from_name("no such name"), None);
    }

    #[test]
    fn names_are_the_serde_names() {
        same_as_serde::<ModelType>();
        same_as_serde::<RunStatus>();
        same_as_serde::<ScheduleType>();
        same_as_serde::<ScheduleStatus>();
        same_as_serde::<CatchUpPolicy>();
        same_as_serde::<ConcurrencyPolicy>();
        same_as_serde::<StageStatus>();
        same_as_serde::<DeploymentPreset>();
    }

    #[test]
    fn all_lists_every_variant() {
        // Exhaustive matches: a new variant is a compile error until ALL names it.
        let _ = |t: ScheduleType| match t {
            ScheduleType::Now
            | ScheduleType::Once
            | ScheduleType::Hourly
            | ScheduleType::Daily
            | ScheduleType::Weekly
            | ScheduleType::Monthly => {}
        };
        assert_eq!(ScheduleType::ALL.len(), 6);
        assert_eq!(<ModelType as Named>::ALL.len(), 3);
        assert_eq!(<RunStatus as Named>::ALL.len(), 11);
        assert_eq!(ScheduleStatus::ALL.len(), 4);
        assert_eq!(StageStatus::ALL.len(), 5);
        let _ = |p: DeploymentPreset| match p {
            DeploymentPreset::Development
            | DeploymentPreset::Production
            | DeploymentPreset::HighTraffic
            | DeploymentPreset::Custom => {}
        };
        assert_eq!(DeploymentPreset::ALL.len(), 4);
    }
}
