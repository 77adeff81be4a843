"""The one reader: asv's result files (what asv itself measures: ``time_*``, ``peakmem_*`` and the measures of
:data:`estibench.schema.ASV_MEASURED`, with its 99 % intervals) and the run files (``<results>/runs/*.parquet``:
every other row, with its standard error, interval ``value ± z·se`` at :data:`CI_LEVEL`) -> one tidy DataFrame. Of
the rows of one :data:`IDENTITY` the latest ``run_started`` wins (narrowed runs accumulate); an unchanged file
(path, modification time, size) is read once per process.

asv (0.6, results api_version 2) writes ``<results>/<machine>/<commit8>-<env>.json``: each ``results[name]``
is a list aligned with ``result_columns`` (``result, params, version, started_at, duration, stats_ci_99_a,
stats_ci_99_b, ...``); ``result`` is flat in ``itertools.product(*params)`` order, parameter values are
``repr()`` texts, a failed cell is ``null``, a skipped one ``NaN``; ``benchmarks.json`` holds ``param_names``
and ``unit``.

>>> load_results(".asv/results").frame.query("measure == 'variance'")    # doctest: +SKIP"""
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

import numpy as np
import pandas as pd

from estibench import schema

from .safe import csv_cell

__all__ = ["NoResultsError", "Loaded", "load_results", "CI_LEVEL", "CI_Z", "IDENTITY", "BASE_COLUMNS",
           "write_tidy", "read_tidy", "csv_safe", "parse_param", "ASV_CI_LEVEL"]

#: level of the intervals built from standard errors: value ± z·se
CI_LEVEL = 0.95
#: the normal quantile z of :data:`CI_LEVEL` (1.959964...)
CI_Z = NormalDist().inv_cdf(0.5 + CI_LEVEL / 2)
#: the columns that say which number a row is (with the free parameter columns)
IDENTITY = ("machine", "commit", "group", "experiment", "measure") + schema.COLUMNS[3:10]
#: read always: identity, value and what the reader itself needs
BASE_COLUMNS = IDENTITY + ("value", "se", "status", "run_started", "run", "unit")
_LABELS = ("task_name", "estimator_name", "method_name", "claims_unbiased", "error")
_DERIVED = ("ci_low", "ci_high", "ci_level", "date")
_NOT_PARAMS = frozenset(schema.COLUMNS) - set(schema.COLUMNS[3:10]) | set(_DERIVED)
_FLOATS = ("value", "se", "ci_low", "ci_high", "ci_level", "claims_unbiased", "run_started")
_HARDWARE = ("cpu", "num_cpu", "ram")
_MAX_FLAGGED = 20
_CACHE: dict[tuple, Any] = {}
ASV_CI_LEVEL = 0.99  # asv's stats_ci_99_a/b
_MAX_CELLS = 1_000_000  # parameter combinations of one benchmark: more is not an asv file


def parse_param(text: Any) -> Any:
    """A ``repr()`` parameter value from asv: ``"'cpu'"`` -> ``'cpu'``, ``'16'`` -> ``16``, ``<function f>`` stays."""
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
    try:
        info = read_json(path) if (path := folder / "machine.json").is_file() else {}
        return {str(k): v for k, v in info.items() if k != "version"} if isinstance(info, dict) else {}
    except Exception as exc:  # noqa: BLE001 - any malformed machine.json: a warning naming it
        warnings.append(f"could not read {path} ({type(exc).__name__}): machine details left out")
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


def rows_of_file(data: dict[str, Any], machine: str, benchmarks: dict[str, Any], problems: list[str]) -> list[dict]:
    """The rows of asv's own measurements in one result file (see the module's notes)."""
    rows, commit = [], str(data.get("commit_hash") or "")
    for name, row in data["results"].items():
        meta, method = benchmarks.get(name, {}), name.rsplit(".", 1)[-1]
        measure = method.removeprefix("track_")
        if not (measure in schema.ASV_MEASURED or method.startswith(("time_", "timeraw_", "peakmem_", "mem_"))
                or meta.get("type") in ("time", "peakmemory", "memory")):
            continue  # not asv's own measurement: the run files hold it
        cols = dict(zip(data["result_columns"], row if isinstance(row, list) else []))
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
        names = [f"param_{p}" if p in _NOT_PARAMS else p for p in names]
        results = cols.get("result") if isinstance(cols.get("result"), list) else [None] * n
        if len(results) != n:
            raise ValueError(f"benchmark {name}: {len(results)} results for {n} parameter combinations")
        ci_a, ci_b = (cols.get(c) if isinstance(cols.get(c), list) and len(cols[c]) == n else [None] * n
                      for c in ("stats_ci_99_a", "stats_ci_99_b"))
        gradient = {"task", "estimator", "num_samples"} <= set(names)
        unit = meta.get("unit") if isinstance(meta.get("unit"), str) else ""
        invalid = 0
        for i, combo in enumerate(itertools.product(*[[parse_param(v) for v in p] for p in params])):
            value = results[i]
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            invalid += value is not None and not number
            status = "skipped" if number and math.isnan(value) else "ok" if number else "failed"
            lo, hi = _finite(ci_a[i]), _finite(ci_b[i])
            ci = status == "ok" and not (math.isnan(lo) or math.isnan(hi))
            rows.append(dict(zip(names, combo), group="gradient" if gradient else "other", measure=measure,
                             se=math.nan, status=status,
                             experiment="" if gradient else (name.split(".")[-2] if "." in name else ""),
                             value=float(value) if status == "ok" else math.nan,  # inf: flagged by the reader
                             ci_low=lo if ci else math.nan, ci_high=hi if ci else math.nan,
                             ci_level=ASV_CI_LEVEL if ci else math.nan, unit=unit, machine=machine, commit=commit,
                             error="asv stored null: the benchmark raised" if status == "failed" else "",
                             date=data.get("date"), run_started=_finite(cols.get("started_at")) / 1e3,
                             run=f"asv:{machine}:{commit[:8]}"))
        if invalid:
            problems.append(f"{name}: {invalid} cell(s) hold something other than a number (counted as failed)")
    return rows


class NoResultsError(Exception):
    """Nothing to report: the message says why in one line."""


@dataclass
class Loaded:
    """The tidy frame plus what the report says about where it came from."""

    frame: pd.DataFrame
    param_columns: list[str]
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)  # machine.json contents
    files: list[str] = field(default_factory=list)  # files read
    warnings: list[str] = field(default_factory=list)  # files skipped and why


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _benchmarks(root: Path, warnings: list[str]) -> dict[str, Any]:
    path = next((p for p in (root / "benchmarks.json", root.parent / "benchmarks.json") if p.is_file()), None)
    why = f"no benchmarks.json next to {root}"
    if path is not None:
        try:
            return {k: v for k, v in read_json(path).items() if isinstance(v, dict)}
        except Exception as exc:  # noqa: BLE001 - any malformed file: a warning naming it
            why = f"could not read {path} ({_short(exc)})"
    warnings.append(f"{why}: parameter names are param1, param2, ... and units are unknown")
    return {}


def _each(paths: Iterable[Path], what: str, read: Callable[[Path], Any], loaded: Loaded):
    """(path, ``read(path)``) of each file, cached; one that cannot be read is skipped with a warning naming it."""
    for path in paths:
        try:
            key = (str(path), what, (st := path.stat()).st_mtime_ns, st.st_size)
            if key not in _CACHE:
                if len(_CACHE) >= 4096:
                    _CACHE.pop(next(iter(_CACHE)))
                _CACHE[key] = read(path)
            result = _CACHE[key]
        except Exception as exc:  # noqa: BLE001 - any malformed file
            loaded.warnings.append(f"skipped {path}: {_short(exc)}")
            continue
        loaded.files.append(str(path))
        yield path, result


def _asv_part(root: Path, loaded: Loaded) -> tuple[list[pd.DataFrame], dict]:
    """asv's rows per file, and each (machine, commit)'s date (ms) from asv's files."""
    files = sorted(p for p in root.rglob("*.json") if p.name not in ("machine.json", "benchmarks.json")
                   and p.is_file() and schema.RUNS_FOLDER not in p.relative_to(root).parts[:1])
    benchmarks = _benchmarks(root, loaded.warnings) if files else {}
    infos = {p.parent: machine_info(p.parent, loaded.warnings) for p in files}
    parts, dates, hardware = [], {}, {}

    def read(path):
        data, machine = checked(path, infos[path.parent])
        problems: list[str] = []
        rows = pd.DataFrame(rows_of_file(data, machine, benchmarks, problems))
        return machine, str(data.get("commit_hash") or ""), data.get("date"), rows, problems
    for path, (name, commit, date, frame, problems) in _each(files, "asv", read, loaded):
        loaded.warnings.extend(f"{path}: {p}" for p in problems)
        info = infos[path.parent]
        machine = _identity(hardware, name, tuple(str(info.get(k)) for k in _HARDWARE), path.parent, loaded.warnings)
        if machine != name and len(frame):
            frame = frame.assign(machine=machine, run=f"asv:{machine}:{commit[:8]}")
        loaded.machines.setdefault(machine, info)
        if date is not None:
            dates[(machine, commit)] = max(date, dates.get((machine, commit), date))
        parts.append(frame)
    return parts, dates


def _identity(seen: dict, name: str, hardware: tuple, where: object, warnings: list[str]) -> str:
    """``name``, or ``name (2)``, ... for other hardware than the first of that name (issue 21, item 10)."""
    kinds = seen.setdefault(name, [])
    if hardware not in kinds:
        kinds.append(hardware)
        if len(kinds) > 1:
            warnings.append(f"two machines are called {name!r} with different hardware ({where}: "
                            f"{', '.join(hardware)}): shown apart as '{name} ({len(kinds)})'")
    i = kinds.index(hardware)
    return name if i == 0 else f"{name} ({i + 1})"


def _run_part(root: Path, columns: tuple[str, ...] | None, loaded: Loaded) -> list[pd.DataFrame]:
    """The rows of every run file; ``columns``: the core columns to read (free parameters always)."""
    import pyarrow.parquet as pq

    def read(path):
        return schema.read_run(path, None if columns is None else [
            c for c in pq.read_schema(path).names if c not in schema.COLUMNS or c in columns])
    return [frame[~frame["measure"].isin(schema.ASV_MEASURED)]
            for _, frame in _each(schema.run_files(root), f"run:{columns}", read, loaded)]


def _nothing(root: Path, loaded: Loaded) -> None:
    if not root.exists():
        raise NoResultsError(f"no results folder at {root} (run `estibench run` first, or pass --results)")
    if not root.is_dir():
        raise NoResultsError(f"{root} is not a folder of results")
    detail = f"; {len(loaded.warnings)} problem(s): {loaded.warnings[-1]}" if loaded.warnings else ""
    if not loaded.files:
        raise NoResultsError(f"no readable results under {root} (neither asv's <machine>/<commit>-<env>.json nor "
                             f"{schema.RUNS_FOLDER}/*.parquet){detail}")
    raise NoResultsError(f"no benchmark results under {root}{detail}")


def load_results(results: os.PathLike | str, columns: Iterable[str] | None = None,
                 progress: Callable[[str], None] | None = None) -> Loaded:
    """Every result under ``results`` as one tidy frame; ``columns``: the label columns to read beyond the identity
    (None: all). Unreadable files: skipped, in ``Loaded.warnings``; nothing to report: :class:`NoResultsError`."""
    root, loaded = Path(results), Loaded(frame=pd.DataFrame(), param_columns=[])
    if not root.is_dir():
        _nothing(root, loaded)
    asv_parts, dates = _asv_part(root, loaded)
    wanted = None if columns is None else tuple(dict.fromkeys((*BASE_COLUMNS, *columns)))
    parts = [p for p in asv_parts + _run_part(root, wanted, loaded) if len(p)]
    if not parts:
        _nothing(root, loaded)
    frame = _typed(pd.concat(parts, ignore_index=True, sort=False), dates)
    loaded.frame = frame = _flag_impossible(_not_run(_split_machines(_latest(frame), loaded.warnings), loaded),
                                            loaded.warnings)
    loaded.param_columns = [c for c in frame.columns if c not in _NOT_PARAMS and frame[c].notna().any()]
    counts = frame["status"].value_counts()
    (progress or (lambda msg: None))(
        f"read {len(frame)} rows from {len(loaded.files)} file(s) ({counts.get('ok', 0)} ok, "
        f"{counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped)")
    return loaded


def _typed(frame: pd.DataFrame, dates: dict) -> pd.DataFrame:
    """Typed columns ('' missing); run-file rows get an interval from their se and their commit's date."""
    for col in (*IDENTITY, "status", "unit", "run", *_LABELS, *_FLOATS):
        if col not in frame:
            frame[col] = math.nan if col in _FLOATS else None
    for col in _FLOATS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    se_ok = frame["se"].notna() & frame["value"].notna()
    frame.loc[se_ok, "ci_low"] = frame["value"] - CI_Z * frame["se"]
    frame.loc[se_ok, "ci_high"] = frame["value"] + CI_Z * frame["se"]
    frame.loc[se_ok, "ci_level"] = CI_LEVEL
    ms = pd.Series([dates.get(k) for k in zip(frame["machine"], frame["commit"])], index=frame.index, dtype=float)
    frame["date"] = pd.to_datetime(ms.fillna(frame["run_started"] * 1e3), unit="ms", utc=True)
    frame["run_started"] = pd.to_datetime(frame["run_started"], unit="s", utc=True)
    for col in frame.columns.difference([*_FLOATS, "date"]):
        values = frame[col]
        present = [v for v in values.dropna().unique() if not (isinstance(v, str) and v == "")]
        if present and all(pd.api.types.is_number(v) and not pd.api.types.is_bool(v) for v in present):
            number = pd.to_numeric(values.replace("", None), errors="coerce")
            frame[col] = number.astype("Int64" if all(pd.api.types.is_integer(v) for v in present) else float)
        else:
            frame[col] = values.astype(object).where(values.notna(), None).replace("", None).astype("str")
    return frame


def _split_machines(frame: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """Run-file rows of one machine name but several ``machine_id`` (other hardware): apart."""
    rows = frame[frame["machine_id"].notna()] if "machine_id" in frame else frame.iloc[0:0]
    if rows.empty or rows.groupby("machine")["machine_id"].nunique().max() < 2:
        return frame
    seen: dict = {}
    first = rows.sort_values("run_started", kind="stable").drop_duplicates(["machine", "machine_id"])
    names = {(m, i): _identity(seen, m, (str(i),), f"machine_id {i}", warnings)
             for m, i in zip(first["machine"], first["machine_id"])}
    return frame.assign(machine=[names.get((m, i), m) for m, i in zip(frame["machine"], frame["machine_id"])])


def _not_run(frame: pd.DataFrame, loaded: Loaded) -> pd.DataFrame:
    """asv keeps a timing cell for its whole grid, a narrowed run's too: one stored as null ("failed") that no
    run measured (on a machine and commit the run files measured) is left out; one stored as skipped that no run
    file holds says ``not run``, apart from the cells that do not apply (issue 21, item 4; issue 24, item 3)."""
    from_asv = frame["run"].astype(str).str.startswith("asv:")
    grad, runs = frame["group"] == "gradient", frame[~from_asv & (frame["group"] == "gradient")]
    if not (from_asv & grad).any() or runs.empty:
        return frame
    keys = ["machine", "commit", "task", "estimator", "num_samples", "device"]

    def cells(rows, columns=keys):
        return pd.MultiIndex.from_frame(rows[columns].astype(str))
    mine = from_asv & grad & cells(frame, keys[:2]).isin(cells(runs, keys[:2]))
    drop, outside = mine & (frame["status"] == "failed"), mine & (frame["status"] == "skipped")
    drop[drop] = ~cells(frame[drop]).isin(cells(runs[runs["status"].isin(["ok", "failed"])]))
    outside[outside] = ~cells(frame[outside]).isin(cells(runs))
    if drop.any():
        loaded.warnings.append(f"{int(drop.sum())} asv timing cell(s) stored as failed were not run (no run measured "
                               f"their cell: a narrowed run): left out, not counted as failed")
    frame.loc[outside, "error"] = "not run: outside the narrowing of the runs on this commit"
    return frame[~drop].reset_index(drop=True)


def _flag_impossible(frame: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """A value its measure cannot take (:func:`estibench.schema.in_domain`: a negative variance, inf) becomes a
    failed cell named in a warning, never ranked or drawn (issue 21, item 5); an ok row without one, skipped."""
    blank = (frame["status"] == "ok") & frame["value"].isna()
    frame.loc[blank, ["status", "error"]] = ["skipped", "undefined: recorded without a value (the SNR of a "
                                                        "deterministic estimator, τ of a constant series)"]
    v = frame["value"].to_numpy(float)
    maybe = (frame["status"] == "ok").to_numpy() & ~(np.isfinite(v) & (v >= 0) & (v <= 1))
    idx = [i for i in np.flatnonzero(maybe) if not schema.in_domain(frame["measure"].iat[i], v[i])]
    if not idx:
        return frame
    frame, cols = frame.copy(), ["experiment"] + [c for c in frame.columns if c not in _NOT_PARAMS]
    for i in idx[:_MAX_FLAGGED]:
        r = frame.iloc[i]
        where = ", ".join(f"{c}={r[c]}" for c in cols if not pd.isna(r[c]))
        warnings.append(f"impossible value {r['measure']} = {v[i]:.4g} ({where}; {r['machine']} @ "
                        f"{str(r['commit'])[:8]}): outside the measure's domain, not ranked")
    if len(idx) > _MAX_FLAGGED:
        warnings.append(f"... and {len(idx) - _MAX_FLAGGED} more impossible value(s), not ranked")
    at = frame.index[idx]
    frame.loc[at, "error"] = [f"impossible value {v[i]:.4g}: outside the domain of {frame['measure'].iat[i]}"
                              for i in idx]
    frame.loc[at, ["status", "ci_low", "ci_high"]] = ["failed", math.nan, math.nan]
    return frame


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per identity: the row of the latest run wins."""
    keys = [c for c in frame.columns if (c not in _NOT_PARAMS or c in IDENTITY) and c not in (
        "value", "se", "status", "run", "unit", "date", "run_started", *_DERIVED, *_LABELS)]
    frame = frame.assign(_o=frame["run_started"].fillna(pd.Timestamp(0, tz="UTC"))).sort_values("_o", kind="stable")
    return frame.drop_duplicates(subset=keys, keep="last").drop(columns="_o").sort_index().reset_index(drop=True)


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every text cell and column name made formula-free (:func:`csv_cell`)."""
    out = frame.copy()
    out.columns = [csv_cell(str(c)) for c in out.columns]
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(csv_cell)
    return out


def write_tidy(frame: pd.DataFrame, path: os.PathLike | str) -> Path:
    """Write the tidy frame as ``.csv`` or ``.parquet`` (chosen by the file's suffix)."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"--tidy expects a file ending in .csv or .parquet, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        csv_safe(frame).to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)  # pyarrow: a dependency, the reader's too
    return path


def read_tidy(path: os.PathLike | str) -> pd.DataFrame:
    """Read a frame written by :func:`write_tidy` back with its types (dates, strings)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    frame = pd.read_csv(path, dtype={c: "str" for c in schema.TEXT_COLUMNS})
    for col in ("date", "run_started"):
        if col in frame:
            frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
    return frame
