"""Notebook niceties: HTML reprs, history as a DataFrame (or dicts), plot with matplotlib."""

from __future__ import annotations

import re
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # type: ignore[import-untyped]  # noqa: E402
import pytest  # noqa: E402
from conftest import MULTITASK_METRICS, complete, config  # noqa: E402

import trainyard  # noqa: E402


def test_run_html_shows_status_stage_bar_and_metrics(platform: trainyard.Platform) -> None:
    t = platform.training
    run = t.create("hybrid <v2>", config("multitask"))
    html = run._repr_html_()
    assert "hybrid &lt;v2&gt;" in html and "<v2>" not in html
    assert ">pending</span>" in html
    cells = re.findall(r'<td class="stage stage-(\w+)" title="(\w+): ', html)
    assert [c[1] for c in cells] == [
        "compile", "examples", "stats", "schema", "transform", "train", "evaluate", "register", "deploy",
    ]
    assert [c[0] for c in cells] == ["pending"] * 8 + ["skipped"]

    t.handle_event(run.id, {"event": "stage_started", "stage": "train"})
    running = t.get(run.id)._repr_html_()
    states = re.findall(r'<td class="stage stage-(\w+)"', running)
    assert states[:5] == ["completed"] * 5 and states[5] == "running"

    done = complete(platform, run.id)._repr_html_()
    assert ">completed</span>" in done
    assert "<tr><td>rmse</td><td>0.6270</td></tr>" in done
    assert "<tr><td>recall_at_100</td><td>0.3500</td></tr>" in done
    assert "<tr><td>blessed</td><td>true</td></tr>" in done

    failed = t.create("f")
    t.handle_event(failed.id, {"event": "failed", "error": "disk <full>"})
    assert 'class="error"' in t.get(failed.id)._repr_html_()
    assert "disk &lt;full&gt;" in t.get(failed.id)._repr_html_()


def test_history_is_a_dataframe(platform: trainyard.Platform) -> None:
    run = complete(platform, platform.training.create("m", config("multitask")).id)
    frame = run.history()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == [0, 1, 2, 3]
    assert frame.index.name == "epoch"
    assert list(frame["loss"]) == MULTITASK_METRICS["loss"]["loss"]
    assert list(frame["rmse"]) == MULTITASK_METRICS["loss"]["val_rmse"]
    assert list(frame["recall_at_100"]) == MULTITASK_METRICS["loss"]["val_recall_at_100"]
    assert "val_mae" not in frame.columns, "shown as mae"
    assert str(frame["recorded_at"].dtype).startswith("datetime64")


def test_history_without_pandas_is_a_list_of_dicts(
    platform: trainyard.Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = complete(platform, platform.training.create("m", config("multitask")).id)
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now raises ImportError
    rows = run.history()
    assert isinstance(rows, list) and len(rows) == 4
    assert rows[0]["epoch"] == 0 and rows[0]["loss"] == 1.92 and rows[3]["mae"] == 0.4199
    assert empty_history(platform) == []


def empty_history(platform: trainyard.Platform) -> object:
    return platform.training.create("fresh").history()


def test_plot_draws_loss_and_recall_curves(platform: trainyard.Platform) -> None:
    run = complete(platform, platform.training.create("m", config("multitask")).id)
    fig = run.plot()
    try:
        lines = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}
        assert set(lines) == {"loss", "val_loss", "recall_at_50", "recall_at_100"}
        assert list(lines["loss"].get_xdata()) == [0, 1, 2, 3]
        assert list(lines["loss"].get_ydata()) == MULTITASK_METRICS["loss"]["loss"]
        assert list(lines["recall_at_100"].get_ydata()) == MULTITASK_METRICS["loss"]["val_recall_at_100"]
        assert "m (Training #1)" in fig.axes[0].get_title()
    finally:
        plt.close(fig)

    fig2, ax = plt.subplots()
    try:
        assert run.plot(ax=ax) is fig2
        assert {line.get_label() for line in ax.get_lines()} == {"loss", "val_loss"}
    finally:
        plt.close(fig2)
