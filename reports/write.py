"""A built report -> ``report.md``, a self-contained ``report.html``, ``figures/`` and ``tables/``, every name from
the results written inert (:mod:`reports.safe`), all or nothing (:class:`OutputDir`)."""
from __future__ import annotations

import base64
import json
import numbers
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from . import layout
from .blocks import Alert, Bold, FigureBlock, Heading, Items, Para, Report, Table, fmt
from .load import csv_safe
from .safe import html_text as esc
from .safe import md_text, slug
from .style import TEXT_WIDTH

__all__ = ["to_markdown", "to_html", "save_report", "OutputDir", "OutputError", "MANIFEST"]

MANIFEST = ".estibench-manifest.json"
SUBDIRS = ("figures", "tables")
#: a staging folder of a report that is not running any more (killed) is removed after this long
STALE_SECONDS = 3600


class OutputError(Exception):
    """The report cannot be written to its folder; the previous report is left as it was."""


class OutputDir:
    """The report's output folder, written whole or not at all: ``with OutputDir(out) as target:`` refuses an ``out``
    whose ``figures/`` or ``tables/`` is a link or not a folder, or that it cannot write, and stages the report in
    ``target.stage`` beside it. Without an error in the block the previous report's files (its :data:`MANIFEST`) are
    moved aside and the staged ones in, every move undone if one fails (:class:`OutputError`). A file the report did
    not write is never removed or overwritten: one in the way is kept beside as ``<name>.kept-<n><suffix>``, with a
    note."""

    def __init__(self, out: os.PathLike | str):
        self.out, self.stage, self.notes, self._tmp = Path(out), Path(), [], None

    def _check(self) -> None:
        out = self.out
        for path in (*(out / s for s in SUBDIRS), out):
            if path.is_symlink() and path != out:
                raise OutputError(f"{path} is a symbolic link; the report never writes through "
                                  f"a link out of {out} (remove the link or choose another --out)")
            if path.exists() and not path.is_dir():
                raise OutputError(f"{'--out ' * (path == out)}{path} exists and is not a folder")
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
        # removable: report.md/.html or a file directly in figures/ or tables/ (not .., not absolute: part 0 is /)
        parts = [(e, PurePosixPath(e).parts) for e in entries if isinstance(e, str)]
        good = [e for e, p in parts if ".." not in p and (p in (("report.md",), ("report.html",)) or (
            len(p) == 2 and p[0] in SUBDIRS))]
        if len(good) < len(entries):
            self.notes.append(f"warning: {path} lists {len(entries) - len(good)} path(s) outside the report's own "
                              f"files; they are left alone")
        return good

    def __enter__(self) -> OutputDir:
        self._check()
        parent = self.out.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        prefixes = [(parent, f".{self.out.name}.estibench-"), (self.out, ".estibench-stage-")]
        # remove what a killed report staged (<prefix><pid>-*): its process gone, or too old (issue 21, item 8)
        for folder, prefix in prefixes:
            for path in folder.glob(f"{prefix}*") if folder.is_dir() else ():
                pid = path.name[len(prefix):].split("-")[0]
                try:  # signal 0 only asks whether the process is there
                    stale = time.time() - path.lstat().st_mtime > STALE_SECONDS or not pid.isdigit() \
                        or os.kill(int(pid), 0)
                except ProcessLookupError:
                    stale = True
                except OSError:  # gone already, or another user's process: alive
                    continue
                if stale and path.is_dir() and not path.is_symlink() and pid != str(os.getpid()):
                    shutil.rmtree(path, ignore_errors=True)
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
            shutil.rmtree(self._tmp, ignore_errors=True)

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
                    free = (target.with_name(f"{target.stem}.kept-{n}{target.suffix}") for n in range(1, 10_000))
                    kept = next((k for k in free if not (k.exists() or k.is_symlink())), None)
                    if kept is None:
                        raise OSError(f"no free name to keep {target} under")
                    moves.append((target, kept))
                    self.notes.append(f"warning: {target} was not written by a report; kept as {moves[-1][1]}")
                moves.append((self.stage / rel, target))
            for src, dest in moves:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dest)
                done.append((src, dest))
            path = self.out / MANIFEST  # written beside, then renamed over the last one
            if path.is_symlink() or (path.exists() and not path.is_file()):
                raise OSError(f"{path} is not a plain file")
            (self._tmp / MANIFEST).write_text(json.dumps({"written_by": "estibench report", "files": new}, indent=1),
                                              encoding="utf-8")
            os.replace(self._tmp / MANIFEST, path)
        except OSError as exc:
            for step, what in [*((partial(os.replace, d, s), f"restore {s}") for s, d in reversed(done)),
                               *((f.rmdir, f"remove {f}") for f in reversed(made))]:
                try:
                    step()
                except OSError as undo:
                    self.notes.append(f"warning: could not {what}: {undo}")
            raise OutputError(f"could not write the report into {self.out} ({type(exc).__name__}: {exc}); the "
                              f"previous report is left as it was") from None


#: the page up to its first block, with the style sheet (a wide table scrolls inside its own box)
_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>estibench report</title><style>\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:80rem;margin:2rem auto;
padding:0 1rem;color:#222;line-height:1.45} .scroll{overflow-x:auto;max-width:100%;margin:.5rem 0}
table{border-collapse:collapse;font-size:.9rem} th,td{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;
vertical-align:top} td{max-width:24rem;overflow-wrap:break-word} th{background:#f3f3f3;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap} figure{margin:1rem 0}
figure img{height:auto} table.sortable td{white-space:nowrap} table.sortable th{cursor:pointer;position:sticky;top:0}
.tall{max-height:32rem;overflow-y:auto}
input.filter{width:24rem;max-width:100%;margin:.3rem 0;padding:.2rem .4rem} table.sortable th:hover{background:#e6e6e6}
figcaption,.caption{color:#555;font-size:.9rem} p,li,figcaption,h1,h2,h3{overflow-wrap:anywhere}
.alert{border:2px solid #b3261e;background:#fdecea;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
.alert strong{color:#b3261e}</style></head><body>"""
#: the report's one script (no network): a click on a header sorts by it (numbers first, by value; again: the
#: other way), the box above keeps the rows holding every word typed
_SORT_FILTER = """for (const t of document.querySelectorAll("table.sortable")) {
 const body = t.tBodies[0], rows = [...body.rows], box = t.parentElement.previousElementSibling;
 const key = (r, i) => { const s = r.cells[i].textContent, v = parseFloat(s); return isNaN(v) ? s : v; };
 t.querySelectorAll("th").forEach((th, i) => th.addEventListener("click", () => {
  const dir = th.dataset.dir = th.dataset.dir === "1" ? "-1" : "1";
  rows.sort((a, b) => { const x = key(a, i), y = key(b, i);
   if (typeof x !== typeof y) return typeof x === "number" ? -1 : 1;
   return (x < y ? -1 : x > y ? 1 : 0) * dir; });
  body.append(...rows); }));
 box.addEventListener("input", () => { const words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
  for (const r of rows) r.hidden = !words.every(w => r.textContent.toLowerCase().includes(w)); });
}"""
_QUANTITY = re.compile(r"^×?[-+]?\d[\d.]*(e[-+]?\d+)?( [^\s\d]+)?$")


def _cell(v: Any, html: bool) -> str:
    """Bold: the best of its column; in HTML a number or a quantity with its unit ("123 µs", "×1.23") right-aligned."""
    text = esc(fmt(v)) if html else md_text(fmt(v))
    if not html:
        return f"**{text}**" if isinstance(v, Bold) and text else text
    numeric = isinstance(v, numbers.Number) or (isinstance(v, str) and _QUANTITY.match(v))
    return f"<td><b>{text}</b></td>" if isinstance(v, Bold) else f"<td class=\"num\">{text}</td>" if numeric \
        else f"<td>{text}</td>"


def _html_figure(b: FigureBlock, out: None) -> str:
    """Its SVG when saved, else its PNG (saved, or drawn now); as wide as its share of the text (fonts one size)."""
    f = b.figure
    mime, data = ("image/svg+xml", f.files["svg"].read_bytes()) if "svg" in f.files else \
        ("image/png", f.files["png"].read_bytes() if "png" in f.files else layout.encode(f.fig, "png"))
    width = min(100, round(100 * f.fig.get_figwidth() / TEXT_WIDTH))
    return (f"<figure><h3>{esc(f.title)}</h3><img style=\"width:{width}%\" alt=\"{esc(f.title)}\" "
            f"src=\"data:{mime};base64,{base64.b64encode(data).decode()}\"><figcaption>{esc(f.caption)}</figcaption></figure>")


_ul = lambda items: "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"
#: block type -> how it is spelled (in Markdown, in HTML); Markdown links a figure relative to ``out``. An
#: interactive table, too long for a page, is only named in Markdown (the CSV and the HTML hold it).
_SPELLING = {
    Heading: (lambda b, out: "#" * b.level + " " + md_text(b.text),
              lambda b, out: f"<h{b.level}>{esc(b.text)}</h{b.level}>"),
    Para: (lambda b, out: md_text(b.text), lambda b, out: f"<p>{esc(b.text)}</p>"),
    Items: (lambda b, out: "\n".join(f"- {md_text(i)}" for i in b.items), lambda b, out: _ul(b.items)),
    Alert: (lambda b, out: "\n".join([f"> **⚠ {md_text(b.title)}**", ">", *(f"> - {md_text(i)}" for i in b.items),
                                      *([">", f"> {md_text(b.text)}"] if b.text else [])]),
            lambda b, out: f"<div class=\"alert\" role=\"alert\"><strong>⚠ {esc(b.title)}</strong>{_ul(b.items)}"
                           f"<p>{esc(b.text)}</p></div>"),
    Table: (lambda b, out: f"*{md_text(b.caption)}* (table in report.html)" if b.interactive else "\n".join([
                "| " + " | ".join(md_text(c) for c in b.frame.columns) + " |", "|" + "---|" * b.frame.shape[1],
                *("| " + " | ".join(_cell(v, False) for v in row) + " |" for row in b.frame.itertuples(index=False)),
                *(["", f"*{md_text(b.caption)}*"] if b.caption else [])]),
            lambda b, out: ('<input class="filter" type="search" placeholder="filter rows"><div class="scroll tall">'
                            '<table class="sortable">' if b.interactive else '<div class="scroll"><table>')
                           + "<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in b.frame.columns)
                           + "</tr></thead><tbody>" + "".join("<tr>" + "".join(_cell(v, True) for v in row) + "</tr>"
                                                              for row in b.frame.itertuples(index=False))
                           + "</tbody></table></div>" + f"<p class=\"caption\">{esc(b.caption)}</p>" * bool(b.caption)),
    FigureBlock: (lambda b, out: f"### {md_text(b.figure.title)}\n\n" + next((
                      f"![{md_text(b.figure.title)}]({b.figure.files[k].relative_to(out).as_posix()})"
                      for k in ("png", "svg", "pdf") if k in b.figure.files), "(figure not saved)")
                  + f"\n\n*{md_text(b.figure.caption)}*", _html_figure),
}


def to_markdown(report: Report, out: Path) -> str:
    return "\n".join(f"{_SPELLING[type(b)][0](b, out)}\n" for b in report.blocks)


def to_html(report: Report) -> str:
    script = [f"<script id=\"sort-filter\">{_SORT_FILTER}</script>"] * any(b.interactive for b in report.blocks
                                                                           if isinstance(b, Table))
    return "\n".join([_HEAD, *(_SPELLING[type(b)][1](b, None) for b in report.blocks), *script, "</body></html>"])


def save_report(report: Report, out: Path, formats: Sequence[str] = ("png",),
                progress: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Write a built :class:`Report` under ``out`` (its figures stay open). Raises
    :class:`OutputError` (the previous report left as it was) when ``out`` cannot take it."""
    with OutputDir(out) as target:
        stage = target.stage
        for figure in report.figures:
            figure.files.clear()
            figure.name = slug(figure.name)
            layout.save(figure, stage / "figures", formats)
            progress(f"saved {figure.name}")
        for name, table in report.tables.items():
            if not table.empty:
                csv_safe(table).to_csv(stage / "tables" / f"{slug(name)}.csv", index=False)
        (stage / "report.md").write_text(to_markdown(report, stage), encoding="utf-8")
        (stage / "report.html").write_text(to_html(report), encoding="utf-8")
    for figure in report.figures:  # the files now live in out
        figure.files = {k: target.out / Path(p).relative_to(stage) for k, p in figure.files.items()}
    md, page = target.out / "report.md", target.out / "report.html"
    progress(f"wrote {md} and {page} ({len(report.figures)} figure(s) in {target.out / 'figures'})")
    return {"markdown": md, "html": page, "figures": target.out / "figures", "tables": target.out / "tables",
            "notes": list(target.notes), "skipped": list(report.skipped)}
