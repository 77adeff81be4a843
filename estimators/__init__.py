"""estibench's registered gradient estimators, update-search estimators, losses and metrics.

>>> import estimators
>>> est = estimators.get("score_function", baseline="loo")   # or "score_function:baseline=loo"
>>> loss = est(dist, f, num_samples=16)                        # doctest: +SKIP
>>> loss.backward()                                            # doctest: +SKIP

See :mod:`estimators.base` for the contract and :mod:`estimators.registry` for plugins.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from . import naming
from .base import Estimator, set_validation, validation_enabled, value_only
from .registry import Entry, Registry, parse_spec

KINDS = ("gradient", "update")


def _declare_estimator(facts: dict[str, Any]) -> dict[str, Any]:
    """Check an estimator's declared facts; ``families`` become ``torch.distributions`` classes
    (names such as ``"Bernoulli"`` are looked up there)."""
    import torch.distributions as D

    if facts["kind"] not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {facts['kind']!r}")
    families = []
    for fam in facts["families"]:
        if isinstance(fam, str):
            cls = getattr(D, fam, None)
            if not (isinstance(cls, type) and issubclass(cls, D.Distribution)):
                raise ValueError(f"families: {fam!r} is not a torch.distributions class")
            fam = cls
        families.append(fam)
    facts["families"] = tuple(families)
    facts["unbiased"] = bool(facts["unbiased"])
    facts["variants"] = tuple(facts["variants"] or ())
    names = facts["variant_names"] or {}
    if not isinstance(names, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                               for k, v in names.items()):
        raise ValueError(f"variant_names must map spec strings to non-empty display names, "
                         f"got {names!r}")
    facts["variant_names"] = dict(names)
    return facts


def _estimator_info(facts: dict[str, Any]) -> dict[str, Any]:
    facts["families"] = tuple(c.__name__ for c in facts["families"])
    if not facts["variants"]:
        del facts["variants"]
    if not facts["display_name"]:
        del facts["display_name"]
    if not facts["variant_names"]:
        del facts["variant_names"]
    return facts


#: Gradient and update-search estimators. An estimator class declares its facts once, as class
#: attributes (``name``, ``kind``, ``unbiased``, ``families``, ``reference``, optionally
#: ``description``, ``variants``, ``display_name``, ``variant_names``: spec -> the name a variant
#: is shown under), and registers with a bare ``@register``.
ESTIMATORS = Registry("estimator", group="estibench.estimators",
                      fields={"kind": "gradient", "unbiased": False, "families": (),
                              "description": "", "reference": "", "variants": (),
                              "display_name": "", "variant_names": {}},
                      declare=_declare_estimator, info=_estimator_info)

#: ``@register`` on an estimator class (reads its declaration), or ``@register("name", **facts)``.
register = ESTIMATORS.register


def available(kind: str | None = None) -> list[str]:
    """Sorted names of registered estimators, optionally only ``kind="gradient"``/``"update"``."""
    if kind not in (None, "gradient", "update"):
        raise ValueError(f"kind must be None, 'gradient' or 'update', got {kind!r}")
    return ESTIMATORS.available(kind=kind)


def get(spec: str, **kwargs: Any):
    """Build an estimator: ``get("score_function", baseline="loo")`` or
    ``get("score_function:baseline=loo")``."""
    return ESTIMATORS.get(spec, **kwargs)


def display_name(spec: str) -> str:
    """The name ``spec`` is shown under in tables and figures (:mod:`estimators.naming`): its
    declared ``variant_names`` entry, else its ``display_name`` with the options spelled out."""
    return naming.display_name(spec, ESTIMATORS)


def info(name: str) -> Entry:
    """The registry entry (factory and info: kind, unbiased, families, description, reference)."""
    return ESTIMATORS.entry(name)


_DOCUMENTED = {"description": "", "reference": ""}
LOSSES = Registry("loss", group="estibench.losses", fields=_DOCUMENTED)
METRICS = Registry("metric", group="estibench.metrics",
                   fields={**_DOCUMENTED, "higher_is_better": True})

#: ``@register_loss`` on a loss class (reads ``name``, ``description``, ``reference``), or
#: ``@register_loss("name", **facts)`` on a class or factory; ``get_loss(spec)`` builds it.
register_loss = LOSSES.register
#: the same for metrics, which also declare ``higher_is_better``.
register_metric = METRICS.register


def get_loss(spec: str, **kwargs: Any):
    return LOSSES.get(spec, **kwargs)


def get_metric(spec: str, **kwargs: Any):
    return METRICS.get(spec, **kwargs)


def _import_builtins() -> None:
    """Import every module of this package: built-ins register themselves on import (one
    estimator family per module), so a new module needs no line here."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_builtins()

__all__ = ["ESTIMATORS", "LOSSES", "METRICS", "register_loss", "register_metric", "get_loss",
           "get_metric", "Estimator", "Entry", "Registry", "available", "get", "info",
           "parse_spec", "register", "KINDS", "set_validation", "validation_enabled",
           "display_name", "value_only"]
