"""asv result files -> tidy rows of what asv itself measures (``time_*``, ``peakmem_*`` and the measures of
:data:`estibench.schema.ASV_MEASURED`); every other number comes from run files.

asv (0.6, results api_version 2) writes ``<results>/<machine>/<commit8>-<env>.json``: each ``results[name]``
is a list aligned with ``result_columns`` (``result, params, version, started_at, duration, stats_ci_99_a,
stats_ci_99_b, ...``); ``result`` is flat in ``itertools.product(*params)`` order, parameter values are
``repr()`` texts, a failed cell is ``null``, a skipped one ``NaN``; ``benchmarks.json`` holds ``param_names``
and ``unit``."""
from __future__ import annotations

import ast
import itertools
import json
import math
from pathlib import Path
from typing import Any

from estibench import schema

__all__ = ["parse_param", "read_json", "checked", "rows_of_file", "machine_info", "ASV_CI_LEVEL"]

RESULTS_API_VERSION = 2
ASV_CI_LEVEL = 0.99  # asv's stats_ci_99_a/b
_MAX_CELLS = 1_000_000  # parameter combinations of one benchmark: more is not an asv file
_ASV_PREFIXES = ("time_", "timeraw_", "peakmem_", "mem_")


def parse_param(text: Any) -> Any:
    """A ``repr()`` parameter value from asv: ``"'cpu'"`` -> ``'cpu'``, ``'16'`` -> ``16``;
    anything that is not a literal (``<function f>``) stays the string it was."""
    if not isinstance(text, str):
        return text if isinstance(text, (int, float, bool)) or text is None else repr(text)
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    return value if isinstance(value, (str, int, float, bool)) or value is None else text


def read_json(path: Path) -> Any:
    # Python's json accepts the bare NaN/Infinity tokens asv writes for skipped cells
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _finite(x: Any) -> float:
    if x is None or isinstance(x, bool) or not isinstance(x, (int, float)):
        return math.nan
    return float(x) if math.isfinite(x) else math.nan


def _status(value: Any) -> str:
    if value is None:
        return "failed"
    if isinstance(value, float) and math.isnan(value):
        return "skipped"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "invalid"
    return "ok"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return str(value)


def machine_info(folder: Path, warnings: list[str]) -> dict[str, Any]:
    """``machine.json`` of a machine's folder (without its version); {} when absent or bad."""
    path = folder / "machine.json"
    if not path.is_file():
        return {}
    try:
        info = read_json(path)
        return {str(k): v for k, v in info.items() if k != "version"} \
            if isinstance(info, dict) else {}
    except Exception as exc:  # noqa: BLE001 - any malformed machine.json: a warning naming it
        msg = f"could not read {path} ({type(exc).__name__}): machine details left out"
        if msg not in warnings:
            warnings.append(msg)
        return {}


def checked(path: Path, info: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """One result file's contents and machine name; raises on anything not an asv file."""
    data = read_json(path)
    if not isinstance(data, dict) or "results" not in data:
        raise ValueError("not an asv result file (no 'results')")
    if data.get("version") != RESULTS_API_VERSION:
        raise ValueError(f"results format version {data.get('version')!r}, expected "
                         f"{RESULTS_API_VERSION} (asv >= 0.6)")
    if not isinstance(data["results"], dict) or not isinstance(data.get("result_columns"), list):
        raise ValueError("'results' is not a mapping or 'result_columns' not a list")
    params = data.get("params")
    if params is not None and not isinstance(params, dict):
        raise ValueError(f"'params' is a {type(params).__name__}, not a mapping")
    machine = (params or {}).get("machine")
    if machine is None:
        machine = info.get("machine") or path.parent.name
    if not isinstance(machine, str) or not machine.strip():
        raise ValueError(f"params.machine is {type(machine).__name__} {machine!r:.60}, not a " f"machine name")
    raw_date = data.get("date")
    if raw_date is not None and (isinstance(raw_date, bool) or not isinstance(raw_date, (int, float))):
        raise ValueError(f"'date' is {type(raw_date).__name__}, not milliseconds")
    return data, machine


def _measured_by_asv(name: str, meta: dict[str, Any]) -> str | None:
    """The measure of a benchmark asv itself measures, else None."""
    method = name.rsplit(".", 1)[-1]
    measure = method.removeprefix("track_")
    if measure in schema.ASV_MEASURED or method.startswith(_ASV_PREFIXES) \
            or meta.get("type") in ("time", "peakmemory", "memory"):
        return measure
    return None


def _layout(name: str, cols: dict[str, Any], meta: dict[str, Any]) -> tuple[list, list, int]:
    params = cols.get("params")
    if params is None:
        params = meta.get("params") or []
    if not isinstance(params, list) or not all(isinstance(p, list) for p in params):
        raise ValueError(f"benchmark {name}: 'params' is not a list of lists")
    n = math.prod(len(p) for p in params)
    if n > _MAX_CELLS:
        raise ValueError(f"benchmark {name}: {n} parameter combinations (more than " f"{_MAX_CELLS})")
    names = meta.get("param_names")
    if not isinstance(names, list) or len(names) != len(params) \
            or not all(isinstance(p, str) for p in names):
        names = [f"param{i + 1}" for i in range(len(params))]  # benchmarks.json missing
    return params, names, n


_FIXED = frozenset(schema.COLUMNS) | {"ci_low", "ci_high", "ci_level", "date", "value", "se"}


def _column(name: str) -> str:
    # a parameter called like a fixed column ("value", "machine") must not overwrite it
    return f"param_{name}" if name in _FIXED and name not in schema.COLUMNS[3:10] else name


def rows_of_file(data: dict[str, Any], machine: str, benchmarks: dict[str, Any],
                 problems: list[str]) -> list[dict[str, Any]]:
    """The rows of asv's own measurements in one result file (see the module's notes)."""
    columns, rows = data["result_columns"], []
    commit, date = _text(data.get("commit_hash")), data.get("date")
    memo: dict[Any, Any] = {}
    for name, row in data["results"].items():
        meta = benchmarks.get(name, {})
        measure = _measured_by_asv(name, meta)
        if measure is None:
            continue
        cols = dict(zip(columns, row if isinstance(row, list) else []))
        params, names, n = _layout(name, cols, meta)
        results = cols.get("result") if isinstance(cols.get("result"), list) else [None] * n
        if len(results) != n:
            raise ValueError(f"benchmark {name}: {len(results)} results for {n} parameter " f"combinations")
        ci_a, ci_b = (cols.get(c) if isinstance(cols.get(c), list) and len(cols[c]) == n
                      else [None] * n for c in ("stats_ci_99_a", "stats_ci_99_b"))
        started = _finite(cols.get("started_at")) / 1e3
        gradient = {"task", "estimator", "num_samples"} <= set(names)
        cls = name.split(".")[-2] if name.count(".") >= 1 else ""
        invalid = 0
        for i, combo in enumerate(itertools.product(*params) if params else [()]):
            status = _status(results[i])
            if status == "invalid":
                invalid, status = invalid + 1, "failed"
            rec = {_column(k): (memo[v] if v in memo else memo.setdefault(v, parse_param(v)))
                   if isinstance(v, str) else parse_param(v) for k, v in zip(names, combo)}
            lo, hi = _finite(ci_a[i]), _finite(ci_b[i])
            ok = status == "ok" and not (math.isnan(lo) or math.isnan(hi))
            rec.update(group="gradient" if gradient else "other", experiment="" if gradient else cls, measure=measure,
                       value=float(results[i]) if status == "ok" else math.nan,  # inf: flagged
                       se=math.nan, ci_low=lo if ok else math.nan, ci_high=hi if ok else math.nan,
                       ci_level=ASV_CI_LEVEL if ok else math.nan, status=status,
                       error="asv stored null: the benchmark raised" if status == "failed" else "",
                       unit=_text(meta.get("unit")) if isinstance(meta.get("unit"), str) else "",
                       machine=machine, commit=commit, date=date, run_started=started,
                       run=f"asv:{machine}:{commit[:8]}")
            rows.append(rec)
        if invalid:
            problems.append(f"{name}: {invalid} cell(s) hold something other than a number " f"(counted as failed)")
    return rows
