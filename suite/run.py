"""``python -m suite.run [asv run options]``: ``asv run`` whose narrowed runs ADD to what is stored.

asv keeps one results file per (machine, commit, environment)
(``.asv/results/<machine>/<commit8>-<env>.json``) and a new run of a benchmark replaces its stored
values, except for the parameter combinations that the run's ``--bench`` selection leaves out:
those it keeps (``asv.results.Results.add_result``, ``selected_idx``). The gradient benchmarks'
parameters are the full grid whatever ``ESTIBENCH_*`` says (:mod:`suite.grid`), so this wrapper
turns the ``ESTIBENCH_*`` narrowing into that selection: one ``--bench`` regular expression over
the cells ``bench_gradients.<Class>.<track>('<task>', '<estimator>', <K>, '<device>')`` the
narrowing keeps (and over ``<TaskPrefix>`` classes for ``ESTIBENCH_TRAINING_TASKS``). Cells of
earlier runs on the same commit and machine stay in the same file, each with the
``track_run_started`` of the run that measured it. With no ``ESTIBENCH_*`` set it is a plain
``asv run`` (every cell is measured again).

A plain ``asv run`` with ``ESTIBENCH_*`` set still works, but writes n/a over the cells it skips.
To start afresh, delete ``.asv/results/<machine>/<commit8>-*.json`` (or all of ``.asv/results``).

Defaults added unless given: ``--python=same`` and ``--set-commit-hash <HEAD>``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from .benchutil import class_prefix

__all__ = ["selection", "command", "main", "scratch_config", "details_env"]


def scratch_config(folder) -> str:
    """An asv config like the project's whose results, environments and html go to ``folder``
    (a run that must leave the working tree alone: tests, fixtures, a one-off comparison);
    pass it as ``--config``. Returns its path."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    folder = Path(folder)
    conf = json.loads((root / "asv.conf.json").read_text())
    conf.update(repo=str(root), benchmark_dir=str(root / conf["benchmark_dir"]),
                results_dir=str(folder / "results"), env_dir=str(folder / "env"),
                html_dir=str(folder / "html"))
    path = folder / "asv.conf.json"
    path.write_text(json.dumps(conf))
    return str(path)

_GRADIENT_VARS = ("ESTIBENCH_TASKS", "ESTIBENCH_ESTIMATORS", "ESTIBENCH_NUM_SAMPLES",
                  "ESTIBENCH_DEVICES")


def _alternatives(values, quote: bool) -> str:
    return "(" + "|".join(re.escape(repr(v) if quote else str(v)) for v in values) + ")"


def selection(environ=None) -> list[str]:
    """The ``--bench`` regular expressions of the cells ``ESTIBENCH_*`` selects ([] when nothing
    is narrowed: run everything)."""
    environ = os.environ if environ is None else environ
    out = []
    if any(environ.get(v, "").strip() for v in _GRADIENT_VARS):
        from . import grid

        saved = {k: os.environ.get(k) for k in _GRADIENT_VARS}
        os.environ.update({k: environ[k] for k in _GRADIENT_VARS if k in environ})
        try:
            tasks, specs = grid.task_names(), grid.estimator_specs()
            ks, devices = grid.num_samples(), grid.devices()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        out.append(r"^bench_gradients\.\w+\.\w+\(" + ", ".join([
            _alternatives(tasks, True), _alternatives(specs, True),
            _alternatives(ks, False), _alternatives(devices, True)]) + r"\)$")
        out.append(r"^bench_gradients\.GradientTaskInfo\.\w+\(" + _alternatives(tasks, True)
                   + r"\)$")
        out.append(r"^bench_gradients\.GradientHarness\.")
    training = environ.get("ESTIBENCH_TRAINING_TASKS", "").strip()
    if training:
        names = [t.strip() for t in training.split(",") if t.strip()]
        out.append(r"^bench_alignment\." + _alternatives([class_prefix(n) for n in names], False)
                   + r"[A-Z]?\w*\.")
    return out


def command(argv: list[str], environ=None) -> list[str]:
    """The ``asv run`` command line for ``argv`` (extra asv options) under ``ESTIBENCH_*``."""
    asv = shutil.which("asv") or os.path.join(os.path.dirname(sys.executable), "asv")
    cmd = [asv, "run"]
    if not any(a.startswith("--python") or a.startswith("-E") or a.startswith("--environment")
               for a in argv):
        cmd.append("--python=same")
    if "--python=same" in cmd + argv and not any(a.startswith("--set-commit-hash")
                                                 for a in argv):
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        cmd += ["--set-commit-hash", head]
    for regex in selection(environ):
        cmd += ["--bench", regex]
    return cmd + list(argv)


def details_env(argv: list[str], environ=None) -> dict[str, str]:
    """The environment for ``asv run argv``: with ``--config X`` and no ``ESTIBENCH_DETAILS``,
    that variable set to X's results folder's ``details`` (:mod:`suite.details`: the benchmarks
    see asv's working folder, not the config it was given)."""
    import json
    from pathlib import Path

    from .details import DETAILS_FOLDER

    env = dict(os.environ if environ is None else environ)
    config = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"), None)
    config = config or next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    if config and not env.get("ESTIBENCH_DETAILS", "").strip():
        path = Path(config).resolve()
        results = json.loads(path.read_text()).get("results_dir", "results")
        env["ESTIBENCH_DETAILS"] = str((path.parent / results).resolve() / DETAILS_FOLDER)
    return env


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = command(argv)
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, env=details_env(argv)).returncode


if __name__ == "__main__":
    raise SystemExit(main())
