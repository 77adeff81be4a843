"""``estibench new-plugin`` (issue 24 item 6): the plugin template installs as a third party
would install it, ``estibench list`` shows it, ``estibench check`` passes on its estimator, its
task is registered with its exact gradient, and its declared display names are the ones shown.
Installed as the demo plugin of ``tests/test_plugins.py`` is (``pip install --target``, then a
fresh interpreter with the folder on its path)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib

import pytest

from estibench.template import FILES, check_name, next_steps, plugin_names, write_plugin

NAME = "estibench_template_demo"
TASK = plugin_names(NAME)["task"]

INSTALLED = f'''
import contextlib, io, json
import torch
from estibench.cli import main

def run(argv):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(argv)
    return {{"code": code, "out": buf.getvalue()}}

out = {{"list": run(["list"]), "check": run(["check", "{NAME}", "{NAME}:baseline=false"])}}

import estimators
from suite.registries import TASKS, task_display_name
from suite.taskbase import build_task
entry = estimators.info("{NAME}")
out["estimator"] = {{
    "declared": entry.factory.display_name, "variant_names": entry.info["variant_names"],
    "shown": estimators.display_name("{NAME}"),
    "shown_variant": estimators.display_name("{NAME}:baseline=false"),
    "info": {{k: v for k, v in entry.info.items() if k != "variant_names"}},
    "errors": estimators.ESTIMATORS.plugin_errors}}

task = build_task("{TASK}")
problem = task.problem(1, dtype=torch.float64)
estimators.get("exact")(problem.dist, problem.f, 1).backward()
info = TASKS.entry("{TASK}").info
import pickle
from suite import measure
est = measure.warmed_up(estimators.get("{NAME}"), task, 4, 8)  # stateful: no_grad, value_only
frozen = est.running_cost.clone()
est.eval()
same = task.problem(8)  # the shape and dtype it warmed up on
est(same.dist, same.f, 4)
out["state"] = {{"stateful": measure.is_stateful(est), "steps": int(est.steps),
                "frozen": bool(torch.equal(frozen, est.running_cost))}}
out["task"] = {{"info": dict(info), "reference": task.reference().tolist(),
               "pickled": pickle.loads(pickle.dumps(task)).reference().tolist(),
               "enumerated": problem.flat_grad()[0].tolist(), "errors": TASKS.plugin_errors,
               "shown": task_display_name("{TASK}"), "bias_target": task.bias_target}}
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """The generated plugin's folder and the site folder it is installed into."""
    root = tmp_path_factory.mktemp("template")
    src = write_plugin(NAME, root / "src")
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), str(src)],
                   check=True, capture_output=True, text=True)
    return src, site


@pytest.fixture(scope="module")
def installed(plugin, run_python):
    """What a fresh interpreter that sees the installed plugin reports (one run for all)."""
    return run_python(plugin[1], INSTALLED)


def test_estibench_list_shows_the_plugins_estimator_and_task(installed):
    listing = installed["list"]
    assert listing["code"] == 0
    lines = listing["out"].splitlines()
    assert any(line.startswith(f"  {NAME} — ") for line in lines), listing["out"]
    assert any(line.startswith(f"  {TASK} — ") for line in lines), listing["out"]
    assert "failed to load" not in listing["out"]


def test_estibench_check_passes_on_the_plugins_estimator_and_its_variant(installed):
    check = installed["check"]
    assert check["code"] == 0, check["out"]
    assert "FAIL" not in check["out"] and " 0 failed" in check["out"], check["out"]
    for spec in (NAME, f"{NAME}:baseline=false"):  # unbiasedness claimed and tested
        assert any(line.split()[:3] == [spec, "unbiased", "pass"]
                   for line in check["out"].splitlines()), check["out"]


def test_the_estimator_declares_every_fact_and_its_display_names_are_shown(installed):
    est = installed["estimator"]
    assert est["errors"] == {}
    assert est["shown"] == est["declared"] == f"{NAME} (REINFORCE, running mean)"
    assert est["shown_variant"] == est["variant_names"][f"{NAME}:baseline=false"]
    info = est["info"]
    assert info["kind"] == "gradient" and info["unbiased"] is True
    assert info["families"] == ["Bernoulli", "OneHotCategorical", "Categorical"]
    assert info["variants"] == [NAME, f"{NAME}:baseline=false"]
    assert info["description"] and info["reference"]


def test_the_estimator_is_stateful_warms_up_without_gradients_and_eval_freezes_it(installed):
    assert installed["state"] == {"stateful": True, "steps": 5, "frozen": True}


def test_the_task_is_registered_with_its_exact_gradient(installed):
    task = installed["task"]
    assert task["errors"] == {}
    assert task["info"]["family"] == "Bernoulli" and task["info"]["exact"] == "enumeration"
    assert task["bias_target"] == task["info"]["bias_target"] == 0.1
    assert task["shown"] == task["info"]["display_name"]
    assert task["reference"] == pytest.approx(task["enumerated"], rel=1e-9, abs=1e-12)
    assert task["pickled"] == task["reference"]  # the benchmarks build it once and pickle it
    assert any(abs(g) > 1e-3 for g in task["reference"])  # a gradient worth estimating


def test_the_package_declares_its_entry_points(plugin):
    src, _ = plugin
    project = tomllib.loads((src / "pyproject.toml").read_text())
    groups = project["project"]["entry-points"]
    assert groups["estibench.estimators"] == {NAME: f"{NAME}.estimator"}
    assert groups["estibench.tasks"] == {NAME: f"{NAME}.task"}
    for module in (f"{NAME}/estimator.py", f"{NAME}/task.py", f"{NAME}/__init__.py"):
        assert (src / module).is_file()
    assert (src / "tests" / f"test_{NAME}.py").is_file()
    assert f"estibench check {NAME}" in next_steps(NAME, src)


def test_the_generated_code_is_lint_clean(plugin):
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    done = subprocess.run([ruff, "check", "--isolated", "--line-length", "120", "--select",
                           "E,F,W,B,UP", str(plugin[0])], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("name", "needle"), [
    ("my-plugin", "not a Python identifier"),
    ("1plugin", "not a Python identifier"),
    ("", "not a Python identifier"),
    ("my plugin", "not a Python identifier"),
    ("class", "keyword"),
    ("json", "already an importable module"),
    ("score_function", "already registered"),
])
def test_a_bad_name_is_a_clear_error_and_writes_nothing(tmp_path, name, needle):
    with pytest.raises(ValueError, match=needle):
        write_plugin(name, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_a_name_whose_task_is_taken_is_refused():
    from suite.registries import TASKS

    TASKS.register("zz_template_taken_toy", description="", family="Bernoulli")(lambda: None)
    try:
        with pytest.raises(ValueError, match="'zz_template_taken_toy'"):
            check_name("zz_template_taken")
    finally:
        TASKS.unregister("zz_template_taken_toy")


def test_an_existing_folder_is_a_clear_error_and_is_left_alone(tmp_path):
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        write_plugin("fresh_plugin_name", folder)
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no staging folder left


def test_the_default_folder_is_the_name_and_every_template_file_is_written(tmp_path,
                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = write_plugin("fresh_plugin_name")
    assert folder == tmp_path / "fresh_plugin_name"
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert written == sorted(r.replace("$name", "fresh_plugin_name") for r in FILES)
    assert "$" not in "".join(p.read_text() for p in folder.rglob("*") if p.is_file())


def test_new_plugin_command(tmp_path, capsys):
    from estibench.cli import main

    assert main(["new-plugin", "fresh_cli_plugin", "--dir", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "pyproject.toml").is_file()
    assert main(["new-plugin", "fresh_cli_plugin", "--dir", str(tmp_path / "p")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["new-plugin", "not-an-identifier", "--dir", str(tmp_path / "q")]) == 2
