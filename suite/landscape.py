"""Landscape experiments: why clipping, BatchNorm and initialisation work, measured (issue 15).

Three experiments, each a plain function of its seeds returning plain dicts (the asv module
``suite/benchmarks/bench_landscape.py`` computes them once in ``setup_cache``); the same seeds
give the same numbers. The probes are :class:`suite.probes.LandscapeProbe`.

**Clipping** (:func:`clipping_experiment`; seed notes section 4, Zhang et al. ICLR 2020). A
binary-latent autoencoder on 32 digits: ``q(z|x)`` a linear encoder over 6 Bernoulli latents,
decoder ``tanh(z W1 + b1) W2 + b2`` with a deliberately large initialisation (scale 3: the
start is steep and sharp), loss ``E_q ||dec(z) - x||²`` per image. The gradient is exact
(enumeration of the 64 configurations, autograd through the sum) or the score function with
2 samples for the encoder (``estimators.get("score_function")``; the decoder gets its pathwise
gradient through f): heavy-tailed. Gradient descent with the factor 1 (none),
``min(1, γ/||g||)`` (hard) or ``γ/(||g|| + γ)`` (smooth) over a learning-rate grid: steps until
the exact loss is below :data:`CLIP_TARGET` (the budget when never: censored), whether the run
stayed stable (finite and below its starting loss at the end), and the largest stable and the
largest target-reaching learning rate. The exact-gradient runs carry a probe: the local
smoothness against the gradient norm and its fitted ``(L0, L1)``.

**BatchNorm** (:func:`batchnorm_experiment`; section 8, Santurkar et al. 2018). An MLP of
:data:`BN_DEPTH` ReLU layers of width 64 on 512 standardised digits (full-batch gradient
descent on the cross-entropy, He initialisation), with and without BatchNorm before each ReLU:
the probes along training at :data:`BN_LRS` (loss, gradient norm, smoothness along the step,
and every 10 steps loss range, gradient-change range and effective β along the gradient over
``η = (0.5, 1, 2, 4) × lr``), and the largest stable learning rate of each over
:data:`BN_LR_GRID`.

**Initialisation** (:func:`init_experiment`; section 7). A :data:`INIT_DEPTH`-layer MLP of width
:data:`INIT_WIDTH`, tanh or ReLU, initialised by PyTorch's default, LeCun, Xavier (Glorot), He
(normal) or orthogonal (gain 1): per layer the RMS activation, the gradient norm of the layer's
weight under a random linear read-out, and the cosine between two random inputs'
representations. With constant width LeCun and Xavier are the same distribution.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .probes import LandscapeProbe, fit_l0_l1

__all__ = ["SEEDS", "CLIP_RULES", "CLIP_GRADIENTS", "CLIP_LRS", "CLIP_TARGET", "CLIP_GAMMA",
           "clipping_experiment", "clip_run", "BN_NETS", "BN_LRS", "BN_LR_GRID", "BN_DEPTH",
           "BN_CHECKPOINTS", "batchnorm_experiment", "INITS", "ACTIVATIONS", "INIT_DEPTH",
           "INIT_WIDTH", "INIT_LAYERS", "init_experiment", "SMOOTHNESS_BINS", "binned",
           "largest", "EXPERIMENTS", "run_experiment"]

SEEDS = (0, 1, 2)
#: number of equal-count gradient-norm bins the smoothness points are summarised in
SMOOTHNESS_BINS = 8

# -- clipping ------------------------------------------------------------------------------------
CLIP_RULES = ("none", "hard", "smooth")
CLIP_GRADIENTS = ("exact", "score_function")
CLIP_LRS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
CLIP_GAMMA = 5.0
CLIP_TARGET = 6.0  # per image; the mean image predicts 4.51, a zero output 14.86
CLIP_STEPS = 100
_LATENTS, _HIDDEN, _IMAGES, _SCALE = 6, 32, 32, 3.0


def _clip_data():
    import itertools

    import torch

    from .data import digit_pixels
    x = torch.tensor(np.array(digit_pixels()[:_IMAGES]))
    z = torch.tensor(list(itertools.product([0.0, 1.0], repeat=_LATENTS)))
    return x, z


def _clip_init(seed: int):
    import torch
    g = torch.Generator().manual_seed(seed)
    shapes = [(64, _LATENTS, 0.1), (_LATENTS,), (_LATENTS, _HIDDEN, _SCALE / math.sqrt(_LATENTS)),
              (_HIDDEN,), (_HIDDEN, 64, _SCALE / math.sqrt(_HIDDEN)), (64,)]
    return [(torch.randn(s[:2], generator=g) * s[2] if len(s) == 3 else torch.zeros(s))
            .requires_grad_() for s in shapes]


def _decode(z, w1, b1, w2, b2):
    import torch
    return torch.tanh(z @ w1 + b1) @ w2 + b2


def _exact_loss(params, x, configs):
    import torch.nn.functional as F
    we, be, *dec = params
    logits = x @ we + be
    zs = configs[:, None, :]
    logp = (zs * F.logsigmoid(logits) + (1 - zs) * F.logsigmoid(-logits)).sum(-1)  # [S, B]
    cost = ((_decode(configs, *dec)[:, None, :] - x) ** 2).sum(-1)
    return (logp.exp() * cost).sum(0).mean()


def _factor(rule: str, norm, gamma: float):
    from estimators.transforms import hard_factor, smooth_factor
    if rule == "none":
        return 1.0
    return (hard_factor if rule == "hard" else smooth_factor)(norm, gamma)


def clip_run(gradient: str, rule: str, lr: float, seed: int, steps: int = CLIP_STEPS,
             gamma: float = CLIP_GAMMA, target: float = CLIP_TARGET,
             probe: LandscapeProbe | None = None) -> dict[str, float]:
    """One run of the clipping experiment: steps to target (``steps`` when never), stable,
    starting and final exact loss."""
    import torch
    from torch import distributions as D

    import estimators
    x, configs = _clip_data()
    params = _clip_init(seed)
    gen = torch.Generator().manual_seed(10_000 + seed)
    sf = estimators.get("score_function") if gradient == "score_function" else None
    with torch.no_grad():
        start = float(_exact_loss(params, x, configs))
    loss_now, reached = start, float(steps)
    for step in range(steps + 1):
        if gradient == "exact":  # the loss at θ_step comes with its gradient
            loss = _exact_loss(params, x, configs)
            loss_now = float(loss.detach())
        elif step:
            with torch.no_grad():
                loss_now = float(_exact_loss(params, x, configs))
        if not math.isfinite(loss_now) or loss_now > 100 * start:
            loss_now = math.inf
            break
        if loss_now < target or step == steps:
            reached = float(step)
            break
        if gradient != "exact":
            we, be, *dec = params
            dist = D.Independent(D.Bernoulli(logits=x @ we + be), 1)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(2 ** 31, (), generator=gen)))
                loss = sf(dist, lambda z, dec=dec: ((_decode(z, *dec) - x) ** 2).sum(-1),
                          num_samples=2) / len(x)
        grads = torch.autograd.grad(loss, params)
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        factor = _factor(rule, norm, gamma)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= lr * factor * g
        if probe is not None:
            probe(params, grads, loss_now)
    stable = math.isfinite(loss_now) and loss_now < start
    return {"steps_to_target": reached, "reached_target": float(loss_now < target),
            "stable": float(stable), "start_loss": start, "final_loss": loss_now}


def largest(lrs: Sequence[float], ok: Sequence[float]) -> float:
    """The largest learning rate whose run was ok (0 when none was)."""
    good = [lr for lr, flag in zip(lrs, ok) if flag]
    return float(max(good)) if good else 0.0


def binned(grad_norm: np.ndarray, smoothness: np.ndarray, bins: int = SMOOTHNESS_BINS
           ) -> list[dict[str, float]]:
    """Smoothness points summarised in ``bins`` equal-count bins of the gradient norm: each
    bin's median gradient norm, median smoothness and 90 % quantile of smoothness."""
    ok = np.isfinite(grad_norm) & np.isfinite(smoothness) & (grad_norm > 0)
    order = np.argsort(grad_norm[ok])
    x, y = grad_norm[ok][order], smoothness[ok][order]
    out = []
    for part in np.array_split(np.arange(len(x)), bins):
        if len(part) == 0:
            out.append({"grad_norm": math.nan, "smoothness": math.nan,
                        "smoothness_upper": math.nan})
            continue
        out.append({"grad_norm": float(np.median(x[part])),
                    "smoothness": float(np.median(y[part])),
                    "smoothness_upper": float(np.quantile(y[part], 0.9))})
    return out


def _points(probes: Sequence[LandscapeProbe]) -> tuple[np.ndarray, np.ndarray]:
    gn = np.concatenate([p.column("grad_norm") for p in probes] or [np.zeros(0)])
    sm = np.concatenate([p.column("smoothness") for p in probes] or [np.zeros(0)])
    return gn, sm


def _smoothness_summary(per_seed: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict:
    fits = {seed: fit_l0_l1(gn, sm) for seed, (gn, sm) in per_seed.items()}
    gn = np.concatenate([v[0] for v in per_seed.values()])
    sm = np.concatenate([v[1] for v in per_seed.values()])
    from scipy.stats import spearmanr
    ok = np.isfinite(gn) & np.isfinite(sm)
    rho = {seed: float(spearmanr(x[np.isfinite(x) & np.isfinite(y)],
                                 y[np.isfinite(x) & np.isfinite(y)]).statistic)
           for seed, (x, y) in per_seed.items()}
    return {"fit": fits, "spearman": rho, "bins": binned(gn, sm),
            "pooled_fit": fit_l0_l1(gn, sm), "points": int(ok.sum())}


def clipping_experiment(seeds: Sequence[int] = SEEDS, lrs: Sequence[float] = CLIP_LRS,
                        rules: Sequence[str] = CLIP_RULES,
                        gradients: Sequence[str] = CLIP_GRADIENTS,
                        steps: int = CLIP_STEPS) -> dict:
    """``runs[(gradient, rule, lr, seed)]`` (see :func:`clip_run`), ``largest[(gradient, rule,
    seed)]`` (largest stable and largest target-reaching lr) and ``smoothness`` (binned points
    and the per-seed ``(L0, L1)`` of the exact-gradient runs)."""
    from .benchutil import set_threads
    set_threads()
    runs, probes = {}, {}
    for gradient in gradients:
        for rule in rules:
            for lr in lrs:
                for seed in seeds:
                    probe = LandscapeProbe() if gradient == "exact" else None
                    runs[(gradient, rule, lr, seed)] = clip_run(gradient, rule, lr, seed, steps,
                                                                probe=probe)
                    # the trajectory of a run that diverged is not the landscape training
                    # sees: its points are left out of the smoothness fit
                    if probe is not None and runs[(gradient, rule, lr, seed)]["stable"]:
                        probes.setdefault(seed, []).append(probe)
    best = {}
    for gradient in gradients:
        for rule in rules:
            for seed in seeds:
                rows = [runs[(gradient, rule, lr, seed)] for lr in lrs]
                best[(gradient, rule, seed)] = {
                    "largest_stable_lr": largest(lrs, [r["stable"] for r in rows]),
                    "largest_converging_lr": largest(lrs, [r["reached_target"] for r in rows])}
    smooth = _smoothness_summary({s: _points(p) for s, p in probes.items()}) if probes else {}
    return {"runs": runs, "largest": best, "smoothness": smooth}


# -- BatchNorm -----------------------------------------------------------------------------------
BN_NETS = ("plain", "batchnorm")
BN_DEPTH, BN_WIDTH, BN_IMAGES = 8, 64, 512
BN_LRS = (0.1, 0.5)
BN_LR_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
BN_STEPS = 100
BN_GRID_STEPS = 60  # steps of each learning-rate-grid run
BN_CHECKPOINTS = tuple(range(0, BN_STEPS + 1, 20))
_BN_ETAS = (0.5, 1.0, 2.0, 4.0)


def _mlp(batchnorm: bool, seed: int, depth: int = BN_DEPTH, width: int = BN_WIDTH):
    import torch
    from torch import nn
    g = torch.Generator().manual_seed(seed)
    layers, fan = [], 64
    for _ in range(depth):
        lin = nn.Linear(fan, width)
        nn.init.kaiming_normal_(lin.weight, nonlinearity="relu", generator=g)
        nn.init.zeros_(lin.bias)
        layers += [lin] + ([nn.BatchNorm1d(width)] if batchnorm else []) + [nn.ReLU()]
        fan = width
    head = nn.Linear(fan, 10)
    nn.init.kaiming_normal_(head.weight, generator=g)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, head)


def _digits_batch():
    import torch

    from .data import digits
    pixels, labels = digits()
    x = torch.tensor(pixels[:BN_IMAGES], dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-3)
    return x, torch.tensor(labels[:BN_IMAGES])


def _bn_run(net: str, lr: float, seed: int, steps: int, probe_every: int = 0):
    """Full-batch gradient descent; returns (losses per step incl. 0, probe or None)."""
    import torch
    import torch.nn.functional as F
    x, y = _digits_batch()
    model = _mlp(net == "batchnorm", seed)
    params = list(model.parameters())

    def closure():
        return F.cross_entropy(model(x), y)

    probe = LandscapeProbe(_BN_ETAS, lr=lr, direction_every=probe_every) if probe_every else None
    losses = []
    for step in range(steps + 1):
        loss = closure()
        losses.append(float(loss.detach()))
        if step == steps or not math.isfinite(losses[-1]) or losses[-1] > 1e3:
            break
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= lr * g
        if probe is not None:
            probe(params, grads, loss, closure)
    return losses, probe


def _checkpoint_rows(losses: list[float], probe: LandscapeProbe) -> dict[int, dict[str, float]]:
    rows = {}
    sm, gn = probe.column("smoothness"), probe.column("grad_norm")
    for c in BN_CHECKPOINTS:
        if c >= len(losses):
            break
        # probe record i is the call after step i (direction measured at θ_{i+1}); checkpoint c
        # reads record c - 1 for the direction (at θ_c) and the steps just before c
        row = {"loss": losses[c]}
        window = slice(max(0, c - 10), c)
        row["smoothness"] = float(np.nanmedian(sm[window])) if np.isfinite(sm[window]).any() \
            else math.nan
        row["grad_norm"] = float(np.nanmedian(gn[window])) if np.isfinite(gn[window]).any() \
            else math.nan
        rec = probe.records[c - 1] if 0 < c <= len(probe.records) else {}
        for key in ("loss_range", "gradient_change_range", "effective_beta"):
            row[key] = float(rec.get(key, math.nan))
        rows[c] = row
    return rows


def batchnorm_experiment(seeds: Sequence[int] = SEEDS, lrs: Sequence[float] = BN_LRS,
                         grid: Sequence[float] = BN_LR_GRID, steps: int = BN_STEPS) -> dict:
    """``curves[(net, lr, seed)][checkpoint]`` (loss, grad_norm, smoothness and the direction
    probes), ``largest[(net, seed)]`` (over ``grid``, :data:`BN_GRID_STEPS` steps each: largest
    stable lr, finite and below the starting loss at the end; largest converging lr, training
    loss below 0.1) and ``smoothness``
    (binned points and ``(L0, L1)`` per net)."""
    from .benchutil import set_threads
    set_threads()
    curves, probes = {}, {}
    for net in BN_NETS:
        for lr in lrs:
            for seed in seeds:
                losses, probe = _bn_run(net, lr, seed, steps, probe_every=10)
                curves[(net, lr, seed)] = _checkpoint_rows(losses, probe)
                probes.setdefault(net, {}).setdefault(seed, []).append(probe)
    best = {}
    for net in BN_NETS:
        for seed in seeds:
            finals = [_bn_run(net, lr, seed, BN_GRID_STEPS)[0] for lr in grid]
            stable = [len(f) == BN_GRID_STEPS + 1 and math.isfinite(f[-1]) and f[-1] < f[0]
                      for f in finals]
            converged = [s and f[-1] < 0.1 for s, f in zip(stable, finals)]
            best[(net, seed)] = {"largest_stable_lr": largest(grid, stable),
                                 "largest_converging_lr": largest(grid, converged)}
    smooth = {net: _smoothness_summary({s: _points(p) for s, p in by_seed.items()})
              for net, by_seed in probes.items()}
    return {"curves": curves, "largest": best, "smoothness": smooth}


# -- initialisation ------------------------------------------------------------------------------
INITS = ("default", "lecun", "xavier", "he", "orthogonal")
ACTIVATIONS = ("tanh", "relu")
INIT_DEPTH, INIT_WIDTH, INIT_BATCH = 50, 128, 256
INIT_LAYERS = (1, 2, 5, 10, 20, 30, 40, 50)


def _init_weight(weight, init: str, g) -> None:
    from torch import nn
    fan = weight.shape[1]
    if init == "lecun":
        nn.init.normal_(weight, 0.0, 1.0 / math.sqrt(fan), generator=g)
    elif init == "xavier":
        nn.init.xavier_normal_(weight, generator=g)
    elif init == "he":
        nn.init.kaiming_normal_(weight, nonlinearity="relu", generator=g)
    elif init == "orthogonal":
        nn.init.orthogonal_(weight, generator=g)
    elif init == "default":  # nn.Linear's own: kaiming_uniform_(a=√5), variance 1/(3 fan_in)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=g)
    else:
        raise ValueError(f"unknown initialisation {init!r}; available: {', '.join(INITS)}")


def init_profile(activation: str, init: str, seed: int, depth: int = INIT_DEPTH,
                 width: int = INIT_WIDTH, batch: int = INIT_BATCH) -> dict[str, list[float]]:
    """Per layer 1..depth: ``activation_norm`` (RMS of the layer's output), ``gradient_norm``
    (Frobenius norm of the gradient of the layer's weight under ``mean_i <h_L(x_i), v>``) and
    ``cosine`` (mean cosine of the representations of input pairs, independent N(0, I))."""
    import torch
    g = torch.Generator().manual_seed(seed)
    weights, biases = [], []
    for _ in range(depth):
        w = torch.empty(width, width)
        _init_weight(w, init, g)
        b = torch.zeros(width)
        if init == "default":
            b.uniform_(-1 / math.sqrt(width), 1 / math.sqrt(width), generator=g)
        weights.append(w.requires_grad_())
        biases.append(b)
    x = torch.randn(batch, width, generator=g)
    v = torch.randn(width, generator=g)
    act = torch.tanh if activation == "tanh" else torch.relu
    h, rms, cos = x, [], []
    half = batch // 2
    for w, b in zip(weights, biases):
        h = act(h @ w.T + b)
        rms.append(float(h.detach().pow(2).mean().sqrt()))
        a, c = h.detach()[:half], h.detach()[half:2 * half]
        cos.append(float(torch.nn.functional.cosine_similarity(a, c, dim=1, eps=1e-30).mean()))
    grads = torch.autograd.grad((h @ v).mean(), weights)
    return {"activation_norm": rms, "cosine": cos,
            "gradient_norm": [float(torch.linalg.vector_norm(gr)) for gr in grads]}


def init_experiment(seeds: Sequence[int] = SEEDS, depth: int = INIT_DEPTH) -> dict:
    """``profiles[(activation, init, seed)]`` from :func:`init_profile`."""
    from .benchutil import set_threads
    set_threads()
    return {"profiles": {(act, init, seed): init_profile(act, init, seed, depth)
                         for act in ACTIVATIONS for init in INITS for seed in seeds}}


# -- the experiments as units of work (suite/benchmarks/bench_landscape.py) ----------------------
#: experiment (its benchmark classes' name) -> the function computing it
EXPERIMENTS = {"Clipping": "clipping_experiment", "BatchNorm": "batchnorm_experiment",
               "Init": "init_experiment"}


def run_experiment(name: str) -> dict:
    """A work unit of :mod:`suite.executor`: one experiment, the global generators seeded from
    its name first (the experiments draw from generators of their own, seeded by their seeds)."""
    from .executor import seed_unit

    seed_unit("landscape", name)
    return globals()[EXPERIMENTS[name]]()
