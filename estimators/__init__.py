"""estibench's registered gradient estimators, update-search estimators, losses and metrics.

>>> import estimators
>>> est = estimators.get("score_function", baseline="loo")   # or "score_function:baseline=loo"
>>> loss = est(dist, f, num_samples=16)                        # doctest: +SKIP
>>> loss.backward()                                            # doctest: +SKIP

See :mod:`estimators.base` for the contract and :mod:`estimators.registry` for plugins.
"""
from __future__ import annotations

from typing import Any

from .base import Estimator, set_validation, validation_enabled
from .registry import Entry, Registry, parse_spec

ESTIMATORS = Registry("estimator", group="estibench.estimators")


def register(name: str, *, kind: str = "gradient", unbiased: bool = False, families=(),
             description: str = "", reference: str = "", **info: Any):
    """Register an estimator factory (usually an :class:`Estimator` subclass).

    ``kind`` is ``"gradient"`` (called as ``est(dist, f, num_samples)``) or ``"update"``
    (writes an update direction into parameters' ``.grad``). ``families`` lists the
    ``torch.distributions`` classes it supports (names are stored in the info).
    """
    if kind not in ("gradient", "update"):
        raise ValueError(f"kind must be 'gradient' or 'update', got {kind!r}")
    fam = tuple(c if isinstance(c, str) else c.__name__ for c in families)
    return ESTIMATORS.register(name, kind=kind, unbiased=bool(unbiased), families=fam,
                               description=description, reference=reference, **info)


def available(kind: str | None = None) -> list[str]:
    """Sorted names of registered estimators, optionally only ``kind="gradient"``/``"update"``."""
    if kind not in (None, "gradient", "update"):
        raise ValueError(f"kind must be None, 'gradient' or 'update', got {kind!r}")
    return ESTIMATORS.available(kind=kind)


def get(spec: str, **kwargs: Any):
    """Build an estimator: ``get("score_function", baseline="loo")`` or
    ``get("score_function:baseline=loo")``."""
    return ESTIMATORS.get(spec, **kwargs)


def info(name: str) -> Entry:
    """The registry entry (factory and info: kind, unbiased, families, description, reference)."""
    return ESTIMATORS.entry(name)


LOSSES = Registry("loss", group="estibench.losses")
METRICS = Registry("metric", group="estibench.metrics")


def register_loss(name: str, *, description: str = "", reference: str = "", **info: Any):
    """Register a loss factory; ``get_loss(spec)`` builds it (same spec strings as ``get``)."""
    return LOSSES.register(name, description=description, reference=reference, **info)


def register_metric(name: str, *, description: str = "", reference: str = "",
                    higher_is_better: bool = True, **info: Any):
    """Register a metric factory; ``get_metric(spec)`` builds it."""
    return METRICS.register(name, description=description, reference=reference,
                            higher_is_better=higher_is_better, **info)


def get_loss(spec: str, **kwargs: Any):
    return LOSSES.get(spec, **kwargs)


def get_metric(spec: str, **kwargs: Any):
    return METRICS.get(spec, **kwargs)


# Built-ins register themselves on import; one family per module.
from . import (  # noqa: E402,F401,E501  # noqa: E402,F401
    control_variates,
    exact,
    losses,
    metrics,
    relaxed,
    reparam,
    score_function,
    straight_through,
    update_search,  # noqa: E402,F401
)

__all__ = ["ESTIMATORS", "LOSSES", "METRICS", "register_loss", "register_metric", "get_loss",
           "get_metric", "Estimator", "Entry", "Registry", "available", "get", "info",
           "parse_spec", "register", "set_validation", "validation_enabled"]
