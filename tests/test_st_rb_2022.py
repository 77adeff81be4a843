"""Sum-and-sample (Liu et al. 2019), gapped straight-through (Fan et al. 2022) and decoupled
ST-Gumbel (Shah et al. 2024) against their reference formulas (issue 25).

Each estimator is compared with a slow, direct re-implementation of the reference formula on the
same noise: the samples are read back from what f received (sum-and-sample, GST) or redrawn from
the same seed (decoupled ST-Gumbel). Sum-and-sample's expectation is then taken exactly, by
enumerating the sampled remainder, and compared with the exact gradient (no statistics). The
biased two must show a bias on a categorical toy (their claim ``unbiased=False`` is honest).

Note [Randomized statistical tests]: the statistical tests fix their seeds and take their
tolerances from ``ALPHA`` (tests/statcheck.py).
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
from estimators.conformance import R, categorical_table, estimates, mean_test, onehot_independent
from estimators.evaluations import evaluations


@pytest.fixture(autouse=True)
def float64():
    """These comparisons are made in float64 (the default dtype, test by test)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _recording(f, seen):
    def g(z):
        seen.append(z.detach().clone())
        return f(z)
    return g


# -- sum-and-sample ---------------------------------------------------------------------------
def _problem(c=6, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, c, generator=g) * 1.5
    table = torch.randn(batch, c, generator=g)
    return logits, table


def _table_cost(table):
    return lambda z: table.expand(z.shape + table.shape[-1:]).gather(-1, z.unsqueeze(-1)).squeeze(-1)


def reference_sum_and_sample(logits, table, k, u, baseline):
    """The gradient of the reference pseudo-loss (RaoBlackwellizedSGD ``get_raoblackwell_ps_loss``
    with its REINFORCE estimator), written out one batch row and one draw at a time.
    ``u``: [K, batch] draws from the remainder. ``baseline="loo"``: our leave-one-out form."""
    logits = logits.detach().clone().requires_grad_()
    log_q = torch.log_softmax(logits, -1)
    q = log_q.exp().detach()
    total = 0.0
    for b in range(logits.shape[0]):
        order = sorted(range(q.shape[1]), key=lambda i: -float(q[b, i]))
        top, rest = order[:k], order[k:]
        costs = [float(table[b, j]) for j in u[:, b]]
        kk = len(costs)
        mean = sum(costs) / kk
        beta = mean if baseline == "loo" else 0.0
        for i in top:  # summed term: q_i * (f_i * log q_i + f_i), f a constant here
            total = total + q[b, i] * (float(table[b, i]) - beta) * log_q[b, i]
        if not rest:
            continue
        weight = float(sum(q[b, i] for i in rest))
        for j, cost in zip(u[:, b].tolist(), costs):
            assert j in rest
            b_j = (mean * kk - cost) / (kk - 1) if baseline == "loo" else 0.0
            total = total + weight * (cost - b_j) * log_q[b, j] / kk
    (grad,) = torch.autograd.grad(total, logits)
    return grad


@pytest.mark.parametrize("baseline,k,num_samples", [("none", 1, 1), ("none", 2, 3),
                                                     ("loo", 2, 2), ("loo", 3, 4)])
def test_sum_and_sample_matches_the_reference_formula_on_the_same_draws(baseline, k, num_samples):
    logits, table = _problem()
    for seed in range(5):
        torch.manual_seed(seed)
        leaf = logits.clone().requires_grad_()
        seen = []
        est = estimators.get("sum_and_sample", k=k, baseline=baseline)
        est(D.Categorical(logits=leaf), _recording(_table_cost(table), seen), num_samples).backward()
        (z,) = seen
        assert z.shape == (k + num_samples, 3)
        u = z[k:]
        expected = reference_sum_and_sample(logits, table, k, u, baseline)
        torch.testing.assert_close(leaf.grad, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("baseline,num_samples", [("none", 1), ("none", 2), ("loo", 2)])
def test_sum_and_sample_expectation_is_the_exact_gradient_by_enumeration(baseline, num_samples):
    """E over the remainder draws, taken exactly: Σ over every tuple of draws of its probability
    times the reference formula's gradient (which the test above ties to the estimator)."""
    logits, table = _problem(c=5, batch=2, seed=3)
    k = 2
    leaf = logits.clone().requires_grad_()
    exact = torch.autograd.grad((torch.softmax(leaf, -1) * table).sum(), leaf)[0]
    q = torch.softmax(logits, -1)
    mean = torch.zeros_like(logits)
    for b in range(logits.shape[0]):
        rest = q[b].argsort(descending=True)[k:].tolist()
        q_rest = q[b, rest] / q[b, rest].sum()
        for tup in itertools.product(range(len(rest)), repeat=num_samples):
            weight = math.prod(float(q_rest[i]) for i in tup)
            u = torch.zeros(num_samples, logits.shape[0], dtype=torch.long)
            for other in range(logits.shape[0]):  # the other rows: any valid draw
                u[:, other] = int(q[other].argsort()[0])
            u[:, b] = torch.tensor([rest[i] for i in tup])
            mean[b] += weight * reference_sum_and_sample(logits, table, k, u, baseline)[b]
    torch.testing.assert_close(mean, exact, rtol=1e-10, atol=1e-12)


def test_sum_and_sample_counts_k_plus_K_evaluations_in_one_call():
    logits, table = _problem(c=6)
    for k, num_samples, expected in ((1, 1, 2), (3, 4, 7), (6, 2, 6), (9, 2, 6)):
        seen = []
        est = estimators.get(f"sum_and_sample:k={k}")
        dist = D.OneHotCategorical(logits=logits.clone().requires_grad_())
        est(dist, _recording(lambda z: (z * table).sum(-1), seen), num_samples).backward()
        assert [len(z) for z in seen] == [expected] == [evaluations(est, dist, num_samples)]
    # the summed points are the k most probable, in order; the sampled ones lie outside them
    seen = []
    leaf = logits.clone().requires_grad_()
    estimators.get("sum_and_sample:k=2")(D.OneHotCategorical(logits=leaf), _recording(
        lambda z: (z * table).sum(-1), seen), 50)
    idx = seen[0].argmax(-1)                                          # [2 + 50, batch]
    top = logits.topk(2, -1).indices.T
    assert torch.equal(idx[:2], top)
    assert not (idx[2:].unsqueeze(0) == top.unsqueeze(1)).any()


def test_sum_and_sample_joint_support_of_independent_bernoullis():
    """The paper's Bernoulli experiment: the 2^D joint draws are one categorical variable."""
    torch.manual_seed(4)
    problem = onehot_independent(R, torch.float64, "cpu")
    g_hat, g = estimates("sum_and_sample:k=5,baseline=loo", problem, 3)
    z, crit = mean_test(g_hat, g)
    assert z < crit
    dist = D.Independent(D.Bernoulli(logits=torch.zeros(4)), 1)
    assert evaluations(estimators.get("sum_and_sample:k=5"), dist, 3) == 8
    assert not estimators.get("sum_and_sample").supports(
        D.Independent(D.Bernoulli(logits=torch.zeros(13)), 1))  # 8192 > max_support


def test_sum_and_sample_has_lower_variance_than_reinforce_at_equal_evaluations():
    torch.manual_seed(8)
    problem = categorical_table(R, torch.float64, "cpu")
    g_rb, g = estimates("sum_and_sample:k=2,baseline=loo", problem, 2)       # 4 evaluations
    torch.manual_seed(8)
    problem = categorical_table(R, torch.float64, "cpu")
    g_loo, _ = estimates("score_function:baseline=loo", problem, 4)         # 4 evaluations
    assert float(g_rb.var(0).sum()) < float(g_loo.var(0).sum())


def test_sum_and_sample_options_are_checked():
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        estimators.get("sum_and_sample", k=0)
    with pytest.raises(ValueError, match="option k=.* is not an int"):
        estimators.get("sum_and_sample:k=1.5")
    with pytest.raises(ValueError, match="did you mean 'loo'"):
        estimators.get("sum_and_sample", baseline="lo")
    with pytest.raises(ValueError, match="num_samples must be >= 2"):
        estimators.get("sum_and_sample:baseline=loo")(
            D.Categorical(logits=torch.zeros(4, requires_grad=True)), lambda z: z.double(), 1)


# -- gapped straight-through ------------------------------------------------------------------
def reference_gst(logits, action, temperature, gap):
    """chijames/GST ``gst_mover`` (detach=True, hard=True, no mask) with the sample given:
    ``gap`` a float, or ``"p"`` for the adaptive gap."""
    logits_cpy = logits.detach()
    probs = torch.softmax(logits_cpy, -1)
    argmax = probs.argmax(dim=-1, keepdim=True)
    action_bool = action.bool()
    max_logits = torch.gather(logits_cpy, -1, argmax)
    move = (max_logits - logits_cpy) * action
    if not isinstance(gap, float):
        pi = probs[action_bool] * (1 - 1e-5)
        gap = (-(1 - pi).log() / pi).view(logits.shape[:-1] + (1,))
    move2 = (logits_cpy + (-max_logits + gap)).clamp(min=0.0)
    move2[action_bool] = 0.0
    logits = logits + (move - move2)
    logits = logits - logits.mean(dim=-1, keepdim=True)
    prob = torch.softmax(logits / temperature, -1)
    return action - prob.detach() + prob


@pytest.mark.parametrize("spec,gap", [("gapped_straight_through", 1.0),
                                      ("gapped_straight_through:gap=0.3,temperature=0.7", 0.3),
                                      ("gapped_straight_through:adaptive=true", "p")])
def test_gapped_straight_through_matches_the_reference_code(spec, gap):
    g = torch.Generator().manual_seed(1)
    raw = torch.randn(5, 6, generator=g) * 2  # unnormalised, as the reference takes them
    w = torch.randn(6, generator=g)
    temperature = 0.7 if "temperature" in spec else 1.0
    for seed in range(4):
        torch.manual_seed(seed)
        leaf = raw.clone().requires_grad_()
        seen = []
        estimators.get(spec)(D.OneHotCategorical(logits=leaf),
                             _recording(lambda z: (z * w).sum(-1), seen), 3).backward()
        (hard,) = seen
        assert torch.equal(hard.sum(-1), torch.ones(3, 5))  # the forward pass is one-hot
        ref_leaf = raw.clone().requires_grad_()
        out = reference_gst(ref_leaf.expand(3, 5, 6), hard, temperature, gap)
        ((out * w).sum(-1).mean(0).sum()).backward()
        torch.testing.assert_close(leaf.grad, ref_leaf.grad, rtol=1e-9, atol=1e-12)


def test_gapped_straight_through_bernoulli_is_the_two_category_case():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(7, generator=g)
    w = torch.randn(7, generator=g)
    torch.manual_seed(0)
    leaf = a.clone().requires_grad_()
    seen = []
    estimators.get("gapped_straight_through")(D.Bernoulli(logits=leaf),
                                              _recording(lambda z: z * w, seen), 4).backward()
    (b,) = seen
    ref_leaf = a.clone().requires_grad_()
    theta = torch.stack([torch.zeros_like(ref_leaf), ref_leaf], -1).expand(4, 7, 2)
    out = reference_gst(theta, torch.stack([1 - b, b], -1), 1.0, 1.0)[..., 1]
    ((out * w).mean(0).sum()).backward()
    torch.testing.assert_close(leaf.grad, ref_leaf.grad, rtol=1e-9, atol=1e-12)


def test_gapped_logits_put_the_sample_on_top_by_the_gap():
    from estimators.straight_through import gap_shift
    torch.manual_seed(3)
    theta = torch.randn(200, 5) * 3
    hard = torch.zeros(2, 200, 5).scatter_(-1, torch.randint(0, 5, (2, 200, 1)), 1.0)
    moved = theta + gap_shift(theta, hard, 1.0, False)
    top = (moved * hard).sum(-1)
    others = moved.masked_fill(hard.bool(), -math.inf).max(-1).values
    assert bool((top - others >= 1.0 - 1e-12).all())
    torch.testing.assert_close(top, theta.max(-1).values.expand(2, 200))


# -- decoupled straight-through Gumbel --------------------------------------------------------
@pytest.mark.parametrize("family", ["onehot", "bernoulli"])
def test_decoupled_with_unit_forward_temperature_is_st_gumbel_draw_for_draw(family):
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(4, 3, generator=g)
    grads = []
    for spec in ("decoupled_straight_through_gumbel:forward_temperature=1,backward_temperature=0.6",
                 "straight_through_gumbel:temperature=0.6"):
        torch.manual_seed(11)
        leaf = logits.clone().requires_grad_()
        dist = (D.OneHotCategorical(logits=leaf) if family == "onehot"
                else D.Independent(D.Bernoulli(logits=leaf), 1))
        estimators.get(spec)(dist, lambda z: (z - 0.3).pow(2).sum(-1), 5).backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-12)


def reference_decoupled(logits, e, tau_f, tau_b):
    """The formula of the module's notes, written out: x = θ/τf + G (G = -log E), the one-hot of
    argmax x forward, softmax(x/τb) backward."""
    x = logits / tau_f - torch.log(e)
    y_b = torch.softmax(x / tau_b, -1)
    index = x.argmax(-1, keepdim=True)
    y_hard = torch.zeros_like(y_b).scatter_(-1, index, 1.0)
    return y_hard - y_b.detach() + y_b


def test_decoupled_matches_the_formula_on_the_same_noise():
    g = torch.Generator().manual_seed(6)
    raw = torch.randn(3, 5, generator=g)
    w = torch.randn(5, generator=g)
    tau_f, tau_b = 2.0, 0.5
    torch.manual_seed(21)
    leaf = raw.clone().requires_grad_()
    dist = D.OneHotCategorical(logits=leaf)
    estimators.get(f"decoupled_straight_through_gumbel:forward_temperature={tau_f},"
                   f"backward_temperature={tau_b}")(dist, lambda z: (z * w).sum(-1), 4).backward()
    torch.manual_seed(21)  # the same draw the estimator made
    e = torch.empty(4, 3, 5).exponential_().clamp_min_(torch.finfo(torch.float64).tiny)
    ref_leaf = raw.clone().requires_grad_()
    out = reference_decoupled(torch.log_softmax(ref_leaf, -1), e, tau_f, tau_b)
    ((out * w).sum(-1).mean(0).sum()).backward()
    torch.testing.assert_close(leaf.grad, ref_leaf.grad, rtol=1e-10, atol=1e-12)


def test_decoupled_forward_samples_the_tempered_distribution():
    torch.manual_seed(7)
    p = torch.tensor([0.1, 0.2, 0.3, 0.4], requires_grad=True)
    tau_f = 2.0
    n = 40_000
    seen = []
    estimators.get(f"decoupled_straight_through_gumbel:forward_temperature={tau_f}")(
        D.OneHotCategorical(probs=p), _recording(lambda z: z.sum(-1), seen), n)
    counts = seen[0].sum(0)
    tempered = torch.softmax(p.detach().log() / tau_f, -1)
    assert stats.chisquare(counts.numpy(), (tempered * n).detach().numpy()).pvalue > ALPHA


# -- the biased ones are biased (their claim), measured on a categorical toy ------------------
@pytest.mark.parametrize("spec", ["gapped_straight_through", "gapped_straight_through:adaptive=true",
                                  "decoupled_straight_through_gumbel"])
def test_biased_estimators_show_their_bias(spec):
    torch.manual_seed(9)
    problem = onehot_independent(R, torch.float64, "cpu")
    g_hat, g = estimates(spec, problem, 1)
    z, _ = mean_test(g_hat, g)
    assert z > z_crit(g.numel())
