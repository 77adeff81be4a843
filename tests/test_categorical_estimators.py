"""Tests of gumbel_rao, reinmax, unordered_set, indecater and measure_valued beyond the
registry-driven checks of test_estimators.py.

Note [Randomized statistical tests]: each statistical test fixes its seed and derives its
tolerance from the stated failure rate ``ALPHA`` (normal approximation of a mean of R i.i.d.
estimates, Bonferroni over the coordinates compared); unbiasedness is always judged against exact
enumeration or a closed form, never against another estimator.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy import stats
from statcheck import ALPHA, z_crit
from torch import distributions as D

import estimators
from estimators.straight_through_plus import conditional_gumbel_logits
from estimators.without_replacement import log_set_probabilities

R = 20_000
F64 = torch.float64


def _leaf(x: torch.Tensor, r: int) -> torch.Tensor:
    return x.expand((r,) + x.shape).clone().requires_grad_()


def _estimates(spec, dist_fn, leaf, f, k):
    est = estimators.get(spec)
    est(dist_fn(leaf), f, num_samples=k).backward()
    g = leaf.grad.reshape(leaf.shape[0], -1).clone()
    leaf.grad = None
    return g


def _z_against(g_hat, g):
    se = g_hat.std(0) / math.sqrt(g_hat.shape[0])
    return float(((g_hat.mean(0) - g).abs() / se.clamp_min(1e-12)).max()), z_crit(g.numel())


# -- reinmax: the authors' package on the same inputs -------------------------------------------
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("k", [1, 4])
def test_reinmax_equals_the_reference_package(temperature, k):
    from reinmax import reinmax as ref  # a test dependency: a missing package is a failure
    g = torch.Generator().manual_seed(int(10 * temperature) + k)
    logits = torch.log_softmax(3 * torch.randn(3, 6, generator=g, dtype=F64), -1)
    w = torch.randn(6, 2, generator=g, dtype=F64)
    f = lambda z: torch.sin(z @ w).sum(-1) * (z @ w).pow(2).sum(-1)  # non-linear in z
    ours_leaf, ref_leaf = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    torch.manual_seed(123)
    loss = estimators.get("reinmax", temperature=temperature)(
        D.OneHotCategorical(logits=ours_leaf), f, num_samples=k)
    loss.backward()
    torch.manual_seed(123)  # the same draws: both sample with torch.multinomial, one per row
    sample, _ = ref(ref_leaf.expand(k, 3, 6).contiguous(), temperature)
    ref_loss = f(sample).mean(0).sum()
    ref_loss.backward()
    assert float(loss.detach()) == pytest.approx(float(ref_loss.detach()), abs=1e-12)
    torch.testing.assert_close(ours_leaf.grad, ref_leaf.grad, rtol=1e-10, atol=1e-12)
    assert ours_leaf.grad.abs().max() > 1e-3  # a real gradient was compared


def test_reinmax_bernoulli_is_the_two_category_case():
    from reinmax import reinmax as ref  # a test dependency: a missing package is a failure
    a = torch.tensor([-1.0, 0.3, 2.0], dtype=F64)
    ours_leaf, ref_leaf = a.clone().requires_grad_(), a.clone().requires_grad_()
    f = lambda b: torch.cos(3 * b + torch.arange(3, dtype=F64))
    torch.manual_seed(4)
    estimators.get("reinmax:temperature=1.5")(D.Bernoulli(logits=ours_leaf), f, 5).backward()
    torch.manual_seed(4)
    theta = torch.stack([torch.zeros_like(ref_leaf), ref_leaf], -1)
    sample, _ = ref(theta.expand(5, 3, 2).contiguous(), 1.5)
    f(sample[..., 1]).mean(0).sum().backward()
    torch.testing.assert_close(ours_leaf.grad, ref_leaf.grad, rtol=1e-10, atol=1e-12)


# -- gumbel_rao -------------------------------------------------------------------------------
def test_conditional_gumbels_have_the_given_argmax_and_gumbel_marginals():
    torch.manual_seed(8)
    log_p = torch.log_softmax(torch.randn(5, dtype=F64), -1)
    d = D.OneHotCategorical(logits=log_p).sample((50_000,))
    perturbed = conditional_gumbel_logits(log_p, d, 1)[0]
    assert torch.equal(perturbed.argmax(-1), d.argmax(-1))
    # D ~ p and G | D from the conditional: G is unconditionally i.i.d. standard Gumbel
    noise = (perturbed - log_p).numpy()
    p_values = [stats.kstest(noise[:, i], "gumbel_r").pvalue for i in range(5)]
    assert min(p_values) > ALPHA / 5


def _gr_problem(r):
    g = torch.Generator().manual_seed(21)
    logits = torch.randn(6, generator=g, dtype=F64)
    emb = torch.randn(6, 2, generator=g, dtype=F64)
    f = lambda z: ((z @ emb) - 0.5).pow(2).sum(-1) + torch.sin(z @ emb).prod(-1)
    return _leaf(logits, r), f


@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_gumbel_rao_lowers_variance_with_the_same_expectation_as_st_gumbel(temperature):
    """Same bias class: the means agree (two-sample z, Bonferroni over 6 coordinates); the
    variance (trace of the covariance) is lower, by more than its sampling error."""
    leaf, f = _gr_problem(R)
    dist = lambda lf: D.OneHotCategorical(logits=lf)
    torch.manual_seed(31)
    g_st = _estimates(f"straight_through_gumbel:temperature={temperature}", dist, leaf, f, 1)
    torch.manual_seed(32)
    g_gr = _estimates(f"gumbel_rao:temperature={temperature},m=32", dist, leaf, f, 1)
    se = (g_st.var(0) / R + g_gr.var(0) / R).sqrt()
    z = float(((g_st.mean(0) - g_gr.mean(0)).abs() / se).max())
    assert z < z_crit(6), f"means differ: |z| = {z:.2f}"
    v_st, v_gr = float(g_st.var(0).sum()), float(g_gr.var(0).sum())
    # se of a variance estimate ~ sqrt(2/R) relative (normal approx.; the reduction is large)
    assert v_gr * (1 + z_crit(1) * math.sqrt(2 / R)) < v_st * (1 - z_crit(1) * math.sqrt(2 / R)), (
        v_gr, v_st)


def test_gumbel_rao_with_one_draw_is_st_gumbel_in_distribution():
    leaf, f = _gr_problem(R)
    dist = lambda lf: D.OneHotCategorical(logits=lf)
    torch.manual_seed(41)
    g_st = _estimates("straight_through_gumbel", dist, leaf, f, 1)
    torch.manual_seed(42)
    g_gr = _estimates("gumbel_rao:m=1", dist, leaf, f, 1)
    ratio = float(g_gr.var(0).sum() / g_st.var(0).sum())
    assert abs(ratio - 1) < 3 * z_crit(1) * math.sqrt(2 / R), ratio


# -- unordered_set ----------------------------------------------------------------------------
def _set_probability(p: list[float], subset: list[int]) -> float:
    """P(unordered set) by enumeration over its orderings (Plackett-Luce)."""
    total = 0.0
    for order in itertools.permutations(subset):
        prob, used = 1.0, 0.0
        for i in order:
            prob *= p[i] / (1 - used)
            used += p[i]
        total += prob
    return total


@pytest.mark.parametrize("n,k,scale", [(5, 3, 1.0), (20, 4, 3.0), (8, 8, 1.0), (6, 2, 6.0),
                                       (10, 1, 1.0), (12, 5, 0.3)])
def test_set_probabilities_match_enumeration_over_orderings(n, k, scale):
    g = torch.Generator().manual_seed(n * 10 + k)
    p = torch.softmax(scale * torch.randn(n, generator=g, dtype=F64), 0)
    subset = torch.randperm(n, generator=g)[:k].tolist()
    rest = [i for i in range(n) if i not in subset]
    log_rest = torch.logsumexp(p.log()[rest], 0) if rest else torch.tensor(-math.inf, dtype=F64)
    log_ps, log_p1, log_p2 = log_set_probabilities(p.log()[subset], log_rest)
    pl = p.tolist()
    assert float(log_ps.exp()) == pytest.approx(_set_probability(pl, subset), rel=1e-9)
    for j, s in enumerate(subset):  # P^{D\s}(S\s): domain without s, renormalised
        q = [0.0 if i == s else x / (1 - pl[s]) for i, x in enumerate(pl)]
        assert float(log_p1[j].exp()) == pytest.approx(
            _set_probability(q, [t for t in subset if t != s]), rel=1e-8, abs=1e-12)
    for (a, s), (b, t) in itertools.combinations(enumerate(subset), 2):
        q = [0.0 if i in (s, t) else x / (1 - pl[s] - pl[t]) for i, x in enumerate(pl)]
        expected = _set_probability(q, [u for u in subset if u not in (s, t)])
        assert float(log_p2[a, b].exp()) == pytest.approx(expected, rel=1e-8, abs=1e-12)
        assert float(log_p2[b, a]) == pytest.approx(float(log_p2[a, b]))


def _table_problem(r, n=20, seed=5):
    g = torch.Generator().manual_seed(seed)
    logits = 1.5 * torch.randn(n, generator=g, dtype=F64)
    table = torch.randn(n, generator=g, dtype=F64)
    leaf = _leaf(logits, r)
    exact = torch.autograd.grad((torch.softmax(leaf[0], -1) * table).sum(), leaf)[0][0]
    return leaf, table, exact


@pytest.mark.parametrize("spec,k", [("unordered_set", 1), ("unordered_set", 2),
                                    ("unordered_set", 5), ("unordered_set", 20),
                                    ("indecater", 1), ("indecater", 2)])
@pytest.mark.parametrize("family", ["Categorical", "OneHotCategorical"])
def test_unbiased_on_one_categorical_with_20_categories(spec, k, family):
    torch.manual_seed(100 + k)
    exact = spec == "indecater" or k == 20  # f at every category: no variance, few replicates
    leaf, table, g = _table_problem(200 if exact else R)
    if family == "Categorical":
        dist, f = (lambda lf: D.Categorical(logits=lf)), (lambda z: table[z])
    else:
        dist, f = (lambda lf: D.OneHotCategorical(logits=lf)), (lambda z: z @ table)
    g_hat = _estimates(spec, dist, leaf, f, k)
    if exact:
        torch.testing.assert_close(g_hat, g.expand_as(g_hat), rtol=1e-9, atol=1e-12)
        return
    z, crit = _z_against(g_hat, g)
    assert z < crit, f"{spec} K={k}: |z| = {z:.2f} > {crit:.2f}"


def _independent_problem(r, d, c, seed):
    """Independent(OneHotCategorical) over d variables with c values and a non-separable f."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(d, c, generator=g, dtype=F64)
    emb = torch.randn(c, 2, generator=g, dtype=F64)
    f = lambda z: torch.sin((z @ emb).sum(-2)).prod(-1) + (z @ emb).sum(-2).pow(2).sum(-1)
    leaf = _leaf(logits, r)
    exact_loss = estimators.get("exact")(D.Independent(D.OneHotCategorical(logits=leaf[:1]), 1), f)
    return leaf, f, torch.autograd.grad(exact_loss, leaf)[0][0].reshape(-1)


@pytest.mark.parametrize("spec,d,c,k", [("indecater", 3, 20, 1), ("indecater", 3, 20, 3),
                                        ("unordered_set", 2, 8, 3), ("unordered_set", 2, 8, 10)])
def test_unbiased_on_independent_categoricals(spec, d, c, k):
    torch.manual_seed(200 + k)
    leaf, f, g = _independent_problem(R if spec == "indecater" else 8_000, d, c, seed=d + c)
    g_hat = _estimates(spec, lambda lf: D.Independent(D.OneHotCategorical(logits=lf), 1),
                       leaf, f, k)
    z, crit = _z_against(g_hat, g)
    assert z < crit, f"{spec} D={d} C={c} K={k}: |z| = {z:.2f} > {crit:.2f}"


def test_unordered_set_refuses_more_samples_than_categories():
    dist = D.Categorical(logits=torch.zeros(2, 5, requires_grad=True))
    with pytest.raises(ValueError, match=r"num_samples=6 .* only 5 points .* <= 5"):
        estimators.get("unordered_set")(dist, lambda z: z.double(), num_samples=6)
    big = D.Independent(D.OneHotCategorical(logits=torch.zeros(5, 10, requires_grad=True)), 1)
    assert not estimators.get("unordered_set").supports(big)  # 10^5 joint points
    with pytest.raises(ValueError, match="max_support"):
        estimators.get("unordered_set")(big, lambda z: z.sum((-2, -1)), num_samples=2)


# -- measure_valued ---------------------------------------------------------------------------
def _normal_problem(r):
    mu0 = torch.tensor([0.3, -1.0, 1.5], dtype=F64)
    s0 = torch.tensor([0.7, 1.3, 0.4], dtype=F64)
    k = torch.tensor([1.0, 0.5, -0.2], dtype=F64)
    mu, s = _leaf(mu0, r), _leaf(s0, r)
    f = lambda x: (x - k) ** 2 + torch.cos(2 * x)
    closed = ((mu[0] - k) ** 2 + s[0] ** 2 + torch.cos(2 * mu[0]) * torch.exp(-2 * s[0] ** 2)).sum()
    g = torch.cat(torch.autograd.grad(closed, [mu, s])).reshape(2, r, 3)[:, 0].reshape(-1)
    return mu, s, f, g


def _mv_estimates(spec, dist, leaves, f, k):
    estimators.get(spec)(dist, f, num_samples=k).backward()
    return torch.cat([lf.grad.reshape(lf.shape[0], -1) for lf in leaves], 1)


@pytest.mark.parametrize("coupling", [True, False])
@pytest.mark.parametrize("k", [1, 3])
def test_measure_valued_unbiased_for_location_and_scale(coupling, k):
    torch.manual_seed(300 + k + 10 * coupling)
    mu, s, f, g = _normal_problem(R)
    g_hat = _mv_estimates(f"measure_valued:coupling={coupling}", D.Normal(mu, s), [mu, s], f, k)
    z, crit = _z_against(g_hat, g)
    assert z < crit, f"|z| = {z:.2f} > {crit:.2f}"


def test_measure_valued_unbiased_for_a_non_separable_cost_in_independent():
    """E cos(w·x) = cos(w·μ) exp(-Σ w_i² σ_i² / 2) for x ~ N(μ, diag σ²)."""
    torch.manual_seed(310)
    w = torch.tensor([0.8, -1.2, 0.5], dtype=F64)
    mu, s = _leaf(torch.tensor([0.2, 0.4, -0.3], dtype=F64), R), _leaf(
        torch.tensor([0.9, 0.5, 1.1], dtype=F64), R)
    f = lambda x: torch.cos(x @ w)
    closed = torch.cos(mu[0] @ w) * torch.exp(-(w ** 2 * s[0] ** 2).sum() / 2)
    g = torch.cat([x[0] for x in torch.autograd.grad(closed, [mu, s])])
    g_hat = _mv_estimates("measure_valued", D.Independent(D.Normal(mu, s), 1), [mu, s], f, 2)
    z, crit = _z_against(g_hat, g)
    assert z < crit, f"|z| = {z:.2f} > {crit:.2f}"


def test_measure_valued_coupling_lowers_variance():
    torch.manual_seed(320)
    mu, s, f, _ = _normal_problem(R)
    coupled = _mv_estimates("measure_valued", D.Normal(mu, s), [mu, s], f, 1)
    mu.grad = s.grad = None
    independent = _mv_estimates("measure_valued:coupling=false", D.Normal(mu, s), [mu, s], f, 1)
    assert float(coupled.var(0).sum()) < 0.8 * float(independent.var(0).sum())


# -- declared f evaluations -------------------------------------------------------------------
@pytest.mark.parametrize("spec,make,expected", [
    ("indecater",
     lambda: D.Independent(D.OneHotCategorical(logits=torch.zeros(2, 3, 4, requires_grad=True)), 1),
     5 * 3 * 4),
    ("indecater", lambda: D.Independent(D.Bernoulli(logits=torch.zeros(2, 7, requires_grad=True)), 1), 5 * 7 * 2),
    ("indecater", lambda: D.Categorical(logits=torch.zeros(2, 6, requires_grad=True)), 5 * 6),
    ("measure_valued", lambda: D.Independent(D.Normal(torch.zeros(2, 3, requires_grad=True),
                                                      torch.ones(2, 3, requires_grad=True)), 1),
     4 * 5 * 3),
    ("measure_valued", lambda: D.Normal(torch.zeros(2, requires_grad=True), torch.ones(2, requires_grad=True)), 4 * 5),
    ("unordered_set", lambda: D.OneHotCategorical(logits=torch.zeros(2, 9, requires_grad=True)), 5),
    ("gumbel_rao", lambda: D.OneHotCategorical(logits=torch.zeros(2, 9, requires_grad=True)), 5),
    ("reinmax", lambda: D.Bernoulli(logits=torch.zeros(2, requires_grad=True)), 5),
])
def test_declared_evaluations_are_the_evaluations_made(spec, make, expected):
    est, dist = estimators.get(spec), make()
    seen = []

    def f(z):
        seen.append(z.shape[0])
        nd = len(dist.event_shape)
        return z.sum(tuple(range(-nd, 0))).double() if nd else z.double()
    est(dist, f, num_samples=5)
    assert sum(seen) == est.evaluations(dist, 5) == expected and len(seen) == 1
    per_sample = est.evaluations_per_sample
    assert per_sample is None or per_sample * 5 == expected


# -- the enumerated support's log-probabilities and sum-and-sample's sampler -----------------------
def _support_cases(dtype):
    g = torch.Generator().manual_seed(31)
    rand = lambda *s: 2 * torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return {"Bernoulli": D.Bernoulli(logits=rand(4, 3)),
            "Bernoulli in Independent": D.Independent(D.Bernoulli(logits=rand(5, 2, 7)), 1),
            "Bernoulli in Independent(2)": D.Independent(D.Bernoulli(logits=rand(3, 2, 3)), 2),
            "Categorical": D.Categorical(logits=rand(4, 6)),
            "Categorical in Independent": D.Independent(D.Categorical(logits=rand(5, 3, 4)), 1),
            "OneHotCategorical in Independent": D.Independent(
                D.OneHotCategorical(logits=rand(2, 4, 2, 3)), 2)}


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("case", list(_support_cases(F64)))
def test_support_log_prob_is_log_prob_of_the_enumeration(case, dtype):
    """The table-and-broadcast log p of every support point, in the enumeration's order, is
    log_prob of the materialised enumeration (up to the rounding of a sum over coordinates)."""
    from estimators.base import log_prob
    from estimators.exact import enumerate_support
    from estimators.without_replacement import support_log_prob
    dist = _support_cases(dtype)[case]
    points = enumerate_support(dist)
    ours = support_log_prob(dist, points)
    previous = estimators.validation_enabled()
    estimators.set_validation(False)
    try:
        expected = log_prob(dist, points)
    finally:
        estimators.set_validation(previous)
    assert ours.shape == expected.shape and not ours.requires_grad
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(ours, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("top", [(0, 3), (5, 7), (1,)])
def test_sum_and_sample_draws_from_the_rest_of_the_support(top, dtype):
    """The inverse-CDF draws of sum-and-sample (after C, the top points, is removed) follow
    q(. | z not in C) (chi-square per batch element, Bonferroni over them) and never land in C,
    also when C holds the last point; the log-probabilities given are left as they were."""
    from estimators.without_replacement import _sample_outside
    torch.manual_seed(17)
    n, draws = 8, 40_000
    lp = torch.log_softmax(torch.randn(n, 3, dtype=F64), 0)  # [n, B]: three batch elements
    rest = lp.clone()
    rest[list(top)] = -math.inf
    log_rest = torch.logsumexp(rest, 0)
    given = rest.to(dtype)
    u = _sample_outside(given, log_rest.to(dtype), draws)  # [K, B]
    assert u.shape == (draws, 3)
    assert torch.equal(given, rest.to(dtype))
    for b in range(3):
        counts = torch.bincount(u[:, b], minlength=n).double()
        assert int(counts[list(top)].sum()) == 0
        keep = [i for i in range(n) if i not in top]
        expected = (rest[keep, b] - log_rest[b]).exp() * draws
        assert stats.chisquare(counts[keep].numpy(), expected.numpy()).pvalue > ALPHA / 3


def test_sum_and_sample_sampler_with_all_mass_in_c_returns_valid_indices():
    """q(C^c) = 0 (every other point has log q = -inf): the draws' weight q(C^c) is 0, and the
    indices must still be valid support points (no NaN index, nothing out of range)."""
    from estimators.without_replacement import _sample_outside
    rest = torch.full((5, 2), -math.inf)
    u = _sample_outside(rest, torch.logsumexp(rest, 0), 4)
    assert u.shape == (4, 2) and int(u.min()) >= 0 and int(u.max()) < 5
