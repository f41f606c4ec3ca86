"""Schedules through the wheel: the scenarios of tests/tests/schedules.rs (with the
wall clock: the embedded scheduler's timed fires are covered by the Rust tests)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, cast

import pytest
from conftest import complete, config

import trainyard
from trainyard import Conflict, NotFound, ScheduleService, ValidationError
from trainyard.config_types import NewSchedule, ScheduleTiming, WizardSchedule

WARSAW_DAILY: ScheduleTiming = {"schedule_type": "daily", "schedule_time": "02:00", "schedule_timezone": "Europe/Warsaw"}


def daily(name: str, time: str = "02:00", **extra: Any) -> NewSchedule:
    return cast(NewSchedule, {"name": name, **WARSAW_DAILY, "schedule_time": time, "concurrency": "allow", **extra})


def test_cron_and_preview_need_no_project() -> None:
    assert ScheduleService.cron(WARSAW_DAILY) == "0 2 * * *"
    weekly: ScheduleTiming = {"schedule_type": "weekly", "schedule_time": "10:00", "schedule_day_of_week": 2}
    assert ScheduleService.cron(weekly) == "0 10 * * 3", "Wednesday is cron day 3"
    assert ScheduleService.cron({"schedule_type": "hourly", "schedule_time": "00:15"}) == "15 * * * *"
    fires = ScheduleService.preview(WARSAW_DAILY, 3, after="2026-03-01T10:00:00Z")
    assert [f.isoformat() for f in fires] == [
        "2026-03-02T02:00:00+01:00",
        "2026-03-03T02:00:00+01:00",
        "2026-03-04T02:00:00+01:00",
    ]
    # Spring forward in Warsaw: 02:00 does not exist on 2026-03-29; the fire moves past the gap.
    dst = ScheduleService.preview(WARSAW_DAILY, 2, after=datetime(2026, 3, 28, 12, tzinfo=timezone.utc))
    assert [f.isoformat() for f in dst] == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"]

    with pytest.raises(ValidationError, match="not an IANA time zone") as e:
        ScheduleService.cron({**WARSAW_DAILY, "schedule_timezone": "Mars/Olympus"})
    assert e.value.field == "schedule_timezone"
    with pytest.raises(ValidationError, match="must be 0 \\(Monday\\) to 6 \\(Sunday\\)"):
        ScheduleService.cron({**weekly, "schedule_day_of_week": 7})
    with pytest.raises(ValidationError, match="has no time zone"):
        ScheduleService.preview(WARSAW_DAILY, 1, after=datetime(2026, 3, 1))
    with pytest.raises(ValidationError, match="at most 1000 fires"):
        ScheduleService.preview(WARSAW_DAILY, 1001)


def test_one_schedule_per_model_and_delete_frees_it(platform: trainyard.Platform) -> None:
    s = platform.schedules
    run = platform.training.create("retrieval", ml_model="shop")
    sched = s.create_from_run(run.id, daily("nightly"))
    assert sched.cron == "0 2 * * *"
    assert sched.status == "active" and sched.schedule_type == "daily"
    assert sched.next_run_at is not None and sched.next_run_at > datetime.now(timezone.utc)
    assert sched.next_run_at.astimezone(timezone(timedelta(hours=1))).hour in (1, 2, 3)
    assert sched.training_config["training_params"] == run.config["training_params"]
    assert sched.source_training_run_id == run.id

    with pytest.raises(Conflict, match=f"already has schedule {sched.id}"):
        s.create_from_run(run.id, daily("again", "03:00"))
    check = platform.registry.check_name("retrieval", "shop")
    assert (check.has_schedule, check.schedule_id) == (True, sched.id)

    s.delete(sched.id)
    with pytest.raises(NotFound, match=f"schedule {sched.id} not found"):
        s.get(sched.id)
    assert not platform.registry.check_name("retrieval", "shop").has_schedule
    assert s.create_from_run(run.id, daily("again", "03:00")).name == "again"


def test_validation_rules_and_frozen_config(platform: trainyard.Platform) -> None:
    s = platform.schedules
    run = platform.training.create("m")
    with pytest.raises(ValidationError, match="must not be empty"):
        s.create_from_run(run.id, daily(""))
    with pytest.raises(ValidationError, match="must be at most 100 characters"):
        s.create_from_run(run.id, daily("x" * 101))
    past = (datetime.now(timezone.utc) - timedelta(days=30)).isoformat()
    with pytest.raises(ValidationError, match="must be in the future"):
        s.create_from_run(run.id, {"name": "once", "schedule_type": "once", "scheduled_datetime": past})
    with pytest.raises(ValidationError, match="schedule_time"):
        s.create_from_run(run.id, {"name": "no time", "schedule_type": "daily"})
    with pytest.raises(NotFound):
        s.create_from_run(999, daily("ok"))
    assert s.list() == [], "nothing stored"

    sched = s.create_from_run(run.id, daily("ok"))
    with pytest.raises(ValidationError, match="unknown field `training_params`"):
        s.edit(sched.id, {"training_params": {"epochs": 1}})  # type: ignore[typeddict-unknown-key]
    edited = s.edit(
        sched.id,
        {
            "name": "weekly now",
            "timing": {
                "schedule_type": "weekly",
                "schedule_time": "10:00",
                "schedule_day_of_week": 2,
                "schedule_timezone": "Europe/Warsaw",
            },
        },
    )
    assert edited.name == "weekly now"
    assert edited.cron == "0 10 * * 3"
    assert edited.next_run_at is not None
    assert edited.next_run_at.astimezone(edited.upcoming(1)[0].tzinfo).weekday() == 2
    assert edited.training_config == sched.training_config

    assert s.cancel(sched.id).status == "cancelled"
    with pytest.raises(Conflict, match="only active or paused schedules can be edited"):
        s.edit(sched.id, {"name": "nope"})
    with pytest.raises(Conflict, match="cannot make it Active"):
        s.resume(sched.id)


def test_pause_trigger_resume_and_stats(platform: trainyard.Platform) -> None:
    s = platform.schedules
    run = platform.training.create("m")
    sched = s.create_from_run(run.id, daily("d"))
    assert sched.total_runs == 0 and sched.success_rate is None
    paused = s.pause(sched.id)
    assert paused.status == "paused"
    with pytest.raises(Conflict):
        s.pause(sched.id)

    fired = s.trigger(sched.id)
    assert fired.outcome == "created" and fired.reason is None
    assert fired.run is not None
    assert (fired.run.status, fired.run.schedule_id, fired.run.name) == ("scheduled", sched.id, "m")
    assert fired.to_dict()["outcome"] == "created"
    assert repr(fired) == f"FireOutcome(outcome='created', run_id={fired.run.id})"

    resumed = s.resume(sched.id)
    assert resumed.status == "active" and resumed.next_run_at is not None
    assert resumed.total_runs == 1

    complete(platform, fired.run.id)
    stats = s.get(sched.id)
    assert (stats.total_runs, stats.successful_runs, stats.failed_runs) == (1, 1, 0)
    assert stats.success_rate == 100.0
    assert stats.last_run_at is not None
    assert [x.id for x in s.list()] == [sched.id]
    assert s.list("elsewhere") == []


def test_wizard_model_preview_upcoming_and_grid(platform: trainyard.Platform) -> None:
    s = platform.schedules
    at = (datetime.now(timezone.utc) + timedelta(days=2)).replace(second=30, microsecond=0)
    wizard: WizardSchedule = {
        "ml_model": "shop",
        "name": "ranker",
        "model_config": {"model_type": "ranking"},
        "schedule_type": "once",
        "scheduled_datetime": at,
        "schedule_timezone": "UTC",
    }
    once = s.create_from_wizard(wizard)
    assert once.name == "ranker - Retraining"
    model = platform.registry.get(once.registered_model_id)
    assert (model.model_name, model.model_type) == ("ranker", "ranking")
    assert once.next_run_at == at.replace(second=0), "seconds dropped"
    assert s.upcoming(once.id, 3) == [at.replace(second=0)]
    with pytest.raises(ValidationError, match="unknown variant `huge`"):
        s.create_from_wizard({**wizard, "name": "bad", "model_config": {"model_type": "huge"}})

    run = platform.training.create("solo", ml_model="shop")
    model_id = run.registered_model_id
    assert model_id is not None
    from_model = s.create_for_model(model_id, daily("from model", "05:00"))
    assert from_model.source_training_run_id == run.id
    preview = s.preview_from_run(run.id)
    assert (preview["source_run_name"], preview["source_run_number"]) == ("solo", run.run_number)
    assert preview["model_type"] == "retrieval"
    fires = s.upcoming(from_model.id, 3)
    assert len(fires) == 3 and all(f.hour == 5 for f in fires)
    assert fires == from_model.upcoming(3)[: len(fires)] or fires[0] > datetime.now(timezone.utc)
    assert len(s.grid(from_model.id)) in (279, 280, 281), "40 weeks of daily fires"
    with pytest.raises(NotFound):
        s.create_for_model(9999, daily("x"))


def test_schedule_dict_round_trip_repr_and_html(platform: trainyard.Platform) -> None:
    run = platform.training.create("m")
    sched = platform.schedules.create_from_run(run.id, daily("nightly <prod>"))
    d = sched.to_dict()
    json.dumps(d)
    assert trainyard.Schedule.from_dict(d) == sched
    assert repr(sched).startswith(
        f"Schedule(id={sched.id}, name='nightly <prod>', type='daily', cron='0 2 * * *', "
        "timezone='Europe/Warsaw', status='active', next_run_at='"
    )
    html = sched._repr_html_()
    assert "nightly &lt;prod&gt;" in html and "<prod>" not in html
    assert "<code>0 2 * * *</code>" in html
    fires = sched.upcoming(5)
    assert html.count("<li>") == 5
    assert fires[0].isoformat() in html
