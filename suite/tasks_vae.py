"""Gradient tasks on a discrete VAE of scikit-learn's digits: the gradient of the ELBO with respect
to the encoder at a fixed checkpoint, with the exact reference from enumerating the latents.
(Split from :mod:`suite.tasks`, which re-exports these names.)"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import distributions as D

from .data import binarised_digits
from .taskbase import GradientTask, Problem, _leaf, register_task


# -- VAEs on scikit-learn's digits ------------------------------------------------------------
def _mlp(params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """A linear map ``[W, b]`` or a tanh MLP ``[W1, b1, W2, b2]``; weights may carry a leading
    replicate dim R (then x is ``[..., R, N, in]`` or ``[N, in]``)."""
    h = x
    for i in range(0, len(params), 2):
        w, b = params[i], params[i + 1]
        if w.dim() == 3:  # replicated weights [R, in, out]
            h = torch.einsum("...rni,rio->...rno", h if h.dim() > 2 else h.expand(
                w.shape[0], *h.shape), w) + b[:, None, :]
        else:
            h = h @ w + b
        if i + 2 < len(params):
            h = torch.tanh(h)
    return h


def _init_mlp(sizes: Sequence[int], g: torch.Generator) -> list[torch.Tensor]:
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        params.append(torch.randn(n_in, n_out, generator=g, dtype=torch.float64) / math.sqrt(n_in))
        params.append(torch.zeros(n_out, dtype=torch.float64))
    return params


class _DigitsVAE(GradientTask):
    """Shared machinery: a discrete-latent VAE on binarised digits at a fixed checkpoint.

    Cost of a latent sample z for an image x: ``-log p(x | z) + KL(q(z | x) || uniform prior)``
    (the KL in closed form), so ``E_q[f]`` is the negative ELBO. The measured gradient is with
    respect to the encoder's weights (replicated R times, so R estimates come from one call);
    the decoder is f's own parameter and is held fixed. The checkpoint is trained for
    ``train_steps`` Adam steps with the leave-one-out score-function estimator (K = 16) from a
    fixed seed; the reference gradient enumerates the latent support exactly.
    """

    replicates = 1000
    min_replicates = 8
    row_budget = 2 ** 12
    bias_target = 0.25
    batch = 16

    def __init__(self, hidden: int = 0, train_steps: int = 300, seed: int = 0):
        self.hidden = int(hidden)
        g = torch.Generator().manual_seed(seed)
        data = binarised_digits()
        perm = torch.randperm(data.shape[0], generator=g)
        self.x = data[perm[:self.batch]].clone()  # the fixed minibatch whose gradient we measure
        enc_sizes = [64] + ([self.hidden] if self.hidden else []) + [self.latent_size]
        dec_sizes = [self.latent_size] + ([self.hidden] if self.hidden else []) + [64]
        self.encoder = _init_mlp(enc_sizes, g)
        self.decoder = _init_mlp(dec_sizes, g)
        self._train(data[perm[self.batch:]], train_steps, g)

    # -- to be set by subclasses ----------------------------------------------------------------
    latent_size: int = 0

    def _dist(self, logits: torch.Tensor) -> D.Distribution:
        raise NotImplementedError

    def _kl(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _decoder_input(self, z: torch.Tensor) -> torch.Tensor:
        return z

    # -- shared ---------------------------------------------------------------------------------
    def _cost_fn(self, x, decoder, logits):
        kl = self._kl(logits)

        def f(z):
            pixel_logits = _mlp(decoder, self._decoder_input(z))
            nll = torch.nn.functional.binary_cross_entropy_with_logits(
                pixel_logits, x.expand_as(pixel_logits), reduction="none").sum(-1)
            return nll + kl
        return f

    def _train(self, data, steps, g):
        import estimators
        params = [p.clone().requires_grad_() for p in self.encoder + self.decoder]
        enc, dec = params[:len(self.encoder)], params[len(self.encoder):]
        opt = torch.optim.Adam(params, lr=3e-3)
        est = estimators.get("score_function", baseline="loo")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2 ** 31, (1,), generator=g)))
            for _ in range(steps):
                idx = torch.randint(data.shape[0], (64,), generator=g)
                x = data[idx]
                logits = _mlp(enc, x)
                loss = est(self._dist(logits), self._cost_fn(x, dec, logits), num_samples=16)
                opt.zero_grad()
                (loss / x.shape[0]).backward()
                opt.step()
        self.encoder = [p.detach() for p in enc]
        self.decoder = [p.detach() for p in dec]

    def problem(self, replicates, device="cpu", dtype=torch.float32):
        leaves = [_leaf(p, replicates, device, dtype) for p in self.encoder]
        x = self.x.to(device, dtype)
        decoder = [p.to(device, dtype) for p in self.decoder]
        logits = _mlp(leaves, x)  # [R, N, latent...]
        return Problem(leaves, self._dist(logits), self._cost_fn(x, decoder, logits))

    def _reference(self):
        import estimators
        problem = self.problem(1, "cpu", torch.float64)
        exact = estimators.get("exact")
        exact(problem.dist, problem.f, num_samples=1).backward()
        return problem.flat_grad()[0]


class BinaryVAE(_DigitsVAE):
    """Bernoulli latents (10 of them: 1024 joint states, enumerable), ``q(z|x) = Π Bernoulli``,
    uniform prior. Linear (``hidden = 0``) or one tanh hidden layer encoder and decoder.
    The binary-latent VAE benchmark of REBAR/RELAX (Tucker et al. 2017; Grathwohl et al. 2018)
    at a size where the exact gradient is computable."""

    latent_size = 10

    def _dist(self, logits):
        return D.Independent(D.Bernoulli(logits=logits), 1)

    def _kl(self, logits):
        # KL(Bern(p) || Bern(1/2)) = p log p + (1-p) log(1-p) + log 2, summed over latents
        logp, log1mp = -torch.nn.functional.softplus(-logits), -torch.nn.functional.softplus(logits)
        p = torch.sigmoid(logits)
        return (p * logp + (1 - p) * log1mp + math.log(2)).sum(-1)


class CategoricalVAE(_DigitsVAE):
    """Three categorical latents with 8 classes each (512 joint states), one-hot into a tanh
    MLP decoder; uniform prior (Jang et al. 2017's categorical VAE, enumerable size)."""

    groups, classes = 3, 8
    latent_size = groups * classes

    def _dist(self, logits):
        logits = logits.reshape(*logits.shape[:-1], self.groups, self.classes)
        return D.Independent(D.OneHotCategorical(logits=logits), 1)

    def _decoder_input(self, z):
        return z.reshape(*z.shape[:-2], self.latent_size)

    def _kl(self, logits):
        logq = torch.log_softmax(logits.reshape(*logits.shape[:-1], self.groups, self.classes), -1)
        return (logq.exp() * (logq + math.log(self.classes))).sum((-1, -2))


register_task("vae_bernoulli_linear", family="Bernoulli",
              description="binary VAE on digits, 10 Bernoulli latents, linear encoder/decoder; "
                          "ELBO gradient w.r.t. the encoder, exact by enumeration",
              reference="Tucker et al. 2017; Grathwohl et al. 2018", exact="enumeration",
              bias_target=0.25)(functools.partial(BinaryVAE, hidden=0))
register_task("vae_bernoulli_mlp", family="Bernoulli",
              description="binary VAE on digits, 10 Bernoulli latents, tanh MLP (32 hidden) "
                          "encoder/decoder; exact by enumeration",
              reference="Tucker et al. 2017; Grathwohl et al. 2018", exact="enumeration",
              bias_target=0.25)(functools.partial(BinaryVAE, hidden=32))
register_task("vae_categorical", family="OneHotCategorical",
              description="categorical VAE on digits, 3 latents x 8 classes, tanh MLP (32 "
                          "hidden); exact by enumeration",
              reference="Jang et al. 2017; Maddison et al. 2017", exact="enumeration",
              bias_target=0.25)(functools.partial(CategoricalVAE, hidden=32))
