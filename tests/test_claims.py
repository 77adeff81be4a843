"""The claim test's false-alarm rate and power are what it states (suite/claims.py).

Calibration is checked on synthetic Gaussian estimates, where the truth is known: the rejection
rate of a correct estimator must not exceed the stated alpha, and a bias equal to the reported
detectable bias must be detected with the stated power. Each rate is a binomial proportion over N
independent trials, compared with a one-sided bound at the stated failure rate ALPHA.
"""
from __future__ import annotations

import math

import torch
from statcheck import ALPHA, z_crit

from estimators.conformance import bernoulli_batch, estimates
from suite.claims import claim_test, replicates_needed, verdict

TRIALS = 400


def _bound(p: float, n: int) -> float:
    """One-sided binomial tolerance on a proportion p over n trials at failure rate ALPHA."""
    return z_crit(1, 2 * ALPHA) * math.sqrt(p * (1 - p) / n)


def _synthetic(trials: int, r: int, p: int, bias: float, seed: int):
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(p, generator=gen, dtype=torch.float64)
    scale = torch.rand(p, generator=gen, dtype=torch.float64) + 0.5
    noise = torch.randn(trials, r, p, generator=gen, dtype=torch.float64) * scale
    return g, g * (1 + bias) + noise


def test_false_alarm_rate_is_at_most_alpha():
    alpha = 0.05
    g, G = _synthetic(TRIALS, 200, 10, 0.0, seed=0)
    rate = sum(claim_test(G[t], g, alpha=alpha).rejects(alpha) for t in range(TRIALS)) / TRIALS
    assert rate <= alpha + _bound(alpha, TRIALS), rate


def test_the_detectable_bias_is_detected_with_the_stated_power():
    alpha, power = 0.05, 0.95
    g, G0 = _synthetic(1, 200, 10, 0.0, seed=1)
    detectable = claim_test(G0[0], g, alpha=alpha, power=power).detectable_bias
    g, G = _synthetic(TRIALS, 200, 10, detectable, seed=2)
    rate = sum(claim_test(G[t], g, alpha=alpha).rejects(alpha) for t in range(TRIALS)) / TRIALS
    assert rate >= power - _bound(power, TRIALS), (rate, detectable)


def test_replicates_needed_reaches_the_target():
    g, G = _synthetic(1, 4000, 10, 0.0, seed=3)
    small = claim_test(G[0, :250], g)
    need = replicates_needed(small, small.detectable_bias / 2)
    assert 900 <= need <= 1100  # four times the replicates halve the detectable bias
    assert claim_test(G[0, :need], g).detectable_bias < small.detectable_bias * 0.6


def test_verdicts_on_real_estimators():
    torch.manual_seed(0)
    problem = bernoulli_batch(20_000, torch.float64, "cpu")
    test = claim_test(*estimates("score_function:baseline=loo", problem, 4))
    assert verdict(test, True, target=0.1) == "consistent", test
    torch.manual_seed(0)
    problem = bernoulli_batch(20_000, torch.float64, "cpu")
    test = claim_test(*estimates("straight_through", problem, 4))
    assert verdict(test, True, target=0.1) == "contradicted", test
    assert verdict(test, False, target=0.1) == "consistent"


def test_a_deterministic_exact_estimator_is_consistent_and_a_deterministic_bias_is_not():
    g = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    assert verdict(claim_test(g.expand(50, 3), g), True, target=0.1) == "consistent"
    assert verdict(claim_test((g * 1.01).expand(50, 3), g), True, 0.1) == "contradicted"


def test_a_rare_coordinate_that_never_fired_is_no_false_alarm():
    """A rare category's score-function coordinate is a small constant unless the category is
    drawn; in R draws that never draw it the per-coordinate t-statistic is huge. The omnibus
    test leaves such tiny coordinates of g to the along-g test (suite.claims.OMNIBUS_FLOOR)."""
    gen = torch.Generator().manual_seed(11)
    g = torch.cat([torch.randn(9, generator=gen, dtype=torch.float64), torch.tensor([6e-4])])
    G = g + torch.randn(10_000, 10, generator=gen, dtype=torch.float64)
    G[:, -1] = -1e-5 + 1e-7 * torch.randn(10_000, generator=gen, dtype=torch.float64)
    assert verdict(claim_test(G, g), True, target=0.1) == "consistent"
    G[:, 0] += 0.2  # a real bias on a large coordinate is still found
    assert verdict(claim_test(G, g), True, target=0.1) == "contradicted"
