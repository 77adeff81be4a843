"""Gradient tasks at trained checkpoints of the 200-latent MNIST VAEs (``suite.tasks_mnist``,
issue 23) and the estimated reference they need: its covariance entering the statistics and the
claim test in quadrature (``suite.measure.statistics``, ``suite.claims.claim_test``), the
local-expectation reference against exact enumeration, and a narrowed grid cell on the new task.

Statistical checks use fixed seeds; each states the failure rate its tolerance allows for a
correct implementation."""
from __future__ import annotations

import math
import pickle

import pytest
import torch
from scipy import stats
from torch import distributions as D

import estimators
from estibench.settings import Settings
from suite import grid, measure, results, tasks, tasks_mnist
from suite.claims import ALPHA as ALPHA_CLAIM
from suite.claims import POWER, claim_test, quadratic_form, replicates_needed
from suite.mnist_models import Model
from suite.taskbase import reference_is_estimate, reference_kind

ALPHA = 0.01
TRIALS = 300
P, R = 20, 200
SIGMA = 1.0  # the estimates' per-coordinate sd: the mean's se is SIGMA / sqrt(R) ~ 0.071


def _synthetic(seed: int, ref_sd: torch.Tensor, bias: float = 0.0, corr: torch.Tensor | None = None):
    """TRIALS draws of (estimates G [R, P] around (1 + bias) g*, a noisy reference g* + ε)."""
    gen = torch.Generator().manual_seed(seed)
    g_star = torch.linspace(1.0, 2.0, P, dtype=torch.float64)
    for _ in range(TRIALS):
        G = (1 + bias) * g_star + SIGMA * torch.randn(R, P, generator=gen, dtype=torch.float64)
        noise = torch.randn(P, generator=gen, dtype=torch.float64)
        eps = ref_sd * noise if corr is None else corr @ noise
        yield G, g_star + eps


# -- the quadrature formulas on synthetic estimates -------------------------------------------
def test_a_noisy_reference_alarms_without_its_covariance_and_not_with_it():
    """An unbiased estimator against a reference 3x noisier than the mean estimate: with the
    reference's variances the claim test's false-alarm rate stays at most ALPHA (at most 8 of
    300 when 3 are expected: binomial tail P(X >= 9) = 0.4 %), without them it alarms nearly
    always."""
    ref_sd = torch.full((P,), 3 * SIGMA / math.sqrt(R), dtype=torch.float64)
    with_cov = without = 0
    for G, g in _synthetic(0, ref_sd):
        with_cov += claim_test(G, g, alpha=ALPHA, reference_cov=ref_sd ** 2).rejects(ALPHA)
        without += claim_test(G, g, alpha=ALPHA).rejects(ALPHA)
    assert with_cov <= 8, with_cov
    assert without >= 0.9 * TRIALS, without


def test_a_correlated_reference_error_is_tested_with_its_full_matrix():
    """The reference's error along g (all coordinates moving together) is what the along-g test
    sees: with the full matrix the false-alarm rate stays at most ALPHA (same tolerance as
    above); the diagonal alone understates it and alarms more than that."""
    se = SIGMA / math.sqrt(R)
    corr = torch.full((P, P), 0.0, dtype=torch.float64)
    corr[:, 0] = 1.5 * se  # one common error on every coordinate, plus a small private one
    corr += torch.diag(torch.full((P,), 0.3 * se, dtype=torch.float64))
    cov = corr @ corr.T
    full = diagonal = 0
    for G, g in _synthetic(1, None, corr=corr):
        full += claim_test(G, g, alpha=ALPHA, reference_cov=cov).rejects(ALPHA)
        diagonal += claim_test(G, g, alpha=ALPHA, reference_cov=cov.diagonal()).rejects(ALPHA)
    assert full <= 8, full
    assert diagonal > 8, diagonal


def test_the_bias_and_mse_subtract_the_reference_variance():
    """A 30 % biased estimator against a reference whose own relative error is 30 %: with the
    reference's variances the squared bias measure averages 0.09 over the trials and the MSE the
    estimates' true MSE (each within 4 standard errors of the trials' mean: 6e-5 failure rate);
    without them both are inflated by the reference's variance."""
    g_star = torch.linspace(1.0, 2.0, P, dtype=torch.float64)
    ref_sd = torch.full((P,), 0.3 * float(g_star.norm()) / math.sqrt(P), dtype=torch.float64)
    with_cov, without, mse_with, mse_without = [], [], [], []
    for G, g in _synthetic(2, ref_sd, bias=0.3):
        a, b = measure.statistics(G, g, ref_sd ** 2), measure.statistics(G, g)
        with_cov.append(a["bias"] ** 2)
        without.append(b["bias"] ** 2)
        mse_with.append(a["mse"])
        mse_without.append(b["mse"])
    with_cov, without = torch.tensor(with_cov), torch.tensor(without)
    mse_with, mse_without = torch.tensor(mse_with), torch.tensor(mse_without)
    true_mse = P * SIGMA ** 2 + float((0.3 * g_star).pow(2).sum())
    assert abs(with_cov.mean() - 0.09) < 4 * with_cov.std() / math.sqrt(TRIALS)
    assert without.mean() > 0.09 + 0.05  # + tr C / ||g||² = 0.09 on average
    assert abs(mse_with.mean() - true_mse) < 4 * mse_with.std() / math.sqrt(TRIALS)
    assert mse_without.mean() - true_mse > 0.5 * float((ref_sd ** 2).sum())


def test_the_reference_sets_a_floor_on_the_detectable_bias():
    gen = torch.Generator().manual_seed(3)
    g = torch.linspace(1.0, 2.0, P, dtype=torch.float64)
    G = g + torch.randn(R, P, generator=gen, dtype=torch.float64)
    cov = torch.full((P,), 0.02, dtype=torch.float64)
    exact, noisy = claim_test(G, g), claim_test(G, g, reference_cov=cov)
    assert exact.reference_bias == 0.0 and noisy.reference_bias > 0
    assert noisy.detectable_bias ** 2 == pytest.approx(
        exact.detectable_bias ** 2 + noisy.reference_bias ** 2, rel=1e-9)
    t = stats.t(R - 1)
    along = float((quadratic_form(cov, g / g.norm()) + 2 * cov.pow(2).sum() / g.norm() ** 2
                   ).sqrt() / g.norm())
    assert noisy.reference_bias == pytest.approx((t.isf(ALPHA_CLAIM / 4) + t.isf(1 - POWER))
                                                 * along, rel=1e-12)
    # below the floor no R helps: no more replicates; above it the R that reaches the target
    assert replicates_needed(noisy, noisy.reference_bias * 0.9) == R
    target = 0.5 * (noisy.reference_bias + noisy.detectable_bias)
    need = replicates_needed(noisy, target)
    est2 = noisy.detectable_bias ** 2 - noisy.reference_bias ** 2
    assert need > R and math.sqrt(est2 * R / need + noisy.reference_bias ** 2) <= target + 1e-12
    # a zero covariance gives the exact reference's numbers (to rounding)
    zero = measure.statistics(G, g, torch.zeros(P, dtype=torch.float64))
    for key, value in measure.statistics(G, g).items():
        assert zero[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_a_covariance_of_the_wrong_shape_is_refused():
    G, g = torch.randn(10, 3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"reference covariance has shape \(4,\); expected \(3,\)"):
        measure.statistics(G, g, torch.ones(4))
    with pytest.raises(ValueError, match=r"reference covariance has shape \(2, 2\)"):
        claim_test(G, g, reference_cov=torch.eye(2))


# -- the local-expectation reference against enumeration ---------------------------------------
def _small_vae(latents: int = 8, images: int = 3, pixels: int = 16, seed: int = 0):
    """A small Bernoulli VAE (tanh-free LeakyReLU MLP decoder) whose 2^8 states enumerate."""
    gen = torch.Generator().manual_seed(seed)
    dec = [torch.randn(latents, 12, generator=gen, dtype=torch.float64),
           torch.randn(12, generator=gen, dtype=torch.float64) * 0.1,
           torch.randn(12, pixels, generator=gen, dtype=torch.float64),
           torch.randn(pixels, generator=gen, dtype=torch.float64) * 0.1]
    prior = torch.randn(latents, generator=gen, dtype=torch.float64) * 0.5
    model = Model("binary", latents, 2, 0.3, [], dec, prior)
    x = (torch.rand(images, pixels, generator=gen) < 0.5).double()
    logits = torch.randn(images, latents, generator=gen, dtype=torch.float64)
    return model, x, logits


def _exact_gradient(model, x, logits):
    leaf = logits.clone().requires_grad_()
    estimators.get("exact")(D.Independent(D.Bernoulli(logits=leaf), 1),
                            model.cost_fn(x, leaf), 1).backward()
    return leaf.grad


def test_the_local_expectation_reference_equals_enumeration_within_its_se():
    """Every coordinate within 4.5 stated standard errors of the exact gradient (two-sided
    normal tail 6.8e-6 x 24 coordinates: 2e-4 failure rate), and the stated se is the real
    spread: over 40 independent references the spread per coordinate is the stated se to within
    a factor 1.35 (median over coordinates; the sd of 40 draws is off by 11 % on average)."""
    model, x, logits = _small_vae()
    exact = _exact_gradient(model, x, logits)
    f = model.cost_fn(x, logits)
    mean, c = tasks_mnist.local_expectation(logits, f, 2000, torch.Generator().manual_seed(1))
    se = c.std(0) / math.sqrt(c.shape[0])
    z = (mean - exact) / se
    assert z.abs().max() < 4.5, z
    assert (se / exact.abs().max()).max() < 0.05  # precise enough to be a test at all
    runs = [tasks_mnist.local_expectation(logits, f, 32, torch.Generator().manual_seed(10 + i))
            for i in range(40)]
    spread = torch.stack([m for m, _ in runs]).std(0)
    stated = torch.stack([cc.std(0) / math.sqrt(cc.shape[0]) for _, cc in runs]).mean(0)
    ratio = float((spread / stated).median())
    assert 1 / 1.35 < ratio < 1.35, ratio


def test_local_expectation_refuses_bad_input():
    model, x, logits = _small_vae()
    with pytest.raises(ValueError, match=r"logits must be \[B, D\], got \(8,\)"):
        tasks_mnist.local_expectation(logits[0], model.cost_fn(x, logits), 4,
                                      torch.Generator())
    with pytest.raises(ValueError, match="need pairs >= 2"):
        tasks_mnist.local_expectation(logits, model.cost_fn(x, logits), 1, torch.Generator())


# -- the tasks ------------------------------------------------------------------------------------
SMALL = "vae_mnist_linear:steps=10,pairs=16,images=2"


@pytest.fixture(scope="module")
def small_task():
    task = tasks.build_task(SMALL)
    task.reference()
    return task


def test_the_tasks_are_registered_as_estimated_and_out_of_the_default_grid(monkeypatch):
    monkeypatch.delenv("ESTIBENCH_TASKS", raising=False)
    monkeypatch.delenv("ESTIBENCH_GRID", raising=False)
    for name in ("vae_mnist_linear", "vae_mnist_nonlinear"):
        assert reference_is_estimate(name)
        assert reference_kind(name).startswith("estimate: local expectation")
        assert name not in grid.task_names() and name in grid.task_names(full=True)
    assert reference_kind("vae_bernoulli_linear") == "enumeration"
    assert not reference_is_estimate("bernoulli_t045")
    assert "vae_bernoulli_linear" in grid.task_names()
    monkeypatch.setenv("ESTIBENCH_GRID", "full")
    assert "vae_mnist_linear" in grid.task_names()
    monkeypatch.setenv("ESTIBENCH_GRID", "default")
    monkeypatch.setenv("ESTIBENCH_TASKS", "vae_mnist_linear")  # a named narrowing runs it
    assert grid.task_names() == ["vae_mnist_linear"]


def test_the_task_is_deterministic_and_carries_its_reference_covariance(small_task):
    problem = small_task.problem(3)
    assert problem.leaves[0].shape == (3, 2, 200)
    g, cov, se = (small_task.reference(), small_task.reference_covariance(),
                  small_task.reference_se())
    assert g.shape == (400,) and cov.shape == (400, 400) and torch.allclose(se ** 2, cov.diagonal(), rtol=1e-12, atol=0)
    assert torch.count_nonzero(cov[:200, 200:]) == 0  # images are independent: block-diagonal
    rel = small_task.reference_relative_se()
    assert rel == pytest.approx(float(se.norm() / g.norm())) and 0 < rel < 0.5
    again = pickle.loads(pickle.dumps(small_task))  # the built task the grid ships
    assert torch.equal(again.reference(), g) and torch.equal(again.reference_covariance(), cov)
    assert not hasattr(again, "_le")
    rebuilt = tasks.build_task(SMALL)
    assert torch.equal(rebuilt.reference(), g)


def test_the_reference_estimates_what_the_estimators_estimate(small_task):
    """The unbiased LOO estimator's mean over 2,000 replicates (K = 4) agrees with the
    local-expectation reference: the claim test, with the reference's covariance, does not
    reject at its alpha = 1e-3 (the test's own false-alarm rate)."""
    torch.manual_seed(0)
    G = measure.replicate_estimates(estimators.get("score_function:baseline=loo"), small_task,
                                    4, 2000, dtype=torch.float64)
    test = claim_test(G, small_task.reference(), reference_cov=small_task.reference_covariance())
    assert not test.rejects(), test


def test_a_narrowed_grid_cell_on_the_task_completes(small_task):
    """The grid's own cell on the task (one estimator, K = 4): its measures, the reference's
    relative error, and the run file's harness row naming the reference."""
    settings = Settings(tasks=(SMALL,), estimators=("disarm",), num_samples=(4,), workers=1)
    cells = grid.compute_grid(settings)["cells"]
    cell = cells[(SMALL, "disarm", 4, "cpu")]
    assert cell["status"] == "ok", cell.get("error")
    values = cell["values"]
    assert values["reference_error"] == pytest.approx(small_task.reference_relative_se())
    assert set(measure.QUALITY_MEASURES) <= set(values) and values["replicates"] >= 8
    rows = results.gradient_rows(cells, measure.WARMUP_CALLS, tasks.bias_target)
    (ref,) = [r for r in rows if r["measure"] == "reference_error"]
    assert ref["group"] == "harness" and ref["task"] == SMALL
    assert ref["reference_kind"].startswith("estimate: local expectation")
    assert "16 antithetic pairs" in ref["reference_kind"]  # as built, not as registered (256)
    assert ref["value"] == values["reference_error"]
    assert not any(r["measure"] in ("reference_error", "reference_kind")
                   and r["group"] == "gradient" for r in rows)


def test_an_exact_task_records_a_zero_reference_error(monkeypatch):
    task = tasks.build_task("bernoulli_t045")
    assert task.reference_covariance() is None and task.reference_se() is None
    assert task.reference_relative_se() == 0.0
    values = measure.measure_cell(lambda: estimators.get("disarm"), task, 2)
    assert values["reference_error"] == 0.0
    rows = results.gradient_rows({("bernoulli_t045", "disarm", 2, "cpu"):
                                  {"status": "ok", "values": values}}, 5, tasks.bias_target)
    (ref,) = [r for r in rows if r["measure"] == "reference_error"]
    assert ref["value"] == 0.0 and ref["reference_kind"] == "closed form"
