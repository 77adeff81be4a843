"""Figures of ONE machine's results, drawn with :func:`reports.layout.draw` (a builder raises :class:`Skip` saying
why it cannot draw). Every estimator with a result is in every figure: a value with no place on a log axis (0, or
at round-off: :mod:`reports.select`) is a hollow marker at the axis's edge. One scale per measure: variances, MSE,
times (training seconds too) and f evaluations on log axes everywhere, K base 2, steps and metrics linear."""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from estibench import schema as M

from . import layout as L
from . import select as S
from .layout import Figure, Skip, axis_label, ci_words
from .load import CI_LEVEL, CI_Z
from .safe import plain, slug
from .select import gradient_cells, latest_commit, training_curves
from .style import Styles

__all__ = ["Figure", "Skip", "build_figures", "HISTORY_MEASURE", "NEEDS", "fig_cost", "figure_note",
           "metric_label"]

#: the measure whose history across commits is drawn unless the caller names another
HISTORY_MEASURE = "time_estimate"
_KEYS = ["task", "estimator", "num_samples"]
#: the label columns the figures read beyond the identity (reports.load.BASE_COLUMNS)
NEEDS = ("estimator_name", "task_name", "method_name", "claims_unbiased")


def figure_note(styles: Styles) -> str:
    """Said once, above the figures: what a dashed line and a hollow marker at an axis's edge mean."""
    named = ", ".join(sorted(styles.name(b) for b in styles.biased))
    return ("In every figure a dashed line is an estimator registered as biased (it claims no unbiasedness; "
            f"marked † in the tables{': ' + named if named else ''}). Hollow markers at a log axis's low edge are "
            "values with no place on it: exactly 0, or at round-off (replicates that differ by rounding only, "
            "√tr Cov ≤ 10⁻⁵·‖E ĝ‖, recorded as an undefined SNR: a variance of that cell, and its MSE too "
            "where the estimator is exact on the task, relative bias ≤ 10⁻⁵).")


def edge_note(data: pd.DataFrame, styles: Styles) -> str:
    """The caption's words for the hollow markers at a log axis's edge, naming whose they are."""
    low = data[data["edge"] | (data["value"] <= 0)]
    return "" if low.empty else f" Hollow markers at the edge: {L.EDGE_WORDS}: " + ", ".join(
        sorted({styles.name(e) for e in low["estimator"]})) + "."


# -- gradient figures ----------------------------------------------------------------------------
#: the figures against K: measure -> (file stem, title, caption, slope of the dotted guide)
_VS_K = {"variance": ("variance_vs_samples", "Gradient variance vs samples", "Trace of the covariance of the "
                      "gradient estimate against the number of samples K (log-log), one panel per task; dotted: "
                      "slope −1, the 1/K of averaging K independent samples.", -1),
         "work_normalised_variance": ("work_normalised_variance", "Work-normalised variance", "Variance × seconds "
                                      "per estimate against K (the efficiency of a Monte Carlo estimator, Glynn & "
                                      "Whitt 1992); lower is a better use of compute.", None),
         "snr": ("snr_vs_samples", "Signal-to-noise ratio", "SNR ‖E ĝ‖ / √tr Cov(ĝ) against K; higher is better; "
                 "dotted: slope ½ (√K). Deterministic estimators have no SNR.", 0.5),
         "time_estimate": ("time_vs_samples", "Time per estimate vs samples", "Seconds per gradient estimate "
                           "including its backward pass (asv time_estimate) against K (log-log).", None)}


def fig_vs_samples(cells, styles: Styles, measure: str, device: str | None = None, expected_tasks: Sequence[str] = ()):
    """``measure`` against K, one panel per task (:data:`_VS_K`); times on ``device``, the rest on one."""
    stem, title, caption, slope = _VS_K[measure]
    if device is not None:
        stem, title = f"{stem}_{slug(device)}", f"{title} ({device})"
    rows, device = S.on_device(cells, measure, device)
    data = S.one_value_per_cell(rows, _KEYS)
    if not ((data["value"] > 0) & ~data["edge"]).any():
        raise Skip(f"no positive {measure} values above round-off to draw on a log axis")
    data = data[data["value"] >= 0]
    extra = [] if slope is None else [(Line2D([], [], ls=":", color="0.3", lw=1.0), {-1: "∝ 1/K", 0.5: "∝ √K"}[slope])]

    def guide(ax, task, part):  # the slope, kept off the data: under the lowest first point for a falling
        shown = part[(part["value"] > 0) & ~part["edge"]]  # slope, above the highest for a rising one
        ks = np.array(sorted(part["num_samples"].unique()), dtype=float)
        if slope is not None and len(ks) > 1 and not shown.empty:
            first = shown.loc[shown["num_samples"] == shown["num_samples"].min(), "value"]
            anchor = first.min() / 2.5 if slope < 0 else first.max() * 2.5
            ax.plot(ks, anchor * (ks / shown["num_samples"].min()) ** slope, ls=":", color="0.3", lw=1.0)

    fig, _ = L.draw(data, styles, x="num_samples", xscale="K", ylabel=axis_label(measure, short=True),
                    each=guide, extra=extra)
    absent = sorted(set(expected_tasks) - set(data["task"]))
    note = edge_note(data, styles) + (f" No {measure} results (failed or skipped cells): "
                                      f"{', '.join(absent)}." if absent else "")
    return Figure(stem, title, f"{caption} Device: {device}.{ci_words(rows)}{note}", fig)


def fig_bias_variance(cells, styles):
    """Relative bias against variance per (task, estimator, K); ``edge``: the variance at round-off."""
    var, device = S.on_device(cells, "variance")
    data = S.one_value_per_cell(var, _KEYS).merge(S.one_value_per_cell(S.on_device(cells, "bias", device)[0], _KEYS)
                                                  .drop(columns="edge"), on=_KEYS, suffixes=("_var", "_bias"))
    data = data.assign(value=data["value_var"], edge=data["edge"] | (data["value_var"] <= 0))
    if data["edge"].all():
        raise Skip("no cell with a variance above round-off")
    ks = sorted(data["num_samples"].unique())
    sizes = {k: 2.0 + 4.0 * i / max(1, len(ks) - 1) for i, k in enumerate(ks)}
    err = CI_Z * data["se_bias"]

    # relative bias is ≥ 0 and often exactly 0 (debiased, clipped): symlog keeps 0 on the axis
    # and gives large, noisy biases (error bars of hundreds) decades instead of a flat panel
    def symlog(ax, task, part):
        ax.set_yscale("symlog", linthresh=0.01, linscale=0.5)
        top = (part["value"] + CI_Z * part["se_bias"].fillna(0)).max()
        ax.set_ylim(bottom=0, top=max(0.02, 2.0 * top) if np.isfinite(top) else None)

    fig, _ = L.draw(data.assign(value=data["value_bias"], ci_low=data["value_bias"] - err, size=data[
        "num_samples"].map(sizes), ci_high=data["value_bias"] + err), styles, x="value_var", order="num_samples",
        intervals="bars", sizes="size", edge="x", xscale="log", yscale="linear", xlabel=axis_label("variance", True),
        ylabel=axis_label("bias", short=True), legend="estimator; marker size: samples K", each=symlog,
        extra=[(Line2D([], [], ls="none", marker="o", color="0.45", ms=sizes[k], markeredgewidth=0), f"K={k}")
               for k in ks])
    note = edge_note(data, styles).replace("Hollow markers at the edge", "Hollow markers at the left edge")
    caption = (f"Relative bias ‖E ĝ − g‖/‖g‖ against variance, one point per K (larger marker: "
               f"more samples); bias axis linear below 0.01, logarithmic above. Error bars: "
               f"±{CI_Z:.2f} × the bias resolution √(tr Cov/R)/‖g‖ ({round(100 * CI_LEVEL)} %): "
               f"a bias within them cannot be told from 0 with these R replicates. Device: {device}.{note}")
    return Figure("bias_vs_variance", "Bias vs variance", caption, fig)


def fig_history(frame_machine: pd.DataFrame, styles: Styles, measure: str = HISTORY_MEASURE):
    """``measure`` across commits (ordered by date) at each task's largest K, on the CPU."""
    sub, device = S.on_device(gradient_cells(frame_machine), measure)
    if len(order := S.commit_order(sub)) < 2:
        raise Skip(f"{measure} has results of one commit only")
    k_of = sub.groupby("task")["num_samples"].max()
    sub = sub[sub["num_samples"] == sub["task"].map(k_of)]
    data = S.one_value_per_cell(sub, ["task", "estimator", "commit"])
    data["position"] = data["commit"].map({c: i for i, c in enumerate(order)})
    step = max(1, math.ceil(len(order) / 10))  # at most ~10 commit labels per axis

    def commits(ax, task, part):
        ticks = list(range(0, len(order), step))
        ax.set_xticks(ticks)
        ax.set_xticklabels([plain(order[t][:8]) for t in ticks], rotation=45, ha="right", fontsize=5.5)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(-0.3, len(order) - 0.7)

    log = "log" if (data["value"] > 0).all() else "linear"
    fig, _ = L.draw(data, styles, x="position", yscale=log, ylabel=axis_label(measure, short=True),
                    xlabel="commit", each=commits, titles=lambda t: f"{styles.task(t)} (K={int(k_of[t])})",
                    height=L.PANEL_HEIGHT + 0.25)
    caption = (f"{M.label(measure)} ({measure}) across {len(order)} commits, oldest left, at each "
               f"task's largest K; device {device}.{ci_words(sub)}")
    return Figure(f"history_{slug(measure)}", f"History of {measure}", caption, fig)


#: x axis name -> what it is in words
COST_AXES = {"evaluations": "f evaluations per estimate", "seconds": "seconds per estimate"}


def fig_cost(cells: pd.DataFrame, styles: Styles, measure: str, axis: str) -> Figure:
    """``measure`` against its cost per estimate (``axis``), one row per (task, estimator, K)."""
    device = S.on_device(cells, measure)[1]
    on = cells[cells["device"] == device]

    def per_cell(m):
        return S.one_value_per_cell(on[on["measure"] == m], _KEYS)
    data, cost = per_cell(measure), per_cell("evaluations" if axis == "evaluations" else "time_estimate")
    if axis == "seconds" and cost.empty:  # the harness's own seconds: variance x seconds / variance
        both = per_cell("work_normalised_variance").merge(per_cell("variance"), on=_KEYS, suffixes=("", "_v"))
        cost = both.assign(value=both["value"] / both["value_v"].where(both["value_v"] > 0))
    if cost.empty:
        raise Skip(f"no {COST_AXES[axis]} in the results (results written before the suite recorded it)")
    data = data.merge(cost[_KEYS + ["value"]].rename(columns={"value": "cost"}), on=_KEYS)
    data = data[np.isfinite(data["cost"]) & (data["cost"] > 0) & (data["value"] >= 0)]
    if not ((data["value"] > 0) & ~data["edge"]).any():
        raise Skip(f"no positive {measure} with a {COST_AXES[axis]}")
    scale, unit = 1.0, ""
    if axis == "seconds":  # in the unit that keeps the ticks plain numbers
        median = float(data["cost"].median())
        scale, unit = next(((f, u) for f, u in ((1.0, "s"), (1e3, "ms"), (1e6, "µs")) if median * f >= 1), (1e9, "ns"))
    # short: two panels share 3.3 inches; lines in K order (a timing need not grow with K: the line may turn back)
    fig, _ = L.draw(data.assign(cost=data["cost"] * scale), styles, x="cost", order="num_samples", intervals="bars",
                    xscale="log2" if axis == "evaluations" else "log", ylabel=axis_label(measure, short=True),
                    xlabel="f evaluations / estimate" if axis == "evaluations" else f"time / estimate [{unit}]")
    source = ("f evaluations the harness counted per estimate" if axis == "evaluations" else
              "seconds per estimate (asv time_estimate, or the harness's timing)")
    caption = (f"{M.label(measure)} against {source}, one point per K, one panel per task "
               f"(log-log): at equal cost, lower is better. Device: {device}.{edge_note(data, styles)}")
    return Figure(f"{measure}_vs_{axis}", f"{M.label(measure).split('  ')[0]} vs {COST_AXES[axis]}", caption, fig)


# -- training figures ----------------------------------------------------------------------------
#: x axis -> (its words, its scale): time and f evaluations on log axes, as in every figure
_X = {"step": ("update step", "linear"), "seconds": ("training seconds [s]", "log"),
      "f_evaluations": ("f evaluations per image", "log")}
_SEP = "\x1f"


def metric_label(info: M.TaskInfo) -> str:
    """The task's metric as its results name it (``metric_name``: words and unit), ↑/↓ for its direction."""
    arrow = {True: "\u00a0↑", False: "\u00a0↓"}.get(info.higher_is_better, "")  # no break
    words = re.sub(r"\s*\((higher|lower) is better\)", "", plain(info.metric))
    return L.wrap(f"{words}{arrow}", 30)


def _mean_sd(curves: pd.DataFrame, x: str) -> pd.DataFrame:
    """Mean metric ± sd over seeds per (task, method, checkpoint) against ``x`` (> 0 on a log axis: the
    first checkpoint, before any training, is left out there)."""
    part = curves.dropna(subset=[x, "metric"])
    part = part[part[x] > 0] if _X[x][1] == "log" else part
    agg = part.groupby(["task", "method", "checkpoint"]).agg(
        x=(x, "mean"), value=("metric", "mean"), sd=("metric", "std")).reset_index()
    sd = agg["sd"].fillna(0)
    return agg.assign(ci_low=agg["value"] - sd, ci_high=agg["value"] + sd, panel=agg["task"] + _SEP + x)


_TRAINING = {("step", "seconds"): ("training_curves", "Training curves", "Held-out metric during training against "
                                   "update steps and against cumulative training seconds (log scale, evaluation "
                                   "excluded; the first checkpoint left out there)."),
             ("f_evaluations",): ("training_curves_evaluations", "Training curves at equal f evaluations", "Held-out "
                                "metric during training against cumulative f evaluations per image (log scale; the "
                                "first checkpoint, before any evaluation, left out): the equal-cost comparison of "
                                "estimators that call f a different number of times per sample (REBAR and RELAX 3, "
                                "IndeCateR one per value of each variable, exact enumeration every state).")}


def fig_training(curves: pd.DataFrame, styles: Styles, tasks: dict[str, M.TaskInfo], xs=("step", "seconds")):
    """The held-out metric during training against each of ``xs`` (:data:`_TRAINING`): one row of panels
    per task, a column per x (one x: three tasks abreast)."""
    stem, title, caption = _TRAINING[tuple(xs)]
    if curves.empty or "metric" not in curves:
        raise Skip("no <Task>Curve results with a metric")
    xs = [x for x in xs if x in curves and curves[x].notna().any()]
    parts = {x: _mean_sd(curves, x) for x in xs}  # panels: per task, per x
    data = pd.concat([parts[x][parts[x]["task"] == t] for t in sorted(curves["task"].unique()) for x in xs]) \
        if xs else pd.DataFrame()
    if data.empty:
        raise Skip("the curves record neither step nor seconds" if len(xs) > 1 or stem == "training_curves" else
                   "no training task counts f evaluations")

    def metric(key):
        task, x = key.split(_SEP)
        return metric_label(tasks.get(task, M.TaskInfo(task))) if x == xs[0] or len(xs) == 1 else ""
    fig, _ = L.draw(data, styles, x="x", panel="panel", series="method", legend="method", yscale="linear",
                    ncols=len(xs) if len(xs) > 1 else min(3, data["task"].nunique()), ylabel=metric,
                    xscale=lambda k: _X[k.split(_SEP)[1]][1], xlabel=lambda k: _X[k.split(_SEP)[1]][0],
                    titles=lambda k: styles.task(k.split(_SEP)[0]))
    seeds = int(curves.groupby(["task", "method"])["seed"].nunique().max())
    return Figure(stem, title, f"{caption} Lines: mean over {seeds} seed(s) at each checkpoint; bands: ± one "
                               "standard deviation. ↑/↓: higher/lower is better.", fig)


def fig_loss_metric(curves: pd.DataFrame, styles: Styles, tasks: dict[str, M.TaskInfo]):
    if curves.empty or not {"loss", "metric"} <= set(curves.columns):
        raise Skip("no <Task>Curve results recording both loss and metric")
    data = curves.dropna(subset=["loss", "metric"]).sort_values("task").rename(columns={"metric": "value"})
    spread = data.groupby("task")["loss"].agg(lambda s: (s > 0).all() and s.max() / s.min() > 30)
    fig, _ = L.draw(data, styles, x="loss", series="method", legend="method", lines=False, intervals="none",
                    ncols=1 if data["task"].nunique() == 1 else 2, yscale="linear", xlabel="held-out loss",
                    xscale=lambda t: "log" if spread[t] else "linear",
                    ylabel=lambda t: metric_label(tasks.get(t, M.TaskInfo(t))))
    caption = ("Held-out loss against the held-out metric at every checkpoint of every seed (how well "
               "the loss tracks the metric; Kendall's τ of each method: the alignment tables). Where "
               "methods optimise different surrogates (e.g. BCE and ZLPR) each reports its own loss, so "
               "losses compare within a method only.")
    return Figure("loss_vs_metric", "Loss vs metric", caption, fig)


# -- all figures ---------------------------------------------------------------------------------
def _gradient_builders(cells, styles, expected, tail=""):
    def vs_k(measure, device=None):
        return lambda: fig_vs_samples(cells, styles, measure, device, expected)

    out = [("variance vs samples", vs_k("variance")), ("work-normalised variance", vs_k("work_normalised_variance")),
           ("bias vs variance", lambda: fig_bias_variance(cells, styles)), ("signal-to-noise ratio", vs_k("snr"))]
    out += [(f"{m} vs {axis}", lambda m=m, axis=axis: fig_cost(cells, styles, m, axis))
            for m in ("variance", "mse") for axis in ("evaluations", "seconds")]
    devices = sorted(cells.loc[cells["measure"] == "time_estimate", "device"].unique()) if not cells.empty else []
    out += [(f"time vs samples ({d})", vs_k("time_estimate", d)) for d in devices or ["cpu"]]
    return [(f"{label}{tail and ' (' + tail + ')'}", build, tail and f"-{slug(tail)}", True) for label, build in out]


def build_figures(frame_machine: pd.DataFrame, styles: Styles, tasks: dict[str, M.TaskInfo],
                  suffix: str = "", history_measure: str = HISTORY_MEASURE,
                  progress: Callable[[str], None] = lambda msg: None, only_tasks: Sequence[str] = (),
                  only_estimators: Sequence[str] = (), per_task: bool = False,
                  ) -> tuple[list[Figure], list[tuple[str, str]]]:
    """Every figure that one machine's results allow: (figures, [(figure, why not drawn: its error where it
    failed)]). ``only_tasks`` and ``only_estimators`` choose the gradient panels; ``per_task`` adds one file
    per task of every gradient figure (``<name>-<task>``)."""
    for column, names in (("task", only_tasks), ("estimator", only_estimators)):  # gradient rows only
        if names and column in frame_machine:
            frame_machine = frame_machine[(frame_machine["group"] != "gradient") | frame_machine[column].isin(names)]
    grad = latest_commit(frame_machine[frame_machine["group"] == "gradient"])
    cells = gradient_cells(grad)
    expected = sorted(grad["task"].dropna().unique()) if not grad.empty else []
    curves = training_curves(latest_commit(frame_machine[frame_machine["group"].isin(["summary", "final", "curve"])]))
    builders = _gradient_builders(cells, styles, expected)
    for task in (expected if per_task else []):
        builders += _gradient_builders(cells[cells["task"] == task], styles, [task], str(task))
    builders += [(label, build, "", False) for label, build in [
        ("training curves", lambda: fig_training(curves, styles, tasks)),
        ("training curves vs evaluations", lambda: fig_training(curves, styles, tasks, ("f_evaluations",))),
        ("loss vs metric", lambda: fig_loss_metric(curves, styles, tasks)),
        (f"history of {history_measure}", lambda: fig_history(frame_machine, styles, history_measure))]]
    figures, skipped = [], []
    for label, build, tail, gradient in builders:
        if cells.empty and gradient:
            skipped.append((label, "no gradient benchmark results (task, estimator, num_samples)"))
        elif (figure := L.attempt(build, label, skipped)) is not None:
            figure.name = slug(figure.name + tail + suffix)
            progress(f"figure {figure.name}")
            figures.append(figure)
    return figures, skipped
