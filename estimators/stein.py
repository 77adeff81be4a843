"""RODEO (Shi, Zhou, Hwang, Titsias & Mackey 2022, "Gradient estimation with discrete Stein
operators", NeurIPS; reference code thjashin/rodeo, ``grad_type = discrete_stein_avg``): REINFORCE
leave-one-out with control variates from the Gibbs Stein operator, for Bernoulli (alone or in
Independent; the event is flattened to D bits).

**The operator.** For ``x ∈ {0,1}^D`` under ``q = Π Bernoulli(p_i)`` and ``y⁽ⁱ⁾`` = x with bit i
flipped, the Gibbs Stein operator (the generator of a random-scan Gibbs sampler) is::

    (A h)(x) = mean_i w_i(x) [h(y⁽ⁱ⁾) - h(x)],   w_i(x) = q(x_i flipped) = p_i(1 - x_i) + (1 - p_i) x_i

and ``E_q[(A h)(x)] = 0`` for every h (each term is ``E_{x'_i~q_i}[h(x'_i, x_{-i})] - h(x)``).

**The estimator.** K samples x_k, ``f_k = f(x_k)``, ``∇_k = ∇_x f(x_k)``, ``s_k = x_k - p`` (the
score with respect to the logits). For sample k, its LOO linearisation of f built from the
others: ``ℓ_k(y) = mean_{j≠k} ∇_j · (y - x_j)`` and ``f̄_k = mean_{j≠k} f_j``. A network
``(h⁰, h¹)(y) = net(ℓ_k(y), f̄_k)`` gives a scalar function h⁰ and, through ``H(y) = h¹(y) s(y)``,
a vector one; then::

    ĝ = mean_k [ (f_k - mean_{j≠k}(f_j + α (A h⁰_j)(x_j))) s_k + β (A H_k)(x_k) ]

(the reference code's formula, with its mean over the D neighbours). **Unbiased for any α, β and
network** that do not depend on the current draw: h_j uses only the samples other than x_j, so
``(A h⁰_j)(x_j)`` has mean 0 given the others (and s_k, k ≠ j, is among them), and likewise
``(A H_k)(x_k)`` given the samples other than x_k. ``(A H)(x)`` costs O(D), not O(D²): with
``y⁽ⁱ⁾ - p = (x - p) + e_i (1 - 2x_i)``, ``D (A H)(x) = (x - p) Σ_i w_i (h¹(y⁽ⁱ⁾) - h¹(x))
+ w ⊙ h¹(y⁽·⁾) ⊙ (1 - 2x)``; and ``ℓ_k(y⁽ⁱ⁾) = ℓ_k(x_k) + ḡ_{k,i}(1 - 2x_{k,i})``.

**Learned online.** α, β (starting at 0, as in the reference: an untrained RODEO is
REINFORCE-LOO) and the network, ``Linear(2, hidden) -> LeakyReLU(0.3) -> Linear(hidden, 2)`` (the
reference's ``SteinControlNNSingleLayer``: a dense layer on each input, summed, is one dense layer
on both), are the module's ``.parameters()``. Since ``E[ĝ]`` does not depend on them, each call,
after forming the estimate it returns, takes one Adam step (``lr``) on the mean over batch
elements of ``||ĝ||²`` (the reference trains them on ``mean(eta_grads²)``); ``est.eval()``
freezes them. The network runs in float64 for float64 logits, else in float32. Differences from
the reference: its LOO offset ``Σ_{j≠k} ∇_j · x_j`` is not divided by K - 1 (the same at K = 2;
it is a constant of the network's input either way); lr 0.01 here (1e-3 there, for 10⁶ steps).

**Surrogate** as in ``estimators/double_cv.py``: value ``mean_k f_k``, gradient ĝ through
``base.logits``, f's own parameters the pathwise gradient of that mean.

**Cost.** K f evaluations, K gradients of f with respect to its input (one backward pass
through f, inside the call), no f evaluation at the D neighbours (they are linearised), and
two network passes over ``K·(D + 1)`` inputs per batch element, forward and (for the online
step) backward: ``O(K·D·hidden)`` per batch element, the estimator's dominant cost for D ~ 100.
On the CPU, past a few thousand rows, the network runs in blocks of rows that stay in cache and
its backward recomputes the hidden layer block by block (:class:`_BlockedNet`) instead of
keeping ``[K·(D+1)·batch, hidden]`` activations: the same outputs, no large temporaries.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import distributions as D

from . import register
from .checks import integer, number
from .double_cv import SampleGradientLOO, loo_mean

__all__ = ["Rodeo", "gibbs_stein"]

#: rows of the control-variate network per block on the CPU (a block's hidden layer, 2048 x 100
#: floats, stays in cache; one large pass is memory-bound and page-faults its temporaries). Up to
#: four blocks' rows the plain module is as fast (measured: 2.0 vs 2.2 ms at 4,096 rows, 94 vs
#: 27 ms at 65,536, forward and backward on one core) and runs in one pass.
_NET_ROWS_CPU = 2048


class _BlockedNet(torch.autograd.Function):
    """``Linear -> LeakyReLU -> Linear`` on the rows of ``x [N, in]``, a block of rows at a
    time; the backward recomputes each block's hidden layer rather than saving all of them.
    Each row's output is computed by the same ``linear`` calls as the module's (on fewer rows);
    the parameter gradients are sums over blocks (the order of a float sum may differ from one
    large matrix product in the last place)."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, slope, rows):
        ctx.save_for_backward(x, w1, b1, w2)
        ctx.slope, ctx.rows = slope, rows
        out = x.new_empty((x.shape[0], w2.shape[0]))
        for lo in range(0, x.shape[0], rows):  # a fixed number of blocks: no host read
            hidden = F.leaky_relu(F.linear(x[lo:lo + rows], w1, b1), slope)
            out[lo:lo + rows] = F.linear(hidden, w2, b2)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, w1, b1, w2 = ctx.saved_tensors
        gw1, gb1, gw2 = torch.zeros_like(w1), torch.zeros_like(b1), torch.zeros_like(w2)
        gx = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        for lo in range(0, x.shape[0], ctx.rows):
            block, g = x[lo:lo + ctx.rows], grad[lo:lo + ctx.rows]
            pre = F.linear(block, w1, b1)
            gw2.addmm_(g.t(), F.leaky_relu(pre, ctx.slope))
            g_pre = torch.ops.aten.leaky_relu_backward(g @ w2, pre, ctx.slope, False)
            gw1.addmm_(g_pre.t(), block)
            gb1.add_(g_pre.sum(0))
            if gx is not None:
                gx[lo:lo + ctx.rows] = g_pre @ w1
        return gx, gw1, gb1, gw2, grad.sum(0), None, None


def gibbs_stein(h_x: torch.Tensor, h_y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``(A h)(x) = mean_i w_i (h(y⁽ⁱ⁾) - h(x))`` for ``h_x [...]``, ``h_y [..., D]``, ``w [..., D]``."""
    return (w * (h_y - h_x.unsqueeze(-1))).mean(-1)


@register
class Rodeo(SampleGradientLOO):
    """RODEO: REINFORCE-LOO with discrete (Gibbs) Stein control variates of a learned network on
    the LOO-linearised f at the one-bit-flip neighbours of each sample, trained online"""

    name = "rodeo"
    display_name = "RODEO"
    reference = "Shi, Zhou, Hwang, Titsias & Mackey 2022"
    families = (D.Bernoulli,)

    def __init__(self, hidden: int = 100, lr: float = 0.01):
        super().__init__()
        self.hidden = integer("rodeo", "hidden", hidden, minimum=1)
        self.lr = number("rodeo", "lr", lr, low=0.0, low_open=True)
        self.alpha = torch.nn.Parameter(torch.zeros(()))
        self.beta = torch.nn.Parameter(torch.zeros(()))
        # a fixed initialisation drawn from its own seed: building the estimator (a registry
        # listing, a task choosing its methods) never moves the global random stream, and every
        # instance starts the same whatever ran before it
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Linear(2, self.hidden),
                                           torch.nn.LeakyReLU(0.3),
                                           torch.nn.Linear(self.hidden, 2))
        self.register_buffer("adam_step", torch.zeros((), dtype=torch.long))
        for i, p in enumerate(self.trained_parameters()):
            self._moments(i, p)

    def trained_parameters(self):
        return [self.alpha, self.beta, *self.net.parameters()]

    def _h(self, lin: torch.Tensor, fbar: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The network at inputs ``(lin, fbar)`` (broadcast), ``[..., 2]`` in ``like``'s dtype."""
        dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
        if self.net[0].weight.dtype != dtype:
            self.net.to(dtype)
            for i, p in enumerate(self.trained_parameters()):  # optimiser state follows
                m, v = self._moments(i, p)
                if m.dtype != p.dtype:
                    m.data, v.data = m.to(p.dtype), v.to(p.dtype)
        lin, fbar = torch.broadcast_tensors(lin, fbar)
        inputs = torch.stack([lin, fbar], -1).to(dtype)
        if inputs.device.type != "cpu" or inputs[..., 0].numel() <= 4 * _NET_ROWS_CPU:
            # one pass: few kernel launches on an accelerator; a few blocks' rows fit in cache
            return self.net(inputs).to(like.dtype)
        first, act, last = self.net
        out = _BlockedNet.apply(inputs.reshape(-1, 2), first.weight, first.bias, last.weight,
                                last.bias, act.negative_slope, _NET_ROWS_CPU)
        return out.reshape(inputs.shape[:-1] + (2,)).to(like.dtype)

    def stein_terms(self, x, p, gbar, offset, fbar, like):
        """``((A h⁰)(x), (A H)(x))`` at samples ``x [..., D]`` of ``Bernoulli(p)`` for the network
        on the linearisation ``ℓ(y) = gbar · y - offset`` and ``fbar`` (``gbar [..., D]``,
        ``offset``, ``fbar [...]``): ``[...]`` and ``[..., D]``."""
        lin_x = (gbar * x).sum(-1) - offset  # ℓ(x)
        flip = 1 - 2 * x
        lin_y = lin_x.unsqueeze(-1) + gbar * flip  # ℓ(y⁽ⁱ⁾)          [..., D]
        h_x = self._h(lin_x, fbar, like)  # [..., 2]
        h_y = self._h(lin_y, fbar.unsqueeze(-1), like)  # [..., D, 2]
        w = p * (1 - x) + (1 - p) * x  # q(bit i flipped)
        scalar = gibbs_stein(h_x[..., 0], h_y[..., 0], w)  # (A h⁰)(x)
        spread = gibbs_stein(h_x[..., 1], h_y[..., 1], w)  # mean_i w_i (h¹(y⁽ⁱ⁾) - h¹(x))
        vector = (x - p) * spread.unsqueeze(-1) + w * h_y[..., 1] * flip / x.shape[-1]
        return scalar, vector

    def gradient(self, base, b, cost, grad, theta, batch_shape, k):
        x = b.reshape(k, *batch_shape, -1)  # [K, *batch, D]
        g = grad.reshape(x.shape)
        p = torch.sigmoid(theta).reshape(x.shape[1:])
        gbar = loo_mean(g, k)  # ḡ_k = mean_{j≠k} ∇_j
        offset = loo_mean((g * x).sum(-1), k)  # mean_{j≠k} ∇_j · x_j
        scalar, cv = self.stein_terms(x, p, gbar, offset, loo_mean(cost, k), theta)
        alpha, beta = self.alpha.to(theta), self.beta.to(theta)
        weight = cost - loo_mean(cost + alpha * scalar, k)
        out = (weight.unsqueeze(-1) * (x - p) + beta * cv).mean(0)
        return out.reshape(theta.shape)
