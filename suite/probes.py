"""Landscape probes for any training loop: how smooth the loss is where the optimiser goes.

A :class:`LandscapeProbe` is called after every optimiser step and records, per step:

* ``smoothness``: the local smoothness along the step just taken,
  ``||g_t - g_{t-1}|| / ||θ_t - θ_{t-1}||`` (Zhang, He, Sra & Jadbabaie, ICLR 2020), paired with
  ``grad_norm = ||g_{t-1}||``, the gradient norm where the step started;
* every ``direction_every`` steps (at ``θ_k, θ_2k, ...``), given a ``closure``, the landscape along the current gradient
  direction (Santurkar, Tsipras, Ilyas & Madry, NeurIPS 2018): with ``g = ∇L(θ)`` at the current
  parameters and ``η`` over ``etas``, ``loss_range = max - min`` of ``L(θ - ηg)`` (``η = 0``
  included), ``gradient_change_range = max - min`` of ``||∇L(θ) - ∇L(θ - ηg)||`` and
  ``effective_beta = max ||∇L(θ) - ∇L(θ - ηg)|| / ||ηg||``. The probe puts the parameters back
  afterwards and never touches ``.grad``.

At the end :meth:`LandscapeProbe.fit` fits ``(L0, L1)`` of ``smoothness ≤ L0 + L1·||g||``:
:func:`fit_l0_l1` is a **quantile regression** (pinball loss at ``q = 0.9``, solved exactly as a
linear programme, ``L0, L1 ≥ 0``), i.e. the line under which 90 % of the points lie: an upper
envelope that one outlier cannot move, as a max would be.

The calling convention is what a loop holds right after ``optimizer.step()``::

    probe = LandscapeProbe(etas=(0.5, 1, 2, 4), lr=lr, direction_every=10)
    for step in range(n):
        loss = closure(); grads = torch.autograd.grad(loss, params)   # g_t at θ_t
        ...; optimizer.step()                                         # params now hold θ_{t+1}
        probe(params, grads, loss, closure)

``params`` are the parameters after the step and ``grad`` the (unclipped) gradient that was
computed before it, at the previous parameters; ``grad=None`` reads each parameter's ``.grad``
(then a task that clips in place reports clipped gradients). ``closure()`` returns the training
loss at the current parameters as a differentiable tensor and must have no side effects a
training step would see (BatchNorm in training mode uses batch statistics, so the loss is the
same; its running statistics do move). :meth:`LandscapeProbe.hook` adapts a probe to the
``after_update(step)`` callback of :func:`suite.training.train_on_schedule`, so any training
task can attach one. Nothing here runs torch work at import.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["LandscapeProbe", "fit_l0_l1", "direction_probe", "ENVELOPE_QUANTILE"]

#: the quantile of the (L0, L1) envelope fit
ENVELOPE_QUANTILE = 0.9


def _flat(tensors):  # torch is imported late: no annotation
    import torch
    return torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])


def fit_l0_l1(grad_norm: Sequence[float], smoothness: Sequence[float],
              quantile: float = ENVELOPE_QUANTILE) -> tuple[float, float]:
    """``(L0, L1) ≥ 0`` minimising the pinball loss of ``smoothness - (L0 + L1·grad_norm)`` at
    ``quantile``: the ``quantile``-th conditional quantile line (a linear programme). Non-finite
    points are dropped; fewer than two points give ``(nan, nan)``."""
    x, y = np.asarray(grad_norm, float), np.asarray(smoothness, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return math.nan, math.nan
    from scipy.optimize import linprog
    n = len(x)
    # variables: L0, L1, u (n, above the line), v (n, below it); y = L0 + L1 x + u - v
    cost = np.concatenate([[0.0, 0.0], np.full(n, quantile), np.full(n, 1.0 - quantile)])
    a_eq = np.hstack([np.ones((n, 1)), x[:, None], np.eye(n), -np.eye(n)])
    res = linprog(cost, A_eq=a_eq, b_eq=y, bounds=[(0, None)] * (2 + 2 * n), method="highs")
    if not res.success:
        return math.nan, math.nan
    return float(res.x[0]), float(res.x[1])


def direction_probe(params, closure: Callable, etas: Sequence[float]) -> dict[str, float]:
    """The landscape along ``-∇L`` at the current ``params`` (Santurkar et al. 2018): loss range,
    gradient-change range and effective β over the step sizes ``etas``; the parameters are
    restored afterwards."""
    import torch
    params = [p for p in params if p.requires_grad]
    saved = [p.detach().clone() for p in params]
    try:
        with torch.enable_grad():
            loss0 = closure()
            g0 = torch.autograd.grad(loss0, params)
        flat0 = _flat(g0)
        gnorm = float(torch.linalg.vector_norm(flat0))
        losses, changes, betas = [float(loss0.detach())], [0.0], []
        for eta in etas:
            with torch.no_grad():
                for p, s, g in zip(params, saved, g0):
                    p.copy_(s - eta * g)
            with torch.enable_grad():
                loss = closure()
                g = torch.autograd.grad(loss, params)
            change = float(torch.linalg.vector_norm(_flat(g) - flat0))
            losses.append(float(loss.detach()))
            changes.append(change)
            betas.append(change / (eta * gnorm) if eta * gnorm > 0 else math.nan)
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
    finite = all(math.isfinite(v) for v in losses + changes)
    nan = math.nan
    return {"loss_range": max(losses) - min(losses) if finite else nan,
            "gradient_change_range": max(changes) - min(changes) if finite else nan,
            "effective_beta": max(betas) if finite and betas else nan,
            "direction_grad_norm": gnorm}


class LandscapeProbe:
    """Records the smoothness along every step and, every ``direction_every`` steps, the
    landscape along the gradient (see the module docstring). ``etas`` are step sizes, multiplied
    by ``lr`` (so ``etas=(0.5, 1, 2, 4), lr=0.1`` probes 0.05 to 0.4)."""

    def __init__(self, etas: Sequence[float] = (0.5, 1.0, 2.0, 4.0), lr: float = 1.0,
                 direction_every: int = 0):
        self.etas = [float(e) * float(lr) for e in etas]
        self.direction_every = int(direction_every)
        self.steps = 0
        self.records: list[dict[str, float]] = []  # one per step: step, grad_norm, smoothness, ...
        # call t sees θ_{t+1} and g_t = ∇L(θ_t): the previous call's parameters are θ_t, the
        # ones before them θ_{t-1}, and the previous call's gradient g_{t-1} (the first
        # smoothness comes at the third call: θ_0 is never seen)
        self._prev_params = None
        self._prev_prev_params = None
        self._prev_grad = None

    def __call__(self, params, grad=None, loss=None, closure: Callable | None = None) -> None:
        params = [p for p in params if p.requires_grad] if grad is None else list(params)
        grads = [p.grad for p in params] if grad is None else list(grad)
        if any(g is None for g in grads):
            raise ValueError("LandscapeProbe: a parameter has no gradient; pass grad= or call "
                             "the probe after backward()")
        theta, g = _flat(params), _flat(grads)
        rec: dict[str, float] = {"step": float(self.steps), "grad_norm": math.nan,
                                 "smoothness": math.nan}
        if loss is not None:
            rec["loss"] = float(loss.detach() if hasattr(loss, "detach") else loss)
        if self._prev_prev_params is not None:
            import torch
            moved = float(torch.linalg.vector_norm(self._prev_params - self._prev_prev_params))
            change = float(torch.linalg.vector_norm(g - self._prev_grad))
            rec["grad_norm"] = float(torch.linalg.vector_norm(self._prev_grad))
            rec["smoothness"] = change / moved if moved > 0 else math.nan
        if (closure is not None and self.direction_every
                and (self.steps + 1) % self.direction_every == 0):  # at θ_k, θ_2k, ...
            rec.update(direction_probe(params, closure, self.etas))
        self.records.append(rec)
        self._prev_prev_params, self._prev_params, self._prev_grad = self._prev_params, theta, g
        self.steps += 1

    def hook(self, params, closure: Callable | None = None) -> Callable[[int], None]:
        """A ``callback(step)`` reading ``params`` and their ``.grad`` after each update: the
        ``after_update`` argument of :func:`suite.training.train_on_schedule`."""
        params = list(params)

        def after_update(step: int) -> None:
            self(params, None, None, closure)
        return after_update

    def column(self, key: str) -> np.ndarray:
        return np.array([r.get(key, math.nan) for r in self.records], dtype=float)

    def fit(self, quantile: float = ENVELOPE_QUANTILE) -> tuple[float, float]:
        """``(L0, L1)`` of ``smoothness ≤ L0 + L1·||g||`` over the recorded steps."""
        return fit_l0_l1(self.column("grad_norm"), self.column("smoothness"), quantile)
