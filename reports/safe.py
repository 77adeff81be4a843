"""Names from result files made inert in every output: file names, Markdown, HTML, CSV and matplotlib text.

Estimator, task and machine names come from result files, which anyone can write: a name may hold
``<script>``, ``|``, newlines, backticks, ``$`` (matplotlib's mathtext), a CSV formula prefix (``=cmd``) or
``../``. Every writer of the report passes them through here."""
from __future__ import annotations

import hashlib
import html
import math
import numbers
import re

__all__ = ["slug", "plain", "md_text", "md_cell", "html_text", "csv_cell", "MAX_SLUG", "quantity", "number",
           "SIGNIFICANT", "axis_unit"]

MAX_SLUG = 100  # characters of a file stem (file systems allow 255 bytes)
_UNSAFE_FILE = re.compile(r"[^A-Za-z0-9_-]")
_CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")
# what could become markup: HTML, code, links/images, table cells, math; emphasis (* _) is left
# as it is: it cannot run anything, and names such as score_function read better unescaped
_MD_SPECIAL = re.compile(r"([\\`\[\]<>|$])")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?%?")


def slug(text: object) -> str:
    """A file stem of ASCII letters, digits, ``-`` and ``_`` only (no ``/``, ``..`` or dot
    files), at most :data:`MAX_SLUG` characters; a name that had to be cut or changed keeps a
    short hash of the original so that two names do not collide."""
    text = str(text)
    out = _UNSAFE_FILE.sub("_", text) or "_"
    if len(out) > MAX_SLUG or (out != text and not out.strip("_")):
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        out = f"{out[:MAX_SLUG - 11]}-{digest}"
    return out


def plain(text: object) -> str:
    """Text matplotlib draws as it is: ``$`` would start mathtext (and a malformed formula
    would fail the whole figure), so it is escaped; control characters become spaces."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", str(text)).replace("$", r"\$")


def md_text(text: object) -> str:
    """Text for Markdown prose: one line, markup characters backslash-escaped (so ``<script>``,
    links, code, math and table pipes are shown, not interpreted)."""
    one_line = re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", str(text))
    escaped = _MD_SPECIAL.sub(r"\\\1", one_line)
    return "\\" + escaped if escaped.startswith(("#", "-", "+", "=", ">")) else escaped


def md_cell(text: object) -> str:
    """A Markdown table cell: :func:`md_text` (pipes escaped, no newlines)."""
    return md_text(text)


def html_text(text: object) -> str:
    """Text for HTML, quotes included (safe in attributes too)."""
    return html.escape(str(text), quote=True)


def csv_cell(value: object) -> object:
    """A CSV field that no spreadsheet runs as a formula: text starting with ``= + - @``, a tab,
    a carriage return (and ``|``, ``%`` of older DDE tricks) gets a leading ``'``. Numbers, and
    text that is a plain number (``-1.5``), are left alone."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(_CSV_FORMULA) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


SIGNIFICANT = 3
_SECONDS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
_BYTES = ((2.0 ** 30, "GiB"), (2.0 ** 20, "MiB"), (2.0 ** 10, "KiB"))
#: asv units shown with no unit word (their label already says what they are)
_SILENT = {"", "unit", "None", "relative", "cosine", "ratio", "tau", "replicates", "z",
           "p-value", "metric", "fraction", "threshold", "flag", "spearman", "perplexity"}
#: how an axis names an asv unit
_AXIS = {"seconds": "s", "bytes": "bytes", "grad^2": "grad²", "grad^2*s": "grad²·s", "unix seconds": "s"}


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
