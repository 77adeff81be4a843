"""CARMS (Dimitriev & Zhou 2021, "CARMS: Categorical-Antithetic-REINFORCE Multi-Sample gradient
estimator", NeurIPS): K antithetically coupled categorical samples with importance-weighted
leave-one-out baselines. The categorical version of ARMS (:mod:`estimators.antithetic`).

Written from the paper and the reference code alekdimi/carms (``antithetic.py``,
``InverseCategorical`` unweighted, the default ``grad_type='carms'``; ``copulas.py``,
``Dirichlet``; ``vae.py``, ``matrix_grad``), read and re-derived here.

**Coupling.** Per categorical variable with probabilities ``p [C]``: one ordering ``π`` of the
categories is drawn uniformly from the reference's set Π of ``C(C-1)/2`` orderings (first
category ``c0``, then the other categories in cyclic order starting anywhere, kept when the first
category's index is below the last's: every unordered pair of categories is once at the two ends),
the categories' intervals ``[L_a, R_a)`` are laid out in that order on ``[0, 1)``, and the K samples
are ``z_k = the category whose interval holds u_k``, ``u`` the Dirichlet copula of
:func:`estimators.antithetic.dirichlet_copula_log_uniforms` (each ``u_k ~ U(0,1)``: every ``z_k`` is
an exact sample; together they are negatively dependent). The bivariate pmf of two samples is
``P(a, b) = mean_{π ∈ Π} [C(R_a,R_b) - C(L_a,R_b) - C(R_a,L_b) + C(L_a,L_b)]``, ``C`` the copula's
bivariate CDF.

**Estimator.** With ``w(a, b) = p_a p_b / P(a, b)`` and ``s(z) = ∇_logits log p(z) = e_z - p``,

    ĝ = (1/K) Σ_i s(z_i) · (1/(K-1)) Σ_{j≠i} w(z_i, z_j) (f(z_i) - f(z_j)).

Unbiased: for a variable d and ``g(a) = E[f | z_d = a]`` (the other variables are independent of
variable d's coupling), each pair contributes ``Σ_{a,b} P(a,b) w(a,b) s(a) (g(a) - g(b)) =
Σ_{a,b} p_a p_b s(a)(g(a) - g(b)) = Σ_a p_a s(a) g(a)``, the exact gradient, as long as
``P(a, b) > 0`` for every pair of distinct categories (Π puts each pair at the two ends once,
where the copula gives them positive joint probability); the diagonal ``a = b`` terms vanish in
expectation whatever their weight. ``w ≡ 1`` is REINFORCE-LOO. Our estimator differs from the
reference code in two places, both of which bias the reference: its ratio is
``clip((p_a p_b + 1e-3)/(P + 1e-3), 0.01, 10)`` and ``P`` gets ``+1e-6``; ours uses the exact
ratio (``P`` computed in float64; 0 where ``P = 0``, a pair that never occurs).

**Cost.** K f evaluations. Besides f: the joint of the K(K-1)/2 sampled pairs averaged over the
``C(C-1)/2`` orderings, ``O(K² C²)`` per variable, negligible for C ≤ 16 and dominant for C ~ 100:
four copula corners per (ordering, pair), ~2.4 million per variable at C = 100 and K = 16, each
a few in-cache multiplications (:func:`_joint_of`; about 10 ms per variable on one CPU core).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import distributions as D

from . import register
from .antithetic import CoupledSamples, _as_family, dirichlet_copula_log_uniforms
from .base import unwrap

__all__ = ["CARMS", "carms_orderings"]

#: elements of one block of the joint's corner tensor ``[orderings, 2, 2, pairs, vars]``: on the
#: CPU small enough that a block and its temporaries stay in cache; on an accelerator large (few
#: kernel launches)
_CHUNK_CPU = 1 << 17
_CHUNK_ACCELERATOR = 1 << 22
#: the four corners' signs in the rectangle probability, in the block's (edge of a, edge of b)
#: order: (L, L) +, (L, R) -, (R, L) -, (R, R) +
_CORNER_SIGNS = (1.0, -1.0, -1.0, 1.0)


@functools.cache
def carms_orderings(num_categories: int) -> tuple[tuple[int, ...], ...]:
    """The reference's set Π of ``C(C-1)/2`` orderings (alekdimi/carms,
    ``InverseCategorical._get_permutations``), each as the categories from the first interval to
    the last: for each first category ``c0`` and each start ``s``, ``c0`` then the other
    categories in cyclic order from ``s``; kept when ``c0 <`` the last category."""
    c = int(num_categories)
    out = []
    for i in range(c):
        c0 = (-i) % c
        others = [(c0 + t) % c for t in range(1, c)]  # the reference's roll of the identity
        for j in range(c - 1):
            rest = others[(c - 1 - j) % (c - 1):] + others[:(c - 1 - j) % (c - 1)]
            order = (c0, *rest)
            if order[0] < order[-1]:
                out.append(order)
    return tuple(out)


_DEVICE_ORDERINGS: dict[tuple[int, str], torch.Tensor] = {}


def _orderings(c: int, device: torch.device) -> torch.Tensor:
    key = (c, str(device))
    if key not in _DEVICE_ORDERINGS:
        _DEVICE_ORDERINGS[key] = torch.tensor(carms_orderings(c), dtype=torch.long, device=device)
    return _DEVICE_ORDERINGS[key]


def _left_edges(a, pre_a, c0, s, p_c0, pre_s, total):
    """``L_a`` of categories ``a`` (``pre_a = Σ_{j<a} p_j``) in the orderings whose first
    category is ``c0`` and whose cyclic rest starts at ``s`` (``p_c0 = p_{c0}``, ``pre_s =
    Σ_{j<s} p_j``, ``total = Σ_j p_j``; all broadcast together, here ``a, pre_a [M, 1, v]``
    against ``c0, s, p_c0, pre_s [1, n, v]`` to ``[M, n, v]``): 0 for ``a = c0``, else ``p_{c0}``
    plus the cyclic sum of p over ``[s, a)``, less ``p_{c0}`` where ``c0`` lies in that range."""
    wrap = s > a
    cyclic = pre_a - pre_s + wrap * total
    inside = torch.where(wrap, (c0 >= s) | (c0 < a), (c0 >= s) & (c0 < a))
    out = cyclic + p_c0 * (~inside)
    return out.masked_fill_(a == c0, 0.0)


def _power_(t: torch.Tensor, r: int, scratch: torch.Tensor) -> torch.Tensor:
    """``t ** r`` for an integer ``r >= 1`` by cubing (torch's one-pass ``x·x·x``) while 3
    divides r, then repeated squaring: a few multiplications instead of the transcendental
    ``pow`` (four passes for r = 15, within a few float64 ulps of it). Overwrites ``t`` and
    ``scratch`` (same shape); the result is one of them."""
    while r % 3 == 0:
        t.pow_(3)
        r //= 3
    out, base = None, t
    while True:
        if r & 1:
            if out is None:
                out = base
            else:
                out.mul_(base)
        r >>= 1
        if not r:
            return out
        base = torch.mul(base, base, out=scratch) if base is out else base.mul_(base)


def _blocks(pairs: int, m: int, v: int, device: torch.device) -> tuple[int, int, int]:
    """``(orderings, variables)`` per block, so that a block's ``4 · orderings · pairs ·
    variables`` corners stay under the device's chunk size (at least one of each), and the
    orderings per group whose edges ``[2, M, orderings, variables]`` are formed at once (a
    multiple of the block's, about a chunk of edges)."""
    chunk = _CHUNK_CPU if device.type == "cpu" else _CHUNK_ACCELERATOR
    per_var = 4 * pairs
    vs = min(v, max(1, chunk // per_var))
    step = max(1, chunk // (per_var * vs))
    return step, vs, max(1, chunk // (2 * m * vs * step)) * step


def _edge_roots(zf, pre_z, p_z, orders, p_cols, pre_cols, total, r):
    """``[2 (L, R), M, n, width]``: the roots ``x^{1/r}`` of both edges of the samples' intervals
    in the orderings ``orders [n, C]`` (``p_cols, pre_cols``: p and its prefix sums ``[C (+1),
    width]``; ``zf, pre_z, p_z [M, 1, width]``: the samples, their prefix sums and p)."""
    left = _left_edges(zf, pre_z, orders[:, 0].view(1, -1, 1), orders[:, 1].view(1, -1, 1),
                       p_cols[orders[:, 0]].unsqueeze(0), pre_cols[orders[:, 1]].unsqueeze(0),
                       total)
    edges = torch.stack([left, left + p_z])
    return edges.pow_(1.0 / r) if r > 1 else edges


def _block_sum(edges, i, j, r, buffers, signs):
    """``Σ_orderings [C(R_a,R_b) - C(L_a,R_b) - C(R_a,L_b) + C(L_a,L_b)]`` for the pairs ``(i,
    j)`` from the edge roots ``[2, M, n, width]`` of a block of n orderings: ``[pairs, width]``.
    ``buffers [4, ·]``: room for the corners, their power's scratch and the pairs' edges."""
    _, _, n, width = edges.shape
    pairs = i.shape[0]
    side = (2, pairs, n, width)
    size = 2 * pairs * n * width
    side_a = torch.index_select(edges, 1, i, out=buffers[2, :size].view(side)).sub_(1)
    side_b = torch.index_select(edges, 1, j, out=buffers[3, :size].view(side))
    shape = (2, 2, pairs, n, width)
    corners = buffers[0, :2 * size].view(shape)
    torch.add(side_a.unsqueeze(1), side_b.unsqueeze(0), out=corners).clamp_min_(0)
    corners = _power_(corners, r, buffers[1, :2 * size].view(shape))
    rect = torch.mv(corners.view(4, -1).t(), signs)  # [pairs * n * width]
    return rect.view(pairs, n, width).sum(1)


def _joint_of(p: torch.Tensor, z: torch.Tensor, i: torch.Tensor, j: torch.Tensor,
              k: int) -> torch.Tensor:
    """``P(z_i, z_j)`` under CARMS's coupling of K samples for the pairs ``(i, j)`` (``[pairs]``
    indices into ``z [M, *vars]``; ``p [*vars, C]`` float64): the mean over the orderings Π of
    the copula's rectangle probabilities ``C(R_a,R_b) - C(L_a,R_b) - C(R_a,L_b) + C(L_a,L_b)``,
    ``C(x, y) = max(x^{1/r} + y^{1/r} - 1, 0)^r``, ``r = K - 1``. Returns ``[pairs, *vars]``.

    ``O(|Π| · pairs)`` work per variable, arranged so that each of the four corners costs a few
    in-cache multiplications: the edges and their roots ``x^{1/r}`` are formed once per
    (ordering, sample), not per (ordering, pair, corner), for a group of orderings at a time;
    the power r is cubing and squaring, not ``pow``; blocks of ``[2 (edge of a), 2 (edge of
    b), pairs, orderings, variables]`` (the broadcast dimensions outermost) fit in cache and
    reuse four buffers (no allocation per block). The number of blocks follows from the shapes
    alone: no host read. Equal to the direct formula up to float64 round-off
    (tests/test_antithetic_2021.py)."""
    c, r = p.shape[-1], int(k) - 1
    orders = _orderings(c, p.device)  # [N, C]
    n_orders, pairs, m = orders.shape[0], i.shape[0], z.shape[0]
    flat = p.reshape(-1, c)  # [v, C]
    v = flat.shape[0]
    pre = torch.cat([torch.zeros_like(flat[:, :1]), flat.cumsum(-1)], -1)  # [v, C+1]
    zf = z.reshape(m, 1, v)
    var = torch.arange(v, device=p.device)
    p_z, pre_z = flat.t()[zf, var], pre.t()[zf, var]  # p_a and Σ_{j<a} p_j of the samples [M, 1, v]
    total = pre[:, -1].view(1, 1, v)
    step, vs, group = _blocks(pairs, m, v, p.device)
    signs = torch.tensor(_CORNER_SIGNS, dtype=p.dtype, device=p.device)
    buffers = torch.empty((4, 4 * pairs * min(step, n_orders) * vs), dtype=p.dtype, device=p.device)
    out = []
    for vlo in range(0, v, vs):  # fixed numbers of groups and blocks: no host read
        cols = slice(vlo, vlo + vs)
        p_cols, pre_cols = flat[cols].t(), pre[cols].t()  # [C, width], [C + 1, width]
        acc = torch.zeros((pairs, min(vs, v - vlo)), dtype=p.dtype, device=p.device)
        for glo in range(0, n_orders, group):
            edges = _edge_roots(zf[..., cols], pre_z[..., cols], p_z[..., cols],
                                orders[glo:glo + group], p_cols, pre_cols, total[..., cols], r)
            for lo in range(0, edges.shape[2], step):
                acc += _block_sum(edges[:, :, lo:lo + step], i, j, r, buffers, signs)
        out.append(acc)
    return (torch.cat(out, 1) / n_orders).reshape((pairs,) + tuple(z.shape[1:]))


def _joint(p: torch.Tensor, za: torch.Tensor, zb: torch.Tensor, k: int) -> torch.Tensor:
    """``P(za, zb)`` under CARMS's coupling for ``p [*vars, C]`` (float64) and ``za, zb [n,
    *vars]``: ``[n, *vars]`` (see :func:`_joint_of`)."""
    n = za.shape[0]
    idx = torch.arange(n, device=za.device)
    return _joint_of(p, torch.cat([za, zb]), idx, idx + n, k)


@register
class CARMS(CoupledSamples):
    """CARMS: K Dirichlet-copula-coupled categorical samples, (1/K) Σ_i (e_{z_i} - p) (1/(K-1))
    Σ_{j≠i} p(z_i)p(z_j)/P(z_i,z_j) (f_i - f_j)."""

    name = "carms"
    display_name = "CARMS"
    unbiased = True
    families = (D.OneHotCategorical, D.Categorical)
    reference = "Dimitriev & Zhou 2021"

    def estimate(self, dist, f, num_samples):
        base, _ = unwrap(dist)
        logits = base.logits  # normalised [*vars, C]
        k, c = num_samples, logits.shape[-1]
        vars_shape = logits.shape[:-1]
        p = logits.detach().to(torch.float64).exp()
        z = self._sample(p, k)  # [K, *vars]
        samples = _as_family(base, z, c, logits.dtype)
        cost = self.costs(f, samples, dist, k)
        detached = cost.detach().to(torch.float64)
        extra = len(vars_shape) - len(dist.batch_shape)
        fk = detached.reshape((k, *dist.batch_shape) + (1,) * extra)
        i, j = torch.triu_indices(k, k, 1, device=logits.device)
        joint = _joint_of(p, z, i, j, k)  # [pairs, *vars]
        pz = p.expand((k,) + p.shape).gather(-1, z.unsqueeze(-1)).squeeze(-1)  # p(z_k)
        pp = pz[i] * pz[j]
        w = torch.where(joint > 0, pp / joint.clamp_min(torch.finfo(joint.dtype).tiny),
                        torch.zeros_like(pp))
        d = w * (fk[i] - fk[j])  # [pairs, *vars]: pair (i, j) gives +d to i and -d to j
        signal = torch.zeros((k,) + tuple(vars_shape), dtype=d.dtype, device=d.device)
        signal = signal.index_add(0, i, d).index_add(0, j, -d) / (k - 1)
        score = F.one_hot(z, c).to(torch.float64) - p
        g = (signal.unsqueeze(-1) * score).mean(0).to(logits.dtype)
        return cost.mean(0).sum() + (g * (logits - logits.detach())).sum()

    @staticmethod
    def _sample(p: torch.Tensor, k: int) -> torch.Tensor:
        """K coupled samples ``[K, *vars]``: an ordering from Π per variable, intervals in that
        order, the Dirichlet copula's ``u_k`` located among them."""
        c = p.shape[-1]
        orders = _orderings(c, p.device)
        pick = torch.randint(orders.shape[0], p.shape[:-1], device=p.device)
        order = orders[pick]  # [*vars, C]
        right = p.gather(-1, order).cumsum(-1)
        u = dirichlet_copula_log_uniforms(k, p.shape[:-1], p.dtype, p.device).exp()
        pos = torch.searchsorted(right.unsqueeze(0).expand((k,) + right.shape).contiguous(),
                                 u.unsqueeze(-1)).clamp_max(c - 1)
        return order.expand((k,) + order.shape).gather(-1, pos).squeeze(-1)
