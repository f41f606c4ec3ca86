"""Shared fixtures: a fresh project per test, and the pipeline events a real executor sends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, cast

import pytest

import trainyard
from trainyard.config_types import RunConfig

# crates/trainyard-core/tests/fixtures/multitask_training_metrics.json (same numbers).
MULTITASK_METRICS: dict[str, Any] = json.loads(
    """
{
  "loss": {
    "loss": [1.92, 1.41, 1.18, 1.07],
    "val_loss": [1.75, 1.36, 1.22, 1.15],
    "val_rmse": [0.83, 0.77, 0.6512, 0.6270],
    "val_mae": [0.58, 0.52, 0.4381, 0.4199],
    "val_recall_at_50": [0.11, 0.19, 0.24, 0.26],
    "val_recall_at_100": [0.18, 0.27, 0.33, 0.35]
  },
  "final_metrics": {
    "test_rmse": 0.6071,
    "test_mae": 0.4124,
    "final_val_rmse": 0.6270,
    "final_val_mae": 0.4199
  }
}
"""
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return tmp_path / "project"


@pytest.fixture
def platform(project: Path) -> trainyard.Platform:
    return trainyard.Platform.init(project)


def config(model_type: str = "retrieval", **sections: Any) -> RunConfig:
    return cast(RunConfig, {"model_config": {"model_type": model_type}, **sections})


def complete(
    platform: trainyard.Platform,
    run_id: int,
    metrics: dict[str, Any] = MULTITASK_METRICS,
    blessed: bool = True,
    root: Path | None = None,
) -> trainyard.Run:
    """Drives a run to its end as an executor would: submitted, train, epochs, completed.
    With `root` (see pipeline_root) a blessed run is registered on completion; without one
    its registration finds no model and the register stage stays pending."""
    t = platform.training
    if t.get(run_id).status != "running":
        t.handle_event(run_id, {"event": "submitted", "job_name": "jobs/j", "job_id": "j"})
    t.handle_event(run_id, {"event": "stage_started", "stage": "train"})
    artifacts = {} if root is None else {"pipeline_root": str(root)}
    return t.handle_event(
        run_id, {"event": "completed", "training_metrics": metrics, "blessed": blessed, "artifacts": artifacts}
    )


RETRIEVAL_METRICS: dict[str, Any] = {
    "loss": {"loss": [1.0, 0.5]},
    "final_metrics": {
        "test_recall_at_100": 0.41,
        "test_recall_at_50": 0.3,
        "test_recall_at_10": 0.1,
        "test_recall_at_5": 0.05,
    },
}


def pipeline_root(root: Path, saved_model: Path | None = None) -> Path:
    """A pipeline root as TFX's Pusher leaves it: pushed_model/<digits>/saved_model.pb. With
    `saved_model` (a SavedModel folder) that model is copied in; otherwise a marker file
    stands in for it (enough for the filesystem registry, which copies and checksums)."""
    version = root / "pushed_model" / "1764000000"
    if saved_model is not None:
        shutil.copytree(saved_model, version)
    else:
        (version / "variables").mkdir(parents=True)
        (version / "saved_model.pb").write_text(f"model under {root.name}")
        (version / "variables" / "variables.index").write_bytes(b"i")
    return root


def finished(
    platform: trainyard.Platform,
    name: str,
    root: Path | None,
    blessed: bool = True,
    ml_model: str = "shop",
    deploy: bool = False,
) -> trainyard.Run:
    """A retrieval run fed the events of a finished pipeline whose artifacts are under `root`
    (a blessed one is registered on completion, as the Rust facade does)."""
    t = platform.training
    run = t.create(name, config(deployment_config={"enabled": deploy}), ml_model=ml_model)
    t.handle_event(run.id, {"event": "submitted", "job_name": "local/j", "job_id": "j"})
    artifacts = {} if root is None else {"pipeline_root": str(root)}
    return t.handle_event(
        run.id,
        {"event": "completed", "training_metrics": RETRIEVAL_METRICS, "blessed": blessed, "artifacts": artifacts},
    )
