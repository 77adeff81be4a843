"""The frame and the totals :func:`reports.scan.load_for_report` returns, from its scan."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import load as L
from .details import attach as attach_details
from .runs import attach_runs
from .scan import columns_of_rows

__all__ = ["frame_of", "totals_of"]


def _columns(param_cols: list[str]) -> list[str]:
    return L.PARAM_COLUMNS_START + param_cols + L.FIXED_COLUMNS_END


def _joined(parts: list[dict[str, Any]], cols: list[str]) -> pd.DataFrame:
    """Column-wise parts ({column: array or one value}) -> one object frame of ``cols`` (the
    number columns as floats), rows in the parts' order; a column a part lacks holds None
    (NaN for numbers). One array per column: joining a DataFrame per file took seconds and
    gigabytes over 500 files."""
    sizes = [_size(part) for part in parts]
    out = {}
    for col in cols:
        number = col in L._FLOAT_COLUMNS
        kind = float if number else object
        pieces = []
        for part, n in zip(parts, sizes):
            value = part.get(col)
            if isinstance(value, np.ndarray):
                pieces.append(value.astype(kind, copy=False))
            else:
                piece = np.empty(n, dtype=kind)
                piece[:] = np.nan if number and value is None else value
                pieces.append(piece)
        out[col] = np.concatenate(pieces) if pieces else np.empty(0, dtype=kind)
    return pd.DataFrame(out, columns=cols)


def _size(part: dict[str, Any]) -> int:
    for value in part.values():
        if isinstance(value, np.ndarray):
            return len(value)
    return 1


def frame_of(scan, whole: set[int], benchmarks: dict[str, Any],
             param_cols: list[str]) -> pd.DataFrame:
    """Every row of the files in ``whole``, the kept rows of the others, typed as
    :func:`reports.load.load_results` types them."""
    parts: list[dict[str, Any]] = []
    for i, entry in enumerate(scan.files):
        if i in whole:
            data, machine = L._checked(entry.path, {"machine": entry.machine})
            attach_details(data, benchmarks, scan.root, scan.details_memo)
            rows = list(L._rows_of_file(data, machine, benchmarks, {}, []))
            if rows:
                parts.append(columns_of_rows(rows))
        else:
            parts += scan.kept.get(i, [])
    frame = _joined(parts, _columns(param_cols))
    return attach_runs(L.typed_frame(frame, param_cols, scan.kinds))


def _counts(scan) -> pd.DataFrame:
    return pd.DataFrame(scan.counts, columns=["machine", "commit", "env", "date", "benchmark",
                                              "status", "n"])


def _run_summary(scan) -> pd.DataFrame:
    """:func:`reports.runs.run_summary` of every file, from their runs' counts and names."""
    merged: dict[tuple, list] = {}
    for machine, commit, run, n, tasks, estimators, ks in scan.runs:
        got = merged.setdefault((machine, commit, run), [0, set(), set(), set()])
        got[0] += n
        got[1] |= tasks
        got[2] |= estimators
        got[3] |= ks
    cols = ["machine", "commit", "run_started", "cells", "tasks", "estimators", "K"]
    if not merged:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame([(*key, n, ", ".join(sorted(t)), ", ".join(sorted(e)),
                         ", ".join(sorted(k, key=int)))
                        for key, (n, t, e, k) in sorted(merged.items())], columns=cols)
    out = out.astype({"machine": "str", "commit": "str"})
    return out.sort_values(["machine", "run_started"])[cols].reset_index(drop=True)


def totals_of(scan, param_cols: list[str]):
    from .scan import Totals
    from .tables import runs_of_counts, status_counts_of_counts

    counts = _counts(scan)
    counts["date"] = pd.to_datetime(counts["date"], utc=True)
    status = counts.groupby("status")["n"].sum().sort_values(ascending=False)
    status.index.name = "status"
    failed = L.typed_frame(_joined([columns_of_rows(scan.failed_rows)] if scan.failed_rows
                                   else [], _columns(param_cols)), param_cols, scan.kinds)
    groups = []
    if "estimator" in param_cols:
        groups.append(sorted(scan.estimator_names))
    if "method" in param_cols:
        by_task = "task" in param_cols
        merged: dict[Any, set[str]] = {}
        for (bench, task), methods in scan.methods.items():
            key = task if by_task else bench
            if key is None or not methods:
                continue
            merged.setdefault(str(key), set()).update(methods)
        groups += [sorted(merged[k]) for k in sorted(merged)]
    return Totals(cells=int(counts["n"].sum()), status=status,
                  runs=runs_of_counts(counts), status_counts=status_counts_of_counts(counts),
                  failed=failed, run_summary=_run_summary(scan),
                  style_groups=groups)
