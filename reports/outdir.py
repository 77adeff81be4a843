"""The report's output folder: written whole or not at all, replacing only what a report wrote.

``with OutputDir(out) as target:`` checks ``out`` (a ``figures/`` or ``tables/`` that is a link or not a
folder, or a folder it cannot write, is refused) and gives a fresh staging folder next to it
(``target.stage``). When the block ends without an error the files the previous report wrote (its
manifest, ``out/.estibench-manifest.json``) are moved aside and the staged ones moved in; if any move
fails every move is undone, so the previous report is left as it was, and :class:`OutputError` says why.
A file the report did not write is never removed or overwritten: one in the way is kept beside as
``<name>.kept-<n><suffix>``, with a note. Only ``report.md``, ``report.html``, ``figures/*`` and
``tables/*`` are written."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path, PurePosixPath

__all__ = ["OutputDir", "OutputError", "MANIFEST"]

MANIFEST = ".estibench-manifest.json"
SUBDIRS = ("figures", "tables")
#: a staging folder of a report that is not running any more (killed) is removed after this long
STALE_SECONDS = 3600


class OutputError(Exception):
    """The report cannot be written to its folder; the previous report is left as it was."""


def _allowed(rel: str) -> bool:
    """A manifest entry the report may remove: report.md/.html or a plain file name directly in
    figures/ or tables/ (no ``..``, no absolute path, no deeper folder)."""
    parts = PurePosixPath(rel).parts
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return False
    return parts in (("report.md",), ("report.html",)) or (len(parts) == 2 and parts[0] in SUBDIRS)


def _remove_stale(folder: Path, prefix: str) -> None:
    """Remove the staging folders a killed report left (``<prefix><pid>-*``): those whose process is gone,
    and any older than :data:`STALE_SECONDS` (issue 21, item 8)."""
    for path in folder.glob(f"{prefix}*") if folder.is_dir() else ():
        pid = path.name[len(prefix):].split("-")[0]
        try:
            old = time.time() - path.lstat().st_mtime > STALE_SECONDS
        except OSError:
            continue
        if path.is_dir() and not path.is_symlink() and (old or not _alive(pid)) and pid != str(os.getpid()):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0) if pid.isdigit() else None
        return pid.isdigit()
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True


class OutputDir:
    def __init__(self, out: os.PathLike | str):
        self.out = Path(out)
        self.stage: Path = Path()
        self.notes: list[str] = []
        self._tmp: Path | None = None

    def _check(self) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise OutputError(f"--out {out} exists and is not a folder")
        for path in (out / s for s in SUBDIRS):
            if path.is_symlink():
                raise OutputError(f"{path} is a symbolic link; the report never writes through "
                                  f"a link out of {out} (remove the link or choose another --out)")
            if path.exists() and not path.is_dir():
                raise OutputError(f"{path} exists and is not a folder")
        for path in [out] + [out / s for s in SUBDIRS]:
            if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
                raise OutputError(f"cannot write into {path} (permission denied); the previous report is left "
                                  f"as it was")

    def _old_manifest(self) -> list[str]:
        path = self.out / MANIFEST
        if not path.is_file() or path.is_symlink():
            return []
        try:
            entries = json.loads(path.read_text(encoding="utf-8")).get("files", [])
        except (OSError, ValueError, AttributeError) as exc:
            self.notes.append(f"warning: could not read {path} ({type(exc).__name__}); no earlier report file "
                              f"is removed")
            return []
        good = [e for e in entries if isinstance(e, str) and _allowed(e)]
        if len(good) < len(entries):
            self.notes.append(f"warning: {path} lists {len(entries) - len(good)} path(s) outside the report's own "
                              f"files; they are left alone")
        return good

    def __enter__(self) -> OutputDir:
        self._check()
        parent = self.out.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        prefixes = [(parent, f".{self.out.name}.estibench-"), (self.out, ".estibench-stage-")]
        for folder, prefix in prefixes:
            _remove_stale(folder, prefix)
        try:
            self._tmp = Path(tempfile.mkdtemp(prefix=f"{prefixes[0][1]}{os.getpid()}-", dir=parent))
        except OSError:  # a parent we cannot write: stage inside out (same file system)
            self.out.mkdir(parents=True, exist_ok=True)
            self._tmp = Path(tempfile.mkdtemp(prefix=f"{prefixes[1][1]}{os.getpid()}-", dir=self.out))
        self.stage = self._tmp / "new"
        for sub in SUBDIRS:
            (self.stage / sub).mkdir(parents=True)
        return self

    def __exit__(self, kind, exc, tb) -> None:
        try:
            if kind is None:
                self._commit()
        finally:
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)

    def final(self, staged: Path) -> Path:
        """Where a staged file lives once moved in."""
        return self.out / Path(staged).relative_to(self.stage)

    def _commit(self) -> None:
        self._check()  # again: the folder may have changed while the report was drawn
        new = sorted(p.relative_to(self.stage).as_posix() for p in self.stage.rglob("*") if p.is_file())
        old = [rel for rel in self._old_manifest() if (self.out / rel).is_file() and not (self.out / rel).is_symlink()]
        done: list[tuple[Path, Path]] = []  # (from, to) renames, undone in reverse on failure
        made: list[Path] = []  # folders created here
        try:
            for folder in [self.out] + [self.out / s for s in SUBDIRS]:
                if not folder.is_dir():
                    folder.mkdir()
                    made.append(folder)
            moves = [(self.out / rel, self._tmp / "old" / rel) for rel in old]  # the last report's: aside
            for rel in new:
                target = self.out / rel
                if (target.exists() or target.is_symlink()) and rel not in old:  # not ours: kept beside
                    moves.append((target, self._free_name(target)))
                    self.notes.append(f"warning: {target} was not written by a report; kept as {moves[-1][1]}")
                moves.append((self.stage / rel, target))
            for src, dest in moves:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dest)
                done.append((src, dest))
            self._write_manifest(new)
        except OSError as exc:
            for src, dest in reversed(done):
                try:
                    os.replace(dest, src)
                except OSError as undo:
                    self.notes.append(f"warning: could not restore {src}: {undo}")
            for folder in reversed(made):
                try:
                    folder.rmdir()
                except OSError as undo:
                    self.notes.append(f"warning: could not remove {folder}: {undo}")
            raise OutputError(f"could not write the report into {self.out} ({type(exc).__name__}: {exc}); the "
                              f"previous report is left as it was") from None

    @staticmethod
    def _free_name(path: Path) -> Path:
        for n in range(1, 10_000):
            candidate = path.with_name(f"{path.stem}.kept-{n}{path.suffix}")
            if not candidate.exists() and not candidate.is_symlink():
                return candidate
        raise OSError(f"no free name to keep {path} under")

    def _write_manifest(self, files: list[str]) -> None:
        path = self.out / MANIFEST
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise OSError(f"{path} is not a plain file")
        fd, tmp = tempfile.mkstemp(prefix=f"{MANIFEST}.", dir=self.out)  # a fresh name
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"written_by": "estibench report", "files": files}, fh, indent=1)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise
