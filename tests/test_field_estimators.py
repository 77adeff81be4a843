"""Properties of ARM, DisARM, MuProp, REBAR (fixed and tuned) and RELAX beyond the registry-driven
checks of tests/test_estimators.py (which test unbiasedness against exact enumeration).

Note [Randomized statistical tests]: each statistical test fixes its seed and takes its tolerance
from the stated failure rate ``ALPHA`` (tests/statcheck.py) under the normal approximation of a
mean of R i.i.d. terms. A variance comparison compares two traces of covariance, each the mean of
R per-replicate squared deviations, with the standard error of their difference.
"""
from __future__ import annotations

import math

import pytest
import torch
from statcheck import ALPHA, z_crit
from torch import distributions as D

import estimators

R = 20_000
MINE = ("arm", "disarm", "muprop", "rebar", "rebar:tune=true", "relax")


def coupled_problem(r, dtype=torch.float64, d=20, seed=0):
    """``f(b) = (w·b - c)^2`` over ``d`` Bernoullis in one Independent, R replicates."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(d, generator=g, dtype=torch.float64).to(dtype)
    w = torch.randn(d, generator=g, dtype=torch.float64).to(dtype)
    c = float(w.clamp_min(0).sum() / 2)
    leaf = logits.expand(r, d).clone().requires_grad_()
    return leaf, D.Independent(D.Bernoulli(logits=leaf), 1), lambda b: ((b * w).sum(-1) - c) ** 2


def trace_variance(g_hat):
    """tr Cov of the rows and its standard error (per-replicate squared deviations)."""
    d = (g_hat - g_hat.mean(0)).pow(2).sum(1)
    return float(d.mean()), float(d.std() / math.sqrt(d.numel()))


def estimate_rows(est, k, r=R, seed=0):
    torch.manual_seed(seed)
    leaf, dist, f = coupled_problem(r)
    est(dist, f, num_samples=k).backward()
    return leaf.grad


def assert_lower(a, b, what):
    """a's variance significantly below b's (one-sided, ALPHA)."""
    (va, sa), (vb, sb) = a, b
    z = (vb - va) / math.sqrt(sa ** 2 + sb ** 2)
    assert z > z_crit(1, 2 * ALPHA), f"{what}: {va:.4g} +- {sa:.2g} vs {vb:.4g} +- {sb:.2g}"


# -- ARM / DisARM ------------------------------------------------------------------------------
def test_disarm_variance_below_arm_at_equal_evaluations():
    arm = trace_variance(estimate_rows(estimators.get("arm"), 2))
    disarm = trace_variance(estimate_rows(estimators.get("disarm"), 2))
    assert_lower(disarm, arm, "disarm vs arm at K=2 (one pair each)")


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_odd_k_uses_floor_half_pairs_and_k1_is_refused(name):
    est = estimators.get(name)
    leaf, dist, f = coupled_problem(3)
    rows = []

    def counting(z):
        rows.append(z.shape[0])
        return f(z)
    for k, expected in ((2, 2), (3, 2), (4, 4), (5, 4)):
        rows.clear()
        est(dist, counting, num_samples=k).backward()
        assert rows == [expected] and est.evaluations(dist, k) == expected
    with pytest.raises(ValueError, match="antithetic pairs"):
        est(dist, f, num_samples=1)


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_odd_k_is_unbiased(name):
    """K = 3 (one pair) against the exact gradient of the coupled problem."""
    torch.manual_seed(5)
    leaf, dist, f = coupled_problem(R, d=6)
    estimators.get(name)(dist, f, num_samples=3).backward()
    exact_dist = D.Independent(D.Bernoulli(logits=leaf[:1]), 1)
    g, = torch.autograd.grad(estimators.get("exact")(exact_dist, f), leaf)
    se = leaf.grad.std(0) / math.sqrt(R)
    z = ((leaf.grad.mean(0) - g[0]).abs() / se).max()
    assert z < z_crit(6), float(z)


# -- tuned REBAR and RELAX ---------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["rebar:tune=true", "relax"])
def test_training_changes_parameters_and_lowers_variance(spec):
    est = estimators.get(spec)
    est.eval()
    before = trace_variance(estimate_rows(est, 1, seed=1))
    start = [p.detach().clone() for p in est.parameters()]
    est.train()
    torch.manual_seed(2)
    leaf, dist, f = coupled_problem(256)
    with torch.no_grad(), estimators.value_only():  # as the harness warms estimators up
        for _ in range(150):
            est(dist, f, num_samples=1)
    after_params = list(est.parameters())
    assert len(after_params) >= 2 and all(
        not torch.equal(a.detach(), b) for a, b in zip(after_params, start))
    est.eval()
    after = trace_variance(estimate_rows(est, 1, seed=3))
    assert_lower(after, before, f"{spec} after 150 training steps vs before")


def test_eval_mode_freezes_and_fixed_rebar_is_stateless():
    est = estimators.get("rebar:tune=true").eval()
    state = {k: v.clone() for k, v in est.state_dict().items()}
    leaf, dist, f = coupled_problem(8)
    est(dist, f, num_samples=2).backward()
    assert all(torch.equal(state[k], v) for k, v in est.state_dict().items())
    fixed = estimators.get("rebar")
    assert list(fixed.parameters()) == [] and list(fixed.buffers()) == []


def test_relax_builds_its_network_lazily_and_its_state_loads_into_a_fresh_one():
    est = estimators.get("relax")
    assert est.net is None and len(list(est.parameters())) == 2  # stateful before any call
    leaf, dist, f = coupled_problem(16, dtype=torch.float32)
    for _ in range(3):
        est(dist, f, num_samples=2)
    assert est.net[0].in_features == 20 and est.net[0].weight.dtype == torch.float32
    fresh = estimators.get("relax")
    fresh.load_state_dict(est.state_dict())
    for (n, a), (m, b) in zip(est.state_dict().items(), fresh.state_dict().items()):
        assert n == m and torch.equal(a, b)
    torch.manual_seed(4)
    est.eval()(dist, f, num_samples=2).backward()
    g1, leaf.grad = leaf.grad.clone(), None
    torch.manual_seed(4)
    fresh.eval()(dist, f, num_samples=2).backward()
    assert torch.equal(g1, leaf.grad)


# -- cost accounting and the surrogate ---------------------------------------------------------
@pytest.mark.parametrize("spec", MINE)
@pytest.mark.parametrize("k", [2, 5])
def test_declared_evaluations_match_rows_f_receives(spec, k):
    est = estimators.get(spec)
    leaf, dist, f = coupled_problem(3)
    rows = []
    est(dist, lambda z: rows.append(z.shape[0]) or f(z), num_samples=k).backward()
    assert sum(rows) == est.evaluations(dist, k)
    assert isinstance(est.evaluations_per_sample, int)


# -- extreme logits and low precision (issue 13 item 2) ----------------------------------------
def _categorical_problem(gap, dtype):
    logits = torch.tensor([[0.0, -gap, -gap / 2]], dtype=dtype).expand(4, 3).clone()
    leaf = logits.requires_grad_()
    table = torch.tensor([1.0, -2.0, 0.5], dtype=dtype)
    return leaf, D.OneHotCategorical(logits=leaf), lambda z: (z * table).sum(-1) ** 2


@pytest.mark.parametrize("gap,dtype", [(100.0, torch.float32), (1000.0, torch.float32),
                                       (12.0, torch.float16), (30.0, torch.float16),
                                       (100.0, torch.bfloat16)])
def test_rebar_categorical_survives_extreme_logit_gaps(gap, dtype):
    """Regression (issue 13 item 2): exp(-log p) overflowed past a gap of ~89 (float32) or ~11
    (float16) and the gradient was NaN."""
    torch.manual_seed(0)
    leaf, dist, f = _categorical_problem(gap, dtype)
    loss = estimators.get("rebar")(dist, f, num_samples=8)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(leaf.grad).all()


@pytest.mark.parametrize("spec", MINE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_extreme_logits_give_finite_gradients(spec, dtype):
    torch.manual_seed(0)
    est = estimators.get(spec)
    big = 60.0 if dtype == torch.float16 else 200.0
    logits = torch.tensor([-big, -20.0, 0.0, 20.0, big], dtype=dtype).expand(3, 5).clone()
    leaf = logits.requires_grad_()
    w = torch.linspace(-1, 1, 5, dtype=dtype)
    dists = [(D.Independent(D.Bernoulli(logits=leaf), 1), lambda b: ((b * w).sum(-1) - 0.3) ** 2)]
    if est.supports(D.OneHotCategorical(logits=leaf)):
        dists.append((D.OneHotCategorical(logits=leaf), lambda z: ((z * w).sum(-1) - 0.3) ** 2))
    for dist, f in dists:
        leaf.grad = None
        for _ in range(2):  # the second call runs with trained state for the learned estimators
            loss = est(dist, f, num_samples=4)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(leaf.grad).all(), (spec, dist)
        assert all(torch.isfinite(p).all() for p in est.parameters())


def test_muprop_needs_f_differentiable_at_the_mean():
    leaf, dist, _ = coupled_problem(2)
    with pytest.raises(ValueError, match="mean-field"):
        estimators.get("muprop")(dist, lambda b: (b > 0.5).to(b.dtype).sum(-1).detach(), 2)


@pytest.mark.parametrize("spec", MINE)
def test_repeated_calls_on_one_distribution(spec):
    """A timing loop calls the estimator and backward() again and again on the same Bernoulli:
    nothing cached on the distribution (``probs``) may carry a freed graph into the next call.
    (A OneHotCategorical normalises its logits once, at construction, so torch itself cannot
    backward twice through one; every estimator shares that.)"""
    est = estimators.get(spec)
    leaf, dist, f = coupled_problem(2)
    for _ in range(3):
        est(dist, f, num_samples=2).backward()
    assert torch.isfinite(leaf.grad).all()
