"""The cost floor of a gradient estimate, and each estimator's time as a multiple of it (issue 14).

**The floor** of a task at K samples is what any sampling estimator must at least do, written
directly in torch (no ``torch.distributions`` calls, no checks): draw K samples from the task's
distribution, evaluate f once on all of them, form the score-function surrogate
``mean_k[f_k + sg(f_k)(log p(z_k) - sg(log p(z_k)))]`` and run ``backward()``
(:func:`floor_estimate`). Building the problem (for the VAE tasks, the encoder's forward pass) is
outside the timed call for both the floor and the estimator; its backward pass is inside both.

**The ratio** (:func:`floor_ratio`): the estimator's seconds per estimate (plus backward, one
replicate, validation off, as :func:`suite.measure.seconds_per_estimate`) over the floor's,
measured *interleaved in one process* (floor and estimator alternate, the order flips every
pair, the garbage collector is off) and summarised by the median of the per-pair ratios, so that
load from other processes on a shared machine cancels out of the ratio.

**The pathwise floor** (:func:`pathwise_floor_estimate`). The score-function floor never
differentiates f: its backward pass runs through ``log p`` only (on the VAE tasks the decoder is
held fixed, so not at all through f). An estimator whose gradient flows *through* f (a
relaxation, straight-through, the reparameterisation trick) must run f's backward pass with
respect to the samples as well, which the score-function floor does not contain, so it is no
floor for them. Their floor is the cheapest pathwise estimate, rsample-style: the same samples,
made differentiable in the parameters in one step (``loc + scale·ε`` for Normal; straight-through
``z + (p - sg(p))`` for Bernoulli and OneHotCategorical), one batched f, ``mean_k f`` and
``backward()``. Estimators that declare ``pathwise = True`` get both ratios from
:func:`floor_ratio` (``ratio`` against the score-function floor, ``pathwise_ratio`` against this
one, all three timed interleaved).

**Floor multiple** (:func:`floor_multiple`): an estimator that evaluates f more than K times
(REBAR and RELAX 3K, MuProp K + 1, IndeCateR K·D·C, measure-valued 4·K·D, exact the support) is
compared against that many f calls: its declared ``evaluations(dist, K) / K`` (1 when it declares
nothing). A ratio near the multiple is at the floor for the work it does. The same number is
``track_evaluations / num_samples`` in ``bench_gradients``.

Nothing here runs torch work at import.
"""
from __future__ import annotations

import gc
import statistics
import time

__all__ = ["FLOOR_NUM_SAMPLES", "PAIRS", "floor_estimate", "pathwise_floor_estimate",
           "floor_multiple", "floor_ratio", "floor_num_samples", "compute_floor_grid"]

#: the sample counts the floor benchmark measures by default (the targets are stated at K >= 16)
FLOOR_NUM_SAMPLES = [16, 64]
#: interleaved (floor, estimator) pairs per ratio
PAIRS = 25


def floor_num_samples(settings=None) -> list[int]:
    """The ``floor_num_samples`` setting (``ESTIBENCH_FLOOR_NUM_SAMPLES``) or
    :data:`FLOOR_NUM_SAMPLES`."""
    from estibench.settings import current

    return list((settings or current()).floor_num_samples) or list(FLOOR_NUM_SAMPLES)


def _event_dims(logp_like, dist) -> int:
    return logp_like.dim() - 1 - len(dist.batch_shape)


def floor_estimate(dist, f, num_samples: int):
    """The plain-torch floor: K samples of ``dist`` (Bernoulli, Categorical, OneHotCategorical or
    Normal, alone or in Independent), one batched f call, the score-function surrogate. Returns
    the scalar loss (call ``backward()`` on it)."""
    import torch
    from torch import distributions as D

    from estimators.base import unwrap

    base, _ = unwrap(dist)
    k = num_samples
    if isinstance(base, D.Bernoulli):
        logits = base.logits
        with torch.no_grad():
            z = torch.rand((k,) + logits.shape, dtype=logits.dtype,
                           device=logits.device).lt_(torch.sigmoid(logits))  # 0/1 in place
        logp = z * logits - torch.nn.functional.softplus(logits)
    elif isinstance(base, (D.Categorical, D.OneHotCategorical)):
        logits = base.logits  # torch normalised them at construction: log-probabilities
        with torch.no_grad():
            u = torch.rand((k,) + logits.shape, dtype=logits.dtype, device=logits.device)
            idx = (logits - torch.log(-torch.log(u))).argmax(-1, keepdim=True)  # Gumbel-max
        logp = logits.expand((k,) + logits.shape).gather(-1, idx).squeeze(-1)
        if isinstance(base, D.OneHotCategorical):
            z = torch.zeros((k,) + logits.shape, dtype=logits.dtype,
                            device=logits.device).scatter_(-1, idx, 1.0)
        else:
            z = idx.squeeze(-1)
    elif isinstance(base, D.Normal):
        loc, scale = base.loc, base.scale
        with torch.no_grad():
            z = loc + scale * torch.randn((k,) + loc.shape, dtype=loc.dtype, device=loc.device)
        logp = -0.5 * ((z - loc) / scale) ** 2 - scale.log()  # the constant has no gradient
    else:
        raise TypeError(f"floor_estimate: no floor for {type(base).__name__}")
    extra = _event_dims(logp, dist)
    if extra:
        logp = logp.sum(tuple(range(-extra, 0)))
    cost = f(z)
    return torch.addcmul(cost, cost.detach(), logp - logp.detach()).mean(0).sum()


def pathwise_floor_estimate(dist, f, num_samples: int):
    """The plain-torch pathwise floor (see the module docstring): K samples of ``dist``
    (Bernoulli, OneHotCategorical or Normal, alone or in Independent) differentiable in its
    parameters in one step, one batched f, ``mean_k f``. Returns the scalar loss."""
    import torch
    from torch import distributions as D

    from estimators.base import unwrap

    base, _ = unwrap(dist)
    k = num_samples
    if isinstance(base, D.Bernoulli):
        logits = base.logits
        p = torch.sigmoid(logits)
        with torch.no_grad():
            hard = torch.rand((k,) + logits.shape, dtype=logits.dtype,
                              device=logits.device).lt_(p)
        z = hard + (p - p.detach())
    elif isinstance(base, D.OneHotCategorical):
        logits = base.logits  # normalised: p = exp(logits)
        p = logits.exp()
        with torch.no_grad():
            u = torch.rand((k,) + logits.shape, dtype=logits.dtype, device=logits.device)
            idx = (logits - torch.log(-torch.log(u))).argmax(-1, keepdim=True)  # Gumbel-max
            hard = torch.zeros_like(u).scatter_(-1, idx, 1.0)
        z = hard + (p - p.detach())
    elif isinstance(base, D.Normal):
        loc, scale = base.loc, base.scale
        z = loc + scale * torch.randn((k,) + loc.shape, dtype=loc.dtype, device=loc.device)
    else:
        raise TypeError(f"pathwise_floor_estimate: no pathwise floor for {type(base).__name__}")
    return f(z).mean(0).sum()


def floor_multiple(est, dist, num_samples: int) -> float:
    """f evaluations of one estimate per sample: ``evaluations(dist, K) / K`` (1 when the
    estimator declares none)."""
    from estimators.evaluations import evaluations

    n = evaluations(est, dist, num_samples)
    return 1.0 if n is None else n / num_samples


def _timer(device):
    import torch

    if str(device).startswith("cuda"):
        def sync():
            torch.cuda.synchronize(device)
    else:
        def sync():
            return None
    return sync


def floor_ratio(est, task, num_samples: int, device="cpu", pairs: int = PAIRS,
                dtype=None, *, pathwise: bool | None = None) -> dict[str, float]:
    """``{"ratio", "floor_seconds", "seconds", "ratio_of_medians"}``: ``est``'s time per estimate
    over the floor's on ``task`` at K = ``num_samples``, interleaved in this process (see the
    module docstring). Stateful estimators are warmed up first (:func:`suite.measure.warmed_up`).

    ``pathwise`` (default: the estimator's ``pathwise`` declaration) also times the pathwise
    floor in the same interleaved rounds and adds ``pathwise_ratio``,
    ``pathwise_ratio_of_medians`` and ``pathwise_floor_seconds``."""
    import torch

    import estimators

    from .measure import warmed_up

    dtype = dtype or torch.float32
    sync = _timer(device)
    warmed_up(est, task, num_samples, 1, device, dtype)
    if pathwise is None:
        pathwise = bool(getattr(est, "pathwise", False))

    def once(run) -> float:
        problem = task.problem(1, device, dtype)
        sync()
        start = time.perf_counter()
        run(problem).backward()
        sync()
        return time.perf_counter() - start

    def run_est(problem):
        return est(problem.dist, problem.f, num_samples=num_samples)

    def run_floor(problem):
        return floor_estimate(problem.dist, problem.f, num_samples)

    def run_pathwise(problem):
        return pathwise_floor_estimate(problem.dist, problem.f, num_samples)

    runs = {"floor": run_floor, "est": run_est}
    if pathwise:
        runs["pathwise"] = run_pathwise
    times = {name: [] for name in runs}
    order = list(runs)
    previous = estimators.validation_enabled()
    gc_was = gc.isenabled()
    estimators.set_validation(False)
    gc.disable()
    try:
        for _ in range(3):  # warm up allocators and kernels
            for run in runs.values():
                once(run)
        for i in range(pairs):  # the order flips every round
            for name in (order if i % 2 == 0 else order[::-1]):
                times[name].append(once(runs[name]))
    finally:
        estimators.set_validation(previous)
        if gc_was:
            gc.enable()
    t_floor, t_est = times["floor"], times["est"]
    floor_s, est_s = statistics.median(t_floor), statistics.median(t_est)
    out = {"ratio": statistics.median(e / f for e, f in zip(t_est, t_floor)),
           "ratio_of_medians": est_s / floor_s, "floor_seconds": floor_s, "seconds": est_s}
    if pathwise:
        t_path = times["pathwise"]
        path_s = statistics.median(t_path)
        out.update(pathwise_ratio=statistics.median(e / f for e, f in zip(t_est, t_path)),
                   pathwise_ratio_of_medians=est_s / path_s, pathwise_floor_seconds=path_s)
    return out


def _floor_block(argument) -> tuple[dict, dict]:
    """A work unit: every (estimator spec, K, device) floor cell of one task, timed in this
    process: ``(cells, floors)`` keyed as :func:`compute_floor_grid`'s."""
    import traceback

    import estimators

    from . import grid
    from .benchutil import set_threads, short_error
    from .executor import seed_unit

    task_name, specs, ks, devices, settings = argument
    set_threads(settings)
    seed_unit("floor", task_name)
    cells, floors = {}, {}
    keys = [(s, k, d) for s in specs for k in ks for d in devices]
    try:
        task, problem = grid._build(task_name)
    except Exception as exc:  # noqa: BLE001 - a broken task fails its own cells
        return {(task_name, *key): {"status": "failed", "error": short_error(exc)}
                for key in keys}, floors
    for spec, k, device in keys:
        key = (task_name, spec, k, device)
        if device == "cuda" and not grid.cuda_available():
            cells[key] = {"status": "skipped", "error": "no CUDA device"}
            continue
        try:
            est = estimators.get(spec)
            reason = grid.applicable(est, problem, k, settings) \
                if k >= est.min_samples() else \
                f"{est.describe()} needs num_samples >= {est.min_samples()}"
            if reason and "grid" not in reason:  # any K of this axis applies if valid
                cells[key] = {"status": "skipped", "error": reason}
                continue
            values = floor_ratio(est.to(device), task, k, device)
            values["floor_multiple"] = floor_multiple(est, problem.dist, k)
            floors.setdefault((task_name, k, device), values["floor_seconds"])
            cells[key] = {"status": "ok", "values": values}
        except Exception as exc:  # noqa: BLE001 - a failing estimator fails its cell
            cells[key] = {"status": "failed", "error": short_error(exc),
                          "traceback": traceback.format_exc(limit=4)}
    return cells, floors


def compute_floor_grid(settings=None) -> dict:
    """Every (task, estimator spec, K, device) cell of the floor benchmark that applies (as
    :func:`suite.grid.applicable` decides, K from :func:`floor_num_samples`), narrowed by the
    settings: ``{"cells": {key: {"status": "ok"|"skipped"|"failed", ...}},
    "floors": {(task, K, device): seconds}}``.

    One unit of :mod:`suite.executor` per task (its CPU cells): the workers are single-threaded
    processes, at most one per usable core, so each ratio is timed on a core of its own, and
    the ratio itself is interleaved (floor and estimator alternate in one process), so what
    other processes do cancels out of it. CUDA cells run afterwards in this process, one task
    at a time (one GPU: never two timings at once)."""
    from estibench.settings import current

    from . import grid
    from .benchutil import set_threads
    from .executor import Failed, run_units

    settings = settings or current()
    set_threads(settings)
    ks = floor_num_samples(settings)
    present = grid.devices(settings=settings)
    cpu = [d for d in present if d != "cuda"]
    cuda = [d for d in present if d == "cuda"]
    layout = [(t, tuple(specs)) for _family, (task_list, specs)
              in grid.families(settings=settings).items() for t in task_list]
    cells, floors = {}, {}
    outcomes = run_units(_floor_block, [(t, (t, specs, ks, cpu, settings))
                                        for t, specs in layout], settings) if cpu else {}
    for task_name, specs in layout:
        parts = [outcomes.get(task_name)] if cpu else []
        if cuda:
            parts.append(_floor_block((task_name, specs, ks, cuda, settings)))
        for part in parts:
            if isinstance(part, Failed):
                cells.update({(task_name, s, k, d): {"status": "failed", "error": part.error}
                              for s in specs for k in ks for d in cpu})
                continue
            cells.update(part[0])
            floors.update(part[1])
    return {"cells": cells, "floors": floors, "num_samples": ks, "pairs": PAIRS}
