"""asv benchmarks: the cost of ``estibench report`` as the results' history grows (issue 14).

``setup_cache`` writes a synthetic history (:mod:`reports.synthetic`: one realistic results file
copied under N commits, distinct hashes and dates) into asv's cache folder; the benchmarks run
the whole report on it in the benchmark's process, as ``estibench report --results DIR --out
DIR -q`` does (tables, figures, report.md and report.html).

* ``ReportHistory.time_report``: wall time of one report (seconds).
* ``ReportHistory.peakmem_report``: the process's peak memory during it (bytes).

Settings (environment): ``ESTIBENCH_HISTORY_COMMITS`` (commits, comma-separated; default 20,
which keeps the default ``asv run`` short; the issue's target is measured with ``50,500``) and
``ESTIBENCH_HISTORY_GRID`` (``today``: today's default grid, 860 gradient cells, the default;
``large``: 5,184 gradient cells x 17 measures).

Nothing but the standard library is imported at module import (asv's forkserver parent imports
every benchmark module).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

COMMITS = [int(c) for c in os.environ.get("ESTIBENCH_HISTORY_COMMITS", "20").split(",")
           if c.strip()]
GRID = os.environ.get("ESTIBENCH_HISTORY_GRID", "today")


def _grid():
    from reports import synthetic

    return synthetic.DEFAULT_GRID if GRID == "large" else synthetic.TODAY_GRID


class ReportHistory:
    """The whole report of a generated history of ``commits`` commits."""

    param_names = ["commits"]
    params = [COMMITS]
    number = 1
    repeat = 1
    rounds = 1
    warmup_time = 0
    timeout = 1800

    def setup_cache(self):
        from reports.synthetic import write_history

        root = Path("history").resolve()  # asv's cache folder: removed after the run
        return {n: str(write_history(root / str(n), commits=n, grid=_grid())) for n in COMMITS}

    setup_cache.timeout = 3600

    def _report(self, cache, commits):
        from reports.cli import main

        with tempfile.TemporaryDirectory() as out:
            code = main(["report", "--results", cache[commits], "--out", out, "-q"])
        if code != 0:
            raise RuntimeError(f"estibench report exited with {code}")

    def time_report(self, cache, commits):
        self._report(cache, commits)

    def peakmem_report(self, cache, commits):
        self._report(cache, commits)
