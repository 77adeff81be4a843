"""Tests of the update-search estimators (MGS, antithetic ES) and the clipping transforms.

Note [Randomized statistical tests] (as in torch's test_distributions.py): each statistical test
fixes its seed and derives its tolerance from a stated failure rate ``ALPHA``, the probability
that it fails for a correct estimator under the normal approximation of a mean of R independent
updates, with a Bonferroni correction over the coordinates compared.

What MGS should return on a quadratic (derivation; seed notes section 3)
-------------------------------------------------------------------------
Take ``l(θ) = ||θ - c||²/2`` at θ0 and ``g = ∇l(θ0) = θ0 - c``. The change of the loss is exactly
``Δl(Δ) = g·Δ + ||Δ||²/2``, so the target ``p(Δ) ∝ exp(-Δl(Δ)/α) ∝ exp(-||Δ + g||²/(2α))`` is
``N(-g, αI)``, with mean ``-g = -∇l``.

* With ``proposal_correction`` (weights ``∝ exp(-Δl/α)/q``) the self-normalised estimate tends
  to ``E_p[Δ] = -∇l`` as K → ∞, for any proposal q (zero-mean, guided or the mixture).
* Without it (weights ``∝ exp(-Δl/α)``) it tends to the mean of ``exp(-Δl/α)·q(Δ)``; for
  ``q = N(0, σ²I)`` that is a Gaussian of precision ``1/α + 1/σ²`` and mean
  ``-(g/α)/(1/α + 1/σ²) = -σ²/(σ² + α)·∇l``.

Both are the estimator docstring's claims, and both are limits: at finite K a self-normalised
estimate is biased (for K = 1 the update is just the candidate, of mean E_q[Δ]). The exact
finite-K expectation follows from ``1/S = ∫_0^∞ e^{-tS} dt`` with independent candidates:

    E[Σ_k r_k Δ_k / Σ_j r_j] = Σ_k ∫_0^∞ E[r_k Δ_k e^{-t r_k}] Π_{j≠k} E[e^{-t r_j}] dt,

``r`` the unnormalised weight. In one dimension every expectation is a quadrature
(:func:`exact_mgs_mean`), so the mean of many MGS updates is tested against the exact value,
and the quadrature is checked against the closed-form limits. When ``q ∝ p`` (guide = g, η = 1,
mixture = 1, σ² = α, with the correction) every weight is equal and the update is an average of
exact draws from p: unbiased for ``-∇l`` at every K.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special
from statcheck import z_crit  # noqa: E402  (the one stated failure rate)

import estimators
from estimators.transforms import (
    CLIPPING,
    clip_hard,
    clip_smooth,
    clipping,
    global_norm,
    hard_factor,
    smooth_factor,
)
from estimators.update_search import (
    MGS,
    EvolutionStrategies,
    effective_sample_size,
    mgs_log_weights,
    mixture_log_density,
)


def quadratic(theta: torch.Tensor, c: torch.Tensor):
    """``l(θ) = ||θ - c||²/2`` evaluated at the tensor's current (perturbed) value."""
    return lambda: 0.5 * (theta - c).pow(2).sum()


# -- the exact finite-K expectation (1-D) ------------------------------------------------------
def _log_normal(x, mean, sigma):
    return -0.5 * (x - mean) ** 2 / sigma ** 2 - 0.5 * math.log(2 * math.pi * sigma ** 2)


def _weights_on_grid(g, sigma, alpha, kg, k, mu_g, correction):
    """Grid over Δ, quadrature weights, log q of each component, and log r (scaled so that
    E_q[r] = 1: weights are scale free)."""
    lo, hi = min(0.0, mu_g) - 14 * sigma, max(0.0, mu_g) + 14 * sigma
    d = np.linspace(lo, hi, 6001)
    dw = np.full_like(d, d[1] - d[0])  # Gaussian tails vanish at the ends: a Riemann sum is exact
    lq0, lqg = _log_normal(d, 0.0, sigma), _log_normal(d, mu_g, sigma)
    frac = kg / k
    if frac == 0:
        lq = lq0
    elif frac == 1:
        lq = lqg
    else:
        lq = np.logaddexp(lq0 + math.log1p(-frac), lqg + math.log(frac))
    log_r = -(g * d + d ** 2 / 2) / alpha - (lq if correction else 0.0)
    log_r = log_r - special.logsumexp(log_r + lq, b=dw)
    return d, dw, lq0, lqg, lq, log_r


def exact_mgs_mean(k, kg, g, sigma, alpha, mu_g=0.0, correction=True) -> float:
    """E[Σ w_k Δ_k] of MGS in 1-D on ``l = (θ - c)²/2`` (g = θ0 - c) with ``k - kg`` candidates
    from N(0, σ²) and ``kg`` from N(μ_g, σ²), by the Laplace identity (module docstring)."""
    d, dw, lq0, lqg, _, log_r = _weights_on_grid(g, sigma, alpha, kg, k, mu_g, correction)
    r = np.exp(log_r)
    groups = [(np.exp(lq0) * dw, k - kg), (np.exp(lqg) * dw, kg)]

    def integrand(s):  # t = e^s spreads the scales of r evenly
        t = math.exp(s)
        e = np.exp(-t * r)
        a = [np.sum(q * r * d * e) for q, _ in groups]
        b = [np.sum(q * e) for q, _ in groups]
        total = 0.0
        for i, (_, n) in enumerate(groups):
            if n:
                others = math.prod(b[j] ** groups[j][1] for j in range(2) if j != i)
                total += n * a[i] * b[i] ** (n - 1) * others
        return total * t

    value, _ = integrate.quad(integrand, -50, 50, limit=500, epsabs=1e-12, epsrel=1e-10)
    return value


def limit_mgs_mean(g, sigma, alpha, kg, k, mu_g=0.0, correction=True) -> float:
    """The K → ∞ limit ``E_q[r Δ] / E_q[r]`` by quadrature."""
    d, dw, _, _, lq, log_r = _weights_on_grid(g, sigma, alpha, kg, k, mu_g, correction)
    w = np.exp(log_r + lq) * dw
    return float(np.sum(w * d) / np.sum(w))


G, SIGMA, ALPHA_T = 1.0, 0.5, 0.25  # a 1-D problem where the finite-K bias is large


@pytest.mark.parametrize("kg, mu_g", [(0, 0.0), (2, -0.8)])
def test_closed_form_limit_with_correction_is_minus_gradient(kg, mu_g):
    assert limit_mgs_mean(G, SIGMA, ALPHA_T, kg, 4, mu_g) == pytest.approx(-G, abs=1e-9)


def test_closed_form_limit_without_correction():
    expected = -SIGMA ** 2 / (SIGMA ** 2 + ALPHA_T) * G
    got = limit_mgs_mean(G, SIGMA, ALPHA_T, 0, 4, correction=False)
    assert got == pytest.approx(expected, abs=1e-9)


def test_exact_finite_k_formula_on_known_cases():
    # K = 1: the update is the candidate itself
    assert exact_mgs_mean(1, 0, G, SIGMA, ALPHA_T) == pytest.approx(0.0, abs=1e-9)
    assert exact_mgs_mean(1, 1, G, SIGMA, ALPHA_T, mu_g=-0.7) == pytest.approx(-0.7, abs=1e-9)
    # q = p (σ² = α, every candidate around -g): constant weights, exact for any K
    assert exact_mgs_mean(3, 3, G, math.sqrt(ALPHA_T), ALPHA_T, mu_g=-G) == pytest.approx(
        -G, abs=1e-9)
    # large K approaches the limits (the bias shrinks with K)
    far = [abs(exact_mgs_mean(k, 0, G, SIGMA, ALPHA_T, correction=False)
               + SIGMA ** 2 / (SIGMA ** 2 + ALPHA_T) * G) for k in (4, 100, 10_000)]
    assert far[0] > far[1] > far[2] and far[2] < 1e-3


def _mgs_updates(est: MGS, reps: int, g: float, guide=None, seed: int = 0) -> torch.Tensor:
    """``reps`` MGS updates Δθ (= -p.grad) on the 1-D quadratic at θ0 = 0 with c = -g."""
    torch.manual_seed(seed)
    theta = torch.zeros(1, dtype=torch.float64)
    loss = quadratic(theta, torch.tensor([-g], dtype=torch.float64))
    out = torch.empty(reps, dtype=torch.float64)
    for i in range(reps):
        est([theta], loss, guide=guide)
        out[i] = -theta.grad[0]
    return out


@pytest.mark.parametrize("correction, kg, eta", [(True, 0, 0.0), (False, 0, 0.0), (True, 2, 0.8),
                                                 (False, 2, 0.8)],
                         ids=["corrected", "uncorrected", "mixture-corrected",
                              "mixture-uncorrected"])
def test_mgs_mean_matches_exact_expectation(correction, kg, eta):
    k, reps = 4, 1500
    est = MGS(num_candidates=k, sigma=SIGMA, alpha=ALPHA_T, guide_scale=eta,
              mixture=kg / k, proposal_correction=correction)
    guide = [torch.tensor([G], dtype=torch.float64)] if kg else None  # the MLE gradient = ∇l
    updates = _mgs_updates(est, reps, G, guide)
    exact = exact_mgs_mean(k, kg, G, SIGMA, ALPHA_T, mu_g=-eta * G, correction=correction)
    tol = z_crit() * float(updates.std()) / math.sqrt(reps)
    assert abs(float(updates.mean()) - exact) < tol


def test_finite_k_bias_is_large_for_few_candidates():
    """The docstring's targets are K → ∞ limits: with K = 4 and the correction the expected
    update here is less than half of -∇l (0.43 vs 1), so the statistical test above would
    reject the limit."""
    assert exact_mgs_mean(4, 0, G, SIGMA, ALPHA_T) == pytest.approx(-0.4256, abs=1e-3)


def test_mgs_is_unbiased_when_the_proposal_is_the_target():
    """guide = ∇l, η = 1, mixture = 1, σ² = α, corrected: q = p = N(-∇l, αI) in D = 3."""
    torch.manual_seed(1)
    k, reps, alpha = 4, 1500, 0.09
    theta = torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64)
    c = torch.tensor([1.0, 0.5, -0.5], dtype=torch.float64)
    grad = theta - c
    est = MGS(num_candidates=k, sigma=math.sqrt(alpha), alpha=alpha, guide_scale=1.0,
              mixture=1.0, proposal_correction=True)
    updates = torch.empty(reps, 3, dtype=torch.float64)
    for i in range(reps):
        record = est([theta], quadratic(theta, c), guide=[grad])
        updates[i] = -theta.grad
        assert float(record["ess"]) == pytest.approx(k, rel=1e-9)  # equal weights
    tol = z_crit(3) * math.sqrt(alpha / (k * reps))  # exact variance α/K per coordinate
    assert torch.all((updates.mean(0) + grad).abs() < tol)


# -- pure pieces -------------------------------------------------------------------------------
def test_mgs_log_weights_hand_case():
    losses = torch.tensor([0.3, 0.1, 0.7], dtype=torch.float64)
    log_q = torch.tensor([-1.0, 0.5, 0.2], dtype=torch.float64)
    alpha = 0.2
    raw = np.exp(-losses.numpy() / alpha - log_q.numpy())
    expected = np.log(raw / raw.sum())
    np.testing.assert_allclose(mgs_log_weights(losses, alpha, log_q).numpy(), expected,
                               rtol=1e-12)
    raw = np.exp(-losses.numpy() / alpha)
    np.testing.assert_allclose(mgs_log_weights(losses, alpha).numpy(), np.log(raw / raw.sum()),
                               rtol=1e-12)


@pytest.mark.parametrize("losses, alpha", [
    ([1e300, 1.0000001e300, 1e300], 1e-300),  # huge losses, tiny temperature
    ([3e38, 1.0, -3e38], 1e-30),
    ([1e-12, 2e-12, 0.0], 1e-320),             # subnormal temperature
    ([5.0, 5.0, 5.0], 1e-300),
    ([1e308, -1e308, 0.0], 1e300),             # the difference overflows to inf
])
def test_mgs_log_weights_never_overflow(losses, alpha):
    losses = torch.tensor(losses, dtype=torch.float64)
    w = mgs_log_weights(losses, alpha).exp()
    assert torch.isfinite(w).all()
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(w[losses.argmin()]) >= 1.0 / len(losses) - 1e-12  # the best is never down-weighted


def test_mgs_log_weights_non_finite_losses_get_weight_zero():
    losses = torch.tensor([math.nan, 1.0, math.inf, -math.inf, 2.0], dtype=torch.float64)
    w = mgs_log_weights(losses, 0.5).exp()
    assert w[[0, 2, 3]].tolist() == [0.0, 0.0, 0.0]
    raw = np.exp(-np.array([1.0, 2.0]) / 0.5)
    np.testing.assert_allclose(w[[1, 4]].numpy(), raw / raw.sum(), rtol=1e-12)
    none_finite = mgs_log_weights(torch.tensor([math.nan, math.inf, -math.inf]), 0.5)
    assert torch.isneginf(none_finite).all()


def test_mixture_log_density_matches_torch_distributions():
    torch.manual_seed(0)
    x = torch.randn(5, 3, dtype=torch.float64)
    mean = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    sigma = 0.7
    zero = torch.distributions.Normal(0.0, sigma).log_prob(x).sum(-1)
    guided = torch.distributions.Normal(mean, sigma).log_prob(x).sum(-1)
    log = lambda w: math.log(w) if w > 0 else -math.inf
    for m in (0.0, 0.25, 1.0):
        expected = torch.logsumexp(torch.stack([zero + log(1 - m), guided + log(m)]), 0)
        torch.testing.assert_close(mixture_log_density(x, mean, sigma, m), expected)
    torch.testing.assert_close(mixture_log_density(x, None, sigma, 0.5), zero)


def test_effective_sample_size():
    assert float(effective_sample_size(torch.full((4,), 0.25))) == pytest.approx(4.0)
    assert float(effective_sample_size(torch.tensor([0.0, 1.0, 0.0]))) == pytest.approx(1.0)
    assert float(effective_sample_size(torch.zeros(3))) == 0.0


# -- the estimator's contract --------------------------------------------------------------------
def test_mgs_sign_convention_sgd_lr1_lands_on_the_best_candidate():
    """With a tiny α the weights are one-hot on the best candidate; p.grad = -Δθ, so
    SGD(lr=1) moves θ exactly to that candidate."""
    torch.manual_seed(0)
    theta = torch.tensor([0.5, -0.25], dtype=torch.float64)
    c = torch.tensor([1.0, 1.0], dtype=torch.float64)
    seen = []
    loss = quadratic(theta, c)

    def recording():
        seen.append(theta.detach().clone())
        return loss()
    est = MGS(num_candidates=6, sigma=0.3, alpha=1e-12, proposal_correction=False)
    theta.grad = torch.ones_like(theta)  # an old gradient: overwritten, not accumulated
    record = est([theta], recording)
    best = min(seen, key=lambda t: float(0.5 * (t - c).pow(2).sum()))
    assert record["evaluations"] == 6 and len(seen) == 6
    torch.testing.assert_close(record["update_norm"], theta.grad.norm())
    torch.optim.SGD([theta], lr=1.0).step()
    torch.testing.assert_close(theta.detach(), best, rtol=0, atol=1e-15)


def test_mgs_non_finite_candidates_get_weight_zero_and_all_non_finite_gives_no_update():
    torch.manual_seed(0)
    theta = torch.zeros(3, dtype=torch.float64)
    calls = iter(range(100))
    record = MGS(num_candidates=4)([theta], lambda: math.nan if next(calls) % 2 else 1.0)
    assert record["weights"][1::2].tolist() == [0.0, 0.0]
    assert float(record["weights"][0::2].sum()) == pytest.approx(1.0)
    theta.grad = torch.ones_like(theta)
    record = MGS(num_candidates=4)([theta], lambda: torch.tensor(math.inf))
    assert theta.grad.tolist() == [0.0, 0.0, 0.0]  # no update: a zero pseudo-gradient
    assert float(record["ess"]) == 0.0 and float(record["update_norm"]) == 0.0


def test_mgs_refuses_a_non_finite_guide_naming_it():
    # issue 13 item 3: a NaN in the guide wrote NaN into every p.grad (0 x NaN = NaN)
    model = torch.nn.Linear(3, 2)
    guide = [torch.zeros_like(p) for p in model.parameters()]
    guide[1][0] = math.nan
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match=r"mgs: guide\[1\] holds 1 non-finite value.*finite guide"):
        MGS(num_candidates=4)(model.parameters(), lambda: model.weight.sum(), guide=guide)
    assert all(bool((p.grad == 1).all()) for p in model.parameters())  # nothing was written


@pytest.mark.parametrize("correction", [True, False])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_mgs_update_stays_finite_with_a_non_finite_guide_when_not_validating(correction, bad):
    torch.manual_seed(0)
    theta = torch.zeros(3, dtype=torch.float64)
    guide = torch.tensor([0.0, bad, 1.0], dtype=torch.float64)
    estimators.set_validation(False)
    try:
        # the task loss ignores theta: guided candidates (non-finite steps) get finite losses
        record = MGS(num_candidates=6, proposal_correction=correction)(
            [theta], lambda: torch.tensor(1.0), guide=[guide])
    finally:
        estimators.set_validation(True)
    assert bool(torch.isfinite(theta.grad).all())
    assert bool(torch.isfinite(record["weights"]).all())
    assert record["weights"][:3].tolist() == [0.0, 0.0, 0.0]  # the guided half is dropped
    total = float(record["weights"].sum())
    assert total == pytest.approx(1.0) or total == 0.0


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().view(torch.int64 if t.dtype == torch.float64 else torch.int32).clone()


@pytest.mark.parametrize("est", [MGS(num_candidates=5, sigma=0.37),
                                 EvolutionStrategies(num_directions=3, sigma=0.37)],
                         ids=["mgs", "evolution_strategies"])
def test_parameters_restored_bit_for_bit_even_when_task_loss_raises(est):
    torch.manual_seed(0)
    # values far below the step size: (θ + Δ) - Δ loses their low bits, a restore by
    # subtraction would show
    params = [(torch.randn(4, 3) * 1e-3).requires_grad_(),
              (torch.randn(5) * 1e-2).requires_grad_()]
    before = [_bits(p) for p in params]
    calls = []

    def failing():
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("decoder crashed")
        return sum(p.sum() for p in params)
    with pytest.raises(RuntimeError, match="decoder crashed"):
        est(params, failing)
    assert all(torch.equal(_bits(p), b) for p, b in zip(params, before))
    est(params, lambda: sum(p.pow(2).sum() for p in params))  # a normal call
    assert all(torch.equal(_bits(p), b) for p, b in zip(params, before))


def test_mgs_guide_shifts_the_proposal():
    """The first round(mixture·K) candidates are drawn around -η·guide, the rest around 0:
    every coordinate's standardised offset is N(0, 1)."""
    torch.manual_seed(0)
    k, sigma, eta = 8, 0.01, 2.0
    theta = torch.tensor([1.0, -1.0, 0.5, 2.0], dtype=torch.float64)
    guide = torch.tensor([0.3, -0.1, 0.05, 0.2], dtype=torch.float64)
    theta0 = theta.detach().clone()
    seen = []

    def recording():
        seen.append(theta.detach().clone() - theta0)
        return 0.0
    record = MGS(num_candidates=k, sigma=sigma, guide_scale=eta, mixture=0.5)(
        [theta], recording, guide=[guide])
    assert record["num_guided"] == 4
    centres = torch.stack([-eta * guide] * 4 + [torch.zeros(4, dtype=torch.float64)] * 4)
    z = (torch.stack(seen) - centres) / sigma
    assert float(z.abs().max()) < z_crit(k * 4)
    # without a guide every candidate is around zero
    seen.clear()
    assert MGS(num_candidates=k, sigma=sigma, mixture=0.5)([theta], recording)["num_guided"] == 0
    assert float((torch.stack(seen) / sigma).abs().max()) < z_crit(k * 4)


# -- evolution strategies ------------------------------------------------------------------------
def test_evolution_strategies_is_unbiased_on_a_quadratic():
    """For ``l = ½(θ - c)ᵀA(θ - c)`` the antithetic difference is exactly ``2σ εᵀ∇l`` (the
    quadratic terms cancel), so ``g = 1/K Σ (εᵀ∇l) ε`` has mean ∇l and per-coordinate variance
    ``(||∇l||² + ∇l_i²)/K`` (Isserlis)."""
    torch.manual_seed(0)
    k, reps = 4, 3000
    a = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]], dtype=torch.float64)
    c = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    theta = torch.tensor([0.2, 0.4, -0.3], dtype=torch.float64)
    grad = a @ (theta - c)

    def loss():
        d = theta - c
        return 0.5 * d @ a @ d
    est = EvolutionStrategies(num_directions=k, sigma=0.5)
    grads = torch.empty(reps, 3, dtype=torch.float64)
    for i in range(reps):
        record = est([theta], loss)
        grads[i] = theta.grad
    assert record["evaluations"] == 2 * k
    sd = torch.sqrt((grad.pow(2).sum() + grad.pow(2)) / (k * reps))
    assert torch.all((grads.mean(0) - grad).abs() < z_crit(3) * sd)


def test_evolution_strategies_skips_non_finite_pairs():
    torch.manual_seed(0)
    theta = torch.zeros(2, dtype=torch.float64)
    est = EvolutionStrategies(num_directions=3, sigma=0.1)
    est([theta], lambda: math.nan)
    assert theta.grad.tolist() == [0.0, 0.0]


# -- bad input -----------------------------------------------------------------------------------
GOOD = torch.zeros(3)


@pytest.mark.parametrize("name", ["mgs", "evolution_strategies"])
def test_bad_params_guides_and_task_losses(name):
    est = estimators.get(name)
    loss = lambda: torch.tensor(0.0)
    with pytest.raises(ValueError, match="params is empty"):
        est([], loss)
    with pytest.raises(ValueError, match=r"params\[1\] is a list"):
        est([GOOD, [1.0]], loss)
    with pytest.raises(ValueError, match="floating-point"):
        est([torch.zeros(3, dtype=torch.long)], loss)
    with pytest.raises(ValueError, match="one device and dtype"):
        est([GOOD, torch.zeros(2, dtype=torch.float64)], loss)
    with pytest.raises(ValueError, match="guide has 2 tensors but there are 1 params"):
        est([GOOD], loss, guide=[GOOD, GOOD])
    with pytest.raises(ValueError,
                       match=r"guide\[0\] has shape \[2\] but params\[0\] has shape \[3\]"):
        est([GOOD], loss, guide=[torch.zeros(2)])
    with pytest.raises(ValueError, match=r"guide\[0\] is a float"):
        est([GOOD], loss, guide=[1.0])
    with pytest.raises(TypeError, match="task_loss must be a callable"):
        est([GOOD], 3.0)
    with pytest.raises(ValueError, match="must return a scalar"):
        est([GOOD], lambda: torch.zeros(2))


@pytest.mark.parametrize("name, options, match", [
    ("mgs", dict(num_candidates=0), "mgs: option num_candidates must be an int >= 1, got 0"),
    ("mgs", dict(num_candidates=2.5), "option num_candidates must be an int >= 1, got 2.5"),
    ("mgs", dict(num_candidates=True), "num_candidates must be an int"),
    ("mgs", dict(sigma=0.0), r"option sigma must be a finite number in \(0, inf\), got 0.0"),
    ("mgs", dict(sigma=math.nan), "option sigma must be a finite number"),
    ("mgs", dict(sigma="big"), "option sigma must be a finite number.*got 'big'"),
    ("mgs", dict(alpha=-1.0), "option alpha must be a finite number"),
    ("mgs", dict(alpha=math.inf), "option alpha must be a finite number"),
    ("mgs", dict(guide_scale=-0.1), r"guide_scale must be a finite number in \[0, inf\)"),
    ("mgs", dict(guide_scale=math.nan), "guide_scale must be a finite number"),
    ("mgs", dict(mixture=1.5), r"mixture must be a finite number in \[0, 1\]"),
    ("mgs", dict(mixture=math.nan), r"mixture must be a finite number in \[0, 1\]"),
    ("evolution_strategies", dict(num_directions=0), "evolution_strategies: option num_directions must be an int >= 1"),
    ("evolution_strategies", dict(sigma=-2.0), "option sigma must be a finite number"),
])
def test_bad_options(name, options, match):
    with pytest.raises(ValueError, match=match):
        estimators.get(name, **options)


def test_unknown_option_lists_the_options():
    with pytest.raises(TypeError, match="num_candidates"):
        estimators.get("mgs", temperature=1.0)


# -- clipping ------------------------------------------------------------------------------------
def _with_grads(*grads):
    params = []
    for g in grads:
        p = torch.zeros_like(g, requires_grad=True)
        p.grad = g.clone()
        params.append(p)
    return params


@pytest.mark.parametrize("norm, gamma, hard, smooth", [
    (2.0, 1.0, 0.5, 1 / 3), (0.5, 1.0, 1.0, 2 / 3), (0.0, 1.0, 1.0, 1.0), (3.0, 3.0, 1.0, 0.5)])
def test_clipping_factors(norm, gamma, hard, smooth):
    n = torch.tensor(norm, dtype=torch.float64)
    assert float(hard_factor(n, gamma)) == pytest.approx(hard, rel=1e-15)
    assert float(smooth_factor(n, gamma)) == pytest.approx(smooth, rel=1e-15)


@settings(max_examples=300, deadline=None)
@given(norm=st.floats(min_value=0.0, max_value=1e30),
       gamma=st.floats(min_value=1e-30, max_value=1e30))
def test_smooth_factor_is_within_a_factor_two_of_hard(norm, gamma):
    n = torch.tensor(norm, dtype=torch.float64)
    s, h = float(smooth_factor(n, gamma)), float(hard_factor(n, gamma))
    assert s <= h <= 2 * s


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=8),
       gamma=st.floats(min_value=1e-3, max_value=1e3))
def test_clipped_norms_follow_the_rules(values, gamma):
    g = torch.tensor(values, dtype=torch.float64)
    norm = float(g.norm())
    hard_p, smooth_p = _with_grads(g), _with_grads(g)
    assert float(clip_hard(hard_p, gamma)) == pytest.approx(norm, rel=1e-12)
    assert float(clip_smooth(smooth_p, gamma)) == pytest.approx(norm, rel=1e-12)
    h, s = float(hard_p[0].grad.norm()), float(smooth_p[0].grad.norm())
    assert h == pytest.approx(min(norm, gamma), rel=1e-12, abs=1e-300)
    assert s == pytest.approx(norm * gamma / (norm + gamma), rel=1e-12, abs=1e-300)
    assert s <= h * (1 + 1e-12) and h <= 2 * s * (1 + 1e-12)


@pytest.mark.parametrize("rule", ["hard", "smooth"])
def test_clipping_acts_in_place_and_returns_the_norm_before(rule):
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([[4.0]])
    params = _with_grads(a, b)
    untouched = torch.zeros(2, requires_grad=True)  # no .grad: skipped
    grads = [p.grad for p in params]
    pointers = [g.data_ptr() for g in grads]
    norm = CLIPPING[rule](params + [untouched], 1.0)
    assert float(norm) == pytest.approx(5.0)
    factor = 0.2 if rule == "hard" else 1.0 / 6.0
    for p, g, ptr, orig in zip(params, grads, pointers, (a, b)):
        assert p.grad is g and g.data_ptr() == ptr
        torch.testing.assert_close(g, orig * factor)
    assert untouched.grad is None
    # a one-shot iterator such as model.parameters() works too
    model = torch.nn.Linear(2, 1)
    for p in model.parameters():
        p.grad = torch.full_like(p, 10.0)
    total = float(global_norm(list(model.parameters())))
    assert float(CLIPPING[rule](model.parameters(), 1.0)) == pytest.approx(total)
    assert float(global_norm(list(model.parameters()))) < total


def test_clipping_below_threshold_is_the_identity_for_hard():
    params = _with_grads(torch.tensor([0.3, 0.4]))
    clip_hard(params, 1.0)
    assert params[0].grad.tolist() == pytest.approx([0.3, 0.4], rel=1e-7)


def test_clipping_without_gradients_returns_zero():
    p = torch.zeros(2, requires_grad=True)
    assert float(clip_hard([p], 1.0)) == 0.0 and p.grad is None


@pytest.mark.parametrize("gamma", [0.0, -1.0, math.nan, math.inf, "big", None])
@pytest.mark.parametrize("rule", ["hard", "smooth"])
def test_bad_gamma(rule, gamma):
    with pytest.raises(ValueError, match=rf"clip_{rule}: option gamma must be a finite number in \(0, inf\)"):
        CLIPPING[rule](_with_grads(torch.ones(2)), gamma)
    with pytest.raises(ValueError, match=rf"clip_{rule}: option gamma must be a finite number"):
        clipping(rule, gamma)


def test_clipping_factory():
    clip = clipping("smooth", 2.0)
    params = _with_grads(torch.tensor([6.0, 8.0]))
    assert float(clip(params)) == pytest.approx(10.0)
    torch.testing.assert_close(params[0].grad, torch.tensor([6.0, 8.0]) / 6.0)
    with pytest.raises(ValueError,
                       match="clipping: unknown rule 'soft'; did you mean 'smooth'.*Available: hard, smooth"):
        clipping("soft", 1.0)
