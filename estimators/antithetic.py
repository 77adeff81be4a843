"""Antithetic estimators: ARM (Yin & Zhou 2019, "ARM: Augment-REINFORCE-merge gradient for
stochastic binary networks"), DisARM (Dong, Mnih & Tucker 2020, "DisARM: An antithetic gradient
estimator for binary latent variables"; for categoricals Dong, Mnih & Tucker 2021, "Coupled
gradient estimators for discrete latent variables") and ARMS (Dimitriev & Zhou 2021, "ARMS:
Antithetic-REINFORCE-Multi-Sample gradient for binary variables"). CARMS, the categorical ARMS, is
in :mod:`estimators.antithetic_categorical`.

With logits ``a``, ``σ`` the sigmoid and one uniform vector ``u ~ U(0,1)`` per pair (one entry per
Bernoulli coordinate):

* ARM: ``ĝ = (f(1[u > σ(-a)]) - f(1[u < σ(a)])) · (u - 1/2)``.
* DisARM: ``b = 1[u < σ(a)]``, ``b̃ = 1[1 - u < σ(a)]`` (antithetic: both are exact samples) and
  ``ĝ_i = ½ (f(b) - f(b̃)) · (-1)^{b̃_i} · 1[b_i ≠ b̃_i] · σ(|a_i|)``: ARM Rao-Blackwellised over
  the shared noise, so never worse per pair than ARM.

Both are unbiased for the gradient of ``E[f(b)]`` with respect to the logits (f a cost of the whole
sample vector; coordinates may be coupled). Neither needs f to accept relaxed inputs.

**Samples and pairs.** ``num_samples = K`` counts f evaluations: K samples are ``K // 2``
antithetic pairs, 2 f evaluations each, in one call of f on ``2·(K // 2)`` rows. The minimum is
K = 2 (one pair). An odd K uses ``floor(K/2)`` pairs, so ``K - 1`` evaluations: the estimator never
evaluates f more often than asked (``evaluations(dist, K)`` says how many). The loss's value is the
mean of f over all ``2·(K//2)`` samples (each is an exact sample of the distribution); f's own
parameters get that mean's pathwise gradient. The gradient w.r.t. the distribution's logits is
the mean of ĝ over the pairs, applied through ``base.logits`` (so ``probs=``-parameterised
distributions and logits produced by an encoder get it by the chain rule).

**Categorical DisARM** (``disarm`` on ``OneHotCategorical``/``Categorical``; Dong, Mnih & Tucker
2021, section 4, the importance-weighted stick-breaking estimator "DisARM-IW"; written from the
reference code google-research ``disarm/categorical/networks.py``, ``get_importance_weight_vector``
and ``get_layer_grad_estimation(grad_type='disarm', importance_weighting=True)``). The categories
are sorted by ascending probability (the reference's ``--logits_order=ascending``) and the
categorical is written as C - 1 binaries ``b_i ~ Bernoulli(σ_i)``, ``σ_i = p_(i) / Σ_{j≥i} p_(j)``,
``z`` = the first ``i`` with ``b_i = 1`` (the last category if none). One uniform vector per pair
gives ``z`` from ``b_i = 1[u_i < σ_i]`` and ``z̃`` from ``b̃_i = 1[1 - u_i < σ_i]``; both are exact
samples. With ``n = min(z, z̃)`` (sorted positions) the coupled pair has
``P(z, z̃) = Π_{i<n} (1 - 2σ_i) · min(σ_n, 1 - σ_n) · q(max | > n)``, so the importance weight
``w = p(z) p(z̃) / P(z, z̃) = Π_{i<n} (1 - σ_i)² / (1 - 2σ_i) · max(σ_n, 1 - σ_n)`` and

    ĝ = ½ · w · (f(z) - f(z̃)) · (∇ log p(z) - ∇ log p(z̃)) · 1[z ≠ z̃],

unbiased because ``E[ĝ] = ½ Σ_{a≠b} p_a p_b (f_a - f_b)(∇log p_a - ∇log p_b) = ∇ E f`` as long as
every pair of distinct categories can occur together, which the ascending order guarantees
(``σ_i ≤ 1/(C - i) < ½`` for every binary before the last, so ``1 - 2σ_i > 0``). The reference's
importance-weighted path does not sort (it passes ``logits_sorting_order=None``) and zeroes the
weight where ``σ_i ≥ ½``: a bias wherever some category but the last has ``σ_i ≥ ½``; ours sorts.
Binary DisARM is the C = 2 case up to the coupling's orientation. Same pair accounting as the
Bernoulli estimators (K samples = K // 2 pairs).

**ARMS** (``arms``; Dimitriev & Zhou 2021, eq. 7-9 and the reference code alekdimi/arms,
``networks.py``, ``grad_type == 'arms'``, read and re-derived here). K >= 2 Bernoulli samples per
coordinate, coupled by the Dirichlet copula: ``E_k ~ Exp(1)``, ``d = E / Σ_k E_k`` (flat Dirichlet),
``u_k = (1 - d_k)^{K-1}`` (each ``U(0,1)``, negatively dependent; K = 2 gives the antithetic pair
``u_2 = 1 - u_1``). With ``p = σ(a)`` and ``m = min(p, 1 - p)``, ``b_k = 1[u_k < p]`` for p < ½
and ``b_k = 1[1 - u_k < p]`` otherwise (the reference's switch: the copula couples the rarer
outcome), and

    ĝ = (1/K) Σ_k (f(b_k) - f̄) (b_k - p) · K/(K-1) · p(1-p) / (m - C(m, m)),

``f̄ = mean_k f(b_k)``, ``C(x, y) = max(x^{1/(K-1)} + y^{1/(K-1)} - 1, 0)^{K-1}`` the copula's
bivariate CDF, so ``m - C(m, m) = P(b_i ≠ b_j) / 2 = p - P(b_i = b_j = 1)``. Unbiased: coordinate d is
coupled across the samples but independent of the other coordinates, so with
``g_x = E[f(b) | b_d = x]``, ``E[f(b_k)(b_kd - p)] = p(1-p)(g_1 - g_0)`` and, for j ≠ k,
``E[f(b_j)(b_kd - p)] = Cov(b_jd, b_kd)(g_1 - g_0)``; hence
``E[(f_k - f̄)(b_kd - p)] K/(K-1) = (p - P(b_jd = b_kd = 1))(g_1 - g_0)``, which the factor turns
into ``p(1-p)(g_1 - g_0)``, the exact derivative w.r.t. the logit. Independent samples (``C = p²``) give
REINFORCE-LOO; K = 2 gives DisARM exactly. Costs K evaluations (every sample is used).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import distributions as D

from . import register
from .base import Estimator, unwrap

__all__ = ["ARM", "DisARM", "ARMS", "dirichlet_copula_log_uniforms", "dirichlet_copula_cdf",
           "stick_breaking_pairs"]


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for the half types (copula draws, logs), else the dtype itself."""
    return torch.promote_types(dtype, torch.float32)


def dirichlet_copula_log_uniforms(num_samples: int, shape, dtype, device) -> torch.Tensor:
    """``log u [K, *shape]`` of the Dirichlet copula: ``u_k = (1 - d_k)^{K-1}``, ``d`` a flat
    Dirichlet over the K samples drawn as normalised ``Exp(1)`` variables. ``1 - d_k`` is the sum
    of the other samples' exponentials over the total, formed from exclusive prefix and suffix
    sums (no ``1 - d`` cancellation), so ``log u`` is accurate where ``u`` is tiny."""
    k = int(num_samples)
    e = torch.empty((k,) + tuple(shape), dtype=dtype, device=device).exponential_()
    e.clamp_min_(torch.finfo(dtype).tiny)
    zero = torch.zeros_like(e[:1])
    before = torch.cat([zero, e[:-1].cumsum(0)])  # Σ_{j<k} E_j
    after = torch.cat([e.flip(0)[:-1].cumsum(0).flip(0), zero])  # Σ_{j>k} E_j
    total = e.sum(0)
    return (k - 1) * (torch.log(before + after) - torch.log(total))


def dirichlet_copula_cdf(x: torch.Tensor, y: torch.Tensor, num_samples: int) -> torch.Tensor:
    """The bivariate CDF ``C(x, y) = max(x^{1/(K-1)} + y^{1/(K-1)} - 1, 0)^{K-1}`` of two
    coordinates of the K-dimensional Dirichlet copula (K = 2: ``max(x + y - 1, 0)``)."""
    r = int(num_samples) - 1
    if r == 1:
        return (x + y - 1).clamp_min(0)
    return (x.pow(1.0 / r) + y.pow(1.0 / r) - 1).clamp_min(0).pow(r)


def stick_breaking_pairs(logits: torch.Tensor, pairs: int):
    """Antithetic stick-breaking pairs of a categorical with normalised ``logits [*vars, C]``
    (categorical DisARM, see the module docstring): ``(z, z̃, w)``, the category indices
    ``[pairs, *vars]`` of both samples and the importance weight ``p(z) p(z̃) / P(z, z̃)`` of
    the pair (0 where ``z = z̃``, whose term vanishes). No gradient."""
    lp = logits.detach().to(_work_dtype(logits.dtype))
    c = lp.shape[-1]
    order = lp.argsort(-1)  # ascending probability: σ_i < ½ for every binary but the last
    slp = lp.gather(-1, order)
    tail = slp.flip(-1).logcumsumexp(-1).flip(-1)  # log Σ_{j≥i} p_(j)
    log_sig = (slp - tail)[..., :-1]  # log σ_i, i < C - 1
    log_rest = tail[..., 1:] - tail[..., :-1]  # log (1 - σ_i)
    tiny = torch.finfo(lp.dtype).tiny
    u = torch.rand((pairs,) + lp.shape[:-1] + (c - 1,), dtype=lp.dtype, device=lp.device)
    u.clamp_(tiny, 1.0)
    ones = torch.ones_like(u[..., :1])
    first = torch.cat([(torch.log(u) < log_sig).to(lp.dtype), ones], -1).argmax(-1)
    second = torch.cat([(torch.log1p(-u) < log_sig).to(lp.dtype), ones], -1).argmax(-1)
    # log w_n = Σ_{i<n} [2 log(1-σ_i) - log(1-2σ_i)] + log max(σ_n, 1-σ_n) for n = min(z, z̃)
    sig, rest = log_sig.exp(), log_rest.exp()
    both_zero = 2 * log_rest - torch.log((rest - sig).clamp_min(tiny))
    before = torch.cat([torch.zeros_like(both_zero[..., :1]), both_zero[..., :-1]], -1).cumsum(-1)
    log_w = before + torch.maximum(log_sig, log_rest)  # [*vars, C - 1]
    n = torch.minimum(first, second)
    w = log_w.expand((pairs,) + log_w.shape).gather(-1, n.clamp_max(c - 2).unsqueeze(-1))
    w = torch.where(first == second, torch.zeros_like(n, dtype=lp.dtype), w.squeeze(-1).exp())
    index = order.expand((pairs,) + order.shape)
    z = index.gather(-1, first.unsqueeze(-1)).squeeze(-1)
    z2 = index.gather(-1, second.unsqueeze(-1)).squeeze(-1)
    return z, z2, w


def _as_family(base: D.Distribution, index: torch.Tensor, c: int, dtype) -> torch.Tensor:
    """Category indices as the family's samples: one-hot vectors or the indices themselves."""
    if isinstance(base, D.OneHotCategorical):
        return F.one_hot(index, c).to(dtype)
    return index


class _Antithetic(Estimator):
    """Shared sampling and surrogate of ARM and DisARM (Bernoulli, alone or in Independent)."""

    unbiased = True
    families = (D.Bernoulli,)
    #: f evaluations per requested sample: K samples = K//2 pairs x 2 evaluations (odd K: K - 1)
    evaluations_per_sample = 1
    #: f evaluations per estimate that do not scale with K
    evaluations_per_call = 0

    def min_samples(self) -> int:
        return 2

    def evaluations(self, dist, num_samples: int) -> int:
        """f evaluations of one estimate with ``num_samples`` = K: ``2 * (K // 2)``."""
        return 2 * (int(num_samples) // 2)

    def check(self, dist, num_samples, min_samples=1):
        if not isinstance(num_samples, bool) and num_samples == 1:
            raise ValueError(f"{self.describe()} needs num_samples >= 2: K samples are K // 2 "
                             f"antithetic pairs of 2 f evaluations; got num_samples=1")
        super().check(dist, num_samples, min_samples)

    def _pair_gradient(self, u, a, b, b2, diff):
        raise NotImplementedError

    def estimate(self, dist, f, num_samples):
        base, _ = unwrap(dist)
        if not isinstance(base, D.Bernoulli):
            return self._estimate_categorical(dist, base, f, num_samples)
        logits = base.logits
        pairs = num_samples // 2
        shape = torch.Size((pairs,)) + logits.shape
        tiny = torch.finfo(logits.dtype).tiny
        u = torch.rand(shape, dtype=logits.dtype, device=logits.device).clamp_(tiny, 1.0)
        a = logits.detach()
        # logit(u): comparisons with the logits a never saturate the sigmoid
        b, b2 = self._pair_samples(torch.log(u) - torch.log1p(-u), a)
        cost = self.costs(f, torch.cat([b, b2]), dist, 2 * pairs)
        extra = len(logits.shape) - len(dist.batch_shape)  # event dims of the Bernoulli vector
        detached = cost.detach()
        diff = (detached[:pairs] - detached[pairs:]).reshape(
            (pairs, *dist.batch_shape) + (1,) * extra)
        g = self._pair_gradient(u, a, b, b2, diff).mean(0)
        return cost.mean(0).sum() + (g * (logits - logits.detach())).sum()


@register
class ARM(_Antithetic):
    """ARM: (f(1[u > σ(-a)]) - f(1[u < σ(a)])) (u - 1/2) per antithetic pair of f evaluations."""

    name = "arm"
    display_name = "ARM"
    reference = "Yin & Zhou 2019"

    def _pair_samples(self, lu, a):
        # 1[u > σ(-a)] = 1[logit(u) > -a] and 1[u < σ(a)] = 1[logit(u) < a]
        return (lu > -a).to(a.dtype), (lu < a).to(a.dtype)

    def _pair_gradient(self, u, a, b, b2, diff):
        return diff * (u - 0.5)


@register
class DisARM(_Antithetic):
    """DisARM: ½ (f(b) - f(b̃)) (-1)^{b̃_i} 1[b_i ≠ b̃_i] σ(|a_i|) per antithetic pair; for
    categoricals the importance-weighted stick-breaking pair ½ w (f(z) - f(z̃)) (∇log p(z) -
    ∇log p(z̃))."""

    name = "disarm"
    display_name = "DisARM"
    families = (D.Bernoulli, D.OneHotCategorical, D.Categorical)
    reference = ("Dong, Mnih & Tucker 2020; categorical: Dong, Mnih & Tucker 2021 (importance-"
                 "weighted stick-breaking coupling)")

    def _estimate_categorical(self, dist, base, f, num_samples):
        logits = base.logits  # normalised [*vars, C]
        c = logits.shape[-1]
        pairs = num_samples // 2
        z, z2, w = stick_breaking_pairs(logits, pairs)
        samples = _as_family(base, torch.cat([z, z2]), c, logits.dtype)
        cost = self.costs(f, samples, dist, 2 * pairs)
        detached = cost.detach()
        extra = len(logits.shape) - 1 - len(dist.batch_shape)  # event dims but the classes
        diff = (detached[:pairs] - detached[pairs:]).reshape(
            (pairs, *dist.batch_shape) + (1,) * extra)
        # ∇_logits log p(z) = e_z - p: the difference of the pair's scores is e_z - e_z̃
        score = F.one_hot(z, c).to(logits.dtype) - F.one_hot(z2, c).to(logits.dtype)
        g = ((0.5 * diff * w.to(logits.dtype)).unsqueeze(-1) * score).mean(0)
        return cost.mean(0).sum() + (g * (logits - logits.detach())).sum()

    def _pair_samples(self, lu, a):
        # b = 1[u < σ(a)] = 1[logit(u) < a]; b̃ = 1[1 - u < σ(a)] = 1[-logit(u) < a]
        return (lu < a).to(a.dtype), (-lu < a).to(a.dtype)

    def _pair_gradient(self, u, a, b, b2, diff):
        sign = 1.0 - 2.0 * b2  # (-1)^{b̃_i}
        return 0.5 * diff * sign * (b != b2).to(a.dtype) * torch.sigmoid(a.abs())


class CoupledSamples(Estimator):
    """Base of the estimators whose K >= 2 samples are coupled (ARMS, CARMS): every sample is
    evaluated once and each is the others' baseline, so K = 1 is refused."""

    #: f evaluations per sample: every one of the K coupled samples is evaluated once
    evaluations_per_sample = 1
    evaluations_per_call = 0

    def min_samples(self) -> int:
        return 2

    def evaluations(self, dist, num_samples: int) -> int:
        """f evaluations of one estimate with ``num_samples`` = K: K."""
        return int(num_samples)

    def check(self, dist, num_samples, min_samples=1):
        if not isinstance(num_samples, bool) and num_samples == 1:
            raise ValueError(f"{self.describe()} needs num_samples >= 2: its K samples are "
                             f"coupled and each is the others' baseline; got num_samples=1")
        super().check(dist, num_samples, min_samples)


@register
class ARMS(CoupledSamples):
    """ARMS: K Dirichlet-copula-coupled samples, (1/K) Σ_k (f_k - f̄)(b_k - p) K/(K-1) ·
    p(1-p)/(m - C(m, m)), m = min(p, 1-p)."""

    name = "arms"
    display_name = "ARMS"
    unbiased = True
    families = (D.Bernoulli,)
    reference = "Dimitriev & Zhou 2021"

    def estimate(self, dist, f, num_samples):
        base, _ = unwrap(dist)
        logits = base.logits
        k = num_samples
        work = _work_dtype(logits.dtype)
        a = logits.detach().to(work)
        log_m = F.logsigmoid(-a.abs())  # log min(p, 1 - p)
        log_u = dirichlet_copula_log_uniforms(k, a.shape, work, a.device)
        minority = log_u < log_m  # b_k = 1[u_k < p] (p < ½) or 1[1 - u_k < p] (p ≥ ½)
        b = torch.where(a < 0, minority, ~minority).to(logits.dtype)
        cost = self.costs(f, b, dist, k)
        detached = cost.detach()
        # p(1-p) / (m - C(m,m)) = (1 - m) / (1 - C(m,m)/m), C(m,m)/m = t^{K-1}/m, t = 2m^{1/(K-1)}-1
        t = 2 * torch.exp(log_m / (k - 1)) - 1
        ratio = torch.where(t > 0, torch.exp((k - 1) * torch.log(t.clamp_min(torch.finfo(work).tiny))
                                             - log_m), torch.zeros_like(t))
        debias = (-torch.expm1(log_m)) / (1 - ratio)
        extra = len(logits.shape) - len(dist.batch_shape)
        centred = (detached - detached.mean(0)).reshape((k, *dist.batch_shape) + (1,) * extra)
        p = torch.sigmoid(a)
        g = (centred.to(work) * (b.to(work) - p)).mean(0) * (k / (k - 1)) * debias
        return cost.mean(0).sum() + (g.to(logits.dtype) * (logits - logits.detach())).sum()
