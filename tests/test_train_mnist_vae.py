"""Tests of the literature-scale discrete VAEs on binarized MNIST (``suite.train_mnist_vae``,
``suite.mnist_models``, ``suite.data_mnist``; issue 23): smoke-tier training of every method, the
data readers, dynamic binarization, seeds, the importance-weighted bound and its standard error, the step floor."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import estimators
from estimators.score_function import ScoreFunction
from suite import data_mnist
from suite.methods import example_distribution
from suite.mnist_models import Model, iwae_terms, samples_for_budget
from suite.registries import TRAINING_TASKS
from suite.train_mnist_vae import (
    BinaryVAEMNISTLinear,
    BinaryVAEMNISTLinearK4,
    BinaryVAEMNISTNonlinear,
    BinaryVAEMNISTNonlinearK4,
    CategoricalVAEMNIST,
    floor_step_ratio,
)
from suite.training import check_run

NAMES = {"binary_vae_mnist_linear": BinaryVAEMNISTLinear,
         "binary_vae_mnist_nonlinear": BinaryVAEMNISTNonlinear,
         "binary_vae_mnist_linear_k4": BinaryVAEMNISTLinearK4,
         "binary_vae_mnist_nonlinear_k4": BinaryVAEMNISTNonlinearK4,
         "categorical_vae_mnist": CategoricalVAEMNIST}


class ScratchLOO(ScoreFunction):
    """A plugin-like estimator: LOO score function under another name."""

    name = "scratch_loo_for_mnist_test"
    variants = ()

    def __init__(self):
        super().__init__(baseline="loo")


@pytest.fixture
def scratch():
    estimators.register(ScratchLOO)
    yield ScratchLOO.name
    estimators.ESTIMATORS.unregister(ScratchLOO.name)


def test_registered_with_registry_methods_and_no_exact(monkeypatch, scratch):
    monkeypatch.delenv("ESTIBENCH_ESTIMATORS", raising=False)
    for name, cls in NAMES.items():
        task = TRAINING_TASKS.get(name)
        assert type(task) is cls and task.tier == "default" and task.seeds == (0, 1, 2)
        everything = [s for n in estimators.available(kind="gradient")
                      if cls.family in estimators.info(n).info["families"]
                      for s in estimators.info(n).info.get("variants", (n,))
                      if n != "exact"]
        smoke = cls(tier="smoke")
        # smoke: every estimator of the family that supports 200 latents (exact refuses them)
        assert "exact" not in smoke.methods and scratch in smoke.methods
        assert set(smoke.methods) == {s for s in everything
                                      if estimators.get(s).supports(smoke._example())}
        # default: the same less what breaks the equal-cost rule by more than max_overrun
        assert set(task.methods) == set(smoke.methods) - set(task.excluded_methods())
        assert "score_function:baseline=loo" in task.methods and scratch in task.methods
    assert "indecater" in BinaryVAEMNISTLinear().excluded_methods()
    assert "arm" in BinaryVAEMNISTLinear.methods and "arm" not in CategoricalVAEMNIST.methods


def test_equal_evaluation_budget():
    task = BinaryVAEMNISTLinear(tier="smoke")
    dist = task._example()
    got = {(spec, k): samples_for_budget(estimators.get(spec), dist, k)
           for spec in ("disarm", "relax", "muprop", "score_function:baseline=loo", "indecater")
           for k in (2, 4)}
    assert got == {("disarm", 2): 2, ("disarm", 4): 4, ("relax", 2): 1, ("relax", 4): 1,
                   ("muprop", 2): 1, ("muprop", 4): 3, ("score_function:baseline=loo", 2): 2,
                   ("score_function:baseline=loo", 4): 4, ("indecater", 2): 1,
                   ("indecater", 4): 1}


def _check(task, run, method):
    check_run(task, run)
    last = run.checkpoints[-1]
    for key in ("metric", "loss", "train_elbo", "test_elbo", "test_iwae_se", "grad_variance"):
        assert math.isfinite(last[key]), (method, key, last[key])
    assert last["test_iwae_se"] > 0 and last["grad_variance"] >= 0
    assert last["metric"] > -last["loss"] - 3 * last["test_iwae_se"]  # IWAE >= ELBO
    assert last["f_evaluations"] > 0 and run.final["samples_per_estimate"] >= 1


def test_smoke_tier_trains_every_method_of_every_task(scratch):
    """Every applicable estimator (a plugin's included) trains and records the measures; the f
    evaluations count what the equal-cost rule gives each estimator."""
    linear = BinaryVAEMNISTLinear(tier="smoke")
    assert linear.schedule() == [0, 4]
    per_step = {}
    for method in linear.methods:
        run = linear.run(method, seed=0)
        _check(linear, run, method)
        per_step[method] = run.checkpoints[-1]["f_evaluations"] / linear.steps
    assert per_step["score_function:baseline=loo"] == per_step["disarm"] == 2
    assert per_step["relax"] == 3 and per_step["indecater"] == 400
    assert per_step[scratch] == 2
    for cls in (BinaryVAEMNISTNonlinear, CategoricalVAEMNIST):
        task = cls(tier="smoke", steps=2)
        for method in task.methods:
            _check(task, task.run(method, seed=1), method)


def test_gradient_variance_orders_the_baselines():
    """At initialisation the leave-one-out baseline's encoder-gradient variance is far below
    REINFORCE without a baseline (~10^3 x on this model)."""
    task = BinaryVAEMNISTLinear(tier="smoke", grad_replicates=8, grad_batch=16)
    held = task.held_out()
    variance = {m: float(task.trainer(m, 0).gradient_variance(held["grad"]))
                for m in ("score_function:baseline=none", "score_function:baseline=loo")}
    assert variance["score_function:baseline=loo"] * 30 < variance["score_function:baseline=none"]


# -- data ----------------------------------------------------------------------------------------
def test_subset_split_is_fixed_and_disjoint():
    split = data_mnist.mnist_subset()
    assert {k: v.shape for k, v in split.items()} == {"train": (4000, 784), "valid": (500, 784),
                                                      "test": (500, 784)}
    rows = {k: {r.tobytes() for r in v} for k, v in split.items()}
    assert not rows["train"] & rows["test"] and not rows["valid"] & rows["test"]
    assert all(v.dtype == np.float32 and 0 <= v.min() and v.max() <= 1 for v in split.values())
    assert 0.1 < split["train"].mean() < 0.2  # MNIST's mean intensity is ~0.13


def _as_uint8(a):
    return np.rint(a * 255).astype(np.uint8).reshape(len(a), 28, 28)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz, monkeypatch):
    split = data_mnist.mnist_subset()
    train = np.concatenate([split["train"], split["valid"]])[:1200]
    folder = tmp_path / "mnist"
    folder.mkdir()
    suffix = ".gz" if gz else ""
    data_mnist.write_idx(folder / f"train-images-idx3-ubyte{suffix}", _as_uint8(train))
    data_mnist.write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", _as_uint8(split["test"]))
    assert data_mnist.read_idx(folder / f"t10k-images-idx3-ubyte{suffix}").shape == (500, 28, 28)
    monkeypatch.setitem(data_mnist.DATASETS, "mnist", (data_mnist.DATASETS["mnist"][0],
                                                       ("mnist.npz",), 200))
    got = data_mnist.load_dataset("mnist", tmp_path)
    np.testing.assert_array_equal(got["train"], train[:1000])
    np.testing.assert_array_equal(got["valid"], train[1000:])
    np.testing.assert_array_equal(got["test"], split["test"])
    # through the setting, as a task reads it
    monkeypatch.setenv("ESTIBENCH_DATA_DIR", str(tmp_path))
    task = BinaryVAEMNISTLinear(tier="smoke", dataset="mnist")
    np.testing.assert_array_equal(task.data()["test"], split["test"])


def test_npz_round_trip_and_errors(tmp_path):
    split = data_mnist.mnist_subset()
    np.savez_compressed(tmp_path / "omniglot.npz", x_train=_as_uint8(split["train"]),
                        x_test=split["test"])  # floats in [0, 1] are kept as they are
    got = data_mnist.load_dataset("omniglot", tmp_path)
    np.testing.assert_array_equal(got["train"], split["train"][:-1345])
    np.testing.assert_array_equal(got["valid"], split["train"][-1345:])
    np.testing.assert_array_equal(got["test"], split["test"])
    np.savez(tmp_path / "fashion_mnist.npz", x_train=_as_uint8(split["train"]),
             x_valid=_as_uint8(split["valid"]), x_test=_as_uint8(split["test"]))
    got = data_mnist.load_dataset("fashion_mnist", tmp_path)
    np.testing.assert_array_equal(got["valid"], split["valid"])
    assert len(got["train"]) == 4000  # a validation array given: the training set is kept whole
    with pytest.raises(FileNotFoundError, match="mnist"):
        data_mnist.load_dataset("mnist", tmp_path)
    with pytest.raises(ValueError, match="ESTIBENCH_DATA_DIR"):
        data_mnist.load_dataset("mnist", "")
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="IDX"):
        data_mnist.read_idx(tmp_path / "bad")


def test_dynamic_binarization_resamples_every_epoch_and_is_shared_by_methods():
    task = BinaryVAEMNISTLinear(tier="smoke")
    a = task.trainer("score_function:baseline=loo", seed=3)
    b = task.trainer("gumbel_softmax", seed=3)
    per_epoch = a.per_epoch
    assert per_epoch == 4000 // 50
    steps = [0, 1, per_epoch - 1, per_epoch, per_epoch + 5]
    for s in steps:  # the same data order and binarization for every method
        torch.testing.assert_close(a.batch(s), b.batch(s), rtol=0, atol=0)
    # replay the order: image i's binarization in epoch 0 and epoch 1
    orders = [torch.randperm(4000, generator=a._generator(0, e))[:per_epoch * 50]
              for e in range(2)]
    epochs = []
    for e in range(2):
        x = torch.cat([a.batch(e * per_epoch + j) for j in range(per_epoch)])
        position = torch.empty(4000, dtype=torch.long)
        position[orders[e]] = torch.arange(len(orders[e]))
        epochs.append(x[position[orders[0][:1000]]])  # images seen in both epochs
    assert set(epochs[0].unique().tolist()) == {0.0, 1.0}
    changed = (epochs[0] != epochs[1]).any(1).float().mean()
    assert changed > 0.99  # resampled: almost every image's pixels differ between epochs
    intensity = torch.as_tensor(np.array(task.data()["train"]))[orders[0][:1000]]
    assert (epochs[0][intensity == 0] == 0).all() and (epochs[0][intensity == 1] == 1).all()
    assert abs(float(epochs[0].mean() + epochs[1].mean()) / 2 - float(intensity.mean())) < 2e-3
    c = task.trainer("score_function:baseline=loo", seed=4)
    assert not torch.equal(c.batch(0), a.batch(0))  # another seed: another order


def test_seeds_give_every_method_the_same_initialisation():
    task = BinaryVAEMNISTNonlinear(tier="smoke")
    one = task.trainer("disarm", seed=5).model.parameters()
    two = task.trainer("relax", seed=5).model.parameters()
    other = task.trainer("disarm", seed=6).model.parameters()
    assert len(one) == 13  # 3 + 3 layers, weights and biases, and the prior
    assert all(torch.equal(p, q) for p, q in zip(one, two))
    assert not torch.equal(one[0], other[0])
    mean = torch.as_tensor(np.array(task.data()["train"].mean(0))).clamp(0.001, 0.999)
    torch.testing.assert_close(torch.sigmoid(one[-2]), mean)  # decoder output bias
    assert torch.equal(one[-1], torch.zeros(200))  # uniform prior
    run_a = task.run("disarm", seed=5)
    run_b = task.run("relax", seed=5)
    first = {k: v for k, v in run_a.checkpoints[0].items() if k not in ("grad_variance",)}
    assert first == {k: v for k, v in run_b.checkpoints[0].items() if k != "grad_variance"}


# -- the bound -----------------------------------------------------------------------------------
def _tiny(kind: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    latents, classes = (6, 2) if kind == "binary" else (2, 3)
    size = latents * (classes if kind == "categorical" else 1)
    enc = [torch.randn(784, size, generator=g) * 0.05, torch.randn(size, generator=g)]
    dec = [torch.randn(size, 784, generator=g) * 0.3, torch.randn(784, generator=g) - 1.5]
    prior = torch.randn((latents, classes) if kind == "categorical" else (latents,), generator=g)
    model = Model(kind, latents, classes, 0.0, enc, dec, prior)
    x = (torch.rand(12, 784, generator=g) < 0.15).float()
    if kind == "binary":
        z = torch.tensor(list(itertools.product((0.0, 1.0), repeat=latents)))
    else:
        z = torch.stack([torch.nn.functional.one_hot(torch.tensor(c), classes).float()
                         for c in itertools.product(range(classes), repeat=latents)])
    exact = torch.logsumexp(model.log_joint(x, z[:, None]), 0)  # [12]: log sum_z p(x, z)
    return model, x, exact


@pytest.mark.parametrize("kind", ["binary", "categorical"])
def test_iwae_bound_is_above_the_elbo_and_approaches_the_exact_log_likelihood(kind):
    torch.manual_seed(0)
    model, x, exact = _tiny(kind)
    big = iwae_terms(model, x, 5_000)
    repeats = 200
    small = iwae_terms(model, x.repeat(repeats, 1), 10)
    small = {k: v.view(repeats, len(x)) for k, v in small.items()}
    mean_small = small["log_px"].mean(0)
    noise = small["log_px"].std(0) / math.sqrt(repeats)
    # E[bound_S] <= log p(x) (enumerated), and the bound tightens with S to meet it
    assert bool((mean_small <= exact + 4 * noise).all())
    assert bool(((big["log_px"] - exact).abs() < 4 * big["var"].sqrt() + 1e-2).all())
    assert float((big["log_px"] - exact).abs().max()) < 0.25
    assert float((exact - mean_small).mean()) > 5 * float((exact - big["log_px"]).abs().mean())
    # above the ELBO on average; the ELBO (the same log weights' mean) is below log p(x) by
    # KL(q || p(z|x)) >= 0 and the same whatever S
    assert bool((mean_small > small["elbo"].mean(0)).all())
    assert float((big["elbo"] - small["elbo"].mean(0)).abs().max()) < 0.5
    assert float((exact - big["elbo"]).min()) > 0


def test_iwae_standard_error_matches_the_spread_of_repeats():
    torch.manual_seed(1)
    model, x, _ = _tiny("binary", seed=3)
    repeats = torch.stack([iwae_terms(model, x, 200)["log_px"] for _ in range(60)])
    stated = iwae_terms(model, x, 200)["var"].sqrt()
    ratio = repeats.std(0) / stated
    assert 0.6 < float(ratio.median()) < 1.6


def test_training_step_floor_ratio_is_measured():
    out = floor_step_ratio(pairs=7)
    assert out["plain_seconds"] > 0 and out["suite_seconds"] > 0
    assert 0.5 < out["ratio"] < 2.0  # the benchmark's target is 1.15; loose under shared load


def test_the_binary_literature_tasks_are_in_the_default_grid_the_categorical_in_the_full():
    from estibench.settings import Settings
    from suite import grid

    default = set(grid.training_task_names(Settings()))
    assert set(NAMES) & default == {"binary_vae_mnist_linear", "binary_vae_mnist_nonlinear"}
    assert set(NAMES) <= set(grid.training_task_names(Settings(grid="full")))
    assert grid.training_task_names(Settings(training_tasks=("binary_vae_mnist_linear",))) \
        == ["binary_vae_mnist_linear"]


def test_the_k4_tasks_double_the_budget_of_f_evaluations():
    """K = 4: every method gets the most samples whose evaluations fit 4 (DisARM 2 pairs, LOO 4,
    RELAX 1 at 3 evaluations), from the class (the grid's listing) and from an instance alike."""
    for k2, k4 in ((BinaryVAEMNISTLinear, BinaryVAEMNISTLinearK4),
                   (BinaryVAEMNISTNonlinear, BinaryVAEMNISTNonlinearK4)):
        assert (k2().num_samples, k4().num_samples, k4(num_samples=2).num_samples) == (2, 4, 2)
        assert k4.architecture == k2.architecture and k4.methods == k4().methods
        dist = example_distribution("Bernoulli", (50,), (200,))
        samples = {m: samples_for_budget(estimators.get(m), dist, 4)
                   for m in ("disarm", "score_function:baseline=loo", "relax")}
        assert samples == {"disarm": 4, "score_function:baseline=loo": 4, "relax": 1}


def test_the_tier_setting_sizes_the_tasks(monkeypatch):
    monkeypatch.setenv("ESTIBENCH_TIER", "smoke")
    from suite.train_mnist_vae import TIERS, BinaryVAEMNISTLinear

    assert BinaryVAEMNISTLinear().tier == "smoke"
    assert BinaryVAEMNISTLinear(tier="paper").steps == TIERS["paper"]["steps"]
