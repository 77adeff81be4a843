"""A synthetic results history for the report benchmark (``suite/benchmarks/bench_reports.py``):
one realistic run copied under N commits, written as the suite writes results.

:func:`write_history` writes, under ``out`` (a results folder):

* one run file per commit (``runs/<run>.parquet``, :func:`estibench.schema.write_run`): every
  gradient cell's statistics with their standard errors, display names and claims, each task's
  ``bias_target``, the training tasks' summary, final, curve and info rows, and a few ``other``
  rows (a metric benchmark);
* asv's side: ``benchmarks.json``, ``<machine>/machine.json`` and one
  ``<machine>/<commit8>-<env>.json`` per commit holding what asv measures itself
  (``time_estimate`` with its 99 % interval, ``peakmem_estimate``).

Commit ``i`` has hash :func:`commit_hash` ``(i, seed)`` and a date ``i`` days after the first; the
times are jittered per commit. A few cells are skipped (the SNR of a deterministic estimator) and
one has failed, as in real results. Not a benchmark module (asv imports every module of its
benchmark folder): standard library only at import.

>>> write_history("/tmp/history", commits=50, grid=TODAY_GRID)          # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Grid", "GRIDS", "DEFAULT_GRID", "TODAY_GRID", "SMALL_GRID", "write_history",
           "commit_hash"]

ENV = "existing-py_synthetic_python-OMP_NUM_THREADS1"
COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b"]
_DAY_MS = 86_400_000
_FIRST_DATE_MS = 1_780_000_000_000
_GRADIENT = ["bias", "bias_p", "bias_z", "claim_verdict", "cosine", "cosine_of_mean", "detectable_bias",
             "evaluations", "mse", "replicates", "variance", "work_normalised_variance", "snr"]
_WITH_SE = {"bias", "cosine", "cosine_of_mean", "mse", "variance", "work_normalised_variance", "snr"}
_SUMMARY = ["evaluations_per_update", "final_metric_equal_steps", "final_metric_equal_time", "kendall_tau",
            "metric_gain_per_second", "seconds_per_update"]
_BASE_ESTIMATORS = ["exact", "score_function:baseline=none", "score_function:baseline=loo",
                    "score_function:baseline=mean", "gumbel_softmax", "straight_through",
                    "straight_through_gumbel", "rebar", "relax", "arm", "disarm", "unordered_set",
                    "rloo_stratified", "imle", "sparsemax", "simple"]


@dataclass(frozen=True)
class Grid:
    """Tasks and estimators per gradient family, sample counts, and training tasks (name, methods,
    seeds, measures per checkpoint, checkpoints)."""

    families: dict[str, tuple[int, int]] = field(default_factory=lambda: {
        "Bernoulli": (14, 24), "Normal": (6, 8), "OneHotCategorical": (8, 24)})
    num_samples: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    training: tuple[tuple[str, int, int, int, int], ...] = (
        ("BinaryVaeDigits", 16, 3, 9, 4), ("CategoricalVaeDigits", 15, 3, 9, 4),
        ("MarkovTermination", 6, 3, 6, 6), ("MultilabelDigits", 2, 3, 4, 6),
        ("SequenceReversal", 6, 3, 6, 6), ("VqvaeDigits", 14, 3, 4, 6))

    @property
    def gradient_cells(self) -> int:
        return sum(t * e for t, e in self.families.values()) * len(self.num_samples)


#: about the size of the default grid with the other open issues' estimators: 5,184 gradient
#: cells x 15 measures, plus the training cells
DEFAULT_GRID = Grid()
#: the size of the default grid of an ``estibench run`` today (860 gradient cells, the six
#: training tasks): what "the report of one full default run" is measured on
TODAY_GRID = Grid(families={"Bernoulli": (7, 16), "Normal": (3, 5), "OneHotCategorical": (3, 15)},
                  num_samples=(1, 4, 16, 64, 256))
#: a few hundred rows a commit, for tests and the default ``asv run``
SMALL_GRID = Grid(families={"Bernoulli": (2, 4), "Normal": (1, 3)}, num_samples=(1, 4, 16),
                  training=(("MultilabelDigits", 2, 3, 4, 3),))
#: ``settings.history_grid`` -> grid
GRIDS = {"small": SMALL_GRID, "today": TODAY_GRID, "large": DEFAULT_GRID}


def commit_hash(i: int, seed: int = 0) -> str:
    return hashlib.sha1(f"estibench-synthetic-{seed}-{i}".encode()).hexdigest()


def _names(family: str, n_tasks: int, n_est: int) -> tuple[list[str], list[str]]:
    tasks = [f"{family.lower()}_{i:02d}" for i in range(n_tasks)]
    ests = [_BASE_ESTIMATORS[i % len(_BASE_ESTIMATORS)]
            + ("" if i < len(_BASE_ESTIMATORS) else f":v{i // len(_BASE_ESTIMATORS)}") for i in range(n_est)]
    return tasks, ests


def _gradient_rows(grid: Grid, rng: random.Random, row) -> list[dict]:
    out = []
    for family, (n_tasks, n_est) in grid.families.items():
        tasks, ests = _names(family, n_tasks, n_est)
        for task in tasks:
            out.append(row("bias_target", 0.05, group="harness", task=task))
            for est in ests:
                claims = float(rng.choice([0, 1]))
                for k in grid.num_samples:
                    cell = dict(group="gradient", task=task, estimator=est, num_samples=k, device="cpu",
                                task_name=task.replace("_", " "), estimator_name=est.replace("_", " "),
                                claims_unbiased=claims)
                    for m in _GRADIENT:
                        if m == "snr" and est == "exact":  # a deterministic estimator has no SNR
                            out.append(row(m, None, status="skipped", **cell))
                            continue
                        value = (float(rng.choice([1, 0, 0, -1])) if m == "claim_verdict" else
                                 64.0 * k if m in ("replicates", "evaluations") else
                                 rng.uniform(0, 1) if m in ("bias_p", "cosine", "cosine_of_mean") else
                                 rng.lognormvariate(0, 2) / k)
                        out.append(row(m, value, se=abs(value) * 0.05 if m in _WITH_SE else None, **cell))
    out[1] = {**out[1], "status": "failed", "value": float("nan"), "error": "RuntimeError: synthetic"}
    return out


def _training_rows(grid: Grid, rng: random.Random, row) -> list[dict]:
    out = []
    for cls, n_methods, seeds, n_measures, steps in grid.training:
        task = "".join("_" + c.lower() if c.isupper() else c for c in cls).lstrip("_")
        measures = ["seconds", "loss", "metric"] + [f"extra_{i}" for i in range(n_measures - 3)]
        out.append(row("higher_is_better", 1.0, group="info", task=task, unit="flag"))
        for i in range(n_methods):
            for seed in range(seeds):
                cell = dict(task=task, method=f"method_{i}", seed=seed, task_name=cls,
                            method_name=f"method {i}")
                out += [row(m, rng.uniform(0, 1), group="summary", unit="unit", **cell) for m in _SUMMARY]
                out += [row(m, rng.uniform(0, 1), group="final", unit="unit", **cell) for m in measures]
                out += [row(m, {"seconds": 10.0 * (c + 1), "step": 100.0 * (c + 1)}.get(m, rng.uniform(0, 1)),
                            group="curve", unit="unit", checkpoint=c, **cell)
                        for c in range(steps) for m in measures + ["step"]]
    for metric in ("wmd", "wrd"):
        for method in ("sinkhorn", "centroid", "relaxed"):
            out += [row("relative_gap", rng.uniform(0, 0.5), group="other", experiment="Gap",
                        metric=metric, rule=method, words=words, unit="relative") for words in (8, 32)]
    return out


def _asv_files(out: Path, grid: Grid, rng: random.Random, machine: str, info: dict) -> tuple[dict, dict]:
    """benchmarks.json and machine.json; returns (benchmark -> template result row, params)."""
    benchmarks, rows = {}, {}
    for family, (n_tasks, n_est) in grid.families.items():
        tasks, ests = _names(family, n_tasks, n_est)
        params = [[repr(v) for v in values] for values in (tasks, ests, list(grid.num_samples), ["cpu"])]
        n = n_tasks * n_est * len(grid.num_samples)
        for m, kind, unit in (("time_estimate", "time", "seconds"), ("peakmem_estimate", "peakmemory", "bytes")):
            name = f"bench_gradients.Cost{family}.{m}"
            benchmarks[name] = {"name": name, "param_names": ["task", "estimator", "num_samples", "device"],
                                "params": params, "type": kind, "unit": unit, "version": "0" * 64}
            ks = [k for _t in tasks for _e in ests for k in grid.num_samples]
            values = ([rng.uniform(2e-4, 2e-3) * (1 + k / 64) for k in ks] if kind == "time"
                      else [float(rng.randrange(280_000_000, 300_000_000)) for _ in range(n)])
            rows[name] = [values, params, "0" * 64, 0, round(rng.uniform(1, 60), 3)]
    (out / machine).mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps({**benchmarks, "version": 2}), encoding="utf-8")
    (out / machine / "machine.json").write_text(json.dumps({**info, "version": 1}), encoding="utf-8")
    return rows


def write_history(out: os.PathLike | str, commits: int = 20, grid: Grid = DEFAULT_GRID,
                  machine: str = "synthetic", seed: int = 0) -> Path:
    """Write ``commits`` copies of one synthetic run under ``out`` (a results folder), return it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from estibench import schema

    out = Path(out)
    rng = random.Random(seed)
    info = {"arch": "x86_64", "cpu": "synthetic", "machine": machine, "num_cpu": "2", "os": "Linux",
            "ram": "25000000000"}
    asv_rows = _asv_files(out, grid, rng, machine, info)

    def row(measure, value, **fields):
        return schema.make_row(measure, value, machine=machine, machine_id="synthetic-id", **fields)

    rows = _gradient_rows(grid, rng, row) + _training_rows(grid, rng, row)
    template = None
    for i in range(commits):
        commit, date = commit_hash(i, seed), _FIRST_DATE_MS + i * _DAY_MS
        started = date / 1e3 + 3600.0
        run = f"{started:.6f}-synthetic-{commit[:8]}"
        if template is None:  # written once through the schema, then copied with its provenance
            template = pq.read_table(schema.write_run(
                [{**r, "commit": commit, "run": run, "run_started": started} for r in rows], out, run,
                {"source": "synthetic"}))
        else:
            table = template
            for name, value in (("commit", commit), ("run", run), ("run_started", started)):
                j = table.schema.get_field_index(name)
                table = table.set_column(j, table.schema.field(j), pa.array([value] * len(table),
                                                                            table.schema.field(j).type))
            meta = {**table.schema.metadata, b"run": run.encode()}
            pq.write_table(table.replace_schema_metadata(meta), out / schema.RUNS_FOLDER / f"{run}.parquet")
        factor = 1 + 0.1 * (2 * random.Random(f"{seed}-{i}").random() - 1)
        results = {}
        for name, template_row in asv_rows.items():
            values = [v * factor for v in template_row[0]] if "time_" in name else template_row[0]
            results[name] = [values, *template_row[1:3], date + 3_600_000, template_row[4]]
            if "time_" in name:
                results[name] += [[v * 0.9 for v in values], [v * 1.1 for v in values]]
        head = {"commit_hash": commit, "env_name": ENV, "date": date, "params": {**info, "python": "3"},
                "python": "3", "requirements": {}, "env_vars": {"OMP_NUM_THREADS": "1"},
                "result_columns": COLUMNS, "durations": {}, "version": 2, "results": results}
        (out / machine / f"{commit[:8]}-{ENV}.json").write_text(json.dumps(head), encoding="utf-8")
    return out
