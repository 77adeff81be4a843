"""Run files (suite/results.py): every setup computation writes ONE file of tidy rows holding
everything it measured, labelled (display names, units, the registered claim) and traced (code
versions, commit, machine); failed and skipped cells are rows with their status and error."""
from __future__ import annotations

import json
import math

import pytest
from statcheck import failing_estimator

import estimators
from estibench.schema import MEASURES, read_run, run_files, run_metadata
from estibench.settings import Settings
from estimators.base import DISCRETE
from suite import results, versions
from suite.registries import TASKS, task_display_name

Broken = failing_estimator("broken_for_runs")


@pytest.fixture
def narrowed(monkeypatch, tmp_path):
    estimators.register("broken_for_runs", families=DISCRETE, description="fails",
                        reference="test", display_name="Broken (test)")(Broken)
    monkeypatch.setenv("ESTIBENCH_TASKS", "bernoulli_t045")
    monkeypatch.setenv("ESTIBENCH_NUM_SAMPLES", "1,4")
    monkeypatch.setenv("ESTIBENCH_ESTIMATORS", "score_function:baseline=loo,straight_through,"
                                               "broken_for_runs")
    monkeypatch.setenv("ESTIBENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("ESTIBENCH_SETUP_CACHE", "off")
    monkeypatch.chdir(tmp_path)  # setup_cache spills its cells here
    yield tmp_path / "results"
    estimators.ESTIMATORS.unregister("broken_for_runs")


def test_the_gradient_grid_writes_one_labelled_run_file(narrowed):
    from suite.benchmarks import bench_gradients

    bench_gradients._Quality().setup_cache()
    (path,) = run_files(narrowed)
    assert path.name.endswith("-gradient-grid.parquet")
    rows = read_run(path)
    cells = rows[rows["group"] == "gradient"].set_index(["estimator", "num_samples", "measure"]
                                                        ).sort_index()
    # an ok cell: every measure, the tracked ones too, standard errors in ``se``
    ok = cells.loc[("score_function:baseline=loo", 4)]
    assert {"variance", "bias", "mse", "claim_verdict", "replicates", "evaluations",
            "detectable_bias", "bias_p", "bias_z", "cosine", "snr"} <= set(ok.index)
    assert (ok["status"] == "ok").all() and not rows["measure"].str.endswith("_se").any()
    assert ok.loc["variance", "se"] > 0 and math.isnan(ok.loc["replicates", "se"])
    assert ok.loc["variance", "unit"] == MEASURES["variance"].unit == "grad^2"
    assert ok.loc["variance", "estimator_name"] == estimators.display_name(
        "score_function:baseline=loo") == "score function (LOO)"
    assert ok.loc["variance", "task_name"] == "Bernoulli, t = 0.45"
    assert ok.loc["variance", "claims_unbiased"] == 1.0
    assert cells.loc[("straight_through", 1, "variance"), "claims_unbiased"] == 0.0
    # a skipped cell (LOO needs K >= 2) and a failed one: a row per measure, with why
    skipped = cells.loc[("score_function:baseline=loo", 1)]
    assert set(skipped["status"]) == {"skipped"} and "num_samples >= 2" in skipped["error"].iloc[0]
    assert skipped["value"].isna().all() and "variance" in skipped.index
    failed = cells.loc[("broken_for_runs", 4)]
    assert set(failed["status"]) == {"failed"} and "always fails" in failed["error"].iloc[0]
    assert set(failed["estimator_name"]) == {"Broken (test)"}  # the plugin's declared name
    # provenance: code versions, torch, commit, machine, the run
    version = ok.loc["variance", "estimator_version"]
    assert version.startswith("estibench==") and len(version.partition("#")[2]) == 12
    assert ok.loc["variance", "task_version"] == versions.task_version("bernoulli_t045")
    assert set(rows["torch_version"]) == {versions.torch_version()} != {""}
    assert set(rows["commit"]) == {versions.commit()}
    assert set(rows["machine_id"]) == {versions.machine_id()}
    assert set(rows["run"]) == {path.stem} and rows["run_started"].nunique() == 1
    # the harness's facts: the task's bias target, the warm-up calls
    harness = rows[rows["group"] == "harness"].set_index("measure")
    assert harness.loc["bias_target", "value"] == 0.1
    assert harness.loc["bias_target", "task"] == "bernoulli_t045"
    assert harness.loc["warmup_calls", "value"] > 0
    meta = run_metadata(path)
    assert meta["source"] == "gradient-grid" and meta["settings"]["tasks"] == ["bernoulli_t045"]
    assert dict(meta["libraries"])["torch"] == versions.torch_version()


def test_run_files_go_to_the_results_setting_or_asvs_results_dir(tmp_path, monkeypatch):
    assert results.results_folder(Settings(results=str(tmp_path / "r"))) == tmp_path / "r"
    (tmp_path / "asv.conf.json").write_text(json.dumps({"results_dir": "out"}))
    monkeypatch.setenv("ASV_CONF_DIR", str(tmp_path))
    assert results.results_folder(Settings()) == tmp_path / "out"
    monkeypatch.delenv("ASV_CONF_DIR")
    assert results.results_folder(Settings()) == versions.ROOT / ".asv" / "results"
    assert results.run_id(1.5, "training-a/b c") == "1.500000-training-a_b_c"


def test_a_row_names_what_asv_measures_never(tmp_path):
    rows = [results.landscape_row("X", {"lr": 0.1}, "largest_stable_lr", 0.5, 0.1),
            {**results.landscape_row("X", {}, "steps_to_target", 3), "measure": "time_estimate"}]
    path = results.write(rows, "landscape-x", 2.0, Settings(), folder=tmp_path)
    frame = read_run(path)
    assert list(frame["measure"]) == ["largest_stable_lr"]  # asv's own measure left to asv
    assert frame["se"].iloc[0] == 0.1 and frame["lr"].iloc[0] == 0.1


def test_a_task_may_declare_its_display_name():
    TASKS.register("named_for_test", description="test", family="Bernoulli",
                   display_name="My task")(lambda: None)
    try:
        assert task_display_name("named_for_test") == "My task"
    finally:
        TASKS.unregister("named_for_test")
    assert task_display_name("vae_bernoulli_mlp") == "VAE, Bernoulli, MLP"
    assert task_display_name("bernoulli100_t045") == "Bernoulli ×100, t = 0.45"


def test_a_plugin_is_versioned_by_every_module_it_ships(tmp_path, monkeypatch):
    """A plugin's code version hashes its whole package: a change in a helper module its
    registering module imports changes the version."""
    package = tmp_path / "plugin_for_versions"
    package.mkdir()
    (package / "__init__.py").write_text("from .helper import VALUE\nclass Est:\n    pass\n")
    (package / "helper.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import plugin_for_versions

    first = versions.code_version(plugin_for_versions.Est)
    assert first.startswith("plugin_for_versions#")
    (package / "helper.py").write_text("VALUE = 2\n")
    versions._hash.cache_clear()
    assert versions.code_version(plugin_for_versions.Est) != first
