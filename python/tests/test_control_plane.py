"""The control plane from a notebook: started in the background by the wheel, it carries a
submitted run to a registered version with no call following it. The pipeline is a stand-in
in the place of the managed env's Python (TFX component lines, training metrics, a pushed
model, a blessing), run by the real local runner."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

import trainyard

FAKE_PIPELINE = """#!/bin/sh
case "$1" in
  */modules/pipeline.py) ;;
  *) exec python3 "$@" ;;
esac
root=$(pwd)
for c in CsvExampleGen StatisticsGen SchemaGen Transform Trainer; do
  echo "INFO:absl:Component $c is running."
  [ "$c" = Trainer ] && sleep 0.5 && echo '[trainyard] EPOCH {"epoch": 1, "metrics": {"loss": 0.9}}'
  echo "INFO:absl:Component $c is finished."
done
mkdir -p "$root/Trainer/model_run/7" "$root/pushed_model/1764000000"
echo '{"loss": {"loss": [0.9]}, "final_metrics": {"test_recall_at_100": 0.4}}' > "$root/Trainer/model_run/7/training_metrics.json"
echo model > "$root/pushed_model/1764000000/saved_model.pb"
echo '[trainyard] BLESSING {"blessed": true}'
"""


@pytest.fixture
def fake_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "python"
    script.write_text(FAKE_PIPELINE)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("TRAINYARD_PYTHON", str(script))
    return script


def wait_for(platform: trainyard.Platform, run_id: int, status: str, seconds: float = 60) -> trainyard.Run:
    deadline = time.monotonic() + seconds
    while True:
        run = platform.training.get(run_id)
        if run.status == status:
            return run
        assert time.monotonic() < deadline, f"run {run_id} is {run.status}, not {status}: {run.error_message}"
        time.sleep(0.2)


def test_a_background_control_plane_carries_a_submitted_run(project: Path, fake_python: Path) -> None:
    platform = trainyard.Platform.init(project)
    assert platform.can_submit
    control = platform.start_control_plane()
    assert control.running and control.owner
    try:
        run = platform.training.create("product-recs")
        queued = platform.training.submit(run.id)
        # a running control plane has it: the call only recorded the request
        assert queued.status == "scheduled"
        done = wait_for(platform, run.id, "completed")
        assert done.to_dict()["vertex_model_version"] == "1"
        assert platform.training.history(run.id), "the epoch the pipeline reported is recorded"
    finally:
        control.stop()
    assert not control.running
    control.stop()  # twice is harmless

    # with none running, the call itself starts the pipeline and returns
    second = platform.training.create("product-recs")
    started = platform.training.submit(second.id)
    assert started.status == "running"
    assert wait_for(platform, second.id, "running").vertex_pipeline_job_id
