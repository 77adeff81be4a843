"""Synthetic asv history: one realistic results file copied under N commits (for benchmarks and
tests of the report's cost as history grows).

:func:`write_history` writes ``<out>/benchmarks.json``, ``<out>/<machine>/machine.json`` and one
``<out>/<machine>/<commit8>-<env>.json`` per commit, in asv's results format (api version 2,
as :mod:`reports.load` documents it). Every commit holds the same cells as the suite's layout
gives them (``bench_gradients.Quality<Family>``, ``SNR<Family>``, ``Cost<Family>``,
``GradientTaskInfo``, ``bench_alignment.<Task>Summary/Final/Curve/Info``, a ``bench_metrics``
benchmark): the values of one run, the times of ``time_estimate`` jittered per commit, with
distinct commit hashes and dates (one day apart, oldest first). A few cells are skipped (the SNR
of a deterministic estimator) and one has failed (null), as in real results.

Standard library only (asv's forkserver parent imports the benchmark modules that use it).

>>> write_history("/tmp/history", commits=50)                 # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Grid", "DEFAULT_GRID", "TODAY_GRID", "SMALL_GRID", "write_history", "commit_hash"]

ENV = "existing-py_synthetic_python-OMP_NUM_THREADS1"
COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a",
           "stats_ci_99_b"]
_DAY_MS = 86_400_000
_FIRST_DATE_MS = 1_780_000_000_000
_STARTED = -987654321  # placeholder for started_at, replaced per commit
_QUALITY = ["bias", "bias_p", "bias_z", "claim_verdict", "claims_unbiased", "cosine",
            "cosine_of_mean", "detectable_bias", "evaluations", "mse", "replicates",
            "run_started", "variance", "work_normalised_variance"]
_WITH_SE = {"bias", "cosine", "cosine_of_mean", "mse", "variance", "work_normalised_variance",
            "snr"}
_UNITS = {"bias": "relative", "cosine": "cosine", "cosine_of_mean": "cosine", "mse": "grad^2",
          "variance": "grad^2", "work_normalised_variance": "grad^2*s", "snr": "ratio",
          "replicates": "replicates", "evaluations": "evaluations", "run_started": "s"}
_BASE_ESTIMATORS = ["exact", "score_function:baseline=none", "score_function:baseline=loo",
                    "score_function:baseline=mean", "gumbel_softmax", "straight_through",
                    "straight_through_gumbel", "rebar", "relax", "arm", "disarm",
                    "unordered_set", "rloo_stratified", "imle", "sparsemax", "simple"]


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
#: cells x 17 measures, plus the alignment cells (about 95,000 rows a commit)
DEFAULT_GRID = Grid()
#: today's default grid (860 gradient cells x 17 measures, about 23,000 rows a commit)
TODAY_GRID = Grid(families={"Bernoulli": (7, 16), "Normal": (3, 5), "OneHotCategorical": (3, 15)},
                  num_samples=(1, 4, 16, 64, 256))
#: a few hundred rows a commit, for tests
SMALL_GRID = Grid(families={"Bernoulli": (2, 4), "Normal": (1, 3)}, num_samples=(1, 4, 16),
                  training=(("MultilabelDigits", 2, 3, 4, 3),))


def commit_hash(i: int, seed: int = 0) -> str:
    return hashlib.sha1(f"estibench-synthetic-{seed}-{i}".encode()).hexdigest()


def _names(family: str, n_tasks: int, n_est: int) -> tuple[list[str], list[str]]:
    tasks = [f"{family.lower()}_{i:02d}" for i in range(n_tasks)]
    ests = [_BASE_ESTIMATORS[i % len(_BASE_ESTIMATORS)]
            + ("" if i < len(_BASE_ESTIMATORS) else f":v{i // len(_BASE_ESTIMATORS)}")
            for i in range(n_est)]
    return tasks, ests


def _params(*lists: list) -> list[list[str]]:
    return [[repr(v) for v in values] for values in lists]


def _one_run(grid: Grid, rng: random.Random) -> tuple[dict, dict, list[str]]:
    """(benchmarks.json entries, results rows with a started_at placeholder, time benchmarks)."""
    benchmarks: dict = {}
    results: dict = {}
    times: list[str] = []

    def add(name, param_names, params, values, unit, kind="track", ci=None):
        benchmarks[name] = {"name": name, "param_names": param_names, "params": params,
                            "type": kind, "unit": unit, "version": "0" * 64}
        row = [values, params, "0" * 64, _STARTED, round(rng.uniform(1, 60), 3)]
        if ci is not None:
            row += list(ci)
        results[name] = row

    for family, (n_tasks, n_est) in grid.families.items():
        tasks, ests = _names(family, n_tasks, n_est)
        params = _params(tasks, ests, list(grid.num_samples), ["cpu"])
        names = ["task", "estimator", "num_samples", "device"]
        cells = [(t, e, k) for t in tasks for e in ests for k in grid.num_samples]
        for m in _QUALITY + ["snr"]:
            cls = "SNR" if m == "snr" else "Quality"
            values = []
            for _t, e, k in cells:
                if m == "snr" and e == "exact":
                    values.append(float("nan"))  # a deterministic estimator has no SNR
                elif m == "run_started":
                    values.append(_FIRST_DATE_MS / 1000.0)
                elif m == "claim_verdict":
                    values.append(float(rng.choice([1, 0, 0, -1])))
                elif m in ("claims_unbiased", "replicates", "evaluations"):
                    values.append(float(rng.choice([0, 1]) if m == "claims_unbiased" else 64 * k))
                else:
                    values.append(rng.lognormvariate(0, 2) / k)
            if m == "variance" and values:
                values[0] = None  # one failed cell
            add(f"bench_gradients.{cls}{family}.track_{m}", names, params, values,
                _UNITS.get(m, "unit"))
            if m in _WITH_SE:
                add(f"bench_gradients.{cls}{family}.track_{m}_se", names, params,
                    [abs(v) * 0.05 if isinstance(v, float) else None for v in values],
                    _UNITS.get(m, "unit"))
        for m, unit in (("time_estimate", "seconds"), ("peakmem_estimate", "bytes")):
            name = f"bench_gradients.Cost{family}.{m}"
            values = [rng.uniform(2e-4, 2e-3) * (1 + k / 64) if m == "time_estimate"
                      else float(rng.randrange(280_000_000, 300_000_000)) for _t, _e, k in cells]
            ci = ([v * 0.9 for v in values], [v * 1.1 for v in values]) \
                if m == "time_estimate" else None
            add(name, names, params, values, unit, m.split("_")[0].replace(
                "peakmem", "peakmemory"), ci)
            if m == "time_estimate":
                times.append(name)
    all_tasks = [t for f, (n, e) in grid.families.items() for t in _names(f, n, e)[0]]
    add("bench_gradients.GradientTaskInfo.track_bias_target", ["task"], _params(all_tasks),
        [0.05] * len(all_tasks), "relative")
    for cls, n_methods, seeds, n_measures, steps in grid.training:
        task = "".join("_" + c.lower() if c.isupper() else c for c in cls).lstrip("_")
        methods = [f"method_{i}" for i in range(n_methods)]
        measures = ["seconds", "loss", "metric"] + [f"extra_{i}" for i in range(n_measures - 3)]
        base = f"bench_alignment.{cls}"
        add(f"{base}Info.track_higher_is_better", ["task"], _params([task]), [1.0], "unit")
        for m in ("evaluations_per_update", "final_metric_equal_steps",
                  "final_metric_equal_time", "kendall_tau", "metric_gain_per_second",
                  "seconds_per_update"):
            add(f"{base}Summary.track_{m}", ["task", "method", "seed"],
                _params([task], methods, list(range(seeds))),
                [rng.uniform(-1, 1) for _ in range(n_methods * seeds)], "unit")
        add(f"{base}Final.track_value", ["task", "method", "seed", "measure"],
            _params([task], methods, list(range(seeds)), measures),
            [rng.uniform(0, 1) for _ in range(n_methods * seeds * n_measures)], "unit")
        add(f"{base}Curve.track_value", ["task", "method", "seed", "measure", "step"],
            _params([task], methods, list(range(seeds)), measures,
                    [100 * (i + 1) for i in range(steps)]),
            [rng.uniform(0, 1) for _ in range(n_methods * seeds * n_measures * steps)], "unit")
    add("bench_metrics.Gap.track_relative_gap", ["metric", "method", "words"],
        _params(["wmd", "wrd"], ["sinkhorn", "centroid", "relaxed"], [8, 32]),
        [rng.uniform(-0.5, 0.5) for _ in range(12)], "relative")
    return benchmarks, results, times


def write_history(out: os.PathLike | str, commits: int = 20, grid: Grid = DEFAULT_GRID,
                  machine: str = "synthetic", seed: int = 0) -> Path:
    """Write ``commits`` copies of one synthetic run under ``out`` (an asv results folder) and
    return it. Commit ``i`` has hash :func:`commit_hash` ``(i, seed)`` and date ``i`` days after
    the first; its ``time_estimate`` values are the run's times times a factor in [0.9, 1.1]."""
    out = Path(out)
    folder = out / machine
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    benchmarks, results, times = _one_run(grid, rng)
    (out / "benchmarks.json").write_text(json.dumps({**benchmarks, "version": 2}),
                                         encoding="utf-8")
    info = {"arch": "x86_64", "cpu": "synthetic", "machine": machine, "num_cpu": "2",
            "os": "Linux", "ram": "25000000000"}
    (folder / "machine.json").write_text(json.dumps({**info, "version": 1}), encoding="utf-8")
    fixed = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in results.items()
                      if k not in times)
    for i in range(commits):
        commit, date = commit_hash(i, seed), _FIRST_DATE_MS + i * _DAY_MS
        factor = 1 + 0.1 * (2 * random.Random(f"{seed}-{i}").random() - 1)
        moving = []
        for name in times:
            row = list(results[name])
            row[0] = [v * factor for v in row[0]]
            row[5], row[6] = [v * 0.9 for v in row[0]], [v * 1.1 for v in row[0]]
            moving.append(f"{json.dumps(name)}: {json.dumps(row)}")
        body = ", ".join([fixed, *moving]).replace(str(_STARTED), str(date + 3_600_000))
        head = {"commit_hash": commit, "env_name": ENV, "date": date,
                "params": {**info, "python": "3"}, "python": "3", "requirements": {},
                "env_vars": {"OMP_NUM_THREADS": "1"}, "result_columns": COLUMNS,
                "durations": {}, "version": 2}
        text = json.dumps(head)[:-1] + f', "results": {{{body}}}}}'
        (folder / f"{commit[:8]}-{ENV}.json").write_text(text, encoding="utf-8")
    return out
