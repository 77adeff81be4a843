"""Issue 21's report-side items, each on a small results folder made here: asv's "failed" for cells
a narrowed run never ran (4), impossible values (5), many machines (7), stale staging folders
(8), options that match nothing (9), one machine name on two machines (10), a figure whose data
are malformed (11), long and CJK names in legends (12)."""
from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from pathlib import Path

import pytest

from estibench import cli, schema
from reports import build_report
from reports import style as style_module
from reports.load import load_results
from reports.style import Styles

MAX_DRAWN = getattr(style_module, "MAX_DRAWN", 40)

FIXTURE = Path(__file__).parent / "fixtures" / "asv_results"
CELL = dict(group="gradient", device="cpu", commit="c" * 40, run_started=1.9e9)


def _run(folder: Path, rows: list[dict], run: str = "1900000000.000000-gradient-grid") -> Path:
    return schema.write_run(rows, folder, run)


def _grid(machine="m", tasks=("t0", "t1"), ests=("a", "b"), ks=(1, 4), value=lambda t, e, k: 1.0 / k,
          **extra) -> list[dict]:
    return [schema.make_row(m, value(t, e, k) * (2 if m == "mse" else 1), se=0.01, task=t, estimator=e,
                            num_samples=k, machine=machine, estimator_name=f"{e} name", **CELL, **extra)
            for t in tasks for e in ests for k in ks for m in ("variance", "mse", "bias")]


def _asv_timing(folder: Path, machine: str, cells: dict, commit: str = "c" * 40, hardware=None,
                sub: str | None = None) -> None:
    """One asv result file with time_estimate over task x estimator x K (values: cells, None failed)."""
    tasks, ests, ks = (sorted({c[i] for c in cells}) for i in range(3))
    params = [[repr(v) for v in vals] for vals in (tasks, ests, ks, ["cpu"])]
    name = "bench_gradients.CostX.time_estimate"
    (folder / "benchmarks.json").write_text(json.dumps({name: {
        "name": name, "param_names": ["task", "estimator", "num_samples", "device"], "params": params,
        "type": "time", "unit": "seconds"}, "version": 2}))
    info = {"machine": machine, "cpu": "cpu", "num_cpu": "2", "ram": "1", **(hardware or {})}
    mdir = folder / (sub or machine)
    mdir.mkdir(parents=True, exist_ok=True)
    (mdir / "machine.json").write_text(json.dumps({**info, "version": 1}))
    result = [cells.get((t, e, k)) for t in tasks for e in ests for k in ks]
    data = {"commit_hash": commit, "date": 1_900_000_000_000, "params": info, "version": 2,
            "result_columns": ["result", "params", "version", "started_at", "duration"],
            "results": {name: [result, params, "0", 1_900_000_000_000, 1.0]}, "env_name": "e"}
    (mdir / f"{commit[:8]}-e.json").write_text(json.dumps(data))


# -- item 4 ----------------------------------------------------------------------------------------
def test_asv_nulls_of_cells_no_run_measured_are_not_failures(tmp_path):
    """A narrowed run measured estimator a; asv stored null for b's timings too (a new grid
    combination it did not run): b's are not failures. A run-file failure stays one."""
    rows = _grid(ests=("a",)) + [schema.make_row("variance", None, status="failed", task="t0",
                                                 estimator="c", num_samples=1, error="boom", **CELL,
                                                 machine="m")]
    _run(tmp_path, rows)
    cells = {(t, e, k): (1e-3 if e == "a" else None) for t in ("t0", "t1") for e in "abc" for k in (1, 4)}
    _asv_timing(tmp_path, "m", cells)
    frame = load_results(tmp_path).frame
    failed = frame[frame["status"] == "failed"]
    assert sorted(set(failed["estimator"])) == ["c"], failed[["estimator", "measure"]]
    assert not ((frame["estimator"] == "b") & (frame["measure"] == "time_estimate")).any()


# -- item 5 ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("measure, bad", [("variance", -0.5), ("variance", math.inf),
                                          ("cosine", 2.0), ("time_estimate", -1.0)])
def test_impossible_values_are_flagged_and_never_ranked(tmp_path, measure, bad):
    rows = _grid(ests=("a", "b"))
    if measure == "cosine":
        rows += [schema.make_row("cosine", 0.5, task="t0", estimator=e, num_samples=k, machine="m", **CELL)
                 for e in "ab" for k in (1, 4)]
    bad_row = {"task": "t0", "estimator": "b", "num_samples": 4}
    rows = [dict(r, value=bad) if r["measure"] == measure and all(r[k] == v for k, v in bad_row.items())
            else r for r in rows]
    _run(tmp_path, rows)
    if measure == "time_estimate":
        _asv_timing(tmp_path, "m", {(t, e, k): (bad if (t, e, k) == ("t0", "b", 4) else 1e-3)
                                    for t in ("t0", "t1") for e in "ab" for k in (1, 4)})
    out = tmp_path / "report"
    paths = build_report(tmp_path, out)
    said = [w for w in paths["warnings"] if "impossible value" in w and measure in w]
    assert said and "estimator=b" in said[0] and "task=t0" in said[0], paths["warnings"]
    best = _csv(out / "tables" / "best_estimators.csv")
    ranked = [r for r in best if r["task"] == "t0" and r["measure"] == measure]
    assert ranked and all(float(r["value"]) != bad and r["runner_up_value"] != str(bad) for r in ranked)
    assert all(r["best"] == "a" for r in ranked if r["num_samples"] == "4"), ranked


def _csv(path: Path) -> list[dict]:
    import csv

    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# -- item 7 ----------------------------------------------------------------------------------------
def test_two_hundred_machines_give_a_bounded_report(tmp_path):
    rows = [dict(r, run_started=1.9e9 + i) for i in range(200)
            for r in _grid(machine=f"machine-{i:03d}", tasks=("t0",), ests=("a",), ks=(1, 4))]
    _run(tmp_path, rows)
    out = tmp_path / "report"
    build_report(tmp_path, out)
    figures = list((out / "figures").iterdir())
    from reports import render

    MAX_MACHINES = getattr(render, "MAX_MACHINES", 4)
    assert 0 < len(figures) <= 4 * MAX_MACHINES, len(figures)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert (out / "report.html").stat().st_size < 5_000_000
    assert "196 of 200 machines are not drawn" in html and "machine-199" in html


# -- item 8 ----------------------------------------------------------------------------------------
def test_stale_staging_folders_of_killed_reports_are_removed(tmp_path):
    _run(tmp_path / "results", _grid())
    dead = tmp_path / ".report.estibench-999999999-abc"  # a pid no process has
    old = tmp_path / ".report.estibench-oldstyle"
    live = tmp_path / f".report.estibench-{os.getppid()}-xyz"  # a running process, fresh
    for d in (dead, old, live):
        (d / "new").mkdir(parents=True)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    build_report(tmp_path / "results", tmp_path / "report")
    left = sorted(p.name for p in tmp_path.glob(".report.estibench-*"))
    assert left == [live.name]


# -- item 9 ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("flag, value, words", [
    ("--history", "no_such_measure", ["no_such_measure", "measure"]),
    ("--tasks", "t9", ["'t9'", "did you mean", "t0"]),
    ("--estimators", "zzz", ["'zzz'", "available: a, b"])])
def test_options_that_match_nothing_are_refused(tmp_path, capsys, flag, value, words):
    _run(tmp_path, _grid())
    code = cli.main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "r"), "-q", flag, value])
    err = capsys.readouterr().err
    assert code != 0 and "no gradient benchmark results" not in err
    assert all(w in err for w in words), err


# -- item 10 ---------------------------------------------------------------------------------------
def test_one_name_on_two_asv_machines_is_two_machines(tmp_path):
    cells = {(t, e, k): 1e-3 for t in ("t0",) for e in "ab" for k in (1, 4)}
    _asv_timing(tmp_path, "box", cells)
    _asv_timing(tmp_path, "box", cells, hardware={"cpu": "other cpu", "ram": "64"}, sub="box-copy")
    loaded = load_results(tmp_path)
    assert sorted(loaded.frame["machine"].unique()) == ["box", "box (2)"]
    assert any("'box'" in w and "different hardware" in w for w in loaded.warnings)


def test_one_name_with_two_machine_ids_is_two_machines(tmp_path):
    _run(tmp_path, _grid(machine="box", machine_id="aaa"), "1900000000.000000-a")
    _run(tmp_path, _grid(machine="box", machine_id="bbb", ests=("c",)), "1900000001.000000-b")
    loaded = load_results(tmp_path)
    machines = loaded.frame.groupby("machine")["estimator"].unique()
    assert sorted(machines.index) == ["box", "box (2)"] and list(machines["box (2)"]) == ["c"]
    assert any("different hardware" in w for w in loaded.warnings)


# -- item 11 ---------------------------------------------------------------------------------------
def test_a_figure_with_malformed_data_is_skipped_and_the_rest_written(tmp_path, capsys):
    rows = _grid() + [schema.make_row("loss", 1.0 / (s + 1), group="landscape", experiment="LandscapeBatchNorm",
                                      net="bn", step=s, seed=0, machine="m", commit="c" * 40, run_started=1.9e9)
                      for s in range(3)]  # no lr column
    _run(tmp_path, rows)
    out = tmp_path / "r"
    code = cli.main(["report", "--results", str(tmp_path), "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 0 and "batchnorm" in err and "warning" in err, err
    assert (out / "figures" / "variance_vs_samples.png").is_file()
    assert "batchnorm" in (out / "report.md").read_text()


# -- item 12 ---------------------------------------------------------------------------------------
def test_long_and_cjk_names_fit_the_legend_without_glyph_warnings(tmp_path, recwarn):
    long_name, cjk = "x" * 300, "估计器甲"
    rows = [dict(r, estimator_name={"a": long_name, "b": cjk}[r["estimator"]]) for r in _grid()]
    _run(tmp_path, rows)
    out = tmp_path / "r"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_report(tmp_path, out)
    assert not [w for w in caught if "Glyph" in str(w.message)]
    assert long_name in (out / "report.md").read_text()  # the tables keep the full name
    styles = Styles([["a", "b"]], {"estimator": {"a": long_name, "b": cjk}})
    assert len(styles.name("a")) == MAX_DRAWN and styles.name("a").endswith("…")
    import matplotlib.pyplot as plt

    from reports import figures
    from reports.select import gradient_cells
    from reports.style import style

    cells = gradient_cells(load_results(tmp_path).frame)
    with style():  # as the report draws it
        fig = figures.fig_vs_samples(cells, styles, "variance").fig
        fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    assert legend.x0 >= 0 and legend.x1 <= fig.bbox.width + 1, (legend, fig.bbox)
    plt.close(fig)


def test_the_fixture_still_reports_without_warnings_about_its_cells(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "r")
    loaded = load_results(tmp_path / "r")
    assert not [w for w in loaded.warnings if "impossible" in w or "not run" in w]
