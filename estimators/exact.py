"""Exact expectation by enumerating the support: ``L(θ) = Σ_z p_θ(z) f(z)``.

Autograd through this sum gives the true gradient, the reference every unbiased estimator is
checked against. ``Independent`` wrappers are enumerated jointly (n^D points for D reinterpreted
dimensions of an n-point base), so the cost is exponential: past ``max_support`` points it refuses
with a ``ValueError`` rather than exhausting memory. ``num_samples`` is ignored; f receives all
support points at once, ``[N, *batch_shape, *event_shape]``.
"""
from __future__ import annotations

import math

import torch
from torch import distributions as D

from . import register
from .base import DISCRETE, Estimator, family_name, unwrap


def support_size(dist: D.Distribution) -> int:
    base, ndims = unwrap(dist)
    n = _base_size(base)
    reinterpreted = base.batch_shape[len(base.batch_shape) - ndims:] if ndims else ()
    return n ** math.prod(reinterpreted)


def _base_size(base: D.Distribution) -> int:
    if isinstance(base, D.Bernoulli):
        return 2
    return base.logits.shape[-1]  # Categorical, OneHotCategorical


def enumerate_support(dist: D.Distribution) -> torch.Tensor:
    """All points of the support, shape ``[N, *batch_shape, *event_shape]``."""
    base, ndims = unwrap(dist)
    if ndims == 0:
        return dist.enumerate_support(expand=True)
    # Joint support of the reinterpreted dims: every combination of base values.
    values = base.enumerate_support(expand=False)  # [n, 1, ..., 1, *base_event]
    n = values.shape[0]
    base_event = base.event_shape
    values = values.reshape((n,) + base_event)
    inner = base.batch_shape[len(base.batch_shape) - ndims:]
    outer = base.batch_shape[:len(base.batch_shape) - ndims]
    d = math.prod(inner)
    # index of combination c at position j: (c // n^(d-1-j)) % n, built with tensor ops
    combos = n ** d
    c = torch.arange(combos, device=values.device)
    powers = n ** torch.arange(d - 1, -1, -1, device=values.device)
    idx = torch.div(c[:, None], powers[None, :], rounding_mode="floor") % n  # [N, d]
    points = values[idx].reshape((combos,) + tuple(inner) + tuple(base_event))
    view = (combos,) + (1,) * len(outer) + tuple(inner) + tuple(base_event)
    return points.reshape(view).expand((combos,) + tuple(outer) + tuple(inner) + tuple(base_event))


@register
class Exact(Estimator):
    name = "exact"
    unbiased = True
    families = DISCRETE
    description = "enumerates the support: sum_z p(z) f(z) (the reference gradient)"
    reference = "exact enumeration"

    def __init__(self, max_support: int = 2 ** 16):
        super().__init__()
        if isinstance(max_support, bool) or not isinstance(max_support, int) or max_support < 1:
            raise ValueError(f"exact: max_support must be a positive int, got {max_support!r}")
        self.max_support = max_support

    def supports(self, dist) -> bool:
        """The family must be discrete and the support no larger than ``max_support``."""
        return super().supports(dist) and support_size(dist) <= self.max_support

    def check(self, dist, num_samples, min_samples=1):
        # A supported family with too large a support is a ValueError (a size problem), not a
        # TypeError (a family problem): say how large it is.
        if super().supports(dist) and support_size(dist) > self.max_support:
            size = support_size(dist)
            raise ValueError(
                f"exact: the support of {family_name(dist)} with batch_shape "
                f"{list(dist.batch_shape)} and event_shape {list(dist.event_shape)} has {size} "
                f"points, more than max_support={self.max_support}; use a sampling estimator or "
                f"raise max_support")
        super().check(dist, num_samples, min_samples)

    def estimate(self, dist, f, num_samples):
        size = support_size(dist)
        z = enumerate_support(dist)
        cost = self.costs(f, z, dist, size)
        weights = dist.log_prob(z).exp()
        return (weights * cost).sum()
