"""Training runs through the wheel: the scenarios of crates/trainyard/tests/training_service.rs."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import MULTITASK_METRICS, complete, config, pipeline_root

import trainyard
from trainyard.config_types import ConfigPatch
from trainyard import (
    BackendError,
    Conflict,
    InvalidTransition,
    MetricsError,
    NotFound,
    ValidationError,
)


def test_concurrent_creates_from_threads_number_one_to_n(platform: trainyard.Platform) -> None:
    n = 16

    def create(_: int) -> trainyard.Run:
        return platform.training.create("product-retrieval", config(), ml_model="shop")

    with ThreadPoolExecutor(max_workers=8) as pool:
        runs = list(pool.map(create, range(n)))
    assert sorted(r.run_number for r in runs) == list(range(1, n + 1))
    assert len({r.registered_model_id for r in runs}) == 1
    models = platform.registry.list("shop")
    assert len(models) == 1
    assert models[0].model_name == "product-retrieval"
    assert len(platform.registry.versions(models[0].id)) == n


def test_bad_input_is_refused_and_nothing_is_stored(platform: trainyard.Platform) -> None:
    t = platform.training
    with pytest.raises(ValidationError, match="training_params.epochs: must be between 1 and 10000") as e:
        t.create("m", config(training_params={"epochs": 0}))
    assert (e.value.field, e.value.reason) == ("training_params.epochs", "must be between 1 and 10000")
    with pytest.raises(ValidationError, match="must not be empty") as e:
        t.create("  ")
    assert e.value.field == "name"
    with pytest.raises(
        ValidationError, match="unknown field `trainig_params`, did you mean `training_params`"
    ):
        t.create("m", {"trainig_params": {"epochs": 3}})  # type: ignore[arg-type]  # the stub knows too
    with pytest.raises(ValidationError, match="unknown field `epoch`, did you mean `epochs`"):
        t.create("m", {"training_params": {"epoch": 3}})  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as e:
        t.create("m", config(training_params={"epochs": "ten"}))
    assert e.value.field == "config"
    with pytest.raises(TypeError, match="cannot pass a set"):
        t.create("m", {"model_config": {"model_type": {"retrieval"}}})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unknown variant"):
        t.create("m", config("recommender"))
    assert t.list().total == 0
    assert platform.registry.list() == []

    t.create("typed", config("retrieval"))
    with pytest.raises(Conflict, match='model "typed" is a Retrieval model'):
        t.create("typed", config("ranking"))


def test_pipeline_events_drive_status_stages_results_and_history(platform: trainyard.Platform, tmp_path: Path) -> None:
    t = platform.training
    run = t.create("hybrid", config("multitask"))
    assert (run.status, run.current_stage, run.run_number) == ("pending", "compile", 1)
    t.mark_submitting(run.id)
    r = t.handle_event(run.id, {"event": "submitted", "job_name": "projects/p/jobs/j", "job_id": "j"})
    assert r.status == "running"
    assert r.vertex_pipeline_job_id == "j"
    assert r.current_stage == "examples"

    t.handle_event(run.id, {"event": "stage_started", "stage": "train"})
    for epoch in range(2):
        t.handle_event(
            run.id,
            {"event": "epoch_completed", "epoch": epoch, "metrics": {"loss": 2.0 - epoch, "val_rmse": 0.9}},
        )
    assert [h["epoch"] for h in t.history(run.id)] == [0, 1]

    done = t.handle_event(
        run.id,
        {
            "event": "completed",
            "training_metrics": MULTITASK_METRICS,
            "blessed": True,
            "artifacts": {"pipeline_root": str(pipeline_root(tmp_path / "root"))},
        },
    )
    assert done.status == "completed"
    assert done.rmse == pytest.approx(0.6270)
    assert done.results["test_mae"] == pytest.approx(0.4124)
    assert done.results["recall_at_100"] == pytest.approx(0.35)
    assert done.is_blessed is True
    assert done.current_stage is None
    assert [s["status"] for s in done.stages][-1] == "skipped"
    assert all(s["status"] in ("completed", "skipped") for s in done.stages)
    assert done.duration_seconds is not None and done.duration_seconds >= 0
    history = t.history(run.id)
    assert len(history) == 4
    assert history[3]["rmse"] == pytest.approx(0.6270)

    with pytest.raises(Conflict, match="is completed; stage report ignored"):
        t.handle_event(run.id, {"event": "stage_started", "stage": "train"})
    assert t.get(run.id) == done


def test_unblessed_failed_and_bad_metrics(platform: trainyard.Platform) -> None:
    t = platform.training
    a = t.create("a", config("ranking"))
    t.mark_submitting(a.id)
    assert a.mlflow_run_id is None
    a = t.handle_event(
        a.id,
        {
            "event": "completed",
            "training_metrics": {"loss": {"val_rmse": [1.2]}, "mlflow": {"run_id": "0a52a83ba1c8481dba623ae5486c457c"}},
            "blessed": False,
        },
    )
    assert a.mlflow_run_id == "0a52a83ba1c8481dba623ae5486c457c"
    assert a.status == "not_blessed"
    assert a.rmse == 1.2
    assert {s["name"]: s["status"] for s in a.stages}["register"] == "skipped"

    b = t.create("b", config())
    t.mark_submitting(b.id)
    t.handle_event(b.id, {"event": "stage_started", "stage": "transform"})
    b = t.handle_event(b.id, {"event": "failed", "error": "OOM in Transform"})
    assert b.status == "failed"
    assert b.error_message == "OOM in Transform"
    assert {s["name"]: s["status"] for s in b.stages}["transform"] == "failed"

    c = t.create("c", config("ranking"))
    t.mark_submitting(c.id)
    with pytest.raises(MetricsError, match="`loss.val_rmse` must be an array of numbers") as e:
        t.handle_event(
            c.id, {"event": "completed", "training_metrics": {"loss": {"val_rmse": 3}}, "blessed": True}
        )
    assert isinstance(e.value, ValidationError)
    assert t.get(c.id).status == "submitting"

    with pytest.raises(ValidationError, match="unknown variant `exploded`"):
        t.handle_event(c.id, {"event": "exploded"})
    with pytest.raises(ValidationError, match="unknown variant `polish`"):
        t.handle_event(c.id, {"event": "stage_started", "stage": "polish"})


def test_cancel_rerun_and_edit(platform: trainyard.Platform) -> None:
    t = platform.training
    run = t.create(
        "weekly-model",
        config(
            schedule_config={
                "schedule_type": "weekly",
                "schedule_time": "09:00",
                "schedule_day_of_week": 0,
                "schedule_timezone": "Europe/Warsaw",
                "cloud_scheduler_job_name": "projects/p/locations/europe-central2/jobs/j1",
            }
        ),
    )
    patch: ConfigPatch = {"training_params": {"epochs": 300}}
    with pytest.raises(Conflict, match="only a run whose training has finished can be rerun"):
        t.rerun(run.id)
    with pytest.raises(Conflict, match="can be edited once training has finished"):
        t.patch_config(run.id, patch)

    cancelled = t.cancel(run.id)
    assert cancelled.status == "cancelled"
    assert all(s["status"] != "pending" for s in cancelled.stages)
    with pytest.raises(InvalidTransition, match="event `cancel` is not allowed for a run that is cancelled") as e:
        t.cancel(run.id)
    assert (e.value.from_status, e.value.event) == ("cancelled", "cancel")

    view, changed = t.patch_config(run.id, patch)
    assert changed == ["training_params"]
    assert view["training_params"]["epochs"] == 300
    assert (view["id"], view["name"]) == (run.id, "weekly-model")
    assert t.patch_config(run.id, patch)[1] == []
    assert t.config(run.id)["training_params"]["epochs"] == 300
    with pytest.raises(ValidationError, match="unknown field `model_config`"):
        t.patch_config(run.id, {"model_config": {"model_type": "ranking"}})  # type: ignore[typeddict-unknown-key]
    with pytest.raises(ValidationError, match="gpu_config.gpu_count"):
        t.patch_config(run.id, {"gpu_config": {"gpu_enabled": True, "gpu_count": 3}})

    again = t.rerun(run.id, submit=False)
    assert again.name == run.name
    assert again.run_number == run.run_number + 1
    assert again.registered_model_id == run.registered_model_id
    assert again.status == "pending"
    assert again.description == f"Re-run of Training #{run.run_number}"
    assert again.config["training_params"]["epochs"] == 300
    assert "cloud_scheduler_job_name" not in again.config["schedule_config"]
    assert again.config["schedule_config"]["schedule_time"] == "09:00"

    with pytest.raises(NotFound, match="training run 999 not found") as missing:
        t.get(999)
    assert (missing.value.entity, missing.value.id) == ("training run", "999")
    with pytest.raises(NotFound):
        t.cancel(999)


def test_submit_without_a_managed_env_is_refused_and_changes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRAINYARD_PYTHON", raising=False)
    platform = trainyard.Platform.init(project)
    assert not platform.can_submit
    run = platform.training.create("m")
    with pytest.raises(Conflict, match="no managed Python env"):
        platform.training.submit(run.id)
    assert platform.training.get(run.id).status == "pending"


def test_local_runner_submits_and_follows(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Submit and follow through the local runner. The interpreter here has no TFX, so the
    pipeline starts and fails at its first import: the failure comes back as the run's."""
    monkeypatch.delenv("TRAINYARD_PYTHON", raising=False)
    platform = trainyard.Platform.init(project)
    with pytest.raises(ValidationError, match="no managed Python env") as e:
        platform.with_local_runner()
    assert e.value.field == "local.python"
    monkeypatch.setenv("TRAINYARD_PYTHON", sys.executable)
    local = platform.with_local_runner()
    assert (platform.can_submit, local.can_submit, local.backend) == (False, True, "local")

    run = local.training.create("m")
    submitted = local.training.submit(run.id)
    assert submitted.status == "running"
    assert submitted.vertex_pipeline_job_id
    done = local.training.follow(run.id, poll=0.1, timeout=60)
    assert done.status == "failed"
    assert done.error_message is not None and "No module named" in done.error_message
    assert any(s["status"] == "failed" for s in done.stages)
    with pytest.raises(ValidationError, match="poll: must be between"):
        local.training.follow(run.id, poll=0)


def test_backends(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAINYARD_GCP_PROJECT", raising=False)
    trainyard.Platform.init(project)
    with pytest.raises(ValidationError, match="unknown variant `azure`"):
        trainyard.Platform.open(project, backend="azure")
    with pytest.raises(ValidationError, match="gcp.project: is required") as e:
        trainyard.Platform.open(project, backend="gcp")
    assert e.value.field == "gcp"
    assert repr(trainyard.Platform.open(project)).endswith("ml_model='default', backend='local')")


def test_list_filters_and_pages(platform: trainyard.Platform) -> None:
    t = platform.training
    for i in range(5):
        t.create(f"retrieval-{i % 2}", config())
    ranker = t.create("ranker", config("ranking"))
    t.cancel(ranker.id)
    page = t.list()
    assert (page.total, len(page), page.page, page.page_size) == (6, 6, 1, 20)
    assert [r.run_number for r in page] == [6, 5, 4, 3, 2, 1], "newest first"
    assert t.list(status="cancelled").total == 1
    assert t.list(status=["pending", "cancelled"]).total == 6
    assert t.list(model_type="ranking").runs[0].name == "ranker"
    assert t.list(search="RETRIEVAL-1").total == 2
    assert t.list(registered_model_id=ranker.registered_model_id).total == 1
    assert t.list(ml_model="elsewhere").total == 0
    second = t.list(page=2, page_size=4)
    assert (second.total, len(second.runs)) == (6, 2)
    kpi = t.list(status="cancelled").kpi
    assert kpi["total"] == 6 and kpi["by_status"] == {"pending": 5, "cancelled": 1}
    with pytest.raises(ValidationError, match='unknown status "done"'):
        t.list(status="done")
    with pytest.raises(ValidationError, match="pages are numbered from 1"):
        t.list(page=0)
    with pytest.raises(ValidationError):
        t.list(model_type="deep")


def test_run_dict_round_trip_and_repr(platform: trainyard.Platform, tmp_path: Path) -> None:
    run = complete(platform, platform.training.create("m", config("multitask")).id, root=pipeline_root(tmp_path / "r"))
    d = run.to_dict()
    json.dumps(d)  # JSON-shaped
    assert d["status"] == "completed" and d["run_number"] == 1
    again = trainyard.Run.from_dict(d)
    assert again == run
    assert again.created_at == run.created_at and run.created_at.tzinfo is not None
    assert repr(run) == "Run(id=1, ml_model='default', name='m', run_number=1, status='completed', stage=None)"
    with pytest.raises(BackendError, match="not bound to a platform"):
        again.history()
    with pytest.raises(ValidationError):
        trainyard.Run.from_dict({"id": 1})


def test_check_name_and_reopen(project: Path, tmp_path: Path) -> None:
    p = trainyard.Platform.init(project)
    c = p.registry.check_name("x", "shop")
    assert not c.exists and c.registered_model_id is None
    run_id = p.training.create("x", ml_model="shop").id
    p2 = trainyard.Platform.open(project)
    c = p2.registry.check_name("x", ml_model="shop")
    assert c.exists and not c.has_schedule
    assert c.to_dict() == {"exists": True, "registered_model_id": c.registered_model_id, "has_schedule": False, "schedule_id": None}
    assert p2.training.get(run_id).name == "x"

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValidationError, match="trainyard init"):
        trainyard.Platform.open(empty)
    (empty / "trainyard.toml").write_text("[store]\nsqlite_pth = 1\n")
    with pytest.raises(ValidationError, match="trainyard.toml"):
        trainyard.Platform.open(str(empty))
    (empty / "trainyard.toml").write_text('[project]\nml_model = "shop"\n')
    # A config without its database is not silently given an empty one: `init` makes it.
    with pytest.raises(trainyard.StorageError, match="trainyard init"):
        trainyard.Platform.open(empty)
    assert not (empty / "trainyard.db").exists()
    trainyard.Platform.init(empty)
    assert trainyard.Platform.open(empty).ml_model == "shop"
    by_file = trainyard.Platform.open(empty / "trainyard.toml")
    assert (by_file.ml_model, by_file.dir) == ("shop", str(empty))
    (empty / "other.toml").write_text("")
    with pytest.raises(ValidationError, match="is a file; pass a project directory or its trainyard.toml"):
        trainyard.Platform.open(empty / "other.toml")
