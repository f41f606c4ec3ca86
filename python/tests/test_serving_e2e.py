"""End to end through the wheel: a real SavedModel (exported by scripts/serve-export-models.py,
1,000 string product ids, no training) registered from a finished run, deployed as a
trainyard-serve process by platform.deployments, asked with trainyard.predict, undeployed.

Needs TRAINYARD_SERVE_BIN (target/debug/trainyard-serve), TRAINYARD_PYTHON (the managed env:
the server loads TensorFlow's C library from its wheel) and TRAINYARD_SERVE_TEST_MODELS (the
export's output); `make test-python` provides all three and skips nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import finished, pipeline_root

import trainyard
from trainyard import BackendError, Conflict, ValidationError

NEEDS = ("TRAINYARD_SERVE_BIN", "TRAINYARD_PYTHON", "TRAINYARD_SERVE_TEST_MODELS")
missing = [n for n in NEEDS if not os.environ.get(n) or not Path(os.environ[n]).exists()]
pytestmark = pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (make test-python sets them)")


def test_deploy_a_real_saved_model_and_predict(tmp_path: Path) -> None:
    models = Path(os.environ.get("TRAINYARD_SERVE_TEST_MODELS", ""))
    expected: dict[str, Any] = json.loads((models / "expected.json").read_text())
    catalog = set(expected["catalog"])
    platform = trainyard.Platform.init(tmp_path / "project")
    d = platform.deployments

    run = finished(platform, "shop-recs", pipeline_root(tmp_path / "r1", models / "bf" / "1"))
    assert run.status == "completed" and run.registered_model_id is not None
    # Another model's version (the same SavedModel) and one indexing int64 vocabulary
    # indices instead of product ids.
    other = finished(platform, "other-recs", pipeline_root(tmp_path / "r2", models / "bf" / "1"))
    bad = finished(platform, "index-recs", pipeline_root(tmp_path / "r3", models / "bad" / "1"))

    deployed = d.deploy(run.id, preset="development")
    try:
        assert (deployed.status, deployed.deployment_status) == ("deployed", "deployed")
        ep = d.endpoint("shop-recs-serving")
        assert (ep.is_active, ep.serving, ep.deployed_version, ep.deployed_training_run_id) == (True, True, "1", run.id)
        assert ep.deployment_config["preset"] == "development"
        assert ep.service_url.startswith("http://127.0.0.1:")

        instances = expected["instances"][:3]
        predictions = trainyard.predict(ep.service_url, instances)
        assert len(predictions) == 3
        for got, want in zip(predictions, expected["models"]["bf"][:3]):
            ids, scores = got["product_ids"], got["scores"]
            assert len(ids) == expected["k"] and all(isinstance(i, str) and i in catalog for i in ids)
            assert scores == sorted(scores, reverse=True), "scores descend"
            assert ids == want["product_ids"], "the answer Python gets from the same SavedModel"
            assert scores == pytest.approx(want["scores"], abs=1e-4)
        with pytest.raises(ValidationError) as e:
            trainyard.predict(ep.service_url, [{**instances[0], "customer_id": 12}])
        assert e.value.field == "instances" and "400" in str(e.value)

        view = d.status(run.id)
        assert (view.deployment_status, view.status, view.has_active_endpoint) == ("deployed", "deployed", True)
        assert view.endpoint is not None and view.endpoint.serving is True
        assert [v.endpoints for v in platform.registry.model_versions(run.registered_model_id)] == [["shop-recs-serving"]]
        listing = platform.registry.list_with_kpi(deployed=True)
        assert [(m.model_name, m.has_active_endpoint) for m in listing] == [("shop-recs", True)]

        # Refusals before anything changes: another model's endpoint, a model serving indices.
        with pytest.raises(Conflict, match="belongs to another registered model"):
            d.deploy(other.id, endpoint="shop-recs-serving")
        with pytest.raises(Conflict, match="belongs to another registered model"):
            d.deploy(other.id, service_name="shop-recs-serving")
        with pytest.raises(ValidationError) as e:
            d.deploy(bad.id)
        assert e.value.field == "model"
        for r in (other, bad):
            assert platform.training.get(r.id).status == "completed"
        assert [x.service_name for x in d.endpoints()] == ["shop-recs-serving"]
    finally:
        gone = d.undeploy("shop-recs-serving")
    assert (gone.is_active, gone.serving) == (False, False)
    assert (platform.training.get(run.id).status, d.status(run.id).status) == ("completed", "idle")
    with pytest.raises(BackendError):
        trainyard.predict(ep.service_url, instances, timeout=5)
    events = [(h.kind, h.name, h.model_version) for h in platform.registry.history(run.registered_model_id)]
    assert events == [("endpoint", "shop-recs-serving", "1"), ("endpoint", "shop-recs-serving", "")]
