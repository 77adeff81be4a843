"""The asv command line of ``estibench run``: narrowed runs that ADD to what is stored.

asv keeps one results file per (machine, commit, environment) and a new run of a benchmark
replaces its stored values, except for the parameter combinations its ``--bench`` selection
leaves out (``asv.results.Results.add_result``). The gradient benchmarks' parameters are the full
grid whatever the settings narrow (:mod:`suite.grid`), so :func:`selection` turns the narrowing of
a :class:`~estibench.settings.Settings` into that selection: one ``--bench`` regular expression
over the cells ``bench_gradients.<Class>.<track>('<task>', '<estimator>', <K>, '<device>')`` it
keeps (and over ``<TaskPrefix>`` classes for the training tasks). Everything the suite measures
is also written as tidy rows, one run file per setup computation (:mod:`suite.results`); those
accumulate by themselves. With no narrowing it is a plain ``asv run``.

Defaults added unless given: ``--python=same`` and ``--set-commit-hash <HEAD>``.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from estibench.settings import Settings

from .benchutil import class_prefix

__all__ = ["selection", "command", "scratch_config", "results_folder", "config_of"]

_ROOT = Path(__file__).resolve().parents[1]


def scratch_config(folder) -> str:
    """An asv config like the project's whose results, environments and html go to ``folder``
    (a run that must leave the working tree alone: tests, fixtures, a one-off comparison);
    pass it as ``--config``. Returns its path."""
    folder = Path(folder)
    conf = json.loads((_ROOT / "asv.conf.json").read_text())
    conf.update(repo=str(_ROOT), benchmark_dir=str(_ROOT / conf["benchmark_dir"]),
                results_dir=str(folder / "results"), env_dir=str(folder / "env"),
                html_dir=str(folder / "html"))
    path = folder / "asv.conf.json"
    path.write_text(json.dumps(conf))
    return str(path)


def _alternatives(values, quote: bool) -> str:
    return "(" + "|".join(re.escape(repr(v) if quote else str(v)) for v in values) + ")"


def selection(settings: Settings) -> list[str]:
    """The ``--bench`` regular expressions of the cells ``settings`` selects ([] when nothing
    is narrowed: run everything)."""
    out = []
    if settings.tasks or settings.estimators or settings.num_samples or settings.devices:
        from . import grid

        tasks, specs = grid.task_names(settings=settings), grid.estimator_specs(settings=settings)
        ks, devices = grid.num_samples(settings=settings), grid.devices(settings=settings)
        out.append(r"^bench_gradients\.\w+\.\w+\(" + ", ".join([
            _alternatives(tasks, True), _alternatives(specs, True),
            _alternatives(ks, False), _alternatives(devices, True)]) + r"\)$")
        out.append(r"^bench_gradients\.GradientTaskInfo\.\w+\(" + _alternatives(tasks, True)
                   + r"\)$")
        out.append(r"^bench_gradients\.GradientHarness\.")
    if settings.training_tasks:
        prefixes = [class_prefix(n) for n in settings.training_tasks]
        out.append(r"^bench_alignment\." + _alternatives(prefixes, False) + r"[A-Z]?\w*\.")
    return out


def config_of(argv: list[str]) -> str | None:
    """The ``--config`` an asv command line names, if any."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def results_folder(argv: list[str]) -> Path:
    """The results folder of the asv config ``argv`` names (the project's by default)."""
    config = Path(config_of(argv) or _ROOT / "asv.conf.json").resolve()
    results = json.loads(config.read_text()).get("results_dir", "results")
    return (config.parent / results).resolve()


def command(argv: list[str], settings: Settings) -> list[str]:
    """The ``asv run`` command line for ``argv`` (asv's own options) under ``settings``."""
    asv = shutil.which("asv") or str(Path(sys.executable).with_name("asv"))
    cmd = [asv, "run"]
    if not any(a.startswith(("--python", "-E", "--environment")) for a in argv):
        cmd.append("--python=same")
    if "--python=same" in cmd + argv and not any(a.startswith("--set-commit-hash")
                                                 for a in argv):
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=_ROOT).stdout.strip()
        cmd += ["--set-commit-hash", head]
    for regex in selection(settings):
        cmd += ["--bench", regex]
    return cmd + list(argv)
