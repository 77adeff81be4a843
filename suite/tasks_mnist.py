"""Gradient tasks at trained checkpoints of the literature-scale binary VAEs (issue 23):
``vae_mnist_linear`` and ``vae_mnist_nonlinear``, the DisARM paper's 784-200-784 models on
binarized MNIST (:mod:`suite.mnist_models`, trained by :mod:`suite.train_mnist_vae`'s trainer).

**What is measured.** The gradient of the negative ELBO of a fixed batch of ``images`` held-out
digits (the first test images of the shipped subset, binarized once with a fixed generator) with
respect to the encoder's output logits ``θ`` (``[images, 200]``, replicated R times), at a
checkpoint trained deterministically for ``steps`` Adam steps (lr 1e-3, batch 50) of REINFORCE
with the leave-one-out baseline (K = 4), seed ``seed``. The cost of a latent sample is the
training objective's, ``f(z) = log q(z|x) - log p(x, z)`` with q's logits held fixed inside f,
so ``∇_θ E_q[f]`` is the ELBO's gradient (``E_q[∇ log q] = 0``). The encoder's weights receive
this gradient through a fixed Jacobian, so the logits carry the whole estimator-dependent part at
a cost a cell affords: the weights (157k per replicate for the linear encoder) x 1,000 replicates
would not fit a cell's memory.

**The reference** is out of exact reach (2^200 states per image), so it is an unbiased estimate
computed in float64: the local-expectation gradient of factorised Bernoulli latents (Titsias &
Lázaro-Gredilla 2015), ``∂/∂θ_d E_q[f] = σ'(θ_d) E_{z~q}[f(z, z_d = 1) - f(z, z_d = 0)]``,
vectorised over the 200 flips of each sample (:func:`local_expectation`), over ``pairs``
antithetic pairs of samples (``u`` and ``1 - u``: at equal evaluations they cut the variance
~2.5-fold on these models, measured). Its covariance, estimated from the pairs, is
block-diagonal over the images (they are sampled independently) and goes to the statistics and
the claim test (:meth:`~suite.taskbase.GradientTask.reference_covariance`), so a truly unbiased
estimator is not called biased for the reference's own noise; it sets a floor on the detectable
bias (``ClaimTest.reference_bias``). ``pairs`` is chosen so that the reference's relative error
``sqrt(tr C) / ||g||`` is well under ``bias_target / 5`` = 0.05 and about 0.01 along g (the claim
test's floor, 5.4 x that, then ~0.05, a fifth of the 0.25 target). Measured on the built tasks
(defaults, one CPU core, a shared machine): linear, 256 pairs: 0.013 overall, 0.002 along g, the
reference in ~5 s; nonlinear, 512 pairs: 0.031 and 0.010 in ~16 s (its flip differences vary
more with the other latents); training the checkpoint ~2 s each, loading the digits ~3-6 s once.
The run files say which reference a task used: the ``reference_error`` harness row (this
relative error; 0 for exact tasks) with the reference's kind in its ``reference_kind`` column.

Both tasks are left out of the default grid (``in_default_grid = False``: a build trains a
checkpoint and computes the reference, and a cell costs a 200 -> 784 decoder pass per sample);
the full grid and a named narrowing (``--tasks vae_mnist_linear``) run them.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import distributions as D

from .checks import check_ints, check_number
from .mnist_models import Model
from .taskbase import GradientTask, Problem, _leaf, register_task

__all__ = ["local_expectation", "MNISTVAEGradient", "MNISTVAELinearGradient",
           "MNISTVAENonlinearGradient", "LE_REFERENCE"]

#: the seed of the held-out images' fixed binarization
_IMAGE_SEED = 0x23_1E_A5
#: the reference's description, with the number of antithetic pairs
LE_REFERENCE = ("local expectation (Titsias & Lázaro-Gredilla 2015), {pairs} antithetic pairs "
                "of samples, float64")


def local_expectation(logits: torch.Tensor, f, pairs: int, generator: torch.Generator,
                      chunk: int = 1, antithetic: bool = True
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Unbiased estimate of ``∇_θ E_{z ~ Bernoulli(σ(θ))}[f(z)]`` for factorised Bernoulli
    latents: ``(mean [B, D], contributions [pairs, B, D])``, the contributions i.i.d. (their
    covariance over ``pairs`` is the mean's covariance times ``pairs``).

    ``logits`` ``[B, D]``: B independent problems (images) of D latents; ``f`` maps ``z``
    ``[..., B, D]`` to ``[..., B]``. Per sample, ``σ'(θ_d) (f(z_{d=1}) - f(z_{d=0}))`` for every
    d at once: f evaluated on z and its D one-bit flips (``(2 z_d - 1)(f(z) - f(flip_d z))``).
    ``antithetic``: each contribution averages the samples of ``u`` and ``1 - u`` (``z = 1[u <
    σ(θ)]``), still unbiased; else one sample. ``chunk``: pairs evaluated at once (memory:
    ``2 chunk (D + 1) B`` rows of f; 1 was the fastest on the MNIST tasks, measured)."""
    if logits.dim() != 2:
        raise ValueError(f"local_expectation: logits must be [B, D], got {tuple(logits.shape)}")
    pairs, chunk = int(pairs), int(chunk)
    if pairs < 2 or chunk < 1:
        raise ValueError(f"local_expectation: need pairs >= 2 and chunk >= 1, got pairs={pairs}, "
                         f"chunk={chunk}")
    b, d = logits.shape
    p = torch.sigmoid(logits)
    slope = p * (1 - p)
    flips = torch.eye(d, dtype=logits.dtype, device=logits.device)[:, None, :]  # [D, 1, D]

    def contributions(z):  # z [s, B, D] -> [s, B, D]
        flipped = z[:, None] + (1 - 2 * z[:, None]) * flips  # [s, D, B, D]
        diff = f(z)[:, None, :] - f(flipped)  # [s, D, B]: f(z) - f(flip_d z)
        return slope * (2 * z - 1) * diff.transpose(1, 2)

    out = []
    with torch.no_grad():
        for start in range(0, pairs, chunk):
            s = min(chunk, pairs - start)
            u = torch.rand((s, b, d), generator=generator, dtype=logits.dtype,
                           device=logits.device)
            c = contributions((u < p).to(logits.dtype))
            if antithetic:
                c = 0.5 * (c + contributions(((1 - u) < p).to(logits.dtype)))
            out.append(c)
    c = torch.cat(out)
    return c.mean(0), c


class MNISTVAEGradient(GradientTask):
    """Shared machinery (see the module's notes); subclasses set ``training_task`` (the name of
    the :mod:`suite.train_mnist_vae` class whose model and trainer they use) and ``pairs``."""

    #: left out of the default grid (see the module's notes); the full grid runs it
    in_default_grid = False
    replicates = 1000
    min_replicates = 8
    row_budget = 2 ** 13  # K x R samples of all the images at once: ~100 MB of pixel logits
    bias_target = 0.25
    training_task = "BinaryVAEMNISTLinear"
    pairs = 256

    def __init__(self, steps: int = 200, images: int = 4, pairs: int | None = None,
                 seed: int = 0, lr: float = 1e-3, chunk: int = 1):
        owner = type(self).__name__
        sizes = check_ints(owner, {"steps": steps, "images": images, "chunk": chunk,
                                   "pairs": self.pairs if pairs is None else pairs},
                           minimum={"steps": 0, "pairs": 2})  # a standard error needs 2 pairs
        self.steps, self.images, self.pairs, self.chunk = (
            sizes["steps"], sizes["images"], sizes["pairs"], sizes["chunk"])
        self.seed, self.lr = int(seed), check_number(owner, "lr", lr)
        model, self.x = self._checkpoint()
        self.slope = model.slope
        self.latents = model.latents
        with torch.no_grad():
            enc = [p.detach().double() for p in model.enc]
            self.logits = model.encode(self.x, enc)  # [images, 200], float64
        self.dec = [p.detach().double() for p in model.dec]
        self.prior = model.prior.detach().double()

    def _checkpoint(self) -> tuple[Model, torch.Tensor]:
        """The trained model and the fixed binarized images (float64)."""
        import estimators

        from . import train_mnist_vae
        from .data_mnist import binarize

        training = getattr(train_mnist_vae, self.training_task)(
            tier="default", lr=self.lr, num_samples=4)
        test = np.asarray(training.data()["test"])
        if self.images > len(test):
            raise ValueError(f"{type(self).__name__}: images={self.images} is more than the "
                             f"{len(test)} test images")
        previous = estimators.validation_enabled()
        estimators.set_validation(False)  # as in training: no host sync per step
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                trainer = training.trainer("score_function:baseline=loo", self.seed)
                for step in range(self.steps):
                    trainer.step(trainer.batch(step))
        finally:
            estimators.set_validation(previous)
        x = binarize(torch.as_tensor(np.array(test[:self.images])),
                     torch.Generator().manual_seed(_IMAGE_SEED))
        return trainer.model, x.to(torch.float64)

    def _cost(self, logits: torch.Tensor, device, dtype):
        """f for latents ``[..., images, 200]`` against fixed ``logits`` (their gradient is
        stopped inside f: :meth:`suite.mnist_models.Model.cost_fn`)."""
        dec = [p.to(device, dtype) for p in self.dec]
        prior = self.prior.to(device, dtype)
        model = Model("binary", self.latents, 2, self.slope, [], dec, prior)
        return model.cost_fn(self.x.to(device, dtype), logits, dec, prior)

    def problem(self, replicates, device="cpu", dtype=torch.float32):
        leaf = _leaf(self.logits, replicates, device, dtype)  # [R, images, 200]
        return Problem([leaf], D.Independent(D.Bernoulli(logits=leaf), 1),
                       self._cost(leaf, device, dtype))

    def reference_description(self) -> str:
        """The reference as built: the local expectation over this task's ``pairs``."""
        return "estimate: " + LE_REFERENCE.format(pairs=self.pairs)

    def _local_expectation(self) -> tuple[torch.Tensor, torch.Tensor]:
        if getattr(self, "_le", None) is None:
            generator = torch.Generator().manual_seed(self.seed + 1)
            f = self._cost(self.logits, "cpu", torch.float64)
            mean, c = local_expectation(self.logits, f, self.pairs, generator, self.chunk)
            blocks = [torch.cov(c[:, i].T) / c.shape[0] for i in range(c.shape[1])]
            self._le = (mean.reshape(-1), torch.block_diag(*blocks))
        return self._le

    def _reference(self):
        return self._local_expectation()[0]

    def _reference_covariance(self):
        return self._local_expectation()[1]

    def __getstate__(self):  # the pickle the grid ships carries the reference, not the samples
        state = dict(self.__dict__)
        state.pop("_le", None)
        return state


class MNISTVAELinearGradient(MNISTVAEGradient):
    """DisARM's linear model, 784 -> 200 Bernoulli latents -> 784."""

    training_task = "BinaryVAEMNISTLinear"
    pairs = 256


class MNISTVAENonlinearGradient(MNISTVAEGradient):
    """DisARM's nonlinear model: two hidden layers of 200, LeakyReLU(0.3), each side."""

    training_task = "BinaryVAEMNISTNonlinear"
    pairs = 512


def _register(name: str, cls, form: str, shown: str):
    register_task(name, family="Bernoulli", bias_target=cls.bias_target,
                  display_name=f"VAE, MNIST, {shown} (200 latents)",
                  description=f"binary VAE on binarized MNIST, 200 Bernoulli latents, {form} "
                              f"(DisARM's model), trained 200 LOO steps; negative-ELBO gradient "
                              f"w.r.t. the encoder logits of 4 held-out digits",
                  reference="Dong et al. 2020 (DisARM); Titsias & Lázaro-Gredilla 2015",
                  estimate=LE_REFERENCE.format(pairs=cls.pairs))(cls)


_register("vae_mnist_linear", MNISTVAELinearGradient, "linear", "linear")
_register("vae_mnist_nonlinear", MNISTVAENonlinearGradient,
          "nonlinear (2 x 200, LeakyReLU 0.3)", "nonlinear")
