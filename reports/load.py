"""asv result files -> one tidy pandas DataFrame (one row per benchmark cell and measure).

asv (0.6, results api_version 2) writes ``<results>/<machine>/<commit8>-<env>.json``. Each file's
``results[name]`` is a list aligned with ``result_columns`` (``result, params, version, started_at,
duration, stats_ci_99_a, stats_ci_99_b, ...``); trailing ``None`` columns are dropped and a column
that is ``None`` for every cell is stored as a bare ``None``. ``result`` is flat in
``itertools.product(*params)`` order; parameter values are ``repr()`` strings; a failed cell is
``null``, a skipped one ``NaN``. ``<results>/benchmarks.json`` holds ``param_names``, ``unit`` and
``type``. asv's own loader is internal, so this module reads the JSON directly.

Two conventions of estibench's suite are applied here (see the project's API notes):

* ``track_<m>_se`` is the standard error of ``track_<m>`` (same benchmark class, same cell): it
  becomes that row's ``se`` and its confidence interval ``value ± z·se`` at level
  :data:`CI_LEVEL` (``z`` the normal quantile). Time benchmarks keep asv's own 99 % interval
  (``stats_ci_99_a/b``); ``ci_level`` says which level each row's interval has.
* A benchmark with a parameter named ``measure`` (``<Task>Final.track_value``,
  ``<Task>Curve.track_value``) takes the measure from that parameter; otherwise the measure is the
  method name without ``track_`` (``track_variance`` -> ``variance``; ``time_estimate`` and
  ``peakmem_estimate`` keep their prefix).

>>> loaded = load_results(".asv/results")          # doctest: +SKIP
>>> loaded.frame.query("measure == 'variance'")    # doctest: +SKIP
"""
from __future__ import annotations

import ast
import itertools
import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pandas as pd

__all__ = ["NoResultsError", "Loaded", "load_results", "parse_param", "read_tidy", "write_tidy",
           "measure_of", "group_of", "CI_LEVEL", "CI_Z", "PARAM_COLUMNS_START",
           "FIXED_COLUMNS_END", "FIXED_COLUMNS"]

RESULTS_API_VERSION = 2
#: level of the intervals built from ``_se`` tracks: value ± z·se
CI_LEVEL = 0.95
#: the normal quantile z of :data:`CI_LEVEL` (1.959964...)
CI_Z = NormalDist().inv_cdf(0.5 + CI_LEVEL / 2)
_ASV_CI_LEVEL = 0.99  # asv's stats_ci_99_a/b
_SE_SUFFIX = "_se"
_TYPE_OF_PREFIX = {"time_": "time", "timeraw_": "time", "track_": "track",
                   "peakmem_": "peakmemory", "mem_": "memory"}
_SKIP_FILES = {"machine.json", "benchmarks.json"}
_MAX_CELLS = 1_000_000  # parameter combinations of one benchmark: more is not an asv file
_ALIGNMENT_GROUPS = {"Summary": "summary", "Final": "final", "Curve": "curve", "Info": "info"}

#: columns before the parameter columns, and after them
PARAM_COLUMNS_START = ["benchmark", "group", "measure", "type"]
#: ``run_started``: when the run that measured the row's gradient cell started (reports.runs)
FIXED_COLUMNS_END = ["machine", "commit", "date", "started_at", "run_started", "env", "value",
                     "se", "ci_low", "ci_high", "ci_level", "unit", "status"]
_DATE_COLUMNS = ("date", "started_at", "run_started")
FIXED_COLUMNS = PARAM_COLUMNS_START + FIXED_COLUMNS_END
_FLOAT_COLUMNS = ("value", "se", "ci_low", "ci_high", "ci_level")


class NoResultsError(Exception):
    """Nothing to report: the message says why in one line."""


@dataclass
class Loaded:
    """The tidy frame plus what the report needs to say about where it came from."""

    frame: pd.DataFrame
    param_columns: list[str]
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)  # machine.json contents
    files: list[str] = field(default_factory=list)  # result files read
    warnings: list[str] = field(default_factory=list)  # files skipped and why


def measure_of(method: str) -> str:
    """``track_variance`` -> ``variance``; ``time_estimate``, ``peakmem_estimate`` unchanged
    (a time and a memory of the same thing must not share a name)."""
    return method[len("track_"):] if method.startswith("track_") else method


def group_of(benchmark: str, param_names: Iterable[str]) -> str:
    """What kind of cell a benchmark holds: ``gradient`` (task, estimator, num_samples
    parameters), ``summary``/``final``/``curve``/``info`` (the alignment benchmarks
    ``<Task>Summary``, ``<Task>Final``, ``<Task>Curve`` with a ``task`` parameter, and
    ``<Task>Info`` with the training task's facts, wherever their module lives), ``harness`` (the
    gradient harness's facts: ``bench_gradients.GradientTaskInfo``), or ``other``."""
    names = set(param_names)
    if {"task", "estimator", "num_samples"} <= names:
        return "gradient"
    parts = benchmark.split(".")
    if len(parts) >= 3 and "gradient" in parts[-3]:
        return "harness"  # GradientTaskInfo, GradientHarness: facts of the gradient harness
    in_alignment = len(parts) >= 3 and "alignment" in parts[-3]
    if len(parts) >= 2 and (in_alignment or "task" in names):
        for suffix, group in _ALIGNMENT_GROUPS.items():
            if parts[-2].endswith(suffix) and (in_alignment or suffix == "Info"
                                               or "method" in names):
                return group
    return "other"


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


def _read_json(path: Path) -> Any:
    # Python's json accepts the bare NaN/Infinity tokens asv writes for skipped cells.
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _find_benchmarks_json(root: Path) -> Path | None:
    for candidate in (root / "benchmarks.json", root.parent / "benchmarks.json"):
        if candidate.is_file():
            return candidate
    return None


def _result_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json") if p.name not in _SKIP_FILES and p.is_file())


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


def _param_column(name: str) -> str:
    # a parameter called like a fixed column ("value", "machine") must not overwrite it
    return f"param_{name}" if name in FIXED_COLUMNS else name


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


def _unroll(name: str, row: Any, columns: list[str], meta: dict[str, Any]) -> _Bench:
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
    combos = list(itertools.product(*params)) if params else [()]
    results = cols.get("result")
    if not isinstance(results, list):  # every cell failed: asv stores a bare null
        results = [None] * n
    if len(results) != n:
        raise ValueError(f"benchmark {name}: {len(results)} results for {n} parameter "
                         f"combinations")
    started = cols.get("started_at")
    started = pd.to_datetime(started, unit="ms", utc=True) \
        if isinstance(started, (int, float)) and not isinstance(started, bool) else pd.NaT
    return _Bench(name, param_names, combos, results, _cells(cols.get("stats_ci_99_a"), n),
                  _cells(cols.get("stats_ci_99_b"), n), kind, meta.get("unit"), started)


def _rows_of_file(data: dict[str, Any], machine: str, benchmarks: dict[str, Any],
                  param_order: dict[str, None], problems: list[str]) -> Iterable[dict[str, Any]]:
    columns = data["result_columns"]
    commit = _text(data.get("commit_hash"))
    raw_date = data.get("date")
    if raw_date is not None and (isinstance(raw_date, bool)
                                 or not isinstance(raw_date, (int, float))):
        raise ValueError(f"'date' is {type(raw_date).__name__}, not milliseconds")
    date = pd.to_datetime(raw_date, unit="ms", utc=True) if raw_date else pd.NaT
    env = _text(data.get("env_name"))
    benches = {name: _unroll(name, row, columns, benchmarks.get(name, {}))
               for name, row in data["results"].items()}
    # track_<m>_se of a track_<m> in the same file: its standard errors, by cell
    se_of = {name[:-len(_SE_SUFFIX)]: b for name, b in benches.items()
             if name.endswith(_SE_SUFFIX) and name[:-len(_SE_SUFFIX)] in benches}
    se_names = {b.name for b in se_of.values()}
    for name, b in benches.items():
        if name in se_names:
            continue
        se_bench = se_of.get(name)
        if se_bench is not None and se_bench.combos != b.combos:
            raise ValueError(f"benchmark {se_bench.name}: its parameters differ from {name}'s")
        method = name.rsplit(".", 1)[-1]
        group = group_of(name, b.param_names)
        has_measure_param = "measure" in b.param_names
        param_cols = [_param_column(p) for p in b.param_names if p != "measure"]
        for p in param_cols:
            param_order.setdefault(p, None)
        invalid = 0
        for i, (combo, value) in enumerate(zip(b.combos, b.results)):
            status = _status(value)
            if status == "invalid":
                invalid, status = invalid + 1, "failed"
            values = dict(zip(b.param_names, (parse_param(raw) for raw in combo)))
            measure = str(values.pop("measure")) if has_measure_param else measure_of(method)
            rec: dict[str, Any] = {"benchmark": name, "group": group, "measure": measure,
                                   "type": b.kind}
            rec.update((_param_column(k), v) for k, v in values.items())
            v = _finite(value) if status == "ok" else math.nan
            se, lo, hi, level = math.nan, math.nan, math.nan, math.nan
            if se_bench is not None and status == "ok":
                se = _finite(se_bench.results[i])
                if not math.isnan(se) and not math.isnan(v):
                    lo, hi, level = v - CI_Z * se, v + CI_Z * se, CI_LEVEL
            elif status == "ok":
                lo, hi = _finite(b.ci_a[i]), _finite(b.ci_b[i])
                level = _ASV_CI_LEVEL if not (math.isnan(lo) or math.isnan(hi)) else math.nan
            rec.update(machine=machine, commit=commit, date=date, started_at=b.started_at,
                       env=env, value=v, se=se,
                       ci_low=lo, ci_high=hi, ci_level=level, unit=b.unit, status=status)
            yield rec
        if invalid:
            problems.append(f"{name}: {invalid} cell(s) hold something other than a number "
                            f"(counted as failed)")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return str(value)


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


def load_results(results_dir: os.PathLike | str,
                 progress: Callable[[str], None] | None = None) -> Loaded:
    """Read every machine's and commit's result files under ``results_dir`` into one tidy frame.

    Columns: ``benchmark, group, measure, type``, one column per parameter name of any benchmark
    (``task, estimator, num_samples, device, method, seed, checkpoint``, ...), then ``machine,
    commit, date`` (the commit's date, as asv records it), ``started_at`` (when the benchmark
    ran), ``env, value, se, ci_low, ci_high, ci_level, unit, status``
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
    loaded = Loaded(frame=pd.DataFrame(columns=FIXED_COLUMNS), param_columns=[])
    benchmarks: dict[str, Any] = {}
    bj = _find_benchmarks_json(root)
    if bj is None:
        loaded.warnings.append(f"no benchmarks.json next to {root}: parameter names are "
                               f"param1, param2, ... and units are unknown")
    else:
        try:
            benchmarks = {k: v for k, v in _read_json(bj).items() if isinstance(v, dict)}
        except Exception as exc:  # noqa: BLE001 - any malformed file: a warning naming it
            loaded.warnings.append(f"could not read {bj} ({_short(exc)}): parameter names are "
                                   f"param1, param2, ... and units are unknown")
    say(f"reading {len(files)} result file(s) under {root}")
    rows: list[dict[str, Any]] = []
    param_order: dict[str, None] = {}
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
            machine = _machine_name(data, machine_info, path)
            if not isinstance(data["results"], dict) or not isinstance(data["result_columns"],
                                                                        list):
                raise ValueError("'results' is not a mapping or 'result_columns' not a list")
            problems: list[str] = []
            file_rows = list(_rows_of_file(data, machine, benchmarks, param_order, problems))
        except Exception as exc:  # noqa: BLE001 - any malformed file (RecursionError too) is
            # skipped with a warning naming it; the good files still make a report
            param_order = order_before  # forget parameter names seen only in the bad file
            loaded.warnings.append(f"skipped {path}: {_short(exc)}")
            continue
        rows.extend(file_rows)
        loaded.warnings.extend(f"{path}: {p}" for p in problems)
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
        if col in _DATE_COLUMNS:
            frame[col] = pd.to_datetime(frame[col], utc=True)
        elif col in _FLOAT_COLUMNS:
            frame[col] = frame[col].astype(float)
        else:
            frame[col] = frame[col].map(lambda v: None if v is None else str(v)).astype("str")
    from .runs import attach_runs

    loaded.frame = attach_runs(frame)
    loaded.param_columns = param_cols
    counts = frame["status"].value_counts()
    say(f"read {len(frame)} cells from {len(loaded.files)} file(s) ({counts.get('ok', 0)} ok, "
        f"{counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped)")
    return loaded


def _machine_name(data: dict[str, Any], machine_info: dict[str, Any], path: Path) -> str:
    """``params.machine``, else machine.json's ``machine``, else the folder's name; a value that
    is not a non-empty string is refused (the file is skipped with a warning)."""
    params = data.get("params")
    if params is not None and not isinstance(params, dict):
        raise ValueError(f"'params' is a {type(params).__name__}, not a mapping")
    machine = (params or {}).get("machine")
    if machine is None:
        machine = machine_info.get("machine") or path.parent.name
    if not isinstance(machine, str) or not machine.strip():
        raise ValueError(f"params.machine is {type(machine).__name__} {machine!r:.60}, not a "
                         f"machine name")
    return machine


def _machine_info(folder: Path, loaded: Loaded) -> dict[str, Any]:
    path = folder / "machine.json"
    if not path.is_file():
        return {}
    try:
        info = _read_json(path)
        return {str(k): v for k, v in info.items() if k != "version"} \
            if isinstance(info, dict) else {}
    except Exception as exc:  # noqa: BLE001 - any malformed machine.json: a warning naming it
        msg = f"could not read {path} ({_short(exc)}): machine details left out"
        if msg not in loaded.warnings:
            loaded.warnings.append(msg)
        return {}


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


from .tidy import read_tidy, write_tidy  # noqa: E402 - re-exported: reports.load's API
