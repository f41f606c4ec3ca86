"""Notebook helpers behind Run.history(), Run.plot() and the insights tables
(RunStatistics.numeric_frame() and the like): pandas and matplotlib are optional."""

from __future__ import annotations

from typing import Any, Optional

from ._native import _metrics

# recall@k from core's one list of metrics
RECALL_COLUMNS = tuple(name for name, _, _ in _metrics() if name.startswith("recall_at_"))
# Columns every history row has (core's EpochMetrics), in display order; other per-epoch values
# follow.
TYPED_COLUMNS = ("epoch", "loss", "val_loss", *RECALL_COLUMNS, "rmse", "mae")


def flatten_history(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat dict per epoch: the typed columns, then every raw per-epoch value not already
    shown under a typed column (e.g. ``val_recall_at_100`` is ``recall_at_100``), then
    ``recorded_at``."""
    out: list[dict[str, Any]] = []
    for row in rows:
        flat = {k: row.get(k) for k in TYPED_COLUMNS}
        typed_values = {v for k, v in flat.items() if k != "epoch" and v is not None}
        for key, value in sorted((row.get("values") or {}).items()):
            if key in flat:
                continue
            if key.startswith("val_") and key[4:] in flat and value in typed_values:
                continue
            flat[key] = value
        flat["recorded_at"] = row.get("recorded_at")
        out.append(flat)
    return out


def history_frame(rows: list[dict[str, Any]]) -> Any:
    """A pandas DataFrame indexed by epoch when pandas is installed, else the flat rows."""
    flat = flatten_history(rows)
    try:
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return flat
    frame = pd.DataFrame(flat, columns=list(flat[0]) if flat else list(TYPED_COLUMNS))
    if "recorded_at" in frame:
        frame["recorded_at"] = pd.to_datetime(frame["recorded_at"], utc=True)
    return frame.set_index("epoch")


# Column order of the per-feature tables (the Data Insights tab's); other keys follow.
FEATURE_COLUMNS = {
    "numeric": (
        "name", "type", "count", "missing", "missing_pct", "num_values", "mean", "std_dev",
        "zeros", "zeros_pct", "min", "median", "max", "histogram",
    ),
    "categorical": (
        "name", "type", "count", "missing", "missing_pct", "num_values", "unique", "exact",
        "top_values", "avg_length",
    ),
    "schema": ("name", "type", "required", "shape", "presence", "domain", "constraints", "deprecated"),
}


def feature_frame(rows: list[dict[str, Any]], kind: str) -> Any:
    """Per-feature rows (``kind``: numeric, categorical or schema) as a pandas DataFrame
    indexed by feature name when pandas is installed, else the rows. Nested values
    (histograms, top values, domains) stay lists/dicts in their cells."""
    try:
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return rows
    known = FEATURE_COLUMNS[kind]
    extra = sorted({k for r in rows for k in r} - set(known))
    frame = pd.DataFrame(rows, columns=[*known, *extra])
    return frame.set_index("name")


def norms_frame(norms: dict[str, list[dict[str, Any]]]) -> Any:
    """Norm curves {tower: [points]} as one DataFrame indexed by (tower, epoch) when pandas is
    installed, else flat rows with a ``tower`` key."""
    rows = [{"tower": tower, **point} for tower, points in sorted(norms.items()) for point in points]
    try:
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return rows
    frame = pd.DataFrame(rows, columns=list(rows[0]) if rows else ["tower", "epoch"])
    return frame.set_index(["tower", "epoch"])


def plot_history(rows: list[dict[str, Any]], title: str, ax: Optional[Any] = None) -> Any:
    """Loss (and val_loss) on the left axes, recall@k on the right; returns the Figure."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - exercised only without matplotlib
        raise ImportError("Run.plot() needs matplotlib: pip install matplotlib") from e
    flat = flatten_history(rows)
    if ax is None:
        fig, (loss_ax, recall_ax) = plt.subplots(1, 2, figsize=(10, 3.5))
    else:
        loss_ax = ax
        recall_ax = ax.twinx()
        fig = ax.figure
    epochs = [r["epoch"] for r in flat]

    def series(key: str) -> tuple[list[int], list[float]]:
        pts = [(r["epoch"], r[key]) for r in flat if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    for key in ("loss", "val_loss"):
        xs, ys = series(key)
        if xs:
            loss_ax.plot(xs, ys, marker="o", label=key)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title(title)
    for key in RECALL_COLUMNS:
        xs, ys = series(key)
        if xs:
            recall_ax.plot(xs, ys, marker=".", linestyle="--", label=key)
    recall_ax.set_ylabel("recall")
    if epochs:
        for a in {loss_ax, recall_ax}:
            a.set_xticks(sorted(set(epochs)))
    for a in {loss_ax, recall_ax}:
        if a.get_lines():
            a.legend(loc="best", fontsize="small")
    return fig
