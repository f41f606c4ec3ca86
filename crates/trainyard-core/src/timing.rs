//! When a schedule fires: schedule types -> unix-cron (Cloud Scheduler's format) + IANA time
//! zone, next fire times, and the validation rules of the spec.
//!
//! DST policy (Debian/Vixie cron's, which croner implements and the tests check against
//! cronsim): a fixed local time that does not exist on spring-forward fires at the first valid
//! instant after the gap; a fixed local time repeated on fall-back fires once, at its first
//! occurrence; an hourly schedule fires every real hour, so in both copies of a repeated hour.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

use crate::config::{parse_hh_mm, ScheduleConfig, ScheduleKind};
use crate::error::ValidationError;
use crate::schedule::ScheduleType;

/// Minutes an hourly schedule may fire at.
pub const HOURLY_MINUTES: [u8; 4] = [0, 15, 30, 45];
/// Most fires `upcoming` returns at once.
pub const MAX_UPCOMING: usize = 1000;
/// Longest window `fires_between` covers (a 40-week schedule grid fits easily).
pub const MAX_WINDOW_DAYS: i64 = 400;

/// The timing fields of a schedule: the only part of it that may be edited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleTiming {
    pub schedule_type: ScheduleType,
    /// For `once`: the instant to fire (seconds are dropped; cron is minute-precise). For
    /// `now`: the instant it was created (or edited to `now`), which is its only fire; unset
    /// until then.
    #[serde(default)]
    pub scheduled_datetime: Option<DateTime<Utc>>,
    /// "HH:MM"; hourly schedules use only the minute (0, 15, 30 or 45).
    #[serde(default)]
    pub schedule_time: Option<String>,
    /// 0=Monday .. 6=Sunday (weekly).
    #[serde(default)]
    pub schedule_day_of_week: Option<u8>,
    /// 1..=31 (monthly); 29-31 skip months that lack the day.
    #[serde(default)]
    pub schedule_day_of_month: Option<u8>,
    /// IANA time zone name.
    #[serde(default = "utc_name")]
    pub schedule_timezone: String,
}

/// Timing fields to change; absent ones keep the schedule's current value. A whole
/// [`ScheduleTiming`] is a patch too (every field given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimingPatch {
    pub schedule_type: Option<ScheduleType>,
    pub scheduled_datetime: Option<DateTime<Utc>>,
    pub schedule_time: Option<String>,
    pub schedule_day_of_week: Option<u8>,
    pub schedule_day_of_month: Option<u8>,
    pub schedule_timezone: Option<String>,
}

impl TimingPatch {
    /// Whether the patch names any field.
    pub fn is_empty(&self) -> bool {
        *self == TimingPatch::default()
    }

    /// The current timing with the given fields laid over it.
    pub fn apply(&self, current: &ScheduleTiming) -> ScheduleTiming {
        ScheduleTiming {
            schedule_type: self.schedule_type.unwrap_or(current.schedule_type),
            scheduled_datetime: self.scheduled_datetime.or(current.scheduled_datetime),
            schedule_time: self
                .schedule_time
                .clone()
                .or_else(|| current.schedule_time.clone()),
            schedule_day_of_week: self.schedule_day_of_week.or(current.schedule_day_of_week),
            schedule_day_of_month: self.schedule_day_of_month.or(current.schedule_day_of_month),
            schedule_timezone: self
                .schedule_timezone
                .clone()
                .unwrap_or_else(|| current.schedule_timezone.clone()),
        }
    }
}

impl From<ScheduleTiming> for TimingPatch {
    fn from(t: ScheduleTiming) -> Self {
        TimingPatch {
            schedule_type: Some(t.schedule_type),
            scheduled_datetime: t.scheduled_datetime,
            schedule_time: t.schedule_time,
            schedule_day_of_week: t.schedule_day_of_week,
            schedule_day_of_month: t.schedule_day_of_month,
            schedule_timezone: Some(t.schedule_timezone),
        }
    }
}

fn utc_name() -> String {
    "UTC".into()
}

fn invalid(field: &str, reason: impl Into<String>) -> ValidationError {
    ValidationError::field(field, reason)
}

/// Day numbering: ours is 0=Monday..6=Sunday (the spec's), cron's is 0=Sunday..6=Saturday.
pub fn cron_day_of_week(monday_based: u8) -> u8 {
    (monday_based + 1) % 7
}

impl ScheduleTiming {
    pub fn timezone(&self) -> Result<Tz, ValidationError> {
        Tz::from_str(&self.schedule_timezone).map_err(|_| {
            invalid(
                "schedule_timezone",
                format!(
                    "{:?} is not an IANA time zone (e.g. Europe/Warsaw, UTC)",
                    self.schedule_timezone
                ),
            )
        })
    }

    fn time(&self) -> Result<(u8, u8), ValidationError> {
        let t = self.schedule_time.as_deref().ok_or_else(|| {
            invalid(
                "schedule_time",
                "is required for hourly, daily, weekly and monthly schedules",
            )
        })?;
        parse_hh_mm(t)
            .ok_or_else(|| invalid("schedule_time", format!("{t:?} is not HH:MM (00:00-23:59)")))
    }

    /// Structural rules (everything but "once must be in the future", which needs a clock).
    pub fn validate_shape(&self) -> Result<(), ValidationError> {
        self.timezone()?;
        if let Some(d) = self.schedule_day_of_week {
            if d > 6 {
                return Err(invalid(
                    "schedule_day_of_week",
                    "must be 0 (Monday) to 6 (Sunday)",
                ));
            }
        }
        if let Some(d) = self.schedule_day_of_month {
            if !(1..=31).contains(&d) {
                return Err(invalid("schedule_day_of_month", "must be 1 to 31"));
            }
        }
        match self.schedule_type {
            // Fires when created; nothing to check but the time zone.
            ScheduleType::Now => {}
            ScheduleType::Once => {
                self.scheduled_datetime.ok_or_else(|| {
                    invalid("scheduled_datetime", "is required for a one-time schedule")
                })?;
            }
            ScheduleType::Hourly => {
                let (_, m) = self.time()?;
                if !HOURLY_MINUTES.contains(&m) {
                    return Err(invalid(
                        "schedule_time",
                        "hourly schedules run at minute 00, 15, 30 or 45",
                    ));
                }
            }
            ScheduleType::Daily => {
                self.time()?;
            }
            ScheduleType::Weekly => {
                self.time()?;
                self.schedule_day_of_week.ok_or_else(|| {
                    invalid("schedule_day_of_week", "is required for weekly schedules")
                })?;
            }
            ScheduleType::Monthly => {
                self.time()?;
                self.schedule_day_of_month.ok_or_else(|| {
                    invalid("schedule_day_of_month", "is required for monthly schedules")
                })?;
            }
        }
        Ok(())
    }

    /// All rules, including that a one-time schedule lies in the future.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), ValidationError> {
        self.validate_shape()?;
        if let (ScheduleType::Once, Some(at)) = (self.schedule_type, self.scheduled_datetime) {
            if at <= now {
                return Err(invalid("scheduled_datetime", "must be in the future"));
            }
        }
        Ok(())
    }

    /// The same timing with the fields its type does not use cleared, and seconds dropped.
    pub fn normalized(&self) -> Result<ScheduleTiming, ValidationError> {
        self.validate_shape()?;
        let mut t = ScheduleTiming {
            schedule_type: self.schedule_type,
            scheduled_datetime: None,
            schedule_time: None,
            schedule_day_of_week: None,
            schedule_day_of_month: None,
            schedule_timezone: self.schedule_timezone.clone(),
        };
        match self.schedule_type {
            ScheduleType::Now => {
                t.scheduled_datetime = self.scheduled_datetime.and_then(|d| d.with_nanosecond(0));
            }
            ScheduleType::Once => {
                t.scheduled_datetime = self
                    .scheduled_datetime
                    .and_then(|d| d.with_second(0))
                    .and_then(|d| d.with_nanosecond(0));
            }
            ScheduleType::Hourly => {
                let (_, m) = self.time()?;
                t.schedule_time = Some(format!("00:{m:02}"));
            }
            ScheduleType::Daily | ScheduleType::Weekly | ScheduleType::Monthly => {
                t.schedule_time.clone_from(&self.schedule_time);
                if self.schedule_type == ScheduleType::Weekly {
                    t.schedule_day_of_week = self.schedule_day_of_week;
                }
                if self.schedule_type == ScheduleType::Monthly {
                    t.schedule_day_of_month = self.schedule_day_of_month;
                }
            }
        }
        Ok(t)
    }

    /// The unix-cron string, as Cloud Scheduler takes it with `timeZone`. A `now` timing has
    /// one only once it has its fire instant (the minute it was created).
    pub fn cron(&self) -> Result<String, ValidationError> {
        self.validate_shape()?;
        let one_time = |at: Option<DateTime<Utc>>, field: &str, why: &str| {
            let tz = self.timezone()?;
            let at = at.ok_or_else(|| invalid(field, why))?.with_timezone(&tz);
            Ok::<_, ValidationError>(format!(
                "{} {} {} {} *",
                at.minute(),
                at.hour(),
                at.day(),
                at.month()
            ))
        };
        Ok(match self.schedule_type {
            ScheduleType::Now => one_time(
                self.scheduled_datetime,
                "schedule_type",
                "a `now` schedule fires once, when it is created; it has no cron string before",
            )?,
            ScheduleType::Once => one_time(
                self.scheduled_datetime,
                "scheduled_datetime",
                "is required for a one-time schedule",
            )?,
            ScheduleType::Hourly => format!("{} * * * *", self.time()?.1),
            ScheduleType::Daily => {
                let (h, m) = self.time()?;
                format!("{m} {h} * * *")
            }
            ScheduleType::Weekly => {
                let (h, m) = self.time()?;
                let d = self.schedule_day_of_week.unwrap_or_default();
                format!("{m} {h} * * {}", cron_day_of_week(d))
            }
            ScheduleType::Monthly => {
                let (h, m) = self.time()?;
                format!("{m} {h} {} * *", self.schedule_day_of_month.unwrap_or(1))
            }
        })
    }

    fn parsed(&self) -> Result<(Cron, Tz), ValidationError> {
        let cron = self.cron()?;
        let parsed = Cron::from_str(&cron)
            .map_err(|e| invalid("schedule", format!("cron {cron:?}: {e}")))?;
        Ok((parsed, self.timezone()?))
    }

    /// The next `n` fires strictly after `after`, in the schedule's time zone (a `now` timing
    /// not yet bound to an instant fires at `after` itself).
    pub fn upcoming(
        &self,
        after: DateTime<Utc>,
        n: usize,
    ) -> Result<Vec<DateTime<Tz>>, ValidationError> {
        if n > MAX_UPCOMING {
            return Err(invalid(
                "count",
                format!("at most {MAX_UPCOMING} fires at once"),
            ));
        }
        if self.schedule_type == ScheduleType::Now {
            // Its one fire: the instant it was bound to, or (not yet created) `after` itself.
            let tz = self.timezone()?;
            let at = match self.normalized()?.scheduled_datetime {
                Some(at) => (at > after).then_some(at),
                None => Some(after),
            };
            return Ok(at
                .filter(|_| n > 0)
                .map(|at| at.with_timezone(&tz))
                .into_iter()
                .collect());
        }
        let (cron, tz) = self.parsed()?;
        if self.schedule_type == ScheduleType::Once {
            return Ok(self
                .normalized()?
                .scheduled_datetime
                .filter(|at| *at > after && n > 0)
                .map(|at| at.with_timezone(&tz))
                .into_iter()
                .collect());
        }
        Ok(cron.iter_after(after.with_timezone(&tz)).take(n).collect())
    }

    /// The first fire strictly after `after`, in UTC (None: a one-time schedule that has passed).
    pub fn next_after(
        &self,
        after: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ValidationError> {
        Ok(self
            .upcoming(after, 1)?
            .first()
            .map(|t| t.with_timezone(&Utc)))
    }

    /// Every fire in `[from, to)`, in the schedule's time zone (feeds the schedule grid).
    pub fn fires_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Tz>>, ValidationError> {
        if to < from {
            return Err(invalid("window", "end is before start"));
        }
        if (to - from).num_days() > MAX_WINDOW_DAYS {
            return Err(invalid("window", format!("at most {MAX_WINDOW_DAYS} days")));
        }
        if self.schedule_type == ScheduleType::Now {
            let tz = self.timezone()?;
            return Ok(self
                .normalized()?
                .scheduled_datetime
                .filter(|at| *at >= from && *at < to)
                .map(|at| at.with_timezone(&tz))
                .into_iter()
                .collect());
        }
        let (cron, tz) = self.parsed()?;
        let just_before = from - chrono::Duration::nanoseconds(1);
        if self.schedule_type == ScheduleType::Once {
            return Ok(self
                .normalized()?
                .scheduled_datetime
                .filter(|at| *at >= from && *at < to)
                .map(|at| at.with_timezone(&tz))
                .into_iter()
                .collect());
        }
        Ok(cron
            .iter_after(just_before.with_timezone(&tz))
            .take_while(|t| t.with_timezone(&Utc) < to)
            .collect())
    }
}

impl ScheduleTiming {
    /// The timing a run's embedded `schedule_config` asks of its model's schedule (the spec's
    /// Edit feature). None for `now`, the default: the run itself is the immediate training,
    /// and it asks for no schedule.
    pub fn from_run_config(c: &ScheduleConfig) -> Option<ScheduleTiming> {
        let schedule_type = match c.schedule_type {
            ScheduleKind::Now => return None,
            ScheduleKind::Once => ScheduleType::Once,
            ScheduleKind::Hourly => ScheduleType::Hourly,
            ScheduleKind::Daily => ScheduleType::Daily,
            ScheduleKind::Weekly => ScheduleType::Weekly,
            ScheduleKind::Monthly => ScheduleType::Monthly,
        };
        let tz = c.schedule_timezone.trim();
        Some(ScheduleTiming {
            schedule_type,
            scheduled_datetime: c.scheduled_datetime,
            schedule_time: c.schedule_time.clone(),
            schedule_day_of_week: c.schedule_day_of_week,
            schedule_day_of_month: c.schedule_day_of_month,
            schedule_timezone: if tz.is_empty() {
                utc_name()
            } else {
                tz.to_string()
            },
        })
    }
}

/// A schedule's local wall-clock time for display, e.g. `2026-01-27T09:00:00+01:00`.
pub fn rfc3339_local(t: &DateTime<Tz>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Weekday of a local fire, 0=Monday.
pub fn monday_based_weekday(t: &DateTime<Tz>) -> u8 {
    t.weekday().num_days_from_monday() as u8
}
