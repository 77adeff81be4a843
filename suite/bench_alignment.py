"""asv benchmarks for metric alignment: every registered training task x method x seed.

For each training task (``multilabel_digits`` -> class prefix ``MultilabelDigits``):

* ``<Task>Summary.track_<measure>``, params (task, method, seed): the alignment measures of
  :func:`suite.training.summarise` (final metric at equal steps and at equal wall-clock, Kendall
  tau of loss vs metric, metric gain per second, seconds and evaluations per update).
* ``<Task>Final.track_value``, params (task, method, seed, measure): the task's
  ``final_measures`` (e.g. the best validation threshold and F1 there).
* ``<Task>Curve.track_value``, params (task, method, seed, measure, step): the training curve,
  one cell per checkpoint: seconds, loss, metric and the task's ``checkpoint_measures``.

Every run happens once per asv run, in ``setup_cache`` (shared by every class here), and the
tracks read the numbers. A task or a run that raises fails its own cells; the rest complete.
Kendall tau is undefined (NaN, shown as n/a) when the metric or the loss never changes.

``ESTIBENCH_TRAINING_TASKS`` (comma-separated) narrows the grid.
"""
from __future__ import annotations

import os
import time
import traceback

import suite  # noqa: F401  (registers the built-in training tasks)
from suite.registries import TRAINING_TASKS
from suite.training import check_run, summarise

SUMMARY = {"final_metric_equal_steps": "metric", "final_metric_equal_time": "metric",
           "kendall_tau": "tau", "metric_gain_per_second": "metric/s",
           "seconds_per_update": "seconds", "evaluations_per_update": "evaluations"}


def task_names() -> list[str]:
    value = os.environ.get("ESTIBENCH_TRAINING_TASKS", "").strip()
    if value:
        return [v.strip() for v in value.split(",") if v.strip()]
    return TRAINING_TASKS.available()


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run_task(name: str) -> dict[str, object]:
    """Every (method, seed) run of one task: summaries, curves, final measures, errors."""
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    task = TRAINING_TASKS.get(name)
    runs, errors = {}, {}
    for method in task.methods:
        for seed in task.seeds:
            try:
                run = task.run(method, seed=seed)
                check_run(task, run)
                runs[(method, seed)] = run
            except Exception as exc:  # noqa: BLE001 - a failing run fails its own cells
                errors[(method, seed)] = f"{_short(exc)}\n{traceback.format_exc(limit=4)}"
    return {
        "summary": summarise(runs, task.higher_is_better) if runs else {},
        "curves": {key: {int(p["step"]): dict(p) for p in run.checkpoints}
                   for key, run in runs.items()},
        "final": {key: dict(run.final) for key, run in runs.items()},
        "errors": errors,
    }


def compute_runs() -> dict[str, dict[str, object]]:
    out = {}
    for name in task_names():
        start = time.perf_counter()
        try:
            out[name] = run_task(name)
        except Exception as exc:  # noqa: BLE001 - a broken task fails its own cells
            out[name] = {"task_error": f"{_short(exc)}\n{traceback.format_exc(limit=4)}"}
        out[name]["wall_seconds"] = time.perf_counter() - start
    return out


class _Alignment:
    timeout = 600

    def setup_cache(self):
        return compute_runs()

    setup_cache.timeout = 3600

    def setup(self, cache, task, method, seed, *rest):
        # failures are raised in the bodies (asv marks the cell failed); nothing to skip here
        pass

    @staticmethod
    def lookup(cache, part, task, method, seed):
        entry = cache.get(task)
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


def _summary_track(key: str, unit: str):
    def track(self, cache, task, method, seed):
        return float(self.lookup(cache, "summary", task, method, seed)[key])
    track.unit = unit
    track.__name__ = f"track_{key}"
    return track


for _key, _unit in SUMMARY.items():
    setattr(_Summary, f"track_{_key}", _summary_track(_key, _unit))


class _Final(_Alignment):
    param_names = ["task", "method", "seed", "measure"]

    def track_value(self, cache, task, method, seed, measure):
        return float(self.lookup(cache, "final", task, method, seed)[measure])


class _Curve(_Alignment):
    param_names = ["task", "method", "seed", "measure", "step"]

    def track_value(self, cache, task, method, seed, measure, step):
        return float(self.lookup(cache, "curves", task, method, seed)[step][measure])


def class_prefix(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))


def _make_classes() -> None:
    for name in task_names():
        task = TRAINING_TASKS.get(name)  # cheap: constructors build no data
        base = [[name], list(task.methods), list(task.seeds)]
        prefix = class_prefix(name)
        classes = [("Summary", _Summary, base),
                   ("Curve", _Curve, base + [["seconds", "loss", "metric",
                                              *task.checkpoint_measures],
                                             list(task.schedule())])]
        if task.final_measures:
            classes.append(("Final", _Final, base + [list(task.final_measures)]))
        for suffix, cls, params in classes:
            globals()[prefix + suffix] = type(prefix + suffix, (cls,), {
                "params": params, "__module__": __name__,
                "metric_name": task.metric, "higher_is_better": task.higher_is_better})


_make_classes()
