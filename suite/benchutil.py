"""Helpers the asv benchmark modules (``suite/benchmarks/``) share. Kept outside the benchmark
directory: every file asv discovers there defines benchmarks, and this one defines none.

Nothing here runs torch work at import (asv's forkserver forks from a parent that imported every
benchmark module).
"""
from __future__ import annotations

import os

__all__ = ["Timed", "short_error", "env_list", "set_threads", "class_prefix", "make_track"]

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
