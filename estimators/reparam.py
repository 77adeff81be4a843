"""Pathwise (reparameterisation) estimator.

Write ``z = g_θ(ε)`` with ε independent of θ (for a Normal, ``z = μ + σ·ε``, ε ~ N(0, 1)); then
``∇_θ E[f(z)] = E_ε[∇_θ f(g_θ(ε))]`` (Kingma & Welling 2014; Rezende et al. 2014; review:
Mohamed et al. 2020, "Monte Carlo gradient estimation in machine learning"). Unbiased; needs f
differentiable in z and a distribution with ``rsample``.
"""
from __future__ import annotations

from . import register
from .base import CONTINUOUS, Estimator


@register
class Reparam(Estimator):
    """pathwise gradient through rsample: E_eps[grad f(g(eps))]"""

    name = "reparam"
    display_name = "reparameterisation"
    unbiased = True
    families = CONTINUOUS
    reference = "Kingma & Welling 2014; Rezende et al. 2014; Mohamed et al. 2020"
    needs_rsample = True

    def estimate(self, dist, f, num_samples):
        z = dist.rsample((num_samples,))
        return self.costs(f, z, dist, num_samples).mean(0).sum()
