"""ARMS, CARMS and categorical DisARM (issue 25) beyond the registry-driven checks of
tests/test_estimators.py (which test unbiasedness against exact enumeration, every variant).

Each estimator is compared with a direct, slow re-implementation of its reference code's formula
(numpy, loops over samples and pairs where the reference vectorises), fed the same noise: the
test seeds torch, redraws the estimator's random numbers in the estimator's order, and runs the
port on them. The ports follow alekdimi/arms ``networks.py`` (``grad_type == 'arms'``),
alekdimi/carms ``antithetic.py`` (``InverseCategorical``, ``_get_permutations``,
``bivariate_pmf``) and ``vae.py`` (``matrix_grad``), and google-research
``disarm/categorical/networks.py`` (``convert_softmax_logits_to_stickbreaking``,
``get_stick_breaking_samples``, ``get_importance_weight_vector``, the ``importance_weighting``
learning signal), with the reference's deliberate departures from unbiasedness left out (CARMS's
clipped, smoothed ratio; DisARM-IW's missing ascending sort), as the module docstrings say.

Note [Randomized statistical tests]: each statistical test fixes its seed and takes its tolerance
from the stated failure rate ``ALPHA`` (tests/statcheck.py) under the normal approximation.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from statcheck import ALPHA, z_crit
from torch import distributions as D

import estimators
from estimators.antithetic_categorical import _joint, carms_orderings

F64 = torch.float64


def _grad(spec, dist_fn, logits, f, k, seed):
    leaf = logits.clone().requires_grad_()
    torch.manual_seed(seed)
    estimators.get(spec)(dist_fn(leaf), f, num_samples=k).backward()
    return leaf.grad


# -- ARMS --------------------------------------------------------------------------------------
def _arms_reference(logits, e, f):
    """alekdimi/arms networks.py, grad_type 'arms', per sample and coordinate (numpy)."""
    k, d = e.shape
    p = 1 / (1 + np.exp(-logits))
    dirichlet = e / e.sum(0, keepdims=True)
    u_copula = (1 - dirichlet) ** (k - 1)
    g = np.zeros(d)
    b = np.zeros((k, d))
    for i in range(d):
        p05 = float(p[i] < 0.5)
        for s in range(k):
            u = u_copula[s, i] * p05 + (1 - u_copula[s, i]) * (1 - p05)
            b[s, i] = float(u < p[i])

    def bivariate(q):
        return max(2 * q ** (1 / (k - 1)) - 1, 0) ** (k - 1)
    fb = np.array([f(b[s]) for s in range(k)])
    fmean = fb.mean()
    for i in range(d):
        p05 = float(p[i] < 0.5)
        joint = bivariate(p[i]) * p05 + (2 * p[i] - 1 + bivariate(1 - p[i])) * (1 - p05)
        debias = p[i] * (1 - p[i]) / (p[i] - joint)  # the reference adds 1e-6 here
        for s in range(k):
            g[i] += (fb[s] - fmean) * (b[s, i] - p[i]) * k / (k - 1) * debias / k
    return g, b


@pytest.mark.parametrize("k", [2, 3, 5])
def test_arms_matches_the_reference_formula_on_the_same_noise(k):
    gen = torch.Generator().manual_seed(k)
    logits = 2 * torch.randn(6, generator=gen, dtype=F64)
    w = torch.randn(6, generator=gen, dtype=F64)

    def f(b):
        return torch.sin((b * w).sum(-1)) + (b * w).sum(-1) ** 2
    ours = _grad("arms", lambda t: D.Independent(D.Bernoulli(logits=t), 1), logits, f, k, seed=3)
    torch.manual_seed(3)
    e = torch.empty((k, 6), dtype=F64).exponential_()  # the estimator's only draw
    ref, _ = _arms_reference(logits.numpy(), e.numpy(),
                             lambda b: float(f(torch.from_numpy(b))))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-9, atol=1e-12)
    assert np.abs(ref).max() > 1e-3


def test_arms_with_two_samples_is_disarm_on_the_same_pair():
    """K = 2: the copula is the antithetic pair u, 1 - u, and ARMS's formula is DisARM's."""
    gen = torch.Generator().manual_seed(0)
    logits = 2 * torch.randn(8, generator=gen, dtype=F64)
    w = torch.randn(8, generator=gen, dtype=F64)
    f = lambda b: ((b * w).sum(-1) - 0.5) ** 2
    ours = _grad("arms", lambda t: D.Independent(D.Bernoulli(logits=t), 1), logits, f, 2, seed=5)
    torch.manual_seed(5)
    e = torch.empty((2, 8), dtype=F64).exponential_()
    _, b = _arms_reference(logits.numpy(), e.numpy(), lambda b: 0.0)
    b1, b2 = torch.from_numpy(b[0]), torch.from_numpy(b[1])
    disarm = (0.5 * (f(b1) - f(b2)) * (1 - 2 * b2) * (b1 != b2) * torch.sigmoid(logits.abs()))
    torch.testing.assert_close(ours, disarm, rtol=1e-10, atol=1e-12)


# -- categorical DisARM ------------------------------------------------------------------------
def _disarm_iw_reference(logits, u, f):
    """google-research disarm/categorical, importance-weighted stick-breaking DisARM on logits
    sorted ascending (``logit_ranking(order='ascending')``), numpy, one pair at a time; returns
    the gradient w.r.t. the softmax logits."""
    pairs, c1 = u.shape
    c = c1 + 1
    perm = np.argsort(logits, kind="stable")
    sl = logits[perm]
    # convert_softmax_logits_to_stickbreaking: β_i = l_i - logsumexp(l_{j>i})
    beta = np.array([sl[i] - np.log(np.exp(sl[i + 1:]).sum()) for i in range(c - 1)])
    sig = 1 / (1 + np.exp(-beta))
    # get_importance_weight_vector (threshold 1e-5)
    both = np.where(beta >= -1e-5, 0.0, (1 - sig) ** 2 / (1 - 2 * sig))
    cum = np.cumprod(both)
    weights = np.concatenate([[1 / (1 + np.exp(-abs(beta[0])))],
                              cum[:-1] * (1 / (1 + np.exp(-np.abs(beta[1:])))), cum[-1:]])
    p = np.exp(logits - np.log(np.exp(logits).sum()))
    grad = np.zeros(c)
    for s in range(pairs):
        def first(bits):
            hits = [i for i in range(c - 1) if bits[i]]
            return hits[0] if hits else c - 1
        z1 = first(u[s] < sig)
        z2 = first(1 - u[s] < sig)
        if z1 == z2:
            continue
        a, b = perm[z1], perm[z2]
        signal = 0.5 * weights[min(z1, z2)] * (f(a) - f(b))
        score = (np.eye(c)[a] - p) - (np.eye(c)[b] - p)  # ∇ log p(a) - ∇ log p(b)
        grad += signal * score / pairs
    return grad


@pytest.mark.parametrize("k,family", [(2, "onehot"), (4, "onehot"), (6, "index"), (5, "index")])
def test_categorical_disarm_matches_the_reference_formula_on_the_same_noise(k, family):
    gen = torch.Generator().manual_seed(10 + k)
    c = 6
    logits = torch.log_softmax(2 * torch.randn(c, generator=gen, dtype=F64), -1)
    table = torch.randn(c, generator=gen, dtype=F64)
    if family == "onehot":
        dist_fn, f = (lambda t: D.OneHotCategorical(logits=t)), (lambda z: (z * table).sum(-1))
    else:
        dist_fn, f = (lambda t: D.Categorical(logits=t)), (lambda z: table[z])
    ours = _grad("disarm", dist_fn, logits, f, k, seed=7)
    torch.manual_seed(7)
    u = torch.rand((k // 2, c - 1), dtype=F64)  # the estimator's only draw
    ref = _disarm_iw_reference(logits.numpy(), u.numpy(), lambda a: float(table[a]))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-9, atol=1e-12)
    assert np.abs(ref).max() > 1e-3


def test_categorical_disarm_pairs_are_exact_samples_and_weights_are_exact():
    """The stick-breaking pair's marginals are Categorical(p) (chi-square), and the weight is
    p(z)p(z̃)/P(z, z̃) with P the pair's empirical joint (z-test per observed pair)."""
    from estimators.antithetic import stick_breaking_pairs
    p = torch.tensor([0.05, 0.1, 0.15, 0.3, 0.4], dtype=F64)
    n = 200_000
    torch.manual_seed(8)
    z, z2, w = stick_breaking_pairs(p.log(), n)
    for sample in (z, z2):
        counts = torch.bincount(sample, minlength=5).double()
        assert stats.chisquare(counts.numpy(), (p * n).numpy()).pvalue > ALPHA
    joint = torch.zeros(5, 5, dtype=F64).index_put_((z, z2), torch.ones(n, dtype=F64),
                                                     accumulate=True) / n
    crit = z_crit(20)
    for a, b in itertools.permutations(range(5), 2):
        mask = (z == a) & (z2 == b)
        if int(mask.sum()) < 50:
            continue
        weight = float(w[mask][0])
        phat = float(joint[a, b])
        se = math.sqrt(phat * (1 - phat) / n)
        assert abs(float(p[a] * p[b]) / weight - phat) < crit * se, (a, b)
    assert bool((w[z == z2] == 0).all())


# -- CARMS -------------------------------------------------------------------------------------
def _carms_reference_joint(p, k):
    """alekdimi/carms InverseCategorical.bivariate_pmf (unweighted, Dirichlet copula), numpy:
    the mean over the reference's permutation matrices of the copula's rectangle
    probabilities."""
    c = len(p)
    perms = np.tile(np.eye(c)[None], [c * (c - 1), 1, 1])
    idx = 0
    for i in range(c):
        for j in range(c - 1):
            perms[idx] = np.roll(perms[idx], i, axis=0)
            perms[idx, 1:] = np.roll(perms[idx, 1:], j, axis=0)
            idx += 1
    am = np.argmax(perms, axis=-1)
    perms = perms[am.T[0] < am.T[-1]]

    def bicdf(x, y):
        return np.maximum(x ** (1 / (k - 1)) + y ** (1 / (k - 1)) - 1, 0) ** (k - 1)
    joint = np.zeros((c, c))
    for perm in perms:
        ps = perm @ p
        right = np.cumsum(ps)
        left = right - ps
        lo, hi = perm.T @ left, perm.T @ right  # back to category order
        for a in range(c):
            for b in range(c):
                joint[a, b] += (bicdf(hi[a], hi[b]) + bicdf(lo[a], lo[b])
                                - bicdf(lo[a], hi[b]) - bicdf(hi[a], lo[b]))
    return joint / len(perms), perms


def _carms_reference_grad(p, z, fz, joint):
    """alekdimi/carms vae.py matrix_grad for one variable, without its clip and smoothing:
    (1/M) Σ_i (z_i - p) M/(M-1) (1/M) Σ_{j≠i} r_ij (f_i - f_j), r = p pᵀ / joint."""
    m, c = len(z), len(p)
    grad = np.zeros(c)
    for i in range(m):
        final = sum(p[z[i]] * p[z[j]] / joint[z[i], z[j]] * (fz[i] - fz[j])
                    for j in range(m) if j != i) / m
        grad += (np.eye(c)[z[i]] - p) * final * m / (m - 1) / m
    return grad


@pytest.mark.parametrize("c", [2, 3, 5, 8])
def test_carms_orderings_and_joint_are_the_references(c):
    p = torch.softmax(torch.randn(c, generator=torch.Generator().manual_seed(c), dtype=F64), -1)
    for k in (2, 3, 4):
        ref, perms = _carms_reference_joint(p.numpy(), k)
        assert [tuple(int(x) for x in r) for r in np.argmax(perms, -1)] == \
            list(carms_orderings(c))
        a, b = torch.meshgrid(torch.arange(c), torch.arange(c), indexing="ij")
        ours = _joint(p, a.reshape(-1, 1), b.reshape(-1, 1), k).reshape(c, c)
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(ours.sum(1).numpy(), p.numpy(), rtol=1e-10)  # marginals
        off = ~torch.eye(c, dtype=torch.bool)
        assert bool((ours[off] > 0).all())  # every distinct pair can occur: unbiasedness


@pytest.mark.parametrize("k", [2, 3, 4])
def test_carms_matches_the_reference_formula_on_the_same_noise(k):
    gen = torch.Generator().manual_seed(20 + k)
    v, c = 3, 5
    logits = torch.log_softmax(1.5 * torch.randn(v, c, generator=gen, dtype=F64), -1)
    emb = torch.randn(c, 2, generator=gen, dtype=F64)

    def f(z):
        return ((z @ emb).sum(-2) - 1.0).pow(2).sum(-1)
    dist_fn = lambda t: D.Independent(D.OneHotCategorical(logits=t), 1)
    ours = _grad("carms", dist_fn, logits, f, k, seed=9)
    # the estimator's draws, in its order: one ordering per variable, then the copula
    torch.manual_seed(9)
    orders = np.array(carms_orderings(c))
    pick = torch.randint(len(orders), (v,)).numpy()
    e = torch.empty((k, v), dtype=F64).exponential_().numpy()
    u = (1 - e / e.sum(0, keepdims=True)) ** (k - 1)  # copulas.Dirichlet.sample
    p = logits.exp().numpy()
    z = np.zeros((k, v), dtype=int)
    for var in range(v):  # InverseCategorical.sample: left < u <= right in the drawn order
        order = orders[pick[var]]
        right = np.cumsum(p[var][order])
        left = right - p[var][order]
        for s in range(k):
            pos = [r for r in range(c) if left[r] < u[s, var] <= right[r]][0]
            z[s, var] = order[pos]
    onehot = torch.nn.functional.one_hot(torch.from_numpy(z), c).to(F64)
    fz = f(onehot).numpy()
    ref = np.stack([_carms_reference_grad(p[var], z[:, var], fz,
                                          _carms_reference_joint(p[var], k)[0])
                    for var in range(v)])
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-8, atol=1e-11)
    assert np.abs(ref).max() > 1e-3


def _carms_direct_joint(p, za, zb, k):
    """The direct form of CARMS's pair joint (the estimator's code before it was restructured
    for speed), one ordering of Π at a time: the left edges of both categories of every pair
    from prefix sums, the four bivariate copula CDFs with ``pow``, averaged over the orderings."""
    from estimators.antithetic import dirichlet_copula_cdf
    c = p.shape[-1]
    flat = p.reshape(-1, c)
    pre = torch.cat([torch.zeros_like(flat[:, :1]), flat.cumsum(-1)], -1)
    total = pre[:, -1]
    za_f, zb_f = za.reshape(za.shape[0], -1), zb.reshape(zb.shape[0], -1)
    var = torch.arange(flat.shape[0])

    def left(a, c0, s):  # L_a in the ordering (c0, then the others cyclically from s)
        wrap = s > a
        out = pre[var, a] - pre[var, s] + wrap * total
        inside = torch.where(wrap, (c0 >= s) | (c0 < a), (c0 >= s) & (c0 < a))
        out = torch.where(inside, out, out + flat[var, c0])
        return torch.where(a == c0, torch.zeros_like(out), out)
    acc = torch.zeros(za_f.shape, dtype=p.dtype)
    orders = carms_orderings(c)
    for order in orders:
        c0, s = order[0], order[1]
        la, lb = left(za_f, c0, s), left(zb_f, c0, s)
        ra, rb = la + flat[var, za_f], lb + flat[var, zb_f]
        acc += (dirichlet_copula_cdf(ra, rb, k) - dirichlet_copula_cdf(la, rb, k)
                - dirichlet_copula_cdf(ra, lb, k) + dirichlet_copula_cdf(la, lb, k))
    return (acc / len(orders)).reshape(za.shape)


@pytest.mark.parametrize("c,k,v", [(3, 2, 3), (7, 3, 2), (12, 5, 3), (30, 16, 2)])
@pytest.mark.parametrize("chunk", [None, 1, 97])
def test_carms_fast_joint_equals_the_direct_formula(c, k, v, chunk, monkeypatch):
    """The blocked joint (edges once per sample, integer power by squaring, signed corner sums)
    is the direct per-(ordering, pair) formula to float64 round-off: the corners are O(1) and
    cancel to P, so the tolerance is absolute, a few hundred ulps of 1, whatever P is. Block
    sizes of 1 and 97 corners force many blocks, partial last blocks and per-variable blocks."""
    from estimators import antithetic_categorical as ac
    if chunk is not None:
        monkeypatch.setattr(ac, "_CHUNK_CPU", chunk)
    gen = torch.Generator().manual_seed(100 * c + k)
    p = torch.softmax(2 * torch.randn(v, c, generator=gen, dtype=F64), -1)
    z = torch.randint(c, (k, v), generator=gen)
    if k > 2:
        z[1] = z[0]  # a repeated category: a diagonal pair too
    i, j = torch.triu_indices(k, k, 1)
    ours = ac._joint_of(p, z, i, j, k)
    ref = _carms_direct_joint(p, z[i], z[j], k)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(_joint(p, z[i], z[j], k).numpy(), ref.numpy(), rtol=1e-9,
                               atol=1e-13)
    assert bool((ref[z[i] != z[j]] > 0).all())  # every pair of distinct categories can occur


@pytest.mark.parametrize("r", list(range(1, 20)))
def test_carms_integer_power_is_pow(r):
    from estimators.antithetic_categorical import _power_
    t = torch.rand(1000, generator=torch.Generator().manual_seed(r), dtype=F64)
    t[0] = 0.0
    expected = t.pow(r)
    got = _power_(t.clone(), r, torch.empty_like(t))
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=8 * r * 2.0 ** -52, atol=0)


def test_carms_samples_are_exact_and_negatively_coupled():
    """Each coupled sample is Categorical(p) (chi-square); a pair's empirical joint is the
    computed one (chi-square over the C x C cells)."""
    p = torch.tensor([0.05, 0.15, 0.3, 0.5], dtype=F64)
    n, k = 100_000, 3
    torch.manual_seed(12)
    from estimators.antithetic_categorical import CARMS
    z = CARMS._sample(p.expand(n, 4), k)  # [K, n]
    counts = torch.bincount(z[1], minlength=4).double()
    assert stats.chisquare(counts.numpy(), (p * n).numpy()).pvalue > ALPHA
    cells = torch.bincount(z[0] * 4 + z[2], minlength=16).double()
    a, b = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    joint = _joint(p, a.reshape(-1, 1), b.reshape(-1, 1), k).reshape(-1)
    keep = joint > 0
    assert int(cells[~keep].sum()) == 0
    assert stats.chisquare(cells[keep].numpy(), (joint[keep] * n).numpy()).pvalue > ALPHA
    assert float((z[0] == z[2]).double().mean()) < float((p ** 2).sum())  # fewer repeats


# -- cost accounting, odd K, extreme logits ----------------------------------------------------
@pytest.mark.parametrize("spec,family,k,rows", [
    ("arms", "bernoulli", 3, 3), ("arms", "bernoulli", 2, 2), ("carms", "onehot", 3, 3),
    ("carms", "index", 4, 4), ("disarm", "onehot", 3, 2), ("disarm", "index", 5, 4)])
def test_declared_evaluations_match_rows_f_receives(spec, family, k, rows):
    logits = torch.zeros(2, 4, dtype=F64, requires_grad=True)
    dist = {"bernoulli": D.Independent(D.Bernoulli(logits=logits), 1),
            "onehot": D.OneHotCategorical(logits=logits),
            "index": D.Categorical(logits=logits)}[family]
    seen = []
    est = estimators.get(spec)
    f = (lambda z: z.sum(-1).to(F64)) if family != "index" else (lambda z: z.to(F64))
    est(dist, lambda z: seen.append(z.shape[0]) or f(z), num_samples=k).backward()
    assert seen == [rows] and est.evaluations(dist, k) == rows


@pytest.mark.parametrize("spec", ["arms", "carms"])
def test_one_sample_is_refused(spec):
    dist = (D.Bernoulli if spec == "arms" else D.OneHotCategorical)(logits=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="num_samples >= 2"):
        estimators.get(spec)(dist, lambda z: z.sum(-1), num_samples=1)


@pytest.mark.parametrize("spec", ["arms", "carms", "disarm"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_extreme_logits_give_finite_gradients(spec, dtype):
    torch.manual_seed(0)
    big = 60.0 if dtype == torch.float16 else 200.0
    leaf = torch.tensor([-big, -20.0, 0.0, 20.0, big], dtype=dtype).expand(3, 5).clone()
    leaf.requires_grad_()
    w = torch.linspace(-1, 1, 5, dtype=dtype)
    est = estimators.get(spec)
    for dist in (D.Independent(D.Bernoulli(logits=leaf), 1), D.OneHotCategorical(logits=leaf)):
        if not est.supports(dist):
            continue
        leaf.grad = None
        loss = est(dist, lambda z: ((z * w).sum(-1) - 0.3) ** 2, num_samples=4)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(leaf.grad).all(), (spec, dist)


def test_arms_debias_matches_the_copula_joint_by_monte_carlo():
    """p(1-p)/(m - C(m,m)) uses the copula's P(b_i = b_j = 1): checked against the empirical
    joint of two of K = 4 coupled samples (z-test, one per logit)."""
    from estimators.antithetic import dirichlet_copula_cdf, dirichlet_copula_log_uniforms
    torch.manual_seed(13)
    a = torch.tensor([-3.0, -0.4, 0.0, 0.7, 2.5], dtype=F64)
    n, k = 400_000, 4
    log_u = dirichlet_copula_log_uniforms(k, (n, 5), F64, "cpu")
    m = torch.sigmoid(-a.abs())
    both = ((log_u[0] < m.log()) & (log_u[1] < m.log())).double()  # minority in both
    phat = both.mean(0)
    se = (phat * (1 - phat) / n).sqrt().clamp_min(1e-12)
    exact = dirichlet_copula_cdf(m, m, k)
    assert float(((phat - exact).abs() / se).max()) < z_crit(5)


# -- variance against REINFORCE-LOO at equal K (a fixed-seed measurement, see the module note) --
def _trace_variance(g):
    d = (g - g.mean(0)).pow(2).sum(1)
    return float(d.mean()), float(d.std() / math.sqrt(d.numel()))


def _coupled_estimates(spec, k, family, r=20_000):
    gen = torch.Generator().manual_seed(0 if family == "bernoulli" else 1)
    if family == "bernoulli":
        logits = torch.randn(20, generator=gen, dtype=F64)
        w = torch.randn(20, generator=gen, dtype=F64)
        c = float(w.clamp_min(0).sum() / 2)
        leaf = logits.expand(r, 20).clone().requires_grad_()
        dist, f = D.Independent(D.Bernoulli(logits=leaf), 1), lambda b: ((b * w).sum(-1) - c) ** 2
    else:
        logits = 1.5 * torch.randn(4, 10, generator=gen, dtype=F64)
        emb = torch.randn(10, 2, generator=gen, dtype=F64)
        leaf = logits.expand(r, 4, 10).clone().requires_grad_()
        dist = D.Independent(D.OneHotCategorical(logits=leaf), 1)
        f = lambda z: ((z @ emb).sum(-2) - 1.0).pow(2).sum(-1)
    torch.manual_seed(0)
    estimators.get(spec)(dist, f, num_samples=k).backward()
    return leaf.grad.reshape(r, -1)


@pytest.mark.parametrize("spec,family,k", [("arms", "bernoulli", 3), ("carms", "onehot", 4)])
def test_variance_below_reinforce_loo_at_equal_samples(spec, family, k):
    (va, sa) = _trace_variance(_coupled_estimates(spec, k, family))
    (vb, sb) = _trace_variance(_coupled_estimates("score_function:baseline=loo", k, family))
    z = (vb - va) / math.sqrt(sa ** 2 + sb ** 2)
    assert z > z_crit(1, 2 * ALPHA), f"{spec}: {va:.4g} +- {sa:.2g} vs loo {vb:.4g} +- {sb:.2g}"
