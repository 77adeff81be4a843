"""THE table of measures: for every measure estibench records, its name, asv unit, axis label,
which direction is better, and what it is.

This module imports nothing but the standard library (no torch, pandas, suite or estimators),
so the asv harness, the benchmark modules, the training tasks and the reports all read the same
facts from it::

    from reports.measures import MEASURES        # name -> Measure
    MEASURES["variance"].unit                    # "grad^2" (the asv unit string)
    MEASURES["time_estimate"].better             # "lower"

``Measure.better`` is one of :data:`HIGHER`, :data:`LOWER`, :data:`TASK` (the direction of the
training task's headline metric, read per task from the results: the asv benchmark
``<TaskPrefix>Info.track_higher_is_better``, 1.0 or 0.0) or ``None`` (not a ranking: counts,
thresholds, test statistics). A task whose direction is not in the results (results written before
that benchmark existed) is not ranked on its ``TASK`` measures; the report says so.

Gradient measures are defined in ``suite/measure.py`` (variance = tr Cov(ĝ), relative bias, MSE,
cosines, SNR, variance x seconds); the alignment summary measures in ``suite/training.py``
(Kendall tau oriented so that +1 means "a lower loss came with a better metric", metric gain signed
so that positive is an improvement).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Measure", "MEASURES", "HIGHER", "LOWER", "TASK", "GRADIENT", "SUMMARY", "CLAIM",
           "COST", "CHECKPOINT", "METRICS", "INFO", "TaskInfo", "get", "lookup", "unit", "label",
           "direction", "better_word", "base_name", "SE_SUFFIX", "INFO_MEASURE"]

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
[metric]  metrics, also inside names such as valid_f1_micro_at_best_threshold
f1_micro | metric | higher | micro F1 | micro-averaged F1
f1_macro | metric | higher | macro F1 | macro-averaged F1
accuracy | metric | higher | accuracy | fraction correct
edit_distance | metric | lower | edit distance | normalised Levenshtein distance
bleu | metric | higher | BLEU | sacreBLEU
wmd | metric | lower | WMD | word mover's distance
wrd | metric | lower | WRD | word rotator's distance
relative_gap | relative | lower | relative gap | relative gap of a transport approximation to the exact
    distance
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
