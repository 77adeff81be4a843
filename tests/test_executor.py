"""The setup work's executor (suite.executor, issue 22): units on Dask distributed, failures kept
to their own units, a time limit per unit, and a loopback cluster of separate processes."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from estibench.settings import Settings
from suite.executor import Failed, run_units


def square(x):
    return x * x


def misbehave(x):
    if x == "raise":
        raise ValueError("this unit raises")
    if x == "die":
        os._exit(3)  # the worker process dies under the unit
    if x == "hang":
        time.sleep(120)
    return x


def environment_of(name):
    return os.environ.get(name)


def test_local_workers_keep_glibc_trimming_off_and_one_thread():
    """Dask's default MALLOC_TRIM_THRESHOLD_=65536 made torch units 2x slower in a worker than in
    a plain process (suite/executor.py): the local cluster's workers must not carry it."""
    out = run_units(environment_of, [("trim", "MALLOC_TRIM_THRESHOLD_"),
                                     ("omp", "OMP_NUM_THREADS")], Settings(workers=2))
    assert out == {"trim": None, "omp": "1"}


def test_in_process_path_keeps_failures_to_their_units():
    seen = []
    out = run_units(misbehave, [("a", 1), ("b", "raise"), ("c", 2)], Settings(workers=1),
                    on_done=lambda k, v: seen.append(k))
    assert out["a"] == 1 and out["c"] == 2 and seen == ["a", "b", "c"]
    assert isinstance(out["b"], Failed) and "this unit raises" in out["b"].error
    with pytest.raises(ValueError, match="unique"):
        run_units(square, [(1, 1), (1, 2)], Settings(workers=1))


def test_local_cluster_isolates_raising_dying_and_hanging_units():
    units = [(i, i) for i in range(4)] + [("r", "raise"), ("d", "die"), ("h", "hang")]
    start = time.monotonic()
    out = run_units(misbehave, units, Settings(workers=2, unit_timeout=4.0))
    assert time.monotonic() - start < 100
    assert [out[i] for i in range(4)] == [0, 1, 2, 3]
    assert "this unit raises" in out["r"].error
    assert isinstance(out["d"], Failed) and "worker" in out["d"].error
    assert isinstance(out["h"], Failed) and "TimeoutError" in out["h"].error


@contextmanager
def loopback_cluster(tmp_path: Path, workers: int = 2, limit: float = 60.0):
    """A Dask scheduler and ``workers`` worker processes, each a separate process on
    127.0.0.1, stopped when the block ends (and killed if they do not stop)."""
    bindir = Path(sys.executable).parent
    scheduler_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file",
                               str(scheduler_file)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + limit
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(workers):
            procs.append(subprocess.Popen(
                [str(bindir / "dask"), "worker", address, "--nthreads", "1", "--host",
                 "127.0.0.1", "--no-dashboard", "--death-timeout", str(int(limit))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={**os.environ, "OMP_NUM_THREADS": "1"}))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=limit)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_units_run_on_a_loopback_cluster_of_separate_processes(tmp_path):
    with loopback_cluster(tmp_path) as address:
        # a function the workers can import (they do not see the tests folder)
        out = run_units(math.factorial, [(i, i) for i in range(20)], Settings(scheduler=address))
    assert out == {i: math.factorial(i) for i in range(20)}


# -- the suite's setup work on the executor: the same numbers whatever runs it -------------------
#: measures that are timings (of the machine, not of the estimator's numbers): left out of the
#: comparisons; everything else must be bitwise equal
TIMED = frozenset({"seconds_per_estimate", "work_normalised_variance",
                   "work_normalised_variance_se", "cell_seconds", "seconds", "wall_seconds",
                   "final_metric_equal_time", "metric_gain_per_second", "seconds_per_update",
                   "equal_time_budget", "traceback"})
NARROW = dict(tasks=("bernoulli_t045", "categorical_table", "gaussian_quadratic"),
              estimators=("relax", "score_function:baseline=moving_average", "gumbel_softmax",
                          "reparam", "exact"),
              num_samples=(2, 16), devices=("cpu",), training_tasks=("multilabel_digits",),
              setup_cache="off")


def numbers(obj, path=()) -> dict:
    """Every leaf of nested dicts / lists / runs, keyed by its path, floats as their bits (so
    -0.0 != 0.0 and NaN == NaN); timings (:data:`TIMED`) left out."""
    if hasattr(obj, "__dataclass_fields__"):
        obj = vars(obj)
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key not in TIMED:
                out.update(numbers(value, (*path, key)))
        return out
    if isinstance(obj, (list, tuple)) and path:
        return {k: v for i, value in enumerate(obj) for k, v in numbers(value, (*path, i)).items()}
    if isinstance(obj, float):
        return {path: struct.pack("<d", obj)}
    return {path: obj}


def setup_work(settings: Settings) -> dict:
    from suite import grid

    return {"grid": grid.compute_grid(settings)["cells"], "runs": grid.compute_runs(settings)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The narrowed setup work in this process (workers=1), with its settings."""
    settings = Settings(**NARROW, workers=1, results=str(tmp_path_factory.mktemp("results")))
    out = setup_work(settings)
    cells = out["grid"]
    ok = [key for key, cell in cells.items() if cell["status"] == "ok"]
    assert len(ok) >= 12 and {key[0] for key in ok} == set(NARROW["tasks"])
    assert len(out["runs"]["multilabel_digits"]["final"]) == 6
    assert not out["runs"]["multilabel_digits"]["errors"]
    return settings, out, numbers(out)


def test_setup_work_is_bitwise_equal_on_one_and_two_workers(reference):
    settings, _out, expected = reference
    assert len(expected) > 500  # the comparison is not vacuous
    start = time.monotonic()
    got = numbers(setup_work(dataclasses.replace(settings, workers=2)))
    assert time.monotonic() - start < 240
    assert got.keys() == expected.keys()
    differ = [key for key in expected if got[key] != expected[key]]
    assert not differ, differ[:10]


def test_a_narrowed_grid_on_a_loopback_cluster_matches_the_in_process_path(reference, tmp_path):
    from suite import grid

    settings, out, _ = reference
    with loopback_cluster(tmp_path) as address:
        start = time.monotonic()
        cells = grid.compute_grid(dataclasses.replace(settings, workers=None,
                                                      scheduler=address))["cells"]
        assert time.monotonic() - start < 180
    assert numbers(cells) == numbers(out["grid"])


def _kill_a_worker_when_started(progress: Path, killed: list, stop: threading.Event) -> None:
    """Once the grid's first block is done, SIGKILL one of this process's Dask worker
    processes (started by the local cluster of the test: a child of this process)."""
    import psutil

    while not stop.wait(0.1):
        try:
            done = json.loads((progress / "gradient-grid.json").read_text())["done"]
        except (OSError, ValueError, KeyError):
            continue
        if done:
            break
    for child in psutil.Process().children(recursive=True):
        cmdline = " ".join(child.cmdline())
        if "spawn_main" in cmdline and "resource_tracker" not in cmdline:
            os.kill(child.pid, signal.SIGKILL)
            killed.append(child.pid)
            return


def test_a_worker_killed_mid_grid_leaves_a_complete_run_and_cache(reference, tmp_path,
                                                                   monkeypatch):
    """The asv setup_cache of the gradient grid on 2 workers, one SIGKILLed while it runs: the
    run completes, the killed worker's unit is retried (the same numbers) or failed with the
    error, and the run file and the setup cache read back whole."""
    import pickle

    from estibench.schema import read_run, run_files
    from suite.benchmarks import bench_gradients

    settings, out, _ = reference
    narrowed = dataclasses.replace(settings, setup_cache=str(tmp_path / "cache"),
                                   results=str(tmp_path / "results"), workers=2,
                                   progress=str(tmp_path / "progress"))
    for name, value in narrowed.to_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # the setup_cache spills its cells into the working directory
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=_kill_a_worker_when_started,
                              args=(tmp_path / "progress", killed, stop), daemon=True)
    killer.start()
    start = time.monotonic()
    try:
        bench_gradients._Quality().setup_cache()
    finally:
        stop.set()
        killer.join(10)
    assert time.monotonic() - start < 240
    assert killed, "no worker was killed: the test did not test anything"
    cached = list((tmp_path / "cache").glob("gradient-grid-*.pkl"))
    assert len(cached) == 1 and not list((tmp_path / "cache").glob("*.tmp"))
    with open(cached[0], "rb") as fh:
        cells = pickle.load(fh)["cells"]
    assert cells.keys() == out["grid"].keys()
    for key, cell in cells.items():
        if cell["status"] == "failed":  # the killed worker's unit, twice unlucky
            assert "worker" in cell["error"], (key, cell["error"])
        else:
            assert numbers(cell) == numbers(out["grid"][key]), key
    [path] = run_files(tmp_path / "results")
    rows = read_run(path)
    assert set(map(tuple, rows[rows["group"] == "gradient"][
        ["task", "estimator", "num_samples", "device"]].drop_duplicates().values)) == set(cells)


def test_the_gpu_check_skips_cleanly_without_a_gpu(tmp_path):
    """.ci/gpu on a machine whose nvidia-smi lists no GPU (a stub first on PATH): exit 0, one
    line saying why, the summary written under $OUT, nothing installed."""
    root = Path(__file__).resolve().parents[1]
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "nvidia-smi").write_text("#!/bin/sh\necho 'No devices were found' >&2\nexit 9\n")
    (stub / "nvidia-smi").chmod(0o755)
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(root / ".ci" / "gpu")], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PATH": f"{stub}:{os.environ['PATH']}",
                                           "OUT": str(out), "GPU_VENV": str(tmp_path / "venv")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GPU check skipped" in done.stdout
    assert "GPU check skipped" in (out / "summary.txt").read_text()
    assert not (tmp_path / "venv").exists()
