"""estibench reports: asv results -> tidy frame -> tables and seaborn figures -> report.md/.html.

Modules: :mod:`~reports.load` (asv JSON -> one tidy frame; ``_se`` tracks become confidence
intervals), :mod:`~reports.measures` (THE table of measures: unit, label, which way is better;
standard library only, imported by the suite too),
:mod:`~reports.tables` (best estimator/method per task and measure, alignment summaries),
:mod:`~reports.figures` and :mod:`~reports.style` (one look, one colour per name),
:mod:`~reports.render` (report.md, self-contained report.html), :mod:`~reports.cli`.

>>> from reports import load_results
>>> frame = load_results(".asv/results").frame       # doctest: +SKIP

Command line: ``estibench report`` and ``estibench list`` (or ``python -m reports``).
"""
__all__ = ["Loaded", "NoResultsError", "load_results", "read_tidy", "write_tidy"]


def __getattr__(name: str):
    # Lazy: ``import reports.measures`` (the table of measures, standard library only) must not
    # import pandas through reports.load.
    if name in __all__:
        from . import load

        return getattr(load, name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
