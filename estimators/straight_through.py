"""Straight-through estimators: hard sample forward, surrogate gradient backward.

``z = z_hard + (z_soft - sg(z_soft))`` (Bengio et al. 2013, "Estimating or propagating gradients
through stochastic neurons"): the forward pass sees the discrete sample, the backward pass the
gradient of a soft surrogate. Biased, low variance, cheap.

* ``straight_through``: z_soft = the probabilities (sigmoid / softmax of the logits), as in
  ``torch.distributions`` (``samples + (probs - probs.detach())``).
* ``straight_through_gumbel``: z_hard = round/argmax of a Gumbel-softmax sample, z_soft = that
  relaxed sample (Jang et al. 2017, "ST Gumbel-softmax").
"""
from __future__ import annotations

from . import register
from .base import Estimator, sample, unwrap
from .relaxed import RELAXABLE, _check_temperature, hard_sample, relaxed_sample


@register
class StraightThrough(Estimator):
    """hard sample forward, sigmoid/softmax (probs) gradient backward"""

    name = "straight_through"
    display_name = "straight-through"
    unbiased = False
    families = RELAXABLE
    reference = "Bengio et al. 2013"
    pathwise = True

    def estimate(self, dist, f, num_samples):
        base, _ = unwrap(dist)
        probs = base.probs  # first: the sampler then reuses these probabilities (no second σ)
        z = sample(dist, num_samples) + (probs - probs.detach())
        return self.costs(f, z, dist, num_samples).mean(0).sum()


@register
class StraightThroughGumbel(Estimator):
    """hard Gumbel-max sample forward, Gumbel-softmax gradient backward"""

    name = "straight_through_gumbel"
    display_name = "straight-through Gumbel"
    unbiased = False
    families = RELAXABLE
    reference = "Jang et al. 2017"
    pathwise = True

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = _check_temperature("straight_through_gumbel", temperature)

    def estimate(self, dist, f, num_samples):
        soft = relaxed_sample(dist, num_samples, self.temperature)
        z = hard_sample(soft.detach(), dist) + (soft - soft.detach())
        return self.costs(f, z, dist, num_samples).mean(0).sum()
