"""Tidy frame -> the report's tables (plain DataFrames; render.py formats them)."""
from __future__ import annotations

import math
from typing import List, Optional

import pandas as pd

from .figures import (_WORK_NORMALISED, gradient_cells, kendall_taus, pick_device, training_curves,
                      variance_times_time)

__all__ = ["REFERENCE_ESTIMATORS", "higher_is_better", "best_estimators", "training_summary",
           "best_methods", "loss_metric_taus", "status_counts", "failed_cells", "runs"]

#: estimators that are references, not competitors: left out of "best" rankings
REFERENCE_ESTIMATORS = frozenset({"exact"})
_HIGHER = {"snr", "signal_to_noise", "cosine", "cosine_similarity", "metric", "accuracy", "f1",
           "bleu", "metric_gain_per_second"}
_TYPE_PREFIX = {"time": "time_", "peakmemory": "peakmem_", "memory": "mem_"}
_NOT_RANKED = {"kendall_tau"}  # its sign convention belongs to the benchmark; shown, not ranked


def higher_is_better(measure: str) -> bool:
    return measure in _HIGHER or measure.startswith("final_metric") or "metric_gain" in measure


def _score(measure: str, value: float) -> float:
    """What "better" compares: |bias| (0 is best), else the value itself."""
    return abs(value) if "bias" in measure else value


def _label(measure: str, kind: str) -> str:
    return _TYPE_PREFIX.get(kind, "") + measure


def _rank(values: pd.Series, measure: str) -> pd.Series:
    """Sorted best first (index: the competitor)."""
    scores = values.map(lambda v: _score(measure, v))
    return values.loc[scores.sort_values(ascending=not higher_is_better(measure)).index]


def _margin(best: float, runner: float, measure: str) -> tuple:
    """(absolute difference, ratio worse/better when both scores are positive)."""
    b, r = _score(measure, best), _score(measure, runner)
    ratio = math.nan
    if b > 0 and r > 0:
        ratio = (b / r) if higher_is_better(measure) else (r / b)
    return abs(r - b), ratio


def _best_row(values: pd.Series, measure: str) -> dict:
    """The best (all names that tie for best, joined by " = ") and the first one behind."""
    ranked = _rank(values, measure)
    top = _score(measure, ranked.iloc[0])
    tied = [name for name, v in ranked.items() if _score(measure, v) == top]
    behind = ranked.iloc[len(tied):]
    row = {"best": " = ".join(str(n) for n in tied), "value": float(ranked.iloc[0]),
           "runner_up": None, "runner_up_value": math.nan, "margin": math.nan,
           "ratio": math.nan, "better": "higher" if higher_is_better(measure) else "lower"}
    if len(behind):
        row["runner_up"] = behind.index[0]
        row["runner_up_value"] = float(behind.iloc[0])
        row["margin"], row["ratio"] = _margin(ranked.iloc[0], behind.iloc[0], measure)
    return row


def best_estimators(frame: pd.DataFrame) -> pd.DataFrame:
    """Best estimator per task and measure (and its margin over the runner-up), from the
    gradient benchmarks of ``frame`` (one machine, one commit). Each (task, measure) is compared
    at the largest K where at least two estimators have a result, on :func:`pick_device`'s
    device; :data:`REFERENCE_ESTIMATORS` are left out."""
    cells = gradient_cells(frame)
    cols = ["task", "measure", "num_samples", "device", "best", "value", "runner_up",
            "runner_up_value", "margin", "ratio", "better", "unit"]
    if cells.empty:
        return pd.DataFrame(columns=cols)
    cells = cells[~cells["estimator"].isin(REFERENCE_ESTIMATORS)]
    cells = cells.assign(label=[_label(m, t) for m, t in zip(cells["measure"], cells["type"])])
    wnv = variance_times_time(cells)
    if not wnv.empty and not set(_WORK_NORMALISED) & set(cells["label"]):
        cells = pd.concat([cells, wnv.assign(label="variance_x_time", unit="variance·s",
                                             type="track")], ignore_index=True)
    out: List[dict] = []
    for (task, label), part in cells.groupby(["task", "label"], sort=True):
        if label in _NOT_RANKED:
            continue
        device = pick_device(part)
        part = part[part["device"] == device]
        per_k = part.groupby("num_samples")["estimator"].nunique()
        ks = per_k[per_k >= 2].index
        k = int(max(ks)) if len(ks) else int(per_k.index.max())
        at_k = part[part["num_samples"] == k].groupby("estimator")["value"].mean()
        measure = label.split("_", 1)[1] if label.startswith(tuple(_TYPE_PREFIX.values())) \
            else label
        row = {"task": task, "measure": label, "num_samples": k, "device": device,
               **_best_row(at_k, measure), "unit": _unit(part)}
        out.append(row)
    return pd.DataFrame(out, columns=cols)


def _unit(part: pd.DataFrame) -> Optional[str]:
    # asv's default for a track_ without .unit is the word "unit": say nothing then
    units = [u for u in part["unit"].dropna().unique() if u != "unit"] if "unit" in part else []
    return str(units[0]) if units else None


def _summary_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """ok cells of training summaries: a setting and method parameter, no checkpoint."""
    if "method" not in frame.columns:
        return frame.iloc[0:0]
    rows = frame[(frame["status"] == "ok") & frame["method"].notna()]
    if "checkpoint" in rows.columns:
        rows = rows[rows["checkpoint"].isna()]
    setting = "setting" if "setting" in rows.columns else "task"
    if setting not in rows.columns:
        return frame.iloc[0:0]
    rows = rows[rows[setting].notna()]
    return rows.assign(setting=rows[setting].astype(str), method=rows["method"].astype(str))


def training_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every training summary measure, per setting
    and method; plus the metric at the last checkpoint of the training curves."""
    rows = _summary_rows(frame)
    parts = []
    if not rows.empty:
        parts.append(rows[["setting", "method", "measure", "value"]])
    curves = training_curves(frame)
    if not curves.empty and "metric" in curves:
        last = curves.sort_values("checkpoint").groupby(["setting", "method", "seed"]).tail(1)
        parts.append(last.assign(measure="metric_at_last_checkpoint", value=last["metric"])[
            ["setting", "method", "measure", "value"]])
    if not parts:
        return pd.DataFrame(columns=["setting", "measure", "method", "mean", "sd", "seeds"])
    data = pd.concat(parts, ignore_index=True)
    out = data.groupby(["setting", "measure", "method"], as_index=False).agg(
        mean=("value", "mean"), sd=("value", "std"), seeds=("value", "size"))
    return out


def best_methods(summary: pd.DataFrame) -> pd.DataFrame:
    """Best method per setting and summary measure (means over seeds)."""
    cols = ["setting", "measure", "best", "value", "runner_up", "runner_up_value", "margin",
            "ratio", "better"]
    out = []
    for (setting, measure), part in summary.groupby(["setting", "measure"], sort=True):
        if measure in _NOT_RANKED:
            continue
        ranked_measure = "metric" if measure == "metric_at_last_checkpoint" else measure
        values = part.set_index("method")["mean"].dropna()
        if values.empty:
            continue
        out.append({"setting": setting, "measure": measure, **_best_row(values, ranked_measure)})
    return pd.DataFrame(out, columns=cols)


def loss_metric_taus(frame: pd.DataFrame) -> pd.DataFrame:
    return kendall_taus(training_curves(frame))


# -- provenance ----------------------------------------------------------------------------------
def runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (machine, commit, env): date and cell counts by status."""
    counts = frame.pivot_table(index=["machine", "commit", "env"], columns="status",
                               values="value", aggfunc="size", fill_value=0)
    for status in ("ok", "failed", "skipped"):
        if status not in counts:
            counts[status] = 0
    dates = frame.groupby(["machine", "commit", "env"])["date"].max()
    out = counts[["ok", "failed", "skipped"]].join(dates).reset_index()
    out.columns.name = None
    return out.sort_values(["machine", "date"])[["machine", "commit", "date", "env", "ok",
                                                 "failed", "skipped"]]


def status_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Failed and skipped cells per benchmark (benchmarks with neither are left out)."""
    bad = frame[frame["status"] != "ok"]
    if bad.empty:
        return pd.DataFrame(columns=["benchmark", "failed", "skipped"])
    counts = bad.pivot_table(index="benchmark", columns="status", values="value",
                             aggfunc="size", fill_value=0)
    for status in ("failed", "skipped"):
        if status not in counts:
            counts[status] = 0
    out = counts[["failed", "skipped"]].reset_index()
    out.columns.name = None
    return out


def failed_cells(frame: pd.DataFrame, param_columns: List[str]) -> List[str]:
    """``benchmark(param=value, ...) on machine @ commit`` for every failed cell."""
    out = []
    for _, row in frame[frame["status"] == "failed"].iterrows():
        params = ", ".join(f"{p}={row[p]!r}" for p in param_columns
                           if p in row and not _missing(row[p]))
        out.append(f"{row['benchmark']}({params}) on {row['machine']} @ {str(row['commit'])[:8]}")
    return out


def _missing(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False
