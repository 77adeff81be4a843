"""Classification metrics: F1 (micro, macro) at a threshold, the best threshold on validation
data, and accuracy."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import register_metric
from ..checks import choice, integer, number
from .base import Metric, _binary, _numpy

AVERAGES = ("micro", "macro")

def _scores_targets(scores: Any, targets: Any, owner: str) -> tuple[np.ndarray, np.ndarray]:
    s = _numpy(scores, f"{owner}: scores")
    t = _binary(targets, f"{owner}: targets")
    if s.ndim != 2 or s.shape != t.shape:
        raise ValueError(f"{owner}: expected scores [N, C] and targets [N, C] of the same shape, "
                         f"got scores {list(s.shape)} and targets {list(t.shape)}")
    if s.shape[0] == 0:
        raise ValueError(f"{owner}: got 0 examples; expected at least one")
    if (not np.issubdtype(s.dtype, np.number) and s.dtype != bool) \
            or np.issubdtype(s.dtype, np.complexfloating):
        raise TypeError(f"{owner}: scores must be real numbers, got dtype {s.dtype}")
    if np.isnan(s.astype(np.float64)).any():
        raise ValueError(f"{owner}: scores contain NaN; expected real scores (±inf is allowed)")
    return s, t


class F1(Metric):
    """F1 of the multi-label predictions ``score > threshold``, micro or macro averaged."""

    def __init__(self, average: str = "micro", threshold: float = 0.0, reduction: str = "mean"):
        self.name = f"f1_{choice('f1', 'average', average, AVERAGES)}"
        if reduction == "none":
            raise ValueError(f"{self.name}: reduction='none' is not available: F1 is a "
                             f"corpus-level metric (counts are pooled before dividing); use "
                             f"reduction='mean'")
        super().__init__(reduction)
        self.average = average
        # a NaN threshold would predict nothing, silently: refused with the other non-finite ones
        self.threshold = number(self.name, "threshold", threshold)

    def corpus(self, scores: Any, targets: Any) -> float:
        s, t = _scores_targets(scores, targets, self.name)
        p = s > self.threshold
        return float(_f1(t.sum(0), (t & p).sum(0), (~t & p).sum(0), self.average))


def _f1(positives: np.ndarray, tp: np.ndarray, fp: np.ndarray, average: str) -> np.ndarray:
    """F1 = 2TP / (2TP + FP + FN) from per-class counts [..., C]; 0 where nothing is predicted or
    true (``zero_division=0``). Counted here rather than by ``sklearn.metrics.f1_score``, which
    reads a one-class indicator [N, 1] as binary labels and then "micro-averages" into accuracy."""
    fn = positives - tp
    if average == "micro":
        tp, fp, fn = tp.sum(-1), fp.sum(-1), fn.sum(-1)
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(np.shape(denom)), where=denom > 0)
    return f1.mean(-1) if average == "macro" else f1


@register_metric("f1_micro", higher_is_better=True,
                 description="micro-averaged F1 of the multi-label predictions score > threshold",
                 reference="van Rijsbergen 1979; as scikit-learn f1_score(average='micro')")
def f1_micro(threshold: float = 0.0, reduction: str = "mean") -> F1:
    return F1("micro", threshold, reduction)


@register_metric("f1_macro", higher_is_better=True,
                 description="macro-averaged (per-class mean) F1 of the predictions "
                             "score > threshold",
                 reference="van Rijsbergen 1979; as scikit-learn f1_score(average='macro')")
def f1_macro(threshold: float = 0.0, reduction: str = "mean") -> F1:
    return F1("macro", threshold, reduction)


def best_threshold(scores: Any, targets: Any, average: str = "micro",
                   max_candidates: int = 2048) -> tuple[float, float]:
    """The global threshold ``t`` maximising F1 of ``score > t`` on (validation) data.

    Candidates are the midpoints between consecutive distinct scores plus one below the smallest
    (predict everything) and one above the largest (predict nothing), thinned to at most
    ``max_candidates`` by quantiles. All candidates are scored at once from sorted per-class
    scores (``TP_c(t)`` = positives of class c scoring above t, by binary search), so the cost is
    ``O(NC log N + M C log N)``, not M calls of ``f1_score``. Ties go to the smallest threshold.
    Returns ``(threshold, f1)``; the F1 is that of ``get_metric(f"f1_{average}",
    threshold=threshold)`` on the same data.
    """
    choice("best_threshold", "average", average, AVERAGES)
    integer("best_threshold", "max_candidates", max_candidates, minimum=2)
    s, t = _scores_targets(scores, targets, "best_threshold")
    s = s.astype(np.float64)
    values = np.unique(s[np.isfinite(s)])
    if values.size == 0:
        values = np.zeros(1)
    inner = (values[:-1] + values[1:]) / 2
    if inner.size > max_candidates - 2:
        inner = np.unique(np.quantile(inner, np.linspace(0, 1, max_candidates - 2)))
    cand = np.concatenate([[values[0] - 1.0], inner, [values[-1]]])

    tp = np.empty((cand.size, s.shape[1]))
    fp = np.empty_like(tp)
    for c in range(s.shape[1]):  # loop over classes (not examples): C binary searches of M points
        pos, neg = np.sort(s[t[:, c], c]), np.sort(s[~t[:, c], c])
        tp[:, c] = pos.size - np.searchsorted(pos, cand, side="right")
        fp[:, c] = neg.size - np.searchsorted(neg, cand, side="right")
    f1 = _f1(t.sum(0), tp, fp, average)
    best = int(np.argmax(f1))
    return float(cand[best]), float(f1[best])


@register_metric
class Accuracy(Metric):
    """``mean_n [argmax_c s_nc == y_n]``, or ``mean_n [ŷ_n == y_n]`` for predicted labels."""

    name = "accuracy"
    higher_is_better = True
    reference = "standard classification accuracy"

    def per_example(self, predictions: Any, targets: Any) -> np.ndarray:
        p = _numpy(predictions, "accuracy: predictions")
        y = _numpy(targets, "accuracy: targets")
        if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
            raise ValueError(f"accuracy: targets must be class indices [N] of an integer dtype, "
                             f"got shape {list(y.shape)} dtype {y.dtype}")
        if p.ndim == 2:
            if not (np.issubdtype(p.dtype, np.number) or p.dtype == bool) \
                    or np.issubdtype(p.dtype, np.complexfloating):
                raise TypeError(f"accuracy: scores must be real numbers, got dtype {p.dtype}")
            if np.isnan(p.astype(np.float64)).any():
                raise ValueError("accuracy: scores contain NaN; expected real scores")
            p = p.argmax(1)
        elif p.ndim != 1 or not (np.issubdtype(p.dtype, np.integer) or p.dtype == bool):
            raise ValueError(f"accuracy: predictions must be scores [N, C] or class indices [N] "
                             f"of an integer dtype, got shape {list(p.shape)} dtype {p.dtype}")
        if p.shape[0] != y.shape[0]:
            raise ValueError(f"accuracy: {p.shape[0]} predictions but {y.shape[0]} targets; "
                             f"expected the same number of examples")
        if y.shape[0] == 0:
            raise ValueError("accuracy: got 0 examples; expected at least one")
        return (p == y).astype(np.float64)
