"""asv benchmarks: the cost of ``estibench report`` as the results' history grows (issue 14).

``setup_cache`` writes a synthetic history (:mod:`reports.synthetic`: one realistic results file
copied under N commits, distinct hashes and dates) into asv's cache folder; the benchmarks run
the whole report on it in the benchmark's process, as ``estibench report --results DIR --out
DIR -q`` does (tables, figures, report.md and report.html).

* ``ReportHistory.time_report``: wall time of one report (seconds).
* ``ReportHistory.peakmem_report``: the process's peak memory during it (bytes).

Settings (environment): ``ESTIBENCH_HISTORY_COMMITS`` (commits, comma-separated; default 20,
which keeps the default ``asv run`` short; the issue's target is measured with ``50,500``) and
``ESTIBENCH_HISTORY_GRID`` (``small``, the default: 30 gradient cells, so that the default
``asv run`` spends seconds here, not the minute that drawing the figures of a full grid takes;
``today``: today's default grid, 860 gradient cells, what issue 14's target is measured on;
``large``: 5,184 gradient cells x 17 measures). Measured on this 2-core machine (load ~2):
``today`` 500 commits 82-99 s and 1.35 GB peak (reading 25-38 s, the figures ~55 s whatever the
history), 50 commits 55-70 s and 0.88 GB (before: 245 s and 3.95 GB).

Nothing but the standard library is imported at module import (asv's forkserver parent imports
every benchmark module).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

COMMITS = [int(c) for c in os.environ.get("ESTIBENCH_HISTORY_COMMITS", "20").split(",")
           if c.strip()]
GRID = os.environ.get("ESTIBENCH_HISTORY_GRID", "small")


def _grid():
    from reports import synthetic

    grids = {"small": synthetic.SMALL_GRID, "today": synthetic.TODAY_GRID,
             "large": synthetic.DEFAULT_GRID}
    if GRID not in grids:
        raise ValueError(f"ESTIBENCH_HISTORY_GRID={GRID!r}: choose from {', '.join(grids)}")
    return grids[GRID]


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
