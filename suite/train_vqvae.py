"""Training task ``vqvae_digits``: a discrete-bottleneck autoencoder on scikit-learn's digits.

Images: the bundled 8 x 8 ``load_digits`` scaled to [0, 1] (64 pixels), split by the seed into
disjoint train / valid / test sets (60 / 20 / 20 %). The bottleneck has ``latents`` positions,
each choosing one entry of a shared codebook ``E`` [``codebook_size``, ``code_dim``]; the decoder
sees the chosen entries (flattened) and outputs 64 pixel intensities through a sigmoid. Methods:

* ``vq_straight_through`` (van den Oord et al. 2017, "Neural discrete representation learning"):
  the encoder outputs ``z_e``; ``k* = argmin_k ||z_e - e_k||``, ``z_q = e_{k*}``; the decoder sees
  ``z = z_e + sg[z_q - z_e]`` and the loss is
  ``||x - dec(z)||^2 + ||sg[z_e] - z_q||^2 + beta ||z_e - sg[z_q]||^2`` (beta = 0.25): the
  reconstruction gradient is copied straight through to the encoder, the codebook learns only
  from the codebook term (seed notes section 2).
* every registered gradient estimator that supports the bottleneck
  (:class:`suite.methods.RegistryMethods`: its ``variants``, e.g. ``gumbel_softmax``,
  ``straight_through_gumbel``, ``score_function:baseline=loo``, plugins included, narrowed by
  ``ESTIBENCH_ESTIMATORS``; the method name is the estimator spec): the encoder outputs
  logits, ``dist = Independent(OneHotCategorical(logits), 1)`` over the codebook at each position,
  ``f(z) = ||x - dec(z E)||^2`` per example, and the registered gradient estimator
  (``estimators.get(spec)``) turns ``est(dist, f, num_samples)`` into the training loss (divided
  by the batch size); the decoder and the codebook get their gradient through f in the same
  backward (seed notes section 1). ``exact`` is not among them at the default sizes (16^4
  codes per image is beyond its enumeration budget).

Headline metric (lower is better): test reconstruction error with hard codes (nearest entry for
VQ, argmax of the logits otherwise), the mean over images of the per-image mean squared error
over the 64 pixels. Checkpoint extras: ``perplexity``, the codebook perplexity
``exp(-sum_k p_k log p_k)`` of the hard codes over all test images and positions (``codebook_size``
when usage is uniform, 1 when one entry takes everything). Checkpoint ``loss``: the method's
training objective on the validation set (for the estimator methods, its Monte Carlo value with a
fixed evaluation seed).

Each bottleneck keeps its usual codebook initialisation: U(-1/K, 1/K) for VQ (the VQ-VAE reference
code; entries must start near the encoder outputs or they never win a nearest-neighbour contest)
and N(0, 1) for the one-hot bottleneck (``nn.Embedding``'s default; with the tiny VQ init every code
decodes to almost the same image, f hardly depends on z, and all three estimators stall at the
mean image). The rest of the network is identical across methods.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import distributions as D

import estimators

from .checks import check_ints, check_number
from .data import digit_pixels, split_indices
from .methods import RegistryMethods, example_distribution
from .training import Run, TrainingTask, evenly_spaced, register_training_task, train_on_schedule

__all__ = ["VQVAEDigits", "DiscreteAutoencoder", "perplexity", "quantise", "vq_terms",
           "BASELINES"]

PIXELS = 64

#: the task's own method besides the registered estimators
BASELINES = ("vq_straight_through",)


def _bottleneck(task) -> object:
    """The representative bottleneck distribution of a task (or of the class's defaults)."""
    sizes = vars(task) if isinstance(task, VQVAEDigits) else {}
    return example_distribution("OneHotCategorical", (sizes.get("batch_size", 64),),
                                (sizes.get("latents", 4), sizes.get("codebook_size", 16)))


def perplexity(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """``exp(H)`` of the empirical distribution of integer ``codes`` (any shape) over
    ``codebook_size`` entries; unused entries contribute ``0 log 0 = 0``."""
    counts = torch.bincount(codes.reshape(-1), minlength=codebook_size).to(torch.float64)
    p = counts / counts.sum()
    return torch.exp(-torch.special.xlogy(p, p).sum())


def quantise(z_e: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest codebook entries: ``k* = argmin_k ||z_e - e_k||^2`` over the last dim.
    Returns ``(k*, z_q = e_{k*})``."""
    distances = ((z_e.unsqueeze(-2) - codebook) ** 2).sum(-1)
    codes = distances.argmin(-1)
    return codes, codebook[codes]


def vq_terms(model: DiscreteAutoencoder, x: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    """The VQ-VAE loss terms per example (van den Oord et al. 2017, eq. 3):

    ``recon = ||x - dec(z_e + sg[z_q - z_e])||^2`` (straight-through: the decoder sees z_q, the
    encoder receives the gradient taken at z_q), ``codebook = ||sg[z_e] - z_q||^2`` (moves the
    entries; the only term that reaches the codebook) and ``commitment = beta ||z_e - sg[z_q]||^2``.
    Squared norms are summed over pixels / positions and code dimensions. Also returns ``z_e``,
    ``z_q`` and ``codes`` for inspection.
    """
    z_e = model.encode(x)
    codes, z_q = quantise(z_e, model.codebook)
    z = z_e + (z_q - z_e).detach()
    return {"recon": ((x - model.decode(z)) ** 2).sum(-1),
            "codebook": ((z_e.detach() - z_q) ** 2).sum((-2, -1)),
            "commitment": beta * ((z_e - z_q.detach()) ** 2).sum((-2, -1)),
            "z_e": z_e, "z_q": z_q, "codes": codes}


class DiscreteAutoencoder(torch.nn.Module):
    """MLP encoder -> ``latents`` codebook choices -> MLP decoder.

    ``encoder_out`` is ``code_dim`` for VQ (the encoder emits ``z_e``) and ``codebook_size`` for the
    estimator methods (it emits logits). The decoder always reads codebook vectors ``[.., latents,
    code_dim]``, so both bottlenecks feed it the same kind of input.
    """

    def __init__(self, latents: int, codebook_size: int, code_dim: int, hidden: int,
                 encoder_out: int, codebook_init: str = "uniform"):
        super().__init__()
        self.latents, self.codebook_size, self.code_dim = latents, codebook_size, code_dim
        self.encoder = torch.nn.Sequential(torch.nn.Linear(PIXELS, hidden), torch.nn.ReLU(),
                                           torch.nn.Linear(hidden, latents * encoder_out))
        codebook = torch.empty(codebook_size, code_dim)
        if codebook_init == "uniform":
            # VQ-VAE reference code: U(-1/K, 1/K), entries start near the encoder outputs; with
            # N(0, 1) entries most fall far from every z_e and stay dead (perplexity ~1).
            codebook.uniform_(-1 / codebook_size, 1 / codebook_size)
        elif codebook_init == "normal":
            # nn.Embedding's N(0, 1): codes enter as one-hot @ E, an embedding lookup; with the
            # tiny VQ init every code decodes to nearly the same image and f barely depends on z.
            codebook.normal_()
        else:
            raise ValueError(f"codebook_init must be 'uniform' or 'normal', got {codebook_init!r}")
        self.codebook = torch.nn.Parameter(codebook)
        self.decoder = torch.nn.Sequential(torch.nn.Linear(latents * code_dim, hidden),
                                           torch.nn.ReLU(), torch.nn.Linear(hidden, PIXELS))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 64] -> [N, latents, encoder_out]``."""
        return self.encoder(x).unflatten(-1, (self.latents, -1))

    def decode(self, vectors: torch.Tensor) -> torch.Tensor:
        """Codebook vectors ``[..., latents, code_dim] -> `` pixels ``[..., 64]`` in (0, 1)."""
        return torch.sigmoid(self.decoder(vectors.flatten(-2)))

    def decode_onehot(self, z: torch.Tensor) -> torch.Tensor:
        """One-hot (or relaxed) codes ``[..., latents, codebook_size]`` -> pixels."""
        return self.decode(z @ self.codebook)


@dataclass
class _Objective:
    """The training objective of one method: per-batch loss and hard codes for evaluation."""

    loss: Callable[[torch.Tensor], torch.Tensor]
    codes: Callable[[torch.Tensor], torch.Tensor]
    reconstruct: Callable[[torch.Tensor], torch.Tensor]


@register_training_task(
    "vqvae_digits",
    description="discrete-bottleneck autoencoder on sklearn digits: VQ-VAE straight-through vs "
                "Gumbel-softmax, ST-Gumbel and REINFORCE-LOO on a categorical bottleneck; test "
                "MSE with hard codes",
    reference="van den Oord et al. 2017 (VQ-VAE); Jang et al. 2017; Maddison et al. 2017; "
              "Kool et al. 2019")
class VQVAEDigits(TrainingTask):
    """Discrete autoencoder task; sizes are constructor options (defaults, 150 steps and 4
    checkpoints, the suite's budget; the full grid trains 500 steps with 6: ~1-3 s per run on one
    CPU thread)."""

    name = "vqvae_digits"
    description = "discrete-bottleneck autoencoder on 8x8 digits"
    metric = "test reconstruction MSE per image with hard codes"
    higher_is_better = False
    methods = RegistryMethods(family="OneHotCategorical", baselines=BASELINES,
                              example=_bottleneck)
    checkpoint_measures = ("perplexity",)

    def __init__(self, *, latents: int = 4, codebook_size: int = 16, code_dim: int = 8,
                 hidden: int = 64, steps: int = 150, batch_size: int = 64, lr: float = 3e-3,
                 beta: float = 0.25, num_samples: int = 4, num_checkpoints: int = 4,
                 estimator_options: dict[str, dict[str, object]] | None = None):
        owner = self.name
        vars(self).update(check_ints(owner, dict(
            latents=latents, codebook_size=codebook_size, code_dim=code_dim, hidden=hidden,
            steps=steps, batch_size=batch_size, num_samples=num_samples,
            num_checkpoints=num_checkpoints), minimum={"codebook_size": 2, "num_checkpoints": 2}))
        self.lr = check_number(owner, "lr", lr)
        self.beta = check_number(owner, "beta", beta, allow_zero=True)
        options = dict(estimator_options or {})
        known = [m for m in self.methods if m not in BASELINES]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"vqvae_digits: estimator_options for unknown method(s) {unknown}; "
                             f"expected keys among {', '.join(known)}")
        self.estimator_options = options

    # -- pieces ----------------------------------------------------------------------------
    def schedule(self) -> list[int]:
        """Checkpoint steps, shared by every method: evenly spaced from 0 to ``steps``."""
        return evenly_spaced(self.steps, self.num_checkpoints)

    @staticmethod
    def split_indices(seed: int) -> dict[str, np.ndarray]:
        """Disjoint train / valid / test indices (60 / 20 / 20 %) into ``load_digits()``."""
        parts = split_indices(len(digit_pixels()), np.random.default_rng([seed, 0x7A3]))
        return dict(zip(("train", "valid", "test"), parts))

    def data(self, seed: int) -> dict[str, np.ndarray]:
        """The train / valid / test images [n, 64] of one seed."""
        pixels = digit_pixels()
        return {k: pixels[i] for k, i in self.split_indices(seed).items()}

    def model(self, method: str) -> DiscreteAutoencoder:
        self.check_method(method)
        if method == "vq_straight_through":
            return DiscreteAutoencoder(self.latents, self.codebook_size, self.code_dim,
                                       self.hidden, self.code_dim, codebook_init="uniform")
        return DiscreteAutoencoder(self.latents, self.codebook_size, self.code_dim, self.hidden,
                                   self.codebook_size, codebook_init="normal")

    def estimator(self, method: str):
        """The registered estimator of ``method`` (a spec), with its ``estimator_options``."""
        return estimators.get(method, **self.estimator_options.get(method, {}))

    def objective(self, method: str, model: DiscreteAutoencoder,
                  counter: list[float] | None = None) -> _Objective:
        """The method's loss (mean over the batch) and its hard-code reconstruction; f's
        evaluations per example (the leading sample count of each call) add to ``counter[0]``."""
        self.check_method(method)
        counter = [0.0] if counter is None else counter
        if method == "vq_straight_through":
            def loss(x):
                terms = vq_terms(model, x, self.beta)
                return (terms["recon"] + terms["codebook"] + terms["commitment"]).mean()

            def codes(x):
                return quantise(model.encode(x), model.codebook)[0]

            def reconstruct(x):
                return model.decode(model.codebook[codes(x)])

            return _Objective(loss, codes, reconstruct)

        est = self.estimator(method)
        num_samples = self.num_samples

        def loss(x):
            dist = D.Independent(D.OneHotCategorical(logits=model.encode(x)), 1)
            per_sample = x.shape[0] * self.latents * self.codebook_size

            def f(z):  # [K, N]: cost per example
                counter[0] += z.numel() / per_sample
                return ((x - model.decode_onehot(z)) ** 2).sum(-1)
            return est(dist, f, num_samples=num_samples) / x.shape[0]

        def codes(x):
            return model.encode(x).argmax(-1)

        def reconstruct(x):
            return model.decode(model.codebook[codes(x)])

        return _Objective(loss, codes, reconstruct)

    # -- the run ---------------------------------------------------------------------------
    def run(self, method: str, seed: int = 0, device: str = "cpu") -> Run:
        self.check_method(method)
        if method not in BASELINES and self.num_samples < self.estimator(method).min_samples():
            raise ValueError(f"vqvae_digits: method {method!r} needs num_samples >= "
                             f"{self.estimator(method).min_samples()}, got "
                             f"num_samples={self.num_samples}")
        device = torch.device(device)
        split = {k: torch.as_tensor(v, device=device) for k, v in self.data(seed).items()}
        x_train, n_train = split["train"], len(split["train"])
        if self.batch_size > n_train:
            raise ValueError(f"vqvae_digits: batch_size ({self.batch_size}) must be <= the "
                             f"{n_train} training images")
        rng_devices = [device.index or 0] if device.type == "cuda" else []

        with torch.random.fork_rng(devices=rng_devices):  # the caller's RNG stays untouched
            torch.manual_seed(seed)  # init and the estimators' samples (global RNG)
            model = self.model(method).to(device)
            counter = [0.0]
            objective = self.objective(method, model, counter)
            optimiser = torch.optim.Adam(model.parameters(), lr=self.lr)
            gen = torch.Generator().manual_seed(seed)
            per_epoch = max(1, n_train // self.batch_size)
            epochs = math.ceil(self.steps / per_epoch)
            order = torch.cat([torch.randperm(n_train, generator=gen)[:per_epoch * self.batch_size]
                               for _ in range(epochs)])
            order = order[:self.steps * self.batch_size].view(self.steps, -1).to(device)

            def evaluate() -> dict[str, float]:
                model.eval()
                with torch.no_grad(), estimators.value_only(), \
                        torch.random.fork_rng(devices=rng_devices):
                    torch.manual_seed(seed)  # same evaluation noise at every checkpoint
                    x_test = split["test"]
                    error = ((x_test - objective.reconstruct(x_test)) ** 2).mean(-1).mean()
                    out = {"loss": float(objective.loss(split["valid"])), "metric": float(error),
                           "perplexity": float(perplexity(objective.codes(x_test),
                                                          self.codebook_size))}
                model.train()
                return out

            def update(step: int) -> None:
                before = counter[0]
                loss = objective.loss(x_train[order[step]])
                training[0] += counter[0] - before
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()

            training = [0.0]  # f evaluations of the updates (evaluation's excluded)
            checkpoints = train_on_schedule(self.schedule(), update, evaluate, device)

        evaluations = 1.0 if method in BASELINES else training[0] / max(self.steps, 1)
        return Run(task=self.name, method=method, seed=seed, checkpoints=checkpoints,
                   evaluations_per_update=evaluations)
