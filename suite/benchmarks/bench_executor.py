"""asv benchmarks of the setup work's executor (:mod:`suite.executor`, Dask distributed; issue
22): what it costs per unit of work, and how the work speeds up with workers.

* ``ExecutorOverhead.track_overhead_per_unit``: seconds per no-op unit through a running local
  cluster of 2 single-threaded worker processes (200 units after a warm-up): the price of one
  unit, which the suite's units (0.1-20 s: a task's block of gradient cells, one training run)
  keep under 5 % of the work.
* ``ExecutorSpeedup.track_speedup`` (workers: 1, 2, 4): the same 8 units of pure CPU work
  (~0.25 s each) in this process vs on a local cluster of that many worker processes on
  127.0.0.1, each started beforehand: serial seconds / parallel seconds. Its shape is what to
  read (~1 on 1 worker, up to the usable cores, flat beyond them), not the absolute values.

Everything is measured once per asv run in ``setup_cache`` (~20 s, most of it starting the three
clusters); nothing happens at import.
"""
from __future__ import annotations

WORKERS = [1, 2, 4]


class _Executor:
    timeout = 300

    def setup_cache(self):
        from suite.executor import measure

        return measure(workers=tuple(WORKERS))

    setup_cache.timeout = 300


class ExecutorOverhead(_Executor):
    def track_overhead_per_unit(self, cache):
        return float(cache["overhead_per_unit"])

    track_overhead_per_unit.unit = "seconds"


class ExecutorSpeedup(_Executor):
    params = [WORKERS]
    param_names = ["workers"]

    def track_speedup(self, cache, workers):
        return float(cache["speedup"][workers])

    track_speedup.unit = "ratio"
