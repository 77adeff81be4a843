"""Names from result files made inert in every output: file names, Markdown, HTML, CSV and matplotlib text.

Estimator, task and machine names come from result files, which anyone can write: a name may hold
``<script>``, ``|``, newlines, backticks, ``$`` (matplotlib's mathtext), a CSV formula prefix (``=cmd``) or
``../``. Every writer of the report passes them through here."""
from __future__ import annotations

import hashlib
import html
import re

__all__ = ["slug", "plain", "md_text", "md_cell", "html_text", "csv_cell", "MAX_SLUG"]

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
