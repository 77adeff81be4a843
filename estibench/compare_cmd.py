"""``estibench compare SPEC [--against SPEC ...]``: one estimator against its baselines, task by
task (:mod:`reports.compare` computes it): the table on the terminal, and under ``--out`` a
report.md / report.html of the comparison, ``tables/compare.csv`` and the forest plots in
``figures/``. Kept apart from :mod:`estibench.cli`, which adds its parser and calls :func:`run`."""
from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any, formats: Callable[[str], list[str]]) -> None:
    cmp = sub.add_parser(
        "compare", help="one estimator against its baselines, task by task (ratios with 95 %% intervals)",
        description="Compare SPEC with baselines on every task where both have current results: the ratio "
                    "SPEC / baseline of variance and MSE at equal f evaluations and at equal seconds and of "
                    "the time per estimate (delta-method 95 % intervals from the recorded standard errors), "
                    "and the difference in training outcome (Welch intervals over seeds), each with a verdict "
                    "better / worse / tie. Cells measured by older code (stale) are left out and named.",
        epilog="Example: estibench compare my_estimator --against score_function:baseline=loo disarm")
    cmp.add_argument("spec", metavar="SPEC", help="the estimator (or training method) spec, as in the results")
    cmp.add_argument("--against", nargs="+", default=[], metavar="SPEC",
                     help="baselines (default, per task: the field's reference estimators measured there and "
                          "the strongest unbiased one; see the README)")
    cmp.add_argument("--results", default=".asv/results", type=Path, help="results folder (default: .asv/results)")
    cmp.add_argument("--out", default="compare", type=Path, help="folder for the comparison (default: compare/)")
    cmp.add_argument("--format", dest="formats", default=["png"], type=formats,
                     help="figure formats, comma-separated: png, svg, pdf (default: png)")
    cmp.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace, err: Callable[[str], None], say: Callable[[str], None]) -> int:
    """Exit 0, 1 (no results, or the output folder cannot take them), or 2 (an unknown SPEC)."""
    import matplotlib.pyplot as plt

    import reports
    from reports.blocks import Alert
    from reports.compare import check
    from reports.write import save_report

    try:
        loaded = reports.load_results(args.results, reports.needs(), say)
        check(loaded.frame, args.spec, args.against)
    except reports.NoResultsError as exc:
        err(f"nothing to compare: {exc}")
        return 1
    except ValueError as exc:
        err(f"error: {exc}")
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matplotlib/seaborn chatter is not the user's problem
        report, (table, notes) = _report(loaded.frame, args.spec, tuple(args.against))
        try:
            paths = save_report(report, args.out, args.formats, say)
        except reports.OutputError as exc:
            err(f"error: {exc}")
            return 1
        finally:
            for figure in report.figures:
                plt.close(figure.fig)
    print(_text(table))
    for note in notes:
        err(f"warning: {note}")
    for block in report.blocks:  # the stale notice: what to rerun
        if isinstance(block, Alert):
            err(f"warning: {block.title}. {block.text}")
    if not table.empty:
        print(paths["tables"] / "compare.csv")
    print(paths["html"])
    return 0


def _report(frame, spec: str, against: tuple[str, ...]):
    """The report ``estibench compare`` writes: the stale-results notice, then the comparison."""
    from reports.blocks import Heading, Report
    from reports.compare import section
    from reports.select import display_names
    from reports.versions import notice, stale

    report = Report()
    report.add(Heading("estibench comparison", 1))
    notice(report, frame, stale(frame), display_names(frame))
    return report, section(report, frame, spec, against)


def _text(table) -> str:
    """The comparison for the terminal: the summary lines, then the table."""
    from reports.blocks import fmt
    from reports.compare import shown, summary

    if table.empty:
        return "nothing to compare"
    out = shown(table).drop(columns=["interval", "note"]).fillna("")
    return "\n".join([*summary(table), "", out.assign(K=[fmt(k) for k in out["K"]]).to_string(index=False)])
