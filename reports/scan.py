"""Reading only what the report needs, so that its cost grows slowly with history.

:func:`reports.load.load_results` builds the tidy frame of every cell of every commit (what
``--tidy`` writes): about 200 bytes and 50 µs a row, so 500 commits of a 100,000-row grid do not
fit in memory. The report reads much less: each machine's tables and figures use its latest
commit with results of their kind, and only the history figure looks back, at one measure.
:func:`load_for_report` parses each result file once and keeps

* every row of the files that are the latest of their machine for some table or figure
  (gradient results, with ``--tasks``/``--estimators`` applied as the figures apply them; the
  alignment results; the other benchmarks; the landscape probes),
* the rows of every file that the report reads across commits: the history measure's gradient
  cells (built column-wise, never row by row), the training tasks' ``<Task>Info`` and the
  gradient tasks' ``bias_target``,
* and, of the rest, only counts: cells by status per file and per benchmark, the failed cells,
  the runs that measured gradient cells, and the names that get colours
  (:class:`Totals`; :mod:`reports.render` uses it instead of the whole frame).

The report built from it is the one :func:`load_results` gives. Where the latest files could be
told apart only by rows left out (equal commit dates and unknown start times), it falls back to
:func:`load_results`.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import load as L
from .cells import _unroll
from .details import attach as attach_details
from .parallel import Workers
from .select import latest_commit

__all__ = ["Totals", "load_for_report"]

_ALIGN = ("summary", "final", "curve")
_KEEP_MEASURES = ("bias_target",)  # read across commits (reports.claims.bias_targets)


@dataclass
class Totals:
    """What the report says about every file, without the files' rows."""

    cells: int = 0
    status: pd.Series = field(default_factory=lambda: pd.Series(dtype=int))
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # reports.tables.runs
    status_counts: pd.DataFrame = field(default_factory=pd.DataFrame)
    failed: pd.DataFrame = field(default_factory=pd.DataFrame)  # the failed cells' rows
    run_summary: pd.DataFrame = field(default_factory=pd.DataFrame)  # reports.runs.run_summary
    style_groups: list[list[str]] = field(default_factory=list)  # reports.style.Styles


@dataclass
class _File:
    path: Path
    machine: str
    commit: str
    env: str
    date: Any
    started: dict[str, Any]  # selection -> latest started_at of its benchmarks (NaT: none)
    history_started: Any = pd.NaT
    has_history: bool = False


def _selections(group: str, name: str, params: dict[str, list], tasks, estimators) -> list[str]:
    out = []
    if group == "gradient":
        out.append("gradient")
        if (not tasks or set(params.get("task", [])) & set(tasks)) and \
                (not estimators or set(params.get("estimator", [])) & set(estimators)):
            out.append("chosen")
    if group in _ALIGN:
        out.append("align3")
        if group != "curve":
            out.append("align2")
    if group == "other":
        out.append("other")
    if "bench_landscape." in name:
        out.append("landscape")
    return out


def _numbers(values: list) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(values, failed, ok) of a result list of numbers and nulls; None when it holds
    something else (then the row-wise reader decides)."""
    types = set(map(type, values))
    if not types <= {float, int, type(None)}:
        return None
    arr = np.array(values, dtype=float)
    failed = np.fromiter((v is None for v in values), bool, len(values)) \
        if type(None) in types else np.zeros(len(values), bool)
    ok = ~failed & ~np.isnan(arr)
    arr[~np.isfinite(arr)] = np.nan
    return arr, failed, ok


def _finite(values: list) -> np.ndarray:
    """:func:`reports.cells._finite` of each value."""
    nums = _numbers(values)
    return nums[0] if nums is not None else np.array([L._finite(x) for x in values])


class _Scan:
    def __init__(self, history: str, tasks: Sequence[str], estimators: Sequence[str]):
        self.history, self.tasks, self.estimators = history, tuple(tasks), tuple(estimators)
        self.param_order: dict[str, None] = {}
        self.kinds: dict[str, str] = {}
        self.files: list[_File] = []
        self.counts: list[tuple] = []  # (machine, commit, env, date, benchmark, status, n)
        # file index -> its history/info rows, column-wise ({column: array or one value})
        self.kept: dict[int, list[dict[str, Any]]] = {}
        self.failed_rows: list[dict] = []
        self.runs: list[pd.DataFrame] = []
        self.estimator_names: set[str] = set()
        self.methods: dict[tuple[str, Any], set[str]] = {}
        self.memo: dict[str, Any] = {}
        self.root: Path | None = None
        self.details_memo: dict[Any, Any] = {}

    def file(self, path: Path, data: dict, machine: str, benchmarks: dict,
             problems: list[str]) -> None:
        commit, env = L._text(data.get("commit_hash")), L._text(data.get("env_name"))
        raw_date = data.get("date")
        if raw_date is not None and (isinstance(raw_date, bool)
                                     or not isinstance(raw_date, (int, float))):
            raise ValueError(f"'date' is {type(raw_date).__name__}, not milliseconds")
        date = pd.to_datetime(raw_date, unit="ms", utc=True) if raw_date else pd.NaT
        columns = data["result_columns"]
        benches = {name: _unroll(name, row, columns, benchmarks.get(name, {}), combos=False)
                   for name, row in data["results"].items()}
        se_of = {name[:-len(L._SE_SUFFIX)]: b for name, b in benches.items()
                 if name.endswith(L._SE_SUFFIX) and name[:-len(L._SE_SUFFIX)] in benches}
        se_names = {b.name for b in se_of.values()}
        started: dict[str, Any] = {}
        counts, failed_at, history, order, kinds = [], {}, [], dict(self.param_order), {}
        entry = _File(path, machine, commit, env, date, started)
        needed: set[str] = set()  # read row by row: read across commits, or failed cells
        across: set[str] = set()  # every row kept: read across commits
        runs: list[dict[str, Any]] = []
        for name, b in benches.items():
            if name in se_names:
                continue
            se_bench = se_of.get(name)
            if se_bench is not None and se_bench.params != b.params:
                raise ValueError(f"benchmark {se_bench.name}: its parameters differ from "
                                 f"{name}'s")
            params = {p: [self._parse(raw) for raw in values]
                      for p, values in zip(b.param_names, b.params)}
            for p, values in params.items():
                if p != "measure":
                    col = L._param_column(p)
                    order.setdefault(col, None)
                    kinds[col] = L.join_kinds(kinds.get(col, "none"), L.value_kind(values))
            group = L.group_of(name, b.param_names)
            for sel in _selections(group, name, params, self.tasks, self.estimators):
                if not pd.isna(b.started_at) and (sel not in started or pd.isna(started[sel])
                                                  or b.started_at > started[sel]):
                    started[sel] = b.started_at
                started.setdefault(sel, pd.NaT)
            nums = _numbers(b.results)
            if nums is None:
                statuses = [L._status(v) for v in b.results]
                invalid = statuses.count("invalid")
                statuses = ["failed" if s == "invalid" else s for s in statuses]
                if invalid:
                    problems.append(f"{name}: {invalid} cell(s) hold something other than a "
                                    f"number (counted as failed)")
                n_ok, n_failed = statuses.count("ok"), statuses.count("failed")
                failed_idx = [i for i, s in enumerate(statuses) if s == "failed"]
            else:
                _arr, failed, ok = nums
                n_ok, n_failed = int(ok.sum()), int(failed.sum())
                failed_idx = np.flatnonzero(failed).tolist()
            counts.append((name, n_ok, n_failed, len(b.results) - n_ok - n_failed))
            measure = L.measure_of(name.rsplit(".", 1)[-1])
            if group == "info" or measure in _KEEP_MEASURES:
                across.add(name)
            if failed_idx or name in across:
                failed_at[name] = failed_idx
                needed |= {name} | ({se_bench.name} if se_bench is not None else set())
            if group == "gradient" and "measure" not in b.param_names and nums is not None:
                if measure == self.history:
                    history.append(self._columns(b, se_bench, nums, params, measure))
                    entry.has_history = True
                    if not pd.isna(b.started_at) and (pd.isna(entry.history_started)
                                                      or b.started_at > entry.history_started):
                        entry.history_started = b.started_at
                if measure == "run_started":
                    runs.append(self._columns(b, None, nums, params, measure))
            self._names(b, params)
        self.param_order = order
        for col, kind in kinds.items():
            self.kinds[col] = L.join_kinds(self.kinds.get(col, "none"), kind)
        index = len(self.files)
        self.files.append(entry)
        self.counts += [(machine, commit, env, date, name, status, n)
                        for name, *ns in counts for status, n in zip(("ok", "failed", "skipped"),
                                                                      ns) if n]
        part = {**data, "results": {n: r for n, r in data["results"].items() if n in needed}}
        rows = list(L._rows_of_file(part, machine, benchmarks, {}, [], cells=lambda n, b: (
            range(len(b.results)) if n in across else failed_at.get(n, []))))
        self.failed_rows += [r for r in rows if r["status"] == "failed"]
        info = [r for r in rows if r["benchmark"] in across]
        where = {"machine": machine, "commit": commit, "env": env, "date": date}
        if runs:
            self.runs += _run_groups(runs, where)
        parts = [columns_of_rows(info)] if info else []
        parts += [{**h, **where} for h in history]
        self.kept[index] = parts  # joined and typed once, all files together (scan_totals)

    def _parse(self, raw: Any) -> Any:
        if not isinstance(raw, str):
            return L.parse_param(raw)
        if raw not in self.memo:
            self.memo[raw] = L.parse_param(raw)
        return self.memo[raw]

    def _columns(self, b, se_bench, nums, params, measure) -> dict[str, Any]:
        arr, failed, ok = nums
        n = len(arr)
        sizes = [len(v) for v in params.values()]
        cols: dict[str, Any] = {"benchmark": b.name, "group": "gradient", "measure": measure,
                                "type": b.kind}
        right = n
        for (p, values), size in zip(params.items(), sizes):
            right //= size
            index = np.tile(np.repeat(np.arange(size), right), n // (size * right))
            cols[L._param_column(p)] = np.array(values + [None], dtype=object)[:-1][index]
        value = np.where(ok, arr, np.nan)
        se = lo = hi = level = np.full(n, np.nan)
        if se_bench is not None:
            se_nums = _numbers(se_bench.results)
            if se_nums is not None:
                se = np.where(ok, se_nums[0], np.nan)
                has = ~np.isnan(se) & ~np.isnan(value)
                lo = np.where(has, value - L.CI_Z * se, np.nan)
                hi = np.where(has, value + L.CI_Z * se, np.nan)
                level = np.where(has, L.CI_LEVEL, np.nan)
        else:
            lo, hi = (np.where(ok, _finite(ci), np.nan) for ci in (b.ci_a, b.ci_b))
            level = np.where(ok & ~np.isnan(lo) & ~np.isnan(hi), 0.99, np.nan)
        status = np.where(failed, "failed", np.where(ok, "ok", "skipped"))
        cols.update(started_at=b.started_at, value=value, se=se, ci_low=lo, ci_high=hi,
                    ci_level=level, unit=b.unit, status=status)
        return cols

    def _names(self, b, params) -> None:
        for est in params.get("estimator", []):
            if est is not None and not (isinstance(est, float) and math.isnan(est)):
                self.estimator_names.add(str(est))
        if "method" in params:
            keys = params.get("task", [None]) if "task" in params else [None]
            for key in keys:
                group = self.methods.setdefault((b.name, key), set())
                group.update(str(m) for m in params["method"] if m is not None
                             and not (isinstance(m, float) and math.isnan(m)))


def columns_of_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows (dicts) -> {column: object array}, columns in order of appearance, a row without a
    column holding None."""
    names = dict.fromkeys(k for row in rows for k in row)
    out = {}
    for name in names:
        out[name] = np.fromiter((row.get(name) for row in rows), dtype=object, count=len(rows))
    return out


def _run_groups(runs: list[dict[str, Any]], where: dict[str, Any]) -> list[tuple]:
    """(machine, commit, run started, cells, tasks, estimators, K) of one file's gradient cells
    with a ``run_started``: a cell's run starts at its latest ``run_started``, to the second
    (as :func:`reports.runs.attach_runs` says). Plain Python over the cells (a pandas group-by
    per file was a quarter of reading a long history)."""
    keys = [k for k in ("task", "estimator", "num_samples", "device") if any(k in c for c in runs)]
    rows: list[tuple[tuple, float]] = []
    for c in runs:
        n = len(c["value"])
        columns = [c[k] if k in c else [None] * n for k in keys]
        for i, (status, value) in enumerate(zip(c["status"], c["value"])):
            if status == "ok":
                rows.append((tuple(str(col[i]) for col in columns), float(value)))
    latest: dict[tuple, float] = {}
    for key, value in rows:
        if not math.isnan(value) and (key not in latest or value > latest[key]):
            latest[key] = value
    when: dict[float, Any] = {}
    groups: dict[Any, list] = {}
    ti, ei, ki = (keys.index(k) if k in keys else None for k in ("task", "estimator",
                                                                 "num_samples"))
    for key, _value in rows:
        if key not in latest:
            continue
        start = latest[key]
        if start not in when:
            when[start] = pd.to_datetime(start, unit="s", utc=True).floor("s")
        group = groups.setdefault(when[start], [0, set(), set(), set()])
        group[0] += 1
        group[1].add(key[ti] if ti is not None else "None")
        group[2].add(key[ei] if ei is not None else "None")
        if ki is not None:
            group[3].add(str(int(float(key[ki]))))
    return [(where["machine"], where["commit"], run, n, tasks, ests, ks)
            for run, (n, tasks, ests, ks) in sorted(groups.items())]


def load_for_report(results_dir: os.PathLike | str, history_measure: str = "time_estimate",
                    only_tasks: Sequence[str] = (), only_estimators: Sequence[str] = (),
                    progress: Callable[[str], None] | None = None,
                    workers: Workers | None = None) -> L.Loaded:
    """What the report reads of ``results_dir`` (see the module's notes); same errors and
    warnings as :func:`reports.load.load_results`. ``workers``
    (:class:`reports.parallel.Workers`) scan shares of the files; the result is the same."""
    say = progress or (lambda msg: None)
    root = Path(results_dir)
    loaded = L.Loaded(frame=pd.DataFrame(columns=L.FIXED_COLUMNS), param_columns=[])
    files, benchmarks = L._open_results(root, loaded)
    shares = _shares(files, workers.count + 1 if workers is not None else 1)
    say(f"reading {len(files)} result file(s) under {root} (only what the report shows"
        + (f"; {len(shares)} processes" if len(shares) > 1 else "") + ")")
    args = (root, benchmarks, history_measure, tuple(only_tasks), tuple(only_estimators))
    futures = [workers.submit(_scan_share_elsewhere, share, *args) for share in shares[1:]] \
        if workers is not None else []  # a worker starts here only when it has files to read
    done = [scan_share(shares[0], *args)] if shares else []
    for share, future in zip(shares[1:], futures):
        result = workers.result(future)  # None: the worker failed, the share is read here
        done.append(result if result is not None else scan_share(share, *args))
    scan = _merge(done, history_measure, only_tasks, only_estimators)
    for share in done:
        for key, entry in share.benchmarks.items():  # details benchmarks (reports.details)
            benchmarks.setdefault(key, entry)
        for path, machine, machine_info, notes, problems in share.outcomes:
            loaded.warnings.extend(n for n in notes if n not in loaded.warnings)
            loaded.warnings.extend(problems)
            if machine is not None:
                loaded.files.append(str(path))
                loaded.machines.setdefault(machine, machine_info)
    scan.root, scan.details_memo = root, done[0].scan.details_memo if done else {}
    if not scan.files or not any(n for *_x, n in scan.counts):
        L._nothing(root, loaded)
    whole = _latest_files(scan)
    if whole is None:
        say("latest commits cannot be told apart from what is kept: reading every row")
        full = L.load_results(root, progress)
        return full
    from .scan_totals import frame_of, totals_of  # noqa: I001

    loaded.param_columns = list(scan.param_order)
    loaded.frame = frame_of(scan, whole, benchmarks, loaded.param_columns)
    loaded.totals = totals_of(scan, loaded.param_columns)
    say(f"kept {len(loaded.frame)} of {loaded.totals.cells} cells from {len(loaded.files)} "
        f"file(s) ({len(whole)} read whole)")
    return loaded


@dataclass
class _Share:
    """One process's scan of a run of consecutive files."""

    scan: _Scan
    # per file, in order: (path, machine or None when skipped, machine.json's fields, warnings
    # about machine.json, warnings about the file)
    outcomes: list[tuple[Path, str | None, dict, list[str], list[str]]]
    benchmarks: dict[str, Any]  # entries the details files added to benchmarks.json's


def _shares(files: list[Path], processes: int) -> list[list[Path]]:
    """``files`` cut into runs of consecutive files, one per process, each of at least
    :data:`reports.parallel.MIN_FILES_PER_SHARE` files (one run when there are few)."""
    from .parallel import MIN_FILES_PER_SHARE

    n = max(1, min(processes, len(files) // MIN_FILES_PER_SHARE))
    bounds = [round(i * len(files) / n) for i in range(n + 1)]
    return [files[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def scan_share(paths: list[Path], root: Path, benchmarks: dict[str, Any], history: str,
               tasks: Sequence[str], estimators: Sequence[str]) -> _Share:
    """Scan ``paths`` in order (in this process or a worker's): a file that cannot be read is
    skipped with a warning, leaving the scan as it was."""
    scan = _Scan(history, tasks, estimators)
    scan.root, scan.details_memo = root, {}  # details files: read once, joined per file
    known = set(benchmarks)
    notes = L.Loaded(frame=pd.DataFrame(), param_columns=[])  # collects machine.json warnings
    outcomes = []
    for path in paths:
        seen = len(notes.warnings)
        machine_info = L._machine_info(path.parent, notes)
        machine_notes = notes.warnings[seen:]
        before = (dict(scan.param_order), len(scan.counts), len(scan.failed_rows),
                  set(scan.estimator_names), {k: set(v) for k, v in scan.methods.items()},
                  dict(scan.kinds))
        try:
            data, machine = L._checked(path, machine_info)
            problems: list[str] = []
            attach_details(data, benchmarks, root, scan.details_memo, problems)
            scan.file(path, data, machine, benchmarks, problems)
        except Exception as exc:  # noqa: BLE001 - as load_results: skipped with a warning
            (scan.param_order, n_counts, n_failed, scan.estimator_names, scan.methods,
             scan.kinds) = before
            del scan.counts[n_counts:], scan.failed_rows[n_failed:]
            outcomes.append((path, None, machine_info, machine_notes,
                             [f"skipped {path}: {L._short(exc)}"]))
            continue
        outcomes.append((path, machine, machine_info, machine_notes,
                         [f"{path}: {p}" for p in problems]))
    scan.memo = {}  # parse cache: not worth sending back
    return _Share(scan, outcomes, {k: v for k, v in benchmarks.items() if k not in known})


def _scan_share_elsewhere(*args: Any) -> _Share:
    """:func:`scan_share` in a worker: its cache of details files stays there."""
    share = scan_share(*args)
    share.scan.details_memo = {}
    return share


def _merge(shares: list[_Share], history: str, tasks: Sequence[str],
           estimators: Sequence[str]) -> _Scan:
    """The scan of the shares' files in order: what one process scanning them all makes."""
    scan = _Scan(history, tasks, estimators)
    for share in shares:
        part, offset = share.scan, len(scan.files)
        for col in part.param_order:
            scan.param_order.setdefault(col, None)
        for col, kind in part.kinds.items():
            scan.kinds[col] = L.join_kinds(scan.kinds.get(col, "none"), kind)
        scan.files += part.files
        scan.counts += part.counts
        scan.kept.update({i + offset: parts for i, parts in part.kept.items()})
        scan.failed_rows += part.failed_rows
        scan.runs += part.runs
        scan.estimator_names |= part.estimator_names
        for key, names in part.methods.items():
            scan.methods.setdefault(key, set()).update(names)
    return scan


def _latest_files(scan: _Scan) -> set[int] | None:
    """Indices of the files some table or figure reads whole, or None when the rows kept would
    make a different file look latest to :func:`reports.select.latest_commit`."""
    whole: set[int] = set()
    machines = sorted({f.machine for f in scan.files})
    landscape_machine = sorted({f.machine for f in scan.files if "landscape" in f.started})
    for sel in ("gradient", "chosen", "align3", "align2", "other", "landscape"):
        for machine in machines:
            if sel == "landscape" and machine not in landscape_machine[:1]:
                continue
            idx = [i for i, f in enumerate(scan.files) if f.machine == machine
                   and sel in f.started]
            if not idx:
                continue
            keys = pd.DataFrame({"commit": [scan.files[i].commit for i in idx],
                                 "env": [scan.files[i].env for i in idx],
                                 "date": [scan.files[i].date for i in idx],
                                 "started_at": [scan.files[i].started[sel] for i in idx],
                                 "i": idx})
            keys["date"] = pd.to_datetime(keys["date"], utc=True)
            keys["started_at"] = pd.to_datetime(keys["started_at"], utc=True)
            chosen = set(latest_commit(keys)["i"])
            whole |= chosen
            if sel in ("gradient", "chosen"):
                # what latest_commit sees in the kept rows: the history rows of the others
                seen = keys.assign(started_at=[
                    scan.files[i].started[sel] if i in chosen else scan.files[i].history_started
                    for i in idx])
                seen = seen[[i in chosen or scan.files[i].has_history for i in idx]]
                if set(latest_commit(seen)["i"]) != chosen:
                    return None
    return whole
