"""Training tasks ``binary_vae_digits``, ``binary_vae_digits_linear`` and
``categorical_vae_digits``: discrete-latent VAEs trained with every registered gradient estimator
against the exact-gradient oracle.

Data: scikit-learn's 8 x 8 digits binarised at half intensity (:func:`suite.data.binarised_digits`),
split by the seed into disjoint train / valid / test sets (60 / 20 / 20 %). The model is the one of
the gradient tasks :class:`suite.tasks.BinaryVAE` / :class:`suite.tasks.CategoricalVAE` (their
``_dist``, ``_kl``, ``_cost_fn`` and ``_mlp`` are reused): ``q(z|x)`` factorised, uniform prior,
Bernoulli pixels, encoder and decoder linear (``hidden=0``) or one tanh layer. The cost of a latent
sample is ``f(z) = -log p(x|z) + KL(q(z|x) || p(z))`` (closed-form KL), so ``E_q[f] = -ELBO``, and
every method minimises ``est(q, f, num_samples) / batch``; the decoder learns through f.

Latents are small enough to enumerate (default 12 Bernoullis, 4096 configurations, or 3
categoricals of 8 classes, 512), which gives, at every checkpoint, the exact held-out ``log p(x)``
(``logsumexp_z log p(x, z)``), the exact ELBO, and the exact encoder gradient on a fixed batch,
against which ``grad_replicates`` estimates give the gradient variance (trace of the covariance)
and relative bias ``||mean - g|| / ||g||`` (debiased for the noise of the mean, floored at 0).

Methods (:class:`suite.methods.RegistryMethods`): every registered gradient estimator spec that
supports the latent family, plugins included, narrowed by ``ESTIBENCH_ESTIMATORS``. ``exact`` is
the oracle: its gradient is the exact ELBO gradient, computed here by the same enumeration in
matrix form (the decoder runs once per configuration rather than once per configuration and
image: the same gradient as ``estimators.get("exact")``, ~30x faster). The oracle's run is computed
once per seed and task instance, also when ``exact`` is narrowed away, for the final measures.

Checkpoints: ``loss`` = held-out negative ELBO per image, ``metric`` = held-out exact
``log p(x)`` per image (nats, higher is better), ``train_elbo``, ``test_elbo``, ``f_evaluations``
(cumulative f evaluations per image: the leading sample count of every call of f),
``grad_variance``, ``grad_relative_bias`` and ``grad_noise_floor`` (``sqrt(variance / R) / ||g||``,
the noise of the mean: with the default R = 8 a relative bias below about this is not
distinguishable from 0; an unbiased estimator reads 0 up to it). Final: ``test_log_px``,
``test_elbo``, ``oracle_gap`` (the oracle's final ``log p(x)`` minus the method's; 0 for the
oracle; a biased method can beat the oracle here, as it optimises another objective),
``oracle_elbo_gap`` (the same for the test ELBO, the objective the oracle follows exactly),
``steps_to_fraction`` and
``seconds_to_fraction`` (first checkpoint reaching ``oracle_fraction`` of the oracle's gain in
``log p(x)``; NaN when never reached; resolved only to the checkpoints). Same seed: same
initialisation, data order and samples for every method.

Defaults (the suite budget): 75 Adam steps (lr 1e-2), batch 64, ``num_samples`` K = 4, 4
checkpoints, 3 seeds (the full grid, ``ESTIBENCH_GRID=full``, trains 150 steps: ~90 CPU-seconds
for the three tasks x every built-in estimator x 3 seeds on one thread; the oracle ~1-2 s per
seed, ``indecater``, ``unordered_set`` and ``relax`` the dearest estimators). Sizes are
constructor options.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch

import estimators

from .checks import check_ints, check_number
from .data import binarised_digits, split_indices
from .measure import probe_gradients
from .methods import RegistryMethods, example_distribution
from .tasks import BinaryVAE, CategoricalVAE, _init_mlp, _mlp
from .training import Run, TrainingTask, evenly_spaced, register_training_task, train_on_schedule

__all__ = ["BinaryVAEDigits", "BinaryVAEDigitsLinear", "CategoricalVAEDigits", "ORACLE",
           "latent_model", "configurations", "exact_terms"]

PIXELS = 64
ORACLE = "exact"


def latent_model(kind: str, latents: int, classes: int = 2):
    """The gradient tasks' model code (``_dist``, ``_kl``, ``_decoder_input``, ``_cost_fn``)
    for ``latents`` Bernoullis or ``latents`` categoricals of ``classes``, without training."""
    if kind == "binary":
        m = BinaryVAE.__new__(BinaryVAE)
        m.latent_size = latents
    else:
        m = CategoricalVAE.__new__(CategoricalVAE)
        m.groups, m.classes, m.latent_size = latents, classes, latents * classes
    return m


def configurations(m, dtype=torch.float32) -> torch.Tensor:
    """Every latent configuration as the decoder's flat input ``[S, latent_size]``."""
    if isinstance(m, CategoricalVAE):
        n, d = m.classes, m.groups
    else:
        n, d = 2, m.latent_size
    c = torch.arange(n ** d)
    idx = torch.div(c[:, None], n ** torch.arange(d - 1, -1, -1), rounding_mode="floor") % n
    if isinstance(m, CategoricalVAE):
        return torch.nn.functional.one_hot(idx, n).to(dtype).reshape(n ** d, d * n)
    return idx.to(dtype)


def exact_terms(m, encoder, decoder, x, z_all) -> dict[str, torch.Tensor]:
    """Exact per-image ``elbo`` and ``log_px`` by enumerating ``z_all`` [S, latent_size]."""
    logits = _mlp(encoder, x)  # [N, latent_size]
    if isinstance(m, CategoricalVAE):
        logq_flat = torch.log_softmax(logits.unflatten(-1, (m.groups, m.classes)), -1).flatten(-2)
        log_q = logq_flat @ z_all.T
        log_prior = -m.groups * math.log(m.classes)
    else:
        log_q = (torch.nn.functional.logsigmoid(logits) @ z_all.T
                 + torch.nn.functional.logsigmoid(-logits) @ (1 - z_all).T)
        log_prior = -m.latent_size * math.log(2)
    pixel_logits = _mlp(decoder, z_all)  # [S, 64]: once per configuration
    log_pxz = x @ pixel_logits.T - torch.nn.functional.softplus(pixel_logits).sum(-1)
    elbo = (log_q.exp() * log_pxz).sum(-1) - m._kl(logits)
    return {"elbo": elbo, "log_px": torch.logsumexp(log_pxz + log_prior, -1)}


def _flat_grad(params) -> torch.Tensor:
    return torch.cat([p.grad.reshape(p.shape[0], -1) for p in params], -1)


class _VAEDigits(TrainingTask):
    """Shared machinery; subclasses set ``name``, ``kind``, ``family`` and the defaults."""

    kind = "binary"
    family = "Bernoulli"
    metric = "held-out exact log p(x) per image (nats)"
    higher_is_better = True
    checkpoint_measures = ("train_elbo", "test_elbo", "f_evaluations", "grad_evaluations",
                           "grad_variance", "grad_relative_bias", "grad_noise_floor")
    final_measures = ("test_log_px", "test_elbo", "oracle_gap", "oracle_elbo_gap",
                      "steps_to_fraction", "seconds_to_fraction")
    default_latents, default_classes, default_hidden = 12, 2, 32
    batch_size = 64

    def _example(task):
        m = (task.latents, task.classes) if isinstance(task, _VAEDigits) else (
            task.default_latents, task.default_classes)
        event = (m[0],) if task.kind == "binary" else m
        return example_distribution(task.family, (task.batch_size,), event)

    methods = RegistryMethods(family="Bernoulli", example=_example)

    def __init__(self, *, latents: int | None = None, classes: int | None = None,
                 hidden: int | None = None, steps: int = 75, batch_size: int = 64,
                 lr: float = 1e-2, num_samples: int = 4, num_checkpoints: int = 4,
                 eval_train: int = 128, grad_batch: int = 32, grad_replicates: int = 8,
                 oracle_fraction: float = 0.9,
                 max_configurations: int = 2 ** 16,
                 estimator_options: dict[str, dict[str, object]] | None = None):
        owner = self.name
        latents = self.default_latents if latents is None else latents
        classes = self.default_classes if classes is None else classes
        hidden = self.default_hidden if hidden is None else hidden
        vars(self).update(check_ints(owner, dict(
            latents=latents, classes=classes, hidden=hidden, steps=steps, batch_size=batch_size,
            num_samples=num_samples, num_checkpoints=num_checkpoints, eval_train=eval_train,
            grad_batch=grad_batch,
            grad_replicates=grad_replicates, max_configurations=max_configurations),
            minimum={"hidden": 0, "classes": 2, "num_checkpoints": 2, "grad_replicates": 2}))
        if self.kind == "binary" and self.classes != 2:
            raise ValueError(f"{owner}: Bernoulli latents have 2 classes, got classes={classes}")
        if self.classes ** self.latents > self.max_configurations:
            raise ValueError(f"{owner}: {self.classes}^{self.latents} latent configurations is "
                             f"more than max_configurations={self.max_configurations}; the exact "
                             f"log p(x) and oracle enumerate them all")
        self.lr = check_number(owner, "lr", lr)
        self.oracle_fraction = check_number(owner, "oracle_fraction", oracle_fraction,
                                            maximum=1.0)
        self.estimator_options = dict(estimator_options or {})
        self._oracle: dict[tuple[int, str], Run] = {}
        self._initial: dict[tuple[int, str], dict[str, float]] = {}

    # -- pieces ----------------------------------------------------------------------------
    def schedule(self) -> list[int]:
        return evenly_spaced(self.steps, self.num_checkpoints)

    @staticmethod
    def split_indices(seed: int) -> dict[str, np.ndarray]:
        parts = split_indices(len(binarised_digits()), np.random.default_rng([seed, 0xBAE]))
        return dict(zip(("train", "valid", "test"), parts))

    def data(self, seed: int, device="cpu") -> dict[str, torch.Tensor]:
        pixels = binarised_digits().to(torch.float32)
        return {k: pixels[torch.as_tensor(i)].to(device) for k, i in
                self.split_indices(seed).items()}

    def latent_model(self):
        return latent_model(self.kind, self.latents, self.classes)

    def init_params(self, seed: int, device="cpu") -> tuple[list, list]:
        """Encoder and decoder weights of ``seed`` (the same for every method)."""
        m = self.latent_model()
        g = torch.Generator().manual_seed(seed)
        mid = [self.hidden] if self.hidden else []
        enc = _init_mlp([PIXELS, *mid, m.latent_size], g)
        dec = _init_mlp([m.latent_size, *mid, PIXELS], g)
        return ([p.to(device, torch.float32).requires_grad_() for p in enc],
                [p.to(device, torch.float32).requires_grad_() for p in dec])

    def estimator(self, method: str):
        return estimators.get(method, **self.estimator_options.get(method, {}))

    # -- the run ---------------------------------------------------------------------------
    def run(self, method: str, seed: int = 0, device: str = "cpu") -> Run:
        self.check_method(method)
        run = self._train(method, seed, device)
        oracle = run if method == ORACLE else self.oracle(seed, device)
        run.final.update(self._final(run, oracle))
        return run

    def oracle(self, seed: int, device="cpu") -> Run:
        """The exact-gradient run of ``seed`` (cached on this task)."""
        key = (seed, str(device))
        if key not in self._oracle:
            self._oracle[key] = self._train(ORACLE, seed, device)
        return self._oracle[key]

    def _final(self, run: Run, oracle: Run) -> dict[str, float]:
        last, first = run.checkpoints[-1], oracle.checkpoints[0]
        target = first["metric"] + self.oracle_fraction * (oracle.checkpoints[-1]["metric"]
                                                           - first["metric"])
        reached = [p for p in run.checkpoints[1:] if p["metric"] >= target]
        return {"test_log_px": last["metric"], "test_elbo": last["test_elbo"],
                "oracle_gap": oracle.checkpoints[-1]["metric"] - last["metric"],
                "oracle_elbo_gap": oracle.checkpoints[-1]["test_elbo"] - last["test_elbo"],
                "steps_to_fraction": reached[0]["step"] if reached else math.nan,
                "seconds_to_fraction": reached[0]["seconds"] if reached else math.nan}

    def _train(self, method: str, seed: int, device) -> Run:
        key = (seed, str(device))
        if method == ORACLE and key in self._oracle:
            return copy.deepcopy(self._oracle[key])
        device = torch.device(device)
        split = self.data(seed, device)
        x_train, n_train = split["train"], len(split["train"])
        if self.batch_size > n_train or self.grad_batch > n_train:
            raise ValueError(f"{self.name}: batch_size ({self.batch_size}) and grad_batch "
                             f"({self.grad_batch}) must be <= the {n_train} training images")
        m = self.latent_model()
        z_all = configurations(m).to(device)
        oracle = method == ORACLE
        est = None if oracle else self.estimator(method)
        if est is not None and self.num_samples < est.min_samples():
            raise ValueError(f"{self.name}: {method} needs num_samples >= {est.min_samples()}, "
                             f"got num_samples={self.num_samples}")
        rng_devices = [device.index or 0] if device.type == "cuda" else []
        count = [0.0, 0.0]  # f evaluations, gradients of f (per image)

        def counted(f, dist):
            per_sample = max(1, math.prod(dist.batch_shape) * math.prod(dist.event_shape))

            def g(z):
                count[0] += z.numel() / per_sample
                return f(probe_gradients(z, count, 1, z.numel() / per_sample))
            return g

        with torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(seed)
            enc, dec = self.init_params(seed, device)
            optimiser = torch.optim.Adam(enc + dec, lr=self.lr)
            gen = torch.Generator().manual_seed(seed)
            per_epoch = max(1, n_train // self.batch_size)
            order = torch.cat([torch.randperm(n_train, generator=gen)[:per_epoch * self.batch_size]
                               for _ in range(math.ceil(self.steps / per_epoch))])
            order = order[:self.steps * self.batch_size].view(self.steps, -1).to(device)

            def loss_of(x):
                if oracle:
                    count[0] += len(z_all)
                    return -exact_terms(m, enc, dec, x, z_all)["elbo"].mean()
                logits = _mlp(enc, x)
                dist = m._dist(logits)
                f = counted(m._cost_fn(x, dec, logits), dist)
                return est(dist, f, num_samples=self.num_samples) / x.shape[0]

            def update(step: int) -> None:
                loss = loss_of(x_train[order[step]])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()

            first = [key]

            def evaluate() -> dict[str, float]:
                with torch.random.fork_rng(devices=rng_devices):
                    torch.manual_seed(seed + 1)
                    out = self._evaluate(m, enc, dec, split, z_all, est, first.pop() if first
                                         else None)
                return {**out, "f_evaluations": count[0], "grad_evaluations": count[1]}

            checkpoints = train_on_schedule(self.schedule(), update, evaluate, device)
        return Run(task=self.name, method=method, seed=seed, checkpoints=checkpoints,
                   evaluations_per_update=count[0] / max(self.steps, 1))

    def _evaluate(self, m, enc, dec, split, z_all, est, key=None) -> dict[str, float]:
        """Exact measures (float32: per-image nats to ~1e-5) on the test set and the first
        ``eval_train`` training images; at initialisation (``key`` given) they are the same for
        every method of a seed and computed once per task instance."""
        if key is None or key not in self._initial:
            with torch.no_grad():
                test = exact_terms(m, enc, dec, split["test"], z_all)
                train = exact_terms(m, enc, dec, split["train"][:self.eval_train], z_all)
            out = {"loss": -float(test["elbo"].mean()), "metric": float(test["log_px"].mean()),
                   "test_elbo": float(test["elbo"].mean()),
                   "train_elbo": float(train["elbo"].mean())}
            if key is not None:
                self._initial[key] = out
        out = dict(self._initial[key]) if key is not None else out
        out.update(self._gradient_measures(m, enc, dec, split["train"][:self.grad_batch],
                                           z_all, est))
        return out

    def _gradient_measures(self, m, enc, dec, x, z_all, est) -> dict[str, float]:
        """Variance and relative bias of ``grad_replicates`` encoder-gradient estimates on the
        fixed batch ``x`` against the exact gradient of ``-sum ELBO`` (same objective as
        ``est(q, f)``); a copy of the estimator, so its state (baselines) is not advanced."""
        exact_enc = [p.detach().double().requires_grad_() for p in enc]
        dec64 = [p.detach().double() for p in dec]
        (-exact_terms(m, exact_enc, dec64, x.double(), z_all.double())["elbo"].sum()).backward()
        g = torch.cat([p.grad.reshape(-1) for p in exact_enc])
        if est is None:  # the oracle: every estimate is g (up to float32 rounding)
            return {"grad_variance": 0.0, "grad_relative_bias": 0.0, "grad_noise_floor": 0.0}
        r = self.grad_replicates
        leaves = [p.detach().unsqueeze(0).expand(r, *p.shape).clone().requires_grad_()
                  for p in enc]
        logits = _mlp(leaves, x)  # [R, N, latent_size]
        frozen = [p.detach() for p in dec]
        try:
            twin = copy.deepcopy(est)
        except Exception:  # noqa: BLE001 - an estimator that cannot be copied: itself
            twin = est
        twin(m._dist(logits), m._cost_fn(x, frozen, logits), num_samples=self.num_samples
             ).backward()
        ghat = _flat_grad(leaves).double()
        variance = ghat.var(0, unbiased=True).sum()
        err2 = ((ghat.mean(0) - g) ** 2).sum() - variance / r
        norm = g.norm().clamp_min(1e-30)
        return {"grad_variance": float(variance),
                "grad_relative_bias": float(err2.clamp_min(0).sqrt() / norm),
                "grad_noise_floor": float((variance / r).sqrt() / norm)}


def _register(cls):
    return register_training_task(cls.name, description=cls.description,
                                  reference=cls.reference_text)(cls)


@_register
class BinaryVAEDigits(_VAEDigits):
    """Binary VAE (12 Bernoulli latents, tanh MLP with 32 hidden units) on binarised digits;
    sizes are constructor options (``hidden=0``: linear; see ``binary_vae_digits_linear``)."""

    name = "binary_vae_digits"
    description = ("binary VAE on binarised sklearn digits, 12 Bernoulli latents, MLP: every "
                   "Bernoulli estimator vs the exact-gradient oracle; exact held-out log p(x)")
    reference_text = "Tucker et al. 2017 (REBAR); Grathwohl et al. 2018 (RELAX); Dong et al. 2020"


@_register
class BinaryVAEDigitsLinear(BinaryVAEDigits):
    """The linear form of :class:`BinaryVAEDigits` (``hidden=0``)."""

    name = "binary_vae_digits_linear"
    description = ("binary VAE on binarised sklearn digits, 12 Bernoulli latents, linear "
                   "encoder/decoder; exact held-out log p(x)")
    default_hidden = 0


@_register
class CategoricalVAEDigits(_VAEDigits):
    """Categorical VAE (3 latents x 8 classes = 512 configurations, tanh MLP with 32 hidden
    units) on binarised digits. 4 x 8 (``latents=4``: 4096 configurations) costs ~3x as much,
    most of it ``unordered_set``, which enumerates the joint support to sample its sets."""

    name = "categorical_vae_digits"
    description = ("categorical VAE on binarised sklearn digits, 3 latents x 8 classes, MLP: "
                   "every OneHotCategorical estimator vs the exact-gradient oracle")
    reference_text = "Jang et al. 2017; Maddison et al. 2017"
    kind, family = "categorical", "OneHotCategorical"
    default_latents, default_classes = 3, 8
    methods = RegistryMethods(family="OneHotCategorical", example=_VAEDigits._example)
