"""Tidy frame -> seaborn/matplotlib figures in one style, one colour per estimator or method.

Every builder takes the tidy frame of ONE machine and returns a :class:`Figure`, or raises
:class:`Skip` with the reason it cannot be drawn (its data are absent). Gradient figures use the
latest commit that has gradient results, training figures the latest with alignment results;
the history figure uses every commit.
"""
from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    FixedLocator,
    Formatter,
    FuncFormatter,
    LogLocator,
    NullFormatter,
    NullLocator,
)

from . import measures as M  # noqa: E402
from .load import CI_LEVEL, CI_Z  # noqa: E402
from .style import COLUMN_WIDTH, TEXT_WIDTH, Styles, legend_columns, pretty, style  # noqa: E402

__all__ = ["Figure", "Skip", "save", "image_bytes", "build_figures", "latest_commit",
           "gradient_cells", "pick_device", "training_curves", "run_taus", "HISTORY_MEASURE"]

#: the measure whose history across commits is drawn unless the caller names another
HISTORY_MEASURE = "time_estimate"
PANEL_HEIGHT = 1.45  # inches per row of panels


class Skip(Exception):
    """A figure whose data are absent; the message says which."""


@dataclass
class Figure:
    name: str  # file stem
    title: str
    caption: str
    fig: matplotlib.figure.Figure
    files: dict[str, Path] = field(default_factory=dict)  # format -> saved file


def save(figure: Figure, folder: Path, formats: Sequence[str]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    with style():  # savefig.* settings apply at save time
        for fmt in formats:
            path = folder / f"{figure.name}.{fmt}"
            figure.fig.savefig(path, format=fmt)
            figure.files[fmt] = path
    return figure.files


def image_bytes(figure: Figure, fmt: str = "png") -> bytes:
    buf = io.BytesIO()
    with style():
        figure.fig.savefig(buf, format=fmt)
    return buf.getvalue()


# -- selecting data ------------------------------------------------------------------------------
def latest_commit(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the most recent commit (by commit date, then by when it was benchmarked);
    one env if several ran it."""
    if frame.empty:
        return frame
    keys = frame.groupby(["commit", "env"], dropna=False).agg(
        date=("date", "max"), started=("started_at", "max"))
    commit, env = keys.sort_values(["date", "started"]).index[-1]
    return frame[(frame["commit"] == commit) & (frame["env"] == env)]


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"]


def gradient_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """ok cells of the gradient benchmarks (task, estimator, num_samples, device)."""
    cells = _ok(frame[frame["group"] == "gradient"])
    if cells.empty:
        return cells
    cells = cells.dropna(subset=["task", "estimator", "num_samples"]).copy()
    cells["num_samples"] = cells["num_samples"].astype(int)
    if "device" not in cells:
        cells["device"] = "cpu"
    cells["device"] = cells["device"].fillna("cpu").astype(str)
    return cells


def pick_device(cells: pd.DataFrame) -> str:
    """cpu when it has results (every machine has one), else the device with most results: the
    statistical measures do not depend on the device, only the costs do."""
    devices = cells["device"].value_counts()
    return "cpu" if "cpu" in devices.index else str(devices.index[0])


def training_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, method, seed, checkpoint), one column per measure (step, seconds,
    loss, metric and the task's extras), from the ``<Task>Curve`` benchmarks. A checkpoint is
    named by a ``step`` parameter (the update count) or by a ``checkpoint`` index with ``step``
    among the measures; ``checkpoint`` is the position in the schedule either way."""
    rows = _ok(frame[frame["group"] == "curve"])
    if rows.empty or not {"task", "method"} <= set(rows.columns):
        return pd.DataFrame()
    by = next((c for c in ("step", "checkpoint") if c in rows and rows[c].notna().all()), None)
    if by is None:
        return pd.DataFrame()
    rows = rows.assign(seed=rows["seed"] if "seed" in rows else 0, _at=rows[by].astype(float))
    if by == "step":
        rows = rows[rows["measure"] != "step"]  # the parameter already says it
    curves = rows.pivot_table(index=["task", "method", "seed", "_at"], columns="measure",
                              values="value", aggfunc="mean").reset_index()
    curves.columns.name = None
    curves = curves.rename(columns={"_at": by})
    curves = curves.sort_values(["task", "method", "seed", by])
    if by == "step":
        curves["checkpoint"] = curves.groupby(["task", "method", "seed"]).cumcount()
    return curves.reset_index(drop=True)


def run_taus(curves: pd.DataFrame, tasks: dict[str, M.TaskInfo]) -> pd.DataFrame:
    """Kendall τ between −loss and the oriented metric over each run's checkpoints, as
    ``suite.training.kendall_tau`` defines it (+1: a lower loss always came with a better
    metric); NaN where the task's direction is unknown or a series is constant."""
    from scipy.stats import kendalltau

    out = []
    if curves.empty or not {"loss", "metric"} <= set(curves.columns):
        return pd.DataFrame(columns=["task", "method", "seed", "tau"])
    for (task, method, seed), run in curves.groupby(["task", "method", "seed"]):
        run = run.sort_values("checkpoint").dropna(subset=["loss", "metric"])
        d = tasks.get(task, M.TaskInfo(task)).higher_is_better
        tau = math.nan
        if d is not None and len(run) > 1:
            tau = float(kendalltau(-run["loss"], (1 if d else -1) * run["metric"]).statistic)
        out.append({"task": task, "method": method, "seed": seed, "tau": tau})
    return pd.DataFrame(out)


# -- layout helpers ------------------------------------------------------------------------------
def _facets(n: int, height: float = PANEL_HEIGHT, legend_rows: int = 1):
    """n panels: side by side at column width for up to two, else four abreast at text width;
    room below for a legend of ``legend_rows`` rows."""
    ncols = n if n <= 2 else min(4, n)
    width = COLUMN_WIDTH if n <= 2 else TEXT_WIDTH
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height * nrows + 0.3 + 0.14 *
                                                    legend_rows),
                             squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n], width, ncols


def _handles(styles: Styles, names: Sequence[str]) -> list[Line2D]:
    return [Line2D([], [], color=styles.colour(n), marker=styles.marker(n), lw=1.1, ms=3.5)
            for n in names]


def _legend_below(fig, styles: Styles, names: Sequence[str], title: str, width: float,
                  extra: Sequence[tuple[Line2D, str]] = ()) -> None:
    handles = _handles(styles, names) + [h for h, _ in extra]
    labels = [pretty(n) for n in names] + [label for _, label in extra]
    fig.legend(handles, labels, title=title, loc="outside lower center",
               ncol=legend_columns(labels, width), columnspacing=1.2)


def _legend_right(ax, styles: Styles, names: Sequence[str], labels: Sequence[str],
                  title: str = "method") -> None:
    """The legend of one row of panels, to the right of its last panel."""
    ax.legend(_handles(styles, names), labels, title=title, loc="center left",
              bbox_to_anchor=(1.02, 0.5), borderaxespad=0.0, alignment="left")


def _legend_rows(labels: Sequence[str], width: float) -> int:
    return math.ceil(len(labels) / legend_columns(labels, width)) + 1  # + the title


class _LogTicks(Formatter):
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


def _log_ticks(ax, axis: str = "y") -> None:
    """Readable log ticks: decades when three or more fall in view, else 1-3 steps (two
    decades) or 1-2-5 steps (fewer); no labels on minor ticks (they overlap)."""
    which = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    which.set_minor_formatter(NullFormatter())
    if lo > 0 and hi > lo:
        decades = math.floor(math.log10(hi)) - math.ceil(math.log10(lo)) + 1
        if decades <= 2:
            which.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0) if decades == 2
                                               else (1.0, 2.0, 5.0)))
    which.set_major_formatter(_LogTicks())


def _k_axis(ax, ks: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(ks))))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("samples K")


def _wrap(text: str, width: int = 24) -> str:
    """Wrapped into as few lines as ``width`` allows, of balanced lengths."""
    lines = textwrap.wrap(text, width) or [text]
    for w in range(math.ceil(len(text) / len(lines)), width + 1):
        balanced = textwrap.wrap(text, w)
        if len(balanced) <= len(lines):
            return "\n".join(balanced)
    return "\n".join(lines)


def _one_value_per_cell(sub: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    # the latest commit holds one value per cell; means guard against a duplicated class
    cols = {c: (c, "mean") for c in ("value", "se", "ci_low", "ci_high") if c in sub.columns}
    return sub.groupby(keys, as_index=False, observed=True).agg(**cols)


def _series(ax, part: pd.DataFrame, x: str, name: str, styles: Styles, band: bool,
            log_y: bool, **kw) -> None:
    """A line with its intervals: a shaded band for the suite's (narrow) standard-error
    intervals, thin error bars for asv's timing intervals (wide on a busy machine, a band
    would hide the lines)."""
    part = part.sort_values(x)
    colour = styles.colour(name)
    ax.plot(part[x], part["value"], color=colour, marker=styles.marker(name),
            markeredgewidth=0, label=name, **kw)
    if not band or not part["ci_low"].notna().any():
        return
    lo, hi = part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float)
    ok = np.isfinite(lo) & np.isfinite(hi) & ((lo > 0) if log_y else True)
    if part["se"].notna().any():
        ax.fill_between(part[x], lo, hi, where=ok, color=colour, alpha=0.2, lw=0,
                        interpolate=False)
    elif ok.any():
        v = part["value"].to_numpy(float)
        # clipped at 0: an interval that misses its own value (asv's are not centred on it)
        # must not break the figure
        yerr = np.maximum(0.0, [v[ok] - lo[ok], hi[ok] - v[ok]])
        ax.errorbar(part[x].to_numpy()[ok], v[ok], yerr=yerr,
                    fmt="none", ecolor=colour, elinewidth=0.6, capsize=1.2, capthick=0.6,
                    alpha=0.7)


def _ci_words(sub: pd.DataFrame) -> str:
    levels = sorted({float(v) for v in sub["ci_level"].dropna()}) if "ci_level" in sub else []
    if not levels:
        return ""
    lv = " / ".join(f"{round(100 * v):d} %" for v in levels)
    if sub["se"].isna().all():
        return f" Error bars: asv's {lv} confidence intervals."
    return f" Bands: {lv} confidence intervals (value ± z·se)."


# -- gradient figures ----------------------------------------------------------------------------
def _vs_samples(cells: pd.DataFrame, measure: str, styles: Styles, name: str, title: str,
                caption: str, device: str | None = None,
                reference_slope: float | None = None,
                expected_tasks: Sequence[str] = ()) -> Figure:
    sub = cells[cells["measure"] == measure]
    if sub.empty:
        raise Skip(f"no {measure} results")
    device = device or pick_device(sub)
    sub = sub[sub["device"] == device]
    if sub.empty:
        raise Skip(f"no {measure} results on {device}")
    data = _one_value_per_cell(sub, ["task", "estimator", "num_samples"])
    dropped = data[data["value"] <= 0]
    data = data[data["value"] > 0]
    if data.empty:
        raise Skip(f"no positive {measure} values to draw on a log axis")
    tasks = sorted(data["task"].unique())
    names = sorted(data["estimator"].unique())
    extra = []
    if reference_slope is not None:
        words = {-1: "∝ 1/K", 0.5: "∝ √K"}.get(reference_slope, f"slope {reference_slope:g}")
        extra = [(Line2D([], [], ls=":", color="0.3", lw=1.0), words)]
    width = COLUMN_WIDTH if len(tasks) <= 2 else TEXT_WIDTH
    labels = [pretty(n) for n in names] + [label for _, label in extra]
    fig, axes, width, ncols = _facets(len(tasks), legend_rows=_legend_rows(labels, width))
    for i, (ax, task) in enumerate(zip(axes, tasks)):
        part = data[data["task"] == task]
        for est in sorted(part["estimator"].unique()):
            _series(ax, part[part["estimator"] == est], "num_samples", est, styles, band=True,
                    log_y=True)
        _k_axis(ax, part["num_samples"].tolist())
        ax.set_yscale("log")
        ks = np.array(sorted(part["num_samples"].unique()), dtype=float)
        if reference_slope is not None and len(ks) > 1:
            # a guide line for the slope, kept off the data: under the lowest first point
            # for a falling slope, above the highest for a rising one
            first = part[part["num_samples"] == ks[0]]["value"]
            anchor = first.min() / 2.5 if reference_slope < 0 else first.max() * 2.5
            ax.plot(ks, anchor * (ks / ks[0]) ** reference_slope, ls=":", color="0.3", lw=1.0)
        _log_ticks(ax, "y")
        ax.set_title(task)
        ax.set_ylabel(M.label(measure) if i % ncols == 0 else "")
    _legend_below(fig, styles, names, "estimator", width, extra)
    note = ""
    if not dropped.empty:
        note = (" Not drawn (value 0, no place on a log axis): "
                + ", ".join(sorted(dropped["estimator"].unique())) + ".")
    absent = sorted(set(expected_tasks) - set(tasks))
    if absent:
        note += f" No {measure} results (failed or skipped cells): {', '.join(absent)}."
    return Figure(name, title, f"{caption} Device: {device}.{_ci_words(sub)}{note}", fig)


def fig_variance(cells, styles, **kw):
    return _vs_samples(
        cells, "variance", styles, "variance_vs_samples", "Gradient variance vs samples",
        "Trace of the covariance of the gradient estimate against the number of samples K "
        "(log-log), one panel per task; dotted: slope −1, the 1/K of averaging K independent "
        "samples.", reference_slope=-1, **kw)


def fig_work_normalised(cells, styles, **kw):
    return _vs_samples(
        cells, "work_normalised_variance", styles, "work_normalised_variance",
        "Work-normalised variance",
        "Variance × seconds per estimate against K (the efficiency of a Monte Carlo estimator, "
        "Glynn & Whitt 1992); lower is a better use of compute.", **kw)


def fig_snr(cells, styles, **kw):
    return _vs_samples(
        cells, "snr", styles, "snr_vs_samples", "Signal-to-noise ratio",
        "SNR ‖E ĝ‖ / √tr Cov(ĝ) against K; higher is better; dotted: slope ½ (√K). "
        "Deterministic estimators have no SNR.", reference_slope=0.5, **kw)


def fig_time(cells, styles, device: str, **kw):
    return _vs_samples(
        cells, "time_estimate", styles, f"time_vs_samples_{_slug(device)}",
        f"Time per estimate vs samples ({device})",
        "Seconds per gradient estimate including its backward pass (asv time_estimate) against "
        "K (log-log).", device=device, **kw)


def fig_bias_variance(cells, styles):
    keys = ["task", "estimator", "num_samples"]
    var = cells[cells["measure"] == "variance"]
    bias = cells[cells["measure"] == "bias"]
    if var.empty or bias.empty:
        raise Skip("needs both variance and bias results")
    device = pick_device(var)
    data = _one_value_per_cell(var[var["device"] == device], keys).merge(
        _one_value_per_cell(bias[bias["device"] == device], keys), on=keys,
        suffixes=("_var", "_bias"))
    dropped = data[data["value_var"] <= 0]
    data = data[data["value_var"] > 0]
    if data.empty:
        raise Skip("no cell with positive variance")
    tasks = sorted(data["task"].unique())
    names = sorted(data["estimator"].unique())
    ks = sorted(data["num_samples"].unique())
    sizes = {k: 2.0 + 4.0 * i / max(1, len(ks) - 1) for i, k in enumerate(ks)}
    width = COLUMN_WIDTH if len(tasks) <= 2 else TEXT_WIDTH
    labels = [pretty(n) for n in names]
    fig, axes, width, ncols = _facets(len(tasks), legend_rows=_legend_rows(labels, width) + 1)
    for i, (ax, task) in enumerate(zip(axes, tasks)):
        part = data[data["task"] == task]
        for est in sorted(part["estimator"].unique()):
            line = part[part["estimator"] == est].sort_values("num_samples")
            colour, marker = styles.colour(est), styles.marker(est)
            ax.plot(line["value_var"], line["value_bias"], color=colour, lw=0.8, alpha=0.8,
                    label=est)
            err = (CI_Z * line["se_bias"]).to_numpy(float)
            if np.isfinite(err).any():
                ax.errorbar(line["value_var"], line["value_bias"], yerr=np.nan_to_num(err),
                            fmt="none", ecolor=colour, elinewidth=0.6, capsize=0, alpha=0.6)
            for var_v, bias_v, k in zip(line["value_var"], line["value_bias"],
                                        line["num_samples"]):
                ax.plot(var_v, bias_v, ls="none", marker=marker, color=colour, ms=sizes[k],
                        markeredgewidth=0, label=est)
        ax.set_xscale("log")
        _log_ticks(ax, "x")
        ax.set_ylim(bottom=0)
        ax.set_title(task)
        ax.set_xlabel("variance")
        ax.set_ylabel("relative bias" if i % ncols == 0 else "")
    size_handles = [Line2D([], [], ls="none", marker="o", color="0.45", ms=sizes[k],
                           markeredgewidth=0) for k in ks]
    fig.legend(_handles(styles, names) + size_handles, labels + [f"K={k}" for k in ks],
               title="estimator; marker size: samples K", loc="outside lower center",
               ncol=legend_columns(labels, width), columnspacing=1.2)
    note = ""
    if not dropped.empty:
        note = (" Not drawn (variance 0): " + ", ".join(sorted(dropped["estimator"].unique()))
                + ".")
    caption = (f"Relative bias ‖E ĝ − g‖/‖g‖ against variance, one point per K (larger marker: "
               f"more samples). Error bars: ±{CI_Z:.2f} × the bias resolution √(tr Cov/R)/‖g‖ "
               f"({round(100 * CI_LEVEL)} %): a bias within them cannot be told from 0 with "
               f"these R replicates. Device: {device}.{note}")
    return Figure("bias_vs_variance", "Bias vs variance", caption, fig)


def fig_history(frame_machine: pd.DataFrame, styles: Styles, measure: str = HISTORY_MEASURE):
    """``measure`` across commits (ordered by date) at each task's largest K, on the CPU."""
    cells = gradient_cells(frame_machine)
    sub = cells[cells["measure"] == measure] if not cells.empty else cells
    if sub.empty:
        raise Skip(f"no {measure} results")
    order = _commit_order(sub)
    if len(order) < 2:
        raise Skip(f"{measure} has results of one commit only")
    device = pick_device(sub)
    sub = sub[sub["device"] == device]
    k_of = sub.groupby("task")["num_samples"].max()
    sub = sub[sub["num_samples"] == sub["task"].map(k_of)]
    data = _one_value_per_cell(sub, ["task", "estimator", "commit"])
    data["position"] = data["commit"].map({c: i for i, c in enumerate(order)})
    tasks = sorted(data["task"].unique())
    names = sorted(data["estimator"].unique())
    width = COLUMN_WIDTH if len(tasks) <= 2 else TEXT_WIDTH
    fig, axes, width, ncols = _facets(
        len(tasks), height=PANEL_HEIGHT + 0.25,
        legend_rows=_legend_rows([pretty(n) for n in names], width))
    step = max(1, math.ceil(len(order) / 10))  # at most ~10 commit labels per axis
    log_y = bool((data["value"] > 0).all())
    for i, (ax, task) in enumerate(zip(axes, tasks)):
        part = data[data["task"] == task]
        for est in sorted(part["estimator"].unique()):
            _series(ax, part[part["estimator"] == est], "position", est, styles, band=True,
                    log_y=log_y)
        ticks = list(range(0, len(order), step))
        ax.set_xticks(ticks)
        ax.set_xticklabels([order[t][:8] for t in ticks], rotation=45, ha="right",
                           fontsize=5.5)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(-0.3, len(order) - 0.7)
        if log_y:
            ax.set_yscale("log")
            _log_ticks(ax, "y")
        ax.set_title(f"{task} (K={int(k_of[task])})")
        ax.set_ylabel(M.label(measure) if i % ncols == 0 else "")
    _legend_below(fig, styles, names, "estimator", width)
    caption = (f"{M.label(measure)} ({measure}) across {len(order)} commits, oldest left, at each "
               f"task's largest K; device {device}.{_ci_words(sub)}")
    return Figure(f"history_{_slug(measure)}", f"History of {measure}", caption, fig)


def _commit_order(frame: pd.DataFrame) -> list[str]:
    """Commits oldest first: by commit date, then by when they were benchmarked."""
    keys = frame.groupby("commit").agg(date=("date", "min"), started=("started_at", "min"))
    return list(keys.sort_values(["date", "started"]).index)


# -- training figures ----------------------------------------------------------------------------
def _metric_label(info: M.TaskInfo) -> str:
    """The task's metric in words with ↑/↓ for its direction (which replaces a "(lower is
    better)" in the words)."""
    arrow = {True: "\u00a0↑", False: "\u00a0↓"}.get(info.higher_is_better, "")  # no break
    words = re.sub(r"\s*\((higher|lower) is better\)", "", info.metric)
    return _wrap(f"{words}{arrow}", 28)


def fig_training(curves: pd.DataFrame, styles: Styles, tasks: dict[str, M.TaskInfo]):
    if curves.empty or "metric" not in curves:
        raise Skip("no <Task>Curve results with a metric")
    xs = [x for x in ("step", "seconds") if x in curves and curves[x].notna().any()]
    if not xs:
        raise Skip("the curves record neither step nor seconds")
    names = sorted(curves["task"].unique())
    fig, axes = plt.subplots(len(names), len(xs), squeeze=False, layout="constrained",
                             figsize=(TEXT_WIDTH * (0.4 + 0.3 * len(xs)),
                                      (PANEL_HEIGHT + 0.2) * len(names) + 0.1))
    for task, row in zip(names, axes):
        part = curves[curves["task"] == task]
        info = tasks.get(task, M.TaskInfo(task))
        methods = sorted(part["method"].unique())
        agg = part.groupby(["method", "checkpoint"]).agg(
            **{x: (x, "mean") for x in xs},
            mean=("metric", "mean"), sd=("metric", "std")).reset_index()
        for c, (ax, x) in enumerate(zip(row, xs)):
            for method in methods:
                line = agg[agg["method"] == method].sort_values("checkpoint")
                colour = styles.colour(method)
                ax.plot(line[x], line["mean"], color=colour, marker=styles.marker(method),
                        ms=2.6, markeredgewidth=0, lw=1.0, label=method)
                sd = line["sd"].fillna(0).to_numpy(float)
                ax.fill_between(line[x], line["mean"] - sd, line["mean"] + sd, color=colour,
                                alpha=0.1, lw=0)
            ax.set_xlabel("update step" if x == "step" else "training seconds")
            ax.set_ylabel(_metric_label(info) if c == 0 else "")
            ax.set_title(task if c == 0 else f"{task}, wall clock")
        _legend_right(row[-1], styles, methods, methods)
    seeds = int(curves.groupby(["task", "method"])["seed"].nunique().max())
    caption = ("Held-out metric during training against update steps and against cumulative "
               "training seconds (evaluation excluded; averaged over seeds at each "
               f"checkpoint). Lines: mean over {seeds} seed(s); bands: ± one standard "
               "deviation. ↑/↓: higher/lower is better.")
    return Figure("training_curves", "Training curves", caption, fig)


def fig_loss_metric(curves: pd.DataFrame, styles: Styles, tasks: dict[str, M.TaskInfo],
                    taus: pd.DataFrame):
    if curves.empty or not {"loss", "metric"} <= set(curves.columns):
        raise Skip("no <Task>Curve results recording both loss and metric")
    names = sorted(curves["task"].unique())
    ncols = 1 if len(names) == 1 else 2
    nrows = math.ceil(len(names) / ncols)
    longest = max(curves.groupby("task")["method"].nunique())
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                             figsize=(COLUMN_WIDTH if ncols == 1 else TEXT_WIDTH,
                                      (PANEL_HEIGHT + 0.45 + 0.12 * longest) * nrows + 0.1))
    flat = list(axes.flat)
    for ax in flat[len(names):]:
        ax.set_visible(False)
    for ax, task in zip(flat, names):
        part = curves[curves["task"] == task].dropna(subset=["loss", "metric"])
        info = tasks.get(task, M.TaskInfo(task))
        methods = sorted(part["method"].unique())
        for method in methods:
            pts = part[part["method"] == method]
            ax.scatter(pts["loss"], pts["metric"], s=8, color=styles.colour(method),
                       marker=styles.marker(method), linewidths=0, alpha=0.8, label=method)
        loss = part["loss"]
        if (loss > 0).all() and loss.max() / loss.min() > 30:
            ax.set_xscale("log")
            _log_ticks(ax, "x")
        ax.set_xlabel("held-out loss")
        ax.set_ylabel(_metric_label(info))
        ax.set_title(task)
        mean_tau = taus[taus["task"] == task].groupby("method")["tau"].mean() \
            if not taus.empty else pd.Series(dtype=float)
        labels = [f"{m}  τ = {mean_tau[m]:+.2f}".replace("-", "−")  # a true minus sign
                  if m in mean_tau and np.isfinite(mean_tau[m]) else m for m in methods]
        panel = fig.get_figwidth() / ncols
        ax.legend(_handles(styles, methods), labels, loc="upper center",
                  bbox_to_anchor=(0.5, -0.27), ncol=legend_columns(labels, panel),
                  borderaxespad=0.0, columnspacing=1.0)
    caption = ("Held-out loss against the held-out metric at every checkpoint of every seed. τ: "
               "Kendall's rank correlation of −loss and the metric, oriented so that +1 means a "
               "lower loss always came with a better metric; per run, mean over seeds. Where "
               "methods optimise different surrogates (e.g. BCE and ZLPR) each reports its own "
               "loss, so losses compare within a method only.")
    return Figure("loss_vs_metric", "Loss vs metric", caption, fig)


# -- all figures ---------------------------------------------------------------------------------

def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text))


def build_figures(frame_machine: pd.DataFrame, styles: Styles, tasks: dict[str, M.TaskInfo],
                  suffix: str = "", history_measure: str = HISTORY_MEASURE,
                  progress: Callable[[str], None] = lambda msg: None
                  ) -> tuple[list[Figure], list[tuple[str, str]]]:
    """Every figure that one machine's results allow: (figures, [(figure, why not drawn)])."""
    grad = latest_commit(frame_machine[frame_machine["group"] == "gradient"])
    cells = gradient_cells(grad)
    ran = {"expected_tasks": sorted(grad["task"].dropna().unique()) if not grad.empty else []}
    align = latest_commit(frame_machine[frame_machine["group"].isin(["summary", "final",
                                                                     "curve"])])
    curves = training_curves(align)
    taus = _summary_taus(align)
    if taus.empty:
        taus = run_taus(curves, tasks)
    builders: list[tuple[str, Callable[[], Figure]]] = [
        ("variance vs samples", lambda: fig_variance(cells, styles, **ran)),
        ("work-normalised variance", lambda: fig_work_normalised(cells, styles, **ran)),
        ("bias vs variance", lambda: fig_bias_variance(cells, styles)),
        ("signal-to-noise ratio", lambda: fig_snr(cells, styles, **ran)),
    ]
    time_devices = sorted(cells.loc[cells["measure"] == "time_estimate", "device"].unique()) \
        if not cells.empty else []
    builders += [(f"time vs samples ({d})", lambda d=d: fig_time(cells, styles, d, **ran))
                 for d in time_devices or ["cpu"]]
    builders += [
        ("training curves", lambda: fig_training(curves, styles, tasks)),
        ("loss vs metric", lambda: fig_loss_metric(curves, styles, tasks, taus)),
        (f"history of {history_measure}",
         lambda: fig_history(frame_machine, styles, history_measure)),
    ]
    figures, skipped = [], []
    for label, build in builders:
        with style():
            try:
                if cells.empty and label.split(" (")[0] in _GRADIENT_FIGURES:
                    raise Skip("no gradient benchmark results (task, estimator, num_samples)")
                figure = build()
            except Skip as why:
                skipped.append((label, str(why)))
                continue
            except Exception as exc:  # noqa: BLE001 - one odd figure must not sink the report
                plt.close("all")
                skipped.append((label, f"could not be drawn ({type(exc).__name__}: {exc})"))
                continue
        figure.name += suffix
        progress(f"figure {figure.name}")
        figures.append(figure)
    return figures, skipped


_GRADIENT_FIGURES = {"variance vs samples", "work-normalised variance", "bias vs variance",
                     "signal-to-noise ratio", "time vs samples"}


def _summary_taus(align: pd.DataFrame) -> pd.DataFrame:
    rows = _ok(align[(align["group"] == "summary") & (align["measure"] == "kendall_tau")])
    if rows.empty:
        return pd.DataFrame(columns=["task", "method", "seed", "tau"])
    return rows.assign(tau=rows["value"])[["task", "method", "seed", "tau"]]
