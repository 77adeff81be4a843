"""The stated failure rate of the statistical tests and their critical values.

Note [Randomized statistical tests] (as in torch's test_distributions.py): each statistical test
fixes its seed and derives its tolerance from ``ALPHA``, the probability that it fails for a
correct implementation, under the normal approximation of a mean of i.i.d. terms, with a
Bonferroni correction over the ``m`` quantities it compares.
"""
from __future__ import annotations

from scipy import stats

ALPHA = 1e-3  # stated failure rate of each statistical test


def z_crit(m: int = 1, alpha: float = ALPHA) -> float:
    """Two-sided normal critical value with a Bonferroni correction over ``m`` comparisons."""
    return float(stats.norm.isf(alpha / (2 * m)))
