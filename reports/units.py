"""Quantities for people: a value and its asv unit as text at 3 significant digits, in a unit that suits its
size (bytes as KiB/MiB/GiB, seconds as s/ms/µs/ns). Tables and CSV files keep the raw numbers; report.md and
report.html show these.

>>> quantity(0.000123456, "seconds")
'123 µs'
>>> quantity(52428800, "bytes")
'50.0 MiB'"""
from __future__ import annotations

import math
import numbers

__all__ = ["quantity", "number", "SIGNIFICANT", "axis_unit"]

SIGNIFICANT = 3
_SECONDS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
_BYTES = ((2.0 ** 30, "GiB"), (2.0 ** 20, "MiB"), (2.0 ** 10, "KiB"))
#: asv units shown with no unit word (their label already says what they are)
_SILENT = {"", "unit", "None", "relative", "cosine", "ratio", "tau", "replicates", "z",
           "p-value", "metric", "fraction", "threshold", "flag", "spearman", "perplexity"}
#: how an axis names an asv unit
_AXIS = {"seconds": "s", "bytes": "bytes", "grad^2": "grad²", "grad^2*s": "grad²·s",
         "unix seconds": "s"}


def number(v: float, digits: int = SIGNIFICANT) -> str:
    """``v`` at ``digits`` significant digits, trailing zeros kept (``50.0``), no exponent
    between 1e-4 and 1e6; a true minus sign is left to the reader's font (ASCII ``-``)."""
    if v == 0:
        return "0"
    if not math.isfinite(v):
        return str(v)
    e = math.floor(math.log10(abs(v)))
    if -4 <= e < 6:
        decimals = max(0, digits - 1 - e)
        text = f"{v:.{decimals}f}"
        # rounding may add a digit (999.6 -> 1000): one more significant digit is fine
        return text
    return f"{v:.{digits - 1}e}"


def quantity(value: object, unit: object) -> str:
    """``value`` with its unit, scaled: seconds and bytes pick the unit that keeps 1-999;
    integers of count units (evaluations, replicates, steps) stay integers."""
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return "–" if value is None else str(value)
    v = float(value)
    if math.isnan(v):
        return "–"
    unit = "" if unit is None else str(unit)
    if unit == "seconds":
        for scale, word in _SECONDS:
            if abs(v) >= scale or scale == _SECONDS[-1][0]:
                return f"{number(v / scale)} {word}"
    if unit == "bytes":
        for scale, word in _BYTES:
            if abs(v) >= scale:
                return f"{number(v / scale)} {word}"
        return f"{v:.0f} B"
    text = str(int(v)) if v.is_integer() and abs(v) < 1e6 else number(v)
    return text if unit in _SILENT else f"{text} {_AXIS.get(unit, unit)}"


def axis_unit(unit: str) -> str:
    """The unit as an axis label writes it (``grad^2`` -> ``grad²``, ``seconds`` -> ``s``)."""
    return _AXIS.get(unit, unit)
