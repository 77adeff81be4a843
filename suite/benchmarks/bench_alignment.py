"""asv benchmarks for metric alignment: every registered training task x method x seed.

For each training task (``multilabel_digits`` -> class prefix ``MultilabelDigits``):

* ``<Task>Summary.track_<measure>``, params (task, method, seed): the alignment summary measures
  of the table of measures (:data:`reports.measures.SUMMARY`, computed by
  :func:`suite.training.summarise`: final metric at equal steps and at equal wall-clock, Kendall
  tau of loss vs metric, metric gain per second, seconds and evaluations per update).
* ``<Task>Final.track_value``, params (task, method, seed, measure): the task's
  ``final_measures`` (e.g. the best validation threshold and F1 there).
* ``<Task>Curve.track_value``, params (task, method, seed, measure, step): the training curve,
  one cell per checkpoint: seconds, loss and metric (:data:`suite.grid.CURVE_MEASURES`); the
  full grid (``ESTIBENCH_GRID=full``) adds the task's ``checkpoint_measures``.
* ``<Task>Info.track_higher_is_better``, params (task): 1.0 when the task's headline metric is
  better higher, 0.0 when lower, so that a report reads each task's direction from the results.

Every run happens once per asv run, in ``setup_cache`` (:func:`suite.grid.compute_runs`, shared
by every class here but ``Info``, which runs nothing; reused from disk on the same code and
machine, :func:`suite.benchutil.disk_cached`), and the tracks read the numbers: each cell's
process loads only its task's runs (:func:`suite.benchutil.spill`). A task or
a run that raises fails its own cells; the rest complete. Kendall tau is undefined (NaN, shown as
n/a) when the metric or the loss never changes.

``ESTIBENCH_TRAINING_TASKS`` (comma-separated) narrows the grid.
"""
from __future__ import annotations

from reports.measures import MEASURES, SUMMARY
from suite import grid
from suite.benchutil import class_prefix, disk_cached, make_track, spill, unspill


class _Alignment:
    timeout = 600

    def setup_cache(self):
        runs = disk_cached("training-runs", grid.compute_runs)
        return {"spilled": spill(runs, "training-runs")}

    setup_cache.timeout = 3600

    def setup(self, cache, task, method, seed, *rest):
        # failures are raised in the bodies (asv marks the cell failed); nothing to skip here
        pass

    @staticmethod
    def lookup(cache, part, task, method, seed):
        entry = unspill(cache["spilled"], task) if "spilled" in cache else cache.get(task)
        if entry is None:
            raise RuntimeError(f"training task {task!r} did not run")
        if "task_error" in entry:
            raise RuntimeError(f"training task {task!r} failed: {entry['task_error']}")
        if (method, seed) in entry["errors"]:
            raise RuntimeError(f"{task}/{method}/seed {seed} failed: "
                               f"{entry['errors'][(method, seed)]}")
        return entry[part][(method, seed)]


class _Summary(_Alignment):
    param_names = ["task", "method", "seed"]

    def summary(self, key, cache, task, method, seed) -> float:
        return float(self.lookup(cache, "summary", task, method, seed)[key])


for _key, _row in SUMMARY.items():
    setattr(_Summary, f"track_{_key}", make_track(_key, _row.unit, _Summary.summary))


class _Final(_Alignment):
    param_names = ["task", "method", "seed", "measure"]

    def track_value(self, cache, task, method, seed, measure):
        return float(self.lookup(cache, "final", task, method, seed)[measure])


class _Curve(_Alignment):
    param_names = ["task", "method", "seed", "measure", "step"]

    def track_value(self, cache, task, method, seed, measure, step):
        return float(self.lookup(cache, "curves", task, method, seed)[step][measure])


class _Info:
    """Facts of the task itself, from its declaration (no setup_cache: nothing runs)."""

    param_names = ["task"]
    higher_is_better: bool  # set per task by _make_classes

    def track_higher_is_better(self, task) -> float:
        return 1.0 if self.higher_is_better else 0.0

    track_higher_is_better.unit = MEASURES["higher_is_better"].unit


def _make_classes() -> None:
    for name in grid.training_task_names():
        task = grid.training_task(name)  # cheap: constructors build no data
        base = [[name], list(task.methods), list(task.seeds)]
        prefix = class_prefix(name)
        classes = [("Summary", _Summary, base),
                   ("Curve", _Curve, base + [grid.curve_measures(task), list(task.schedule())]),
                   ("Info", _Info, [[name]])]
        if task.final_measures:
            classes.append(("Final", _Final, base + [list(task.final_measures)]))
        for suffix, cls, params in classes:
            globals()[prefix + suffix] = type(prefix + suffix, (cls,), {
                "params": params, "__module__": __name__,
                "metric_name": task.metric, "higher_is_better": task.higher_is_better})


_make_classes()
