"""Loaded results -> a :class:`Report` (its blocks, raw tables and figures), which :mod:`reports.write` writes."""
from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import pandas as pd

from estibench import schema as M

from . import compare, tables, versions
from . import figures as figs
from .blocks import Bold, FigureBlock, Heading, Items, Para, Report, Table, display, fmt
from .claims import claims_alert, claims_section, claims_table, display_best
from .landscape import landscape_section
from .load import CI_LEVEL, CI_Z, Loaded
from .safe import bracket, slug
from .select import display_names, latest_commit
from .style import Styles

__all__ = ["compose", "named"]

_MAX_FAILED_LISTED, _MAX_OTHER_LISTED = 50, 80


def _summary_table(summary: pd.DataFrame, best: pd.DataFrame, task: str, source: str, info: M.TaskInfo,
                   names: dict) -> Table:
    """Methods x measures, "mean ± sd" over seeds, the best of each measure in bold."""
    part = summary[(summary["task"] == task) & (summary["source"] == source)]
    cells = {(r.method, r.measure): r for r in part.itertuples()}
    winners = best[best["task"] == task].set_index("measure")["best"].to_dict() if not best.empty else {}
    rows = []
    for method in sorted(part["method"].unique()):
        row = {"method": _renamed(method, display(names, "estimator", "method", marked=True), " = ")}
        for m in dict.fromkeys(part["measure"]):
            mean, sd, n = (getattr(cells.get((method, m)), c, math.nan) for c in ("mean", "sd", "seeds"))
            text = "–" if pd.isna(mean) else f"{fmt(mean)} ± {fmt(sd)}" if n > 1 and math.isfinite(sd) else fmt(mean)
            arrow = {True: " ↑", False: " ↓"}.get(M.direction(m, info), "")
            row[M.label(m) + arrow] = Bold(text) if method in str(winners.get(m, "")).removeprefix("tie: ").split(
                " = ") else text
        rows.append(row)
    what = "alignment summary (suite/training.py)" if source == "summary" else "measures taken at the end of training"
    return Table(pd.DataFrame(rows, dtype=object), (  # object: keeps Bold cells
        f"{names.get('task', {}).get(task, task)}: {what}, mean ± standard deviation over "
        f"{int(part['seeds'].max()) if len(part) else 0} seed(s); bold: the best mean of each column (↑ higher / ↓ "
        f"lower is better; unmarked: not ranked); †: registered biased. Metric: {info.metric}"
        + ("" if info.higher_is_better is not None else " (the results do not say which way this task's metric is "
           "better: its final metrics are not ranked)") + "."))


#: table column -> the kind of id it holds (display names: reports.select.display_names)
_NAMED = {"estimator": "estimator", "task": "task", "method": "method", "best": "estimator", "runner_up": "estimator",
          "estimators": "estimator", "exact": "estimator", "deterministic": "estimator"}


def named(table: pd.DataFrame, names: dict[str, dict[str, str]]) -> pd.DataFrame:
    """``table`` as a person reads it: ids replaced by their display names (``tie: a = b`` and comma-separated
    lists name by name; a best method by its method name), † after a biased one."""
    out = table.copy()
    for col in (c for c in _NAMED if c in out):
        kinds = ("method", "estimator") if col in ("best", "runner_up") else (_NAMED[col],)
        out[col] = out[col].map(partial(_renamed, lookup=display(names, *kinds, marked=col != "task"),
                                        sep=", " if col in ("estimators", "exact", "deterministic") else " = "))
    return out


def _renamed(v, lookup: dict[str, str], sep: str):
    if not isinstance(v, str):
        return v
    text = sep.join(lookup.get(p, p) for p in v.removeprefix("tie: ").split(sep))
    return f"tie: {text}" if v.startswith("tie: ") else text


_BEST_CAPTION = (
    "Each (task, measure) compared at the K where most estimators have a result; costs on every device, the rest "
    "on one. Differences the intervals cannot separate are not ordered: 'tie: a = b' lists every estimator whose "
    "interval overlaps the best's (tied: how many); runner-up: the first one separated from it; margin: its value "
    "over the best's when lower is better, the best's over its when higher is; distinct: whether the best stands "
    "alone (empty where an interval is unknown). †: an estimator registered as biased. Every estimator competes, "
    "deterministic ones included, but where a value at round-off means nothing: exact (variance at round-off, "
    "√tr Cov ≤ 10⁻⁵·‖E ĝ‖, and relative bias ≤ 10⁻⁵: the estimator computes the gradient) is not ranked in any "
    "quality measure, deterministic (variance at round-off, biased) not in variance and SNR. In the bias ranking "
    "an estimator whose claim test detected a bias in the cell (p < the claim test's false-alarm rate) ranks "
    "behind, and never ties with, every one where none was detected. Reference: the exact estimator's value (the "
    "yardstick, not ranked).")


def _gradient_section(report: Report, mframe: pd.DataFrame, suffix: str, on: str, names: dict) -> None:
    cover, best, full = tables.coverage(mframe), tables.best_estimators(mframe), tables.results_table(mframe, names)
    report.tables.update({f"coverage{suffix}": cover, f"best_estimators{suffix}": best, f"results{suffix}": full})
    if not cover.empty:
        report.add(_at("Gradient estimators", on, mframe, "gradient"), Table(named(cover, names), "What ran: the "
                   "estimators and sample counts K with results, per task and device."))
    if not best.empty:
        report.add(Heading(f"Best estimator per task and measure{on}", 3),
                   Table(display_best(named(best, names)), _BEST_CAPTION))
    if not full.empty:  # plain numbers, units in the headers: a column sorts by value
        shown = named(full[["task", "estimator", "num_samples", "device", "round_off"]], names).rename(
            columns={"num_samples": "K", "round_off": "at round-off"})
        for m in (c for c in full.columns if f"{c}_se" in full.columns):
            shown[m + bracket(M.unit(m))] = [fmt(v) if pd.isna(e) else f"{fmt(v)} ± {fmt(e)}"
                                             for v, e in zip(full[m], full[f"{m}_se"])]
        report.add(Heading(f"All results{on}", 3), Table(shown, (
            f"Every cell: value ± standard error of each measure ({len(full)} cells; tables/results{suffix}.csv "
            "holds the numbers in full). Click a column to sort; type in the box to keep the rows holding every "
            "word. †: registered biased; at round-off: as in the table above."), interactive=True))


def _alignment_section(report: Report, mframe: pd.DataFrame, suffix: str, on: str, tasks: dict, names: dict) -> None:
    best_m = tables.best_methods(summary := tables.alignment_summary(mframe), tasks)
    report.tables.update({f"alignment_summary{suffix}": summary, f"best_methods{suffix}": best_m})
    if summary.empty:
        return
    report.add(_at("Metric alignment", on, mframe, "summary", "final"))
    for task in summary["task"].unique():
        report.add(Heading(names.get("task", {}).get(task, task), 3), *(
            _summary_table(summary, best_m, task, src, tasks.get(task, M.TaskInfo(task)), names)
            for src in ("summary", "final") if (summary.loc[summary["task"] == task, "source"] == src).any()))
    if not best_m.empty:
        report.add(Heading(f"Best method per task and measure{on}", 3), Table(display_best(named(
            best_m, names)), "Means over seeds; margin as above; distinct: whether the 95 % t-intervals of the two "
            "means are disjoint."))


def _other_section(report: Report, mframe: pd.DataFrame, loaded: Loaded, suffix: str, on: str) -> None:
    other = tables.other_results(mframe, loaded.param_columns)
    if other.empty:
        return
    report.tables[f"other{suffix}"] = other
    shown = other.head(_MAX_OTHER_LISTED)
    more = f" (first {len(shown)} of {len(other)}; all in tables/)" if len(shown) < len(other) else ""
    report.add(_at("Other benchmarks", on, mframe, "other"), Table(shown.drop(columns=["ci_low", "ci_high"]),
                                                                   f"Results the report has no figure for{more}."))


def _figures_section(report: Report, mframe: pd.DataFrame, styles: Styles, tasks: dict,
                     suffix: str, on: str, options: dict, progress) -> None:
    figures, skipped = figs.build_figures(mframe, styles, tasks, suffix=suffix, progress=progress, **options)
    if figures:
        note = [Para(figs.figure_note(styles))] if not report.figures else []  # said once, above the first
        report.add(Heading(f"Figures{on}"), *note, *(FigureBlock(f) for f in figures))
    report.figures.extend(figures)
    if skipped:
        report.add(Para("Figures not drawn:"), Items([f"{label}: {why}" for label, why in skipped]))
        report.skipped += [f"figure {label}{on} not drawn: {why}" for label, why in skipped
                           if why.startswith("could not be drawn")]


def _failures(report: Report, loaded: Loaded) -> None:
    frame, counts = loaded.frame, tables.status_counts(loaded.frame)
    report.add(Heading("Failed and skipped cells"))
    if counts.empty:
        report.add(Para("None: every cell has a result."))
    else:
        n = {c: int(counts[c].sum()) for c in counts.columns[1:]}
        report.add(Para(f"{n['failed']} failed (the benchmark raised); {n['not applicable']} not applicable (an "
                        f"unsupported estimator and task, a device this machine lacks); {n['undefined']} undefined "
                        f"(the SNR of a deterministic estimator, Kendall τ of a constant series); {n['not run']} not "
                        f"run (outside the narrowing of the runs that measured this commit: asv lists every cell of "
                        f"its grid)."), Table(counts))
        failed = tables.failed_cells(frame, loaded.param_columns)
        if failed:
            more = [f"… and {len(failed) - _MAX_FAILED_LISTED} more"] if len(failed) > _MAX_FAILED_LISTED else []
            report.add(Para("Failed cells:"), Items(failed[:_MAX_FAILED_LISTED] + more))
    if loaded.warnings or report.skipped:
        report.add(Heading("Files left out and other warnings"), Items(loaded.warnings + report.skipped))


#: machines drawn in full (the most recently measured); the rest are summarised (issue 21, item 7)
MAX_MACHINES = 4


def _guarded(report: Report, what: str, build: Callable[[], None]) -> None:
    """Run one section's builder; data it cannot use skip it with a warning (issue 21, item 11)."""
    try:
        build()
    except Exception as exc:  # noqa: BLE001 - any malformed data: that section only
        report.skipped.append(f"{what} left out: {type(exc).__name__}: {str(exc)[:200]}")


def compose(loaded: Loaded, progress: Callable[[str], None] = lambda msg: None,
            source: str = "", figure_options: dict | None = None) -> Report:
    """The report of ``loaded``; ``figure_options`` go to :func:`reports.figures.build_figures`
    (``history_measure``, ``only_tasks``, ``only_estimators``, ``per_task``) but ``compare`` and
    ``against``: a Comparison section (:func:`reports.compare.section`)."""
    frame, report, names = loaded.frame, Report(), display_names(loaded.frame)
    latest = frame.groupby("machine")["date"].max().sort_values(ascending=False, kind="stable")
    machines, tasks, styles = sorted(latest.index[:MAX_MACHINES]), tables.training_tasks(frame), _styles(frame, names)
    counts, why_not = frame["status"].value_counts(), tables.why_not(frame[frame["status"] == "skipped"]).value_counts()
    report.add(Heading("estibench report", 1), Para(
        f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from {len(loaded.files)} result file(s)"
        f"{' in ' + source if source else ''}: {len(frame)} benchmark cells, {counts.get('ok', 0)} ok, "
        f"{counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped ("
        + ", ".join(f"{why_not.get(w, 0)} {w}" for w in ("not applicable", "undefined", "not run"))
        + "; not run: outside the runs' narrowing). Each machine's tables and figures use its latest commit with "
        "results of their kind (the history figure uses every commit); results of different machines are never "
        f"compared. Intervals: value ± {CI_Z:.2f}·se ({round(100 * CI_LEVEL)} %) from the suite's standard errors, "
        "asv's 99 % interval for times."))
    report.tables["claims"] = claims = claims_table(frame)
    claims_alert(report, shown_claims := named(claims, names))
    # issue 24: cells of an older code version are named, left out of rankings and the comparison
    why = versions.stale(frame)
    _guarded(report, "stale results", partial(versions.notice, report, frame, why, names))
    current, options = frame[why == ""], dict(figure_options or {})
    spec, against = options.pop("compare", None), options.pop("against", ())
    hardware = pd.DataFrame([{**loaded.machines.get(m, {}), "machine": m} for m in sorted(frame["machine"].unique())],
                            columns=["machine", "os", "arch", "cpu", "num_cpu", "ram"])
    report.tables["runs"] = runs = tables.runs(frame)
    report.add(Heading("Machines and runs"), Table(hardware.dropna(axis=1, how="all"), "Machines (from asv's "
               "machine.json)."), Table(runs.assign(commit=runs["commit"].astype(str).str[:8]), "Results: one row "
               "per machine and commit; cell counts by status."))
    report.tables["run_summary"] = summary = tables.run_summary(frame)
    if not summary.empty:
        report.add(Para(f"{len(summary)} run(s) contributed gradient cells: narrowed runs on one commit add to "
                        "its results, and each cell keeps the start time of the run that measured it (column "
                        "run_started of the tidy table)."), Table(summary.assign(
            commit=summary["commit"].astype(str).str[:8]), "Runs: when each started and what it measured."))
    if len(latest) > len(machines):
        left = sorted(latest.index[MAX_MACHINES:])
        report.add(Para(f"{len(left)} of {len(latest)} machines are not drawn (only the {MAX_MACHINES} "
                        f"measured most recently are): {', '.join(left[:50])}{' ...' if len(left) > 50 else ''}."
                        f" Their cells are in the tables above and in the tidy table (--tidy)."))
    for machine in machines:
        mframe, ranked = frame[frame["machine"] == machine], current[current["machine"] == machine]
        suffix, on = (f"-{slug(machine)}", f" — {machine}") if len(latest) > 1 else ("", "")
        _guarded(report, f"gradient tables{on}", partial(_gradient_section, report, ranked, suffix, on, names))
        _guarded(report, f"alignment tables{on}", partial(_alignment_section, report, ranked, suffix, on, tasks, names))
        _guarded(report, f"other benchmarks{on}", partial(_other_section, report, mframe, loaded, suffix, on))
        progress(f"drawing figures for machine {machine}")
        _figures_section(report, mframe, styles, tasks, suffix, on, options, progress)
    if spec:
        _guarded(report, "comparison", partial(compare.section, report, frame, spec, against))
    _guarded(report, "landscape probes", lambda: landscape_section(report, frame))
    claims_section(report, shown_claims)
    _failures(report, loaded)
    return report


def _at(title: str, on: str, frame: pd.DataFrame, *groups: str) -> Heading:
    latest = latest_commit(frame[frame["group"].isin(groups)])  # the commit (and date) its tables show
    at = "–" if latest.empty else f"{str(latest['commit'].iloc[0])[:8]} ({fmt(latest['date'].max())})"
    return Heading(f"{title}{on} @ {at}")


def _styles(frame: pd.DataFrame, names: dict) -> Styles:
    """Colour groups: every estimator of the results together; every training method together (a training
    figure has one legend for all its tasks). ``names["biased"]``: drawn dashed."""
    methods = frame["method"].dropna().astype(str).unique() if "method" in frame else ()
    return Styles([sorted(frame["estimator"].dropna().astype(str).unique()), sorted(methods)], names)
