"""The reports package on a fixture of real asv results (tests/fixtures/asv_results).

The expected numbers are read straight from the fixture's JSON here, independently of
reports.load, and compared with the tidy frame, the tables and report.md.
"""
from __future__ import annotations

import ast
import itertools
import json
import math
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from reports import cli  # noqa: E402
from reports.load import (FIXED_COLUMNS_END, PARAM_COLUMNS_START, load_results,  # noqa: E402
                          parse_param, read_tidy)

FIXTURE = Path(__file__).parent / "fixtures" / "asv_results"
ROOT = Path(__file__).resolve().parents[1]


# -- the fixture read without reports.load -----------------------------------------------------
def raw_cells(results: Path = FIXTURE):
    """One dict per cell, from the JSON files as asv documents them."""
    benchmarks = json.loads((results / "benchmarks.json").read_text())
    out = []
    for path in sorted(results.glob("*/*.json")):
        if path.name == "machine.json":
            continue
        data = json.loads(path.read_text())  # NaN tokens: Python's json reads them
        for name, row in data["results"].items():
            cols = dict(zip(data["result_columns"], row))
            params = cols["params"]
            values = cols["result"] or [None] * math.prod(len(p) for p in params)
            names = benchmarks[name]["param_names"]
            for combo, value in zip(itertools.product(*params), values):
                cell = {n: ast.literal_eval(v) for n, v in zip(names, combo)}
                cell.update(benchmark=name, commit=data["commit_hash"], date=data["date"],
                            machine=data["params"]["machine"], raw=value)
                out.append(cell)
    return out


def _status(raw):
    if raw is None:
        return "failed"
    return "skipped" if isinstance(raw, float) and math.isnan(raw) else "ok"


RAW = raw_cells()
LATEST = max(c["date"] for c in RAW)


def run_cli(args, capsys):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="session")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    code = cli.main(["report", "--results", str(FIXTURE), "--out", str(out),
                     "--format", "png,svg,pdf", "--quiet"])
    assert code == 0
    return out


# -- loading -------------------------------------------------------------------------------------
def test_fixture_is_small_and_real():
    size = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert size < 1_000_000
    assert {_status(c["raw"]) for c in RAW} == {"ok", "failed", "skipped"}


def test_tidy_frame_holds_every_cell_with_its_value():
    frame = load_results(FIXTURE).frame
    assert len(frame) == len(RAW)
    assert list(frame.columns[:4]) == PARAM_COLUMNS_START
    assert list(frame.columns[-len(FIXED_COLUMNS_END):]) == FIXED_COLUMNS_END
    for name in ("task", "estimator", "num_samples", "device", "setting", "method", "seed",
                 "checkpoint"):
        assert name in frame.columns
    assert str(frame["num_samples"].dtype) == "Int64"
    params = [c for c in frame.columns if c not in PARAM_COLUMNS_START + FIXED_COLUMNS_END]

    def key(benchmark, commit, values):
        return benchmark, commit, frozenset((k, v) for k, v in values.items()
                                            if v is not None and not pd.isna(v))

    rows = {key(r["benchmark"], r["commit"], {p: r[p] for p in params}): r
            for r in frame.to_dict("records")}
    assert len(rows) == len(frame)
    for cell in RAW:
        row = rows[key(cell["benchmark"], cell["commit"],
                       {p: cell[p] for p in params if p in cell})]
        assert row["status"] == _status(cell["raw"])
        if row["status"] == "ok":
            assert row["value"] == pytest.approx(cell["raw"], rel=1e-12)
        else:
            assert math.isnan(row["value"])
        assert row["machine"] == cell["machine"]


def test_measure_and_type():
    frame = load_results(FIXTURE).frame
    sample = frame.drop_duplicates("benchmark").set_index("benchmark")
    for name, row in sample.iterrows():
        method = name.rsplit(".", 1)[-1]
        prefix = method.split("_", 1)[0]
        assert row["measure"] == method.split("_", 1)[1]
        assert row["type"] == {"time": "time", "track": "track", "peakmem": "peakmemory",
                               "mem": "memory"}[prefix]
        assert row["suite_module"] == name.split(".")[0]


def test_ci_columns_come_from_asv_stats():
    frame = load_results(FIXTURE).frame
    timed = frame[(frame["type"] == "time") & (frame["status"] == "ok")]
    assert not timed.empty and timed["ci_low"].notna().all()
    assert (timed["ci_low"] <= timed["ci_high"]).all()
    tracked = frame[frame["type"] == "track"]
    assert tracked["ci_low"].isna().all()


@pytest.mark.parametrize("text,value", [("'cpu'", "cpu"), ("16", 16), ("0.5", 0.5),
                                        ("None", None), ("True", True),
                                        ("<function f at 0x1>", "<function f at 0x1>")])
def test_parse_param(text, value):
    assert parse_param(text) == value


# -- the report ----------------------------------------------------------------------------------
def test_report_writes_valid_figures(report_dir):
    from PIL import Image

    pngs = sorted((report_dir / "figures").glob("*.png"))
    names = {p.stem for p in pngs}
    assert {"variance_vs_samples", "bias_vs_variance", "snr_vs_samples",
            "work_normalised_variance", "training_curves", "loss_vs_metric",
            "history"} <= names
    assert any(n.startswith("time_vs_samples_") for n in names)
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(png) as im:
            im.verify()
        with Image.open(png) as im:  # 3.3 in at 300 dpi, legend may widen it a little
            assert 900 <= im.size[0] <= 1400
        svg = png.with_suffix(".svg")
        assert ET.parse(svg).getroot().tag.endswith("svg")
        assert png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"


def test_html_is_self_contained(report_dir):
    page = (report_dir / "report.html").read_text()
    figures = list((report_dir / "figures").glob("*.png"))
    assert page.count('src="data:image/svg+xml;base64,') == len(figures)
    assert "src=\"http" not in page and "href=" not in page
    md = (report_dir / "report.md").read_text()
    for fig in figures:
        assert f"(figures/{fig.name})" in md


def _expected_best(measure_method: str, lower: bool = True):
    """Best non-reference estimator per task at the largest K with >= 2 estimators, latest
    commit, cpu: straight from the JSON."""
    cells = [c for c in RAW if c["benchmark"].endswith("." + measure_method)
             and c["date"] == LATEST and c.get("device", "cpu") == "cpu"
             and c["estimator"] != "exact" and _status(c["raw"]) == "ok"]
    out = {}
    for task in {c["task"] for c in cells}:
        mine = [c for c in cells if c["task"] == task]
        ks = [k for k in {c["num_samples"] for c in mine}
              if len({c["estimator"] for c in mine if c["num_samples"] == k}) >= 2]
        k = max(ks)
        at_k = sorted((c["raw"] if lower else -c["raw"], c["estimator"]) for c in mine
                      if c["num_samples"] == k)
        out[task] = (k, at_k[0][1], abs(at_k[0][0]), at_k[1][1], abs(at_k[1][0]))
    return out


@pytest.mark.parametrize("method,label,lower", [("track_variance", "variance", True),
                                                ("track_snr", "snr", False)])
def test_best_estimator_table_holds_the_fixture_numbers(report_dir, method, label, lower):
    table = pd.read_csv(report_dir / "tables" / "best_estimators.csv")
    md = (report_dir / "report.md").read_text()
    expected = _expected_best(method, lower)
    assert expected
    for task, (k, best, value, runner, runner_value) in expected.items():
        row = table[(table["task"] == task) & (table["measure"] == label)].iloc[0]
        assert row["num_samples"] == k
        assert row["best"] == best and row["runner_up"] == runner
        assert row["value"] == pytest.approx(value, rel=1e-12)
        assert row["runner_up_value"] == pytest.approx(runner_value, rel=1e-12)
        ratio = runner_value / value if lower else value / runner_value
        assert row["ratio"] == pytest.approx(ratio, rel=1e-9)
        assert f"| {task} | {label} | {k} | cpu | {best} | {value:.4g} |" in md


def test_report_names_machine_commits_and_failed_cells(report_dir):
    md = (report_dir / "report.md").read_text()
    for cell in RAW:
        assert cell["commit"][:8] in md
        assert cell["machine"] in md
    n_failed = sum(_status(c["raw"]) == "failed" for c in RAW)
    n_skipped = sum(_status(c["raw"]) == "skipped" for c in RAW)
    assert f"{n_failed} failed" in md and f"{n_skipped} skipped" in md
    for cell in RAW:
        if _status(cell["raw"]) == "failed":
            assert cell["benchmark"] + "(" in md
            assert f"estimator={cell['estimator']!r}" in md


# -- bad input -----------------------------------------------------------------------------------
def _one_line_error(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_missing_results_folder(tmp_path, capsys):
    code, out, err = run_cli(["report", "--results", tmp_path / "nope", "--out", tmp_path / "r"],
                             capsys)
    assert code != 0
    assert "no results folder" in _one_line_error(err)
    assert not (tmp_path / "r").exists()


def test_empty_results_folder(tmp_path, capsys):
    (tmp_path / "results" / "machine").mkdir(parents=True)
    code, out, err = run_cli(["report", "--results", tmp_path / "results", "--out",
                              tmp_path / "r"], capsys)
    assert code != 0
    assert "no asv result files" in _one_line_error(err)


def test_only_corrupt_files(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "abc-env.json").write_text('{"results": {"x": [1, ')
    code, out, err = run_cli(["report", "--results", tmp_path, "--out", tmp_path / "r", "-q"],
                             capsys)
    assert code != 0
    assert "nothing to report" in _one_line_error(err)


def _copy_fixture(tmp_path, keep=lambda benchmark: True) -> Path:
    """A copy of the fixture; ``keep`` thins its benchmarks (fewer figures: a faster test)."""
    results = tmp_path / "results"
    shutil.copytree(FIXTURE, results)
    for path in results.glob("*/*.json"):
        if path.name == "machine.json":
            continue
        data = json.loads(path.read_text())
        data["results"] = {k: v for k, v in data["results"].items() if keep(k)}
        path.write_text(json.dumps(data))
    return results


def _variance_only(name):
    return name.endswith(".track_variance")


def test_one_corrupt_file_among_good_ones(tmp_path, capsys):
    results = _copy_fixture(tmp_path, _variance_only)
    machine_dir = next(p.parent for p in results.glob("*/machine.json"))
    (machine_dir / "deadbeef-env.json").write_text("{not json")
    code, out, err = run_cli(["report", "--results", results, "--out", tmp_path / "r", "-q"],
                             capsys)
    assert code == 0
    assert "deadbeef-env.json" in err and "Traceback" not in err
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Files left out" in md and "deadbeef-env.json" in md
    assert (tmp_path / "r" / "figures" / "variance_vs_samples.png").is_file()


def test_missing_benchmarks_json_still_reports(tmp_path, capsys):
    results = _copy_fixture(tmp_path, _variance_only)
    (results / "benchmarks.json").unlink()
    code, out, err = run_cli(["report", "--results", results, "--out", tmp_path / "r", "-q"],
                             capsys)
    assert code == 0 and "benchmarks.json" in err
    frame = load_results(results).frame
    assert {"param1", "param2", "param3", "param4"} <= set(frame.columns)


def test_failed_and_skipped_cells_are_counted(tmp_path):
    frame = load_results(FIXTURE).frame
    for status in ("ok", "failed", "skipped"):
        assert (frame["status"] == status).sum() == sum(_status(c["raw"]) == status for c in RAW)
    assert frame.loc[frame["status"] != "ok", "value"].isna().all()


def test_all_cells_failed_is_a_bare_null(tmp_path, capsys):
    """asv stores a benchmark whose every cell failed as ``null`` for the whole column."""
    results = _copy_fixture(tmp_path, _variance_only)
    for path in results.glob("*/*-*.json"):
        data = json.loads(path.read_text())
        for row in data["results"].values():
            row[0] = None
        path.write_text(json.dumps(data))
    frame = load_results(results).frame
    assert (frame["status"] == "failed").all()
    code, out, err = run_cli(["report", "--results", results, "--out", tmp_path / "r", "-q"],
                             capsys)
    assert code == 0  # a report that says everything failed is still a report
    assert "Failed cells" in (tmp_path / "r" / "report.md").read_text()


def test_many_machines(tmp_path, capsys):
    results = _copy_fixture(tmp_path, _variance_only)
    src = next(p.parent for p in results.glob("*/machine.json"))
    twin = results / "twin"
    shutil.copytree(src, twin)
    for path in twin.glob("*.json"):
        data = json.loads(path.read_text())
        if path.name == "machine.json":
            data["machine"] = "twin"
        else:
            data["params"]["machine"] = "twin"
        path.write_text(json.dumps(data))
    code, out, err = run_cli(["report", "--results", results, "--out", tmp_path / "r", "-q"],
                             capsys)
    assert code == 0
    frame = load_results(results).frame
    assert set(frame["machine"]) == {src.name, "twin"}
    figures = {p.stem for p in (tmp_path / "r" / "figures").glob("*.png")}
    assert {f"variance_vs_samples-{src.name}", "variance_vs_samples-twin"} <= figures


# -- command line --------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tidy_export_round_trips(tmp_path, capsys, suffix):
    results = _copy_fixture(tmp_path, _variance_only)
    tidy = tmp_path / f"tidy{suffix}"
    code, out, err = run_cli(["report", "--results", results, "--out", tmp_path / "r", "-q",
                              "--format", "png", "--tidy", tidy], capsys)
    assert code == 0
    frame = load_results(results).frame
    back = read_tidy(tidy)
    # parquet keeps every type; CSV brings integers with gaps back as floats
    pd.testing.assert_frame_equal(back, frame, check_dtype=(suffix == ".parquet"))


def test_bad_format_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", "--results", str(FIXTURE), "--format", "gif"])
    assert exc.value.code == 2
    assert "png, svg, pdf" in capsys.readouterr().err


def test_list_prints_every_registry(capsys):
    code, out, err = run_cli(["list"], capsys)
    assert code == 0 and "Traceback" not in err
    import estimators

    for title in ("Estimators", "Losses", "Metrics", "Tasks", "Training tasks"):
        assert f"\n{title} (" in "\n" + out
    for name in estimators.available():
        assert f"  {name}" in out


def test_python_dash_m_reports(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "reports", "report", "--results",
                           str(tmp_path / "nope")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("estibench: nothing to report: no results folder")


def test_palette_is_keyed_by_name():
    from reports.figures import palette

    a = palette(["score_function", "gumbel_softmax", "exact"])
    b = palette(["score_function", "reparam"])
    assert a["score_function"] == b["score_function"]
    many = palette([f"est{i}" for i in range(10)])
    assert len(set(many.values())) == 10


def test_list_survives_a_broken_task_module(capsys, monkeypatch):
    real = cli.importlib.import_module

    def broken(name, *args, **kwargs):
        if name == "suite.tasks":
            raise RuntimeError("boom")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(cli.importlib, "import_module", broken)
    code, out, err = run_cli(["list"], capsys)
    assert code == 0
    assert "Estimators (" in out and "Tasks (" in out
    assert "could not import suite.tasks: RuntimeError: boom" in err and "Traceback" not in err
