"""Score-function (REINFORCE) estimator with baselines.

``∇_θ E_{z~p_θ}[f(z)] = E[(f(z) - b) ∇_θ log p_θ(z)]`` for any b independent of z
(Williams 1992, "Simple statistical gradient-following algorithms for connectionist reinforcement
learning"). Baselines:

* ``none``: b = 0.
* ``moving_average``: b is an exponential moving average of past costs (per batch element), updated
  *after* the current estimate so that it stays independent of the current samples.
* ``loo``: leave-one-out over the K samples, ``b_k = mean_{j≠k} f(z_j)`` (Kool et al. 2019, "Buy 4
  REINFORCE samples, get a baseline for free!"; "RLOO"). Needs K >= 2.

The surrogate ``mean_k[f_k + sg(f_k - b_k)·(log p(z_k) - sg(log p(z_k)))]`` has the value of the
Monte Carlo estimate ``mean_k f_k`` and the score-function gradient; f's own parameters get their
pathwise gradient through ``f_k``.
"""
from __future__ import annotations

import torch

from . import register
from .base import ALL_FAMILIES, Estimator, log_prob
from .checks import choice, number

BASELINES = ("none", "moving_average", "loo")


@register
class ScoreFunction(Estimator):
    """REINFORCE: E[(f(z) - b) grad log p(z)], baselines none | moving_average | loo"""

    name = "score_function"
    unbiased = True
    families = ALL_FAMILIES
    reference = "Williams 1992; Kool et al. 2019 (leave-one-out baseline)"
    variants = tuple(f"score_function:baseline={b}" for b in BASELINES)

    def __init__(self, baseline: str = "none", decay: float = 0.9):
        super().__init__()
        self.baseline = choice("score_function", "baseline", baseline, BASELINES)
        self.decay = number("score_function", "decay", decay, low=0.0, high=1.0, high_open=True)
        self.name = f"score_function:baseline={baseline}"
        if baseline == "moving_average":
            # Running mean of f per batch element; empty until the first call sets its shape.
            # Only this baseline has state, so only it has buffers (harnesses warm stateful
            # estimators up before measuring them).
            self.register_buffer("running_cost", torch.zeros(0))
            self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # A fresh moving average is empty (shape [0]) until its first call sets the problem's
        # shape: adopt the stored shape so a trained baseline loads into a fresh estimator.
        stored = state_dict.get(prefix + "running_cost")
        if (self.baseline == "moving_average" and isinstance(stored, torch.Tensor)
                and stored.shape != self.running_cost.shape):
            self.running_cost = torch.zeros(stored.shape, dtype=stored.dtype,
                                            device=self.running_cost.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def min_samples(self) -> int:
        return 2 if self.baseline == "loo" else 1

    def check(self, dist, num_samples, min_samples=1):
        if self.baseline == "loo" and not isinstance(num_samples, bool) and num_samples == 1:
            raise ValueError("score_function:baseline=loo needs num_samples >= 2 (the baseline "
                             "of each sample is the mean cost of the others), got num_samples=1")
        super().check(dist, num_samples, min_samples)

    def _baseline(self, cost: torch.Tensor) -> torch.Tensor:
        k = cost.shape[0]
        if self.baseline == "loo":
            return (cost.sum(0, keepdim=True) - cost) / (k - 1)
        if self.baseline == "moving_average":
            shape = cost.shape[1:]
            if self.running_cost.shape != shape:  # first call or a new problem shape: restart
                self.running_cost = cost.new_zeros(shape)
                self.steps = torch.zeros((), dtype=torch.long, device=cost.device)
            # Bias-corrected EMA (as in Adam) so early baselines are not pulled towards 0;
            # b = 0 before the first update. Tensor ops only: no host sync.
            correction = 1 - self.decay ** self.steps.to(cost.dtype)
            b = torch.where(self.steps > 0, self.running_cost / correction.clamp_min(1e-12),
                            torch.zeros_like(self.running_cost))
            return b.to(cost.dtype)
        return torch.zeros((), dtype=cost.dtype, device=cost.device)

    def estimate(self, dist, f, num_samples):
        z = dist.sample((num_samples,))
        cost = self.costs(f, z, dist, num_samples)
        logp = log_prob(dist, z)
        detached = cost.detach()
        # no baseline: skip subtracting a zero (x - 0 is x exactly: the same numbers, one op less)
        weight = detached if self.baseline == "none" else detached - self._baseline(detached)
        surrogate = cost + weight * (logp - logp.detach())
        if self.baseline == "moving_average":
            with torch.no_grad():  # updated after use: b stays independent of these samples
                self.steps += 1
                self.running_cost = self.decay * self.running_cost + (1 - self.decay) * detached.mean(0)
        return surrogate.mean(0).sum()
