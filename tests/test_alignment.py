"""The alignment measures (suite/training.py) on hand-made runs, and the alignment benchmarks'
grid (suite/grid.py, suite/benchmarks/bench_alignment.py): layout from the tasks' declarations,
failures kept to their own cells, everything the runs measured in the task's run file."""
from __future__ import annotations

import math
import subprocess
import sys

import pytest

from estibench.schema import SUMMARY, read_run
from estibench.settings import SettingsError
from suite import grid
from suite.benchmarks import bench_alignment
from suite.benchutil import class_prefix
from suite.registries import TRAINING_TASKS
from suite.training import (
    Run,
    TrainingTask,
    check_run,
    kendall_tau,
    metric_at_seconds,
    metric_gain_per_second,
    summarise,
)


def run(method, seed, metrics, losses, seconds, **extra):
    points = [{"step": 10 * i, "seconds": s, "loss": loss, "metric": m,
               **{k: v[i] for k, v in extra.items()}}
              for i, (m, loss, s) in enumerate(zip(metrics, losses, seconds))]
    return Run("toy", method, seed, points)


def test_kendall_tau_is_oriented_so_that_plus_one_means_aligned():
    aligned = run("a", 0, [0.1, 0.5, 0.9], [3.0, 2.0, 1.0], [0, 1, 2])
    opposed = run("b", 0, [0.1, 0.5, 0.9], [1.0, 2.0, 3.0], [0, 1, 2])
    assert kendall_tau(aligned, higher_is_better=True) == pytest.approx(1.0)
    assert kendall_tau(opposed, higher_is_better=True) == pytest.approx(-1.0)
    # for a lower-is-better metric (edit distance) falling with the loss is aligned
    falling = run("c", 0, [0.9, 0.5, 0.1], [3.0, 2.0, 1.0], [0, 1, 2])
    assert kendall_tau(falling, higher_is_better=False) == pytest.approx(1.0)
    flat = run("d", 0, [0.5, 0.5, 0.5], [3.0, 2.0, 1.0], [0, 1, 2])
    assert math.isnan(kendall_tau(flat, higher_is_better=True))  # undefined, not 0


def test_equal_time_and_gain_per_second():
    fast = run("fast", 0, [0.0, 0.4, 0.6], [1, 1, 1], [0.0, 1.0, 2.0])
    slow = run("slow", 0, [0.0, 0.5, 0.9], [1, 1, 1], [0.0, 3.0, 6.0])
    assert metric_at_seconds(slow, 2.0) == 0.0  # slow reached no checkpoint after 0 by 2 s
    assert metric_at_seconds(slow, 3.0) == 0.5
    assert metric_gain_per_second(fast, True) == pytest.approx(0.3)
    assert metric_gain_per_second(slow, False) == pytest.approx(-0.15)
    table = summarise({("fast", 0): fast, ("slow", 0): slow}, higher_is_better=True)
    assert table[("slow", 0)]["final_metric_equal_steps"] == 0.9
    assert table[("slow", 0)]["final_metric_equal_time"] == 0.0  # budget = fast's 2 s
    assert table[("fast", 0)]["final_metric_equal_time"] == 0.6
    assert table[("fast", 0)]["seconds_per_update"] == pytest.approx(2.0 / 20)


def test_runs_must_keep_their_declarations():
    class Toy(TrainingTask):
        name = "toy"
        checkpoint_measures = ("extra",)
        final_measures = ("best",)

        def schedule(self):
            return [0, 10, 20]

    good = run("m", 0, [0, 1, 2], [2, 1, 0], [0, 1, 2], extra=[1, 2, 3])
    good.final["best"] = 1.0
    check_run(Toy(), good)
    with pytest.raises(ValueError, match="lacks the declared measures"):
        check_run(Toy(), run("m", 0, [0, 1, 2], [2, 1, 0], [0, 1, 2]))
    with pytest.raises(ValueError, match="schedule"):
        check_run(Toy(), run("m", 0, [0, 1], [2, 1], [0, 1], extra=[1, 2]))
    bad_final = run("m", 0, [0, 1, 2], [2, 1, 0], [0, 1, 2], extra=[1, 2, 3])
    with pytest.raises(ValueError, match="final measures"):
        check_run(Toy(), bad_final)
    with pytest.raises(ValueError, match="lacks"):
        Run("toy", "m", 0, [{"step": 0, "seconds": 0, "loss": 1}])


# -- the benchmark grid --------------------------------------------------------------------------
def test_every_training_task_has_its_benchmark_classes():
    """asv tracks the headline summary only; the rest goes to the task's run file."""
    for name in TRAINING_TASKS.available():
        task = grid.training_task(name)
        prefix = class_prefix(name)
        summary = getattr(bench_alignment, prefix + "Summary")
        assert summary.params == [[name], list(task.methods), list(task.seeds)]
        assert {m for m in dir(summary) if m.startswith("track_")} == {
            f"track_{m}" for m in bench_alignment.TRACKED_SUMMARY}
        for measure in bench_alignment.TRACKED_SUMMARY:
            assert getattr(summary, f"track_{measure}").unit == SUMMARY[measure].unit
        for gone in ("Curve", "Final", "Info"):  # in the run file
            assert not hasattr(bench_alignment, prefix + gone)
        assert grid.curve_measures(task)[:3] == ["seconds", "loss", "metric"]
        assert set(task.checkpoint_measures) <= set(grid.curve_measures(task))


def test_summaries_hold_every_summary_measure_of_the_table():
    table = summarise({("m", 0): run("m", 0, [0.1, 0.5], [2.0, 1.0], [0, 1])}, True)
    assert set(SUMMARY) <= set(table[("m", 0)])


class Flaky(TrainingTask):
    """A tiny task whose second method always fails."""

    name = "flaky_for_test"
    metric = "toy"
    methods = ("works", "breaks")
    seeds = (0, 1)
    checkpoint_measures = ("extra",)

    def schedule(self):
        return [0, 5]

    def run(self, method, seed=0, device="cpu"):
        self.check_method(method)
        if method == "breaks":
            raise RuntimeError("this method always fails")
        return Run(self.name, method, seed, [
            {"step": 0, "seconds": 0.0, "loss": 1.0, "metric": 0.1, "extra": 0.0},
            {"step": 5, "seconds": 0.5, "loss": 0.5, "metric": 0.2 + seed, "extra": 1.0}])


@pytest.fixture
def flaky(monkeypatch):
    TRAINING_TASKS.register("flaky_for_test", description="test", reference="test")(Flaky)
    monkeypatch.setenv("ESTIBENCH_TRAINING_TASKS", "flaky_for_test")
    yield
    TRAINING_TASKS.unregister("flaky_for_test")


def test_a_failing_method_fails_only_its_cells(flaky, tmp_path, monkeypatch):
    cache = grid.compute_runs()
    entry = cache["flaky_for_test"]
    assert set(entry["errors"]) == {("breaks", 0), ("breaks", 1)}
    assert "always fails" in entry["errors"][("breaks", 0)]
    summary = bench_alignment._Summary()
    assert summary.track_final_metric_equal_steps(cache, "flaky_for_test", "works", 0) == 0.2
    with pytest.raises(RuntimeError, match="always fails"):
        summary.track_final_metric_equal_time(cache, "flaky_for_test", "breaks", 0)
    # the run file: facts, summaries, curves (every checkpoint measure), failed runs' rows
    monkeypatch.setenv("ESTIBENCH_RESULTS", str(tmp_path))
    path = bench_alignment.write_run("flaky_for_test", entry, 1.8e9)
    assert path == tmp_path / "runs" / "1800000000.000000-training-flaky_for_test.parquet"
    rows = read_run(path)
    assert (rows["task"] == "flaky_for_test").all() and (rows["run_started"] == 1.8e9).all()
    assert (rows["task_name"] == "flaky, for, test").all()
    # the code version of the task: its module (no distribution ships it) and its source's hash
    assert rows["task_version"].str.fullmatch(r"test_alignment#[0-9a-f]{12}").all()
    assert (rows["torch_version"] != "").all() and (rows["machine_id"] != "").all()
    curve = rows[rows["group"] == "curve"].set_index(["method", "seed", "measure", "checkpoint"])
    assert curve.loc[("works", 1, "metric", 5), "value"] == 1.2
    assert curve.loc[("works", 0, "extra", 0), "value"] == 0.0
    assert curve.loc[("works", 0, "loss", 5), "unit"] == "loss"
    summary_rows = rows[rows["group"] == "summary"].set_index(["method", "seed", "measure"]
                                                              ).sort_index()
    failed = summary_rows.loc[("breaks", 0, "kendall_tau")]
    assert failed["status"] == "failed" and "always fails" in failed["error"]
    assert math.isnan(failed["value"])
    ok = summary_rows.loc[("works", 0, "final_metric_equal_steps")]
    assert ok["status"] == "ok" and ok["value"] == 0.2  # the tracked headline is there too
    assert set(SUMMARY) <= set(summary_rows.loc[("works", 0)].index)
    info = rows[rows["group"] == "info"].set_index("measure")
    assert info.loc["higher_is_better", "value"] == 1.0
    assert info.loc["higher_is_better", "metric_name"] == "toy"
    assert not rows["measure"].str.endswith("_se").any()


def test_training_tasks_are_checked_and_a_task_that_cannot_be_built_fails_its_cells(
        monkeypatch):
    monkeypatch.setenv("ESTIBENCH_TRAINING_TASKS", "multilabel_digit")
    with pytest.raises(SettingsError, match="unknown training task 'multilabel_digit'; did you "
                                            "mean 'multilabel_digits'"):
        grid.compute_runs()

    def unbuildable():
        raise RuntimeError("no data here")
    TRAINING_TASKS.register("unbuildable_for_test", description="test")(unbuildable)
    try:
        monkeypatch.setenv("ESTIBENCH_TRAINING_TASKS", "unbuildable_for_test")
        cache = grid.compute_runs()
        assert "no data here" in cache["unbuildable_for_test"]["task_error"]
        with pytest.raises(RuntimeError, match="no data here"):
            bench_alignment._Summary().track_final_metric_equal_steps(
                cache, "unbuildable_for_test", "m", 0)
    finally:
        TRAINING_TASKS.unregister("unbuildable_for_test")


def test_benchmark_modules_import_light():
    """asv forks one process per cell from a parent that imported every suite module; heavy
    imports there (POT, scikit-learn, pandas, scipy) made every cell ~27 ms slower."""
    code = ("import sys, suite.benchmarks.bench_gradients, suite.benchmarks.bench_alignment, "
            "suite.benchmarks.bench_metrics; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'ot', 'sklearn', 'pandas', 'scipy', 'seaborn', 'matplotlib'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout
