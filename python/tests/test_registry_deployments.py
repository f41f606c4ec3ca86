"""Registered versions, aliases and deployments through the wheel: the scenarios of
crates/trainyard/tests/deployments.rs that need no model server (every refusal happens before
a server would start). tests/test_serving_e2e.py deploys a real SavedModel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import complete, config, finished, pipeline_root

import trainyard
from trainyard import BackendError, Conflict, NotFound, ValidationError


@pytest.fixture
def platform(project: Path, monkeypatch: pytest.MonkeyPatch) -> trainyard.Platform:
    # No model server: a deploy that got past its checks would fail loudly, not start one.
    monkeypatch.setenv("TRAINYARD_SERVE_BIN", str(project / "no-such-trainyard-serve"))
    return trainyard.Platform.init(project)


def test_blessed_runs_become_versions_with_kpi_metrics(platform: trainyard.Platform, tmp_path: Path) -> None:
    v1 = finished(platform, "recs", pipeline_root(tmp_path / "r1"))
    assert (v1.status, v1.is_blessed) == ("completed", True)
    register = next(s for s in v1.stages if s["name"] == "register")
    assert register["status"] == "completed"
    copy = Path(v1.artifacts["registered_model_uri"])
    assert (copy / "saved_model.pb").read_text() == "model under r1", "the registry keeps a copy"
    model_id = v1.registered_model_id
    assert model_id is not None

    with pytest.raises(Conflict, match="already registered as version 1"):
        platform.registry.push(v1.id)

    v2 = finished(platform, "recs", pipeline_root(tmp_path / "r2"))
    versions = platform.registry.model_versions(model_id)
    assert [(v.version, v.training_run_id, v.run_number) for v in versions] == [("1", v1.id, 1), ("2", v2.id, 2)]
    first = versions[0]
    assert first.is_blessed and first.status == "completed" and first.run_name == "recs"
    assert first.metrics == {"recall_at_5": 0.05, "recall_at_10": 0.1, "recall_at_50": 0.3, "recall_at_100": 0.41}
    assert (first.aliases, first.endpoints) == ([], [])
    assert first.registered_at is not None
    assert repr(first) == f"ModelVersion(version='1', training_run_id={v1.id}, status='completed', aliases=[], endpoints=[])"
    assert trainyard.ModelVersion.from_dict(first.to_dict()) == first
    assert first.to_dict()["metrics"]["recall_at_100"] == 0.41

    model = platform.registry.get(model_id)
    assert (model.total_versions, model.latest_version_number, model.latest_version_id) == (2, "2", v2.id)
    assert platform.registry.version_run(model_id, 2) == platform.training.get(v2.id)
    assert platform.registry.version_run(model_id, "1").id == v1.id
    with pytest.raises(NotFound, match="model version"):
        platform.registry.version_run(model_id, "7")
    with pytest.raises(ValidationError, match="version number") as e:
        platform.registry.version_run(model_id, True)
    assert e.value.field == "version"
    with pytest.raises(NotFound):
        platform.registry.model_versions(999)


def test_push_refuses_runs_that_cannot_be_versions(platform: trainyard.Platform, tmp_path: Path) -> None:
    r = platform.registry
    unblessed = finished(platform, "recs", pipeline_root(tmp_path / "r1"), blessed=False)
    assert unblessed.status == "not_blessed"
    with pytest.raises(ValidationError, match="was not blessed by the evaluator") as e:
        r.push(unblessed.id)
    assert e.value.field == "training_run"

    pending = platform.training.create("recs", config(), ml_model="shop")
    with pytest.raises(ValidationError, match="only a completed, blessed run can be registered"):
        r.push(pending.id)

    # Completed and blessed, but the pipeline left no model: it was not registered on
    # completion, and an explicit push says why.
    no_model = complete(platform, platform.training.create("bare", config()).id)
    assert no_model.status == "completed"
    register = next(s for s in no_model.stages if s["name"] == "register")
    assert register["status"] != "completed"
    with pytest.raises(ValidationError, match="no pushed model"):
        r.push(no_model.id)
    with pytest.raises(NotFound, match="training run 999"):
        r.push(999)
    assert all(m.total_versions == 0 for m in r.list())


def test_aliases_move_and_their_history_is_kept(platform: trainyard.Platform, tmp_path: Path) -> None:
    r = platform.registry
    v1 = finished(platform, "recs", pipeline_root(tmp_path / "r1"))
    finished(platform, "recs", pipeline_root(tmp_path / "r2"))
    model_id = v1.registered_model_id
    assert model_id is not None
    assert r.aliases(model_id) == {}

    event = r.set_alias(model_id, "production", "1")
    assert (event.kind, event.name, event.model_version, event.training_run_id) == ("alias", "production", "1", v1.id)
    assert event.registered_model_id == model_id
    assert repr(event).startswith("RegistryEvent(kind='alias', name='production', model_version='1',")
    r.set_alias(model_id, "staging", 2)
    r.set_alias(model_id, "production", 2)
    assert r.aliases(model_id) == {"production": "2", "staging": "2"}
    assert [v.aliases for v in r.model_versions(model_id)] == [[], ["production", "staging"]]

    removed = r.remove_alias(model_id, "staging")
    assert (removed.training_run_id, removed.model_version) == (None, "")
    assert r.aliases(model_id) == {"production": "2"}
    with pytest.raises(NotFound, match="alias staging"):
        r.remove_alias(model_id, "staging")
    with pytest.raises(NotFound, match="model version"):
        r.set_alias(model_id, "production", "9")
    with pytest.raises(ValidationError, match="not a valid alias") as e:
        r.set_alias(model_id, "Prod!", "1")
    assert e.value.field == "alias"

    history = r.history(model_id)
    assert [(h.name, h.model_version) for h in history] == [
        ("production", "1"),
        ("staging", "2"),
        ("production", "2"),
        ("staging", ""),
    ]
    assert all(h.kind == "alias" for h in history)
    assert history[0].at <= history[-1].at
    assert history[0].to_dict()["kind"] == "alias"
    with pytest.raises(NotFound):
        r.history(999)


def test_model_list_with_kpis_and_filters(platform: trainyard.Platform, tmp_path: Path) -> None:
    r = platform.registry
    recs = finished(platform, "recs", pipeline_root(tmp_path / "r1"))
    platform.training.create("draft", config("ranking"), ml_model="shop")
    assert recs.registered_model_id is not None
    r.set_alias(recs.registered_model_id, "production", 1)
    platform.schedules.create_from_run(
        recs.id, {"name": "nightly", "schedule_type": "daily", "schedule_time": "02:00"}
    )

    listing = r.list_with_kpi()
    assert listing.kpi == {"total": 2, "registered": 1, "with_schedule": 1, "deployed": 0}
    assert len(listing) == 2
    by_name = {m.model_name: m for m in listing}
    row = by_name["recs"]
    assert (row.is_registered, row.has_schedule, row.schedule_status) == (True, True, "active")
    assert (row.is_deployed, row.has_active_endpoint, row.is_outdated) == (False, False, False)
    assert row.aliases == {"production": "1"}
    assert row.metrics["recall_at_100"] == 0.41
    assert row.model == r.get(recs.registered_model_id)
    assert (by_name["draft"].model_type, by_name["draft"].is_registered, by_name["draft"].metrics) == ("ranking", False, {})
    assert repr(listing) == "ModelListing(models=2, total=2, registered=1, with_schedule=1, deployed=0)"
    assert repr(row).startswith(f"ModelSummary(id={row.id}, model_name='recs', latest_version='1', is_deployed=False")
    assert listing.to_dict()["registered_models"][0]["model_name"] in {"recs", "draft"}

    assert [m.model_name for m in r.list_with_kpi(registered=False)] == ["draft"]
    assert [m.model_name for m in r.list_with_kpi(search="REC")] == ["recs"]
    assert [m.model_name for m in r.list_with_kpi(has_schedule=True)] == ["recs"]
    assert [m.model_name for m in r.list_with_kpi(model_type="ranking")] == ["draft"]
    assert r.list_with_kpi(deployed=True).kpi["total"] == 0
    assert len(r.list_with_kpi(ml_model="elsewhere")) == 0
    with pytest.raises(ValidationError, match="unknown variant"):
        r.list_with_kpi(model_type="deep")


def test_model_pages_and_find_by_name_or_id(platform: trainyard.Platform, tmp_path: Path) -> None:
    r = platform.registry
    for name in ["first", "second", "third"]:
        platform.training.create(name, config(), ml_model="shop")
    platform.training.create("first", config(), ml_model="elsewhere")

    page = r.list_page(ml_model="shop", page=1, page_size=2)
    assert [m.model_name for m in page] == ["third", "second"]  # newest first
    assert (page.page, page.page_size, page.total, page.total_pages) == (1, 2, 3, 2)
    assert (page.has_next, page.has_previous, page.kpi["total"]) == (True, False, 3)
    last = r.list_page(ml_model="shop", page=2, page_size=2)
    assert [m.model_name for m in last.registered_models] == ["first"]
    assert (last.has_next, last.has_previous, len(last)) == (False, True, 1)
    assert last.to_dict()["pagination"] == {
        "page": 2, "page_size": 2, "total": 3, "total_pages": 2, "has_next": False, "has_previous": True,
    }
    assert repr(last) == "ModelPage(page=2, page_size=2, models=1, total=3)"
    assert r.list_page().total == 4
    assert len(r.list_page(ml_model="shop", page=9)) == 0
    with pytest.raises(ValidationError, match="page_size"):
        r.list_page(page_size=101)
    with pytest.raises(ValidationError, match="page"):
        r.list_page(page=0)

    second = r.find("second")
    assert (second.model_name, second.model.ml_model) == ("second", "shop")
    assert r.find(second.id).model_name == "second"
    assert r.find(str(second.id)).id == second.id
    with pytest.raises(ValidationError, match="give its id"):
        r.find("first")  # in two model endpoints
    assert r.find("first", ml_model="elsewhere").model.ml_model == "elsewhere"
    with pytest.raises(NotFound):
        r.find("nobody")
    with pytest.raises(ValidationError, match="model id or name"):
        r.find(1.5)  # type: ignore[arg-type]

    async def main() -> None:
        found, p = await asyncio.gather(r.find_async("third"), r.list_page_async(search="sec"))
        assert found.model_name == "third"
        assert [m.model_name for m in p] == ["second"]

    asyncio.run(main())


def test_deploy_refusals_change_nothing(platform: trainyard.Platform, tmp_path: Path) -> None:
    d = platform.deployments
    run = finished(platform, "recs", pipeline_root(tmp_path / "r1"))
    pending = platform.training.create("other", config(), ml_model="shop")

    with pytest.raises(ValidationError, match=f"run {pending.id} is not registered") as e:
        d.deploy(pending.id)
    assert e.value.field == "training_run"
    with pytest.raises(NotFound, match="endpoint nope"):
        d.deploy(run.id, endpoint="nope")
    with pytest.raises(ValidationError, match="custom preset needs resources") as e:
        d.deploy(run.id, preset="custom")
    assert e.value.field == "preset"
    with pytest.raises(ValidationError, match="unknown variant `turbo`"):
        d.deploy(run.id, preset="turbo")
    with pytest.raises(ValidationError, match="unknown field `gpus`"):
        d.deploy(run.id, resources={"gpus": 2})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="more than max_instances") as e:
        d.deploy(run.id, resources={"min_instances": 5, "max_instances": 2})
    assert e.value.field == "min_instances"
    with pytest.raises(ValidationError) as e:
        d.deploy(run.id, service_name="Bad_Name")
    assert e.value.field == "service_name"
    with pytest.raises(NotFound):
        d.deploy(999)
    # A Vertex AI endpoint needs the Google Cloud backend; an unknown target is refused.
    with pytest.raises(ValidationError, match="Google Cloud backend") as e:
        d.deploy(run.id, target="vertex_endpoint")
    assert e.value.field == "target"
    with pytest.raises(ValidationError, match="unknown variant `moon`"):
        d.deploy(run.id, target="moon")

    # Past every check, the deployer is asked to inspect the model and cannot run.
    with pytest.raises(BackendError):
        d.deploy(run.id, preset="development")

    after = platform.training.get(run.id)
    assert (after.status, after.deployment_status) == ("completed", "skipped")
    assert d.endpoints() == [] and d.endpoints(run.registered_model_id) == []
    with pytest.raises(NotFound, match="endpoint nope"):
        d.undeploy("nope")
    with pytest.raises(NotFound, match="endpoint nope"):
        d.endpoint("nope")


def test_status_keeps_the_record_apart_from_the_live_state(platform: trainyard.Platform, tmp_path: Path) -> None:
    d = platform.deployments
    run = finished(platform, "recs", pipeline_root(tmp_path / "r1"))
    view = d.status(run.id)
    assert (view.training_run_id, view.run_status, view.deployment_status) == (run.id, "completed", "skipped")
    assert (view.status, view.status_error, view.has_active_endpoint, view.endpoint) == ("idle", None, False, None)
    assert repr(view) == (
        f"DeploymentView(training_run_id={run.id}, deployment_status='skipped', status='idle', "
        "has_active_endpoint=False, endpoint=None)"
    )
    assert view.to_dict()["status"] == {"state": "idle"}
    unblessed = finished(platform, "recs", pipeline_root(tmp_path / "r2"), blessed=False)
    assert d.status(unblessed.id).status == "not_blessed"
    with pytest.raises(NotFound):
        d.status(999)


def test_async_forms(platform: trainyard.Platform, tmp_path: Path) -> None:
    run = finished(platform, "recs", pipeline_root(tmp_path / "r1"))
    model_id = run.registered_model_id
    assert model_id is not None

    async def main() -> None:
        r, d = platform.registry, platform.deployments
        versions, listing, event = await asyncio.gather(
            r.model_versions_async(model_id),
            r.list_with_kpi_async(registered=True),
            r.set_alias_async(model_id, "production", "1"),
        )
        assert [v.version for v in versions] == ["1"]
        assert [m.model_name for m in listing] == ["recs"]
        assert event.name == "production"
        assert await r.aliases_async(model_id) == {"production": "1"}
        assert (await r.version_run_async(model_id, 1)).id == run.id
        assert [h.name for h in await r.history_async(model_id)] == ["production"]
        await r.remove_alias_async(model_id, "production")
        with pytest.raises(Conflict):
            await r.push_async(run.id)
        assert (await d.status_async(run.id)).status == "idle"
        assert await d.endpoints_async() == []
        with pytest.raises(NotFound):
            await d.endpoint_async("nope")
        with pytest.raises(NotFound):
            await d.undeploy_async("nope")
        with pytest.raises(ValidationError, match="not registered"):
            await d.deploy_async(platform.training.create("x", config()).id)

    asyncio.run(main())


def test_service_reprs(platform: trainyard.Platform) -> None:
    assert repr(platform.deployments) == f"DeploymentService(dir={platform.dir!r})"
    assert isinstance(platform.deployments, trainyard.DeploymentService)
