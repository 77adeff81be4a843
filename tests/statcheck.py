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
