"""What the asv benchmarks lay out and compute, as a library (no asv needed): the gradient grid
and the training runs.

**Gradient grid** (``suite/benchmarks/bench_gradients.py``): (task, estimator, num_samples,
device), one set of cells per distribution family (:func:`families`), every quality number
measured once (:func:`compute_grid`) and the tasks built once for the cost benchmarks
(:func:`build_for_cost`). A combination the estimator does not support is ``skipped``; a cell
whose estimator or task raises is ``failed`` with its error, and the rest complete.

**Training runs** (``suite/benchmarks/bench_alignment.py``): every (method, seed) run of every
training task (:func:`compute_runs`), with the alignment summaries of
:func:`suite.training.summarise`; a failing run or task fails only its own cells. They live in
:mod:`suite.training_grid` and are re-exported here.

**Where the work runs**: :mod:`suite.executor` (Dask distributed: one single-threaded worker
process per usable core by default, the ``workers`` setting, 1 = this process, or the cluster of
the ``scheduler`` setting). Units: a gradient task's build, a (task, estimator) block of cells,
a (training task, method, seed) run. Every unit seeds the global generators from its own
identity (:func:`suite.executor.seed_unit`) and starts from fresh objects (the built task
unpickled, the estimator built per cell, the training task constructed per run), so the numbers
are bitwise the same on CPU whatever the number of workers and the order units finish in
(``tests/test_executor.py``); timings (seconds per estimate, training seconds) are measured
with one unit per core. Progress (cells or runs done / total) goes through
:class:`estibench.progress.Progress`.

The settings (:class:`estibench.settings.Settings`; every function takes one, by default
:func:`estibench.settings.current`) narrow the grids: ``tasks``, ``estimators`` (specs; a bare
registered name means every registered variant of it, in this grid and in the training tasks'),
``num_samples``, ``devices`` and ``training_tasks``. A name that is not registered is refused
at once (:class:`estibench.settings.SettingsError`, naming the closest registered name).

**Narrowing computes less; it never changes the benchmarks' parameters.** The asv parameters are
the full grid (:func:`families` with ``full=True``: every registered task and estimator, the full K
axis, the present devices, plus whatever the environment adds), so a narrowed run and a full run
are the same benchmarks to asv; cells outside the narrowing are skipped (n/a). Run narrowed through
``estibench run`` (it turns the narrowing into asv's ``--bench`` cell selection, and asv then
keeps the stored values of the cells it does not run).

**Default and full grid** (setting ``grid``: ``default`` or ``full``). Every registered task and
estimator is in both. The default gives each estimator two K (its smallest valid K,
``est.min_samples()``: 1, or 2 for the pair and leave-one-out estimators, and 16) and caps a claim
test's replicates at ``CLAIM_REPLICATES x`` the task's ``replicates`` (besides the task's budget
of f evaluations: at K = 1 the budget alone allowed 65,536 replicates of a VAE task, one cell
taking 260 CPU-s); the benchmark modules record fewer measures per cell there (see them). The
full grid: ``{1 where valid, the smallest valid K, 4, 16, 64}``, the claim test's budget alone,
every measure. A ``num_samples`` setting gives every estimator the listed K instead (where valid).
"""
from __future__ import annotations

import time
import traceback
from dataclasses import replace

import estimators
from estibench.progress import Progress
from estibench.settings import Settings, set_environ

from . import tasks as _tasks
from .benchutil import set_threads, short_error
from .executor import Failed, Pool, seed_unit
from .gridscope import _s, full_grid
from .registries import TASKS, expand_estimators, unknown_name, variants
from .training_grid import (
    CURVE_MEASURES,
    FULL_TRAINING,
    compute_runs,
    curve_measures,
    run_task,
    training_task,
    training_task_names,
)

__all__ = ["NUM_SAMPLES", "DEFAULT_NUM_SAMPLES", "CLAIM_REPLICATES", "SEED", "full_grid",
           "k_axis", "class_num_samples", "specs_by_min_samples", "estimator_num_samples",
           "claim_replicates", "estimator_specs", "expand_estimators", "unknown_name",
           "task_names", "num_samples", "devices", "cuda_available", "families", "applicable",
           "compute_grid", "grid_layout", "build_for_cost", "training_task_names", "training_task",
           "curve_measures", "FULL_TRAINING", "CURVE_MEASURES", "run_task", "compute_runs"]

NUM_SAMPLES = [1, 4, 16, 64]  # the full grid: every estimator's K, its smallest valid K added
DEFAULT_NUM_SAMPLES = [16]  # the default grid: the same, its smallest valid K added
#: the default grid's cap on a claim test's replicates, in multiples of the task's ``replicates``
CLAIM_REPLICATES = 4
SEED = 0


# -- the gradient grid's axes ------------------------------------------------------------------
def _union(full: list, narrowed: list) -> list:
    return list(full) + [x for x in narrowed if x not in full]


def _registered_specs() -> list[str]:
    specs: list[str] = []
    for name in estimators.available(kind="gradient"):
        specs.extend(variants(name))
    return specs


def estimator_specs(full: bool = False, settings: Settings | None = None) -> list[str]:
    """Every registered gradient estimator's benchmark variants (its ``variants`` info, or its
    bare name), or those the ``estimators`` setting names (:func:`expand_estimators`; update
    estimators are the sequence tasks', not this grid's); ``full``: all of them plus those."""
    specs = _registered_specs()
    gradient = set(estimators.available(kind="gradient"))
    listed = [s for s in expand_estimators(settings) if s.partition(":")[0] in gradient]
    chosen = listed if _s(settings).estimators else specs
    return _union(specs, chosen) if full else chosen


def task_names(full: bool = False, settings: Settings | None = None) -> list[str]:
    """The gradient tasks: the ``tasks`` setting (checked against the registry), or every
    registered one, less, in the default grid, those whose class declares ``in_default_grid =
    False`` (the literature-scale MNIST tasks: a build trains a checkpoint); ``full``: all of
    them plus those named (the benchmarks' parameters)."""
    settings = _s(settings)
    available = TASKS.available()
    for name in settings.tasks:
        if name.partition(":")[0] not in available:
            raise unknown_name("task", name.partition(":")[0], available, "tasks", settings)
    chosen = list(settings.tasks) or [n for n in available if full_grid(settings)
                                      or _in_default_grid(n)]
    return _union(available, chosen) if full else chosen


def _in_default_grid(name: str) -> bool:
    factory = TASKS.entry(name).factory
    return bool(getattr(getattr(factory, "func", factory), "in_default_grid", True))


def k_axis(k_min: int, settings: Settings | None = None) -> list[int]:
    """The K of an estimator whose smallest valid K is ``k_min``: the ``num_samples`` setting
    (those >= k_min) when set, else the grid's K >= k_min plus k_min itself."""
    settings = _s(settings)
    if settings.num_samples:
        return [k for k in settings.num_samples if k >= k_min]
    base = NUM_SAMPLES if settings.full else DEFAULT_NUM_SAMPLES
    return sorted({k for k in base if k >= k_min} | {int(k_min)})


def _min_samples(spec: str) -> int:
    return int(estimators.get(spec).min_samples())


def _unlisted(settings: Settings) -> Settings:
    """``settings`` without a ``num_samples`` narrowing: the grid's own K."""
    return replace(settings, num_samples=()) if settings.num_samples else settings


def class_num_samples(k_min: int, settings: Settings | None = None) -> list[int]:
    """The K parameter of a benchmark class whose estimators' smallest valid K is ``k_min``:
    the grid's K for them plus those the ``num_samples`` setting names (>= k_min)."""
    settings = _s(settings)
    default = k_axis(k_min, _unlisted(settings))
    return sorted(set(default) | {k for k in settings.num_samples if k >= k_min})


def specs_by_min_samples(specs: list[str]) -> dict[int, list[str]]:
    """``specs`` grouped by their smallest valid K (builds each estimator once)."""
    out: dict[int, list[str]] = {}
    for spec in specs:
        out.setdefault(_min_samples(spec), []).append(spec)
    return dict(sorted(out.items()))


def num_samples(full: bool = False, settings: Settings | None = None) -> list[int]:
    """The K axis: the ``num_samples`` setting, or the union of every estimator's K
    (:func:`estimator_num_samples`); ``full``: that union plus those named there."""
    settings = _s(settings)
    chosen = list(settings.num_samples)
    if chosen and not full:
        return chosen
    unlisted = _unlisted(settings)
    mins = {_min_samples(s) for s in estimator_specs(True, unlisted)} or {1}
    default = set().union(*(k_axis(m, unlisted) for m in mins))
    return sorted(default | set(chosen))


def estimator_num_samples(est, settings: Settings | None = None) -> list[int]:
    """An estimator's K: :func:`k_axis` of its smallest valid K."""
    return k_axis(int(est.min_samples()), settings)


def claim_replicates(task, settings: Settings | None = None) -> int | None:
    """The most replicates a claim test may draw on ``task``: None (the task's budget of f
    evaluations alone) in the full grid, ``CLAIM_REPLICATES x task.replicates`` by default."""
    return None if full_grid(settings) else CLAIM_REPLICATES * int(task.replicates)


def devices(full: bool = False, settings: Settings | None = None) -> list[str]:
    """The devices in the grid: the ``devices`` setting (``cpu``, ``cuda``) or by default the
    CPU plus CUDA when a GPU is present (asked through NVML, so the forkserver's parent does not
    initialise CUDA: forked children could not use it then).

    By default absent devices are left out rather than listed and skipped: every cell costs asv
    a process (~25 ms), and a CPU-only machine would pay that for ~2,000 CUDA cells that can only
    say n/a. ``devices = cpu,cuda`` lists them anyway; there they skip cleanly."""
    default = ["cpu"] + (["cuda"] if cuda_available() else [])
    chosen = list(_s(settings).devices) or default
    return _union(default, chosen) if full else chosen


def cuda_available() -> bool:
    set_environ({"PYTORCH_NVML_BASED_CUDA_CHECK": "1"})
    import torch
    return torch.cuda.is_available()


def families(full: bool = False, settings: Settings | None = None
             ) -> dict[str, tuple[list[str], list[str]]]:
    """family -> (its tasks, the estimator specs whose registered families include it); ``full``:
    the benchmarks' parameters (every registered task and estimator), else what this run
    computes (narrowed by the settings)."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    specs = estimator_specs(full, settings)
    for task in task_names(full, settings):
        # a task registered without a family is paired with every estimator; support is then
        # decided per cell at run time
        family = TASKS.entry(task.split(":")[0]).info.get("family", "Any")
        out.setdefault(family, ([], []))[0].append(task)
    for family, (_, ests) in out.items():
        ests.extend(s for s in specs if family == "Any"
                    or family in estimators.info(s.split(":")[0]).info.get("families", ()))
    return {f: v for f, v in out.items() if v[1]}


# -- the gradient grid's cells ---------------------------------------------------------------------
def applicable(est, problem, num_samples: int, settings: Settings | None = None):
    """None if the estimator applies to this problem and sample count, else why not."""
    if not est.supports(problem.dist):
        return f"{est.describe()} does not support this task's distribution"
    if num_samples < est.min_samples():
        return f"{est.describe()} needs num_samples >= {est.min_samples()}"
    largest = est.max_samples(problem.dist) if hasattr(est, "max_samples") else None
    if largest is not None and num_samples > largest:  # before the grid: the floor's K axis
        return f"{est.describe()} takes at most num_samples={largest} on this task"
    if num_samples not in estimator_num_samples(est, settings):
        return f"num_samples={num_samples} is not in {est.describe()}'s grid"
    return None


def _build(task_name: str):
    task = _tasks.build_task(task_name)
    task.reference()
    return task, task.problem(1)


def _built_task(task_name: str) -> bytes:
    """A work unit: one task built (its reference gradient computed), pickled. Every block of
    the task's cells unpickles its own copy, so no cell sees what another did to the task."""
    import pickle

    seed_unit("task", task_name)
    task, _problem = _build(task_name)
    return pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)


def _cell_block(argument) -> dict:
    """A work unit: every (num_samples, device) cell of one (task, estimator): ``{(k, device):
    cell}``. Each cell seeds torch itself (:func:`suite.measure.measure_cell`, seed
    :data:`SEED`), the block starts from a fresh copy of the built task and seeds the global
    generators from its identity, so its numbers depend on nothing that ran before it."""
    import pickle

    from .measure import measure_cell

    task_name, built, spec, ks, present, settings = argument
    set_threads(settings)
    seed_unit("cells", task_name, spec)
    task = pickle.loads(built)
    problem = task.problem(1)
    return {(k, device): _cell(task, problem, spec, k, device, measure_cell, settings)
            for k in ks for device in present}


def grid_layout(settings: Settings | None = None) -> list[tuple[str, list[str]]]:
    """``[(task, its estimator specs)]`` in the grid's order."""
    return [(task_name, list(specs)) for _family, (task_list, specs)
            in families(settings=settings).items() for task_name in task_list]


def compute_grid(settings: Settings | None = None) -> dict:
    """Build every task once and measure every applicable cell: ``{"cells": {(task, estimator,
    num_samples, device): {"status": "ok" | "skipped" | "failed", ...}}}``, plain data only.

    The work runs on :mod:`suite.executor` (every usable core by default; the ``workers`` and
    ``scheduler`` settings): first one unit per task (building it), then one unit per (task,
    estimator) block of CPU cells (:func:`_cell_block`: ~0.1-30 s each, so the executor's
    ~5-10 ms per unit stays well under 5 %). CUDA cells run afterwards in this process, one
    block at a time: their seconds per estimate are timed on the one GPU, never two at once.
    Results are the same whatever the number of workers and the order units finish in."""
    settings = _s(settings)
    set_threads(settings)
    ks, present = num_samples(settings=settings), devices(settings=settings)
    layout = grid_layout(settings)
    cpu = [d for d in present if d != "cuda"]
    cuda = [d for d in present if d == "cuda"]
    total = sum(len(specs) for _, specs in layout) * len(ks) * len(present)
    blocks: dict[tuple[str, str], dict] = {}
    with Progress(settings.progress, "gradient-grid", total) as progress, \
            Pool(settings, size_hint=sum(len(specs) for _, specs in layout)) as pool:
        built = pool.run(_built_task, [(name, name) for name, _ in layout])

        def block_done(key, outcome, devices_=()):
            blocks.setdefault(key, {}).update(_block_cells(outcome, ks, devices_))
            progress.step(len(ks) * len(devices_))

        units = [((name, spec), (name, built[name], spec, tuple(ks), tuple(cpu), settings))
                 for name, specs in layout if not isinstance(built[name], Failed)
                 for spec in specs]
        units = longest_first(units, previous_seconds(settings))
        if cpu:
            pool.run(_cell_block, units, lambda key, out: block_done(key, out, cpu))
        if cuda:  # timed on the one GPU: serially, in this process, after the parallel phase
            serial = Pool(replace(settings, workers=1, scheduler=""))
            serial.run(_cell_block, [(key, (*arg[:4], tuple(cuda), arg[5])) for key, arg in units],
                       lambda key, out: block_done(key, out, cuda))
    cells = {}
    for name, specs in layout:
        failed = built[name] if isinstance(built[name], Failed) else None
        for spec in specs:
            block = blocks.get((name, spec), {})
            for k in ks:
                for device in present:
                    if failed is not None:
                        cells[(name, spec, k, device)] = {
                            "status": "failed", "error": f"task {name}: {failed.error}",
                            "traceback": failed.traceback}
                    else:
                        cells[(name, spec, k, device)] = block[(k, device)]
    return {"cells": cells}


def previous_seconds(settings: Settings) -> dict[tuple[str, str], float]:
    """``(task, estimator) -> seconds`` its cells took in the latest gradient-grid run file of
    the results folder (``cell_seconds``); empty when there is none. Only the order units are
    sent in depends on it, never a result."""
    try:
        from estibench import schema

        from .results import results_folder

        files = [p for p in schema.run_files(results_folder(settings))
                 if p.name.endswith("-gradient-grid.parquet")]
        if not files:
            return {}
        rows = schema.read_run(files[-1], columns=["task", "estimator", "measure", "value"])
        rows = rows[rows["measure"] == "cell_seconds"]
        return {key: float(v) for key, v in rows.groupby(["task", "estimator"])["value"].sum()
                .items()}
    except Exception:  # noqa: BLE001 - no history: the grid's own order
        return {}


def longest_first(units: list, seconds: dict) -> list:
    """``units`` (keyed ``(task, estimator)``) with those that took longest last time first, and
    those never measured before all of them, so that no long unit starts last and leaves the
    other workers idle at the end (a stable sort: otherwise the grid's order)."""
    return sorted(units, key=lambda unit: (unit[0] in seconds, -seconds.get(unit[0], 0.0)))


def _block_cells(outcome, ks, present) -> dict:
    """A block's cells: what it measured, or each cell failed with the unit's error (it raised,
    its worker died, it ran past the time limit)."""
    if isinstance(outcome, Failed):
        return {(k, device): {"status": "failed", "error": outcome.error,
                              "traceback": outcome.traceback} for k in ks for device in present}
    return outcome


def _cell(task, problem, spec, k, device, measure_cell, settings: Settings) -> dict:
    from .measure import claims_unbiased

    if device == "cuda" and not cuda_available():
        return {"status": "skipped", "error": "no CUDA device"}
    try:
        reason = applicable(estimators.get(spec), problem, k, settings)
        if reason:
            return {"status": "skipped", "error": reason}
        start = time.perf_counter()
        values = measure_cell(lambda: estimators.get(spec), task, k, device, seed=SEED,
                              unbiased=claims_unbiased(spec),
                              max_replicates=claim_replicates(task, settings))
        values["cell_seconds"] = time.perf_counter() - start
        return {"status": "ok", "values": values}
    except Exception as exc:  # noqa: BLE001 - a failing estimator fails its own cell
        return {"status": "failed", "error": short_error(exc),
                "traceback": traceback.format_exc(limit=4)}


def build_for_cost(settings: Settings | None = None) -> dict:
    """The tasks (pickled for the cost benchmarks) and which cells apply. Kept apart from the
    quality numbers: unpickling tasks costs every quality track ~10 ms otherwise."""
    settings = _s(settings)
    built, applies = {}, {}
    ks = num_samples(settings=settings)
    for _family, (task_list, specs) in families(settings=settings).items():
        for task_name in task_list:
            try:
                task, problem = _build(task_name)
            except Exception as exc:  # noqa: BLE001
                built[task_name] = None
                applies.update({(task_name, s, k): f"task failed: {short_error(exc)}"
                                for s in specs for k in ks})
                continue
            built[task_name] = task
            for spec in specs:
                for k in ks:
                    try:
                        applies[(task_name, spec, k)] = applicable(estimators.get(spec),
                                                                   problem, k, settings)
                    except Exception as exc:  # noqa: BLE001
                        applies[(task_name, spec, k)] = f"failed: {short_error(exc)}"
    return {"tasks": built, "applies": applies}
