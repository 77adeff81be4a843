"""Exact expectation by enumerating the support: ``L(θ) = Σ_z p_θ(z) f(z)``.

Autograd through this sum gives the true gradient, the reference every unbiased estimator is
checked against. ``Independent`` wrappers are enumerated jointly (n^D points for D reinterpreted
dimensions of an n-point base), so the cost is exponential. Two guards refuse with a
``ValueError`` (and make ``supports()`` False) rather than exhaust memory: more than
``max_support`` points per batch element, or an enumeration ``[N, *batch_shape, *event_shape]``
of more than ``max_elements`` values in all, which counts the batch (2,000 x 16 Bernoullis is
2^16 points per element but 2,000 x 2^16 x 16 values). Sizes are compared in log space, so a
support of 2^20000 points is refused, and described, without building a 6,000-digit integer.
``num_samples`` is ignored; f receives all support points at once.
"""
from __future__ import annotations

import math

import torch
from torch import distributions as D

from . import register
from .base import DISCRETE, Estimator, family_name, unwrap
from .checks import integer


def _support_base_and_dims(dist: D.Distribution) -> tuple[int, int]:
    """``(n, d)``: the support of one batch element has ``n ** d`` points."""
    base, ndims = unwrap(dist)
    reinterpreted = base.batch_shape[len(base.batch_shape) - ndims:] if ndims else ()
    return _base_size(base), math.prod(reinterpreted)


def support_log10(dist: D.Distribution) -> float:
    """``log10`` of the number of support points of one batch element (-inf for none)."""
    n, d = _support_base_and_dims(dist)
    return d * math.log10(n) if n > 0 else (-math.inf if d else 0.0)


def support_size(dist: D.Distribution) -> int:
    """The number of support points of one batch element (an exact int: may be huge; see
    :func:`support_log10` for a size that is cheap to compare and print)."""
    n, d = _support_base_and_dims(dist)
    return n ** d


def _size_text(n: int, d: int) -> str:
    """``1048576`` when it is short, ``2^20000 (about 10^6020.6)`` when it is not: Python
    refuses to print an int of more than 4,300 digits."""
    if d * math.log10(max(n, 1)) < 15:
        return str(n ** d)
    return f"{n}^{d} (about 10^{d * math.log10(n):.1f})"


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
    """enumerates the support: sum_z p(z) f(z) (the reference gradient)"""

    name = "exact"
    display_name = "exact"
    unbiased = True
    families = DISCRETE
    reference = "exact enumeration"

    def __init__(self, max_support: int = 2 ** 16, max_elements: int = 2 ** 26):
        super().__init__()
        self.max_support = integer("exact", "max_support", max_support)
        self.max_elements = integer("exact", "max_elements", max_elements)

    def _too_large(self, dist) -> str | None:
        """Why enumerating ``dist`` is refused (None when it is not): too many support points
        per batch element, or too many values in the enumeration ``[N, *batch, *event]``."""
        n, d = _support_base_and_dims(dist)
        log_n = support_log10(dist)
        where = (f"{family_name(dist)} with batch_shape {list(dist.batch_shape)} and "
                 f"event_shape {list(dist.event_shape)}")
        if log_n > math.log10(self.max_support) + 1e-12:
            return (f"exact: the support of {where} has {_size_text(n, d)} points, more than "
                    f"max_support={self.max_support}; use a sampling estimator or raise "
                    f"max_support")
        if log_n == -math.inf:
            return None
        batch = math.prod(dist.batch_shape)
        event = math.prod(dist.event_shape)
        elements = n ** d * batch * event  # small here: n ** d <= max_support
        if elements > self.max_elements:
            return (f"exact: enumerating {where} takes {n ** d} support points x {batch} batch "
                    f"element(s) x {event} event value(s) = {elements} values, more than "
                    f"max_elements={self.max_elements} (the memory budget, which counts the "
                    f"batch); use a sampling estimator, a smaller batch, or raise max_elements")
        return None

    def supports(self, dist) -> bool:
        """The family must be discrete and the enumeration within ``max_support`` points per
        batch element and ``max_elements`` values in all."""
        return super().supports(dist) and self._too_large(dist) is None

    def check(self, dist, num_samples, min_samples=1):
        # A supported family with too large a support is a ValueError (a size problem), not a
        # TypeError (a family problem): say how large it is.
        if super().supports(dist):
            reason = self._too_large(dist)
            if reason is not None:
                raise ValueError(reason)
        super().check(dist, num_samples, min_samples)

    def estimate(self, dist, f, num_samples):
        size = support_size(dist)
        z = enumerate_support(dist)
        cost = self.costs(f, z, dist, size)
        weights = dist.log_prob(z).exp()
        return (weights * cost).sum()
