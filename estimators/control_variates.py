"""Score function with a relaxation-based control variate: REBAR (Tucker et al. 2017, "REBAR:
Low-variance, unbiased gradient estimates for discrete latent variable models").

With z the Gumbel (logistic) perturbation of the logits, b = H(z) the discrete sample, z̃ ~ p(z | b)
a second, conditional perturbation and c(·) = f(σ_λ(·)) the relaxed cost at temperature λ::

    ĝ = [f(b) - η c(z̃)] ∇_θ log p(b) + η ∇_θ c(z) - η ∇_θ c(z̃)

is unbiased for ∇_θ E[f(b)] for any η and λ (the last two terms have equal expectations; the first
corrects the score-function term). f must accept relaxed (continuous) samples. Here η and λ are
fixed hyperparameters (REBAR tunes them to minimise variance; RELAX learns c). f's own parameters
get f's pathwise gradient plus the control variate's zero-mean difference.

Conditional samples (Tucker et al. 2017, appendix): Bernoulli with u = v(1-p) if b = 0, else
(1-p) + v p, z̃ = logit(p) + logit(u); categorical with z̃_b = -log(-log v_b) and
z̃_i = -log(-log v_i / p_i - log v_b) for i ≠ b.
"""
from __future__ import annotations

import torch
from torch import distributions as D

from . import register
from .base import Estimator, unwrap
from .relaxed import RELAXABLE, _check_temperature, _uniform, gumbel_noise, logistic_noise


def _perturbations(base: D.Distribution, num_samples: int):
    """(z, b, z̃): an unconditional perturbation, its discrete sample and a conditional one."""
    logits = base.logits
    shape = torch.Size((num_samples,)) + logits.shape
    v = _uniform(shape, logits)
    if isinstance(base, D.Bernoulli):
        z = logits + logistic_noise(shape, logits)
        b = (z > 0).to(logits.dtype)
        p = torch.sigmoid(logits)
        u = torch.where(b > 0, (1 - p) + v * p, v * (1 - p))
        eps = torch.finfo(logits.dtype).eps
        u = u.clamp(torch.finfo(logits.dtype).tiny, 1 - eps)
        z_tilde = logits + torch.log(u) - torch.log1p(-u)
        return z, b, z_tilde
    log_p = logits  # torch normalises Categorical logits: log-probabilities
    z = log_p + gumbel_noise(shape, logits)
    b = torch.nn.functional.one_hot(z.argmax(-1), z.shape[-1]).to(logits.dtype)
    log_v = torch.log(v)
    log_vb = (log_v * b).sum(-1, keepdim=True)
    others = -torch.log(-log_v * torch.exp(-log_p) - log_vb)
    z_tilde = torch.where(b > 0, -torch.log(-log_v), others)
    return z, b, z_tilde


@register
class Rebar(Estimator):
    name = "rebar"
    unbiased = True
    families = RELAXABLE
    description = "score function with REBAR's Gumbel-relaxation control variate (fixed eta)"
    reference = "Tucker et al. 2017"

    def __init__(self, temperature: float = 0.5, eta: float = 1.0):
        super().__init__()
        self.temperature = _check_temperature("rebar", temperature)
        try:
            self.eta = float(eta)
        except (TypeError, ValueError):
            raise ValueError(f"rebar: eta must be a finite number, got {eta!r}") from None
        if self.eta != self.eta or abs(self.eta) == float("inf"):
            raise ValueError(f"rebar: eta must be a finite number, got {eta!r}")

    def _relax(self, z: torch.Tensor, base: D.Distribution) -> torch.Tensor:
        if isinstance(base, D.Bernoulli):
            return torch.sigmoid(z / self.temperature)
        return torch.softmax(z / self.temperature, dim=-1)

    def estimate(self, dist, f, num_samples):
        base, _ = unwrap(dist)
        z, b, z_tilde = _perturbations(base, num_samples)
        b = b.detach()
        cost = self.costs(f, b, dist, num_samples)
        c_z = self.costs(f, self._relax(z, base), dist, num_samples)
        c_tilde = self.costs(f, self._relax(z_tilde, base), dist, num_samples)
        logp = dist.log_prob(b)
        eta = self.eta
        surrogate = (cost + (cost.detach() - eta * c_tilde.detach()) * (logp - logp.detach())
                     + eta * (c_z - c_z.detach()) - eta * (c_tilde - c_tilde.detach()))
        return surrogate.mean(0).sum()
