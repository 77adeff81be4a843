"""Score-function (REINFORCE) estimator with baselines.

``∇_θ E_{z~p_θ}[f(z)] = E[(f(z) - b) ∇_θ log p_θ(z)]`` for any b independent of z
(Williams 1992, "Simple statistical gradient-following algorithms for connectionist reinforcement
learning"). Baselines:

* ``none``: b = 0.
* ``moving_average``: b is a bias-corrected exponential moving average of past costs (per batch
  element; 0 before the first call), updated *after* the current estimate so that it stays
  independent of the current samples.
* ``loo``: leave-one-out over the K samples, ``b_k = mean_{j≠k} f(z_j)`` (Kool et al. 2019, "Buy 4
  REINFORCE samples, get a baseline for free!"; "RLOO"). Needs K >= 2.

The surrogate ``mean_k[f_k + sg(f_k - b_k)·(log p(z_k) - sg(log p(z_k)))]`` has the value of the
Monte Carlo estimate ``mean_k f_k`` and the score-function gradient; f's own parameters get their
pathwise gradient through ``f_k``.
"""
from __future__ import annotations

import torch

from . import register
from .base import ALL_FAMILIES, Estimator, sample_and_log_prob
from .checks import choice, number

BASELINES = ("none", "moving_average", "loo")


@register
class ScoreFunction(Estimator):
    """REINFORCE: E[(f(z) - b) grad log p(z)], baselines none | moving_average | loo"""

    name = "score_function"
    display_name = "score function"
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
            self._count = 0  # the update count, kept on the host (see ``steps``)
            self.register_buffer("running_cost", torch.zeros(0))
            self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @property
    def steps(self) -> torch.Tensor:
        """The moving average's update count: a buffer, saved in ``state_dict``. The hot path
        counts on the host only (the bias correction needs the count there, and a kernel per
        estimate to keep the buffer current cost ~2.5 µs); reading ``steps`` or saving the state
        brings the buffer up to date (``named_buffers()`` may show an older count)."""
        buffers = self.__dict__.get("_buffers", {})
        if "steps" not in buffers or "_count" not in self.__dict__:
            raise AttributeError("steps")  # only the moving average keeps state
        return buffers["steps"].fill_(self._count)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        if self.baseline == "moving_average":
            self._buffers["steps"].fill_(self._count)  # a fill from the host: no sync
        super()._save_to_state_dict(destination, prefix, keep_vars)

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
        if self.baseline == "moving_average":  # not a hot path: one read is fine
            self._count = int(self._buffers["steps"])

    def min_samples(self) -> int:
        return 2 if self.baseline == "loo" else 1

    def check(self, dist, num_samples, min_samples=1):
        if self.baseline == "loo" and not isinstance(num_samples, bool) and num_samples == 1:
            raise ValueError("score_function:baseline=loo needs num_samples >= 2 (the baseline "
                             "of each sample is the mean cost of the others), got num_samples=1")
        super().check(dist, num_samples, min_samples)

    def _moving_average(self, detached: torch.Tensor) -> torch.Tensor:
        """``f_k - b`` for the costs ``[K, *batch]`` and the moving-average baseline ``b``, which
        is then updated with these costs (after use: b stays independent of the samples it was
        subtracted from).

        The state is kept bias-corrected (as Adam's corrected moment), so reading it is free:
        ``b_0 = 0`` and ``b_t = lerp(b_{t-1}, mean_k f, w_t)`` with
        ``w_t = (1 - decay) / (1 - decay^t)``, which is ``EMA_t / (1 - decay^t)``. Since
        ``mean_k f - b = mean_k (f_k - b)``, the update reuses the centred costs:
        ``b += (w_t / K) sum_k (f_k - b)``. ``w_t`` is a Python number (the step count is kept on
        the host, see ``steps``): three small kernels in all and no host sync."""
        buffers = self._buffers  # the dict itself: nn.Module's attribute lookup costs ~1 µs
        running = buffers["running_cost"]
        if running.shape != detached.shape[1:]:  # first call or a new problem shape: restart
            running = self.running_cost = detached.new_zeros(detached.shape[1:])
            self.steps = torch.zeros((), dtype=torch.long, device=detached.device)
            self._count = 0
        centred = detached - (running if running.dtype == detached.dtype
                              else running.to(detached.dtype))
        self._count += 1
        w = (1 - self.decay) / (1 - self.decay ** self._count)
        running.add_(centred.sum(0), alpha=w / detached.shape[0])
        return centred

    def estimate(self, dist, f, num_samples):
        z, logp = sample_and_log_prob(dist, num_samples)
        cost = self.costs(f, z, dist, num_samples)
        detached = cost.detach()
        score = logp - logp.detach()  # value 0, gradient grad log p
        scale = 1.0
        if self.baseline == "none":
            weight = detached  # b = 0: nothing to subtract
        elif self.baseline == "loo":
            # f_k - mean_{j != k} f_j = K/(K-1) (f_k - sum_j f_j / K): the factor goes into
            # addcmul, the 1/K into sub's alpha (a sum costs a third of a mean on CPU)
            weight = torch.sub(detached, detached.sum(0), alpha=1 / num_samples)
            scale = num_samples / (num_samples - 1)
        else:
            weight = self._moving_average(detached)
        # cost + scale * weight * score, fused: the Monte Carlo value, the score-function gradient
        return torch.addcmul(cost, weight, score, value=scale).mean(0).sum()
