"""Drawing shared by every figure: :func:`draw` (one panel per task or setting, one line per estimator or
method with its interval, values with no place on a log axis at its edge, one legend below), the panel
grid (:func:`facets`, laid out by :func:`fit`), log ticks, and saving. Nothing here selects data."""
from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D

from estibench import schema

from .safe import axis_unit, slug
from .select import NoData
from .style import COLUMN_WIDTH, TEXT_WIDTH, Styles, legend_columns, style

__all__ = ["Figure", "Skip", "encode", "save", "attempt", "axis_label", "ci_words", "PANEL_HEIGHT", "draw", "facets",
           "fit", "LogTicks", "log_ticks", "wrap", "EDGE_WORDS"]

PANEL_HEIGHT = 1.45  # inches per row of panels
Skip = NoData  # a figure whose data are absent; the message says which
#: what a hollow marker on a log axis's edge means (each caption names whose they are)
EDGE_WORDS = "exactly 0 or at round-off (defined above the figures): no place on a log axis"


@dataclass
class Figure:
    name: str  # file stem (safe: letters, digits, - and _ only)
    title: str
    caption: str
    fig: matplotlib.figure.Figure
    files: dict[str, Path] = field(default_factory=dict)  # format -> saved file


def encode(fig: matplotlib.figure.Figure, fmt: str) -> bytes:
    """The file of ``fig`` in format ``fmt`` (png, svg, pdf); a PNG at zlib level 3 (two thirds of level 6's
    time, files ~6 % larger)."""
    buf = io.BytesIO()
    with style():  # savefig.* settings apply at save time
        fig.savefig(buf, format=fmt, **({"pil_kwargs": {"compress_level": 3}} if fmt == "png" else {}))
    return buf.getvalue()


def save(figure: Figure, folder: Path, formats: Sequence[str]) -> dict[str, Path]:
    """Write ``figure`` as ``folder/<name>.<fmt>`` for each format."""
    folder.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        figure.files[fmt] = folder / f"{slug(figure.name)}.{fmt}"
        figure.files[fmt].write_bytes(encode(figure.fig, fmt))
    return figure.files


def attempt(build: Callable[[], Figure | None], label: str, skipped: list) -> Figure | None:
    """``build()`` in the report's style, or None with ``(label, why)`` in ``skipped``: its :class:`Skip`
    message, or the error that stopped the drawing."""
    with style():
        try:
            return build()
        except Skip as why:
            skipped.append((label, str(why)))
        except Exception as exc:  # noqa: BLE001 - shown in the report as not drawn, with why
            plt.close("all")
            skipped.append((label, f"could not be drawn ({type(exc).__name__}: {str(exc)[:200]})"))
    return None


def axis_label(measure: str, short: bool = False) -> str:
    """``label [unit]`` with the unit as an axis writes it (``grad²``, ``s``); ``short``: the name without
    its formula (``variance [grad²]``, for a narrow panel)."""
    row = schema.get(measure)
    label = row.axis_label.replace(f"[{row.unit}]", f"[{axis_unit(row.unit)}]")
    return label.replace(row.label, row.label.split("  ")[0]) if short and "  " in row.label else label


def ci_words(sub: pd.DataFrame) -> str:
    levels = sorted({float(v) for v in sub["ci_level"].dropna()}) if "ci_level" in sub else []
    lv = " / ".join(f"{round(100 * v):d} %" for v in levels)
    if not levels:
        return ""
    return f" Error bars: asv's {lv} confidence intervals." if sub["se"].isna().all() else \
        f" Bands: {lv} confidence intervals (value ± z·se)."


def facets(n: int, labels: Sequence[str] = (), height: float = PANEL_HEIGHT, ncols: int | None = None):
    """n panels, at most four abreast, at text width (one panel: column width), taller when two or fewer
    share a row; room below for one legend of ``labels``: (figure, axes, width, columns)."""
    ncols = ncols or min(4, n)
    width = COLUMN_WIDTH if n == 1 else TEXT_WIDTH
    height *= 1.3 if 1 < n and ncols <= 2 else 1.0
    nrows = math.ceil(n / ncols)
    rows = math.ceil(len(labels) / legend_columns(labels, width)) + 1 if labels else 0  # + the title
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height * nrows + 0.3 + 0.14 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n]), width, ncols


def fit(fig, ncols: int, pad: float = 0.04) -> None:
    """Lay the visible panels out on their grid so that every label, title and tick fits and the legend
    sits below them, overlapping nothing. Each panel is measured once (a layout engine measures every panel
    twice at every save: it took most of a report's drawing time). ``pad``: inches around and between."""
    axes = [ax for ax in fig.axes if ax.get_visible()]
    renderer, (w, h), dpi = fig.canvas.get_renderer(), fig.get_size_inches(), fig.dpi
    over = np.zeros(4)  # the most any panel's labels stick out: left, right, below, above (inches)
    for ax in axes:
        box, at = ax.get_tightbbox(renderer, bbox_extra_artists=[]), ax.get_window_extent(renderer)
        over = np.maximum(over, np.array([at.x0 - box.x0, box.x1 - at.x1, at.y0 - box.y0, box.y1 - at.y1]) / dpi)
    below = fig.legends[0].get_window_extent(renderer).height / dpi + 2 * pad if fig.legends else 0.0
    cell_w, cell_h = (w - pad) / ncols, (h - below - pad) / math.ceil(len(axes) / ncols)
    size = [max(cell_w - over[0] - over[1] - pad, 0.1) / w, max(cell_h - over[2] - over[3] - pad, 0.1) / h]
    for i, ax in enumerate(axes):
        r, c = divmod(i, ncols)
        ax.set_position([(pad + c * cell_w + over[0]) / w, (h - (r + 1) * cell_h + over[2]) / h, *size])
    if fig.legends:
        fig.legends[0].set_bbox_to_anchor((0.5, pad / h), transform=fig.transFigure)


class LogTicks(ticker.Formatter):
    """Plain numbers when every tick in view lies in [0.01, 10000), else powers of ten (``2×10⁻⁴``): one
    notation per axis, every tick labelled."""

    def set_locs(self, locs):
        self._ticks = [v for v in locs if v > 0]

    def __call__(self, v, pos=None):
        if v <= 0 or not math.isfinite(v):
            return ""
        lo, hi = self.axis.get_view_interval() if self.axis is not None else (v, v)
        shown = [t for t in getattr(self, "_ticks", []) if min(lo, hi) * 0.999 <= t <= max(lo, hi) * 1.001] or [v]
        if all(0.01 <= t < 1e4 for t in shown):
            return f"{v:g}"
        e = math.floor(math.log10(v) + 1e-9)
        m = round(v / 10 ** e, 6)
        return f"$10^{{{e}}}$" if m == 1 else f"${m:g}\\times10^{{{e}}}$"


def log_ticks(ax, axis: str = "y") -> None:
    """Readable log ticks: decades when three or more fall in view, else 1-3 steps (two decades) or 1-2-5 steps
    (fewer), or three round numbers on a short axis (:class:`LogTicks` labels); no minor ticks (they cost half of
    saving, and their labels overlap)."""
    which = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    which.set_minor_locator(ticker.NullLocator())
    if lo > 0 and hi > lo:
        decades = math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) + 1
        if decades <= 0 or hi / lo < 4:  # 1-2-5 steps would leave one tick in view
            which.set_major_locator(ticker.MaxNLocator(nbins=3, steps=[1, 2, 2.5, 5, 10]))
        elif decades <= 2:
            which.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 3.0) if decades == 2 else (1.0, 2.0, 5.0)))
    which.set_major_formatter(LogTicks())


def wrap(text: str, width: int = 24) -> str:
    """Wrapped into as few lines as ``width`` allows, of balanced lengths."""
    lines = textwrap.wrap(text, width)
    if len(lines) < 2:
        return text
    return "\n".join(next(b for w in range(math.ceil(len(text) / len(lines)), width + 1)
                          if len(b := textwrap.wrap(text, w)) <= len(lines)))


def _band(x, lo, hi, log_y: bool) -> list:
    """The polygons of one line's interval band: one per run of points with a finite interval (above 0 on
    a log axis)."""
    ok = np.isfinite(lo) & np.isfinite(hi) & ((lo > 0) if log_y else True)
    runs = np.split(np.arange(len(x)), np.flatnonzero(np.diff(ok.astype(int))) + 1)
    return [np.column_stack([np.r_[x[r], x[r][::-1]], np.r_[lo[r], hi[r][::-1]]]) for r in runs
            if ok[r[0]] and len(r) > 1]


def _pick(value, key):
    return value(key) if callable(value) else value.get(key, "") if isinstance(value, dict) else value


def _scale(ax, axis: str, scale: str, values: pd.Series) -> None:
    if scale == "K":  # samples K: base 2, a tick at each K of the panel
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(ticker.FixedLocator(sorted(set(values.dropna().astype(int)))))
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.xaxis.set_major_formatter(ticker.StrMethodFormatter("{x:g}"))
        ax.set_xlabel("samples K")
    elif scale in ("log", "log2"):
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log", base=2 if scale == "log2" else 10)
        log_ticks(ax, axis)


def draw(data: pd.DataFrame, styles: Styles, *, x: str, panel: str = "task", series: str = "estimator",
         legend: str = "estimator", xscale: Any = "linear", yscale: Any = "log", xlabel: Any = "",
         ylabel: Any = "", titles: Any = None, intervals: str = "band", order: str | None = None,
         ncols: int | None = None, lines: bool = True, height: float = PANEL_HEIGHT, sizes: str | None = None,
         edge: str = "y", each: Callable[[Any, Any, pd.DataFrame], None] | None = None, extra: Sequence = ()):
    """One panel per ``panel`` value (in order), one line per ``series`` against ``x`` (in ``order``), ``value``
    with its interval (``ci_low``/``ci_high``: ``band``, ``bars`` or ``none``); rows with ``edge`` (or ≤ 0 on a log
    axis) as hollow markers at the ``edge`` axis's low edge. Scales (``linear``, ``log``, ``log2``, ``K``), labels
    and titles: one value (a y label: first column only), or a dict or function of the panel. ``sizes``: the
    column of each point's marker size (points drawn apart from their line). ``each(ax, key, part)``: a panel's
    extras; ``extra``: (handle, label) pairs for the legend. Returns (figure, names drawn)."""
    keys, names = list(dict.fromkeys(data[panel])), sorted(data[series].astype(str).unique())
    labels = [styles.name(n) for n in names] + [label for _, label in extra]
    fig, axes, width, ncols = facets(len(keys), labels, height, ncols)
    for i, (ax, key) in enumerate(zip(axes, keys)):
        part = data[data[panel] == key]
        log_y = _pick(yscale, key) in ("log", "log2")
        low = np.broadcast_to((part["edge"].to_numpy(bool) if "edge" in part else False)
                              | ((part["value"] <= 0).to_numpy() if log_y else False), len(part))
        shown, bands = part[~low].sort_values([series, order or x]), []
        for name, line in shown.groupby(series, sort=False):
            ax.plot(line[x], line["value"], color=styles.colour(name), marker=None if sizes else styles.marker(name),
                    markeredgewidth=0, ls=styles.dashes(name) if lines else "none", ms=3.5 if lines else 3,
                    label=str(name))
            if sizes:
                ax.scatter(line[x], line["value"], s=line[sizes] ** 2, marker=styles.marker(name),
                           color=styles.colour(name), linewidths=0)
            if intervals == "band" and "ci_low" in line:
                new = _band(line[x].to_numpy(float), line["ci_low"].to_numpy(float), line["ci_high"].to_numpy(float),
                            log_y)
                bands += [(b, styles.colour(name)) for b in new]
        if bands:  # every band of the panel in one collection: one artist to draw, not one per line
            ax.add_collection(PolyCollection([b for b, _ in bands], facecolors=[c for _, c in bands], alpha=0.18, lw=0))
        if intervals == "bars" and "ci_low" in shown:  # thin vertical bars, one collection per panel
            xs, lo, hi = (np.asarray(v, dtype=float) for v in (shown[x], shown["ci_low"].where(
                shown["ci_low"] > 0) if log_y else shown["ci_low"], shown["ci_high"]))
            ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(xs)
            ax.vlines(xs[ok], lo[ok], hi[ok], colors=[styles.colour(n) for n in shown[series][ok]], lw=0.6, alpha=0.7)
        # values with no place on a log axis (0, or at round-off): hollow markers at the ``edge`` axis's low edge,
        # so that no estimator disappears and none stretches the axis
        for name, zero in part[low].groupby(series):
            at, on = zero[x if edge == "y" else "value"].to_numpy(float), np.full(len(zero), 0.03)
            ax.plot(*((at, on) if edge == "y" else (on, at)), ls="none", marker=styles.marker(name), mfc="none",
                    color=styles.colour(name), ms=3.5, mew=0.8, clip_on=False, label=str(name),
                    transform=ax.get_xaxis_transform() if edge == "y" else ax.get_yaxis_transform())
        _scale(ax, "x", _pick(xscale, key), part[x])
        _scale(ax, "y", _pick(yscale, key), part["value"])
        ax.set_title(_pick(titles, key) if titles is not None else styles.task(key))
        if _pick(xscale, key) != "K" or xlabel:
            ax.set_xlabel(_pick(xlabel, key))
        # wrapped to the panel's height: a label longer than its axis would push the panels apart
        ax.set_ylabel(wrap(_pick(ylabel, key), int((height - 0.4) * 18))
                      if not isinstance(ylabel, str) or i % ncols == 0 else "")
        if each is not None:
            each(ax, key, part)
    fig.legend([Line2D([], [], color=styles.colour(n), marker=styles.marker(n), lw=1.1, ms=3.5, ls=styles.dashes(n)
                       if lines else "none") for n in names] + [h for h, _ in extra], labels, title=legend,
               loc="lower center", ncol=legend_columns(labels, width), columnspacing=1.2)  # one legend, below
    fit(fig, ncols)
    return fig, names
