"""Tidy frame -> the report's tables (plain DataFrames; render.py formats them).

Rankings respect each measure's direction (:func:`estibench.schema.direction`): lower variance, bias, MSE,
time and memory are better; higher SNR, cosine, Kendall τ and metric gain are better; a training task's metric
goes the way its results say (:func:`training_tasks`). Measures without a direction (``replicates``, a
threshold) are shown but not ranked."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from estibench import schema as M

from .load import CI_LEVEL
from .select import gradient_cells, latest_commit, pick_device

__all__ = ["training_tasks", "COST_MEASURES", "best_estimators", "alignment_summary",
           "best_methods", "summary_wide", "other_results", "status_counts", "failed_cells",
           "runs", "run_summary", "coverage", "is_reference", "REFERENCE", "NEEDS"]

#: the label columns the tables read beyond the identity (reports.load.BASE_COLUMNS)
NEEDS = ("error",)
#: the estimator that is the exact reference of a task (enumeration): identified by its id,
#: never by a variance of zero (a deterministic estimator is not the reference)
REFERENCE = "exact"


def is_reference(spec: object) -> bool:
    """True for the exact reference estimator (``exact`` with any options)."""
    return str(spec).partition(":")[0] == REFERENCE


#: measures that depend on the device: ranked on every device; the rest on pick_device's
COST_MEASURES = frozenset({"time_estimate", "peakmem_estimate", "cuda_peakmem",
                           "work_normalised_variance", "seconds_per_estimate"})
_BEST_COLUMNS = ["best", "value", "tied", "runner_up", "runner_up_value", "ratio", "distinct", "better", "competitors"]


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return not (a[1] < b[0] or b[1] < a[0])


def _best_row(values: pd.Series, lo: pd.Series, hi: pd.Series, higher: bool) -> dict:
    """The best and the estimators its interval cannot be told from, the first one behind that is separated,
    the ratio worse/better (when both are positive), and whether the best stands alone (``distinct``).

    Differences that the intervals cannot separate are never ordered: every name whose interval overlaps the
    best's (or whose value equals it) is tied with it, and ``best`` then reads ``tie: a = b = c`` (``tied``:
    how many). Where an interval is unknown (peak memory has none) only equal values tie, and ``distinct`` is
    empty: the order is the values' own."""
    ranked = values.sort_values(ascending=not higher, kind="stable")
    top = ranked.iloc[0]
    first = ranked.index[0]

    def bounds(name) -> tuple[float, float] | None:
        b = (lo.get(name), hi.get(name))
        return b if all(x is not None and np.isfinite(x) for x in b) else None

    known = bounds(first) is not None and all(bounds(n) is not None for n in ranked.index)
    tied = [name for name, v in ranked.items() if v == top or (known and _overlap(bounds(first), bounds(name)))]
    behind = ranked.drop(index=tied)
    row = {"best": (str(first) if len(tied) == 1 else "tie: " + " = ".join(map(str, tied))),
           "value": float(top), "tied": len(tied), "runner_up": None, "runner_up_value": math.nan, "ratio": math.nan,
           "distinct": ("yes" if len(tied) == 1 else "no") if known and len(ranked) > 1
           else None, "better": M.better_word(higher), "competitors": int(len(values))}
    if len(behind):
        name, value = behind.index[0], float(behind.iloc[0])
        row["runner_up"], row["runner_up_value"] = name, value
        if top > 0 and value > 0:
            row["ratio"] = float(top / value) if higher else float(value / top)
    return row


def _rank_at(part: pd.DataFrame) -> int | None:
    """The K where most estimators have a result (the largest such K)."""
    per_k = part.groupby("num_samples")["estimator"].nunique()
    if per_k.empty:
        return None
    return int(per_k[per_k == per_k.max()].index.max())


def best_estimators(frame: pd.DataFrame) -> pd.DataFrame:
    """Best estimator per task and measure with its margin over the runner-up, from one machine's latest
    gradient results.

    Each (task, measure) is compared at the K where most estimators have a result; statistical measures on
    :func:`pick_device`'s device, costs (:data:`COST_MEASURES`) on every device. Every estimator competes, a
    deterministic one (variance 0) included, except the task's exact reference (the estimator named ``exact``,
    :func:`is_reference`: its numbers are the yardstick, shown in ``reference``). Best and runner-up are
    ordered only where their intervals separate them (see :func:`_best_row`: ``tie: a = b`` otherwise).
    ``ratio``: the first separated runner-up's value over the best's (or the best's over it when higher is
    better), so always ≥ 1."""
    cells = gradient_cells(latest_commit(frame[frame["group"] == "gradient"]))
    cols = ["task", "measure", "num_samples", "device"] + _BEST_COLUMNS + ["reference", "unit"]
    if cells.empty:
        return pd.DataFrame(columns=cols)
    out: list[dict] = []
    order = {m: i for i, m in enumerate([*M.GRADIENT, *M.COST, *M.CLAIM])}
    groups = sorted(cells.groupby(["task", "measure"]),
                    key=lambda kv: (kv[0][0], order.get(kv[0][1], len(order)), kv[0][1]))
    for (task, measure), part in groups:
        higher = M.direction(measure)
        if higher is None or measure in M.CLAIM:  # the claim test has its own table
            continue
        devices = sorted(part["device"].unique()) if measure in COST_MEASURES \
            else [pick_device(part)]
        for device in devices:
            on = part[part["device"] == device]
            ref = on[on["estimator"].map(is_reference)]
            on = on[~on["estimator"].map(is_reference)]
            k = _rank_at(on)
            if k is None:
                continue
            at = on[on["num_samples"] == k].groupby("estimator")[["value", "ci_low", "ci_high"]].mean()
            row = _best_row(at["value"], at["ci_low"], at["ci_high"], higher)
            ref_at = ref.loc[ref["num_samples"] == k, "value"]
            out.append({"task": task, "measure": measure, "num_samples": k, "device": device,
                        **row, "reference": float(ref_at.mean()) if len(ref_at) else math.nan, "unit": _unit(on)})
    return pd.DataFrame(out, columns=cols)


def _unit(part: pd.DataFrame) -> str | None:
    # asv's default for a track_ without .unit is the word "unit": say nothing then
    units = [u for u in part["unit"].dropna().unique() if u not in ("unit", "None")]
    return str(units[0]) if units else None


# -- alignment -----------------------------------------------------------------------------------
def training_tasks(frame: pd.DataFrame) -> dict[str, M.TaskInfo]:
    """:class:`~estibench.schema.TaskInfo` of every training task in the results. The direction
    of a task's metric is the latest ``<Task>Info.track_higher_is_better`` result (1.0: higher is
    better, 0.0: lower); a task without one (results written before that benchmark existed)
    keeps an unknown direction, and its metric is not ranked."""
    if "task" not in frame:
        return {}
    groups = frame["group"]
    names = sorted(frame.loc[groups.isin(["summary", "final", "curve", "info"]), "task"] .dropna().astype(str).unique())
    info = frame[(groups == "info") & (frame["measure"] == M.INFO_MEASURE)
                 & (frame["status"] == "ok")].dropna(subset=["value"])
    out = {}
    for name in names:
        rows = info[info["task"].astype(str) == name].sort_values("date", kind="stable")
        hib = bool(rows["value"].iloc[-1] >= 0.5) if len(rows) else None
        out[name] = M.TaskInfo(name, higher_is_better=hib)
    return out


def alignment_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and a 95 % t-interval of the mean over seeds, per task, method
    and measure, of the ``<Task>Summary`` and ``<Task>Final`` results (latest commit with
    alignment results). ``source`` says which (summary or final)."""
    cols = ["task", "source", "measure", "method", "mean", "sd", "seeds", "ci_low", "ci_high"]
    align = latest_commit(frame[frame["group"].isin(["summary", "final"])])
    rows = align[align["status"] == "ok"]
    if rows.empty or not {"task", "method"} <= set(rows.columns):
        return pd.DataFrame(columns=cols)
    from scipy.stats import t as student_t

    out = rows.groupby(["task", "group", "measure", "method"], as_index=False, sort=False).agg(
        mean=("value", "mean"), sd=("value", "std"), seeds=("value", "size"))
    half = [student_t.ppf(0.5 + CI_LEVEL / 2, n - 1) * s / math.sqrt(n) if n > 1 else math.nan
            for n, s in zip(out["seeds"], out["sd"])]
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    out = out.rename(columns={"group": "source"})
    order = {m: i for i, m in enumerate(M.SUMMARY)}
    out["_o"] = [order.get(m, len(order)) for m in out["measure"]]
    return out.sort_values(["task", "source", "_o", "measure", "method"],
                           key=lambda s: s.map({"summary": 0, "final": 1}) if s.name == "source"
                           else s).drop(columns="_o")[cols].reset_index(drop=True)


def best_methods(summary: pd.DataFrame, tasks: dict[str, M.TaskInfo]) -> pd.DataFrame:
    """Best method per task and measure (means over seeds), with its margin; ``distinct``:
    whether the 95 % t-intervals of the two means are disjoint."""
    cols = ["task", "measure"] + _BEST_COLUMNS
    out = []
    for (task, measure), part in summary.groupby(["task", "measure"], sort=False):
        higher = M.direction(measure, tasks.get(task))
        part = part.dropna(subset=["mean"]).set_index("method")
        if higher is None or part.empty:
            continue
        out.append({"task": task, "measure": measure,
                    **_best_row(part["mean"], part["ci_low"], part["ci_high"], higher)})
    return pd.DataFrame(out, columns=cols)


def summary_wide(summary: pd.DataFrame, task: str, source: str) -> pd.DataFrame:
    """One task's summary as methods x measures (the long table's ``mean`` and ``sd``)."""
    part = summary[(summary["task"] == task) & (summary["source"] == source)]
    if part.empty:
        return pd.DataFrame()
    measures = list(dict.fromkeys(part["measure"]))
    methods = sorted(part["method"].unique())
    return part.pivot(index="method", columns="measure", values=["mean", "sd", "seeds"]) \
        .reindex(methods).reindex(columns=measures, level=1)


def _what(frame: pd.DataFrame) -> pd.Series:
    """``group[/experiment]: measure`` of each row: what a count or a failed cell names."""
    exp = frame["experiment"].fillna("").astype(str)
    return (frame["group"].astype(str) + exp.where(exp == "", "/" + exp) + ": " + frame["measure"].astype(str))


def _params(frame: pd.DataFrame, param_columns: list[str]) -> list[str]:
    cols = [p for p in param_columns if p in frame and frame[p].notna().any()]
    return [", ".join(f"{p}={r[p]}" for p in cols if not _missing(r[p])) for r in frame[cols].to_dict("records")]


def other_results(frame: pd.DataFrame, param_columns: list[str]) -> pd.DataFrame:
    """Results of no kind the report draws (group ``other``, e.g. ``bench_metrics``), latest
    commit: one row per cell with its parameters in words."""
    cols = ["experiment", "parameters", "measure", "value", "ci_low", "ci_high", "unit", "status"]
    rows = latest_commit(frame[frame["group"] == "other"])
    if rows.empty:
        return pd.DataFrame(columns=cols)
    return rows.assign(parameters=_params(rows, param_columns))[cols].reset_index(drop=True)


# -- provenance ----------------------------------------------------------------------------------
def runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (machine, commit): date and cell counts by status."""
    table = frame.pivot_table(index=["machine", "commit"], columns="status", values="measure",
                              aggfunc="size", fill_value=0)
    for status in ("ok", "failed", "skipped"):
        if status not in table:
            table[status] = 0
    dates = frame.groupby(["machine", "commit"])["date"].max()
    out = table[["ok", "failed", "skipped"]].join(dates).reset_index()
    out.columns.name = None
    return out.sort_values(["machine", "date"])[["machine", "commit", "date", "ok", "failed", "skipped"]]


def run_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run that measured gradient cells: machine, commit, when it started, and what
    it measured (cells, tasks, estimators, K)."""
    cols = ["machine", "commit", "run_started", "cells", "tasks", "estimators", "K"]
    rows = frame[(frame["group"] == "gradient") & (frame["status"] == "ok")
                 & frame["run_started"].notna() & ~frame["measure"].isin(M.ASV_MEASURED)]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    rows = rows.drop_duplicates(["machine", "commit", "task", "estimator", "num_samples",
                                 "device"]).assign(run_started=rows["run_started"].dt.floor("s"))
    rows = rows.assign(K=rows["num_samples"].astype("Int64").astype(str))
    out = rows.groupby(["machine", "commit", "run_started"]).agg(cells=("value", "size"),
        tasks=("task", lambda s: ", ".join(sorted(s.astype(str).unique()))),
        estimators=("estimator", lambda s: ", ".join(sorted(s.astype(str).unique()))),
        K=("K", lambda s: ", ".join(sorted(s.unique(), key=int))),
    ).reset_index()
    return out.sort_values(["machine", "run_started"])[cols].reset_index(drop=True)


def coverage(frame: pd.DataFrame) -> pd.DataFrame:
    """What ran (ok cells) in one machine's latest gradient results: per task and device, the
    estimators and sample counts."""
    cells = gradient_cells(latest_commit(frame[frame["group"] == "gradient"]))
    if cells.empty:
        return pd.DataFrame(columns=["task", "device", "estimators", "K"])
    return cells.groupby(["task", "device"]).agg(estimators=("estimator", lambda s: ", ".join(sorted(s.unique()))),
        K=("num_samples", lambda s: ", ".join(str(k) for k in sorted(s.unique())))).reset_index()


def status_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Failed and skipped cells per kind of result (``group[/experiment]: measure``; kinds
    with neither are left out)."""
    bad = frame[frame["status"] != "ok"]
    if bad.empty:
        return pd.DataFrame(columns=["results", "failed", "skipped"])
    table = pd.crosstab(_what(bad), bad["status"])
    for status in ("failed", "skipped"):
        if status not in table:
            table[status] = 0
    out = table[["failed", "skipped"]].rename_axis("results").reset_index()
    out.columns.name = None
    return out


def failed_cells(frame: pd.DataFrame, param_columns: list[str]) -> list[str]:
    """``group: measure (param=value, ...) on machine @ commit: error`` for every failed cell."""
    failed = frame[frame["status"] == "failed"]
    words = _params(failed, param_columns)
    return [f"{what} ({p}) on {m} @ {str(c)[:8]}" + (f": {e}" if isinstance(e, str) and e else "")
            for what, p, m, c, e in zip(_what(failed), words, failed["machine"], failed["commit"], failed["error"])]


def _missing(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False
