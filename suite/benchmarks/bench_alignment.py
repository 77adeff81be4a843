"""asv benchmarks for metric alignment: every registered training task x method x seed.

For each training task (``multilabel_digits`` -> class prefix ``MultilabelDigits``):

asv tracks (one process per cell, so only what deserves a regression alarm):

* ``<Task>Summary.track_<measure>``, params (task, method, seed), for the measures of
  :data:`TRACKED_SUMMARY`: the final metric at equal steps and at equal wall-clock.
* ``<Task>Info.track_higher_is_better``, params (task): 1.0 when the task's headline metric is
  better higher, 0.0 when lower, so that a report reads each task's direction from the results;
  and ``track_run_started``: when the task's runs started (the anchor of its details).

The task's details file (:mod:`suite.details`; the report reads it as if asv had stored it)
holds the rest, under the names the numbers would have as asv cells:

* ``<Task>Summary.track_<measure>``: the other summary measures of the table of measures
  (:data:`reports.measures.SUMMARY`, computed by :func:`suite.training.summarise`: Kendall tau
  of loss vs metric, metric gain per second, seconds and evaluations per update).
* ``<Task>Final.track_value``, params (task, method, seed, measure): the task's
  ``final_measures`` (e.g. the best validation threshold and F1 there).
* ``<Task>Curve.track_value``, params (task, method, seed, measure, step): the training curve,
  one cell per checkpoint: seconds, loss, metric and the task's ``checkpoint_measures``
  (:func:`suite.grid.curve_measures`).

Every run happens once per asv run, in ``setup_cache`` (:func:`suite.grid.compute_runs`, shared
by every class here; reused from disk on the same code and machine,
:func:`suite.benchutil.disk_cached`), and the tracks read the numbers: each cell's
process loads only its task's runs (:func:`suite.benchutil.spill`). A task or
a run that raises fails its own cells; the rest complete. Kendall tau is undefined (NaN, shown as
n/a) when the metric or the loss never changes.

``ESTIBENCH_TRAINING_TASKS`` (comma-separated) narrows the grid.
"""
from __future__ import annotations

import math

from reports.measures import MEASURES, SUMMARY
from suite import details, grid
from suite.benchutil import class_prefix, disk_cached, make_track, spill, unspill

#: the summary measures asv tracks (a regression alarm each); the others go to the details file
TRACKED_SUMMARY = ("final_metric_equal_steps", "final_metric_equal_time")
def layout(name: str) -> dict:
    """A training task's class prefix and the params of its summary, final and curve cells."""
    task = grid.training_task(name)  # cheap: constructors build no data
    return {"prefix": class_prefix(name), "base": [[name], list(task.methods), list(task.seeds)],
            "final": list(task.final_measures),
            "curve": [grid.curve_measures(task), list(task.schedule())]}


class _Alignment:
    timeout = 600

    def setup_cache(self):
        runs = disk_cached("training-runs", grid.compute_runs)
        for name, entry in runs.items():
            if "task_error" not in entry:
                write_details(name, entry)
        return {"spilled": spill(runs, "training-runs")}

    setup_cache.timeout = 3600

    def setup(self, cache, task, method, seed, *rest):
        # failures are raised in the bodies (asv marks the cell failed); nothing to skip here
        pass

    @staticmethod
    def entry(cache, task) -> dict:
        entry = unspill(cache["spilled"], task) if "spilled" in cache else cache.get(task)
        if entry is None:
            raise RuntimeError(f"training task {task!r} did not run")
        if "task_error" in entry:
            raise RuntimeError(f"training task {task!r} failed: {entry['task_error']}")
        return entry

    @staticmethod
    def lookup(cache, part, task, method, seed):
        entry = _Alignment.entry(cache, task)
        if (method, seed) in entry["errors"]:
            raise RuntimeError(f"{task}/{method}/seed {seed} failed: "
                               f"{entry['errors'][(method, seed)]}")
        return entry[part][(method, seed)]


def _number(table: dict, *keys):
    for key in keys:
        if not isinstance(table, dict) or key not in table:
            return math.nan
        table = table[key]
    return math.nan if table is None else float(table)


def write_details(name: str, entry: dict) -> None:
    """The task's details file (:mod:`suite.details`): the summary measures asv does not track,
    the final measures and the curves, anchored on ``<Task>Info.track_run_started``."""
    cells = layout(name)
    prefix, base = cells["prefix"], cells["base"]
    names = ["task", "method", "seed"]
    anchor = f"bench_alignment.{prefix}Info.track_run_started"

    def value_of(part, *keys):
        def value(task, method, seed, *rest):
            if (method, seed) in entry["errors"]:
                return None
            return _number(entry[part], (method, seed), *keys, *rest)
        return value

    entries = [details.Entry(f"bench_alignment.{prefix}Summary.track_{key}", names, base,
                             SUMMARY[key].unit, anchor, ["task"], value_of("summary", key))
               for key in SUMMARY if key not in TRACKED_SUMMARY]
    if cells["final"]:
        entries.append(details.Entry(f"bench_alignment.{prefix}Final.track_value",
                                     names + ["measure"], base + [cells["final"]], "",
                                     anchor, ["task"], value_of("final")))

    def curve(task, method, seed, measure, step):
        if (method, seed) in entry["errors"]:
            return None
        return _number(entry["curves"], (method, seed), step, measure)
    entries.append(details.Entry(f"bench_alignment.{prefix}Curve.track_value",
                                 names + ["measure", "step"], base + cells["curve"], "",
                                 anchor, ["task"], curve))
    details.write(f"training-{name}", entry["run_started"], entries)


class _Summary(_Alignment):
    param_names = ["task", "method", "seed"]

    def summary(self, key, cache, task, method, seed) -> float:
        return float(self.lookup(cache, "summary", task, method, seed)[key])


for _key in TRACKED_SUMMARY:
    setattr(_Summary, f"track_{_key}", make_track(_key, SUMMARY[_key].unit, _Summary.summary))


class _Info(_Alignment):
    """Facts of the task itself, from its declaration, and when its runs started (the anchor of
    its details)."""

    param_names = ["task"]
    higher_is_better: bool  # set per task by _make_classes

    def setup(self, cache, task):
        pass

    def track_higher_is_better(self, cache, task) -> float:
        return 1.0 if self.higher_is_better else 0.0

    track_higher_is_better.unit = MEASURES["higher_is_better"].unit

    def track_run_started(self, cache, task) -> float:
        return float(self.entry(cache, task)["run_started"])

    track_run_started.unit = MEASURES["run_started"].unit


def _make_classes() -> None:
    for name in grid.training_task_names():
        task = grid.training_task(name)
        cells = layout(name)
        base, prefix = cells["base"], cells["prefix"]
        classes = [("Summary", _Summary, base), ("Info", _Info, [[name]])]
        for suffix, cls, params in classes:
            globals()[prefix + suffix] = type(prefix + suffix, (cls,), {
                "params": params, "__module__": __name__,
                "metric_name": task.metric, "higher_is_better": task.higher_is_better})


_make_classes()
