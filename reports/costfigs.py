"""Equal-cost figures: variance and MSE against what an estimate costs, one panel per task.

Two cost axes: f evaluations per estimate (``evaluations``, counted by the harness: REBAR calls f 3K times, a
leave-one-out baseline K) and seconds per estimate (asv's ``time_estimate`` on the statistics' device; where
it is absent, ``work_normalised_variance / variance``, the harness's own timing). One line per estimator
through its K values, so at any cost the lowest line is the best use of that budget. A variance of exactly 0
is drawn as a hollow marker at the bottom edge."""
from __future__ import annotations

import numpy as np
import pandas as pd

from estibench import schema as M

from . import layout as L
from . import select as S
from .layout import Figure, Skip, axis_label
from .style import COLUMN_WIDTH, TEXT_WIDTH, Styles

__all__ = ["cost_points", "fig_cost", "COST_AXES"]

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
            cost = both.assign(value=both["value"] / both["value_v"].where(
                both["value_v"] > 0))[_KEYS + ["value"]]
    if cost.empty:
        raise Skip(f"no {COST_AXES[axis]} in the results (results written before the suite "
                   f"recorded it)")
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
        scale, unit = next(((f, u) for f, u in ((1.0, "s"), (1e3, "ms"), (1e6, "µs"))
                            if median * f >= 1), (1e9, "ns"))
    # short: two panels share 3.3 inches
    x_label = "f evaluations / estimate" if axis == "evaluations" else f"time / estimate [{unit}]"
    for i, (ax, task) in enumerate(zip(axes, tasks)):
        part = data[data["task"] == task]
        for est in sorted(part["estimator"].unique()):
            # in K order (a timing need not grow with K: the line may turn back)
            line = part[(part["estimator"] == est) & (part["value"] > 0)].sort_values(
                "num_samples")
            colour = styles.colour(est)
            x = line["cost"].to_numpy(float) * scale
            ax.plot(x, line["value"], color=colour, marker=styles.marker(est),
                    markeredgewidth=0, label=est)
            lo, hi = line["ci_low"].to_numpy(float), line["ci_high"].to_numpy(float)
            L.bars(ax, x, lo, hi, colour, np.isfinite(lo) & np.isfinite(hi) & (lo > 0))
            zero = part[(part["estimator"] == est) & (part["value"] == 0)]
            if len(zero):
                L.mark_zeros(ax, zero["cost"].to_numpy(float) * scale, colour,
                             styles.marker(est), label=est)
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
    return Figure(f"{measure}_vs_{axis}", f"{M.label(measure).split('  ')[0]} vs "
                  f"{COST_AXES[axis]}", caption, fig)
