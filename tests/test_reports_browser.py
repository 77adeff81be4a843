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
