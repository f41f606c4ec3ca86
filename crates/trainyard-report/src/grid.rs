//! The schedule grid (GitHub-style): 40 week columns of 7 days, the past 10 weeks and the
//! current plus 29 following weeks, in the schedule's time zone. Fires come from the schedule
//! timing engine; days with a run of the schedule are colored by that run's status.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use trainyard_core::run::TrainingRun;
use trainyard_core::schedule::TrainingSchedule;
use trainyard_core::RunStatus;

use crate::charts::no_data;
use crate::html::{coord, esc};

pub const PAST_WEEKS: i64 = 10;
pub const WEEKS: i64 = 40;

/// What one day of the grid shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayState {
    /// Nothing scheduled, nothing ran.
    Empty,
    /// A future fire of an active schedule.
    Planned,
    /// A future fire while the schedule is paused (or finished): it will not run as is.
    Held,
    /// A past fire after the schedule was created, with no run.
    Missed,
    /// The newest run of the schedule that day, by its status.
    Run(RunStatus),
}

impl DayState {
    pub fn class(self) -> String {
        match self {
            DayState::Empty => "empty".into(),
            DayState::Planned => "planned".into(),
            DayState::Held => "held".into(),
            DayState::Missed => "missed".into(),
            DayState::Run(s) => format!("run run-{}", run_class(s)),
        }
    }
}

/// Statuses folded into the grid's four run colors.
fn run_class(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Completed | RunStatus::Deployed | RunStatus::Deploying => "succeeded",
        RunStatus::NotBlessed | RunStatus::DeployFailed => "not-blessed",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "cancelled",
        RunStatus::Pending | RunStatus::Scheduled | RunStatus::Submitting | RunStatus::Running => {
            "active"
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Day {
    pub date: NaiveDate,
    pub fires: usize,
    pub runs: Vec<(u32, RunStatus)>,
    pub state: DayState,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub tz: Tz,
    pub today: NaiveDate,
    /// `WEEKS` columns of 7 days, Monday first.
    pub weeks: Vec<[Day; 7]>,
    /// Set when the schedule's timing could not be evaluated.
    pub timing_error: Option<String>,
}

/// Builds the grid for `schedule` at `now` from its runs (any order).
pub fn build(schedule: &TrainingSchedule, runs: &[TrainingRun], now: DateTime<Utc>) -> Grid {
    let tz: Tz = schedule.timing.timezone().unwrap_or(Tz::UTC);
    let today = now.with_timezone(&tz).date_naive();
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let first = monday - Duration::weeks(PAST_WEEKS);
    let last = first + Duration::weeks(WEEKS); // exclusive

    // A window a week wider on both sides than the grid, so local/UTC offsets cannot cut a day.
    let (mut fires, mut timing_error) = (BTreeMap::<NaiveDate, Vec<DateTime<Utc>>>::new(), None);
    match schedule.timing.fires_between(
        now - Duration::weeks(PAST_WEEKS + 1),
        now + Duration::weeks(WEEKS - PAST_WEEKS + 1),
    ) {
        Ok(list) => {
            for f in list {
                fires
                    .entry(f.date_naive())
                    .or_default()
                    .push(f.with_timezone(&Utc));
            }
        }
        Err(e) => timing_error = Some(e.to_string()),
    }
    let mut by_day: BTreeMap<NaiveDate, Vec<&TrainingRun>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.schedule_id == Some(schedule.id)) {
        let at = r.scheduled_fire_at.unwrap_or(r.created_at);
        by_day
            .entry(at.with_timezone(&tz).date_naive())
            .or_default()
            .push(r);
    }
    let future_state = if schedule.is_active() {
        DayState::Planned
    } else {
        DayState::Held
    };
    let weeks = (0..WEEKS)
        .map(|w| {
            std::array::from_fn(|d| {
                let date = first + Duration::days(w * 7 + d as i64);
                debug_assert!(date < last);
                let day_fires = fires.get(&date).map(Vec::as_slice).unwrap_or(&[]);
                let mut day_runs: Vec<&TrainingRun> =
                    by_day.get(&date).cloned().unwrap_or_default();
                day_runs.sort_by_key(|r| (r.scheduled_fire_at.unwrap_or(r.created_at), r.id));
                let state = if let Some(newest) = day_runs.last() {
                    DayState::Run(newest.status)
                } else if day_fires.iter().any(|f| *f > now) {
                    future_state
                } else if day_fires
                    .iter()
                    .any(|f| *f >= schedule.created_at && *f <= now)
                {
                    DayState::Missed
                } else {
                    DayState::Empty
                };
                Day {
                    date,
                    fires: day_fires.len(),
                    runs: day_runs.iter().map(|r| (r.run_number, r.status)).collect(),
                    state,
                }
            })
        })
        .collect();
    Grid {
        tz,
        today,
        weeks,
        timing_error,
    }
}

const CELL: f64 = 13.0;
const GAP: f64 = 3.0;
const GRID_LEFT: f64 = 32.0;
const GRID_TOP: f64 = 20.0;

fn day_title(day: &Day) -> String {
    let mut t = day.date.format("%a %Y-%m-%d").to_string();
    if day.fires > 0 {
        let _ = write!(
            t,
            ": {} fire{}",
            day.fires,
            if day.fires == 1 { "" } else { "s" }
        );
    }
    for (n, status) in &day.runs {
        let _ = write!(t, "; Training #{n} {status}");
    }
    if day.state == DayState::Missed {
        t.push_str("; no run");
    }
    t
}

impl Grid {
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some(e) = &self.timing_error {
            s.push_str(&no_data(
                "schedule-grid",
                &format!("The schedule's timing cannot be evaluated: {e}"),
            ));
            return s;
        }
        let w = GRID_LEFT + WEEKS as f64 * (CELL + GAP) + 8.0;
        let h = GRID_TOP + 7.0 * (CELL + GAP) + 4.0;
        let _ = writeln!(
            s,
            "<figure class=\"chart\"><figcaption>Past {PAST_WEEKS} and next {} weeks ({})</figcaption>\n<svg id=\"schedule-grid\" data-chart=\"schedule-grid\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"Schedule grid\">",
            WEEKS - PAST_WEEKS,
            esc(self.tz.name()),
            coord(w),
            coord(h)
        );
        for (label, row) in [("Mon", 0.0), ("Wed", 2.0), ("Fri", 4.0)] {
            let _ = writeln!(
                s,
                "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\" dominant-baseline=\"middle\">{label}</text>",
                coord(GRID_LEFT - 4.0),
                coord(GRID_TOP + row * (CELL + GAP) + CELL / 2.0)
            );
        }
        let mut last_month = None;
        for (i, week) in self.weeks.iter().enumerate() {
            let x = GRID_LEFT + i as f64 * (CELL + GAP);
            let month = week[0].date.month();
            if last_month != Some(month) {
                last_month = Some(month);
                let _ = writeln!(
                    s,
                    "<text class=\"tick\" x=\"{}\" y=\"{}\">{}</text>",
                    coord(x),
                    coord(GRID_TOP - 8.0),
                    week[0].date.format("%b")
                );
            }
            let _ = writeln!(
                s,
                "<g class=\"week\" data-week=\"{i}\" data-week-start=\"{}\">",
                week[0].date
            );
            for (d, day) in week.iter().enumerate() {
                let today = if day.date == self.today { " today" } else { "" };
                let _ = writeln!(
                    s,
                    "<rect class=\"day {}{today}\" data-date=\"{}\" data-fires=\"{}\" x=\"{}\" y=\"{}\" width=\"{CELL}\" height=\"{CELL}\" rx=\"2\"><title>{}</title></rect>",
                    day.state.class(),
                    day.date,
                    day.fires,
                    coord(x),
                    coord(GRID_TOP + d as f64 * (CELL + GAP)),
                    esc(&day_title(day))
                );
            }
            s.push_str("</g>\n");
        }
        s.push_str("</svg>\n<ul class=\"legend\">");
        for (class, label) in [
            ("planned", "planned fire"),
            ("held", "fire while paused"),
            ("run run-succeeded", "run succeeded"),
            ("run run-not-blessed", "run not blessed"),
            ("run run-failed", "run failed"),
            ("run run-cancelled", "run cancelled"),
            ("run run-active", "run in progress"),
            ("missed", "missed fire"),
        ] {
            let _ = write!(
                s,
                "<li><svg class=\"key\" viewBox=\"0 0 12 12\"><rect class=\"day {class}\" width=\"12\" height=\"12\" rx=\"2\"/></svg>{label}</li>"
            );
        }
        s.push_str("</ul></figure>\n");
        s
    }

    pub fn planned_count(&self) -> usize {
        self.days()
            .filter(|d| matches!(d.state, DayState::Planned | DayState::Held))
            .count()
    }

    pub fn days(&self) -> impl Iterator<Item = &Day> {
        self.weeks.iter().flat_map(|w| w.iter())
    }
}
