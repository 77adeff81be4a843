"""Helpers the asv benchmark modules (``suite/benchmarks/``) share. Kept outside the benchmark
directory: every file asv discovers there defines benchmarks, and this one defines none.

Nothing here runs torch work at import (asv's forkserver forks from a parent that imported every
benchmark module).
"""
from __future__ import annotations

import hashlib
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from estibench.settings import Settings, current

__all__ = ["Timed", "short_error", "set_threads", "class_prefix", "make_track",
           "spill", "unspill", "code_key", "disk_cached", "CACHE_DIR"]

#: where :func:`disk_cached` keeps setup work (git-ignored, next to asv's results)
CACHE_DIR = Path(__file__).resolve().parents[1] / ".asv" / "setup-cache"

class Timed:
    """Base of the timed benchmark classes: one round of up to 10 samples after a short warm-up
    (asv's defaults cost ~2.5 times as much for the same ~6 % interval; no warm-up at all gives
    a cold first call)."""

    rounds = 1
    repeat = 10
    warmup_time = 0.05


def short_error(exc: BaseException) -> str:
    """``"TypeError: message"``: what a failed cell records."""
    return f"{type(exc).__name__}: {exc}"


def set_threads(settings: Settings | None = None) -> None:
    """torch's intra-op threads from the settings (``OMP_NUM_THREADS``, 1 by default): one
    thread is what makes timings repeatable on a small machine."""
    import torch
    torch.set_num_threads((settings or current()).threads)


def class_prefix(name: str) -> str:
    """A registered name as a benchmark class prefix: ``multilabel_digits`` ->
    ``MultilabelDigits``."""
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))


def make_track(key: str, unit: str, read):
    """An asv ``track_<key>`` method returning ``read(self, key, *args)``, with its unit."""
    def track(self, *args):
        return read(self, key, *args)
    track.unit = unit
    track.__name__ = f"track_{key}"
    return track


# -- what each asv cell's process loads ---------------------------------------------------------
def _entry_file(directory: str, key) -> str:
    return os.path.join(directory, hashlib.sha1(repr(key).encode()).hexdigest()[:24] + ".pkl")


def spill(entries: dict, name: str) -> str:
    """Write each value of ``entries`` to its own small pickle under ``./<name>`` and return that
    directory's absolute path, for a ``setup_cache`` to return instead of the whole dict.

    asv unpickles a ``setup_cache`` result in every cell's process (one process per cell): a
    gradient grid of ~900 cells unpickled in each of ~5,000 processes cost ~5 ms each. A
    ``setup_cache`` runs in asv's cache directory, which the cells share as their working
    directory and asv removes after the run."""
    directory = os.path.abspath(name)
    os.makedirs(directory, exist_ok=True)
    for key, value in entries.items():
        with open(_entry_file(directory, key), "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return directory


def unspill(directory: str, key, default=None):
    """The value :func:`spill` wrote for ``key`` (``default`` when there is none)."""
    try:
        with open(_entry_file(directory, key), "rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError:
        return default


# -- setup work cached on disk, keyed by what changes its results ---------------------------------
def _sources() -> list[Path]:
    """The Python sources whose code decides the setup work: the ``estimators`` and ``suite``
    packages, the results schema and settings (``estibench/schema.py``, ``settings.py``) and
    every module of every plugin package that registers an estimator, loss, metric, task or
    training task (:func:`suite.versions.plugin_sources`)."""
    import estimators

    from .versions import ROOT, plugin_sources

    roots = [Path(estimators.__file__).parent, Path(__file__).parent]
    files = {p for root in roots for p in root.rglob("*.py")}
    files.update(ROOT / "estibench" / name for name in ("schema.py", "settings.py"))
    files.update(plugin_sources())
    return sorted(p.resolve() for p in files if p.exists())


def code_key(name: str, settings_key: tuple = ()) -> str:
    """A digest of what ``name``'s setup work depends on and nothing else: the settings its
    results depend on (``settings_key``: :meth:`Settings.key` of its computation), the code
    (:func:`_sources`), Python's version and those of the libraries that compute results
    (:data:`suite.versions.LIBRARIES`), and the machine. Report-only settings (``jobs``) and
    the narrowing of other computations (``training_tasks`` for the gradient grid) are not in
    it, so changing them reuses the cache."""
    import platform

    from .versions import library_versions, machine_id

    digest = hashlib.sha256(name.encode())
    for path in _sources():
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    digest.update(repr((tuple(settings_key), sys.version, library_versions(), platform.node(),
                        platform.machine(), os.cpu_count(), machine_id())).encode())
    return digest.hexdigest()[:20]


def _folder(settings: Settings) -> Path | None:
    """Where the cache lives (None: off), from the ``setup_cache`` setting."""
    value = settings.setup_cache.strip()
    if value.lower() in ("off", "0", "no"):
        return None
    return CACHE_DIR if value.lower() in ("on", "1", "yes", "") else Path(value)


def disk_cached(name: str, compute: Callable[[], Any], *, computation: str,
                keep: Callable[[Any], bool] = lambda value: True,
                settings: Settings | None = None) -> Any:
    """``compute()``, or what it returned last time on the same code, settings of
    ``computation`` (:meth:`Settings.key`: ``gradient-grid``, ``training``, ...) and machine
    (:func:`code_key`), from :data:`CACHE_DIR`. ``setup_cache`` ``off`` recomputes (and stores
    nothing), a folder keeps the cache there; a value ``keep`` refuses (one holding failures,
    which may not recur) is not stored; older entries of ``name`` are removed when a new one is
    written.

    What is reused is deterministic for given code and seed, but for the timings measured
    along with it (seconds per estimate, training seconds): those are the earlier run's, on
    the same code and machine. asv's own ``time_*`` benchmarks are measured afresh."""
    settings = settings or current()
    folder = _folder(settings)
    if folder is None:
        return compute()
    path = folder / f"{name}-{code_key(name, settings.key(computation))}.pkl"
    try:
        with open(path, "rb") as fh:
            value = pickle.load(fh)
        print(f"estibench: reusing {name} from {path}", file=sys.stderr)
        return value
    except (FileNotFoundError, EOFError, pickle.UnpicklingError):
        pass
    value = compute()
    if not keep(value):
        return value
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{name}-*.pkl"):
        old.unlink(missing_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    with open(partial, "wb") as fh:
        pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, path)
    return value
