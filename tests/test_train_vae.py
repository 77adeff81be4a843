"""Tests of the discrete-VAE training tasks (``binary_vae_digits``, ``binary_vae_digits_linear``,
``categorical_vae_digits``) and of the registry-driven methods (tiny configurations, CPU)."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from statcheck import failing_estimator
from torch import distributions as D

import estimators
from estimators.score_function import ScoreFunction
from suite import grid
from suite.registries import TRAINING_TASKS
from suite.train_vae import (
    ORACLE,
    BinaryVAEDigits,
    BinaryVAEDigitsLinear,
    CategoricalVAEDigits,
    configurations,
    exact_terms,
)
from suite.train_vqvae import VQVAEDigits
from suite.training import REQUIRED_KEYS, check_run

TINY = dict(latents=4, hidden=8, steps=6, batch_size=16, num_checkpoints=3, eval_train=32,
            grad_batch=8, grad_replicates=2, num_samples=2)


def tiny(cls=BinaryVAEDigits, **options):
    sizes = dict(TINY, latents=2, classes=3) if cls is CategoricalVAEDigits else dict(TINY)
    return cls(**{**sizes, **options})


class ScratchLOO(ScoreFunction):
    """A plugin-like estimator: LOO score function under another name, no variants."""

    name = "scratch_loo_for_test"
    variants = ()

    def __init__(self):
        super().__init__(baseline="loo")


Broken = failing_estimator("broken_vae_for_test")


@pytest.fixture
def scratch():
    estimators.register(ScratchLOO)
    yield ScratchLOO.name
    estimators.ESTIMATORS.unregister(ScratchLOO.name)


@pytest.fixture
def broken():
    estimators.register(Broken)
    yield Broken.name
    estimators.ESTIMATORS.unregister(Broken.name)


def test_registered_and_methods_from_the_registry(monkeypatch):
    monkeypatch.delenv("ESTIBENCH_ESTIMATORS", raising=False)
    for name, cls in (("binary_vae_digits", BinaryVAEDigits),
                      ("binary_vae_digits_linear", BinaryVAEDigitsLinear),
                      ("categorical_vae_digits", CategoricalVAEDigits)):
        task = TRAINING_TASKS.get(name)
        assert type(task) is cls and task.seeds == (0, 1, 2) and task.higher_is_better
        family = cls.family
        expected = [s for n in estimators.available(kind="gradient")
                    if family in estimators.info(n).info["families"]
                    for s in estimators.info(n).info.get("variants", (n,))]
        assert list(task.methods) == expected == list(cls.methods)
        assert ORACLE in task.methods and "score_function:baseline=loo" in task.methods
    assert BinaryVAEDigitsLinear().hidden == 0 and BinaryVAEDigits().hidden == 32
    assert "arm" in BinaryVAEDigits.methods and "arm" not in CategoricalVAEDigits.methods
    assert "unordered_set" in CategoricalVAEDigits.methods
    assert "exact" not in VQVAEDigits.methods  # 16^4 codes per image: beyond enumeration


def test_a_registered_estimator_becomes_a_method_and_trains(scratch, monkeypatch):
    monkeypatch.delenv("ESTIBENCH_ESTIMATORS", raising=False)
    for cls in (BinaryVAEDigits, CategoricalVAEDigits, VQVAEDigits):
        assert scratch in cls.methods
    run = tiny().run(scratch, seed=0)
    assert run.method == scratch and math.isfinite(run.final["oracle_gap"])
    vq = VQVAEDigits(latents=2, codebook_size=4, code_dim=3, hidden=8, steps=4, batch_size=16,
                     num_samples=2, num_checkpoints=2)
    assert math.isfinite(vq.run(scratch, seed=0).checkpoints[-1]["metric"])


def test_the_environment_narrows_the_methods(monkeypatch):
    monkeypatch.setenv("ESTIBENCH_ESTIMATORS", "score_function,gumbel_softmax,reparam,arm")
    assert BinaryVAEDigits.methods == ("score_function:baseline=none",
                                       "score_function:baseline=moving_average",
                                       "score_function:baseline=loo", "gumbel_softmax", "arm")
    assert CategoricalVAEDigits.methods[-1] == "gumbel_softmax"  # no arm: Bernoulli only
    assert VQVAEDigits.methods[0] == "vq_straight_through"  # the task's baseline stays
    monkeypatch.setenv("ESTIBENCH_ESTIMATORS", "score_function:baseline=loo")
    assert BinaryVAEDigits.methods == ("score_function:baseline=loo",)


def _brute_force(m, enc, dec, x):
    """log p(x) and the ELBO of each image by a Python loop over every configuration, with
    torch.distributions densities (no shared code with exact_terms but the MLP)."""
    from suite.tasks import _mlp
    logits = _mlp(enc, x)
    categorical = hasattr(m, "groups")
    if categorical:
        q = D.Independent(D.OneHotCategorical(logits=logits.unflatten(-1, (m.groups, m.classes))), 1)
        points = [torch.nn.functional.one_hot(torch.tensor(c), m.classes).double()
                  for c in itertools.product(range(m.classes), repeat=m.groups)]
        log_prior = -m.groups * math.log(m.classes)
    else:
        q = D.Independent(D.Bernoulli(logits=logits), 1)
        points = [torch.tensor(c, dtype=torch.float64)
                  for c in itertools.product((0, 1), repeat=m.latent_size)]
        log_prior = -m.latent_size * math.log(2)
    joint, elbo = [], 0.0
    for z in points:
        zb = z.expand(len(x), *z.shape)
        lik = D.Independent(D.Bernoulli(logits=_mlp(dec, zb.flatten(1))), 1).log_prob(x)
        lq = q.log_prob(zb)
        joint.append(lik + log_prior)
        elbo = elbo + lq.exp() * (lik + log_prior - lq)
    return torch.logsumexp(torch.stack(joint), 0), elbo


@pytest.mark.parametrize("cls", [BinaryVAEDigits, BinaryVAEDigitsLinear, CategoricalVAEDigits])
def test_exact_log_px_and_elbo_equal_brute_force(cls):
    task = tiny(cls, latents=3 if cls is not CategoricalVAEDigits else 2)
    m = task.latent_model()
    enc, dec = task.init_params(5)
    enc, dec = [p.detach().double() for p in enc], [p.detach().double() for p in dec]
    x = task.data(0)["test"][:7].double()
    terms = exact_terms(m, enc, dec, x, configurations(m, torch.float64))
    log_px, elbo = _brute_force(m, enc, dec, x)
    torch.testing.assert_close(terms["log_px"], log_px, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(terms["elbo"], elbo, rtol=1e-10, atol=1e-10)
    assert bool((terms["elbo"] <= terms["log_px"] + 1e-12).all())  # the ELBO is a lower bound


@pytest.mark.parametrize("cls", [BinaryVAEDigits, CategoricalVAEDigits])
def test_oracle_gradient_is_the_registered_exact_estimators(cls):
    """The oracle's matrix-form enumeration gives the gradient of estimators.get('exact')."""
    task = tiny(cls)
    m = task.latent_model()
    x = task.data(0)["train"][:5].double()
    grads = []
    for use_registry in (False, True):
        enc, dec = task.init_params(3)
        enc = [p.detach().double().requires_grad_() for p in enc]
        dec = [p.detach().double().requires_grad_() for p in dec]
        if use_registry:
            from suite.tasks import _mlp
            logits = _mlp(enc, x)
            loss = estimators.get("exact")(m._dist(logits), m._cost_fn(x, dec, logits), 1)
        else:
            loss = -exact_terms(m, enc, dec, x, configurations(m, torch.float64))["elbo"].sum()
        loss.backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in enc + dec]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("cls", [BinaryVAEDigits, CategoricalVAEDigits])
def test_oracle_improves_and_run_schema(cls):
    task = tiny(cls, steps=20, lr=3e-2)
    run = task.run(ORACLE, seed=0)
    check_run(task, run)
    first, last = run.checkpoints[0], run.checkpoints[-1]
    assert last["train_elbo"] > first["train_elbo"] and last["test_elbo"] > first["test_elbo"]
    assert last["metric"] > first["metric"]
    for point in run.checkpoints:
        assert set(point) == set(REQUIRED_KEYS) | set(task.checkpoint_measures)
        assert point["test_elbo"] <= point["metric"] + 1e-6  # ELBO <= log p(x)
        assert point["grad_variance"] == 0.0
    configs = task.classes ** task.latents
    assert [p["f_evaluations"] for p in run.checkpoints] == [0.0, 10.0 * configs, 20.0 * configs]
    assert run.final["oracle_gap"] == 0.0 == run.final["oracle_elbo_gap"]
    assert run.final["steps_to_fraction"] <= 20


def test_estimator_run_measures_its_gradients_and_evaluations():
    task = tiny()
    run = task.run("score_function:baseline=loo", seed=1)
    check_run(task, run)
    assert all(p["grad_variance"] > 0 for p in run.checkpoints)
    assert all(0.0 <= p["grad_relative_bias"] < math.inf for p in run.checkpoints)
    assert [p["f_evaluations"] for p in run.checkpoints] == [0.0, 6.0, 12.0]  # K=2 per update
    assert run.evaluations_per_update == 2.0
    # the oracle of the seed is the reference of the gap
    assert run.final["oracle_gap"] == pytest.approx(
        task.oracle(1).checkpoints[-1]["metric"] - run.checkpoints[-1]["metric"])
    # every method starts from the same initialisation: identical step-0 exact measures
    assert run.checkpoints[0]["metric"] == task.oracle(1).checkpoints[0]["metric"]


def test_same_seed_same_numbers_and_rng_untouched():
    state = torch.get_rng_state()
    runs = [tiny().run("relax", seed=s) for s in (1, 1, 2)]
    assert torch.equal(torch.get_rng_state(), state)

    def values(run):
        return [{k: v for k, v in p.items() if k != "seconds"} for p in run.checkpoints]

    assert values(runs[0]) == values(runs[1])
    assert values(runs[0]) != values(runs[2])


class _TinyGrid(BinaryVAEDigits):
    name = "tiny_vae_for_test"
    seeds = (0, 1)

    def __init__(self, **options):
        super().__init__(**{**TINY, **options})


def test_a_failing_method_fails_only_its_own_runs(broken, monkeypatch):
    monkeypatch.setenv("ESTIBENCH_ESTIMATORS", f"exact,score_function:baseline=loo,{broken}")
    TRAINING_TASKS.register(_TinyGrid.name)(_TinyGrid)
    try:
        assert _TinyGrid.methods == (ORACLE, "score_function:baseline=loo", broken)
        out = grid.run_task(_TinyGrid.name)
    finally:
        TRAINING_TASKS.unregister(_TinyGrid.name)
    assert sorted(out["errors"]) == [(broken, 0), (broken, 1)]
    assert "this estimator always fails" in out["errors"][(broken, 0)]
    assert sorted(out["final"]) == [(ORACLE, 0), (ORACLE, 1), ("score_function:baseline=loo", 0),
                                    ("score_function:baseline=loo", 1)]


def test_bad_options():
    with pytest.raises(ValueError, match="more than max_configurations"):
        BinaryVAEDigits(latents=20)
    with pytest.raises(ValueError, match="Bernoulli latents have 2 classes"):
        BinaryVAEDigits(classes=3)
    with pytest.raises(ValueError, match="unknown method"):
        tiny().run("no_such_estimator")
    with pytest.raises(ValueError, match="num_samples >= 2"):
        tiny(num_samples=1).run("score_function:baseline=loo")
