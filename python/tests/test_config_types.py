"""trainyard.config_types (generated from the REST API's schemas, see scripts/gen-config-types.py)
names exactly the keys the Python API takes and gives back."""

from __future__ import annotations

import typing
from typing import Any

from conftest import complete, config

import trainyard
from trainyard import config_types as ct


def keys(typed_dict: Any) -> set[str]:
    return set(typed_dict.__required_keys__) | set(typed_dict.__optional_keys__)


def test_run_config_and_its_sections_are_the_keys_of_a_run_config(platform: trainyard.Platform) -> None:
    run = platform.training.create("m", config())
    assert keys(ct.RunConfig) == set(run.config)
    hints = typing.get_type_hints(ct.RunConfig)
    for section, value in run.config.items():
        assert keys(hints[section]) == set(value), section
    assert keys(ct.ConfigPatch) < keys(ct.RunConfig)
    assert keys(ct.DeploymentConfig) == set(run.config["deployment_config"])
    # A nested part: a tower.
    tower = typing.get_type_hints(ct.ModelConfig)["buyer_tower"]
    assert set(run.config["model_config"]["buyer_tower"]) == keys(tower)


def test_schedule_types_are_what_the_schedule_service_takes(platform: trainyard.Platform) -> None:
    timing: ct.ScheduleTiming = {"schedule_type": "daily", "schedule_time": "03:00", "schedule_timezone": "UTC"}
    assert ct.ScheduleTiming.__required_keys__ == frozenset({"schedule_type"})
    new: ct.NewSchedule = {"name": "nightly", "description": "d", "catch_up": "skip", "concurrency": "queue", **timing}
    assert ct.NewSchedule.__required_keys__ == frozenset({"name", "schedule_type"})
    run = complete(platform, platform.training.create("m", config()).id)
    schedule = platform.schedules.create_from_run(run.id, new)
    assert keys(ct.ScheduleTiming) == set(schedule.timing)
    edit: ct.ScheduleEdit = {
        "name": "renamed",
        "description": "e",
        "catch_up": "once",
        "concurrency": "skip",
        "timing": {"schedule_type": "weekly", "schedule_time": "04:00", "schedule_day_of_week": 1},
    }
    assert keys(ct.ScheduleEdit) == set(edit), "every key, each accepted below"
    edited = platform.schedules.edit(schedule.id, edit)
    assert (edited.name, edited.catch_up, edited.schedule_type) == ("renamed", "once", "weekly")
    # Enums are Literals of the schema's values.
    assert typing.get_args(typing.get_type_hints(ct.NewSchedule)["concurrency"]) == ("skip", "queue", "allow")
