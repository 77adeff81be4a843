"""RODEO (``estimators/stein.py``) and double CV (``estimators/double_cv.py``) against the reference
code's formulas, the Stein identity by exact enumeration, unbiasedness with large frozen
coefficients, and the count of gradients of f (``suite.measure.costs_per_estimate``).

The registry-driven conformance tests (tests/test_estimators.py) check both against exact
enumeration too, but there RODEO's learned coefficients start at 0 (REINFORCE-LOO) and move only a
little in 3 warm-up calls; here they are set large, so the control variates carry real weight.

Note [Randomized statistical tests]: each statistical test fixes its seed and takes its tolerance
from the stated failure rate ``ALPHA`` (tests/statcheck.py), a per-coordinate z-test with a
Bonferroni correction over the coordinates compared.
"""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import distributions as D

import estimators
from estimators.base import sample
from estimators.conformance import R, independent_bernoulli_decoder, mean_test, onehot_independent
from estimators.double_cv import DoubleCV
from estimators.stein import Rodeo

DT = torch.float64


def _inputs(k, batch=3, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(batch, d, generator=g, dtype=DT)
    b = (torch.rand(k, batch, d, generator=g, dtype=DT) < torch.sigmoid(theta)).to(DT)
    cost = torch.randn(k, batch, generator=g, dtype=DT)
    grad = torch.randn(k, batch, d, generator=g, dtype=DT)
    return theta, b, cost, grad


# -- double CV: the reference code's formula (thjashin/double-cv, networks.py) -------------------
def reference_double_cv(theta, b, f_b, grad_b, alpha):
    """``get_grad_estimation(grad_type="double_cv")`` written out per sample as the reference
    code does for K = 2 and K = 4, and its vectorised branch for any other K."""
    k = b.shape[0]
    th = torch.sigmoid(theta)
    dlog_q = b - th
    if k == 2:
        b1 = alpha * (grad_b[1] * (b[0] - th)).sum(-1, keepdim=True)
        c1 = alpha * (grad_b[0] * (b[1] - th)).sum(-1, keepdim=True)
        global_corr = alpha * (0.5 * (grad_b[0] + grad_b[1]) * th * (1 - th))
        diffs = f_b[0, :, None] + b1 - (f_b[1, :, None] + c1)
        return 0.5 * (diffs * dlog_q[0] - diffs * dlog_q[1]) - global_corr
    if k == 4:
        gs = [sum(grad_b[j] for j in range(4) if j != i) / 3 for i in range(4)]
        bs = [alpha * (gs[i] * (b[i] - th)).sum(-1, keepdim=True) for i in range(4)]
        global_corr = alpha * (0.25 * sum(grad_b[i] for i in range(4)) * th * (1 - th))
        out = 0
        for i in range(4):
            others = [j for j in range(4) if j != i]
            diff = f_b[i, :, None] + bs[i] - sum(f_b[j, :, None] + bs[j] for j in others) / 3
            out = out + 0.25 * diff * dlog_q[i]
        return out - global_corr
    avg_grad_b = grad_b.mean(0)
    loo_avg_grad_b = (grad_b.sum(0) - grad_b) / (k - 1)
    loo_vr = f_b + alpha * ((b - th) * loo_avg_grad_b).sum(-1)
    loo_vr = (loo_vr.sum(0) - loo_vr) / (k - 1)
    cv = alpha * (loo_avg_grad_b * (b - th)).sum(-1)
    return ((f_b - loo_vr + cv)[..., None] * dlog_q).mean(0) - alpha * avg_grad_b * th * (1 - th)


@pytest.mark.parametrize("k", [2, 3, 4, 6])
@pytest.mark.parametrize("alpha", [-1.0, 0.7])
def test_double_cv_is_the_reference_formula(k, alpha):
    theta, b, cost, grad = _inputs(k)
    est = DoubleCV(tune=False, alpha=alpha)
    base = D.Bernoulli(logits=theta)
    ours = est.gradient(base, b, cost, grad, theta, torch.Size([3]), k)
    assert torch.allclose(ours, reference_double_cv(theta, b, cost, grad, alpha), atol=1e-12)


@pytest.mark.parametrize("spec", ["double_cv:tune=false", "double_cv"])
def test_double_cv_end_to_end_with_the_same_noise(spec):
    """The estimate's gradient is the reference formula at the samples the call drew (the same
    seed redraws them) and f's gradient there (autograd); the loss's value is mean_k f_k."""
    torch.manual_seed(0)
    theta = torch.randn(3, 5, dtype=DT, requires_grad=True)
    w = torch.linspace(-1, 1, 5, dtype=DT)

    def f(z):
        return ((z * w).sum(-1) - 0.3) ** 2 + 0.5 * torch.sin((z * w).sum(-1))
    dist = D.Independent(D.Bernoulli(logits=theta), 1)
    est = estimators.get(spec)
    alpha = float(torch.as_tensor(est.alpha).detach())  # before the call's Adam step: the estimate uses this α
    torch.manual_seed(7)
    loss = est(dist, f, num_samples=3)
    loss.backward()
    torch.manual_seed(7)
    b = sample(dist, 3).requires_grad_()
    cost = f(b)
    grad, = torch.autograd.grad(cost.sum(), b)
    expected = reference_double_cv(theta.detach(), b.detach(), cost.detach(), grad, alpha)
    assert torch.allclose(theta.grad, expected, atol=1e-12)
    assert torch.allclose(loss.detach(), cost.detach().mean(0).sum())
    if est.tune:
        assert float(est.alpha.detach()) != alpha  # one Adam step, after the estimate


def test_double_cv_fixed_is_exact_for_a_linear_f():
    """α = -1: c_k is minus the Taylor expansion of the LOO difference, exact for a linear f, so
    every estimate is the exact gradient (zero variance)."""
    torch.manual_seed(1)
    theta = torch.randn(50, 4, dtype=DT, requires_grad=True)
    a = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=DT)
    dist = D.Independent(D.Bernoulli(logits=theta), 1)
    estimators.get("double_cv:tune=false")(dist, lambda z: z @ a, 3).backward()
    p = torch.sigmoid(theta.detach())
    assert torch.allclose(theta.grad, a * p * (1 - p), atol=1e-12)


def test_double_cv_categorical_correction_is_the_expectation_by_enumeration():
    """For a one-hot b ~ Cat(p) and a fixed ḡ: Σ_b p(b) (ḡ·(b - p)) (b - p) = Cov(b) ḡ, the
    closed form the estimator subtracts (``mean_and_covariance``)."""
    from estimators.double_cv import mean_and_covariance
    theta = torch.tensor([0.3, -1.2, 2.0, 0.0], dtype=DT)
    gbar = torch.tensor([1.5, -0.5, 2.0, 0.25], dtype=DT)
    p, cov = mean_and_covariance(D.OneHotCategorical(logits=theta), theta)
    eye = torch.eye(4, dtype=DT)
    exact = sum(p[c] * (gbar @ (eye[c] - p)) * (eye[c] - p) for c in range(4))
    assert torch.allclose(cov(gbar), exact, atol=1e-14)


# -- RODEO: a slow per-sample re-implementation of the reference formula -------------------------
def _set_rodeo(est, alpha, beta, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        est.alpha.fill_(alpha)
        est.beta.fill_(beta)
        for p in est.net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return est


def slow_rodeo(est, theta, x, f, grad):
    """``discrete_stein_avg`` of thjashin/rodeo per sample k and per neighbour i: neighbours
    built by flipping bit i, the LOO linearisation ``mean_{j≠k} ∇_j · (y - x_j)`` evaluated at
    each, ``H(y) = h¹(y) (y - p)`` formed explicitly."""
    k, batch, d = x.shape
    p = torch.sigmoid(theta)
    alpha, beta = float(est.alpha), float(est.beta)

    def h(lin, fbar):
        return est.net(torch.tensor([lin, fbar], dtype=DT))
    est.net.to(DT)
    out = torch.zeros(batch, d, dtype=DT)

    def others(kk):
        return [j for j in range(k) if j != kk]

    def lin(y, kk, n):
        return sum(float(grad[j, n] @ (y - x[j, n])) for j in others(kk)) / (k - 1)
    for n in range(batch):
        scal, vec = [], []
        for kk in range(k):
            fbar = sum(float(f[j, n]) for j in others(kk)) / (k - 1)
            xk = x[kk, n]
            hx = h(lin(xk, kk, n), fbar)
            s0, s1 = 0.0, torch.zeros(d, dtype=DT)
            for i in range(d):
                y = xk.clone()
                y[i] = 1 - y[i]
                wi = p[n, i] * (1 - xk[i]) + (1 - p[n, i]) * xk[i]
                hy = h(lin(y, kk, n), fbar)
                s0 = s0 + wi * (hy[0] - hx[0]) / d
                s1 = s1 + wi * (hy[1] * (y - p[n]) - hx[1] * (xk - p[n])) / d
            scal.append(s0)
            vec.append(s1)
        for kk in range(k):
            base = sum(float(f[j, n]) + alpha * float(scal[j]) for j in others(kk)) / (k - 1)
            out[n] += ((float(f[kk, n]) - base) * (x[kk, n] - p[n]) + beta * vec[kk]) / k
    return out


@pytest.mark.parametrize("k", [2, 3])
def test_rodeo_is_the_reference_formula(k):
    theta, x, cost, grad = _inputs(k, batch=2, d=4, seed=k)
    est = _set_rodeo(Rodeo(hidden=8), alpha=0.8, beta=-1.3)
    with torch.no_grad():
        ours = est.gradient(D.Bernoulli(logits=theta), x, cost, grad, theta, torch.Size([2]), k)
        slow = slow_rodeo(est, theta, x, cost, grad)
    assert torch.allclose(ours, slow, atol=1e-10)


def test_gibbs_stein_control_variates_have_mean_zero_by_enumeration():
    """Σ_x q(x) (A h⁰)(x) = 0 and Σ_x q(x) (A H)(x) = 0 exactly, over all 2^D points, for a
    random network and linearisation: the identity RODEO's unbiasedness rests on."""
    d = 5
    est = _set_rodeo(Rodeo(hidden=16), alpha=1.0, beta=1.0).to(DT)
    g = torch.Generator().manual_seed(11)
    theta = torch.randn(d, generator=g, dtype=DT)
    gbar, offset, fbar = (torch.randn(d, generator=g, dtype=DT), torch.randn((), dtype=DT),
                          torch.randn((), dtype=DT))
    x = torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)), dtype=DT)  # [2^D, D]
    p = torch.sigmoid(theta)
    q = (x * p + (1 - x) * (1 - p)).prod(-1)
    with torch.no_grad():
        scalar, vector = est.stein_terms(x, p, gbar, offset, fbar.expand(len(x)), theta)
    assert scalar.abs().max() > 1e-3 and vector.abs().max() > 1e-3  # not trivially zero
    assert abs(float(q @ scalar)) < 1e-12
    assert float((q @ vector).abs().max()) < 1e-12


@pytest.mark.parametrize("k", [2, 3])
def test_rodeo_unbiased_with_large_frozen_coefficients(k):
    torch.manual_seed(100 + k)
    problem = independent_bernoulli_decoder(R, DT, "cpu")
    est = _set_rodeo(Rodeo(hidden=8), alpha=2.0, beta=-3.0).eval()
    est(problem.dist, problem.f, num_samples=k).backward()
    g_hat = torch.cat([leaf.grad.reshape(R, -1) for leaf in problem.leaves], 1)
    exact = torch.autograd.grad(problem.exact(), problem.leaves)
    g = torch.cat([e[0].reshape(-1) for e in exact])
    z, crit = mean_test(g_hat, g)
    assert z < crit, (z, crit)


@pytest.mark.parametrize("alpha", [3.0, -5.0])
def test_double_cv_unbiased_far_from_its_optimum(alpha):
    """Any fixed α gives an unbiased estimate, on Bernoulli and on one-hot categoricals."""
    for i, build in enumerate((independent_bernoulli_decoder, onehot_independent)):
        torch.manual_seed(200 + i)
        problem = build(R, DT, "cpu")
        DoubleCV(tune=False, alpha=alpha)(problem.dist, problem.f, num_samples=3).backward()
        g_hat = torch.cat([leaf.grad.reshape(R, -1) for leaf in problem.leaves], 1)
        exact = torch.autograd.grad(problem.exact(), problem.leaves, allow_unused=True)
        g = torch.cat([(e if e is not None else torch.zeros_like(leaf))[0].reshape(-1)
                       for e, leaf in zip(exact, problem.leaves)])
        z, crit = mean_test(g_hat, g)
        assert z < crit, (build.__name__, z, crit)


# -- learned state, declarations, robustness ---------------------------------------------------
@pytest.mark.parametrize("spec", ["rodeo", "double_cv"])
def test_learned_parameters_move_online_and_freeze_in_eval(spec):
    est = estimators.get(spec)
    _, dist, f = _problem()
    before = [p.detach().clone() for p in est.parameters()]
    for _ in range(3):
        est(dist, f, num_samples=3)
    assert any(not torch.equal(a, b) for a, b in zip(before, est.parameters()))
    est.eval()
    frozen = [p.detach().clone() for p in est.parameters()]
    est(dist, f, num_samples=3)
    assert all(torch.equal(a, b) for a, b in zip(frozen, est.parameters()))


def test_fixed_double_cv_has_no_state_and_its_declared_name():
    assert list(estimators.get("double_cv:tune=false").parameters()) == []
    assert estimators.display_name("double_cv:tune=false") == "double CV, fixed"
    assert estimators.display_name("double_cv") == "double CV"
    assert estimators.display_name("rodeo") == "RODEO"
    for name in ("rodeo", "double_cv"):
        info = estimators.info(name).info
        assert info["unbiased"] is True and "Bernoulli" in info["families"]
    assert "OneHotCategorical" in estimators.info("double_cv").info["families"]


def _problem(dtype=DT):
    torch.manual_seed(0)
    theta = torch.randn(4, 6, dtype=dtype, requires_grad=True)
    w = torch.linspace(-1, 1, 6, dtype=dtype)
    return theta, D.Independent(D.Bernoulli(logits=theta), 1), lambda z: ((z * w).sum(-1) - .3) ** 2


@pytest.mark.parametrize("spec", ["rodeo", "double_cv", "double_cv:tune=false"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_extreme_logits_and_low_precision_give_finite_gradients(spec, dtype):
    est = estimators.get(spec)
    big = 60.0 if dtype == torch.float16 else 200.0
    leaf = torch.tensor([-big, -20.0, 0.0, 20.0, big], dtype=dtype).expand(3, 5).clone()
    leaf.requires_grad_()
    w = torch.linspace(-1, 1, 5, dtype=dtype)
    dist = D.Independent(D.Bernoulli(logits=leaf), 1)
    for _ in range(2):
        loss = est(dist, lambda b: ((b * w).sum(-1) - 0.3) ** 2, num_samples=3)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(leaf.grad).all()
    assert all(torch.isfinite(p).all() for p in est.parameters())


@pytest.mark.parametrize("spec", ["rodeo", "double_cv"])
def test_needs_f_differentiable_at_the_samples_and_two_samples(spec):
    _, dist, _ = _problem()
    with pytest.raises(ValueError, match="differentiable"):
        estimators.get(spec)(dist, lambda z: z.sum(-1).detach(), 2)
    with pytest.raises(ValueError, match="num_samples >= 2"):
        estimators.get(spec)(dist, lambda z: z.sum(-1), 1)


@pytest.mark.parametrize("spec", ["rodeo", "double_cv"])
def test_f_parameters_get_the_pathwise_gradient_of_the_mean(spec):
    theta, dist, _ = _problem()
    w = torch.linspace(-1, 1, 6, dtype=DT).requires_grad_()
    est = estimators.get(spec)  # RODEO's network draws its initial weights here
    torch.manual_seed(5)
    est(dist, lambda z: ((z * w).sum(-1) - 0.3) ** 2, 3).backward()
    torch.manual_seed(5)
    z = sample(dist, 3)
    expected, = torch.autograd.grad((((z * w).sum(-1) - 0.3) ** 2).mean(0).sum(), w)
    assert torch.allclose(w.grad, expected)


# -- the count of gradients of f ---------------------------------------------------------------
@pytest.mark.parametrize("spec,k,evals,grads", [
    ("score_function:baseline=loo", 4, 4, 0), ("disarm", 4, 4, 0), ("muprop", 4, 5, 1),
    ("double_cv", 4, 4, 4), ("double_cv:tune=false", 3, 3, 3), ("rodeo", 3, 3, 3),
    ("rebar", 4, 12, 8), ("gumbel_softmax", 4, 4, 4), ("indecater", 2, 2 * 20 * 2, 0),
])
def test_gradients_of_f_are_counted_apart_from_evaluations(spec, k, evals, grads):
    from suite import measure, tasks
    task = tasks.build_task("bernoulli20_nonseparable")
    assert measure.costs_per_estimate(estimators.get(spec), task, k) == (evals, grads)
    est = estimators.get(spec)
    if hasattr(est, "gradient_evaluations"):
        assert est.gradient_evaluations(task.problem(1).dist, k) == grads


@pytest.mark.parametrize("spec,per_update", [("score_function:baseline=loo", 0.0),
                                             ("double_cv", 2.0), ("rodeo", 2.0)])
def test_vae_training_records_the_gradients_of_f_per_image(spec, per_update):
    """The binary VAE's checkpoints count gradients of f (per image) next to f evaluations: the
    equal-cost axis of its training curves."""
    from suite.train_vae import BinaryVAEDigits
    task = BinaryVAEDigits(latents=4, hidden=8, steps=6, batch_size=16, num_checkpoints=3,
                           eval_train=32, grad_batch=8, grad_replicates=2, num_samples=2)
    run = task.run(spec, seed=1)
    assert [p["f_evaluations"] for p in run.checkpoints] == [0.0, 6.0, 12.0]  # K=2 per update
    assert [p["grad_evaluations"] for p in run.checkpoints] == [0.0, 3 * per_update,
                                                                6 * per_update]


def test_building_rodeo_leaves_the_global_random_stream_alone():
    state = torch.get_rng_state()
    a, b = estimators.get("rodeo"), estimators.get("rodeo")
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rodeo_blocked_network_is_the_module(dtype, monkeypatch):
    """The CPU path's network in blocks of rows (its backward recomputes each block's hidden
    layer) gives the module's outputs and the module's gradients for its parameters and its
    inputs; 7-row blocks leave a partial last block."""
    from estimators import stein
    monkeypatch.setattr(stein, "_NET_ROWS_CPU", 7)
    est = Rodeo(hidden=9).to(dtype)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 10, 2, generator=g, dtype=dtype, requires_grad=True)
    w = torch.randn(5, 10, 2, generator=g, dtype=dtype)
    first, act, last = est.net
    out = stein._BlockedNet.apply(x.reshape(-1, 2), first.weight, first.bias, last.weight,
                                  last.bias, act.negative_slope, stein._NET_ROWS_CPU)
    ours = torch.autograd.grad((out.reshape(w.shape) * w).sum(), [x, *est.net.parameters()])
    ref_out = est.net(x)
    ref = torch.autograd.grad((ref_out * w).sum(), [x, *est.net.parameters()])
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out.reshape(w.shape), ref_out, rtol=tol, atol=tol)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_rodeo_stein_terms_the_same_through_the_blocked_network(monkeypatch):
    """Many rows (blocks of 7, so the blocked path) or few (the module in one pass): the same
    control variates and the same gradients for the network's parameters."""
    from estimators import stein
    theta, b, cost, grad = _inputs(4, batch=6, d=9)
    p = torch.sigmoid(theta)
    gbar, offset, fbar = grad.mean(0), (grad * b).sum(-1).mean(0), cost.mean(0)
    est = Rodeo(hidden=11).to(DT)

    def terms():
        scalar, vector = est.stein_terms(b, p, gbar, offset, fbar, theta)
        loss = scalar.pow(2).sum() + (vector * theta).sum()
        return [scalar, vector, *torch.autograd.grad(loss, list(est.net.parameters()))]
    plain = terms()
    monkeypatch.setattr(stein, "_NET_ROWS_CPU", 7)  # 4 x 6 x 9 = 216 rows > 4 blocks of 7
    for a, c in zip(terms(), plain):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)
