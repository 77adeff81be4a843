"""asv benchmarks: every registered gradient estimator on every gradient task it supports.

Grid: (task, estimator, num_samples in {1, 4, 16, 64}, device). ``estimator`` runs over every
registered gradient estimator's benchmark variants (plugins included); ``task`` over
:data:`suite.registries.TASKS`. One set of classes per distribution family (``Bernoulli``,
``OneHotCategorical``, ``Normal``, ...), each pairing that family's tasks with the estimators
that support the family, so the grid holds few combinations that can only be skipped.

* ``Quality<Family>``: ``track_<measure>`` and ``track_<measure>_se`` for variance, bias, mse,
  cosine_of_mean, cosine, work_normalised_variance, plus ``track_replicates`` (R). See
  :mod:`suite.measure` for the definitions.
* ``SNR<Family>``: ``track_snr`` and ``track_snr_se``; deterministic estimators (variance 0,
  e.g. ``exact``) are skipped there: their SNR is undefined.
* ``Cost<Family>``: ``time_estimate`` (one estimate plus its backward) and ``peakmem_estimate``
  (process RSS); ``CudaMemory<Family>.track_cuda_peakmem`` (bytes allocated on the GPU at peak)
  where CUDA is in the grid.

Devices: the CPU, and CUDA where a GPU is present (:func:`devices`; ``ESTIBENCH_DEVICES=cpu,cuda``
lists CUDA cells on a machine without a GPU, where they are skipped cleanly).

All quality numbers are computed once per asv run in ``setup_cache`` (one vectorised call of R
replicates per cell, R stated by ``track_replicates``); the tracks read them. A combination the
estimator does not support (its family, exact enumeration past its size limit, the
leave-one-out baseline with one sample) is skipped (n/a); a cell whose estimator or task raises
is recorded with its error and fails on its own, and the rest of the run completes.

Environment variables narrow the grid for a focused study: ``ESTIBENCH_TASKS`` and
``ESTIBENCH_ESTIMATORS`` (comma-separated names or estimator specs), ``ESTIBENCH_NUM_SAMPLES``
(comma-separated ints), ``ESTIBENCH_DEVICES``.

No torch work happens at import (asv's forkserver would hang): tasks are built in setup_cache.
"""
from __future__ import annotations

import os
import traceback

import estimators
from suite import tasks as _tasks
from suite.registries import TASKS

NUM_SAMPLES = [1, 4, 16, 64]
SEED = 0
QUALITY = ("variance", "bias", "mse", "cosine_of_mean", "cosine", "work_normalised_variance")
UNITS = {"variance": "grad^2", "mse": "grad^2", "work_normalised_variance": "grad^2*s",
         "bias": "relative", "cosine_of_mean": "cosine", "cosine": "cosine", "snr": "ratio"}


def _env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    return chosen


def estimator_specs() -> list[str]:
    """Every registered gradient estimator's benchmark variants (its ``variants`` info, or its
    bare name)."""
    specs: list[str] = []
    for name in estimators.available(kind="gradient"):
        specs.extend(estimators.info(name).info.get("variants", (name,)))
    return _env_list("ESTIBENCH_ESTIMATORS", specs)


def task_names() -> list[str]:
    return _env_list("ESTIBENCH_TASKS", TASKS.available())


def num_samples() -> list[int]:
    return [int(k) for k in _env_list("ESTIBENCH_NUM_SAMPLES", [str(k) for k in NUM_SAMPLES])]


def devices() -> list[str]:
    """The devices in the grid: ``ESTIBENCH_DEVICES`` (comma-separated, e.g. ``cpu,cuda``) or by
    default the CPU plus CUDA when a GPU is present (asked through NVML, so the forkserver's
    parent does not initialise CUDA: forked children could not use it then).

    By default absent devices are left out rather than listed and skipped: every cell costs asv
    a process (~25 ms), and a CPU-only machine would pay that for ~2,000 CUDA cells that can only
    say n/a. ``ESTIBENCH_DEVICES=cpu,cuda`` lists them anyway; there they skip cleanly."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch
    default = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    chosen = _env_list("ESTIBENCH_DEVICES", default)
    unknown = [d for d in chosen if d not in ("cpu", "cuda")]
    if unknown:
        raise ValueError(f"ESTIBENCH_DEVICES: unknown device(s) {unknown}; expected cpu and/or "
                         f"cuda")
    return chosen


def cuda_available() -> bool:
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch
    return torch.cuda.is_available()


def families() -> dict[str, tuple[list[str], list[str]]]:
    """family -> (its tasks, the estimator specs whose registered families include it)."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    specs = estimator_specs()
    for task in task_names():
        # a task registered without a family is paired with every estimator; support is then
        # decided per cell at run time
        family = TASKS.entry(task.split(":")[0]).info.get("family", "Any")
        out.setdefault(family, ([], []))[0].append(task)
    for family, (_, ests) in out.items():
        ests.extend(s for s in specs if family == "Any"
                    or family in estimators.info(s.split(":")[0]).info.get("families", ()))
    return {f: v for f, v in out.items() if v[1]}


# -- the shared cache: tasks and every quality number -----------------------------------------
def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def applicable(est, problem, num_samples: int):
    """None if the estimator applies to this problem and sample count, else why not."""
    if not est.supports(problem.dist):
        return f"{est.describe()} does not support this task's distribution"
    if num_samples < est.min_samples():
        return f"{est.describe()} needs num_samples >= {est.min_samples()}"
    return None


def _build(task_name: str):
    task = _tasks.build_task(task_name)
    task.reference()
    return task, task.problem(1)


def compute_grid() -> dict:
    """Build every task once and measure every applicable cell: ``{"cells": {(task, estimator,
    num_samples, device): {"status": "ok" | "skipped" | "failed", ...}}}``, plain data only."""
    import torch

    from suite.measure import measure_cell

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    cells = {}
    for _family, (task_list, specs) in families().items():
        for task_name in task_list:
            keys = [(spec, k, device) for spec in specs for k in num_samples()
                    for device in devices()]
            try:
                task, problem = _build(task_name)
            except Exception as exc:  # noqa: BLE001 - a broken task fails its own cells
                for key in keys:
                    cells[(task_name, *key)] = {"status": "failed",
                                                "error": f"task {task_name}: {_short(exc)}"}
                continue
            for spec, k, device in keys:
                cells[(task_name, spec, k, device)] = _cell(task, problem, spec, k, device,
                                                            measure_cell)
    return {"cells": cells}


def _cell(task, problem, spec, k, device, measure_cell) -> dict:
    if device == "cuda" and not cuda_available():
        return {"status": "skipped", "error": "no CUDA device"}
    try:
        reason = applicable(estimators.get(spec), problem, k)
        if reason:
            return {"status": "skipped", "error": reason}
        values = measure_cell(lambda: estimators.get(spec), task, k, device, seed=SEED)
        return {"status": "ok", "values": values}
    except Exception as exc:  # noqa: BLE001 - a failing estimator fails its own cell
        return {"status": "failed", "error": _short(exc),
                "traceback": traceback.format_exc(limit=4)}


def build_for_cost() -> dict:
    """The tasks (pickled for the cost benchmarks) and which cells apply. Kept apart from the
    quality numbers: unpickling tasks costs every quality track ~10 ms otherwise."""
    built, applies = {}, {}
    for _family, (task_list, specs) in families().items():
        for task_name in task_list:
            try:
                task, problem = _build(task_name)
            except Exception as exc:  # noqa: BLE001
                built[task_name] = None
                applies.update({(task_name, s, k): f"task failed: {_short(exc)}"
                                for s in specs for k in num_samples()})
                continue
            built[task_name] = task
            for spec in specs:
                for k in num_samples():
                    try:
                        applies[(task_name, spec, k)] = applicable(estimators.get(spec),
                                                                   problem, k)
                    except Exception as exc:  # noqa: BLE001
                        applies[(task_name, spec, k)] = f"failed: {_short(exc)}"
    return {"tasks": built, "applies": applies}


class _Grid:
    """Base of the generated classes: the shared setup_cache (computed once per asv run: asv
    keys setup_cache by function, and every class inherits this one) and the cell lookup."""

    param_names = ["task", "estimator", "num_samples", "device"]
    timeout = 600
    number = 1
    rounds = 1
    repeat = 10
    warmup_time = 0.05

    def setup_cache(self):
        return compute_grid()

    setup_cache.timeout = 3600

    def cell(self, cache, task, estimator, num_samples, device) -> dict:
        cell = cache["cells"].get((task, estimator, num_samples, device))
        if cell is None or cell["status"] == "skipped":
            raise NotImplementedError(cell["error"] if cell else "not in the grid")
        return cell

    def value(self, cache, key, *params) -> float:
        cell = self.cell(cache, *params)
        if cell["status"] == "failed":  # raised in the body: asv marks this cell failed
            raise RuntimeError(f"{params}: {cell['error']}\n{cell.get('traceback', '')}")
        return float(cell["values"][key])


class _Quality(_Grid):
    def setup(self, cache, *params):
        self.cell(cache, *params)


def _track(key: str, unit: str):
    def track(self, cache, *params):
        return self.value(cache, key, *params)
    track.unit = unit
    track.__name__ = f"track_{key}"
    return track


for _m in QUALITY:
    setattr(_Quality, f"track_{_m}", _track(_m, UNITS[_m]))
    setattr(_Quality, f"track_{_m}_se", _track(f"{_m}_se", UNITS[_m]))
_Quality.track_replicates = _track("replicates", "replicates")


class _SNR(_Grid):
    def setup(self, cache, *params):
        cell = self.cell(cache, *params)
        if cell["status"] == "ok" and cell["values"]["snr"] is None:
            raise NotImplementedError("deterministic estimator: SNR undefined (variance 0)")

    track_snr = _track("snr", UNITS["snr"])
    track_snr_se = _track("snr_se", UNITS["snr"])


class _CostBase(_Grid):
    """One estimate plus its backward, on one replicate, validation off (no host sync)."""

    def setup_cache(self):
        return build_for_cost()

    setup_cache.timeout = 600

    def setup(self, cache, task, estimator, num_samples, device):
        if device == "cuda" and not cuda_available():
            raise NotImplementedError("no CUDA device")
        reason = cache["applies"].get((task, estimator, num_samples), "not in the grid")
        if reason:
            raise NotImplementedError(reason)
        estimators.set_validation(False)
        self.device = device
        self.est = estimators.get(estimator).to(device)
        self.task = cache["tasks"][task]
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

    def peakmem_estimate(self, cache, task, estimator, num_samples, device):
        self._run()


class _CudaMemory(_CostBase):
    def track_cuda_peakmem(self, cache, task, estimator, num_samples, device):
        import torch
        torch.cuda.reset_peak_memory_stats()
        self._run()
        return float(torch.cuda.max_memory_allocated())

    track_cuda_peakmem.unit = "bytes"


def _make_classes() -> None:
    for family, (task_list, specs) in families().items():
        ks = num_samples()
        present = devices()
        grid = [task_list, specs, ks, present]
        classes = [("Quality", _Quality, grid), ("SNR", _SNR, grid), ("Cost", _Cost, grid)]
        if "cuda" in present:  # GPU memory exists only where a GPU does
            classes.append(("CudaMemory", _CudaMemory, [task_list, specs, ks, ["cuda"]]))
        for prefix, base, params in classes:
            name = f"{prefix}{family}"
            globals()[name] = type(name, (base,), {"params": params, "__module__": __name__})


_make_classes()
