"""Tests of the registered losses: hand-computed values, identities, stability, gradients, and
clear errors for bad input. Expected values are written out from the formulas with math.log /
math.exp, never by calling the implementation."""
import math

import pytest
import torch

import estimators
from estimators.losses import multilabel_softmax_cross_entropy

LOSSES = ["binary_cross_entropy", "softmax_cross_entropy", "multilabel_softmax_cross_entropy",
          "sequence_cross_entropy"]
# float64 rounding of sums of a few terms of size <= 1e4: a few ulps, not a tuned tolerance
EXACT = dict(rtol=1e-12, atol=1e-12)


def softplus(x):
    return math.log1p(math.exp(x))


def t64(rows):
    return torch.tensor(rows, dtype=torch.float64)


def example_inputs(name, dtype=torch.float64, requires_grad=False):
    g = torch.Generator().manual_seed(0)
    if name == "sequence_cross_entropy":
        scores = torch.randn(3, 4, 5, generator=g, dtype=dtype)
        targets = torch.randint(0, 5, (3, 4), generator=g)
        targets[0, 1] = -100
    elif name == "softmax_cross_entropy":
        scores = torch.randn(4, 3, generator=g, dtype=dtype)
        targets = torch.randint(0, 3, (4,), generator=g)
    else:
        scores = torch.randn(4, 3, generator=g, dtype=dtype)
        targets = torch.randint(0, 2, (4, 3), generator=g)
    return scores.requires_grad_(requires_grad), targets


@pytest.fixture(autouse=True)
def _validation_on():
    estimators.set_validation(True)
    yield
    estimators.set_validation(True)


# -- registry ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LOSSES)
def test_registered_with_info(name):
    entry = estimators.LOSSES.entry(name)
    assert entry.description and entry.reference
    loss = estimators.get_loss(name)
    assert isinstance(loss, torch.nn.Module) and loss.describe() == name


def test_spec_string_options():
    loss = estimators.get_loss("binary_cross_entropy:pos_weight=3.0")
    scores, targets = t64([[2.0, -1.0]]), torch.tensor([[1, 0]])
    expected = 3.0 * softplus(-2.0) + softplus(-1.0)
    torch.testing.assert_close(loss(scores, targets), torch.tensor(expected, dtype=torch.float64),
                               **EXACT)
    with pytest.raises(TypeError, match="pos_weight"):
        estimators.get_loss("binary_cross_entropy", weight=2.0)


# -- hand-computed values ----------------------------------------------------------------------
def test_binary_cross_entropy_by_hand():
    scores = t64([[2.0, -1.0, 0.5], [-3.0, 0.0, 4.0]])
    targets = torch.tensor([[1, 0, 1], [0, 0, 1]])
    # BCE(s, 1) = log(1 + e^-s), BCE(s, 0) = log(1 + e^s); summed over classes, mean over rows
    row0 = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))
            + math.log(1 + math.exp(-0.5)))
    row1 = math.log(1 + math.exp(-3.0)) + math.log(1 + math.exp(0.0)) + math.log(1 + math.exp(-4.0))
    out = estimators.get_loss("binary_cross_entropy")(scores, targets)
    torch.testing.assert_close(out, t64((row0 + row1) / 2), **EXACT)
    # per-class pos_weight multiplies the positive terms only
    w = [2.0, 5.0, 0.5]
    row0w = 2.0 * math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0)) \
        + 0.5 * math.log(1 + math.exp(-0.5))
    row1w = math.log(1 + math.exp(-3.0)) + math.log(1 + math.exp(0.0)) \
        + 0.5 * math.log(1 + math.exp(-4.0))
    out = estimators.get_loss("binary_cross_entropy", pos_weight=w)(scores, targets.bool())
    torch.testing.assert_close(out, t64((row0w + row1w) / 2), **EXACT)


def test_softmax_cross_entropy_by_hand():
    scores = t64([[1.0, 2.0, 3.0], [0.5, -0.5, 0.0]])
    targets = torch.tensor([0, 2])
    row0 = -1.0 + math.log(math.exp(1.0) + math.exp(2.0) + math.exp(3.0))
    row1 = -0.0 + math.log(math.exp(0.5) + math.exp(-0.5) + math.exp(0.0))
    out = estimators.get_loss("softmax_cross_entropy")(scores, targets)
    torch.testing.assert_close(out, t64((row0 + row1) / 2), **EXACT)


def test_multilabel_softmax_cross_entropy_by_hand():
    scores = t64([[1.0, -2.0, 0.5], [0.3, -0.7, 2.0], [0.2, -1.0, 1.5]])
    targets = torch.tensor([[1, 0, 0], [1, 1, 1], [0, 0, 0]])
    # log(1 + sum_neg e^{s_i}) + log(1 + sum_pos e^{-s_j})
    row0 = math.log(1 + math.exp(-2.0) + math.exp(0.5)) + math.log(1 + math.exp(-1.0))
    row1 = math.log(1) + math.log(1 + math.exp(-0.3) + math.exp(0.7) + math.exp(-2.0))
    row2 = math.log(1 + math.exp(0.2) + math.exp(-1.0) + math.exp(1.5)) + math.log(1)
    out = estimators.get_loss("multilabel_softmax_cross_entropy")(scores, targets)
    torch.testing.assert_close(out, t64((row0 + row1 + row2) / 3), **EXACT)


def test_multilabel_is_pairwise_softmax_with_a_zero_class():
    # (1 + Σ_neg e^{s_i})(1 + Σ_pos e^{-s_j}) = Σ_{i∈neg∪{0}} Σ_{j∈pos∪{0}} e^{s_i - s_j}, s_0 = 0
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    targets = torch.rand(6, 5, generator=g) < 0.4
    per_example = multilabel_softmax_cross_entropy(scores, targets)
    for n in range(6):
        s = scores[n].tolist()
        neg = [s[i] for i in range(5) if not targets[n, i]] + [0.0]
        pos = [s[j] for j in range(5) if targets[n, j]] + [0.0]
        expected = math.log(sum(math.exp(a - b) for a in neg for b in pos))
        assert math.isclose(per_example[n].item(), expected, rel_tol=1e-12)


def test_multilabel_with_one_positive_bounds_and_approaches_softmax_cross_entropy():
    # one positive t: ZLPR - (-s_t + logsumexp s) = log(1 + (Σ_neg e^{s_i} + e^{-s_t}) /
    # (1 + Σ_neg e^{s_i - s_t})) >= 0, and -> 0 when s_t -> +inf and the negatives -> -inf
    mlce = estimators.get_loss("multilabel_softmax_cross_entropy")
    sce = estimators.get_loss("softmax_cross_entropy")
    s = [0.4, -1.2, 0.9, 0.1]
    t = 2
    neg = [v for i, v in enumerate(s) if i != t]
    gap = math.log(1 + (sum(math.exp(v) for v in neg) + math.exp(-s[t]))
                   / (1 + sum(math.exp(v - s[t]) for v in neg)))
    onehot = torch.zeros(1, 4, dtype=torch.long)
    onehot[0, t] = 1
    diff = mlce(t64([s]), onehot) - sce(t64([s]), torch.tensor([t]))
    assert gap > 0 and math.isclose(diff.item(), gap, rel_tol=1e-10)
    far = [-40.0, -40.0, 40.0, -40.0]
    diff = mlce(t64([far]), onehot) - sce(t64([far]), torch.tensor([t]))
    assert 0 <= diff.item() <= 4 * math.exp(-40.0)  # the gap formula at these scores


def test_sequence_cross_entropy_by_hand_ignores_padding():
    logits = t64([[[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]],
                  [[2.0, 2.0, 2.0], [9.0, -9.0, 5.0]]])
    targets = torch.tensor([[1, 0], [2, -100]])

    def ce(s, t):
        return -s[t] + math.log(sum(math.exp(v) for v in s))

    expected = (ce([1.0, 2.0, 0.0], 1) + ce([0.0, 0.0, 3.0], 0) + ce([2.0, 2.0, 2.0], 2)) / 3
    out = estimators.get_loss("sequence_cross_entropy")(logits, targets)
    torch.testing.assert_close(out, t64(expected), **EXACT)
    targets_pad0 = torch.tensor([[1, 0], [2, 0]])
    out = estimators.get_loss("sequence_cross_entropy", ignore_index=0)(logits, targets_pad0)
    torch.testing.assert_close(out, t64((ce([1.0, 2.0, 0.0], 1) + ce([2.0, 2.0, 2.0], 2)) / 2),
                               **EXACT)


# -- stability, gradients, dtypes --------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_large_scores_stay_finite_and_match_the_asymptote(dtype):
    big = 1e4
    cases = {
        # log(1 + 2e^{1e4}) + log(1 + e^{1e4}) ~ 2e4 + log 2
        "multilabel_softmax_cross_entropy": (torch.tensor([[big, -big, big]], dtype=dtype),
                                             torch.tensor([[0, 1, 0]]), 2 * big + math.log(2)),
        # log(1 + e^{1e4}) + log(1 + e^{1e4}) ~ 2e4
        "binary_cross_entropy": (torch.tensor([[big, -big]], dtype=dtype),
                                 torch.tensor([[0, 1]]), 2 * big),
        # -0 + logsumexp(1e4, 0) ~ 1e4
        "softmax_cross_entropy": (torch.tensor([[big, 0.0]], dtype=dtype), torch.tensor([1]), big),
        "sequence_cross_entropy": (torch.tensor([[[big, 0.0], [0.0, -big]]], dtype=dtype),
                                   torch.tensor([[1, 1]]), (big + big) / 2),
    }
    eps = torch.finfo(dtype).eps
    for name, (scores, targets, expected) in cases.items():
        scores.requires_grad_(True)
        out = estimators.get_loss(name)(scores, targets)
        assert out.dtype == dtype and torch.isfinite(out)
        # the neglected terms are e^{-1e4}; the rest is rounding of a value of size ~2e4
        assert abs(out.item() - expected) <= 4 * eps * abs(expected), name
        out.backward()
        assert torch.isfinite(scores.grad).all(), name


@pytest.mark.parametrize("name", LOSSES)
def test_gradcheck_float64(name):
    scores, targets = example_inputs(name, requires_grad=True)
    loss = estimators.get_loss(name)
    assert torch.autograd.gradcheck(lambda s: loss(s, targets), (scores,))


@pytest.mark.parametrize("name", LOSSES)
def test_dtype_follows_scores_and_same_inputs_same_value(name):
    s64, targets = example_inputs(name)
    s32 = s64.float()
    loss = estimators.get_loss(name)
    assert loss(s32, targets).dtype == torch.float32
    torch.testing.assert_close(loss(s32, targets).double(), loss(s64, targets),
                               rtol=1e-5, atol=1e-6)  # float32 rounding of O(1) values
    assert loss(s64, targets).item() == loss(s64.clone(), targets.clone()).item()


# -- bad input ---------------------------------------------------------------------------------
def test_binary_targets_must_be_zero_one():
    scores = t64([[0.1, 0.2]])
    for name in ("binary_cross_entropy", "multilabel_softmax_cross_entropy"):
        with pytest.raises(ValueError, match=r"0/1.*\[2\]"):
            estimators.get_loss(name)(scores, torch.tensor([[1, 2]]))
        with pytest.raises(ValueError, match=r"= \[1, 2\].*got \[1, 3\]"):
            estimators.get_loss(name)(scores, torch.tensor([[1, 0, 1]]))


def test_class_indices_checked():
    sce = estimators.get_loss("softmax_cross_entropy")
    scores = t64([[0.1, 0.2, 0.3]])
    with pytest.raises(ValueError, match=r"\[0, 3\).*\[3\]"):
        sce(scores, torch.tensor([3]))
    with pytest.raises(TypeError, match="integer dtype"):
        sce(scores, torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"\[N\] class indices"):
        sce(scores, torch.tensor([[1]]))
    seq = estimators.get_loss("sequence_cross_entropy")
    with pytest.raises(ValueError, match=r"\[0, 3\) or ignore_index=-100.*\[7\]"):
        seq(scores[None], torch.tensor([[7]]))
    with pytest.raises(ValueError, match="no token is counted"):
        seq(scores[None], torch.tensor([[-100]]))


def test_all_ignored_gives_zero_not_nan_without_validation():
    estimators.set_validation(False)
    out = estimators.get_loss("sequence_cross_entropy")(torch.zeros(1, 2, 3),
                                                        torch.full((1, 2), -100))
    assert out.item() == 0.0


def test_scores_checked():
    mlce = estimators.get_loss("multilabel_softmax_cross_entropy")
    with pytest.raises(TypeError, match="floating point"):
        mlce(torch.tensor([[1, 0]]), torch.tensor([[1, 0]]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        mlce([[0.1, 0.2]], torch.tensor([[1, 0]]))
    with pytest.raises(ValueError, match=r"\[N, C\] logits, got shape \[2\]"):
        mlce(torch.tensor([0.1, 0.2]), torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="0 examples"):
        mlce(torch.zeros(0, 3), torch.zeros(0, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        mlce(torch.zeros(1, 2), [[1, 0]])


@pytest.mark.parametrize("name", LOSSES)
def test_nan_scores_raise_when_validating(name):
    scores, targets = example_inputs(name)
    scores.view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match="not finite.*1 NaN"):
        estimators.get_loss(name)(scores, targets)


def test_minus_inf_logit_off_target_is_allowed():
    # masking a class with -inf is a common pattern; only the target's logit must be finite
    scores = t64([[0.0, float("-inf"), 1.0]])
    out = estimators.get_loss("softmax_cross_entropy")(scores, torch.tensor([2]))
    torch.testing.assert_close(out, t64(-1.0 + math.log(math.exp(0.0) + math.exp(1.0))), **EXACT)
    with pytest.raises(ValueError, match="not finite"):
        estimators.get_loss("softmax_cross_entropy")(scores, torch.tensor([1]))


def test_bad_options():
    with pytest.raises(ValueError, match="pos_weight"):
        estimators.get_loss("binary_cross_entropy", pos_weight=-1.0)
    with pytest.raises(ValueError, match="pos_weight has 2 entries"):
        estimators.get_loss("binary_cross_entropy", pos_weight=[1.0, 2.0])(
            t64([[0.0, 0.0, 0.0]]), torch.tensor([[1, 0, 1]]))
    with pytest.raises(ValueError, match="ignore_index"):
        estimators.get_loss("sequence_cross_entropy", ignore_index=1.5)
