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
``C(C-1)/2`` orderings, ``O(K² C²)`` per variable (in chunks of at most 2^22 elements), negligible
for C ≤ 16 and dominant for C ~ 100.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import distributions as D

from . import register
from .antithetic import CoupledSamples, _as_family, dirichlet_copula_cdf, dirichlet_copula_log_uniforms
from .base import unwrap

__all__ = ["CARMS", "carms_orderings"]

_CHUNK = 1 << 22  # elements of one chunk of the joint's [orderings, pairs, *vars] tensors


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
    """``L_a [n, pairs, v]`` of categories ``a [pairs, v]`` (``pre_a = Σ_{j<a} p_j``) in the
    orderings whose first category is ``c0`` and whose cyclic rest starts at ``s``
    (``[n, 1, 1]``; ``p_c0, pre_s [n, 1, v]``): 0 for ``a = c0``, else ``p_{c0}`` plus the cyclic
    sum of p over ``[s, a)``, less ``p_{c0}`` where ``c0`` lies in that range."""
    a = a.unsqueeze(0)
    wrap = s > a
    cyclic = pre_a.unsqueeze(0) - pre_s + wrap * total
    inside = torch.where(wrap, (c0 >= s) | (c0 < a), (c0 >= s) & (c0 < a))
    out = cyclic + p_c0 * (~inside)
    return torch.where(a == c0, torch.zeros_like(out), out)


def _joint(p: torch.Tensor, za: torch.Tensor, zb: torch.Tensor, k: int) -> torch.Tensor:
    """``P(za, zb)`` under CARMS's coupling: ``p [*vars, C]`` (float64), ``za, zb [n, *vars]``;
    the mean over the orderings Π of the copula's rectangle probabilities
    ``C(R_a,R_b) - C(L_a,R_b) - C(R_a,L_b) + C(L_a,L_b)``. Returns ``[n, *vars]``."""
    c = p.shape[-1]
    orders = _orderings(c, p.device)  # [N, C]
    n_orders, pairs = orders.shape[0], za.shape[0]
    flat = p.reshape(-1, c)  # [v, C]
    v = flat.shape[0]
    pre = torch.cat([torch.zeros_like(flat[:, :1]), flat.cumsum(-1)], -1)  # [v, C+1]
    total = pre[:, -1].reshape(1, 1, v)
    za_f, zb_f = za.reshape(pairs, v), zb.reshape(pairs, v)
    p_a, p_b = flat.gather(1, za_f.t()).t(), flat.gather(1, zb_f.t()).t()  # [pairs, v]
    pre_a, pre_b = pre.gather(1, za_f.t()).t(), pre.gather(1, zb_f.t()).t()
    acc = torch.zeros(pairs, v, dtype=p.dtype, device=p.device)
    step = max(1, _CHUNK // max(1, pairs * v))
    for lo in range(0, n_orders, step):  # a fixed number of chunks: no host read
        sub = orders[lo:lo + step]
        c0, s = sub[:, 0].view(-1, 1, 1), sub[:, 1].view(-1, 1, 1)
        p_c0 = flat.t()[sub[:, 0]].unsqueeze(1)  # [n, 1, v]
        pre_s = pre.t()[sub[:, 1]].unsqueeze(1)
        la = _left_edges(za_f, pre_a, c0, s, p_c0, pre_s, total)
        lb = _left_edges(zb_f, pre_b, c0, s, p_c0, pre_s, total)
        ra, rb = la + p_a, lb + p_b
        rect = (dirichlet_copula_cdf(ra, rb, k) - dirichlet_copula_cdf(la, rb, k)
                - dirichlet_copula_cdf(ra, lb, k) + dirichlet_copula_cdf(la, lb, k))
        acc = acc + rect.sum(0)
    return (acc / n_orders).reshape(za.shape)


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
        za, zb = z[i], z[j]
        joint = _joint(p, za, zb, k)
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
