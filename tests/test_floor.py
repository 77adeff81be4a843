"""The floor benchmark's library (suite/floor.py): the plain-torch floor is a correct
score-function estimate, ratios are measured, and the floor multiple follows the declared f
evaluations."""
from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

import estimators
from suite import floor, tasks


def _elementwise(z, target):
    return (z.to(torch.float64) - target) ** 2


#: name -> (distribution of the logits [3, 4], f of samples [K, 3, 4(, 4)] -> costs [K, *batch])
PROBLEMS = {
    "bernoulli": (lambda a: D.Bernoulli(logits=a), _elementwise),
    "normal": (lambda a: D.Normal(a, torch.ones_like(a)), _elementwise),
    "independent_bernoulli": (lambda a: D.Independent(D.Bernoulli(logits=a), 1),
                              lambda z, t: _elementwise(z, t).sum(-1)),
    "onehot": (lambda a: D.OneHotCategorical(logits=a), lambda z, t: _elementwise(z, t).sum(-1)),
    "categorical": (lambda a: D.Categorical(logits=a), lambda z, t: _elementwise(z, 1.5)),
}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_floor_is_an_unbiased_score_function_estimate(name):
    torch.manual_seed(0)
    logits = torch.randn(3, 4, dtype=torch.float64)
    target = torch.linspace(-1, 1, 4, dtype=torch.float64)
    dist_of, cost = PROBLEMS[name]

    def f(z):
        return cost(z, target)

    leaf = logits.clone().requires_grad_()
    loss = floor.floor_estimate(dist_of(leaf), f, 40_000)
    loss.backward()
    exact_leaf = logits.clone().requires_grad_()
    if name == "normal":  # E[(x - t)^2] = (mu - t)^2 + 1
        exact = ((exact_leaf - target) ** 2 + 1).sum()
    else:
        exact = estimators.get("exact")(dist_of(exact_leaf), f)
    g, = torch.autograd.grad(exact, exact_leaf)
    assert torch.allclose(leaf.grad, g, atol=0.08, rtol=0.1), (leaf.grad, g)
    assert math.isclose(loss.item(), exact.item(), rel_tol=0.05, abs_tol=0.05)


@pytest.mark.parametrize("name", ["normal", "bernoulli", "independent_bernoulli", "onehot"])
def test_pathwise_floor_is_a_pathwise_estimate(name):
    # f linear in z: straight-through is then exact in expectation, and reparameterisation too
    torch.manual_seed(0)
    logits = torch.randn(3, 4, dtype=torch.float64)
    w = torch.linspace(-1, 1, 4, dtype=torch.float64)
    dist_of = PROBLEMS[name][0]
    event = name in ("independent_bernoulli", "onehot")

    def f(z):
        out = z * w
        return out.sum(-1) if event else out

    leaf = logits.clone().requires_grad_()
    loss = floor.pathwise_floor_estimate(dist_of(leaf), f, 40_000)
    loss.backward()
    exact_leaf = logits.clone().requires_grad_()
    d = dist_of(exact_leaf)
    exact = f(d.mean.unsqueeze(0)).sum()  # E[f] = f(E[z]) for a linear f
    g, = torch.autograd.grad(exact, exact_leaf)
    assert torch.allclose(leaf.grad, g, atol=1e-12), (leaf.grad, g)  # the gradient is exact
    assert math.isclose(loss.item(), exact.item(), rel_tol=0.05, abs_tol=0.05)
    with pytest.raises(TypeError, match="no pathwise floor for Categorical"):
        floor.pathwise_floor_estimate(D.Categorical(logits=leaf), lambda z: z.double(), 2)


def test_pathwise_estimators_get_both_ratios():
    task = tasks.build_task("bernoulli100_t045")
    out = floor.floor_ratio(estimators.get("gumbel_softmax"), task, 16, pairs=3)
    assert {"pathwise_ratio", "pathwise_floor_seconds", "pathwise_ratio_of_medians"} <= set(out)
    assert all(v > 0 and math.isfinite(v) for v in out.values())
    assert "pathwise_ratio" not in floor.floor_ratio(estimators.get("score_function"), task, 16,
                                                     pairs=3)


def test_floor_ratio_and_multiple():
    task = tasks.build_task("bernoulli100_t045")
    out = floor.floor_ratio(estimators.get("straight_through"), task, 16, pairs=5)
    assert set(out) >= {"ratio", "floor_seconds", "seconds", "ratio_of_medians"}
    assert all(v > 0 and math.isfinite(v) for v in out.values())
    assert estimators.validation_enabled()  # restored
    dist = task.problem(1).dist
    assert floor.floor_multiple(estimators.get("rebar"), dist, 16) == 3
    assert floor.floor_multiple(estimators.get("muprop"), dist, 16) == 17 / 16
    assert floor.floor_multiple(estimators.get("score_function"), dist, 16) == 1


def test_compute_floor_grid_narrowed(monkeypatch):
    """A bare name is every registered variant of it (``rebar``: ``rebar``, ``rebar:tune=true``),
    a spec with options exactly that spec; the run file's rows carry the floor ratio."""
    from suite import results

    monkeypatch.setenv("ESTIBENCH_TASKS", "bernoulli_t045")
    monkeypatch.setenv("ESTIBENCH_ESTIMATORS", "score_function:baseline=none,rebar,reparam")
    monkeypatch.setenv("ESTIBENCH_FLOOR_NUM_SAMPLES", "16")
    monkeypatch.setattr(floor, "PAIRS", 3)
    monkeypatch.setattr(floor.floor_ratio, "__defaults__", ("cpu", 3, None))
    out = floor.compute_floor_grid()
    cells = out["cells"]
    assert cells[("bernoulli_t045", "score_function:baseline=none", 16, "cpu")]["status"] == "ok"
    assert cells[("bernoulli_t045", "rebar", 16, "cpu")]["values"]["floor_multiple"] == 3
    assert cells[("bernoulli_t045", "rebar:tune=true", 16, "cpu")]["status"] == "ok"
    assert not any(key[1].startswith("score_function:baseline=loo") for key in cells)
    assert ("bernoulli_t045", "reparam", 16, "cpu") not in cells  # not a Bernoulli estimator
    assert out["floors"][("bernoulli_t045", 16, "cpu")] > 0
    rows = {(r["estimator"], r["measure"]): r for r in results.floor_rows(out)
            if r["group"] == "gradient"}
    ratio = rows[("rebar", "floor_ratio")]
    assert ratio["value"] == cells[("bernoulli_t045", "rebar", 16, "cpu")]["values"]["ratio"]
    assert ratio["experiment"] == "floor" and ratio["estimator_name"] == "REBAR"
    assert ratio["unit"] == "ratio" and ratio["claims_unbiased"] == 1.0


def test_the_floor_skips_a_k_past_an_estimators_largest(monkeypatch):
    """unordered_set draws K distinct categories: on a 10-class task the floor's K = 16 is past
    its ``max_samples`` and is skipped, not failed (a full run failed that cell)."""
    monkeypatch.setenv("ESTIBENCH_TASKS", "categorical_table")
    monkeypatch.setenv("ESTIBENCH_ESTIMATORS", "unordered_set")
    monkeypatch.setenv("ESTIBENCH_FLOOR_NUM_SAMPLES", "4,16")
    monkeypatch.setattr(floor, "PAIRS", 3)
    monkeypatch.setattr(floor.floor_ratio, "__defaults__", ("cpu", 3, None))
    cells = floor.compute_floor_grid()["cells"]
    assert cells[("categorical_table", "unordered_set", 4, "cpu")]["status"] == "ok"
    skipped = cells[("categorical_table", "unordered_set", 16, "cpu")]
    assert skipped["status"] == "skipped" and "at most num_samples=10" in skipped["error"]
