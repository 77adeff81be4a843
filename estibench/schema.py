"""The results schema: the one seam between the suite (which writes results) and the reports
(which read them). Standard library only at import: no torch, numpy, pandas or pyarrow (the
parquet functions import pyarrow when called), no suite, estimators or reports.

What it defines, each fact once:

* **The tidy row** (:data:`COLUMNS`): one measured number of one cell, with its standard error,
  its status (``ok`` / ``failed`` / ``skipped``, with the error), what labels it (unit, display
  names, the registered claim) and where it came from (run, commit, machine, and the code version
  of the estimator, loss and task that produced it, torch's version). Parameter columns other
  than the core ones (a landscape experiment's ``lr``, a metric benchmark's ``words``) are allowed:
  any column not in :data:`COLUMNS` is a parameter.
* **The table of measures** (:data:`MEASURES`): unit, axis label, which direction is better, kind,
  whether it depends on the device, its domain (values outside it are impossible: flagged, never
  ranked), and whether asv itself measures it (``time_*``, ``peakmem_*``: those rows come from
  asv's result files, every other one from the run files).
* **Verdict codes** of the claim test and its stated false-alarm rate :data:`ALPHA`.
* **Run files**: :func:`write_run` writes one parquet file per run (atomically: written whole to a
  temporary name, then renamed) under ``<results>/runs/``; :func:`read_run` reads one back;
  :func:`run_files` lists them.

>>> from estibench.schema import MEASURES
>>> MEASURES["variance"].unit
'grad^2'
>>> MEASURES["time_estimate"].better
'lower'
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Measure", "MEASURES", "HIGHER", "LOWER", "TASK", "GRADIENT", "SUMMARY", "CLAIM",
           "COST", "CHECKPOINT", "METRICS", "INFO", "LANDSCAPE", "TaskInfo", "get", "lookup",
           "unit", "label", "direction", "better_word", "base_name", "SE_SUFFIX", "INFO_MEASURE",
           "ALPHA", "POWER", "VERDICT_CODES", "VERDICTS", "COLUMNS", "TEXT_COLUMNS",
           "FLOAT_COLUMNS", "STATUSES", "SCHEMA_VERSION", "RUNS_FOLDER", "make_row",
           "in_domain", "write_run", "read_run", "run_files", "run_metadata", "ASV_MEASURED"]

# -- the claim test ----------------------------------------------------------------------------
#: the claim test's false-alarm rate: a correct estimator is called contradicted this often
ALPHA = 1e-3
#: the detectable bias is detected with this probability
POWER = 0.95
#: ``claim_verdict``'s codes
VERDICT_CODES = {"consistent": 1, "inconclusive": 0, "contradicted": -1}
VERDICTS = {code: word for word, code in VERDICT_CODES.items()}

# -- the table of measures --------------------------------------------------------------------
HIGHER = "higher"
LOWER = "lower"
TASK = "task"  # the training task's metric direction
_BETTER = (HIGHER, LOWER, TASK, None)
#: suffix of a standard-error track (``track_variance_se``): same unit as its measure
SE_SUFFIX = "_se"
#: the per-training-task benchmark measure that says which way its metric is better
INFO_MEASURE = "higher_is_better"


@dataclass(frozen=True)
class Measure:
    """One row of the table of measures."""

    name: str
    unit: str  # the asv unit string ("grad^2", "seconds", "bytes", ...)
    label: str  # axis label, without the unit
    better: str | None  # HIGHER, LOWER, TASK or None (not ranked)
    description: str
    kind: str = "gradient"  # gradient | cost | claim | summary | checkpoint | metric | info

    def __post_init__(self):
        if self.better not in _BETTER:
            raise ValueError(f"measure {self.name!r}: better must be one of {_BETTER}, "
                             f"got {self.better!r}")

    def higher_is_better(self, task_higher: bool | None = None) -> bool | None:
        """True/False, or None when not ranked (or ``TASK`` with an unknown task direction)."""
        if self.better == TASK:
            return task_higher
        return {HIGHER: True, LOWER: False}.get(self.better)

    @property
    def axis_label(self) -> str:
        """``label [unit]`` for an axis (the unit left out where it only repeats the name)."""
        if self.unit in _UNITLESS:
            return self.label
        return f"{self.label} [{self.unit}]"


_UNITLESS = {"", "relative", "cosine", "ratio", "tau", "replicates", "z", "p-value", "metric",
             "evaluations", "fraction", "steps", "threshold", "flag", "spearman", "perplexity"}


#: The table. ``[kind]`` starts a section; a row is ``name | unit | better | label |
#: description`` (better ``-``: not ranked); an indented line continues the description above.
_TABLE = """
[gradient]  per (task, estimator, num_samples, device) cell
variance | grad^2 | lower | variance  tr Cov(ĝ) | trace of the covariance of one estimate
bias | relative | lower | relative bias  ‖Eĝ − g‖/‖g‖ | norm of the mean estimate's error over the exact
    gradient's norm, debiased for the noise of the mean
mse | grad^2 | lower | MSE  E‖ĝ − g‖² | mean squared error against the exact gradient
cosine_of_mean | cosine | higher | cosine of the mean estimate | cosine of the mean estimate and the exact gradient
cosine | cosine | higher | mean cosine per estimate | mean cosine of one estimate and the exact gradient
snr | ratio | higher | SNR  ‖Eĝ‖/√tr Cov | signal-to-noise ratio; undefined for a deterministic estimator
work_normalised_variance | grad^2*s | lower | variance × seconds | variance times seconds per estimate
    (Glynn & Whitt 1992)
replicates | replicates | - | replicates R | independent estimates the measures were computed from
[cost]  what an estimate costs
time_estimate | seconds | lower | seconds per estimate | wall-clock of one estimate and its backward (asv timing)
peakmem_estimate | bytes | lower | peak RSS | peak resident memory during one estimate (asv peakmem)
cuda_peakmem | bytes | lower | peak CUDA memory | peak CUDA memory allocated during one estimate
seconds_per_estimate | seconds | lower | seconds per estimate | seconds per estimate as the harness measured it
    (for work-normalised variance)
evaluations | evaluations | lower | f evaluations per estimate | rows of f evaluated per estimate
    (an equal-compute axis)
grad_evaluations | evaluations | lower | gradients of f per estimate | rows of f's input at which one
    estimate takes the gradient of f (a backward pass through f: MuProp 1, double CV and RODEO K,
    relaxations K, REBAR 2K, score function 0), counted apart from the f evaluations
warmup_calls | steps | - | warm-up calls | calls every stateful estimator (learned control variates,
    moving-average baselines) gets on the cell's problem before it is measured, the same on every task
floor_ratio | ratio | lower | time / plain-torch floor | time per estimate over the plain-torch floor's
    on the same task
[claim]  the test of an estimator's unbiasedness claim, per cell
detectable_bias | relative | lower | detectable relative bias (95 % power) | smallest relative bias the claim
    test detects with 95 % power at its false-alarm rate
bias_z | z | - | claim test statistic | test statistic of E[ĝ] = g
bias_p | p-value | - | claim test p-value | p-value of the test of E[ĝ] = g
claim_verdict | flag | - | claim verdict | the claim test's verdict on the registered unbiasedness claim:
    1 consistent, 0 inconclusive, -1 contradicted
claims_unbiased | flag | - | claims unbiased | 1 when the estimator registers the claim unbiased=True (its
    claim verdict tests that claim), 0 when it claims nothing
bias_target | relative | - | target detectable bias | the detectable relative bias the claim test raises R
    to reach on a task (0.1 toys, 0.25 VAEs) within its budget
reference_error | relative | - | reference relative error | the reference gradient's own standard error
    sqrt(tr C)/||g|| (0: exact; else an unbiased estimate, where the exact gradient is out of reach), per task,
    with the reference's kind
run_started | unix seconds | - | run started | when the asv run that measured the cell started (unix
    time): which run a cell came from when runs accumulate
[summary]  alignment summary per (training task, method, seed)
final_metric_equal_steps | metric | task | final metric, equal steps | the headline metric after the same
    number of steps
final_metric_equal_time | metric | task | final metric, equal time | the headline metric after the same
    wall-clock
kendall_tau | tau | higher | Kendall τ (loss, metric) | rank correlation of loss and metric over checkpoints;
    +1: a lower loss came with a better metric
metric_gain_per_second | metric/s | higher | metric gain per second | improvement of the metric per second
    of training (signed: positive is better)
seconds_per_update | seconds | lower | seconds per update | wall-clock per update
evaluations_per_update | evaluations | lower | evaluations per update | task-loss evaluations per update
[checkpoint]  checkpoint and end-of-training measures of the training tasks
loss | loss | lower | training loss | the training loss at a checkpoint
metric | metric | task | metric | the task's headline metric at a checkpoint
nll | nats | lower | NLL | negative log-likelihood per token
nontermination | fraction | lower | non-termination | fraction of greedy decodes that never end
step | steps | - | step | optimiser steps taken
seconds | seconds | - | seconds | training wall-clock so far
best_threshold | threshold | - | best threshold | decision threshold chosen on validation data
avg_length | tokens | - | mean length | mean length of greedy decodes
perplexity | perplexity | - | codebook perplexity | perplexity of code usage
elbo | nats | higher | ELBO | evidence lower bound per image (train_elbo, test_elbo: on which images)
log_px | nats | higher | log p(x) | log-likelihood per image: exact where the latents can be enumerated, else
    an importance-weighted (IWAE) bound with a stated number of samples
iwae_se | nats | - | IWAE Monte Carlo s.e. | Monte Carlo standard error of an importance-weighted log p(x)
    estimate on its images (delta method), not the spread over images
grad_variance | grad^2 | lower | encoder-gradient variance tr Cov(ĝ) | trace of the covariance of R
    estimates of the encoder's gradient on a fixed batch at a checkpoint
f_evaluations | evaluations | - | cumulative f evaluations | f evaluations per training image so far (the
    leading sample count of every call of f): the equal-cost axis of training
samples_per_estimate | samples | - | samples per estimate | samples an estimator draws per estimate under the
    equal-evaluation rule of a training task
[metric]  metrics, also inside names such as valid_f1_micro_at_best_threshold
f1_micro | metric | higher | micro F1 | micro-averaged F1
f1_macro | metric | higher | macro F1 | macro-averaged F1
accuracy | metric | higher | accuracy | fraction correct
edit_distance | metric | lower | edit distance | normalised Levenshtein distance
bleu | metric | higher | BLEU | sacreBLEU
wmd | metric | lower | WMD | word mover's distance
wrd | metric | lower | WRD | word rotator's distance
relative_gap | relative | - | relative gap | (approximation - exact) / exact distance of a transport
    approximation: signed (below 0 for a lower bound), not ranked; >= -1 as distances are >= 0
rank_correlation | spearman | higher | rank correlation | Spearman correlation of an approximation with the
    exact distance
[landscape]  landscape probes and experiments (suite/probes.py, suite/landscape.py; issue 15)
steps_to_target | steps | lower | steps to target loss | gradient steps until the exact loss is below the
    experiment's target; the step budget when never reached (censored)
reached_target | fraction | higher | reached target | fraction of seeds whose run reached the target loss
largest_stable_lr | lr | higher | largest stable learning rate | largest learning rate of the grid whose run
    stayed finite and ended below its starting loss
largest_converging_lr | lr | higher | largest converging learning rate | largest learning rate of the grid
    whose run reached the experiment's target loss
smoothness | curvature | - | local smoothness ‖Δg‖/‖Δθ‖ | gradient change over distance moved between
    consecutive iterates (Zhang et al. 2020)
smoothness_upper | curvature | - | smoothness, 90 % quantile | 90 % quantile of the local smoothness in a
    gradient-norm bin
grad_norm | grad | - | gradient norm ‖g‖ | norm of the full gradient where the step started
l0 | curvature | - | L0 | intercept of the fitted envelope smoothness ≤ L0 + L1‖g‖ (quantile regression,
    q = 0.9)
l1 | curvature/grad | - | L1 | slope of the fitted envelope smoothness ≤ L0 + L1‖g‖ (quantile regression,
    q = 0.9)
smoothness_spearman | spearman | - | rank correlation (‖g‖, smoothness) | Spearman correlation of the local
    smoothness with the gradient norm over the steps of training
loss_range | loss | lower | loss range along −g | max − min of the loss over step sizes along the
    gradient direction (Santurkar et al. 2018)
gradient_change_range | grad | lower | gradient-change range along −g | max − min of ‖∇L(θ) − ∇L(θ − ηg)‖
    over step sizes η (Santurkar et al. 2018)
effective_beta | curvature | lower | effective β-smoothness | max over step sizes η of
    ‖∇L(θ) − ∇L(θ − ηg)‖/‖ηg‖ (Santurkar et al. 2018)
activation_norm | activation | - | RMS activation | root mean square of a layer's outputs
weight_gradient_norm | grad | - | weight-gradient norm | Frobenius norm of the gradient of a layer's weight
representation_cosine | cosine | - | cosine of two inputs' representations | mean cosine between the
    representations of independent random inputs at a layer
[info]  per-training-task facts recorded as benchmarks (<TaskPrefix>Info.track_<name>)
higher_is_better | flag | - | higher is better | 1.0 when the training task's headline metric is better
    higher, 0.0 when lower
"""


def _parse(text: str) -> dict[str, Measure]:
    rows: list[list[str]] = []
    kind = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("["):
            kind = line[1:line.index("]")]
        elif line[0].isspace():
            rows[-1][4] += " " + line.strip()
        else:
            name, unit_, better, label_, description = (c.strip() for c in line.split(" | "))
            rows.append([name, unit_, better, label_, description, kind])
    return {r[0]: Measure(r[0], r[1], r[3], None if r[2] == "-" else r[2], r[4], kind=r[5])
            for r in rows}


_ALL = _parse(_TABLE)


def _of_kind(kind: str) -> dict[str, Measure]:
    return {name: m for name, m in _ALL.items() if m.kind == kind}


#: the rows by kind, in table order
GRADIENT = _of_kind("gradient")
COST = _of_kind("cost")
CLAIM = _of_kind("claim")
SUMMARY = _of_kind("summary")
CHECKPOINT = _of_kind("checkpoint")
METRICS = _of_kind("metric")
INFO = _of_kind("info")

#: every measure: name -> :class:`Measure`
MEASURES: dict[str, Measure] = dict(_ALL)

#: name parts that say where a measure was taken, not what it is
_PREFIXES = ("final_", "valid_", "test_", "train_")
_SUFFIXES = ("_at_best_threshold",)


def base_name(measure: str) -> str:
    """``valid_f1_micro_at_best_threshold`` -> ``f1_micro``; ``variance_se`` -> ``variance``
    (the name whose row describes it); unknown names come back unchanged."""
    name = str(measure)
    if name in MEASURES:
        return name
    if name.endswith(SE_SUFFIX) and name[:-len(SE_SUFFIX)] in MEASURES:
        return name[:-len(SE_SUFFIX)]
    stripped, changed = name, True
    while changed:
        changed = False
        for p in _PREFIXES:
            if stripped.startswith(p) and len(stripped) > len(p):
                stripped, changed = stripped[len(p):], True
        for s in _SUFFIXES:
            if stripped.endswith(s) and len(stripped) > len(s):
                stripped, changed = stripped[:-len(s)], True
        if stripped in MEASURES:
            return stripped
    return name


def lookup(measure: str) -> Measure | None:
    """The row describing ``measure`` (after :func:`base_name`), or None when unknown."""
    return MEASURES.get(base_name(measure))


def get(measure: str) -> Measure:
    """The row of ``measure``; a name not in the table gets a row with an unknown unit and
    direction (it is shown, never ranked)."""
    row = lookup(measure)
    if row is not None:
        return row
    return Measure(str(measure), "", str(measure).replace("_", " "), None, "", kind="unknown")


def unit(measure: str) -> str:
    return get(measure).unit


def label(measure: str) -> str:
    """The axis label of ``measure`` (exact rows only keep their own label; a prefixed name like
    ``valid_f1_micro`` is spelled out)."""
    measure = str(measure)
    if measure in MEASURES:
        return MEASURES[measure].label
    return measure.replace("_", " ")


@dataclass(frozen=True)
class TaskInfo:
    """A training task as the report knows it from the results."""

    name: str
    metric: str = "metric"  # what the headline metric is, in words
    higher_is_better: bool | None = None  # None: not in the results


def direction(measure: str, task: TaskInfo | None = None) -> bool | None:
    """True when higher is better, False when lower is, None when unknown or not a ranking
    (``replicates``, ``step``, a threshold, a ``TASK`` measure of a task of unknown direction)."""
    row = lookup(measure)
    if row is None:
        return None
    return row.higher_is_better(task.higher_is_better if task else None)


def better_word(d: bool | None) -> str:
    return {True: HIGHER, False: LOWER}.get(d, "–")


LANDSCAPE = _of_kind("landscape")

#: measures asv itself measures (its ``time_*`` / ``peakmem_*`` benchmarks and the GPU memory
#: track): the reader takes these from asv's result files; every other measure from run files
ASV_MEASURED = frozenset({"time_estimate", "peakmem_estimate", "cuda_peakmem", "time_report",
                          "peakmem_report"})
#: measures whose value depends on the device a cell ran on (the rest are device-independent
#: statistics up to rounding)
_DEVICE_DEPENDENT = frozenset({"time_estimate", "peakmem_estimate", "cuda_peakmem",
                               "seconds_per_estimate", "work_normalised_variance", "floor_ratio",
                               "seconds", "seconds_per_update", "metric_gain_per_second",
                               "final_metric_equal_time"})
#: the values a unit admits: (low, high), inclusive; units not listed admit any finite value
_DOMAINS = {"grad^2": (0.0, math.inf), "relative": (0.0, math.inf), "seconds": (0.0, math.inf),
            "bytes": (0.0, math.inf), "evaluations": (0.0, math.inf),
            "replicates": (0.0, math.inf), "steps": (0.0, math.inf), "ratio": (0.0, math.inf),
            "grad^2*s": (0.0, math.inf), "cosine": (-1.0, 1.0), "p-value": (0.0, 1.0),
            "fraction": (0.0, 1.0), "tau": (-1.0, 1.0), "spearman": (-1.0, 1.0),
            "flag": (-1.0, 1.0), "lr": (0.0, math.inf), "grad": (0.0, math.inf),
            "perplexity": (0.0, math.inf), "unix seconds": (0.0, math.inf)}

#: measures of a unit whose domain they do not share: a signed relative difference
_SIGNED = {"relative_gap": (-1.0, math.inf)}


def device_dependent(measure: str) -> bool:
    """True when ``measure``'s value depends on the device the cell ran on."""
    return base_name(measure) in _DEVICE_DEPENDENT


def in_domain(measure: str, value: float) -> bool:
    """False for a value ``measure`` cannot take: not finite, or outside its unit's domain (a
    negative variance or time, a cosine above 1). Such values are flagged, never ranked."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return False
    low, high = _SIGNED.get(base_name(measure)) or _DOMAINS.get(get(measure).unit, (-math.inf, math.inf))
    return low <= value <= high


# -- the tidy row ------------------------------------------------------------------------------
SCHEMA_VERSION = 1
#: where run files go, under a results folder (beside asv's ``<machine>/`` folders)
RUNS_FOLDER = "runs"
STATUSES = ("ok", "failed", "skipped")
#: the core columns, in order. ``group``: what kind of cell (``gradient``, ``summary``, ``final``,
#: ``curve``, ``info``, ``harness``, ``landscape``, ``other``); ``experiment``: which experiment
#: of its group (a landscape experiment, a metric benchmark), '' when the group has one;
#: ``run``: the run's id; ``run_started``: unix seconds; ``*_name``: display names from the
#: registry (a plugin's own); ``claims_unbiased``: the registered claim (1.0 / 0.0, NaN: none
#: applies); ``*_version``: ``distribution==version#sourcehash`` of the code that produced the row
COLUMNS = ("group", "experiment", "measure", "task", "estimator", "num_samples", "device",
           "method", "seed", "checkpoint", "value", "se", "status", "error", "unit",
           "task_name", "estimator_name", "method_name", "claims_unbiased",
           "estimator_version", "task_version", "loss_version", "torch_version",
           "run", "run_started", "commit", "machine", "machine_id")
FLOAT_COLUMNS = ("value", "se", "claims_unbiased", "run_started")
INT_COLUMNS = ("num_samples", "seed", "checkpoint")
TEXT_COLUMNS = tuple(c for c in COLUMNS if c not in FLOAT_COLUMNS + INT_COLUMNS)
_DEFAULTS = {c: (math.nan if c in FLOAT_COLUMNS else None if c in INT_COLUMNS else "")
             for c in COLUMNS}


def make_row(measure: str, value: float | None, *, status: str = "ok", **fields: Any
             ) -> dict[str, Any]:
    """One tidy row: ``measure`` and ``value`` plus any other column (parameters included).
    The unit defaults to the measure's; a value outside the measure's domain keeps its number
    and the status says so is the reader's job (:func:`in_domain`)."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r}: expected one of {', '.join(STATUSES)}")
    row = dict(_DEFAULTS)
    row.update(fields)
    row["measure"] = str(measure)
    row["status"] = status
    row["value"] = math.nan if value is None or status != "ok" else float(value)
    row["se"] = math.nan if row["se"] is None else float(row["se"])
    if not row["unit"]:
        row["unit"] = get(measure).unit
    return row


def _column_type(pa: Any, name: str, values: list[Any]) -> Any:
    if name in FLOAT_COLUMNS:
        return pa.float64()
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if name in INT_COLUMNS or (present and all(isinstance(v, int) and not isinstance(v, bool)
                                               for v in present)):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            return pa.int64()
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.float64()
    return pa.string()


def _cell(value: Any, kind: Any, pa: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value) and kind != pa.float64()):
        return None
    if kind == pa.string():
        return str(value)
    return value


def write_run(rows: Iterable[Mapping[str, Any]], folder: os.PathLike | str, run: str,
              metadata: Mapping[str, Any] | None = None) -> Path:
    """Write one run's rows to ``<folder>/runs/<run>.parquet`` and return the path. Written whole
    to a temporary name and renamed, so a reader never sees half a file; an existing file of the
    same run is replaced (a run writes its own file only). ``metadata``: JSON-serialisable facts
    of the whole run (settings, machine), kept in the file (:func:`run_metadata`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [dict(r) for r in rows]
    names = list(COLUMNS) + sorted({k for r in rows for k in r if k not in COLUMNS})
    arrays, fields = [], []
    for name in names:
        values = [r.get(name, _DEFAULTS.get(name)) for r in rows]
        kind = _column_type(pa, name, values)
        arrays.append(pa.array([_cell(v, kind, pa) for v in values], type=kind))
        fields.append(pa.field(name, kind))
    meta = {"estibench_schema": str(SCHEMA_VERSION), "run": run,
            "metadata": json.dumps(dict(metadata or {}), default=str, allow_nan=True)}
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=meta))
    path = Path(folder) / RUNS_FOLDER / f"{run}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, partial)
    os.replace(partial, path)
    return path


def run_files(folder: os.PathLike | str) -> list[Path]:
    """Every run file under ``<folder>/runs`` (sorted by name; temporary files left out)."""
    root = Path(folder) / RUNS_FOLDER
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*.parquet") if not p.name.startswith("."))


def run_metadata(path: os.PathLike | str) -> dict[str, Any]:
    """The run-wide facts :func:`write_run` stored (raises on a file that is not a run file)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    if meta.get(b"estibench_schema") is None:
        raise ValueError(f"{path} is not an estibench run file (no schema version)")
    return json.loads(meta.get(b"metadata", b"{}").decode())


def read_run(path: os.PathLike | str, columns: Iterable[str] | None = None) -> Any:
    """One run file as a pandas DataFrame (``columns``: only these, where present); raises
    ``ValueError`` naming the file when it is not a run file of a schema this code reads."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    version = (schema.metadata or {}).get(b"estibench_schema")
    if version is None:
        raise ValueError(f"{path} is not an estibench run file (no schema version)")
    if int(version) > SCHEMA_VERSION:
        raise ValueError(f"{path}: results schema {int(version)}, newer than this code's "
                         f"{SCHEMA_VERSION}; upgrade estibench to read it")
    import pandas as pd
    import pyarrow as pa

    wanted = None if columns is None else [c for c in columns if c in schema.names]
    ints = {pa.int64(): pd.Int64Dtype(), pa.string(): pd.StringDtype()}
    return pq.read_table(path, columns=wanted).to_pandas(types_mapper=ints.get)
