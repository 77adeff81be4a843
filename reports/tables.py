"""Tidy frame -> the report's tables (plain DataFrames; :mod:`reports.render` formats them).

Rankings follow each measure's direction (:func:`estibench.schema.direction`; a training task's metric the
way its results say, :func:`training_tasks`); measures without one are shown, not ranked. Differences the
intervals cannot separate are never ordered (:func:`_best_row`)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from estibench import schema as M

from .load import CI_LEVEL
from .select import gradient_cells, latest_commit, pick_device

__all__ = ["training_tasks", "best_estimators", "alignment_summary", "best_methods",
           "other_results", "status_counts", "why_not", "failed_cells", "runs", "run_summary", "coverage",
           "results_table", "is_reference", "REFERENCE", "NEEDS"]

#: the label columns the tables read beyond the identity (reports.load.BASE_COLUMNS)
NEEDS = ("error",)
#: the exact reference of a task (enumeration), known by its id, never by a variance of 0
REFERENCE = "exact"
_BEST_COLUMNS = ["best", "value", "tied", "runner_up", "runner_up_value", "ratio", "distinct", "better", "competitors"]
_ORDER = [*M.GRADIENT, *M.COST, *M.CLAIM]
#: why a cell has no value: a run's narrowing left it out (reports.load), the measure is undefined there
#: (the SNR of a deterministic estimator), it does not apply (the rest of the skipped), or it failed
NOT_RUN, UNDEFINED = "not run", "undefined"
_WHY = ("failed", "not applicable", UNDEFINED, NOT_RUN)


def _rank(measure: str) -> tuple[int, str]:
    return _ORDER.index(measure) if measure in _ORDER else len(_ORDER), measure


def is_reference(spec: object) -> bool:
    """True for the exact reference estimator (``exact`` with any options)."""
    return str(spec).partition(":")[0] == REFERENCE


def _best_row(values: pd.Series, lo: pd.Series, hi: pd.Series, higher: bool, behind=frozenset()) -> dict:
    """The best and every name whose interval overlaps it or of equal value (``tie: a = b``, ``tied`` of them),
    the first one apart (runner-up), the ratio worse/better (both positive) and whether the best stands alone
    (``distinct``; empty where an interval is unknown: only equal values tie). Names in ``behind`` (a bias the
    claim test detected) rank after all the others and never tie with them."""
    ranked = values.sort_values(ascending=not higher, kind="stable")
    ranked = pd.concat([ranked[~ranked.index.isin(behind)], ranked[ranked.index.isin(behind)]])
    top, first = ranked.iloc[0], ranked.index[0]
    bounds = {n: (lo.get(n), hi.get(n)) for n in ranked.index}
    known = all(b[0] is not None and b[1] is not None and np.isfinite(b).all() for b in bounds.values())
    tied = [n for n, v in ranked.items() if (n in behind) == (first in behind) and (v == top or known and not (
        bounds[n][1] < bounds[first][0] or bounds[first][1] < bounds[n][0]))]
    rest = ranked.drop(index=tied)
    row = {"best": str(first) if len(tied) == 1 else "tie: " + " = ".join(map(str, tied)), "value": float(top),
           "tied": len(tied), "runner_up": None, "runner_up_value": math.nan, "ratio": math.nan,
           "distinct": ("yes" if len(tied) == 1 else "no") if known and len(ranked) > 1 else None,
           "better": M.better_word(higher), "competitors": int(len(values))}
    if len(rest):
        value = float(rest.iloc[0])
        row.update(runner_up=rest.index[0], runner_up_value=value)
        if top > 0 and value > 0:
            row["ratio"] = float(top / value if higher else value / top)
    return row


def best_estimators(frame: pd.DataFrame) -> pd.DataFrame:
    """Best estimator per task and measure (:func:`_best_row`) of one machine's latest gradient results at the K
    where most estimators have one, on :func:`pick_device`'s device (device-dependent measures: each). Not ranked:
    the exact reference (its value: ``reference``) and cells at round-off where that means nothing
    (:data:`reports.select.AT_ROUND_OFF`; listed in ``exact`` and ``deterministic``). In the bias ranking one whose
    claim test detected a bias in the cell (``bias_p`` < ALPHA) ranks behind every one where none was."""
    cells = gradient_cells(latest_commit(frame[frame["group"] == "gradient"]))
    cols = ["task", "measure", "num_samples", "device", *_BEST_COLUMNS, "exact", "deterministic", "reference", "unit"]
    out: list[dict] = []
    hit = cells[(cells["measure"] == "bias_p") & (cells["value"] < M.ALPHA)] if len(cells) else cells
    detected = {k: set(p["estimator"]) for k, p in hit.groupby(["task", "num_samples", "device"])}
    groups = sorted(cells.groupby(["task", "measure"]), key=lambda kv: (kv[0][0], _rank(kv[0][1])))
    for (task, measure), part in groups:
        higher = M.direction(measure)
        if higher is None or measure in M.CLAIM:  # the claim test has its own table
            continue
        for device in sorted(part["device"].unique()) if M.device_dependent(measure) else [pick_device(part)]:
            on = part[part["device"] == device]
            ref, on = on[on["estimator"].map(is_reference)], on[~on["estimator"].map(is_reference)]
            per_k = on.groupby("num_samples")["estimator"].nunique()
            if per_k.empty:
                continue
            k = int(per_k[per_k == per_k.max()].index.max())
            at = on[on["num_samples"] == k]
            still = at[at["edge"]].drop_duplicates("estimator")
            at = at[~at["edge"]].groupby("estimator")[["value", "ci_low", "ci_high"]].mean()
            behind = detected.get((task, k, device), set()) if measure == "bias" else set()
            units = [u for u in on["unit"].dropna().unique() if u not in ("unit", "None")]  # asv's default: none
            out.append({"task": task, "measure": measure, "num_samples": k, "device": device,
                        **(_best_row(at["value"], at["ci_low"], at["ci_high"], higher, behind) if len(at) else {}),
                        **{r: ", ".join(sorted(still.loc[still["round_off"] == r, "estimator"]))
                           for r in ("exact", "deterministic")},
                        "reference": ref.loc[ref["num_samples"] == k, "value"].mean(),
                        "unit": str(units[0]) if units else None})
    return pd.DataFrame(out, columns=cols)


def results_table(frame: pd.DataFrame, names: dict | None = None) -> pd.DataFrame:
    """Every gradient cell of one machine's latest commit (task, estimator, K, device): display names, the
    registered claim (``claims_unbiased``: 1 unbiased, 0 none, empty: not recorded), the round-off label and,
    per measure, ``<measure>`` and ``<measure>_se`` (empty where none was recorded: asv's timings)."""
    cells = gradient_cells(latest_commit(frame[frame["group"] == "gradient"]))
    keys, names = ["task", "estimator", "num_samples", "device"], names or {}
    if cells.empty:
        return pd.DataFrame(columns=keys)
    measures = sorted(cells["measure"].unique(), key=_rank)
    wide = cells.pivot_table(index=keys, columns="measure", values=["value", "se"], aggfunc="mean", dropna=False)
    out = wide.index.to_frame(index=False)
    out.insert(1, "task_name", out["task"].map(names.get("task", {})).fillna(out["task"]))
    out.insert(3, "estimator_name", out["estimator"].map(names.get("estimator", {})).fillna(out["estimator"]))
    claims = cells.dropna(subset=["claims_unbiased"]).groupby("estimator")["claims_unbiased"].max()
    out.insert(4, "claims_unbiased", out["estimator"].map(claims))
    out["round_off"] = cells.groupby(keys)["round_off"].max().reindex(wide.index).to_numpy()
    for m in measures:
        out[m], out[f"{m}_se"] = wide[("value", m)].to_numpy(), wide[("se", m)].to_numpy()
    return out.dropna(how="all", subset=measures).reset_index(drop=True)


# -- alignment -----------------------------------------------------------------------------------
def training_tasks(frame: pd.DataFrame) -> dict[str, M.TaskInfo]:
    """:class:`~estibench.schema.TaskInfo` of every training task from its latest ``<Task>Info.track_higher_is_better``
    row and ``metric_name``; a task without one (older results) keeps an unknown direction: not ranked."""
    if "task" not in frame:
        return {}
    groups = frame["group"]
    info = frame[(groups == "info") & (frame["measure"] == M.INFO_MEASURE) & (frame["status"] == "ok")
                 ].dropna(subset=["value"]).sort_values("date", kind="stable")
    out, tasks = {}, frame.loc[groups.isin(["summary", "final", "curve", "info"]), "task"].dropna().astype(str)
    for name in sorted(tasks.unique()):
        rows = info[info["task"].astype(str) == name]
        metric = rows["metric_name"].dropna().astype(str) if "metric_name" in rows else ()
        out[name] = M.TaskInfo(name, metric.iloc[-1] if len(metric) else "held-out metric",
                               bool(rows["value"].iloc[-1] >= 0.5) if len(rows) else None)
    return out


def alignment_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd and 95 % t-interval of the mean over seeds per task, method and measure of the latest commit's
    ``<Task>Summary`` and ``<Task>Final`` results (``source``: summary or final)."""
    cols = ["task", "source", "measure", "method", "mean", "sd", "seeds", "ci_low", "ci_high"]
    rows = latest_commit(frame[frame["group"].isin(["summary", "final"])])
    rows = rows[rows["status"] == "ok"]
    if rows.empty or not {"task", "method"} <= set(rows.columns):
        return pd.DataFrame(columns=cols)
    from scipy.stats import t as student_t

    out = rows.groupby(["task", "group", "measure", "method"], as_index=False, sort=False).agg(
        mean=("value", "mean"), sd=("value", "std"), seeds=("value", "size")).rename(columns={"group": "source"})
    half = [student_t.ppf(0.5 + CI_LEVEL / 2, n - 1) * s / math.sqrt(n) if n > 1 else math.nan
            for n, s in zip(out["seeds"], out["sd"])]
    out = out.assign(ci_low=out["mean"] - half, ci_high=out["mean"] + half)
    order = {"summary": 0, "final": 1} | {m: i for i, m in enumerate(M.SUMMARY)}
    out["_o"] = [order.get(m, len(order)) for m in out["measure"]]
    return out.sort_values(["task", "source", "_o", "measure", "method"], key=lambda s: s.map(order) if s.name ==
                           "source" else s).drop(columns="_o")[cols].reset_index(drop=True)


def best_methods(summary: pd.DataFrame, tasks: dict[str, M.TaskInfo]) -> pd.DataFrame:
    """Best method per task and measure (means over seeds), with its margin; ``distinct``: whether the
    95 % t-intervals of the two means are disjoint."""
    out = []
    for (task, measure), part in summary.groupby(["task", "measure"], sort=False):
        higher, part = M.direction(measure, tasks.get(task)), part.dropna(subset=["mean"]).set_index("method")
        if higher is not None and not part.empty:
            out.append({"task": task, "measure": measure,
                        **_best_row(part["mean"], part["ci_low"], part["ci_high"], higher)})
    return pd.DataFrame(out, columns=["task", "measure", *_BEST_COLUMNS])


# -- what ran, and what did not ------------------------------------------------------------------
def _what(frame: pd.DataFrame) -> pd.Series:
    """``group[/experiment]: measure`` of each row: what a count or a failed cell names."""
    exp = frame["experiment"].fillna("").astype(str)
    return frame["group"].astype(str) + exp.where(exp == "", "/" + exp) + ": " + frame["measure"].astype(str)


def _params(frame: pd.DataFrame, param_columns: list[str]) -> list[str]:
    cols = [p for p in param_columns if p in frame and frame[p].notna().any()]
    return [", ".join(f"{p}={v}" for p, v in r.items() if not (np.ndim(v) == 0 and pd.isna(v)))
            for r in frame[cols].to_dict("records")]


def other_results(frame: pd.DataFrame, param_columns: list[str]) -> pd.DataFrame:
    """Latest commit's results of group ``other`` (e.g. ``bench_metrics``), one row a cell, parameters in words."""
    cols = ["experiment", "parameters", "measure", "value", "ci_low", "ci_high", "unit", "status"]
    rows = latest_commit(frame[frame["group"] == "other"])
    return pd.DataFrame(columns=cols) if rows.empty else \
        rows.assign(parameters=_params(rows, param_columns))[cols].reset_index(drop=True)


def runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (machine, commit): date and cell counts by status."""
    table = frame.pivot_table(index=["machine", "commit"], columns="status", values="measure", aggfunc="size",
                              fill_value=0).reindex(columns=["ok", "failed", "skipped"], fill_value=0)
    out = table.join(frame.groupby(["machine", "commit"])["date"].max()).rename_axis(columns=None).reset_index()
    return out.sort_values(["machine", "date"])[["machine", "commit", "date", "ok", "failed", "skipped"]]


def _joined(values: pd.Series, key=None) -> str:
    return ", ".join(sorted(values.astype(str).unique(), key=key))


def run_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run that measured gradient cells: when it started and what it measured."""
    cols = ["machine", "commit", "run_started", "cells", "tasks", "estimators", "K"]
    rows = frame[(frame["group"] == "gradient") & (frame["status"] == "ok") & frame["run_started"].notna()
                 & ~frame["measure"].isin(M.ASV_MEASURED)]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    rows = rows.drop_duplicates(["machine", "commit", "task", "estimator", "num_samples", "device"])
    rows = rows.assign(run_started=rows["run_started"].dt.floor("s"), K=rows["num_samples"].astype("Int64"))
    out = rows.groupby(["machine", "commit", "run_started"]).agg(
        cells=("value", "size"), tasks=("task", _joined), estimators=("estimator", _joined),
        K=("K", lambda s: _joined(s, key=int))).reset_index()
    return out.sort_values(["machine", "run_started"])[cols].reset_index(drop=True)


def coverage(frame: pd.DataFrame) -> pd.DataFrame:
    """Per task and device, the estimators and Ks of one machine's latest ok gradient cells."""
    cells = gradient_cells(latest_commit(frame[frame["group"] == "gradient"]))
    if cells.empty:
        return pd.DataFrame(columns=["task", "device", "estimators", "K"])
    return cells.groupby(["task", "device"]).agg(estimators=("estimator", _joined),
                                                 K=("num_samples", lambda s: _joined(s, key=int))).reset_index()


def why_not(frame: pd.DataFrame) -> pd.Series:
    """Per row without a value: ``failed``, ``not applicable``, ``undefined`` or ``not run`` (see :data:`NOT_RUN`)."""
    error = frame["error"].fillna("").astype(str)
    return pd.Series(np.select([frame["status"] == "failed", error.str.startswith(NOT_RUN), error.str.startswith(
        UNDEFINED)], ["failed", NOT_RUN, UNDEFINED], "not applicable"), index=frame.index)


def status_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells without a value per kind of result (``group[/experiment]: measure``) and why (:func:`why_not`)."""
    bad = frame[frame["status"] != "ok"]
    if bad.empty:
        return pd.DataFrame(columns=["results", *_WHY])
    return pd.crosstab(_what(bad), why_not(bad)).reindex(columns=list(_WHY), fill_value=0).rename_axis(
        index="results", columns=None).reset_index()


def failed_cells(frame: pd.DataFrame, param_columns: list[str]) -> list[str]:
    """``group: measure (param=value, ...) on machine @ commit: error`` for every failed cell."""
    failed = frame[frame["status"] == "failed"]
    return [f"{what} ({p}) on {m} @ {str(c)[:8]}" + (f": {e}" if isinstance(e, str) and e else "")
            for what, p, m, c, e in zip(_what(failed), _params(failed, param_columns), failed["machine"],
                                        failed["commit"], failed["error"])]
