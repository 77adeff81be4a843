"""``estibench``: the command line, which composes the suite and the reports.

* ``estibench run [--tasks ...] [asv options]``: run the benchmark suite (``asv run``), narrowed
  runs adding to what is stored, with a progress line while the setup work runs;
* ``estibench report``: tidy table, figures, report.md and report.html from the results;
* ``estibench compare SPEC``: SPEC against its baselines, task by task (:mod:`estibench.compare_cmd`);
* ``estibench list`` / ``estibench check SPEC``: what is registered / the conformance checks;
* ``estibench new-plugin NAME``: a pip-installable plugin package to start from;
* ``estibench upgrade-results FOLDER``: convert results written before the run files existed.

Errors are one line on stderr, never a traceback: exit 2 for a bad command line or setting,
1 when there is nothing to report or a run failed.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import compare_cmd
from .settings import Settings, SettingsError, read_config

__all__ = ["main", "build_parser", "run_settings"]

PROG = "estibench"
EXIT_NOTHING = 1  # nothing to report: no results, or none readable; or the run failed
EXIT_USAGE = 2  # argparse's code for a bad command line
FORMATS = ("png", "svg", "pdf")  # figure formats matplotlib writes without extra packages
#: ``estibench run`` flag -> setting
RUN_FLAGS = {"tasks": "gradient tasks", "estimators": "estimator specs (a bare name: every "
             "registered variant of it)", "num_samples": "K values", "devices": "cpu and/or cuda",
             "training_tasks": "training tasks", "losses": "losses of the training tasks"}


def _err(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def _progress(quiet: bool) -> Callable[[str], None]:
    start = time.monotonic()

    def say(msg: str) -> None:
        if not quiet:
            print(f"{PROG} [{time.monotonic() - start:5.1f}s] {msg}", file=sys.stderr, flush=True)

    return say


def _formats(text: str) -> list[str]:
    chosen = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown figure format(s) {', '.join(bad) or '(none)'}; choose from "
            f"{', '.join(FORMATS)}, comma-separated (e.g. png,svg)")
    return list(dict.fromkeys(chosen))


def _tidy_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise argparse.ArgumentTypeError(
            f"expected a file ending in .csv or .parquet, got {text!r}")
    return path


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="estibench: benchmark gradient estimators and losses (run), "
                               "report on the results (report), list and check what is "
                               "registered.")
    sub = parser.add_subparsers(dest="command",
                                metavar="{run,report,compare,list,check,new-plugin,upgrade-results}")
    _run_parser(sub)
    rep = sub.add_parser(
        "report", help="tidy table, figures, report.md and report.html from the results",
        description="Read every machine's and commit's results (run files and asv's timings) "
                    "and write report.md, a self-contained report.html, figures/ and tables/ "
                    "under --out.")
    rep.add_argument("--results", default=".asv/results", type=Path,
                     help="results folder (default: .asv/results)")
    rep.add_argument("--out", default="report", type=Path,
                     help="folder for the report (default: report/)")
    rep.add_argument("--format", dest="formats", default=["png"], type=_formats,
                     help="figure formats, comma-separated: png, svg, pdf (default: png)")
    rep.add_argument("--tidy", type=_tidy_path, default=None,
                     help="also write the whole tidy table to this .csv or .parquet file")
    rep.add_argument("--history", default="time_estimate", metavar="MEASURE",
                     help="measure drawn across commits (default: time_estimate)")
    rep.add_argument("--tasks", type=_names, default=(), metavar="T1,T2",
                     help="only these tasks in the figures (comma-separated)")
    rep.add_argument("--estimators", type=_names, default=(), metavar="E1,E2",
                     help="only these estimators in the figures (comma-separated)")
    rep.add_argument("--per-task", action="store_true",
                     help="also one figure per task")
    rep.add_argument("--compare", default=None, metavar="SPEC", help="add a Comparison section: SPEC against "
                     "its baselines (see estibench compare)")
    rep.add_argument("--against", nargs="+", default=[], metavar="SPEC", help="the baselines of --compare")
    rep.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    compare_cmd.add_parser(sub, _formats)
    up = sub.add_parser("upgrade-results", help="convert results written before run files "
                                                "existed (asv tracks + details files)")
    up.add_argument("folder", type=Path, help="a results folder (e.g. .asv/results)")
    sub.add_parser("list", help="registered estimators, losses, metrics, gradient tasks and "
                                "training tasks with their info")
    sub.add_parser("check", add_help=False,
                   help="conformance checks of estimators, plugins included (estibench check "
                        "SPEC ...; exit 1 when a check fails)")
    new = sub.add_parser("new-plugin", help="write a pip-installable plugin package (an example "
                                            "estimator and gradient task) to start from")
    new.add_argument("name", help="the plugin's name, a Python identifier: its package and its "
                                  "estimator (its task is NAME_toy)")
    new.add_argument("--dir", type=Path, default=None, metavar="DIR",
                     help="the folder to create (default: ./NAME); it must not exist")
    return parser


# -- run -------------------------------------------------------------------------------------------
def _run_parser(sub: Any) -> None:
    run = sub.add_parser(
        "run", help="run the benchmark suite (asv run); narrowed runs add to what is stored",
        description="Run the benchmark suite under asv. Narrowing flags compute less and keep "
                    "every stored result they do not measure; every other option is passed "
                    "to `asv run` (e.g. --quick, --dry-run, --machine NAME). "
                    "Settings also come from a TOML file (--config FILE, table "
                    "[estibench]) and the ESTIBENCH_* variables; flags win.",
        epilog="Example: estibench run --estimators disarm,score_function --num-samples 4,16 "
               "--training-tasks binary_vae_digits --quick --dry-run")
    for name, what in RUN_FLAGS.items():
        flag = "--" + name.replace("_", "-")
        run.add_argument(flag, dest=name, default=None, metavar="A,B",
                         help=f"only these {what}, comma-separated")
    run.add_argument("--grid", choices=("default", "full"), default=None,
                     help="the default grid (two K per estimator) or the full one")
    run.add_argument("--tier", choices=("smoke", "default", "paper"), default=None,
                     help="budget of the literature-scale training tasks (binarized MNIST, 200 "
                          "latents): paper is the published step counts, for a GPU or a cluster")
    run.add_argument("--workers", default=None, metavar="N",
                     help="worker processes for the setup work (default: one per usable core; "
                          "1: in this process, for debugging)")
    run.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="send the setup work to a running Dask scheduler (tcp://host:port), "
                          "e.g. a cluster started with dask-jobqueue")
    run.add_argument("--config", type=Path, default=None, metavar="FILE",
                     help="a TOML file of settings (table [estibench]; keys as the flags, "
                          "e.g. estimators = [\"disarm\"], grid = \"full\")")
    run.add_argument("--asv-config", default=None, metavar="FILE",
                     help="asv's configuration (asv.conf.json), passed to asv as --config")
    run.add_argument("--no-progress", action="store_true", help="no progress line")
    run.add_argument("--no-wait", action="store_true",
                     help="refuse, instead of waiting, when another run writes to the same "
                          "results folder")


def run_settings(args: argparse.Namespace, env: dict[str, str] | None = None) -> Settings:
    """The settings of ``estibench run``: environment, then the --config file, then flags."""
    settings = Settings.from_env(env)
    if args.config is not None:
        settings = settings.merged(read_config(args.config), f"config file {args.config}")
    for name in (*RUN_FLAGS, "grid", "tier", "workers", "scheduler"):
        value = getattr(args, name)
        if value is not None:
            settings = settings.merged({name: value}, "--" + name.replace("_", "-"))
    return settings


def _check_names(settings: Settings) -> None:
    """Unknown task, estimator, training-task or loss names: one line naming the closest."""
    import estimators
    from suite.registries import TASKS, TRAINING_TASKS

    for what, registry, names in (("--tasks", TASKS, settings.tasks),
                                  ("--training-tasks", TRAINING_TASKS, settings.training_tasks),
                                  ("--losses", estimators.LOSSES, settings.losses)):
        for name in names:
            if name.split(":")[0] not in registry:
                raise SettingsError(f"{what}: {registry.unknown_message(name.split(':')[0])}")
    for spec in settings.estimators:
        try:
            estimators.get(spec)
        except Exception as exc:  # noqa: BLE001 - any bad spec: one line with its message
            raise SettingsError(f"--estimators: {spec!r}: {exc}") from None


def cmd_run(args: argparse.Namespace, asv_args: list[str]) -> int:
    from suite.run import command, results_folder

    if args.asv_config:
        asv_args = ["--config", args.asv_config, *asv_args]
    try:
        settings = run_settings(args)
        _check_names(settings)
        results = results_folder(asv_args)
    except (SettingsError, OSError, ValueError) as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    cmd = command(asv_args, settings)
    from .runner import LockBusy, describe_exit, results_lock, run_child
    from .settings import child_environment

    say = _progress(False)
    print("+", " ".join(cmd), flush=True)
    with tempfile.TemporaryDirectory(prefix="estibench-progress-") as progress:
        settings = dataclasses.replace(settings, progress=progress,
                                       results=settings.results or str(results))
        stop = threading.Event()
        watcher = None
        if not args.no_progress:
            from .progress import watch

            watcher = threading.Thread(target=watch, args=(progress, stop), daemon=True)
            watcher.start()
        try:
            with results_lock(results, wait=not args.no_wait, say=say):
                code = run_child(cmd, child_environment(settings))
        except LockBusy as exc:
            _err(f"error: {exc}")
            return EXIT_NOTHING
        except KeyboardInterrupt:
            _err("interrupted: asv stopped; results already stored are kept")
            return 130
        finally:
            stop.set()
            if watcher is not None:
                watcher.join(timeout=2)
    message = describe_exit(code)
    if message:
        _err(message)
    return code


# -- report ----------------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    import reports

    say = _progress(args.quiet)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matplotlib/seaborn chatter is not the user's problem
        try:
            paths = reports.build_report(
                args.results, args.out, formats=args.formats, tidy=args.tidy,
                history=args.history, tasks=args.tasks, estimators=args.estimators,
                per_task=args.per_task, progress=say, compare=args.compare, against=tuple(args.against))
        except reports.UsageError as exc:
            _err(f"error: {exc}")
            return EXIT_USAGE
        except reports.NoResultsError as exc:
            _err(f"nothing to report: {exc}")
            return EXIT_NOTHING
        except reports.OutputError as exc:
            _err(f"error: {exc}")
            return EXIT_NOTHING
    for warning in paths.get("warnings", []):
        _err(f"warning: {warning}")
    for note in paths.get("notes", []):
        _err(note)
    print(paths["markdown"])
    print(paths["html"])
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    from .upgrade import upgrade

    written = upgrade(args.folder)
    for path in written:
        print(path)
    if not written:
        _err(f"nothing to upgrade under {args.folder}")
    return 0


# -- list ------------------------------------------------------------------------------------------
def import_registering_modules() -> list[str]:
    """Import the modules that register losses, metrics, tasks and training tasks
    (``estimators.losses``, ``estimators.metrics``, ``suite.tasks``, ``suite.train_*``) for
    ``estibench list``, the one command that reads the registries (``estibench report`` reads only
    the results). A module that does not exist is passed over; one that fails to import is
    returned as a problem (``"module: error"``), shown as a warning, and the rest go on."""
    import importlib
    import pkgutil

    names = ["estimators.losses", "estimators.metrics", "suite.tasks"]
    problems = []
    try:
        import suite

        names += sorted(f"suite.{m.name}" for m in pkgutil.iter_modules(suite.__path__)
                        if m.name.startswith("train_"))
    except Exception as exc:  # noqa: BLE001 - reported as a warning by cmd_list
        problems.append(f"suite: {type(exc).__name__}: {exc}")
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but one of its imports does not
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - reported as a warning by cmd_list
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    return problems


#: info keys shown first, in this order (the rest follow as they come)
_INFO_ORDER = ("kind", "unbiased", "families", "family", "exact", "metric", "higher_is_better",
               "methods", "seeds", "checkpoint_measures", "final_measures", "variants", "options",
               "reference")


def _info_text(info: Any) -> str:
    info = dict(info)
    keys = [k for k in _INFO_ORDER if k in info] + [k for k in info if k not in _INFO_ORDER]
    parts = []
    for key in keys:
        value = info[key]
        if value is None or (isinstance(value, (str, list, tuple)) and not value):
            continue
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        parts.append(f"{key}: {value}")
    return "; ".join(parts)


def _training_task_attributes(entry: Any) -> dict[str, Any]:
    """A training task's metric, direction and methods, read from its class (not built)."""
    factory = entry.factory
    if not isinstance(factory, type):
        return {}
    return {k: getattr(factory, k) for k in ("metric", "higher_is_better", "methods", "seeds",
                                             "checkpoint_measures", "final_measures")
            if getattr(factory, k, None) not in (None, "", ())}


def _section(title: str, registry: Any, out: list[str],
             extra: Callable[[Any], dict[str, Any]] = lambda entry: {}) -> None:
    try:
        names = list(registry)
    except Exception as exc:  # noqa: BLE001
        out += [f"{title}: could not be listed ({type(exc).__name__}: {exc})", ""]
        return
    out.append(f"{title} ({len(names)}):")
    if not names:
        out.append("  (none registered)")
    for name in names:
        entry = registry[name]
        info = {**dict(getattr(entry, "info", {})), **extra(entry)}
        desc = info.pop("description", "")
        out.append(f"  {name}" + (f" — {desc}" if desc else ""))
        detail = _info_text(info)
        if detail:
            out.append(f"      {detail}")
    for plugin, error in sorted(getattr(registry, "plugin_errors", {}).items()):
        out.append(f"  (plugin {plugin!r} failed to load: {error})")
    out.append("")


def cmd_list(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # broken plugins are shown in their registry's section
        try:
            import estimators
        except Exception as exc:  # noqa: BLE001
            _err(f"could not import estimators: {type(exc).__name__}: {exc}")
            return EXIT_NOTHING
        problems = import_registering_modules()
        try:
            from suite.registries import TASKS, TRAINING_TASKS
        except Exception as exc:  # noqa: BLE001
            TASKS = TRAINING_TASKS = None
            problems.append(f"suite.registries: {type(exc).__name__}: {exc}")
        out: list[str] = []
        _section("Estimators", estimators.ESTIMATORS, out)
        _section("Losses", estimators.LOSSES, out)
        _section("Metrics", estimators.METRICS, out)
        if TASKS is not None:
            _section("Gradient tasks", TASKS, out)
            _section("Training tasks", TRAINING_TASKS, out, _training_task_attributes)
    print("\n".join(out).rstrip())
    for problem in problems:
        _err(f"warning: could not import {problem}")
    return 0


def cmd_new_plugin(args: argparse.Namespace) -> int:
    from .template import next_steps, write_plugin

    try:
        folder = write_plugin(args.name, args.dir)
    except (ValueError, FileExistsError) as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    print(next_steps(args.name, folder))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check"]:  # the estimators' own checks: their parser, their exit code
        from estimators.conformance import main as check

        return check(argv[1:])
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command != "run" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    commands = {"run": lambda: cmd_run(args, rest), "report": lambda: cmd_report(args),
                "upgrade-results": lambda: cmd_upgrade(args), "list": lambda: cmd_list(args),
                "compare": lambda: compare_cmd.run(args, _err, _progress(args.quiet)),
                "new-plugin": lambda: cmd_new_plugin(args)}
    try:
        return commands[args.command]()
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:  # `estibench list | head`
        return 0
    except SettingsError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        _err(f"error: {type(exc).__name__}: {exc}")
        return EXIT_NOTHING


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
