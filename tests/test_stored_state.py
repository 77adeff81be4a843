"""An adversarial suite for stored state (issue 21): results folders that narrowed, concurrent,
killed and corrupted runs leave behind, with estimators that come and go, read back by the one
reader. What must hold, whatever the sequence:

* no measured cell is lost: every cell any complete run wrote is in the report's frame;
* none is overwritten by a run that did not measure it: each cell shows the value of the latest
  run (by start time, then run id) that measured it;
* a killed run's leftovers (temporary files) and foreign or corrupt files change nothing but a
  warning naming the corrupt file.

Each hypothesis example is one sequence of operations on a fresh folder; :data:`EXAMPLES`
sequences are tried per CI run (fixed derandomised seed: the same cases every run).
"""
from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reports
from estibench import schema

EXAMPLES = 60
TASKS = ("t1", "t2")
ESTIMATORS = ("score_function:baseline=loo", "disarm", "plugin_gone:alpha=0.5")
KS = (1, 4)
MEASURES = ("variance", "bias")
CELLS = list(itertools.product(TASKS, ESTIMATORS, KS, MEASURES))

values = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
run_op = st.tuples(st.just("run"), st.lists(st.sampled_from(range(len(CELLS))), min_size=1,
                                            max_size=len(CELLS), unique=True),
                   st.lists(values, min_size=len(CELLS), max_size=len(CELLS)),
                   st.sampled_from(["ok", "ok", "failed", "skipped"]),
                   st.booleans())  # True: starts at the same second as the previous run
operation = st.one_of(run_op, st.tuples(st.just("killed")), st.tuples(st.just("corrupt")),
                      st.tuples(st.just("foreign")))


def _write_run(folder: Path, run: str, started: float, cells: list[int], vals, status):
    rows = []
    for i in cells:
        task, est, k, measure = CELLS[i]
        rows.append(schema.make_row(measure, vals[i], status=status, se=0.01, group="gradient",
                                    task=task, estimator=est, num_samples=k, device="cpu",
                                    run=run, run_started=started, commit="c0ffee",
                                    machine="m", estimator_name=est))
    schema.write_run(rows, folder, run)


def _apply(folder: Path, ops) -> tuple[dict, int]:
    """Carry out ``ops``; the expected latest (value, status) per cell, corrupt files made."""
    expected: dict[tuple, tuple[float, str, tuple]] = {}
    started, corrupt = 1_800_000_000.0, 0
    runs = folder / schema.RUNS_FOLDER
    for n, op in enumerate(ops):
        if op[0] == "run":
            _, cells, vals, status, same_second = op
            started = started if same_second else started + 1.0
            run = f"{started:.6f}-run{n:03d}"
            _write_run(folder, run, started, cells, vals, status)
            for i in cells:
                order = (started, run)
                if CELLS[i] not in expected or expected[CELLS[i]][2] <= order:
                    expected[CELLS[i]] = (vals[i] if status == "ok" else math.nan, status, order)
        elif op[0] == "killed":  # a writer killed mid-write leaves its temporary file
            runs.mkdir(parents=True, exist_ok=True)
            (runs / f".{started:.6f}-killed{n}.parquet.{os.getpid()}.tmp").write_bytes(b"PAR1\0")
        elif op[0] == "corrupt":  # a file that claims to be a run file and is not
            runs.mkdir(parents=True, exist_ok=True)
            (runs / f"{started:.6f}-corrupt{n}.parquet").write_bytes(b"not parquet at all")
            corrupt += 1
        else:  # a foreign file a user left in the folder
            runs.mkdir(parents=True, exist_ok=True)
            (runs / f"notes{n}.txt").write_text("mine")
    return expected, corrupt


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=1, max_size=8))
def test_no_cell_is_lost_or_overwritten_by_a_run_that_did_not_measure_it(tmp_path_factory, ops):
    folder = tmp_path_factory.mktemp("results")
    expected, corrupt = _apply(folder, ops)
    if not expected:
        return
    loaded = reports.load_results(folder)
    frame = loaded.frame
    got = {(r.task, r.estimator, int(r.num_samples), r.measure): (r.value, r.status)
           for r in frame.itertuples()}
    assert len(frame) == len(got), "one row per cell"
    assert set(got) == set(expected), "cells lost or invented"
    for cell, (value, status, _) in expected.items():
        got_value, got_status = got[cell]
        assert got_status == status, cell
        assert (math.isnan(value) and math.isnan(got_value)) or got_value == value, cell
    assert sum("corrupt" in w for w in loaded.warnings) == corrupt


def test_a_run_measuring_nothing_new_leaves_the_stored_cells(tmp_path):
    """The reproduction of issue 21 item 1: a narrowed run, a run of a spec that is no longer
    registered, then the first narrowing again: the middle run's cells stay."""
    _write_run(tmp_path, "1.000000-a", 1.0, [0, 1], [0.5] * len(CELLS), "ok")
    _write_run(tmp_path, "2.000000-b", 2.0, [CELLS.index(("t1", "plugin_gone:alpha=0.5", 1,
                                                           "variance"))],
               [0.25] * len(CELLS), "ok")
    _write_run(tmp_path, "3.000000-c", 3.0, [0, 1], [0.75] * len(CELLS), "ok")
    frame = reports.load_results(tmp_path).frame
    gone = frame[frame["estimator"] == "plugin_gone:alpha=0.5"]
    assert list(gone["value"]) == [0.25]
    assert sorted(frame[frame["estimator"] != "plugin_gone:alpha=0.5"]["value"]) == [0.75, 0.75]
