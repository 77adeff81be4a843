"""Worker processes for the report's two long phases, on machines with more than one core.

* **Reading** (:func:`reports.scan.load_for_report`): the result files are cut into contiguous
  shares; the main process scans the first, each worker one of the others, and the scans are
  merged in file order into the scan one process makes (same rows, same order, same warnings).
* **Figures** (:func:`reports.write.write_report`): a figure is pickled to a worker as soon as
  it is built, while the main process builds the next; the worker encodes it (PNG, SVG, PDF)
  and returns the files' bytes, which are the bytes the main process would write. Figures are
  handed out only while a worker is free, so that the main process renders the rest itself.

``jobs`` counts processes, the main one included: ``jobs=1`` (or one core) runs everything in
the main process, as does a history too short to pay for starting a worker (about 1.5 s each).
Workers are started with ``spawn``: forking a process whose pandas or pyarrow already started
threads can deadlock; as with any spawned process, a script that makes :class:`Workers` itself
needs the ``if __name__ == "__main__":`` guard (the worker imports the script). A worker that
fails costs nothing but time: its share of files or its figure is done again in the main
process.

The number of processes: ``estibench report --jobs N``, else ``ESTIBENCH_JOBS``, else the cores
this process may run on, at most :data:`MAX_JOBS`.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

__all__ = ["Workers", "default_jobs", "parse_jobs", "JOBS_ENV", "MAX_JOBS", "MIN_FILES_PER_SHARE"]

JOBS_ENV = "ESTIBENCH_JOBS"
MAX_JOBS = 4  # each process holds its share's rows: more buys little on a report's scale
MIN_FILES_PER_SHARE = 8  # fewer files than this per process are read by the main process alone


def parse_jobs(text: str) -> int:
    """A count of processes (the main one included): a positive integer, else ValueError."""
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ValueError(f"expected a positive integer (processes, the main one included; 1 "
                         f"runs everything in one process), got {text!r}")
    return jobs


def default_jobs() -> int:
    """``ESTIBENCH_JOBS`` when set (a positive integer), else the usable cores, at most
    :data:`MAX_JOBS`."""
    text = os.environ.get(JOBS_ENV, "").strip()
    if text:
        try:
            return parse_jobs(text)
        except ValueError as exc:
            raise ValueError(f"{JOBS_ENV}={text!r}: {exc}") from None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_JOBS, cores))


def _ready() -> int:
    """Run first in each worker: imports what its tasks need while the main process reads."""
    from . import figures, scan  # noqa: F401 - imported for their cost

    return os.getpid()


class Workers:
    """``jobs - 1`` worker processes, started on first use; a context manager that stops them.

    >>> with Workers(2) as workers:                          # doctest: +SKIP
    ...     loaded = load_for_report(root, workers=workers)
    ...     write_report(loaded, out, workers=workers)
    """

    def __init__(self, jobs: int | None = None):
        self.jobs = default_jobs() if jobs is None else int(jobs)
        if self.jobs < 1:
            raise ValueError(f"jobs={jobs!r}: expected a positive integer (processes, the main "
                             f"one included)")
        self._pool: ProcessPoolExecutor | None = None
        self.broken = False  # a worker died: the rest is done in the main process
        self._pending: list[Future] = []  # figures handed out, not yet collected
        self.handed = 0  # tasks handed to workers

    @property
    def count(self) -> int:
        """Worker processes (the main one not counted); 0 once one has failed."""
        return 0 if self.broken else self.jobs - 1

    def start(self) -> None:
        """Start the workers now (they import their modules while the caller goes on)."""
        if self.count and self._pool is None:
            self._pool = ProcessPoolExecutor(self.count,
                                             mp_context=multiprocessing.get_context("spawn"))
            for _ in range(self.count):
                self._pool.submit(_ready)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future | None:
        """``fn(*args)`` in a worker; None when there is none (the caller does it itself)."""
        if not self.count:
            return None
        self.start()
        try:
            future = self._pool.submit(fn, *args)
        except Exception:  # noqa: BLE001 - a broken pool: the main process does the work
            self.broken = True
            return None
        self.handed += 1
        return future

    def result(self, future: Future | None) -> Any:
        """The worker's result, or None when it failed (the caller then does the work)."""
        if future is None:
            return None
        try:
            return future.result()
        except Exception:  # noqa: BLE001 - done again in the main process
            self.broken = self.broken or _pool_broken(future)
            return None

    # -- figures -----------------------------------------------------------------------------
    def free(self) -> bool:
        """Whether a worker would start a figure now (no more than one waiting per worker)."""
        self._pending = [f for f in self._pending if not f.done()]
        return len(self._pending) < 2 * self.count

    def render(self, fig: Any, formats: Sequence[str]) -> Future | None:
        """The encoded files of matplotlib figure ``fig`` from a worker (a future of
        ``{format: bytes}``), or None when no worker is free or the figure cannot be pickled."""
        if not self.count or not self.free():
            return None
        try:
            data = pickle.dumps(fig)
        except Exception:  # noqa: BLE001 - an unpicklable artist: the main process saves it
            return None
        future = self.submit(render_bytes, data, tuple(formats))
        if future is not None:
            self._pending.append(future)
        return future

    def restart(self) -> None:
        """Stop the workers and start fresh ones: a process that read files keeps their memory
        (Python rarely hands it back), a fresh one holds only its imports."""
        self.close()
        self.start()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _pool_broken(future: Future) -> bool:
    from concurrent.futures.process import BrokenProcessPool

    return isinstance(future.exception(), BrokenProcessPool)


def render_bytes(data: bytes, formats: Sequence[str]) -> dict[str, bytes]:
    """A pickled figure's files, encoded as :func:`reports.figures.save` encodes them."""
    import matplotlib.pyplot as plt

    from .figures import encode

    fig = pickle.loads(data)
    try:
        return {fmt: encode(fig, fmt) for fmt in formats}
    finally:
        plt.close(fig)
