"""Figures and tables of the landscape experiments (``suite/benchmarks/bench_landscape.py``).

:func:`landscape_figures` and :func:`landscape_tables` take the report's tidy frame (all groups;
the rows of group ``landscape`` are selected here by their ``experiment``: ``LandscapeClipping``,
``LandscapeClippingLR``, ``LandscapeClippingFit``, ``LandscapeClippingSmoothness``,
``LandscapeBatchNorm`` (+ ``LR``, ``Fit``, ``Smoothness``), ``LandscapeInit``) and
return :class:`reports.figures.Figure` objects and named DataFrames. A figure whose data are
absent is left out (nothing raises for a frame without landscape results)."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from estibench import schema as M  # noqa: E402

from . import layout as Lay  # noqa: E402
from .layout import Figure  # noqa: E402
from .select import latest_commit  # noqa: E402
from .style import TEXT_WIDTH, Styles, style  # noqa: E402

__all__ = ["landscape_frame", "landscape_figures", "landscape_tables"]

#: the label and parameter columns these figures and tables read beyond the identity
NEEDS = ("se",)


def landscape_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The ok landscape rows (``group == "landscape"``) of the latest commit (of the first
    machine, when there are several), with their ``experiment`` as a ``cls`` column."""
    rows = frame[frame["group"] == "landscape"] if "group" in frame else frame.iloc[0:0]
    if rows.empty:
        return rows
    rows = rows[rows["machine"] == sorted(rows["machine"].astype(str).unique())[0]]
    rows = latest_commit(rows).assign(cls=lambda r: r["experiment"].astype(str))
    return rows[rows["status"] == "ok"]


def _part(rows: pd.DataFrame, cls: str, measure: str | None = None) -> pd.DataFrame:
    out = rows[rows["cls"] == cls] if not rows.empty else rows
    return out[out["measure"] == measure] if measure is not None else out


def _line(ax, part: pd.DataFrame, x: str, name: str, styles: Styles, **kw) -> None:
    part = part.sort_values(x)
    colour = styles.colour(name)
    ax.plot(part[x], part["value"], color=colour, marker=styles.marker(name), ms=3, markeredgewidth=0, label=name, **kw)
    if "se" in part and part["se"].notna().any():
        se = part["se"].fillna(0).to_numpy(float)
        v = part["value"].to_numpy(float)
        ax.fill_between(part[x].to_numpy(float), v - se, v + se, color=colour, alpha=0.15, lw=0)


def _fig_smoothness(rows, styles) -> Figure | None:
    bins = pd.concat([_part(rows, "LandscapeClippingSmoothness"), _part(rows, "LandscapeBatchNormSmoothness")])
    fits = pd.concat([_part(rows, "LandscapeClippingFit"), _part(rows, "LandscapeBatchNormFit")])
    if bins.empty:
        return None
    sources = sorted(bins["source"].dropna().unique())
    fig, axes, width, ncols = Lay.facets(len(sources), legend_rows=2)
    for i, (ax, source) in enumerate(zip(axes, sources)):
        part = bins[bins["source"] == source].pivot_table(index="bin", columns="measure", values="value")
        if not {"grad_norm", "smoothness"} <= set(part.columns):
            continue
        ax.plot(part["grad_norm"], part["smoothness"], "o", ms=3, color="0.35", label="median per bin")
        if "smoothness_upper" in part:
            ax.plot(part["grad_norm"], part["smoothness_upper"], "^", ms=3, color="0.6", label="90 % quantile per bin")
        fit = fits[fits["source"] == source].set_index("measure")["value"]
        xs = np.geomspace(max(part["grad_norm"].min(), 1e-12), part["grad_norm"].max(), 50)
        if {"l0", "l1"} <= set(fit.index) and np.isfinite(fit[["l0", "l1"]]).all():
            ax.plot(xs, fit["l0"] + fit["l1"] * xs, "--", color="C3", lw=1.0, label="fitted L0 + L1‖g‖")
            rho = fit.get("smoothness_spearman", math.nan)
            ax.set_title(f"{source}\nL0={fit['l0']:.3g}, L1={fit['l1']:.3g}, ρ={rho:.2f}")
        else:
            ax.set_title(source)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(M.get("grad_norm").axis_label)
        ax.set_ylabel(M.get("smoothness").axis_label if i % ncols == 0 else "")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3)
    caption = ("Local smoothness ‖g_t − g_{t−1}‖/‖θ_t − θ_{t−1}‖ against the gradient norm where "
               "the step started (Zhang et al. 2020), pooled over seeds in equal-count bins of "
               "‖g‖ (median and 90 % quantile); dashed: the (L0, L1) envelope fitted by quantile "
               "regression at q = 0.9 (mean over seeds); ρ: Spearman correlation of smoothness "
               "and ‖g‖. Linear envelope drawn on log axes.")
    return Figure("landscape_smoothness", "Smoothness vs gradient norm", caption, fig)


def _fig_clipping(rows, styles) -> Figure | None:
    part = _part(rows, "LandscapeClipping", "steps_to_target")
    if part.empty:
        return None
    gradients = sorted(part["gradient"].dropna().unique())
    rules = sorted(part["rule"].dropna().unique())
    fig, axes, width, ncols = Lay.facets(len(gradients), legend_rows=2)
    for i, (ax, gradient) in enumerate(zip(axes, gradients)):
        for rule in rules:
            _line(ax, part[(part["gradient"] == gradient) & (part["rule"] == rule)], "lr", rule, styles)
        ax.set_xscale("log")
        ax.set_title(f"{gradient} gradient")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(M.get("steps_to_target").axis_label if i % ncols == 0 else "")
    Lay.legend_below(fig, styles, rules, "clipping rule", width)
    caption = ("Gradient steps until the exact loss reaches the target against the learning rate, "
               "per clipping rule (none, hard min(1, γ/‖g‖), smooth γ/(‖g‖+γ)); mean over seeds ± "
               "one standard error; the top of the axis is the budget (never reached, or " "diverged).")
    return Figure("landscape_clipping", "Steps to target vs learning rate", caption, fig)


_BN_PANELS = ("loss", "smoothness", "loss_range", "gradient_change_range", "effective_beta", "grad_norm")


def _fig_batchnorm(rows, styles) -> Figure | None:
    part = _part(rows, "LandscapeBatchNorm")
    if part.empty:
        return None
    measures = [m for m in _BN_PANELS if m in set(part["measure"])]
    lrs = sorted(part["lr"].dropna().unique())
    nets = sorted(part["net"].dropna().unique())
    names = [f"{n}, lr={lr:g}" for n in nets for lr in lrs]
    fig, axes, width, ncols = Lay.facets(len(measures), legend_rows=Lay.legend_rows(names, TEXT_WIDTH))
    for ax, measure in zip(axes, measures):
        sub = part[part["measure"] == measure]
        for net in nets:
            for lr in lrs:
                line = sub[(sub["net"] == net) & (sub["lr"] == lr)]
                if not line.empty:
                    _line(ax, line, "step", f"{net}, lr={lr:g}", styles)
        if (sub["value"] > 0).all() and not sub.empty:
            ax.set_yscale("log")
        ax.set_title(Lay.wrap(M.get(measure).label, 26))
        ax.set_xlabel("step")
    Lay.legend_below(fig, styles, names, "network", width)
    caption = ("Probes along full-batch gradient descent of a deep ReLU MLP on digits, with and "
               "without BatchNorm, at fixed learning rates (Santurkar et al. 2018): training "
               "loss, smoothness along the step, and along the gradient direction over step "
               "sizes (0.5-4) × lr: loss range, gradient-change range and effective β. Mean over "
               "seeds ± se; a line stops where a seed diverged.")
    return Figure("landscape_batchnorm", "Landscape with and without BatchNorm", caption, fig)


def _fig_init(rows, styles) -> Figure | None:
    part = _part(rows, "LandscapeInit")
    if part.empty:
        return None
    acts = sorted(part["activation"].dropna().unique())
    measures = [m for m in ("activation_norm", "weight_gradient_norm", "representation_cosine")
                if m in set(part["measure"])]
    inits = sorted(part["init"].dropna().unique())
    fig, axes = plt.subplots(len(acts), len(measures), squeeze=False, layout="constrained",
                             figsize=(TEXT_WIDTH, (Lay.PANEL_HEIGHT + 0.2) * len(acts) + 0.5))
    for r, act in enumerate(acts):
        for c, measure in enumerate(measures):
            ax = axes[r][c]
            sub = part[(part["activation"] == act) & (part["measure"] == measure)]
            for init in inits:
                _line(ax, sub[sub["init"] == init], "layer", init, styles)
            if measure != "representation_cosine" and (sub["value"] > 0).all():
                ax.set_yscale("log")
            ax.set_title(f"{act}: {M.get(measure).label}")
            ax.set_xlabel("layer")
    fig.legend(Lay.handles(styles, inits), inits, title="initialisation", loc="outside lower center", ncol=len(inits))
    caption = ("Through a 50-layer MLP of width 128 at initialisation: RMS activation, gradient "
               "norm of each layer's weight under a random linear read-out, and the cosine of two "
               "independent random inputs' representations, per initialisation (with constant "
               "width LeCun and Xavier coincide). Mean over seeds ± se.")
    return Figure("landscape_init", "Norms through depth per initialisation", caption, fig)


def landscape_figures(frame: pd.DataFrame, skipped: list[str] | None = None) -> list[Figure]:
    """The landscape figures the results allow (none without landscape results); one whose data
    are malformed (a missing column) is left out, named in ``skipped``."""
    rows = landscape_frame(frame)
    if rows.empty:
        return []
    names = [str(v) for col in ("rule", "init") if col in rows for v in rows[col].dropna().unique()]
    bn = _part(rows, "LandscapeBatchNorm")
    nets = [f"{n}, lr={lr:g}" for n, lr in bn[["net", "lr"]].drop_duplicates().itertuples(index=False)] \
        if {"net", "lr"} <= set(bn.columns) else []
    styles = Styles([names, nets])
    figures = []
    for build in (_fig_smoothness, _fig_clipping, _fig_batchnorm, _fig_init):
        try:
            with style():
                figure = build(rows, styles)
        except Exception as exc:  # noqa: BLE001 - malformed data: this figure only, named
            plt.close("all")
            figure = None
            (skipped if skipped is not None else []).append(
                f"figure {build.__name__.removeprefix('_fig_')} (landscape) not drawn: "
                f"{type(exc).__name__}: {str(exc)[:200]}")
        if figure is not None:
            figures.append(figure)
    return figures


def _mean_pm(part: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    out = part.assign(text=[f"{v:.3g} ± {s:.2g}" if np.isfinite(s) else f"{v:.3g}"
                            for v, s in zip(part["value"], part["se"])])
    return out.pivot_table(index=index, columns="measure", values="text", aggfunc="first").reset_index()


def landscape_tables(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``landscape_largest_lr`` (largest stable / converging learning rate per experiment and
    rule or net), ``landscape_smoothness_fit`` ((L0, L1) and the Spearman ρ per source),
    ``landscape_init_depth`` (the init measures at the deepest layer); mean ± se over seeds."""
    rows = landscape_frame(frame)
    tables: dict[str, pd.DataFrame] = {}
    if rows.empty:
        return tables
    clip = _part(rows, "LandscapeClippingLR")
    bn = _part(rows, "LandscapeBatchNormLR")
    parts = []
    if not clip.empty:
        parts.append(_mean_pm(clip.assign(experiment="clipping", setting=clip["gradient"] +
                                          " / " + clip["rule"]), ["experiment", "setting"]))
    if not bn.empty:
        parts.append(_mean_pm(bn.assign(experiment="batchnorm", setting=bn["net"]), ["experiment", "setting"]))
    if parts:
        tables["landscape_largest_lr"] = pd.concat(parts, ignore_index=True)
    fits = pd.concat([_part(rows, "LandscapeClippingFit"), _part(rows, "LandscapeBatchNormFit")])
    if not fits.empty:
        tables["landscape_smoothness_fit"] = _mean_pm(fits, ["source"])
    init = _part(rows, "LandscapeInit")
    if not init.empty:
        deepest = init[init["layer"] == init["layer"].max()]
        tables["landscape_init_depth"] = _mean_pm(deepest, ["activation", "init", "layer"])
    return tables
