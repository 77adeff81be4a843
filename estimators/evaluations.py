"""How many times an estimator calls f, for comparisons at equal cost.

An estimator that mixes in :class:`CountsEvaluations` declares ``evaluations_per_sample``: an int
when the count per sample is fixed (straight-through variants: 1), or ``None`` when it depends on
the problem (IndeCateR: D·C, measure-valued: 4·D), in which case ``evaluations(dist,
num_samples)`` gives the number of f evaluations one call makes (summed over the leading sample
dimension, per batch element: batch elements are independent problems evaluated side by side).
"""
from __future__ import annotations

from torch import distributions as D

__all__ = ["CountsEvaluations", "evaluations"]


class CountsEvaluations:
    """Mixin: ``evaluations_per_sample`` (int or None) and ``evaluations(dist, num_samples)``."""

    evaluations_per_sample: int | None = 1

    def evaluations(self, dist: D.Distribution, num_samples: int) -> int:
        if self.evaluations_per_sample is None:  # pragma: no cover - overridden where None
            raise NotImplementedError(f"{type(self).__name__} must define evaluations()")
        return int(num_samples) * int(self.evaluations_per_sample)


def evaluations(est: object, dist: D.Distribution, num_samples: int) -> int | None:
    """f evaluations of one call of ``est``, or None when the estimator does not declare them."""
    count = getattr(est, "evaluations", None)
    return int(count(dist, num_samples)) if callable(count) else None
