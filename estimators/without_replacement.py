"""Rao-Blackwellised and without-replacement estimators over an enumerated support: the unordered
set estimator and sum-and-sample.

Unordered set estimator (Kool, van Hoof & Welling 2020,
"Estimating gradients for discrete random variables by sampling without replacement").

``num_samples = k`` distinct categories S are drawn without replacement (Gumbel-top-k: the k largest
of ``log p_i + G_i``) and f is evaluated once at each. With ``P(S)`` the probability of the
unordered set and ``P^{D\\s}(S\\s)`` that of S without s when sampling from the domain without s
(probabilities renormalised), the leave-one-out ratios are::

    R(S, s)        = P^{D\\s}(S\\s) / P(S)
    R^{D\\s}(S, s') = P^{D\\{s,s'}}(S\\{s,s'}) / P^{D\\s}(S\\s)   (s' ≠ s),  R^{D\\s}(S, s) = 1

and the estimator with its built-in baseline (the paper's eq. for e^USBL) is::

    value:    Σ_{s∈S} p(s) R(S, s) f(s)                                   (unbiased for E f)
    gradient: Σ_{s∈S} ∇p(s) R(S, s) [f(s) - b(S, s)],
              b(S, s) = Σ_{s'∈S} p(s') R^{D\\s}(S, s') f(s')

b(S, s) is p(s) f(s) plus the unordered set estimate of Σ_{x≠s} p(x) f(x) from the other k-1
elements, whose conditional expectation given s is E f whatever s is, so the baseline adds no bias.
With k = 1 there are no other elements: the estimator is plain REINFORCE ``f(s) ∇log p(s)``
(no baseline). With k = n (the whole support) it is the exact gradient.

Set probabilities by numerical integration (the paper's numerically stable route, section 4 and
appendix): with ``c_i = p_i / p(D\\S)``, ``P^{D\\B}(S\\B) = ∫_0^∞ e^{-t} Π_{i∈S\\B}(1 - e^{-c_i t}) dt``
for every B ⊆ S (renormalising the domain leaves the ratios c_i unchanged). The integral is
computed in log space in ``x = log t`` by the trapezoidal rule on ``num_points`` points per set
(the integrand is analytic in a strip of half-width π/2 and decays doubly exponentially, so the
rule converges like ``exp(-π² / step)``; the tests check it against enumeration over orderings).
``p(D\\S)`` is summed over the categories outside S (no ``1 - Σ`` cancellation). Vectorised over
the batch and the set; the second-order ratios loop over the k set elements (not over samples).

Supported: ``Categorical`` and ``OneHotCategorical`` (each batch element its own problem). In
``Independent`` the set is drawn from the joint support of each batch element (enumerated, so at
most ``max_support`` points; stochastic beam search would lift that limit and is not
implemented). k must not exceed the support size.

Sum-and-sample (Liu, Regier, Tripuraneni, Jordan & McAuliffe 2019, "Rao-Blackwellized stochastic
gradients for discrete distributions", ICML; reference code Runjing-Liu120/RaoBlackwellizedSGD,
``get_raoblackwell_ps_loss``): C, the ``k`` most probable points of the support (a deterministic
set), is summed exactly and the rest is sampled, ``u_1..u_K ~ q(· | z ∉ C)``::

    value:    Σ_{z∈C} q(z) f(z) + q(C^c) · (1/K) Σ_j f(u_j)
    gradient: Σ_{z∈C} (f(z) - β) ∇q(z) + q(C^c) · (1/K) Σ_j (f(u_j) - b_j) ∇log q(u_j)

``baseline=none`` (the paper's Rao-Blackwellised REINFORCE): β = b_j = 0. ``baseline=loo``:
``b_j = mean_{i≠j} f(u_i)`` and ``β = mean_j f(u_j)``. Unbiased: given C, the second term is
``Σ_{z∉C} f ∇q - E_{q(·|C^c)}[f] ∇q(C^c)`` and ``Σ_{z∈C} ∇q = -∇q(C^c)``, so the β term restores
what the baseline took away; the leave-one-out mean makes it exact algebra, not only in
expectation (this LOO form is ours; the paper's REINFORCE+ spends an extra draw on its baseline).
The paper treats z as one categorical variable over its whole support, a vector of Bernoullis by
enumerating the 2^D joint draws; so does this estimator (Bernoulli, Categorical,
OneHotCategorical, alone or in ``Independent``, at most ``max_support`` joint points per batch
element). Cost: ``k + K`` f evaluations per batch element, in one f call (``n``, the support,
when ``k >= n``: then it is exact enumeration). Besides f: ``O(n)`` per batch element, the
support's log-probabilities (:func:`support_log_prob`, no autograd graph over the support; the
gradient flows through the ``k + K`` chosen points only) and the K draws from
``q(· | z ∉ C)`` by inverse CDF (:func:`_sample_outside`).
"""
from __future__ import annotations

import math

import torch
from torch import distributions as D

from . import register
from .base import DISCRETE, Estimator, _unwrap_exact, family_name, log_prob
from .checks import choice, integer
from .evaluations import CountsEvaluations
from .exact import enumerate_support, support_log10, support_size
from .relaxed import gumbel_noise

#: float64 elements per block of the inverse-CDF sampler (a block's CDF stays in cache)
_SAMPLER_BLOCK = 1 << 18

LOG_C_MAX = 30.0  # c_i = p_i / p(D\S) is clamped at e^30 (a set holding all but ~1e-13 of the mass)


def log1mexp_neg(y: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(-y))`` for ``y > 0``, stable at both ends."""
    return torch.where(y < math.log(2), torch.log(-torch.expm1(-y)), torch.log1p(-torch.exp(-y)))


def _grid(log_c: torch.Tensor, k: int, num_points: int):
    """Integration points ``x`` [..., N] (per set) and the log of their spacing [..., 1]."""
    lo = torch.clamp(-log_c.max(-1, keepdim=True).values, max=0.0) - 30.0
    hi = torch.full_like(lo, math.log(k + 2) + 4.5)
    step = (hi - lo) / (num_points - 1)
    j = torch.arange(num_points, dtype=log_c.dtype, device=log_c.device)
    return lo + step * j, step.log()


def log_set_probabilities(log_p_set: torch.Tensor, log_p_rest: torch.Tensor,
                          num_points: int = 192, second_order: bool = True):
    """Log-probabilities of an unordered set S and of its leave-one-out and leave-two-out subsets.

    ``log_p_set`` [..., k]: log p of the elements of S; ``log_p_rest`` [...]: log p(D\\S).
    Returns ``log P(S)`` [...], ``log P^{D\\s}(S\\s)`` [..., k] and, if ``second_order``,
    ``log P^{D\\{s,s'}}(S\\{s,s'})`` [..., k, k] (its diagonal holds the first-order values)."""
    k = log_p_set.shape[-1]
    log_c = (log_p_set - log_p_rest.unsqueeze(-1)).clamp(max=LOG_C_MAX)
    x, log_step = _grid(log_c, k, num_points)                             # [..., N]
    t = x.exp()
    factors = log1mexp_neg(log_c.exp().unsqueeze(-2) * t.unsqueeze(-1))  # [..., N, k]
    base = x - t                                                          # [..., N]
    full = base + factors.sum(-1)
    log_pS = torch.logsumexp(full, -1) + log_step.squeeze(-1)
    without = full.unsqueeze(-1) - factors                                # [..., N, k]
    log_p1 = torch.logsumexp(without, -2) + log_step
    if not second_order:
        return log_pS, log_p1, None
    rows = []
    for s in range(k):
        w = without[..., s:s + 1] - factors                               # [..., N, k]
        w[..., s] = without[..., s]  # leave s out once, not twice
        rows.append(torch.logsumexp(w, -2) + log_step)
    return log_pS, log_p1, torch.stack(rows, -2)


def support_log_prob(dist: D.Distribution, points: torch.Tensor) -> torch.Tensor:
    """``log p`` of every point of the support ``points [n, *B, *event]``
    (:func:`estimators.exact.enumerate_support`), as ``[n, *B]``, without gradient: for picking
    points, not for differentiating through them.

    For torch's own ``Bernoulli``, ``Categorical`` and ``OneHotCategorical`` (alone or in
    ``Independent``) the joint log-probability is a sum over the D independent coordinates of
    entries of a per-coordinate table ``[D, values, *B]``: point c's digit j (its value at
    coordinate j, ``(c // values^(D-1-j)) % values``, the support's order) is the middle index
    of c in a ``[values^j, values, values^(D-1-j)]`` view, so the sum is D broadcast adds of
    ``[n, *B]`` tensors, instead of ``log_prob`` on the materialised ``[n, *B, *event]``
    enumeration with an autograd graph over all of it. The table's entries are those
    :func:`estimators.base.log_prob` computes (``z·l - softplus(l)``; the normalised logits),
    added coordinate by coordinate (the same numbers as ``log_prob`` for the categoricals; for
    Bernoulli vectors the sum's rounding may differ in the last place). Any other distribution:
    ``dist.log_prob(points)``."""
    base, ndims = _unwrap_exact(dist)
    with torch.no_grad():
        if type(base) is D.Bernoulli:
            a = base.logits
            soft = torch.nn.functional.softplus(a)
            table = torch.stack([-soft, a - soft], -1)  # log p of 0 and of 1
        elif type(base) in (D.Categorical, D.OneHotCategorical):
            table = base.logits  # normalised
        else:
            return dist.log_prob(points).detach()
        batch = table.shape[:table.dim() - 1 - ndims]
        b = math.prod(batch)
        v = table.shape[-1]
        table = table.reshape(b, -1, v).permute(1, 2, 0)  # [D, values, B]
        d = table.shape[0]
        out = table[0].reshape(v, 1, b).expand(v, v ** (d - 1), b).reshape(v ** d, b)
        for j in range(1, d):  # D, the event's size: a shape, not data
            out.view(v ** j, v, v ** (d - 1 - j), b).add_(table[j].reshape(1, v, 1, b))
        return out.reshape((v ** d,) + batch)


@register
class UnorderedSet(CountsEvaluations, Estimator):
    """Unordered set estimator: k categories without replacement (Gumbel-top-k), built-in baseline."""

    name = "unordered_set"
    display_name = "unordered set"
    unbiased = True
    families = (D.Categorical, D.OneHotCategorical)
    reference = "Kool et al. 2020"
    evaluations_per_sample = 1  # one f evaluation per element of the set

    def __init__(self, max_support: int = 4096, num_points: int = 192):
        super().__init__()
        self.max_support = integer("unordered_set", "max_support", max_support, minimum=1)
        self.num_points = integer("unordered_set", "num_points", num_points, minimum=16)

    def _too_large(self, dist) -> bool:
        return support_log10(dist) > math.log10(self.max_support) + 1e-9

    def supports(self, dist) -> bool:
        """The family must be categorical and one batch element's support at most
        ``max_support`` points (this matters only in ``Independent``)."""
        return super().supports(dist) and not self._too_large(dist)

    def check(self, dist, num_samples, min_samples=1):
        if Estimator.supports(self, dist) and self._too_large(dist):
            raise ValueError(f"unordered_set: the joint support of {family_name(dist)} with "
                             f"batch_shape {list(dist.batch_shape)} is larger than max_support="
                             f"{self.max_support} points; it is enumerated to sample a set from "
                             f"it: raise max_support or use another estimator")
        super().check(dist, num_samples, min_samples)
        n = self.max_samples(dist)
        if num_samples > n:
            raise ValueError(f"unordered_set: num_samples={num_samples} is the size k of a set "
                             f"drawn without replacement, but {family_name(dist)} has only {n} "
                             f"points in its support; expected num_samples <= {n}")

    def max_samples(self, dist) -> int:
        return support_size(dist)

    def estimate(self, dist, f, num_samples):
        k = num_samples
        points = enumerate_support(dist)                              # [n, *B, *event]
        with torch.no_grad():
            log_p = support_log_prob(dist, points).movedim(0, -1)     # [*B, n], normalised
            idx = (log_p + gumbel_noise(log_p.shape, log_p)).topk(k, dim=-1).indices  # [*B, k]
            outside = torch.ones_like(log_p, dtype=torch.bool).scatter_(-1, idx, False)
            log_rest = torch.logsumexp(log_p.masked_fill(~outside, -math.inf), -1)
        z = _gather_points(points, idx.movedim(-1, 0))                # [k, *B, *event]
        # log p with gradient only at the k points of the set, not over the whole support
        log_p_set = dist.log_prob(z).movedim(0, -1)                   # [*B, k]
        cost = self.costs(f, z, dist, k).movedim(0, -1)               # [*B, k]
        with torch.no_grad():
            # the quadrature needs float32 at least (e^30 overflows float16); back afterwards
            work = torch.promote_types(log_p.dtype, torch.float32)
            lp, log_rest = log_p_set.detach().to(work), log_rest.to(work)
            log_pS, log_p1, log_p2 = log_set_probabilities(lp, log_rest, self.num_points, k > 1)
            log_r1 = log_p1 - log_pS.unsqueeze(-1)                    # [*B, k]
            weight = (lp + log_r1).exp()
            c = cost.detach().to(work)
            if k > 1:
                log_r2 = log_p2 - log_p1.unsqueeze(-1)                # [*B, k, k], diagonal 0
                baseline = ((lp.unsqueeze(-2) + log_r2).exp() * c.unsqueeze(-2)).sum(-1)
            else:
                baseline = torch.zeros_like(c)
            advantage = (log_r1.exp() * (c - baseline)).to(cost.dtype)
            weight = weight.to(cost.dtype)
        p_set = log_p_set.exp()
        surrogate = weight * cost + (p_set - p_set.detach()) * advantage
        return surrogate.sum()


def _gather_points(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``points [n, *B, *event]`` at ``index [m, *B]``: ``[m, *B, *event]``."""
    event = points.shape[index.dim():]
    return points.gather(0, index.reshape(index.shape + (1,) * len(event))
                         .expand(index.shape + event))


def _sample_outside(rest: torch.Tensor, log_rest: torch.Tensor, num_samples: int) -> torch.Tensor:
    """``num_samples`` independent draws ``[K, *B]`` of the support index from ``q(· | z ∉ C)``
    (``rest [n, *B]``: log q, -inf on C; ``log_rest [*B]``: log q(C^c)) by inverse CDF in
    float64: one uniform per draw against the cumulative sums, ``O(n + K log n)`` per batch
    element where Gumbel-max draws ``K · n`` exponentials. A point of C (zero mass) is never
    returned: the target is below the total, and the first index whose cumulative sum exceeds
    it has positive mass. Blocks of batch elements keep the CDF small (a fixed number of
    blocks: no host read)."""
    n = rest.shape[0]
    flat, lr = rest.reshape(n, -1), log_rest.reshape(1, -1)
    b = flat.shape[1]
    u = torch.rand((b, num_samples), dtype=torch.float64, device=rest.device)
    out = torch.empty((b, num_samples), dtype=torch.long, device=rest.device)
    step = max(1, _SAMPLER_BLOCK // n)
    for lo in range(0, b, step):
        cols = slice(lo, lo + step)
        part = flat[:, cols].t()
        block = torch.empty(part.shape, dtype=torch.float64, device=rest.device).copy_(part)
        cdf = block.sub_(lr[0, cols, None]).exp_().nan_to_num_(0.0).cumsum_(-1)  # [block, n]
        total = cdf[:, -1:]
        target = torch.minimum(u[cols] * total, torch.nextafter(total, torch.zeros_like(total)))
        out[cols] = torch.searchsorted(cdf, target, right=True).clamp_max_(n - 1)
    return out.t().reshape((num_samples,) + rest.shape[1:])


SUM_AND_SAMPLE_BASELINES = ("none", "loo")


@register
class SumAndSample(CountsEvaluations, Estimator):
    """Sum-and-sample: the k most probable points summed exactly, the rest sampled (REINFORCE)."""

    name = "sum_and_sample"
    display_name = "sum-and-sample"
    unbiased = True
    families = DISCRETE
    reference = "Liu et al. 2019"
    evaluations_per_sample = None  # k + K: see evaluations()
    variants = ("sum_and_sample", "sum_and_sample:baseline=loo")

    def __init__(self, k: int = 3, baseline: str = "none", max_support: int = 4096):
        super().__init__()
        self.k = integer("sum_and_sample", "k", k, minimum=1)
        self.baseline = choice("sum_and_sample", "baseline", baseline, SUM_AND_SAMPLE_BASELINES)
        self.max_support = integer("sum_and_sample", "max_support", max_support, minimum=1)

    def _too_large(self, dist) -> bool:
        return support_log10(dist) > math.log10(self.max_support) + 1e-9

    def supports(self, dist) -> bool:
        """The family must be discrete and one batch element's joint support at most
        ``max_support`` points (it is enumerated to find the k most probable)."""
        return super().supports(dist) and not self._too_large(dist)

    def check(self, dist, num_samples, min_samples=1):
        if Estimator.supports(self, dist) and self._too_large(dist):
            raise ValueError(f"sum_and_sample: the joint support of {family_name(dist)} with "
                             f"batch_shape {list(dist.batch_shape)} is larger than max_support="
                             f"{self.max_support} points; it is enumerated to find the k most "
                             f"probable: raise max_support or use another estimator")
        super().check(dist, num_samples, min_samples)

    def min_samples(self) -> int:
        return 2 if self.baseline == "loo" else 1

    def evaluations(self, dist, num_samples: int) -> int:
        """``k + K`` per batch element (``n``, the support, when ``k >= n``)."""
        n = support_size(dist)
        return n if self.k >= n else self.k + int(num_samples)

    def estimate(self, dist, f, num_samples):
        points = enumerate_support(dist)                              # [n, *B, *event]
        with torch.no_grad():
            lp = support_log_prob(dist, points)                       # [n, *B], normalised
            n = lp.shape[0]
            k = min(self.k, n)
            top = lp.topk(k, dim=0).indices                           # [k, *B]
            index = top
            if k < n:
                rest = lp.scatter(0, top, -math.inf)                  # log q outside C
                log_rest = torch.logsumexp(rest, 0)                   # log q(C^c) [*B]
                index = torch.cat([top, _sample_outside(rest, log_rest, num_samples)], 0)
        m = index.shape[0]
        z = _gather_points(points, index)
        cost = self.costs(f, z, dist, m)                              # [k + K, *B]
        picked = log_prob(dist, z)                                    # [k + K, *B], with grad
        q_top = picked[:k].exp()
        detached = cost.detach()
        value = (q_top.detach() * cost[:k]).sum(0)
        if k == n:  # all of the support: exact
            return (value + ((q_top - q_top.detach()) * detached).sum(0)).sum()
        w = log_rest.exp()                                            # q(C^c), no gradient
        c = detached[k:]
        score = picked[k:] - picked[k:].detach()
        if self.baseline == "loo":
            mean = c.mean(0)
            advantage = (c - mean) * (num_samples / (num_samples - 1))
            summed = detached[:k] - mean
        else:
            advantage, summed = c, detached[:k]
        grad = ((q_top - q_top.detach()) * summed).sum(0) + w * (advantage * score).mean(0)
        return (value + w * cost[k:].mean(0) + grad).sum()
