"""Landscape probes (suite.probes), experiments (suite.landscape), their benchmarks and report
(issue 15): the probe formulas on a quadratic of known smoothness, the (L0, L1) fit on synthetic
data, the clipping factors, determinism for a seed, the training-loop hook, and the figures."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from suite import landscape as L
from suite.probes import LandscapeProbe, direction_probe, fit_l0_l1

EIGS = torch.tensor([4.0, 2.0, 1.0, 0.5], dtype=torch.float64)


def _quadratic(x):
    return lambda: 0.5 * (x * EIGS * x).sum()  # 0.5 x'Ax with A = diag(EIGS)


def test_effective_beta_of_a_quadratic_is_its_largest_eigenvalue_along_the_top_direction():
    x = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    out = direction_probe([x], _quadratic(x), etas=(0.01, 0.1, 0.2))
    assert out["effective_beta"] == pytest.approx(float(EIGS.max()), rel=1e-12)
    # loss along -g: 0.5 λ (1 - ηλ)^2, range over η in {0, .01, .1, .2}
    losses = [0.5 * 4 * (1 - e * 4) ** 2 for e in (0.0, 0.01, 0.1, 0.2)]
    assert out["loss_range"] == pytest.approx(max(losses) - min(losses), rel=1e-12)
    assert out["gradient_change_range"] == pytest.approx(0.2 * 4 * 4, rel=1e-12)
    assert torch.equal(x.detach(), torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))  # restored
    assert x.grad is None  # .grad untouched


def test_effective_beta_is_bounded_by_the_largest_eigenvalue_in_any_direction():
    x = torch.tensor([0.3, -1.0, 2.0, 1.0], dtype=torch.float64, requires_grad=True)
    out = direction_probe([x], _quadratic(x), etas=(0.05, 0.1))
    g = EIGS * x.detach()
    assert out["effective_beta"] == pytest.approx(float((EIGS * g).norm() / g.norm()), rel=1e-12)
    assert float(EIGS.min()) <= out["effective_beta"] <= float(EIGS.max())


def test_step_smoothness_on_a_quadratic_is_between_the_extreme_eigenvalues():
    x = torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64, requires_grad=True)
    probe = LandscapeProbe(lr=0.1, direction_every=3)
    closure = _quadratic(x)
    for _ in range(8):
        loss = closure()
        (g,) = torch.autograd.grad(loss, [x])
        with torch.no_grad():
            x -= 0.1 * g
        probe([x], [g], loss, closure)
    sm = probe.column("smoothness")
    assert np.isnan(sm[:2]).all() and np.isfinite(sm[2:]).all()  # θ_0 is never seen
    assert (sm[2:] >= 0.5 - 1e-12).all() and (sm[2:] <= 4.0 + 1e-12).all()
    assert np.isfinite(probe.column("effective_beta")[2::3]).all()  # at θ_3, θ_6
    # started on an eigenvector, every step is along it: smoothness is exactly its eigenvalue
    y = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    probe = LandscapeProbe()
    for _ in range(5):
        (g,) = torch.autograd.grad(_quadratic(y)(), [y])
        with torch.no_grad():
            y -= 0.1 * g
        probe([y], [g])
    assert probe.column("smoothness")[2:] == pytest.approx([2.0] * 3, rel=1e-10)


def test_the_envelope_fit_recovers_the_line():
    x = np.linspace(0.1, 10, 200)
    assert fit_l0_l1(x, 3.0 + 2.0 * x) == pytest.approx((3.0, 2.0), abs=1e-6)
    # below the line, uniformly: the 90 % quantile line is 0.9 (L0 + L1 x)
    u = np.random.default_rng(0).uniform(size=len(x) * 20)
    xs = np.tile(x, 20)
    l0, l1 = fit_l0_l1(xs, (3.0 + 2.0 * xs) * u)
    assert l0 / 0.9 == pytest.approx(3.0, rel=0.15) and l1 / 0.9 == pytest.approx(2.0, rel=0.05)
    assert all(math.isnan(v) for v in fit_l0_l1([1.0], [1.0]))


def test_clipping_factors_match_their_formulas():
    norms = torch.tensor([0.0, 0.5, 1.0, 2.0, 10.0])
    gamma = 1.0
    assert torch.allclose(L._factor("hard", norms, gamma), torch.clamp(gamma / norms, max=1.0))
    assert torch.allclose(L._factor("smooth", norms, gamma), gamma / (norms + gamma))
    assert L._factor("none", norms, gamma) == 1.0
    h, s = L._factor("hard", norms[1:], gamma), L._factor("smooth", norms[1:], gamma)
    assert (s <= h).all() and (h <= 2 * s + 1e-7).all()


@pytest.mark.parametrize("gradient", L.CLIP_GRADIENTS)
def test_clip_runs_are_deterministic_for_a_seed(gradient):
    a = L.clip_run(gradient, "hard", 0.1, seed=1, steps=6)
    b = L.clip_run(gradient, "hard", 0.1, seed=1, steps=6)
    assert a == b and a["final_loss"] < a["start_loss"]


def test_batchnorm_and_init_runs_are_deterministic_for_a_seed():
    a, pa = L._bn_run("batchnorm", 0.1, 0, steps=4, probe_every=2)
    b, pb = L._bn_run("batchnorm", 0.1, 0, steps=4, probe_every=2)
    assert a == b and [r.keys() for r in pa.records] == [r.keys() for r in pb.records]
    assert np.array_equal(pa.column("effective_beta"), pb.column("effective_beta"),
                          equal_nan=True)
    p = L.init_profile("relu", "he", 3, depth=6)
    assert p == L.init_profile("relu", "he", 3, depth=6) and len(p["cosine"]) == 6


def test_a_probe_attaches_to_train_on_schedule():
    from suite.training import train_on_schedule
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def closure():
        return ((model(x) - y) ** 2).mean()

    def update(step):
        opt.zero_grad()
        closure().backward()
        opt.step()

    probe = LandscapeProbe(lr=0.1, direction_every=2)
    points = train_on_schedule([0, 3, 6], update, lambda: {"loss": float(closure())},
                               after_update=probe.hook(model.parameters(), closure))
    assert [p["step"] for p in points] == [0, 3, 6] and len(probe.records) == 6
    assert np.isfinite(probe.column("smoothness")[2:]).all()
    # without the callback the function is the one it was
    assert len(train_on_schedule([0, 2], update, dict)) == 2


def _run_rows(tmp_path, monkeypatch, experiments) -> pd.DataFrame:
    """The rows of small experiments as a run stores them: each experiment's run file
    (suite/results.py), read back; the tracked numbers are checked against asv's tracks."""
    from estibench.schema import read_run
    from suite import results
    from suite.benchmarks import bench_landscape as B

    monkeypatch.setenv("ESTIBENCH_RESULTS", str(tmp_path))
    frames = []
    for i, (name, cache, params) in enumerate(experiments):
        for cls, p in params.items():
            monkeypatch.setattr(cls, "params", [list(v) for v in p])
        path = results.write(B.run_rows(name, cache), f"landscape-{name.lower()}", 1.8e9 + i)
        frame = read_run(path)
        for cls, p in params.items():  # asv's tracks read the same numbers as the run file
            rows = frame[frame["experiment"] == cls.__name__]
            assert len(rows) == math.prod(len(v) for v in p) * len(
                {m for m in rows["measure"]}), cls.__name__
            for t in (m for m in dir(cls) if m.startswith("track_")):
                for combo in itertools.product(*p):
                    want = getattr(cls(), t)(cache, *combo)
                    mask = (rows["measure"] == t[len("track_"):])
                    for column, value in zip(cls.param_names, combo):
                        mask &= rows[column] == value
                    (got,) = rows.loc[mask, "value"]
                    assert got == want or (math.isnan(got) and math.isnan(want)), (t, combo)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_benchmarks_write_every_number_to_the_run_file(tmp_path, monkeypatch):
    from suite.benchmarks import bench_landscape as B
    monkeypatch.setattr(L, "SEEDS", (0, 1))
    clip = L.clipping_experiment(seeds=(0, 1), lrs=(0.03, 1.0), steps=8)
    bn = L.batchnorm_experiment(seeds=(0, 1), lrs=(0.1,), grid=(0.1, 10.0), steps=20)
    init = L.init_experiment(seeds=(0, 1), depth=4)
    bins = list(range(L.SMOOTHNESS_BINS))
    frame = _run_rows(tmp_path, monkeypatch, [
        ("Clipping", clip, {B.LandscapeClipping: [L.CLIP_GRADIENTS, L.CLIP_RULES, (0.03, 1.0)],
                            B.LandscapeClippingLR: [L.CLIP_GRADIENTS, L.CLIP_RULES],
                            B.LandscapeClippingSmoothness: [["clipping_exact"], bins],
                            B.LandscapeClippingFit: [["clipping_exact"]]}),
        ("BatchNorm", bn, {B.LandscapeBatchNorm: [L.BN_NETS, (0.1,), (0, 20)],
                           B.LandscapeBatchNormLR: [L.BN_NETS],
                           B.LandscapeBatchNormSmoothness: [["mlp_plain", "mlp_batchnorm"], bins],
                           B.LandscapeBatchNormFit: [["mlp_plain", "mlp_batchnorm"]]}),
        ("Init", init, {B.LandscapeInit: [L.ACTIVATIONS, L.INITS, (1, 4)]}),
    ])
    assert set(frame["status"]) == {"ok"} and set(frame["group"]) == {"landscape"}
    # every experiment's numbers, tracked or not, with their standard errors in ``se``
    assert {"steps_to_target", "effective_beta", "activation_norm", "smoothness_upper",
            "largest_stable_lr", "l0", "l1"} <= set(frame["measure"])
    assert not frame["measure"].str.endswith("_se").any()
    lr = frame[frame["measure"] == "largest_stable_lr"]
    assert lr["value"].notna().all() and lr["se"].notna().all()
    assert (lr["unit"] == "lr").all()
    assert frame.loc[frame["measure"] == "smoothness_upper", "se"].isna().all()  # no se there
    assert {"gradient", "rule", "lr", "net", "step", "source", "bin", "activation", "init",
            "layer"} <= set(frame.columns)
    assert (frame["commit"] == frame["commit"].iloc[0]).all() and (frame["machine"] != "").all()
    # and the report draws its figures and tables from these rows, as its reader gives them
    from reports.landscape import landscape_figures, landscape_tables
    from reports.load import load_results
    frame = load_results(tmp_path).frame
    figures = landscape_figures(frame)
    assert [f.name for f in figures] == ["landscape_smoothness", "landscape_clipping",
                                         "landscape_batchnorm", "landscape_init"]
    assert set(landscape_tables(frame)) == {"landscape_largest_lr", "landscape_smoothness_fit",
                                            "landscape_init_depth"}
    import matplotlib.pyplot as plt
    plt.close("all")


def test_mean_and_se_of_seeds():
    from suite.benchmarks.bench_landscape import _mean_se
    assert _mean_se([1.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert all(math.isnan(v) for v in _mean_se([1.0, math.nan]))
