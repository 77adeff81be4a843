"""asv benchmarks: the cost of ``estibench report`` as the results' history grows (issue 14).

``setup_cache`` writes a synthetic history (:mod:`reports.synthetic`: one realistic results file
copied under N commits, distinct hashes and dates) into asv's cache folder; the benchmarks run
the whole report on it in the benchmark's process, as ``estibench report --results DIR --out
DIR -q`` does (tables, figures, report.md and report.html).

* ``ReportHistory.time_report``: wall time of one report (seconds).
* ``ReportHistory.track_peakmem``: peak memory during it (bytes), worker processes included:
  the peak of their summed resident memory, sampled every 20 ms (asv's own ``peakmem_`` sees
  only the benchmark process).

Settings (environment): ``ESTIBENCH_HISTORY_COMMITS`` (commits, comma-separated; default 20,
which keeps the default ``asv run`` short; the issue's target is measured with ``50,500``),
``ESTIBENCH_HISTORY_JOBS`` (``estibench report --jobs``, comma-separated; default ``auto``: the
usable cores, at most 4; ``1,auto`` compares one process with the workers side by side) and
``ESTIBENCH_HISTORY_GRID`` (``small``, the default: 30 gradient cells, so that the default
``asv run`` spends seconds here, not the minute that drawing the figures of a full grid takes;
``today``: today's default grid, 860 gradient cells, what issue 14's target is measured on;
``large``: 5,184 gradient cells x 17 measures). Measured on this 2-core machine, ``today``, 500
commits, side by side: 44-61 s and 1.5-1.7 GB with two processes (reading 12 s, figures
26 s), 77-89 s and 1.2-1.4 GB with one, in the same minutes (before the workers and the column-wise kept
rows: 76-99 s and 1.35 GB; before reading only what the report shows: 245 s and 3.95 GB at 50
commits).

Nothing but the standard library is imported at module import (asv's forkserver parent imports
every benchmark module).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

COMMITS = [int(c) for c in os.environ.get("ESTIBENCH_HISTORY_COMMITS", "20").split(",")
           if c.strip()]
JOBS = [j.strip() for j in os.environ.get("ESTIBENCH_HISTORY_JOBS", "auto").split(",")
        if j.strip()]
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

    param_names = ["commits", "jobs"]
    params = [COMMITS, JOBS]
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

    def _report(self, cache, commits, jobs):
        from estibench.cli import main

        args = [] if jobs == "auto" else ["--jobs", jobs]
        with tempfile.TemporaryDirectory() as out:
            code = main(["report", "--results", cache[commits], "--out", out, "-q", *args])
        if code != 0:
            raise RuntimeError(f"estibench report exited with {code}")

    def time_report(self, cache, commits, jobs):
        self._report(cache, commits, jobs)

    def track_peakmem(self, cache, commits, jobs):
        with _TreeMemory() as memory:
            self._report(cache, commits, jobs)
        return memory.peak

    track_peakmem.unit = "bytes"


class _TreeMemory:
    """The peak of the summed resident memory of this process and its descendants, sampled
    every 20 ms from /proc (Linux; NaN elsewhere). Not ``ru_maxrss`` of the children: a spawned
    worker's counts the parent's pages it shared between fork and exec."""

    def __init__(self):
        self.peak = float("nan")

    def __enter__(self):
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        if Path("/proc/self/status").exists():
            self.peak = 0.0
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _sample(self):
        while True:
            self.peak = max(self.peak, float(sum(_rss(p) for p in _tree(os.getpid()))))
            if self._stop.wait(0.02):
                return


def _tree(pid: int) -> list[int]:
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            for child in text.split():
                out += _tree(int(child))
    except OSError:  # the process ended meanwhile
        pass
    return out


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return 1024 * int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0
