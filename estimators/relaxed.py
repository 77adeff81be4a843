"""Continuous relaxations of discrete samples: Gumbel-max, Gumbel-softmax (Concrete).

* Gumbel-max: ``argmax_i(log p_i + g_i)``, ``g_i = -log(-log u_i)``, is an exact Categorical(p) sample.
* Gumbel-softmax: ``softmax((log p + g)/τ)`` (Jang et al. 2017; Maddison et al. 2017, "The Concrete
  distribution"); binary Concrete for Bernoulli: ``σ((logit + log u - log(1-u))/τ)``.
  f is evaluated at the relaxed sample, so the estimate is biased for the discrete objective; the
  bias vanishes as τ → 0 while the variance grows.
"""
from __future__ import annotations

import torch
from torch import distributions as D

from . import register
from .base import Estimator, unwrap
from .checks import number

RELAXABLE = (D.Bernoulli, D.OneHotCategorical)


def _uniform(shape, like: torch.Tensor) -> torch.Tensor:
    # open interval (0, 1): log(u) and log(1 - u) stay finite
    tiny = torch.finfo(like.dtype).tiny
    eps = torch.finfo(like.dtype).eps
    return torch.rand(shape, dtype=like.dtype, device=like.device).clamp_(tiny, 1 - eps)


def gumbel_noise(shape, like: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise ``-log(-log u)`` with the dtype and device of ``like``."""
    return -torch.log(-torch.log(_uniform(shape, like)))


def logistic_noise(shape, like: torch.Tensor) -> torch.Tensor:
    """``log u - log(1 - u)``: the difference of two Gumbels, used by the binary Concrete."""
    u = _uniform(shape, like)
    return torch.log(u) - torch.log1p(-u)


def gumbel_max_sample(logits: torch.Tensor, sample_shape=()) -> torch.Tensor:
    """Category indices ``argmax(logits + g)``: exact samples of ``Categorical(logits=logits)``."""
    shape = torch.Size(sample_shape) + logits.shape
    return (logits + gumbel_noise(shape, logits)).argmax(-1)


def relaxed_sample(dist: D.Distribution, num_samples: int, temperature: float) -> torch.Tensor:
    """A reparameterised relaxed sample of shape ``[K, *batch, *event]`` for Bernoulli or
    OneHotCategorical (alone or in Independent).

    Bernoulli: ``σ((l + logit u)/τ)``, the logistic noise ``logit u`` in one kernel
    (``u = 0`` gives ``-inf``, that is a relaxed 0, never a NaN). OneHotCategorical:
    ``softmax((l - log E)/τ)``, ``-log E`` (``E ~ Exp(1)``, clamped away from 0) being standard
    Gumbel noise in three kernels instead of five."""
    base, _ = unwrap(dist)
    logits = base.logits
    shape = torch.Size((num_samples,)) + logits.shape
    if isinstance(base, D.Bernoulli):
        x = torch.logit(torch.rand(shape, dtype=logits.dtype, device=logits.device)) + logits
        return torch.sigmoid(x if temperature == 1 else x / temperature)
    e = torch.empty(shape, dtype=logits.dtype, device=logits.device).exponential_()
    x = logits - e.clamp_min_(torch.finfo(logits.dtype).tiny).log_()
    return torch.softmax(x if temperature == 1 else x / temperature, dim=-1)


def hard_sample(soft: torch.Tensor, dist: D.Distribution) -> torch.Tensor:
    """The discrete sample a relaxed one rounds to (threshold 0.5 / one-hot of the argmax);
    for Gumbel noise this is an exact sample of ``dist``."""
    base, _ = unwrap(dist)
    if isinstance(base, D.Bernoulli):
        # round(s) is 1.0 exactly when s > 0.5 (0.5 rounds to even, 0): one kernel, no bool tensor
        return soft.detach().round()
    # scatter, not one_hot: one_hot checks the indices' range on the host (a sync)
    return torch.zeros_like(soft).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0)


def _check_temperature(name: str, temperature) -> float:
    """``temperature`` as a finite float > 0, else a ValueError naming ``name`` and the option."""
    return number(name, "temperature", temperature, low=0.0, low_open=True)


@register
class GumbelSoftmax(Estimator):
    """Gumbel-softmax / binary Concrete: f at softmax((log p + g)/tau)"""

    name = "gumbel_softmax"
    display_name = "Gumbel-softmax"
    unbiased = False
    families = RELAXABLE
    reference = "Jang et al. 2017; Maddison et al. 2017"
    pathwise = True

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        self.temperature = _check_temperature("gumbel_softmax", temperature)

    def estimate(self, dist, f, num_samples):
        z = relaxed_sample(dist, num_samples, self.temperature)
        return self.costs(f, z, dist, num_samples).mean(0).sum()
