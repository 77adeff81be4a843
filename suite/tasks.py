"""Gradient tasks: a ``(dist, f)`` pair and its reference gradient, built for R replicates at once.

Every task answers ``problem(replicates, device, dtype) -> Problem``: a distribution whose batch
has a leading replicate dimension of size R, a cost ``f``, and the leaves (``[R, ...]`` tensors
that require grad) whose ``.grad`` holds R independent gradient estimates after one
``est(dist, f, K).backward()``. Replicates are independent problems in one batch, as the estimator
contract allows, so R estimates cost one vectorised call instead of a Python loop.

``reference()`` is the exact gradient of ``sum over batch of E[f]`` for ONE replicate, flattened
over the leaves in order (float64): from a closed form, or from exact enumeration of the support.

Tasks register in :data:`suite.registries.TASKS`; a plugin adds its own through the entry-point
group ``estibench.tasks``. Building a task may be expensive (the VAE tasks train a checkpoint),
so the benchmarks build each task once (``setup_cache``) and pickle it.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from torch import distributions as D

from .data import binarised_digits
from .taskbase import GradientTask, Problem, _leaf, bias_target, build_task, register_task

__all__ = ["Problem", "GradientTask", "register_task", "build_task", "BernoulliToy",
           "NonseparableBernoulli", "CategoricalTable", "bias_target",
           "GaussianFamily", "BinaryVAE", "CategoricalVAE", "binarised_digits"]


def _closed_form_grad(objective: Callable[..., torch.Tensor],
                      values: Sequence[torch.Tensor]) -> torch.Tensor:
    leaves = [v.detach().to(torch.float64).clone().requires_grad_() for v in values]
    grads = torch.autograd.grad(objective(*leaves), leaves)
    return torch.cat([g.reshape(-1) for g in grads])


# -- Bernoulli toy ---------------------------------------------------------------------------
class BernoulliToy(GradientTask):
    """``E[(b - t)^2]``, b ~ Bernoulli(σ(θ)) (Tucker et al. 2017, REBAR; Grathwohl et al. 2018,
    RELAX). With ``dims = 1`` a scalar problem; with ``dims = D`` one D-dimensional
    ``Independent`` Bernoulli and ``f(b) = mean_i (b_i - t)^2``, so the score-function term
    carries the whole vector's cost. Closed form: ``∂/∂θ_i = σ'(θ_i)((1 - t)^2 - t^2)/D``; at
    t = 0.499 the gradient is 500 times smaller than f, the hard case for the score function."""

    def __init__(self, t: float = 0.45, dims: int = 1, seed: int = 0):
        self.t = float(t)
        self.dims = int(dims)
        if self.dims < 1:
            raise ValueError(f"BernoulliToy: dims must be >= 1, got {dims!r}")
        g = torch.Generator().manual_seed(seed)
        # one dimension: p = 1/2 as in the REBAR toy; many: logits spread around 0
        self.logits = (torch.zeros(()) if self.dims == 1
                       else torch.randn(self.dims, generator=g, dtype=torch.float64))
        self.replicates = 4000
        self.row_budget = 2 ** 20 // self.dims

    def problem(self, replicates, device="cpu", dtype=torch.float32):
        leaf = _leaf(self.logits, replicates, device, dtype)
        base = D.Bernoulli(logits=leaf)
        t = self.t
        if self.dims == 1:
            return Problem([leaf], base, lambda b: (b - t) ** 2)
        return Problem([leaf], D.Independent(base, 1), lambda b: ((b - t) ** 2).mean(-1))

    def _reference(self):
        t, d = self.t, self.dims

        def objective(logits):
            p = torch.sigmoid(logits)
            return (p * (1 - t) ** 2 + (1 - p) * t ** 2).sum() / d
        return _closed_form_grad(objective, [self.logits])


def _bernoulli(t: float, dims: int):
    size = "one dimension" if dims == 1 else f"{dims} dimensions (Independent)"
    return dict(description=f"E[(b - {t})^2], Bernoulli in {size}; closed-form gradient",
                reference="Tucker et al. 2017 (REBAR); Grathwohl et al. 2018 (RELAX)",
                family="Bernoulli", exact="closed form")


for _t, _tag in ((0.45, "045"), (0.499, "0499")):
    for _dims in (1, 100):
        _name = f"bernoulli{'' if _dims == 1 else _dims}_t{_tag}"
        register_task(_name, **_bernoulli(_t, _dims))(
            functools.partial(BernoulliToy, t=_t, dims=_dims))


# -- non-separable Bernoulli (issue 11) ---------------------------------------------------------
@register_task("bernoulli20_nonseparable", family="Bernoulli",
               description="(w.b - c)^2 over 20 Bernoullis (Independent), random w; closed-form "
                           "gradient", reference="non-separable toy (cf. Dong et al. 2020, DisARM)",
               exact="closed form")
class NonseparableBernoulli(GradientTask):
    """``E[(w·b - c)^2]``, b ~ Π Bernoulli(σ(θ_i)) over ``dims`` variables: the cost couples every
    variable, so per-coordinate tricks (antithetic pairs, Rao-Blackwellisation per variable) differ
    from one another here where they coincide on separable costs. Closed form:
    ``E[(w·b - c)^2] = (w·p - c)^2 + Σ_i w_i^2 p_i (1 - p_i)``, differentiated by autograd. w and
    θ are standard normal (seeded), ``c = Σ w_i / 2 + 1`` (near the mean of w·b, off centre)."""

    def __init__(self, dims: int = 20, seed: int = 0):
        self.dims = int(dims)
        g = torch.Generator().manual_seed(seed)
        self.logits = torch.randn(self.dims, generator=g, dtype=torch.float64)
        self.w = torch.randn(self.dims, generator=g, dtype=torch.float64)
        self.c = float(self.w.sum() / 2 + 1)
        self.row_budget = 2 ** 20 // self.dims

    def problem(self, replicates, device="cpu", dtype=torch.float32):
        leaf = _leaf(self.logits, replicates, device, dtype)
        w, c = self.w.to(device, dtype), self.c
        return Problem([leaf], D.Independent(D.Bernoulli(logits=leaf), 1),
                       lambda b: ((b * w).sum(-1) - c) ** 2)

    def _reference(self):
        w, c = self.w, self.c

        def objective(logits):
            p = torch.sigmoid(logits)
            return ((w * p).sum() - c) ** 2 + (w ** 2 * p * (1 - p)).sum()
        return _closed_form_grad(objective, [self.logits])


# -- categorical toy -------------------------------------------------------------------------
@register_task("categorical_table", family="OneHotCategorical",
               description="OneHotCategorical over 10 classes, batch of 4, random cost table; "
                           "closed-form gradient", reference="categorical toy", exact="closed form")
class CategoricalTable(GradientTask):
    """``E[c_z]`` for z ~ OneHotCategorical(softmax(θ)) with a random cost table c (4 independent
    rows of 10 classes). Closed form: ``Σ_i softmax(θ)_i c_i``."""

    def __init__(self, rows: int = 4, classes: int = 10, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.logits = torch.randn(rows, classes, generator=g, dtype=torch.float64)
        self.table = torch.randn(rows, classes, generator=g, dtype=torch.float64)
        self.row_budget = 2 ** 16

    def problem(self, replicates, device="cpu", dtype=torch.float32):
        leaf = _leaf(self.logits, replicates, device, dtype)
        table = self.table.to(device, dtype)
        return Problem([leaf], D.OneHotCategorical(logits=leaf), lambda z: (z * table).sum(-1))

    def _reference(self):
        return _closed_form_grad(lambda th: (torch.softmax(th, -1) * self.table).sum(),
                                 [self.logits])


register_task("categorical100", family="OneHotCategorical",
              description="one OneHotCategorical over 100 classes, random cost table; "
                          "closed-form gradient (sampling without replacement matters here)",
              reference="categorical toy (cf. Kool et al. 2020)", exact="closed form")(
    functools.partial(CategoricalTable, rows=1, classes=100))


# -- Gaussian family (Mohamed et al. 2020) -------------------------------------------------------
def _quadratic(x, k):
    return (x - k) ** 2


def _quadratic_mean(mu, s, k):
    return (mu - k) ** 2 + s ** 2


def _exp(x, k):
    return torch.exp(-k * x ** 2)


def _exp_mean(mu, s, k):
    return torch.exp(-k * mu ** 2 / (1 + 2 * k * s ** 2)) / torch.sqrt(1 + 2 * k * s ** 2)


def _cos(x, k):
    return torch.cos(k * x)


def _cos_mean(mu, s, k):
    return torch.cos(k * mu) * torch.exp(-(k * s) ** 2 / 2)


#: f(x; k) and E_{x~N(μ,σ²)}[f] in closed form (module-level so tasks pickle)
GAUSSIAN_COSTS = {"quadratic": (_quadratic, _quadratic_mean), "exp": (_exp, _exp_mean),
                  "cos": (_cos, _cos_mean)}


class GaussianFamily(GradientTask):
    """``x ~ N(μ, σ²)`` with f in ``(x - k)^2``, ``exp(-k x^2)``, ``cos(k x)`` (Mohamed, Rosca,
    Figurnov & Mnih 2020, "Monte Carlo gradient estimation in machine learning", section 3): a
    batch over k, gradients with respect to μ and σ from the closed-form expectations."""

    def __init__(self, kind: str = "quadratic", mu: float = 0.5, sigma: float = 1.0,
                 ks: Sequence[float] = (0.1, 0.5, 1.0, 2.0, 5.0)):
        if kind not in GAUSSIAN_COSTS:
            raise ValueError(f"unknown Gaussian cost {kind!r}; expected one of "
                             f"{', '.join(GAUSSIAN_COSTS)}")
        self.kind = kind
        self.cost, self.expectation = GAUSSIAN_COSTS[kind]
        self.ks = torch.tensor(list(ks), dtype=torch.float64)
        self.mu = torch.full_like(self.ks, float(mu))
        self.sigma = torch.full_like(self.ks, float(sigma))
        if not float(sigma) > 0:
            raise ValueError(f"GaussianFamily: sigma must be > 0, got {sigma!r}")

    def problem(self, replicates, device="cpu", dtype=torch.float32):
        mu = _leaf(self.mu, replicates, device, dtype)
        sigma = _leaf(self.sigma, replicates, device, dtype)
        ks, cost = self.ks.to(device, dtype), self.cost
        return Problem([mu, sigma], D.Normal(mu, sigma), lambda x: cost(x, ks))

    def _reference(self):
        return _closed_form_grad(lambda mu, s: self.expectation(mu, s, self.ks).sum(),
                                 [self.mu, self.sigma])


_GAUSSIAN_F = {"quadratic": "(x - k)^2", "exp": "exp(-k x^2)", "cos": "cos(k x)"}
for _kind, _f in _GAUSSIAN_F.items():
    register_task(f"gaussian_{_kind}", family="Normal",
                  description=f"x ~ N(0.5, 1), f = {_f} for k in 0.1..5; closed-form gradient",
                  reference="Mohamed et al. 2020", exact="closed form")(
        functools.partial(GaussianFamily, kind=_kind))


# The VAE tasks live in their own modules; importing them registers them (names re-exported):
# the digits VAEs, and the literature-scale MNIST ones (200 latents, out of the default grid).
from . import tasks_mnist  # noqa: E402,F401
from .tasks_vae import BinaryVAE, CategoricalVAE, _DigitsVAE, _init_mlp, _mlp  # noqa: E402,F401
