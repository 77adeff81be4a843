"""Sequence metrics: normalised edit distance (rapidfuzz) and BLEU (sacrebleu)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import register_metric
from ..checks import choice
from .base import Metric


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


@register_metric
class EditDistance(Metric):
    """Token-level normalised Levenshtein distance; a str element is a sequence of characters."""

    name = "edit_distance"
    higher_is_better = False
    reference = "Levenshtein 1966; rapidfuzz Levenshtein.normalized_distance"

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


@register_metric
class BLEU(Metric):
    """sacrebleu BLEU with ``tokenize="none"`` (the input is already tokenised; a str element is
    taken as a whitespace-tokenised sentence). ``reduction="mean"`` gives CORPUS BLEU (n-gram counts
    pooled over the corpus, as BLEU is defined), not the mean of sentence BLEUs; ``"none"`` gives
    sentence BLEU with effective-order smoothing."""

    name = "bleu"
    higher_is_better = True
    reference = "Papineni et al. 2002, BLEU; Post 2018, sacreBLEU"

    def __init__(self, smooth_method: str = "exp", lowercase: bool = False,
                 reduction: str = "mean"):
        super().__init__(reduction)
        from sacrebleu.metrics import BLEU as SacreBLEU
        choice("bleu", "smooth_method", smooth_method, tuple(SacreBLEU.SMOOTH_DEFAULTS))
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
