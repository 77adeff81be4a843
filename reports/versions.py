"""Which results are current: a comparison or ranking never mixes code versions (issue 24, item 2; README,
"Results never mix code versions"). Per machine and component (an estimator or loss by its registered name, a task,
torch) the version in its latest ``run_started`` rows is current; a cell (gradient: task, estimator, K, device;
training: task, method, seed) with a row of another version is stale. Rows without a version (asv's timings, older
results) go with their cell; a cell measured again replaced its older rows (:func:`reports.load.load_results`)."""
from __future__ import annotations

import shlex

import pandas as pd

from .blocks import Alert, Report, display
from .select import each_latest

__all__ = ["NEEDS", "CELL_GROUPS", "stale", "stale_cells", "rerun_commands", "notice"]

#: the columns this module reads beyond the identity (:data:`reports.load.BASE_COLUMNS`)
NEEDS = ("estimator_version", "task_version", "loss_version", "torch_version")
#: the groups whose rows are cells (the rest, harness facts and landscape experiments, are not ranked here)
CELL_GROUPS = ("gradient", "summary", "final", "curve")
_CELL = ["machine", "commit", "task", "estimator", "method", "num_samples", "device", "seed"]
_MISSING = {"", "None", "nan", "<NA>"}
_MAX_LISTED = 30


def _text(frame: pd.DataFrame, col: str) -> pd.Series:
    if col not in frame:
        return pd.Series("", index=frame.index)
    out = frame[col].astype(object).where(frame[col].notna(), "").astype(str)
    return out.where(~out.isin(_MISSING), "")


def stale(frame: pd.DataFrame) -> pd.Series:
    """Per row: '' (current, or outside :data:`CELL_GROUPS`), else why its cell is stale (``estimator version a#1
    (current a#2)``)."""
    cells = frame[frame["group"].isin(CELL_GROUPS)] if "group" in frame else frame.iloc[0:0]
    why = pd.Series("", index=frame.index, dtype=object)
    if cells.empty:
        return why
    named = _text(cells, "estimator").where(_text(cells, "estimator") != "", _text(cells, "method"))
    owners = {"estimator_version": named.str.partition(":")[0], "task_version": _text(cells, "task"),
              "loss_version": _text(cells, "method").str.partition(":")[0], "torch_version": ""}
    when, found = cells.get("run_started", 0), pd.Series("", index=cells.index, dtype=object)
    for col, owner in owners.items():
        has = (version := _text(cells, col)) != ""
        if not has.any():
            continue
        part = pd.DataFrame({"machine": cells["machine"].astype(str), "owner": owner, "v": version,
                             "t": when})[has].sort_values("t", kind="stable", na_position="first")
        now = part.groupby(["machine", "owner"])["v"].transform("last")
        old, what = part.index[part["v"] != now], col.removesuffix("_version")
        found.loc[old] = found.loc[old] + [f"{what} version {v} (current {c}); " for v, c in
                                           zip(part.loc[old, "v"], now.loc[old])]
    if not (found != "").any():
        return why
    key = sum((_text(cells, c) + "\x1f" for c in _CELL), pd.Series("", index=cells.index))
    reasons = found[found != ""].groupby(key[found != ""]).agg(lambda s: "".join(sorted(set(s))))
    why.loc[cells.index] = key.map(reasons).fillna("").str.rstrip("; ").to_numpy()
    return why


def stale_cells(frame: pd.DataFrame, why: pd.Series) -> pd.DataFrame:
    """One row per (machine, kind, task, estimator or method) with stale cells in its latest commit: Ks, devices,
    seeds and why."""
    rows = frame[why != ""].assign(why=why[why != ""])
    if rows.empty:
        return pd.DataFrame(columns=["machine", "kind", "task", "name", "ks", "devices", "seeds", "why"])
    rows = rows.assign(kind=rows["group"].map(lambda g: "gradient" if g == "gradient" else "training"),
                       name=_text(rows, "estimator").where(_text(rows, "estimator") != "", _text(rows, "method")))
    rows = rows[rows.index.isin(each_latest(frame[frame["group"].isin(CELL_GROUPS)]).index)]

    def joined(s):
        return ", ".join(sorted({str(v) for v in s.dropna()} - _MISSING, key=lambda v: (len(v), v)))

    return rows.groupby(["machine", "kind", "task", "name"], as_index=False).agg(
        ks=("num_samples", joined), devices=("device", joined), seeds=("seed", joined),
        why=("why", lambda s: "; ".join(sorted(set(s)))))


def rerun_commands(cells: pd.DataFrame) -> list[str]:
    """The narrowed ``estibench run`` commands (gradient; training: every method) that measure ``cells`` again."""
    def flag(name, values):
        items = sorted({v for s in values for v in str(s).split(", ") if v})
        return f" --{name} {shlex.quote(','.join(items))}" if items else ""

    grad, train = cells[cells["kind"] == "gradient"], cells[cells["kind"] == "training"]
    return ([f"estibench run{flag('tasks', grad['task'])}{flag('estimators', grad['name'])}"
             f"{flag('num-samples', grad['ks'])}{flag('devices', grad['devices'])}"] if len(grad) else []) + (
        [f"estibench run{flag('training-tasks', train['task'])}"] if len(train) else [])


def notice(report: Report, frame: pd.DataFrame, why: pd.Series, names: dict) -> pd.DataFrame:
    """An alert naming the stale cells of ``frame`` and how to rerun them; returns them."""
    cells = stale_cells(frame, why)
    if cells.empty:
        return cells
    who, task = display(names, "method", "estimator"), display(names, "task")
    items = [f"{who.get(r.name, r.name)} on {task.get(r.task, r.task)} ({r.kind}"
             + (f", K = {r.ks}" if r.ks else "") + (f", {r.devices}" if r.devices else "")
             + (f", seeds {r.seeds}" if r.seeds else "") + f"; machine {r.machine}): {r.why}"
             for r in cells.head(_MAX_LISTED).itertuples()]
    if len(cells) > _MAX_LISTED:
        items.append(f"… and {len(cells) - _MAX_LISTED} more (tables/stale.csv)")
    report.tables["stale"] = cells
    report.add(Alert(f"Stale results: {len(cells)} estimator/task pair(s) measured by older code", items,
                     "A newer version of their estimator, loss, task or torch produced other cells since: these "
                     "are left out of the rankings and the comparison (the figures still draw them). Rerun them "
                     "with: " + " ; ".join(rerun_commands(cells))))
    return cells
