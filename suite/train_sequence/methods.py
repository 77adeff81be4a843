"""The sequence tasks' training methods: one update step each, built by :func:`updater`.

``updater(task, method, model) -> (update, decodes per update)``; ``update(prefix, target,
refs)`` makes one step of the method on a minibatch. See the package docstring for what each
method does.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

import estimators
from estimators.transforms import clip_hard

from .data import IGNORE
from .model import GRUModel, decode, decoded_lengths, nll, sampled_targets

__all__ = ["Update", "updater", "UPDATERS"]

Update = Callable[[torch.Tensor, torch.Tensor, list[tuple[int, ...]]], None]


def _optimizer(task, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    if task.config.methods.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr)


def _greedy_cost(task, model: GRUModel, prefix, refs):
    """The task loss of update search, a black box: mean edit distance of greedy decodes."""
    max_len = task.config.data.max_len
    return lambda: torch.tensor(task.costs(decode(model, prefix, max_len), refs).mean())


def _mle(task, method: str, model: GRUModel) -> tuple[Update, float]:
    opt = _optimizer(task, list(model.parameters()), task.config.methods.mle_lr)
    eos = task.eos

    def update(prefix, target, refs):
        opt.zero_grad(set_to_none=True)
        nll(model, prefix, target, eos).backward()
        opt.step()
    return update, 0.0


def _policy_gradient(task, method: str, model: GRUModel) -> tuple[Update, float]:
    cfg, eos = task.config.methods, task.eos
    max_len = task.config.data.max_len
    params = list(model.parameters())
    opt = _optimizer(task, params, cfg.pg_lr)
    k = cfg.pg_samples

    def update(prefix, target, refs):
        rep = prefix.repeat(k, 1)  # [K*B, P]: row k*B + b is sample k of prefix b
        tokens = decode(model, rep, max_len, greedy=False)
        lengths, ended = decoded_lengths(tokens, eos)
        cost = torch.as_tensor(task.costs(tokens, list(refs) * k),
                               device=prefix.device).view(k, -1)
        advantage = cost - (cost.sum(0, keepdim=True) - cost) / (k - 1)  # RLOO
        scored = sampled_targets(tokens, lengths, ended, eos)
        logp = -F.cross_entropy(model(rep, scored, eos).transpose(1, 2), scored,
                                ignore_index=IGNORE, reduction="none").sum(1)
        opt.zero_grad(set_to_none=True)
        (advantage.flatten().to(logp.dtype) * logp).mean().backward()
        if method == "pg_clip":
            clip_hard(params, cfg.pg_clip_gamma)
        opt.step()
    return update, float(k * task.config.run.batch_size)


def _mgs(task, method: str, model: GRUModel) -> tuple[Update, float]:
    cfg, eos = task.config.methods, task.eos
    params = list(model.parameters())
    est = estimators.get("mgs", num_candidates=cfg.mgs_candidates, sigma=cfg.mgs_sigma,
                         alpha=cfg.mgs_alpha, guide_scale=cfg.mgs_guide_scale,
                         mixture=cfg.mgs_mixture,
                         proposal_correction=cfg.mgs_proposal_correction)
    opt = torch.optim.SGD(params, lr=1.0)  # p.grad = -Δθ: SGD(lr=1) applies θ + Δθ

    def update(prefix, target, refs):
        opt.zero_grad(set_to_none=True)
        nll(model, prefix, target, eos).backward()
        guide = [p.grad.detach().clone() for p in params]
        est(params, _greedy_cost(task, model, prefix, refs), guide=guide)
        if method == "mgs_clip":
            clip_hard(params, cfg.mgs_clip_gamma)
        opt.step()
    return update, float(cfg.mgs_candidates * task.config.run.batch_size)


def _evolution_strategies(task, method: str, model: GRUModel) -> tuple[Update, float]:
    cfg = task.config.methods
    params = list(model.parameters())
    est = estimators.get("evolution_strategies", num_directions=cfg.es_directions,
                         sigma=cfg.es_sigma)
    opt = _optimizer(task, params, cfg.es_lr)

    def update(prefix, target, refs):
        est(params, _greedy_cost(task, model, prefix, refs))
        opt.step()
    return update, float(2 * cfg.es_directions * task.config.run.batch_size)


def _registered_update(task, method: str, model: GRUModel) -> tuple[Update, float]:
    """Any registered ``kind="update"`` estimator (a plugin's included) with its defaults: the
    MLE gradient as its guide, the greedy decodes' edit distance as its task loss, applied by
    SGD(lr=1). Its task-loss evaluations per update are read from the record it returns
    (``update.evaluations``, decodes per update once it has run)."""
    params = list(model.parameters())
    est = estimators.get(method)
    opt = torch.optim.SGD(params, lr=1.0)

    def update(prefix, target, refs):
        opt.zero_grad(set_to_none=True)
        nll(model, prefix, target, task.eos).backward()
        guide = [p.grad.detach().clone() for p in params]
        record = est(params, _greedy_cost(task, model, prefix, refs), guide=guide)
        opt.step()
        evaluations = record.get("evaluations") if isinstance(record, dict) else None
        if evaluations is not None:
            update.evaluations = float(evaluations) * task.config.run.batch_size
    return update, float("nan")


#: method -> builder of its update (other registered update estimators: _registered_update)
UPDATERS: dict[str, Callable[..., tuple[Update, float]]] = {
    "mle": _mle, "pg": _policy_gradient, "pg_clip": _policy_gradient, "mgs": _mgs,
    "mgs_clip": _mgs, "evolution_strategies": _evolution_strategies}


def updater(task, method: str, model: GRUModel) -> tuple[Update, float]:
    """``(update, decodes per update)`` of ``method`` on ``model`` for ``task``."""
    task.check_method(method)
    if method in UPDATERS:
        return UPDATERS[method](task, method, model)
    if method.partition(":")[0] in estimators.available(kind="update"):
        return _registered_update(task, method, model)
    raise NotImplementedError(f"{task.name}: method {method!r} is listed but has no update")


class UpdateMethods:
    """The sequence tasks' ``methods``: their own, then every other registered update-search
    estimator (plugins included), read when used; the ``estimators`` setting narrows the
    registry's ones as it narrows the gradient grid (a bare name: every variant of it, a spec:
    exactly that spec; :func:`suite.registries.expand_estimators`)."""

    def __init__(self, own: tuple[str, ...]):
        self.own = tuple(own)

    def __get__(self, obj, owner) -> tuple[str, ...]:
        from estibench.settings import current

        from ..registries import expand_estimators, variants

        update = [n for n in estimators.available(kind="update") if n not in self.own]
        if not current().estimators:
            return self.own + tuple(s for n in update for s in variants(n))
        return self.own + tuple(s for s in expand_estimators()
                                if s.partition(":")[0] in update and s not in self.own)
