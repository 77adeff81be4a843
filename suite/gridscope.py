"""The settings a grid is computed under: the given :class:`estibench.settings.Settings`, or
:func:`estibench.settings.current`, and whether they ask for the full grid. Shared by the
gradient grid (:mod:`suite.grid`) and the training runs (:mod:`suite.training_grid`)."""
from __future__ import annotations

from estibench.settings import Settings, current


def _s(settings: Settings | None) -> Settings:
    return current() if settings is None else settings


def full_grid(settings: Settings | None = None) -> bool:
    """The full grid (every K, every measure) rather than the default one."""
    return _s(settings).full
