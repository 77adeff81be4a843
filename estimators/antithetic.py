"""Antithetic estimators for Bernoulli logits: ARM (Yin & Zhou 2019, "ARM: Augment-REINFORCE-merge
gradient for stochastic binary networks") and DisARM (Dong, Mnih & Tucker 2020, "DisARM: An
antithetic gradient estimator for binary latent variables").

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
"""
from __future__ import annotations

import torch
from torch import distributions as D

from . import register
from .base import Estimator, unwrap

__all__ = ["ARM", "DisARM"]


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
    """DisARM: ½ (f(b) - f(b̃)) (-1)^{b̃_i} 1[b_i ≠ b̃_i] σ(|a_i|) per antithetic pair."""

    name = "disarm"
    display_name = "DisARM"
    reference = "Dong, Mnih & Tucker 2020"

    def _pair_samples(self, lu, a):
        # b = 1[u < σ(a)] = 1[logit(u) < a]; b̃ = 1[1 - u < σ(a)] = 1[-logit(u) < a]
        return (lu < a).to(a.dtype), (-lu < a).to(a.dtype)

    def _pair_gradient(self, u, a, b, b2, diff):
        sign = 1.0 - 2.0 * b2  # (-1)^{b̃_i}
        return 0.5 * diff * sign * (b != b2).to(a.dtype) * torch.sigmoid(a.abs())
