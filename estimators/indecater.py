"""IndeCateR (De Smet, Sansone & Zuidberg Dos Martires 2023, "Differentiable sampling of
categorical distributions using the CatLog-derivative trick").

For a factorised distribution ``p(x) = Π_d p_d(x_d)`` over D variables with C values each, the
CatLog-derivative trick Rao-Blackwellises the score function variable by variable::

    ∇ E[f(x)] = Σ_d E_{x_{-d}} [ Σ_k ∇p_d(k) f(x_{-d}, x_d = k) ]

so one sample x gives ``ĝ = Σ_d Σ_k ∇p_d(k) f(x_{-d}, x_d = k)``: f at every value k of every
variable d with the other coordinates fixed. Unbiased; D·C evaluations per sample, all in one f
call (``[K·D·C, *batch, *event]``). The loss's value is the Rao-Blackwellised estimate
``(1/D) Σ_d Σ_k p_d(k) f(x_{-d}, x_d = k)`` (each d gives an unbiased estimate of E f), and f's own
parameters get their gradient through it.

Variables: the reinterpreted dimensions of ``Independent`` (D = their product; a bare
distribution is D = 1 per batch element, where IndeCateR is exact enumeration). Values: Bernoulli
C = 2 ({0, 1}), Categorical and OneHotCategorical C = the number of categories.
"""
from __future__ import annotations

import math

import torch
from torch import distributions as D

from . import register
from .base import DISCRETE, Estimator, unwrap
from .evaluations import CountsEvaluations


def _layout(dist: D.Distribution):
    """``(base, D, C)``: the base distribution, variables per batch element, values each."""
    base, ndims = unwrap(dist)
    inner = base.batch_shape[len(base.batch_shape) - ndims:] if ndims else ()
    c = 2 if isinstance(base, D.Bernoulli) else base.logits.shape[-1]
    return base, math.prod(inner), c


def _values(base: D.Distribution, c: int, like: torch.Tensor) -> torch.Tensor:
    """The C values of one variable, ``[C, *base.event_shape]``, in the samples' dtype."""
    if isinstance(base, D.OneHotCategorical):
        return torch.eye(c, dtype=like.dtype, device=like.device)
    return torch.arange(c, device=like.device).to(like.dtype)


def _value_probs(base: D.Distribution) -> torch.Tensor:
    """``p_d(k)`` for every variable, ``[*base.batch_shape, C]``, with the parameters' grad."""
    if isinstance(base, D.Bernoulli):
        p = base.probs
        return torch.stack([1 - p, p], dim=-1)
    return base.probs


@register
class IndeCateR(CountsEvaluations, Estimator):
    """IndeCateR: per-variable Rao-Blackwellised score function (the CatLog-derivative trick)."""

    name = "indecater"
    display_name = "IndeCateR"
    unbiased = True
    families = DISCRETE
    reference = "De Smet et al. 2023"
    evaluations_per_sample = None  # D·C, problem-dependent: see evaluations()

    def evaluations(self, dist, num_samples):
        """``num_samples · D · C`` f evaluations per batch element."""
        _, d, c = _layout(dist)
        return int(num_samples) * d * c

    def estimate(self, dist, f, num_samples):
        base, d, c = _layout(dist)
        k = num_samples
        outer = dist.batch_shape
        event = base.event_shape
        x = dist.sample((k,))                                        # [K, *B, *I, *e]
        x = x.reshape((k, *outer, d, *event))                        # [K, *B, D, *e]
        values = _values(base, c, x)                                 # [C, *e]
        n_b, n_e = len(outer), len(event)
        # z[k, which, value, *B, pos, *e] = value if pos == which else x[k, *B, pos, *e]
        x_b = x.reshape((k, 1, 1, *outer, d, *event))
        v_b = values.reshape((1, 1, c) + (1,) * n_b + (1,) + tuple(event))
        eye = torch.eye(d, dtype=torch.bool, device=x.device)
        mask = eye.reshape((1, d, 1) + (1,) * n_b + (d,) + (1,) * n_e)
        z = torch.where(mask, v_b, x_b)                              # [K, D, C, *B, D, *e]
        z = z.reshape((k * d * c, *dist.batch_shape, *dist.event_shape))
        cost = self.costs(f, z, dist, k * d * c)                     # [K*D*C, *B]
        cost = cost.reshape((k, d, c, *outer)).movedim((1, 2), (-2, -1))  # [K, *B, D, C]
        probs = _value_probs(base).reshape((*outer, d, c))           # [*B, D, C]
        value = (probs.detach() * cost).sum(-1).mean(-1)             # [K, *B]
        grad = ((probs - probs.detach()) * cost.detach()).sum((-2, -1))
        return (value + grad).mean(0).sum()
