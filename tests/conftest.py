"""Shared test fixtures: a tiny third-party plugin package, built and installed into a
temporary site folder, and a way to run Python code in a fresh interpreter that sees it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

# the setup work in this process (suite.executor's in-process path) unless a test asks for
# workers: estimators and tasks a test registers at run time exist only in this process, not in
# a worker's (tests that use workers set ESTIBENCH_WORKERS or pass Settings(workers=...))
os.environ.setdefault("ESTIBENCH_WORKERS", "1")

# no example database and hypothesis's own caches in a temporary folder: the tests write
# nothing into the working tree (.hypothesis/)
settings.register_profile("estibench", database=None)
settings.load_profile("estibench")
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="estibench-hypothesis-"))

PLUGIN = '''
"""A third-party estimator: score function with a constant baseline."""
import torch
import estimators
from estimators.base import Estimator, DISCRETE


@estimators.register("constant_baseline_sf", unbiased=True, families=DISCRETE,
                     description="score function with a constant baseline",
                     reference="plugin test")
class ConstantBaselineSF(Estimator):
    name = "constant_baseline_sf"
    unbiased = True
    families = DISCRETE

    def __init__(self, b: float = 0.5):
        super().__init__()
        self.b = b

    def estimate(self, dist, f, num_samples):
        z = dist.sample((num_samples,))
        cost = self.costs(f, z, dist, num_samples)
        logp = dist.log_prob(z)
        return (cost + (cost.detach() - self.b) * (logp - logp.detach())).mean(0).sum()


@estimators.register_metric("always_one", description="plugin metric", reference="plugin test")
def always_one():
    return lambda *args: 1.0


@estimators.register_loss("plugin_squared_hinge", applies_to="multilabel",
                          description="squared hinge on multi-label scores (plugin test)",
                          reference="plugin test")
class SquaredHinge(torch.nn.Module):
    def forward(self, scores, targets):
        sign = 2.0 * targets.to(scores.dtype) - 1.0
        return torch.relu(1.0 - sign * scores).pow(2).sum(-1).mean()
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "estibench-plugin-demo"
version = "0.0.1"

[project.entry-points."estibench.estimators"]
demo = "estibench_plugin_demo"

[project.entry-points."estibench.metrics"]
demo = "estibench_plugin_demo"

[project.entry-points."estibench.losses"]
demo = "estibench_plugin_demo"
'''

@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    src = root / "src"
    (src / "estibench_plugin_demo").mkdir(parents=True)
    (src / "estibench_plugin_demo" / "__init__.py").write_text(PLUGIN)
    (src / "pyproject.toml").write_text(PYPROJECT)
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), str(src)],
                   check=True, capture_output=True, text=True)
    return site


def run_with(site: Path, code: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site),
                                                                     os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def run_python():
    """``run_python(site, code) -> dict``: the JSON printed last by ``code``."""
    return run_with


@pytest.fixture(scope="session")
def plugin_pyproject():
    """The plugin's pyproject.toml text (entry points in every estibench group it uses)."""
    return PYPROJECT


def pytest_addoption(parser):
    parser.addoption("--estimator", action="append", default=[], metavar="SPEC",
                     help="also run the registry-driven estimator checks on SPEC (e.g. a "
                          "plugin's estimator); by default only the built-ins are checked")


def pytest_configure(config):
    import statcheck

    statcheck.EXTRA_SPECS[:] = config.getoption("estimator")
