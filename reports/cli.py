"""``estibench`` command line: ``estibench report`` and ``estibench list``.

Errors are one line on stderr, never a traceback; the exit code is non-zero only when there is
nothing to report (or the command line is wrong).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

PROG = "estibench"
EXIT_NOTHING = 1  # nothing to report: no results, or none readable
EXIT_USAGE = 2  # argparse's code for a bad command line
FORMATS = ("png", "svg", "pdf")  # figure formats matplotlib writes without extra packages


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


def _jobs(text: str) -> int:
    from .parallel import parse_jobs

    try:
        return parse_jobs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Reports on estibench's asv results; lists what is registered.")
    sub = parser.add_subparsers(dest="command", metavar="{report,list,check}")
    rep = sub.add_parser(
        "report", help="tidy table, figures, report.md and report.html from asv results",
        description="Read every machine's and commit's asv results and write report.md, a "
                    "self-contained report.html, figures/ and tables/ under --out.")
    rep.add_argument("--results", default=".asv/results", type=Path,
                     help="asv results folder (default: .asv/results)")
    rep.add_argument("--out", default="report", type=Path,
                     help="folder for the report (default: report/)")
    rep.add_argument("--format", dest="formats", default=["png"], type=_formats,
                     help="figure formats, comma-separated: png,svg,pdf (default: png)")
    rep.add_argument("--tidy", type=_tidy_path, default=None,
                     help="also write the tidy results table to FILE.csv or FILE.parquet "
                          "(every row of every commit in memory: about 200 bytes and 50 µs a "
                          "row; without it the report reads only the rows it shows)")
    rep.add_argument("--history", default="time_estimate", metavar="MEASURE",
                     help="gradient measure drawn across commits (default: time_estimate)")
    rep.add_argument("--tasks", type=_names, default=(), metavar="T1,T2",
                     help="gradient tasks whose panels the figures show (default: all)")
    rep.add_argument("--estimators", type=_names, default=(), metavar="E1,E2",
                     help="estimators the gradient figures show (default: all)")
    rep.add_argument("--per-task", action="store_true",
                     help="also write every gradient figure once per task (<name>-<task>)")
    rep.add_argument("--jobs", type=_jobs, default=None, metavar="N",
                     help="processes that read result files and draw figures, this one "
                          "included (default: $ESTIBENCH_JOBS, else the usable cores, at most "
                          "4; 1: everything in this process)")
    rep.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    sub.add_parser("list", help="registered estimators, losses, metrics, gradient tasks and "
                                "training tasks with their info")
    sub.add_parser("check", add_help=False,
                   help="conformance checks of estimators, plugins included (estibench check "
                        "SPEC ...; exit 1 when a check fails)")
    return parser


# -- report ----------------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    from .parallel import Workers

    try:
        workers = Workers(args.jobs)
    except ValueError as exc:  # a malformed ESTIBENCH_JOBS
        _err(f"error: {exc}")
        return EXIT_USAGE
    with workers:
        return _report(args, workers)


def _report(args: argparse.Namespace, workers: Any) -> int:
    from .load import NoResultsError, load_results, write_tidy
    from .scan import load_for_report

    say = _progress(args.quiet)
    try:
        if args.tidy is not None:  # the whole tidy table: every row of every commit in memory
            loaded = load_results(args.results, progress=say)
        else:  # only what the report shows: grows slowly with history
            loaded = load_for_report(args.results, args.history, args.tasks, args.estimators,
                                     progress=say, workers=workers)
    except NoResultsError as exc:
        _err(f"nothing to report: {exc}")
        return EXIT_NOTHING
    for warning in loaded.warnings:
        _err(f"warning: {warning}")
    if args.tidy is not None:
        try:
            path = write_tidy(loaded.frame, args.tidy)
            say(f"wrote tidy table {path} ({len(loaded.frame)} rows)")
        except (OSError, ValueError) as exc:
            _err(f"warning: could not write {args.tidy}: {exc}")
    from .outdir import OutputError
    from .write import write_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matplotlib/seaborn chatter is not the user's problem
        try:
            chosen = {"only_tasks": args.tasks, "only_estimators": args.estimators,
                      "per_task": args.per_task}
            workers.restart()  # fresh workers import matplotlib while the tables are built
            paths = write_report(loaded, args.out, args.formats, progress=say,
                                 source=str(args.results), history_measure=args.history,
                                 figure_options=chosen, workers=workers)
        except OutputError as exc:
            _err(f"error: {exc}")
            return EXIT_NOTHING
    if workers.handed:
        say(f"{workers.jobs} processes: {workers.handed} task(s) done by workers"
            + ("; a worker failed and its work was done again here" if workers.broken else ""))
    for note in paths.get("notes", []):
        _err(note)
    print(paths["markdown"])
    print(paths["html"])
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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check"]:  # the estimators' own checks: their parser, their exit code
        from estimators.conformance import main as check

        return check(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "report":
            return cmd_report(args)
        return cmd_list(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:  # `estibench list | head`
        return 0
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        _err(f"error: {type(exc).__name__}: {exc}")
        return EXIT_NOTHING


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
