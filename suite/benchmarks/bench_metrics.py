"""asv benchmarks: speed and tightness of the bag-of-word-vector distances (WMD, WRD).

Grid: metric in {wmd, wrd} x method in {emd, sinkhorn, centroid, relaxed} x sentence length in
{8, 32} words. Sentences are drawn with a fixed seed from the 20,000 most frequent alphabetic
words of GloVe 6B and given to the metrics as their [n, 50] GloVe vectors (the same distance as
the words: a repeated word is two rows of equal mass), so each timing is the transport work and
not the one-off loading of the 400k-word vocabulary; ``TimeGloveLookup`` times the lookup.

* ``TimeTransportPair.time_pair``: one pair per call (the B=1 path).
* ``TimeTransportBatch.time_batch``: a batch of 64 pairs per call. ``emd`` and ``sinkhorn`` solve
  each pair on its own; ``centroid`` and ``relaxed`` run the batch at once (zero-padded).
* ``Gap.track_relative_gap``: mean over 64 pairs of ``(approx - exact) / exact`` (exact = emd);
  negative for the lower bounds, positive for Sinkhorn (its default ``reg=0.05``).
  ``Gap.track_rank_correlation``: Spearman correlation of approx and exact over the 64 pairs,
  which is what matters when the distance only ranks candidates.

All data (and every distance the tracks need) is built once per run in ``setup_cache``
(:func:`setup_data`), which writes the gaps to the run's ``metrics`` run file (group ``other``,
experiment ``Gap``, see :mod:`suite.results`); nothing but imports happens at module import.
"""
from __future__ import annotations

import numpy as np

# POT (and the scipy, scikit-learn and pandas it pulls in) is NOT imported here: asv's
# forkserver forks one process per benchmark cell from a parent that has imported every suite
# module, and a parent holding POT made each of the suite's thousands of cells ~27 ms slower
# (measured: 500 trivial cells, 17.5 s -> 31 s). The few timed cells here import it in setup.
import estimators
from estibench.schema import MEASURES
from suite.benchutil import Timed

METRICS = ["wmd", "wrd"]
METHODS = ["emd", "sinkhorn", "centroid", "relaxed"]
APPROXIMATIONS = ["sinkhorn", "centroid", "relaxed"]
LENGTHS = [8, 32]
BATCH = 64
VOCABULARY = 20000
SEED = 0


def make_data():
    """{length: (sentences_a, sentences_b, vectors_a, vectors_b)}, per (metric, method, length)
    the 64 distances, and per (metric, approximation, length) the gaps ``Gap`` tracks."""
    from estimators.metrics import glove_vectors, glove_vocabulary
    vocabulary = [w for w in glove_vocabulary()[:VOCABULARY] if w.isalpha()]
    rng = np.random.default_rng(SEED)
    data = {}
    for length in LENGTHS:
        sentences = [[vocabulary[i] for i in rng.integers(0, len(vocabulary), length)]
                     for _ in range(2 * BATCH)]
        vectors = [glove_vectors(s) for s in sentences]
        data[length] = (sentences[:BATCH], sentences[BATCH:], vectors[:BATCH], vectors[BATCH:])
    distances = {}
    for metric in METRICS:
        for method in METHODS:
            fn = estimators.get_metric(metric, method=method, reduction="none")
            for length in LENGTHS:
                _, _, a, b = data[length]
                distances[metric, method, length] = fn(a, b)
    return data, distances, _gaps(distances)


def setup_data():
    """:func:`make_data`, with the gaps written to this run's ``metrics`` run file."""
    import time

    from suite import results

    started = time.time()
    data = make_data()
    rows = [results.other_row("Gap", {"metric": metric, "method": method, "words": words},
                              measure, value)
            for (metric, method, words), pair in data[2].items()
            for measure, value in zip(("relative_gap", "rank_correlation"), pair)]
    results.write(rows, "metrics", started)
    return data


def _gaps(distances) -> dict:
    """(metric, approximation, length) -> (mean relative gap, Spearman correlation) against the
    exact distance, computed once (each Gap cell importing scipy took ~0.45 s)."""
    import scipy.stats

    out = {}
    for metric in METRICS:
        for method in APPROXIMATIONS:
            for length in LENGTHS:
                exact = distances[metric, "emd", length]
                approx = distances[metric, method, length]
                out[metric, method, length] = (
                    float(np.mean((approx - exact) / exact)),
                    float(scipy.stats.spearmanr(approx, exact).statistic))
    return out


class _Timed(Timed):
    params = (METRICS, METHODS, LENGTHS)
    param_names = ["metric", "method", "words"]
    timeout = 120
    setup_cache = staticmethod(setup_data)

    def setup(self, cache, metric, method, words):
        _, _, self.a, self.b = cache[0][words]
        self.fn = estimators.get_metric(metric, method=method)
        self.fn(self.a[0], self.b[0])  # imports POT etc. (once per process) outside the timing


class TimeTransportPair(_Timed):
    def time_pair(self, cache, metric, method, words):
        self.fn(self.a[0], self.b[0])


class TimeTransportBatch(_Timed):
    repeat = 5  # a call is 64 transport problems (~10-60 ms): 5 samples are enough

    def time_batch(self, cache, metric, method, words):
        self.fn(self.a, self.b)


class TimeGloveLookup(Timed):
    """Looking up 64 sentences' words in GloVe (after the vocabulary is loaded)."""

    params = (LENGTHS,)
    param_names = ["words"]
    timeout = 120
    setup_cache = staticmethod(setup_data)

    def setup(self, cache, words):
        from estimators.metrics import glove_vectors
        self.lookup = glove_vectors
        self.sentences = cache[0][words][0]
        self.lookup(self.sentences[0])  # loads the vocabulary (once per process) outside timing

    def time_lookup(self, cache, words):
        for s in self.sentences:
            self.lookup(s)


class Gap:
    """How far each approximation / lower bound is from the exact transport distance."""

    params = (METRICS, APPROXIMATIONS, LENGTHS)
    param_names = ["metric", "method", "words"]
    timeout = 120
    setup_cache = staticmethod(setup_data)

    def track_relative_gap(self, cache, metric, method, words):
        return cache[2][metric, method, words][0]

    track_relative_gap.unit = MEASURES["relative_gap"].unit

    def track_rank_correlation(self, cache, metric, method, words):
        return cache[2][metric, method, words][1]

    track_rank_correlation.unit = MEASURES["rank_correlation"].unit
