"""Figures and tables of the landscape experiments (``suite/benchmarks/bench_landscape.py``): the rows of
group ``landscape`` by their ``experiment`` (``LandscapeClipping``, ``LandscapeClippingLR``, ``...Fit``,
``...Smoothness``, ``LandscapeBatchNorm`` with the same suffixes, ``LandscapeInit``). A figure or table whose
data are absent is left out (nothing raises for results without landscape rows)."""
from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from . import layout as Lay
from .blocks import FigureBlock, Heading, Para, Table
from .layout import Figure, axis_label
from .select import latest_commit
from .style import Styles

__all__ = ["landscape_frame", "landscape_figures", "landscape_tables", "landscape_section"]

#: the label and parameter columns these figures and tables read beyond the identity
NEEDS = ("se",)
_SEP = "\x1f"


def landscape_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The ok landscape rows of the latest commit (of the first machine, if several), with ``cls``: their experiment."""
    rows = frame[frame["group"] == "landscape"] if "group" in frame else frame.iloc[0:0]
    if rows.empty:
        return rows
    rows = rows[rows["machine"] == sorted(rows["machine"].astype(str).unique())[0]]
    rows = latest_commit(rows).assign(cls=lambda r: r["experiment"].astype(str))
    return rows[rows["status"] == "ok"]


def _part(rows: pd.DataFrame, *classes: str) -> pd.DataFrame:
    return rows[rows["cls"].isin(classes)] if not rows.empty else rows


def _with_se(part: pd.DataFrame, **columns) -> pd.DataFrame:
    """The rows with a ± one standard error interval (what :func:`reports.layout.draw` shades)."""
    se = part["se"].fillna(0) if "se" in part else 0.0
    return part.assign(ci_low=part["value"] - se, ci_high=part["value"] + se, **columns)


def _log_if_positive(part: pd.DataFrame, panel: str) -> dict:
    """Per panel: a log axis where every value is above 0, but for a cosine (about 0 by design)."""
    return {k: "log" if (p["value"] > 0).all() and "cosine" not in k else "linear" for k, p in part.groupby(panel)}


def _fig_smoothness(bins, rows, styles) -> Figure | None:
    fits = _part(rows, "LandscapeClippingFit", "LandscapeBatchNormFit")
    wide = bins.pivot_table(index=["source", "bin"], columns="measure", values="value").reset_index()
    if not {"grad_norm", "smoothness"} <= set(wide.columns):
        return None
    kinds = {"smoothness": "median per bin", "smoothness_upper": "90 % quantile per bin"}
    points = wide.melt(["source", "grad_norm"], [k for k in kinds if k in wide], "kind").dropna(subset=["value"])
    fit = {source: part.set_index("measure")["value"] for source, part in fits.groupby("source")}
    fit = {k: f for k, f in fit.items() if {"l0", "l1"} <= set(f.index) and np.isfinite(f[["l0", "l1"]]).all()}
    line = dict(ls="--", color="C3", lw=1.0)

    def envelope(ax, source, part):
        if source in fit:
            f, xs = fit[source], np.geomspace(max(part["grad_norm"].min(), 1e-12), part["grad_norm"].max(), 50)
            ax.plot(xs, f["l0"] + f["l1"] * xs, **line)
            rho = f.get("smoothness_spearman", math.nan)
            ax.set_title(f"{source}\nL0={f['l0']:.3g}, L1={f['l1']:.3g}, ρ={rho:.2f}")

    fig, _ = Lay.draw(points.assign(kind=points["kind"].map(kinds)).sort_values("source"), Styles([kinds.values()]),
                      x="grad_norm", panel="source", series="kind", legend="", xscale="log", lines=False,
                      intervals="none", xlabel=axis_label("grad_norm"), ylabel=axis_label("smoothness"),
                      titles=str, each=envelope, extra=[(Line2D([], [], **line), "fitted L0 + L1‖g‖")] * bool(fit))
    caption = ("Local smoothness ‖g_t − g_{t−1}‖/‖θ_t − θ_{t−1}‖ against the gradient norm where the step started "
               "(Zhang et al. 2020), pooled over seeds in equal-count bins of ‖g‖ (median and 90 % quantile); "
               "dashed: the (L0, L1) envelope fitted by quantile regression at q = 0.9 (mean over seeds); ρ: "
               "Spearman correlation of smoothness and ‖g‖. Linear envelope drawn on log axes.")
    return Figure("landscape_smoothness", "Smoothness vs gradient norm", caption, fig)


def _fig_clipping(part, rows, styles) -> Figure | None:
    part = part[part["measure"] == "steps_to_target"]
    if part.empty:
        return None
    fig, _ = Lay.draw(_with_se(part).sort_values("gradient"), styles, x="lr", panel="gradient", series="rule",
                      legend="clipping rule", xscale="log", yscale="linear", xlabel="learning rate",
                      ylabel=axis_label("steps_to_target"), titles=lambda g: f"{g} gradient")
    caption = ("Gradient steps until the exact loss reaches the target against the learning rate, per clipping rule "
               "(none, hard min(1, γ/‖g‖), smooth γ/(‖g‖+γ)); mean over seeds ± one standard error; the top of the "
               "axis is the budget (never reached, or diverged).")
    return Figure("landscape_clipping", "Steps to target vs learning rate", caption, fig)


_BN_PANELS = ("loss", "smoothness", "loss_range", "gradient_change_range", "effective_beta", "grad_norm")
_INIT_PANELS = ("activation_norm", "weight_gradient_norm", "representation_cosine")


def _fig_batchnorm(part, rows, styles) -> Figure:
    part = part[part["measure"].isin(_BN_PANELS)].sort_values("measure", key=lambda m: m.map(_BN_PANELS.index))
    part = _with_se(part, setting=[f"{n}, lr={lr:g}" for n, lr in zip(part["net"], part["lr"])])
    fig, _ = Lay.draw(part, styles, x="step", panel="measure", series="setting", legend="network",
                      yscale=_log_if_positive(part, "measure"), xlabel="step", ylabel=axis_label, titles="")
    caption = ("Probes along full-batch gradient descent of a deep ReLU MLP on digits, with and without BatchNorm, "
               "at fixed learning rates (Santurkar et al. 2018): training loss, smoothness along the step, and along "
               "the gradient direction over step sizes (0.5-4) × lr: loss range, gradient-change range and effective "
               "β. Mean over seeds ± se; a line stops where a seed diverged.")
    return Figure("landscape_batchnorm", "Landscape with and without BatchNorm", caption, fig)


def _fig_init(part, rows, styles) -> Figure:
    part = _with_se(part[part["measure"].isin(_INIT_PANELS)], panel=part["activation"] + _SEP + part["measure"])
    part = part.sort_values(["activation", "measure"], key=lambda c: c.map(_INIT_PANELS.index) if c.name == "measure"
                            else c)
    fig, _ = Lay.draw(part, styles, x="layer", panel="panel", series="init", legend="initialisation",
                      ncols=part["measure"].nunique(), yscale=_log_if_positive(part, "panel"), xlabel="layer",
                      ylabel=lambda k: axis_label(k.split(_SEP)[1]), titles=lambda k: k.split(_SEP)[0],
                      height=Lay.PANEL_HEIGHT + 0.2)
    caption = ("Through a 50-layer MLP of width 128 at initialisation: RMS activation, gradient norm of each layer's "
               "weight under a random linear read-out, and the cosine of two independent random inputs' "
               "representations, per initialisation (with constant width LeCun and Xavier coincide). Mean over seeds "
               "± se.")
    return Figure("landscape_init", "Norms through depth per initialisation", caption, fig)


def landscape_figures(frame: pd.DataFrame, skipped: list[str] | None = None) -> list[Figure]:
    """The landscape figures the results allow; one that cannot be drawn (a missing column) is named in ``skipped``."""
    rows = landscape_frame(frame)
    parts = {_fig_smoothness: _part(rows, "LandscapeClippingSmoothness", "LandscapeBatchNormSmoothness"),
             _fig_clipping: _part(rows, "LandscapeClipping"), _fig_batchnorm: _part(rows, "LandscapeBatchNorm"),
             _fig_init: _part(rows, "LandscapeInit")}  # a figure without rows of its experiments is left out
    names = [str(v) for col in ("rule", "init") if col in rows for v in rows[col].dropna().unique()]
    bn = parts[_fig_batchnorm]
    nets = [f"{n}, lr={lr:g}" for n, lr in bn[["net", "lr"]].drop_duplicates().itertuples(index=False)] \
        if {"net", "lr"} <= set(bn.columns) else []
    styles, failed = Styles([names, nets]), []
    figures = [Lay.attempt(partial(build, part, rows, styles), f"landscape {build.__name__.removeprefix('_fig_')}",
                           failed) for build, part in parts.items() if len(part)]
    (skipped if skipped is not None else []).extend(f"figure {label} not drawn: {why}" for label, why in failed)
    return [f for f in figures if f is not None]


def _mean_pm(part: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    out = part.assign(text=[f"{v:.3g} ± {s:.2g}" if np.isfinite(s) else f"{v:.3g}"
                            for v, s in zip(part["value"], part["se"])])
    return out.pivot_table(index=index, columns="measure", values="text", aggfunc="first").reset_index()


#: the landscape tables and their captions
_TABLES = {"landscape_largest_lr": "Largest stable learning rate per experiment and setting.",
           "landscape_smoothness_fit": "Fitted (L0, L1) and the rank correlation of smoothness with the gradient norm.",
           "landscape_init_depth": "Activation and gradient norms at the deepest layer."}


def landscape_tables(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Mean ± se over seeds (:data:`_TABLES`): the largest stable / converging learning rate per experiment
    and rule or net, (L0, L1) and the Spearman ρ per source, the init measures at the deepest layer."""
    rows = landscape_frame(frame)
    clip, bn, init = (_part(rows, f"Landscape{c}") for c in ("ClippingLR", "BatchNormLR", "Init"))
    fits = _part(rows, "LandscapeClippingFit", "LandscapeBatchNormFit")
    lrs = [_mean_pm(p, ["experiment", "setting"]) for p in (
        clip.assign(experiment="clipping", setting=clip["gradient"] + " / " + clip["rule"]) if len(clip) else clip,
        bn.assign(experiment="batchnorm", setting=bn["net"]) if len(bn) else bn) if len(p)]
    tables = {"landscape_largest_lr": pd.concat(lrs, ignore_index=True) if lrs else None,
              "landscape_smoothness_fit": _mean_pm(fits, ["source"]) if len(fits) else None,
              "landscape_init_depth": _mean_pm(init[init["layer"] == init["layer"].max()], [
                  "activation", "init", "layer"]) if len(init) else None}
    return {name: table for name, table in tables.items() if table is not None}


def landscape_section(report, frame: pd.DataFrame) -> None:
    """The landscape probes' tables and figures (clipping, BatchNorm, initialisation), where the results have them."""
    found, figures = landscape_tables(frame), landscape_figures(frame, report.skipped)
    if found or figures:
        report.add(Heading("Landscape probes"), Para(
            "Why clipping, BatchNorm and initialisation work, measured like the estimators (suite/landscape.py): "
            "largest stable learning rates, the fitted (L0, L1) of smoothness <= L0 + L1 ||g|| (Zhang et al. "
            "2020), and norms through depth; mean ± se over seeds."),
            *(Table(table, _TABLES[name]) for name, table in found.items()), *map(FigureBlock, figures))
        report.tables.update(found)
        report.figures.extend(figures)
