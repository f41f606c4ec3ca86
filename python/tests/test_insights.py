"""platform.insights through the wheel: the scenarios of crates/trainyard/tests/insights.rs
(backfill, logs, runs without pipeline outputs) plus statistics and schema read from files
this test writes the way StatisticsGen and SchemaGen do: FeatureStats.pb is encoded here in
protobuf's wire format from rows whose statistics are computed independently, so the
summary the wheel returns is checked against the rows, not against itself."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import statistics as pystats
import struct
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Any, Optional, TypeVar

import pytest
from conftest import MULTITASK_METRICS, complete, config, pipeline_root

import trainyard
from trainyard import BackfillReport, NotFound, ValidationError

T = TypeVar("T")


def awaited(start: Callable[[], Awaitable[T]]) -> T:
    """Runs an `*_async` call on an event loop (the awaitable needs a running loop)."""

    async def main() -> T:
        return await start()

    return asyncio.run(main())


RESULT_COLUMNS = (
    "recall_at_5",
    "recall_at_10",
    "recall_at_50",
    "recall_at_100",
    "rmse",
    "mae",
    "test_rmse",
    "test_mae",
    "final_loss",
)


def edit_stored_run(project: Path, run_id: int, **changes: Any) -> None:
    """Rewrites fields of a stored run behind the platform's back, as an old release or a
    manual fix would have left them (the store keeps each run as JSON plus a version)."""
    with sqlite3.connect(project / "trainyard.db") as db:
        data, version = db.execute("SELECT data, version FROM training_runs WHERE id = ?", (run_id,)).fetchone()
        run = json.loads(data)
        run.update(changes)
        run["version"] = version + 1
        db.execute(
            "UPDATE training_runs SET data = ?, version = ? WHERE id = ?", (json.dumps(run), version + 1, run_id)
        )


def results(run: trainyard.Run) -> dict[str, Optional[float]]:
    d = run.to_dict()
    return {c: d[c] for c in RESULT_COLUMNS}


def finished(platform: trainyard.Platform, name: str, model_type: str) -> int:
    run = platform.training.create(name, config(model_type), ml_model="shop")
    complete(platform, run.id)
    return run.id


def test_backfill_restores_blanked_results_and_dry_run_changes_nothing(
    platform: trainyard.Platform, project: Path
) -> None:
    t = platform.training
    multitask = finished(platform, "mt", "multitask")
    ranking = finished(platform, "rk", "ranking")
    original = results(t.get(multitask))
    assert original["rmse"] == 0.627 and original["test_mae"] == 0.4124
    blank = {c: None for c in RESULT_COLUMNS}
    edit_stored_run(project, multitask, **blank)
    edit_stored_run(project, ranking, **blank)
    # a run whose stored history is broken, and a pending run (not trained: not considered)
    broken = finished(platform, "broken", "ranking")
    edit_stored_run(project, broken, training_history_json={"loss": {"val_rmse": "oops"}})
    t.create("pending", ml_model="shop")
    assert results(t.get(multitask)) == blank

    insights = platform.insights
    dry = insights.backfill(dry_run=True)
    assert isinstance(dry, BackfillReport)
    assert (dry.dry_run, dry.found, dry.updated, dry.skipped, dry.errors) == (True, 3, 2, 0, 1)
    assert results(t.get(multitask)) == blank, "dry_run wrote nothing"
    assert results(t.get(ranking)) == blank
    first = dry.items[0]
    assert (first["run_id"], first["outcome"], first["model_type"]) == (multitask, "updated", "multitask")
    assert first["changes"]["rmse"] == original["rmse"]
    assert set(first["changes"]) == {c for c, v in original.items() if v is not None}

    report = insights.backfill()
    assert (report.updated, report.skipped, report.errors) == (2, 0, 1)
    assert report.summary == "Completed: 2 updated, 0 skipped, 1 errors"
    assert results(t.get(multitask)) == original, "every result column is back"
    rk = results(t.get(ranking))
    assert (rk["rmse"], rk["mae"]) == (original["rmse"], original["mae"])
    assert rk["recall_at_100"] is None, "ranking has no recall"
    error = report.items[2]
    assert (error["run_id"], error["outcome"]) == (broken, "error")
    assert "val_rmse" in error["message"]
    assert report.to_dict()["items"] == report.items

    # again: nothing left to fill; force re-extracts a value that drifted
    again = awaited(lambda: insights.backfill_async())
    assert (again.updated, again.skipped) == (0, 2)
    assert all("already set" in i["reason"] for i in again.items if i["outcome"] == "skipped")
    edit_stored_run(project, multitask, rmse=9.0)
    assert insights.backfill().updated == 0, "without force a set value is kept"
    assert t.get(multitask).to_dict()["rmse"] == 9.0
    forced = insights.backfill(force=True, dry_run=True)
    assert forced.updated == 1 and forced.items[0]["changes"] == {"rmse": original["rmse"]}
    assert t.get(multitask).to_dict()["rmse"] == 9.0
    assert insights.backfill(force=True).updated == 1
    assert t.get(multitask).to_dict()["rmse"] == original["rmse"]


def test_logs_of_a_local_run_its_components_and_the_run_record(platform: trainyard.Platform, tmp_path: Path) -> None:
    root = pipeline_root(tmp_path / "root")
    (root / "logs").mkdir()
    (root / "pipeline.log").write_text("INFO running StatisticsGen\nINFO running Trainer\n")
    (root / "logs" / "Trainer.log").write_text("Epoch 1/2\nEpoch 2/2\n")
    (root / "logs" / "StatisticsGen.log").write_text("stats done\n")
    run = platform.training.create("with-logs", config(), ml_model="shop")
    complete(platform, run.id, root=root)

    insights = platform.insights
    logs = insights.logs(run.id)
    assert logs.source == str(root / "pipeline.log")
    assert logs.text == "INFO running StatisticsGen\nINFO running Trainer\n"
    assert str(logs) == logs.text
    assert logs.components == ["StatisticsGen", "Trainer"]
    assert logs.component is None
    trainer = insights.logs(run.id, component="trainer")  # component names match in any case
    assert (trainer.text, trainer.component) == ("Epoch 1/2\nEpoch 2/2\n", "trainer")
    assert trainer.source == str(root / "logs" / "Trainer.log")
    # the log is read again on every call (a running pipeline appends to it)
    with open(root / "pipeline.log", "a") as f:
        f.write("INFO done\n")
    assert awaited(lambda: insights.logs_async(run.id)).text.endswith("INFO done\n")
    with pytest.raises(NotFound, match="logs of StatisticsGen, Trainer") as e:
        insights.logs(run.id, "Evaluator")
    assert e.value.entity == "component log"
    assert insights.logs(run.id, "").source == logs.source, "an empty component is the whole pipeline"

    # no log files (a Vertex run, or one not started here): what the run record knows
    remote = platform.training.create("no-files", config("multitask"), ml_model="shop")
    complete(platform, remote.id)
    record = insights.logs(remote.id)
    assert (record.source, record.components) == ("run record", [])
    assert "Train: Completed" in record.text
    with pytest.raises(NotFound, match="no per-component logs"):
        insights.logs(remote.id, "Trainer")


def test_runs_without_outputs_and_unknown_runs_are_not_found(platform: trainyard.Platform, tmp_path: Path) -> None:
    insights = platform.insights
    run = platform.training.create("bare", config("multitask"), ml_model="shop")
    complete(platform, run.id, root=pipeline_root(tmp_path / "root"))
    with pytest.raises(NotFound, match="StatisticsGen") as e:
        insights.statistics(run.id)
    assert e.value.id == str(run.id)
    with pytest.raises(NotFound, match="SchemaGen"):
        insights.schema(run.id)
    with pytest.raises(NotFound, match="SchemaGen"):
        awaited(lambda: insights.schema_async(run.id))
    # the fixture predates weight statistics: an empty history, not an error
    w = insights.weight_stats(run.id)
    assert (w.epochs, w.towers, w.norms, len(w)) == ([], [], {}, 0)
    # a run that never trained has no history at all
    pending = platform.training.create("pending", ml_model="shop")
    with pytest.raises(NotFound, match="training history"):
        insights.weight_stats(pending.id)

    for call in (
        lambda: insights.statistics(9999),
        lambda: insights.schema(9999),
        lambda: insights.weight_stats(9999),
        lambda: insights.logs(9999),
    ):
        with pytest.raises(NotFound) as e:
            call()
        assert (e.value.entity, e.value.id) == ("training run", "9999")
    with pytest.raises(ValidationError) as ve:
        insights.weight_stats(run.id, epoch=-1)
    assert ve.value.field == "epoch"


# --- protobuf wire format, enough for DatasetFeatureStatisticsList (tensorflow_metadata
# statistics.proto; field numbers as in crates/trainyard-insights/src/proto.rs) ---


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int(field: int, n: int) -> bytes:
    return _varint(field << 3) + _varint(n)


def _double(field: int, x: float) -> bytes:
    return _varint(field << 3 | 1) + struct.pack("<d", x)


def _float(field: int, x: float) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<f", x)


def _bytes(field: int, b: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(b)) + b


def _common(values: list[Any]) -> bytes:
    present = [v for v in values if v is not None]
    return (
        _int(1, len(present))  # num_non_missing
        + _int(2, len(values) - len(present))  # num_missing
        + _int(3, 1)  # min_num_values
        + _int(4, 1)  # max_num_values
        + _float(5, 1.0)  # avg_num_values
        + _int(8, len(present))  # tot_num_values
    )


def numeric_feature(name: str, values: list[Optional[float]], buckets: int = 2) -> bytes:
    xs = [v for v in values if v is not None]
    lo, hi = min(xs), max(xs)
    width = (hi - lo) / buckets
    hist = b""
    for i in range(buckets):
        a, b = lo + i * width, lo + (i + 1) * width
        n = sum(1 for x in xs if a <= x < b or (i == buckets - 1 and x == b))
        hist += _bytes(3, _double(1, a) + _double(2, b) + _double(4, float(n)))
    num_stats = (
        _bytes(1, _common(values))
        + _double(2, pystats.fmean(xs))
        + _double(3, pystats.pstdev(xs))
        + _int(4, sum(1 for x in xs if x == 0))
        + _double(5, lo)
        + _double(6, pystats.median(xs))
        + _double(7, hi)
        + _bytes(8, hist)  # a STANDARD histogram (type 0, the default)
    )
    return _bytes(1, name.encode()) + _int(2, 1) + _bytes(3, num_stats)  # type FLOAT


def string_feature(name: str, values: list[Optional[str]]) -> bytes:
    xs = [v for v in values if v is not None]
    counts = {v: xs.count(v) for v in sorted(set(xs))}
    top = b"".join(_bytes(3, _bytes(2, v.encode()) + _double(3, float(n))) for v, n in counts.items())
    string_stats = (
        _bytes(1, _common(values))
        + _int(2, len(counts))
        + top
        + _float(4, sum(len(x) for x in xs) / len(xs))
    )
    return _bytes(1, name.encode()) + _int(2, 2) + _bytes(4, string_stats)  # type STRING


def feature_stats(name: str, rows: list[dict[str, Any]]) -> bytes:
    dataset = (
        _bytes(1, name.encode())
        + _int(2, len(rows))
        + _bytes(3, numeric_feature("price", [r["price"] for r in rows]))
        + _bytes(3, string_feature("category", [r["category"] for r in rows]))
    )
    return _bytes(1, dataset)


TRAIN: list[dict[str, Any]] = [
    {"price": 10.0, "category": "shoes"},
    {"price": 0.0, "category": "hats"},
    {"price": 25.5, "category": "shoes"},
    {"price": None, "category": "bags"},
    {"price": 4.0, "category": None},
    {"price": 7.5, "category": "shoes"},
]
EVAL: list[dict[str, Any]] = [
    {"price": 99.0, "category": "hats"},
    {"price": None, "category": "socks"},
    {"price": 1.0, "category": "hats"},
]

SCHEMA = """
feature {
  name: "price"
  type: FLOAT
  presence { min_count: 1 }
  float_domain { min: 0.0 max: 100.0 }
}
feature {
  name: "category"
  type: BYTES
  domain: "category"
  presence { min_fraction: 1.0 min_count: 1 }
  shape { dim { size: 1 } }
}
string_domain { name: "category" value: "bags" value: "hats" value: "shoes" value: "socks" }
"""


@pytest.fixture
def stats_run(platform: trainyard.Platform, tmp_path: Path) -> int:
    """A finished run whose pipeline root holds StatisticsGen (train, eval) and SchemaGen
    outputs in the local runner's layout, plus an older StatisticsGen execution that must be
    ignored."""
    root = pipeline_root(tmp_path / "root")
    for execution, splits in ((3, {"train": TRAIN[:2]}), (7, {"train": TRAIN, "eval": EVAL})):
        for split, rows in splits.items():
            d = root / "StatisticsGen" / "statistics" / str(execution) / f"Split-{split}"
            d.mkdir(parents=True)
            (d / "FeatureStats.pb").write_bytes(feature_stats(split, rows))
    schema_dir = root / "SchemaGen" / "schema" / "8"
    schema_dir.mkdir(parents=True)
    (schema_dir / "schema.pbtxt").write_text(SCHEMA)
    run = platform.training.create("with-stats", config(), ml_model="shop")
    complete(platform, run.id, root=root)
    return run.id


def expected_numeric(rows: list[dict[str, Any]]) -> dict[str, Any]:
    xs = [r["price"] for r in rows if r["price"] is not None]
    return {
        "count": len(xs),
        "missing": len(rows) - len(xs),
        "missing_pct": (len(rows) - len(xs)) * 100 / len(rows),
        "mean": pystats.fmean(xs),
        "std_dev": pystats.pstdev(xs),
        "zeros": xs.count(0.0),
        "min": min(xs),
        "max": max(xs),
    }


def test_statistics_per_split_and_combined_match_the_rows(platform: trainyard.Platform, stats_run: int) -> None:
    insights = platform.insights
    stats = insights.statistics(stats_run)
    assert stats.split is None
    assert stats.split_names == ["train", "eval"]
    assert stats.source.endswith("StatisticsGen/statistics/7"), "the newest execution"
    assert stats.total_examples == len(TRAIN) + len(EVAL)
    assert (stats.feature_count, stats.numeric_feature_count, stats.categorical_feature_count) == (2, 1, 1)
    assert stats.numeric_ratio == 0.5

    for split, rows in (("train", TRAIN), ("eval", EVAL)):
        s = insights.statistics(stats_run, split=split)
        assert (s.split, s.total_examples) == (split, len(rows))
        (price,) = s.numeric_features
        want = expected_numeric(rows)
        for k, v in want.items():
            assert price[k] == pytest.approx(v), (split, k)
        xs = sorted(r["price"] for r in rows if r["price"] is not None)
        assert price["median"] == pytest.approx(pystats.median(xs))
        assert sum(b["count"] for b in price["histogram"]) == len(xs)
        (category,) = s.categorical_features
        cats = [r["category"] for r in rows if r["category"] is not None]
        assert category["unique"] == len(set(cats))
        assert category["top_values"][0] == {"value": max(set(cats), key=cats.count), "frequency": float(max(map(cats.count, set(cats))))}
        assert category["missing"] == len(rows) - len(cats)
        missing = [want["missing_pct"], category["missing_pct"]]
        assert s.avg_missing_pct == pytest.approx(sum(missing) / 2)

    # every split together: the pooled values of all rows
    both = TRAIN + EVAL
    (price,) = stats.numeric_features
    for k, v in expected_numeric(both).items():
        assert price[k] == pytest.approx(v), k
    assert price["median"] is None, "a median does not combine"
    (category,) = stats.categorical_features
    cats = [r["category"] for r in both if r["category"] is not None]
    assert category["unique"] == len(set(cats)) and category["exact"]
    assert {t["value"]: t["frequency"] for t in category["top_values"]} == {c: cats.count(c) for c in set(cats)}
    assert stats.combined["total_examples"] == len(both)
    assert [s["name"] for s in stats.splits] == ["train", "eval"]
    assert stats.to_dict()["combined"] == stats.combined

    with pytest.raises(ValidationError, match=r'no split "test" \(splits: train, eval\)') as e:
        insights.statistics(stats_run, "test")
    assert e.value.field == "split"
    assert awaited(lambda: insights.statistics_async(stats_run, "eval")).total_examples == len(EVAL)


def test_statistics_and_schema_tables_as_dataframes(platform: trainyard.Platform, stats_run: int) -> None:
    pd = pytest.importorskip("pandas")
    stats = platform.insights.statistics(stats_run, "train")
    frame = stats.numeric_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == ["price"]
    assert list(frame.columns)[:5] == ["type", "count", "missing", "missing_pct", "num_values"]
    assert frame.loc["price", "mean"] == pytest.approx(expected_numeric(TRAIN)["mean"])
    cat = stats.categorical_frame()
    assert list(cat.index) == ["category"] and cat.loc["category", "unique"] == 3

    schema = platform.insights.schema(stats_run)
    sf = schema.frame()
    assert list(sf.index) == ["price", "category"]
    assert sf.loc["category", "required"] and not sf.loc["price", "required"]


def test_schema_types_presence_and_domains(platform: trainyard.Platform, stats_run: int) -> None:
    schema = platform.insights.schema(stats_run)
    assert schema.source.endswith("SchemaGen/schema/8/schema.pbtxt")
    assert (schema.feature_count, schema.required_count) == (2, 1)
    assert schema.by_type == {"BYTES": 1, "FLOAT": 1}
    price, category = schema.features
    assert (price["name"], price["type"], price["required"]) == ("price", "FLOAT", False)
    assert price["domain"] == {"kind": "float", "name": None, "min": 0.0, "max": 100.0}
    assert "float in [0, 100]" in price["constraints"]
    assert (category["type"], category["required"], category["shape"]) == ("BYTES", True, "fixed [1]")
    assert category["domain"]["values"] == ["bags", "hats", "shoes", "socks"]
    assert category["presence"] == {"min_fraction": 1.0, "min_count": 1}
    assert schema.to_dict()["features"] == schema.features
    assert "feature_count=2" in repr(schema)


# --- weight statistics: a training_metrics.json `weight_stats` section like the generated
# trainer's, computed here from small weight and gradient tensors ---


def tensor_stats(values: list[float], bins: int = 3) -> dict[str, Any]:
    lo, hi = min(values), max(values)
    edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / (hi - lo) * bins), bins - 1)] += 1
    return {
        "count": len(values),
        "nonfinite": 0,
        "l1_norm": sum(abs(v) for v in values),
        "l2_norm": math.sqrt(sum(v * v for v in values)),
        "mean": pystats.fmean(values),
        "std": pystats.pstdev(values),
        "min": lo,
        "max": hi,
        "histogram": {"bin_edges": edges, "counts": counts},
        "variables": [{"name": "dense/kernel:0", "shape": [2, len(values) // 2]}],
    }


def weights_at(epoch: int, tower: str) -> list[float]:
    scale = 1.0 + epoch * 0.5 + (0.25 if tower == "query_tower" else 0.0)
    return [scale * x for x in (-1.0, 0.5, 2.0, -0.25)]


def test_weight_stats_per_epoch_and_norm_curves(platform: trainyard.Platform) -> None:
    towers = ("candidate_tower", "query_tower")
    doc = dict(MULTITASK_METRICS)
    doc["weight_stats"] = {
        "histogram_bins": 3,
        "epochs": [
            {
                "epoch": e,
                "towers": {
                    t: {
                        "weights": tensor_stats(weights_at(e, t)),
                        "gradients": tensor_stats([g / 10 for g in weights_at(e, t)]) if t == "query_tower" else None,
                        **({} if t == "query_tower" else {"gradients_error": "no probe batch"}),
                    }
                    for t in towers
                },
            }
            for e in range(2)
        ],
    }
    run = platform.training.create("weights", config("multitask"), ml_model="shop")
    complete(platform, run.id, metrics=doc)

    w = platform.insights.weight_stats(run.id)
    assert (w.towers, w.histogram_bins, len(w)) == (list(towers), 3, 2)
    assert [e["epoch"] for e in w.epochs] == [0, 1]
    for epoch in w.epochs:
        for t in towers:
            weights = epoch["towers"][t]["weights"]
            assert sum(weights["histogram"]["counts"]) == weights["count"] == 4
    q = w.norms["query_tower"]
    assert [p["epoch"] for p in q] == [0, 1]
    for p in q:
        values = weights_at(p["epoch"], "query_tower")
        assert p["weights_l2"] == pytest.approx(math.sqrt(sum(v * v for v in values)))
        assert p["weights_l1"] == pytest.approx(sum(abs(v) for v in values))
        assert p["gradients_l2"] == pytest.approx(math.sqrt(sum(v * v for v in values)) / 10)
    assert all(p["gradients_l2"] is None for p in w.norms["candidate_tower"])
    assert w.epochs[0]["towers"]["candidate_tower"]["gradients_error"] == "no probe batch"

    one = awaited(lambda: platform.insights.weight_stats_async(run.id, epoch=1))
    assert [e["epoch"] for e in one.epochs] == [1]
    assert one.norms == w.norms, "norm curves cover every epoch whatever epoch was asked for"
    with pytest.raises(NotFound, match="weight statistics of epoch") as e:
        platform.insights.weight_stats(run.id, epoch=5)
    assert e.value.id == "5"

    try:
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        rows = w.norms_frame()
        assert [(r["tower"], r["epoch"]) for r in rows] == [(t, e) for t in towers for e in range(2)]
        return
    frame = w.norms_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == [(t, e) for t in towers for e in range(2)]
    assert frame.loc[("query_tower", 1), "weights_l2"] == pytest.approx(q[1]["weights_l2"])
