"""The gradient task's interface: :class:`Problem`, :class:`GradientTask` and their registration
(:func:`register_task`, :func:`build_task`). The built-in tasks (:mod:`suite.tasks`,
:mod:`suite.tasks_vae`, :mod:`suite.tasks_mnist`) and a plugin's subclass it; see
:mod:`suite.tasks` for the contract.

**Exact and estimated references.** Most tasks know their gradient exactly (a closed form, or
enumerating the support: registered ``exact="closed form"`` / ``"enumeration"``). Where the
support is out of reach (2^200 latent states), the reference is a high-precision *unbiased
estimate* (registered ``estimate="<how>"``, e.g. ``"local expectation ..., 256 antithetic
pairs of samples, float64"``): its own covariance (:meth:`GradientTask.reference_covariance`) then enters the bias
measure and the claim test in quadrature (:func:`suite.measure.statistics`,
:func:`suite.claims.claim_test`), and :func:`reference_kind` says which reference a task uses."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import distributions as D

from .registries import TASKS

__all__ = ["Problem", "GradientTask", "register_task", "build_task", "bias_target",
           "reference_kind", "reference_is_estimate"]


@dataclass
class Problem:
    """R replicates of one task: ``leaves`` are ``[R, ...]`` and require grad."""

    leaves: list[torch.Tensor]
    dist: D.Distribution
    f: Callable[[torch.Tensor], torch.Tensor]

    def flat_grad(self) -> torch.Tensor:
        """The R gradient estimates, ``[R, P]`` (zeros where a leaf got no gradient)."""
        r = self.leaves[0].shape[0]
        return torch.cat([(leaf.grad if leaf.grad is not None else torch.zeros_like(leaf))
                          .reshape(r, -1) for leaf in self.leaves], 1)


def register_task(name: str, *, description: str, reference: str = "", family: str,
                  bias_target: float = 0.1, **info):
    """Register a task factory. ``family`` names the distribution family (``"Bernoulli"``,
    ``"OneHotCategorical"``, ``"Normal"``, ...) so listings can show what each task exercises;
    ``bias_target`` is the detectable relative bias the claim test aims for on it (0.1 on toys,
    0.25 on the VAE tasks; :class:`GradientTask`). How ``reference()`` is obtained goes in
    ``info``: ``exact="closed form"`` / ``"enumeration"`` for an exact gradient, or
    ``estimate="<estimator, samples>"`` for an unbiased estimate whose covariance the task gives
    (:meth:`GradientTask.reference_covariance`); :func:`reference_kind` reads them back."""
    if info.get("exact") and info.get("estimate"):
        raise ValueError(f"task {name!r}: declare exact=... or estimate=..., not both")
    return TASKS.register(name, description=description, reference=reference, family=family,
                          bias_target=float(bias_target), **info)


def bias_target(name: str) -> float:
    """The registered claim-test target of a task (without building it)."""
    return float(TASKS.entry(name.split(":")[0]).info.get("bias_target", GradientTask.bias_target))


def reference_kind(name: str) -> str:
    """Which reference a registered task (``"name"`` or ``"name:options"``) measures against, as
    its registration states it (without building it): ``"closed form"``, ``"enumeration"``,
    ``"estimate: <how>"``, or ``"exact (not stated how)"`` for a task that declares neither."""
    info = TASKS.entry(name.split(":")[0]).info
    if info.get("estimate"):
        return f"estimate: {info['estimate']}"
    return str(info.get("exact") or "exact (not stated how)")


def reference_is_estimate(name: str) -> bool:
    """Whether a registered task's reference is an estimate (registered ``estimate=...``)."""
    return bool(TASKS.entry(name.split(":")[0]).info.get("estimate"))


def build_task(name: str) -> GradientTask:
    """Build a registered task (``"name"`` or ``"name:key=value"``), with its registered
    ``bias_target``."""
    task = TASKS.get(name)
    task.name = name
    task.bias_target = bias_target(name)
    return task


def _leaf(x: torch.Tensor, r: int, device, dtype) -> torch.Tensor:
    return x.to(device, dtype).expand((r,) + tuple(x.shape)).clone().requires_grad_()


class GradientTask:
    """Base class: set ``name``/``description`` and implement ``problem`` and ``_reference``.

    ``replicates`` is the most replicates the harness draws per cell, ``row_budget`` caps
    ``R x (rows of samples f sees per estimate)`` so costly tasks and estimators (exact
    enumeration, K = 64) get fewer replicates; never fewer than ``min_replicates``. That is R's
    first draw (and the most replicates per vectorised call).

    The claim test (:mod:`suite.claims`, :func:`suite.measure.measure_cell`) then raises R until
    its detectable relative bias at 95 % power is at most ``bias_target``, or until the cell has
    spent ``claim_budget`` f evaluations (``claim_factor x row_budget``) over all its replicates;
    cells that stop at the budget are ``inconclusive``.
    """

    name: str = "task"
    replicates: int = 4000
    min_replicates: int = 16
    row_budget: int = 2 ** 18
    bias_target: float = 0.1
    claim_factor: int = 16

    @property
    def claim_budget(self) -> int:
        """f evaluations a cell may spend on its replicates (all draws together)."""
        return int(self.claim_factor * self.row_budget)

    def problem(self, replicates: int, device="cpu", dtype=torch.float32) -> Problem:
        raise NotImplementedError

    def _reference(self) -> torch.Tensor:
        raise NotImplementedError

    def _reference_covariance(self) -> torch.Tensor | None:
        """The covariance of an estimated reference (see :meth:`reference_covariance`); None
        (the default) for an exact one. Called after :meth:`_reference`."""
        return None

    def reference(self) -> torch.Tensor:
        """The reference gradient for one replicate, flattened over the leaves, float64 on the
        CPU: exact, or an unbiased estimate whose covariance :meth:`reference_covariance` gives."""
        cached = getattr(self, "_reference_cache", None)
        if cached is None:
            cached = self._reference().detach().to("cpu", torch.float64).reshape(-1)
            self._reference_cache = cached
            self.reference_covariance()  # cached beside it: a pickled built task carries both
        return cached

    def reference_covariance(self) -> torch.Tensor | None:
        """The covariance of the reference's error, float64 on the CPU: None for an exact
        reference, else ``[P]`` (per-coordinate variances; the coordinates' errors taken as
        uncorrelated) or ``[P, P]`` (the full matrix), P = ``reference().numel()``."""
        p = self.reference().numel()  # computing it caches the covariance too
        if not hasattr(self, "_reference_cov_cache"):
            cov = self._reference_covariance()
            if cov is not None:
                cov = cov.detach().to("cpu", torch.float64)
                if cov.shape not in ((p,), (p, p)):
                    raise ValueError(f"{self.name}: the reference covariance has shape "
                                     f"{tuple(cov.shape)}; expected ({p},) or ({p}, {p})")
                diag = cov if cov.dim() == 1 else cov.diagonal()
                if not bool(torch.isfinite(cov).all() and (diag >= 0).all()):
                    raise ValueError(f"{self.name}: the reference covariance has negative or "
                                     f"non-finite variances")
            self._reference_cov_cache = cov
        return self._reference_cov_cache

    def reference_se(self) -> torch.Tensor | None:
        """Per-coordinate standard error of the reference ``[P]``; None when it is exact."""
        cov = self.reference_covariance()
        if cov is None:
            return None
        return (cov if cov.dim() == 1 else cov.diagonal()).sqrt()

    def reference_description(self) -> str:
        """Which reference this task measures against: its registration's
        (:func:`reference_kind`), or, for an unregistered task, whether it is exact."""
        if self.name.split(":")[0] in TASKS:
            return reference_kind(self.name)
        return "exact (not stated how)" if self.reference_covariance() is None else \
            "estimate (not stated how)"

    def reference_relative_se(self) -> float:
        """The reference's error relative to its norm, ``sqrt(tr Cov) / ||g||``: 0 when exact.
        The resolution the reference alone leaves the relative bias measure."""
        se = self.reference_se()
        return 0.0 if se is None else float(se.norm() / self.reference().norm())

    def replicates_for(self, rows_per_estimate: int) -> int:
        """R for an estimator whose f sees ``rows_per_estimate`` sample rows per estimate."""
        fit = self.row_budget // max(int(rows_per_estimate), 1)
        return int(max(self.min_replicates, min(self.replicates, fit)))
