"""The gradient-estimator contract and the checks every estimator shares.

Every gradient estimator is called the same way::

    loss = est(dist, f, num_samples=K)   # scalar tensor
    loss.backward()                      # dist's parameters now hold the gradient estimate

* ``dist``: a ``torch.distributions`` object (``Bernoulli``, ``OneHotCategorical``, ``Categorical``,
  ``Normal``, or these in ``Independent``) whose parameters require grad.
* ``f``: maps samples ``[K, *dist.batch_shape, *dist.event_shape]`` to costs ``[K, *batch_shape]``;
  it may hold parameters of its own, which get their gradient through the same ``backward()``.
* ``loss``'s value is the Monte Carlo estimate of ``sum_batch E_{z~dist}[f(z)]`` (for relaxations,
  of f at the relaxed samples); its gradient with respect to the distribution's parameters is the
  estimator's estimate of the gradient of that objective. Batch elements are independent problems,
  which is what lets the harness draw R independent estimates in one call.
"""
from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import distributions as D

from .checks import Described

__all__ = ["Estimator", "unwrap", "family_name", "validation_enabled", "set_validation", "log_prob",
           "sample", "sample_and_log_prob", "DISCRETE", "CONTINUOUS", "ALL_FAMILIES"]

DISCRETE: tuple[type[D.Distribution], ...] = (D.Bernoulli, D.OneHotCategorical, D.Categorical)
CONTINUOUS: tuple[type[D.Distribution], ...] = (D.Normal,)
ALL_FAMILIES = DISCRETE + CONTINUOUS

_VALIDATE = True


def set_validation(enabled: bool) -> None:
    """Turn the finite-cost check on or off. It needs one device->host sync per call, so the
    benchmarks' timed bodies switch it off (like ``Distribution.set_default_validate_args``)."""
    global _VALIDATE
    _VALIDATE = bool(enabled)


def validation_enabled() -> bool:
    return _VALIDATE


_VALUE_ONLY = 0


@contextlib.contextmanager
def value_only():
    """Inside this block an estimator may be called with gradients disabled (under
    ``torch.no_grad()``) and returns only the loss's value: an evaluation, or the warm-up calls
    of a stateful estimator. Outside it, a call with gradients disabled is an error that says so
    (its loss would have no gradient, and torch would only complain at ``backward()``)."""
    global _VALUE_ONLY
    _VALUE_ONLY += 1
    try:
        yield
    finally:
        _VALUE_ONLY -= 1


def unwrap(dist: D.Distribution) -> tuple[D.Distribution, int]:
    """``Independent(Independent(base, a), b)`` -> ``(base, a + b)``."""
    ndims = 0
    while isinstance(dist, D.Independent):
        ndims += dist.reinterpreted_batch_ndims
        dist = dist.base_dist
    return dist, ndims


def _unwrap_exact(dist: D.Distribution) -> tuple[D.Distribution, int]:
    """:func:`unwrap` through exactly ``Independent`` (not its subclasses): the fast paths below
    take only torch's own classes, whose formulas they reproduce."""
    ndims = 0
    while type(dist) is D.Independent:
        ndims += dist.reinterpreted_batch_ndims
        dist = dist.base_dist
    return dist, ndims


def _sum_event(out: torch.Tensor, ndims: int) -> torch.Tensor:
    """Sum the last ``ndims`` dimensions (an ``Independent``'s event) in one op."""
    if ndims == 0:
        return out
    return out.sum(-1) if ndims == 1 else out.sum(tuple(range(-ndims, 0)))


def _bernoulli_log_prob(logits: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``log p(value)`` of ``Bernoulli(logits)``: ``value·l - softplus(l)``, torch's
    ``-binary_cross_entropy_with_logits`` without broadcasting the logits to the samples'
    shape first (three small kernels instead of one large one and its larger backward)."""
    return value * logits - F.softplus(logits)


def _categorical_log_prob(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``logits[..., index]`` for normalised ``logits [*batch, C]`` and ``index [K, *batch]``."""
    index = index.unsqueeze(-1)
    return logits.expand(index.shape[:-1] + logits.shape[-1:]).gather(-1, index).squeeze(-1)


def log_prob(dist: D.Distribution, value: torch.Tensor) -> torch.Tensor:
    """``dist.log_prob(value)``, the same numbers up to rounding, without torch's per-call sample
    validation (a support check with a device->host sync, ~20 % of a small score-function
    estimate) while estibench's validation is off (:func:`set_validation`). Exactly
    ``Bernoulli``, ``Categorical``, ``OneHotCategorical`` and ``Normal`` (alone or in
    ``Independent``) take the formulas of :func:`sample_and_log_prob`; anything else,
    subclasses included, calls ``dist.log_prob``."""
    if _VALIDATE:
        return dist.log_prob(value)
    base, ndims = _unwrap_exact(dist)
    kind = type(base)
    if kind is D.Bernoulli:
        out = _bernoulli_log_prob(base.logits, value)
    elif kind is D.Categorical:
        out = _categorical_log_prob(base.logits, value.long())
    elif kind is D.OneHotCategorical:
        out = _categorical_log_prob(base.logits, value.argmax(-1))
    elif kind is D.Normal:
        out = _normal_log_prob(base, value)
    else:
        return dist.log_prob(value)
    return _sum_event(out, ndims)


def _normal_log_prob(base: D.Normal, value: torch.Tensor) -> torch.Tensor:
    scale = base.scale
    return (-((value - base.loc) ** 2) / (2 * scale ** 2) - scale.log()
            - math.log(math.sqrt(2 * math.pi)))


def sample_and_log_prob(dist: D.Distribution, num_samples: int, *, with_log_prob: bool = True
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(z, log_prob)``: ``num_samples`` samples ``z [K, *batch, *event]`` of ``dist`` (no
    gradient) and ``log p(z) [K, *batch]`` (differentiable in dist's parameters; ``None`` when
    ``with_log_prob`` is false). The hot path every sampling estimator shares.

    Exactly ``Bernoulli``, ``Categorical``, ``OneHotCategorical`` and ``Normal``, alone or in
    ``Independent``, are drawn and scored directly in torch, with no ``torch.distributions``
    call, no sample validation and no broadcasting of parameters to the samples' shape:

    * Bernoulli: ``rand < σ(l)`` (``lt_`` in place); ``log p = z·l - softplus(l)``.
    * Categorical, OneHotCategorical: Gumbel-max written as an exponential race,
      ``argmax(l - log E)``, ``E ~ Exp(1)`` (clamped away from 0); ``log p = l[index]`` (the
      logits are normalised at construction). One-hot samples by ``scatter_``.
    * Normal: ``torch.normal`` (the same draws as ``Normal.sample``); torch's log-density.

    The draws differ from ``dist.sample`` for the discrete families (one kernel each instead
    of ``torch.bernoulli``/``torch.multinomial``) but are exact samples and, from one seed, the
    same numbers run to run. Anything else, subclasses included, uses ``dist.sample`` and
    :func:`log_prob`.
    """
    base, ndims = _unwrap_exact(dist)
    kind = type(base)
    k = num_samples
    if kind is D.Bernoulli:
        probs = base.__dict__.get("probs")  # given at construction or already computed
        p = torch.sigmoid(base.logits.detach()) if probs is None else probs.detach()
        # in place: the comparison writes 1.0/0.0 into u, no bool tensor and no conversion kernel
        z = torch.rand((k,) + p.shape, dtype=p.dtype, device=p.device).lt_(p)
        logp = _bernoulli_log_prob(base.logits, z) if with_log_prob else None
    elif kind is D.Categorical or kind is D.OneHotCategorical:
        logits = base.logits  # normalised by torch at construction
        index = _exponential_race(logits.detach(), k)
        if kind is D.Categorical:
            z = index
        else:
            z = torch.zeros((k,) + logits.shape, dtype=logits.dtype, device=logits.device)
            z.scatter_(-1, index.unsqueeze(-1), 1.0)
        logp = _categorical_log_prob(logits, index) if with_log_prob else None
    elif kind is D.Normal:
        loc, scale = base.loc, base.scale
        shape = (k,) + base.batch_shape
        z = torch.normal(loc.detach().expand(shape), scale.detach().expand(shape))
        logp = _normal_log_prob(base, z) if with_log_prob else None
    else:
        z = dist.sample((k,))
        return z, (log_prob(dist, z) if with_log_prob else None)
    return z, (_sum_event(logp, ndims) if with_log_prob else None)


def sample(dist: D.Distribution, num_samples: int) -> torch.Tensor:
    """``num_samples`` samples ``[K, *batch, *event]`` of ``dist``, drawn as
    :func:`sample_and_log_prob` draws them."""
    return sample_and_log_prob(dist, num_samples, with_log_prob=False)[0]


def _exponential_race(logits: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Category indices ``[K, *batch]`` of ``Categorical(logits=logits)``: ``argmax(l + G)`` with
    the Gumbel noise ``G = -log E``, ``E ~ Exp(1)``, clamped to at least the smallest normal so
    that a category of probability 0 can never win."""
    e = torch.empty((num_samples,) + logits.shape, dtype=logits.dtype, device=logits.device)
    e.exponential_().clamp_min_(torch.finfo(logits.dtype).tiny)
    return (logits - e.log_()).argmax(-1)


def family_name(dist: object) -> str:
    if not isinstance(dist, D.Distribution):
        return type(dist).__name__
    base, ndims = unwrap(dist)
    name = type(base).__name__
    return f"Independent({name}, {ndims})" if ndims else name


def _empty_batch_loss(dist: D.Distribution) -> torch.Tensor:
    """The objective of an empty batch: an empty sum, 0, with a zero gradient for every parameter
    of the distribution (connected to them, so ``backward()`` works as for any other batch)."""
    base, _ = unwrap(dist)
    names = ("logits", "loc", "scale") if isinstance(base, ALL_FAMILIES) else ("mean",)
    params = [getattr(base, n) for n in names if isinstance(getattr(base, n, None), torch.Tensor)]
    params = [p for p in params if p.is_floating_point()]
    if not params:
        return torch.zeros(())
    return sum((p * 0).sum() for p in params[1:]) + (params[0] * 0).sum()


class Estimator(Described, torch.nn.Module):
    """Base class: subclasses set ``families`` and implement :meth:`estimate`.

    A ``torch.nn.Module`` so that stateful estimators (moving-average baselines, learned control
    variates) move with ``.to(device)`` and expose ``.parameters()``.
    """

    name: str = "estimator"
    kind: str = "gradient"
    unbiased: bool = False
    families: tuple[type[D.Distribution], ...] = ()
    needs_rsample: bool = False
    #: the gradient flows through f (relaxations, straight-through, reparameterisation), so an
    #: estimate must run f's backward pass: timed against the pathwise floor too (suite.floor)
    pathwise: bool = False

    def __init__(self) -> None:  # no options: its signature is what the registry reads
        super().__init__()

    def supports(self, dist: object) -> bool:
        if not isinstance(dist, D.Distribution):
            return False
        base, _ = unwrap(dist)
        if not isinstance(base, self.families):
            return False
        return not self.needs_rsample or bool(dist.has_rsample)

    def supported_text(self) -> str:
        names = ", ".join(cls.__name__ for cls in self.families)
        extra = " (with rsample)" if self.needs_rsample else ""
        return f"{names}{extra}, alone or in Independent"

    # -- checks shared by all estimators ---------------------------------------------------
    def check(self, dist: object, num_samples: int, min_samples: int = 1) -> None:
        if not self.supports(dist):
            raise TypeError(f"estimator {self.describe()!r} does not support "
                            f"{family_name(dist)}; it supports {self.supported_text()}")
        if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
            raise ValueError(f"{self.describe()}: num_samples must be an int >= {min_samples}, "
                             f"got {num_samples!r} ({type(num_samples).__name__})")
        if num_samples < min_samples:
            raise ValueError(f"{self.describe()}: num_samples must be >= {min_samples}, "
                             f"got {num_samples}")

    def costs(self, f: Callable, z: torch.Tensor, dist: D.Distribution, k: int) -> torch.Tensor:
        """Call f and check what it returned: a real floating tensor of shape
        ``[k, *batch_shape]`` with finite values (the value check only while validating)."""
        out = f(z)
        expected = (k, *dist.batch_shape)
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"{self.describe()}: f must return a tensor of costs with shape "
                             f"{list(expected)}, got {type(out).__name__}")
        if not out.is_floating_point():  # complex, integer or bool: no real gradient to give
            raise ValueError(f"{self.describe()}: f returned costs of dtype {out.dtype}; expected "
                             f"a real floating tensor (float16, bfloat16, float32 or float64) of "
                             f"shape {list(expected)}")
        if tuple(out.shape) != expected:
            raise ValueError(f"{self.describe()}: f returned costs of shape {list(out.shape)} for "
                             f"samples of shape {list(z.shape)}; expected [num_samples, "
                             f"*batch_shape] = {list(expected)}")
        if _VALIDATE and not bool(torch.isfinite(out).all()):
            bad = int((~torch.isfinite(out)).sum())
            raise ValueError(f"{self.describe()}: f returned {bad} non-finite cost(s) "
                             f"(NaN or inf) out of {out.numel()}; expected finite costs")
        return out

    # -- the contract ----------------------------------------------------------------------
    def forward(self, dist: D.Distribution, f: Callable, num_samples: int = 1) -> torch.Tensor:
        self.check(dist, num_samples, self.min_samples())
        value_only = not torch.is_grad_enabled()
        if value_only and not _VALUE_ONLY:  # no_grad() or inference_mode(): nothing to backward
            raise RuntimeError(
                f"{self.describe()}: called with gradients disabled (inside torch.no_grad() or "
                f"torch.inference_mode()); the estimate is a surrogate loss whose backward() "
                f"gives the gradient, so call it with gradients enabled (or inside "
                f"estimators.value_only() when only the loss's value is wanted)")
        if math.prod(dist.batch_shape) == 0:
            # An empty batch: the objective is an empty sum, 0, and so is its gradient. f is not
            # called (torch's Independent.log_prob cannot even reshape empty samples).
            loss = _empty_batch_loss(dist)
        else:
            loss = self.estimate(dist, f, int(num_samples))  # numpy ints become plain ints
        if not loss.requires_grad and not value_only:  # an attribute: no host sync
            raise ValueError(
                f"{self.describe()}: the estimate has no gradient: no parameter of the "
                f"{family_name(dist)} distribution (nor of f) requires grad; create the "
                f"parameters with requires_grad=True (e.g. torch.zeros(3, requires_grad=True))")
        return loss

    def min_samples(self) -> int:
        return 1

    def max_samples(self, dist: D.Distribution) -> int | None:
        """The largest ``num_samples`` it accepts for ``dist`` (None: no limit). Sampling
        without replacement cannot draw more distinct points than the support holds."""
        return None

    def estimate(self, dist: D.Distribution, f: Callable, num_samples: int) -> torch.Tensor:
        raise NotImplementedError
