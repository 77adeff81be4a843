"""Run files: the tidy rows every setup computation of the suite writes, once per run
(:func:`estibench.schema.write_run`, ``<results>/runs/<run_started>-<source>.parquet``).

Each computation writes EVERYTHING it measured, tracked by asv or not (asv keeps only the
regression alarms; what asv measures itself, :data:`estibench.schema.ASV_MEASURED`, never goes
here):

* ``gradient-grid`` (:func:`gradient_rows`): per (task, estimator, num_samples, device) cell
  every measure of :func:`suite.measure.measure_cell` (group ``gradient``), a standard error
  as the ``se`` of its measure's row; per task the claim test's ``bias_target`` and the harness's
  ``warmup_calls`` (group ``harness``).
* ``training-<task>`` (:func:`training_rows`): the task's facts (group ``info``:
  ``higher_is_better``, with the metric's name in the ``metric_name`` column, and its
  ``wall_seconds``), per (method, seed) its alignment summary (``summary``), its final
  measures (``final``) and its curve, one row per checkpoint and measure (``curve``,
  ``checkpoint`` = the step).
* ``floor`` (:func:`floor_rows`): per cell the ``floor_ratio`` and the rest of
  :func:`suite.floor.floor_ratio` (group ``gradient``, experiment ``floor``), per (task, K,
  device) the floor's seconds (group ``harness``, experiment ``floor``).
* ``landscape-<experiment>`` (:func:`landscape_row`): the experiments' means with their
  standard errors (group ``landscape``, experiment = the benchmark class, the class's parameters
  as columns).
* ``metrics`` (:func:`other_row`): the transport metrics' gaps to the exact distance (group
  ``other``, experiment ``Gap``, parameters metric, method, words).

A failed cell is a row per measure it would have recorded with ``status="failed"`` and the
error; a skipped one likewise with ``status="skipped"`` and the reason. Every row carries its
display names (:func:`estimators.display_name`, :func:`suite.registries.task_display_name`), the
registered claim, the code versions of what produced it (:mod:`suite.versions`) and where it
came from (run, commit, machine).
"""
from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import estimators
from estibench import schema
from estibench.settings import Settings, current, environ

from . import versions
from .registries import method_display_name, task_display_name

__all__ = ["results_folder", "run_id", "write", "gradient_rows", "training_rows", "floor_rows",
           "landscape_row", "other_row", "CELL_MEASURES", "SUMMARY_EXTRA"]

#: the measures a gradient cell records (a failed or skipped cell has a row of each)
CELL_MEASURES = (*schema.GRADIENT, "detectable_bias", "bias_p", "bias_z", "claim_verdict",
                 "evaluations", "grad_evaluations", "seconds_per_estimate", "warmup_calls")
#: what a summary records besides the table's summary measures
SUMMARY_EXTRA = ("equal_time_budget",)
#: values a cell holds that repeat another (``rows_per_estimate`` is ``evaluations``)
_REPEATS = frozenset({"rows_per_estimate"})
_UNITS = {"cell_seconds": "seconds", "wall_seconds": "seconds", "equal_time_budget": "seconds",
          "ratio_of_medians": "ratio", "pathwise_ratio": "ratio",
          "pathwise_ratio_of_medians": "ratio", "floor_seconds": "seconds",
          "pathwise_floor_seconds": "seconds", "floor_multiple": "evaluations"}


# -- where and under which name ------------------------------------------------------------------
def results_folder(settings: Settings | None = None) -> Path:
    """The ``results`` setting, else the ``results_dir`` of the ``asv.conf.json`` in the folder
    asv runs from (``ASV_CONF_DIR``), else this project's ``.asv/results``."""
    settings = current() if settings is None else settings
    if settings.results:
        return Path(settings.results)
    conf_dir = environ("ASV_CONF_DIR").strip()
    if conf_dir:
        try:
            conf = json.loads((Path(conf_dir) / "asv.conf.json").read_text())
            return Path(conf_dir) / conf.get("results_dir", "results")
        except (OSError, ValueError):
            pass
    return versions.ROOT / ".asv" / "results"


def run_id(run_started: float, source: str) -> str:
    """``<run_started>-<source>``, file-name safe."""
    return f"{run_started:.6f}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', source)}"


def write(rows: Iterable[Mapping[str, Any]], source: str, run_started: float,
          settings: Settings | None = None, folder: Path | None = None) -> Path:
    """Write one computation's rows, each with where it came from (run, commit, machine,
    torch's version), as one run file; returns its path."""
    settings = current() if settings is None else settings
    run = run_id(run_started, source)
    facts = {"run": run, "run_started": float(run_started), "commit": versions.commit(),
             "machine": versions.machine(), "machine_id": versions.machine_id(),
             "torch_version": versions.torch_version()}
    out = [{**row, **facts} for row in rows if row["measure"] not in schema.ASV_MEASURED]
    metadata = {**facts, "source": source, "settings": settings.as_dict(),
                "python": sys.version.split()[0], "libraries": dict(versions.library_versions())}
    return schema.write_run(out, results_folder(settings) if folder is None else folder, run,
                            metadata)


def _row(measure: str, value, se=None, status: str = "ok", error: str = "", **columns):
    unit = _UNITS.get(measure, "")
    return schema.make_row(measure, value, status=status, error=error,
                           se=math.nan if se is None else se, unit=unit, **columns)


# -- the gradient grid ---------------------------------------------------------------------------
def _claims(spec: str) -> float:
    return 1.0 if estimators.info(spec.partition(":")[0]).info.get("unbiased", False) else 0.0


def _estimator_columns(spec: str) -> dict[str, Any]:
    return {"estimator": spec, "estimator_name": getattr(estimators, "display_name", str)(spec),
            "estimator_version": versions.estimator_version(spec), "claims_unbiased":
            _claims(spec)}


def _task_columns(task: str) -> dict[str, Any]:
    return {"task": task, "task_name": task_display_name(task),
            "task_version": versions.task_version(task)}


def gradient_rows(cells: Mapping[tuple, Mapping[str, Any]], warmup_calls: int,
                  bias_target) -> list[dict[str, Any]]:
    """The rows of the gradient grid's ``cells`` (:func:`suite.grid.compute_grid`); per task
    ``bias_target(task)``, its reference's relative error ``reference_error`` with the reference's
    kind in the ``reference_kind`` column (:func:`suite.taskbase.reference_kind`), and once
    ``warmup_calls`` (group ``harness``)."""
    rows, tasks, reference = [], [], {}
    for (task, spec, k, device), cell in cells.items():
        if task not in tasks:
            tasks.append(task)
        columns = {"group": "gradient", **_task_columns(task), **_estimator_columns(spec),
                   "num_samples": int(k), "device": device}
        if cell["status"] != "ok":
            error = "\n".join(filter(None, [cell.get("error", ""), cell.get("traceback", "")]))
            rows.extend(_row(m, None, status=cell["status"], error=error, **columns)
                        for m in CELL_MEASURES)
            continue
        values = cell["values"]
        for name, value in values.items():
            if name.endswith(schema.SE_SUFFIX) or name in _REPEATS:
                continue
            if name in ("reference_error", "reference_kind"):  # the task's: one harness row
                reference.setdefault(task, {}).setdefault(name, value)
                continue
            rows.append(_row(name, value, values.get(f"{name}{schema.SE_SUFFIX}"), **columns))
    rows.extend(_row("bias_target", float(bias_target(t)), group="harness", **_task_columns(t))
                for t in tasks)
    rows.extend(_reference_row(t, **reference.get(t, {})) for t in tasks)
    rows.append(_row("warmup_calls", float(warmup_calls), group="harness"))
    return rows


def _reference_row(task: str, reference_error=None, reference_kind=None) -> dict[str, Any]:
    """Which reference the task's cells were measured against (as the built task states it,
    else as it registered) and its relative error (0 when exact; unknown for an estimated
    reference when no cell of the task completed)."""
    from .taskbase import reference_is_estimate
    from .taskbase import reference_kind as registered_kind

    value = reference_error
    if value is None and not reference_is_estimate(task):
        value = 0.0
    status, error = ("ok", "") if value is not None else ("skipped", "no cell of the task completed")
    return _row("reference_error", value, status=status, error=error, group="harness",
                reference_kind=reference_kind or registered_kind(task), **_task_columns(task))


# -- the training tasks --------------------------------------------------------------------------
def _method_columns(method: str) -> dict[str, Any]:
    base = method.partition(":")[0]
    out = {"method": method, "method_name": method_display_name(method)}
    if base in estimators.ESTIMATORS:
        out["estimator_version"] = versions.estimator_version(method)
    elif base in estimators.LOSSES:
        out["loss_version"] = versions.loss_version(method)
    return out


def _number(value) -> float | None:
    return None if value is None else float(value)


def training_rows(name: str, task, entry: Mapping[str, Any], curve_measures: list[str]
                  ) -> list[dict[str, Any]]:
    """The rows of one training task's runs (:func:`suite.training_grid.run_task`); ``task`` is the task
    as the grid ran it (None when it could not be built)."""
    base = {"task": name, "task_name": task_display_name(name),
            "task_version": versions.training_task_version(name)}
    rows = [_row("wall_seconds", entry.get("wall_seconds"), group="info", **base)]
    if task is not None:
        rows.append(_row(schema.INFO_MEASURE, 1.0 if task.higher_is_better else 0.0,
                         group="info", metric_name=str(getattr(task, "metric", "metric")),
                         **base))
    summary_measures = [*schema.SUMMARY, *SUMMARY_EXTRA]
    if "task_error" in entry:
        rows.extend(_row(m, None, status="failed", error=entry["task_error"], group="summary",
                         **base) for m in summary_measures)
        return rows
    methods = list(task.methods) if task is not None else []
    seeds = list(task.seeds) if task is not None else []
    keys = list(dict.fromkeys([*((m, s) for m in methods for s in seeds), *entry["summary"],
                               *entry["errors"]]))
    for method, seed in keys:
        columns = {**base, **_method_columns(method), "seed": int(seed)}
        error = entry["errors"].get((method, seed))
        if error is not None or (method, seed) not in entry["summary"]:
            status, why = ("failed", error) if error is not None else ("skipped", "did not run")
            rows.extend(_row(m, None, status=status, error=why, group="summary", **columns)
                        for m in summary_measures)
            continue
        summary = entry["summary"][(method, seed)]
        rows.extend(_row(m, _number(summary.get(m)), group="summary", **columns)
                    for m in summary_measures)
        for m, value in entry["final"].get((method, seed), {}).items():
            rows.append(_row(m, _number(value), group="final", **columns))
        for step, point in sorted(entry["curves"].get((method, seed), {}).items()):
            for m in curve_measures:
                rows.append(_row(m, _number(point.get(m)), group="curve", checkpoint=int(step),
                                 **columns))
    return rows


# -- the floor -----------------------------------------------------------------------------------
#: a floor cell's ``floor_ratio`` is what :func:`suite.floor.floor_ratio` calls ``ratio``
_FLOOR_NAMES = {"ratio": "floor_ratio"}


def floor_rows(computed: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of the floor grid (:func:`suite.floor.compute_floor_grid`)."""
    rows = []
    for (task, spec, k, device), cell in computed["cells"].items():
        columns = {"group": "gradient", "experiment": "floor", **_task_columns(task),
                   **_estimator_columns(spec), "num_samples": int(k), "device": device}
        if cell["status"] != "ok":
            error = "\n".join(filter(None, [cell.get("error", ""), cell.get("traceback", "")]))
            rows.append(_row("floor_ratio", None, status=cell["status"], error=error, **columns))
            continue
        rows.extend(_row(_FLOOR_NAMES.get(m, m), _number(v), **columns)
                    for m, v in cell["values"].items())
    for (task, k, device), seconds in computed["floors"].items():
        rows.append(_row("floor_seconds", float(seconds), group="harness", experiment="floor",
                         num_samples=int(k), device=device, **_task_columns(task)))
    return rows


# -- the landscape -------------------------------------------------------------------------------
def landscape_row(experiment: str, params: Mapping[str, Any], measure: str, value, se=None,
                  group: str = "landscape") -> dict[str, Any]:
    """One landscape number: ``experiment`` (the benchmark class), its parameters as columns."""
    return _row(measure, _number(value), _number(se), group=group, experiment=experiment,
                **{k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()})


def other_row(experiment: str, params: Mapping[str, Any], measure: str, value, se=None
              ) -> dict[str, Any]:
    """Any other benchmark's number (group ``other``; the transport metrics' gaps)."""
    return landscape_row(experiment, params, measure, value, se, group="other")
