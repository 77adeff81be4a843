"""A built report -> ``report.md``, a self-contained ``report.html``, ``figures/`` and ``tables/``.

Every name from the results is written inert (:mod:`reports.safe`): escaped in HTML and Markdown,
no formula in CSV, file names sanitised. The files go into the output folder through
:class:`reports.outdir.OutputDir`: written whole into a fresh folder next to it, then moved in,
replacing only what the previous report wrote (its manifest), or nothing at all."""
from __future__ import annotations

import base64
import numbers
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import layout
from .load import Loaded, csv_safe
from .outdir import OutputDir
from .render import Alert, Bold, FigureBlock, Heading, Items, Para, Report, Table, compose, fmt
from .safe import html_text, md_cell, md_text, slug

__all__ = ["to_markdown", "to_html", "write_report", "save_report", "csv_safe"]


# -- Markdown --------------------------------------------------------------------------------------
def _md_cell(value: Any) -> str:
    text = md_cell(fmt(value))
    return f"**{text}**" if isinstance(value, Bold) and text else text


def to_markdown(report: Report, out: Path) -> str:
    lines: list[str] = []
    for block in report.blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + md_text(block.text), ""]
        elif isinstance(block, Para):
            lines += [md_text(block.text), ""]
        elif isinstance(block, Items):
            lines += [f"- {md_text(item)}" for item in block.items] + [""]
        elif isinstance(block, Alert):
            lines += [f"> **⚠ {md_text(block.title)}**", ">"]
            lines += [f"> - {md_text(item)}" for item in block.items]
            lines += ([">", f"> {md_text(block.text)}"] if block.text else []) + [""]
        elif isinstance(block, Table):
            frame = block.frame
            lines.append("| " + " | ".join(md_cell(c) for c in frame.columns) + " |")
            lines.append("|" + "|".join("---" for _ in frame.columns) + "|")
            for row in frame.itertuples(index=False):
                lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
            lines.append("")
            if block.caption:
                lines += [f"*{md_text(block.caption)}*", ""]
        elif isinstance(block, FigureBlock):
            f = block.figure
            link = _figure_link(f, out)
            title = md_text(f.title)
            lines += [f"### {title}", "", f"![{title}]({link})" if link else
                      "(figure not saved)", "", f"*{md_text(f.caption)}*", ""]
    return "\n".join(lines)


def _figure_link(figure: layout.Figure, out: Path) -> str:
    for fmt_ in ("png", "svg", "pdf"):
        if fmt_ in figure.files:
            return figure.files[fmt_].relative_to(out).as_posix()
    return ""


# -- HTML ------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:80rem;margin:2rem auto;
padding:0 1rem;color:#222;line-height:1.45}
.scroll{overflow-x:auto;max-width:100%;margin:.5rem 0}
table{border-collapse:collapse;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;vertical-align:top}
td{max-width:24rem;overflow-wrap:break-word} th{background:#f3f3f3;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
figure{margin:1rem 0} figure img{max-width:100%;width:48rem}
figcaption,.caption{color:#555;font-size:.9rem}
p,li,figcaption,h1,h2,h3{overflow-wrap:anywhere}
.alert{border:2px solid #b3261e;background:#fdecea;border-radius:6px;padding:.6rem 1rem;
margin:1rem 0}
.alert strong{color:#b3261e}
"""


def to_html(report: Report) -> str:
    out: list[str] = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
                      "<title>estibench report</title>", f"<style>{_CSS}</style></head><body>"]
    esc = html_text
    for block in report.blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            out.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Items):
            out.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Alert):
            out.append(f"<div class=\"alert\" role=\"alert\"><strong>⚠ {esc(block.title)}"
                       f"</strong><ul>" + "".join(f"<li>{esc(i)}</li>" for i in block.items)
                       + f"</ul><p>{esc(block.text)}</p></div>")
        elif isinstance(block, Table):
            frame = block.frame
            head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
            body = ["<tr>" + "".join(_html_cell(v) for v in row) + "</tr>" for row in frame.itertuples(index=False)]
            caption = f"<p class=\"caption\">{esc(block.caption)}</p>" if block.caption else ""
            # a wide table scrolls inside its own box instead of running off the page
            out.append(f"<div class=\"scroll\"><table><thead><tr>{head}</tr></thead><tbody>"
                       f"{''.join(body)}</tbody></table></div>{caption}")
        elif isinstance(block, FigureBlock):
            f = block.figure
            mime, data = _embedded(f)
            out.append(f"<figure><h3>{esc(f.title)}</h3><img alt=\"{esc(f.title)}\" "
                       f"src=\"data:{mime};base64,{data}\"><figcaption>{esc(f.caption)}" f"</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


_QUANTITY = re.compile(r"^×?[-+]?\d[\d.]*(e[-+]?\d+)?( [^\s\d]+)?$")


def _html_cell(v: Any) -> str:
    text = html_text(fmt(v))
    if isinstance(v, Bold):
        return f"<td><b>{text}</b></td>"
    # numbers, and quantities with their unit ("123 µs", "×1.23"), align right on one line
    numeric = isinstance(v, numbers.Number) or (isinstance(v, str) and _QUANTITY.match(v))
    return f"<td class=\"num\">{text}</td>" if numeric else f"<td>{text}</td>"


def _embedded(figure: layout.Figure) -> tuple[str, str]:
    """SVG when it was saved (sharp at any zoom), else PNG (saved or drawn now)."""
    if "svg" in figure.files:
        return "image/svg+xml", base64.b64encode(figure.files["svg"].read_bytes()).decode()
    data = figure.files["png"].read_bytes() if "png" in figure.files else \
        layout.encode(figure.fig, "png")
    return "image/png", base64.b64encode(data).decode()


# -- writing ---------------------------------------------------------------------------------------
def write_report(loaded: Loaded, out: Path, formats: Sequence[str] = ("png",),
                 progress: Callable[[str], None] = lambda msg: None, source: str = "",
                 figure_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the report and write ``out/report.md``, ``out/report.html``,
    ``out/figures/*.<fmt>`` and ``out/tables/*.csv``; returns the main paths."""
    import matplotlib.pyplot as plt

    report = compose(loaded, progress, source, figure_options)
    try:
        return save_report(report, out, formats, progress)
    finally:
        for figure in report.figures:
            plt.close(figure.fig)


def save_report(report: Report, out: Path, formats: Sequence[str] = ("png",),
                progress: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Write a built :class:`Report` under ``out`` (its figures stay open). Raises
    :class:`reports.outdir.OutputError` (the previous report left as it was) when ``out`` cannot
    take it."""
    with OutputDir(out) as target:
        stage = target.stage
        for figure in report.figures:
            figure.files.clear()
            figure.name = slug(figure.name)
            layout.save(figure, stage / "figures", formats)
            progress(f"saved {figure.name}")
        (stage / "tables").mkdir(exist_ok=True)
        for name, table in report.tables.items():
            if not table.empty:
                csv_safe(table).to_csv(stage / "tables" / f"{slug(name)}.csv", index=False)
        (stage / "report.md").write_text(to_markdown(report, stage), encoding="utf-8")
        (stage / "report.html").write_text(to_html(report), encoding="utf-8")
    for figure in report.figures:  # the files now live in out
        figure.files = {k: target.final(p) for k, p in figure.files.items()}
    md, page = target.out / "report.md", target.out / "report.html"
    progress(f"wrote {md} and {page} ({len(report.figures)} figure(s) in " f"{target.out / 'figures'})")
    return {"markdown": md, "html": page, "figures": target.out / "figures",
            "tables": target.out / "tables", "notes": list(target.notes), "skipped": list(report.skipped)}
