"""Drawing helpers shared by the figures: panel grids, legends, log ticks, lines with intervals.

Nothing here selects data (that is :mod:`reports.select`); every function takes what to draw."""
from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import PIL.Image  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedLocator,
    Formatter,
    LogLocator,
    MaxNLocator,
    NullLocator,
    StrMethodFormatter,
)

from estibench import schema  # noqa: E402

from .safe import (
    axis_unit,  # noqa: E402
    slug,  # noqa: E402
)
from .select import NoData  # noqa: E402
from .style import COLUMN_WIDTH, TEXT_WIDTH, Styles, legend_columns, style  # noqa: E402

__all__ = ["Figure", "Skip", "encode", "save", "axis_label", "ci_words", "PANEL_HEIGHT",
           "facets", "handles", "legend_below", "legend_right", "legend_rows",
           "LogTicks", "log_ticks", "k_axis", "wrap", "series", "mark_zeros"]

PANEL_HEIGHT = 1.45  # inches per row of panels
Skip = NoData  # a figure whose data are absent; the message says which


@dataclass
class Figure:
    name: str  # file stem (safe: letters, digits, - and _ only)
    title: str
    caption: str
    fig: matplotlib.figure.Figure
    files: dict[str, Path] = field(default_factory=dict)  # format -> saved file


def encode(fig: matplotlib.figure.Figure, fmt: str) -> bytes:
    """The file of ``fig`` in format ``fmt`` (png, svg, pdf), as :func:`save` writes it."""
    buf = io.BytesIO()
    with style():  # savefig.* settings apply at save time
        if fmt != "png":
            fig.savefig(buf, format=fmt)
            return buf.getvalue()
        # PNG: one draw (savefig draws twice under a layout engine: a third of a report's time)
        fig.set_dpi(plt.rcParams["savefig.dpi"])
        canvas = FigureCanvasAgg(fig)  # also for a figure made without pyplot
        canvas.draw()
        PIL.Image.fromarray(np.asarray(canvas.buffer_rgba())).save(buf, format="png")
    return buf.getvalue()


def save(figure: Figure, folder: Path, formats: Sequence[str]) -> dict[str, Path]:
    """Write ``figure`` as ``folder/<name>.<fmt>`` for each format."""
    folder.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        path = folder / f"{slug(figure.name)}.{fmt}"
        path.write_bytes(encode(figure.fig, fmt))
        figure.files[fmt] = path
    return figure.files


def axis_label(measure: str, short: bool = False) -> str:
    """``label [unit]`` with the unit as an axis writes it (``grad²``, ``s``); ``short``: the
    name without its formula (``variance [grad²]``, for a narrow panel's x axis)."""
    row = schema.get(measure)
    label = row.axis_label.replace(f"[{row.unit}]", f"[{axis_unit(row.unit)}]")
    if short and "  " in row.label:
        label = label.replace(row.label, row.label.split("  ")[0])
    return label


def ci_words(sub: pd.DataFrame) -> str:
    levels = sorted({float(v) for v in sub["ci_level"].dropna()}) if "ci_level" in sub else []
    if not levels:
        return ""
    lv = " / ".join(f"{round(100 * v):d} %" for v in levels)
    if sub["se"].isna().all():
        return f" Error bars: asv's {lv} confidence intervals."
    return f" Bands: {lv} confidence intervals (value ± z·se)."


def facets(n: int, height: float = PANEL_HEIGHT, legend_rows: int = 1):
    """n panels: side by side at column width for up to two, else four abreast at text width;
    room below for a legend of ``legend_rows`` rows."""
    ncols = n if n <= 2 else min(4, n)
    width = COLUMN_WIDTH if n <= 2 else TEXT_WIDTH
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height * nrows + 0.3 + 0.14 * legend_rows),
                             squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n], width, ncols


def handles(styles: Styles, names: Sequence[str]) -> list[Line2D]:
    return [Line2D([], [], color=styles.colour(n), marker=styles.marker(n), lw=1.1, ms=3.5) for n in names]


def legend_below(fig, styles: Styles, names: Sequence[str], title: str, width: float,
                  extra: Sequence[tuple[Line2D, str]] = ()) -> None:
    shown = handles(styles, names) + [h for h, _ in extra]
    labels = [styles.name(n) for n in names] + [label for _, label in extra]
    fig.legend(shown, labels, title=title, loc="outside lower center",
               ncol=legend_columns(labels, width), columnspacing=1.2)


def legend_right(ax, styles: Styles, names: Sequence[str], labels: Sequence[str], title: str = "method") -> None:
    """The legend of one row of panels, to the right of its last panel."""
    ax.legend(handles(styles, names), labels, title=title, loc="center left",
              bbox_to_anchor=(1.02, 0.5), borderaxespad=0.0, alignment="left")


def legend_rows(labels: Sequence[str], width: float) -> int:
    return math.ceil(len(labels) / legend_columns(labels, width)) + 1  # + the title


class LogTicks(Formatter):
    """Plain numbers when every tick of the axis lies in [0.01, 10000), else powers of ten
    (``2×10⁻⁴``): one notation per axis."""

    def set_locs(self, locs):
        self._ticks = [v for v in locs if v > 0]

    def __call__(self, v, pos=None):
        if v <= 0 or not math.isfinite(v):
            return ""
        ticks = getattr(self, "_ticks", []) or [v]
        lo, hi = self.axis.get_view_interval() if self.axis is not None else (v, v)
        shown = [t for t in ticks if min(lo, hi) * 0.999 <= t <= max(lo, hi) * 1.001] or [v]
        if all(0.01 <= t < 1e4 for t in shown):
            return f"{v:g}"
        e = math.floor(math.log10(v) + 1e-9)
        m = round(v / 10 ** e, 6)
        return f"$10^{{{e}}}$" if m == 1 else f"${m:g}\\times10^{{{e}}}$"


def log_ticks(ax, axis: str = "y") -> None:
    """Readable log ticks: decades when three or more fall in view, else 1-3 steps (two
    decades) or 1-2-5 steps (fewer); no labels on minor ticks (they overlap)."""
    which = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    which.set_minor_locator(NullLocator())  # minor ticks: half the cost of saving, no labels
    if lo > 0 and hi > lo:
        decades = math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) + 1
        if decades <= 0:  # no power of ten in view: LogLocator would fall back to a crowded
            # linear locator; three or four round numbers instead
            which.set_major_locator(MaxNLocator(nbins=3, steps=[1, 2, 2.5, 5, 10]))
        elif decades <= 2:
            which.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0) if decades == 2 else (1.0, 2.0, 5.0)))
    which.set_major_formatter(LogTicks())


def k_axis(ax, ks: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(ks))))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.set_xlabel("samples K")


def wrap(text: str, width: int = 24) -> str:
    """Wrapped into as few lines as ``width`` allows, of balanced lengths."""
    lines = textwrap.wrap(text, width) or [text]
    for w in range(math.ceil(len(text) / len(lines)), width + 1):
        balanced = textwrap.wrap(text, w)
        if len(balanced) <= len(lines):
            return "\n".join(balanced)
    return "\n".join(lines)


def series(ax, part: pd.DataFrame, x: str, name: str, styles: Styles, band: bool, log_y: bool, **kw) -> None:
    """A line with its intervals: a shaded band for the suite's (narrow) standard-error intervals, thin error
    bars for asv's timing intervals (wide on a busy machine, a band would hide the lines)."""
    part = part.sort_values(x)
    colour = styles.colour(name)
    ax.plot(part[x], part["value"], color=colour, marker=styles.marker(name), markeredgewidth=0, label=name, **kw)
    if not band or not part["ci_low"].notna().any():
        return
    lo, hi = part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float)
    ok = np.isfinite(lo) & np.isfinite(hi) & ((lo > 0) if log_y else True)
    if part["se"].notna().any():
        ax.fill_between(part[x], lo, hi, where=ok, color=colour, alpha=0.2, lw=0, interpolate=False)
    else:
        bars(ax, part[x].to_numpy(float), lo, hi, colour, ok)


def bars(ax, x, lo, hi, colour, ok=None) -> None:
    """Thin vertical error bars from ``lo`` to ``hi`` (one collection: cheap to draw)."""
    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(x) if ok is None else ok
    if ok.any():
        ax.vlines(np.asarray(x)[ok], lo[ok], hi[ok], color=colour, lw=0.6, alpha=0.7)


def mark_zeros(ax, xs: Sequence[float], colour, marker: str, axis: str = "y", label: str = "") -> None:
    """Values of exactly 0 on a log axis: drawn at the axis's low edge (hollow markers), so that
    no estimator disappears from a figure (a deterministic one has variance 0)."""
    if not len(xs):
        return
    trans = ax.get_xaxis_transform() if axis == "y" else ax.get_yaxis_transform()
    pos = np.full(len(xs), 0.03)
    pts = (xs, pos) if axis == "y" else (pos, xs)
    ax.plot(*pts, transform=trans, ls="none", marker=marker, color=colour, mfc="none", ms=3.5,
            mew=0.8, clip_on=False, label=label)
