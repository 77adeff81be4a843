"""The report reads only what it shows (reports.scan): same tables, figures and text as from the
whole tidy frame (reports.load), on the fixtures and on a small generated history
(reports.synthetic)."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from reports import select as S  # noqa: E402
from reports.load import load_results  # noqa: E402
from reports.render import build_report  # noqa: E402
from reports.scan import load_for_report  # noqa: E402
from reports.synthetic import SMALL_GRID, commit_hash, write_history  # noqa: E402
from reports.write import to_markdown  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    return write_history(tmp_path_factory.mktemp("history"), commits=6, grid=SMALL_GRID)


def _text(loaded, out: Path, **kw) -> tuple[str, dict, list]:
    report = build_report(loaded, **kw)
    try:
        md = re.sub(r"Generated .*? UTC", "Generated", to_markdown(report, out))
        return md, report.tables, [(f.name, f.caption) for f in report.figures]
    finally:
        for f in report.figures:
            plt.close(f.fig)


def _same(results: Path, tmp_path: Path, history_measure: str = "time_estimate", **options):
    full = load_results(results)
    part = load_for_report(results, history_measure, options.get("only_tasks", ()),
                           options.get("only_estimators", ()))
    assert part.totals is not None and len(part.frame) <= len(full.frame)
    assert part.param_columns == full.param_columns and part.warnings == full.warnings
    kw = {"history_measure": history_measure, "figure_options": options or None}
    md_full, tables_full, figs_full = _text(full, tmp_path, **kw)
    md_part, tables_part, figs_part = _text(part, tmp_path, **kw)
    assert md_part == md_full
    assert figs_part == figs_full
    assert tables_part.keys() == tables_full.keys()
    for name, table in tables_full.items():
        pd.testing.assert_frame_equal(tables_part[name].reset_index(drop=True),
                                      table.reset_index(drop=True), check_dtype=False,
                                      obj=name)
    return full, part


@pytest.mark.parametrize("name", ["asv_results", "asv_results_claims",
                                  "asv_results_before_details"])
def test_the_report_of_the_fixtures_is_unchanged(name, tmp_path):
    _same(FIXTURES / name, tmp_path)


def test_the_report_of_a_generated_history_is_unchanged(history, tmp_path):
    full, part = _same(history, tmp_path)
    for machine in full.frame["machine"].unique():
        a = S.history_points(full.frame[full.frame["machine"] == machine], "time_estimate")
        b = S.history_points(part.frame[part.frame["machine"] == machine], "time_estimate")
        pd.testing.assert_frame_equal(b[0].data.reset_index(drop=True),
                                      a[0].data.reset_index(drop=True))
        assert b[1] == a[1] == [commit_hash(i) for i in range(6)]
        pd.testing.assert_series_equal(b[2], a[2])
    # only the latest commit is read whole; the others give their history rows
    assert part.frame["commit"].nunique() == 6
    assert len(part.frame) < len(full.frame) / 3


def test_chosen_panels_and_another_history_measure(history, tmp_path):
    _same(history, tmp_path, "variance", only_tasks=("bernoulli_01",),
          only_estimators=("exact", "score_function:baseline=loo"))


def test_a_broken_file_is_skipped_as_before(history, tmp_path):
    broken = tmp_path / "results"
    import shutil

    shutil.copytree(history, broken)
    files = sorted((broken / "synthetic").glob(f"{commit_hash(2)[:8]}-*.json"))
    files[0].write_text("{not json", encoding="utf-8")
    _same(broken, tmp_path)
