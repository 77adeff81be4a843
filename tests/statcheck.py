"""The stated failure rate of the statistical tests and their critical values.

Note [Randomized statistical tests] (as in torch's test_distributions.py): each statistical test
fixes its seed and derives its tolerance from ``ALPHA``, the probability that it fails for a
correct implementation, under the normal approximation of a mean of i.i.d. terms, with a
Bonferroni correction over the ``m`` quantities it compares.
"""
from __future__ import annotations

from estimators.conformance import ALPHA, z_crit

#: estimator specs named with ``pytest --estimator SPEC`` (plugins to check with the built-ins)
EXTRA_SPECS: list[str] = []

__all__ = ["ALPHA", "EXTRA_SPECS", "z_crit"]


def failing_estimator(name: str) -> type:
    """An estimator class (for the discrete families) whose every call raises: a failing cell or
    run must fail alone while the rest of a grid completes."""
    from estimators.base import DISCRETE, Estimator

    def estimate(self, dist, f, num_samples):
        raise RuntimeError("this estimator always fails")
    return type("Failing", (Estimator,), {"name": name, "families": DISCRETE,
                                          "__doc__": "Always fails.", "estimate": estimate})
