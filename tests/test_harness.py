"""Tests of the measuring itself: the harness's variance, bias and cosine agree with closed forms,
R adapts to cost, the grid skips what does not apply and fails only what breaks, plugins join
the grid, and the asv suite runs under asv.

Note [Randomized statistical tests]: each statistical test fixes its seed; its tolerance is
``z_crit(ALPHA) x`` the standard error the harness itself reports, so these tests also check that
the stated standard errors are honest.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from statcheck import ALPHA, failing_estimator, z_crit

import estimators
from estibench.schema import GRADIENT, MEASURES
from estibench.settings import Settings, SettingsError, current
from estimators.base import DISCRETE
from suite import grid, measure, tasks
from suite.benchmarks import bench_gradients
from suite.run import scratch_config

ROOT = Path(__file__).resolve().parents[1]


def toy(logit: float, t: float = 0.45) -> tasks.BernoulliToy:
    task = tasks.BernoulliToy(t=t)
    task.logits = torch.tensor(logit, dtype=torch.float64)
    return task


def measured(spec: str, task, k: int, seed: int = 0):
    torch.manual_seed(seed)
    est = estimators.get(spec)
    r = task.replicates_for(measure.rows_per_estimate(est, task, k))
    G = measure.replicate_estimates(est, task, k, r, dtype=torch.float64)
    return measure.statistics(G, task.reference())


# -- closed forms on the Bernoulli toy ---------------------------------------------------------
# f(b) = (b - t)^2, b ~ Bernoulli(p), p = sigmoid(θ); d/dθ log p(b) = b - p.
# Score function, one sample: ĝ = f(b)(b - p), so
#   E ĝ = p(1-p)[(1-t)^2 - t^2]               (the exact gradient)
#   E ĝ² = p(1-t)^4(1-p)^2 + (1-p)t^4 p^2,     Var = E ĝ² - (E ĝ)²,  and Var/K for K samples.
# Straight-through: ĝ = f'(b) σ'(θ) = 2(b - t)p(1-p), so E ĝ = 2p(1-p)(p - t) and
#   Var ĝ = 4p²(1-p)² Var(b) = 4p³(1-p)³; relative bias |2(p - t) - (1 - 2t)| / |1 - 2t|.
def sf_variance(p: float, t: float) -> float:
    mean = p * (1 - p) * ((1 - t) ** 2 - t ** 2)
    second = p * (1 - t) ** 4 * (1 - p) ** 2 + (1 - p) * t ** 4 * p ** 2
    return second - mean ** 2


@pytest.mark.parametrize("logit,t,k", [(0.0, 0.45, 1), (0.7, 0.45, 1), (-1.2, 0.499, 1),
                                       (0.7, 0.45, 4)])
def test_score_function_variance_matches_closed_form(logit, t, k):
    p = 1 / (1 + math.exp(-logit))
    got = measured("score_function:baseline=none", toy(logit, t), k)
    expected = sf_variance(p, t) / k
    assert abs(got["variance"] - expected) < z_crit() * got["variance_se"], (got, expected)
    # the exact gradient is recovered: no bias beyond what R can resolve
    assert got["bias"] < z_crit() * got["bias_se"]


def test_straight_through_bias_and_variance_match_closed_form():
    logit, t = 0.7, 0.45
    p = 1 / (1 + math.exp(-logit))
    got = measured("straight_through", toy(logit, t), 1)
    rel_bias = abs(2 * (p - t) - (1 - 2 * t)) / abs(1 - 2 * t)
    assert abs(got["variance"] - 4 * p ** 3 * (1 - p) ** 3) < z_crit() * got["variance_se"]
    # bias_se is the resolution of the mean estimate; the bias itself is large here
    assert abs(got["bias"] - rel_bias) < z_crit() * got["bias_se"], (got["bias"], rel_bias)


def test_the_bias_check_can_fail():
    """At p = 1/2 straight-through happens to be unbiased on this toy (2(p - t) = 1 - 2t); away
    from it the measured bias is many standard errors from 0."""
    got = measured("straight_through", toy(0.7), 1)
    assert got["bias"] > z_crit() * got["bias_se"]


def test_exact_estimator_measures_zero_variance_and_bias():
    got = measured("exact", tasks.build_task("categorical_table"), 1)
    assert got["variance"] == pytest.approx(0.0, abs=1e-20)
    assert got["bias"] == pytest.approx(0.0, abs=1e-9)
    assert got["cosine"] == pytest.approx(1.0) and got["cosine_of_mean"] == pytest.approx(1.0)
    assert got["snr"] is None  # undefined: the benchmark skips it


# -- statistics() against an independent computation -----------------------------------------
def test_statistics_match_numpy_on_known_estimates():
    rng = np.random.default_rng(0)
    g = np.array([1.0, -2.0, 0.5])
    G = g + np.array([0.3, 0.0, -0.1]) + rng.normal(size=(500, 3)) * [0.5, 1.0, 2.0]
    got = measure.statistics(torch.as_tensor(G), torch.as_tensor(g))
    m = G.mean(0)
    variance = np.trace(np.cov(G.T))
    assert got["variance"] == pytest.approx(variance)
    assert got["mse"] == pytest.approx(np.mean(((G - g) ** 2).sum(1)))
    bias2 = ((m - g) ** 2).sum() - variance / len(G)
    assert got["bias"] == pytest.approx(math.sqrt(bias2) / np.linalg.norm(g))
    assert got["bias_se"] == pytest.approx(math.sqrt(variance / len(G)) / np.linalg.norm(g))
    cos_each = (G @ g) / (np.linalg.norm(G, axis=1) * np.linalg.norm(g))
    assert got["cosine"] == pytest.approx(cos_each.mean())
    assert got["cosine_of_mean"] == pytest.approx(m @ g / (np.linalg.norm(m) * np.linalg.norm(g)))
    assert got["snr"] == pytest.approx(np.linalg.norm(m) / math.sqrt(variance))
    assert got["replicates"] == 500


def test_standard_errors_are_calibrated():
    """Across independent repetitions the spread of a measure matches its stated se: the
    variance of 200 repeated variance measurements vs the mean of their squared se (an
    F-like ratio, checked with a chi-square interval at ALPHA)."""
    rng = np.random.default_rng(1)
    g = np.ones(4)
    reps = 200
    values, ses = [], []
    for _ in range(reps):
        G = g + rng.standard_t(df=8, size=(400, 4))
        got = measure.statistics(torch.as_tensor(G), torch.as_tensor(g))
        values.append(got["variance"])
        ses.append(got["variance_se"])
    ratio = np.var(values, ddof=1) / np.mean(np.square(ses))
    lo, hi = stats.chi2.ppf([ALPHA / 2, 1 - ALPHA / 2], reps - 1) / (reps - 1)
    assert lo < ratio < hi, ratio


def test_statistics_refuse_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        measure.statistics(torch.ones(1, 3), torch.ones(3))
    with pytest.raises(ValueError, match="coordinates"):
        measure.statistics(torch.ones(4, 3), torch.ones(2))
    with pytest.raises(ValueError, match="reference gradient is zero"):
        measure.statistics(torch.ones(4, 3), torch.zeros(3))


# -- tasks ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bernoulli100_t045", "categorical_table", "gaussian_cos",
                                  "gaussian_exp", "gaussian_quadratic",
                                  "bernoulli20_nonseparable", "categorical100"])
def test_closed_form_references_agree_with_an_unbiased_estimator(name):
    """Each task's closed-form reference is the mean of many score-function estimates."""
    task = tasks.build_task(name)
    got = measured("score_function:baseline=loo", task, 8, seed=3)
    assert got["bias"] < z_crit() * got["bias_se"]


def test_vae_reference_is_the_exact_gradient():
    """The VAE reference enumerates the latent support; a finite-difference check of the negative
    ELBO along a random direction of the encoder's weights confirms it."""
    import copy
    task = tasks.build_task("vae_bernoulli_linear")
    g = task.reference()
    torch.manual_seed(0)
    direction = [torch.randn_like(w) for w in task.encoder]
    h = 1e-5

    def objective(sign):
        shifted = copy.deepcopy(task)
        shifted.encoder = [w + sign * h * d for w, d in zip(task.encoder, direction)]
        problem = shifted.problem(1, dtype=torch.float64)
        return float(estimators.get("exact")(problem.dist, problem.f, 1).detach())
    fd = (objective(1) - objective(-1)) / (2 * h)
    assert fd == pytest.approx(float(g @ torch.cat([d.reshape(-1) for d in direction])),
                               rel=1e-6)


def test_tasks_are_deterministic_and_picklable():
    import pickle
    a, b = tasks.build_task("vae_categorical"), tasks.build_task("vae_categorical")
    assert torch.equal(a.reference(), b.reference())
    c = pickle.loads(pickle.dumps(a))
    assert torch.equal(c.reference(), a.reference())


def test_replicates_adapt_to_the_rows_an_estimator_evaluates():
    task = tasks.build_task("vae_bernoulli_linear")
    assert measure.rows_per_estimate(estimators.get("score_function"), task, 4) == 4
    assert measure.rows_per_estimate(estimators.get("rebar"), task, 4) == 12
    assert measure.rows_per_estimate(estimators.get("exact"), task, 4) == 1024
    assert task.replicates_for(1) == task.replicates
    assert task.replicates_for(1024) == task.min_replicates
    assert task.min_replicates <= task.replicates_for(64) <= task.replicates


def test_evaluations_count_what_f_was_asked_to_evaluate():
    task = tasks.build_task("bernoulli20_nonseparable")
    count = measure.evaluations_per_estimate
    assert count(estimators.get("rebar"), task, 4) == 12  # 3 per sample
    assert count(estimators.get("indecater"), task, 4) == 4 * 20 * 2  # D·C per sample
    assert count(estimators.get("disarm"), task, 2) == 2


def test_a_cell_tests_the_claim_and_reaches_its_target():
    task = tasks.build_task("bernoulli_t045")
    assert task.bias_target == 0.1 and tasks.bias_target("vae_categorical") == 0.25
    ok = measure.measure_cell(lambda: estimators.get("score_function:baseline=loo"), task, 4)
    assert ok["detectable_bias"] <= 0.1 and ok["claim_verdict"] == 1
    assert ok["evaluations"] == 4 and 0 <= ok["bias_p"] <= 1
    # a deterministic exact estimator is consistent, not contradicted by float32 rounding
    exact = measure.measure_cell(lambda: estimators.get("exact"), task, 1)
    assert exact["claim_verdict"] == 1
    # a biased estimator that claimed unbiasedness is contradicted
    biased = measure.measure_cell(lambda: estimators.get("straight_through"),
                                  toy(0.7), 1, unbiased=True)
    assert biased["claim_verdict"] == -1 and biased["bias_p"] < 1e-3


def test_each_estimator_gets_its_smallest_valid_k(monkeypatch):
    monkeypatch.delenv("ESTIBENCH_NUM_SAMPLES", raising=False)
    monkeypatch.delenv("ESTIBENCH_GRID", raising=False)
    # the default grid: the smallest valid K and 16
    assert grid.estimator_num_samples(estimators.get("disarm")) == [2, 16]
    assert grid.estimator_num_samples(estimators.get("score_function:baseline=loo")) == [2, 16]
    assert grid.estimator_num_samples(estimators.get("score_function")) == [1, 16]
    assert grid.num_samples() == [1, 2, 16]
    # the full grid
    monkeypatch.setenv("ESTIBENCH_GRID", "full")
    assert grid.estimator_num_samples(estimators.get("disarm")) == [2, 4, 16, 64]
    assert grid.estimator_num_samples(estimators.get("score_function:baseline=loo")) == [
        2, 4, 16, 64]
    assert grid.estimator_num_samples(estimators.get("score_function")) == [1, 4, 16, 64]
    assert grid.num_samples() == [1, 2, 4, 16, 64]
    # a listed K set for every estimator (where valid), on top of the default grid's classes
    monkeypatch.setenv("ESTIBENCH_GRID", "default")
    monkeypatch.setenv("ESTIBENCH_NUM_SAMPLES", "1,2,4,16,64")
    assert grid.estimator_num_samples(estimators.get("disarm")) == [2, 4, 16, 64]
    assert grid.class_num_samples(1) == [1, 2, 4, 16, 64]
    assert grid.class_num_samples(2) == [2, 4, 16, 64]
    monkeypatch.setenv("ESTIBENCH_GRID", "fulll")
    with pytest.raises(SettingsError, match="ESTIBENCH_GRID"):
        grid.full_grid()
    # the settings are passed down, not read from the environment behind the caller's back
    listed = Settings(num_samples=(1, 2, 4, 16, 64), grid="full")
    assert grid.class_num_samples(1, listed) == [1, 2, 4, 16, 64]
    assert grid.num_samples(settings=Settings()) == [1, 2, 16]


def test_the_default_grid_caps_the_claim_tests_replicates(monkeypatch):
    task = tasks.build_task("bernoulli_t045")
    monkeypatch.delenv("ESTIBENCH_GRID", raising=False)
    assert grid.claim_replicates(task) == grid.CLAIM_REPLICATES * task.replicates
    monkeypatch.setenv("ESTIBENCH_GRID", "full")
    assert grid.claim_replicates(task) is None
    # a biased estimator's claim test stops at the cap (inconclusive or contradicted)
    capped = measure.measure_cell(lambda: estimators.get("straight_through"), task, 1,
                                  max_replicates=100)
    assert capped["replicates"] <= max(100, task.replicates_for(1))


def test_narrowing_keeps_the_parameters_and_selects_cells(monkeypatch):
    from suite import run
    monkeypatch.setenv("ESTIBENCH_TASKS", "bernoulli_t045")
    monkeypatch.setenv("ESTIBENCH_ESTIMATORS", "disarm")
    assert grid.task_names() == ["bernoulli_t045"]
    assert set(grid.task_names(full=True)) >= {"bernoulli_t045", "categorical100"}
    regex = run.selection(current())[0]
    import re
    assert re.search(regex, "bench_gradients.QualityBernoulli.track_bias('bernoulli_t045', "
                            "'disarm', 2, 'cpu')")
    assert not re.search(regex, "bench_gradients.QualityBernoulli.track_bias('bernoulli_t045', "
                                "'exact', 2, 'cpu')")
    assert run.selection(Settings()) == []


def test_moving_average_baseline_is_warmed_up_before_it_is_measured():
    task = tasks.build_task("bernoulli_t045")
    est = measure.warmed_up(estimators.get("score_function:baseline=moving_average"), task, 1,
                            10)
    assert int(est.steps) == measure.WARMUP_CALLS
    assert not measure.is_stateful(estimators.get("score_function:baseline=loo"))


# -- the grid ------------------------------------------------------------------------------------
@pytest.fixture
def small_grid(monkeypatch):
    monkeypatch.setenv("ESTIBENCH_TASKS", "bernoulli_t045,gaussian_quadratic")
    monkeypatch.setenv("ESTIBENCH_NUM_SAMPLES", "1,4")
    monkeypatch.setenv("ESTIBENCH_ESTIMATORS",
                       "score_function:baseline=loo,exact,reparam,broken_for_test")


Broken = failing_estimator("broken_for_test")


@pytest.fixture
def broken_estimator():
    estimators.register("broken_for_test", families=DISCRETE, description="fails",
                        reference="test")(Broken)
    yield
    estimators.ESTIMATORS.unregister("broken_for_test")


def test_grid_skips_what_does_not_apply_and_fails_only_what_breaks(small_grid,
                                                                   broken_estimator):
    families = grid.families()
    assert families["Bernoulli"] == (["bernoulli_t045"],
                                     ["score_function:baseline=loo", "exact", "broken_for_test"])
    assert families["Normal"] == (["gaussian_quadratic"], ["score_function:baseline=loo",
                                                           "reparam"])
    cells = grid.compute_grid()["cells"]
    status = {key: cell["status"] for key, cell in cells.items()}
    assert status[("bernoulli_t045", "score_function:baseline=loo", 1, "cpu")] == "skipped"
    assert status[("bernoulli_t045", "score_function:baseline=loo", 4, "cpu")] == "ok"
    assert status[("bernoulli_t045", "exact", 1, "cpu")] == "ok"
    assert status[("gaussian_quadratic", "reparam", 4, "cpu")] == "ok"
    for k in (1, 4):
        cell = cells[("bernoulli_t045", "broken_for_test", k, "cpu")]
        assert cell["status"] == "failed" and "always fails" in cell["error"]
    ok = cells[("gaussian_quadratic", "reparam", 4, "cpu")]["values"]
    assert set(measure.QUALITY_MEASURES) <= set(ok) and ok["replicates"] >= 16


def test_grid_cells_are_reproducible(small_grid, broken_estimator):
    a = grid.compute_grid()["cells"]
    b = grid.compute_grid()["cells"]
    for key, cell in a.items():
        if cell["status"] == "ok":
            va = {k: v for k, v in cell["values"].items() if "seconds" not in k
                  and "work_normalised" not in k}
            vb = {k: v for k, v in b[key]["values"].items() if k in va}
            assert va == vb, key


def test_unknown_names_in_the_grid_environment_are_refused(monkeypatch):
    """One line naming the setting, the bad name and the closest registered one, raised as the
    grid is laid out (not deep inside a cell)."""
    monkeypatch.setenv("ESTIBENCH_ESTIMATORS", "score_fuction")
    with pytest.raises(SettingsError, match="ESTIBENCH_ESTIMATORS: unknown estimator "
                                            "'score_fuction'; did you mean 'score_function'"):
        grid.families()
    monkeypatch.delenv("ESTIBENCH_ESTIMATORS")
    monkeypatch.setenv("ESTIBENCH_TASKS", "bernoulli_t45")
    with pytest.raises(SettingsError, match="unknown task 'bernoulli_t45'; did you mean "
                                            "'bernoulli_t045'"):
        grid.families()
    with pytest.raises(SettingsError, match="--tasks: unknown task 'gaussian_cosine'"):
        grid.task_names(settings=Settings().merged({"tasks": "gaussian_cosine"}, "--tasks"))


def test_a_bare_estimator_name_is_every_variant_in_every_grid(monkeypatch):
    """The documented meaning of a bare name: every registered variant of it, in the gradient
    grid, the VAE training tasks and the floor alike; a spec with options is exactly itself."""
    from suite.methods import estimator_methods

    variants = list(estimators.info("score_function").info["variants"])
    monkeypatch.setenv("ESTIBENCH_ESTIMATORS", "score_function,rebar:tune=true")
    assert grid.estimator_specs() == variants + ["rebar:tune=true"]
    assert set(estimator_methods("Bernoulli")) == set(variants) | {"rebar:tune=true"}
    families = grid.families()
    assert families["Bernoulli"][1] == variants + ["rebar:tune=true"]


def test_benchmark_classes_cover_every_family():
    names = {n for n in dir(bench_gradients) if n[0].isupper() and hasattr(
        getattr(bench_gradients, n), "params")}
    for family in ("Bernoulli", "OneHotCategorical", "Normal"):
        for prefix in ("Quality", "Cost"):  # SNR<Family>: the full grid's
            assert f"{prefix}{family}" in names
    quality = bench_gradients.QualityBernoulli
    assert quality.param_names == ["task", "estimator", "num_samples", "device"]
    # one class per smallest valid K: no cell is skipped for a K outside an estimator's grid
    assert quality.params[2] == [1, 16] and "disarm" not in quality.params[1]
    pairs = bench_gradients.QualityBernoulliK2
    assert pairs.params[2] == [2, 16] and "disarm" in pairs.params[1]
    assert "score_function:baseline=loo" in bench_gradients.QualityNormalK2.params[1]
    # asv tracks the regression alarms only; the rest goes to the run file
    tracks = {m for m in dir(quality) if m.startswith("track_")}
    assert tracks == {f"track_{m}" for m in bench_gradients.TRACKED}
    for m in bench_gradients.TRACKED:
        assert getattr(quality, f"track_{m}").unit == MEASURES[m].unit  # the one table's units
    assert not hasattr(bench_gradients.CostBernoulli, "peakmem_estimate")


def test_the_full_grid_tracks_every_measure(run_python, monkeypatch, tmp_path):
    """The full grid's run file holds every gradient measure with its standard error, the SNR
    and the facts, for every cell the run measured (an asv run's setup_cache, narrowed)."""
    monkeypatch.setenv("ESTIBENCH_GRID", "full")
    monkeypatch.setenv("ESTIBENCH_TASKS", "bernoulli_t045")
    monkeypatch.setenv("ESTIBENCH_ESTIMATORS", "score_function:baseline=none")
    monkeypatch.setenv("ESTIBENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("ESTIBENCH_SETUP_CACHE", "off")
    monkeypatch.chdir(tmp_path)  # spill() writes here
    got = run_python(tmp_path, '''
        import json, os
        from estibench.schema import read_run, run_files
        from suite.benchmarks import bench_gradients as b
        cache = b._Quality().setup_cache()
        (path,) = run_files(os.environ["ESTIBENCH_RESULTS"])
        rows = read_run(path)
        cell = rows[(rows["estimator"] == "score_function:baseline=none")
                    & (rows["num_samples"] == 16) & (rows["group"] == "gradient")]
        print(json.dumps({"ks": b.QualityBernoulli.params[2], "name": path.name,
                          "values": dict(zip(cell["measure"], cell["value"])),
                          "se": dict(zip(cell["measure"], cell["se"].fillna(-1))),
                          "claims": sorted(set(cell["claims_unbiased"])),
                          "peakmem": hasattr(b.CostBernoulli, "peakmem_estimate")}))
    ''')
    assert got["ks"] == [1, 4, 16, 64] and got["peakmem"]
    assert got["name"].endswith("-gradient-grid.parquet")
    values, se = got["values"], got["se"]
    for m in measure.QUALITY_MEASURES:
        assert isinstance(values[m], float) and se[m] >= 0, m
    assert not any(m.endswith("_se") for m in values)
    assert got["claims"] == [1.0] and values["replicates"] >= 2


def test_the_harness_measures_every_gradient_measure_of_the_table():
    assert set(measure.QUALITY_MEASURES) | {"replicates"} == set(GRADIENT)
    G = torch.randn(50, 3, dtype=torch.float64) + 1
    assert set(GRADIENT) <= set(measure.statistics(G, torch.ones(3))) | {
        "work_normalised_variance"}  # measure_cell adds it from the timing


def test_a_plugin_estimator_joins_the_benchmark_grid(plugin_site, run_python):
    got = run_python(plugin_site, '''
        import json
        from suite import grid
        from suite.benchmarks import bench_gradients as b
        print(json.dumps({"specs": grid.estimator_specs(),
                          "bernoulli": b.QualityBernoulli.params[1],
                          "normal": b.QualityNormal.params[1]}))
    ''')
    assert "constant_baseline_sf" in got["specs"]
    assert "constant_baseline_sf" in got["bernoulli"]  # its families include Bernoulli
    assert "constant_baseline_sf" not in got["normal"]  # and not Normal


@pytest.mark.skipif(shutil.which("asv") is None and not (Path(sys.executable).parent / "asv")
                    .exists(), reason="asv is a dependency; not installed here")
def test_the_suite_runs_under_asv(tmp_path):
    """A small grid through real asv (forkserver, setup_cache, skips): no cell fails, and CUDA
    cells, listed on purpose, skip cleanly where there is no GPU."""
    asv = shutil.which("asv") or str(Path(sys.executable).parent / "asv")
    before = (ROOT / ".asv" / "results" / "test").exists()
    tree_runs = ROOT / ".asv" / "results" / "runs"
    runs_before = set(tree_runs.glob("*"))
    env = dict(os.environ, ESTIBENCH_TASKS="bernoulli_t045", ESTIBENCH_NUM_SAMPLES="4",
               ESTIBENCH_ESTIMATORS="score_function:baseline=loo,exact",
               ESTIBENCH_DEVICES="cpu,cuda", OMP_NUM_THREADS="1", HOME=str(tmp_path),
               ESTIBENCH_SETUP_CACHE=str(tmp_path / "setup-cache"),
               ESTIBENCH_RESULTS=str(tmp_path / "results"))
    # a copy of the project's asv config whose results, environments and html go to tmp_path:
    # the test writes nothing into the working tree
    config = scratch_config(tmp_path)
    subprocess.run([asv, "machine", "--yes", "--machine", "test", "--config", str(config)],
                   cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    # the narrowing as asv's cell selection (--bench, what `estibench run` passes), so only
    # the selected cells of the full-grid benchmarks run
    from suite import run
    narrowed = Settings.from_env(env)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip() or "0" * 40
    bench = [a for regex in run.selection(narrowed) for a in ("--bench", regex)]
    out = subprocess.run([asv, "run", "--python=same", "--set-commit-hash", head, *bench,
                          "--quick", "--dry-run", "--machine", "test", "--show-stderr",
                          "--config", str(config)],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert not (ROOT / ".asv" / "results" / "test").exists() or before, "wrote into the tree"
    assert any((tmp_path / "setup-cache").glob("*.pkl"))  # the setup cache went to tmp_path
    # and the run's run file beside the scratch results, with the asv machine's name
    from estibench.schema import read_run
    (path,) = (tmp_path / "results" / "runs").glob("*-gradient-grid.parquet")
    rows = read_run(path)
    assert set(rows["machine"]) == {"test"} and set(rows["task"]) == {"bernoulli_t045", ""}
    cuda = rows[rows["device"] == "cuda"]
    assert len(cuda) and set(cuda["status"]) == ({"skipped"} if not torch.cuda.is_available()
                                                 else {"ok"})
    assert set(tree_runs.glob("*")) == runs_before, "wrote run files into the tree"
    assert "failed" not in log, log[-3000:]
    assert "QualityBernoulli.track_variance" in log and "n/a" in log  # CUDA cells are skipped
    if not torch.cuda.is_available():
        assert "no CUDA device" in log and "CudaMemoryBernoulli.track_cuda_peakmem" in log


def test_devices_default_to_what_is_present_and_can_be_forced(monkeypatch):
    monkeypatch.delenv("ESTIBENCH_DEVICES", raising=False)
    assert grid.devices() == ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    monkeypatch.setenv("ESTIBENCH_DEVICES", "cpu,cuda")
    assert grid.devices() == ["cpu", "cuda"]
    monkeypatch.setenv("ESTIBENCH_DEVICES", "cpu,tpu")
    with pytest.raises(SettingsError, match="ESTIBENCH_DEVICES: unknown device"):
        grid.devices()


def test_setup_work_is_spilled_per_cell_and_cached_by_code(tmp_path, monkeypatch):
    from suite import benchutil

    monkeypatch.chdir(tmp_path)
    directory = benchutil.spill({("t", "e", 1, "cpu"): {"status": "ok"}}, "cells")
    assert benchutil.unspill(directory, ("t", "e", 1, "cpu")) == {"status": "ok"}
    assert benchutil.unspill(directory, ("t", "e", 2, "cpu")) is None
    monkeypatch.setattr(benchutil, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.delenv("ESTIBENCH_SETUP_CACHE", raising=False)
    calls = []

    def compute():
        calls.append(1)
        return {"value": len(calls)}

    def cached(**kw):
        return benchutil.disk_cached("work", compute, computation="gradient-grid", **kw)
    assert cached() == {"value": 1}
    assert cached() == {"value": 1} and len(calls) == 1
    # settings the gradient grid's results do not depend on: the cache is reused
    monkeypatch.setenv("ESTIBENCH_TRAINING_TASKS", "multilabel_digits")
    monkeypatch.setenv("ESTIBENCH_JOBS", "2")
    monkeypatch.setenv("ESTIBENCH_HISTORY_COMMITS", "5")
    assert cached() == {"value": 1} and len(calls) == 1
    monkeypatch.setenv("ESTIBENCH_TASKS", "bernoulli_t045")  # a setting it depends on
    assert cached() == {"value": 2}
    assert len(list((tmp_path / "cache").glob("work-*.pkl"))) == 1  # the older one removed
    monkeypatch.setenv("ESTIBENCH_SETUP_CACHE", "off")
    assert cached() == {"value": 3}
    monkeypatch.delenv("ESTIBENCH_SETUP_CACHE")
    monkeypatch.setenv("ESTIBENCH_TASKS", "bernoulli_t0499")
    assert cached(keep=lambda v: False) == {"value": 4}
    assert cached() == {"value": 5}  # the refused one not stored


def test_the_setup_cache_key_holds_only_what_changes_results():
    """Narrowing the training tasks or the report's processes keeps the gradient grid's key;
    changing the estimators, K, the grid or the thread count changes it; each computation keys
    on its own settings only."""
    from suite import benchutil

    def key(computation: str, **values) -> str:
        return benchutil.code_key(computation, Settings().merged(values, "test").key(computation))

    base = key("gradient-grid")
    assert key("gradient-grid", training_tasks="multilabel_digits", jobs="3",
               losses="bce", history_commits="50") == base
    for changed in ({"estimators": "disarm"}, {"num_samples": "4"}, {"grid": "full"},
                    {"tasks": "bernoulli_t045"}, {"threads": "2"}, {"devices": "cpu"}):
        assert key("gradient-grid", **changed) != base, changed
    training = key("training")
    assert key("training", tasks="bernoulli_t045", num_samples="4") == training
    assert key("training", losses="bce") != training
    assert key("training", estimators="disarm") != training
    assert key("landscape", estimators="disarm", tasks="bernoulli_t045") == key("landscape")


def test_a_cell_too_large_for_memory_is_refused_before_it_allocates():
    """Issue 21 item 7: the task's minimum replicates must not override its row budget
    (score_function at K = 2**25 on 100 Bernoullis asked for 13.4 GB at once)."""
    import resource

    from suite.measure import measure_cell

    task = tasks.build_task("bernoulli100_t045")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match="choose a smaller num_samples"):
        measure_cell(lambda: estimators.get("score_function"), task, 2**25)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 2048, f"peak memory grew by {grown_mb:.0f} MB before the refusal"
