"""Issue 24's report items: honest rankings (biased estimators marked, round-off labelled, "not run" apart
from "not applicable"), the full results table, and figures a paper takes (display names, named metrics,
one legend off the axes, round-off at the edge, full width). On the claims fixture and small results
folders made here."""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from estibench import schema  # noqa: E402
from reports import build_report, render, tables  # noqa: E402
from reports.load import load_results  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "asv_results_claims"
CELL = dict(group="gradient", device="cpu", commit="c" * 40, run_started=1.9e9, machine="m")


@pytest.fixture(scope="module")
def built():
    report = render.compose(load_results(FIXTURE), source=str(FIXTURE))
    yield report
    for figure in report.figures:
        plt.close(figure.fig)


def test_biased_estimators_are_dashed_in_every_figure_and_marked_in_the_tables(built, tmp_path):
    """straight_through registers no unbiasedness claim (claims_unbiased 0 in its rows): every line of it
    is dashed, every other line solid, and the tables mark it †; the report says what both mean once."""
    claims = {r["estimator"]: r["claims_unbiased"] for path in (FIXTURE / "runs").glob("*.parquet")
              for r in pq.read_table(path).to_pylist() if r["claims_unbiased"] == r["claims_unbiased"]}
    assert claims["straight_through"] == 0 and claims["disarm"] == 1
    styles = [(line.get_label(), line.get_linestyle()) for f in built.figures for ax in f.fig.axes
              for line in ax.lines if line.get_label() in claims and line.get_linestyle() != "None"]
    assert {ls for name, ls in styles if name == "straight_through"} == {"--"}
    assert {ls for name, ls in styles if name != "straight_through"} == {"-"}
    md = (_write(built, tmp_path) / "report.md").read_text()
    assert md.count("In every figure a dashed line is an estimator registered as biased") == 1
    assert "straight-through\u2009†" in md and "DisARM\u2009†" not in md


def _one_legend_off_the_axes(figures) -> None:
    for f in figures:
        legends = f.fig.legends + [ax.get_legend() for ax in f.fig.axes if ax.get_legend()]
        assert len(legends) == 1, f.name
        f.fig.canvas.draw()
        box = legends[0].get_window_extent()
        assert box.y0 >= 0 and box.x0 >= 0 and box.x1 <= f.fig.bbox.width + 1, f.name
        for ax in (a for a in f.fig.axes if a.get_visible()):
            assert not box.overlaps(ax.get_tightbbox()), (f.name, ax.get_title())
            for other in (a for a in f.fig.axes if a.get_visible() and a is not ax):  # panels apart too
                assert not ax.get_window_extent().overlaps(other.get_window_extent()), f.name


def test_every_figure_has_one_legend_inside_it_and_off_its_panels(built):
    _one_legend_off_the_axes(built.figures)


def _write(report, out: Path) -> Path:
    from reports.write import save_report

    save_report(report, out, ["png"])
    return out


def _cells(rows: list[dict], root: Path) -> Path:
    schema.write_run(rows, root, "1900000000.000000-gradient-grid")
    return root


def _cell(est, task, k, variance, bias, snr, **extra):
    base = dict(CELL, task=task, estimator=est, num_samples=k, estimator_name=f"{est} name", **extra)
    return [schema.make_row("variance", variance, se=variance / 10, **base),
            schema.make_row("bias", bias, se=0.01, **base), schema.make_row("mse", variance + bias ** 2, **base),
            schema.make_row("snr", snr, status="ok" if snr is not None else "skipped", **base),
            schema.make_row("evaluations", float(k), **base)]


def test_round_off_is_labelled_exact_and_drawn_at_the_edge(tmp_path):
    """An estimator exact on a task (variance 1e-15 at rounding, its SNR undefined, relative bias 1e-8) is
    labelled exact, never the best variance or bias, and its variance and MSE sit on the axis's edge: the
    log axis spans the real curves only. A deterministic but biased one is labelled so, not ranked in
    variance, and ranked in MSE."""
    rows = []
    for k in (1, 4, 16):
        rows += _cell("noisy", "t", k, 1.0 / k, 0.0, 3.0) + _cell("other", "t", k, 2.0 / k, 0.0, 2.0)
        rows += _cell("exact_here", "t", k, 1e-15, 1e-8, None) + _cell("fixed", "t", k, 0.0, 0.3, None)
    results = _cells(rows, tmp_path / "results")
    frame = load_results(results).frame
    best = tables.best_estimators(frame).set_index("measure")
    assert best.loc["variance", "best"] == "noisy" and best.loc["variance", "exact"] == "exact_here"
    assert best.loc["variance", "deterministic"] == "fixed"
    assert "exact_here" not in best.loc["bias", "best"] and best.loc["mse", "deterministic"] == ""
    from reports import figures, select
    from reports.style import Styles, style

    cells = select.gradient_cells(frame)
    with style():
        styles = Styles([sorted(set(cells["estimator"]))])
        for measure, fig in (("variance", figures.fig_vs_samples(cells, styles, "variance").fig),
                             ("mse", figures.fig_cost(cells, styles, "mse", "evaluations").fig)):
            ax = fig.axes[0]
            assert ax.get_ylim()[0] > 1e-3, (measure, ax.get_ylim())  # the curves (0.06-2) set the axis
            edge = {line.get_label() for line in ax.lines if line.get_transform() == ax.get_xaxis_transform()}
            assert "exact_here" in edge and ("fixed" in edge) == (measure == "variance")
            plt.close(fig)
    out = tmp_path / "r"
    build_report(results, out)
    full = pd.read_csv(out / "tables" / "results.csv")
    assert set(full.loc[full["estimator"] == "exact_here", "round_off"]) == {"exact"}
    assert set(full.loc[full["estimator"] == "noisy", "round_off"].fillna("")) == {""}


def test_cells_outside_the_narrowing_are_not_run_and_counted_apart(tmp_path):
    """A narrowed run measured estimator a on task t0; asv's grid holds timings for b and task t1 too,
    stored as skipped: those are "not run", counted apart from the cells that do not apply."""
    rows = _cell("a", "t0", 1, 1.0, 0.0, 1.0) + [schema.make_row(
        "variance", None, status="skipped", error="num_samples >= 2", **dict(CELL, task="t0", estimator="c",
                                                                              num_samples=1))]
    _cells(rows, tmp_path)
    params = [["'t0'", "'t1'"], ["'a'", "'b'", "'c'"], ["1"], ["'cpu'"]]
    name = "bench_gradients.CostX.time_estimate"
    (tmp_path / "benchmarks.json").write_text(json.dumps({name: {
        "name": name, "param_names": ["task", "estimator", "num_samples", "device"], "params": params,
        "type": "time", "unit": "seconds"}}))
    (tmp_path / "m").mkdir()
    result = [1e-3 if (t, e) == ("'t0'", "'a'") else math.nan for t in params[0] for e in params[1]]
    (tmp_path / "m" / "cccccccc-e.json").write_text(json.dumps({
        "commit_hash": "c" * 40, "date": 1_900_000_000_000, "params": {"machine": "m"}, "version": 2,
        "result_columns": ["result", "params", "version", "started_at", "duration"],
        "results": {name: [result, params, "0", 1_900_000_000_000, 1.0]}}))
    frame = load_results(tmp_path).frame
    why = tables.why_not(frame[frame["status"] == "skipped"])
    timing = frame["measure"] == "time_estimate"
    assert set(why[timing & (frame["estimator"] == "b")]) == {"not run"}
    assert set(why[timing & (frame["task"] == "t1")]) == {"not run"}
    assert set(why[timing & (frame["estimator"] == "c") & (frame["task"] == "t0")]) == {"not applicable"}
    out = tmp_path / "r"
    build_report(tmp_path, out)
    md = (out / "report.md").read_text()
    assert "(2 not applicable, 0 undefined, 4 not run;" in md and "4 not run (outside the narrowing" in md


def test_the_full_results_table_holds_every_cell_with_its_se(tmp_path):
    """tables/results.csv: one row per (task, estimator, K, device) cell with the value and se of each
    measure and the registered claim, equal to the run files'; report.html shows it sortable and filterable
    (the script is the report's own, no network), report.md only names it."""
    out = tmp_path / "r"
    build_report(FIXTURE, out)
    full = pd.read_csv(out / "tables" / "results.csv").set_index(["task", "estimator", "num_samples", "device"])
    raw = [r for path in (FIXTURE / "runs").glob("*.parquet") for r in pq.read_table(path).to_pylist()
           if r["group"] == "gradient" and r["status"] == "ok" and r["measure"] in ("variance", "bias")]
    assert raw and full.index.is_unique
    for r in raw:
        row = full.loc[(r["task"], r["estimator"], r["num_samples"], r["device"])]
        assert row[r["measure"]] == pytest.approx(r["value"], rel=1e-12)
        assert row[f"{r['measure']}_se"] == pytest.approx(r["se"], rel=1e-12)
        assert row["claims_unbiased"] == r["claims_unbiased"]
    assert {"time_estimate", "estimator_name", "task_name", "round_off"} <= set(full.columns)
    page, md = (out / "report.html").read_text(), (out / "report.md").read_text()
    assert page.count('<table class="sortable">') == 1 and 'id="sort-filter"' in page and "http" not in page.split(
        'id="sort-filter"')[1]
    assert "tables/results.csv holds the numbers in full" in md and "| DisARM | 64 |" not in md


def test_training_figures_and_tables_name_methods_and_metrics(tmp_path):
    """A training task's methods by their display names (declared per variant), its metric by the name and
    unit the results record, in the tables and on every axis; one legend per figure, inside it, on no axes."""
    base = dict(group="curve", task="vae", task_name="VAE digits", machine="m", commit="c" * 40, run_started=1.9e9)
    rows = [schema.make_row("higher_is_better", 1.0, **dict(base, group="info"),
                            metric_name="held-out log p(x) per image (nats)")]
    for method, name in (("score_function:baseline=moving_average", "score function (moving average)"),
                         ("double_cv:tune=false", "double CV, fixed")):
        for seed in (0, 1):
            info = dict(base, method=method, method_name=name, seed=seed)
            for step in range(4):
                rows += [schema.make_row(m, v, **info, checkpoint=step) for m, v in (
                    ("step", 10.0 * step), ("seconds", 0.5 * step), ("loss", 2.0 - step / 4),
                    ("metric", -100 + step + seed))]
            rows += [schema.make_row(m, 1.0 + seed, **dict(info, group="summary")) for m in (
                "final_metric_equal_steps", "kendall_tau")]
    schema.write_run(rows, tmp_path, "1900000000.000000-training-vae")
    report = render.compose(load_results(tmp_path))
    try:
        text = " ".join(str(t.get_text()) for f in report.figures for t in f.fig.findobj(matplotlib.text.Text))
        assert "score function (moving average)" in text and "double CV, fixed" in text
        assert "score_function:" not in text and "double_cv" not in text
        assert "held-out log p(x) per image (nats)" in text.replace("\n", " ") and "metric ↑" not in text
        _one_legend_off_the_axes(report.figures)
        tables_md = [b.frame for b in report.blocks if hasattr(b, "frame")]
        assert any("double CV, fixed" in set(t.get("method", [])) for t in tables_md)
    finally:
        for f in report.figures:
            plt.close(f.fig)
