"""``estibench compare SPEC``: one estimator against its baselines, task by task (issue 24, item 1; for users: the
README's "Comparing one estimator with its baselines"). Gradient tasks (per machine's latest commit, task, K, device):
the ratios SPEC / baseline of :data:`GRADIENT` (gradients of f not counted, a note says where they differ); training
tasks: the differences of the means over seeds of :data:`TRAINING` and of every final measure with a direction.
95 % intervals: for a ratio the delta method on its log, log r ± z·√((se_a/a)² + (se_b/b)²) (the se of a log asv
timing: (log hi − log lo) / (2 · 2.576) from asv's 99 % interval); for a difference Welch's t; unavailable where an
se is missing. better / worse only where the interval excludes no difference, in the measure's direction; else tie.
Default baselines per task: :data:`FIELD` where measured (a bare name by its best variant at equal f evaluations) and
the strongest unbiased estimator (claim not contradicted, lowest variance at equal seconds, not the exact reference);
on training tasks the field's and the best at equal steps. Stale cells (:mod:`reports.versions`): left out, named."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator, StrMethodFormatter

from estibench import schema as M

from .blocks import FigureBlock, Heading, Items, Para, Report, Table, display, fmt
from .layout import Figure, wrap
from .load import CI_Z
from .select import display_names, each_latest, ok, refuse_unknown
from .style import TEXT_WIDTH, drawable, style
from .tables import is_reference, training_tasks
from .versions import stale, stale_cells

__all__ = ["FIELD", "GRADIENT", "TRAINING", "COLUMNS", "check", "compare", "section", "summary", "shown"]

#: the field's reference estimators, compared against by default where measured
FIELD = ("score_function:baseline=loo", "disarm", "relax", "straight_through", "gumbel_softmax", "reinmax")
#: comparison -> (label, measure, the cost per estimate it is multiplied by)
GRADIENT = {"variance_equal_evaluations": ("variance at equal f evaluations", "variance", "evaluations"),
            "mse_equal_evaluations": ("MSE at equal f evaluations", "mse", "evaluations"),
            "variance_equal_seconds": ("variance at equal seconds", "variance", "seconds_per_estimate"),
            "mse_equal_seconds": ("MSE at equal seconds", "mse", "seconds_per_estimate"),
            "seconds_per_estimate": ("seconds per estimate", "seconds_per_estimate", None)}
#: the summary measures compared on training tasks (with every final measure that has a direction)
TRAINING = ("final_metric_equal_steps", "final_metric_equal_time")
#: the comparisons the gradient forest plot draws (the table has them all)
DRAWN = ("variance_equal_evaluations", "variance_equal_seconds", "seconds_per_estimate")
COLUMNS = ["machine", "task", "num_samples", "device", "spec", "baseline", "comparison", "label", "kind", "spec_value",
           "baseline_value", "estimate", "ci_low", "ci_high", "verdict", "interval", "note", "task_name", "spec_name",
           "baseline_name"]
_READ = ("variance", "mse", "evaluations", "grad_evaluations", "seconds_per_estimate", "time_estimate", "claim_verdict")
_Z99 = 2.5758293035489004  # the normal quantile of asv's 99 % intervals
_DELTA = "delta method, log ratio"
_VERDICTS = {"better": ((0.0, 0.62, 0.45), "o"), "worse": ((0.84, 0.37, 0.0), "s"), "tie": ("0.45", "D"),
             "no interval": ("0.1", "o")}
_CAPTION = ("ratio: SPEC / baseline (lower is better for each ratio here); diff.: SPEC − baseline of the means over "
            "seeds. 95 % intervals: delta method on the log ratio from the recorded standard errors (column interval "
            "when otherwise), or Welch's t over seeds. better / worse only where the interval excludes 1 (ratio) or 0 "
            "(difference) in the measure's better direction; tie where it covers it.")


def check(frame: pd.DataFrame, spec: str, against=()) -> None:
    """Raise ``ValueError`` for a SPEC or baseline not in the results, naming the closest match and what is."""
    present = sorted({str(v) for c in ("estimator", "method") if c in frame for v in frame[c].dropna()}
                     - {"", "None", "nan"})
    for what, name in [("SPEC", spec), *(("--against", a) for a in against)]:
        refuse_unknown(what, [name], present, "estimator or method", 60)


def _row(comparison: str, label: str, kind: str, values, interval, higher: bool | None, note="", **key) -> dict:
    """A row of the table from ``values`` (SPEC's, the baseline's) and ``interval`` (estimate, low, high, how)."""
    (est, lo, hi, how), null = interval, 1.0 if kind == "ratio" else 0.0
    verdict = "no interval" if not (math.isfinite(lo) and math.isfinite(hi)) else "tie" if lo <= null <= hi \
        else "better" if (lo > null) == higher else "worse"
    return dict(key, comparison=comparison, label=label, kind=kind, spec_value=values[0], baseline_value=values[1],
                estimate=est, ci_low=lo, ci_high=hi, interval=how, note=note, verdict=verdict)


def _ratio(va, vb, sa, sb, how: str, log_se: bool = False) -> tuple[float, float, float, str]:
    """va / vb with the delta-method interval from the standard errors (of the logs: ``log_se``)."""
    est = va / vb if vb > 0 else math.nan
    if not (va > 0 and vb > 0):
        why = "a value of 0 (deterministic) has no log" if 0 in (va, vb) else "a value or its cost is not recorded"
        return est, math.nan, math.nan, f"unavailable: {why}"
    s = math.hypot(sa, sb) if log_se else math.hypot(sa / va, sb / vb)
    return (est, est * math.exp(-CI_Z * s), est * math.exp(CI_Z * s), how) if math.isfinite(s) else (
        est, math.nan, math.nan, "unavailable: no standard error recorded")


def _pair(a: pd.Series, b: pd.Series) -> list[dict]:
    """The gradient comparisons of cell ``a`` (SPEC) against cell ``b`` (a baseline)."""
    out, nan, grads = [], math.nan, (a.get("grad_evaluations", 0), b.get("grad_evaluations", 0))
    asv = all(np.isfinite([x.get(f"time_estimate:{e}", nan) for x in (a, b) for e in ("ci_low", "ci_high")]))
    for comp, (label, measure, cost) in GRADIENT.items():
        ca, cb = (a.get(cost, nan), b.get(cost, nan)) if cost else (1.0, 1.0)
        va, vb = a.get(measure, nan) * ca, b.get(measure, nan) * cb
        est, lo, hi, how = _ratio(va, vb, a.get(f"{measure}:se", nan) * ca, b.get(f"{measure}:se", nan) * cb, _DELTA)
        if cost is None and asv:
            va, vb = a["time_estimate"], b["time_estimate"]
            est, lo, hi, how = _ratio(va, vb, *(math.log(x["time_estimate:ci_high"] / x["time_estimate:ci_low"]) / (
                2 * _Z99) for x in (a, b)), "delta method; se of the log from asv's 99 % interval", log_se=True)
        elif cost is None and not math.isfinite(lo):
            how = "unavailable: the harness's median of 7 timings has no standard error (asv's timings have)"
        note = f"gradients of f per estimate: {fmt(grads[0])} vs {fmt(grads[1])} (not counted)" \
            if cost == "evaluations" and grads[0] != grads[1] else ""
        out.append(_row(comp, label, "ratio", (va, vb), (est, lo, hi, how), M.direction(measure), note))
    return out


def _defaults(cell: pd.DataFrame, spec: str, claims: pd.Series) -> list[str]:
    others = cell[[e != spec and not is_reference(e) for e in cell.index]]
    chosen = [f for f in FIELD if f in others.index]
    for f in (f for f in FIELD if ":" not in f and f not in others.index):
        variants = others[[e.partition(":")[0] == f for e in others.index]]
        if len(variants):
            chosen.append((variants["variance"] * variants.get("evaluations", 1)).idxmin())
    ok = others[(claims.reindex(others.index) == 1).to_numpy() & (others.get("claim_verdict", 0) != -1)
                & (others["variance"] > 0)]
    cost = next((ok[c] for c in ("seconds_per_estimate", "evaluations") if c in ok), 1)
    if len(ok):  # the strongest at equal seconds; at equal f evaluations where no seconds are recorded
        chosen.append((ok["variance"] * cost).idxmin())
    return list(dict.fromkeys(chosen))


def _gradient(frame: pd.DataFrame, spec: str, against) -> list[dict]:
    rows = each_latest(ok(frame[frame["group"] == "gradient"]))
    rows = rows[rows["measure"].isin(_READ)].dropna(subset=["task", "estimator", "num_samples"])
    if spec not in set(rows["estimator"]):
        return []
    rows = rows.assign(device=rows["device"].fillna("cpu").astype(str), num_samples=rows["num_samples"].astype(int))
    keys = ["machine", "task", "num_samples", "device"]
    wide = rows.groupby([*keys, "estimator", "measure"])[["value", "se", "ci_low", "ci_high"]].first().unstack()
    wide.columns = [m if v == "value" else f"{m}:{v}" for v, m in wide.columns]
    claims, out = rows.groupby("estimator")["claims_unbiased"].max(), []
    for key, cell in wide.groupby(level=keys):
        cell = cell.droplevel(keys)
        if spec in cell.index and "variance" in cell:
            for base in (b for b in (list(against) or _defaults(cell, spec, claims)) if b in cell.index and b != spec):
                out += [dict(zip(keys, key), baseline=base, **r) for r in _pair(cell.loc[spec], cell.loc[base])]
    return out


def _welch(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, str]:
    from scipy.stats import t as student_t

    d = float(x.mean() - y.mean())
    if min(len(x), len(y)) < 2:
        return d, math.nan, math.nan, f"unavailable: {len(x)} vs {len(y)} seed(s), Welch needs 2 each"
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    df = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1)) if vx + vy > 0 else 1.0
    half = float(student_t.ppf(0.975, df)) * math.sqrt(vx + vy)
    return d, d - half, d + half, f"Welch t over seeds ({len(x)} vs {len(y)})"


def _training(frame: pd.DataFrame, spec: str, against) -> list[dict]:
    rows = each_latest(ok(frame[frame["group"].isin(["summary", "final"])])).dropna(subset=["method", "value"])
    rows = rows[(rows["group"] == "final") | rows["measure"].isin(TRAINING)]
    infos, out, mine = training_tasks(frame), [], set(rows.loc[rows["method"] == spec, "task"])
    for (machine, task), part in rows[rows["task"].isin(mine)].groupby(["machine", "task"]):
        info = infos.get(task, M.TaskInfo(task))
        head = part[part["measure"] == TRAINING[0]].groupby("method")["value"].mean().drop(spec, errors="ignore")
        best = set() if head.empty or info.higher_is_better is None else {
            (head if info.higher_is_better else -head).idxmax()}
        baselines = (set(against) or {f for f in FIELD if f in set(part["method"])} | best) - {spec}
        for measure, mpart in part.groupby("measure"):
            higher, values = M.direction(measure, info), dict(list(mpart.groupby("method")["value"]))
            row = M.lookup(measure)  # a measure named after a row of the table: "log p(x) (test_log_px)"
            label = M.label(measure) if measure in M.MEASURES or row is None else f"{row.label} ({measure})"
            for base in baselines & set(values) if spec in values and higher is not None else ():
                x, y = values[spec].to_numpy(float), values[base].to_numpy(float)
                out.append(_row(measure, label, "difference", (x.mean(), y.mean()), _welch(x, y), higher,
                                machine=machine, task=task, baseline=base))
    return out


def compare(frame: pd.DataFrame, spec: str, against=()) -> tuple[pd.DataFrame, list[str]]:
    """The comparison table (:data:`COLUMNS`) of ``spec`` against ``against`` (default: see the module's
    notes) on the current cells of ``frame``, and notes naming the stale cells left out."""
    why, names = stale(frame), display_names(frame)
    current, tasks, specs = frame[why == ""], display(names, "task"), display(names, "method", "estimator")
    table = pd.DataFrame(_gradient(current, spec, against) + _training(current, spec, against), columns=COLUMNS)
    table = table.assign(task_name=[tasks.get(t, t) for t in table["task"]], spec_name=specs.get(spec, spec),
                         spec=spec, baseline_name=[specs.get(b, b) for b in table["baseline"]])
    cells = stale_cells(frame, why)
    mine = frame.loc[(frame["estimator"] == spec) | (frame["method"] == spec), "task"].dropna()
    notes = [f"{r.name} on {r.task} ({r.kind}" + (f", K = {r.ks}" if r.ks else "") + f"): stale, left out: {r.why}"
             for r in cells[cells["task"].isin(set(mine))].itertuples()]
    return table.sort_values(["machine", "task", "num_samples", "baseline"], kind="stable", ignore_index=True), notes


def _with_interval(r) -> str:
    return f"{fmt(r.estimate)} [" + (f"{fmt(r.ci_low)}, {fmt(r.ci_high)}]" if math.isfinite(r.ci_low) else "–, –]")


def summary(table: pd.DataFrame) -> list[str]:
    """Per baseline and headline comparison (variance at equal f evaluations, final metric at equal
    steps): the tasks where SPEC is better, worse and tied, each with its interval."""
    head = table[table["comparison"].isin(["variance_equal_evaluations", TRAINING[0]])]
    head = head.assign(where=[f"{r.task_name}" + (f" K={int(r.num_samples)}" if pd.notna(r.num_samples) else "")
                              + f" ({_with_interval(r)})" for r in head.itertuples()])
    return [f"vs {base}, {label}: " + "; ".join(f"{v} on " + ", ".join(part.loc[part["verdict"] == v, "where"])
                                                for v in _VERDICTS if (part["verdict"] == v).any())
            for (base, label), part in head.groupby(["baseline_name", "label"], sort=False)]


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """The table as a person reads it: display names, each estimate with its interval."""
    out = pd.DataFrame({"task": table["task_name"], "K": table["num_samples"], "device": table["device"],
                        "baseline": table["baseline_name"], "comparison": table["label"],
                        "vs baseline [95 % CI]": [("ratio " if r.kind == "ratio" else "diff. ") + _with_interval(r)
                                                  for r in table.itertuples()], "verdict": table["verdict"],
                        "interval": table["interval"].where(table["interval"] != _DELTA, ""), "note": table["note"]})
    return out.assign(machine=table["machine"])[["machine", *out]] if table["machine"].nunique() > 1 else out


def _forest(table: pd.DataFrame, kind: str, spec_name: str) -> Figure | None:
    """The forest plot of ``kind`` (ratio: gradient tasks, log axis; difference: training tasks)."""
    data = table[(table["kind"] == kind) & np.isfinite(table["estimate"].astype(float))]
    data = data[(data["estimate"] > 0) & data["comparison"].isin(DRAWN)] if kind == "ratio" else data
    if data.empty:
        return None
    data = data.assign(y=data.groupby(["machine", "task_name", "num_samples", "device", "baseline_name"], sort=False,
                                      dropna=False).ngroup())
    rows = data.drop_duplicates("y")
    many_k = rows.groupby("task_name")["num_samples"].nunique().max() > 1
    labels = [drawable(r.task_name) + (f", K={int(r.num_samples)}" if many_k else "") + "\nvs "
              + drawable(r.baseline_name) for r in rows.itertuples()]
    with style():
        fig, axes = plt.subplots(1, data["label"].nunique(), sharey=True, squeeze=False, layout="constrained",
                                 figsize=(TEXT_WIDTH, 0.8 + 0.32 * len(rows)))
        for ax, (comp, part) in zip(axes[0], data.groupby("label", sort=False)):
            est, lo, hi = (part[c].to_numpy(float) for c in ("estimate", "ci_low", "ci_high"))
            for verdict, (colour, marker) in _VERDICTS.items():
                if (sel := (part["verdict"] == verdict).to_numpy()).any():
                    ax.errorbar(est[sel], part["y"][sel], xerr=np.nan_to_num([est[sel] - lo[sel], hi[sel] - est[sel]]),
                                fmt=marker, color=colour, ms=3.5, lw=0.9, capsize=1.5, label=verdict,
                                mfc="none" if verdict == "no interval" else colour)
            ax.axvline(1.0 if kind == "ratio" else 0.0, color="0.3", lw=0.7, ls=":")
            ax.set_title(wrap(comp, 30))
            ends = np.r_[est, lo, hi]
            if kind == "ratio":  # 1 in the middle of a log axis; ticks at the two largest round ratios within
                reach = math.exp(1.15 * max(np.nanmax(np.abs(np.log(ends))), math.log(1.1)))
                ups = [c for c in (1.1, 1.25, 1.5, 2, 5, 10, 100, 1e3, 1e4, 1e6, 1e9) if c <= reach][-2:]
                ax.set(xscale="log", xlim=(1 / reach, reach), xlabel="ratio to baseline")
                ax.xaxis.set(major_locator=FixedLocator(sorted({1.0, *ups, *(1 / u for u in ups)})),
                             minor_locator=NullLocator(), major_formatter=StrMethodFormatter("{x:.3g}"))
                continue
            reach, unit = 1.15 * max(np.nanmax(np.abs(ends)), 1e-12), M.get(part["comparison"].iat[0]).unit
            ax.set(xlim=(-reach, reach), xlabel="difference" + (f" [{unit}]" if unit not in ("", "metric") else ""))
            ax.xaxis.set_major_locator(MaxNLocator(4, symmetric=True))
        axes[0][0].set(yticks=range(len(rows)), yticklabels=labels, ylim=(len(rows) - 0.5, -0.5))
        handles = {h.get_label(): h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]}
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=4, title="verdict")
    which = "gradient" if kind == "ratio" else "training"
    caption = (f"{spec_name} against each baseline, one row per task and baseline, with 95 % intervals (hollow: "
               f"interval unavailable); dotted: no difference; " + _CAPTION)
    return Figure(f"compare_{which}", f"{spec_name} against its baselines ({which} tasks)", caption, fig)


def section(report: Report, frame: pd.DataFrame, spec: str, against=()) -> tuple[pd.DataFrame, list[str]]:
    """The report's Comparison section (summary, table, forest plots, what was left out); returns :func:`compare`'s."""
    table, notes = compare(frame, spec, against)
    report.tables["compare"] = table
    name = table["spec_name"].iloc[0] if len(table) else spec
    chosen = ", ".join(against) if against else f"per task, those of {', '.join(FIELD)} measured there and the " \
        "strongest unbiased estimator (lowest variance at equal seconds); on training tasks the best method too"
    report.add(Heading(f"Comparison: {name} against its baselines"), Para(
        f"Baselines: {chosen}. Equal f evaluations: value × f evaluations per estimate; equal seconds: value × "
        "seconds per estimate; at the task's K and device. Stale cells are never compared."),
        Items(summary(table) or [f"nothing to compare: {name} has no current result beside a baseline"]))
    figures = [f for f in (_forest(table, kind, name) for kind in ("ratio", "difference")) if f is not None]
    report.figures.extend(figures)
    report.add(*([Table(shown(table), _CAPTION[0].upper() + _CAPTION[1:])] if len(table) else []),
               *map(FigureBlock, figures), *([Para("Left out of the comparison:"), Items(notes)] if notes else []))
    return table, notes
