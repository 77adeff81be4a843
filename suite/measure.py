"""Measuring a gradient estimator on a task: R replicate estimates -> variance, bias, MSE, cosine,
SNR, each with its standard error.

With ``ĝ_1..ĝ_R`` independent estimates (rows of ``G``, ``[R, P]``), ``g`` the exact gradient
and ``m`` the mean estimate:

* ``variance``: ``tr Cov(ĝ) = Σ_r ||ĝ_r - m||² / (R - 1)``; se from the spread of the
  per-replicate terms, ``sd_r(||ĝ_r - m||²) / √R``.
* ``bias``: relative, ``||E ĝ - g|| / ||g||``. ``||m - g||²`` overestimates ``||E ĝ - g||²`` by
  ``tr Cov / R`` on average, so that is subtracted (clipped at 0) before the square root. Its
  ``_se`` is the resolution ``√(tr Cov / R) / ||g||``: smaller biases are not distinguishable
  from zero with these R.
* ``mse``: ``E||ĝ - g||² = variance + ||bias||²``, the mean of ``||ĝ_r - g||²``; se from its
  spread.
* ``cosine_of_mean``: ``cos(m, g)``; se by the delta method (``∇_m cos`` projected on the
  replicates' deviations).
* ``cosine``: the mean per-estimate ``cos(ĝ_r, g)`` (0 for an all-zero estimate); se from
  its spread.
* ``snr``: ``||m|| / √(tr Cov)`` (a vector version of the per-parameter SNR of Rainforth et
  al. 2018); undefined (``None``) for a deterministic estimator (noise below ``NOISE_FLOOR``
  times ``||m||``, i.e. rounding); se by the delta method.
* ``work_normalised_variance``: ``variance x seconds per estimate`` (Glynn & Whitt 1992: the
  efficiency of a Monte Carlo estimator is its variance times its cost).

**An estimated reference** (``reference_cov``, a task's
:meth:`~suite.taskbase.GradientTask.reference_covariance`; issue 23: at 2^200 latent states the
reference is an unbiased estimate ``g = g* + ε``, ``Cov ε = C``, independent of the estimates):
``||m - g||²`` then overestimates ``||E ĝ - g*||²`` by ``tr Cov / R + tr C``, so the bias
measure subtracts both and its ``_se`` is ``√(tr Cov / R + tr C) / ||g||``; likewise the MSE
subtracts ``tr C`` (clipped at 0) and its se gains ``4 (m - g)^T C (m - g)`` in quadrature; the
cosines' se gain their delta-method term ``∇_g^T C ∇_g`` (the cosines themselves read low by
about half the squared relative error of the reference, 5e-4 at 0.03, and are not corrected).
Variance and SNR do not involve g. With ``reference_cov=None`` (an exact reference) every number
is computed as before, bit for bit.

All statistics are computed in float64 on the estimates' device and moved to the host once.

**The claim test** (:mod:`suite.claims`, issue 10): a cell first draws R replicates as above, tests
``E[ĝ] = g`` and, while the detectable bias (95 % power) exceeds the task's ``bias_target`` (0.1 on
the toy tasks, 0.25 on the VAE tasks), draws more replicates, R chosen from the spread alone
(:func:`suite.claims.replicates_needed`), until the target is reached or the cell's budget of
``task.claim_budget`` f evaluations (counted over all its replicates) is spent, or, in the default
grid, a cap on the replicates themselves (:func:`suite.grid.claim_replicates`). The cell records
``detectable_bias``, ``bias_p``, ``bias_z`` and ``claim_verdict`` (1 consistent, 0 inconclusive,
-1 contradicted, against the estimator's registered ``unbiased`` claim); every other measure is
computed from the same, final set of replicates.

**Evaluations** (``evaluations``): how many evaluations of f one estimate makes, counted from what
f was asked to evaluate (the elements of its inputs over the elements of one sample of one
problem), so REBAR's 3 per sample and IndeCateR's D·C per sample show as they are.

**Gradients of f** (``grad_evaluations``): how many gradients of f with respect to its input one
estimate takes, a backward pass through f that the evaluation count does not show: MuProp's 1 (at
the mean), double CV's and RODEO's K (at the samples), REBAR's and RELAX's 2K (at the relaxed
samples), a relaxation's or straight-through's K (its pathwise gradient). Counted on the same
1-replicate call, estimate and ``backward()``: every input f receives passes through an identity
autograd node, and the rows of one call of f count once when any backward pass (inside the call,
like MuProp's ``autograd.grad``, or the loss's ``backward()``) reaches that node, however often
(second-order passes, a backward through f to its parameters that also reaches its input, count
no more). A score-function estimator's samples carry no gradient: 0.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

import estimators
from estibench.schema import GRADIENT, VERDICT_CODES

from .claims import check_covariance, covariance_trace, quadratic_form
from .tasks import GradientTask

__all__ = ["statistics", "rows_per_estimate", "evaluations_per_estimate", "costs_per_estimate",
           "grad_evaluations_per_estimate", "probe_gradients", "replicate_estimates",
           "seconds_per_estimate", "measure_cell", "warmed_up", "is_stateful", "claims_unbiased",
           "QUALITY_MEASURES", "VERDICT_CODES", "WARMUP_CALLS"]

NOISE_FLOOR = 1e-5  # relative noise below which replicates differ by rounding only
#: the most sample rows one vectorised call may give f, in multiples of the task's row budget
#: (the grid's heaviest cell, IndeCateR at K = 64 on 100 Bernoullis, needs about 20)
ROW_CEILING = 64
WARMUP_CALLS = 5  # calls a stateful estimator gets before it is measured, on every task
#: the quality measures of a cell: the gradient rows of the table of measures (units, labels,
#: directions there) but ``replicates``, which is a count, not a quality
QUALITY_MEASURES = tuple(m for m in GRADIENT if m != "replicates")


def statistics(G: torch.Tensor, g: torch.Tensor, reference_cov: torch.Tensor | None = None
               ) -> dict[str, float | None]:
    """Quality measures of the rows of ``G`` ``[R, P]`` against the reference gradient ``g``
    ``[P]``: ``{measure: value, measure_se: standard error}`` plus ``replicates``.
    ``reference_cov``: ``g``'s covariance when it is an estimate (``[P]`` or ``[P, P]``; see the
    module's notes), None when it is exact."""
    G = G.to(torch.float64)
    g = g.to(G.device, torch.float64).reshape(-1)
    r = G.shape[0]
    if r < 2:
        raise ValueError(f"statistics need at least 2 replicate estimates, got {r}")
    if G.shape[1] != g.numel():
        raise ValueError(f"estimates have {G.shape[1]} coordinates but the reference gradient "
                         f"has {g.numel()}")
    g_norm = g.norm()
    if not bool(g_norm > 0):
        raise ValueError("the reference gradient is zero: relative bias and cosine are undefined")
    cov = None if reference_cov is None else reference_cov.to(G.device, torch.float64)
    if cov is not None:
        check_covariance(cov, g.numel())
    m = G.mean(0)
    dev = G - m
    d = dev.pow(2).sum(1)  # ||ĝ_r - m||²
    variance = d.sum() / (r - 1)
    sqrt_r = math.sqrt(r)
    out = {"replicates": float(r)}
    out["variance"], out["variance_se"] = variance, d.std() / sqrt_r

    noise = variance / r if cov is None else variance / r + covariance_trace(cov)
    bias2 = ((m - g).pow(2).sum() - noise).clamp_min(0)
    out["bias"], out["bias_se"] = bias2.sqrt() / g_norm, noise.sqrt() / g_norm

    e = (G - g).pow(2).sum(1)
    if cov is None:
        out["mse"], out["mse_se"] = e.mean(), e.std() / sqrt_r
    else:
        out["mse"] = (e.mean() - covariance_trace(cov)).clamp_min(0)  # like the squared bias: never below 0
        out["mse_se"] = (e.var() / r + 4 * quadratic_form(cov, m - g)).sqrt()

    m_norm = m.norm().clamp_min(torch.finfo(torch.float64).tiny)
    g_unit = g / g_norm
    cos_mean = (m @ g_unit) / m_norm
    grad_cos = (g_unit - cos_mean * m / m_norm) / m_norm  # ∇_m cos(m, g)
    out["cosine_of_mean"], out["cosine_of_mean_se"] = cos_mean, (dev @ grad_cos).std() / sqrt_r
    if cov is not None:  # the reference's error through ∇_g cos(m, g)
        m_unit = m / m_norm
        grad_g = (m_unit - cos_mean * g_unit) / g_norm
        out["cosine_of_mean_se"] = (out["cosine_of_mean_se"] ** 2
                                    + quadratic_form(cov, grad_g)).sqrt()

    G_norm = G.norm(dim=1)
    c = torch.where(G_norm > 0, (G @ g_unit) / G_norm.clamp_min(torch.finfo(torch.float64).tiny),
                    torch.zeros_like(G_norm))
    out["cosine"], out["cosine_se"] = c.mean(), c.std() / sqrt_r
    if cov is not None:  # ∇_g mean_r cos(ĝ_r, g) = mean_r (ĝ_r/||ĝ_r|| - c_r g/||g||) / ||g||
        units = torch.where((G_norm > 0)[:, None],
                            G / G_norm.clamp_min(torch.finfo(torch.float64).tiny)[:, None],
                            torch.zeros_like(G))
        grad_g = (units.mean(0) - c.mean() * g_unit) / g_norm
        out["cosine_se"] = (out["cosine_se"] ** 2 + quadratic_form(cov, grad_g)).sqrt()

    # Rounding alone gives identical replicates (exact enumeration) a variance of order
    # (eps ||m||)^2; below NOISE_FLOOR relative noise the estimator is deterministic.
    if bool(variance.sqrt() > NOISE_FLOOR * m.norm()):
        snr = m.norm() / variance.sqrt()
        se_mnorm = (dev @ (m / m_norm)).std() / sqrt_r
        rel = (se_mnorm / m_norm) ** 2 + (0.5 * out["variance_se"] / variance) ** 2
        out["snr"], out["snr_se"] = snr, snr * rel.sqrt()
    else:
        out["snr"] = out["snr_se"] = None
    return {k: (None if v is None else float(v)) for k, v in out.items()}


class _GradientProbe(torch.autograd.Function):
    """Identity on f's input; its backward marks the call it belongs to as differentiated."""

    @staticmethod
    def forward(ctx, z, mark):
        ctx.mark = mark
        return z.view_as(z)

    @staticmethod
    def backward(ctx, grad):
        ctx.mark()
        return grad, None


def probe_gradients(z, count: list, index: int, amount: float):
    """``z``, through a :class:`_GradientProbe` that adds ``amount`` to ``count[index]`` the first
    time a backward pass reaches it (a training loop's count of gradients of f); ``z`` itself when
    it carries no gradient."""
    if not (isinstance(z, torch.Tensor) and z.requires_grad and torch.is_grad_enabled()):
        return z
    done = []

    def mark():
        if not done:
            done.append(True)
            count[index] += amount
    return _GradientProbe.apply(z, mark)


def costs_per_estimate(est, task: GradientTask, num_samples: int) -> tuple[int, int]:
    """``(evaluations, gradients)``: how many evaluations of f one estimate makes and how many
    gradients of f with respect to its input it takes (per problem: batch elements of one
    replicate are evaluated side by side and count once), from what f was actually asked to do:
    the elements of every input f receives over the elements of one sample of the problem, and
    of those inputs the ones some backward pass reached (see the module's notes). Counted on a
    1-replicate call and its ``backward()``, deterministically."""
    problem = task.problem(1)
    one = max(problem.dist.batch_shape.numel() * problem.dist.event_shape.numel(), 1)
    elements, differentiated = 0, {}

    def counting(z):
        nonlocal elements
        elements += z.numel()
        if isinstance(z, torch.Tensor) and z.requires_grad and torch.is_grad_enabled():
            call, size = len(differentiated), z.numel()
            differentiated[call] = 0

            def mark(call=call, size=size):
                differentiated[call] = size
            z = _GradientProbe.apply(z, mark)
        return problem.f(z)
    loss = est(problem.dist, counting, num_samples=num_samples)
    if isinstance(loss, torch.Tensor) and loss.requires_grad:
        loss.backward()
    return -(-elements // one), -(-sum(differentiated.values()) // one)


def evaluations_per_estimate(est, task: GradientTask, num_samples: int) -> int:
    """How many evaluations of f one estimate makes (:func:`costs_per_estimate`)."""
    return costs_per_estimate(est, task, num_samples)[0]


def grad_evaluations_per_estimate(est, task: GradientTask, num_samples: int) -> int:
    """How many gradients of f with respect to its input one estimate takes
    (:func:`costs_per_estimate`)."""
    return costs_per_estimate(est, task, num_samples)[1]


def rows_per_estimate(est, task: GradientTask, num_samples: int) -> int:
    """How many sample rows f receives for one estimate (K for plain sampling, 3K for REBAR's
    three evaluations, the support size for exact enumeration): counted on a 1-replicate call,
    so the replicate count R adapts to each estimator's real cost, deterministically."""
    problem = task.problem(1)
    rows = 0

    def counting(z):
        nonlocal rows
        rows += z.shape[0]
        return problem.f(z)
    est(problem.dist, counting, num_samples=num_samples)
    return rows


def replicate_estimates(est, task: GradientTask, num_samples: int, replicates: int,
                        device="cpu", dtype=torch.float32) -> torch.Tensor:
    """R independent gradient estimates ``[R, P]`` from ONE vectorised call."""
    problem = task.problem(replicates, device, dtype)
    est(problem.dist, problem.f, num_samples=num_samples).backward()
    return problem.flat_grad().detach()


def is_stateful(est) -> bool:
    """Estimators with buffers or parameters (moving-average baselines, learned control
    variates) carry state from call to call."""
    return any(True for _ in est.buffers()) or any(True for _ in est.parameters())


def warmed_up(est, task: GradientTask, num_samples: int, replicates: int, device="cpu",
              dtype=torch.float32, calls: int = WARMUP_CALLS):
    """A stateful estimator run ``calls`` times on the same problem first, as it would be after
    a few training steps (a moving-average baseline starts at 0); stateless ones untouched."""
    if is_stateful(est):
        problem = task.problem(replicates, device, dtype)
        with torch.no_grad(), estimators.value_only():  # forward only: the baselines update
            for _ in range(calls):
                est(problem.dist, problem.f, num_samples=num_samples)
    return est


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_estimate(est, task: GradientTask, num_samples: int, device="cpu",
                         dtype=torch.float32, repeats: int = 7) -> float:
    """Median wall time of one estimate plus its backward (one replicate, validation off)."""
    times = []
    previous = estimators.validation_enabled()
    estimators.set_validation(False)
    try:
        for i in range(repeats + 1):
            problem = task.problem(1, device, dtype)
            _sync(device)
            start = time.perf_counter()
            est(problem.dist, problem.f, num_samples=num_samples).backward()
            _sync(device)
            if i:  # the first call warms up allocators and kernels
                times.append(time.perf_counter() - start)
    finally:
        estimators.set_validation(previous)
    times.sort()
    return times[len(times) // 2]


def claims_unbiased(spec: str) -> bool:
    """The estimator's registered claim (``info["unbiased"]``) for a spec ``name:options``."""
    return bool(estimators.info(spec.split(":")[0]).info.get("unbiased", False))


def _draw(est, task, num_samples, replicates, chunk, device, dtype) -> torch.Tensor:
    """``replicates`` estimates in calls of at most ``chunk`` replicates each."""
    parts, left = [], replicates
    while left > 0:
        n = min(left, chunk)
        parts.append(replicate_estimates(est, task, num_samples, n, device, dtype))
        left -= n
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def measure_cell(make_estimator: Callable[[], torch.nn.Module], task: GradientTask,
                 num_samples: int, device="cpu", seed: int = 0,
                 dtype=torch.float32, unbiased: bool = True,
                 max_replicates: int | None = None) -> dict[str, float | str | None]:
    """Every quality measure of one (task, estimator, num_samples, device) cell, and the test of
    the estimator's claim (``unbiased``: what it claims) with stated power.

    The estimator is built fresh (stateful baselines start from scratch) and the RNG seeded, so
    a cell's numbers do not depend on which cells ran before it. R starts at
    ``task.replicates_for(evaluations)`` and grows, in calls of at most that many replicates,
    until the detectable bias reaches ``task.bias_target`` or ``task.claim_budget`` f
    evaluations are spent (see the module docstring), and never past ``max_replicates``
    replicates when given (the default grid's cap, :func:`suite.grid.claim_replicates`: a
    replicate of a VAE task costs an encoder pass whatever K is). Against ``task.reference()``
    with, where that is an estimate, its covariance (``task.reference_covariance()``) in the
    statistics and the claim test; R stops growing once the reference's own error alone keeps
    the detectable bias above the target. ``reference_error``: the reference's relative error
    (``task.reference_relative_se()``, 0 when exact); ``reference_kind``: which reference, in
    words (``task.reference_description()``: the one value that is text)."""
    from .claims import claim_test, replicates_needed, verdict

    if task.min_replicates * num_samples > ROW_CEILING * task.row_budget:  # before counting
        raise ValueError(
            f"num_samples={num_samples}: the task's minimum of {task.min_replicates} replicates "
            f"of at least {num_samples:,} rows each is over {ROW_CEILING} x its row budget "
            f"({task.row_budget:,} rows at once); choose a smaller num_samples")
    torch.manual_seed(seed)
    est = make_estimator().to(device)
    evals, grads = costs_per_estimate(est, task, num_samples)
    r = task.replicates_for(evals)
    if r * evals > ROW_CEILING * task.row_budget:  # the task's minimum R must not override it
        raise ValueError(
            f"{est.describe()} at num_samples={num_samples} evaluates f on {evals:,} rows per "
            f"estimate: even the task's minimum of {r} replicates asks for {r * evals:,} rows at "
            f"once, over {ROW_CEILING} x the task's row budget ({task.row_budget:,}); choose a "
            f"smaller num_samples")
    r_max = max(r, task.claim_budget // max(evals, 1))
    if max_replicates is not None:
        r_max = max(r, min(r_max, int(max_replicates)))
    torch.manual_seed(seed)
    est = warmed_up(make_estimator().to(device), task, num_samples, r, device, dtype)
    g, cov = task.reference(), task.reference_covariance()
    G = replicate_estimates(est, task, num_samples, r, device, dtype)
    _check_finite(G)
    test = claim_test(G, g, resolution=_resolution(dtype), reference_cov=cov)
    while test.detectable_bias > task.bias_target and G.shape[0] < r_max:
        # R from the spread alone (never from the mean: no optional stopping on the statistic),
        # 10 % over what the estimated spread asks, at least doubling: few rounds
        needed = replicates_needed(test, task.bias_target)
        if needed <= G.shape[0]:  # out of reach: the estimated reference's own error
            break
        want = min(r_max, max(2 * G.shape[0], math.ceil(1.1 * needed)))
        more = _draw(est, task, num_samples, want - G.shape[0], r, device, dtype)
        _check_finite(more)
        G = torch.cat([G, more])
        test = claim_test(G, g, resolution=_resolution(dtype), reference_cov=cov)
    out = statistics(G, g, cov)
    # the reference's own relative error (0: exact); the run file shows it once per task, with
    # the reference's kind (group harness, :func:`suite.results.gradient_rows`)
    out["reference_error"] = task.reference_relative_se()
    out["reference_kind"] = task.reference_description()
    out["detectable_bias"] = test.detectable_bias
    out["bias_p"] = test.p_value
    out["bias_z"] = test.z_along_g
    out["claim_verdict"] = float(VERDICT_CODES[verdict(test, unbiased, task.bias_target)])
    seconds = seconds_per_estimate(make_estimator().to(device), task, num_samples, device, dtype)
    out["seconds_per_estimate"] = seconds
    out["work_normalised_variance"] = out["variance"] * seconds
    out["work_normalised_variance_se"] = out["variance_se"] * seconds
    out["evaluations"] = float(evals)
    out["grad_evaluations"] = float(grads)
    out["rows_per_estimate"] = float(evals)
    out["warmup_calls"] = float(WARMUP_CALLS if is_stateful(est) else 0)
    return out


def _resolution(dtype) -> float:
    """Relative rounding error of an estimate in ``dtype`` (see :func:`suite.claims.claim_test`):
    NOISE_FLOOR in float32 and coarser types, 1e3 x machine epsilon in float64."""
    eps = torch.finfo(dtype).eps
    return NOISE_FLOOR if eps > 1e-10 else 1e3 * eps


def _check_finite(G: torch.Tensor) -> None:
    if not bool(torch.isfinite(G).all()):
        bad = int((~torch.isfinite(G)).sum())
        raise FloatingPointError(f"{bad} non-finite gradient coordinates in {G.shape[0]} "
                                 f"estimates")
