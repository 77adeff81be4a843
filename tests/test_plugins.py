"""Third-party packages register estimators, losses and metrics through entry points, with no
change to this repository: build and install a tiny plugin package, then see it from a fresh
interpreter."""
from __future__ import annotations

import subprocess
import sys

CHECK = '''
import json, torch, estimators
from torch import distributions as D
names = estimators.available()
est = estimators.get("constant_baseline_sf:b=0.25")
torch.manual_seed(0)
logits = torch.zeros(4000, requires_grad=True)
t = 0.45
est(D.Bernoulli(logits=logits), lambda b: (b - t) ** 2, num_samples=1).backward()
exact = 0.25 * ((1 - t) ** 2 - t ** 2)  # d/dlogit of E at p = 1/2
print(json.dumps({"names": names, "kind": estimators.available(kind="gradient"),
                  "mean": float(logits.grad.mean()), "se": float(logits.grad.std() / 4000 ** 0.5),
                  "exact": exact, "metric": estimators.get_metric("always_one")(None, None),
                  "errors": estimators.ESTIMATORS.plugin_errors}))
'''


def test_installed_plugin_is_listed_and_works(plugin_site, run_python):
    got = run_python(plugin_site, CHECK)
    assert got["errors"] == {}
    assert "constant_baseline_sf" in got["names"] and "constant_baseline_sf" in got["kind"]
    assert got["names"] == sorted(got["names"])
    assert abs(got["mean"] - got["exact"]) < 3.3 * got["se"]  # ALPHA = 1e-3, two-sided
    assert got["metric"] == 1.0


def test_without_the_plugin_it_is_not_listed():
    import estimators
    assert "constant_baseline_sf" not in estimators.available()


def _install_plugin(tmp_path, plugin_pyproject, package: str, source: str):
    """A one-module plugin package ``package`` (``__init__.py`` = ``source``), installed under
    the demo plugin's entry point into a fresh site folder; returns that folder."""
    src = tmp_path / "src"
    (src / package).mkdir(parents=True)
    (src / package / "__init__.py").write_text(source)
    (src / "pyproject.toml").write_text(
        plugin_pyproject.replace("estibench-plugin-demo", package.replace("_", "-"))
        .replace('"estibench_plugin_demo"', f'"{package}"'))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), str(src)],
                   check=True, capture_output=True, text=True)
    return site


def test_a_broken_plugin_warns_and_leaves_the_builtins(tmp_path, run_python, plugin_pyproject):
    site = _install_plugin(tmp_path, plugin_pyproject, "estibench_broken_plugin",
                           "raise RuntimeError('boom')\n")
    got = run_python(site, '''
        import json, warnings, estimators
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            names = estimators.available()
        print(json.dumps({"names": names, "errors": estimators.ESTIMATORS.plugin_errors,
                          "warned": [str(x.message) for x in w]}))
    ''')
    assert "score_function" in got["names"]
    assert "boom" in got["errors"]["demo"]
    assert any("could not load estimator plugin 'demo'" in m for m in got["warned"])


def test_a_plugin_with_one_invalid_name_is_taken_back_whole(tmp_path, run_python,
                                                             plugin_pyproject):
    """Issue 21 item 12: a plugin that registers a good estimator, then fails on an invalid
    name, leaves nothing registered (not the good half) and says why."""
    site = _install_plugin(tmp_path, plugin_pyproject, "estibench_half_plugin",
        "import estimators\n"
        "from estimators.score_function import ScoreFunction\n"
        "@estimators.register\n"
        "class Good(ScoreFunction):\n"
        "    name = 'half_plugin_good'\n"
        "@estimators.register\n"
        "class Bad(ScoreFunction):\n"
        "    name = 'bad:name'\n")
    got = run_python(site, '''
        import json, warnings, estimators
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            names = estimators.available()
        print(json.dumps({"names": names, "errors": estimators.ESTIMATORS.plugin_errors}))
    ''')
    assert "half_plugin_good" not in got["names"] and "score_function" in got["names"]
    assert "'bad:name'" in got["errors"]["demo"]


CHECK_CLI = '''
import json, sys, io, contextlib
import estimators
from estimators.straight_through import StraightThrough


@estimators.register
class ClaimsTooMuch(StraightThrough):
    """Straight-through, falsely claiming to be unbiased."""

    name = "claims_too_much"
    unbiased = True


from estibench.cli import main
out = {}
for spec in ("constant_baseline_sf", "claims_too_much"):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["check", spec])
    out[spec] = {"code": code, "table": buf.getvalue()}
print(json.dumps(out))
'''


def test_estibench_check_passes_a_good_plugin_and_fails_a_false_claim(plugin_site, run_python):
    got = run_python(plugin_site, CHECK_CLI)
    good, bad = got["constant_baseline_sf"], got["claims_too_much"]
    assert good["code"] == 0 and "FAIL" not in good["table"], good["table"]
    assert bad["code"] == 1
    failing = [line for line in bad["table"].splitlines() if "FAIL" in line]
    assert failing and all(" unbiased " in line for line in failing), bad["table"]


def test_the_project_tests_check_a_plugin_only_when_asked(plugin_site):
    """With a plugin installed the project's own estimator checks stay on the built-ins;
    ``pytest --estimator SPEC`` adds the plugin."""
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(plugin_site))
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
            str(root / "tests" / "test_estimators.py"), "-k", "conformance"]
    plain = subprocess.run(args, env=env, capture_output=True, text=True, cwd=root)
    asked = subprocess.run(args + ["--estimator", "constant_baseline_sf"], env=env,
                           capture_output=True, text=True, cwd=root)
    assert plain.returncode == 0 and "constant_baseline_sf" not in plain.stdout
    assert asked.returncode == 0 and "constant_baseline_sf" in asked.stdout


TRAINS = '''
import json
import suite
from suite.registries import TRAINING_TASKS
out = {}
for name in ("binary_vae_digits", "categorical_vae_digits"):
    task = TRAINING_TASKS.get(name, steps=4, num_checkpoints=2, eval_train=32)
    run = task.run("constant_baseline_sf", seed=0)
    out[name] = {"methods": list(task.methods), "final": dict(run.final),
                 "points": len(run.checkpoints)}
task = TRAINING_TASKS.get("multilabel_digits")
out["multilabel_digits"] = {"methods": list(task.methods)}
print(json.dumps(out, default=float))
'''


def test_a_plugin_estimator_and_loss_are_trained_by_the_training_tasks(plugin_site, run_python):
    """Issue 12: both VAE tasks train a plugin estimator, and multilabel_digits lists a plugin
    loss that declares it applies to multi-label scores, with no change to this repository."""
    got = run_python(plugin_site, TRAINS)
    for name in ("binary_vae_digits", "categorical_vae_digits"):
        assert "constant_baseline_sf" in got[name]["methods"]
        assert got[name]["points"] == 2
        assert all(v == v for v in got[name]["final"].values() if isinstance(v, float))
    assert "plugin_squared_hinge" in got["multilabel_digits"]["methods"]


VERSIONS = '''
import json
import suite
from suite import benchutil, versions
print(json.dumps({"version": versions.estimator_version("constant_baseline_sf"),
                  "loss": versions.loss_version("plugin_squared_hinge"),
                  "keyed": [str(p) for p in benchutil._sources()
                            if "estibench_plugin_demo" in str(p)]}))
'''


def test_a_plugins_rows_carry_its_version_and_its_code_keys_the_setup_cache(plugin_site,
                                                                            run_python):
    """Issue 21 item 3: a plugin's code version is its distribution's name and version plus
    a hash of every module its package ships, and those modules are in the setup cache's key."""
    got = run_python(plugin_site, VERSIONS)
    assert got["version"].startswith("estibench-plugin-demo==0.0.1#")
    assert len(got["version"].partition("#")[2]) == 12 and got["loss"] == got["version"]
    assert [p.rpartition("/")[2] for p in got["keyed"]] == ["__init__.py"]
