"""Tests of the ``vqvae_digits`` training task (tiny configurations, CPU)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from suite.registries import TRAINING_TASKS
from suite.train_vqvae import BASELINES, VQVAEDigits, perplexity, quantise, vq_terms
from suite.training import REQUIRED_KEYS, Run

#: the estimator methods the task listed by hand before they came from the registry
ORIGINAL = ("gumbel_softmax", "straight_through_gumbel", "score_function:baseline=loo")


def tiny(**options) -> VQVAEDigits:
    defaults = dict(latents=2, codebook_size=4, code_dim=3, hidden=8, steps=12, batch_size=16,
                    num_samples=2, num_checkpoints=3)
    return VQVAEDigits(**{**defaults, **options})


def batch(n: int = 16) -> torch.Tensor:
    return torch.as_tensor(VQVAEDigits().data(0)["train"][:n])


def test_registered():
    task = TRAINING_TASKS.get("vqvae_digits", steps=7)
    assert isinstance(task, VQVAEDigits) and task.steps == 7
    # the baseline, then every registered estimator variant that supports the one-hot bottleneck
    assert task.methods[0] == "vq_straight_through" and BASELINES == ("vq_straight_through",)
    assert set(ORIGINAL) <= set(task.methods)
    assert "arm" not in task.methods  # declares Bernoulli only
    # declare the family but refuse this size (16^4 codes per image): supports() decides
    assert "exact" not in task.methods and "unordered_set" not in task.methods
    assert "unordered_set" in tiny().methods  # 4^2 codes per image
    assert task.higher_is_better is False


def test_data_split_is_disjoint_and_scaled():
    from sklearn.datasets import load_digits
    task = VQVAEDigits()
    idx = task.split_indices(3)
    assert {k: len(v) for k, v in idx.items()} == {"train": 1078, "valid": 359, "test": 360}
    # the three splits partition the 1797 source images: no image is in two splits
    assert np.array_equal(np.sort(np.concatenate(list(idx.values()))), np.arange(1797))
    raw = load_digits().data
    for name, pixels in task.data(3).items():
        assert pixels.dtype == np.float32 and pixels.shape == (len(idx[name]), 64)
        np.testing.assert_array_equal(pixels, raw[idx[name]] / 16.0)
        assert pixels.min() == 0.0 and pixels.max() == 1.0
    assert not np.array_equal(idx["test"], task.split_indices(4)["test"])  # the seed reshuffles


def test_perplexity_hand_cases():
    k = 5
    uniform = torch.arange(k).repeat(3)
    assert perplexity(uniform, k).item() == pytest.approx(k, rel=1e-12)
    assert perplexity(torch.full((7,), 2), k).item() == pytest.approx(1.0, rel=1e-12)
    # p = (1/2, 1/4, 1/4): H = 1.5 log 2, perplexity 2^1.5; unused entries contribute 0 log 0 = 0
    codes = torch.tensor([[0, 0], [1, 2]])
    assert perplexity(codes, k).item() == pytest.approx(2 ** 1.5, rel=1e-12)


def test_quantise_picks_nearest_entry():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    z_e = torch.tensor([[[0.9, 0.1], [0.1, 1.2], [-0.3, 0.2]]])
    codes, z_q = quantise(z_e, codebook)
    assert codes.tolist() == [[1, 2, 0]]
    assert torch.equal(z_q, codebook[codes])


def _grad_norms(model):
    enc = sum(float(p.grad.abs().sum()) for p in model.encoder.parameters() if p.grad is not None)
    book = 0.0 if model.codebook.grad is None else float(model.codebook.grad.abs().sum())
    return enc, book


def test_vq_straight_through_gradients():
    torch.manual_seed(0)
    model = tiny().model("vq_straight_through")
    x = batch()
    # reconstruction term: reaches the encoder (straight-through), never the codebook
    terms = vq_terms(model, x, beta=0.25)
    terms["z_e"].retain_grad()
    terms["recon"].sum().backward()
    enc, book = _grad_norms(model)
    assert enc > 0 and book == 0.0
    # ... and the encoder receives exactly the decoder's gradient taken at z_q
    z_q = terms["z_q"].detach().requires_grad_()
    (grad_at_zq,) = torch.autograd.grad(((x - model.decode(z_q)) ** 2).sum(), z_q)
    torch.testing.assert_close(terms["z_e"].grad, grad_at_zq)
    # codebook term: reaches the codebook only; commitment: the encoder only
    model.zero_grad(set_to_none=True)
    vq_terms(model, x, beta=0.25)["codebook"].sum().backward()
    enc, book = _grad_norms(model)
    assert enc == 0.0 and book > 0
    model.zero_grad(set_to_none=True)
    vq_terms(model, x, beta=0.25)["commitment"].sum().backward()
    enc, book = _grad_norms(model)
    assert enc > 0 and book == 0.0


def test_vq_commitment_scales_with_beta():
    torch.manual_seed(0)
    model = tiny().model("vq_straight_through")
    x = batch()
    a, b = vq_terms(model, x, beta=0.25), vq_terms(model, x, beta=1.0)
    torch.testing.assert_close(a["commitment"] * 4, b["commitment"])
    torch.testing.assert_close(b["commitment"], b["codebook"])  # same value, different gradients


@pytest.mark.parametrize("method", ORIGINAL)
def test_estimator_objective_trains_every_part(method):
    torch.manual_seed(0)
    task = tiny()
    model = task.model(method)
    loss = task.objective(method, model).loss(batch())
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for name, part in (("encoder", model.encoder), ("decoder", model.decoder)):
        assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in part.parameters()), name
    assert model.codebook.grad is not None and bool(model.codebook.grad.abs().sum() > 0)


def test_estimator_methods_use_the_registered_estimators():
    task = tiny(estimator_options={"gumbel_softmax": {"temperature": 2.0}})
    assert task.estimator("gumbel_softmax").temperature == 2.0
    assert task.estimator("straight_through_gumbel").name == "straight_through_gumbel"
    assert task.estimator("score_function:baseline=loo").baseline == "loo"


@pytest.mark.parametrize("method", BASELINES + ORIGINAL)
def test_run_schema(method):
    task = tiny()
    run = task.run(method, seed=0)
    assert isinstance(run, Run) and run.task == "vqvae_digits" and run.method == method
    assert [p["step"] for p in run.checkpoints] == task.schedule() == [0, 6, 12]
    seconds = [p["seconds"] for p in run.checkpoints]
    assert seconds[0] == 0.0 and all(b >= a for a, b in zip(seconds, seconds[1:]))
    for point in run.checkpoints:
        assert set(point) == set(REQUIRED_KEYS) | {"perplexity"}
        assert all(math.isfinite(v) for v in point.values())
        assert 0.0 <= point["metric"] <= 1.0
        assert 1.0 - 1e-9 <= point["perplexity"] <= task.codebook_size + 1e-9
    # f evaluations per example per update: K = 2 for these (counted, not declared)
    assert run.evaluations_per_update == (1.0 if method == "vq_straight_through" else 2.0)
    # training lowers the objective it optimises (on held-out data)
    assert run.checkpoints[-1]["loss"] < run.checkpoints[0]["loss"]


def test_every_registered_method_trains():
    task = tiny(steps=4, num_checkpoints=2)
    for method in task.methods:
        run = task.run(method, seed=0)
        assert all(math.isfinite(v) for p in run.checkpoints for v in p.values()), method
        assert run.evaluations_per_update >= 1.0, method


def test_deterministic_per_seed_and_rng_untouched():
    task = tiny()
    state = torch.get_rng_state()
    runs = [task.run("score_function:baseline=loo", seed=s) for s in (1, 1, 2)]
    assert torch.equal(torch.get_rng_state(), state)

    def values(run):
        return [{k: v for k, v in p.items() if k != "seconds"} for p in run.checkpoints]

    assert values(runs[0]) == values(runs[1])
    assert values(runs[0]) != values(runs[2])


def test_bad_method_and_options():
    task = tiny()
    with pytest.raises(ValueError, match=r"unknown method 'vq_st'.*available: vq_straight_through"):
        task.run("vq_st")
    with pytest.raises(ValueError, match="num_samples >= 2"):
        tiny(num_samples=1).run("score_function:baseline=loo")
    with pytest.raises(ValueError, match="estimator_options for unknown method"):
        VQVAEDigits(estimator_options={"gumbel": {}})
    with pytest.raises(ValueError, match="codebook_size must be an int >= 2"):
        VQVAEDigits(codebook_size=1)
    with pytest.raises(ValueError, match=r"batch_size \(5000\) must be <= the 1078 training"):
        VQVAEDigits(batch_size=5000).run("vq_straight_through")
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        VQVAEDigits(lr=0.0)
