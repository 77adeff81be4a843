"""The one look of every estibench figure: fonts, sizes, and one colour, marker and line style per name
(:class:`Styles`). Sizes are for a two-column paper: :data:`TEXT_WIDTH` (a ``figure*``), :data:`COLUMN_WIDTH`
for a single panel; fonts 6.5-7.5 pt at that size, so a figure is printed at 100 % and never shrunk."""
from __future__ import annotations

import collections
import contextlib
import functools
import textwrap
from collections.abc import Iterable, Iterator, Sequence

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window (every drawing module imports this one)
import seaborn as sns  # noqa: E402
from matplotlib.textpath import TextPath  # noqa: E402

__all__ = ["COLUMN_WIDTH", "TEXT_WIDTH", "style", "Styles", "drawable", "legend_columns", "MAX_DRAWN"]

COLUMN_WIDTH = 3.3  # inches: one column of a two-column paper
TEXT_WIDTH = 7.0  # inches: the full text width (figure*)
#: characters of a name in a legend or a panel title; longer ones end in "…" (the tables keep it whole)
MAX_DRAWN = 40
_RC = {"font.size": 7.5, "axes.titlesize": 7.5, "axes.labelsize": 7.5, "xtick.labelsize": 6.5,
       "ytick.labelsize": 6.5, "legend.fontsize": 6.5, "legend.title_fontsize": 7, "lines.linewidth": 1.1,
       "lines.markersize": 3.5, "axes.linewidth": 0.6, "xtick.major.width": 0.6, "ytick.major.width": 0.6,
       "xtick.major.size": 2.5, "ytick.major.size": 2.5, "savefig.dpi": 300, "savefig.bbox": "standard",
       "svg.fonttype": "none", "pdf.fonttype": 42, "axes.titlepad": 3.0, "axes.labelpad": 2.0,
       "legend.handlelength": 1.6, "legend.frameon": False, "axes.grid": True, "grid.linewidth": 0.35,
       "grid.color": "0.88",
       # CJK names: drawn by the first of these fonts that is installed (matplotlib's font fallback)
       "font.family": ["sans-serif"], "font.sans-serif": ["DejaVu Sans", "Noto Sans CJK JP", "Noto Sans CJK SC",
                                                          "WenQuanYi Zen Hei", "Droid Sans Fallback"]}
# seaborn's 10 colour-blind-safe colours, the pale pink and yellow (hard to see on white) last, then their
# dark variants when more than ten names are shown together
_CB = sns.color_palette("colorblind", 10)
_COLOURS = [_CB[i] for i in (0, 1, 2, 3, 4, 5, 9, 7, 6, 8)] + sns.color_palette("dark", 10)
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p"]


@contextlib.contextmanager
def style() -> Iterator[None]:
    """seaborn's 'paper' ticks theme with 6.5-7.5 pt fonts, inside the block only (importing this module
    changes nothing globally)."""
    with matplotlib.rc_context():
        sns.set_theme(context="paper", style="ticks", rc=_RC)
        yield


def _assign(order: list[str], neighbours: dict[str, set], slots: int, avoid: dict[str, set] | None = None):
    """Greedy colouring: each name takes the first slot no neighbour (a name shown with it) holds, so every
    figure starts from the most distinct colours; ``avoid``: slots to keep clear of where possible."""
    taken: dict[str, int] = {}
    for name in order:
        blocked = {taken[n] for n in neighbours[name] if n in taken}
        soft = {taken[n] for n in (avoid or {}).get(name, ()) if n in taken}
        held = collections.Counter(taken[n] for n in neighbours[name] if n in taken)
        free = [s for s in range(slots) if s not in blocked] or [min(range(slots), key=held.__getitem__)]
        taken[name] = ([s for s in free if s not in soft] or free)[0]
    return taken


class Styles:
    """One colour (seaborn's colour-blind-safe palette) and marker per name (estimator or method), the same in
    every figure of a report. ``groups``: the sets of names shown together; names in a group never share a colour
    or a marker (more names than colours: the colour fewest of them hold, with another marker), and a name in two
    groups keeps one colour. ``names``: column -> id -> display name (:func:`reports.select.display_names`); its
    ``biased`` ids (registered as biased) are drawn dashed."""

    def __init__(self, groups: Iterable[Iterable[str]], names: dict[str, dict[str, str]] | None = None):
        self.names = names or {}
        self.biased = set(self.names.get("biased", ()))
        groups = [list(dict.fromkeys(str(n) for n in g)) for g in groups]
        order = list(dict.fromkeys(n for g in groups for n in g))
        neighbours: dict[str, set] = {n: set() for n in order}
        for g in groups:
            for n in g:
                neighbours[n].update(m for m in g if m != n)
        self._colour = _assign(order, neighbours, 10 if max(map(len, groups), default=1) <= 10 else len(_COLOURS))
        same = {n: {m for m in order if m != n and self._colour[m] == self._colour[n]} for n in order}
        self._marker = _assign(order, neighbours, len(_MARKERS), avoid=same)

    def colour(self, name: str) -> tuple[float, float, float]:
        return _COLOURS[self._colour.get(str(name), 0) % len(_COLOURS)]

    def marker(self, name: str) -> str:
        return _MARKERS[self._marker.get(str(name), 0) % len(_MARKERS)]

    def dashes(self, name: str):
        """The line style: dashed for an estimator registered as biased, solid otherwise."""
        return (0, (2.4, 1.2)) if str(name) in self.biased else "-"

    def name(self, name: object) -> str:
        """The display name of an estimator or method id (the id when none is known), as a figure draws it."""
        key = str(name)
        return drawable(self.names.get("estimator", {}).get(key) or self.names.get("method", {}).get(key) or key)

    def task(self, task: object) -> str:
        """A task's display name as a panel title: on two lines of at most :data:`MAX_DRAWN` characters
        before it is cut."""
        text = self.names.get("task", {}).get(str(task)) or str(task)
        first, *rest = textwrap.wrap(text, MAX_DRAWN) if len(text) > MAX_DRAWN else [text]
        return drawable(first) + ("\n" + drawable(" ".join(rest)) if rest else "")


def drawable(text: str) -> str:
    """``text`` as a figure draws it: at most :data:`MAX_DRAWN` characters (then "…"), characters no
    installed font has (CJK without a CJK font) as "?" instead of an empty box."""
    text = text if len(text) <= MAX_DRAWN else text[:MAX_DRAWN - 1] + "…"
    return "".join(c if ord(c) < 128 or ord(c) in _glyphs() else "?" for c in text)


@functools.lru_cache(maxsize=1)
def _glyphs() -> frozenset[int]:
    """The characters the fonts of :data:`_RC` can draw (fallback fonts included, where installed)."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    out: set[int] = set()
    for family in _RC["font.sans-serif"]:
        try:
            out.update(FT2Font(font_manager.findfont(family, fallback_to_default=False)).get_charmap())
        except (ValueError, OSError, RuntimeError):
            continue
    return frozenset(out)


@functools.lru_cache(maxsize=4096)
def _text_width(text: str, points: float) -> float:
    """Inches ``text`` takes at ``points`` in the default font (memoised: a text path costs ~10 ms)."""
    return TextPath((0, 0), text, size=points).get_extents().width / 72.0


def legend_columns(labels: Sequence[str], width: float, points: float = 6.5) -> int:
    """How many legend entries fit side by side in ``width`` inches (handle 1.6 em, pad 0.8 em, the longest
    label, column spacing 1.2 em)."""
    if not labels:
        return 1
    entry = max(_text_width(label, points) for label in labels) + 3.6 * points / 72.0
    return max(1, min(len(labels), int((width - 0.1) // entry)))
