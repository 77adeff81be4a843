"""estibench reports: asv results -> tidy DataFrame -> seaborn figures -> report.md/.html.

>>> from reports import load_results
>>> frame = load_results(".asv/results").frame       # doctest: +SKIP

Command line: ``estibench report`` and ``estibench list`` (see :mod:`reports.cli`).
"""
from .load import Loaded, NoResultsError, load_results, read_tidy, write_tidy

__all__ = ["Loaded", "NoResultsError", "load_results", "read_tidy", "write_tidy"]
