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
from pathlib import Path

__all__ = ["Timed", "short_error", "env_list", "set_threads", "class_prefix", "make_track",
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


def env_list(name: str, default: list[str]) -> list[str]:
    """The comma-separated values of the environment variable ``name`` (blanks dropped), or
    ``default`` when it is unset or empty."""
    value = os.environ.get(name, "").strip()
    if not value:
        return list(default)
    return [v.strip() for v in value.split(",") if v.strip()]


def set_threads() -> None:
    """torch's intra-op threads from ``OMP_NUM_THREADS`` (1 by default): one thread is what
    makes timings repeatable on a small machine."""
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))


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


# -- setup work cached on disk, keyed by the code that produced it -------------------------------
def _sources() -> list[Path]:
    """The Python sources whose code decides the setup work: the ``estimators`` and ``suite``
    packages, ``reports/measures.py`` (units, measure names) and the module of every registered
    estimator, task and training task (plugins included)."""
    import estimators

    from .registries import TASKS, TRAINING_TASKS

    roots = [Path(estimators.__file__).parent, Path(__file__).parent]
    files = {p for root in roots for p in root.rglob("*.py")}
    files.add(Path(__file__).resolve().parents[1] / "reports" / "measures.py")
    for registry in (estimators.ESTIMATORS, TASKS, TRAINING_TASKS):
        for name in registry.available():
            module = sys.modules.get(getattr(registry.entry(name).factory, "__module__", ""))
            if getattr(module, "__file__", None):
                files.add(Path(module.__file__))
    return sorted(p.resolve() for p in files if p.exists())


def code_key(name: str) -> str:
    """A digest of the code (:func:`_sources`), the ``ESTIBENCH_*`` settings, the thread count,
    the Python and torch versions and the machine: what ``name``'s setup work depends on."""
    import platform

    import torch

    digest = hashlib.sha256(name.encode())
    for path in _sources():
        digest.update(str(path).encode())
        digest.update(path.read_bytes())
    settings = sorted((k, v) for k, v in os.environ.items()
                      if k.startswith("ESTIBENCH_") or k == "OMP_NUM_THREADS")
    digest.update(repr((settings, sys.version, torch.__version__, platform.node(),
                        platform.machine(), os.cpu_count())).encode())
    return digest.hexdigest()[:20]


def disk_cached(name: str, compute, keep=lambda value: True):
    """``compute()``, or what it returned last time on the same code, settings and machine
    (:func:`code_key`), from :data:`CACHE_DIR`. ``ESTIBENCH_SETUP_CACHE=off`` recomputes (and
    stores nothing), ``ESTIBENCH_SETUP_CACHE=/some/folder`` keeps the cache there; a value
    ``keep`` refuses (one holding failures, which may not recur) is not stored; older entries
    of ``name`` are removed when a new one is written.

    What is reused is deterministic for given code and seed, but for the timings measured
    along with it (seconds per estimate, training seconds): those are the earlier run's, on
    the same code and machine. asv's own ``time_*`` benchmarks are measured afresh."""
    setting = os.environ.get("ESTIBENCH_SETUP_CACHE", "on").strip()
    if setting.lower() in ("off", "0", "no"):
        return compute()
    folder = CACHE_DIR if setting.lower() in ("on", "1", "yes", "") else Path(setting)
    path = folder / f"{name}-{code_key(name)}.pkl"
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
