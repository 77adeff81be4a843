"""What a report is made of: blocks (heading, paragraph, list, alert box, table, figure) and :func:`fmt`, the
one way a cell becomes text. :mod:`reports.write` writes them as Markdown and HTML."""
from __future__ import annotations

import math
import numbers
from collections import namedtuple
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from .safe import SIGNIFICANT  # digits of a number in report.md and report.html (the CSV tables keep all)

if TYPE_CHECKING:  # pragma: no cover
    from .figures import Figure

__all__ = ["Heading", "Para", "Items", "Alert", "Table", "Bold", "FigureBlock", "Block", "Report", "fmt", "SIGNIFICANT",
           "display"]


Heading = namedtuple("Heading", "text level", defaults=[2])
Para = namedtuple("Para", "text")
Items = namedtuple("Items", "items")
#: a box at the top of the report that must not be missed (contradicted claims)
Alert = namedtuple("Alert", "title items text", defaults=[""])
#: ``interactive``: sortable and filterable in report.html; in report.md its caption only
Table = namedtuple("Table", "frame caption interactive", defaults=["", False])
FigureBlock = namedtuple("FigureBlock", "figure")


class Bold(str):
    """A table cell shown in bold (the best of its column)."""


Block = Heading | Para | Items | Alert | Table | FigureBlock


@dataclass
class Report:
    blocks: list[Block] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> raw numbers
    skipped: list[str] = field(default_factory=list)  # sections and figures left out, and why

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


def display(names: dict, *kinds: str, marked: bool = False) -> dict[str, str]:
    """id -> display name (:func:`reports.select.display_names`) of ``kinds`` of ids, a later kind's name winning;
    ``marked``: † after an id registered as biased."""
    marks = names.get("biased", {}) if marked else ()
    return {k: v + "\u2009†" * (k in marks) for c in kinds for k, v in names.get(c, {}).items()}


def fmt(value: Any) -> str:
    """A cell as text: 3 significant digits, integers as integers, times to the second in UTC, missing as an
    en dash."""
    if isinstance(value, pd.Timestamp):
        return "–" if pd.isna(value) else value.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, numbers.Integral):
        return str(value if isinstance(value, bool) else int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        return "–" if math.isnan(v) else str(int(v)) if v.is_integer() and abs(v) < 1e6 else f"{v:.{SIGNIFICANT}g}"
    try:
        return "–" if value is None or pd.isna(value) else str(value)
    except (TypeError, ValueError):
        return str(value)
