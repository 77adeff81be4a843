"""asv benchmarks: the cost of ``estibench report`` as the results' history grows (issues 14, 20).

``setup_cache`` writes a synthetic history (:mod:`suite.history`: one realistic run, as run files
and asv's timing JSON, copied under N commits with distinct hashes and dates) into asv's cache
folder; the benchmarks run the whole report on it in the benchmark's process, as ``estibench report
--results DIR --out DIR -q`` does (tables, figures, report.md and report.html).

* ``ReportHistory.time_report``: wall time of one report (seconds).
* ``ReportHistory.track_peakmem``: peak resident memory during it (bytes), sampled every 20 ms
  from /proc (this process and any it starts).

Settings (:func:`estibench.settings.current`): ``history_commits`` (``ESTIBENCH_HISTORY_COMMITS``,
comma-separated; default 20), ``history_grid`` (``ESTIBENCH_HISTORY_GRID``: ``small``, the default,
a few hundred rows a commit, so that the default ``asv run`` spends seconds here; ``today``: the size
of today's default grid, 860 gradient cells and six training tasks; ``large``: 5,184 gradient
cells). The report of one full default run is ``ESTIBENCH_HISTORY_GRID=today
ESTIBENCH_HISTORY_COMMITS=1`` (issue 20's target: at most 20 s on the 2-core development machine).
``history_jobs`` is not a parameter any more: the report runs in one process.

Nothing but the standard library is imported at module import (asv's forkserver parent imports
every benchmark module).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _settings():
    from estibench import settings

    return settings.current()


COMMITS = list(_settings().history_commits)


def _grid():
    from suite.history import GRIDS

    name = _settings().history_grid
    if name not in GRIDS:
        raise ValueError(f"ESTIBENCH_HISTORY_GRID={name!r}: choose from {', '.join(GRIDS)}")
    return GRIDS[name]


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
        from suite.history import write_history

        root = Path("history").resolve()  # asv's cache folder: removed after the run
        return {n: str(write_history(root / str(n), commits=n, grid=_grid())) for n in COMMITS}

    setup_cache.timeout = 3600

    def _report(self, cache, commits):
        from estibench.cli import main

        with tempfile.TemporaryDirectory() as out:
            code = main(["report", "--results", cache[commits], "--out", out, "-q"])
        if code != 0:
            raise RuntimeError(f"estibench report exited with {code}")

    def time_report(self, cache, commits):
        self._report(cache, commits)

    def track_peakmem(self, cache, commits):
        with _TreeMemory() as memory:
            self._report(cache, commits)
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
