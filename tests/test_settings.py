"""The settings object (estibench.settings) and `estibench run`'s command line: one meaning per
setting, bad values refused with a message that names them, sources in a stated order, and cache
keys that depend only on what changes a computation's results (issue 20, item 4; issue 21, 7/9)."""
from __future__ import annotations

import dataclasses

import pytest

from estibench import cli
from estibench.settings import MAX_SAMPLES, Settings, SettingsError


@pytest.mark.parametrize("env, words", [
    ({"ESTIBENCH_NUM_SAMPLES": "0"}, ["ESTIBENCH_NUM_SAMPLES", "out of range"]),
    ({"ESTIBENCH_NUM_SAMPLES": "-1"}, ["ESTIBENCH_NUM_SAMPLES", "out of range"]),
    ({"ESTIBENCH_NUM_SAMPLES": "abc"}, ["ESTIBENCH_NUM_SAMPLES", "not an integer"]),
    ({"ESTIBENCH_NUM_SAMPLES": "1e9"}, ["ESTIBENCH_NUM_SAMPLES", "not an integer"]),
    ({"ESTIBENCH_NUM_SAMPLES": str(MAX_SAMPLES + 1)}, ["out of range", str(MAX_SAMPLES)]),
    ({"ESTIBENCH_DEVICES": "gpu"}, ["ESTIBENCH_DEVICES", "gpu", "cpu and/or cuda"]),
    ({"ESTIBENCH_GRID": "huge"}, ["ESTIBENCH_GRID", "default, full"]),
    ({"ESTIBENCH_TIER": "huge"}, ["ESTIBENCH_TIER", "smoke, default, paper"]),
    ({"ESTIBENCH_JOBS": "10000"}, ["ESTIBENCH_JOBS", "out of range"]),
    ({"ESTIBENCH_JOBS": "0"}, ["ESTIBENCH_JOBS", "out of range"]),
    ({"OMP_NUM_THREADS": "many"}, ["OMP_NUM_THREADS", "not an integer"]),
])
def test_bad_values_are_refused_naming_the_variable(env, words):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    for word in words:
        assert word in str(info.value)


def test_values_are_parsed_once_into_types():
    s = Settings.from_env({"ESTIBENCH_TASKS": " a, b ,a", "ESTIBENCH_NUM_SAMPLES": "16,1",
                           "ESTIBENCH_GRID": "FULL", "ESTIBENCH_JOBS": "auto"})
    assert s.tasks == ("a", "b") and s.num_samples == (16, 1) and s.full and s.jobs is None
    assert Settings.from_env({}) == Settings()


def test_to_env_round_trips():
    s = Settings.from_env({"ESTIBENCH_ESTIMATORS": "disarm,score_function:baseline=loo",
                           "ESTIBENCH_NUM_SAMPLES": "2,4", "ESTIBENCH_GRID": "full",
                           "ESTIBENCH_TRAINING_TASKS": "x", "OMP_NUM_THREADS": "1"})
    assert Settings.from_env(s.to_env()) == s


def test_cache_keys_depend_only_on_what_changes_results():
    base = Settings()
    for other in (dataclasses.replace(base, training_tasks=("vqvae_digits",)),
                  dataclasses.replace(base, jobs=3),
                  dataclasses.replace(base, progress="/tmp/x"),
                  dataclasses.replace(base, history_commits=(500,))):
        assert other.key("gradient-grid") == base.key("gradient-grid")
    assert dataclasses.replace(base, estimators=("disarm",)).key("gradient-grid") \
        != base.key("gradient-grid")
    assert dataclasses.replace(base, losses=("x",)).key("training") != base.key("training")
    assert dataclasses.replace(base, tasks=("x",)).key("training") == base.key("training")
    with pytest.raises(SettingsError, match="unknown computation"):
        base.key("nope")


def test_sources_in_order_env_then_config_then_flags(tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text('[estibench]\nestimators = ["disarm"]\nnum_samples = [4]\n'
                      'grid = "full"\n')
    args, _ = cli.build_parser().parse_known_args(
        ["run", "--config", str(config), "--num-samples", "8,16", "--quick"])
    s = cli.run_settings(args, env={"ESTIBENCH_NUM_SAMPLES": "2", "ESTIBENCH_TASKS": "t1"})
    assert s.tasks == ("t1",)  # environment
    assert s.estimators == ("disarm",) and s.grid == "full"  # config file over environment
    assert s.num_samples == (8, 16)  # flag over both
    assert s.sources["num_samples"] == "--num-samples"


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[estibench\n")
    args, _ = cli.build_parser().parse_known_args(["run", "--config", str(bad)])
    with pytest.raises(SettingsError, match="bad.toml"):
        cli.run_settings(args, env={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[estibench]\nestimator = 'x'\n")
    args, _ = cli.build_parser().parse_known_args(["run", "--config", str(unknown)])
    with pytest.raises(SettingsError, match="unknown setting 'estimator'"):
        cli.run_settings(args, env={})
    missing = tmp_path / "missing.toml"
    args, _ = cli.build_parser().parse_known_args(["run", "--config", str(missing)])
    with pytest.raises(SettingsError, match="does not exist"):
        cli.run_settings(args, env={})


@pytest.mark.parametrize("argv, words", [
    (["run", "--num-samples", "0"], ["--num-samples", "out of range"]),
    (["run", "--devices", "gpu"], ["--devices", "gpu"]),
    (["run", "--workers", "0"], ["--workers", "out of range"]),
    (["run", "--tasks", "bernouli_t045"], ["--tasks", "bernouli_t045", "bernoulli_t045"]),
    (["run", "--estimators", "score_functon"], ["score_functon", "score_function"]),
    (["run", "--training-tasks", "binary_vae_digit"], ["binary_vae_digits"]),
])
def test_run_refuses_bad_input_in_one_line(argv, words, capsys):
    assert cli.main(argv + ["--dry-run"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err


def test_run_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    for flag in ("--tasks", "--estimators", "--num-samples", "--devices", "--training-tasks",
                 "--losses", "--grid", "--config", "--asv-config", "--workers", "--scheduler"):
        assert flag in out
