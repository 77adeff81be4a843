"""Loaded results -> a :class:`Report`: a list of blocks (heading, paragraph, list, table, figure)
plus the raw tables and the figures.

:mod:`reports.write` writes it twice: as Markdown that links the figure files, and as one HTML
file with the figures embedded (base64), which can be mailed or attached as it is.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timezone

import pandas as pd

from . import figures as figs
from . import measures as M
from . import tables
from .blocks import Alert, Block, Bold, FigureBlock, Heading, Items, Para, Report, Table, fmt
from .claims import claims_table
from .load import CI_LEVEL, CI_Z, Loaded
from .safe import slug
from .sections import claims_alert, claims_section, display_best, landscape_section, runs_section
from .style import Styles

__all__ = ["Report", "build_report", "fmt", "Bold", "Heading", "Para", "Items", "Table",
           "FigureBlock", "Alert", "Block"]

_MAX_FAILED_LISTED = 50
_MAX_OTHER_LISTED = 80


def _short_commit(frame: pd.DataFrame) -> pd.DataFrame:
    if "commit" in frame:
        frame = frame.assign(commit=frame["commit"].astype(str).str[:8])
    return frame


def _mean_sd(mean: float, sd: float, n: int) -> str:
    if n > 1 and isinstance(sd, float) and math.isfinite(sd):
        return f"{fmt(mean)} ± {fmt(sd)}"
    return fmt(mean)


def _summary_table(summary: pd.DataFrame, best: pd.DataFrame, task: str, source: str,
                   info: M.TaskInfo) -> Table:
    """Methods x measures, "mean ± sd" over seeds, the best of each measure in bold."""
    wide = tables.summary_wide(summary, task, source)
    measures = list(wide.columns.get_level_values(1).unique()) if not wide.empty else []
    winners = best[best["task"] == task].set_index("measure")["best"].to_dict() \
        if not best.empty else {}
    rows = []
    for method in wide.index:
        row = {"method": method}
        for m in measures:
            mean, sd, n = wide.loc[method, ("mean", m)], wide.loc[method, ("sd", m)], \
                wide.loc[method, ("seeds", m)]
            text = "–" if pd.isna(mean) else _mean_sd(float(mean), float(sd), int(n))
            if method in str(winners.get(m, "")).removeprefix("tie: ").split(" = "):
                text = Bold(text)
            row[_column_label(m, info)] = text
        rows.append(row)
    seeds = int(wide.xs("seeds", axis=1, level=0).max().max()) if not wide.empty else 0
    what = ("alignment summary (suite/training.py)" if source == "summary"
            else "measures taken at the end of training")
    caption = (f"{task}: {what}, mean ± standard deviation over {seeds} seed(s); bold: the best "
               f"mean of each column (↑ higher / ↓ lower is better; unmarked: not ranked). "
               f"Metric: {info.metric}"
               + ("" if info.higher_is_better is not None else
                  " (the results do not say which way this task's metric is better: its final "
                  "metrics are not ranked)") + ".")
    return Table(pd.DataFrame(rows, dtype=object), caption)  # object: keeps Bold cells


def _column_label(measure: str, info: M.TaskInfo) -> str:
    arrow = {True: " ↑", False: " ↓"}.get(M.direction(measure, info), "")
    return f"{measure}{arrow}"


# -- building --------------------------------------------------------------------------------------
def build_report(loaded: Loaded, progress: Callable[[str], None] = lambda msg: None,
                 source: str = "", history_measure: str = figs.HISTORY_MEASURE,
                 figure_options: dict | None = None) -> Report:
    """The report of ``loaded``; ``figure_options`` go to :func:`reports.figures.build_figures`
    (``only_tasks``, ``only_estimators``, ``per_task``)."""
    frame = loaded.frame
    report = Report()
    machines = sorted(frame["machine"].unique())
    tasks = tables.training_tasks(frame)
    totals = loaded.totals  # set when frame holds only what the tables and figures read
    styles = Styles(totals.style_groups) if totals is not None else _styles(frame)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    counts = totals.status if totals is not None else frame["status"].value_counts()
    n_cells = totals.cells if totals is not None else len(frame)
    report.add(Heading("estibench report", 1), Para(
        f"Generated {now} from {len(loaded.files)} asv result file(s)"
        f"{' in ' + source if source else ''}: {n_cells} benchmark cells, "
        f"{counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, "
        f"{counts.get('skipped', 0)} skipped. Each machine's tables and figures use its latest "
        f"commit with results of their kind (the history figure uses every commit); results of "
        f"different machines are never compared. Intervals: value ± {CI_Z:.2f}·se "
        f"({round(100 * CI_LEVEL)} %) from the suite's standard errors, asv's 99 % interval for "
        f"times."))

    claims = claims_table(frame)
    report.tables["claims"] = claims
    claims_alert(report, claims)

    # provenance
    report.add(Heading("Machines and runs"))
    mrows = []
    for name in machines:
        info = loaded.machines.get(name, {})
        mrows.append({"machine": name, **{k: info.get(k) for k in
                                          ("os", "arch", "cpu", "num_cpu", "ram")}})
    report.add(Table(pd.DataFrame(mrows).dropna(axis=1, how="all"),
                     "Machines (from asv's machine.json)."))
    runs = totals.runs if totals is not None else tables.runs(frame)
    report.tables["runs"] = runs
    report.add(Table(_short_commit(runs), "Result files: one row per machine, commit and "
                     "environment; cell counts by status."))
    report.tables["run_summary"] = runs_section(
        report, frame, totals.run_summary if totals is not None else None)

    for machine in machines:
        mframe = frame[frame["machine"] == machine]
        suffix = f"-{slug(machine)}" if len(machines) > 1 else ""
        on = f" — {machine}" if len(machines) > 1 else ""

        cover = tables.coverage(mframe)
        best = tables.best_estimators(mframe)
        summary = tables.alignment_summary(mframe)
        best_m = tables.best_methods(summary, tasks)
        report.tables.update({f"coverage{suffix}": cover, f"best_estimators{suffix}": best,
                              f"alignment_summary{suffix}": summary,
                              f"best_methods{suffix}": best_m})
        grad = mframe[mframe["group"] == "gradient"]
        if not cover.empty:
            report.add(Heading(f"Gradient estimators{on} @ {_commit_of(grad)}"), Table(
                cover, "What ran: the estimators and sample counts K with results, per task and "
                       "device."))
        if not best.empty:
            report.add(Heading(f"Best estimator per task and measure{on}", 3), Table(
                display_best(best),
                "Each (task, measure) compared at the K where most estimators have a result; "
                "costs on every device, the rest on one. Differences the intervals cannot "
                "separate are not ordered: 'tie: a = b' lists every estimator whose interval "
                "overlaps the best's (tied: how many); runner-up: the first one separated from "
                "it; margin: its value over the best's when lower is better, the best's over "
                "its when higher is; distinct: whether the best stands alone (empty where an "
                "interval is unknown). Every estimator competes, deterministic ones included; "
                "reference: the exact estimator's value (the yardstick, not ranked)."))
        if not summary.empty:
            align = mframe[mframe["group"].isin(["summary", "final"])]
            report.add(Heading(f"Metric alignment{on} @ {_commit_of(align)}"))
            for task in summary["task"].unique():
                info = tasks.get(task, M.TaskInfo(task))
                report.add(Heading(task, 3))
                for src in ("summary", "final"):
                    if (summary[(summary["task"] == task)]["source"] == src).any():
                        report.add(_summary_table(summary, best_m, task, src, info))
            if not best_m.empty:
                report.add(Heading(f"Best method per task and measure{on}", 3), Table(
                    display_best(best_m),
                    "Means over seeds; margin as above; distinct: whether the 95 % t-intervals "
                    "of the two means are disjoint."))

        other = tables.other_results(mframe, loaded.param_columns)
        if not other.empty:
            report.tables[f"other{suffix}"] = other
            shown = other.head(_MAX_OTHER_LISTED)
            when = _commit_of(mframe[mframe["group"] == "other"])
            report.add(Heading(f"Other benchmarks{on} @ {when}"),
                       Table(shown.drop(columns=["ci_low", "ci_high"]),
                             "Benchmarks the report has no figure for, as asv recorded them"
                             + (f" (first {len(shown)} of {len(other)}; all in tables/)"
                                if len(shown) < len(other) else "") + "."))

        progress(f"drawing figures for machine {machine}")
        figures, skipped = figs.build_figures(mframe, styles, tasks, suffix=suffix,
                                              history_measure=history_measure,
                                              progress=progress, **(figure_options or {}))
        report.figures.extend(figures)
        if figures:
            report.add(Heading(f"Figures{on}"))
            report.add(*(FigureBlock(f) for f in figures))
        if skipped:
            report.add(Para("Figures not drawn:"),
                       Items([f"{label}: {why}" for label, why in skipped]))

    landscape_section(report, frame)
    claims_section(report, claims)

    # failed and skipped cells
    report.add(Heading("Failed and skipped cells"))
    counts = totals.status_counts if totals is not None else tables.status_counts(frame)
    if counts.empty:
        report.add(Para("None: every cell has a result."))
    else:
        n_failed = int(counts["failed"].sum())
        n_skipped = int(counts["skipped"].sum())
        report.add(Para(f"{n_failed} failed (the benchmark raised; asv stores null) and "
                        f"{n_skipped} skipped (not applicable or undefined: an unsupported "
                        f"estimator and task, a device this machine lacks, the SNR of a "
                        f"deterministic estimator, Kendall τ of a constant series; asv stores "
                        f"NaN)."), Table(counts))
        failed = tables.failed_cells(totals.failed if totals is not None else frame,
                                     loaded.param_columns)
        if failed:
            shown = failed[:_MAX_FAILED_LISTED]
            more = len(failed) - len(shown)
            report.add(Para("Failed cells:"), Items(shown + ([f"… and {more} more"]
                                                              if more else [])))
    if loaded.warnings:
        report.add(Heading("Files left out"), Items(loaded.warnings))
    return report


def _commit_of(frame: pd.DataFrame) -> str:
    latest = figs.latest_commit(frame)
    if latest.empty:
        return "–"
    return f"{str(latest['commit'].iloc[0])[:8]} ({fmt(latest['date'].max())})"


def _styles(frame: pd.DataFrame) -> Styles:
    """Colour groups: every estimator of the results together; each training task's methods."""
    groups = []
    if "estimator" in frame:
        groups.append(sorted(frame["estimator"].dropna().astype(str).unique()))
    if "method" in frame:
        rows = frame.dropna(subset=["method"])
        for _, part in rows.groupby("task" if "task" in rows else "benchmark"):
            groups.append(sorted(part["method"].astype(str).unique()))
    return Styles(groups)
