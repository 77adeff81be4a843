"""Straight-through estimators with a better backward pass: Gumbel-Rao and ReinMax.

Both keep straight-through's forward pass (f sees the exact discrete sample D, one f evaluation
per sample) and change only the surrogate gradient; both are biased for the discrete objective.

* ``gumbel_rao`` (Paulus, Maddison & Krause 2021, "Rao-Blackwellizing the straight-through
  Gumbel-softmax gradient estimator"): ST Gumbel-softmax's backward pass is
  ``∂ softmax((θ + G)/τ)/∂θ`` at the Gumbel noise G that produced D. Rao-Blackwellising over G given
  D replaces it by ``E[∂ softmax((θ + G)/τ)/∂θ | argmax(θ + G) = D]``, estimated with M conditional
  draws ``G_m ~ Gumbel | D``::

      z = D + s̄ - sg(s̄),   s̄ = (1/M) Σ_m softmax((θ + sg(G_m))/τ)

  Same expectation as ``straight_through_gumbel`` at the same τ (the same bias), variance no
  larger; M = 1 is ST Gumbel-softmax itself. Conditional draws with θ normalised (log p):
  ``θ_D + G_D = -log E_D`` and ``θ_i + G_i = -log(E_i / p_i + E_D)`` for i ≠ D, with E ~ Exp(1)
  (the truncated-Gumbel construction of the paper's appendix). Bernoulli (binary Concrete):
  logistic noise L given b, ``u = v(1-p)`` if b = 0 else ``(1-p) + v p``, ``L = logit(u)``.
* ``reinmax`` (Liu et al. 2023, "Bridging discrete and backpropagation: straight-through and
  beyond"): straight-through's gradient is a first-order (forward Euler) approximation; ReinMax
  is second-order accurate (Heun's method). With ``π0 = softmax(θ)``, D ~ π0 and
  ``π1 = (D + softmax(θ/τ))/2``::

      z = D + 2·J(π1)(θ - sg θ) - ½(π0 - sg π0),   J(π) = diag(π) - π πᵀ (softmax's Jacobian)

  i.e. the gradient ``2 J(π1)ᵀ ∇_D f - ½ J(π0)ᵀ ∇_D f`` of the authors' Algorithm 2 (their
  ``π1 = softmax(sg(log π1 - θ) + θ)`` has this Jacobian). Bernoulli is the two-category case with
  logits (0, a). Checked against the authors' package ``reinmax`` 0.1.0 in the tests.
"""
from __future__ import annotations

import torch
from torch import distributions as D

from . import register
from .base import Estimator, unwrap
from .checks import integer
from .evaluations import CountsEvaluations
from .relaxed import RELAXABLE, _check_temperature, _uniform


def conditional_gumbel_logits(log_p: torch.Tensor, onehot: torch.Tensor, m: int) -> torch.Tensor:
    """M draws of the perturbed logits ``log_p + G`` given ``argmax(log_p + G) = onehot``.

    ``log_p`` [..., C] normalised log-probabilities, ``onehot`` [..., C]; returns [M, ..., C],
    detached (the noise does not depend on θ in the estimator)."""
    with torch.no_grad():
        shape = (m,) + onehot.shape
        e = -torch.log(_uniform(shape, log_p))  # Exp(1)
        e_top = (e * onehot).sum(-1, keepdim=True)
        top = -torch.log(e_top)
        others = -torch.log(e * torch.exp(-log_p) + e_top)
        return torch.where(onehot > 0, top, others)


def conditional_logistic(logits: torch.Tensor, b: torch.Tensor, m: int) -> torch.Tensor:
    """M draws of logistic noise L given ``1[logits + L > 0] = b``, [M, *b.shape], detached."""
    with torch.no_grad():
        v = _uniform((m,) + b.shape, logits)
        p = torch.sigmoid(logits)
        u = torch.where(b > 0, (1 - p) + v * p, v * (1 - p))
        u = u.clamp(torch.finfo(u.dtype).tiny, 1 - torch.finfo(u.dtype).eps)
        return torch.log(u) - torch.log1p(-u)


@register
class GumbelRao(CountsEvaluations, Estimator):
    """Straight-through Gumbel-softmax Rao-Blackwellised over M conditional Gumbel draws."""

    name = "gumbel_rao"
    display_name = "Gumbel-Rao"
    unbiased = False
    families = RELAXABLE
    reference = "Paulus et al. 2021"
    evaluations_per_sample = 1  # the M conditional draws cost no f evaluation

    def __init__(self, temperature: float = 1.0, m: int = 10):
        super().__init__()
        self.temperature = _check_temperature("gumbel_rao", temperature)
        self.m = integer("gumbel_rao", "m", m, minimum=1)

    def estimate(self, dist, f, num_samples):
        base, _ = unwrap(dist)
        hard = dist.sample((num_samples,)).to(base.logits.dtype)
        if isinstance(base, D.Bernoulli):
            noise = conditional_logistic(base.logits.detach(), hard, self.m)
            soft = torch.sigmoid((base.logits + noise) / self.temperature).mean(0)
        else:
            log_p = base.logits  # torch normalises them: log-probabilities
            perturbed = conditional_gumbel_logits(log_p.detach(), hard, self.m)
            noise = perturbed - log_p.detach()
            soft = torch.softmax((log_p + noise) / self.temperature, dim=-1).mean(0)
        z = hard + (soft - soft.detach())
        return self.costs(f, z, dist, num_samples).mean(0).sum()


def softmax_jacobian_surrogate(theta: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
    """Zero in value; its gradient w.r.t. ``theta`` is ``J(pi) = diag(pi) - pi piᵀ`` (softmax's
    Jacobian at ``pi``, symmetric) applied to the incoming gradient. ``pi`` is treated as fixed."""
    pi = pi.detach()
    delta = theta - theta.detach()
    return pi * (delta - (pi * delta).sum(-1, keepdim=True))


@register
class ReinMax(CountsEvaluations, Estimator):
    """ReinMax: straight-through with Heun's second-order correction of the gradient."""

    name = "reinmax"
    display_name = "ReinMax"
    unbiased = False
    families = RELAXABLE
    reference = "Liu et al. 2023"
    evaluations_per_sample = 1

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = _check_temperature("reinmax", temperature)

    def estimate(self, dist, f, num_samples):
        base, _ = unwrap(dist)
        if isinstance(base, D.Bernoulli):  # two categories with logits (0, a)
            a = base.logits
            theta = torch.stack([torch.zeros_like(a), a], dim=-1)
        else:
            theta = base.logits
        hard = sample_onehot(theta, num_samples)
        pi0 = torch.softmax(theta, dim=-1)
        pi1 = (hard + torch.softmax(theta.detach() / self.temperature, dim=-1)) / 2
        z = (hard + 2 * softmax_jacobian_surrogate(theta, pi1)
             - 0.5 * (pi0 - pi0.detach()))
        if isinstance(base, D.Bernoulli):
            z = z[..., 1]
        return self.costs(f, z, dist, num_samples).mean(0).sum()


def sample_onehot(theta: torch.Tensor, num_samples: int) -> torch.Tensor:
    """One-hot samples [K, *theta.shape] of softmax(theta), drawn as the authors' ``reinmax`` draws
    them (``torch.multinomial`` of the flattened probabilities, one draw per row), so that the
    same seed gives the same sample."""
    c = theta.shape[-1]
    with torch.no_grad():
        probs = theta.expand((num_samples,) + theta.shape).reshape(-1, c).softmax(dim=-1)
        idx = torch.multinomial(probs, num_samples=1, replacement=True)
        hard = torch.zeros_like(probs).scatter_(-1, idx, 1.0)
    return hard.reshape((num_samples,) + theta.shape)
