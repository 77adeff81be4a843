"""Training figures: the held-out metric during training against update steps, wall-clock and
f evaluations, and training loss against the metric (metric alignment, Kendall τ). Drawn with
:mod:`reports.figures`' helpers; :func:`reports.figures.build_figures` calls them."""
from __future__ import annotations

import math
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from estibench import schema as M

from . import layout as L
from .layout import Figure, Skip
from .safe import plain
from .style import COLUMN_WIDTH, TEXT_WIDTH, Styles, legend_columns

__all__ = ["fig_training", "fig_training_evaluations", "fig_loss_metric"]


def _metric_label(info: M.TaskInfo) -> str:
    """The task's metric in words with ↑/↓ for its direction (which replaces a "(lower is
    better)" in the words)."""
    arrow = {True: "\u00a0↑", False: "\u00a0↓"}.get(info.higher_is_better, "")  # no break
    words = re.sub(r"\s*\((higher|lower) is better\)", "", plain(info.metric))
    return L.wrap(f"{words}{arrow}", 28)


_X_WORDS = {"step": "update step", "seconds": "training seconds", "evaluations": "f evaluations per image"}


def _curve_panel(ax, part: pd.DataFrame, x: str, styles: Styles) -> list[str]:
    """Mean metric (± sd over seeds) of each method of one task against ``x``; the methods."""
    methods = sorted(part["method"].unique())
    agg = part.groupby(["method", "checkpoint"]).agg(
        xv=(x, "mean"), mean=("metric", "mean"), sd=("metric", "std")).reset_index()
    for method in methods:
        line = agg[agg["method"] == method].sort_values("checkpoint")
        colour = styles.colour(method)
        ax.plot(line["xv"], line["mean"], color=colour, marker=styles.marker(method), ms=2.6,
                markeredgewidth=0, lw=1.0, label=method)
        sd = line["sd"].fillna(0).to_numpy(float)
        ax.fill_between(line["xv"], line["mean"] - sd, line["mean"] + sd, color=colour, alpha=0.1, lw=0)
    ax.set_xlabel(_X_WORDS[x])
    return methods


def fig_training(curves: pd.DataFrame, styles: Styles, tasks: dict[str, M.TaskInfo]):
    if curves.empty or "metric" not in curves:
        raise Skip("no <Task>Curve results with a metric")
    xs = [x for x in ("step", "seconds") if x in curves and curves[x].notna().any()]
    if not xs:
        raise Skip("the curves record neither step nor seconds")
    names = sorted(curves["task"].unique())
    fig, axes = plt.subplots(len(names), len(xs), squeeze=False, layout="constrained",
                             figsize=(TEXT_WIDTH * (0.4 + 0.3 * len(xs)), (L.PANEL_HEIGHT + 0.2) * len(names) + 0.1))
    for task, row in zip(names, axes):
        part = curves[curves["task"] == task]
        info = tasks.get(task, M.TaskInfo(task))
        for c, (ax, x) in enumerate(zip(row, xs)):
            methods = _curve_panel(ax, part, x, styles)
            ax.set_ylabel(_metric_label(info) if c == 0 else "")
            ax.set_title(styles.task(task) if c == 0 else f"{styles.task(task)}, wall clock")
        L.legend_right(row[-1], styles, methods, [styles.name(m) for m in methods])
    seeds = int(curves.groupby(["task", "method"])["seed"].nunique().max())
    caption = ("Held-out metric during training against update steps and against cumulative "
               "training seconds (evaluation excluded; averaged over seeds at each "
               f"checkpoint). Lines: mean over {seeds} seed(s); bands: ± one standard "
               "deviation. ↑/↓: higher/lower is better.")
    return Figure("training_curves", "Training curves", caption, fig)


def fig_training_evaluations(curves: pd.DataFrame, styles: Styles, tasks: dict[str, M.TaskInfo]):
    """The training curves at equal cost in f: against cumulative f evaluations per image, for
    the tasks that count them (the VAEs: an estimator that calls f 3 times per sample pays 3x)."""
    if curves.empty or "metric" not in curves or "evaluations" not in curves:
        raise Skip("no <Task>Curve results counting f evaluations")
    counted = curves.dropna(subset=["evaluations"])
    names = sorted(counted["task"].unique())
    if not names:
        raise Skip("no training task counts f evaluations")
    ncols = min(len(names), 3)
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                             figsize=(TEXT_WIDTH, (L.PANEL_HEIGHT + 0.3) * nrows + 1.6))
    flat = list(axes.flat)
    for ax in flat[len(names):]:
        ax.set_visible(False)
    shown: set[str] = set()
    for i, (task, ax) in enumerate(zip(names, flat)):
        part = counted[(counted["task"] == task) & (counted["evaluations"] > 0)]
        shown.update(_curve_panel(ax, part, "evaluations", styles))
        ax.set_xscale("log")
        ax.set_ylabel(_metric_label(tasks.get(task, M.TaskInfo(task))) if i % ncols == 0 else "")
        ax.set_title(styles.task(task))
    L.legend_below(fig, styles, sorted(shown), "method", TEXT_WIDTH)
    caption = ("Held-out metric during training against cumulative f evaluations per image "
               "(log scale; the first checkpoint, before any evaluation, left out): the "
               "equal-cost comparison of estimators that call f a different number of times "
               "per sample (REBAR and RELAX 3, IndeCateR one per value of each variable, exact "
               "enumeration every state). Lines: mean over seeds; bands: ± one standard "
               "deviation. ↑/↓: higher/lower is better.")
    return Figure("training_curves_evaluations", "Training curves at equal f evaluations", caption, fig)


def fig_loss_metric(curves: pd.DataFrame, styles: Styles, tasks: dict[str, M.TaskInfo], taus: pd.DataFrame):
    if curves.empty or not {"loss", "metric"} <= set(curves.columns):
        raise Skip("no <Task>Curve results recording both loss and metric")
    names = sorted(curves["task"].unique())
    ncols = 1 if len(names) == 1 else 2
    nrows = math.ceil(len(names) / ncols)
    longest = max(curves.groupby("task")["method"].nunique())
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                             figsize=(COLUMN_WIDTH if ncols == 1 else TEXT_WIDTH,
                                      (L.PANEL_HEIGHT + 0.45 + 0.12 * longest) * nrows + 0.1))
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
            L.log_ticks(ax, "x")
        ax.set_xlabel("held-out loss")
        ax.set_ylabel(_metric_label(info))
        ax.set_title(styles.task(task))
        mean_tau = taus[taus["task"] == task].groupby("method")["tau"].mean() \
            if not taus.empty else pd.Series(dtype=float)
        labels = [f"{styles.name(m)}  τ = {mean_tau[m]:+.2f}".replace("-", "−")  # true minus
                  if m in mean_tau and np.isfinite(mean_tau[m]) else styles.name(m) for m in methods]
        panel = fig.get_figwidth() / ncols
        ax.legend(L.handles(styles, methods), labels, loc="upper center",
                  bbox_to_anchor=(0.5, -0.27), ncol=legend_columns(labels, panel), borderaxespad=0.0, columnspacing=1.0)
    caption = ("Held-out loss against the held-out metric at every checkpoint of every seed. τ: "
               "Kendall's rank correlation of −loss and the metric, oriented so that +1 means a "
               "lower loss always came with a better metric; per run, mean over seeds. Where "
               "methods optimise different surrogates (e.g. BCE and ZLPR) each reports its own "
               "loss, so losses compare within a method only.")
    return Figure("loss_vs_metric", "Loss vs metric", caption, fig)
