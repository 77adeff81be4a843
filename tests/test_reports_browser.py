"""report.html in a real browser: headless Chromium at 1400 px, nothing past the right edge.

Skipped where no Chromium is installed (Debian: ``apt-get install chromium``). The page gets a
probe script appended (the report itself holds none) that writes, once loaded, the document's
scroll width and the right edge of every element that is not inside a table's own scroll box
into attributes of <body>, which ``--dump-dom`` prints.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from estibench import cli

FIXTURE = Path(__file__).parent / "fixtures" / "asv_results_claims"
WIDTH = 1400
BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium installed")

PROBE = """<script>window.addEventListener("load", () => {
  let right = 0;
  for (const e of document.querySelectorAll("body *")) {
    const box = e.closest(".scroll");
    if (box && box !== e) continue;  // inside a table's own scroll box
    right = Math.max(right, e.getBoundingClientRect().right);
  }
  document.body.dataset.scrollWidth = document.documentElement.scrollWidth;
  document.body.dataset.rightmost = Math.ceil(right);
});</script></body>"""


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", f"--window-size={WIDTH},1000",
                           "--virtual-time-budget=5000", *args],
                          capture_output=True, text=True, timeout=120)


def test_report_html_fits_1400_px(tmp_path):
    out = tmp_path / "r"
    assert cli.main(["report", "-q", "--results", str(FIXTURE), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE), encoding="utf-8")
    proc = _chromium("--dump-dom", probe.as_uri())
    found = dict(re.findall(r'data-(scroll-width|rightmost)="(\d+)"', proc.stdout))
    assert found, proc.stderr[-2000:]
    assert int(found["scroll-width"]) <= WIDTH
    assert int(found["rightmost"]) <= WIDTH


INTERACT = """<script>window.addEventListener("load", () => {
  const t = document.querySelector("table.sortable"), heads = [...t.tHead.rows[0].cells];
  const col = heads.findIndex(h => h.textContent === "K");
  const ks = () => [...t.tBodies[0].rows].filter(r => !r.hidden).map(r => Number(r.cells[col].textContent));
  heads[col].click(); const up = ks(); heads[col].click(); const down = ks();
  const box = document.querySelector("input.filter"); box.value = "disarm bernoulli";
  box.dispatchEvent(new Event("input"));
  const shown = [...t.tBodies[0].rows].filter(r => !r.hidden);
  const content = document.body.clientWidth - 32;  // the body's 1rem padding on each side
  const imgs = [...document.querySelectorAll("figure img")].map(i => i.getBoundingClientRect().width / content);
  Object.assign(document.body.dataset, {up: up.join(","), down: down.join(","), rows: t.tBodies[0].rows.length,
    shown: shown.length, shownOk: shown.every(r => /disarm/i.test(r.textContent) && /bernoulli/i.test(r.textContent)),
    widest: Math.max(...imgs).toFixed(3), narrowest: Math.min(...imgs).toFixed(3)});
});</script></body>"""


def test_the_results_table_sorts_and_filters_and_figures_span_the_page(tmp_path):
    """In Chromium at 1400 px: a click on the K header sorts the full results table by K (again: the other
    way), words typed in its box keep only the rows holding all of them, and the figures take the page's
    width (these are text-width figures: 100 % of the content box)."""
    out = tmp_path / "r"
    assert cli.main(["report", "-q", "--results", str(FIXTURE), "--out", str(out)]) == 0
    probe = tmp_path / "probe.html"
    probe.write_text((out / "report.html").read_text().replace("</body>", INTERACT), encoding="utf-8")
    proc = _chromium("--dump-dom", probe.as_uri())
    found = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', proc.stdout.split("<body", 1)[-1].split(">", 1)[0]))
    assert found, proc.stderr[-2000:]
    up, down = [int(k) for k in found["up"].split(",")], [int(k) for k in found["down"].split(",")]
    assert up == sorted(up) and down == sorted(up, reverse=True) and len(up) == int(found["rows"]) > 4
    assert 0 < int(found["shown"]) < int(found["rows"]) and found["shown-ok"] == "true"
    assert float(found["narrowest"]) > 0.97 and float(found["widest"]) <= 1.001
