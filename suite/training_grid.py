"""The training runs the asv benchmarks compute (``suite/benchmarks/bench_alignment.py``), as a
library: every (method, seed) run of every training task (:func:`compute_runs`), with the
alignment summaries of :func:`suite.training.summarise`; a failing run or task fails only its
own cells. Each run is one unit of :mod:`suite.executor`; see :mod:`suite.grid` for where the
work runs and how the settings narrow it (re-exported there)."""
from __future__ import annotations

import time
import traceback

from estibench.progress import Progress
from estibench.settings import Settings

from .benchutil import set_threads, short_error
from .executor import Failed, run_units, seed_unit
from .gridscope import _s, full_grid
from .registries import TRAINING_TASKS, unknown_name

__all__ = ["FULL_TRAINING", "CURVE_MEASURES", "training_task_names", "training_task",
           "curve_measures", "run_task", "compute_runs"]


# -- the training runs -------------------------------------------------------------------------
#: the training sizes of the full grid (the default grid runs each task's constructor defaults,
#: sized for the suite's budget; see each task's module)
FULL_TRAINING: dict[str, dict[str, object]] = {
    "binary_vae_digits": {"steps": 150}, "binary_vae_digits_linear": {"steps": 150},
    "categorical_vae_digits": {"steps": 150},
    "vqvae_digits": {"steps": 500, "num_checkpoints": 6},
    "multilabel_digits": {"num_checkpoints": 6},
    "markov_termination": {"num_checkpoints": 6}, "sequence_reversal": {"num_checkpoints": 6},
}
#: what every training task records per checkpoint, before its own ``checkpoint_measures``
CURVE_MEASURES = ("seconds", "loss", "metric")  # curves per step and per second


def training_task_names(settings: Settings | None = None) -> list[str]:
    """The training tasks: the ``training_tasks`` setting (checked against the registry), or
    every registered one; the default grid leaves out a task whose class declares
    ``in_default_grid = False`` (the literature-scale ones: minutes per method on a CPU), which
    the full grid and a named narrowing run."""
    settings = _s(settings)
    available = TRAINING_TASKS.available()
    for name in settings.training_tasks:
        if name not in available:
            raise unknown_name("training task", name, available, "training_tasks", settings)
    if settings.training_tasks:
        return list(settings.training_tasks)
    return [n for n in available if full_grid(settings)
            or getattr(TRAINING_TASKS.entry(n).factory, "in_default_grid", True)]


def training_task(name: str, settings: Settings | None = None):
    """The training task as the grid runs it: its defaults, or :data:`FULL_TRAINING`'s sizes in
    the full grid."""
    return TRAINING_TASKS.get(name, **(FULL_TRAINING.get(name, {}) if full_grid(settings)
                                       else {}))


def curve_measures(task) -> list[str]:
    """The checkpoint measures recorded along ``task``'s curves (in its run file, not as asv
    cells, so every one of them is kept)."""
    return [*CURVE_MEASURES, *(m for m in task.checkpoint_measures if m not in CURVE_MEASURES)]


def _training_run(argument) -> tuple:
    """A work unit: one (training task, method, seed) run, checked against the task's
    declarations: ``(run, seconds)``. The task is built afresh (constructors build no data) and
    the global generators seeded from the run's identity, so the run depends on nothing that
    ran before it in the same process."""
    from .training import check_run

    name, method, seed, settings = argument
    set_threads(settings)
    seed_unit("training", name, method, seed)
    start = time.perf_counter()
    task = training_task(name, settings)
    run = task.run(method, seed=seed)
    check_run(task, run)
    return run, time.perf_counter() - start


def _error(outcome: Failed) -> str:
    return f"{outcome.error}\n{outcome.traceback}" if outcome.traceback else outcome.error


def run_task(name: str, settings: Settings | None = None) -> dict[str, object]:
    """Every (method, seed) run of one task (:func:`compute_runs` of that task alone)."""
    settings = _s(settings)
    return compute_runs(settings, names=[name])[name]


def compute_runs(settings: Settings | None = None, names: list[str] | None = None
                 ) -> dict[str, dict[str, object]]:
    """Every (method, seed) run of every training task in the grid (or of ``names``): per task
    its summaries, curves, final measures, errors and ``wall_seconds`` (the sum of its runs'
    wall times: the work, whatever the number of workers); ``task_error`` (and nothing else
    but ``wall_seconds``) for a task that cannot be built.

    One unit of :mod:`suite.executor` per run (:func:`_training_run`); a run that raises, whose
    worker dies or that runs past the time limit fails its own cells. The runs' numbers do not
    depend on the number of workers; their ``seconds`` are timed on a worker of their own (one
    single-threaded worker per usable core)."""
    settings = _s(settings)
    set_threads(settings)
    names = training_task_names(settings) if names is None else list(names)
    tasks, out, units = {}, {}, []
    for name in names:
        start = time.perf_counter()
        try:
            tasks[name] = task = training_task(name, settings)
            units.extend(((name, method, seed), (name, method, seed, settings))
                         for method in task.methods for seed in task.seeds)
        except Exception as exc:  # noqa: BLE001 - a broken task fails its own cells
            out[name] = {"task_error": f"{short_error(exc)}\n{traceback.format_exc(limit=4)}",
                         "wall_seconds": time.perf_counter() - start}
    with Progress(settings.progress, "training", len(units)) as progress:
        outcomes = run_units(_training_run, units, settings,
                             on_done=lambda key, outcome: progress.step())
    from .training import summarise

    for name, task in tasks.items():
        runs, errors, seconds = {}, {}, 0.0
        for method in task.methods:
            for seed in task.seeds:
                outcome = outcomes[(name, method, seed)]
                if isinstance(outcome, Failed):
                    errors[(method, seed)] = _error(outcome)
                else:
                    runs[(method, seed)], took = outcome
                    seconds += took
        try:
            out[name] = {
                "summary": summarise(runs, task.higher_is_better) if runs else {},
                "curves": {key: {int(p["step"]): dict(p) for p in run.checkpoints}
                           for key, run in runs.items()},
                "final": {key: dict(run.final) for key, run in runs.items()},
                "errors": errors,
            }
        except Exception as exc:  # noqa: BLE001 - a broken task fails its own cells
            out[name] = {"task_error": f"{short_error(exc)}\n{traceback.format_exc(limit=4)}"}
        out[name]["wall_seconds"] = seconds
    return {name: out[name] for name in names}
