"""estibench reports: asv results -> tidy frame -> tables and seaborn figures -> report.md/.html.

Modules: :mod:`~reports.load` (asv JSON -> one tidy frame; ``_se`` tracks become confidence
intervals), :mod:`~reports.measures` (what each measure means and which way is better),
:mod:`~reports.tables` (best estimator/method per task and measure, alignment summaries),
:mod:`~reports.figures` and :mod:`~reports.style` (one look, one colour per name),
:mod:`~reports.render` (report.md, self-contained report.html), :mod:`~reports.cli`.

>>> from reports import load_results
>>> frame = load_results(".asv/results").frame       # doctest: +SKIP

Command line: ``estibench report`` and ``estibench list`` (or ``python -m reports``).
"""
from .load import Loaded, NoResultsError, load_results, read_tidy, write_tidy

__all__ = ["Loaded", "NoResultsError", "load_results", "read_tidy", "write_tidy"]
