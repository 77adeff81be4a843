"""asv benchmarks for the landscape experiments (issue 15; :mod:`suite.landscape`).

Each experiment runs once per asv run, in the ``setup_cache`` its classes share (reused from disk
on the same code and machine, :func:`suite.benchutil.disk_cached`); the first of them computes
every experiment missing from the disk cache at once, one unit of :mod:`suite.executor` per
experiment (see :func:`_computed`). Numbers are the mean over
:data:`suite.landscape.SEEDS` and, as ``track_<m>_se``, its standard error (sd / √seeds). A cell
where some seed's value is undefined (the run diverged before that checkpoint) is NaN (n/a).

asv tracks (one process per cell) the experiments' headline numbers, the means of:

* ``LandscapeClippingLR`` (gradient, rule) and ``LandscapeBatchNormLR`` (net):
  ``largest_stable_lr``, ``largest_converging_lr``;
* ``LandscapeClippingFit`` (source) and ``LandscapeBatchNormFit`` (source): the fitted ``l0``,
  ``l1`` of ``smoothness ≤ L0 + L1·||g||`` and ``smoothness_spearman``, per seed.

The experiment's run file (:mod:`suite.results`, group ``landscape``, experiment = the class
name, the class's parameters as columns) holds every number of every class below, tracked or
not, each mean with its standard error as its row's ``se``; untracked, it adds the curves:

* ``LandscapeClipping`` (gradient, rule, lr): ``steps_to_target`` (censored at the budget) and
  the fraction of seeds that ``reached_target``.
* ``LandscapeClippingSmoothness`` (source, bin) and ``LandscapeBatchNormSmoothness`` (source,
  bin): the local smoothness against the gradient norm in equal-count bins (pooled over seeds):
  ``grad_norm``, ``smoothness`` (median), ``smoothness_upper`` (90 % quantile).
* ``LandscapeBatchNorm`` (net, lr, step): the probes along training: ``loss``, ``grad_norm``,
  ``smoothness``, ``loss_range``, ``gradient_change_range``, ``effective_beta``.
* ``LandscapeInit`` (activation, init, layer): ``activation_norm``, ``weight_gradient_norm``,
  ``representation_cosine``.
"""
from __future__ import annotations

import itertools
import math
import time

from estibench.schema import MEASURES
from estibench.settings import current
from suite import landscape as L
from suite import results
from suite.benchutil import disk_cached, make_track


def _mean_se(values) -> tuple[float, float]:
    values = [float(v) for v in values]
    if not values or not all(math.isfinite(v) for v in values):
        return math.nan, math.nan
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, sd / math.sqrt(n)


#: per experiment: [(class, keys, read, tracked, se)]: every number it reports; ``tracked``
#: says whether asv tracks the means (a cell each) too; the run file holds them all
_NUMBERS: dict[str, list] = {}


def _add(cls, experiment: str, keys, read, tracked: bool, se: bool = True) -> None:
    """Declare ``cls``'s numbers ``keys`` (``read(self, key, cache, *params)`` gives (mean, se)
    when ``se``, else the value): asv ``track_<key>`` methods when ``tracked``; every one of
    them, with its standard error, goes to the experiment's run file."""
    _NUMBERS.setdefault(experiment, []).append((cls, list(keys), read, tracked, se))
    if tracked:
        for key in keys:
            setattr(cls, f"track_{key}", make_track(
                key, MEASURES[key].unit,
                (lambda self, k, *a: read(self, k, *a)[0]) if se else read))


_MISSING = object()


def _cached(name: str, settings, value=_MISSING):
    return disk_cached(f"landscape-{name.lower()}", lambda: value, computation="landscape",
                       settings=settings, keep=lambda v: v is not _MISSING)


def _computed(name: str, compute=None) -> dict:
    """What an experiment's ``setup_cache`` returns: the experiment, from the disk cache when
    the code is unchanged; its run file written.

    The first of the three ``setup_cache`` to run computes every experiment missing from the
    disk cache at once, one unit of :mod:`suite.executor` each (on every usable core), and
    caches each; the other two then read theirs from the cache. With the cache off each
    computes its own experiment only."""
    from suite.executor import Failed, run_units

    started, settings = time.time(), current()
    cache = _cached(name, settings)
    if cache is _MISSING:
        names = [n for n in L.EXPERIMENTS if n == name or (
            settings.setup_cache.strip().lower() not in ("off", "0", "no")
            and _cached(n, settings) is _MISSING)]
        outcomes = run_units(L.run_experiment, [(n, n) for n in names], settings)
        if isinstance(outcomes[name], Failed):
            raise RuntimeError(f"landscape experiment {name} failed: {outcomes[name].error}\n"
                               f"{outcomes[name].traceback}")
        for n, outcome in outcomes.items():
            if not isinstance(outcome, Failed):
                _cached(n, settings, outcome)
        cache = outcomes[name]
    results.write(run_rows(name, cache), f"landscape-{name.lower()}", started, settings)
    return cache


def run_rows(name: str, cache: dict) -> list[dict]:
    """Every number of experiment ``name`` (:data:`_NUMBERS`) as run-file rows."""
    rows = []
    for cls, keys, read, _tracked, se in _NUMBERS.get(name, []):
        for combo in itertools.product(*cls.params):
            params = dict(zip(cls.param_names, combo))
            for key in keys:
                got = read(None, key, cache, *combo)
                value, error = (got[0], got[1]) if se else (got, None)
                rows.append(results.landscape_row(cls.__name__, params, key, value, error))
    return rows


# -- clipping ------------------------------------------------------------------------------------
class _Clipping:
    timeout = 300

    def setup_cache(self):
        return _computed("Clipping")

    setup_cache.timeout = 600


class LandscapeClipping(_Clipping):
    params = [list(L.CLIP_GRADIENTS), list(L.CLIP_RULES), list(L.CLIP_LRS)]
    param_names = ["gradient", "rule", "lr"]

    def read(self, key, cache, gradient, rule, lr):
        return _mean_se([cache["runs"][(gradient, rule, lr, s)][key] for s in L.SEEDS])


_add(LandscapeClipping, "Clipping", ["steps_to_target", "reached_target"], LandscapeClipping.read,
     tracked=False)


class LandscapeClippingLR(_Clipping):
    params = [list(L.CLIP_GRADIENTS), list(L.CLIP_RULES)]
    param_names = ["gradient", "rule"]

    def read(self, key, cache, gradient, rule):
        return _mean_se([cache["largest"][(gradient, rule, s)][key] for s in L.SEEDS])


_add(LandscapeClippingLR, "Clipping", ["largest_stable_lr", "largest_converging_lr"],
     LandscapeClippingLR.read, tracked=True)

_BINS = list(range(L.SMOOTHNESS_BINS))


def _bin_value(summary, key, b) -> float:
    return float(summary["bins"][b][key]) if b < len(summary["bins"]) else math.nan


def _fit_read(summary, key):
    if key == "smoothness_spearman":
        return _mean_se(summary["spearman"].values())
    return _mean_se([fit[0 if key == "l0" else 1] for fit in summary["fit"].values()])


class LandscapeClippingSmoothness(_Clipping):
    params = [["clipping_exact"], _BINS]
    param_names = ["source", "bin"]

    def read(self, key, cache, source, b):
        return _bin_value(cache["smoothness"], key, b)


class LandscapeClippingFit(_Clipping):
    params = [["clipping_exact"]]
    param_names = ["source"]

    def read(self, key, cache, source):
        return _fit_read(cache["smoothness"], key)


_add(LandscapeClippingFit, "Clipping", ["l0", "l1", "smoothness_spearman"], LandscapeClippingFit.read,
     tracked=True)


# -- BatchNorm -----------------------------------------------------------------------------------
class _BatchNorm:
    timeout = 300

    def setup_cache(self):
        return _computed("BatchNorm")

    setup_cache.timeout = 600


class LandscapeBatchNorm(_BatchNorm):
    params = [list(L.BN_NETS), list(L.BN_LRS), list(L.BN_CHECKPOINTS)]
    param_names = ["net", "lr", "step"]

    def read(self, key, cache, net, lr, step):
        rows = [cache["curves"][(net, lr, s)].get(step, {}) for s in L.SEEDS]
        return _mean_se([row.get(key, math.nan) for row in rows])


_add(LandscapeBatchNorm, "BatchNorm", ["loss", "grad_norm", "smoothness", "loss_range",
                                       "gradient_change_range", "effective_beta"],
     LandscapeBatchNorm.read, tracked=False)


class LandscapeBatchNormLR(_BatchNorm):
    params = [list(L.BN_NETS)]
    param_names = ["net"]

    def read(self, key, cache, net):
        return _mean_se([cache["largest"][(net, s)][key] for s in L.SEEDS])


_add(LandscapeBatchNormLR, "BatchNorm", ["largest_stable_lr", "largest_converging_lr"],
     LandscapeBatchNormLR.read, tracked=True)


class LandscapeBatchNormSmoothness(_BatchNorm):
    params = [[f"mlp_{n}" for n in L.BN_NETS], _BINS]
    param_names = ["source", "bin"]

    def read(self, key, cache, source, b):
        return _bin_value(cache["smoothness"][source[len("mlp_"):]], key, b)


class LandscapeBatchNormFit(_BatchNorm):
    params = [[f"mlp_{n}" for n in L.BN_NETS]]
    param_names = ["source"]

    def read(self, key, cache, source):
        return _fit_read(cache["smoothness"][source[len("mlp_"):]], key)


_add(LandscapeBatchNormFit, "BatchNorm", ["l0", "l1", "smoothness_spearman"], LandscapeBatchNormFit.read,
     tracked=True)

for _cls, _name in ((LandscapeClippingSmoothness, "Clipping"),
                   (LandscapeBatchNormSmoothness, "BatchNorm")):
    _add(_cls, _name, ["grad_norm", "smoothness", "smoothness_upper"], _cls.read, tracked=False,
         se=False)


# -- initialisation ------------------------------------------------------------------------------
_INIT_KEYS = {"activation_norm": "activation_norm", "weight_gradient_norm": "gradient_norm",
              "representation_cosine": "cosine"}


class _Init:
    timeout = 300

    def setup_cache(self):
        return _computed("Init")

    setup_cache.timeout = 600


class LandscapeInit(_Init):
    params = [list(L.ACTIVATIONS), list(L.INITS), list(L.INIT_LAYERS)]
    param_names = ["activation", "init", "layer"]

    def read(self, key, cache, activation, init, layer):
        return _mean_se([cache["profiles"][(activation, init, s)][_INIT_KEYS[key]][layer - 1]
                         for s in L.SEEDS])


_add(LandscapeInit, "Init", list(_INIT_KEYS), LandscapeInit.read, tracked=False)
