"""asv benchmarks: each gradient estimator's time per estimate as a multiple of the plain-torch
floor of its task (issue 14, item 1), measured interleaved in one process (:mod:`suite.floor`).

* ``Floor.track_floor_ratio`` (task, estimator, num_samples): median over interleaved pairs of
  (estimator seconds / floor seconds), one replicate plus backward, validation off, CPU. The floor
  is sampling + one batched f + the score-function surrogate + backward, in plain torch. An
  estimator that calls f m times per sample (REBAR/RELAX 3, MuProp K+1, IndeCateR D·C; see
  :func:`suite.floor.floor_multiple`, the same as ``track_evaluations / num_samples`` of
  ``bench_gradients``) has a floor of about m.
* ``FloorSeconds.track_floor_seconds`` (task, num_samples): the floor itself.

All ratios are computed once per asv run in ``setup_cache`` (so every ratio comes from one
process; reused from disk on the same code, settings and machine,
:func:`suite.benchutil.disk_cached`), narrowed by the ``tasks`` / ``estimators`` settings like
the gradient grid; K is the ``floor_num_samples`` setting or 16, 64. Everything measured (the
ratios, the seconds, the floor multiple, the pathwise ratios, failed and skipped cells) goes to
the run's ``floor`` run file (:func:`suite.results.floor_rows`). No torch work at import.
"""
from __future__ import annotations

import time

from estibench.schema import MEASURES
from suite import grid
from suite.floor import FLOOR_NUM_SAMPLES


def _specs() -> list[str]:
    seen: list[str] = []
    for _task_list, specs in grid.families(full=True).values():
        seen.extend(s for s in specs if s not in seen)
    return seen


class _FloorBase:
    timeout = 1800

    def setup_cache(self):
        from estibench.settings import current
        from suite import results
        from suite.benchutil import disk_cached
        from suite.floor import compute_floor_grid

        started, settings = time.time(), current()
        computed = disk_cached("floor-grid", lambda: compute_floor_grid(settings),
                               computation="floor", settings=settings)
        results.write(results.floor_rows(computed), "floor", started, settings)
        return computed

    setup_cache.timeout = 1800


class Floor(_FloorBase):
    param_names = ["task", "estimator", "num_samples"]
    params = [grid.task_names(full=True), _specs(), FLOOR_NUM_SAMPLES]

    def setup(self, cache, task, estimator, num_samples):
        cell = cache["cells"].get((task, estimator, num_samples, "cpu"))
        if cell is None or cell["status"] == "skipped":
            raise NotImplementedError(cell["error"] if cell else "not in the grid")
        self.cell = cell

    def track_floor_ratio(self, cache, task, estimator, num_samples):
        if self.cell["status"] == "failed":
            raise RuntimeError(f"{self.cell['error']}\n{self.cell.get('traceback', '')}")
        return float(self.cell["values"]["ratio"])

    track_floor_ratio.unit = MEASURES["floor_ratio"].unit


class FloorSeconds(_FloorBase):
    param_names = ["task", "num_samples"]
    params = [grid.task_names(full=True), FLOOR_NUM_SAMPLES]

    def setup(self, cache, task, num_samples):
        # in setup, where asv reads NotImplementedError as "skipped" (in a track_ it is a
        # failure): a task outside this run's grid has no floor
        if (task, num_samples, "cpu") not in cache["floors"]:
            raise NotImplementedError("no estimator measured on this task")

    def track_floor_seconds(self, cache, task, num_samples):
        seconds = cache["floors"][(task, num_samples, "cpu")]
        return float(seconds)

    track_floor_seconds.unit = "seconds"
