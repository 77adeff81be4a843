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

ASV_CI_LEVEL = 0.99  # asv's stats_ci_99_a/b
_MAX_CELLS = 1_000_000  # parameter combinations of one benchmark: more is not an asv file
_FIXED = frozenset(schema.COLUMNS) | {"ci_low", "ci_high", "ci_level", "date", "value", "se"}


def parse_param(text: Any) -> Any:
    """A ``repr()`` parameter value from asv: ``"'cpu'"`` -> ``'cpu'``, ``'16'`` -> ``16``; anything that is
    not a literal (``<function f>``) stays the string it was."""
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
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    return float(x) if ok else math.nan


def machine_info(folder: Path, warnings: list[str]) -> dict[str, Any]:
    """``machine.json`` of a machine's folder (without its version); {} when absent or bad."""
    path = folder / "machine.json"
    if not path.is_file():
        return {}
    try:
        info = read_json(path)
        return {str(k): v for k, v in info.items() if k != "version"} if isinstance(info, dict) else {}
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
    if data.get("version") != 2:
        raise ValueError(f"results format version {data.get('version')!r}, expected 2 (asv >= 0.6)")
    if not isinstance(data["results"], dict) or not isinstance(data.get("result_columns"), list):
        raise ValueError("'results' is not a mapping or 'result_columns' not a list")
    params = data.get("params")
    if params is not None and not isinstance(params, dict):
        raise ValueError(f"'params' is a {type(params).__name__}, not a mapping")
    machine = (params or {}).get("machine")
    machine = info.get("machine") or path.parent.name if machine is None else machine
    if not isinstance(machine, str) or not machine.strip():
        raise ValueError(f"params.machine is {type(machine).__name__} {machine!r:.60}, not a machine name")
    if data.get("date") is not None and (isinstance(data["date"], bool) or not isinstance(data["date"], (int, float))):
        raise ValueError(f"'date' is {type(data['date']).__name__}, not milliseconds")
    commit = data.get("commit_hash")
    if commit is not None and (not isinstance(commit, (str, int, float)) or isinstance(commit, bool)):
        raise ValueError(f"expected text, got {type(commit).__name__}")
    return data, machine


def _layout(name: str, cols: dict[str, Any], meta: dict[str, Any]) -> tuple[list, list, int]:
    params = cols.get("params")
    params = meta.get("params") or [] if params is None else params
    if not isinstance(params, list) or not all(isinstance(p, list) for p in params):
        raise ValueError(f"benchmark {name}: 'params' is not a list of lists")
    n = math.prod(len(p) for p in params)
    if n > _MAX_CELLS:
        raise ValueError(f"benchmark {name}: {n} parameter combinations (more than {_MAX_CELLS})")
    names = meta.get("param_names")
    if not isinstance(names, list) or len(names) != len(params) or not all(isinstance(p, str) for p in names):
        names = [f"param{i + 1}" for i in range(len(params))]  # benchmarks.json missing
    # a parameter called like a fixed column ("value", "machine") must not overwrite it
    return params, [f"param_{p}" if p in _FIXED and p not in schema.COLUMNS[3:10] else p for p in names], n


def rows_of_file(data: dict[str, Any], machine: str, benchmarks: dict[str, Any], problems: list[str]) -> list[dict]:
    """The rows of asv's own measurements in one result file (see the module's notes)."""
    rows, commit, memo = [], str(data.get("commit_hash") or ""), {}
    for name, row in data["results"].items():
        meta, method = benchmarks.get(name, {}), name.rsplit(".", 1)[-1]
        measure = method.removeprefix("track_")
        if not (measure in schema.ASV_MEASURED or method.startswith(("time_", "timeraw_", "peakmem_", "mem_"))
                or meta.get("type") in ("time", "peakmemory", "memory")):
            continue  # not asv's own measurement: the run files hold it
        cols = dict(zip(data["result_columns"], row if isinstance(row, list) else []))
        params, names, n = _layout(name, cols, meta)
        results = cols.get("result") if isinstance(cols.get("result"), list) else [None] * n
        if len(results) != n:
            raise ValueError(f"benchmark {name}: {len(results)} results for {n} parameter combinations")
        ci_a, ci_b = (cols.get(c) if isinstance(cols.get(c), list) and len(cols[c]) == n else [None] * n
                      for c in ("stats_ci_99_a", "stats_ci_99_b"))
        gradient = {"task", "estimator", "num_samples"} <= set(names)
        unit = meta.get("unit") if isinstance(meta.get("unit"), str) else ""
        invalid = 0
        for i, combo in enumerate(itertools.product(*params) if params else [()]):
            value = results[i]
            status = "failed" if value is None else "skipped" if isinstance(value, float) and math.isnan(value) \
                else "ok" if isinstance(value, (int, float)) and not isinstance(value, bool) else "invalid"
            invalid += status == "invalid"
            status = "failed" if status == "invalid" else status
            rec = {k: memo[v] if isinstance(v, str) and v in memo else memo.setdefault(v, parse_param(v))
                   if isinstance(v, str) else parse_param(v) for k, v in zip(names, combo)}
            lo, hi = _finite(ci_a[i]), _finite(ci_b[i])
            ci = status == "ok" and not (math.isnan(lo) or math.isnan(hi))
            rec.update(group="gradient" if gradient else "other", measure=measure, se=math.nan, status=status,
                       experiment="" if gradient else (name.split(".")[-2] if "." in name else ""),
                       value=float(value) if status == "ok" else math.nan,  # inf: flagged by the reader
                       ci_low=lo if ci else math.nan, ci_high=hi if ci else math.nan,
                       ci_level=ASV_CI_LEVEL if ci else math.nan, unit=unit, machine=machine, commit=commit,
                       error="asv stored null: the benchmark raised" if status == "failed" else "",
                       date=data.get("date"), run_started=_finite(cols.get("started_at")) / 1e3,
                       run=f"asv:{machine}:{commit[:8]}")
            rows.append(rec)
        if invalid:
            problems.append(f"{name}: {invalid} cell(s) hold something other than a number (counted as failed)")
    return rows
