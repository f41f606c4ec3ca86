"""trainyard.codegen.generate and training.compile: the generated modules and pipelines compile,
bad configs and settings are ValidationErrors."""

from __future__ import annotations

import base64
import json
import zipfile
from typing import cast
from io import BytesIO

import pytest

import trainyard
from trainyard import codegen
from trainyard.config_types import FeatureConfig, GpuConfig


def test_generates_both_modules_from_a_runs_config(platform: trainyard.Platform) -> None:
    for model_type in ("retrieval", "ranking", "multitask"):
        cfg = platform.training.create(f"m-{model_type}", {"model_config": {"model_type": model_type}}).config
        files = codegen.generate(cfg["feature_config"], cfg["model_config"], cfg["training_params"], cfg["gpu_config"])
        assert sorted(files) == sorted([codegen.TRAINER_MODULE, codegen.TRAINER_SUPPORT_MODULE, codegen.TRANSFORM_MODULE])
        for name, source in files.items():
            compile(source, name, "exec")
            assert "DO NOT EDIT" in source
        assert "def run_fn" in files[codegen.TRAINER_MODULE]
        assert "def preprocessing_fn" in files[codegen.TRANSFORM_MODULE]
        assert files == codegen.generate(cfg["feature_config"], cfg["model_config"], cfg["training_params"], cfg["gpu_config"]), "deterministic"


def test_bad_configs_name_their_field(platform: trainyard.Platform) -> None:
    cfg = platform.training.create("m").config
    bad_features = cast(FeatureConfig, {**cfg["feature_config"], "product_id_column": "no_such_column"})
    with pytest.raises(trainyard.ValidationError) as e:
        codegen.generate(bad_features, cfg["model_config"])
    assert e.value.field == "feature_config"
    # The codegen error and its source, as the __cause__ chain.
    cause = e.value.__cause__
    assert cause is not None and str(cause) == e.value.reason
    assert str(cause).startswith("invalid feature config: ")
    root = cause.__cause__
    assert root is not None and root.__cause__ is None
    assert str(cause) == f"invalid feature config: {root}"
    with pytest.raises(trainyard.ValidationError) as e:
        codegen.generate(cfg["feature_config"], cfg["model_config"], {"epochs": 0})
    assert e.value.field == "training_params"
    # Partial configs are merged over the defaults; unknown keys are still refused.
    with pytest.raises(trainyard.ValidationError) as e:
        codegen.generate(cast(FeatureConfig, {"nmae": "x"}), cfg["model_config"])
    assert e.value.field == "feature_config"
    assert "unknown field `nmae`, did you mean `name`?" in e.value.reason
    with pytest.raises(trainyard.ValidationError) as e:
        codegen.generate({}, {"model_type": "ranking"}, {"epochs": 1}, cast(GpuConfig, {"gpus": 1}))
    assert e.value.field == "gpu_config"


def test_partial_configs_are_merged_over_the_defaults(platform: trainyard.Platform) -> None:
    cfg = platform.training.create("m", {"model_config": {"model_type": "ranking"}}).config
    whole = codegen.generate(cfg["feature_config"], cfg["model_config"], cfg["training_params"], cfg["gpu_config"])
    assert codegen.generate({}, {"model_type": "ranking"}) == whole
    assert codegen.generate({}, {"model_type": "ranking"}, {}, {}) == whole


def test_pipeline_compile_local_and_vertex(platform: trainyard.Platform) -> None:
    run = platform.training.create("m", {"model_config": {"model_type": "multitask"}})
    local = platform.training.compile(run.id)
    assert {"pipeline.py", "transform_module.py", "trainer_module.py"} <= set(local)
    for name, source in local.items():
        compile(source, name, "exec")
    assert str(platform.dir) in local["pipeline.py"] and f"runs/{run.id}" in local["pipeline.py"]

    vertex = platform.training.compile(
        run.id, "vertex", pipeline_root="gs://bucket/root", project="p1", region="europe-west4"
    )
    job = json.loads(vertex["pipeline_job.json"])
    assert job["runtimeConfig"]["gcsOutputDirectory"].startswith("gs://bucket/root")
    assert job["labels"]["trainyard_run_id"] == str(run.id)
    wheels = [k for k in vertex if k.startswith("_wheels/")]
    assert len(wheels) == 2
    with zipfile.ZipFile(BytesIO(base64.b64decode(vertex[wheels[0]]))) as whl:
        assert any(n.endswith(".py") for n in whl.namelist())
    assert vertex == platform.training.compile(
        run.id, "vertex", pipeline_root="gs://bucket/root", project="p1", region="europe-west4"
    ), "deterministic"

    with pytest.raises(trainyard.ValidationError) as e:
        platform.training.compile(run.id, "vertex", pipeline_root="gs://b/r", region="europe-west4")
    # the same rule, field and message as the CLI and REST (one compile in the facade)
    assert e.value.field == "gcp.project" and "is required for the Vertex target" in e.value.reason
    with pytest.raises(trainyard.ValidationError, match='unknown target "k8s"'):
        platform.training.compile(run.id, "k8s")
    with pytest.raises(trainyard.NotFound):
        platform.training.compile(999)
