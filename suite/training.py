"""Training tasks for metric alignment: does optimising a surrogate improve the evaluated metric?

A training task trains one small model per ``(method, seed)`` and records a curve of checkpoints.
Tasks register in :data:`suite.registries.TRAINING_TASKS` (plugins: entry-point group
``estibench.training_tasks``) and the asv classes in ``suite/benchmarks/bench_alignment.py`` run
every registered task. The contract::

    task = TRAINING_TASKS.get("multilabel_digits")     # a TrainingTask
    task.methods                                        # ("bce", "multilabel_softmax", ...)
    run = task.run("bce", seed=0)                       # a Run: checkpoints + final measures

A :class:`Run` holds ``checkpoints``: one dict per checkpoint with at least ``step`` (updates so
far), ``seconds`` (cumulative training wall time, evaluation excluded), ``loss`` (the surrogate's
value on held-out data, the thing the method optimises or its MLE counterpart) and ``metric`` (the
headline metric on held-out data); any further keys are extra measures (``nll``,
``nontermination``, ...). ``final`` holds measures taken once at the end (e.g. F1 at the best
validation threshold). ``evaluations_per_update`` counts task-loss evaluations (decodes, forward
passes) per update, the cost that update-search methods pay.

Alignment measures (computed here, tracked by the benchmarks):

* final metric at equal steps: the metric at the last checkpoint (every method runs the same
  number of updates);
* final metric at equal wall-clock: at ``T = min over methods of the total seconds`` for the same
  seed, the metric of the last checkpoint reached by ``T``;
* Kendall tau between loss and metric across checkpoints, oriented so that +1 means "a lower loss
  always came with a better metric" (aligned) and -1 means they always disagreed;
* metric gain per second: ``(metric_final - metric_0) / seconds``, signed so that positive is an
  improvement;
* cost per update: seconds per update and evaluations per update.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from estibench.schema import SUMMARY

from .registries import TRAINING_TASKS

__all__ = ["TrainingTask", "Run", "register_training_task", "check_run", "summarise",
           "train_on_schedule", "evenly_spaced", "final_metric", "metric_at_seconds",
           "kendall_tau", "metric_gain_per_second", "seconds_per_update", "REQUIRED_KEYS"]

REQUIRED_KEYS = ("step", "seconds", "loss", "metric")


@dataclass
class Run:
    """One training run: its checkpoints (tidy dicts) and measures taken at the end."""

    task: str
    method: str
    seed: int
    checkpoints: list[dict[str, float]]
    final: dict[str, float] = field(default_factory=dict)
    evaluations_per_update: float = 1.0

    def __post_init__(self) -> None:
        if not self.checkpoints:
            raise ValueError(f"{self.task}/{self.method}: a run needs at least one checkpoint")
        for i, point in enumerate(self.checkpoints):
            missing = [k for k in REQUIRED_KEYS if k not in point]
            if missing:
                raise ValueError(f"{self.task}/{self.method}: checkpoint {i} lacks {missing}; "
                                 f"each checkpoint needs {list(REQUIRED_KEYS)}")
            for key, value in point.items():
                point[key] = float(value)

    @property
    def updates(self) -> int:
        return int(self.checkpoints[-1]["step"])

    @property
    def seconds(self) -> float:
        return self.checkpoints[-1]["seconds"]

    def measures(self) -> list[str]:
        """Every key recorded at the checkpoints, in first-seen order."""
        seen: dict[str, None] = {}
        for point in self.checkpoints:
            seen.update(dict.fromkeys(point))
        return list(seen)


class TrainingTask:
    """Base class. Subclasses set the class attributes and implement :meth:`run`.

    ``run(method, seed, device)`` must be deterministic on CPU for a given seed, take seconds
    (the benchmark runs every method x seed), and return a :class:`Run` whose checkpoints are at
    the steps of :meth:`schedule` and record :attr:`checkpoint_measures`, and whose ``final``
    holds :attr:`final_measures`. The benchmarks read those declarations to lay out their grid
    before anything runs.
    """

    name: str = "training_task"
    description: str = ""
    metric: str = "metric"  # what the headline metric is, e.g. "micro F1 at threshold 0"
    higher_is_better: bool = True
    methods: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    #: extra keys every checkpoint records besides step, seconds, loss and metric
    checkpoint_measures: tuple[str, ...] = ()
    #: keys of ``Run.final`` (measures taken once at the end)
    final_measures: tuple[str, ...] = ()

    def schedule(self) -> list[int]:
        """The checkpoint steps every method's run records (step 0 included)."""
        raise NotImplementedError

    def check_method(self, method: str) -> None:
        if method not in self.methods:
            import difflib
            close = difflib.get_close_matches(str(method), self.methods, n=1, cutoff=0.0)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"training task {self.name!r}: unknown method {method!r}{hint}; "
                             f"available: {', '.join(self.methods)}")

    def run(self, method: str, seed: int = 0, device: str = "cpu") -> Run:
        raise NotImplementedError


def evenly_spaced(steps: int, count: int) -> list[int]:
    """``count`` checkpoint steps evenly spaced from 0 to ``steps`` (both included): step
    ``round(i * steps / (count - 1))``; fewer when ``steps < count - 1`` (no step twice)."""
    n = min(count, steps + 1)
    if n < 2:
        return [0]
    return sorted({int(round(i * steps / (n - 1))) for i in range(n)})


def train_on_schedule(schedule: Sequence[int], update: Callable[[int], None],
                      evaluate: Callable[[], dict[str, float]], device="cpu",
                      after_update: Callable[[int], None] | None = None
                      ) -> list[dict[str, float]]:
    """Run ``update(step)`` for every step up to the last of ``schedule`` and ``evaluate()`` at
    each scheduled step; the checkpoints' ``seconds`` count training only (evaluation excluded;
    CUDA is synchronised around each timed segment). ``after_update(step)``, when given, is
    called after every update and its time is excluded too: a probe such as
    :meth:`suite.probes.LandscapeProbe.hook` attaches to any task's loop this way."""
    import torch
    cuda = torch.device(device).type == "cuda"
    points: list[dict[str, float]] = []
    seconds, done = 0.0, 0
    for stop in schedule:
        if stop > done:
            if cuda:
                torch.cuda.synchronize(device)
            tic = time.perf_counter()
            for step in range(done, stop):
                update(step)
                if after_update is not None:
                    if cuda:
                        torch.cuda.synchronize(device)
                    pause = time.perf_counter()
                    after_update(step)
                    if cuda:
                        torch.cuda.synchronize(device)
                    tic += time.perf_counter() - pause  # the probe's time is not training's
            if cuda:
                torch.cuda.synchronize(device)
            seconds += time.perf_counter() - tic
            done = stop
        points.append({"step": stop, "seconds": seconds, **evaluate()})
    return points


def check_run(task: TrainingTask, run: Run) -> None:
    """A run keeps its task's declarations: the schedule and the declared measures."""
    steps = [int(p["step"]) for p in run.checkpoints]
    if steps != list(task.schedule()):
        raise ValueError(f"{task.name}/{run.method}: checkpoints at steps {steps}, but the task's "
                         f"schedule is {list(task.schedule())}")
    for i, point in enumerate(run.checkpoints):
        missing = [k for k in task.checkpoint_measures if k not in point]
        if missing:
            raise ValueError(f"{task.name}/{run.method}: checkpoint {i} lacks the declared "
                             f"measures {missing}")
    missing = [k for k in task.final_measures if k not in run.final]
    if missing:
        raise ValueError(f"{task.name}/{run.method}: final measures {missing} are declared but "
                         f"missing; got {sorted(run.final)}")


def register_training_task(name: str, *, description: str = "", reference: str = "",
                           **info: Any):
    """Register a training-task factory (a :class:`TrainingTask` subclass or a callable
    returning one) in :data:`TRAINING_TASKS`."""
    return TRAINING_TASKS.register(name, description=description, reference=reference, **info)


# -- alignment measures ----------------------------------------------------------------------
def _sign(higher_is_better: bool) -> float:
    return 1.0 if higher_is_better else -1.0


def final_metric(run: Run) -> float:
    """The metric at the last checkpoint (equal steps: every method runs the same schedule)."""
    return run.checkpoints[-1]["metric"]


def metric_at_seconds(run: Run, seconds: float) -> float:
    """The metric of the last checkpoint reached within ``seconds`` of training."""
    reached = [p for p in run.checkpoints if p["seconds"] <= seconds + 1e-12]
    return (reached[-1] if reached else run.checkpoints[0])["metric"]


def equal_time_budget(runs: Sequence[Run]) -> float:
    """The wall-clock budget every run reached: the smallest total training time."""
    return min(r.seconds for r in runs)


def kendall_tau(run: Run, higher_is_better: bool) -> float:
    """Kendall tau between ``-loss`` and the (oriented) metric across checkpoints: +1 when a lower
    loss always came with a better metric. NaN (undefined) when either is constant."""
    if len(run.checkpoints) < 2:
        return math.nan
    from scipy import stats  # imported late: see the note in suite/benchmarks/bench_metrics.py
    loss = [-p["loss"] for p in run.checkpoints]
    metric = [_sign(higher_is_better) * p["metric"] for p in run.checkpoints]
    tau = stats.kendalltau(loss, metric).statistic
    return float(tau)


def metric_gain_per_second(run: Run, higher_is_better: bool) -> float:
    """``(metric_final - metric_0) / seconds``, positive for an improvement."""
    gain = _sign(higher_is_better) * (run.checkpoints[-1]["metric"] - run.checkpoints[0]["metric"])
    return gain / max(run.seconds, 1e-12)


def seconds_per_update(run: Run) -> float:
    return run.seconds / max(run.updates, 1)


#: how each alignment summary measure of the table (:data:`estibench.schema.SUMMARY`: names,
#: units, directions) is computed from a run, its seed's equal-time budget and the direction
_SUMMARISERS: dict[str, Callable[[Run, float, bool], float]] = {
    "final_metric_equal_steps": lambda run, budget, hib: final_metric(run),
    "final_metric_equal_time": lambda run, budget, hib: metric_at_seconds(run, budget),
    "kendall_tau": lambda run, budget, hib: kendall_tau(run, hib),
    "metric_gain_per_second": lambda run, budget, hib: metric_gain_per_second(run, hib),
    "seconds_per_update": lambda run, budget, hib: seconds_per_update(run),
    "evaluations_per_update": lambda run, budget, hib: float(run.evaluations_per_update),
}
if set(_SUMMARISERS) != set(SUMMARY):
    raise ImportError(f"suite.training computes the summary measures {sorted(_SUMMARISERS)} but "
                      f"the table of measures lists {sorted(SUMMARY)}")


def summarise(runs: Mapping[tuple[str, int], Run],
              higher_is_better: bool) -> dict[tuple[str, int], dict[str, float]]:
    """Alignment measures of every ``(method, seed)`` run of one task (equal-time needs them all):
    every summary measure of the table, plus ``equal_time_budget`` and ``final_<key>`` for each
    of the run's final measures."""
    out: dict[tuple[str, int], dict[str, float]] = {}
    seeds = sorted({seed for _, seed in runs})
    budgets = {s: equal_time_budget([r for (m, sd), r in runs.items() if sd == s]) for s in seeds}
    for (method, seed), run in runs.items():
        budget = budgets[seed]
        out[(method, seed)] = {
            **{name: _SUMMARISERS[name](run, budget, higher_is_better) for name in SUMMARY},
            "equal_time_budget": budget,
            **{f"final_{k}": float(v) for k, v in run.final.items()},
        }
    return out
