"""Loaded results -> a :class:`Report`: a list of blocks (heading, paragraph, list, table, figure) plus the
raw tables and the figures.

:mod:`reports.write` writes it twice: as Markdown that links the figure files, and as one HTML
file with the figures embedded (base64), which can be mailed or attached as it is."""
from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import pandas as pd

from estibench import schema as M

from . import figures as figs
from . import tables
from .blocks import Alert, Block, Bold, FigureBlock, Heading, Items, Para, Report, Table, fmt
from .claims import claims_alert, claims_section, claims_table, display_best, landscape_section, runs_section
from .load import CI_LEVEL, CI_Z, Loaded
from .safe import slug
from .select import display_names, latest_commit
from .style import Styles

__all__ = ["Report", "compose", "fmt", "Bold", "Heading", "Para", "Items", "Table",
           "FigureBlock", "Alert", "Block", "named"]

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
                   info: M.TaskInfo, names: dict) -> Table:
    """Methods x measures, "mean ± sd" over seeds, the best of each measure in bold."""
    wide = tables.summary_wide(summary, task, source)
    measures = list(wide.columns.get_level_values(1).unique()) if not wide.empty else []
    winners = best[best["task"] == task].set_index("measure")["best"].to_dict() \
        if not best.empty else {}
    rows = []
    for method in wide.index:
        row = {"method": names.get("method", {}).get(method, method)}
        for m in measures:
            mean, sd, n = wide.loc[method, ("mean", m)], wide.loc[method, ("sd", m)], \
                wide.loc[method, ("seeds", m)]
            text = "–" if pd.isna(mean) else _mean_sd(float(mean), float(sd), int(n))
            if method in str(winners.get(m, "")).removeprefix("tie: ").split(" = "):
                text = Bold(text)
            row[_column_label(m, info)] = text
        rows.append(row)
    seeds = int(wide.xs("seeds", axis=1, level=0).max().max()) if not wide.empty else 0
    what = ("alignment summary (suite/training.py)" if source == "summary" else "measures taken at the end of training")
    shown = names.get("task", {}).get(task, task)
    caption = (f"{shown}: {what}, mean ± standard deviation over {seeds} seed(s); bold: the "
               f"best mean of each column (↑ higher / ↓ lower is better; unmarked: not ranked). "
               f"Metric: {info.metric}" + ("" if info.higher_is_better is not None else
                  " (the results do not say which way this task's metric is better: its final "
                  "metrics are not ranked)") + ".")
    return Table(pd.DataFrame(rows, dtype=object), caption)  # object: keeps Bold cells


def _column_label(measure: str, info: M.TaskInfo) -> str:
    arrow = {True: " ↑", False: " ↓"}.get(M.direction(measure, info), "")
    return f"{measure}{arrow}"


_NAMED = {"estimator": "estimator", "task": "task", "method": "method", "best": "estimator",
          "runner_up": "estimator", "estimators": "estimator"}


def named(table: pd.DataFrame, names: dict[str, dict[str, str]]) -> pd.DataFrame:
    """``table`` as a person reads it: ids replaced by their display names (``tie: a = b`` and
    comma-separated lists name by name; a best method by its method name)."""
    out = table.copy()
    for col, kind in _NAMED.items():
        if col not in out:
            continue
        kinds = ("method", "estimator") if col in ("best", "runner_up") else (kind,)
        lookup = {k: v for c in kinds for k, v in names.get(c, {}).items()}
        sep = ", " if col == "estimators" else " = "
        out[col] = out[col].map(lambda v, lookup=lookup, sep=sep: _renamed(v, lookup, sep))
    return out


def _renamed(v, lookup: dict[str, str], sep: str):
    if not isinstance(v, str):
        return v
    text = sep.join(lookup.get(p, p) for p in v.removeprefix("tie: ").split(sep))
    return f"tie: {text}" if v.startswith("tie: ") else text


def _heading(report: Report, loaded: Loaded, source: str) -> None:
    frame = loaded.frame
    counts = frame["status"].value_counts()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report.add(Heading("estibench report", 1), Para(f"Generated {now} from {len(loaded.files)} result file(s)"
        f"{' in ' + source if source else ''}: {len(frame)} benchmark cells, "
        f"{counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, "
        f"{counts.get('skipped', 0)} skipped. Each machine's tables and figures use its latest "
        f"commit with results of their kind (the history figure uses every commit); results of "
        f"different machines are never compared. Intervals: value ± {CI_Z:.2f}·se "
        f"({round(100 * CI_LEVEL)} %) from the suite's standard errors, asv's 99 % interval for " f"times."))


def _provenance(report: Report, loaded: Loaded) -> None:
    frame = loaded.frame
    report.add(Heading("Machines and runs"))
    mrows = [{"machine": name, **{k: loaded.machines.get(name, {}).get(k) for k in
                                  ("os", "arch", "cpu", "num_cpu", "ram")}}
             for name in sorted(frame["machine"].unique())]
    report.add(Table(pd.DataFrame(mrows).dropna(axis=1, how="all"), "Machines (from asv's machine.json)."))
    runs = tables.runs(frame)
    report.tables["runs"] = runs
    report.add(Table(_short_commit(runs), "Results: one row per machine and commit; cell " "counts by status."))
    report.tables["run_summary"] = runs_section(report, tables.run_summary(frame))


_BEST_CAPTION = ("Each (task, measure) compared at the K where most estimators have a result; costs on every "
    "device, the rest on one. Differences the intervals cannot separate are not ordered: 'tie: a "
    "= b' lists every estimator whose interval overlaps the best's (tied: how many); runner-up: "
    "the first one separated from it; margin: its value over the best's when lower is better, "
    "the best's over its when higher is; distinct: whether the best stands alone (empty where "
    "an interval is unknown). Every estimator competes, deterministic ones included; reference: "
    "the exact estimator's value (the yardstick, not ranked).")


def _gradient_section(report: Report, mframe: pd.DataFrame, suffix: str, on: str, names: dict) -> None:
    cover, best = tables.coverage(mframe), tables.best_estimators(mframe)
    report.tables.update({f"coverage{suffix}": cover, f"best_estimators{suffix}": best})
    grad = mframe[mframe["group"] == "gradient"]
    if not cover.empty:
        report.add(Heading(f"Gradient estimators{on} @ {_commit_of(grad)}"), Table(
            named(cover, names), "What ran: the estimators and sample counts K with results, " "per task and device."))
    if not best.empty:
        report.add(Heading(f"Best estimator per task and measure{on}", 3),
                   Table(display_best(named(best, names)), _BEST_CAPTION))


def _alignment_section(report: Report, mframe: pd.DataFrame, suffix: str, on: str, tasks: dict, names: dict) -> None:
    summary = tables.alignment_summary(mframe)
    best_m = tables.best_methods(summary, tasks)
    report.tables.update({f"alignment_summary{suffix}": summary, f"best_methods{suffix}": best_m})
    if summary.empty:
        return
    align = mframe[mframe["group"].isin(["summary", "final"])]
    report.add(Heading(f"Metric alignment{on} @ {_commit_of(align)}"))
    for task in summary["task"].unique():
        info = tasks.get(task, M.TaskInfo(task))
        report.add(Heading(names.get("task", {}).get(task, task), 3))
        for src in ("summary", "final"):
            if (summary[(summary["task"] == task)]["source"] == src).any():
                report.add(_summary_table(summary, best_m, task, src, info, names))
    if not best_m.empty:
        report.add(Heading(f"Best method per task and measure{on}", 3), Table(display_best(named(best_m, names)),
            "Means over seeds; margin as above; distinct: whether the 95 % t-intervals "
            "of the two means are disjoint."))


def _other_section(report: Report, mframe: pd.DataFrame, loaded: Loaded, suffix: str, on: str) -> None:
    other = tables.other_results(mframe, loaded.param_columns)
    if other.empty:
        return
    report.tables[f"other{suffix}"] = other
    shown = other.head(_MAX_OTHER_LISTED)
    when = _commit_of(mframe[mframe["group"] == "other"])
    report.add(Heading(f"Other benchmarks{on} @ {when}"), Table(shown.drop(columns=["ci_low", "ci_high"]),
                     "Results the report has no figure for" + (f" (first {len(shown)} of {len(other)}; all in tables/)"
                         if len(shown) < len(other) else "") + "."))


def _figures_section(report: Report, mframe: pd.DataFrame, styles: Styles, tasks: dict,
                     suffix: str, on: str, options: dict, progress) -> None:
    figures, skipped = figs.build_figures(mframe, styles, tasks, suffix=suffix, progress=progress, **options)
    report.figures.extend(figures)
    if figures:
        report.add(Heading(f"Figures{on}"), *(FigureBlock(f) for f in figures))
    if skipped:
        report.add(Para("Figures not drawn:"), Items([f"{label}: {why}" for label, why in skipped]))
        report.skipped += [f"figure {label}{on} not drawn: {why}" for label, why in skipped
                           if why.startswith("could not be drawn")]


def _failures(report: Report, loaded: Loaded) -> None:
    frame = loaded.frame
    report.add(Heading("Failed and skipped cells"))
    counts = tables.status_counts(frame)
    if counts.empty:
        report.add(Para("None: every cell has a result."))
    else:
        report.add(Para(f"{int(counts['failed'].sum())} failed (the benchmark raised) and "
                        f"{int(counts['skipped'].sum())} skipped (not applicable or undefined: "
                        f"an unsupported estimator and task, a device this machine lacks, the "
                        f"SNR of a deterministic estimator, Kendall τ of a constant series)."), Table(counts))
        failed = tables.failed_cells(frame, loaded.param_columns)
        if failed:
            shown = failed[:_MAX_FAILED_LISTED]
            more = len(failed) - len(shown)
            report.add(Para("Failed cells:"), Items(shown + ([f"… and {more} more"] if more else [])))
    if loaded.warnings or report.skipped:
        report.add(Heading("Files left out and other warnings"), Items(loaded.warnings + report.skipped))


# -- building --------------------------------------------------------------------------------------
#: machines drawn in full (the most recently measured); the rest are summarised (issue 21, item 7)
MAX_MACHINES = 4


def _guarded(report: Report, what: str, build: Callable[[], None]) -> None:
    """Run one section's builder; data it cannot use skip it with a warning naming it (issue 21,
    item 11), the rest of the report is written."""
    try:
        build()
    except Exception as exc:  # noqa: BLE001 - any malformed data: that section only
        report.skipped.append(f"{what} left out: {type(exc).__name__}: {str(exc)[:200]}")


def compose(loaded: Loaded, progress: Callable[[str], None] = lambda msg: None,
            source: str = "", figure_options: dict | None = None) -> Report:
    """The report of ``loaded``; ``figure_options`` go to :func:`reports.figures.build_figures`
    (``history_measure``, ``only_tasks``, ``only_estimators``, ``per_task``)."""
    frame = loaded.frame
    report = Report()
    latest = frame.groupby("machine")["date"].max().sort_values(ascending=False, kind="stable")
    machines = sorted(latest.index[:MAX_MACHINES])
    tasks = tables.training_tasks(frame)
    names = display_names(frame)
    styles = _styles(frame, names)
    _heading(report, loaded, source)
    claims = claims_table(frame)
    report.tables["claims"] = claims
    shown_claims = named(claims, names)
    claims_alert(report, shown_claims)
    _provenance(report, loaded)
    if len(latest) > len(machines):
        left = sorted(latest.index[MAX_MACHINES:])
        report.add(Para(f"{len(left)} of {len(latest)} machines are not drawn (only the {MAX_MACHINES} "
                        f"measured most recently are): {', '.join(left[:50])}{' ...' if len(left) > 50 else ''}."
                        f" Their cells are in the tables above and in the tidy table (--tidy)."))
    for machine in machines:
        mframe = frame[frame["machine"] == machine]
        suffix = f"-{slug(machine)}" if len(latest) > 1 else ""
        on = f" — {machine}" if len(latest) > 1 else ""
        _guarded(report, f"gradient tables{on}", partial(_gradient_section, report, mframe, suffix, on, names))
        _guarded(report, f"alignment tables{on}", partial(_alignment_section, report, mframe, suffix, on, tasks, names))
        _guarded(report, f"other benchmarks{on}", partial(_other_section, report, mframe, loaded, suffix, on))
        progress(f"drawing figures for machine {machine}")
        _figures_section(report, mframe, styles, tasks, suffix, on, figure_options or {}, progress)
    _guarded(report, "landscape probes", lambda: landscape_section(report, frame))
    claims_section(report, shown_claims)
    _failures(report, loaded)
    return report


def _commit_of(frame: pd.DataFrame) -> str:
    latest = latest_commit(frame)
    if latest.empty:
        return "–"
    return f"{str(latest['commit'].iloc[0])[:8]} ({fmt(latest['date'].max())})"


def _styles(frame: pd.DataFrame, names: dict) -> Styles:
    """Colour groups: every estimator of the results together; each training task's methods."""
    groups = [sorted(frame["estimator"].dropna().astype(str).unique())]
    rows = frame.dropna(subset=["method"])
    for _, part in rows.groupby("task"):
        groups.append(sorted(part["method"].astype(str).unique()))
    return Styles(groups, names)
