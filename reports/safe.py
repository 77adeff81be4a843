"""Names from result files made inert in every output (file names, Markdown, HTML, CSV, matplotlib text), and
numbers with their units as the tables write them. Anyone can write a result file: a name may hold ``<script>``,
``|``, newlines, backticks, ``$`` (mathtext), a CSV formula prefix (``=cmd``), ``../``: every writer escapes it here."""
from __future__ import annotations

import hashlib
import html
import math
import numbers
import re

__all__ = ["slug", "plain", "md_text", "html_text", "csv_cell", "MAX_SLUG", "quantity", "number",
           "SIGNIFICANT", "axis_unit", "bracket"]

MAX_SLUG = 100  # characters of a file stem (file systems allow 255 bytes)
SIGNIFICANT = 3
_CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")
# what could become markup: HTML, code, links/images, table cells, math; emphasis (* _) is left as it
# is: it cannot run anything, and names such as score_function read better unescaped
_MD_SPECIAL = re.compile(r"([\\`\[\]<>|$])")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?%?")
_SECONDS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
_BYTES = ((2.0 ** 30, "GiB"), (2.0 ** 20, "MiB"), (2.0 ** 10, "KiB"))
#: asv units shown with no unit word (their label already says what they are)
_SILENT = {"", "unit", "None", "relative", "cosine", "ratio", "tau", "replicates", "z", "p-value", "metric",
           "fraction", "threshold", "flag", "spearman", "perplexity"}
#: how an axis names an asv unit
_AXIS = {"seconds": "s", "bytes": "bytes", "grad^2": "grad²", "grad^2*s": "grad²·s", "unix seconds": "s"}


def slug(text: object) -> str:
    """A file stem of ASCII letters, digits, ``-`` and ``_`` (no ``/``, ``..`` or dot files), at most :data:`MAX_SLUG`
    characters; a name cut or changed keeps a short hash of the original so that two names do not collide."""
    text = str(text)
    out = re.sub(r"[^A-Za-z0-9_-]", "_", text) or "_"
    if len(out) > MAX_SLUG or (out != text and not out.strip("_")):
        out = f"{out[:MAX_SLUG - 11]}-{hashlib.sha1(text.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"
    return out


def plain(text: object) -> str:
    """Text matplotlib draws as it is: ``$`` escaped (mathtext: a bad formula fails the figure), controls spaces."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", str(text)).replace("$", r"\$")


def md_text(text: object) -> str:
    """Text for Markdown, prose or a table cell: one line, markup characters (``<script>``, links, code, math,
    table pipes) backslash-escaped: shown, not interpreted."""
    escaped = _MD_SPECIAL.sub(r"\\\1", re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", str(text)))
    return "\\" + escaped if escaped.startswith(("#", "-", "+", "=", ">")) else escaped


def html_text(text: object) -> str:
    """Text for HTML, quotes included (safe in attributes too)."""
    return html.escape(str(text), quote=True)


def csv_cell(value: object) -> object:
    """A CSV field no spreadsheet runs: text starting with ``= + - @``, a tab, a carriage return (and ``|``, ``%``
    of older DDE tricks) gets a leading ``'``; numbers and plain-number text stay."""
    if isinstance(value, str) and value.startswith(_CSV_FORMULA) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def number(v: float, digits: int = SIGNIFICANT) -> str:
    """``v`` at ``digits`` significant digits, trailing zeros kept (``50.0``), no exponent in [1e-4, 1e6)."""
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    e = math.floor(math.log10(abs(v)))
    return f"{v:.{max(0, digits - 1 - e)}f}" if -4 <= e < 6 else f"{v:.{digits - 1}e}"


def quantity(value: object, unit: object) -> str:
    """``value`` with its unit, scaled: seconds and bytes pick the unit that keeps 1-999; counts stay integers."""
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return "–" if value is None else str(value)
    v, unit = float(value), "" if unit is None else str(unit)
    if math.isnan(v):
        return "–"
    if unit == "seconds":
        scale, word = next(((s, w) for s, w in _SECONDS if abs(v) >= s), _SECONDS[-1])
        return f"{number(v / scale)} {word}"
    if unit == "bytes":
        scale, word = next(((s, w) for s, w in _BYTES if abs(v) >= s), (1.0, "B"))
        return f"{number(v / scale)} {word}" if scale > 1 else f"{v:.0f} B"
    text = str(int(v)) if v.is_integer() and abs(v) < 1e6 else number(v)
    return text if unit in _SILENT else f"{text} {_AXIS.get(unit, unit)}"


def axis_unit(unit: str) -> str:
    """The unit as an axis label writes it (``grad^2`` -> ``grad²``, ``seconds`` -> ``s``)."""
    return _AXIS.get(unit, unit)


def bracket(unit: str) -> str:
    """`` [unit]`` as a column header ends (nothing for a unit that goes without saying)."""
    return "" if unit in _SILENT else f" [{_AXIS.get(unit, unit)}]"
