"""asv benchmarks for the landscape experiments (issue 15; :mod:`suite.landscape`).

Each experiment runs once per asv run, in the ``setup_cache`` its classes share; the tracks read
the numbers: the mean over :data:`suite.landscape.SEEDS` and, as ``track_<m>_se``, its standard
error (sd / √seeds). A cell where some seed's value is undefined (the run diverged before that
checkpoint) is NaN, which asv shows as n/a.

* ``LandscapeClipping`` (gradient, rule, lr): ``steps_to_target`` (censored at the budget) and
  the fraction of seeds that ``reached_target``.
* ``LandscapeClippingLR`` (gradient, rule): ``largest_stable_lr``, ``largest_converging_lr``.
* ``LandscapeClippingSmoothness`` (source, bin) and ``LandscapeBatchNormSmoothness`` (source,
  bin): the local smoothness against the gradient norm in equal-count bins (pooled over seeds):
  ``grad_norm``, ``smoothness`` (median), ``smoothness_upper`` (90 % quantile).
* ``LandscapeClippingFit`` (source) and ``LandscapeBatchNormFit`` (source): the fitted ``l0``,
  ``l1`` of ``smoothness ≤ L0 + L1·||g||`` and ``smoothness_spearman``, per seed, mean ± se.
* ``LandscapeBatchNorm`` (net, lr, step): the probes along training: ``loss``, ``grad_norm``,
  ``smoothness``, ``loss_range``, ``gradient_change_range``, ``effective_beta``.
* ``LandscapeBatchNormLR`` (net): ``largest_stable_lr``, ``largest_converging_lr``.
* ``LandscapeInit`` (activation, init, layer): ``activation_norm``, ``weight_gradient_norm``,
  ``representation_cosine``.
"""
from __future__ import annotations

import math

from reports.measures import MEASURES
from suite import landscape as L
from suite.benchutil import make_track


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


def _add_tracks(cls, keys, read) -> None:
    """``track_<key>`` (mean) and ``track_<key>_se`` on ``cls`` for each key."""
    for key in keys:
        unit = MEASURES[key].unit
        setattr(cls, f"track_{key}", make_track(key, unit, lambda self, k, *a: read(self, k, *a)[0]))
        setattr(cls, f"track_{key}_se", make_track(f"{key}_se", unit,
                                                   lambda self, k, *a: read(self, k[:-3], *a)[1]))


# -- clipping ------------------------------------------------------------------------------------
class _Clipping:
    timeout = 300

    def setup_cache(self):
        return L.clipping_experiment()

    setup_cache.timeout = 600


class LandscapeClipping(_Clipping):
    params = [list(L.CLIP_GRADIENTS), list(L.CLIP_RULES), list(L.CLIP_LRS)]
    param_names = ["gradient", "rule", "lr"]

    def read(self, key, cache, gradient, rule, lr):
        return _mean_se([cache["runs"][(gradient, rule, lr, s)][key] for s in L.SEEDS])


_add_tracks(LandscapeClipping, ["steps_to_target", "reached_target"], LandscapeClipping.read)


class LandscapeClippingLR(_Clipping):
    params = [list(L.CLIP_GRADIENTS), list(L.CLIP_RULES)]
    param_names = ["gradient", "rule"]

    def read(self, key, cache, gradient, rule):
        return _mean_se([cache["largest"][(gradient, rule, s)][key] for s in L.SEEDS])


_add_tracks(LandscapeClippingLR, ["largest_stable_lr", "largest_converging_lr"],
            LandscapeClippingLR.read)

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


_add_tracks(LandscapeClippingFit, ["l0", "l1", "smoothness_spearman"], LandscapeClippingFit.read)


# -- BatchNorm -----------------------------------------------------------------------------------
class _BatchNorm:
    timeout = 300

    def setup_cache(self):
        return L.batchnorm_experiment()

    setup_cache.timeout = 600


class LandscapeBatchNorm(_BatchNorm):
    params = [list(L.BN_NETS), list(L.BN_LRS), list(L.BN_CHECKPOINTS)]
    param_names = ["net", "lr", "step"]

    def read(self, key, cache, net, lr, step):
        rows = [cache["curves"][(net, lr, s)].get(step, {}) for s in L.SEEDS]
        return _mean_se([row.get(key, math.nan) for row in rows])


_add_tracks(LandscapeBatchNorm, ["loss", "grad_norm", "smoothness", "loss_range",
                                 "gradient_change_range", "effective_beta"],
            LandscapeBatchNorm.read)


class LandscapeBatchNormLR(_BatchNorm):
    params = [list(L.BN_NETS)]
    param_names = ["net"]

    def read(self, key, cache, net):
        return _mean_se([cache["largest"][(net, s)][key] for s in L.SEEDS])


_add_tracks(LandscapeBatchNormLR, ["largest_stable_lr", "largest_converging_lr"],
            LandscapeBatchNormLR.read)


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


_add_tracks(LandscapeBatchNormFit, ["l0", "l1", "smoothness_spearman"], LandscapeBatchNormFit.read)

for _cls in (LandscapeClippingSmoothness, LandscapeBatchNormSmoothness):
    for _key in ("grad_norm", "smoothness", "smoothness_upper"):
        setattr(_cls, f"track_{_key}", make_track(_key, MEASURES[_key].unit, _cls.read))


# -- initialisation ------------------------------------------------------------------------------
_INIT_KEYS = {"activation_norm": "activation_norm", "weight_gradient_norm": "gradient_norm",
              "representation_cosine": "cosine"}


class _Init:
    timeout = 300

    def setup_cache(self):
        return L.init_experiment()

    setup_cache.timeout = 600


class LandscapeInit(_Init):
    params = [list(L.ACTIVATIONS), list(L.INITS), list(L.INIT_LAYERS)]
    param_names = ["activation", "init", "layer"]

    def read(self, key, cache, activation, init, layer):
        return _mean_se([cache["profiles"][(activation, init, s)][_INIT_KEYS[key]][layer - 1]
                         for s in L.SEEDS])


_add_tracks(LandscapeInit, list(_INIT_KEYS), LandscapeInit.read)
