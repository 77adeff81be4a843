"""Score function with a relaxation-based control variate: REBAR (Tucker et al. 2017, "REBAR:
Low-variance, unbiased gradient estimates for discrete latent variable models"), fixed or tuned
online, and the machinery RELAX (``estimators/relax.py``) shares with it.

With z the Gumbel (logistic) perturbation of the logits θ, b = H(z) the discrete sample, z̃ ~ p(z | b)
a second, conditional perturbation and c(·) a control variate of the relaxed sample::

    ĝ = [f(b) - c(z̃)] ∇_θ log p(b) + ∇_θ c(z) - ∇_θ c(z̃)

is unbiased for ∇_θ E[f(b)] for any c that does not depend on the current draw (the last two terms
have equal expectations, since z̃ given b ~ p(b) is distributed as z; the first corrects the score
function term). REBAR's control variate is ``c(z) = η f(σ_λ(z))``, f at the relaxed sample of
temperature λ (``sigmoid(z/λ)``, or ``softmax(z/λ)`` for categoricals), so f must accept relaxed
(continuous) samples and be differentiable there.

**Fixed or tuned.** ``rebar`` (``tune=false``, the default) keeps η and λ fixed; it has no state.
``rebar:tune=true`` learns η and log λ online, as in the paper: since ``E[ĝ]`` does not depend on
them, ``∂Var(ĝ)/∂(η, log λ) = ∂E[||ĝ||²]/∂(η, log λ)``; each call computes ĝ with
``create_graph=True`` through the estimate and takes one Adam step (``lr``) on the mean over batch
elements of ``||ĝ||²``, *after* the estimate it returns has been formed (so the η, λ of a call are
independent of its samples). η and log λ are the module's ``.parameters()`` (one scalar each, shared
by all batch elements); ``est.eval()`` freezes them. The temperature and eta options are the
starting values.

**Surrogate.** ĝ is computed inside the call with respect to a detached copy of the distribution's
logits (``base.logits``) and applied to them linearly, so the loss's value is the mean of f over the
K discrete samples (the Monte Carlo estimate of E f), its gradient with respect to the logits is ĝ
(chained to whatever produced them) and f's own parameters get that mean's pathwise gradient.

**Cost.** ``evaluations_per_sample = 3``: f(b), f(σ_λ(z)) and f(σ_λ(z̃)) per sample, plus backward
passes through f at the relaxed samples (and a second-order one when tuning).

**Conditional samples** (Tucker et al. 2017, appendix), computed in log space so that no
intermediate overflows at extreme logits (float32 gaps beyond ~89, float16 beyond ~11; issue 13):
Bernoulli, with ``u = 1 - p(1 - v)`` if b = 1 else ``v (1 - p)`` and ``z̃ = logit(p) + logit(u)``,
written with ``logsigmoid`` and ``logaddexp``; categorical, ``z̃_b = -log(-log v_b)`` and
``z̃_i = -logaddexp(log(-log v_i) - log p_i, log(-log v_b))`` for i ≠ b.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import distributions as D

from . import register
from .base import Estimator, unwrap
from .checks import number
from .relaxed import RELAXABLE, _check_temperature, _uniform, gumbel_noise, logistic_noise

__all__ = ["Rebar", "LearnedControlVariate", "perturbations"]


def perturbations(base: D.Distribution, logits: torch.Tensor, num_samples: int):
    """(z, b, z̃): an unconditional perturbation of ``logits``, its discrete sample (detached) and
    a conditional one, for ``base`` a Bernoulli or OneHotCategorical."""
    shape = torch.Size((num_samples,)) + logits.shape
    v = _uniform(shape, logits)
    if isinstance(base, D.Bernoulli):
        z = logits + logistic_noise(shape, logits)
        b = (z.detach() > 0).to(logits.dtype)
        ls_pos, ls_neg = F.logsigmoid(logits), F.logsigmoid(-logits)  # log p, log(1 - p)
        log_v, log_1mv = torch.log(v), torch.log1p(-v)
        # b = 1: u = (1 - p) + p v, 1 - u = p (1 - v); b = 0: u = v (1 - p), 1 - u = p + (1 - p)(1 - v)
        one = logits + torch.logaddexp(ls_neg, ls_pos + log_v) - ls_pos - log_1mv
        zero = logits + log_v + ls_neg - torch.logaddexp(ls_pos, ls_neg + log_1mv)
        return z, b, torch.where(b > 0, one, zero)
    log_p = torch.log_softmax(logits, -1)
    z = log_p + gumbel_noise(shape, logits)
    b = F.one_hot(z.detach().argmax(-1), z.shape[-1]).to(logits.dtype)
    log_e = torch.log(-torch.log(v))  # log of the Exp(1) draws -log v
    log_eb = (log_e * b).sum(-1, keepdim=True)
    others = -torch.logaddexp(log_e - log_p, log_eb)
    return z, b, torch.where(b > 0, -log_e, others)


def score(base: D.Distribution, logits: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``∇_logits log p(b)``: ``b - σ(θ)`` (Bernoulli) or ``b - softmax(θ)`` (categorical)."""
    if isinstance(base, D.Bernoulli):
        return b - torch.sigmoid(logits)
    return b - torch.softmax(logits, -1)


class LearnedControlVariate(Estimator):
    """ĝ = [f(b) - c(z̃)] ∇log p(b) + ∇c(z) - ∇c(z̃) with c's parameters trained online by Adam on
    ``||ĝ||²`` (the subclass defines c and lists its trained parameters)."""

    unbiased = True
    families = RELAXABLE
    #: f evaluations per sample: f(b), f(σ_λ(z)), f(σ_λ(z̃))
    evaluations_per_sample = 3
    #: f evaluations per estimate that do not scale with K
    evaluations_per_call = 0
    betas = (0.9, 0.999)

    def evaluations(self, dist, num_samples: int) -> int:
        """f evaluations of one estimate with ``num_samples`` = K: 3K."""
        return 3 * int(num_samples)

    # -- optimiser state: buffers, so that it moves with .to() and is in the state_dict --------
    def _moments(self, i: int, p: torch.Tensor):
        for which in ("m", "v"):
            name = f"adam_{which}{i}"
            buf = self._buffers.get(name)
            if buf is None or buf.shape != p.shape:
                self.register_buffer(name, torch.zeros_like(p.detach()))
        return self._buffers[f"adam_m{i}"], self._buffers[f"adam_v{i}"]

    def trained_parameters(self) -> list[torch.nn.Parameter]:
        return []

    @torch.no_grad()
    def _adam_step(self, params, grads) -> None:
        b1, b2 = self.betas
        self.adam_step += 1
        t = self.adam_step.to(torch.float64)
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                continue
            m, v = self._moments(i, p)
            g = torch.nan_to_num(g.to(p.dtype), nan=0.0, posinf=0.0, neginf=0.0)
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            step = (m / c1.to(p.dtype)) / ((v / c2.to(p.dtype)).sqrt() + 1e-8)
            p.sub_(self.lr * step)

    # -- the relaxation and the control variate ------------------------------------------------
    def temperature_value(self, like: torch.Tensor) -> torch.Tensor | float:
        raise NotImplementedError

    def relax(self, z: torch.Tensor, base: D.Distribution, like: torch.Tensor) -> torch.Tensor:
        scaled = z / self.temperature_value(like)
        return torch.sigmoid(scaled) if isinstance(base, D.Bernoulli) else torch.softmax(scaled, -1)

    def control(self, soft: torch.Tensor, f, dist, k: int, like: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def estimate(self, dist, f, num_samples):
        base, _ = unwrap(dist)
        logits = base.logits
        k = num_samples
        params = self.trained_parameters() if self.training else []
        with torch.enable_grad():  # the harness warms stateful estimators up under no_grad
            theta = logits.detach().requires_grad_()
            z, b, z_tilde = perturbations(base, theta, k)
            cost = self.costs(f, b, dist, k)
            c_z = self.control(self.relax(z, base, theta), f, dist, k, theta)
            c_tilde = self.control(self.relax(z_tilde, base, theta), f, dist, k, theta)
            diff = (c_z - c_tilde).mean(0).sum()
            if diff.requires_grad:
                reparam, = torch.autograd.grad(diff, theta, create_graph=bool(params),
                                               allow_unused=True)
            else:
                reparam = None
            if reparam is None:
                raise ValueError(f"{self.describe()}: the control variate does not depend on the "
                                 "logits; f must be differentiable at relaxed samples")
            coef = cost.detach() - (c_tilde if params else c_tilde.detach())
            extra = theta.dim() - len(dist.batch_shape)  # event dims of the base distribution
            coef = coef.reshape(coef.shape + (1,) * extra)
            g = (coef * score(base, theta, b)).mean(0) + reparam
            if params:
                batch = max(1, dist.batch_shape.numel())
                objective = g.to(torch.promote_types(g.dtype, torch.float32)).pow(2).sum() / batch
                grads = torch.autograd.grad(objective, params, allow_unused=True)
        if params:
            self._adam_step(params, grads)  # after the estimate: it used this call's η, λ, φ
        g = g.detach()
        return cost.mean(0).sum() + (g * (logits - logits.detach())).sum()


def _finite(owner: str, option: str, value) -> float:
    return number(owner, option, value)


@register
class Rebar(LearnedControlVariate):
    """score function with REBAR's Gumbel-relaxation control variate eta f(sig_lambda(z));
    tune=true learns eta and log lambda online by variance minimisation"""

    name = "rebar"
    display_name = "REBAR"
    reference = "Tucker et al. 2017"
    variants = ("rebar", "rebar:tune=true")

    def __init__(self, temperature: float = 0.5, eta: float = 1.0, tune: bool = False,
                 lr: float = 0.01):
        super().__init__()
        temperature = _check_temperature("rebar", temperature)
        eta = _finite("rebar", "eta", eta)
        self.lr = number("rebar", "lr", lr, low=0.0, low_open=True)
        self.tune = bool(tune)
        if self.tune:
            self.name = "rebar:tune=true"
            self.eta = torch.nn.Parameter(torch.tensor(eta))
            self.log_temperature = torch.nn.Parameter(torch.tensor(temperature).log())
            self.register_buffer("adam_step", torch.zeros((), dtype=torch.long))
            for i, p in enumerate(self.trained_parameters()):
                self._moments(i, p)
        else:
            self.eta = eta
            self.temperature = temperature

    def trained_parameters(self):
        return [self.eta, self.log_temperature] if self.tune else []

    def temperature_value(self, like):
        if self.tune:
            return self.log_temperature.to(like).exp()
        return self.temperature

    def control(self, soft, f, dist, k, like):
        eta = self.eta.to(like) if self.tune else self.eta
        return eta * self.costs(f, soft, dist, k)
