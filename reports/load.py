"""The one reader: asv's result files (:mod:`reports.asv`: what asv itself measures, with its 99 % intervals)
and the run files (``<results>/runs/*.parquet``: every other row, with its standard error, interval ``value ±
z·se`` at :data:`CI_LEVEL`) -> one tidy DataFrame. Of the rows of one identity (machine, commit, group,
experiment, parameters, measure) the latest ``run_started`` wins (narrowed runs accumulate). Each file is read
once per process while unchanged (cached by path, modification time and size).

>>> load_results(".asv/results").frame.query("measure == 'variance'")    # doctest: +SKIP"""
from __future__ import annotations

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

from . import asv
from .safe import csv_cell

__all__ = ["NoResultsError", "Loaded", "load_results", "CI_LEVEL", "CI_Z", "IDENTITY", "BASE_COLUMNS",
           "write_tidy", "read_tidy", "csv_safe"]

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


def _cached(path: Path, what: str, read: Callable[[], Any]) -> Any:
    st = path.stat()
    key = (str(path), what, st.st_mtime_ns, st.st_size)
    if key not in _CACHE:
        if len(_CACHE) >= 4096:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = read()
    return _CACHE[key]


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _benchmarks(root: Path, warnings: list[str]) -> dict[str, Any]:
    path = next((p for p in (root / "benchmarks.json", root.parent / "benchmarks.json") if p.is_file()), None)
    why = f"no benchmarks.json next to {root}"
    if path is not None:
        try:
            return {k: v for k, v in asv.read_json(path).items() if isinstance(v, dict)}
        except Exception as exc:  # noqa: BLE001 - any malformed file: a warning naming it
            why = f"could not read {path} ({_short(exc)})"
    warnings.append(f"{why}: parameter names are param1, param2, ... and units are unknown")
    return {}


def _asv_part(root: Path, loaded: Loaded) -> tuple[list[pd.DataFrame], dict]:
    """asv's rows per file, and each (machine, commit)'s date (ms) from asv's files. A file that is not a
    readable asv result (RecursionError included) is skipped with a warning naming it."""
    files = sorted(p for p in root.rglob("*.json") if p.name not in ("machine.json", "benchmarks.json")
                   and p.is_file() and schema.RUNS_FOLDER not in p.relative_to(root).parts[:1])
    benchmarks = _benchmarks(root, loaded.warnings) if files else {}
    parts, dates, hardware = [], {}, {}
    for path in files:
        info = asv.machine_info(path.parent, loaded.warnings)

        def read(path=path, info=info):
            data, machine = asv.checked(path, info)
            problems: list[str] = []
            rows = asv.rows_of_file(data, machine, benchmarks, problems)
            return machine, str(data.get("commit_hash") or ""), data.get("date"), pd.DataFrame(rows), problems
        try:
            name, commit, date, frame, problems = _cached(path, "asv", read)
        except Exception as exc:  # noqa: BLE001 - the good files still make a report
            loaded.warnings.append(f"skipped {path}: {_short(exc)}")
            continue
        loaded.warnings.extend(f"{path}: {p}" for p in problems)
        loaded.files.append(str(path))
        machine = _identity(hardware, name, tuple(str(info.get(k)) for k in _HARDWARE), path.parent, loaded.warnings)
        if machine != name and len(frame):
            frame = frame.assign(machine=machine, run=f"asv:{machine}:{commit[:8]}")
        loaded.machines.setdefault(machine, info)
        if date is not None:
            dates[(machine, commit)] = max(date, dates.get((machine, commit), date))
        parts.append(frame)
    return parts, dates


def _identity(seen: dict, name: str, hardware: tuple, where: object, warnings: list[str]) -> str:
    """``name``, or ``name (2)``, ... when a machine of that name but other hardware was seen first:
    results of different machines are never merged (issue 21, item 10)."""
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

    parts = []
    for path in schema.run_files(root):
        def read(path=path):
            return schema.read_run(path, None if columns is None else [
                c for c in pq.read_schema(path).names if c not in schema.COLUMNS or c in columns])
        try:
            frame = _cached(path, f"run:{columns}", read)
        except Exception as exc:  # noqa: BLE001 - a bad run file: a warning naming it
            loaded.warnings.append(f"skipped {path}: {_short(exc)}")
            continue
        loaded.files.append(str(path))
        parts.append(frame[~frame["measure"].isin(schema.ASV_MEASURED)])
    return parts


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
    """Every result under ``results`` as one tidy frame; ``columns``: the label columns to read beyond the
    identity (None: all). A file that cannot be read is skipped with a warning in ``Loaded.warnings``; raises
    :class:`NoResultsError` when there is nothing to report."""
    root, loaded = Path(results), Loaded(frame=pd.DataFrame(), param_columns=[])
    if not root.is_dir():
        _nothing(root, loaded)
    asv_parts, dates = _asv_part(root, loaded)
    wanted = None if columns is None else tuple(dict.fromkeys((*BASE_COLUMNS, *columns)))
    parts = [p for p in asv_parts + _run_part(root, wanted, loaded) if len(p)]
    if not parts:
        _nothing(root, loaded)
    frame = _typed(pd.concat(parts, ignore_index=True, sort=False), dates)
    frame = _flag_impossible(_not_run(_split_machines(_latest(frame), loaded.warnings), loaded), loaded.warnings)
    loaded.param_columns = [c for c in frame.columns if c not in _NOT_PARAMS and frame[c].notna().any()]
    loaded.frame = frame
    counts = frame["status"].value_counts()
    (progress or (lambda msg: None))(
        f"read {len(frame)} rows from {len(loaded.files)} file(s) ({counts.get('ok', 0)} ok, "
        f"{counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped)")
    return loaded


def _typed(frame: pd.DataFrame, dates: dict) -> pd.DataFrame:
    """Typed columns (integers ``Int64``, other numbers float, text text, '' missing); run-file rows get an
    interval from their se and their commit's date."""
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
    """asv keeps a cell for every combination of its grid, a narrowed run's too. A timing it stored as null
    ("failed") for a cell no run measured (no ok or failed run-file row of it on that machine and commit,
    whose run files measured others) is left out, not failed; one it stored as skipped for a cell no run
    file holds at all was outside the runs' narrowing, and says so (``not run``), apart from the cells that
    do not apply (issue 21, item 4; issue 24, item 3)."""
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
    """A recorded value its measure cannot take (a negative variance or time, a cosine of 2, inf;
    :func:`estibench.schema.in_domain`) is flagged, named in a warning, and becomes a failed cell: never
    ranked or drawn (issue 21, item 5). An ok row without a value (the producer's None) is undefined there:
    a skipped cell that says so."""
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
    frame.loc[at, "status"] = "failed"
    frame.loc[at, ["ci_low", "ci_high"]] = math.nan
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
        return path
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
