"""Tidy frame -> what each table and figure panel shows (no drawing here): one machine's latest commit.

**At round-off**: replicates that differ by rounding only (the suite records the SNR as undefined when
√tr Cov ≤ 10⁻⁵·‖E ĝ‖, ``suite.measure.NOISE_FLOOR``), or a variance of exactly 0. Such a cell is **exact** when
its relative bias is at most :data:`RESOLUTION` (10⁻⁵) too (the estimator computes the gradient on this task:
straight-through on a cost linear in the one-hot sample), else **deterministic**; :data:`AT_ROUND_OFF` says
which measures such cells do not compete in, and are drawn at a log axis's edge in."""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = ["latest_commit", "each_latest", "ok", "gradient_cells", "pick_device", "training_curves",
           "one_value_per_cell", "commit_order", "NoData", "display_names", "RESOLUTION", "AT_ROUND_OFF", "biased",
           "refuse_unknown", "on_device"]

#: relative resolution of round-off (the suite's NOISE_FLOOR): a relative bias at most this is 0
RESOLUTION = 1e-5
#: measure -> the round-off labels whose cells do not compete in it (and sit on a log axis's edge)
AT_ROUND_OFF = {"variance": ("exact", "deterministic"), "work_normalised_variance": ("exact", "deterministic"),
                "snr": ("exact", "deterministic"), "mse": ("exact",), "bias": ("exact",), "cosine": ("exact",),
                "cosine_of_mean": ("exact",)}
_CELL = ["machine", "commit", "task", "estimator", "num_samples", "device"]


class NoData(Exception):
    """What a figure would show is absent; the message says which."""


def ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"]


def commit_order(frame: pd.DataFrame) -> list[str]:
    """Commits oldest first: by commit date, then by when they were benchmarked."""
    keys = frame.groupby("commit", dropna=False).agg(date=("date", "max"), started=("run_started", "max"))
    return list(keys.sort_values(["date", "started"], na_position="first").index)


def latest_commit(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the most recent commit (by commit date, then by when it was measured)."""
    return frame if frame.empty else frame[frame["commit"] == commit_order(frame)[-1]]


def each_latest(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of each machine's latest commit (:func:`latest_commit` per machine)."""
    return pd.concat([latest_commit(p) for _, p in frame.groupby("machine")]) if len(frame) else frame


def pick_device(cells: pd.DataFrame) -> str:
    """cpu when it has results (every machine has one), else the device with most results: the statistical
    measures do not depend on the device, only the costs do."""
    devices = cells["device"].value_counts()
    return "cpu" if "cpu" in devices.index else str(devices.index[0])


def gradient_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """ok cells of the gradient benchmarks (task, estimator, num_samples, device), each with its ``round_off``
    label (``exact``, ``deterministic`` or '': see the module's notes) and ``edge`` (True where the row's
    measure puts that label at a log axis's edge)."""
    rows = frame[frame["group"] == "gradient"].dropna(subset=["task", "estimator", "num_samples"])
    rows = rows.assign(num_samples=rows["num_samples"].astype(int),
                       device=rows["device"].fillna("cpu").astype(str) if "device" in rows else "cpu")
    cells = ok(rows)
    if cells.empty:
        return cells.assign(round_off="", edge=False)
    var = cells[cells["measure"] == "variance"].set_index(_CELL)["value"]
    still = var[(var == 0) | var.index.isin(rows[(rows["measure"] == "snr") & (rows["status"] == "skipped")]
                                            .set_index(_CELL).index)]
    bias = cells[cells["measure"] == "bias"].groupby(_CELL)["value"].mean().reindex(still.index)
    label = pd.Series(np.where(bias <= RESOLUTION, "exact", "deterministic"), index=still.index, name="round_off")
    cells = cells.join(label[~label.index.duplicated()], on=_CELL) if len(label) else cells.assign(round_off="")
    cells["round_off"] = cells["round_off"].fillna("")
    cells["edge"] = [r in AT_ROUND_OFF.get(m, ()) for r, m in zip(cells["round_off"], cells["measure"])]
    return cells


def training_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, method, seed, checkpoint), one column per measure (step, seconds, loss, metric,
    ``f_evaluations`` and the task's extras). A checkpoint is named by its update count: a ``checkpoint`` column
    (the run files) or a ``step`` one (older results), or an index with ``step`` among the measures;
    ``checkpoint`` is the position in the schedule either way. Cumulative f evaluations recorded as
    ``evaluations`` (before they had the schema's name) count as ``f_evaluations``."""
    rows = ok(frame[frame["group"] == "curve"])
    by = next((c for c in ("step", "checkpoint") if c in rows and rows[c].notna().all()), None)
    if rows.empty or not {"task", "method"} <= set(rows.columns) or by is None:
        return pd.DataFrame()
    rows = rows.assign(seed=rows["seed"] if "seed" in rows else 0, _at=rows[by].astype(float))
    rows = rows[rows["measure"] != "step"] if by == "step" else rows  # the parameter already says it
    curves = rows.pivot_table(index=["task", "method", "seed", "_at"], columns="measure", values="value",
                              aggfunc="mean").reset_index().rename(columns={"_at": by})
    curves.columns.name = None
    curves = curves.sort_values(["task", "method", "seed", by])
    if by == "step" or "step" not in curves:  # the column holds the update count
        curves["step"] = curves[by]
        curves["checkpoint"] = curves.groupby(["task", "method", "seed"]).cumcount()
    if "evaluations" in curves:
        curves["f_evaluations"] = curves.get("f_evaluations", curves["evaluations"]).fillna(curves["evaluations"])
    return curves.reset_index(drop=True)


def one_value_per_cell(sub: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per ``keys`` (the latest commit holds one value per cell; means guard against a duplicated
    class); ``edge``: any of its rows at round-off."""
    cols = {c: (c, "mean") for c in ("value", "se", "ci_low", "ci_high") if c in sub.columns}
    out = sub.groupby(keys, as_index=False, observed=True).agg(**cols, **(
        {"edge": ("edge", "any")} if "edge" in sub.columns else {}))
    return out if "edge" in out else out.assign(edge=False)


def biased(frame: pd.DataFrame) -> set[str]:
    """Estimators (and the training methods of the same id) registered as biased: ``claims_unbiased`` is 0 on
    a row of theirs (results that do not record the claim mark nothing)."""
    rows = frame[frame["claims_unbiased"] < 0.5] if "claims_unbiased" in frame else frame.iloc[0:0]
    return {str(v) for c in ("estimator", "method") if c in rows for v in rows[c].dropna()}


def display_names(frame: pd.DataFrame) -> dict[str, dict[str, str]]:
    """column (``estimator``, ``task``, ``method``) -> id -> the display name the results record
    (``<column>_name``; rows without one, such as asv's timings, take it from another row of the same id).
    Where two ids would read the same, both keep their ids (a figure must never merge two estimators).
    ``biased``: the ids registered as biased (:func:`biased`), marked † in the tables."""
    out = {}
    for col in (c for c in ("estimator", "task", "method") if c in frame):
        rows = frame[[col, f"{col}_name"]].dropna().astype(str) if f"{col}_name" in frame else frame.iloc[0:0]
        known = dict(zip(rows[col], rows[f"{col}_name"])) if len(rows) else {}
        shown = {i: known.get(i) or i for i in frame[col].dropna().astype(str).unique()}
        counts = pd.Series(list(shown.values()), dtype=object).value_counts()
        out[col] = {i: (n if counts[n] == 1 else i) for i, n in shown.items()}
    return out | {"biased": {e: "†" for e in biased(frame)}}


def refuse_unknown(flag: str, names: Iterable[str], present: Sequence[str], what: str, shown: int = 40) -> None:
    """Raise ``ValueError`` for the first of ``names`` not in ``present``, naming the closest match and the
    first ``shown`` of what is available."""
    for name in (n for n in names if n not in present):
        close = difflib.get_close_matches(name, present, n=1, cutoff=0.5)
        raise ValueError(f"{flag} {name!r}: no {what} of that name in the results"
                         + (f" (did you mean {close[0]!r}?)" if close else "")
                         + f"; available: {', '.join(present[:shown]) or 'none'}"
                         + (", ..." if len(present) > shown else ""))


def on_device(cells: pd.DataFrame, measure: str, device: str | None = None) -> tuple[pd.DataFrame, str]:
    """The rows of ``measure`` on ``device`` (None: :func:`pick_device`'s), and that device."""
    sub = cells[cells["measure"] == measure] if not cells.empty else cells
    if sub.empty:
        raise NoData(f"no {measure} results")
    device = device or pick_device(sub)
    if (sub := sub[sub["device"] == device]).empty:
        raise NoData(f"no {measure} results on {device}")
    return sub, device
