"""Tests of the registered metrics: hand-computed cases, known properties (bounds, limits,
identities) and clear errors for bad input."""
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

import estimators
from estimators.metrics import best_threshold, glove_vectors, transport_distances

METRICS = {"accuracy": True, "f1_micro": True, "f1_macro": True, "bleu": True,
           "edit_distance": False, "wmd": False, "wrd": False}
# float64 rounding in sums/products of a few O(1) terms (and sqrt of a rounded 0): not tuned
ROUND = 1e-12


@pytest.mark.parametrize("name", sorted(METRICS))
def test_registered_with_info(name):
    entry = estimators.METRICS.entry(name)
    assert entry.description and entry.reference
    assert entry.higher_is_better is METRICS[name]
    assert estimators.get_metric(name).higher_is_better is METRICS[name]


# -- classification ----------------------------------------------------------------------------
SCORES = np.array([[2.0, -1.0, 0.5], [-0.5, 1.0, -2.0], [0.3, 0.2, -0.1], [-1.0, -1.0, 3.0]])
TARGETS = np.array([[1, 0, 1], [0, 1, 1], [0, 0, 0], [1, 0, 1]])


def test_f1_by_hand():
    # predictions s > 0: [1,0,1] [0,1,0] [1,1,0] [0,0,1]
    # class 0: TP 1 (row0) FP 1 (row2) FN 1 (row3); class 1: TP 1 FP 1 FN 0;
    # class 2: TP 2 (rows 0, 3) FP 0 FN 1 (row1)
    f1 = [2 * 1 / (2 * 1 + 1 + 1), 2 * 1 / (2 * 1 + 1 + 0), 2 * 2 / (2 * 2 + 0 + 1)]
    micro = 2 * 4 / (2 * 4 + 2 + 2)
    assert math.isclose(estimators.get_metric("f1_micro")(SCORES, TARGETS), micro, rel_tol=ROUND)
    assert math.isclose(estimators.get_metric("f1_macro")(torch.tensor(SCORES),
                                                          torch.tensor(TARGETS)),
                        sum(f1) / 3, rel_tol=ROUND)
    # threshold 1: predictions [1,0,0] [0,0,0] [0,0,0] [0,0,1] -> TP 2, FP 0, FN 6 - 2
    assert math.isclose(estimators.get_metric("f1_micro:threshold=1.0")(SCORES, TARGETS),
                        2 * 2 / (2 * 2 + 0 + 4), rel_tol=ROUND)
    # no positive predicted and none true: zero_division=0
    assert estimators.get_metric("f1_micro")(-np.ones((2, 2)), np.zeros((2, 2))) == 0.0


def f1_by_counts(targets, predicted, average):
    tp = (targets & predicted).sum(0).astype(float)
    fp = (~targets & predicted).sum(0)
    fn = (targets & ~predicted).sum(0)
    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    denom = 2 * tp + fp + fn
    return float(np.mean(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2 ** 32 - 1), average=st.sampled_from(["micro", "macro"]))
def test_best_threshold_is_best_and_matches_sklearn(seed, average):
    rng = np.random.default_rng(seed)
    n, c = rng.integers(1, 30), rng.integers(1, 6)
    targets = rng.random((n, c)) < 0.3
    scores = np.round(rng.normal(size=(n, c)) + targets, 1)  # rounding makes ties
    t, f1 = best_threshold(scores, targets, average=average)
    assert math.isclose(f1, estimators.get_metric(f"f1_{average}", threshold=t)(scores, targets),
                        rel_tol=ROUND, abs_tol=ROUND)
    # sklearn reads one class [N, 1] as binary labels: its F1 of the positive class is ours
    reference = (f1_score(targets, scores > t, average=average, zero_division=0) if c > 1 else
                 f1_score(targets[:, 0], scores[:, 0] > t, average="binary", zero_division=0))
    assert math.isclose(f1, reference, rel_tol=ROUND, abs_tol=ROUND)
    # every distinct prediction set: thresholds at and just below each score, and below all
    for grid_t in np.concatenate([np.unique(scores), np.unique(scores) - 0.05, [-1e9]]):
        assert f1 >= f1_by_counts(targets, scores > grid_t, average) - ROUND


def test_best_threshold_thins_candidates():
    rng = np.random.default_rng(0)
    targets = rng.random((500, 4)) < 0.3
    scores = rng.normal(size=(500, 4)) + 2 * targets
    t, f1 = best_threshold(scores, targets, max_candidates=16)
    assert math.isclose(f1, f1_score(targets, scores > t, average="micro"), rel_tol=ROUND)
    with pytest.raises(ValueError, match="max_candidates"):
        best_threshold(scores, targets, max_candidates=1)
    with pytest.raises(ValueError, match="average"):
        best_threshold(scores, targets, average="weighted")


def test_f1_bad_input():
    f1 = estimators.get_metric("f1_micro")
    with pytest.raises(ValueError, match=r"0/1.*2"):
        f1(SCORES, TARGETS * 2)
    with pytest.raises(ValueError, match=r"scores \[4, 3\] and targets \[4, 2\]"):
        f1(SCORES, TARGETS[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        f1(np.full((1, 2), np.nan), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="corpus-level"):
        estimators.get_metric("f1_macro", reduction="none")


def test_accuracy():
    acc = estimators.get_metric("accuracy")
    labels = np.array([0, 1, 2, 0])  # argmax rows: 0, 1, 0, 2
    assert acc(SCORES, labels) == 0.5
    assert acc(torch.tensor([0, 1, 0, 2]), torch.tensor(labels)) == 0.5
    per = estimators.get_metric("accuracy", reduction="none")(SCORES, labels)
    assert per.dtype == np.float64 and per.tolist() == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="4 predictions but 3 targets"):
        acc(SCORES, labels[:3])
    with pytest.raises(ValueError, match="integer dtype"):
        acc(np.array([0.5, 1.0]), np.array([0, 1]))
    with pytest.raises(ValueError, match="reduction"):
        estimators.get_metric("accuracy", reduction="sum")


# -- sequences ---------------------------------------------------------------------------------
def test_edit_distance_by_hand():
    ed = estimators.get_metric("edit_distance")
    # kitten -> sitting: 3 edits (k->s, e->i, +g), normalised by max length 7
    assert math.isclose(ed(["kitten"], ["sitting"]), 3 / 7, rel_tol=ROUND)
    per = estimators.get_metric("edit_distance", reduction="none")(
        [[1, 2, 3], ["a", "b"], [], (5,)], [[1, 3], ["a", "b"], [], (6, 7)])
    np.testing.assert_allclose(per, [1 / 3, 0.0, 0.0, 1.0], rtol=ROUND)
    assert math.isclose(ed([[1, 2, 3], [5]], [[1, 3, 3], [5]]), (1 / 3 + 0) / 2, rel_tol=ROUND)
    assert math.isclose(ed(torch.tensor([[1, 2, 3]]), np.array([[1, 2, 4]])), 1 / 3, rel_tol=ROUND)


def test_edit_distance_bad_input():
    ed = estimators.get_metric("edit_distance")
    with pytest.raises(TypeError, match="single str"):
        ed("kitten", "sitting")
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        ed(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="0 examples"):
        ed([], [])
    with pytest.raises(TypeError, match=r"hyps\[0\]"):
        ed([3], ["a"])


def test_bleu_properties_and_hand_case():
    bleu = estimators.get_metric("bleu")
    sent = "the cat sat on the mat".split()
    assert math.isclose(bleu([sent, sent[:4]], [sent, sent[:4]]), 100.0, rel_tol=ROUND)
    assert bleu([["a", "b", "c", "d"]], [["e", "f", "g", "h"]]) == 0.0
    # hyp "the cat sat on the mat" vs ref "the cat sat on a mat": clipped n-gram precisions
    # 5/6, 3/5, 2/4, 1/3; equal lengths so BP = 1; BLEU = 100 * (5/6 * 3/5 * 2/4 * 1/3)^(1/4)
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    ref = "the cat sat on a mat".split()
    assert math.isclose(bleu([sent], [ref]), expected, rel_tol=ROUND)
    assert math.isclose(bleu(["the cat sat on the mat"], [ref]), expected, rel_tol=ROUND)
    per = estimators.get_metric("bleu", reduction="none")([sent, [1, 2, 3, 4]], [ref, [5, 6, 7, 8]])
    np.testing.assert_allclose(per, [expected, 0.0], rtol=ROUND)


def test_bleu_bad_input():
    bleu = estimators.get_metric("bleu")
    with pytest.raises(ValueError, match="whitespace"):
        bleu([["a b", "c"]], [["a", "b"]])
    with pytest.raises(ValueError, match="smooth_method"):
        estimators.get_metric("bleu", smooth_method="nope")


# -- optimal transport -------------------------------------------------------------------------
def wmd(method="emd", **kw):
    return estimators.get_metric("wmd", method=method, **kw)


def wrd(method="emd", **kw):
    return estimators.get_metric("wrd", method=method, **kw)


def test_wmd_two_points_obvious_transport():
    a = np.array([[0.0, 0.0], [10.0, 0.0]])
    b = np.array([[0.0, 1.0], [10.0, -1.0]])
    # each point moves to its neighbour: 0.5 * 1 + 0.5 * 1; the centroids coincide
    assert math.isclose(wmd()(a, b), 1.0, rel_tol=ROUND)
    assert math.isclose(wmd("relaxed")(a, b), 1.0, rel_tol=ROUND)
    assert abs(wmd("centroid")(a, b)) <= ROUND
    b2 = np.array([[0.0, 1.0], [10.0, 2.0]])  # 0.5 * 1 + 0.5 * 2, centroids 1.5 apart
    for method in ("emd", "relaxed", "centroid"):
        assert math.isclose(wmd(method)(a, torch.tensor(b2)), 1.5, rel_tol=ROUND)


def test_wrd_by_hand():
    # norms 1, 2 -> masses 1/3, 2/3; norms 1, 3 -> 1/4, 3/4. 1 - cos is 0 for a1->b2 and
    # a2->b1, 1 otherwise: a1 sends 1/3 to b2, a2 sends 1/4 to b1 and its other 5/12 to b2
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[0.0, 1.0], [3.0, 0.0]])
    assert math.isclose(wrd()(a, b), 5 / 12, rel_tol=ROUND)
    # relaxed: rows each find a free destination (0); columns too (0)
    assert abs(wrd("relaxed")(a, b)) <= ROUND
    # centroid: ½||(a1 + a2)/3 - (b1 + b2)/4||² with unit vectors weighted by the masses
    gap = np.array([1 / 3, 2 / 3]) - np.array([3 / 4, 1 / 4])
    assert math.isclose(wrd("centroid")(a, b), 0.5 * float(gap @ gap), rel_tol=ROUND)


def test_word_frequency_is_mass():
    # ["king", "king", "queen"] has masses 2/3, 1/3: the same as the three rows of vectors
    words = ["king", "king", "queen"]
    other = ["man", "woman", "crown", "the"]
    vec = glove_vectors(words)
    for make in (wmd, wrd):
        assert math.isclose(make()(words, other), make()(vec, glove_vectors(other)),
                            rel_tol=1e-9)  # the LP solver's tolerance, not rounding


@pytest.mark.parametrize("make", [wmd, wrd])
def test_identical_sentences_are_at_distance_zero(make):
    s = "the quick brown fox jumps over the lazy dog".split()
    for method in ("emd", "centroid", "relaxed"):
        assert abs(make(method)(s, list(reversed(s)))) <= 1e-7  # sqrt of a rounded zero
    # the entropic plan spreads mass, so Sinkhorn is > 0 but within its entropy bound
    # ε log(nm), ε = reg · max C (see test_sinkhorn_approaches_exact_as_reg_falls)
    x = glove_vectors(sorted(set(s)))
    if make is wrd:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        cmax = (1 - x @ x.T).max()
    else:
        cmax = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)).max()
    assert 0 <= make("sinkhorn")(s, s) <= 0.05 * cmax * math.log(len(x) ** 2)


def _random_bags(rng, batch, d):
    bags = []
    for _ in range(batch):
        n = int(rng.integers(1, 7))
        x = rng.normal(size=(n, d)) * rng.choice([0.1, 1.0, 10.0])
        p = rng.random(n) + 1e-3
        bags.append((x, p / p.sum()))
    return bags


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2 ** 32 - 1), cost=st.sampled_from(["euclidean", "cosine"]))
def test_bounds_are_below_exact(seed, cost):
    rng = np.random.default_rng(seed)
    d = int(rng.integers(1, 6))
    a, b = _random_bags(rng, 4, d), _random_bags(rng, 4, d)
    exact = transport_distances(a, b, cost, "emd")
    relaxed = transport_distances(a, b, cost, "relaxed")
    centroid = transport_distances(a, b, cost, "centroid")
    slack = 1e-9 * (1 + np.abs(exact))  # the network simplex's own tolerance
    assert (relaxed <= exact + slack).all()
    assert (centroid <= exact + slack).all()


def test_sinkhorn_approaches_exact_as_reg_falls():
    rng = np.random.default_rng(0)
    a, b = _random_bags(rng, 6, 3), _random_bags(rng, 6, 3)
    exact = transport_distances(a, b, "euclidean", "emd")
    cmax = np.array([np.sqrt(((x[:, None] - y[None]) ** 2).sum(-1)).max() for (x, _), (y, _)
                     in zip(a, b)])
    nm = np.array([len(p) * len(q) for (_, p), (_, q) in zip(a, b)])
    previous = None
    for reg in (0.2, 0.05, 0.01):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # it must converge
            s = transport_distances(a, b, "euclidean", "sinkhorn", reg=reg, max_iter=200000,
                                    tol=1e-11)
        # <γ_ε, C> - W <= ε (H(γ_ε) - H(γ*)) <= ε log(nm), ε = reg·max C; the marginal error
        # tol moves the value by at most about tol·max C
        slack = 1e-9 * cmax
        assert (s >= exact - slack).all()
        assert (s - exact <= reg * cmax * np.log(nm) + slack).all()
        if previous is not None:
            assert (s <= previous + slack).all()  # the entropic plan's cost grows with ε
        previous = s
    assert np.all(np.abs(previous - exact) < np.abs(transport_distances(
        a, b, "euclidean", "sinkhorn", reg=0.2, max_iter=200000, tol=1e-11) - exact) + 1e-12)


def test_sinkhorn_warns_when_it_does_not_converge():
    with pytest.warns(RuntimeWarning, match="max_iter=3"):
        wmd("sinkhorn", reg=0.01, max_iter=3)(["king", "queen", "man"], ["woman", "crown"])


def test_batch_equals_pairs_and_reduction():
    a = [["the", "cat", "sat"], ["a", "dog", "barked", "loudly"], ["hello"]]
    b = [["a", "dog", "ran"], ["the", "cat"], ["world", "peace"]]
    for make in (wmd, wrd):
        for method in ("emd", "sinkhorn", "centroid", "relaxed"):
            per = make(method, reduction="none")(a, b)
            single = [make(method)(x, y) for x, y in zip(a, b)]
            assert per.shape == (3,) and per.dtype == np.float64
            np.testing.assert_allclose(per, single, rtol=1e-12)  # padding must not matter
            assert math.isclose(make(method)(a, b), float(np.mean(single)), rel_tol=1e-12)
    x = np.random.default_rng(0).normal(size=(2, 3, 5))
    np.testing.assert_allclose(wmd(reduction="none")(x, torch.tensor(x[::-1].copy())),
                               [wmd()(x[0], x[1]), wmd()(x[1], x[0])], rtol=1e-12)


def test_unknown_words_are_listed():
    with pytest.raises(ValueError, match=r"2 word\(s\).*'King'.*'qzxwvq'.*lowercas"):
        wmd()(["King", "qzxwvq", "queen"], ["man"])
    assert math.isclose(wmd(oov="skip")(["qzxwvq", "queen"], ["man"]), wmd()(["queen"], ["man"]),
                        rel_tol=ROUND)
    with pytest.raises(ValueError, match="no word is in the GloVe vocabulary"):
        wmd(oov="skip")(["qzxwvq"], ["man"])


def test_transport_bad_input():
    with pytest.raises(TypeError, match="single str"):
        wmd()("the cat", ["a", "dog"])
    with pytest.raises(ValueError, match="2 items in a but 1 in b"):
        wmd()([["a"], ["b"]], [["c"]])
    with pytest.raises(ValueError, match=r"did you mean 'emd'"):
        wmd("emdd")
    with pytest.raises(ValueError, match=r"wrd: option reg must be a finite number in \(0, inf\)"):
        wrd("sinkhorn", reg=0.0)
    with pytest.raises(ValueError, match="oov"):
        wmd(oov="ignore")
    with pytest.raises(ValueError, match="NaN or inf"):
        wmd()(np.array([[np.nan, 0.0]]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"dimensions \[2, 3\]"):
        wmd()(np.zeros((1, 2)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"\[n, d\].*\[B, n, d\]"):
        wmd()(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="all vectors are zero"):
        wrd()(np.zeros((2, 3)), np.ones((1, 3)))
    with pytest.raises(TypeError, match="list of words"):
        wmd()([1, 2], [3, 4])


@pytest.mark.parametrize("name", ["f1_micro", "f1_macro"])
@pytest.mark.parametrize("threshold", [math.nan, math.inf, "high", None])
def test_f1_refuses_a_non_finite_threshold(name, threshold):
    # issue 13 item 8: threshold=nan predicted nothing and returned 0.0
    with pytest.raises(ValueError, match=rf"{name}: option threshold must be a finite number"):
        estimators.get_metric(name, threshold=threshold)
    with pytest.raises(ValueError, match="threshold"):
        estimators.get_metric(f"{name}:threshold=nan")


@pytest.mark.parametrize("empty", [[], ()])
def test_an_empty_document_in_a_batch_is_named_by_its_index(empty):
    # issue 13 item 8: the error did not say which item was empty
    docs = [["the", "cat"], ["a", "dog"], empty]
    with pytest.raises(ValueError, match=r"wmd: b\[2\]: empty document"):
        wmd()([["a"], ["b"], ["c"]], docs)
    with pytest.raises(TypeError, match=r"wrd: a\[1\]: expected .* got int"):
        wrd()([["a"], 3], [["b"], ["c"]])


def test_metrics_declare_their_facts_on_the_class():
    from estimators.metrics import BLEU, WMD, Accuracy, EditDistance
    for cls in (Accuracy, EditDistance, BLEU, WMD):
        entry = estimators.METRICS.entry(cls.name)
        assert entry.factory is cls
        assert (entry.description, entry.reference, entry.higher_is_better) == (
            cls.description, cls.reference, cls.higher_is_better)
    assert estimators.METRICS.entry("wmd").variants[0] == "wmd:method=emd"


def test_public_names_still_import_from_estimators_metrics():
    import estimators.metrics as m
    for name in m.__all__:
        assert getattr(m, name) is not None
    assert repr(estimators.get_metric("bleu:smooth_method=floor")) == "BLEU('bleu:smooth_method=floor')"
