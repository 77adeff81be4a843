"""Testing an estimator's unbiasedness claim with stated power: ``E[ĝ] = g``.

With ``ĝ_1..ĝ_R`` independent estimates (rows of ``G``, ``[R, P]``) and the exact gradient ``g``:

* **Along g** (good power against the common failure, a bias that scales or shrinks the gradient):
  ``s_r = <ĝ_r - g, u>`` with ``u = g/||g||``; under the claim ``E s = 0``, and
  ``z_g = mean(s) / (sd(s)/√R)`` follows Student's t with R - 1 degrees of freedom for
  Gaussian estimates (and approximately, by the central limit theorem, otherwise).
* **Omnibus** (any direction): the largest per-coordinate ``|z_i| = |mean_i(ĝ - g)| / se_i``
  with a Bonferroni correction over the coordinates it tests (Hotelling's T² needs R > P and a
  well-conditioned covariance, which the VAE tasks with hundreds of coordinates do not give).
  It tests the coordinates with ``|g_i| >= OMNIBUS_FLOOR · max_j |g_j|``; the smaller ones are
  left to the along-g test, because their per-coordinate t-statistic need not have reached its
  normal limit: a rare category's score-function estimates are almost always a small constant
  and rarely large, and a run of R draws that never meets the rare case reads as a huge z.
  (Measured: ``categorical100``, score function at K = 1, R = 10,368: z = 115 on a coordinate
  with g_i = 6e-4, a false alarm.) A bias there moves ``||Eĝ - g|| / ||g||`` little unless it is
  large, and then the along-g projection or the other coordinates see it.

The two tests share the false-alarm rate ``alpha`` (``alpha/2`` each, Bonferroni), so a correct
estimator is called ``contradicted`` with probability at most ``alpha``. The **detectable bias**
is the smallest relative bias along g, ``||Eĝ - g|| / ||g||``, that the along-g test detects with
probability ``power``: ``(t_{1-alpha/4} + t_{power}) · sd(s) / (√R · ||g||)``.

Verdicts for an estimator that claims ``unbiased=True``: ``contradicted`` when either test
rejects; ``consistent`` when neither does and the detectable bias is at most the target;
``inconclusive`` otherwise (the cell could not reach the target within its budget). An estimator
that makes no claim (``biased``) is ``consistent`` when a bias is detected and ``inconclusive``
otherwise. :func:`replicates_needed` gives the R that reaches a target: R is chosen from the
spread alone, not from the mean, so raising it does not bias the test (optional stopping on the
test statistic would).

**An estimated reference** (issue 23: at 2^200 latent states the exact gradient is out of reach,
so ``g`` is a high-precision unbiased estimate with covariance ``C``, independent of the
estimates): ``mean(ĝ) - g`` then has covariance ``Cov(ĝ)/R + C``, so ``C`` enters every standard
error in quadrature: ``u^T C u`` the along-g test's, ``C_ii`` coordinate i's. And u = g/||g||
leans towards the reference's own error (``E<g - g*, u> = (tr C - u^T C u)/||g||`` to second
order), which the along-g mean gets added back, as the bias measure subtracts ``tr C``; that
term's variance, ``2 tr(C²)/||g||²``, joins the along-g standard error. The test keeps its
false-alarm rate (t with R - 1 degrees of freedom is then approximate: the reference's variance is
taken as known, which from hundreds of reference samples it nearly is; measured on synthetic
estimates, tests/test_tasks_mnist.py), and the detectable bias gains a floor, ``reference_bias``
= ``(t_{1-alpha/4} + t_{power}) · sqrt(u^T C u + 2 tr(C²)/||g||²) / ||g||``, that no R lowers:
:func:`replicates_needed` says so by asking for no more replicates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from estibench.schema import ALPHA, POWER

__all__ = ["ALPHA", "POWER", "ClaimTest", "claim_test", "replicates_needed", "verdict",
           "quadratic_form", "covariance_trace", "check_covariance"]

OMNIBUS_FLOOR = 0.05  # coordinates the omnibus test leaves out: |g_i| below this x max |g_j|


@dataclass(frozen=True)
class ClaimTest:
    bias_along_g: float  # relative: <mean ĝ - g, u> / ||g||
    z_along_g: float
    z_max: float  # omnibus: largest per-coordinate |z|
    p_value: float  # Bonferroni-combined p-value of the two tests
    detectable_bias: float  # relative bias along g detected with probability POWER
    replicates: int
    #: the part of ``detectable_bias`` an estimated reference alone sets (0 for an exact one):
    #: the floor no number of replicates goes below
    reference_bias: float = 0.0

    def rejects(self, alpha: float = ALPHA) -> bool:
        return self.p_value < alpha


def claim_test(G: torch.Tensor, g: torch.Tensor, alpha: float = ALPHA,
               power: float = POWER, resolution: float = 0.0,
               reference_cov: torch.Tensor | None = None) -> ClaimTest:
    """Test ``E[ĝ] = g`` on the rows of ``G`` ``[R, P]`` (float64 on G's device, one host
    transfer at the end).

    ``reference_cov``: the covariance of ``g`` when it is an unbiased estimate (``[P]``
    per-coordinate variances or ``[P, P]``; None: exact), added in quadrature to the standard
    errors (see the module's notes).

    ``resolution``: the relative error (times ``||g||``) that rounding alone gives an estimate,
    added in quadrature to every standard error. Without it a deterministic estimator computed in
    float32 (exact enumeration, DisARM at p = 1/2) has zero spread and a rounding-size error, which
    reads as an infinite z; the harness passes ``suite.measure.NOISE_FLOOR`` (1e-5) for float32.
    Its price: no detectable bias below about ``5 x resolution``."""
    G = G.to(torch.float64)
    g = g.to(G.device, torch.float64).reshape(-1)
    r, p = G.shape
    if r < 2:
        raise ValueError(f"a claim test needs at least 2 replicate estimates, got {r}")
    g_norm = g.norm()
    if not bool(g_norm > 0):
        raise ValueError("the exact gradient is zero: a relative bias is undefined")
    dev = G - g
    s = dev @ (g / g_norm)
    floor2 = (float(resolution) * g_norm) ** 2
    s_var = s.var() / r + floor2
    coord_var = dev.var(0) / r + floor2
    ref_along = torch.zeros((), dtype=G.dtype, device=G.device)
    s_mean = s.mean()
    if reference_cov is not None:
        cov = reference_cov.to(G.device, torch.float64)
        check_covariance(cov, p)
        u_c_u = quadratic_form(cov, g / g_norm)
        coord_var = coord_var + (cov if cov.dim() == 1 else cov.diagonal())
        # u = g/||g|| leans towards the reference's own error: E<g - g*, u> = (tr C - u^T C u)
        # / ||g|| to second order, which would read as a bias of -that; added back. The same
        # quadratic term's variance, 2 tr(C²)/||g||² for Gaussian errors, joins the se.
        s_mean = s_mean + (covariance_trace(cov) - u_c_u) / g_norm
        ref_along = u_c_u + 2 * cov.pow(2).sum() / g_norm ** 2
        s_var = s_var + ref_along
    s_se = s_var.sqrt()
    coord_se = coord_var.sqrt()
    tiny = torch.finfo(torch.float64).tiny
    z_g = s_mean / s_se.clamp_min(tiny)
    z_i = dev.mean(0).abs() / coord_se.clamp_min(tiny)
    # a coordinate with no spread and no error (a deterministic, exact coordinate) is z = 0
    z_i = torch.where((coord_se == 0) & (dev.mean(0) == 0), torch.zeros_like(z_i), z_i)
    z_g = torch.where((s_se == 0) & (s_mean == 0), torch.zeros_like(z_g), z_g)
    tested = g.abs() >= OMNIBUS_FLOOR * g.abs().max()
    z_i = torch.where(tested, z_i, torch.zeros_like(z_i))
    bias, z_g, z_max, rel_se, m, ref_rel = torch.stack([
        s_mean / g_norm, z_g, z_i.max(), s_se / g_norm, tested.sum().to(s.dtype),
        ref_along.sqrt() / g_norm]).tolist()  # one transfer
    # Student's t with R - 1 degrees of freedom: exact for Gaussian estimates at any R
    from scipy import stats  # here: benchmark modules import the suite and must stay light

    t = stats.t(r - 1)
    p_value = min(1.0, 2 * min(2 * t.sf(abs(z_g)), m * 2 * t.sf(z_max)))
    factor = t.isf(alpha / 4) + t.isf(1 - power)
    return ClaimTest(bias, z_g, z_max, float(p_value), float(factor * rel_se), replicates=r,
                     reference_bias=float(factor * ref_rel))


def quadratic_form(cov: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``v^T C v`` for a covariance given as ``[P]`` (diagonal) or ``[P, P]``."""
    return (cov * v * v).sum() if cov.dim() == 1 else v @ (cov @ v)


def covariance_trace(cov: torch.Tensor) -> torch.Tensor:
    """``tr C`` for a covariance given as ``[P]`` (diagonal) or ``[P, P]``."""
    return cov.sum() if cov.dim() == 1 else cov.trace()


def check_covariance(cov: torch.Tensor, p: int) -> None:
    if tuple(cov.shape) not in ((p,), (p, p)):
        raise ValueError(f"the reference covariance has shape {tuple(cov.shape)}; expected "
                         f"({p},) per-coordinate variances or the ({p}, {p}) matrix")


def replicates_needed(test: ClaimTest, target: float) -> int:
    """The R at which the detectable bias of ``test`` would reach ``target`` (its estimates'
    part shrinks as ``1/√R``; an estimated reference's part, ``test.reference_bias``, does not).
    ``test.replicates`` (no more) when the target is reached already or out of any R's reach."""
    if not test.detectable_bias > target:
        return test.replicates
    floor = test.reference_bias
    if floor == 0.0:
        return math.ceil(test.replicates * (test.detectable_bias / target) ** 2)
    if not target > floor:
        return test.replicates  # the reference's own error: more replicates cannot help
    return math.ceil(test.replicates * (test.detectable_bias ** 2 - floor ** 2)
                     / (target ** 2 - floor ** 2))


def verdict(test: ClaimTest, claims_unbiased: bool, target: float, alpha: float = ALPHA) -> str:
    """``consistent``, ``contradicted`` or ``inconclusive`` (see the module docstring)."""
    if claims_unbiased:
        if test.rejects(alpha):
            return "contradicted"
        return "consistent" if test.detectable_bias <= target else "inconclusive"
    return "consistent" if test.rejects(alpha) else "inconclusive"
