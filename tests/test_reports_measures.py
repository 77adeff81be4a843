"""estibench.schema: THE table of measures (name, asv unit, label, direction, description)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from estibench import schema as M

ROOT = Path(__file__).resolve().parents[1]

RECORDED = {
    # gradient quality and cost measures the suite records per cell
    "variance": ("grad^2", "lower"), "bias": ("relative", "lower"), "mse": ("grad^2", "lower"),
    "cosine_of_mean": ("cosine", "higher"), "cosine": ("cosine", "higher"),
    "snr": ("ratio", "higher"), "work_normalised_variance": ("grad^2*s", "lower"),
    "time_estimate": ("seconds", "lower"), "peakmem_estimate": ("bytes", "lower"),
    "cuda_peakmem": ("bytes", "lower"), "seconds_per_estimate": ("seconds", "lower"),
    "replicates": ("replicates", None),
    # alignment summary
    "final_metric_equal_steps": ("metric", "task"), "final_metric_equal_time": ("metric", "task"),
    "kendall_tau": ("tau", "higher"), "metric_gain_per_second": ("metric/s", "higher"),
    "seconds_per_update": ("seconds", "lower"), "evaluations_per_update": ("evaluations", "lower"),
    # measures being added
    "evaluations": ("evaluations", "lower"), "detectable_bias": ("relative", "lower"),
    "bias_z": ("z", None), "bias_p": ("p-value", None), "floor_ratio": ("ratio", "lower"),
    # checkpoints
    "loss": ("loss", "lower"), "metric": ("metric", "task"), "nll": ("nats", "lower"),
    "nontermination": ("fraction", "lower"), "step": ("steps", None),
    "higher_is_better": ("flag", None),
}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_every_recorded_measure_has_a_row(name):
    row = M.MEASURES[name]
    assert (row.unit, row.better) == RECORDED[name]
    assert row.name == name and row.label and row.description
    with pytest.raises(AttributeError):  # frozen: one source of truth nobody edits in place
        row.unit = "x"


def test_measures_imports_only_the_standard_library():
    tree = ast.parse((ROOT / "estibench" / "schema.py").read_text())
    imported = {a.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import)
                for a in node.names}  # at import: pyarrow is imported where a file is read
    imported |= {node.module.split(".")[0] for node in tree.body
                 if isinstance(node, ast.ImportFrom) and node.module and not node.level}
    assert imported <= {"__future__", "dataclasses", "json", "math", "os", "collections",
                        "pathlib", "typing"}, imported


@pytest.mark.parametrize("name,expected", [
    ("variance", False), ("variance_se", False), ("snr", True), ("replicates", None),
    ("valid_f1_micro_at_best_threshold", True), ("final_edit_distance", False),
    ("best_threshold", None), ("no_such_measure", None)])
def test_direction_by_name(name, expected):
    assert M.direction(name) is expected


def test_task_measures_follow_the_task():
    up, down = M.TaskInfo("a", higher_is_better=True), M.TaskInfo("b", higher_is_better=False)
    assert M.direction("final_metric_equal_steps", up) is True
    assert M.direction("final_metric_equal_steps", down) is False
    assert M.direction("metric", M.TaskInfo("c")) is None  # unknown: not ranked
    assert M.direction("kendall_tau", down) is True  # fixed, whatever the task


def test_unknown_names_get_a_row_that_is_never_ranked():
    row = M.get("my_new_measure")
    assert row.better is None and row.unit == "" and row.label == "my new measure"
    assert M.unit("variance_se") == "grad^2"


def test_a_bad_direction_is_refused():
    with pytest.raises(ValueError, match="better must be one of"):
        M.Measure("x", "u", "x", "sideways", "")


@pytest.mark.parametrize("measure, value, possible", [
    ("variance", -1e-3, False), ("time_estimate", -1.0, False), ("cosine", 1.5, False),
    ("relative_gap", -0.6, True), ("relative_gap", 0.3, True), ("relative_gap", -1.5, False),
    ("variance", float("inf"), False), ("bias", 0.2, True)])
def test_the_domain_of_a_measure(measure, value, possible):
    """A value outside its measure's domain is flagged and never ranked; a signed relative gap of a
    lower bound (WMD's centroid and relaxed bounds: negative) is a possible value, not a failed cell
    (the default run had 8 such cells flagged as impossible)."""
    assert M.in_domain(measure, value) is possible


def test_a_signed_gap_is_not_ranked_lower_is_better():
    assert M.MEASURES["relative_gap"].better is None  # nearer 0 is better, not lower
