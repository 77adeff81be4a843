"""asv result files -> one tidy pandas DataFrame (one row per benchmark cell).

asv (0.6, results api_version 2) writes ``<results>/<machine>/<commit8>-<env>.json``. Each file's
``results[name]`` is a list aligned with ``result_columns`` (``result, params, version, started_at,
duration, stats_ci_99_a, stats_ci_99_b, ...``); trailing ``None`` columns are dropped and a column
that is ``None`` for every cell is stored as a bare ``None``. ``result`` is flat in
``itertools.product(*params)`` order; parameter values are ``repr()`` strings; a failed cell is
``null``, a skipped one ``NaN``. ``<results>/benchmarks.json`` holds ``param_names``, ``unit`` and
``type``. asv's own loader is internal, so this module reads the JSON directly.

>>> loaded = load_results(".asv/results")          # doctest: +SKIP
>>> loaded.frame.query("measure == 'variance'")    # doctest: +SKIP
"""
from __future__ import annotations

import ast
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import pandas as pd

__all__ = ["NoResultsError", "Loaded", "load_results", "parse_param", "read_tidy", "write_tidy",
           "measure_of", "PARAM_COLUMNS_START", "FIXED_COLUMNS"]

RESULTS_API_VERSION = 2
#: prefixes asv gives benchmark methods; ``measure`` is the method name without it
_PREFIXES = ("time_", "timeraw_", "track_", "peakmem_", "mem_")
_TYPE_OF_PREFIX = {"time_": "time", "timeraw_": "time", "track_": "track",
                   "peakmem_": "peakmemory", "mem_": "memory"}
_SKIP_FILES = {"machine.json", "benchmarks.json"}

#: columns before the parameter columns, and after them
PARAM_COLUMNS_START = ["benchmark", "suite_module", "measure", "type"]
FIXED_COLUMNS_END = ["machine", "commit", "date", "env", "value", "ci_low", "ci_high", "unit",
                     "status"]
FIXED_COLUMNS = PARAM_COLUMNS_START + FIXED_COLUMNS_END


class NoResultsError(Exception):
    """Nothing to report: the message says why in one line."""


@dataclass
class Loaded:
    """The tidy frame plus what the report needs to say about where it came from."""

    frame: pd.DataFrame
    param_columns: List[str]
    machines: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # machine.json contents
    files: List[str] = field(default_factory=list)  # result files read
    warnings: List[str] = field(default_factory=list)  # files skipped and why


def measure_of(method: str) -> str:
    """``track_variance`` -> ``variance``; ``time_estimate`` -> ``estimate``."""
    for prefix in _PREFIXES:
        if method.startswith(prefix):
            return method[len(prefix):]
    return method


def parse_param(text: Any) -> Any:
    """A ``repr()`` parameter value from asv: ``"'cpu'"`` -> ``'cpu'``, ``'16'`` -> ``16``;
    anything that is not a literal (``<function f>``) stays the string it was."""
    if not isinstance(text, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return text  # tuples, lists, dicts: keep asv's text, it is what a person reads


def _read_json(path: Path) -> Any:
    # Python's json accepts the bare NaN/Infinity tokens asv writes for skipped cells.
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _find_benchmarks_json(root: Path) -> Optional[Path]:
    for candidate in (root / "benchmarks.json", root.parent / "benchmarks.json"):
        if candidate.is_file():
            return candidate
    return None


def _result_files(root: Path) -> List[Path]:
    files = [p for p in root.rglob("*.json") if p.name not in _SKIP_FILES and p.is_file()]
    return sorted(files)


def _cells(value: Any, n: int) -> List[Any]:
    """A result-column value as one entry per cell (``None`` for the whole column -> Nones)."""
    if isinstance(value, list) and len(value) == n:
        return value
    return [None] * n


def _as_float(x: Any) -> float:
    if x is None or isinstance(x, bool):
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _param_column(name: str) -> str:
    # a parameter called like a fixed column ("value", "machine") must not overwrite it
    return f"param_{name}" if name in FIXED_COLUMNS else name


def _rows_of_file(data: Dict[str, Any], machine: str, benchmarks: Dict[str, Any],
                  param_order: Dict[str, None]) -> Iterable[Dict[str, Any]]:
    columns = data["result_columns"]
    commit = data.get("commit_hash") or ""
    date = pd.to_datetime(data["date"], unit="ms", utc=True) if data.get("date") else pd.NaT
    env = data.get("env_name") or ""
    for name, row in data["results"].items():
        cols = dict(zip(columns, row if isinstance(row, list) else []))
        meta = benchmarks.get(name, {})
        params = cols.get("params")
        if params is None:
            params = meta.get("params") or []
        method = name.rsplit(".", 1)[-1]
        suite_module = name.split(".", 1)[0] if "." in name else ""
        param_names = list(meta.get("param_names") or [])
        if len(param_names) != len(params):  # benchmarks.json missing or from another version
            param_names = [f"param{i + 1}" for i in range(len(params))]
        param_cols = [_param_column(p) for p in param_names]
        for p in param_cols:
            param_order.setdefault(p, None)
        kind = meta.get("type") or next(
            (t for pre, t in _TYPE_OF_PREFIX.items() if method.startswith(pre)), "track")
        unit = meta.get("unit")
        combos = list(itertools.product(*params)) if params else [()]
        n = len(combos)
        results = cols.get("result")
        if not isinstance(results, list):  # every cell failed: asv stores a bare null
            results = [None] * n
        if len(results) != n:
            raise ValueError(f"benchmark {name}: {len(results)} results for {n} parameter "
                             f"combinations")
        ci_a = _cells(cols.get("stats_ci_99_a"), n)
        ci_b = _cells(cols.get("stats_ci_99_b"), n)
        for combo, value, lo, hi in zip(combos, results, ci_a, ci_b):
            if value is None:
                status = "failed"
            elif isinstance(value, float) and math.isnan(value):
                status = "skipped"
            else:
                status = "ok"
            rec: Dict[str, Any] = {
                "benchmark": name, "suite_module": suite_module, "measure": measure_of(method),
                "type": kind,
            }
            for col, raw in zip(param_cols, combo):
                rec[col] = parse_param(raw)
            rec.update(machine=machine, commit=commit, date=date, env=env,
                       value=_as_float(value) if status == "ok" else math.nan,
                       ci_low=_as_float(lo), ci_high=_as_float(hi), unit=unit, status=status)
            yield rec


def _tidy_column(values: pd.Series) -> pd.Series:
    """Parameter values -> one typed column: integers -> nullable ``Int64``, other numbers ->
    float, strings -> strings, a mix -> strings (parquet needs one type per column)."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if all(isinstance(v, int) for v in present):
            # nullable: rows of benchmarks without this parameter hold <NA>
            return values.astype("Int64")
        return values.astype(float)
    return values.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v))
                      else str(v)).astype("str")


def _empty_frame(param_cols: Sequence[str] = ()) -> pd.DataFrame:
    return pd.DataFrame(columns=PARAM_COLUMNS_START + list(param_cols) + FIXED_COLUMNS_END)


def load_results(results_dir: os.PathLike | str, progress=None) -> Loaded:
    """Read every machine's and commit's result files under ``results_dir`` into one tidy frame.

    Columns: ``benchmark, suite_module, measure, type``, one column per parameter name (any
    benchmark's), then ``machine, commit, date, env, value, ci_low, ci_high, unit, status``
    (``ok``/``failed``/``skipped``). A corrupt or unreadable file is skipped with a warning (in
    ``Loaded.warnings``). Raises :class:`NoResultsError` when there is nothing to report.
    """
    say = progress or (lambda msg: None)
    root = Path(results_dir)
    if not root.exists():
        raise NoResultsError(f"no results folder at {root} (run `asv run --python=same "
                             f"--set-commit-hash $(git rev-parse HEAD)` first, or pass --results)")
    if not root.is_dir():
        raise NoResultsError(f"{root} is not a folder of asv results")
    files = _result_files(root)
    if not files:
        raise NoResultsError(f"no asv result files under {root} (it holds no "
                             f"<machine>/<commit>-<env>.json)")
    loaded = Loaded(frame=_empty_frame(), param_columns=[])
    benchmarks: Dict[str, Any] = {}
    bj = _find_benchmarks_json(root)
    if bj is None:
        loaded.warnings.append(f"no benchmarks.json next to {root}: parameter names are "
                               f"param1, param2, ... and units are unknown")
    else:
        try:
            benchmarks = {k: v for k, v in _read_json(bj).items() if isinstance(v, dict)}
        except (OSError, ValueError, AttributeError) as exc:
            loaded.warnings.append(f"could not read {bj} ({_short(exc)}): parameter names are "
                                   f"param1, param2, ... and units are unknown")
    say(f"reading {len(files)} result file(s) under {root}")
    rows: List[Dict[str, Any]] = []
    param_order: Dict[str, None] = {}
    for path in files:
        machine_info = _machine_info(path.parent, loaded)
        order_before = dict(param_order)
        try:
            data = _read_json(path)
            if not isinstance(data, dict) or "results" not in data:
                raise ValueError("not an asv result file (no 'results')")
            version = data.get("version")
            if version != RESULTS_API_VERSION:
                raise ValueError(f"results format version {version!r}, expected "
                                 f"{RESULTS_API_VERSION} (asv >= 0.6)")
            if "result_columns" not in data:
                raise ValueError("no 'result_columns'")
            machine = ((data.get("params") or {}).get("machine")
                       or machine_info.get("machine") or path.parent.name)
            file_rows = list(_rows_of_file(data, machine, benchmarks, param_order))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            param_order = order_before  # forget parameter names seen only in the bad file
            loaded.warnings.append(f"skipped {path}: {_short(exc)}")
            continue
        rows.extend(file_rows)
        loaded.files.append(str(path))
        loaded.machines.setdefault(machine, machine_info)
    if not rows:
        detail = f"; {len(loaded.warnings)} problem(s): {loaded.warnings[-1]}" \
            if loaded.warnings else ""
        raise NoResultsError(f"no readable benchmark results under {root}{detail}")
    param_cols = list(param_order)
    frame = pd.DataFrame(rows, columns=PARAM_COLUMNS_START + param_cols + FIXED_COLUMNS_END,
                         dtype=object)
    for col in param_cols:
        frame[col] = _tidy_column(frame[col])
    for col in FIXED_COLUMNS:
        if col == "date":
            frame[col] = pd.to_datetime(frame[col], utc=True)
        elif col in ("value", "ci_low", "ci_high"):
            frame[col] = frame[col].astype(float)
        else:
            frame[col] = frame[col].astype("str")
    loaded.frame = frame
    loaded.param_columns = param_cols
    say(f"read {len(frame)} cells from {len(loaded.files)} file(s) "
        f"({(frame['status'] == 'ok').sum()} ok, {(frame['status'] == 'failed').sum()} failed, "
        f"{(frame['status'] == 'skipped').sum()} skipped)")
    return loaded


def _machine_info(folder: Path, loaded: Loaded) -> Dict[str, Any]:
    path = folder / "machine.json"
    if not path.is_file():
        return {}
    try:
        info = _read_json(path)
        return {k: v for k, v in info.items() if k != "version"} if isinstance(info, dict) else {}
    except (OSError, ValueError) as exc:
        msg = f"could not read {path} ({_short(exc)}): machine details left out"
        if msg not in loaded.warnings:
            loaded.warnings.append(msg)
        return {}


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- export ------------------------------------------------------------------------------------
def write_tidy(frame: pd.DataFrame, path: os.PathLike | str) -> Path:
    """Write the tidy frame as ``.csv`` or ``.parquet`` (chosen by the file's suffix)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"--tidy expects a file ending in .csv or .parquet, got {path.name!r}")
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        try:
            frame.to_parquet(path, index=False)
        except ImportError as exc:
            raise ValueError(f"writing parquet needs pyarrow (pip install pyarrow): "
                             f"{_short(exc)}") from None
    return path


def read_tidy(path: os.PathLike | str) -> pd.DataFrame:
    """Read a frame written by :func:`write_tidy` back with its types (dates, strings)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    text_cols = [c for c in FIXED_COLUMNS if c not in ("date", "value", "ci_low", "ci_high")]
    frame = pd.read_csv(path, dtype={c: "str" for c in text_cols})
    frame["date"] = pd.to_datetime(frame["date"], utc=True)
    return frame
