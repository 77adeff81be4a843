"""Measure-valued gradients for the Normal (Mohamed, Rosca, Figurnov & Mnih 2020, "Monte Carlo
gradient estimation in machine learning", section 6; Pflug 1989).

The derivative of a density w.r.t. a parameter is written as a weighted difference of two
densities (a weak derivative), ``∂_θ p(x) = c_θ (p⁺(x) - p⁻(x))``, so that
``∂_θ E_p[f] = c_θ (E_{p⁺}[f] - E_{p⁻}[f])``, coordinate by coordinate. For ``N(μ, σ²)``:

* location μ: ``c = 1 / (σ √(2π))``, ``p^±`` = μ ± σ·W with W ~ Rayleigh(1) (a Weibull with
  scale √2 and concentration 2; together the double-sided Weibull/Rayleigh form of the paper's
  Table 1)::

      ĝ_μ = (f(μ + σW) - f(μ - σW)) / (σ √(2π))

* scale σ: ``c = 1 / σ``, ``p⁺`` = μ + σ·M with M ~ double-sided Maxwell (density ε² φ(ε)),
  ``p⁻`` = the Normal itself::

      ĝ_σ = (f(μ + σM) - f(μ + σ U M)) / σ,   U ~ U(0, 1)

Coupling (the paper's recommendation, section 6 and its "variance reduction through coupling";
as in deepmind/mc_gradients): the positive and negative parts share their noise: the same W for
both sides of ĝ_μ, and for ĝ_σ the negative sample ``U·M``, which is exactly N(0, 1) (for y > 0,
``∫_y^∞ (1/m) m² φ(m) dm = φ(y)``). ``coupling=false`` draws them independently.

Coordinates: for ``Independent(Normal)`` with D coordinates per batch element, the other
coordinates keep one shared Normal sample x and coordinate d is replaced by the positive or
negative sample: f is called once on ``[4·K·D, *batch, *event]``, i.e. 4·D evaluations per
sample (2 for the location and 2 for the scale of each coordinate). Unbiased. The loss's value is
the mean of f over the scale's negative samples (exact Normal samples) and f's own parameters get
their gradient through it.
"""
from __future__ import annotations

import math

import torch
from torch import distributions as D

from . import register
from .base import Estimator, unwrap
from .evaluations import CountsEvaluations


def rayleigh(shape, like: torch.Tensor) -> torch.Tensor:
    """Rayleigh(1) samples ``sqrt(-2 log u)``, the one-sided part of the location's weak derivative."""
    u = torch.rand(shape, dtype=like.dtype, device=like.device).clamp_(torch.finfo(like.dtype).tiny)
    return torch.sqrt(-2 * torch.log(u))


def double_sided_maxwell(shape, like: torch.Tensor) -> torch.Tensor:
    """Samples of density ``ε² φ(ε)``: a random sign times the norm of a 3-d standard normal."""
    g = torch.randn(tuple(shape) + (3,), dtype=like.dtype, device=like.device)
    sign = torch.randint(0, 2, tuple(shape), device=like.device).to(like.dtype) * 2 - 1
    return sign * g.norm(dim=-1)


@register
class MeasureValued(CountsEvaluations, Estimator):
    """Measure-valued derivative for the Normal's location and scale, with coupled noise."""

    name = "measure_valued"
    display_name = "measure-valued"
    unbiased = True
    families = (D.Normal,)
    reference = "Mohamed et al. 2020, section 6"
    evaluations_per_sample = None  # 4·D, problem-dependent: see evaluations()

    def __init__(self, coupling: bool = True):
        super().__init__()
        self.coupling = bool(coupling)

    def evaluations(self, dist, num_samples):
        """``4 · num_samples · D`` f evaluations per batch element (D coordinates in its event)."""
        return 4 * int(num_samples) * math.prod(dist.event_shape)

    def estimate(self, dist, f, num_samples):
        base, _ = unwrap(dist)
        k = num_samples
        outer, event = dist.batch_shape, dist.event_shape
        d = math.prod(event)
        mu, sigma = base.loc, base.scale
        shape = (k, *outer, d)
        mu_d = mu.detach().expand(dist.batch_shape + event).reshape(*outer, d)
        sd_d = sigma.detach().expand(dist.batch_shape + event).reshape(*outer, d)
        with torch.no_grad():
            x = dist.sample((k,)).reshape(shape)
            w = rayleigh(shape, mu_d)
            w_neg = w if self.coupling else rayleigh(shape, mu_d)
            m = double_sided_maxwell(shape, mu_d)
            eps = (torch.rand(shape, dtype=mu_d.dtype, device=mu_d.device) * m if self.coupling
                   else torch.randn(shape, dtype=mu_d.dtype, device=mu_d.device))
            diag = torch.stack([mu_d + sd_d * w, mu_d - sd_d * w_neg,
                                mu_d + sd_d * m, mu_d + sd_d * eps])    # [4, K, *B, D]
            # z[part, k, which, *B, pos] = diag[part, k, *B, which] if pos == which else x
            n_b = len(outer)
            eye = torch.eye(d, dtype=torch.bool, device=x.device)
            mask = eye.reshape((1, 1, d) + (1,) * n_b + (d,))
            x_b = x.reshape((1, k, 1, *outer, d))
            diag_b = diag.movedim(-1, 2).unsqueeze(-1)                   # [4, K, D, *B, 1]
            z = torch.where(mask, diag_b, x_b).reshape((4 * k * d, *outer, *event))
        cost = self.costs(f, z, dist, 4 * k * d).reshape((4, k, d, *outer)).movedim(2, -1)
        c = cost.detach()                                                # [4, K, *B, D]
        g_mu = (c[0] - c[1]) / (sd_d * math.sqrt(2 * math.pi))           # [K, *B, D]
        g_sigma = (c[2] - c[3]) / sd_d
        # back to the parameters' shapes (they may broadcast into the batch and event)
        full = dist.batch_shape + event
        mu_full = mu.expand(full).reshape(*outer, d)
        sd_full = sigma.expand(full).reshape(*outer, d)
        grad = ((mu_full - mu_full.detach()) * g_mu + (sd_full - sd_full.detach()) * g_sigma)
        value = cost[3].mean(-1)                                         # [K, *B]
        return (value + grad.sum(-1)).mean(0).sum()
