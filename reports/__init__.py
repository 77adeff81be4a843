"""estibench reports: results (asv's JSON and the run files) -> tidy frame (:mod:`~reports.load`) -> tables
(:mod:`~reports.tables`, :mod:`~reports.claims`) and figures (:mod:`~reports.figures`, :mod:`~reports.landscape`,
drawn by :mod:`~reports.layout` in :mod:`~reports.style`) -> the report's blocks (:mod:`~reports.render`) ->
report.md, a self-contained report.html, figures/ and tables/ (:mod:`~reports.write`). Measures, units and
verdicts are :mod:`estibench.schema`'s; display names the results' own.

>>> from reports import build_report
>>> build_report(".asv/results", "report")           # doctest: +SKIP"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_report", "load_results", "needs", "Loaded", "NoResultsError", "OutputError",
           "UsageError", "read_tidy", "write_tidy"]


class UsageError(ValueError):
    """An option names what the results do not hold (a measure, a task, an estimator)."""


def _check_names(frame, history: str, tasks: Sequence[str], estimators: Sequence[str]) -> None:
    """Refuse ``--history``, ``--tasks``, ``--estimators`` values that match nothing in the results,
    naming them, the closest match and what is available (issue 21, item 9)."""
    import difflib

    from estibench import schema

    wanted = [("--history", [history] if schema.lookup(history) is None else [], "measure")]
    wanted += [("--tasks", tasks, "task"), ("--estimators", estimators, "estimator")]
    for flag, names, column in wanted:
        present = sorted(frame[column].dropna().astype(str).unique()) if column in frame else []
        for name in (n for n in names if n not in present):
            close = difflib.get_close_matches(name, present, n=1, cutoff=0.5)
            raise UsageError(f"{flag} {name!r}: no {column} of that name in the results"
                             + (f" (did you mean {close[0]!r}?)" if close else "")
                             + f"; available: {', '.join(present[:40]) or 'none'}"
                             + (", ..." if len(present) > 40 else ""))


def __getattr__(name: str):
    # Lazy: importing the package costs nothing until a reader or writer is used.
    if name in ("Loaded", "NoResultsError", "read_tidy", "write_tidy", "OutputError"):
        from . import load, outdir

        return getattr(outdir if name == "OutputError" else load, name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")


def needs() -> tuple[str, ...]:
    """The label columns the tables and figures declare they read (beyond the identity)."""
    from . import claims, figures, landscape, tables, versions

    return tuple(dict.fromkeys(figures.NEEDS + tables.NEEDS + claims.NEEDS + landscape.NEEDS + versions.NEEDS))


def load_results(results: Any, columns: Sequence[str] | None = None, progress: Callable[[str], None] | None = None):
    """The tidy frame of every result under ``results`` (:class:`reports.load.Loaded`: frame,
    param_columns, machines, files, warnings); ``columns``: the label columns to read (None:
    every column, as ``--tidy`` writes them)."""
    from .load import load_results as load

    return load(results, columns, progress)


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

    from .load import write_tidy
    from .write import write_report

    say = progress or (lambda msg: None)
    loaded = load_results(results, None if tidy is not None else needs(), say)
    _check_names(loaded.frame, history, tasks, estimators)
    if compare or against:
        from .compare import check

        try:
            check(loaded.frame, compare or "", against)
        except ValueError as exc:
            raise UsageError(f"--compare: {exc}" if compare else "--against needs --compare SPEC") from None
    if tidy is not None:
        write_tidy(loaded.frame, tidy)
        say(f"wrote tidy table {tidy} ({len(loaded.frame)} rows)")
    options = {"history_measure": history, "only_tasks": tuple(tasks),
               "only_estimators": tuple(estimators), "per_task": per_task, "compare": compare,
               "against": tuple(against)}
    with py_warnings.catch_warnings():
        py_warnings.simplefilter("ignore")  # matplotlib/seaborn chatter is not the user's problem
        paths = write_report(loaded, Path(out), formats, progress=say, source=str(results), figure_options=options)
    return {"markdown": paths["markdown"], "html": paths["html"], "notes": paths["notes"],
            "warnings": list(loaded.warnings) + paths["skipped"]}
