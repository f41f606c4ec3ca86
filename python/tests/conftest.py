"""Shared fixtures: a fresh project per test, and the pipeline events a real executor sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import trainyard

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


def config(model_type: str = "retrieval", **sections: Any) -> dict[str, Any]:
    return {"model_config": {"model_type": model_type}, **sections}


def complete(
    platform: trainyard.Platform,
    run_id: int,
    metrics: dict[str, Any] = MULTITASK_METRICS,
    blessed: bool = True,
) -> trainyard.Run:
    """Drives a run to its end as an executor would: submitted, train, epochs, completed."""
    t = platform.training
    if t.get(run_id).status != "running":
        t.handle_event(run_id, {"event": "submitted", "job_name": "jobs/j", "job_id": "j"})
    t.handle_event(run_id, {"event": "stage_started", "stage": "train"})
    return t.handle_event(
        run_id, {"event": "completed", "training_metrics": metrics, "blessed": blessed}
    )
