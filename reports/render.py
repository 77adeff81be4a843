"""Loaded results -> ``report.md``, a self-contained ``report.html`` and ``figures/``.

The report is a list of blocks (heading, paragraph, list, table, figure) written twice: as
Markdown that links the figure files, and as one HTML file with the figures embedded (base64),
which can be mailed or attached as it is.
"""
from __future__ import annotations

import base64
import html
import math
import numbers
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple, Union

import pandas as pd

from . import figures as figs
from . import tables
from .load import Loaded

__all__ = ["Report", "build_report", "write_report", "fmt"]

_MAX_FAILED_LISTED = 50


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class Items:
    items: List[str]


@dataclass
class Table:
    frame: pd.DataFrame
    caption: str = ""


@dataclass
class FigureBlock:
    figure: figs.Figure


Block = Union[Heading, Para, Items, Table, FigureBlock]


@dataclass
class Report:
    blocks: List[Block] = field(default_factory=list)
    figures: List[figs.Figure] = field(default_factory=list)
    tables: Dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> raw numbers

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


def fmt(value: Any) -> str:
    """A cell as text: 4 significant digits, integers as integers, missing as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return "–"
        if v.is_integer() and abs(v) < 1e6:
            return str(int(v))
        return f"{v:.4g}"
    try:
        if pd.isna(value):
            return "–"
    except (TypeError, ValueError):
        pass
    return str(value)


def _short_commit(frame: pd.DataFrame) -> pd.DataFrame:
    if "commit" in frame:
        frame = frame.assign(commit=frame["commit"].astype(str).str[:8])
    return frame


def _display_best(best: pd.DataFrame) -> pd.DataFrame:
    """The best-estimator table for people: margin as "×ratio" when it means something."""
    shown = best.copy()
    shown["margin"] = [
        (f"×{r:.2f}" if not math.isnan(r) else (f"Δ {fmt(m)}" if not math.isnan(m) else "–"))
        for m, r in zip(best["margin"], best["ratio"])]
    return shown.drop(columns=["ratio"]).rename(columns={
        "num_samples": "K", "runner_up": "runner-up", "runner_up_value": "runner-up value",
        "better": "better is"})


# -- building --------------------------------------------------------------------------------------
def build_report(loaded: Loaded, progress: Callable[[str], None] = lambda msg: None,
                 source: str = "") -> Report:
    frame = loaded.frame
    report = Report()
    machines = sorted(frame["machine"].unique())
    colours = figs.palette(_names(frame))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report.add(Heading("estibench report", 1), Para(
        f"Generated {now} from {len(loaded.files)} asv result file(s){' in ' + source if source else ''}: "
        f"{len(frame)} benchmark cells, {(frame['status'] == 'ok').sum()} ok, "
        f"{(frame['status'] == 'failed').sum()} failed, "
        f"{(frame['status'] == 'skipped').sum()} skipped. "
        f"Figures and tables use each machine's latest commit; results of different machines "
        f"are never compared."))

    # provenance
    report.add(Heading("Machines and runs"))
    mrows = []
    for name in machines:
        info = loaded.machines.get(name, {})
        mrows.append({"machine": name, **{k: info.get(k) for k in
                                          ("os", "arch", "cpu", "num_cpu", "ram")}})
    mtable = pd.DataFrame(mrows).dropna(axis=1, how="all")
    report.add(Table(mtable, "Machines (from asv's machine.json)."))
    runs = tables.runs(frame)
    report.tables["runs"] = runs
    report.add(Table(_short_commit(runs), "Runs: one row per machine, commit and environment; "
                     "cell counts by status."))

    for machine in machines:
        mframe = frame[frame["machine"] == machine]
        latest = figs.latest_commit(mframe)
        where = f" — {machine} @ {str(latest['commit'].iloc[0])[:8]}"
        suffix = f"-{figs._slug(machine)}" if len(machines) > 1 else ""

        best = tables.best_estimators(latest)
        summary = tables.training_summary(latest)
        best_m = tables.best_methods(summary) if not summary.empty else summary
        taus = tables.loss_metric_taus(latest)
        report.tables.update({f"best_estimators{suffix}": best,
                              f"training_summary{suffix}": summary,
                              f"best_methods{suffix}": best_m, f"kendall_tau{suffix}": taus})
        if not best.empty:
            report.add(Heading(f"Best estimator per task and measure{where}"), Table(
                _display_best(best),
                "Each (task, measure) compared at the largest K with two or more estimators; "
                "margin: the runner-up's value over the best's (×) or their difference (Δ); "
                f"bias compared as |bias|; left out as references: "
                f"{', '.join(sorted(tables.REFERENCE_ESTIMATORS))}."))
        if not summary.empty:
            report.add(Heading(f"Training: methods per setting{where}"), Table(
                summary, "Mean and standard deviation over seeds."))
            if not best_m.empty:
                report.add(Table(_display_best(best_m),
                                 "Best method per setting and measure (means over seeds; a "
                                 "metric is taken as higher-is-better)."))
        if not taus.empty:
            report.add(Table(taus, "Kendall's τ between training loss and the metric over "
                                   "checkpoints and seeds (−1: perfectly aligned)."))

        progress(f"drawing figures for machine {machine}")
        figures, skipped = figs.build_figures(mframe, colours, suffix=suffix, progress=progress)
        report.figures.extend(figures)
        if figures:
            report.add(Heading(f"Figures{where}"))
            report.add(*(FigureBlock(f) for f in figures))
        if skipped:
            report.add(Para("Figures not drawn (their data are absent):"),
                       Items([f"{label}: {why}" for label, why in skipped]))

    # failed and skipped cells
    report.add(Heading("Failed and skipped cells"))
    counts = tables.status_counts(frame)
    if counts.empty:
        report.add(Para("None: every cell has a result."))
    else:
        n_failed = int(counts["failed"].sum())
        n_skipped = int(counts["skipped"].sum())
        report.add(Para(f"{n_failed} failed (the benchmark raised; asv stores null) and "
                        f"{n_skipped} skipped (not applicable here, e.g. a device this machine "
                        f"lacks; asv stores NaN)."), Table(counts))
        failed = tables.failed_cells(frame, loaded.param_columns)
        if failed:
            shown = failed[:_MAX_FAILED_LISTED]
            more = len(failed) - len(shown)
            report.add(Para("Failed cells:"), Items(shown + ([f"… and {more} more"]
                                                              if more else [])))
    if loaded.warnings:
        report.add(Heading("Files left out"), Items(loaded.warnings))
    return report


def _names(frame: pd.DataFrame) -> List[str]:
    names = set()
    for col in ("estimator", "method"):
        if col in frame.columns:
            names.update(str(v) for v in frame[col].dropna().unique())
    return sorted(names)


# -- writing ---------------------------------------------------------------------------------------
def _md_cell(value: Any) -> str:
    return fmt(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report, out: Path) -> str:
    lines: List[str] = []
    for block in report.blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Para):
            lines += [block.text, ""]
        elif isinstance(block, Items):
            lines += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            frame = block.frame
            lines.append("| " + " | ".join(str(c) for c in frame.columns) + " |")
            lines.append("|" + "|".join("---" for _ in frame.columns) + "|")
            for row in frame.itertuples(index=False):
                lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
            lines.append("")
            if block.caption:
                lines += [f"*{block.caption}*", ""]
        elif isinstance(block, FigureBlock):
            f = block.figure
            link = _figure_link(f, out)
            lines += [f"### {f.title}", "", f"![{f.title}]({link})" if link else
                      "(figure not saved)", "", f"*{f.caption}*", ""]
    return "\n".join(lines)


def _figure_link(figure: figs.Figure, out: Path) -> str:
    for fmt_ in ("png", "svg", "pdf"):
        if fmt_ in figure.files:
            return figure.files[fmt_].relative_to(out).as_posix()
    return ""


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1rem 0} figure img{max-width:100%;width:30rem}
figcaption,.caption{color:#555;font-size:.9rem}
"""


def to_html(report: Report) -> str:
    out: List[str] = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
                      "<title>estibench report</title>", f"<style>{_CSS}</style></head><body>"]
    esc = html.escape
    for block in report.blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            out.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Items):
            out.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            frame = block.frame
            head = "".join(f"<th>{esc(str(c))}</th>" for c in frame.columns)
            body = []
            for row in frame.itertuples(index=False):
                cells = "".join(
                    f"<td class=\"num\">{esc(fmt(v))}</td>" if isinstance(v, numbers.Number)
                    else f"<td>{esc(fmt(v))}</td>" for v in row)
                body.append(f"<tr>{cells}</tr>")
            caption = f"<p class=\"caption\">{esc(block.caption)}</p>" if block.caption else ""
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
                       f"</tbody></table>{caption}")
        elif isinstance(block, FigureBlock):
            f = block.figure
            mime, data = _embedded(f)
            out.append(f"<figure><h3>{esc(f.title)}</h3><img alt=\"{esc(f.title)}\" "
                       f"src=\"data:{mime};base64,{data}\"><figcaption>{esc(f.caption)}"
                       f"</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def _embedded(figure: figs.Figure) -> Tuple[str, str]:
    """SVG when it was saved (sharp at any zoom), else PNG (saved or drawn now)."""
    if "svg" in figure.files:
        return "image/svg+xml", base64.b64encode(figure.files["svg"].read_bytes()).decode()
    data = figure.files["png"].read_bytes() if "png" in figure.files else \
        figs.image_bytes(figure, "png")
    return "image/png", base64.b64encode(data).decode()


def write_report(loaded: Loaded, out: Path, formats: Sequence[str] = ("png",),
                 progress: Callable[[str], None] = lambda msg: None,
                 source: str = "") -> Dict[str, Path]:
    """Write ``out/report.md``, ``out/report.html``, ``out/figures/*.<fmt>`` and
    ``out/tables/*.csv``; returns the main paths."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(loaded, progress, source)
    try:
        for folder, suffixes in ((out / "figures", (".png", ".svg", ".pdf")),
                                 (out / "tables", (".csv",))):
            # figures/ and tables/ are the report's own: drop what an earlier run left there
            for stale in folder.glob("*") if folder.is_dir() else ():
                if stale.is_file() and stale.suffix in suffixes:
                    stale.unlink()
        for figure in report.figures:
            figs.save(figure, out / "figures", formats)
        (out / "tables").mkdir(exist_ok=True)
        for name, table in report.tables.items():
            if not table.empty:
                table.to_csv(out / "tables" / f"{name}.csv", index=False)
        md = out / "report.md"
        md.write_text(to_markdown(report, out), encoding="utf-8")
        page = out / "report.html"
        page.write_text(to_html(report), encoding="utf-8")
    finally:
        for figure in report.figures:
            plt.close(figure.fig)
    progress(f"wrote {md} and {page} ({len(report.figures)} figure(s) in {out / 'figures'})")
    return {"markdown": md, "html": page, "figures": out / "figures", "tables": out / "tables"}
