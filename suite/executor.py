"""The setup work as tasks on Dask distributed (issue 22): a local cluster with one
single-threaded worker process per usable core by default, a running scheduler when
``Settings.scheduler`` names one (a cluster users start themselves: ``dask-jobqueue`` on
SLURM/PBS, ``dask-kubernetes``, or ``dask scheduler`` / ``dask worker`` by hand), or, with one
worker, this process itself (the debugging path: no Dask at all).

:func:`run_units` maps a function over *units*: ``(key, argument)`` pairs, each an independent
piece of work with a stable identity (a gradient task's block of cells, one training run of a
method and seed, a landscape experiment). What makes the results independent of the number of
workers and of the order units finish in is the units' own business: each derives its seed from
its identity and never from a generator shared with another unit (the suite's units seed
``torch`` at their start). Outcomes come back keyed by unit, so the caller assembles them in its
own order.

A unit that raises, a worker that dies under it, or a unit that runs past
``Settings.unit_timeout`` gives a :class:`Failed` outcome with the error (the worker of a timed-out
unit is restarted: a Python thread cannot be stopped); the other units complete. Dask retries
a unit whose worker died once (``allowed-failures = 1``) before calling it failed.

Timings: each worker is one process with one thread (``OMP_NUM_THREADS=1``) and there are at most
as many local workers as usable cores, so no two units share a core (the timings measured inside
units, seconds per estimate and training seconds, are each taken on a core of their own). The
floor ratios (:mod:`suite.floor`) run as units too, one task per unit, each on its own core and
interleaved in one process. asv's timed benchmarks (``time_*``) stay serial, outside this
executor: asv runs them after the setup work's ``setup_cache``, each of which closes its
cluster before it returns, so no timed measurement shares a core with a unit. CUDA cells of the
gradient grid run after its parallel phase, in the calling process, one at a time
(:func:`suite.grid.compute_grid`).

A script of yours that runs the setup work on more than one local worker must guard its entry
point (``if __name__ == "__main__":``): the local cluster spawns its worker processes, and a
spawned process imports the script's main module (``estibench``, asv and pytest are guarded).

The suite's units (:mod:`suite.grid`): one per gradient task (building it), one per (task,
estimator) block of gradient cells, one per (training task, method, seed) run, one per landscape
experiment (:func:`suite.landscape.run_experiment`), one per floor task. Measured here: 3.5 ms
of executor overhead per unit (``bench_executor.ExecutorOverhead``) against units of 0.1-45 s.
"""
from __future__ import annotations

import hashlib
import os
import signal
import time
import traceback
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from estibench.settings import Settings

__all__ = ["Failed", "Pool", "run_units", "unit_seed", "seed_unit", "short_error"]


@dataclass(frozen=True)
class Failed:
    """The outcome of a unit that did not complete: its error, in one line, and a traceback."""

    error: str
    traceback: str = ""


def short_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _call(fn: Callable[[Any], Any], argument: Any) -> Any:
    """Run one unit; an exception becomes a :class:`Failed` outcome (so that Dask never retries
    a unit that raised: it would raise again)."""
    try:
        return fn(argument)
    except Exception as exc:  # noqa: BLE001 - a failing unit fails its own cells
        return Failed(short_error(exc), traceback.format_exc(limit=6))


class Pool:
    """Several batches of units on one cluster (started on the first batch, closed by
    :meth:`close`): a computation whose second phase needs the first one's outcomes (the
    gradient grid builds its tasks, then measures their cells) pays for one cluster."""

    def __init__(self, settings: Settings, size_hint: int | None = None,
                 in_process: bool | None = None):
        self.settings = settings
        self.in_process = (settings.worker_count() == 1 and not settings.scheduler
                           if in_process is None else in_process)
        self.size_hint = size_hint
        self._client = self._cluster = None

    def run(self, fn: Callable[[Any], Any], units: Sequence[tuple[Hashable, Any]],
            on_done: Callable[[Hashable, Any], None] | None = None) -> dict[Hashable, Any]:
        """``{key: fn(argument) or Failed}`` for every unit; ``on_done(key, outcome)`` as each
        completes."""
        keys = [key for key, _ in units]
        if len(set(keys)) != len(keys):
            raise ValueError("run_units: unit keys must be unique")
        done = on_done or (lambda key, outcome: None)
        if not units:
            return {}
        if self.in_process:
            out = {}
            for key, argument in units:
                out[key] = _call(fn, argument)
                done(key, out[key])
            return out
        if self._client is None:
            self._client, self._cluster = _client(self.settings, self.size_hint or len(units))
        futures = {self._client.submit(_call, fn, argument, pure=False): key
                   for key, argument in units}
        try:
            return _collect(self._client, futures, self.settings.unit_timeout, done,
                            local=self._cluster is not None)
        finally:
            self._client.cancel(list(futures))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_units(fn: Callable[[Any], Any], units: Sequence[tuple[Hashable, Any]],
              settings: Settings, on_done: Callable[[Hashable, Any], None] | None = None
              ) -> dict[Hashable, Any]:
    """``{key: fn(argument) or Failed}`` for every unit (see the module's notes); ``on_done``
    is called as each unit completes (progress)."""
    with Pool(settings, size_hint=len(units)) as pool:
        return pool.run(fn, units, on_done)


def unit_seed(*identity: Any) -> int:
    """A seed (0 <= seed < 2**31) that depends on ``identity`` (plain values: names, numbers)
    and nothing else: the same in every process and on every run."""
    digest = hashlib.sha256(repr(identity).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def seed_unit(*identity: Any) -> None:
    """Seed the global generators a unit might draw from (torch, numpy, random) from its own
    identity, so that nothing a previous unit in the same process did reaches it."""
    import random

    import numpy as np
    import torch

    seed = unit_seed(*identity)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _client(settings: Settings, n_units: int):
    import dask
    from distributed import Client, LocalCluster

    dask.config.set({"distributed.scheduler.allowed-failures": 1,
                     "distributed.scheduler.worker-saturation": 1.0,
                     "distributed.worker.daemon": False,
                     "distributed.logging.distributed": "error",
                     # the workers' statistical profiler and 20 ms event-loop tick take the GIL
                     # from the unit (small torch ops are GIL-bound): measured 2.3 s for a block
                     # in-process, 4.5 s on a default worker, 2.9 s with these
                     "distributed.worker.profile.enabled": False,
                     "distributed.admin.tick.interval": "1s",
                     "distributed.admin.system-monitor.interval": "2s",
                     # Dask's default MALLOC_TRIM_THRESHOLD_=65536 makes glibc return every
                     # freed torch buffer to the kernel and fault it back in: measured 2x slower
                     # units (torch MLP training, float64 temporaries: 10.4 s vs 5.4 s per unit on
                     # a worker with it vs without it, 4.5-4.9 s in-process). None unsets it.
                     "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    if settings.scheduler:
        return Client(settings.scheduler, timeout="30s"), None
    n = max(1, min(settings.worker_count(), n_units))
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address=None, host="127.0.0.1", silence_logs=50,
                           env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    return Client(cluster), cluster


def _collect(client, futures: dict, timeout: float, done, poll: float = 0.05,
             local: bool = False) -> dict:
    """Gather outcomes as they complete; cancel units running past ``timeout`` seconds (their
    worker restarted) and mark workers' deaths as failures."""
    from distributed import as_completed

    out: dict[Hashable, Any] = {}
    by_key = {f.key: f for f in futures}
    started: dict[Any, float] = {}
    finished = as_completed(list(futures), with_results=False)
    last_check = time.monotonic()
    while len(out) < len(futures):
        for future in finished.next_batch(block=False) if finished.has_ready() else ():
            key = futures[future]
            if key not in out:  # not already failed by its time limit
                out[key] = _outcome(future)
                done(key, out[key])
        now = time.monotonic()
        if now - last_check >= 1.0:
            last_check = now
            for key, worker, pid in _overdue(client, by_key, started, now, timeout):
                if key in futures and futures[key] not in out:
                    out[futures[key]] = Failed(f"TimeoutError: the unit ran past {timeout:g} s "
                                               f"and was cancelled")
                    done(futures[key], out[futures[key]])
                    _cancel(client, key, worker, pid, local)
        if len(out) < len(futures) and not finished.has_ready():
            time.sleep(poll)
    return out


def _overdue(client, by_key: dict, started: dict, now: float, timeout: float) -> list:
    """(future, worker address, worker pid) of every unit that has been executing on the same
    worker for more than ``timeout`` s. The workers are asked with a 2 s limit: a worker that
    is restarting does not answer, and waiting on it would hold every other unit's clock."""
    try:
        executing = client.sync(client._run, _executing, on_error="return",
                                callback_timeout=2.0)
    except Exception:  # noqa: BLE001 - a worker going away: look again next time
        return []
    late = []
    for worker, answer in executing.items():
        if not isinstance(answer, tuple):  # the worker failed to answer
            continue
        pid, keys = answer
        for task_key in keys:
            since = started.setdefault((task_key, worker), now)
            if now - since > timeout and task_key in by_key:
                late.append((by_key[task_key], worker, pid))
    return late


def _cancel(client, future, worker: str, pid: int | None, local: bool) -> None:
    """Cancel an overdue unit; a Python thread cannot be stopped, so its worker goes too: on
    our own local cluster the process is killed (its nanny starts a fresh one), on a cluster
    of someone else's the scheduler is asked to restart it."""
    client.cancel(future)
    try:
        if local and pid:
            os.kill(pid, signal.SIGKILL)
        else:
            client.restart_workers([worker], raise_for_error=False)
    except Exception:  # noqa: BLE001 - already gone or restarting
        pass


def _executing(dask_worker) -> tuple[int, list]:
    """A worker's pid and the keys it is running now (not those queued on it)."""
    return os.getpid(), [ts.key for ts in dask_worker.state.executing]


def _outcome(future) -> Any:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - KilledWorker, CancelledError: the unit failed
        return Failed(f"worker lost: {short_error(exc)}")


# -- the executor's own benchmark (suite/benchmarks/bench_executor.py) ---------------------------
def spin(iterations: int) -> int:
    """A unit of pure CPU work (a Python loop; no sleeping, so it cannot overlap on one core),
    importable by every worker."""
    total = 0
    for i in range(int(iterations)):
        total = (total + i * i) % 1_000_003
    return total


def noop(argument: Any) -> Any:
    """A unit that does nothing: what it costs is the executor's overhead."""
    return argument


def measure(workers: tuple[int, ...] = (1, 2, 4), units: int = 8, unit_seconds: float = 0.25,
            tiny_units: int = 200) -> dict[str, Any]:
    """The executor's numbers on a local cluster of worker processes on 127.0.0.1:

    * ``overhead_per_unit``: seconds per no-op unit, ``tiny_units`` of them through a running
      2-worker cluster (a warm-up batch first: the cluster's start is not in it);
    * ``serial``: the seconds of ``units`` units of :func:`spin` (each ~``unit_seconds``) in
      this process; ``speedup[n]``: ``serial`` / their seconds on ``n`` workers (cluster
      started beforehand), the shape of the curve that matters (on 2 cores, 4 workers cannot
      beat 2)."""
    iterations = _calibrate(unit_seconds)
    work = [(i, iterations) for i in range(units)]
    start = time.perf_counter()
    for _, n in work:
        spin(n)
    serial = time.perf_counter() - start
    out: dict[str, Any] = {"serial": serial, "speedup": {}, "seconds": {}, "units": units,
                           "unit_seconds": serial / units}
    for n in workers:
        with Pool(Settings(workers=n), size_hint=n, in_process=False) as pool:
            pool.run(noop, [(i, i) for i in range(n)])  # start the cluster and its workers
            start = time.perf_counter()
            pool.run(spin, work)
            out["seconds"][n] = time.perf_counter() - start
            out["speedup"][n] = serial / out["seconds"][n]
            if n == 2:
                pool.run(noop, [(i, i) for i in range(20)])
                start = time.perf_counter()
                pool.run(noop, [(i, i) for i in range(tiny_units)])
                out["overhead_per_unit"] = (time.perf_counter() - start) / tiny_units
    return out


def _calibrate(seconds: float) -> int:
    """Iterations of :func:`spin` that take about ``seconds`` here."""
    n = 20_000
    while True:
        start = time.perf_counter()
        spin(n)
        took = time.perf_counter() - start
        if took > 0.05:
            return max(1, int(n * seconds / took))
        n *= 4
