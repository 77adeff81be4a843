"""Straight-through estimators: hard sample forward, surrogate gradient backward.

``z = z_hard + (z_soft - sg(z_soft))`` (Bengio et al. 2013, "Estimating or propagating gradients
through stochastic neurons"): the forward pass sees the discrete sample, the backward pass the
gradient of a soft surrogate. Biased, low variance, cheap.

* ``straight_through``: z_soft = the probabilities (sigmoid / softmax of the logits), as in
  ``torch.distributions`` (``samples + (probs - probs.detach())``).
* ``straight_through_gumbel``: z_hard = round/argmax of a Gumbel-softmax sample, z_soft = that
  relaxed sample (Jang et al. 2017, "ST Gumbel-softmax").
* ``gapped_straight_through`` (Fan, Tang, Chen, Lin & Hung 2022, "Training discrete deep
  generative models via gapped straight-through estimator", ICML; reference code chijames/GST,
  ``gst_mover``): no Gumbel noise at all. D ~ p is drawn; the backward surrogate is the softmax of
  logits moved, by a constant (no gradient), so that D is their argmax by a gap: with θ the
  logits and ``m = max_i θ_i``::

      θ̃ = θ + sg(move),  move_D = m - θ_D,  move_i = -max(0, θ_i - m + gap)  (i ≠ D)
      z = D + softmax(θ̃/τ) - sg(softmax(θ̃/τ))

  so θ̃_D = m and every other θ̃_i <= m - gap. ``gap`` is fixed (the paper's GST-1.0 at gap = 1)
  or, with ``adaptive=true``, ``gap = -log(1 - π_D)/π_D`` at ``π_D = p(D)`` (GST-p). Bernoulli
  is the two-category case with logits (0, a). Biased; one f evaluation per sample.
* ``decoupled_straight_through_gumbel`` (Shah, Yan, Mozer & Liu 2024, "Improving discrete
  optimisation via decoupled straight-through Gumbel-softmax"): separate forward and backward
  temperatures τf, τb. Our reading of the method (the paper is the authority; no reference code
  was available to us): the forward pass is a Gumbel-max sample of the tempered distribution
  ``softmax(θ/τf)`` (τf controls how much the forward pass explores; τf = 1 samples p itself),
  the backward pass the Gumbel-softmax relaxation at τb of the same perturbation::

      x = θ/τf + G,  D = onehot(argmax x),  z = D + softmax(x/τb) - sg(softmax(x/τb))

  (Bernoulli: ``x = a/τf + L`` with logistic L, ``D = 1[x > 0]``, soft ``σ(x/τb)``). With
  τf = 1 it is ``straight_through_gumbel`` at temperature τb, draw for draw; with τf ≠ 1 the
  samples come from the tempered distribution, so even the loss's value is biased for E_p f.
  Biased; one f evaluation per sample.
"""
from __future__ import annotations

import torch
from torch import distributions as D

from . import register
from .base import Estimator, sample, unwrap
from .checks import number
from .evaluations import CountsEvaluations
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


def two_category_logits(base: D.Distribution) -> torch.Tensor:
    """The logits ``[..., C]`` of a OneHotCategorical, or ``(0, a)`` for a Bernoulli(a)."""
    if isinstance(base, D.Bernoulli):
        a = base.logits
        return torch.stack([torch.zeros_like(a), a], dim=-1)
    return base.logits


def gap_shift(theta: torch.Tensor, hard: torch.Tensor, gap: float, adaptive: bool) -> torch.Tensor:
    """GST's constant move of the logits ``theta [..., C]`` for the one-hot samples
    ``hard [K, ..., C]``: the sampled category up to the largest logit, every other one down to at
    most ``max - gap`` (``gap = -log(1 - π_D)/π_D`` when ``adaptive``). No gradient."""
    with torch.no_grad():
        theta = theta.detach()
        top = theta.max(-1, keepdim=True).values
        up = (top - theta) * hard
        if adaptive:
            pi = (theta.softmax(-1) * hard).sum(-1, keepdim=True) * (1 - 1e-5)
            gap = -torch.log1p(-pi) / pi
        down = (theta + (gap - top)).clamp_min(0.0) * (1 - hard)
        return up - down


@register
class GappedStraightThrough(CountsEvaluations, Estimator):
    """Gapped straight-through: ST with the sampled class made the argmax by a gap (no Gumbel)."""

    name = "gapped_straight_through"
    display_name = "gapped straight-through"
    unbiased = False
    families = RELAXABLE
    reference = "Fan et al. 2022"
    pathwise = True
    evaluations_per_sample = 1
    variants = ("gapped_straight_through", "gapped_straight_through:adaptive=true")
    variant_names = {"gapped_straight_through": "GST-1.0",
                     "gapped_straight_through:adaptive=true": "GST-p"}

    def __init__(self, gap: float = 1.0, adaptive: bool = False, temperature: float = 1.0):
        super().__init__()
        self.gap = number("gapped_straight_through", "gap", gap, low=0.0)
        if not isinstance(adaptive, bool):
            raise ValueError(f"gapped_straight_through: option adaptive must be a bool, got "
                             f"{adaptive!r}")
        self.adaptive = adaptive
        self.temperature = _check_temperature("gapped_straight_through", temperature)

    def estimate(self, dist, f, num_samples):
        base, _ = unwrap(dist)
        theta = two_category_logits(base)
        hard = sample(dist, num_samples)
        if isinstance(base, D.Bernoulli):
            hard = torch.stack([1 - hard, hard], dim=-1)
        logits = theta + gap_shift(theta, hard, self.gap, self.adaptive)
        soft = torch.softmax(logits if self.temperature == 1 else logits / self.temperature, -1)
        z = hard + (soft - soft.detach())
        if isinstance(base, D.Bernoulli):
            z = z[..., 1]
        return self.costs(f, z, dist, num_samples).mean(0).sum()


@register
class DecoupledStraightThroughGumbel(CountsEvaluations, Estimator):
    """ST Gumbel-softmax with decoupled temperatures: tau_f for the sample, tau_b for the gradient"""

    name = "decoupled_straight_through_gumbel"
    display_name = "decoupled ST-Gumbel"
    unbiased = False
    families = RELAXABLE
    reference = "Shah et al. 2024"
    pathwise = True
    evaluations_per_sample = 1
    variants = ("decoupled_straight_through_gumbel",
                "decoupled_straight_through_gumbel:forward_temperature=2.0,"
                "backward_temperature=0.5")
    variant_names = {
        "decoupled_straight_through_gumbel": "decoupled ST-Gumbel (τf=1, τb=2)",
        "decoupled_straight_through_gumbel:forward_temperature=2.0,backward_temperature=0.5":
            "decoupled ST-Gumbel (τf=2, τb=0.5)"}

    def __init__(self, forward_temperature: float = 1.0, backward_temperature: float = 2.0):
        super().__init__()
        owner = "decoupled_straight_through_gumbel"
        self.forward_temperature = number(owner, "forward_temperature", forward_temperature,
                                          low=0.0, low_open=True)
        self.backward_temperature = number(owner, "backward_temperature",
                                           backward_temperature, low=0.0, low_open=True)

    def estimate(self, dist, f, num_samples):
        base, _ = unwrap(dist)
        logits = base.logits
        tf, tb = self.forward_temperature, self.backward_temperature
        shape = torch.Size((num_samples,)) + logits.shape
        # the same draws as relaxed_sample, so that τf = 1 is straight_through_gumbel at τb
        if isinstance(base, D.Bernoulli):
            noise = torch.logit(torch.rand(shape, dtype=logits.dtype, device=logits.device))
        else:
            e = torch.empty(shape, dtype=logits.dtype, device=logits.device).exponential_()
            noise = -e.clamp_min_(torch.finfo(logits.dtype).tiny).log_()
        x = (logits if tf == 1 else logits / tf) + noise
        if isinstance(base, D.Bernoulli):
            soft = torch.sigmoid(x if tb == 1 else x / tb)
        else:
            soft = torch.softmax(x if tb == 1 else x / tb, dim=-1)
        hard = _hard_of_perturbed(x.detach(), base)
        z = hard + (soft - soft.detach())
        return self.costs(f, z, dist, num_samples).mean(0).sum()


def _hard_of_perturbed(x: torch.Tensor, base: D.Distribution) -> torch.Tensor:
    """The discrete sample of perturbed logits: ``1[x > 0]`` / one-hot of the argmax."""
    if isinstance(base, D.Bernoulli):
        return (x > 0).to(x.dtype)
    return torch.zeros_like(x).scatter_(-1, x.argmax(-1, keepdim=True), 1.0)
