"""Update-search estimators: an update direction from a black-box task loss, by sampling in
parameter space (no gradient of the task loss is needed).

Every update estimator (``kind="update"``) is called the same way::

    est = estimators.get("mgs", num_candidates=8, sigma=0.01, alpha=0.05)
    record = est(model.parameters(), task_loss, guide=mle_grads)   # sets every p.grad
    optimizer.step()                                               # SGD(lr=1): θ ← θ + Δθ

* ``params``: an iterable of floating tensors (the model's parameters), all on one device with
  one dtype. They are perturbed IN PLACE under ``torch.no_grad()`` while ``task_loss`` is
  evaluated, and restored bit for bit afterwards (copied back from a saved copy, never by
  subtracting the perturbation), also when ``task_loss`` raises.
* ``task_loss``: ``() -> scalar tensor`` (or float), evaluated at the params' current values.
  A non-finite value (NaN, inf) gives that candidate weight 0 instead of poisoning the update.
* ``guide``: optional list of tensors shaped like ``params`` (e.g. the maximum-likelihood
  gradient); estimators that cannot use one ignore it after checking its shapes. ``mgs`` refuses
  a guide holding NaN or inf with a ValueError naming the tensor (one host sync, only while
  :func:`estimators.set_validation` is on); with validation off, a candidate whose step is not
  finite gets weight 0, so the update stays finite (0 when no candidate is usable).
* Sign convention: with Δθ the proposed step, each ``p.grad`` is SET to ``-Δθ_p`` (a descent
  pseudo-gradient: the quantity an optimizer subtracts). ``SGD(lr=1)`` therefore applies
  ``θ ← θ + Δθ`` exactly, and any ``torch.optim`` optimizer moves towards a lower task loss.
  Existing gradients are overwritten, not accumulated (read the guide out of ``.grad`` first).
* The call returns a dict of diagnostics: ``evaluations`` (int, task-loss calls), ``ess``
  (effective sample size of the weights, ``1 / Σ w_k²``), ``weights``, ``losses`` (the candidates'
  task losses), ``update_norm``. Values are tensors, so the call makes no host sync: take
  ``float()`` of what you want to log.

The loop over candidates is inherent (each candidate is one evaluation of the model);
everything else is vectorised over one flat parameter vector. Memory: ``K x D`` for K
candidates and D parameters.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence

import torch

from . import register
from .base import validation_enabled
from .checks import Described, integer, number

__all__ = ["UpdateEstimator", "MGS", "EvolutionStrategies", "mixture_log_density",
           "mgs_log_weights", "effective_sample_size"]


# -- pure pieces (tested on their own) ---------------------------------------------------------
def mixture_log_density(deltas: torch.Tensor, mean: torch.Tensor | None, sigma: float,
                        fraction: float) -> torch.Tensor:
    """log q(Δ_k) for ``q = (1 - m) N(0, σ²I) + m N(mean, σ²I)``, rows of ``deltas`` [K, D].

    Computed in float64 with logsumexp over the two components; ``m = 0`` (or ``mean=None``) is
    the single zero-mean Gaussian, ``m = 1`` the single guided one.
    """
    d = deltas.shape[-1]
    x = deltas.to(torch.float64)
    const = -0.5 * d * math.log(2 * math.pi * sigma ** 2)
    zero = -0.5 * x.pow(2).sum(-1) / sigma ** 2 + const
    if mean is None or fraction <= 0.0:
        return zero
    guided = -0.5 * (x - mean.to(torch.float64)).pow(2).sum(-1) / sigma ** 2 + const
    if fraction >= 1.0:
        return guided
    parts = torch.stack([zero + math.log1p(-fraction), guided + math.log(fraction)])
    return torch.logsumexp(parts, dim=0)


def mgs_log_weights(losses: torch.Tensor, alpha: float,
                    log_q: torch.Tensor | None = None) -> torch.Tensor:
    """Normalised log weights ``log softmax(-l_k/α - log q_k)``; a non-finite loss gets -inf.

    ``l(θ)`` cancels in the normalisation, so it is never evaluated. The best finite loss is
    subtracted before dividing by α, so no finite input overflows for any α > 0; if no candidate
    has a finite loss every log weight is -inf (the caller then makes no update).
    """
    losses = losses.to(torch.float64)
    finite = torch.isfinite(losses)
    best = torch.where(finite, losses, torch.full_like(losses, math.inf)).min()
    logits = -(losses - best) / alpha
    if log_q is not None:
        logits = logits - log_q.to(torch.float64)
    logits = torch.where(finite & ~torch.isnan(logits), logits,
                         torch.full_like(logits, -math.inf))
    norm = torch.logsumexp(logits, dim=0)
    return torch.where(torch.isfinite(norm), logits - norm, torch.full_like(logits, -math.inf))


def effective_sample_size(weights: torch.Tensor) -> torch.Tensor:
    """``1 / Σ w_k²`` for normalised weights (0 when every weight is 0)."""
    s = weights.pow(2).sum()
    return torch.where(s > 0, 1.0 / s.clamp_min(torch.finfo(s.dtype).tiny), torch.zeros_like(s))


# -- shared machinery ----------------------------------------------------------------------------
class UpdateEstimator(Described, torch.nn.Module):
    """Base class of update-search estimators: parameter checks, flattening, exact restore."""

    name: str = "update"
    kind: str = "update"
    unbiased: bool = False

    # -- checks ------------------------------------------------------------------------------
    def _params(self, params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
        if isinstance(params, torch.Tensor):
            params = [params]
        params = list(params)
        if not params:
            raise ValueError(f"{self.describe()}: params is empty; expected an iterable of "
                             f"parameter tensors such as model.parameters()")
        for i, p in enumerate(params):
            if not isinstance(p, torch.Tensor):
                raise ValueError(f"{self.describe()}: params[{i}] is a {type(p).__name__}, "
                                 f"expected a tensor")
            if not p.is_floating_point():
                raise ValueError(f"{self.describe()}: params[{i}] has dtype {p.dtype}; "
                                 f"expected floating-point parameters")
            if p.device != params[0].device or p.dtype != params[0].dtype:
                raise ValueError(f"{self.describe()}: all params must share one device and dtype;"
                                 f" params[0] is {params[0].dtype} on {params[0].device}, "
                                 f"params[{i}] is {p.dtype} on {p.device}")
        return params

    def _guide(self, guide: Sequence[torch.Tensor] | None,
               params: list[torch.Tensor]) -> torch.Tensor | None:
        """Check the guide's shapes and flatten it (None stays None)."""
        if guide is None:
            return None
        if isinstance(guide, torch.Tensor):
            guide = [guide]
        guide = list(guide)
        if len(guide) != len(params):
            raise ValueError(f"{self.describe()}: guide has {len(guide)} tensors but there are "
                             f"{len(params)} params; expected one guide tensor per parameter")
        for i, (g, p) in enumerate(zip(guide, params)):
            if not isinstance(g, torch.Tensor):
                raise ValueError(f"{self.describe()}: guide[{i}] is a {type(g).__name__}, "
                                 f"expected a tensor shaped like params[{i}] "
                                 f"({list(p.shape)})")
            if g.shape != p.shape:
                raise ValueError(f"{self.describe()}: guide[{i}] has shape {list(g.shape)} but "
                                 f"params[{i}] has shape {list(p.shape)}; the guide must match "
                                 f"the params one for one")
        p0 = params[0]
        return torch.cat([g.detach().reshape(-1).to(p0.device, p0.dtype) for g in guide])

    def _check_finite_guide(self, guide: Sequence[torch.Tensor] | torch.Tensor,
                            flat: torch.Tensor) -> None:
        """With validation on (one host sync): refuse a guide holding NaN or inf, naming which
        tensor, since a step built from it would not be finite."""
        if not validation_enabled() or bool(torch.isfinite(flat).all()):
            return
        guide = [guide] if isinstance(guide, torch.Tensor) else list(guide)
        for i, g in enumerate(guide):
            bad = int((~torch.isfinite(g.detach())).sum())
            if bad:
                raise ValueError(f"{self.describe()}: guide[{i}] holds {bad} non-finite value(s) "
                                 f"(NaN or inf) out of {g.numel()}; expected a finite guide "
                                 f"(e.g. the maximum-likelihood gradient); check the loss it "
                                 f"came from, or pass guide=None")
        raise ValueError(f"{self.describe()}: the guide is not finite after conversion to "
                         f"{flat.dtype} (a value overflows); expected a finite guide")

    @staticmethod
    def _flat(params: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in params])  # a copy, not a view

    @staticmethod
    def _assign(params: list[torch.Tensor], vector: torch.Tensor) -> None:
        offset = 0
        for p in params:
            n = p.numel()
            p.copy_(vector[offset:offset + n].view_as(p))
            offset += n

    def _evaluate(self, task_loss: Callable[[], torch.Tensor], params: list[torch.Tensor],
                  theta0: torch.Tensor, deltas: torch.Tensor, signs=(1.0,)) -> torch.Tensor:
        """Task losses at ``θ0 + s·Δ_k`` for every row k and sign s: float64 ``[len(signs), K]``.

        Stored into a preallocated tensor (no ``.item()``, so no host sync per candidate); the
        params are restored exactly in ``finally``.
        """
        if not callable(task_loss):
            raise TypeError(f"{self.describe()}: task_loss must be a callable () -> scalar "
                            f"tensor, got {type(task_loss).__name__}")
        k = deltas.shape[0]
        out = torch.empty((len(signs), k), dtype=torch.float64, device=theta0.device)
        with torch.no_grad():
            try:
                for j, s in enumerate(signs):
                    for i in range(k):
                        self._assign(params, theta0 + s * deltas[i])
                        value = task_loss()
                        if not isinstance(value, torch.Tensor):
                            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                                raise TypeError(f"{self.describe()}: task_loss must return a "
                                                f"real scalar (tensor or float), got "
                                                f"{type(value).__name__}")
                            value = torch.tensor(float(value), dtype=torch.float64)
                        if value.is_complex() or value.dtype == torch.bool:
                            raise TypeError(f"{self.describe()}: task_loss must return a real "
                                            f"scalar, got a tensor of dtype {value.dtype}")
                        if value.numel() != 1:
                            raise ValueError(f"{self.describe()}: task_loss must return a "
                                             f"scalar, got shape {list(value.shape)}")
                        out[j, i] = value.detach().reshape(())
            finally:
                self._assign(params, theta0)
        return out

    @staticmethod
    def _write_grad(params: list[torch.Tensor], direction: torch.Tensor) -> None:
        """Set each ``p.grad`` to its slice of ``direction`` (the descent pseudo-gradient)."""
        offset = 0
        for p in params:
            n = p.numel()
            g = direction[offset:offset + n].view_as(p)
            if p.grad is None or p.grad.shape != p.shape:
                p.grad = g.detach().clone()
            else:
                p.grad.copy_(g)
            offset += n


# -- MGS -----------------------------------------------------------------------------------------
@register
class MGS(UpdateEstimator):
    """MLE-guided parameter search (Welleck & Cho, "MLE-guided parameter search for task loss
    minimization in neural sequence modeling", AAAI 2021).

    Draws K candidates Δ_k: a fraction ``mixture`` of them (rounded) from ``N(-η·guide, σ²I)``
    and the rest from ``N(0, σ²I)`` (all around zero when no guide is given). Weights
    ``w_k ∝ exp(-[l(θ+Δ_k) - l(θ)]/α) / q(Δ_k)``, q the mixture density with the realised
    fractions (the "balance heuristic" of multiple importance sampling, so the stratified
    draw is unbiased for q), normalised in log space; update ``Δθ = Σ_k w_k Δ_k``.

    ``proposal_correction=False`` drops the ``1/q`` factor: the estimate is then the mean of
    ``p(Δ) ∝ exp(-Δl/α)·q(Δ)`` (q acts as a prior on the step). In D dimensions ``log q`` of a
    Gaussian draw varies by about ``sqrt(D/2)`` nats between candidates, so with the correction
    on the weights of a large model are set by q, not by the task loss, unless α is tiny; the
    ``ess`` diagnostic shows it. For a quadratic ``l = ||θ - c||²/2`` the two versions tend, as
    K → ∞, to ``-∇l`` (with 1/q, any proposal) and ``-σ²/(σ²+α)·∇l`` (without, single zero-mean
    component). These are limits: a self-normalised estimate is biased at finite K (K = 1
    returns the candidate itself, of mean ``E_q[Δ]``; with K = 4, σ = 0.5, α = 0.25 and
    ∇l = 1 in 1-D the corrected mean update is -0.43, not -1; tests/test_update_search.py
    computes the exact finite-K mean). It is unbiased at every K when q ∝ p, e.g. guide = ∇l,
    η = 1, ``mixture=1``, σ² = α.

    Options: ``num_candidates`` K >= 1, ``sigma`` σ > 0, ``alpha`` α > 0 (temperature),
    ``guide_scale`` η >= 0, ``mixture`` in [0, 1] (fraction of guided candidates),
    ``proposal_correction`` (default True).
    """

    name = "mgs"
    display_name = "MGS"
    kind = "update"
    description = ("MLE-guided parameter search: K candidates from a mixture N(0,σ²I) / "
                   "N(-η·guide,σ²I), self-normalised weights exp(-Δl/α)/q, update Σ w_k Δ_k")
    reference = "Welleck & Cho, AAAI 2021 (MLE-guided parameter search)"

    def __init__(self, num_candidates: int = 8, sigma: float = 0.01, alpha: float = 1.0,
                 guide_scale: float = 1.0, mixture: float = 0.5,
                 proposal_correction: bool = True):
        super().__init__()
        self.num_candidates = integer("mgs", "num_candidates", num_candidates)
        self.sigma = number("mgs", "sigma", sigma, low=0.0, low_open=True)
        self.alpha = number("mgs", "alpha", alpha, low=0.0, low_open=True)
        self.guide_scale = number("mgs", "guide_scale", guide_scale, low=0.0)
        # the fraction of candidates drawn around the guide
        self.mixture = number("mgs", "mixture", mixture, low=0.0, high=1.0)
        self.proposal_correction = bool(proposal_correction)

    def num_guided(self, has_guide: bool) -> int:
        if not has_guide:
            return 0
        return min(self.num_candidates, int(math.floor(self.mixture * self.num_candidates + 0.5)))

    def forward(self, params: Iterable[torch.Tensor], task_loss: Callable[[], torch.Tensor],
                guide: Sequence[torch.Tensor] | None = None) -> dict[str, object]:
        params = self._params(params)
        flat_guide = self._guide(guide, params)
        if flat_guide is not None:
            self._check_finite_guide(guide, flat_guide)
        theta0 = self._flat(params)
        k = self.num_candidates
        kg = self.num_guided(flat_guide is not None)
        deltas = self.sigma * torch.randn((k, theta0.numel()), dtype=theta0.dtype,
                                          device=theta0.device)
        mean = None
        if kg:
            mean = -self.guide_scale * flat_guide
            deltas[:kg] += mean
        losses = self._evaluate(task_loss, params, theta0, deltas)[0]
        log_q = (mixture_log_density(deltas, mean, self.sigma, kg / k)
                 if self.proposal_correction else None)
        weights = mgs_log_weights(losses, self.alpha, log_q).exp()
        # A candidate of weight 0 contributes exactly 0, even if its step is not finite (a
        # non-finite guide with validation off): 0 x NaN would otherwise poison the update.
        # A non-finite step can still carry weight when task_loss ignores the params; such a
        # candidate is dropped too. Tensor ops only: no host sync.
        usable = torch.isfinite(deltas).all(1) & (weights > 0)
        dropped = (~usable & (weights > 0)).any()
        weights = torch.where(usable, weights, torch.zeros_like(weights))
        weights = torch.where(dropped, weights / weights.sum().clamp_min(1e-300), weights)
        update = weights.to(deltas.dtype) @ torch.where(usable[:, None], deltas,
                                                        torch.zeros_like(deltas))
        self._write_grad(params, -update)
        return {"evaluations": k, "num_guided": kg, "ess": effective_sample_size(weights),
                "weights": weights, "losses": losses, "update_norm": update.norm()}


# -- evolution strategies ------------------------------------------------------------------------
@register
class EvolutionStrategies(UpdateEstimator):
    """Antithetic evolution strategies (Salimans et al. 2017): with ε_k ~ N(0, I),
    ``g = 1/(2Kσ) Σ_k [l(θ+σε_k) - l(θ-σε_k)] ε_k``, an unbiased estimate of the gradient of the
    smoothed loss ``E_ε[l(θ+σε)]`` (exactly unbiased for ∇l when l is linear or quadratic).

    Writes ``p.grad = g`` (so ``Δθ = -lr·g`` under SGD); 2K task-loss evaluations. A pair with a
    non-finite loss difference contributes 0. A guide is checked and ignored.
    Options: ``num_directions`` K >= 1 (antithetic pairs), ``sigma`` σ > 0.
    """

    name = "evolution_strategies"
    display_name = "evolution strategies"
    kind = "update"
    description = ("antithetic Gaussian random search: g = 1/(2Kσ) Σ_k [l(θ+σε_k) - "
                   "l(θ-σε_k)] ε_k, the gradient of the Gaussian-smoothed loss")
    reference = ("Salimans et al. 2017 (Evolution strategies as a scalable alternative to "
                 "reinforcement learning); Nesterov & Spokoiny 2017")

    def __init__(self, num_directions: int = 8, sigma: float = 0.01):
        super().__init__()
        self.num_directions = integer("evolution_strategies", "num_directions", num_directions)
        self.sigma = number("evolution_strategies", "sigma", sigma, low=0.0, low_open=True)

    def forward(self, params: Iterable[torch.Tensor], task_loss: Callable[[], torch.Tensor],
                guide: Sequence[torch.Tensor] | None = None) -> dict[str, object]:
        params = self._params(params)
        self._guide(guide, params)
        theta0 = self._flat(params)
        k = self.num_directions
        eps = torch.randn((k, theta0.numel()), dtype=theta0.dtype, device=theta0.device)
        losses = self._evaluate(task_loss, params, theta0, self.sigma * eps, signs=(1.0, -1.0))
        diff = losses[0] - losses[1]
        diff = torch.where(torch.isfinite(diff), diff, torch.zeros_like(diff))
        grad = (diff / (2 * k * self.sigma)).to(eps.dtype) @ eps
        self._write_grad(params, grad)
        weights = torch.full((k,), 1.0 / k, dtype=torch.float64, device=theta0.device)
        return {"evaluations": 2 * k, "ess": weights.new_tensor(float(k)),
                "weights": weights, "losses": losses, "update_norm": grad.norm()}
