"""Tidy frame -> what each table and figure panel shows (no drawing here).

Gradient panels use one machine's latest commit with gradient results, training panels its latest with
alignment results, the history every commit. Kendall τ of a run is the suite's own (the
``<Task>Summary.track_kendall_tau`` results); only when those are absent is it computed here from the curves,
with :func:`scipy.stats.kendalltau`."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from estibench import schema as M

__all__ = ["latest_commit", "ok", "gradient_cells", "pick_device", "training_curves",
           "run_taus", "summary_taus", "taus", "one_value_per_cell", "commit_order",
           "samples_panels", "bias_variance_points", "history_points", "Panels", "NoData", "display_names"]


def latest_commit(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the most recent commit (by commit date, then by when it was measured)."""
    if frame.empty:
        return frame
    return frame[frame["commit"] == commit_order(frame)[-1]]


def ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"]


def gradient_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """ok cells of the gradient benchmarks (task, estimator, num_samples, device)."""
    cells = ok(frame[frame["group"] == "gradient"])
    if cells.empty:
        return cells
    cells = cells.dropna(subset=["task", "estimator", "num_samples"]).copy()
    cells["num_samples"] = cells["num_samples"].astype(int)
    if "device" not in cells:
        cells["device"] = "cpu"
    cells["device"] = cells["device"].fillna("cpu").astype(str)
    return cells


def pick_device(cells: pd.DataFrame) -> str:
    """cpu when it has results (every machine has one), else the device with most results: the
    statistical measures do not depend on the device, only the costs do."""
    devices = cells["device"].value_counts()
    return "cpu" if "cpu" in devices.index else str(devices.index[0])


def training_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, method, seed, checkpoint), one column per measure (step, seconds,
    loss, metric and the task's extras), from the ``<Task>Curve`` benchmarks. A checkpoint is
    named by a ``step`` parameter (the update count) or by a ``checkpoint`` index with ``step``
    among the measures; ``checkpoint`` is the position in the schedule either way."""
    rows = ok(frame[frame["group"] == "curve"])
    if rows.empty or not {"task", "method"} <= set(rows.columns):
        return pd.DataFrame()
    by = next((c for c in ("step", "checkpoint") if c in rows and rows[c].notna().all()), None)
    if by is None:
        return pd.DataFrame()
    rows = rows.assign(seed=rows["seed"] if "seed" in rows else 0, _at=rows[by].astype(float))
    if by == "step":
        rows = rows[rows["measure"] != "step"]  # the parameter already says it
    curves = rows.pivot_table(index=["task", "method", "seed", "_at"], columns="measure",
                              values="value", aggfunc="mean").reset_index()
    curves.columns.name = None
    curves = curves.rename(columns={"_at": by})
    curves = curves.sort_values(["task", "method", "seed", by])
    if by == "step":
        curves["checkpoint"] = curves.groupby(["task", "method", "seed"]).cumcount()
    return curves.reset_index(drop=True)


def run_taus(curves: pd.DataFrame, tasks: dict[str, M.TaskInfo]) -> pd.DataFrame:
    """Kendall τ between −loss and the oriented metric over each run's checkpoints, as
    ``suite.training.kendall_tau`` defines it (+1: a lower loss always came with a better
    metric); NaN where the task's direction is unknown or a series is constant."""
    from scipy.stats import kendalltau

    out = []
    if curves.empty or not {"loss", "metric"} <= set(curves.columns):
        return pd.DataFrame(columns=["task", "method", "seed", "tau"])
    for (task, method, seed), run in curves.groupby(["task", "method", "seed"]):
        run = run.sort_values("checkpoint").dropna(subset=["loss", "metric"])
        d = tasks.get(task, M.TaskInfo(task)).higher_is_better
        tau = math.nan
        if d is not None and len(run) > 1:
            tau = float(kendalltau(-run["loss"], (1 if d else -1) * run["metric"]).statistic)
        out.append({"task": task, "method": method, "seed": seed, "tau": tau})
    return pd.DataFrame(out)


def summary_taus(align: pd.DataFrame) -> pd.DataFrame:
    """Kendall τ per run as the suite recorded it (``<Task>Summary.track_kendall_tau``)."""
    rows = ok(align[(align["group"] == "summary") & (align["measure"] == "kendall_tau")])
    if rows.empty:
        return pd.DataFrame(columns=["task", "method", "seed", "tau"])
    return rows.assign(tau=rows["value"])[["task", "method", "seed", "tau"]]


def taus(align: pd.DataFrame, curves: pd.DataFrame, tasks: dict[str, M.TaskInfo]) -> pd.DataFrame:
    """The suite's τ per run where recorded, else :func:`run_taus` of the curves."""
    recorded = summary_taus(align)
    return recorded if not recorded.empty else run_taus(curves, tasks)


def one_value_per_cell(sub: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    # the latest commit holds one value per cell; means guard against a duplicated class
    cols = {c: (c, "mean") for c in ("value", "se", "ci_low", "ci_high") if c in sub.columns}
    return sub.groupby(keys, as_index=False, observed=True).agg(**cols)


def commit_order(frame: pd.DataFrame) -> list[str]:
    """Commits oldest first: by commit date, then by when they were benchmarked."""
    keys = frame.groupby("commit", dropna=False).agg(date=("date", "max"), started=("run_started", "max"))
    return list(keys.sort_values(["date", "started"], na_position="first").index)


def display_names(frame: pd.DataFrame) -> dict[str, dict[str, str]]:
    """column (``estimator``, ``task``, ``method``) -> id -> the display name the results record
    (``<column>_name``; rows without one, such as asv's timings, take it from another row of the same id).
    Where two ids would read the same, both keep their ids (a figure must never merge two estimators)."""
    out = {}
    for col in ("estimator", "task", "method"):
        name = f"{col}_name"
        if col not in frame:
            continue
        ids = frame[col].dropna().astype(str).unique()
        known = {}
        if name in frame:
            rows = frame[[col, name]].dropna().astype(str)
            known = dict(zip(rows[col], rows[name]))
        shown = {i: known.get(i) or i for i in ids}
        counts = pd.Series(list(shown.values()), dtype=object).value_counts()
        out[col] = {i: (n if counts[n] == 1 else i) for i, n in shown.items()}
    return out


class NoData(Exception):
    """What a figure would show is absent; the message says which."""


@dataclass
class Panels:
    """One measure per task panel: ``data`` one row per (task, estimator, x) with value, se and
    interval; ``zeros`` the rows of ``data`` whose value is exactly 0 (drawn at a log axis's
    edge); ``rows`` the tidy rows behind it (for the caption's interval words)."""

    data: pd.DataFrame
    device: str
    rows: pd.DataFrame
    tasks: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @property
    def zeros(self) -> pd.DataFrame:
        return self.data[self.data["value"] == 0]

    @property
    def positive(self) -> pd.DataFrame:
        return self.data[self.data["value"] > 0]


def _on_device(cells: pd.DataFrame, measure: str, device: str | None) -> tuple[pd.DataFrame, str]:
    sub = cells[cells["measure"] == measure] if not cells.empty else cells
    if sub.empty:
        raise NoData(f"no {measure} results")
    device = device or pick_device(sub)
    sub = sub[sub["device"] == device]
    if sub.empty:
        raise NoData(f"no {measure} results on {device}")
    return sub, device


def samples_panels(cells: pd.DataFrame, measure: str, device: str | None = None) -> Panels:
    """``measure`` against K, one panel per task, every estimator with a result (0 included)."""
    sub, device = _on_device(cells, measure, device)
    data = one_value_per_cell(sub, ["task", "estimator", "num_samples"])
    data = data[data["value"] >= 0]
    if not (data["value"] > 0).any():
        raise NoData(f"no positive {measure} values to draw on a log axis")
    return Panels(data, device, sub, sorted(data["task"].unique()), sorted(data["estimator"].unique()))


def bias_variance_points(cells: pd.DataFrame) -> Panels:
    """Variance and bias of each (task, estimator, K) side by side (``value_var``,
    ``value_bias``, ``se_bias``), on :func:`pick_device`'s device."""
    keys = ["task", "estimator", "num_samples"]
    var, device = _on_device(cells, "variance", None)
    bias, _ = _on_device(cells, "bias", device)
    data = one_value_per_cell(var, keys).merge(one_value_per_cell(bias, keys), on=keys, suffixes=("_var", "_bias"))
    data = data.assign(value=data["value_var"])
    if not (data["value_var"] > 0).any():
        raise NoData("no cell with positive variance")
    return Panels(data, device, var, sorted(data["task"].unique()), sorted(data["estimator"].unique()))


def history_points(frame_machine: pd.DataFrame, measure: str) -> tuple[Panels, list[str], pd.Series]:
    """``measure`` across commits at each task's largest K: (panels with a ``position`` column,
    the commits oldest first, the K of each task)."""
    cells = gradient_cells(frame_machine)
    sub, device = _on_device(cells, measure, None)
    order = commit_order(sub)
    if len(order) < 2:
        raise NoData(f"{measure} has results of one commit only")
    k_of = sub.groupby("task")["num_samples"].max()
    sub = sub[sub["num_samples"] == sub["task"].map(k_of)]
    data = one_value_per_cell(sub, ["task", "estimator", "commit"])
    data["position"] = data["commit"].map({c: i for i, c in enumerate(order)})
    panels = Panels(data, device, sub, sorted(data["task"].unique()), sorted(data["estimator"].unique()))
    return panels, order, k_of
