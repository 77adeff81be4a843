"""Details files (suite/details.py, reports/details.py): what a run measures beyond its asv cells
joins the result file that stored the run's anchors, cell by cell, as if asv had stored it."""
from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from reports.details import attach
from reports.load import load_results
from suite import details
from suite.run import details_env

COLUMNS = ["result", "params", "version", "started_at", "duration"]
NAMES = ["task", "estimator", "num_samples", "device"]
PARAMS = [["t"], ["a", "b", "c"], [1, 4], ["cpu"]]
ANCHOR = "bench_gradients.QualityX.track_run_started"
T1, T2 = 1796000000.25, 1796000500.5


def _asv_params(params):
    return [[repr(v) for v in values] for values in params]


def result_file(run_of: dict[tuple, float], variance=0.5) -> dict:
    """An asv file holding variance and the anchor; ``run_of`` (estimator, K) -> run, absent =
    skipped (NaN)."""
    combos = [(e, k) for e in PARAMS[1] for k in PARAMS[2]]
    anchor = [run_of.get(c, math.nan) for c in combos]
    var = [variance if c in run_of else math.nan for c in combos]
    asv = _asv_params(PARAMS)
    return {"commit_hash": "abcdef0123456789", "env_name": "env", "date": 1795596079000,
            "params": {"machine": "m"}, "result_columns": COLUMNS, "version": 2,
            "results": {"bench_gradients.QualityX.track_variance": [var, asv, "v", 1, 1.0],
                        ANCHOR: [anchor, asv, "v", 1, 1.0]}}


def write_run(folder: Path, run: float, se_of) -> Path:
    """One run's details: the variance's standard error ``se_of(estimator, K)``, and a
    training-like benchmark anchored on a one-parameter anchor."""
    entries = [details.Entry("bench_gradients.QualityX.track_variance_se", NAMES, PARAMS,
                             "grad^2", ANCHOR, NAMES, lambda t, e, k, d: se_of(e, k))]
    return details.write("gradient-grid", run, entries, folder=folder)


def write_results(root: Path, data: dict) -> Path:
    (root / "m").mkdir(parents=True, exist_ok=True)
    meta = {"param_names": NAMES, "type": "track", "unit": "grad^2"}
    (root / "benchmarks.json").write_text(json.dumps(
        {"bench_gradients.QualityX.track_variance": meta, ANCHOR: meta}))
    (root / "m" / "abcdef01-env.json").write_text(json.dumps(data))
    return root


def _se(frame, estimator, k):
    row = frame[(frame.measure == "variance") & (frame.estimator == estimator)
                & (frame.num_samples == k)]
    assert len(row) == 1
    return float(row["se"].iloc[0])


def test_details_join_the_cells_whose_anchor_names_their_run(tmp_path):
    """Two narrowed runs accumulated in one file: each cell takes its standard error from the
    run its anchor names, never from the other run; a cell no run measured stays n/a."""
    root = tmp_path / "results"
    write_run(root / "details", T1, lambda e, k: 0.01 if e == "a" else 0.02)
    write_run(root / "details", T2, lambda e, k: 0.03)  # re-measured "b" only, but wrote all
    run_of = {("a", 1): T1, ("a", 4): T1, ("b", 1): T2, ("b", 4): T2}  # "c" never measured
    frame = load_results(write_results(root, result_file(run_of))).frame
    assert _se(frame, "a", 1) == 0.01 and _se(frame, "a", 4) == 0.01
    assert _se(frame, "b", 1) == 0.03 and _se(frame, "b", 4) == 0.03
    assert math.isnan(_se(frame, "c", 1))
    ok = frame[(frame.measure == "variance") & (frame.status == "ok")]
    assert ok["ci_low"].notna().all() and ok["ci_level"].eq(0.95).all()


def test_an_orphan_run_and_a_stored_benchmark_are_left_alone(tmp_path):
    """Details of a run the file does not name (a dry run, another commit) join nothing, and a
    benchmark asv itself stored (results from before details existed) keeps asv's numbers."""
    root = tmp_path / "results"
    write_run(root / "details", T2, lambda e, k: 0.03)
    frame = load_results(write_results(root, result_file({("a", 1): T1}))).frame
    assert math.isnan(_se(frame, "a", 1))
    data = result_file({("a", 1): T2})
    data["results"]["bench_gradients.QualityX.track_variance_se"] = [
        [0.07] * 6, _asv_params(PARAMS), "v", 1, 1.0]
    write_results(tmp_path / "r2", data)
    write_run(tmp_path / "r2" / "details", T2, lambda e, k: 0.03)
    frame = load_results(tmp_path / "r2").frame
    assert _se(frame, "a", 1) == 0.07


def test_failed_and_skipped_cells_keep_their_status(tmp_path):
    """None in a details file is a failed cell, NaN a skipped one, as in asv's own files."""
    root = tmp_path / "results"
    entries = [details.Entry("bench_gradients.QualityX.track_replicates", NAMES, PARAMS,
                             "replicates", ANCHOR, NAMES,
                             lambda t, e, k, d: None if e == "a" else math.nan if e == "b"
                             else 64.0)]
    details.write("gradient-grid", T1, entries, folder=root / "details")
    run_of = {(e, k): T1 for e in "abc" for k in (1, 4)}
    frame = load_results(write_results(root, result_file(run_of))).frame
    rep = frame[frame.measure == "replicates"].set_index("estimator")["status"]
    assert rep["a"].tolist() == ["failed"] * 2 and rep["b"].tolist() == ["skipped"] * 2
    assert rep["c"].tolist() == ["ok"] * 2
    assert frame[(frame.measure == "replicates") & (frame.status == "ok")]["value"].eq(64).all()


def test_an_anchor_with_fewer_parameters_owns_every_cell_of_its_task(tmp_path):
    """A training task's details are anchored on ``<Task>Info.track_run_started(task)``: one
    anchor cell per task owns every (method, seed, measure, step) cell of that task."""
    folder_root = tmp_path
    anchor = "bench_alignment.XInfo.track_run_started"
    params = [["x"], ["m1", "m2"], [0, 1], ["loss"], [0, 10]]
    details.write("training-x", T1, [details.Entry(
        "bench_alignment.XCurve.track_value", ["task", "method", "seed", "measure", "step"],
        params, "", anchor, ["task"], lambda t, m, s, ms, st: float(s * 100 + st))],
        folder=folder_root / "details")
    data = {"result_columns": COLUMNS,
            "results": {anchor: [[T1], [["'x'"]], "v", 5, 1.0]}}
    benchmarks: dict = {}
    attach(data, benchmarks, folder_root)
    row = data["results"]["bench_alignment.XCurve.track_value"]
    assert row[0] == [0.0, 10.0, 100.0, 110.0] * 2 and row[3] == 5  # the anchor's started_at
    assert benchmarks["bench_alignment.XCurve.track_value"]["param_names"][-1] == "step"


def test_a_corrupt_details_file_is_skipped_with_a_problem_named(tmp_path):
    root = tmp_path / "results"
    (root / "details").mkdir(parents=True)
    path = root / "details" / f"{T1!r}-gradient-grid.json.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("{not json")
    data = result_file({("a", 1): T1})
    problems: list[str] = []
    attach(data, {}, root, problems=problems)
    assert "bench_gradients.QualityX.track_variance_se" not in data["results"]
    assert len(problems) == 1 and str(path) in problems[0]


def test_where_details_go(tmp_path, monkeypatch):
    """ESTIBENCH_DETAILS, else the results folder of the asv.conf.json asv runs from; and
    ``python -m suite.run --config X`` points it at X's results folder."""
    monkeypatch.setenv("ESTIBENCH_DETAILS", str(tmp_path / "here"))
    assert details.details_dir() == tmp_path / "here"
    monkeypatch.delenv("ESTIBENCH_DETAILS")
    (tmp_path / "asv.conf.json").write_text(json.dumps({"results_dir": "out/results"}))
    monkeypatch.setenv("ASV_CONF_DIR", str(tmp_path))
    assert details.details_dir() == tmp_path / "out" / "results" / "details"
    env = details_env(["--quick", "--config", str(tmp_path / "asv.conf.json")], environ={})
    assert env["ESTIBENCH_DETAILS"] == str((tmp_path / "out" / "results" / "details").resolve())
    assert "ESTIBENCH_DETAILS" not in details_env(["--quick"], environ={})


@pytest.mark.parametrize("module", ["bench_gradients", "bench_alignment", "bench_landscape"])
def test_every_setup_computation_has_an_anchor(module):
    """Each module whose setup work writes details tracks a ``track_run_started`` in asv."""
    import importlib

    mod = importlib.import_module(f"suite.benchmarks.{module}")
    anchors = [name for name, cls in vars(mod).items() if isinstance(cls, type)
               and not name.startswith("_") and hasattr(cls, "track_run_started")]
    assert anchors, module


@pytest.mark.parametrize("bad", [
    {"anchor": ANCHOR},  # nothing else
    {"param_names": NAMES, "params": [["'t'"]], "result": [1.0], "anchor": ANCHOR,
     "anchor_params": NAMES},  # fewer params than names
    {"param_names": NAMES, "params": [["'t'"], ["'a'"], ["1"], ["'cpu'"]], "result": [1.0, 2.0],
     "anchor": ANCHOR, "anchor_params": NAMES},  # two results for one cell
    {"param_names": NAMES, "params": [["'t'"], ["'a'"], ["1"], ["'cpu'"]], "result": [1.0],
     "anchor": ANCHOR, "anchor_params": ["seed"]},  # an anchor parameter it does not have
    [1, 2, 3],
])
def test_a_malformed_details_benchmark_is_skipped_and_the_file_still_loads(tmp_path, bad):
    """One bad benchmark in a details file costs that benchmark, named in the warnings; the result
    file and the file's good benchmarks still load."""
    root = tmp_path / "results"
    path = write_run(root / "details", T1, lambda e, k: 0.01)
    with gzip.open(path, "rt") as fh:
        payload = json.load(fh)
    payload["benchmarks"]["bench_gradients.QualityX.track_bias_se"] = bad
    with gzip.open(path, "wt") as fh:
        json.dump(payload, fh)
    loaded = load_results(write_results(root, result_file({("a", 1): T1})))
    assert _se(loaded.frame, "a", 1) == 0.01
    assert any("track_bias_se skipped" in w for w in loaded.warnings), loaded.warnings
