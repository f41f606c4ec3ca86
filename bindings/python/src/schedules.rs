//! `platform.schedules`: the facade's ScheduleService. Every operation is declared once (see
//! macros.rs): blocking, and `<name>_async`.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use pyo3::prelude::*;
use trainyard::{NewSchedule, Platform, ScheduleEdit, WizardSchedule};
use trainyard_core::run::RunConfig;
use trainyard_core::schedule::TrainingSchedule;
use trainyard_core::timing::ScheduleTiming;

use crate::convert::{
    from_json, from_py, instant, local_times, over_defaults, py_to_json, reject_unknown_keys, Json,
};
use crate::ctx::Ctx;
use crate::errors::to_py_err;
use crate::models::{PyFireOutcome, PySchedule};
use crate::repr::pyq;

/// A schedule's dict, its keys checked (NewSchedule's timing is flattened).
fn new_schedule(schedule: &Bound<'_, PyAny>) -> PyResult<NewSchedule> {
    let json = py_to_json(schedule)?;
    reject_unknown_keys("schedule", &json, &NewSchedule::known_fields(&[]))?;
    from_json("schedule", json)
}

/// The wizard's dict, its config sections merged over the defaults like `create`'s.
fn wizard_of(wizard: &Bound<'_, PyAny>) -> PyResult<WizardSchedule> {
    let mut json = py_to_json(wizard)?;
    reject_unknown_keys("wizard", &json, &WizardSchedule::known_fields())?;
    over_defaults::<RunConfig>(&mut json);
    from_json("wizard", json)
}

/// Retraining schedules of a platform.
#[pyclass(module = "trainyard._native", name = "ScheduleService", frozen)]
pub struct PySchedules {
    pub ctx: Arc<Ctx>,
}

fn py_schedule(inner: TrainingSchedule, _: &Arc<Ctx>) -> PySchedule {
    PySchedule { inner }
}

fn fires(times: Vec<DateTime<chrono_tz::Tz>>, _: &Arc<Ctx>) -> Vec<DateTime<FixedOffset>> {
    local_times(&times)
}

service_methods! {
    impl PySchedules {
        ops {
            /// A schedule retraining a run's model with the run's config. `schedule` is a dict
            /// with name, description, the timing fields, catch_up and concurrency.
            fn create_from_run(&self, run_id: i64, schedule: &Bound<'_, PyAny>) -> PySchedule
                as stub(
                    "run_id: int, schedule: NewSchedule"
                        -> "Schedule"
                )
            {
                let new = new_schedule(schedule)?;
                self.ctx.service_op(
                    Platform::schedules,
                    move |s| async move { s.create_from_run(run_id, new).await },
                    py_schedule,
                )
            }

            /// The wizard: model name, training config and timing in one dict (the model is
            /// created when missing).
            fn create_from_wizard(&self, wizard: &Bound<'_, PyAny>) -> PySchedule
                as stub(
                    "wizard: WizardSchedule"
                        -> "Schedule"
                )
            {
                let w = wizard_of(wizard)?;
                self.ctx.service_op(
                    Platform::schedules,
                    move |s| async move { s.create_from_config(w).await },
                    py_schedule,
                )
            }

            /// A schedule for a registered model, with the config of its newest run.
            fn create_for_model(&self, model_id: i64, schedule: &Bound<'_, PyAny>) -> PySchedule
                as stub(
                    "model_id: int, schedule: NewSchedule"
                        -> "Schedule"
                )
            {
                let new = new_schedule(schedule)?;
                self.ctx.service_op(
                    Platform::schedules,
                    move |s| async move { s.create_for_model(model_id, new).await },
                    py_schedule,
                )
            }

            /// What a schedule created from this run would train (a dict).
            fn preview_from_run(&self, run_id: i64) -> Json
                as stub(
                    "run_id: int"
                        -> "_JsonDict"
                )
            {
                self.ctx
                    .op(move |p, _| async move { Json::of(&p.schedules().preview(run_id).await?) })
            }

            #[pyo3(signature = (ml_model=None))]
            fn list(&self, ml_model: Option<String>) -> Vec<PySchedule>
                as stub(
                    "ml_model: Optional[str] = None"
                        -> "builtins.list[Schedule]"
                )
            {
                self.ctx.op(move |p, _| async move {
                    let all = p.schedules().list(ml_model.as_deref()).await?;
                    Ok(all.into_iter().map(|inner| PySchedule { inner }).collect())
                })
            }

            fn get(&self, id: i64) -> PySchedule as stub("id: int" -> "Schedule") {
                self.ctx.service_op(
                    Platform::schedules,
                    move |s| async move { s.get(id).await },
                    py_schedule,
                )
            }

            /// Edits name, description, timing, catch_up or concurrency (a dict); the training
            /// config stays frozen, and a key outside these is a ValidationError.
            fn edit(&self, id: i64, edit: &Bound<'_, PyAny>) -> PySchedule
                as stub(
                    "id: int, edit: ScheduleEdit"
                        -> "Schedule"
                )
            {
                let e: ScheduleEdit = from_py("edit", edit)?;
                self.ctx.service_op(
                    Platform::schedules,
                    move |s| async move { s.edit(id, &e).await },
                    py_schedule,
                )
            }

            fn pause(&self, id: i64) -> PySchedule as stub("id: int" -> "Schedule") {
                self.ctx.service_op(
                    Platform::schedules,
                    move |s| async move { s.pause(id).await },
                    py_schedule,
                )
            }

            fn resume(&self, id: i64) -> PySchedule as stub("id: int" -> "Schedule") {
                self.ctx.service_op(
                    Platform::schedules,
                    move |s| async move { s.resume(id).await },
                    py_schedule,
                )
            }

            fn cancel(&self, id: i64) -> PySchedule as stub("id: int" -> "Schedule") {
                self.ctx.service_op(
                    Platform::schedules,
                    move |s| async move { s.cancel(id).await },
                    py_schedule,
                )
            }

            /// Deletes the schedule record, freeing its model for a new schedule.
            fn delete(&self, id: i64) -> () as stub("id: int" -> "None") {
                self.ctx.op(move |p, _| async move { p.schedules().delete(id).await })
            }

            /// Fires now, outside the timetable (a paused schedule too).
            fn trigger(&self, id: i64) -> PyFireOutcome
                as stub(
                    "id: int"
                        -> "FireOutcome"
                )
            {
                self.ctx.op(move |p, ctx| async move {
                    let inner = p.schedules().trigger_now(id).await?;
                    Ok(PyFireOutcome { inner, ctx })
                })
            }

            /// The next `count` fires of a schedule, in its time zone.
            #[pyo3(signature = (id, count=5))]
            fn upcoming(&self, id: i64, count: usize) -> Vec<DateTime<FixedOffset>>
                as stub(
                    "id: int, count: int = 5"
                        -> "builtins.list[datetime]"
                )
            {
                self.ctx.service_op(
                    Platform::schedules,
                    move |s| async move { s.upcoming(id, count).await },
                    fires,
                )
            }

            /// Fires of the past 10 and the next 30 weeks (the schedule grid).
            fn grid(&self, id: i64) -> Vec<DateTime<FixedOffset>>
                as stub(
                    "id: int"
                        -> "builtins.list[datetime]"
                )
            {
                self.ctx.service_op(
                    Platform::schedules,
                    move |s| async move { s.grid(id).await },
                    fires,
                )
            }
        }
        methods {
            /// The unix-cron string of a timing dict (schedule_type, schedule_time, ...).
            #[staticmethod]
            fn cron(timing: &Bound<'_, PyAny>) -> PyResult<String> {
                from_py::<ScheduleTiming>("timing", timing)?
                    .cron()
                    .map_err(|e| to_py_err(e.into()))
            }

            /// The next `count` fires of a timing dict after `after` (default now), as aware
            /// datetimes in the timing's zone. Needs no project.
            #[staticmethod]
            #[pyo3(signature = (timing, count=5, after=None))]
            fn preview(
                timing: &Bound<'_, PyAny>,
                count: usize,
                after: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Vec<DateTime<FixedOffset>>> {
                let t: ScheduleTiming = from_py("timing", timing)?;
                let after = match after {
                    Some(a) => instant("after", a)?,
                    None => Utc::now(),
                };
                let fires = t.upcoming(after, count).map_err(|e| to_py_err(e.into()))?;
                Ok(local_times(&fires))
            }

            fn __repr__(&self) -> String {
                format!("ScheduleService(dir={})", pyq(&self.ctx.dir.display().to_string()))
            }
        }
    }
}
