"""Adversarial tests of update estimators, losses and metrics (issue 13): NaN guides, empty
params, non-finite or malformed task losses; NaN scores, wrong shapes, empty inputs.

The rule: a call works (finite gradients / a finite value) or raises a ValueError/TypeError
naming the estimator, loss or metric at fault. Deterministic (``derandomize=True``).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import estimators

CLEAR = (ValueError, TypeError)
SETTINGS = dict(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
UPDATES = estimators.available(kind="update")


@pytest.fixture(autouse=True)
def _validation_on():
    estimators.set_validation(True)
    yield
    estimators.set_validation(True)


# -- update estimators -------------------------------------------------------------------------
SHAPES = [(3,), (2, 2), (0,), (1,), (5, 1)]
LOSS_KINDS = ["quadratic", "nan", "inf", "alternating_nan", "python_float", "none", "string",
              "vector", "complex", "int_tensor"]


def _task_loss(kind, params):
    calls = []

    def quadratic():
        return sum((p ** 2).sum() for p in params) + 1.0

    def alternating():
        calls.append(1)
        return quadratic() if len(calls) % 2 else torch.tensor(math.nan)
    return {
        "quadratic": quadratic,
        "nan": lambda: torch.tensor(math.nan),
        "inf": lambda: torch.tensor(math.inf),
        "alternating_nan": alternating,
        "python_float": lambda: float(quadratic()),
        "none": lambda: None,
        "string": lambda: "0.5",
        "vector": lambda: torch.ones(2),
        "complex": lambda: torch.tensor(1 + 1j),
        "int_tensor": lambda: torch.tensor(3),
    }[kind]


@pytest.mark.parametrize("name", UPDATES)
@settings(max_examples=40, **SETTINGS)
@given(shapes=st.lists(st.sampled_from(SHAPES), min_size=0, max_size=3),
       loss=st.sampled_from(LOSS_KINDS),
       guide=st.sampled_from(["none", "finite", "nan", "inf", "wrong_shape", "short"]),
       validate=st.booleans(), k=st.integers(1, 4))
def test_update_estimators_write_finite_updates_or_name_the_problem(name, shapes, loss, guide,
                                                                     validate, k):
    torch.manual_seed(0)
    count = {"mgs": "num_candidates", "evolution_strategies": "num_directions"}.get(name)
    est = estimators.get(name, **({count: k} if count else {}))
    params = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    guides = {
        "none": None,
        "finite": [torch.ones_like(p) for p in params],
        "nan": [torch.full_like(p, math.nan) for p in params],
        "inf": [torch.full_like(p, math.inf) for p in params],
        "wrong_shape": [torch.ones(p.numel() + 1, dtype=p.dtype) for p in params],
        "short": [torch.ones_like(p) for p in params][:-1],
    }[guide]
    before = [p.detach().clone() for p in params]
    estimators.set_validation(validate)
    try:
        record = est(params, _task_loss(loss, params), guide=guides)
    except CLEAR as exc:
        msg = str(exc)
        assert name in msg, f"{name}: the error does not name the estimator: {msg}"
        # every refusal is for a reason this test can see
        assert (not params or loss in ("none", "string", "vector", "complex")
                or guide in ("wrong_shape", "short")
                or (guide in ("nan", "inf") and name == "mgs" and validate
                    and any(p.numel() for p in params))), msg
        return
    finally:
        estimators.set_validation(True)
    assert params, "an empty params list must be refused"
    for p, b in zip(params, before):
        assert torch.equal(p.detach(), b), "the params were not restored"
        assert p.grad is not None and p.grad.shape == p.shape
        assert bool(torch.isfinite(p.grad).all()), f"{name}: silent NaN/inf in p.grad"
    assert bool(torch.isfinite(record["update_norm"]))


# -- losses ------------------------------------------------------------------------------------
LOSSES = estimators.LOSSES.available()


def _loss_inputs(name, n, c, dtype):
    g = torch.Generator().manual_seed(n * 7 + c)
    if name == "sequence_cross_entropy":
        scores = torch.randn(n, 2, c, generator=g, dtype=torch.float64).to(dtype)
        targets = torch.randint(0, max(c, 1), (n, 2), generator=g)
    elif name == "softmax_cross_entropy":
        scores = torch.randn(n, c, generator=g, dtype=torch.float64).to(dtype)
        targets = torch.randint(0, max(c, 1), (n,), generator=g)
    else:
        scores = torch.randn(n, c, generator=g, dtype=torch.float64).to(dtype)
        targets = torch.randint(0, 2, (n, c), generator=g)
    return scores, targets


MUTATIONS = ["none", "nan", "inf", "neg_inf", "huge", "empty", "drop_dim", "add_dim",
             "int_scores", "complex_scores", "float_targets", "targets_out_of_range",
             "targets_shape", "list_scores", "numpy_targets"]


@pytest.mark.parametrize("name", LOSSES)
@settings(max_examples=40, **SETTINGS)
@given(n=st.integers(0, 5), c=st.integers(1, 4), mutation=st.sampled_from(MUTATIONS),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
def test_losses_give_a_finite_loss_or_name_the_problem(name, n, c, mutation, dtype):
    loss_fn = estimators.get_loss(name)
    scores, targets = _loss_inputs(name, n, c, dtype)
    if mutation in ("nan", "inf", "neg_inf", "huge") and scores.numel():
        value = {"nan": math.nan, "inf": math.inf, "neg_inf": -math.inf, "huge": 1e4}[mutation]
        scores = scores.clone()
        scores.view(-1)[0] = value
    elif mutation == "empty":
        scores, targets = scores[:0], targets[:0]
    elif mutation == "drop_dim":
        scores = scores[..., 0]
    elif mutation == "add_dim":
        scores = scores[..., None]
    elif mutation == "int_scores":
        scores = scores.long()
    elif mutation == "complex_scores":
        scores = scores.to(torch.complex64)
    elif mutation == "float_targets":
        targets = targets.double() + 0.5
    elif mutation == "targets_out_of_range":
        targets = targets + 7
    elif mutation == "targets_shape":
        targets = targets.reshape(-1)[:-1] if targets.numel() else targets[None]
    elif mutation == "list_scores":
        scores = scores.tolist()
    elif mutation == "numpy_targets":
        targets = targets.numpy()
    if isinstance(scores, torch.Tensor) and scores.is_floating_point():
        scores.requires_grad_()
    try:
        loss = loss_fn(scores, targets)
    except CLEAR as exc:
        assert name in str(exc), f"{name}: the error does not name the loss: {exc}"
        return
    assert loss.dim() == 0 and bool(torch.isfinite(loss.detach())), f"{name}: {loss}"
    loss.float().backward()
    assert bool(torch.isfinite(scores.grad).all()), f"{name}: silent NaN gradient"


# -- metrics -----------------------------------------------------------------------------------
CLASSIFICATION = ["f1_micro", "f1_macro", "accuracy"]


@pytest.mark.parametrize("name", CLASSIFICATION)
@settings(max_examples=40, **SETTINGS)
@given(n=st.integers(0, 6), c=st.integers(1, 4),
       mutation=st.sampled_from(["none", "nan", "inf", "empty", "wrong_shape", "complex",
                                 "strings", "ragged", "targets_2", "bool_targets"]),
       threshold=st.sampled_from([0.0, -1.0, 1e300]))
def test_classification_metrics_give_a_number_or_name_the_problem(name, n, c, mutation,
                                                                  threshold):
    metric = (estimators.get_metric(name, threshold=threshold) if name != "accuracy"
              else estimators.get_metric(name))
    rng = np.random.default_rng(n * 10 + c)
    scores = rng.normal(size=(n, c))
    targets = (rng.random((n, c)) < 0.5).astype(int) if name != "accuracy" \
        else rng.integers(0, c, n)
    if mutation in ("nan", "inf") and scores.size:
        scores[0, 0] = math.nan if mutation == "nan" else math.inf
    elif mutation == "empty":
        scores, targets = scores[:0], targets[:0]
    elif mutation == "wrong_shape":
        scores = scores[:, :, None]
    elif mutation == "complex":
        scores = scores.astype(complex)
    elif mutation == "strings":
        scores = [["a"] * c] * n
    elif mutation == "ragged":
        scores = [[1.0] * (i + 1) for i in range(n)]
    elif mutation == "targets_2":
        targets = targets + 2
    elif mutation == "bool_targets":
        targets = targets.astype(bool)
    try:
        value = metric(torch.as_tensor(scores) if mutation == "none" else scores, targets)
    except CLEAR as exc:
        assert name in str(exc) or name.split("_")[0] in str(exc), \
            f"{name}: the error does not name the metric: {exc}"
        return
    assert math.isfinite(value) and 0.0 <= value <= 1.0, (name, value)
    assert mutation != "nan", f"{name}: NaN scores gave {value} silently"


TOKENS = st.lists(st.sampled_from(["a", "b", "the", "cat", "", "a b", 3, None]), max_size=4)


@pytest.mark.parametrize("name", ["edit_distance", "bleu"])
@settings(max_examples=40, **SETTINGS)
@given(hyps=st.one_of(st.lists(TOKENS, max_size=3), st.just("a string"), st.none(),
                      st.just(np.zeros((2, 2, 2)))),
       refs=st.one_of(st.lists(TOKENS, max_size=3), st.just([["a"]])),
       reduction=st.sampled_from(["mean", "none"]))
def test_sequence_metrics_give_a_number_or_name_the_problem(name, hyps, refs, reduction):
    metric = estimators.get_metric(name, reduction=reduction)
    try:
        value = metric(hyps, refs)
    except CLEAR as exc:
        assert name in str(exc), f"{name}: the error does not name the metric: {exc}"
        return
    assert np.all(np.isfinite(value)), (name, value)


@pytest.mark.parametrize("name", ["wmd", "wrd"])
@pytest.mark.parametrize("method", ["emd", "sinkhorn", "centroid", "relaxed"])
@settings(max_examples=10, **SETTINGS)
@given(n=st.integers(0, 3), m=st.integers(0, 3), d=st.integers(1, 3),
       bad=st.sampled_from(["none", "nan", "zero", "dims", "empty_item", "one_d"]))
def test_transport_metrics_give_a_number_or_name_the_problem(name, method, n, m, d, bad):
    metric = estimators.get_metric(name, method=method, reduction="none")
    rng = np.random.default_rng(n * 16 + m * 4 + d)
    a = [rng.normal(size=(n, d)), rng.normal(size=(2, d))]
    b = [rng.normal(size=(m, d)), rng.normal(size=(1, d))]
    if bad == "nan" and n:
        a[0][0, 0] = math.nan
    elif bad == "zero":
        b[0] = np.zeros((max(m, 1), d))
    elif bad == "dims":
        b[1] = rng.normal(size=(1, d + 1))
    elif bad == "empty_item":
        a[1] = []
    elif bad == "one_d":
        a = rng.normal(size=d)
    try:
        value = metric(a, b)
    except CLEAR as exc:
        assert name in str(exc), f"{name}: the error does not name the metric: {exc}"
        return
    assert np.all(np.isfinite(value)) and np.all(value >= -1e-9), (name, value)
