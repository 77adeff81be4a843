"""Running asv for ``estibench run``: one writer per results folder, a child that dies with its
parent, interrupts that stop it cleanly, and exit codes that say what happened.

* **One writer at a time.** asv rewrites its result file of a (machine, commit) whole, so two
  runs at once would lose one's cells. ``estibench run`` holds an exclusive lock on
  ``<results>/.estibench-run.lock`` (``fcntl.flock``: released by the kernel when the holder
  dies, so a killed run never leaves a stale lock) for the whole asv run; a second run waits for
  it, saying so, or with ``wait=False`` refuses with a message naming the holder.
* **The child dies with the parent.** asv is started in its own process group with
  ``PR_SET_PDEATHSIG`` (Linux): SIGKILL of ``estibench run`` sends asv SIGTERM, so it does not go
  on to write results after its parent (and the lock) are gone.
* **Interrupts.** Ctrl-C stops asv's whole process group (its benchmark server included), waits
  for it, and exits 130 with one line, no traceback.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

__all__ = ["results_lock", "run_child", "LockBusy", "describe_exit"]

LOCK_NAME = ".estibench-run.lock"
_PR_SET_PDEATHSIG = 1


class LockBusy(RuntimeError):
    """Another run holds the results folder's lock (and we were told not to wait)."""


@contextmanager
def results_lock(folder: os.PathLike | str, wait: bool = True,
                 say: Callable[[str], None] = lambda msg: None):
    """Hold the exclusive lock of the results ``folder`` (see the module's notes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            if not wait:
                raise LockBusy(f"another estibench run ({holder}) is writing to {folder}; "
                               f"wait for it to finish, or use another results folder") from None
            say(f"another estibench run ({holder}) is writing to {folder}: waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        fh.flush()
        try:
            yield path
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    os.setpgrp()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _stop_group(proc: subprocess.Popen, grace: float = 30.0) -> None:
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_child(cmd: list[str], env: dict[str, str]) -> int:
    """Run ``cmd`` to its end and return its exit code (see the module's notes); Ctrl-C stops
    its process group and raises ``KeyboardInterrupt`` once it is gone."""
    proc = subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent if sys.platform.startswith(
        "linux") else os.setpgrp)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        _stop_group(proc)
        raise
    finally:
        if proc.poll() is None:
            _stop_group(proc, grace=5.0)


def describe_exit(code: int) -> str | None:
    """What a non-zero asv exit code means, in one line (None for 0)."""
    if code == 0:
        return None
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else -code
        return f"asv was killed by signal {name}; the cells it had not stored are not stored"
    if code == 2:
        return "asv run exited with 2: some benchmark cells failed (the report lists them)"
    return f"asv run exited with {code}"
