"""asv benchmarks: every registered gradient estimator on every gradient task it supports.

Grid: (task, estimator, num_samples, device); laid out and computed by :mod:`suite.grid`
(``estimator`` runs over every registered gradient estimator's benchmark variants, plugins
included; ``task`` over :data:`suite.registries.TASKS`; K: by default each estimator's smallest
valid K and 16, in the full grid, ``ESTIBENCH_GRID=full``, also 1, 4 and 64). One set of classes
per distribution family (``Bernoulli``, ``OneHotCategorical``, ``Normal``, ...) and smallest valid
K (``QualityBernoulli`` for the estimators valid at K = 1, ``QualityBernoulliK2`` for those that
need 2), each pairing that family's tasks with the estimators that support it at the K they run,
so the grid holds few combinations that can only be skipped: asv starts a process (~20 ms) for
every cell, skipped or not.

**asv cells and run files.** asv starts a process per cell, so asv tracks per gradient cell only
what deserves a regression alarm (:data:`TRACKED`): ``Quality<Family>``'s ``track_variance``,
``track_bias``, ``track_mse`` and ``track_claim_verdict`` (1 consistent, 0 inconclusive, -1
contradicted, against the registered ``unbiased`` claim); ``Cost<Family>.time_estimate`` (one
estimate plus its backward) and, in the full grid, ``peakmem_estimate`` (process RSS);
``CudaMemory<Family>.track_cuda_peakmem`` (bytes allocated on the GPU at peak) where CUDA is in
the grid. Everything the grid measured, the tracked numbers included, goes to the run's run file
(:mod:`suite.results`): every measure of :func:`suite.measure.measure_cell` with its standard
error (replicates R, f evaluations per estimate, the claim test's detectable bias, p-value and
z, the cosines, the SNR, the work-normalised variance, the seconds per estimate), failed and
skipped cells with their errors and reasons, each task's ``bias_target`` and the harness's
``warmup_calls``. See :mod:`suite.measure` for the definitions.

Units come from :data:`estibench.schema.MEASURES`. Devices: the CPU, and CUDA where a GPU is
present (:func:`suite.grid.devices`; ``ESTIBENCH_DEVICES=cpu,cuda`` lists CUDA cells on a
machine without a GPU, where they are skipped cleanly).

All quality numbers are computed once per asv run in ``setup_cache`` (one vectorised call of R
replicates per cell, R stated by ``track_replicates``; reused from disk on the same code and
machine, :func:`suite.benchutil.disk_cached`); the tracks read them, each cell's process only its
own (:func:`suite.benchutil.spill`). A combination the
estimator does not support (its family, exact enumeration past its size limit, the
leave-one-out baseline with one sample) is skipped (n/a); a cell whose estimator or task raises
is recorded with its error and fails on its own, and the rest of the run completes.

The settings ``tasks``, ``estimators``, ``num_samples`` and ``devices`` narrow what is computed,
never the parameters: cells outside the narrowing are skipped, so a narrowed run (through
``estibench run``) adds to what is stored (see :mod:`suite.grid`).
No torch work happens at import (asv's forkserver would hang): tasks are built in setup_cache.
"""
from __future__ import annotations

import time

import estimators
from estibench.schema import MEASURES
from estibench.settings import current
from suite import grid, results
from suite.benchutil import Timed, disk_cached, make_track, spill, unspill
from suite.measure import WARMUP_CALLS
from suite.tasks import bias_target

#: what asv tracks per gradient cell (a regression alarm each); the run file holds every measure
TRACKED = ("variance", "bias", "mse", "claim_verdict")


class _Grid(Timed):
    """Base of the generated classes: the shared setup_cache (computed once per asv run: asv
    keys setup_cache by function, and every class inherits this one) and the cell lookup."""

    param_names = ["task", "estimator", "num_samples", "device"]
    timeout = 600
    number = 1

    def setup_cache(self):
        started, settings = time.time(), current()
        computed = disk_cached("gradient-grid", lambda: grid.compute_grid(settings),
                               computation="gradient-grid", settings=settings)
        results.write(results.gradient_rows(computed["cells"], WARMUP_CALLS, bias_target),
                      "gradient-grid", started, settings)
        return {"spilled": spill(computed["cells"], "gradient-grid")}

    setup_cache.timeout = 3600

    def cell(self, cache, task, estimator, num_samples, device) -> dict:
        key = (task, estimator, num_samples, device)
        cell = unspill(cache["spilled"], key) if "spilled" in cache else cache["cells"].get(key)
        if cell is None or cell["status"] == "skipped":
            raise NotImplementedError(cell["error"] if cell else "not in the grid")
        return cell

    def value(self, key, cache, *params) -> float:
        cell = self.cell(cache, *params)
        if cell["status"] == "failed":  # raised in the body: asv marks this cell failed
            raise RuntimeError(f"{params}: {cell['error']}\n{cell.get('traceback', '')}")
        return float(cell["values"][key])


class _Quality(_Grid):
    def setup(self, cache, *params):
        self.cell(cache, *params)


for _m in TRACKED:
    setattr(_Quality, f"track_{_m}", make_track(_m, MEASURES[_m].unit, _Grid.value))


class _CostBase(_Grid):
    """One estimate plus its backward, on one replicate, validation off (no host sync)."""

    warmup_time = 0.02  # setup already ran it once (allocators and kernels warm)

    def setup_cache(self):
        settings = current()
        built = disk_cached("cost-tasks", lambda: grid.build_for_cost(settings),
                            computation="cost-tasks", settings=settings)
        per_task = {name: {"task": task, "applies": {
            key[1:]: why for key, why in built["applies"].items() if key[0] == name}}
            for name, task in built["tasks"].items()}
        return {"spilled": spill(per_task, "cost-tasks")}

    setup_cache.timeout = 600

    def setup(self, cache, task, estimator, num_samples, device):
        if device == "cuda" and not grid.cuda_available():
            raise NotImplementedError("no CUDA device")
        if "spilled" in cache:
            entry = unspill(cache["spilled"], task) or {"task": None, "applies": {}}
        else:
            entry = {"task": cache["tasks"].get(task), "applies": {
                key[1:]: why for key, why in cache["applies"].items() if key[0] == task}}
        reason = entry["applies"].get((estimator, num_samples), "not in the grid")
        if reason:
            raise NotImplementedError(reason)
        estimators.set_validation(False)
        self.device = device
        self.est = estimators.get(estimator).to(device)
        self.task = entry["task"]
        self.k = num_samples
        self._run()  # warm up allocators and kernels

    def teardown(self, *args):
        estimators.set_validation(True)

    def _run(self):
        # A fresh problem each call, as in training: a distribution caches tensors derived from
        # its parameters (normalised logits, probs) whose graph one backward() frees.
        problem = self.task.problem(1, self.device)
        self.est(problem.dist, problem.f, num_samples=self.k).backward()
        if self.device == "cuda":
            import torch
            torch.cuda.synchronize()


class _Cost(_CostBase):
    def time_estimate(self, cache, task, estimator, num_samples, device):
        self._run()


def _peakmem_estimate(self, cache, task, estimator, num_samples, device):
    self._run()


if grid.full_grid():
    _Cost.peakmem_estimate = _peakmem_estimate


class _CudaMemory(_CostBase):
    def track_cuda_peakmem(self, cache, task, estimator, num_samples, device):
        import torch
        torch.cuda.reset_peak_memory_stats()
        self._run()
        return float(torch.cuda.max_memory_allocated())

    track_cuda_peakmem.unit = MEASURES["cuda_peakmem"].unit


def _make_classes() -> None:
    # the full grid whatever ESTIBENCH_* says: narrowing skips cells, so a narrowed run and a full
    # one are the same benchmarks and asv keeps the cells a narrowed run does not select
    present = grid.devices(full=True)
    for family, (task_list, all_specs) in grid.families(full=True).items():
        groups = grid.specs_by_min_samples(all_specs)
        for k_min, specs in groups.items():
            ks = grid.class_num_samples(k_min)
            params = [task_list, specs, ks, present]
            classes = [("Quality", _Quality, params), ("Cost", _Cost, params)]
            if "cuda" in present:  # GPU memory exists only where a GPU does
                classes.append(("CudaMemory", _CudaMemory, [task_list, specs, ks, ["cuda"]]))
            # the estimators valid at the group's smallest K keep the family's plain name
            suffix = "" if k_min == min(groups) else f"K{k_min}"
            for prefix, base, class_params in classes:
                name = f"{prefix}{family}{suffix}"
                globals()[name] = type(name, (base,), {"params": class_params,
                                                       "__module__": __name__})


_make_classes()
