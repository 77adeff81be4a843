"""Double control variates (Titsias & Shi 2022, "Double control variates for gradient estimation in
discrete latent variable models", AISTATS; reference code thjashin/double-cv), for Bernoulli and
OneHotCategorical (alone or in Independent), and the machinery RODEO (``estimators/stein.py``)
shares with it: K samples, f and its gradient ``∇_b f`` at each of them, a leave-one-out (LOO)
baseline, learned coefficients trained online.

With K samples ``b_k``, ``f_k = f(b_k)``, ``∇_k = ∇_b f(b_k)`` (f at the discrete samples, its
gradient with respect to its input there), ``p`` the distribution's mean (``σ(θ)``, or
``softmax(θ)`` per categorical) and ``s_k = b_k - p`` the score ``∇_θ log p(b_k)`` with respect to
the logits θ::

    ḡ_k = mean_{j≠k} ∇_j                      (the LOO average gradient)
    c_k = α ḡ_k · (b_k - p)                    (the second, Taylor control variate; a scalar)
    ĝ = mean_k [f_k + c_k - mean_{j≠k}(f_j + c_j)] s_k  -  α Cov(b) mean_k ∇_k

with ``Cov(b) v = p(1 - p) ⊙ v`` (Bernoulli) or ``p ⊙ (v - p·v)`` per categorical variable. This is
the reference code's formula (``get_grad_estimation``, ``grad_type == "double_cv"``, every K), with
its sign convention for α. **Unbiased for any α** that does not depend on the current draw: the
first term without the c's is REINFORCE-LOO; ``E[c_k s_k] = α Cov(b) E[ḡ_k]`` (ḡ_k is independent
of b_k), which the last term subtracts (its ``mean_k ∇_k`` has the same expectation), and
``E[c_j s_k] = 0`` for j ≠ k (c_j is linear in ``b_j - p``, whose mean is 0 given the others).
For a linear f, ``α = -1`` makes ĝ exact (zero variance): ``c_k`` is then minus the Taylor
expansion of ``f_k - mean_{j≠k} f_j`` around the other samples.

**Tuned or fixed.** ``double_cv`` (``tune=true``, the default, the paper's) learns α online: since
``E[ĝ]`` does not depend on α, ``∂Var(ĝ)/∂α = ∂E[||ĝ||²]/∂α``; each call, after forming the
estimate it returns, takes one Adam step (``lr``) on the mean over batch elements of ``||ĝ||²``
(the reference code's ``hyper_optimizer`` on ``mean(eta_grads²)``); ``est.eval()`` freezes α.
``double_cv:tune=false`` ("double CV, fixed") keeps α at its starting value. ``alpha`` is that
value: -1 here (exact for a linear f, so the fixed variant is not plain LOO), where the reference
code starts its learned α at 0 (plain LOO) and trains it for 10⁶ steps; the suite's harness warms
a stateful estimator up for 5 calls only.

**Surrogate.** The loss's value is ``mean_k f_k`` (the Monte Carlo estimate of E f), its gradient
with respect to the distribution's logits is ĝ (applied linearly through ``base.logits``, so an
encoder producing the logits gets it by the chain rule) and f's own parameters get that mean's
pathwise gradient.

**Cost.** ``evaluations(dist, K) = K`` f evaluations and K gradients of f with respect to its
input (one backward pass through f at the K samples, inside the call; ``gradients_per_sample =
1``). f must accept float samples and be differentiable in them (at the discrete points).
"""
from __future__ import annotations

import torch
from torch import distributions as D

from . import register
from .base import _sum_event, sample, unwrap
from .checks import number
from .control_variates import LearnedControlVariate

__all__ = ["DoubleCV", "SampleGradientLOO", "sample_gradients"]


def sample_gradients(est, dist: D.Distribution, f, k: int):
    """``(b, cost, grad)``: K exact samples ``b [K, *batch, *event]`` (no gradient), ``cost =
    f(b) [K, *batch]`` (its graph to f's own parameters kept) and ``grad = ∇_b f(b)`` (detached,
    the shape of b), from one evaluation of f and one backward pass through it."""
    b = sample(dist, k)
    with torch.enable_grad():  # the harness warms stateful estimators up under no_grad
        b_in = b.detach().requires_grad_()
        cost = est.costs(f, b_in, dist, k)
        if not cost.requires_grad:
            raise ValueError(f"{est.describe()}: f is not differentiable at the samples; "
                             "this estimator needs the gradient of f with respect to its input")
        grad, = torch.autograd.grad(cost.sum(), b_in, retain_graph=True, allow_unused=True)
    if grad is None:  # f does not depend on its input
        grad = torch.zeros_like(b)
    return b, cost, grad.detach().to(b.dtype)


class SampleGradientLOO(LearnedControlVariate):
    """Shared by double CV and RODEO: Bernoulli/OneHotCategorical, K >= 2 samples, K f
    evaluations and K gradients of f, learned coefficients trained online by Adam on ``||ĝ||²``
    (the optimiser of :class:`estimators.control_variates.LearnedControlVariate`)."""

    unbiased = True
    families = (D.Bernoulli, D.OneHotCategorical)
    #: f evaluations per sample and per estimate
    evaluations_per_sample = 1
    evaluations_per_call = 0
    #: gradients of f with respect to its input per sample (one backward pass through f)
    gradients_per_sample = 1

    def evaluations(self, dist, num_samples: int) -> int:
        """f evaluations of one estimate with ``num_samples`` = K: K."""
        return int(num_samples)

    def gradient_evaluations(self, dist, num_samples: int) -> int:
        """Gradients of f (with respect to its input) of one estimate: K."""
        return int(num_samples)

    def min_samples(self) -> int:
        return 2

    def check(self, dist, num_samples, min_samples=1):
        if not isinstance(num_samples, bool) and num_samples == 1:
            raise ValueError(f"{self.describe()} needs num_samples >= 2 (its baseline of each "
                             f"sample is built from the others), got num_samples=1")
        super().check(dist, num_samples, min_samples)

    def gradient(self, base, b, cost, grad, theta, batch_shape, k) -> torch.Tensor:
        """ĝ with respect to the logits, ``theta``'s shape, differentiable in the trained
        parameters when training (``cost``, ``grad`` and ``theta`` are detached)."""
        raise NotImplementedError

    def estimate(self, dist, f, num_samples):
        base, _ = unwrap(dist)
        logits = base.logits
        k = num_samples
        b, cost, grad = sample_gradients(self, dist, f, k)
        params = self.trained_parameters() if self.training else []
        with torch.set_grad_enabled(bool(params)):
            g = self.gradient(base, b, cost.detach(), grad, logits.detach(), dist.batch_shape, k)
            if params:
                batch = max(1, dist.batch_shape.numel())
                objective = g.to(torch.promote_types(g.dtype, torch.float32)).pow(2).sum() / batch
                grads = torch.autograd.grad(objective, params, allow_unused=True)
        if params:
            self._adam_step(params, grads)  # after the estimate: it used this call's parameters
        g = g.detach()
        return cost.mean(0).sum() + (g * (logits - logits.detach())).sum()


def mean_and_covariance(base, theta: torch.Tensor):
    """``(p, cov)``: the mean of the one-hot/binary sample and ``v -> Cov(b) v`` (Bernoulli: a
    diagonal ``p(1 - p)``; categorical: ``diag(p) - p pᵀ`` over the last dim)."""
    if isinstance(base, D.Bernoulli):
        p = torch.sigmoid(theta)
        return p, lambda v: p * (1 - p) * v
    p = torch.softmax(theta, -1)
    return p, lambda v: p * (v - (p * v).sum(-1, keepdim=True))


def loo_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """``mean_{j≠k} x_j`` over the leading sample dim."""
    return (x.sum(0) - x) / (k - 1)


@register
class DoubleCV(SampleGradientLOO):
    """REINFORCE-LOO with a second, Taylor control variate alpha mean_{j!=k} grad f(b_j).(b_k - p)
    and its analytic correction; tune=true (default) learns alpha online by variance
    minimisation"""

    name = "double_cv"
    display_name = "double CV"
    reference = "Titsias & Shi 2022"
    variants = ("double_cv", "double_cv:tune=false")
    variant_names = {"double_cv:tune=false": "double CV, fixed"}

    def __init__(self, tune: bool = True, alpha: float = -1.0, lr: float = 0.01):
        super().__init__()
        alpha = number("double_cv", "alpha", alpha)
        self.lr = number("double_cv", "lr", lr, low=0.0, low_open=True)
        self.tune = bool(tune)
        if self.tune:
            self.alpha = torch.nn.Parameter(torch.tensor(alpha))
            self.register_buffer("adam_step", torch.zeros((), dtype=torch.long))
            for i, p in enumerate(self.trained_parameters()):
                self._moments(i, p)
        else:
            self.name = "double_cv:tune=false"
            self.alpha = alpha

    def trained_parameters(self):
        return [self.alpha] if self.tune else []

    def gradient(self, base, b, cost, grad, theta, batch_shape, k):
        extra = b.dim() - 1 - len(batch_shape)  # event dims of the base distribution's samples
        p, cov = mean_and_covariance(base, theta)
        score = b - p
        alpha = self.alpha.to(theta) if self.tune else self.alpha
        c = alpha * _sum_event(loo_mean(grad, k) * score, extra)  # [K, *batch]
        v = cost + c
        weight = v - loo_mean(v, k)
        weight = weight.reshape(weight.shape + (1,) * extra)
        return (weight * score).mean(0) - alpha * cov(grad.mean(0))
