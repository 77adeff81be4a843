"""Figures: what :mod:`reports.select` chose for each panel, drawn with :mod:`reports.layout` in one style,
one colour per estimator or method.

Every builder takes the tidy frame of ONE machine (or its selected cells) and returns a
:class:`Figure`, or raises :class:`Skip` with the reason it cannot be drawn (its data are absent).
Every estimator with a result appears in every figure: a value of exactly 0 (a deterministic
estimator's variance) is drawn as a hollow marker at the low edge of a log axis."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from estibench import schema as M  # noqa: E402

from . import layout as L  # noqa: E402
from . import select as S  # noqa: E402
from .layout import Figure, Skip, axis_label, ci_words  # noqa: E402
from .load import CI_LEVEL, CI_Z  # noqa: E402
from .safe import plain, slug  # noqa: E402
from .select import gradient_cells, latest_commit, training_curves  # noqa: E402
from .style import COLUMN_WIDTH, TEXT_WIDTH, Styles, legend_columns, style  # noqa: E402
from .trainfigs import fig_loss_metric, fig_training, fig_training_evaluations  # noqa: E402

__all__ = ["Figure", "Skip", "build_figures", "HISTORY_MEASURE", "NEEDS", "cost_points", "fig_cost",
           "COST_AXES"]

#: the measure whose history across commits is drawn unless the caller names another
HISTORY_MEASURE = "time_estimate"
#: the label columns the figures read beyond the identity (reports.load.BASE_COLUMNS)
NEEDS = ("estimator_name", "task_name", "method_name")


def _zero_note(panels: S.Panels, styles: Styles, what: str = "value") -> str:
    zeros = panels.zeros
    if zeros.empty:
        return ""
    return (f" Hollow markers at the bottom edge: {what} exactly 0 (no place on a log axis): "
            + ", ".join(sorted(styles.name(e) for e in zeros["estimator"].unique())) + ".")


# -- gradient figures ----------------------------------------------------------------------------
def _vs_samples(cells: pd.DataFrame, measure: str, styles: Styles, name: str, title: str,
                caption: str, device: str | None = None, reference_slope: float | None = None,
                expected_tasks: Sequence[str] = ()) -> Figure:
    panels = S.samples_panels(cells, measure, device)
    data, tasks, names = panels.data, panels.tasks, panels.names
    extra = []
    if reference_slope is not None:
        words = {-1: "∝ 1/K", 0.5: "∝ √K"}.get(reference_slope, f"slope {reference_slope:g}")
        extra = [(Line2D([], [], ls=":", color="0.3", lw=1.0), words)]
    width = COLUMN_WIDTH if len(tasks) <= 2 else TEXT_WIDTH
    labels = [styles.name(n) for n in names] + [label for _, label in extra]
    fig, axes, width, ncols = L.facets(len(tasks), legend_rows=L.legend_rows(labels, width))
    for i, (ax, task) in enumerate(zip(axes, tasks)):
        part = data[data["task"] == task]
        positive = part[part["value"] > 0]
        for est in sorted(positive["estimator"].unique()):
            L.series(ax, positive[positive["estimator"] == est], "num_samples", est, styles, band=True, log_y=True)
        L.k_axis(ax, part["num_samples"].tolist())
        ax.set_yscale("log")
        ks = np.array(sorted(part["num_samples"].unique()), dtype=float)
        if reference_slope is not None and len(ks) > 1 and not positive.empty:
            # a guide line for the slope, kept off the data: under the lowest first point
            # for a falling slope, above the highest for a rising one
            first = positive[positive["num_samples"] == positive["num_samples"].min()]["value"]
            k0 = float(positive["num_samples"].min())
            anchor = first.min() / 2.5 if reference_slope < 0 else first.max() * 2.5
            ax.plot(ks, anchor * (ks / k0) ** reference_slope, ls=":", color="0.3", lw=1.0)
        L.log_ticks(ax, "y")
        for est, zero in part[part["value"] == 0].groupby("estimator"):
            L.mark_zeros(ax, zero["num_samples"].to_numpy(float), styles.colour(est), styles.marker(est), label=est)
        ax.set_title(styles.task(task))
        ax.set_ylabel(axis_label(measure) if i % ncols == 0 else "")
    L.legend_below(fig, styles, names, "estimator", width, extra)
    note = _zero_note(panels, styles)
    absent = sorted(set(expected_tasks) - set(tasks))
    if absent:
        note += f" No {measure} results (failed or skipped cells): {', '.join(absent)}."
    return Figure(name, title, f"{caption} Device: {panels.device}.{ci_words(panels.rows)}" f"{note}", fig)


def fig_variance(cells, styles, **kw):
    return _vs_samples(cells, "variance", styles, "variance_vs_samples", "Gradient variance vs samples",
        "Trace of the covariance of the gradient estimate against the number of samples K "
        "(log-log), one panel per task; dotted: slope −1, the 1/K of averaging K independent "
        "samples.", reference_slope=-1, **kw)


def fig_work_normalised(cells, styles, **kw):
    return _vs_samples(cells, "work_normalised_variance", styles, "work_normalised_variance",
        "Work-normalised variance",
        "Variance × seconds per estimate against K (the efficiency of a Monte Carlo estimator, "
        "Glynn & Whitt 1992); lower is a better use of compute.", **kw)


def fig_snr(cells, styles, **kw):
    return _vs_samples(cells, "snr", styles, "snr_vs_samples", "Signal-to-noise ratio",
        "SNR ‖E ĝ‖ / √tr Cov(ĝ) against K; higher is better; dotted: slope ½ (√K). "
        "Deterministic estimators have no SNR.", reference_slope=0.5, **kw)


def fig_time(cells, styles, device: str, **kw):
    return _vs_samples(cells, "time_estimate", styles, f"time_vs_samples_{slug(device)}",
        f"Time per estimate vs samples ({device})",
        "Seconds per gradient estimate including its backward pass (asv time_estimate) against "
        "K (log-log).", device=device, **kw)


def fig_bias_variance(cells, styles):
    panels = S.bias_variance_points(cells)
    data, tasks, names = panels.data, panels.tasks, panels.names
    ks = sorted(data["num_samples"].unique())
    sizes = {k: 2.0 + 4.0 * i / max(1, len(ks) - 1) for i, k in enumerate(ks)}
    width = COLUMN_WIDTH if len(tasks) <= 2 else TEXT_WIDTH
    labels = [styles.name(n) for n in names]
    fig, axes, width, ncols = L.facets(len(tasks), legend_rows=L.legend_rows(labels, width) + 1)
    # relative bias is ≥ 0 and often exactly 0 (debiased, clipped): symlog keeps 0 on the axis
    # and gives large, noisy biases (error bars of hundreds) decades instead of a flat panel
    for i, (ax, task) in enumerate(zip(axes, tasks)):
        part = data[data["task"] == task]
        for est in sorted(part["estimator"].unique()):
            line = part[part["estimator"] == est].sort_values("num_samples")
            colour, marker = styles.colour(est), styles.marker(est)
            shown = line[line["value_var"] > 0]
            ax.plot(shown["value_var"], shown["value_bias"], color=colour, lw=0.8, alpha=0.8)
            err = (CI_Z * shown["se_bias"]).to_numpy(float)
            bias = shown["value_bias"].to_numpy(float)
            L.bars(ax, shown["value_var"].to_numpy(float), bias - err, bias + err, colour)
            ax.scatter(shown["value_var"], bias, s=[sizes[k] ** 2 for k in shown["num_samples"]],
                       marker=marker, color=colour, linewidths=0)
            zero = line[line["value_var"] == 0]
            L.mark_zeros(ax, zero["value_bias"].to_numpy(float), colour, marker, axis="x", label=est)
        ax.set_xscale("log")
        L.log_ticks(ax, "x")
        ax.set_yscale("symlog", linthresh=0.01, linscale=0.5)
        top = (part["value_bias"] + CI_Z * part["se_bias"].fillna(0)).max()
        ax.set_ylim(bottom=0, top=max(0.02, 2.0 * top) if np.isfinite(top) else None)
        ax.set_title(styles.task(task))
        ax.set_xlabel(axis_label("variance", short=True))
        ax.set_ylabel("relative bias" if i % ncols == 0 else "")
    size_handles = [Line2D([], [], ls="none", marker="o", color="0.45", ms=sizes[k], markeredgewidth=0) for k in ks]
    fig.legend(L.handles(styles, names) + size_handles, labels + [f"K={k}" for k in ks],
               title="estimator; marker size: samples K", loc="outside lower center",
               ncol=legend_columns(labels, width), columnspacing=1.2)
    note = _zero_note(panels, styles, "variance").replace("bottom edge", "left edge")
    caption = (f"Relative bias ‖E ĝ − g‖/‖g‖ against variance, one point per K (larger marker: "
               f"more samples); bias axis linear below 0.01, logarithmic above. Error bars: "
               f"±{CI_Z:.2f} × the bias resolution √(tr Cov/R)/‖g‖ ({round(100 * CI_LEVEL)} %): "
               f"a bias within them cannot be told from 0 with these R replicates. Device: " f"{panels.device}.{note}")
    return Figure("bias_vs_variance", "Bias vs variance", caption, fig)


def fig_history(frame_machine: pd.DataFrame, styles: Styles, measure: str = HISTORY_MEASURE):
    """``measure`` across commits (ordered by date) at each task's largest K, on the CPU."""
    panels, order, k_of = S.history_points(frame_machine, measure)
    data, tasks, names = panels.data, panels.tasks, panels.names
    width = COLUMN_WIDTH if len(tasks) <= 2 else TEXT_WIDTH
    fig, axes, width, ncols = L.facets(len(tasks), height=L.PANEL_HEIGHT + 0.25,
        legend_rows=L.legend_rows([styles.name(n) for n in names], width))
    step = max(1, math.ceil(len(order) / 10))  # at most ~10 commit labels per axis
    log_y = bool((data["value"] > 0).all())
    for i, (ax, task) in enumerate(zip(axes, tasks)):
        part = data[data["task"] == task]
        for est in sorted(part["estimator"].unique()):
            L.series(ax, part[part["estimator"] == est], "position", est, styles, band=True, log_y=log_y)
        ticks = list(range(0, len(order), step))
        ax.set_xticks(ticks)
        ax.set_xticklabels([plain(order[t][:8]) for t in ticks], rotation=45, ha="right", fontsize=5.5)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(-0.3, len(order) - 0.7)
        if log_y:
            ax.set_yscale("log")
            L.log_ticks(ax, "y")
        ax.set_title(f"{styles.task(task)} (K={int(k_of[task])})")
        ax.set_ylabel(axis_label(measure) if i % ncols == 0 else "")
    L.legend_below(fig, styles, names, "estimator", width)
    caption = (f"{M.label(measure)} ({measure}) across {len(order)} commits, oldest left, at each "
               f"task's largest K; device {panels.device}.{ci_words(panels.rows)}")
    return Figure(f"history_{slug(measure)}", f"History of {measure}", caption, fig)


# -- all figures ---------------------------------------------------------------------------------
_GRADIENT_FIGURES = {"variance vs samples", "work-normalised variance", "bias vs variance",
                     "signal-to-noise ratio", "time vs samples", "variance vs evaluations",
                     "variance vs seconds", "mse vs evaluations", "mse vs seconds"}


def _gradient_builders(cells, styles, ran, tail=""):
    out = [("variance vs samples", lambda: fig_variance(cells, styles, **ran)),
           ("work-normalised variance", lambda: fig_work_normalised(cells, styles, **ran)),
           ("bias vs variance", lambda: fig_bias_variance(cells, styles)),
           ("signal-to-noise ratio", lambda: fig_snr(cells, styles, **ran))]
    out += [(f"{m} vs {axis}", lambda m=m, axis=axis: fig_cost(cells, styles, m, axis))
            for m in ("variance", "mse") for axis in ("evaluations", "seconds")]
    devices = sorted(cells.loc[cells["measure"] == "time_estimate", "device"].unique()) \
        if not cells.empty else []
    out += [(f"time vs samples ({d})", lambda d=d: fig_time(cells, styles, d, **ran)) for d in devices or ["cpu"]]
    return [(f"{label}{tail and ' (' + tail + ')'}", build, tail and f"-{slug(tail)}") for label, build in out]


def _chosen(frame: pd.DataFrame, column: str, names) -> pd.DataFrame:
    """Gradient rows of ``names`` only (``--tasks``, ``--estimators``); the rest kept."""
    if not names or column not in frame:
        return frame
    return frame[(frame["group"] != "gradient") | frame[column].isin(list(names))]


def build_figures(frame_machine: pd.DataFrame, styles: Styles, tasks: dict[str, M.TaskInfo],
                  suffix: str = "", history_measure: str = HISTORY_MEASURE,
                  progress: Callable[[str], None] = lambda msg: None,
                  only_tasks: Sequence[str] = (), only_estimators: Sequence[str] = (),
                  per_task: bool = False, on_figure: Callable[[Figure], Any] | None = None,
                  ) -> tuple[list[Figure], list[tuple[str, str]]]:
    """Every figure that one machine's results allow: (figures, [(figure, why not drawn)]). A figure that
    fails to draw is listed with its error; the others are drawn. ``only_tasks`` and ``only_estimators``
    choose the gradient panels; ``per_task`` adds one file per task of every gradient figure
    (``<name>-<task>``); ``on_figure`` is called with each figure as soon as it is built."""
    frame_machine = _chosen(_chosen(frame_machine, "task", only_tasks), "estimator", only_estimators)
    grad = latest_commit(frame_machine[frame_machine["group"] == "gradient"])
    cells = gradient_cells(grad)
    ran = {"expected_tasks": sorted(grad["task"].dropna().unique()) if not grad.empty else []}
    align = latest_commit(frame_machine[frame_machine["group"].isin(["summary", "final", "curve"])])
    curves = training_curves(align)
    taus = S.taus(align, curves, tasks)
    builders = _gradient_builders(cells, styles, ran)
    for task in (ran["expected_tasks"] if per_task else []):
        builders += _gradient_builders(cells[cells["task"] == task], styles, {"expected_tasks": [task]}, str(task))
    builders += [("training curves", lambda: fig_training(curves, styles, tasks), ""),
        ("training curves vs evaluations", lambda: fig_training_evaluations(curves, styles, tasks), ""),
        ("loss vs metric", lambda: fig_loss_metric(curves, styles, tasks, taus), ""), (f"history of {history_measure}",
         lambda: fig_history(frame_machine, styles, history_measure), ""),
    ]
    figures, skipped = [], []
    for label, build, tail in builders:
        with style():
            try:
                if cells.empty and label.split(" (")[0] in _GRADIENT_FIGURES:
                    raise Skip("no gradient benchmark results (task, estimator, num_samples)")
                figure = build()
            except Skip as why:
                skipped.append((label, str(why)))
                continue
            except Exception as exc:  # noqa: BLE001 - shown in the report as not drawn, with why
                plt.close("all")
                skipped.append((label, f"could not be drawn ({type(exc).__name__}: {exc})"))
                continue
        figure.name = slug(figure.name + tail + suffix)
        progress(f"figure {figure.name}")
        figures.append(figure)
        if on_figure is not None:
            on_figure(figure)
    return figures, skipped


#: x axis name -> (what it is in words, file stem part)
COST_AXES = {"evaluations": "f evaluations per estimate", "seconds": "seconds per estimate"}
_KEYS = ["task", "estimator", "num_samples"]


def cost_points(cells: pd.DataFrame, measure: str, axis: str) -> tuple[pd.DataFrame, str]:
    """One row per (task, estimator, K): ``value`` of ``measure`` and its ``cost``."""
    y = cells[cells["measure"] == measure]
    if y.empty:
        raise Skip(f"no {measure} results")
    device = S.pick_device(y)
    on = cells[cells["device"] == device]
    data = S.one_value_per_cell(on[on["measure"] == measure], _KEYS)
    if axis == "evaluations":
        cost = S.one_value_per_cell(on[on["measure"] == "evaluations"], _KEYS)
    else:
        cost = S.one_value_per_cell(on[on["measure"] == "time_estimate"], _KEYS)
        if cost.empty:  # the harness's own seconds: variance x seconds / variance
            wnv = S.one_value_per_cell(on[on["measure"] == "work_normalised_variance"], _KEYS)
            var = S.one_value_per_cell(on[on["measure"] == "variance"], _KEYS)
            both = wnv.merge(var, on=_KEYS, suffixes=("", "_v"))
            cost = both.assign(value=both["value"] / both["value_v"].where(both["value_v"] > 0))[_KEYS + ["value"]]
    if cost.empty:
        raise Skip(f"no {COST_AXES[axis]} in the results (results written before the suite " f"recorded it)")
    data = data.merge(cost[_KEYS + ["value"]].rename(columns={"value": "cost"}), on=_KEYS)
    data = data[np.isfinite(data["cost"]) & (data["cost"] > 0) & (data["value"] >= 0)]
    if not (data["value"] > 0).any():
        raise Skip(f"no positive {measure} with a {COST_AXES[axis]}")
    return data, device


def fig_cost(cells: pd.DataFrame, styles: Styles, measure: str, axis: str) -> Figure:
    data, device = cost_points(cells, measure, axis)
    tasks, names = sorted(data["task"].unique()), sorted(data["estimator"].unique())
    width = COLUMN_WIDTH if len(tasks) <= 2 else TEXT_WIDTH
    labels = [styles.name(n) for n in names]
    fig, axes, width, ncols = L.facets(len(tasks), legend_rows=L.legend_rows(labels, width))
    scale, unit = 1.0, ""
    if axis == "seconds":  # in the unit that keeps the ticks plain numbers
        median = float(data["cost"].median())
        scale, unit = next(((f, u) for f, u in ((1.0, "s"), (1e3, "ms"), (1e6, "µs")) if median * f >= 1), (1e9, "ns"))
    # short: two panels share 3.3 inches
    x_label = "f evaluations / estimate" if axis == "evaluations" else f"time / estimate [{unit}]"
    for i, (ax, task) in enumerate(zip(axes, tasks)):
        part = data[data["task"] == task]
        for est in sorted(part["estimator"].unique()):
            # in K order (a timing need not grow with K: the line may turn back)
            line = part[(part["estimator"] == est) & (part["value"] > 0)].sort_values("num_samples")
            colour = styles.colour(est)
            x = line["cost"].to_numpy(float) * scale
            ax.plot(x, line["value"], color=colour, marker=styles.marker(est), markeredgewidth=0, label=est)
            lo, hi = line["ci_low"].to_numpy(float), line["ci_high"].to_numpy(float)
            L.bars(ax, x, lo, hi, colour, np.isfinite(lo) & np.isfinite(hi) & (lo > 0))
            zero = part[(part["estimator"] == est) & (part["value"] == 0)]
            if len(zero):
                L.mark_zeros(ax, zero["cost"].to_numpy(float) * scale, colour, styles.marker(est), label=est)
        ax.set_xscale("log", base=2 if axis == "evaluations" else 10)
        ax.set_yscale("log")
        L.log_ticks(ax, "x")
        L.log_ticks(ax, "y")
        ax.set_title(styles.task(task))
        ax.set_xlabel(x_label)
        ax.set_ylabel(axis_label(measure) if i % ncols == 0 else "")
    L.legend_below(fig, styles, names, "estimator", width)
    zeros = sorted(data.loc[data["value"] == 0, "estimator"].unique())
    note = (" Hollow markers at the bottom edge: exactly 0 (no place on a log axis): "
            + ", ".join(zeros) + ".") if zeros else ""
    source = ("f evaluations the harness counted per estimate" if axis == "evaluations" else
              "seconds per estimate (asv time_estimate, or the harness's timing)")
    caption = (f"{M.label(measure)} against {source}, one point per K, one panel per task "
               f"(log-log): at equal cost, lower is better. Device: {device}.{note}")
    return Figure(f"{measure}_vs_{axis}", f"{M.label(measure).split('  ')[0]} vs " f"{COST_AXES[axis]}", caption, fig)
