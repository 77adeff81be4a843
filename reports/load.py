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

import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pandas as pd

from .cells import _finite, _status, _unroll, parse_param
from .details import attach as attach_details

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
_SKIP_FILES = {"machine.json", "benchmarks.json"}
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
    #: set by :func:`reports.scan.load_for_report`, whose frame holds only the rows the report
    #: reads: the counts, runs and names of every file (:class:`reports.scan.Totals`)
    totals: Any = None


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


def _param_column(name: str) -> str:
    # a parameter called like a fixed column ("value", "machine") must not overwrite it
    return f"param_{name}" if name in FIXED_COLUMNS else name


def _rows_of_file(data: dict[str, Any], machine: str, benchmarks: dict[str, Any],
                  param_order: dict[str, None], problems: list[str],
                  cells: Callable[[str, Any], Iterable[int]] | None = None
                  ) -> Iterable[dict[str, Any]]:
    """The file's tidy rows; ``cells(name, bench)``: the indices of the cells to give (all)."""
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
    memo: dict[str, Any] = {}  # each parameter text parsed once
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
        for i in (range(len(b.results)) if cells is None else cells(name, b)):
            combo, value = b.combos[i], b.results[i]
            status = _status(value)
            if status == "invalid":
                invalid, status = invalid + 1, "failed"
            values = dict(zip(b.param_names, (_parsed(raw, memo) for raw in combo)))
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


def _parsed(raw: Any, memo: dict[str, Any]) -> Any:
    if not isinstance(raw, str):
        return parse_param(raw)
    if raw not in memo:
        memo[raw] = parse_param(raw)
    return memo[raw]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return str(value)


def value_kind(values: Iterable[Any]) -> str:
    """``int``, ``float`` or ``str``: the column type :func:`_tidy_column` gives these values
    (``none`` when none is present)."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not present:
        return "none"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "int" if all(isinstance(v, int) for v in present) else "float"
    return "str"


def join_kinds(a: str, b: str) -> str:
    """The kind of a column holding values of kinds ``a`` and ``b``."""
    if "none" in (a, b):
        return b if a == "none" else a
    if a == b:
        return a
    return "float" if {a, b} == {"int", "float"} else "str"


def _tidy_column(values: pd.Series, kind: str | None = None) -> pd.Series:
    """Parameter values -> one typed column: integers -> nullable ``Int64``, other numbers ->
    float, strings -> strings, a mix -> strings (parquet needs one type per column)."""
    kind = kind or value_kind(values)
    if kind in ("int", "float"):
        if kind == "int":
            # nullable: rows of benchmarks without this parameter hold <NA>
            return values.astype("Int64")
        return values.astype(float)
    # str(v) of each value, None and NaN missing (pandas' conversion, without a Python call
    # per row: the same text)
    return values.astype(object).astype("str")


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
    loaded = Loaded(frame=pd.DataFrame(columns=FIXED_COLUMNS), param_columns=[])
    files, benchmarks = _open_results(root, loaded)
    say(f"reading {len(files)} result file(s) under {root}")
    rows: list[dict[str, Any]] = []
    param_order: dict[str, None] = {}
    details_memo: dict[Any, Any] = {}
    for path in files:
        machine_info = _machine_info(path.parent, loaded)
        order_before = dict(param_order)
        try:
            data, machine = _checked(path, machine_info)
            problems: list[str] = []
            attach_details(data, benchmarks, root, details_memo, problems)
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
        _nothing(root, loaded)
    param_cols = list(param_order)
    frame = typed_frame(pd.DataFrame(rows, columns=PARAM_COLUMNS_START + param_cols
                                     + FIXED_COLUMNS_END, dtype=object), param_cols)
    from .runs import attach_runs

    loaded.frame = attach_runs(frame)
    loaded.param_columns = param_cols
    counts = frame["status"].value_counts()
    say(f"read {len(frame)} cells from {len(loaded.files)} file(s) ({counts.get('ok', 0)} ok, "
        f"{counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped)")
    return loaded


def _open_results(root: Path, loaded: Loaded) -> tuple[list[Path], dict[str, Any]]:
    """The result files under ``root`` and benchmarks.json's entries (a warning when absent);
    raises :class:`NoResultsError` when there are no files."""
    if not root.exists():
        raise NoResultsError(f"no results folder at {root} (run `asv run --python=same "
                             f"--set-commit-hash $(git rev-parse HEAD)` first, or pass --results)")
    if not root.is_dir():
        raise NoResultsError(f"{root} is not a folder of asv results")
    files = _result_files(root)
    if not files:
        raise NoResultsError(f"no asv result files under {root} (it holds no "
                             f"<machine>/<commit>-<env>.json)")
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
    return files, benchmarks


def _checked(path: Path, machine_info: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """One result file's contents and machine name; raises on anything not an asv file."""
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
    if not isinstance(data["results"], dict) or not isinstance(data["result_columns"], list):
        raise ValueError("'results' is not a mapping or 'result_columns' not a list")
    return data, machine


def _nothing(root: Path, loaded: Loaded) -> None:
    detail = f"; {len(loaded.warnings)} problem(s): {loaded.warnings[-1]}" \
        if loaded.warnings else ""
    raise NoResultsError(f"no readable benchmark results under {root}{detail}")


def typed_frame(frame: pd.DataFrame, param_cols: list[str],
                kinds: dict[str, str] | None = None) -> pd.DataFrame:
    """An object frame of tidy rows -> its typed columns (parameters by :func:`_tidy_column`,
    or by ``kinds`` when given: the kind each column has over every file)."""
    for col in param_cols:
        frame[col] = _tidy_column(frame[col], (kinds or {}).get(col))
    for col in FIXED_COLUMNS:
        if col in _DATE_COLUMNS:
            frame[col] = pd.to_datetime(frame[col], utc=True)
        elif col in _FLOAT_COLUMNS:
            frame[col] = frame[col].astype(float)
        elif frame[col].dtype != "str":  # text already is text; None: missing
            frame[col] = frame[col].astype(object).astype("str")
    return frame


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
