"""Convert results written before run files (asv JSON holding every tracked number, plus the
``details/*.json.gz`` files of the anchor protocol) into run files (:mod:`estibench.schema`).

``estibench upgrade-results FOLDER`` calls :func:`upgrade`. Each asv result file
(``<machine>/<commit>-<env>.json``) becomes one run file of tidy rows: every tracked cell
(``track_<m>``, a ``measure`` parameter naming the measure, ``track_<m>_se`` its standard error)
with the details files of the runs its ``track_run_started`` anchors name joined in, as the old
reader joined them. Cells asv measures itself (``time_*``, ``peakmem_*``) stay in asv's files,
where the reader takes them from. The details folder is left in place (remove it once the
report reads the run files). Display names come from the registry where it is importable
(``estimators.display_name``, ``suite.registries.task_display_name``), else the ids are kept.
"""
from __future__ import annotations

import ast
import glob
import gzip
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

from . import schema

__all__ = ["upgrade", "rows_of_file"]

_DETAILS = "details"
_ANCHOR = ".track_run_started"
_GROUPS = {"Summary": "summary", "Final": "final", "Curve": "curve", "Info": "info"}
_ASV_KINDS = ("time_", "timeraw_", "peakmem_", "mem_")


def _param(text: Any) -> Any:
    try:
        value = ast.literal_eval(text) if isinstance(text, str) else text
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, (str, int, float, bool)) or value is None else text


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _status(value: Any) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "failed"
    return "skipped" if math.isnan(value) else "ok"


def _group(name: str, names: list[str]) -> tuple[str, str]:
    """(group, experiment) of an old benchmark, by the rules the old reader applied."""
    parts = name.split(".")
    cls = parts[-2] if len(parts) >= 2 else ""
    module = parts[-3] if len(parts) >= 3 else ""
    if "landscape" in module:
        return "landscape", cls
    if {"task", "estimator", "num_samples"} <= set(names):
        return "gradient", ""
    if "gradient" in module:
        return "harness", ""
    if "alignment" in module or "task" in names:
        for suffix, group in _GROUPS.items():
            if cls.endswith(suffix) and ("alignment" in module or suffix == "Info"
                                         or "method" in names):
                return group, ""
    return "other", cls


# -- the details files, joined as the old reader (reports/details.py) joined them -----------------
def _entries(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        payload = json.load(fh)
    return {name: e for name, e in payload.get("benchmarks", {}).items()
            if isinstance(e, dict) and isinstance(e.get("anchor"), str)}


def _attach(data: dict[str, Any], benchmarks: dict[str, Any], root: Path) -> None:
    """Add to one result file's ``results`` the details benchmarks of the runs its anchors name
    (cell by cell where the anchor cell holds that run's start)."""
    folder = root / _DETAILS
    results, columns = data["results"], data["result_columns"]
    if not folder.is_dir():
        return
    ri, pi = columns.index("result"), columns.index("params")
    runs = {float(v) for n, row in results.items() if n.endswith(_ANCHOR)
            and isinstance(row[ri], list) for v in row[ri] if _number(v) is not None
            and math.isfinite(v)}
    stored, merged, layout = set(results), {}, {}
    for run in sorted(runs):
        for path in sorted(folder.glob(glob.escape(repr(run)) + "-*.json.gz")):
            for name, entry in _entries(path).items():
                anchor = results.get(entry["anchor"])
                if name in stored or anchor is None:
                    continue
                owner = dict(zip(itertools.product(*anchor[pi]), anchor[ri] or []))
                on = [entry["param_names"].index(p) for p in entry["anchor_params"]]
                cells = merged.setdefault(name, {})
                for combo, value in zip(itertools.product(*entry["params"]), entry["result"]):
                    if owner.get(tuple(combo[j] for j in on)) == run:
                        cells[combo] = value
                layout[name] = entry
    for name, entry in layout.items():
        params = entry["params"]
        row: list[Any] = [None] * len(columns)
        row[ri] = [merged[name].get(c, math.nan) for c in itertools.product(*params)]
        row[pi] = params
        results[name] = row
        benchmarks.setdefault(name, {"param_names": entry["param_names"], "type": "track"})


# -- one result file -> rows -----------------------------------------------------------------
def _names() -> tuple[Any, Any]:
    try:
        import estimators

        est = getattr(estimators, "display_name", str)
        known = set(estimators.ESTIMATORS)
    except Exception:  # noqa: BLE001 - no registry: the ids are the names
        est, known = str, set()
    try:
        from suite import registries

        task = getattr(registries, "task_display_name", str)
    except Exception:  # noqa: BLE001
        task = str
    return ((lambda s: est(s) if str(s).partition(":")[0] in known else str(s)), task)


def _cells(data: dict[str, Any], name: str, names: list[str]):
    cols = dict(zip(data["result_columns"], data["results"][name]))
    params = cols.get("params") or []
    n = math.prod(len(p) for p in params)
    values = cols.get("result") if isinstance(cols.get("result"), list) else [None] * n
    for combo, value in zip(itertools.product(*params), values):
        yield dict(zip(names, map(_param, combo))), value


def rows_of_file(data: dict[str, Any], benchmarks: dict[str, Any], machine: str,
                 names: tuple[Any, Any] | None = None) -> list[dict[str, Any]]:
    """The tidy rows of one old result file (details already joined)."""
    est_name, task_name = names or _names()
    results = data["results"]
    commit = str(data.get("commit_hash") or "")
    pnames = {n: (benchmarks.get(n, {}).get("param_names")
                  or [f"param{i + 1}" for i in range(len(results[n][1] or []))]) for n in results}
    runs: dict[tuple, float] = {}  # (class prefix, cell key) -> run_started
    flags: dict[tuple, float] = {}  # gradient cell -> claims_unbiased
    for name in results:
        method = name.rsplit(".", 1)[-1]
        if method in ("track_run_started", "track_claims_unbiased"):
            for cell, value in _cells(data, name, pnames[name]):
                if _status(value) == "ok":
                    key = tuple(sorted(cell.items()))
                    if method == "track_claims_unbiased":
                        flags[key] = float(value)
                    else:
                        runs[(name.split(".")[-2].removesuffix("Info"), key)] = float(value)
    by_key = {k: v for (_, k), v in runs.items()}
    by_task = {dict(k).get("task"): v for k, v in by_key.items() if "task" in dict(k)}
    by_prefix = {p: v for (p, k), v in runs.items() if not k}
    rows = []
    for name in results:
        method = name.rsplit(".", 1)[-1]
        if method.startswith(_ASV_KINDS) or method in ("track_run_started", "track_claims_unbiased") \
                or (method.endswith("_se") and name[:-3] in results):
            continue
        group, experiment = _group(name, pnames[name])
        se_rows = list(_cells(data, name + "_se", pnames[name])) if name + "_se" in results else []
        cls = name.split(".")[-2] if "." in name else ""
        for i, (cell, value) in enumerate(_cells(data, name, pnames[name])):
            measure = str(cell.pop("measure", method.removeprefix("track_")))
            key = tuple(sorted(cell.items()))
            run = by_key.get(key) or by_task.get(cell.get("task")) or next(
                (v for p, v in by_prefix.items() if cls.startswith(p)), math.nan)
            status = _status(value)
            se = _number(se_rows[i][1]) if se_rows and status == "ok" else None
            extra = {"task_name": task_name(cell["task"])} if "task" in cell else {}
            if "estimator" in cell:
                extra["estimator_name"] = est_name(cell["estimator"])
            if "method" in cell and group != "other":
                extra["method_name"] = est_name(cell["method"])
            if group == "gradient":
                extra["claims_unbiased"] = flags.get(key, math.nan)
            rows.append(schema.make_row(
                measure, _number(value) if status == "ok" else None, status=status,
                group=group, experiment=experiment, se=se, commit=commit, machine=machine,
                run_started=float(run), run=f"upgraded-{machine}-{commit[:8]}", **cell,
                **extra, error="the benchmark failed (asv stored null)" if status == "failed"
                else ""))
    return rows


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


def upgrade(results_folder: Any) -> list[Path]:
    """Write one run file per old asv result file under ``results_folder`` (see the module's
    notes) and return their paths; files already converted are written again (same names)."""
    root = Path(results_folder)
    bj = root / "benchmarks.json"
    benchmarks = json.loads(bj.read_text()) if bj.is_file() else {}
    names = _names()
    written = []
    for path in sorted(root.glob("*/*.json")):
        if path.name == "machine.json":
            continue
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
            continue
        info = path.parent / "machine.json"
        machine = (data.get("params") or {}).get("machine") or (
            json.loads(info.read_text()).get("machine") if info.is_file() else None) \
            or path.parent.name
        _attach(data, benchmarks, root)
        rows = rows_of_file(data, benchmarks, machine, names)
        if not rows:
            continue
        started = max((r["run_started"] for r in rows if not math.isnan(r["run_started"])),
                      default=(data.get("date") or 0) / 1e3)
        run = f"{started:.6f}-upgraded-{_safe(machine)}-{_safe(path.stem)}"
        for r in rows:
            r["run"] = run
        written.append(schema.write_run(rows, root, run, {"upgraded_from": str(
            path.relative_to(root))}))
    return written
