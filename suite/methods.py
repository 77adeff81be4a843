"""Training-task methods read from the registries, so a newly registered estimator or loss, a
plugin's included, is trained by every task it fits, with no list to edit.

* **Estimators.** A task declares the distribution family of its latents and a representative
  distribution (its real latent shape and batch, so that size limits such as ``exact``'s
  ``max_support`` decide as they would in training). Its estimator methods are the benchmark
  variants (``variants`` info, else the bare name) of every registered gradient estimator that
  declares the family and whose instance ``supports()`` the representative distribution.
  The ``estimators`` setting narrows them as it narrows the gradient grid
  (:func:`suite.registries.expand_estimators`): a listed spec is kept if its estimator applies;
  a bare name listed keeps all its variants. A task's own baselines (``vq_straight_through``)
  are always kept.
* **Losses.** A loss declares what it applies to (``applies_to``, a string or a tuple of them:
  ``"multilabel"``, ...), as a registry fact (``register_loss("name", applies_to=...)``, how a
  plugin gives it) or a class attribute (the built-ins); a loss that declares nothing can be
  mapped in :data:`LOSS_APPLIES_TO`. The ``losses`` setting narrows them.

:class:`RegistryMethods` makes ``methods`` a live class attribute: ``Task.methods`` and
``task.methods`` both read the registries at access (never at import), so the report's listing
of a class and the benchmark grid of an instance agree.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from estibench.settings import current

from .registries import expand_estimators, variants

__all__ = ["estimator_methods", "loss_methods", "loss_applies_to", "RegistryMethods",
           "LOSS_APPLIES_TO", "example_distribution"]

#: what a loss applies to when it declares nothing itself (a loss module that predates
#: ``applies_to``); the built-ins declare it (``estimators.losses``)
LOSS_APPLIES_TO: dict[str, tuple[str, ...]] = {}


def example_distribution(family: str, batch: Sequence[int] = (2,), event: Sequence[int] = (3,)):
    """A representative distribution of ``family`` whose logits require grad:
    ``Independent(Family(...), len(event))`` with ``batch`` examples. For the categorical
    families ``event[-1]`` is the number of classes (a categorical's event drops it)."""
    import torch
    from torch import distributions as D

    batch, event = tuple(batch), tuple(event)
    if family in ("Bernoulli", "Normal"):
        loc = torch.zeros(batch + event, requires_grad=True)
        base = D.Bernoulli(logits=loc) if family == "Bernoulli" else D.Normal(loc, 1.0)
        return D.Independent(base, len(event)) if event else base
    if family in ("OneHotCategorical", "Categorical"):
        logits = torch.zeros(batch + event, requires_grad=True)
        base = getattr(D, family)(logits=logits)
        inner = len(event) - 1
        return D.Independent(base, inner) if inner else base
    raise ValueError(f"no representative distribution for family {family!r}; expected "
                     f"Bernoulli, OneHotCategorical, Categorical or Normal")


def _applies(spec: str, family: str, dist) -> bool:
    import estimators
    name = spec.split(":")[0]
    if name not in estimators.available(kind="gradient"):
        return False
    if family not in estimators.info(name).info.get("families", ()):
        return False
    try:
        return bool(estimators.get(spec).supports(dist))
    except Exception:  # noqa: BLE001 - an estimator that cannot even be built is not a method
        return False


def estimator_methods(family: str, dist=None) -> tuple[str, ...]:
    """Every registered gradient estimator spec that applies to ``family`` (see the module
    docstring), narrowed by the ``estimators`` setting; ``dist`` is the representative
    distribution (default: :func:`example_distribution`)."""
    import estimators

    dist = example_distribution(family) if dist is None else dist
    specs = expand_estimators()  # a bare registered name stands for its variants
    if not current().estimators:
        specs = [s for name in estimators.available(kind="gradient") for s in variants(name)]
    return tuple(s for s in specs if _applies(s, family, dist))


def loss_applies_to(name: str) -> tuple[str, ...]:
    """What the registered loss ``name`` applies to: its ``applies_to`` fact or class attribute,
    else :data:`LOSS_APPLIES_TO`, else nothing."""
    import estimators
    entry = estimators.LOSSES.entry(name)
    declared = entry.info.get("applies_to", getattr(entry.factory, "applies_to", None))
    if not declared:
        declared = LOSS_APPLIES_TO.get(name, ())
    return (declared,) if isinstance(declared, str) else tuple(declared)


def loss_methods(applies_to: str) -> tuple[str, ...]:
    """Every registered loss that applies to ``applies_to``, narrowed by the ``losses``
    setting (a name no registry knows is refused, naming the closest one)."""
    import estimators

    from .registries import unknown_name

    available = estimators.LOSSES.available()
    for name in current().losses:
        if name.partition(":")[0] not in available:
            raise unknown_name("loss", name, available, "losses")
    names = [n for n in available if applies_to in loss_applies_to(n)]
    chosen = list(current().losses) or names
    return tuple(n for n in chosen if n in names)


class RegistryMethods:
    """A ``methods`` class attribute computed at each access: ``baselines`` then, from the
    registries, the estimators of ``family`` (``example(task_or_None)`` builds the
    representative distribution; the class is passed when read from the class) or the losses
    that apply to ``losses``."""

    def __init__(self, *, family: str | None = None, losses: str | None = None,
                 baselines: Sequence[str] = (),
                 example: Callable[[Any], Any] | None = None):
        if (family is None) == (losses is None):
            raise ValueError("RegistryMethods: give exactly one of family= and losses=")
        self.family, self.losses = family, losses
        self.baselines, self.example = tuple(baselines), example
        self._class_cache: dict = {}

    def __get__(self, obj, owner) -> tuple[str, ...]:
        if self.losses is not None:
            return self.baselines + loss_methods(self.losses)
        # building every estimator to ask supports() costs ~20 ms: cached per task (or class)
        # until the registry or the estimators setting changes
        import estimators
        key = (tuple((n, id(estimators.info(n).factory))
                     for n in estimators.available(kind="gradient")), current().estimators)
        holder, slot = (self._class_cache, owner) if obj is None else (vars(obj),
                                                                        "_registry_methods")
        cached = holder.get(slot)
        if cached is not None and cached[0] == key:
            return cached[1]
        dist = self.example(owner if obj is None else obj) if self.example else None
        methods = self.baselines + estimator_methods(self.family, dist)
        holder[slot] = (key, methods)
        return methods
