"""What the measures mean: a readable label, and which direction is better.

Gradient measures are defined in ``suite/measure.py`` (variance = tr Cov(ĝ), relative bias,
MSE, cosines, SNR, variance x seconds); the alignment summary measures in ``suite/training.py``
(Kendall tau oriented so that +1 means "a lower loss came with a better metric", metric gain
signed so that positive is an improvement). Each training task's headline metric, and so the
direction of ``final_metric_*`` and of the curves' ``metric``, comes from its entry in
:data:`suite.registries.TRAINING_TASKS`; a task that is not registered where the report runs keeps
an unknown direction and is not ranked on those measures.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

__all__ = ["GRADIENT", "SUMMARY", "TaskInfo", "training_tasks", "direction", "label",
           "import_registering_modules", "better_word"]

#: gradient benchmark measures: name -> (label, higher is better; None: not ranked)
GRADIENT: dict[str, tuple] = {
    "variance": ("variance  tr Cov(ĝ)", False),
    "bias": ("relative bias  ‖Eĝ − g‖/‖g‖", False),
    "mse": ("MSE  E‖ĝ − g‖²", False),
    "cosine_of_mean": ("cosine of the mean estimate", True),
    "cosine": ("mean cosine per estimate", True),
    "snr": ("SNR  ‖Eĝ‖/√tr Cov", True),
    "work_normalised_variance": ("variance × seconds", False),
    "time_estimate": ("seconds per estimate", False),
    "peakmem_estimate": ("peak RSS (bytes)", False),
    "cuda_peakmem": ("peak CUDA memory (bytes)", False),
    "seconds_per_estimate": ("seconds per estimate", False),
    "replicates": ("replicates R", None),
}
#: alignment summary measures; "task" means the task's metric direction
SUMMARY: dict[str, tuple] = {
    "final_metric_equal_steps": ("final metric, equal steps", "task"),
    "final_metric_equal_time": ("final metric, equal time", "task"),
    "kendall_tau": ("Kendall τ (loss, metric)", True),
    "metric_gain_per_second": ("metric gain per second", True),
    "seconds_per_update": ("seconds per update", False),
    "evaluations_per_update": ("evaluations per update", False),
}
#: checkpoint and end-of-training measures whose direction is known by name
_NAMED = {"loss": False, "metric": "task", "nll": False, "nontermination": False,
          "step": None, "seconds": None, "best_threshold": None, "avg_length": None,
          "perplexity": None}
#: name parts that say where a measure was taken, not what it is
_PREFIXES = ("final_", "valid_", "test_")
_SUFFIXES = ("_at_best_threshold",)


@dataclass(frozen=True)
class TaskInfo:
    """A training task as the report needs it."""

    name: str
    metric: str = "metric"  # what the headline metric is, in words
    higher_is_better: bool | None = None  # None: the task is not registered here
    description: str = ""
    registered: bool = False


def import_registering_modules() -> list[str]:
    """Import the modules that register losses, metrics, tasks and training tasks
    (``estimators.losses``, ``estimators.metrics``, ``suite.tasks``, ``suite.train_*``).
    A module that does not exist is passed over; one that fails to import is returned as a
    problem (``"module: error"``) and the rest go on without it."""
    names = ["estimators.losses", "estimators.metrics", "suite.tasks"]
    problems = []
    try:
        import suite

        names += sorted(f"suite.{m.name}" for m in pkgutil.iter_modules(suite.__path__)
                        if m.name.startswith("train_"))
    except Exception as exc:  # noqa: BLE001 - a broken package must not break the report
        problems.append(f"suite: {type(exc).__name__}: {exc}")
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but one of its imports does not
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    return problems


def _task_info(name: str, entry) -> TaskInfo:
    info = dict(getattr(entry, "info", {}) or {})
    source = entry.factory
    if not isinstance(source, type):  # a factory function: its product holds the attributes
        source = source()
    metric = info.get("metric", getattr(source, "metric", "metric"))
    hib = info.get("higher_is_better", getattr(source, "higher_is_better", None))
    return TaskInfo(name, str(metric), None if hib is None else bool(hib),
                    str(info.get("description", getattr(source, "description", ""))), True)


def training_tasks(names: list[str] | None = None) -> dict[str, TaskInfo]:
    """:class:`TaskInfo` of every registered training task and of every name in ``names``
    (those not registered here get an unknown direction). Never raises: a registry that cannot
    be imported leaves every task unknown."""
    out: dict[str, TaskInfo] = {}
    try:
        import_registering_modules()
        from suite.registries import TRAINING_TASKS

        for name in TRAINING_TASKS:
            try:
                out[name] = _task_info(name, TRAINING_TASKS[name])
            except Exception:  # noqa: BLE001 - a broken task is reported as unknown
                pass
    except Exception:  # noqa: BLE001
        pass
    for name in names or ():
        out.setdefault(str(name), TaskInfo(str(name)))
    return out


def _metric_direction(name: str) -> bool | None:
    try:
        import estimators

        if name in estimators.METRICS:
            return bool(estimators.METRICS[name].info.get("higher_is_better", True))
    except Exception:  # noqa: BLE001
        pass
    return None


def direction(measure: str, task: TaskInfo | None = None) -> bool | None:
    """True when higher is better, False when lower is, None when unknown or not a ranking
    (``replicates``, ``step``, a threshold)."""
    measure = str(measure)
    for table in (GRADIENT, SUMMARY):
        if measure in table:
            d = table[measure][1]
            return (task.higher_is_better if task else None) if d == "task" else d
    stripped = measure
    changed = True
    while changed:  # valid_f1_micro_at_best_threshold -> f1_micro
        changed = False
        for p in _PREFIXES:
            if stripped.startswith(p) and len(stripped) > len(p):
                stripped, changed = stripped[len(p):], True
        for s in _SUFFIXES:
            if stripped.endswith(s) and len(stripped) > len(s):
                stripped, changed = stripped[:-len(s)], True
    for name in dict.fromkeys((measure, stripped)):
        if name in _NAMED:
            d = _NAMED[name]
            return (task.higher_is_better if task else None) if d == "task" else d
        d = _metric_direction(name)
        if d is not None:
            return d
    return None


def label(measure: str) -> str:
    for table in (GRADIENT, SUMMARY):
        if measure in table:
            return table[measure][0]
    return measure.replace("_", " ")


def better_word(d: bool | None) -> str:
    return {True: "higher", False: "lower"}.get(d, "–")
