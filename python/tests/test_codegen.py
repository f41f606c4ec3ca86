"""trainyard.codegen.generate: the generated modules compile, bad configs are ValidationErrors."""

from __future__ import annotations

import pytest

import trainyard
from trainyard import codegen


def test_generates_both_modules_from_a_runs_config(platform: trainyard.Platform) -> None:
    for model_type in ("retrieval", "ranking", "multitask"):
        cfg = platform.training.create(f"m-{model_type}", {"model_config": {"model_type": model_type}}).config
        files = codegen.generate(cfg["feature_config"], cfg["model_config"], cfg["training_params"], cfg["gpu_config"])
        assert sorted(files) == [codegen.TRAINER_MODULE, codegen.TRANSFORM_MODULE]
        for name, source in files.items():
            compile(source, name, "exec")
            assert "DO NOT EDIT" in source
        assert "def run_fn" in files[codegen.TRAINER_MODULE]
        assert "def preprocessing_fn" in files[codegen.TRANSFORM_MODULE]
        assert files == codegen.generate(cfg["feature_config"], cfg["model_config"], cfg["training_params"], cfg["gpu_config"]), "deterministic"


def test_bad_configs_name_their_field(platform: trainyard.Platform) -> None:
    cfg = platform.training.create("m").config
    bad_features = {**cfg["feature_config"], "product_id_column": "no_such_column"}
    with pytest.raises(trainyard.ValidationError) as e:
        codegen.generate(bad_features, cfg["model_config"])
    assert e.value.field == "feature_config"
    with pytest.raises(trainyard.ValidationError) as e:
        codegen.generate(cfg["feature_config"], cfg["model_config"], {"epochs": 0})
    assert e.value.field == "training_params"
    with pytest.raises(trainyard.ValidationError) as e:
        codegen.generate({"name": "x"}, cfg["model_config"])
    assert e.value.field == "feature_config"
