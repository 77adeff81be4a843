"""The suite's layout: asv discovers benchmark modules only, under stable names; the library
imports without them; no library module grows past 450 lines."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK_DIR = ROOT / json.loads((ROOT / "asv.conf.json").read_text())["benchmark_dir"]
NARROW = dict(ESTIBENCH_TASKS="bernoulli_t045,gaussian_quadratic", ESTIBENCH_NUM_SAMPLES="4",
              ESTIBENCH_ESTIMATORS="score_function:baseline=loo,reparam", ESTIBENCH_DEVICES="cpu",
              ESTIBENCH_TRAINING_TASKS="multilabel_digits", OMP_NUM_THREADS="1")


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, **NARROW),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


#: the benchmark modules in the benchmark dir: every .py file there is one
BENCH_FILES = sorted(p.name for p in (ROOT / "suite" / "benchmarks").glob("*.py"))


def test_the_benchmark_dir_is_the_benchmarks_subpackage():
    assert BENCHMARK_DIR == ROOT / "suite" / "benchmarks"
    assert sorted(p.name for p in BENCHMARK_DIR.rglob("*.py")) == BENCH_FILES  # no sub-folders
    assert {"__init__.py", "bench_alignment.py", "bench_gradients.py", "bench_metrics.py",
            "bench_floor.py"} <= set(BENCH_FILES)
    assert all(f == "__init__.py" or f.startswith("bench_") for f in BENCH_FILES)


def test_asv_discovers_only_benchmark_modules_and_every_one_defines_benchmarks():
    """asv's own discovery, as ``asv run`` does it (the benchmark dir's parent on sys.path): every
    module it imports from the benchmark dir yields benchmarks, and the names keep the form
    ``<module>.<Class>.<method>`` that results written before this layout use."""
    code = f"""
import json, sys
sys.path.insert(0, {str(BENCHMARK_DIR.parent)!r})
from asv_runner.discovery import disc_benchmarks, disc_modules
names = sorted(b.name for b in disc_benchmarks({str(BENCHMARK_DIR)!r}))
files = sorted(getattr(m, "__file__", None) or "" for m in disc_modules("benchmarks"))
print(json.dumps({{"names": names, "files": files}}))
"""
    got = json.loads(_python(code))
    files = [Path(f).name for f in got["files"] if f]
    assert files == BENCH_FILES
    # every discovered module defines benchmarks (the package's own have no module part)
    modules = {n.split(".")[0] if n.startswith("bench_") else "__init__" for n in got["names"]}
    assert modules == {f[:-3] for f in BENCH_FILES}
    names = set(got["names"])
    for name in ("bench_gradients.QualityBernoulli.track_variance",
                 "bench_gradients.QualityBernoulliK2.track_claim_verdict",
                 "bench_gradients.CostNormal.time_estimate",
                 "bench_alignment.MultilabelDigitsSummary.track_final_metric_equal_steps",
                 "bench_landscape.LandscapeClippingLR.track_largest_stable_lr",
                 "bench_floor.Floor.track_floor_ratio",
                 "bench_metrics.Gap.track_relative_gap",
                 "bench_metrics.TimeTransportPair.time_pair",
                 "SuiteSize.track_gradient_cells", "SuiteSize.track_training_runs"):
        assert name in names, name
    # the run anchors and the facts asv used to hold are gone: run files hold them now
    assert not any(n.endswith(".track_run_started") or "Info." in n for n in names)


def test_the_library_imports_without_the_benchmarks():
    code = ("import sys, suite, suite.grid, suite.measure, suite.benchutil; "
            "print(sorted(m for m in sys.modules if 'benchmarks' in m or m.startswith('asv')))")
    assert _python(code) == "[]"


def test_the_suite_tracks_its_own_size():
    code = ("from suite.benchmarks import SuiteSize; s = SuiteSize(); "
            "print(s.track_gradient_cells(), s.track_training_runs())")
    # narrowed: bernoulli_t045 x score_function, gaussian_quadratic x (score_function, reparam),
    # at K = 4 on the CPU; multilabel_digits: 2 methods x 3 seeds
    assert _python(code) == "3.0 6.0"


def test_no_library_module_is_over_450_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for p in (ROOT / "suite").rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 450} == {}
