"""Checks of the suite's options, one wording for every task.

Each check returns the value normalised (``int`` for numpy integers, ``float`` for numbers) and
raises with a message that names the owner (``"vqvae_digits"``), the option and what was
expected. Out of range is a ``ValueError``; a value of the wrong type is an
:class:`OptionTypeError`, which is both a ``TypeError`` and a ``ValueError`` (the tasks used to
raise one or the other, and callers may catch either).
"""
from __future__ import annotations

import math
import numbers

__all__ = ["OptionTypeError", "check_int", "check_ints", "check_number", "check_bool", "check_choice",
           "check_seed"]


class OptionTypeError(TypeError, ValueError):
    """An option of the wrong type."""


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(owner: str, name: str, value, minimum: int = 1) -> int:
    """An integer (numpy integers too, never a bool) that is at least ``minimum``."""
    if not _is_int(value):
        raise OptionTypeError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_ints(owner: str, values: dict[str, object],
               minimum: dict[str, int] | None = None) -> dict[str, int]:
    """:func:`check_int` of every ``name: value`` in ``values``, each at least 1 unless
    ``minimum`` says otherwise."""
    minimum = minimum or {}
    return {name: check_int(owner, name, value, minimum.get(name, 1))
            for name, value in values.items()}


def check_number(owner: str, name: str, value, *, allow_zero: bool = False,
                 maximum: float | None = None) -> float:
    """A finite real number ``> 0`` (``>= 0`` with ``allow_zero``), at most ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptionTypeError(f"{owner}: {name} must be a number, got {value!r}")
    value = float(value)
    low = "[0" if allow_zero else "(0"
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        if maximum is None:
            raise ValueError(f"{owner}: {name} must be a finite number "
                             f"{'>= 0' if allow_zero else '> 0'}, got {value!r}")
        raise ValueError(f"{owner}: {name} must be in {low}, {maximum:g}], got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{owner}: {name} must be in {low}, {maximum:g}], got {value!r}")
    return value


def check_bool(owner: str, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise OptionTypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return value


def check_choice(owner: str, name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def check_seed(owner: str, seed) -> int:
    """A run's seed: an int >= 0 (a ``ValueError`` for anything else, as the tasks always
    raised)."""
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"training task {owner!r}: seed must be an int >= 0, got {seed!r}")
    return int(seed)
