"""Issue 24, items 1 and 2: ``estibench compare SPEC`` (ratios and differences against baselines with
95 % intervals and verdicts, reports/compare.py) and results that never mix code versions (stale
cells, reports/versions.py).

The unit tests build small results folders with :func:`estibench.schema.make_row` and check the
numbers against the formulas stated in reports/compare.py. The end-to-end test is the issue's "Done
when": a plugin of the test's own (an unbiased estimator, better than leave-one-out on one task, tied
on another, worse on a third) is benchmarked by the suite's gradient grid in this process, compared,
then changed and one task rerun: the report flags the other tasks' cells as stale and compares only
like with like."""
from __future__ import annotations

import importlib
import json
import math
import sys
import time
from pathlib import Path

import pytest
from scipy import stats

from estibench import cli, schema
from reports import UsageError, build_report
from reports.compare import FIELD, check, compare
from reports.load import CI_Z, load_results
from reports.versions import rerun_commands, stale, stale_cells

ROW = dict(group="gradient", device="cpu", machine="m", commit="c" * 40, torch_version="2.0")


def _cell(task, est, var, se, *, k=4, evals=None, seconds=1e-3, claims=1.0, verdict=1.0, grads=0.0,
          version="pkg==1#aaa", task_version="tasks==1#ttt") -> list[dict]:
    """The rows of one gradient cell (mse = variance: an unbiased cell)."""
    cols = dict(ROW, task=task, estimator=est, num_samples=k, claims_unbiased=claims, estimator_name=f"{est} (name)",
                task_name=f"{task} (name)", estimator_version=version, task_version=task_version)
    return [schema.make_row("variance", var, se=se, **cols), schema.make_row("mse", var, se=se, **cols),
            schema.make_row("evaluations", k if evals is None else evals, **cols),
            schema.make_row("grad_evaluations", grads, **cols),
            schema.make_row("seconds_per_estimate", seconds, **cols), schema.make_row("claim_verdict", verdict, **cols)]


def _write(folder: Path, rows: list[dict], started: float = 1.9e9) -> None:
    schema.write_run([{**r, "run_started": started} for r in rows], folder, f"{started:.6f}-test")


def _loaded(folder: Path, *runs: list[dict]):
    for i, rows in enumerate(runs):
        _write(folder, rows, 1.9e9 + 100 * i)
    return load_results(folder).frame


def _row(table, task, baseline, comparison):
    hit = table[(table["task"] == task) & (table["baseline"] == baseline) & (table["comparison"] == comparison)]
    assert len(hit) == 1, table[["task", "baseline", "comparison"]]
    return hit.iloc[0]


def test_ratio_interval_and_verdict_follow_the_stated_formulas(tmp_path):
    frame = _loaded(tmp_path, _cell("t", "mine", 2.0, 0.1, evals=4, seconds=1e-3)
                    + _cell("t", "base", 4.0, 0.2, evals=8, seconds=2e-3)
                    + _cell("u", "mine", 1.0, 0.1) + _cell("u", "base", 1.05, 0.1)  # covers 1: a tie
                    + _cell("v", "mine", 2.0, 0.01) + _cell("v", "base", 1.0, 0.01))  # worse
    table, notes = compare(frame, "mine", ["base"])
    assert notes == []
    row = _row(table, "t", "base", "variance_equal_evaluations")
    s = math.hypot(0.1 / 2.0, 0.2 / 4.0)  # delta method on the log ratio
    assert row["estimate"] == pytest.approx(2.0 * 4 / (4.0 * 8))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.25 * math.exp(-CI_Z * s), 0.25 * math.exp(CI_Z * s)))
    assert row["verdict"] == "better" and row["baseline_name"] == "base (name)" and row["task_name"] == "t (name)"
    seconds = _row(table, "t", "base", "variance_equal_seconds")
    assert seconds["estimate"] == pytest.approx(2.0 * 1e-3 / (4.0 * 2e-3)) and seconds["verdict"] == "better"
    time_row = _row(table, "t", "base", "seconds_per_estimate")  # a median without an se: no interval
    assert time_row["estimate"] == pytest.approx(0.5) and math.isnan(time_row["ci_low"])
    assert time_row["verdict"] == "no interval" and time_row["interval"].startswith("unavailable")
    tie = _row(table, "u", "base", "variance_equal_evaluations")
    assert tie["ci_low"] < 1 < tie["ci_high"] and tie["verdict"] == "tie"
    assert _row(table, "v", "base", "mse_equal_evaluations")["verdict"] == "worse"


def test_a_value_without_standard_error_or_of_zero_has_no_interval(tmp_path):
    frame = _loaded(tmp_path, _cell("t", "mine", 2.0, math.nan) + _cell("t", "base", 4.0, 0.2)
                    + _cell("u", "mine", 0.0, 0.0) + _cell("u", "base", 4.0, 0.2))
    table, _ = compare(frame, "mine", ["base"])
    for task, why in (("t", "no standard error"), ("u", "value of 0")):
        row = _row(table, task, "base", "variance_equal_evaluations")
        assert row["verdict"] == "no interval" and why in row["interval"] and math.isnan(row["ci_high"])


def test_asv_timings_give_the_time_ratio_an_interval(tmp_path):
    rows = _cell("t", "mine", 1.0, 0.1) + _cell("t", "base", 1.0, 0.1)
    _write(tmp_path, rows)
    name = "bench_gradients.CostX.time_estimate"
    params = [["'t'"], ["'base'", "'mine'"], ["4"], ["'cpu'"]]
    (tmp_path / "benchmarks.json").write_text(json.dumps({name: {
        "name": name, "param_names": ["task", "estimator", "num_samples", "device"], "params": params,
        "type": "time", "unit": "seconds"}, "version": 2}))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "machine.json").write_text(json.dumps({"machine": "m", "version": 1}))
    data = {"commit_hash": "c" * 40, "date": 1_900_000_000_000, "params": {"machine": "m"}, "version": 2,
            "result_columns": ["result", "params", "version", "started_at", "duration", "stats_ci_99_a",
                               "stats_ci_99_b"],
            "results": {name: [[2e-3, 1e-3], params, "0", 1_900_000_000_000, 1.0, [1.9e-3, 0.8e-3],
                               [2.1e-3, 1.2e-3]]}, "env_name": "e"}
    (tmp_path / "m" / f"{'c' * 8}-e.json").write_text(json.dumps(data))
    table, _ = compare(load_results(tmp_path).frame, "mine", ["base"])
    row = _row(table, "t", "base", "seconds_per_estimate")
    z99 = stats.norm.ppf(0.995)
    s = math.hypot(math.log(1.2 / 0.8) / (2 * z99), math.log(2.1 / 1.9) / (2 * z99))
    assert row["estimate"] == pytest.approx(0.5) and "asv" in row["interval"]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.5 * math.exp(-CI_Z * s), 0.5 * math.exp(CI_Z * s)))
    assert row["verdict"] == "better"


def _training(task, method, values, measure="final_metric_equal_steps", group="summary"):
    return [schema.make_row(measure, v, group=group, task=task, method=method, seed=i, machine="m",
                            commit="c" * 40, method_name=f"{method} (name)") for i, v in enumerate(values)]


@pytest.mark.parametrize("higher", [1.0, 0.0])
def test_training_differences_use_welch_and_respect_the_direction(tmp_path, higher):
    mine, base = [0.90, 0.91, 0.93], [0.50, 0.52, 0.51, 0.55]
    info = [schema.make_row("higher_is_better", higher, group="info", task="tr", machine="m", commit="c" * 40)]
    frame = _loaded(tmp_path, info + _training("tr", "mine", mine) + _training("tr", "base", base)
                    + _training("tr", "mine", [1.0, 1.1], "test_nll", "final")
                    + _training("tr", "base", [2.0, 2.2], "test_nll", "final"))
    table, _ = compare(frame, "mine", ["base"])
    row = _row(table, "tr", "base", "final_metric_equal_steps")
    expected = stats.ttest_ind(mine, base, equal_var=False).confidence_interval(0.95)
    assert row["estimate"] == pytest.approx(sum(mine) / 3 - sum(base) / 4) and row["kind"] == "difference"
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((expected.low, expected.high))
    assert row["verdict"] == ("better" if higher else "worse")  # the task's direction
    assert _row(table, "tr", "base", "test_nll")["verdict"] == "better"  # NLL: lower is better, whatever the task


def test_default_baselines_are_the_field_and_the_strongest_unbiased(tmp_path):
    frame = _loaded(tmp_path, _cell("t", "mine", 1.0, 0.01) + _cell("t", "score_function:baseline=loo", 2.0, 0.01)
                    + _cell("t", "gumbel_softmax", 0.5, 0.01, claims=0.0)  # biased, but a field baseline
                    + _cell("t", "arms", 1.5, 0.01)  # the strongest unbiased at equal seconds
                    + _cell("t", "muprop", 0.1, 0.01, verdict=-1.0)  # contradicted claim: not a baseline
                    + _cell("t", "exact", 0.0, 0.0)  # the reference
                    + _cell("t", "score_function:baseline=none", 3.0, 0.01))
    table, _ = compare(frame, "mine")
    assert set(table["baseline"]) == {"score_function:baseline=loo", "gumbel_softmax", "arms"}
    assert "score_function:baseline=loo" in FIELD


def test_an_unknown_spec_names_the_closest_and_what_is_available(tmp_path, capsys):
    frame = _loaded(tmp_path, _cell("t", "mine", 1.0, 0.1) + _cell("t", "base", 1.0, 0.1))
    with pytest.raises(ValueError, match=r"'mien'.*did you mean 'mine'.*available: base, mine"):
        check(frame, "mien")
    with pytest.raises(ValueError, match="--against 'bsae'"):
        check(frame, "mine", ["bsae"])
    assert "one estimator against its baselines" in cli.build_parser().format_help()
    assert cli.main(["compare", "mien", "--results", str(tmp_path), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "did you mean 'mine'" in capsys.readouterr().err
    with pytest.raises(UsageError, match="did you mean 'mine'"):
        build_report(tmp_path, tmp_path / "r", compare="mien")
    report = ["report", "--results", str(tmp_path), "--out", str(tmp_path / "r"), "-q"]
    assert cli.main([*report, "--compare", "mien"]) == 2 and "did you mean 'mine'" in capsys.readouterr().err
    assert cli.main([*report, "--against", "base"]) == 2 and "needs --compare" in capsys.readouterr().err


def test_stale_cells_are_named_left_out_and_rerun(tmp_path):
    other = "other==1#bbb"
    old = (_cell("a", "mine", 1.0, 0.1) + _cell("b", "mine", 1.0, 0.1)
           + _cell("a", "base", 2.0, 0.1, version=other) + _cell("b", "base", 2.0, 0.1, version=other))
    new = _cell("a", "mine", 3.0, 0.1, version="pkg==1#new")  # the plugin changed; task a rerun
    frame = _loaded(tmp_path, old, new)
    why = stale(frame)
    flagged = frame[why != ""]
    assert set(zip(flagged["task"], flagged["estimator"])) == {("b", "mine")}  # a's old copy was replaced
    assert set(why[why != ""]) == {"estimator version pkg==1#aaa (current pkg==1#new)"}
    cells = stale_cells(frame, why)
    assert rerun_commands(cells) == ["estibench run --tasks b --estimators mine --num-samples 4 --devices cpu"]
    table, notes = compare(frame, "mine", ["base"])
    assert set(table["task"]) == {"a"} and _row(table, "a", "base", "variance_equal_evaluations")["verdict"] == "worse"
    assert len(notes) == 1 and notes[0].startswith("mine on b") and "pkg==1#new" in notes[0]
    # a training method's cells: rerun by their training task
    train = _training("tr", "mine", [1.0, 2.0]) + [{**r, "estimator_version": "pkg==1#aaa"} for r in
                                                   _training("tr", "mine", [1.0], "test_nll", "final")]
    frame = _loaded(tmp_path / "tr", [{**r, "estimator_version": "pkg==1#aaa"} for r in train], new)
    cells = stale_cells(frame, stale(frame))
    assert list(cells["name"]) == ["mine"] and set(cells["seeds"]) == {"0, 1"}
    assert rerun_commands(cells) == ["estibench run --training-tasks tr"]
    # a task's new version makes every older cell of that task stale, whichever estimator made it
    frame = _loaded(tmp_path / "t", old, _cell("b", "base", 2.0, 0.1, version=other, task_version="t#2"))
    assert set(stale_cells(frame, stale(frame))["name"]) == {"mine"}


# -- the "Done when" ------------------------------------------------------------------------------
PLUGIN = '''
"""A held-back plugin: an unbiased estimator that draws antithetic pairs on Bernoulli latents (ARMS),
the leave-one-out score function on categorical ones and the plain score function on Gaussian ones."""
import torch
import torch.distributions as D

import estimators
from estimators.base import Estimator

REVISION = {revision}
INNER = {{D.Bernoulli: "arms", D.OneHotCategorical: "score_function:baseline=loo",
          D.Normal: "score_function:baseline=none"}}


@estimators.register("cmp_plugin", unbiased=True, families=tuple(INNER), description="test plugin",
                     reference="tests/test_compare.py", display_name="Cmp plugin")
class CmpPlugin(Estimator):
    name = "cmp_plugin"
    unbiased = True
    families = tuple(INNER)

    def __init__(self):
        super().__init__()
        self.inner = torch.nn.ModuleDict({{c.__name__: estimators.get(s) for c, s in INNER.items()}})

    def min_samples(self):
        return 2

    def estimate(self, dist, f, num_samples):
        base = dist.base_dist if isinstance(dist, D.Independent) else dist
        return self.inner[type(base).__name__].estimate(dist, f, num_samples)
'''
#: the tasks and what the plugin is there against leave-one-out at K = 4, variance at equal f evaluations:
#: ARMS ~0.8x on the non-separable toy (interval half-width ~4 %), the very same estimates on the
#: categorical table (ratio exactly 1), the score function without baseline ~2.2x on the Gaussian
EXPECTED = {"bernoulli20_nonseparable": "better", "categorical_table": "tie", "gaussian_quadratic": "worse"}


def _grid(monkeypatch, results: Path, tasks) -> None:
    from suite.benchmarks import bench_gradients

    monkeypatch.setenv("ESTIBENCH_TASKS", ",".join(tasks))
    bench_gradients._Quality().setup_cache()


def test_done_when_a_plugin_is_compared_and_its_stale_cells_flagged(tmp_path, monkeypatch, capsys):
    import estimators
    from suite import versions

    package = tmp_path / "plugin" / "estibench_cmp_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN.format(revision=1))
    results = tmp_path / "results"
    for name, value in (("NUM_SAMPLES", "4"), ("ESTIMATORS", "cmp_plugin,score_function:baseline=loo"),
                        ("RESULTS", str(results)), ("SETUP_CACHE", "off")):
        monkeypatch.setenv(f"ESTIBENCH_{name}", value)
    monkeypatch.chdir(tmp_path)  # setup_cache spills its cells here
    monkeypatch.syspath_prepend(str(package.parent))
    try:
        module = importlib.import_module("estibench_cmp_plugin")
        _grid(monkeypatch, results, EXPECTED)
        frame = load_results(results).frame
        table, notes = compare(frame, "cmp_plugin")
        head = table[table["comparison"] == "variance_equal_evaluations"].set_index("task")
        assert notes == [] and dict(head["verdict"]) == EXPECTED
        assert set(head["baseline"]) == {"score_function:baseline=loo"}
        cells = frame[frame["group"] == "gradient"].set_index(["task", "estimator", "measure"])["value"]
        for task, row in head.iterrows():  # the verdicts agree with the cells' own numbers
            mine, loo = ((cells[(task, e, "variance")] * cells[(task, e, "evaluations")]) for e in
                         ("cmp_plugin", "score_function:baseline=loo"))
            assert row["estimate"] == pytest.approx(mine / loo, rel=1e-9)
            assert (row["ci_low"] < 1 < row["ci_high"]) == (EXPECTED[task] == "tie")
        assert cli.main(["compare", "cmp_plugin", "--results", str(results), "--out", str(tmp_path / "c"), "-q"]) == 0
        out = capsys.readouterr().out
        assert "better on Bernoulli ×20, non-separable K=4 (0." in out and "tie on categorical, table K=4 (1 [" in out
        assert "worse on Gaussian" in out and (tmp_path / "c" / "tables" / "compare.csv").is_file()
        assert (tmp_path / "c" / "figures" / "compare_gradient.png").is_file()

        # the plugin's code changes and only the Gaussian task is rerun
        (package / "__init__.py").write_text(PLUGIN.format(revision=2))
        estimators.ESTIMATORS.unregister("cmp_plugin")
        versions._hash.cache_clear()  # a new process in a real run
        importlib.reload(module)
        time.sleep(0.01)
        _grid(monkeypatch, results, ["gaussian_quadratic"])
        frame = load_results(results).frame
        table, notes = compare(frame, "cmp_plugin")
        assert set(table["task"]) == {"gaussian_quadratic"}
        assert sorted(n.split(" (")[0] for n in notes) == [f"cmp_plugin on {t}" for t in sorted(EXPECTED)[:2]]
        build_report(results, tmp_path / "report", compare="cmp_plugin")
        report = (tmp_path / "report" / "report.md").read_text()
        assert "Stale results: 2 estimator/task pair(s)" in report and "Comparison: Cmp plugin" in report
        assert ("estibench run --tasks bernoulli20_nonseparable,categorical_table --estimators cmp_plugin "
                "--num-samples 4 --devices cpu") in report
        compared = (tmp_path / "report" / "tables" / "compare.csv").read_text()
        assert "gaussian_quadratic" in compared and "categorical_table" not in compared
        best = (tmp_path / "report" / "tables" / "best_estimators.csv").read_text().splitlines()
        ranked = [line for line in best if line.startswith("bernoulli20_nonseparable,variance,")]
        assert ranked and all("cmp_plugin" not in line for line in ranked)  # left out of the rankings
    finally:
        if "cmp_plugin" in estimators.ESTIMATORS:
            estimators.ESTIMATORS.unregister("cmp_plugin")
        sys.modules.pop("estibench_cmp_plugin", None)


def test_results_without_timings_still_get_default_baselines():
    """The claims fixture records no seconds per estimate: the strongest unbiased baseline is
    then chosen at equal f evaluations, and the comparison is not dropped with a KeyError."""
    frame = load_results(Path(__file__).parent / "fixtures" / "asv_results_claims").frame
    assert "seconds_per_estimate" not in set(frame["measure"])
    table, _notes = compare(frame, "disarm")
    assert len(table) and "disarm" not in set(table["baseline"])
