"""Checks of options and names shared by every registered object (standard library only).

Every message names the owner (``"rebar"``, ``"mgs"``, ``"multilabel_digits"``), the option, what
was expected and what was given, so that ``get("rebar:eta=abc")`` reads
``rebar: option eta must be a finite number, got 'abc'`` rather than a bare ``float()`` error.
"""
from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable

__all__ = ["closest", "unknown_name", "choice", "integer", "number", "Described"]


def closest(name: object, options: Iterable[str]) -> str | None:
    """The option most similar to ``name`` (None when there are no options)."""
    options = sorted(map(str, options))
    match = difflib.get_close_matches(str(name), options, n=1, cutoff=0.0)
    return match[0] if match else None


def unknown_name(what: str, name: object, options: Iterable[str]) -> str:
    """``unknown estimator 'sf'; did you mean 'score_function'? Available: ...``"""
    options = sorted(map(str, options))
    near = closest(name, options)
    hint = f"; did you mean {near!r}?" if near is not None else ""
    return f"unknown {what} {name!r}{hint} Available: {', '.join(options) or '(none)'}"


def choice(owner: str, option: str, value: object, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options``, else a ValueError that suggests the closest."""
    options = tuple(options)
    if isinstance(value, str) and value in options:
        return value
    raise ValueError(f"{owner}: {unknown_name(option, value, options)}")


def integer(owner: str, option: str, value: object, minimum: int | None = 1) -> int:
    """``value`` as an int ``>= minimum`` (numpy ints accepted; bools, floats and strings not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ValueError(f"{owner}: option {option} must be an int{bound}, got {value!r} "
                         f"({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: option {option} must be an int >= {minimum}, got {value!r}")
    return int(value)


def number(owner: str, option: str, value: object, *, low: float | None = None,
           high: float | None = None, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in the stated interval (``low_open``: ``> low``, else ``>=``)."""
    if isinstance(value, bool):
        value_f = math.nan
    else:
        try:
            value_f = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            value_f = math.nan
    ok = math.isfinite(value_f)
    if ok and low is not None:
        ok = value_f > low if low_open else value_f >= low
    if ok and high is not None:
        ok = value_f < high if high_open else value_f <= high
    if not ok:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        where = f" in {lo or '(-inf'}, {hi or 'inf)'}" if (low is not None or high is not None) else ""
        raise ValueError(f"{owner}: option {option} must be a finite number{where}, got {value!r}")
    return value_f


class Described:
    """``describe()``: the spec it was built from (``"score_function:baseline=loo"``) or its name;
    also the ``extra_repr`` of modules, so ``print(est)`` says what it is."""

    name: str = ""

    def describe(self) -> str:
        return getattr(self, "spec", None) or self.name

    def extra_repr(self) -> str:
        return self.describe()
