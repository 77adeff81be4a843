"""One benchmark's cells in an asv result file: parameter values, statuses, numbers (used by
:mod:`reports.load` and :mod:`reports.scan`)."""
from __future__ import annotations

import ast
import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["parse_param"]

_TYPE_OF_PREFIX = {"time_": "time", "timeraw_": "time", "track_": "track",
                   "peakmem_": "peakmemory", "mem_": "memory"}
_MAX_CELLS = 1_000_000  # parameter combinations of one benchmark: more is not an asv file


def parse_param(text: Any) -> Any:
    """A ``repr()`` parameter value from asv: ``"'cpu'"`` -> ``'cpu'``, ``'16'`` -> ``16``;
    anything that is not a literal (``<function f>``) stays the string it was."""
    if not isinstance(text, str):
        # a value asv would never write (a list, a dict): kept as text, one hashable scalar
        return text if isinstance(text, (int, float, bool)) or text is None else repr(text)
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return text  # tuples, lists, dicts: keep asv's text, it is what a person reads


def _cells(value: Any, n: int) -> list[Any]:
    """A result-column value as one entry per cell (``None`` for the whole column -> Nones)."""
    if isinstance(value, list) and len(value) == n:
        return value
    return [None] * n


def _finite(x: Any) -> float:
    """A number, or NaN for null, booleans, text and ±inf (asv's --quick intervals)."""
    if x is None or isinstance(x, bool):
        return math.nan
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def _status(value: Any) -> str:
    if value is None:
        return "failed"
    if isinstance(value, float) and math.isnan(value):
        return "skipped"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "invalid"  # a track that returned a list or text: counted as failed, said so
    return "ok"


@dataclass
class _Bench:
    """One benchmark's entry in one result file, with its cells unrolled."""

    name: str
    param_names: list[str]
    combos: list[tuple[str, ...]]
    results: list[Any]
    ci_a: list[Any]
    ci_b: list[Any]
    kind: str
    unit: str | None
    started_at: Any
    params: list[list[Any]] | None = None  # each parameter's values (asv's texts)


@functools.lru_cache(maxsize=4096)
def _when(ms: int | float) -> Any:
    return pd.to_datetime(ms, unit="ms", utc=True)


def _unroll(name: str, row: Any, columns: list[str], meta: dict[str, Any],
            combos: bool = True) -> _Bench:
    """The benchmark's cells (``combos``: the parameter texts of each, in asv's order; without
    them only ``params`` says what the cells are)."""
    cols = dict(zip(columns, row if isinstance(row, list) else []))
    params = cols.get("params")
    if params is None:
        params = meta.get("params") or []
    if not isinstance(params, list) or not all(isinstance(p, list) for p in params):
        raise ValueError(f"benchmark {name}: 'params' is not a list of lists")
    n = math.prod(len(p) for p in params)
    if n > _MAX_CELLS:
        raise ValueError(f"benchmark {name}: {n} parameter combinations (more than "
                         f"{_MAX_CELLS})")
    param_names = meta.get("param_names")
    if not isinstance(param_names, list) or len(param_names) != len(params) \
            or not all(isinstance(p, str) for p in param_names):
        # benchmarks.json missing, malformed or from another version
        param_names = [f"param{i + 1}" for i in range(len(params))]
    method = name.rsplit(".", 1)[-1]
    kind = meta.get("type") if isinstance(meta.get("type"), str) else next(
        (t for pre, t in _TYPE_OF_PREFIX.items() if method.startswith(pre)), "track")
    cells = (list(itertools.product(*params)) if params else [()]) if combos else []
    results = cols.get("result")
    if not isinstance(results, list):  # every cell failed: asv stores a bare null
        results = [None] * n
    if len(results) != n:
        raise ValueError(f"benchmark {name}: {len(results)} results for {n} parameter "
                         f"combinations")
    started = cols.get("started_at")
    started = _when(started) \
        if isinstance(started, (int, float)) and not isinstance(started, bool) else pd.NaT
    return _Bench(name, param_names, cells, results, _cells(cols.get("stats_ci_99_a"), n),
                  _cells(cols.get("stats_ci_99_b"), n), kind, meta.get("unit"), started, params)
