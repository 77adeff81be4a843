"""estibench reports: results (asv's JSON and the run files) -> tidy frame -> tables and seaborn
figures -> report.md and a self-contained report.html.

Modules: :mod:`~reports.load` (the one reader), :mod:`~reports.tables` and :mod:`~reports.claims`
(the tables), :mod:`~reports.figures`, :mod:`~reports.costfigs`, :mod:`~reports.trainfigs`,
:mod:`~reports.landscape` (the figures, drawn with :mod:`~reports.layout` in :mod:`~reports.style`),
:mod:`~reports.render` (the report's blocks), :mod:`~reports.write` (report.md, report.html,
figures/, tables/). The measures, units and verdicts are :mod:`estibench.schema`'s; display names
are the results' own (``estimator_name``, ``task_name``, ``method_name``).

>>> from reports import build_report
>>> build_report(".asv/results", "report")           # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_report", "load_results", "needs", "Loaded", "NoResultsError", "OutputError",
           "read_tidy", "write_tidy"]


def __getattr__(name: str):
    # Lazy: importing the package costs nothing until a reader or writer is used.
    if name in ("Loaded", "NoResultsError"):
        from . import load

        return getattr(load, name)
    if name == "OutputError":
        from .outdir import OutputError

        return OutputError
    if name in ("read_tidy", "write_tidy"):
        from . import tidy

        return getattr(tidy, name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")


def needs() -> tuple[str, ...]:
    """The label columns the tables and figures declare they read (beyond the identity)."""
    from . import claims, figures, landscape, tables

    return tuple(dict.fromkeys(figures.NEEDS + tables.NEEDS + claims.NEEDS + landscape.NEEDS))


def load_results(results: Any, columns: Sequence[str] | None = None,
                 progress: Callable[[str], None] | None = None):
    """The tidy frame of every result under ``results`` (:class:`reports.load.Loaded`: frame,
    param_columns, machines, files, warnings); ``columns``: the label columns to read (None:
    every column, as ``--tidy`` writes them)."""
    from .load import load_results as load

    return load(results, columns, progress)


def build_report(results: Any, out: Any, *, formats: Sequence[str] = ("png",),
                 tidy: Any = None, history: str = "time_estimate", tasks: Sequence[str] = (),
                 estimators: Sequence[str] = (), per_task: bool = False,
                 jobs: int | None = None,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Read ``results``, write the report under ``out``; returns ``markdown`` and ``html`` (the
    paths), ``notes`` (what the output folder kept aside) and ``warnings`` (files left out).
    ``tidy``: also write the whole tidy table there (.csv or .parquet). ``jobs`` is accepted
    and unused: the report runs in one process (fast enough over run files; see the report
    benchmark). Raises :class:`NoResultsError` (nothing to report) and :class:`OutputError`
    (the output folder cannot take the report; the previous one is left as it was)."""
    import warnings as py_warnings

    from .tidy import write_tidy
    from .write import write_report

    say = progress or (lambda msg: None)
    loaded = load_results(results, None if tidy is not None else needs(), say)
    if tidy is not None:
        write_tidy(loaded.frame, tidy)
        say(f"wrote tidy table {tidy} ({len(loaded.frame)} rows)")
    options = {"history_measure": history, "only_tasks": tuple(tasks),
               "only_estimators": tuple(estimators), "per_task": per_task}
    with py_warnings.catch_warnings():
        py_warnings.simplefilter("ignore")  # matplotlib/seaborn chatter is not the user's problem
        paths = write_report(loaded, Path(out), formats, progress=say, source=str(results),
                             figure_options=options)
    return {"markdown": paths["markdown"], "html": paths["html"], "notes": paths["notes"],
            "warnings": list(loaded.warnings)}
