"""The reports package on a fixture of asv results (tests/fixtures/asv_results, see its README).

Expected numbers are read straight from the fixture's JSON here, independently of
reports.load, and compared with the tidy frame, the tables and report.md.
"""
from __future__ import annotations

import ast
import itertools
import json
import math
import shutil
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy.stats import kendalltau, norm  # noqa: E402

from estibench import (
    cli,  # noqa: E402
    schema,  # noqa: E402
)
from estibench import schema as measures  # noqa: E402
from reports import figures, render, select, tables, write  # noqa: E402
from reports import safe as units  # noqa: E402
from reports.load import (
    load_results,  # noqa: E402
    parse_param,  # noqa: E402
    read_tidy,  # noqa: E402
)
from reports.style import Styles  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "asv_results"
#: the same kind of run, written before details files and <Task>Info existed: every number an
#: asv cell (results of that time must still load and render)
FIXTURE_BEFORE_DETAILS = Path(__file__).parent / "fixtures" / "asv_results_before_details"
ROOT = Path(__file__).resolve().parents[1]
# cuda_peakmem exists only where a GPU does (see test_a_gpu_machine_gets_its_own_figures)
GRADIENT_MEASURES = {"variance", "bias", "mse", "cosine_of_mean", "cosine",
                     "work_normalised_variance", "snr", "time_estimate", "peakmem_estimate",
                     "replicates"}
SUMMARY_MEASURES = {"final_metric_equal_steps", "final_metric_equal_time", "kendall_tau",
                    "metric_gain_per_second", "seconds_per_update", "evaluations_per_update"}


# -- the fixture read without reports.load -----------------------------------------------------
def _status(raw):
    if raw is None:
        return "failed"
    return "skipped" if isinstance(raw, float) and math.isnan(raw) else "ok"


def _run_name(row) -> str:
    """A run-file row's kind as a name (``gradient/.track_variance``), for :func:`_copy_fixture`."""
    return f"{row['group']}/{row['experiment'] or ''}.track_{row['measure']}"


def raw_cells(results: Path = FIXTURE):
    """One dict per cell and measure, read without reports.load: asv's own measurements
    (``time_*``, ``peakmem_*``) from the JSON files as asv documents them, every other number
    from the run files (pyarrow directly)."""
    import pyarrow.parquet as pq

    benchmarks = json.loads((results / "benchmarks.json").read_text())
    out, dates = [], {}
    for path in sorted(results.glob("*/*.json")):
        if path.name == "machine.json":
            continue
        data = json.loads(path.read_text())  # NaN tokens: Python's json reads them
        machine = data["params"]["machine"]
        dates[(machine, data["commit_hash"])] = data["date"]
        for name, row in data["results"].items():
            method = name.rsplit(".", 1)[1]
            if not method.startswith(("time_", "peakmem_")):
                continue
            cols = dict(zip(data["result_columns"], row))
            params = cols["params"]
            n = math.prod(len(p) for p in params)
            values = cols["result"] or [None] * n
            names = benchmarks[name]["param_names"]
            for i, (combo, value) in enumerate(zip(itertools.product(*params), values)):
                cell = {k: ast.literal_eval(v) for k, v in zip(names, combo)}
                group = "gradient" if "estimator" in cell else "other"
                cell.update(measure=method, group=group, experiment="" if group == "gradient"
                            else name.split(".")[-2], commit=data["commit_hash"],
                            date=data["date"], started=cols["started_at"] / 1e3,
                            machine=machine, raw=value, se=None,
                            ci=(cols.get("stats_ci_99_a") or [None] * n)[i],
                            ci_b=(cols.get("stats_ci_99_b") or [None] * n)[i])
                out.append(cell)
    for path in sorted((results / "runs").glob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            raw = row["value"] if row["status"] == "ok" else (
                None if row["status"] == "failed" else math.nan)
            cell = {k: v for k, v in row.items() if k in schema.COLUMNS[3:10] + ("step",)
                    and v not in (None, "")}
            cell["estimator_name"] = row["estimator_name"]
            cell["task_name"] = row["task_name"]
            cell["claims_unbiased"] = row["claims_unbiased"]
            cell.update(measure=row["measure"], group=row["group"],
                        experiment=row["experiment"] or "", commit=row["commit"],
                        date=dates[(row["machine"], row["commit"])],
                        started=row["run_started"], machine=row["machine"], raw=raw,
                        se=row["se"], ci=None, ci_b=None)
            out.append(cell)
    return out


RAW = raw_cells()
#: estimators registered as biased (claims_unbiased 0 on a run-file row): marked † in the tables
BIASED = {c["estimator"] for c in RAW if c.get("claims_unbiased") == 0}
#: estimator id -> the display name the run files record (what report.md shows, † after a biased one)
NAMES = {c["estimator"]: c["estimator_name"] + "\u2009†" * (c["estimator"] in BIASED)
         for c in RAW if c.get("estimator_name")}
#: task id -> its display name in the run files
TASK_NAMES = {c["task"]: c["task_name"] for c in RAW if c.get("task_name")}


def shown(text: str, sep: str = " = ") -> str:
    """A table cell of estimator ids as report.md shows it (display names)."""
    tie = text.startswith("tie: ")
    names = sep.join(NAMES.get(p, p) for p in text.removeprefix("tie: ").split(sep))
    return f"tie: {names}" if tie else names
MACHINES = sorted({c["machine"] for c in RAW})
MAIN = "fixture"  # the machine with two commits and the alignment results


def latest(machine=MAIN, group=lambda c: True):
    mine = [c for c in RAW if c["machine"] == machine and group(c)]
    top = max(c["date"] for c in mine)
    return [c for c in mine if c["date"] == top]


def is_gradient(c):
    return "estimator" in c


def is_alignment(c):
    return c["group"] in ("summary", "final", "curve", "info")


def run_cli(args, capsys):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def loaded():
    return load_results(FIXTURE)


#: the fixture's training tasks and which way their metric is better (its README)
DIRECTIONS = {"multilabel_digits": True, "markov_termination": False}


def add_task_info(results: Path, directions=DIRECTIONS) -> Path:
    """Add each training task's direction (group ``info``, measure ``higher_is_better``: the
    suite's record of it) as a run file of the latest commit of machine ``fixture`` under
    ``results`` (a copy of the fixture)."""
    dates = {json.loads(p.read_text())["date"]: json.loads(p.read_text())["commit_hash"]
             for p in (results / MAIN).glob("*-*.json")}
    commit = dates[max(dates)]
    rows = [schema.make_row("higher_is_better", 1.0 if higher else 0.0, group="info",
                            task=task, machine=MAIN, commit=commit, run_started=2e9)
            for task, higher in directions.items()]
    schema.write_run(rows, results, "2000000000.000000-info")
    return results


@pytest.fixture(scope="module")
def with_info(tmp_path_factory):
    """The fixture plus each training task's direction, as the suite now records it."""
    results = tmp_path_factory.mktemp("with_info") / "asv_results"
    shutil.copytree(FIXTURE, results)
    return load_results(add_task_info(results))


@pytest.fixture(scope="module")
def built(loaded):
    """The report of the whole fixture, built once (its figures stay open for inspection)."""
    report = render.compose(loaded, source=str(FIXTURE))
    yield report
    for figure in report.figures:
        plt.close(figure.fig)


@pytest.fixture(scope="module")
def report_dir(built, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    write.save_report(built, out, ["png"])
    return out


# -- the fixture ---------------------------------------------------------------------------------
def test_fixture_is_small_and_covers_every_case():
    size = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert size < 400_000
    assert {_status(c["raw"]) for c in RAW} == {"ok", "failed", "skipped"}
    assert len(MACHINES) == 2
    assert len({c["commit"] for c in RAW if c["machine"] == MAIN}) == 2
    assert GRADIENT_MEASURES <= {c["measure"] for c in RAW if is_gradient(c)}
    assert SUMMARY_MEASURES <= {c["measure"] for c in RAW if c["group"] == "summary"}
    assert {"seconds", "loss", "metric"} <= {c["measure"] for c in RAW
                                             if c["group"] == "curve"}


# -- loading -------------------------------------------------------------------------------------
def _key(row, params):
    exp = row["experiment"] if isinstance(row["experiment"], str) else ""
    return (row["group"], exp, row["commit"], row["machine"], row["measure"],
            frozenset((p, row[p]) for p in params if p in row and row[p] is not None
                      and not (isinstance(row[p], float) and math.isnan(row[p]))
                      and row[p] is not pd.NA))


def test_tidy_frame_holds_every_cell_with_its_value(loaded):
    frame = loaded.frame
    assert len(frame) == len(RAW)
    assert set(schema.COLUMNS) - {"value"} <= set(frame.columns)
    for name in ("task", "estimator", "num_samples", "device", "method", "seed", "step"):
        assert name in frame.columns
    assert str(frame["num_samples"].dtype) == "Int64"
    params = loaded.param_columns
    rows = {_key(r, params): r for r in frame.to_dict("records")}
    assert len(rows) == len(frame)
    for cell in RAW:
        row = rows[_key(cell, params)]
        assert row["status"] == _status(cell["raw"])
        if row["status"] == "ok":
            assert row["value"] == pytest.approx(cell["raw"], rel=1e-12)
        else:
            assert math.isnan(row["value"])
        se = cell["se"]
        if row["status"] == "ok" and isinstance(se, (int, float)) and math.isfinite(se):
            assert row["se"] == pytest.approx(se, rel=1e-12)
        else:
            assert math.isnan(row["se"])


def test_se_tracks_become_95_percent_intervals(loaded):
    frame = loaded.frame
    assert not frame["measure"].str.endswith("_se").any()
    with_se = frame[frame["se"].notna()]
    assert set(with_se["measure"]) >= {"variance", "bias", "mse", "cosine", "snr"}
    z = norm.ppf(0.975)
    assert (with_se["ci_low"] - (with_se["value"] - z * with_se["se"])).abs().max() < 1e-12 * \
        with_se["value"].abs().max()
    assert (with_se["ci_high"] - (with_se["value"] + z * with_se["se"])).abs().max() < 1e-12 * \
        with_se["value"].abs().max()
    assert (with_se["ci_level"] == 0.95).all()


def test_time_cells_keep_asvs_99_percent_interval(loaded):
    frame = loaded.frame
    timed = frame[(frame["measure"] == "time_estimate") & (frame["status"] == "ok")]
    cells = [c for c in RAW if c["measure"] == "time_estimate" and _status(c["raw"]) == "ok"]
    assert len(timed) == len(cells) > 0
    finite = [c for c in cells if c["ci"] is not None and math.isfinite(c["ci"])]
    assert finite
    assert sorted(timed["ci_low"].dropna()) == pytest.approx(sorted(c["ci"] for c in finite))
    assert (timed["ci_level"].dropna() == 0.99).all()
    assert (timed["ci_low"].dropna() <= timed.loc[timed["ci_low"].notna(), "value"]).all()


def test_groups_hold_their_measures(loaded):
    frame = loaded.frame
    assert "param_measure" not in frame.columns and "measure" not in loaded.param_columns
    for group in ("curve", "final", "summary"):
        expected = {c["measure"] for c in RAW if c["group"] == group}
        assert expected and set(frame.loc[frame["group"] == group, "measure"]) == expected
    assert set(frame.loc[frame["estimator"].notna(), "group"]) == {"gradient"}


@pytest.mark.parametrize("text,value", [("'cpu'", "cpu"), ("16", 16), ("0.5", 0.5),
                                        ("None", None), ("True", True),
                                        ("<function f at 0x1>", "<function f at 0x1>")])
def test_parse_param(text, value):
    assert parse_param(text) == value


def test_failed_and_skipped_cells_are_counted(loaded):
    frame = loaded.frame
    for status in ("ok", "failed", "skipped"):
        assert (frame["status"] == status).sum() == sum(_status(c["raw"]) == status for c in RAW)
    assert frame.loc[frame["status"] != "ok", "value"].isna().all()


# -- tables --------------------------------------------------------------------------------------
def _interval(c):
    if isinstance(c["se"], float) and math.isfinite(c["se"]):
        z = norm.ppf(0.975)
        return c["raw"] - z * c["se"], c["raw"] + z * c["se"]
    if isinstance(c["ci"], float) and isinstance(c["ci_b"], float):
        return c["ci"], c["ci_b"]
    return None


def _cell(c):
    return c["task"], c["estimator"], c["num_samples"], c["device"]


def round_off(machine=MAIN) -> dict:
    """(task, estimator, K, device) -> ``exact`` / ``deterministic``, from the results as the suite wrote
    them: a variance of 0 or an undefined SNR (noise below the suite's floor), and a relative bias at most
    1e-5 (exact) or above it (deterministic)."""
    cells = [c for c in latest(machine, is_gradient)]
    var = {_cell(c): c["raw"] for c in cells if c["measure"] == "variance" and _status(c["raw"]) == "ok"}
    undefined = {_cell(c) for c in cells if c["measure"] == "snr" and _status(c["raw"]) == "skipped"}
    bias = {_cell(c): c["raw"] for c in cells if c["measure"] == "bias" and _status(c["raw"]) == "ok"}
    return {k: "exact" if bias.get(k, math.inf) <= 1e-5 else "deterministic" for k, v in var.items()
            if v == 0 or k in undefined}


#: the round-off labels that take a cell out of a measure's ranking (issue 24, item 3)
NOT_RANKED = {"variance": ("exact", "deterministic"), "snr": ("exact", "deterministic"), "cosine": ("exact",)}


def _expected_best(measure, higher, machine=MAIN):
    """Per task: the K where most estimators have a result (all but the exact reference, known by its
    name, and cells at round-off where the measure means nothing there: an exact estimator's variance),
    the best (with every estimator whose interval overlaps the best's: a tie) and the first separated
    runner-up there, on cpu, from the JSON."""
    still = round_off(machine)
    cells = [c for c in latest(machine, is_gradient) if _status(c["raw"]) == "ok"
             and c["device"] == "cpu" and c["measure"] == measure
             and c["estimator"].split(":")[0] != "exact"]
    count_cells = cells
    cells = [c for c in cells if still.get(_cell(c)) not in NOT_RANKED.get(measure, ())]
    out = {}
    for task in {c["task"] for c in cells}:
        mine = [c for c in cells if c["task"] == task]
        count = defaultdict(set)
        for c in count_cells:
            if c["task"] == task:
                count[c["num_samples"]].add(c["estimator"])
        k = max(count, key=lambda k: (len(count[k]), k))
        at_k = sorted(((-c["raw"] if higher else c["raw"]), c["estimator"], _interval(c))
                      for c in mine if c["num_samples"] == k)
        top = at_k[0]
        tied = [e for v, e, iv in at_k if v == top[0] or (
            top[2] and iv and not (iv[1] < top[2][0] or top[2][1] < iv[0]))]
        behind = [(abs(v), e) for v, e, _ in at_k if e not in tied]
        best = tied[0] if len(tied) == 1 else "tie: " + " = ".join(tied)
        out[task] = (k, best, abs(top[0]), behind[0] if behind else (math.nan, None))
    return out


@pytest.mark.parametrize("measure,higher", [("variance", False), ("snr", True),
                                            ("cosine", True), ("time_estimate", False)])
def test_best_estimator_table_holds_the_fixture_numbers(report_dir, measure, higher):
    """Every estimator competes but the exact reference (the estimator named ``exact``; it was
    once left out for having variance 0, which also dropped deterministic estimators), and
    estimators whose intervals overlap the best's are a tie, never an order."""
    table = pd.read_csv(report_dir / "tables" / f"best_estimators-{MAIN}.csv")
    md = (report_dir / "report.md").read_text()
    expected = _expected_best(measure, higher)
    assert expected
    for task, (k, best, value, (runner_value, runner)) in expected.items():
        rows = table[(table["task"] == task) & (table["measure"] == measure)
                     & (table["device"] == "cpu")]
        assert len(rows) == 1
        row = rows.iloc[0]
        assert row["num_samples"] == k and row["better"] == ("higher" if higher else "lower")
        assert row["best"] == best
        assert row["value"] == pytest.approx(value, rel=1e-12)
        if runner is None:
            assert pd.isna(row["runner_up"])
        else:
            assert row["runner_up"] == runner
            assert row["runner_up_value"] == pytest.approx(runner_value, rel=1e-12)
            if value > 0:
                ratio = value / runner_value if higher else runner_value / value
                assert row["ratio"] == pytest.approx(ratio, rel=1e-9) and row["ratio"] >= 1
        unit = row["unit"] if isinstance(row["unit"], str) else None
        assert f"| {TASK_NAMES[task]} | {measure} | {k} | cpu | {shown(best)} | " \
            f"{units.quantity(value, unit)} |" \
            in md


def _summary_cells(task=None):
    cells = [c for c in latest(MAIN, is_alignment) if c["group"] == "summary"
             and _status(c["raw"]) == "ok"]
    return [c for c in cells if task is None or c["task"] == task]


def test_alignment_summary_is_mean_and_sd_over_seeds(report_dir):
    table = pd.read_csv(report_dir / "tables" / f"alignment_summary-{MAIN}.csv")
    md = (report_dir / "report.md").read_text()
    groups = defaultdict(list)
    for c in _summary_cells():
        groups[(c["task"], c["method"], c["measure"])].append(c["raw"])
    assert len(groups) >= 2 * len(SUMMARY_MEASURES)
    for (task, method, measure), values in groups.items():
        row = table[(table["task"] == task) & (table["method"] == method)
                    & (table["measure"] == measure)].iloc[0]
        mean, sd = statistics.fmean(values), statistics.stdev(values)
        assert row["mean"] == pytest.approx(mean, rel=1e-12, abs=1e-15)
        assert row["sd"] == pytest.approx(sd, rel=1e-9, abs=1e-15)
        assert row["seeds"] == len(values)
        if sd > 0 and mean != int(mean):
            assert f"{mean:.3g} ± {sd:.3g}" in md


def _task_means(task, measure):
    means = defaultdict(list)
    for c in _summary_cells(task):
        if c["measure"] == measure:
            means[c["method"]].append(c["raw"])
    return {m: statistics.fmean(v) for m, v in means.items()}


@pytest.mark.parametrize("task,higher", [("multilabel_digits", True),
                                         ("markov_termination", False)])
def test_best_method_follows_the_recorded_direction(with_info, task, higher):
    tasks = tables.training_tasks(with_info.frame)
    assert tasks[task].higher_is_better is higher  # from <Task>Info.track_higher_is_better
    frame = with_info.frame[with_info.frame["machine"] == MAIN]
    best = tables.best_methods(tables.alignment_summary(frame), tasks)
    for measure in ("final_metric_equal_steps", "final_metric_equal_time"):
        means = _task_means(task, measure)
        row = best[(best["task"] == task) & (best["measure"] == measure)].iloc[0]
        pick = max if higher else min
        # the best mean first; a tie when the t-intervals overlap (never an order)
        assert row["best"].removeprefix("tie: ").split(" = ")[0] == pick(means, key=means.get)
        assert row["best"].startswith("tie: ") == (row["distinct"] == "no")
        assert row["better"] == ("higher" if higher else "lower")
    means = _task_means(task, "seconds_per_update")
    row = best[(best["task"] == task) & (best["measure"] == "seconds_per_update")].iloc[0]
    assert row["best"].removeprefix("tie: ").split(" = ")[0] == min(means, key=means.get)


def test_an_unknown_task_direction_is_not_ranked(loaded):
    """Without the registry (a task registered nowhere here) the metric's direction is
    unknown: final metrics are shown but not ranked; measures with a fixed direction are."""
    frame = loaded.frame[loaded.frame["machine"] == MAIN]
    summary = tables.alignment_summary(frame)
    best = tables.best_methods(summary, {})
    assert best[best["measure"].str.startswith("final_metric")].empty
    assert not best[best["measure"] == "seconds_per_update"].empty
    assert set(summary["measure"]) >= SUMMARY_MEASURES


def test_results_without_task_info_leave_the_direction_unknown(tmp_path, capsys):
    """Results written before ``<Task>Info`` existed (the older fixture): every training task is
    known by name, its direction is unknown, and the report says its metrics are not ranked."""
    tasks = tables.training_tasks(load_results(FIXTURE_BEFORE_DETAILS).frame)
    assert tasks == {t: measures.TaskInfo(t, "held-out metric") for t in DIRECTIONS}  # named, no unit known
    assert all(info.higher_is_better is None for info in tasks.values())
    code, _, _ = run_cli(["report", "-q", "--results", FIXTURE_BEFORE_DETAILS, "--out",
                          tmp_path / "r"], capsys)
    assert code == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "do not say which way this task's metric is better" in md


def test_reports_import_neither_the_suite_nor_estimators(tmp_path):
    """Rendering a report imports no suite, estimators or torch (the results say it all);
    ``estibench.schema`` alone imports only the standard library."""
    code = (
        "import sys\n"
        "import estibench.schema\n"
        "light = {m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'pandas', 'matplotlib', 'numpy', 'suite', 'estimators')}\n"
        "assert not light, light\n"
        "from estibench import cli\n"
        f"assert cli.main(['report', '-q', '--results', {str(FIXTURE)!r}, "
        f"'--out', {str(tmp_path / 'r')!r}]) == 0\n"
        "bad = {m for m in sys.modules if m.split('.')[0] in ('torch', 'suite', 'estimators')}\n"
        "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("task", ["multilabel_digits", "markov_termination"])
def test_kendall_tau_in_the_alignment_table_is_the_curves(with_info, task):
    """The alignment table's Kendall τ per method (the suite's, mean over seeds) equals τ of −loss and
    the oriented metric over each run's checkpoints as suite/training.py defines it (+1: a lower loss came
    with a better metric), computed here from the results independently of reports."""
    tasks = tables.training_tasks(with_info.frame)
    summary = tables.alignment_summary(with_info.frame[with_info.frame["machine"] == MAIN])
    rows = summary[(summary["task"] == task) & (summary["measure"] == "kendall_tau")].set_index("method")
    sign = 1 if tasks[task].higher_is_better else -1
    curve = defaultdict(dict)
    for c in latest(MAIN, is_alignment):
        if c["group"] == "curve" and c["task"] == task:
            curve[(c["method"], c["seed"], c["step"])][c["measure"]] = c["raw"]
    taus = defaultdict(list)
    for method, seed in {k[:2] for k in curve}:
        points = [curve[k] for k in sorted(k for k in curve if k[:2] == (method, seed))]
        taus[method].append(kendalltau([-p["loss"] for p in points], [sign * p["metric"] for p in points]).statistic)
    assert len(taus) >= 2
    for method, values in taus.items():  # τ of a constant series is undefined: recorded as None, not averaged
        values = [v for v in values if math.isfinite(v)]
        if values:
            assert rows.loc[method, "mean"] == pytest.approx(statistics.fmean(values), abs=1e-12)
        else:
            assert method not in rows.index


# -- figures and the report ----------------------------------------------------------------------
EXPECTED_FIGURES = {"variance_vs_samples", "work_normalised_variance", "bias_vs_variance",
                    "snr_vs_samples", "time_vs_samples_cpu", "training_curves",
                    "loss_vs_metric", "history_time_estimate"}


def test_report_writes_valid_figures(report_dir):
    """PNGs of the whole fixture; SVG and PDF are checked on a thinner one (test_svg_pdf)."""
    from PIL import Image

    pngs = sorted((report_dir / "figures").glob("*.png"))
    names = {p.stem for p in pngs}
    assert {f"{n}-{MAIN}" for n in EXPECTED_FIGURES} <= names
    # the second machine has one commit and no alignment results: no history, no curves
    assert {f"{n}-fixture-b" for n in EXPECTED_FIGURES
            if n not in ("training_curves", "loss_vs_metric", "history_time_estimate")} <= names
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(png) as im:
            im.verify()
        with Image.open(png) as im:  # 3.3 in (column) or 7 in (text width) at 300 dpi
            width, height = im.size
            assert 800 <= width <= 2300 and 300 <= height <= 2.5 * width



def test_svg_pdf(tmp_path, capsys):
    results = _copy_fixture(tmp_path, _variance_only, machines=[MAIN])
    code, out, err = run_cli(["report", "--results", results, "--out", tmp_path / "r", "-q",
                              "--format", "svg,pdf"], capsys)
    assert code == 0
    svgs = list((tmp_path / "r" / "figures").glob("*.svg"))
    assert svgs and all(ET.parse(p).getroot().tag.endswith("svg") for p in svgs)
    assert all(p.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-" for p in svgs)
    page = (tmp_path / "r" / "report.html").read_text()
    assert page.count('src="data:image/svg+xml;base64,') == len(svgs)  # sharp at any zoom


def test_html_is_self_contained(report_dir):
    page = (report_dir / "report.html").read_text()
    figs = list((report_dir / "figures").glob("*.png"))
    assert page.count('src="data:image/png;base64,') == len(figs)
    assert 'src="http' not in page and "href=" not in page
    md = (report_dir / "report.md").read_text()
    for fig in figs:
        assert f"(figures/{fig.name})" in md


def test_report_shows_every_estimator_task_and_device_that_ran(report_dir):
    md = (report_dir / "report.md").read_text()
    for machine in MACHINES:
        ok = [c for c in latest(machine, is_gradient) if _status(c["raw"]) == "ok"]
        cover = pd.read_csv(report_dir / "tables" / f"coverage-{machine}.csv")
        for task, device in {(c["task"], c["device"]) for c in ok}:
            row = cover[(cover["task"] == task) & (cover["device"] == device)].iloc[0]
            ran = {c["estimator"] for c in ok if c["task"] == task and c["device"] == device}
            assert row["estimators"] == ", ".join(sorted(ran))
            assert f"| {TASK_NAMES[task]} | {device} | {shown(row['estimators'], ', ')} |" in md
    for c in RAW:
        assert c["commit"][:8] in md and c["machine"] in md


def test_report_notes_failed_and_skipped_cells(report_dir):
    md = (report_dir / "report.md").read_text()
    n_failed = sum(_status(c["raw"]) == "failed" for c in RAW)
    n_skipped = sum(_status(c["raw"]) == "skipped" for c in RAW)
    assert f"{n_failed} failed" in md and f"{n_skipped} skipped" in md
    for cell in RAW:
        if _status(cell["raw"]) == "failed":
            assert f"{cell['group']}: {cell['measure']} (" in md
            if "estimator" in cell:
                assert f"estimator={cell['estimator']}" in md


def test_one_colour_per_name_in_every_figure(built, loaded):
    """Every drawn line and scatter of an estimator or method has that name's colour, in every
    figure of both machines."""
    frame = loaded.frame
    styles = render._styles(frame, {})
    names = set(frame["estimator"].dropna()) | set(frame["method"].dropna())
    seen = defaultdict(set)
    for fig in built.figures:
        for ax in fig.fig.axes:
            for artist in list(ax.lines) + list(ax.collections):
                label = artist.get_label()
                if label not in names:
                    continue
                colour = artist.get_color() if hasattr(artist, "get_marker") else \
                    artist.get_facecolor()[0][:3]
                assert matplotlib.colors.to_rgb(colour) == pytest.approx(
                    styles.colour(label), abs=1e-6), (fig.name, label)
                seen[fig.name].add(label)
    # every estimator with a variance, 0 included (exact: drawn at the log axis's edge)
    drawn = {c["estimator"] for c in latest(MAIN, is_gradient) if c["measure"] == "variance"
             and _status(c["raw"]) == "ok"}
    assert "exact" in drawn and drawn == seen[f"variance_vs_samples-{MAIN}"]
    assert "exact" in seen[f"bias_vs_variance-{MAIN}"]
    methods = {c["method"] for c in latest(MAIN, is_alignment) if c["group"] == "curve"
               and _status(c["raw"]) == "ok"}
    assert methods and methods == seen[f"training_curves-{MAIN}"]


def test_styles_never_repeat_within_a_group():
    groups = [["a", "b", "c", "gumbel_softmax"], ["x", "gumbel_softmax", "y"],
              [f"m{i}" for i in range(12)]]
    styles = Styles(groups)
    for group in groups:
        pairs = {(styles.colour(n), styles.marker(n)) for n in group}
        assert len(pairs) == len(group)
        if len(group) <= 10:
            assert len({styles.colour(n) for n in group}) == len(group)
    assert Styles(groups).colour("y") == styles.colour("y")  # deterministic


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
    assert "no readable results" in _one_line_error(err)


def test_only_corrupt_files(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "abc-env.json").write_text('{"results": {"x": [1, ')
    code, out, err = run_cli(["report", "--results", tmp_path, "--out", tmp_path / "r", "-q"],
                             capsys)
    assert code != 0
    assert "nothing to report" in _one_line_error(err)


def _copy_fixture(tmp_path, keep=lambda benchmark: True, machines=None) -> Path:
    """A copy of the fixture; ``keep`` thins its benchmarks and run-file rows (by
    :func:`_run_name`): fewer figures, a faster test."""
    results = tmp_path / "results"
    shutil.copytree(FIXTURE, results)
    for folder in results.iterdir():
        if folder.is_dir() and machines is not None and folder.name not in machines \
                and folder.name != "runs":
            shutil.rmtree(folder)
    for path in results.glob("*/*.json"):
        if path.name == "machine.json":
            continue
        data = json.loads(path.read_text())
        data["results"] = {k: v for k, v in data["results"].items() if keep(k)}
        path.write_text(json.dumps(data))
    for path in (results / "runs").glob("*.parquet"):
        frame = schema.read_run(path)
        rows = [r for r in frame.astype(object).where(frame.notna(), None).to_dict("records")
                if keep(_run_name(r)) and (machines is None or r["machine"] in machines)]
        path.unlink()
        if rows:
            schema.write_run(rows, results, path.stem)
    return results


def _variance_only(name):
    return ".track_variance" in name


def test_one_corrupt_file_among_good_ones(tmp_path, capsys):
    results = _copy_fixture(tmp_path, _variance_only, machines=[MAIN])
    (results / MAIN / "deadbeef-env.json").write_text("{not json")
    code, out, err = run_cli(["report", "--results", results, "--out", tmp_path / "r", "-q"],
                             capsys)
    assert code == 0
    assert "deadbeef-env.json" in err and "Traceback" not in err
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Files left out" in md and "deadbeef-env.json" in md
    # one machine: figure names carry no machine suffix
    assert (tmp_path / "r" / "figures" / "variance_vs_samples.png").is_file()


def test_missing_benchmarks_json_still_reports(tmp_path, capsys):
    results = _copy_fixture(tmp_path, lambda n: "time_estimate" in n or "variance" in n,
                            machines=[MAIN])
    (results / "benchmarks.json").unlink()
    code, out, err = run_cli(["report", "--results", results, "--out", tmp_path / "r", "-q"],
                             capsys)
    assert code == 0 and "benchmarks.json" in err
    frame = load_results(results).frame  # asv's own cells: parameters without their names
    assert {"param1", "param2", "param3", "param4"} <= set(frame.columns)


def test_all_cells_failed_is_a_bare_null(tmp_path, capsys):
    """asv stores a benchmark whose every cell failed as ``null`` for the whole column."""
    results = _copy_fixture(tmp_path, lambda n: ".time_estimate" in n, machines=[MAIN])
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
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Failed cells" in md and "Figures not drawn" in md


def _time_only(name):
    return ".time_estimate" in name


def test_a_cell_that_is_not_a_number_is_failed_and_said(tmp_path):
    results = _copy_fixture(tmp_path, _time_only, machines=[MAIN])
    path = sorted(results.glob(f"{MAIN}/*-*.json"))[0]
    data = json.loads(path.read_text())
    name = next(iter(data["results"]))
    cells = data["results"][name][0]
    i = next(i for i, v in enumerate(cells) if _status(v) == "ok")
    cells[i] = [1, 2]  # asv stores what a track returns; a list is no result
    path.write_text(json.dumps(data))
    loaded = load_results(results)
    assert any(name in w and "other than a number" in w for w in loaded.warnings)
    before = load_results(_copy_fixture(tmp_path / "b", _time_only, machines=[MAIN])).frame
    assert (loaded.frame["status"] == "failed").sum() == (before["status"] == "failed").sum() + 1


def test_partial_results_still_give_a_report(tmp_path, capsys):
    """Only alignment results, of one machine: the gradient parts say why they are absent."""
    results = _copy_fixture(tmp_path, lambda n: n.split("/")[0] in ("summary", "final", "curve",
                                                                     "info"),
                            machines=[MAIN])
    code, out, err = run_cli(["report", "--results", results, "--out", tmp_path / "r", "-q"],
                             capsys)
    assert code == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "variance vs samples: no gradient benchmark results" in md
    assert (tmp_path / "r" / "figures" / "training_curves.png").is_file()


def test_a_gpu_machine_gets_its_own_figures(tmp_path):
    """The fixture ran on CPUs only; here its skipped cuda timings get numbers and a
    CudaMemory benchmark is added, as a GPU machine would record them."""
    results = _copy_fixture(tmp_path, lambda n: "CostBernoulli.time_estimate" in n
                            or n == "gradient/.track_variance", machines=[MAIN])
    bench = json.loads((results / "benchmarks.json").read_text())
    cost = "bench_gradients.CostBernoulli.time_estimate"
    name = "bench_gradients.CudaMemoryBernoulli.track_cuda_peakmem"
    params = [p if i < 3 else ["'cuda'"] for i, p in enumerate(bench[cost]["params"])]
    bench[name] = {"name": name, "param_names": bench[cost]["param_names"], "params": params,
                   "type": "track", "unit": "bytes"}
    (results / "benchmarks.json").write_text(json.dumps(bench))
    expected = {}
    for path in results.glob(f"{MAIN}/*-*.json"):
        data = json.loads(path.read_text())
        row = data["results"][cost]
        combos = list(itertools.product(*row[1]))
        # a GPU measures what the CPU did (the fixture's narrowed tasks), twice as fast; the
        # rest is n/a
        cpu_time = {c[:3]: v for c, v in zip(combos, row[0]) if _status(v) == "ok"}
        measured = set(cpu_time)
        row[1] = [*row[1][:3], ["'cpu'", "'cuda'"]]
        row[0] = [cpu_time.get(c[:3], math.nan) * (1.0 if c[3] == "'cpu'" else 0.5)
                  for c in itertools.product(*row[1])]
        bench[cost]["params"] = row[1]
        cuda = [(c, 1000.0 * (j + 1) if c[:3] in measured else math.nan)
                for j, c in enumerate(itertools.product(*params))]
        data["results"][name] = [[v for _, v in cuda], params]
        expected[data["commit_hash"]] = {ast.literal_eval(c[1]): v for c, v in cuda
                                         if ast.literal_eval(c[2]) == 16 and v == v}
        path.write_text(json.dumps(data))
    (results / "benchmarks.json").write_text(json.dumps(bench))
    frame = load_results(results).frame
    assert set(frame.loc[frame["status"] == "ok", "device"]) == {"cpu", "cuda"}
    best = tables.best_estimators(frame)
    cuda = best[(best["measure"] == "cuda_peakmem") & (best["device"] == "cuda")]
    assert len(cuda) == 1 and cuda.iloc[0]["num_samples"] == 16
    latest_commit = select.latest_commit(frame)["commit"].iloc[0]
    mem = {e: v for e, v in expected[latest_commit].items() if e != "exact"}  # variance 0
    assert cuda.iloc[0]["best"] == min(mem, key=mem.get)
    assert set(best.loc[best["measure"] == "time_estimate", "device"]) == {"cpu", "cuda"}
    styles = render._styles(frame, {})
    built, _ = figures.build_figures(frame, styles, {})
    try:
        assert {"time_vs_samples_cpu", "time_vs_samples_cuda"} <= {f.name for f in built}
    finally:
        for f in built:
            plt.close(f.fig)


# -- command line --------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tidy_export_round_trips(tmp_path, capsys, suffix):
    results = _copy_fixture(tmp_path, _variance_only, machines=[MAIN])
    tidy = tmp_path / f"tidy{suffix}"
    code, out, err = run_cli(["report", "--results", results, "--out", tmp_path / "r", "-q",
                              "--format", "png", "--tidy", tidy], capsys)
    assert code == 0
    frame = load_results(results).frame
    back = read_tidy(tidy)
    # parquet keeps every type; CSV brings integers with gaps back as floats
    pd.testing.assert_frame_equal(back, frame, check_dtype=(suffix == ".parquet"))


def test_bad_format_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", "--results", str(FIXTURE), "--format", "gif"])
    assert exc.value.code == 2
    assert "png, svg, pdf" in capsys.readouterr().err


def test_list_prints_every_registry_with_its_info(capsys):
    code, out, err = run_cli(["list"], capsys)
    assert code == 0 and "Traceback" not in err
    import estimators
    from suite.registries import TASKS, TRAINING_TASKS

    for title in ("Estimators", "Losses", "Metrics", "Gradient tasks", "Training tasks"):
        assert f"\n{title} (" in "\n" + out
    for name in estimators.available():
        info = estimators.info(name).info
        assert f"  {name} — {info['description']}" in out
        assert f"kind: {info['kind']}; unbiased: {info['unbiased']}" in out
    for name in list(TASKS) + list(TRAINING_TASKS):
        assert f"  {name} — " in out
    for name in TRAINING_TASKS:
        task = TRAINING_TASKS[name].factory
        assert f"metric: {task.metric}" in out and f"higher_is_better: {task.higher_is_better}" \
            in out


def test_python_dash_m_estibench(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "estibench", "report", "--results",
                           str(tmp_path / "nope")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("estibench: nothing to report: no results folder")


def test_list_survives_a_broken_task_module(capsys, monkeypatch):
    import importlib

    real = importlib.import_module

    def broken(name, *args, **kwargs):
        if name == "suite.tasks":
            raise RuntimeError("boom")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", broken)
    code, out, err = run_cli(["list"], capsys)
    assert code == 0
    assert "Estimators (" in out and "Gradient tasks (" in out
    assert "could not import suite.tasks: RuntimeError: boom" in err and "Traceback" not in err
