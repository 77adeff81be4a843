"""Progress of the setup work, shown on the terminal while asv runs it in its own processes.

The suite's setup computations (in asv's ``setup_cache`` processes) report through
:class:`Progress`: it rewrites a small JSON file (``{"what", "done", "total", "started"}``, one
file per computation, atomically) in the folder ``Settings.progress`` names, at most every
half second. ``estibench run`` watches that folder (:func:`watch`) and draws one status line:
cells done / total, elapsed, an estimate of the time left. No folder set: nothing is written.
Standard library only.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

__all__ = ["Progress", "watch", "status_line"]


class Progress:
    """``with Progress(folder, "gradient-grid", total) as p: ... p.step()``."""

    def __init__(self, folder: str | os.PathLike | None, what: str, total: int):
        self.path = Path(folder) / f"{what}.json" if folder else None
        self.what, self.total, self.done = what, int(total), 0
        self.started = time.time()
        self._last = 0.0

    def __enter__(self) -> Progress:
        self._write(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self._write(force=True)

    def step(self, n: int = 1) -> None:
        self.done += n
        self._write()

    def _write(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.path is None or (not force and now - self._last < 0.5):
            return
        self._last = now
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            partial.write_text(json.dumps({"what": self.what, "done": self.done,
                                           "total": self.total, "started": self.started}))
            os.replace(partial, self.path)
        except OSError:  # progress is a courtesy: never fail the work for it
            pass


def status_line(states: list[dict], now: float | None = None) -> str:
    """``gradient-grid 120/410 cells, 1:02 elapsed, ~2:30 left; training-vqvae_digits 3/12``."""
    now = time.time() if now is None else now
    parts = []
    for s in states:
        done, total = int(s.get("done", 0)), max(int(s.get("total", 0)), 1)
        elapsed = max(now - float(s.get("started", now)), 0.0)
        text = f"{s.get('what', '?')} {done}/{total}, {_clock(elapsed)} elapsed"
        if 0 < done < total:
            text += f", ~{_clock(elapsed * (total - done) / done)} left"
        parts.append(text)
    return "; ".join(parts)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _read(folder: Path) -> list[dict]:
    states = []
    for path in sorted(folder.glob("*.json")):
        try:
            states.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return [s for s in states if int(s.get("done", 0)) < int(s.get("total", 0))]


def watch(folder: str | os.PathLike, stop: threading.Event, stream=None,
          every: float = 1.0) -> None:
    """Draw the status line of the computations under ``folder`` on ``stream`` (stderr) until
    ``stop`` is set; on a terminal the line is redrawn in place, elsewhere printed every 30 s."""
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    last_print = 0.0
    while not stop.wait(every):
        states = _read(Path(folder))
        if not states:
            continue
        line = "estibench: " + status_line(states)
        if tty:
            stream.write("\r\033[K" + line[:200])
            stream.flush()
        elif time.monotonic() - last_print >= 30:
            print(line, file=stream, flush=True)
            last_print = time.monotonic()
    if tty:
        stream.write("\r\033[K")
        stream.flush()
