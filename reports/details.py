"""Details files (written by :mod:`suite.details`) joined into asv result files as they are read.

A suite run stores in asv only the cells that deserve a regression alarm; the rest of what it
measured (standard errors, replicates, f evaluations, the claim test's statistics, training
curves and final measures, landscape curves) it writes once per setup computation to
``<results>/details/<run_started!r>-<source>.json.gz``, each benchmark in asv's layout with an
``anchor``: the ``track_run_started`` benchmark whose cells say which run measured each cell.

:func:`attach` adds a details benchmark to a result file as if asv had stored it, cell by cell
where the file's anchor cell holds that run's ``run_started`` (narrowed runs accumulated in one
file each bring their own cells; a cell no run of the file measured is NaN, skipped). A benchmark
asv itself stored in the file (results written before details existed) is left as it is.
Standard library only, like :mod:`reports.measures`.
"""
from __future__ import annotations

import glob
import gzip
import itertools
import json
import math
from pathlib import Path
from typing import Any

__all__ = ["attach", "file_name", "load", "DETAILS_FOLDER"]

DETAILS_FOLDER = "details"
_ANCHOR_SUFFIX = ".track_run_started"


def file_name(run_started: float, source: str) -> str:
    """``<run_started!r>-<source>.json.gz``: one setup computation's details file."""
    return f"{float(run_started)!r}-{source}.json.gz"


def load(path: Path) -> dict[str, Any]:
    """A details file's contents (raises on anything that is not one)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        payload = json.load(fh)
    if not isinstance(payload, dict) or not isinstance(payload.get("benchmarks"), dict):
        raise ValueError("not an estibench details file (no 'benchmarks')")
    return payload


def _entry_problem(entry: Any) -> str | None:
    """Why a details benchmark cannot be joined (None: it can)."""
    if not isinstance(entry, dict):
        return "not a mapping"
    names, params, result = entry.get("param_names"), entry.get("params"), entry.get("result")
    if not isinstance(entry.get("anchor"), str):
        return "no anchor"
    if not (isinstance(names, list) and isinstance(params, list) and len(names) == len(params)
            and all(isinstance(p, list) for p in params)):
        return "param_names and params do not match"
    if not isinstance(result, list) or len(result) != math.prod(len(p) for p in params):
        return "result does not have one value per parameter combination"
    on = entry.get("anchor_params")
    if not isinstance(on, list) or not set(on) <= set(names):
        return "anchor_params is not a subset of param_names"
    return None


def _valid_entries(path: Path, problems: list[str] | None) -> dict[str, Any] | None:
    """The benchmarks of a details file that can be joined (None when the file cannot be read);
    each one skipped is named in ``problems``."""
    try:
        payload = load(path)
    except Exception as exc:  # noqa: BLE001 - a bad file is skipped, said so
        if problems is not None:
            problems.append(f"details file {path} skipped: {type(exc).__name__}: {exc}")
        return None
    valid = {}
    for name, entry in payload["benchmarks"].items():
        why = _entry_problem(entry)
        if why is None:
            valid[name] = entry
        elif problems is not None:
            problems.append(f"details file {path}: benchmark {name} skipped: {why}")
    return valid


def _runs(results: dict[str, Any], ri: int) -> set[float]:
    out: set[float] = set()
    for name, row in results.items():
        if name.endswith(_ANCHOR_SUFFIX) and isinstance(row, list) and isinstance(row[ri], list):
            out.update(float(v) for v in row[ri] if isinstance(v, (int, float))
                       and not isinstance(v, bool) and math.isfinite(v))
    return out


def _anchor_cells(row: list, ri: int, pi: int) -> dict[tuple, Any]:
    params, result = row[pi], row[ri]
    if not isinstance(params, list) or not isinstance(result, list):
        return {}
    return dict(zip(itertools.product(*params), result))


def attach(data: dict[str, Any], benchmarks: dict[str, Any], root: Path,
           memo: dict[Any, Any] | None = None, problems: list[str] | None = None) -> None:
    """Add to ``data`` (one asv result file's contents) the details benchmarks of the runs its
    anchors name, found under ``root/details``; their ``param_names`` and ``unit`` go into
    ``benchmarks`` (benchmarks.json's entries). ``memo`` caches parsed files across calls; an
    unreadable details file is skipped with a line in ``problems``."""
    memo = {} if memo is None else memo
    folder = Path(root) / DETAILS_FOLDER
    results, columns = data.get("results"), data.get("result_columns")
    if not isinstance(results, dict) or not isinstance(columns, list) \
            or "result" not in columns or "params" not in columns or not folder.is_dir():
        return
    ri, pi = columns.index("result"), columns.index("params")
    stored = set(results)
    merged: dict[str, dict[tuple, Any]] = {}
    layout: dict[str, tuple[list, dict]] = {}  # name -> (params, its entry), latest run last
    anchors: dict[str, dict[tuple, Any]] = {}
    for run in sorted(_runs(results, ri)):
        for path in sorted(folder.glob(glob.escape(repr(run)) + "-*.json.gz")):
            if path not in memo:  # read and checked once, however many files name the run
                memo[path] = _valid_entries(path, problems)
            for name, entry in (memo[path] or {}).items():
                anchor = entry["anchor"]
                if name in stored or anchor not in results:
                    continue
                if anchor not in anchors:
                    anchors[anchor] = _anchor_cells(results[anchor], ri, pi)
                on = [entry["param_names"].index(p) for p in entry["anchor_params"]]
                cells = merged.setdefault(name, {})
                owner = anchors[anchor]
                for combo, value in zip(itertools.product(*entry["params"]), entry["result"]):
                    if owner.get(tuple(combo[j] for j in on)) == run:
                        cells[combo] = value
                layout[name] = (entry["params"], entry)
    for name, (params, entry) in layout.items():
        base = name[:-3] if name.endswith("_se") else None
        if base in results and isinstance(results[base], list):
            params = results[base][pi]  # a standard error takes its value's layout
        cells = merged[name]
        row: list[Any] = [None] * len(columns)
        row[ri] = [cells.get(combo, math.nan) for combo in itertools.product(*params)]
        row[pi] = params
        anchor_row = results[entry["anchor"]]
        for col in ("started_at", "version"):
            if col in columns and columns.index(col) < len(anchor_row):
                row[columns.index(col)] = anchor_row[columns.index(col)]
        results[name] = row
        benchmarks.setdefault(name, {"name": name, "param_names": entry["param_names"],
                                     "unit": entry.get("unit"), "type": "track"})
