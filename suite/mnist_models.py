"""The model and trainer of the literature-scale discrete VAEs on binarized MNIST
(:mod:`suite.train_mnist_vae`, which holds the tasks, their options and registration): the
parameters and maths of the VAE (:class:`Model`), the importance-weighted bounds
(:func:`iwae_terms`), one ``(method, seed)`` run's training state (:class:`_Trainer`) and the
plain-torch floor of a training step (:func:`plain_loo_step`).

**Models** (checked against the DisARM reference code, google-research/disarm,
``binary/experiment_launcher_singlelayer.py`` and ``categorical/experiment_launcher.py``):

* ``linear``: 784 -> 200 Bernoulli latents -> 784, one affine map each way (Dong et al. 2020,
  Sec. 6.2; Tucker et al. 2017; Grathwohl et al. 2018);
* ``nonlinear``: 784 -> 200 -> 200 -> 200 latents -> 200 -> 200 -> 784, LeakyReLU(0.3) after each
  hidden layer (ibid.);
* ``categorical``: 20 latents x 10 classes, 784 -> 512 -> 256 -> 20 x 10 -> 256 -> 512 -> 784 with
  LeakyReLU(0.2) (Jang et al. 2017, Sec. 4.3's architecture, as the DisARM categorical code has
  it).

A learned factorised prior (Bernoulli logits, or per-variable class logits), initialised to 0
(uniform) and trained by SGD with learning rate 1e-2 (the reference code's ``prior_lr``).
Weights Glorot-uniform, biases 0, except the **decoder's output bias, initialised to the logit
of the training data's mean pixel intensity** (clipped to [0.001, 0.999]): the reference code's
``initialize_with_bias`` (it sets the *decoder's* final-layer bias; the encoder only receives
the mean for its optional input demeaning, off by default). Bernoulli pixels.

**Objective.** The single-sample ELBO of the papers: the cost of a latent sample is
``f(z) = -(log p(x|z) + log p(z) - log q(z|x))``, so ``E_q[f] = -ELBO``; every method minimises
``est(q, f, K) / batch``. The decoder and prior learn through f. Inside f, ``log q(z|x)`` uses
the encoder logits with their gradient stopped: its direct gradient ``E_q[grad log q] = 0`` is
noise, which the reference code drops too (its encoder gradient is the estimator's alone).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import distributions as D

from estimators.evaluations import evaluations as declared_evaluations

__all__ = ["PRIOR_LR", "samples_for_budget", "Model", "iwae_terms", "plain_loo_step"]

PRIOR_LR = 1e-2  # SGD on the prior's logits (the reference code's prior_lr)
_ROWS_PER_CHUNK = 20_000  # decoder rows per evaluation chunk (memory: rows x 784 floats)


def samples_for_budget(est, dist, budget: int) -> int:
    """The most samples ``est`` may draw with at most ``budget`` f evaluations per batch element
    (its declared ``evaluations``; one per sample when it declares none), at least its
    ``min_samples()``."""
    least = int(est.min_samples())
    best = None
    for n in range(least, max(least, budget) + 1):
        used = declared_evaluations(est, dist, n)
        if (n if used is None else used) <= budget:
            best = n
    return least if best is None else best


# -- the model -------------------------------------------------------------------------------
def _glorot(n_in: int, n_out: int, g: torch.Generator) -> torch.Tensor:
    bound = math.sqrt(6.0 / (n_in + n_out))
    return (torch.rand(n_in, n_out, generator=g) * 2 - 1) * bound


def _forward(params, x, slope: float):
    """An MLP ``[W1, b1, W2, b2, ...]`` (weights ``[in, out]``, or ``[R, in, out]`` with a
    leading replicate dimension), LeakyReLU(slope) between layers."""
    h = x
    last = len(params) - 2
    for i in range(0, len(params), 2):
        w, b = params[i], params[i + 1]
        h = torch.matmul(h, w) + (b.unsqueeze(-2) if b.dim() == 2 else b)
        if i < last:
            h = F.leaky_relu(h, slope)
    return h


@dataclass
class Model:
    """Encoder, decoder and prior parameters plus the maths of f and the bounds."""

    kind: str  # binary | categorical
    latents: int
    classes: int
    slope: float
    enc: list
    dec: list
    prior: torch.Tensor

    @property
    def latent_size(self) -> int:
        return self.latents * (self.classes if self.kind == "categorical" else 1)

    def encode(self, x, enc=None):
        return _forward(self.enc if enc is None else enc, x, self.slope)

    def dist(self, logits):
        if self.kind == "categorical":
            shaped = logits.unflatten(-1, (self.latents, self.classes))
            return D.Independent(D.OneHotCategorical(logits=shaped), 1)
        return D.Independent(D.Bernoulli(logits=logits), 1)

    def _flat(self, z):
        return z.flatten(-2) if self.kind == "categorical" else z

    def log_q(self, z, logits):
        """log q(z|x) for samples (or relaxed samples) z ``[..., latent event]``."""
        if self.kind == "categorical":
            logp = torch.log_softmax(logits.unflatten(-1, (self.latents, self.classes)), -1)
            return (z * logp).sum((-2, -1))
        return (z * logits).sum(-1) - F.softplus(logits).sum(-1)

    def log_prior(self, z, prior=None):
        prior = self.prior if prior is None else prior
        if self.kind == "categorical":
            return (z * torch.log_softmax(prior, -1)).sum((-2, -1))
        return (z * prior).sum(-1) - F.softplus(prior).sum()

    def log_joint(self, x, z, dec=None, prior=None):
        """log p(x, z) for z ``[..., latent event]`` and x broadcastable to ``[..., 784]``."""
        pixel_logits = _forward(self.dec if dec is None else dec, self._flat(z), self.slope)
        log_px_z = (x * pixel_logits).sum(-1) - F.softplus(pixel_logits).sum(-1)
        return log_px_z + self.log_prior(z, prior)

    def cost_fn(self, x, logits, dec=None, prior=None):
        """``f(z) = -(log p(x, z) - log q(z|x))`` with q's logits' gradient stopped."""
        fixed = logits.detach()

        def f(z):
            return self.log_q(z, fixed) - self.log_joint(x, z, dec, prior)
        return f

    def parameters(self) -> list:
        return [*self.enc, *self.dec, self.prior]


def iwae_terms(model: Model, x, samples: int) -> dict[str, torch.Tensor]:
    """Per-image ``log_px`` (the ``samples``-sample importance-weighted bound), ``elbo`` (the
    average of the same log weights) and ``var`` (the bound's delta-method Monte Carlo
    variance), evaluated in chunks of images."""
    out = {"log_px": [], "elbo": [], "var": []}
    chunk = max(1, _ROWS_PER_CHUNK // samples)
    with torch.no_grad():
        for start in range(0, len(x), chunk):
            xs = x[start:start + chunk]
            logits = model.encode(xs)
            q = model.dist(logits)
            z = q.sample((samples,))
            log_w = model.log_joint(xs, z) - q.log_prob(z)  # [S, n]
            lse = torch.logsumexp(log_w, 0)
            weights = torch.softmax(log_w, 0)
            out["log_px"].append(lse - math.log(samples))
            out["elbo"].append(log_w.mean(0))
            out["var"].append(((weights ** 2).sum(0) - 1.0 / samples).clamp_min(0))
    return {k: torch.cat(v) for k, v in out.items()}


class _Trainer:
    """One ``(method, seed)`` run's state: model, optimisers, estimator, data order."""

    def __init__(self, task, method: str, seed: int, device: torch.device):
        self.task, self.method, self.seed, self.device = task, method, seed, device
        self.model = task.init_model(seed, device)
        m = self.model
        self.optimiser = torch.optim.Adam([*m.enc, *m.dec], lr=task.lr)
        self.prior_optimiser = torch.optim.SGD([m.prior], lr=PRIOR_LR)
        self.est = task.estimator(method).to(device)
        probe = m.dist(torch.zeros(task.batch_size, m.latent_size, device=device))
        self.num_samples = samples_for_budget(self.est, probe, task.num_samples)
        self.train = torch.as_tensor(np.array(task.data()["train"])).to(device)
        if task.batch_size > len(self.train):
            raise ValueError(f"{task.name}: batch_size ({task.batch_size}) is more than the "
                             f"{len(self.train)} training images")
        self.per_epoch = len(self.train) // task.batch_size
        self._epoch, self._order = -1, None
        self._rows = 0  # f rows evaluated per image (leading sample counts)

    def _generator(self, *key: int) -> torch.Generator:
        state = np.random.SeedSequence([int(self.seed), *key]).generate_state(2)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def batch(self, step: int) -> torch.Tensor:
        """The binarized training batch of ``step`` (any order of access): each epoch a fresh
        permutation of the training images, and every step's pixels drawn afresh ~
        Bernoulli(intensity), so each image is rebinarized every epoch; the same for every
        method of a seed."""
        from .data_mnist import binarize
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            order = torch.randperm(len(self.train), generator=self._generator(0, epoch))
            self._order, self._epoch = order.to(self.device), epoch
        b = self.task.batch_size
        return binarize(self.train[self._order[j * b:(j + 1) * b]], self._generator(1, step))

    def _counted(self, f, per_image: int):
        def g(z):
            self._rows += z.numel() // per_image
            return f(z)
        return g

    def loss(self, x) -> torch.Tensor:
        m = self.model
        logits = m.encode(x)
        q = m.dist(logits)
        per_image = m.latent_size * x.shape[0]
        f = self._counted(m.cost_fn(x, logits), per_image)
        return self.est(q, f, num_samples=self.num_samples) / x.shape[0]

    def step(self, x) -> None:
        loss = self.loss(x)
        self.optimiser.zero_grad(set_to_none=True)
        self.prior_optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        self.prior_optimiser.step()

    def evaluations_per_image(self) -> float:
        return float(self._rows)

    def gradient_variance(self, x) -> torch.Tensor:
        """Trace of the covariance of R encoder-gradient estimates of the per-image loss on
        ``x`` (a 0-d tensor; one estimator call on R stacked copies of the encoder)."""
        m, r = self.model, self.task.grad_replicates
        leaves = [p.detach().unsqueeze(0).expand(r, *p.shape).clone().requires_grad_()
                  for p in m.enc]
        logits = m.encode(x, leaves)  # [R, N, latent_size]
        frozen_dec = [p.detach() for p in m.dec]
        try:
            twin = copy.deepcopy(self.est)
        except Exception:  # noqa: BLE001 - an estimator that cannot be copied: itself
            twin = self.est
        f = m.cost_fn(x, logits, frozen_dec, m.prior.detach())
        with torch.enable_grad():
            (twin(m.dist(logits), f, num_samples=self.num_samples) / x.shape[0]).backward()
        ghat = torch.cat([p.grad.reshape(r, -1) for p in leaves], -1).double()
        return (ghat - ghat.mean(0)).square().sum() / (r - 1)  # tr Cov (var(0) is slow)



def plain_loo_step(params, optimiser, prior_optimiser, x, num_samples: int) -> None:
    """One REINFORCE-LOO training step of the linear model in plain torch (no
    ``torch.distributions``, no estimator object): the floor of :func:`floor_step_ratio`.
    ``params`` = ``[W_enc, b_enc, W_dec, b_dec, prior]``; the same objective as the suite's step
    (f with ``log q``'s gradient stopped, K/(K-1) times the leave-one-out centred costs)."""
    w1, b1, w2, b2, prior = params
    k = num_samples
    logits = torch.addmm(b1, x, w1)
    with torch.no_grad():
        z = torch.rand((k,) + logits.shape, dtype=logits.dtype,
                       device=logits.device).lt_(torch.sigmoid(logits)).to(logits.dtype)
    log_q = (z * logits).sum(-1) - F.softplus(logits).sum(-1)  # [K, B]
    pixel_logits = torch.matmul(z, w2) + b2
    log_pxz = (x * pixel_logits).sum(-1) - F.softplus(pixel_logits).sum(-1)
    log_pz = z @ prior - F.softplus(prior).sum()
    f = log_q.detach() - log_pxz - log_pz
    centred = f.detach() - f.detach().mean(0)
    loss = torch.addcmul(f, centred, log_q - log_q.detach(), value=k / (k - 1)).mean(0).sum()
    optimiser.zero_grad(set_to_none=True)
    prior_optimiser.zero_grad(set_to_none=True)
    (loss / x.shape[0]).backward()
    optimiser.step()
    prior_optimiser.step()
