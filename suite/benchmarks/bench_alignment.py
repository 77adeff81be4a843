"""asv benchmarks for metric alignment: every registered training task x method x seed.

For each training task (``multilabel_digits`` -> class prefix ``MultilabelDigits``) asv tracks
(one process per cell, so only what deserves a regression alarm)
``<Task>Summary.track_<measure>``, params (task, method, seed), for the measures of
:data:`TRACKED_SUMMARY`: the final metric at equal steps and at equal wall-clock.

Each task's run file (:mod:`suite.results`, one per task and run) holds everything its runs
measured: the task's facts (``higher_is_better``, the metric's name, its wall-clock), every
summary measure of the table of measures (:data:`estibench.schema.SUMMARY`, computed by
:func:`suite.training.summarise`: the final metric at equal steps and time, Kendall tau of loss
vs metric, metric gain per second, seconds and evaluations per update), the task's
``final_measures`` (e.g. the best validation threshold and F1 there) and the training curve,
one row per checkpoint and measure (seconds, loss, metric and the task's
``checkpoint_measures``, :func:`suite.training_grid.curve_measures`); failed runs as failed
rows with their errors.

Every run happens once per asv run, in ``setup_cache`` (:func:`suite.training_grid.compute_runs` of the
tasks not in the disk cache, one unit of :mod:`suite.executor` per run, on every usable core;
shared by every class here; reused from disk per task on the same code, settings and machine,
:func:`suite.benchutil.disk_cached`, so narrowing the training tasks recomputes nothing), and the
tracks read the numbers: each cell's process loads only its task's runs
(:func:`suite.benchutil.spill`). A task or a run that raises fails its own cells; the rest
complete. Kendall tau is undefined (NaN, shown as n/a) when the metric or the loss never
changes.

The ``training_tasks`` setting (``ESTIBENCH_TRAINING_TASKS``) narrows the grid.
"""
from __future__ import annotations

import time

from estibench.schema import SUMMARY
from estibench.settings import Settings, current
from suite import results, training_grid
from suite.benchutil import class_prefix, disk_cached, make_track, spill, unspill
from suite.registries import TRAINING_TASKS

#: the summary measures asv tracks (a regression alarm each); the run file holds every measure
TRACKED_SUMMARY = ("final_metric_equal_steps", "final_metric_equal_time")


def layout(name: str, settings: Settings | None = None) -> dict:
    """A training task's class prefix and the params of its summary cells."""
    task = training_grid.training_task(name, settings)  # cheap: constructors build no data
    return {"prefix": class_prefix(name), "base": [[name], list(task.methods), list(task.seeds)]}


def write_run(name: str, entry: dict, run_started: float, settings: Settings | None = None):
    """The task's run file (:func:`suite.results.training_rows`); returns its path."""
    try:
        task = training_grid.training_task(name, settings)
        curve = training_grid.curve_measures(task)
    except Exception:  # noqa: BLE001 - a task that cannot be built: its error rows only
        task, curve = None, []
    return results.write(results.training_rows(name, task, entry, curve), f"training-{name}",
                         run_started, settings)


_MISSING = object()


def _cached(name: str, settings: Settings, entry=_MISSING):
    """The task's runs from the disk cache (:data:`_MISSING` when not there); with ``entry``,
    that entry, stored unless it holds a task error. Per task, so narrowing the training tasks
    recomputes nothing."""
    return disk_cached(f"training-{name}", lambda: entry, computation="training",
                       settings=settings,
                       keep=lambda value: value is not _MISSING and "task_error" not in value)


class _Alignment:
    timeout = 600

    def setup_cache(self):
        started, settings = time.time(), current()
        names = training_grid.training_task_names(settings)
        runs = {name: _cached(name, settings) for name in names}
        missing = [name for name in names if runs[name] is _MISSING]
        if missing:  # every missing task's runs at once: one unit per run, on every core
            computed = training_grid.compute_runs(settings, names=missing)
            for name in missing:
                runs[name] = _cached(name, settings, computed[name])
        for name in names:
            write_run(name, runs[name], started, settings)
        return {"spilled": spill(runs, "training-runs")}

    setup_cache.timeout = 3600

    def setup(self, cache, task, method, seed, *rest):
        # a task this run's grid leaves out (a narrowing, or a literature-scale task outside the
        # full grid) is n/a; failures are raised in the bodies (asv marks the cell failed)
        if (unspill(cache["spilled"], task) if "spilled" in cache else cache.get(task)) is None:
            raise NotImplementedError(f"training task {task!r} is not in this run's grid")

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


class _Summary(_Alignment):
    param_names = ["task", "method", "seed"]

    def summary(self, key, cache, task, method, seed) -> float:
        return float(self.lookup(cache, "summary", task, method, seed)[key])


for _key in TRACKED_SUMMARY:
    setattr(_Summary, f"track_{_key}", make_track(_key, SUMMARY[_key].unit, _Summary.summary))


def _make_classes() -> None:
    # every registered training task, whatever the settings narrow or the default grid leaves
    # out: a narrowed run and a full one are the same benchmarks to asv (cells outside are n/a)
    for name in TRAINING_TASKS.available():
        cells = layout(name)
        name_ = cells["prefix"] + "Summary"
        globals()[name_] = type(name_, (_Summary,), {"params": cells["base"],
                                                     "__module__": __name__})


_make_classes()
