"""Tidy frame -> seaborn figures, one consistent style, one colour per estimator.

Every builder takes the tidy frame of ONE machine and returns a :class:`Figure` or raises
:class:`Skip` with the reason it cannot be drawn (its data are absent). Figures are sized for a
paper's column (3.3 in wide, fonts >= 7 pt) and saved in any of png, svg, pdf.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

__all__ = ["COLUMN_WIDTH", "Figure", "Skip", "style", "palette", "save", "build_figures",
           "gradient_cells", "training_curves", "pick_device", "time_measure",
           "work_normalised", "variance_times_time", "kendall_taus", "latest_commit"]

COLUMN_WIDTH = 3.3  # inches: one column of a two-column paper
PANEL_HEIGHT = 1.45  # inches per row of facets
GRADIENT_KEYS = ["task", "estimator", "num_samples"]
#: time benchmarks preferred as "the cost of one estimate", in this order
_TIME_PREFERENCE = ("estimate", "gradient", "forward_backward", "backward", "step")


class Skip(Exception):
    """A figure whose data are absent; the message says which."""


@dataclass
class Figure:
    name: str  # file stem
    title: str
    caption: str
    fig: matplotlib.figure.Figure
    files: Dict[str, Path] = field(default_factory=dict)  # format -> saved file


# -- style and colours ----------------------------------------------------------------------------
_RC = {
    "font.size": 7.5, "axes.titlesize": 7.5, "axes.labelsize": 7.5, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7.5,
    "lines.linewidth": 1.1, "lines.markersize": 3.5, "axes.linewidth": 0.6,
    "xtick.major.width": 0.6, "ytick.major.width": 0.6, "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4, "savefig.dpi": 300, "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02, "svg.fonttype": "none", "pdf.fonttype": 42,
    "figure.constrained_layout.use": False,
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The one style of every estibench figure (seaborn 'paper' ticks, 7-7.5 pt fonts), applied
    inside the block only so that importing this module changes nothing globally."""
    with matplotlib.rc_context():
        sns.set_theme(context="paper", style="ticks", rc=_RC)
        yield


# seaborn's colour-blind-safe 10 first; their dark variants only past 10 names
_COLOURS = sns.color_palette("colorblind", 10) + sns.color_palette("dark", 10)


def palette(names: Iterable[str]) -> Dict[str, Tuple[float, float, float]]:
    """A colour per name that depends on the name, not on which other names a report holds:
    each name hashes (md5, stable across runs) to a preferred slot among the 10 colour-blind-safe
    colours; a name whose slot is taken takes the next free one (names in sorted order), then
    the 10 dark variants, then colours repeat. Keyed by estimator (or method) name and shared by
    every figure of a report."""
    taken = set()
    out: Dict[str, Tuple[float, float, float]] = {}
    for name in sorted({str(n) for n in names}):
        start = int(hashlib.md5(name.encode()).hexdigest(), 16) % 10
        order = [(start + i) % 10 for i in range(10)] + [10 + (start + i) % 10 for i in range(10)]
        slot = next((s for s in order if s not in taken), start)
        taken.add(slot)
        out[name] = _COLOURS[slot]
    return out


def save(figure: Figure, folder: Path, formats: Sequence[str]) -> Dict[str, Path]:
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
def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"]


def latest_commit(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the most recent commit (by result date); one env if several ran it."""
    if frame.empty:
        return frame
    dates = frame.groupby(["commit", "env"], dropna=False)["date"].max().sort_values()
    commit, env = dates.index[-1]
    return frame[(frame["commit"] == commit) & (frame["env"] == env)]


def gradient_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """ok cells of gradient benchmarks: those with task, estimator and num_samples parameters."""
    if not set(GRADIENT_KEYS) <= set(frame.columns):
        return frame.iloc[0:0]
    cells = _ok(frame).dropna(subset=GRADIENT_KEYS).copy()
    cells["num_samples"] = cells["num_samples"].astype(float).astype(int)
    if "device" not in cells:
        cells["device"] = "cpu"
    cells["device"] = cells["device"].fillna("cpu").astype(str)
    cells["estimator"] = cells["estimator"].astype(str)
    cells["task"] = cells["task"].astype(str)
    return cells


def pick_device(cells: pd.DataFrame) -> str:
    """cpu when it has results (every machine has one), else the device with most results."""
    devices = cells["device"].value_counts()
    return "cpu" if "cpu" in devices.index else str(devices.index[0])


def time_measure(cells: pd.DataFrame) -> Optional[str]:
    """The time benchmark taken as the cost of one estimate."""
    names = sorted(cells.loc[cells["type"] == "time", "measure"].unique())
    if not names:
        return None
    for preferred in _TIME_PREFERENCE:
        if preferred in names:
            return preferred
    return names[0]


def _measure(cells: pd.DataFrame, *names: str, kind: Optional[str] = None) -> pd.DataFrame:
    """Rows of the first of ``names`` present (track benchmarks unless ``kind`` says)."""
    for name in names:
        sub = cells[cells["measure"] == name]
        if kind is not None:
            sub = sub[sub["type"] == kind]
        if not sub.empty:
            return sub
    return cells.iloc[0:0]


def _mean_over_duplicates(sub: pd.DataFrame, keys: List[str]) -> pd.DataFrame:
    # two benchmark classes measuring the same cell: plot their mean, one point per cell
    stats = {c: (c, "mean") for c in ("value", "ci_low", "ci_high") if c in sub.columns}
    return sub.groupby(keys, as_index=False, observed=True).agg(**stats)


# -- layout helpers ------------------------------------------------------------------------------
def _facets(n: int, ncols: int = 2, height: float = PANEL_HEIGHT, sharex=False, sharey=False):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(COLUMN_WIDTH, height * nrows + 0.35),
                             squeeze=False, sharex=sharex, sharey=sharey)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _legend(fig, colours: Dict[str, tuple], names: Sequence[str], title: str,
            extra: Sequence[Tuple[Line2D, str]] = ()) -> None:
    handles = [Line2D([], [], color=colours[n], marker="o", lw=1.1, ms=3.5) for n in names]
    labels = list(names)
    for handle, label in extra:
        handles.append(handle)
        labels.append(label)
    longest = max((len(label) for label in labels), default=10)
    ncol = max(1, min(len(labels), int(COLUMN_WIDTH // (0.055 * longest + 0.35))))
    fig.legend(handles, labels, title=title, loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=ncol, frameon=False, handlelength=1.6, columnspacing=1.0)


def _finish(fig) -> None:
    fig.tight_layout(pad=0.3, h_pad=0.6, w_pad=0.5)


def _log_axes(ax, x=True, y=True) -> None:
    if x:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
            lambda v, _: f"{v:g}"))
    if y:
        ax.set_yscale("log")


def _lines(ax, data: pd.DataFrame, x: str, y: str, colours, hue="estimator", band=False,
           **kw) -> None:
    sns.lineplot(data=data, x=x, y=y, hue=hue, palette={k: colours[k] for k in
                 data[hue].unique()}, marker="o", markeredgewidth=0, errorbar=None,
                 legend=False, ax=ax, **kw)
    if band and {"ci_low", "ci_high"} <= set(data.columns):
        for name, part in data.groupby(hue):
            part = part.sort_values(x)
            # a log axis has no place for asv's CIs that reach below zero: no band there
            ok = (part["ci_low"] > 0) & (part["ci_high"] > 0)
            ax.fill_between(part[x], part["ci_low"], part["ci_high"], where=ok.to_numpy(),
                            color=colours[name], alpha=0.18, lw=0)


def _not_shown(dropped: pd.DataFrame, what: str) -> str:
    if dropped.empty:
        return ""
    names = ", ".join(sorted(dropped["estimator"].unique()))
    return f" Not shown ({what}, no place on a log axis): {names}."


# -- gradient figures ----------------------------------------------------------------------------
def _per_task_vs_samples(sub, colours, name, title, ylabel, caption, positive=True,
                         reference_slope=None, band=False):
    if sub.empty:
        raise Skip(f"no {title.lower()} results")
    device = pick_device(sub)
    sub = sub[sub["device"] == device]
    data = _mean_over_duplicates(sub, ["task", "estimator", "num_samples"])
    dropped = data[data["value"] <= 0] if positive else data.iloc[0:0]
    data = data[data["value"] > 0] if positive else data
    if data.empty:
        raise Skip(f"no positive {title.lower()} values to draw on a log axis")
    tasks = sorted(data["task"].unique())
    fig, axes = _facets(len(tasks))
    for ax, task in zip(axes, tasks):
        part = data[data["task"] == task]
        _lines(ax, part, "num_samples", "value", colours, band=band)
        _log_axes(ax, x=True, y=positive)
        if reference_slope is not None and part["num_samples"].nunique() > 1:
            ks = np.array(sorted(part["num_samples"].unique()), dtype=float)
            anchor = part[part["num_samples"] == ks[0]]["value"].median()
            ax.plot(ks, anchor * (ks / ks[0]) ** reference_slope, ls=":", color="0.5", lw=0.8)
        ax.set_title(task)
        ax.set_xlabel("samples K")
        ax.set_ylabel(ylabel)
    extra = [(Line2D([], [], ls=":", color="0.5", lw=0.8), f"∝ K^{reference_slope:g}")] \
        if reference_slope is not None else []
    _legend(fig, colours, sorted(data["estimator"].unique()), "estimator", extra)
    _finish(fig)
    caption = f"{caption} Device: {device}.{_not_shown(dropped, 'zero or negative')}"
    return Figure(name, title, caption, fig)


def fig_variance(cells, colours):
    sub = _measure(cells, "variance", kind="track")
    return _per_task_vs_samples(
        sub, colours, "variance_vs_samples", "Variance vs samples",
        "variance", "Gradient variance against the number of samples K (log-log), one panel "
        "per task; dotted: 1/K from the first point.", reference_slope=-1)


_WORK_NORMALISED = ("work_normalized_variance", "work_normalised_variance", "variance_x_time")


def work_normalised(cells: pd.DataFrame) -> pd.DataFrame:
    """variance x seconds per estimate, per cell (a benchmark of it is used when there is one)."""
    direct = _measure(cells, *_WORK_NORMALISED, kind="track")
    return direct if not direct.empty else variance_times_time(cells)


def variance_times_time(cells: pd.DataFrame) -> pd.DataFrame:
    """variance x seconds of :func:`time_measure`, per (task, estimator, num_samples, device)."""
    var = _measure(cells, "variance", kind="track")
    tname = time_measure(cells)
    if var.empty or tname is None:
        return cells.iloc[0:0]
    keys = ["task", "estimator", "num_samples", "device"]
    t = _mean_over_duplicates(cells[(cells["type"] == "time") & (cells["measure"] == tname)],
                              keys)
    v = _mean_over_duplicates(var, keys)
    both = v.merge(t, on=keys, suffixes=("_var", "_time"))
    both["value"] = both["value_var"] * both["value_time"]
    return both[keys + ["value"]]


def fig_work_normalised(cells, colours):
    sub = work_normalised(cells)
    if sub.empty:
        raise Skip("needs variance and a time benchmark on the same cells")
    return _per_task_vs_samples(
        sub, colours, "work_normalised_variance", "Work-normalised variance",
        "variance × s", f"Variance times seconds per estimate ({time_measure(cells) or 'time'}"
        f") against K: lower is a better use of compute.")


def fig_snr(cells, colours):
    sub = _measure(cells, "snr", "signal_to_noise", kind="track")
    positive = bool(not sub.empty and (sub["value"] > 0).all())
    return _per_task_vs_samples(
        sub, colours, "snr_vs_samples", "Signal-to-noise ratio", "SNR",
        "Signal-to-noise ratio of the gradient estimate against K; higher is better.",
        positive=positive)


def fig_time(cells, colours, device: str):
    tname = time_measure(cells)
    if tname is None:
        raise Skip("no time benchmarks")
    sub = cells[(cells["type"] == "time") & (cells["measure"] == tname)
                & (cells["device"] == device)]
    fig = _per_task_vs_samples(
        sub, colours, f"time_vs_samples_{_slug(device)}", f"Time vs samples ({device})",
        "seconds", f"Seconds per call of time_{tname} against K (log-log); bands: asv's 99 % "
        f"confidence interval (left out where it reaches below zero).", band=True)
    return fig


def fig_bias_variance(cells, colours):
    var = _measure(cells, "variance", kind="track")
    bias = _measure(cells, "bias", "bias_norm", kind="track")
    if var.empty or bias.empty:
        raise Skip("needs both variance and bias results")
    keys = ["task", "estimator", "num_samples", "device"]
    device = pick_device(var)
    data = _mean_over_duplicates(var, keys).merge(_mean_over_duplicates(bias, keys), on=keys,
                                                  suffixes=("_var", "_bias"))
    data = data[data["device"] == device]
    data["abs_bias"] = data["value_bias"].abs()
    dropped = data[data["value_var"] <= 0]
    data = data[data["value_var"] > 0]
    if data.empty:
        raise Skip("no cell with positive variance")
    tasks = sorted(data["task"].unique())
    fig, axes = _facets(len(tasks))
    positive_bias = data.loc[data["abs_bias"] > 0, "abs_bias"]
    linthresh = float(10 ** math.floor(math.log10(positive_bias.min()))) \
        if not positive_bias.empty else 1e-3
    for ax, task in zip(axes, tasks):
        part = data[data["task"] == task]
        sns.scatterplot(data=part, x="value_var", y="abs_bias", hue="estimator",
                        palette={k: colours[k] for k in part["estimator"].unique()},
                        size="num_samples", sizes=(6, 40), legend=False, linewidth=0,
                        alpha=0.85, ax=ax)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=linthresh)
        ax.set_ylim(0, max(float(data["abs_bias"].max()), linthresh) * 2)
        ax.set_title(task)
        ax.set_xlabel("variance")
        ax.set_ylabel("|bias|")
    _legend(fig, colours, sorted(data["estimator"].unique()), "estimator")
    _finish(fig)
    caption = (f"|Bias| against variance of each estimator, one point per K (larger marker = "
               f"more samples); y is linear below {linthresh:g}. Device: {device}."
               f"{_not_shown(dropped, 'zero variance')}")
    return Figure("bias_vs_variance", "Bias vs variance", caption, fig)


def fig_history(frame_machine, colours):
    """A time measure across commits (ordered by date), at the largest K, on one device."""
    cells = gradient_cells(frame_machine)
    commits = cells.drop_duplicates("commit")
    if commits["commit"].nunique() < 2:
        raise Skip("results of one commit only")
    tname = time_measure(cells)
    sub = cells[(cells["type"] == "time") & (cells["measure"] == tname)] if tname else \
        _measure(cells, "variance", kind="track")
    if sub.empty:
        raise Skip("no time or variance results")
    measure = f"time_{tname}" if tname else "variance"
    device = pick_device(sub)
    sub = sub[sub["device"] == device]
    k = int(sub["num_samples"].max())
    sub = sub[sub["num_samples"] == k]
    order = sub.groupby("commit")["date"].min().sort_values()
    labels = {c: c[:8] for c in order.index}
    data = _mean_over_duplicates(sub, ["task", "estimator", "commit"])
    data["position"] = data["commit"].map({c: i for i, c in enumerate(order.index)})
    tasks = sorted(data["task"].unique())
    fig, axes = _facets(len(tasks))
    for ax, task in zip(axes, tasks):
        part = data[data["task"] == task].sort_values("position")
        _lines(ax, part, "position", "value", colours)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([labels[c] for c in order.index], rotation=45, ha="right")
        if (part["value"] > 0).all():
            ax.set_yscale("log")
        ax.set_title(task)
        ax.set_xlabel("commit")
        ax.set_ylabel(measure)
    _legend(fig, colours, sorted(data["estimator"].unique()), "estimator")
    _finish(fig)
    caption = (f"{measure} across {len(order)} commits (oldest left), K = {k}, device "
               f"{device}.")
    return Figure("history", f"History of {measure}", caption, fig)


# -- training figures ----------------------------------------------------------------------------
def training_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, method, seed, checkpoint) with columns metric, step, seconds, loss
    (those that were measured), from training benchmarks with a ``checkpoint`` parameter."""
    if "checkpoint" not in frame.columns:
        return pd.DataFrame()
    rows = _ok(frame).dropna(subset=["checkpoint"])
    rows = rows[rows["measure"].isin(["metric", "step", "seconds", "loss"])]
    if rows.empty:
        return pd.DataFrame()
    setting = "setting" if "setting" in rows and rows["setting"].notna().any() else "task"
    method = "method" if "method" in rows and rows["method"].notna().any() else "estimator"
    if setting not in rows or method not in rows:
        return pd.DataFrame()
    rows = rows.assign(setting=rows[setting].astype(str), method=rows[method].astype(str),
                       seed=rows["seed"] if "seed" in rows else 0)
    rows["seed"] = rows["seed"].fillna(0)
    curves = rows.pivot_table(index=["setting", "method", "seed", "checkpoint"],
                              columns="measure", values="value", aggfunc="mean").reset_index()
    curves.columns.name = None
    if "step" not in curves:  # tolerate suites that only record the checkpoint
        curves["step"] = curves["checkpoint"].astype(float)
    return curves


def fig_training(frame_machine, colours):
    curves = training_curves(frame_machine)
    if curves.empty or "metric" not in curves:
        raise Skip("no training benchmarks with a checkpoint parameter and track_metric")
    xs = [x for x in ("step", "seconds") if x in curves and curves[x].notna().any()]
    settings = sorted(curves["setting"].unique())
    fig, axes = plt.subplots(len(settings), len(xs), squeeze=False,
                             figsize=(COLUMN_WIDTH, PANEL_HEIGHT * len(settings) + 0.35))
    for r, setting in enumerate(settings):
        part = curves[curves["setting"] == setting].sort_values("checkpoint")
        for c, x in enumerate(xs):
            ax = axes[r][c]
            sns.lineplot(data=part, x=x, y="metric", hue="method", units="seed",
                         estimator=None, palette={k: colours[k] for k in part["method"].unique()},
                         lw=0.9, alpha=0.9, legend=False, ax=ax)
            ax.set_xlabel("update step" if x == "step" else "seconds")
            ax.set_ylabel("metric" if c == 0 else "")
            ax.set_title(setting if len(xs) == 1 or c == 0 else f"{setting} (time)")
    _legend(fig, colours, sorted(curves["method"].unique()), "method")
    _finish(fig)
    caption = ("Evaluation metric during training against update steps"
               + (" and wall-clock seconds" if "seconds" in xs else "")
               + "; one line per seed.")
    return Figure("training_curves", "Training curves", caption, fig)


def kendall_taus(curves: pd.DataFrame) -> pd.DataFrame:
    """Kendall's tau between loss and metric over every checkpoint and seed, per setting and
    method (and for all methods together, method '(all)')."""
    from scipy.stats import kendalltau

    out = []
    if curves.empty or not {"loss", "metric"} <= set(curves.columns):
        return pd.DataFrame(columns=["setting", "method", "tau", "points"])
    for setting, part in curves.groupby("setting"):
        groups = list(part.groupby("method")) + [("(all)", part)]
        for method, g in groups:
            g = g.dropna(subset=["loss", "metric"])
            tau = kendalltau(g["loss"], g["metric"]).statistic if len(g) > 1 else math.nan
            out.append({"setting": setting, "method": method, "tau": float(tau),
                        "points": len(g)})
    return pd.DataFrame(out)


def fig_loss_metric(frame_machine, colours):
    curves = training_curves(frame_machine)
    if curves.empty or not {"loss", "metric"} <= set(curves.columns):
        raise Skip("no training benchmarks recording both track_loss and track_metric")
    taus = kendall_taus(curves)
    settings = sorted(curves["setting"].unique())
    fig, axes = _facets(len(settings))
    for ax, setting in zip(axes, settings):
        part = curves[curves["setting"] == setting].dropna(subset=["loss", "metric"])
        sns.scatterplot(data=part, x="loss", y="metric", hue="method", linewidth=0, s=10,
                        palette={k: colours[k] for k in part["method"].unique()},
                        legend=False, ax=ax)
        tau = taus[(taus["setting"] == setting) & (taus["method"] == "(all)")]["tau"]
        ax.set_title(f"{setting}: τ = {tau.iloc[0]:.2f}" if len(tau) else setting)
        ax.set_xlabel("loss")
        ax.set_ylabel("metric")
    _legend(fig, colours, sorted(curves["method"].unique()), "method")
    _finish(fig)
    caption = ("Training loss against the evaluation metric at every checkpoint and seed; τ is "
               "Kendall's rank correlation over all points (−1: lower loss always means a "
               "higher metric).")
    return Figure("loss_vs_metric", "Loss vs metric", caption, fig)


# -- all figures ---------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text))


def build_figures(frame_machine: pd.DataFrame, colours: Dict[str, tuple], suffix: str = "",
                  progress: Callable[[str], None] = lambda msg: None
                  ) -> Tuple[List[Figure], List[Tuple[str, str]]]:
    """Every figure that one machine's results allow: (figures, [(figure, why skipped)]).
    ``frame_machine`` holds all commits of the machine; figures other than the history use its
    latest commit."""
    latest = latest_commit(frame_machine)
    cells = gradient_cells(latest)
    builders: List[Tuple[str, Callable[[], Figure]]] = [
        ("variance vs samples", lambda: fig_variance(cells, colours)),
        ("work-normalised variance", lambda: fig_work_normalised(cells, colours)),
        ("bias vs variance", lambda: fig_bias_variance(cells, colours)),
    ]
    devices = sorted(cells.loc[cells["type"] == "time", "device"].unique()) \
        if not cells.empty else []
    if devices:
        builders += [(f"time vs samples ({d})", lambda d=d: fig_time(cells, colours, d))
                     for d in devices]
    else:
        builders.append(("time vs samples", lambda: fig_time(cells, colours, "cpu")))
    builders += [
        ("signal-to-noise ratio", lambda: fig_snr(cells, colours)),
        ("training curves", lambda: fig_training(latest, colours)),
        ("loss vs metric", lambda: fig_loss_metric(latest, colours)),
        ("history across commits", lambda: fig_history(frame_machine, colours)),
    ]
    figures, skipped = [], []
    for label, build in builders:
        if cells.empty and label not in ("training curves", "loss vs metric",
                                         "history across commits"):
            skipped.append((label, "no gradient benchmarks (task, estimator, num_samples)"))
            continue
        with style():
            try:
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
