"""estibench reports (README, "Reports"): results -> tidy frame (:mod:`~reports.load`) -> tables
(:mod:`~reports.tables`, :mod:`~reports.claims`) and figures (:mod:`~reports.figures`, :mod:`~reports.landscape`,
:mod:`~reports.layout`, :mod:`~reports.style`) -> blocks (:mod:`~reports.render`) -> files (:mod:`~reports.write`).

>>> from reports import build_report
>>> build_report(".asv/results", "report")           # doctest: +SKIP"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

__all__ = ["build_report", "load_results", "needs", "Loaded", "NoResultsError", "OutputError",
           "UsageError", "read_tidy", "write_tidy"]


class UsageError(ValueError):
    """An option names what the results do not hold (a measure, a task, an estimator)."""


def __getattr__(name: str):  # lazy: importing the package costs nothing until a reader or writer is used
    if name in ("Loaded", "NoResultsError", "read_tidy", "write_tidy", "OutputError", "load_results"):
        return getattr(import_module(".write" if name == "OutputError" else ".load", __name__), name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")


def needs() -> tuple[str, ...]:
    """The label columns the tables and figures declare they read (beyond the identity)."""
    from . import claims, figures, landscape, tables, versions

    return tuple(dict.fromkeys(figures.NEEDS + tables.NEEDS + claims.NEEDS + landscape.NEEDS + versions.NEEDS))


def build_report(results: Any, out: Any, *, formats: Sequence[str] = ("png",),
                 tidy: Any = None, history: str = "time_estimate", tasks: Sequence[str] = (),
                 estimators: Sequence[str] = (), per_task: bool = False,
                 progress: Callable[[str], None] | None = None, compare: str | None = None,
                 against: Sequence[str] = ()) -> dict[str, Any]:
    """Read ``results``, write the report under ``out``; returns ``markdown`` and ``html`` (the paths),
    ``notes`` (what the output folder kept aside) and ``warnings`` (files left out). ``tidy``: also write the
    whole tidy table there (.csv or .parquet). One process. Raises :class:`NoResultsError` (nothing to report)
    and :class:`OutputError` (the output folder cannot take the report; the previous one is left as it was).
    ``compare``: a spec to compare against ``against`` (default: its baselines) in a Comparison section."""
    import warnings as py_warnings

    import matplotlib.pyplot as plt

    from estibench import schema

    from .compare import check
    from .load import load_results, write_tidy
    from .render import compose
    from .select import refuse_unknown
    from .write import save_report

    say = progress or (lambda msg: None)
    loaded = load_results(results, None if tidy is not None else needs(), say)
    frame = loaded.frame  # values that match nothing are refused (issue 21, item 9)
    try:
        for flag, names, column in [("--history", [history] if schema.lookup(history) is None else [], "measure"),
                                    ("--tasks", tasks, "task"), ("--estimators", estimators, "estimator")]:
            refuse_unknown(flag, names, sorted(frame[column].dropna().astype(str).unique()) if column in frame else [],
                           column)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        if compare or against:
            check(frame, compare or "", against)
    except ValueError as exc:
        raise UsageError(f"--compare: {exc}" if compare else "--against needs --compare SPEC") from None
    if tidy is not None:
        write_tidy(frame, tidy)
        say(f"wrote tidy table {tidy} ({len(frame)} rows)")
    options = {"history_measure": history, "only_tasks": tuple(tasks), "only_estimators": tuple(estimators),
               "per_task": per_task, "compare": compare, "against": tuple(against)}
    with py_warnings.catch_warnings(action="ignore"):  # matplotlib/seaborn chatter is not the user's problem
        report = compose(loaded, say, str(results), options)
        try:
            paths = save_report(report, Path(out), formats, say)
        finally:
            for figure in report.figures:
                plt.close(figure.fig)
    return {"markdown": paths["markdown"], "html": paths["html"], "notes": paths["notes"],
            "warnings": list(loaded.warnings) + paths["skipped"]}
