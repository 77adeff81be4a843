"""MuProp (Gu, Levine, Sutskever & Mnih 2016, "MuProp: Unbiased backpropagation for stochastic
neural networks"): the score function with a first-order Taylor control variate of f around the
mean-field input μ = E[b], for Bernoulli and OneHotCategorical (alone or in Independent)::

    ĝ = (f(b) - f(μ) - ∇f(μ)·(b - μ)) ∇_θ log p(b) + ∇_θ [∇f(μ)·μ_θ]

(μ_θ the distribution's mean, σ(a) for Bernoulli logits a and softmax for categoricals; ∇f(μ) held
constant). Unbiased: ``E[(f(μ) + ∇f(μ)·(b - μ)) ∇log p(b)] = ∇f(μ)·∂μ/∂θ``, which the second term
adds back analytically. f must accept relaxed (continuous) samples and be differentiable at μ.

**Surrogate.** ``mean_k f(b_k) + mean_k sg(f(b_k) - cv_k)(log p(b_k) - sg(log p(b_k)))
+ sg(∇f(μ))·(μ_θ - sg(μ_θ))``: its value is the Monte Carlo estimate ``mean_k f(b_k)`` of E f, its
gradient w.r.t. the distribution's parameters is ĝ, and f's own parameters get the pathwise
gradient of that mean.

**Cost.** ``evaluations_per_sample = 1`` (f at each of the K samples) and
``evaluations_per_call = 1`` (f at μ, once per estimate, plus one backward pass through f there):
``evaluations(dist, K) = K + 1`` (per batch element).
"""
from __future__ import annotations

import torch
from torch import distributions as D

from . import register
from .base import Estimator, unwrap

__all__ = ["MuProp"]


@register
class MuProp(Estimator):
    """score function with MuProp's first-order Taylor control variate around the mean-field
    input mu = E[b]"""

    name = "muprop"
    display_name = "MuProp"
    unbiased = True
    families = (D.Bernoulli, D.OneHotCategorical)
    reference = "Gu et al. 2016"
    #: f evaluations per sample (f(b_k)) and per estimate (f(μ), one backward through f there)
    evaluations_per_sample = 1
    evaluations_per_call = 1

    def evaluations(self, dist, num_samples: int) -> int:
        """f evaluations of one estimate with ``num_samples`` = K: K + 1."""
        return int(num_samples) + 1

    def estimate(self, dist, f, num_samples):
        base, _ = unwrap(dist)
        # μ_θ with its graph to the parameters, recomputed per call: ``base.probs`` is cached on
        # the distribution and its graph is freed by the first backward
        logits = base.logits
        mean = torch.sigmoid(logits) if isinstance(base, D.Bernoulli) else torch.softmax(logits, -1)
        extra = mean.dim() - len(dist.batch_shape)  # event dims
        event_dims = tuple(range(-extra, 0))
        with torch.enable_grad():
            mu = mean.detach().unsqueeze(0).requires_grad_()
            f_mu = self.costs(f, mu, dist, 1)
            if not f_mu.requires_grad:
                raise ValueError(f"{self.describe()}: f is not differentiable at the mean-field "
                                 "input mu = E[b]; MuProp needs f(mu) and its gradient")
            grad_mu, = torch.autograd.grad(f_mu.sum(), mu, allow_unused=True)
        if grad_mu is None:
            grad_mu = torch.zeros_like(mu)
        f_mu, grad_mu = f_mu.detach(), grad_mu.detach()
        z = dist.sample((num_samples,))
        cost = self.costs(f, z, dist, num_samples)
        taylor = f_mu + (grad_mu * (z - mu.detach())).sum(event_dims) if extra else \
            f_mu + grad_mu * (z - mu.detach())
        logp = dist.log_prob(z)
        surrogate = cost + (cost.detach() - taylor) * (logp - logp.detach())
        return surrogate.mean(0).sum() + (grad_mu[0] * (mean - mean.detach())).sum()
