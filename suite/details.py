"""Details files: what a run measures beyond the cells asv tracks, stored beside asv's results.

asv starts one process per cell (~25 ms each on the 2-core machine), so a suite that gave every
measured number its own asv cell spent most of its budget starting processes (~11,700 cells,
~5 minutes). The split:

* **asv cells** hold what deserves a regression alarm from one commit to the next: a gradient
  cell's variance, bias, MSE and claim verdict, the time per estimate and the floor ratio, the
  headline of each training run, the landscape experiments' largest stable learning rates and
  fitted (L0, L1); and, per setup computation, a ``track_run_started`` (the anchor, below).
* **Details** hold everything else a run measured: standard errors, replicates, f evaluations,
  the claim test's statistics, every training curve and final measure, the landscape probes'
  curves. Each setup computation writes them once, to
  ``<results_dir>/details/<run_started!r>-<source>.json.gz``, in asv's own layout: per benchmark
  name (the name the number would have as an asv cell, e.g.
  ``bench_gradients.QualityBernoulli.track_variance_se``) its ``param_names``, ``params``
  (``repr()`` strings), ``unit``, the flat ``result`` in ``itertools.product(*params)`` order
  (``None`` failed, NaN skipped) and its ``anchor``.

The **anchor** is the ``track_run_started`` benchmark whose cells say which run measured each
cell (its parameter names are a subset of the details benchmark's). :mod:`reports.details`
reads a result file's anchors and adds each details cell to that file where the anchor cell
holds the run's ``run_started``: so narrowed runs that accumulate in one result file
(:mod:`suite.run`) each contribute their own cells, and a file never takes numbers from a run
it did not store.

Where: ``ESTIBENCH_DETAILS`` (a folder) if set (``python -m suite.run --config X`` sets it to X's
results folder), else the ``results_dir`` of the ``asv.conf.json`` in the folder asv runs from
(``ASV_CONF_DIR``), else this project's ``.asv/results``. A plain ``asv run --config X`` from
another folder needs ``ESTIBENCH_DETAILS`` set by hand.
"""
from __future__ import annotations

import gzip
import itertools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.details import DETAILS_FOLDER, file_name

__all__ = ["Entry", "details_dir", "write", "DETAILS_VERSION", "DETAILS_FOLDER"]

DETAILS_VERSION = 1
_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Entry:
    """One details benchmark: ``value(*combo)`` gives each cell (a float, ``None`` for failed,
    NaN for skipped), called for every combination of ``params`` in product order."""

    name: str
    param_names: Sequence[str]
    params: Sequence[Sequence[Any]]
    unit: str
    anchor: str
    anchor_params: Sequence[str]
    value: Callable[..., float | None]


def details_dir() -> Path:
    """The folder details files go to (see the module's notes)."""
    explicit = os.environ.get("ESTIBENCH_DETAILS", "").strip()
    if explicit:
        return Path(explicit)
    conf_dir = os.environ.get("ASV_CONF_DIR", "").strip()
    if conf_dir:
        try:
            conf = json.loads((Path(conf_dir) / "asv.conf.json").read_text())
            return Path(conf_dir) / conf.get("results_dir", "results") / DETAILS_FOLDER
        except (OSError, ValueError):
            pass
    return _ROOT / ".asv" / "results" / DETAILS_FOLDER


def _number(value) -> float | None:
    return None if value is None else float(value)


def write(source: str, run_started: float, entries: Sequence[Entry],
          folder: Path | None = None) -> Path:
    """Write one run's details file (replacing one of the same run and source) and return its
    path. Written whole to a temporary name and moved in, so a reader never sees half a file."""
    folder = details_dir() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    benches = {}
    for e in entries:
        result = [_number(e.value(*combo)) for combo in itertools.product(*e.params)]
        benches[e.name] = {"param_names": list(e.param_names),
                           "params": [[repr(v) for v in values] for values in e.params],
                           "unit": e.unit, "anchor": e.anchor,
                           "anchor_params": list(e.anchor_params), "result": result}
    payload = {"version": DETAILS_VERSION, "run_started": float(run_started), "source": source,
               "benchmarks": benches}
    path = folder / file_name(run_started, source)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with gzip.open(partial, "wt", encoding="utf-8") as fh:
        json.dump(payload, fh, allow_nan=True)
    os.replace(partial, path)
    return path
