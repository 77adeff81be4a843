"""Update transforms applied to parameters' ``.grad``: global-norm clipping, two rules.

With ``g`` every parameter's gradient (or update-search pseudo-gradient) flattened together
and ``γ > 0`` the threshold:

* ``clip_hard``:   ``g ← g · min(1, γ/||g||)``   (the usual rule, as ``clip_grad_norm_``)
* ``clip_smooth``: ``g ← g · γ/(||g|| + γ)``

The smooth factor is never above the hard one and never below half of it
(``s ≤ h ≤ 2s``), so the two rules are interchangeable up to a factor 2 in the step size.
Why clip at all (Zhang, He, Sra & Jadbabaie, "Why gradient clipping accelerates training: a
theoretical justification for adaptivity", ICLR 2020): under the relaxed
``(L0, L1)``-smoothness ``||∇²f|| ≤ L0 + L1·||∇f||`` the local smoothness grows with the gradient
norm, so the good step is ``~ 1/(L0 + L1||g||)``, which is what both factors implement; a fixed
step can be arbitrarily slower. Heavy-tailed estimators (the score function) are where it shows.

Like ``torch.nn.utils.clip_grad_norm_`` these act in place on a list of parameters, skip
parameters without a gradient, return the total norm before clipping, and make no host sync
(the factor stays a tensor). A non-finite norm is passed through (the grads become NaN/0), as
``clip_grad_norm_(error_if_nonfinite=False)`` does.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import torch

from .checks import choice, number

__all__ = ["global_norm", "clip_hard", "clip_smooth", "CLIPPING", "clipping",
           "hard_factor", "smooth_factor"]


def _grads(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(params, torch.Tensor):
        params = [params]
    return [p.grad for p in params if p.grad is not None]


def _gamma(gamma, rule: str) -> float:
    return number(rule, "gamma", gamma, low=0.0, low_open=True)


def _norm(grads: list[torch.Tensor]) -> torch.Tensor:
    if not grads:
        return torch.zeros(())
    device, dtype = grads[0].device, grads[0].dtype
    norms = [torch.linalg.vector_norm(g.detach()).to(device, dtype) for g in grads]
    return torch.linalg.vector_norm(torch.stack(norms))


def global_norm(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """Euclidean norm of all ``.grad`` together (0 when no parameter has a gradient)."""
    return _norm(_grads(params))


def hard_factor(norm: torch.Tensor, gamma: float) -> torch.Tensor:
    """``min(1, γ/||g||)`` (1 for a zero gradient)."""
    return torch.clamp(gamma / norm, max=1.0)


def smooth_factor(norm: torch.Tensor, gamma: float) -> torch.Tensor:
    """``γ/(||g|| + γ)``."""
    return gamma / (norm + gamma)


def _scale(params, gamma: float, factor_fn) -> torch.Tensor:
    # read params once: it may be a one-shot iterator such as model.parameters()
    grads = _grads(params)
    if not grads:
        return torch.zeros(())
    norm = _norm(grads)
    factor = factor_fn(norm, gamma)
    for g in grads:
        g.detach().mul_(factor.to(g.device, g.dtype))
    return norm


def clip_hard(params: Iterable[torch.Tensor], gamma: float) -> torch.Tensor:
    """``g ← g · min(1, γ/||g||)`` on the global norm; returns ``||g||`` before clipping.

    Zhang et al., ICLR 2020 (see the module docstring)."""
    return _scale(params, _gamma(gamma, "clip_hard"), hard_factor)


def clip_smooth(params: Iterable[torch.Tensor], gamma: float) -> torch.Tensor:
    """``g ← g · γ/(||g|| + γ)`` on the global norm; returns ``||g||`` before clipping.

    Within a factor 2 of :func:`clip_hard`; Zhang et al., ICLR 2020."""
    return _scale(params, _gamma(gamma, "clip_smooth"), smooth_factor)


#: rule name -> in-place transform ``(params, gamma) -> norm before clipping``
CLIPPING: dict[str, Callable[..., torch.Tensor]] = {"hard": clip_hard, "smooth": clip_smooth}


def clipping(rule: str, gamma: float) -> Callable[[Iterable[torch.Tensor]], torch.Tensor]:
    """A one-argument transform for composition: ``clip = clipping("hard", 1.0); clip(params)``."""
    choice("clipping", "rule", rule, sorted(CLIPPING))
    _gamma(gamma, f"clip_{rule}")
    return partial(CLIPPING[rule], gamma=gamma)
