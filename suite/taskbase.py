"""The gradient task's interface: :class:`Problem`, :class:`GradientTask` and their registration
(:func:`register_task`, :func:`build_task`). The built-in tasks (:mod:`suite.tasks`,
:mod:`suite.tasks_vae`) and a plugin's subclass it; see :mod:`suite.tasks` for the contract."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import distributions as D

from .registries import TASKS

__all__ = ["Problem", "GradientTask", "register_task", "build_task", "bias_target"]


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
    0.25 on the VAE tasks; :class:`GradientTask`)."""
    return TASKS.register(name, description=description, reference=reference, family=family,
                          bias_target=float(bias_target), **info)


def bias_target(name: str) -> float:
    """The registered claim-test target of a task (without building it)."""
    return float(TASKS.entry(name.split(":")[0]).info.get("bias_target", GradientTask.bias_target))


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

    def reference(self) -> torch.Tensor:
        """Exact gradient for one replicate, flattened over the leaves, float64 on the CPU."""
        cached = getattr(self, "_reference_cache", None)
        if cached is None:
            cached = self._reference().detach().to("cpu", torch.float64).reshape(-1)
            self._reference_cache = cached
        return cached

    def replicates_for(self, rows_per_estimate: int) -> int:
        """R for an estimator whose f sees ``rows_per_estimate`` sample rows per estimate."""
        fit = self.row_budget // max(int(rows_per_estimate), 1)
        return int(max(self.min_replicates, min(self.replicates, fit)))
