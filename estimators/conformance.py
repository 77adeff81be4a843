"""Conformance checks of a gradient estimator against the contract and against its claims.

``estibench check SPEC [SPEC ...]`` runs them (plugins included) and the project's tests call the
same functions, so a third party checks its estimator exactly as the built-ins are checked:

* ``declaration``: the registered facts and the instance agree (``unbiased``, ``families``).
* ``supports``: ``supports()`` matches the declared families; an unsupported family is a
  ``TypeError`` naming the family and the estimator.
* ``contract``: on each problem it supports, in float32 and float64 (and on CUDA when present),
  ``est(dist, f, K)`` is a finite scalar of the parameters' dtype and device, and ``backward()``
  leaves finite gradients of the parameters' shape.
* ``determinism``: the same seed gives the same gradients, bit for bit.
* ``bad_input``: a bad ``num_samples`` is a ValueError naming it; a cost of the wrong shape,
  a non-tensor and non-finite costs are ValueErrors.
* ``unbiased`` (only when the estimator claims ``unbiased=True``): at every K the default grid
  runs (:data:`CHECK_NUM_SAMPLES`; ``--full``: the full grid's too), the mean of R independent
  estimates against the exact gradient (exact enumeration, or a closed form for the Normal), a
  per-coordinate z-test with a Bonferroni correction; and the loss's value against E f.

Note [Randomized statistical tests] (as in torch's test_distributions.py): each statistical check
fixes its seed and derives its tolerance from the stated failure rate ``ALPHA``, the probability
that it fails for a correct estimator under the normal approximation of a mean of R i.i.d.
estimates.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import distributions as D

__all__ = ["ALPHA", "R", "R_MIN", "CHECK_NUM_SAMPLES", "FULL_CHECK_NUM_SAMPLES", "replicates",
           "check_num_samples",
           "PROBLEMS", "Problem", "CheckResult", "z_crit", "estimates",
           "mean_test", "supported_problems", "check", "run", "format_table", "builtin_specs"]

NOT_CLAIMED = "not claimed"  # the case of a claim check on an estimator that makes no claim
ALPHA = 1e-3  # stated failure rate of each statistical check
R = 20_000  # independent estimates per statistical check, drawn in one vectorised call


#: the K the unbiasedness check runs at (those an estimator accepts, and its smallest): every K
#: of the suite's default grid (``suite.grid.DEFAULT_NUM_SAMPLES``: 16 and each estimator's
#: smallest) plus 1, 3 and 4, so an estimator biased only at some K the benchmark runs is caught
#: here before the benchmark contradicts it; ``estibench check --full`` adds the full grid's 64
CHECK_NUM_SAMPLES = (1, 3, 4, 16)
FULL_CHECK_NUM_SAMPLES = (1, 3, 4, 16, 64)
#: the fewest replicates a statistical check draws at large K (the normal approximation of the
#: mean of a thousand estimates, each averaging K terms, is ample)
R_MIN = 1_000


def replicates(k: int) -> int:
    """R at ``k`` samples: :data:`R` up to K = 3, then fewer in proportion (an estimate at K
    averages K terms, so the mean's resolution is about the same), at least :data:`R_MIN`."""
    return max(R_MIN, R * 3 // max(int(k), 3))


def check_num_samples(est, dist: D.Distribution, full: bool = False) -> list[int]:
    """The K of :data:`CHECK_NUM_SAMPLES` (``full``: :data:`FULL_CHECK_NUM_SAMPLES`) that
    ``est`` accepts on ``dist``, and its smallest."""
    low = int(est.min_samples())
    high = est.max_samples(dist) if hasattr(est, "max_samples") else None
    ks = {low} | {k for k in (FULL_CHECK_NUM_SAMPLES if full else CHECK_NUM_SAMPLES) if k >= low}
    return sorted(k for k in ks if high is None or k <= high)


def z_crit(m: int = 1, alpha: float = ALPHA) -> float:
    """Two-sided normal critical value with a Bonferroni correction over ``m`` comparisons."""
    from scipy import stats

    return float(stats.norm.isf(alpha / (2 * m)))


# -- problems: R independent copies (a leading replicate dim) with an exact objective --------------
class Problem(NamedTuple):
    leaves: list[torch.Tensor]  # [R, ...] leaves whose .grad holds R estimates
    dist: D.Distribution
    f: Callable
    exact: Callable[[], torch.Tensor]  # objective of the first replicate, differentiable


def _leaf(x: torch.Tensor, r: int) -> torch.Tensor:
    return x.expand((r,) + x.shape).clone().requires_grad_()


def _draws(seed: int, dtype, device, *shapes) -> list[torch.Tensor]:
    """Standard normal tensors of the given shapes from a generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=dtype).to(device) for shape in shapes]


def _exact(dist: D.Distribution, f: Callable) -> torch.Tensor:
    from . import get

    return get("exact")(dist, f)


def bernoulli_batch(r, dtype, device):
    """Scalar Bernoulli problems in a batch of 3: f(b) = (b - t)^2, t = 0.45 (REBAR's toy)."""
    (logits,) = _draws(1, dtype, device, (3,))
    t = torch.tensor([0.45, 0.499, 0.2], dtype=dtype, device=device)
    leaf = _leaf(logits, r)

    def exact():
        p = torch.sigmoid(leaf[0])
        return (p * (1 - t) ** 2 + (1 - p) * t ** 2).sum()
    return Problem([leaf], D.Bernoulli(logits=leaf), lambda b: (b - t) ** 2, exact)


def independent_bernoulli_decoder(r, dtype, device):
    """Independent(Bernoulli) with event [4] and a non-factorising f with its own parameters:
    f(b) = (b·w - c)^2 + 0.5·sin(b·w); w is f's parameter and gets its gradient too."""
    logits, w0 = _draws(2, dtype, device, (4,), (4,))
    leaf, w = _leaf(logits, r), _leaf(w0, r)

    def cost(b, w):
        return ((b * w).sum(-1) - 0.3) ** 2 + 0.5 * torch.sin((b * w).sum(-1))

    def exact():
        return _exact(D.Independent(D.Bernoulli(logits=leaf[:1]), 1), lambda b: cost(b, w[:1]))
    return Problem([leaf, w], D.Independent(D.Bernoulli(logits=leaf), 1), lambda b: cost(b, w),
                   exact)


def categorical_table(r, dtype, device):
    """Categorical over 5 classes, batch of 2, random cost table."""
    logits, table = _draws(3, dtype, device, (2, 5), (2, 5))
    leaf = _leaf(logits, r)

    def f(z):
        return table.expand(z.shape + (5,)).gather(-1, z.unsqueeze(-1)).squeeze(-1)

    def exact():
        return (torch.softmax(leaf[0], -1) * table).sum()
    return Problem([leaf], D.Categorical(logits=leaf), f, exact)


def onehot_independent(r, dtype, device):
    """Independent(OneHotCategorical) with event [3, 4], f = squared distance of a readout."""
    logits, emb = _draws(4, dtype, device, (3, 4), (4, 2))
    leaf = _leaf(logits, r)

    def f(z):
        return ((z @ emb).sum(-2) - 1.0).pow(2).sum(-1)

    def exact():
        return _exact(D.Independent(D.OneHotCategorical(logits=leaf[:1]), 1), f)
    return Problem([leaf], D.Independent(D.OneHotCategorical(logits=leaf), 1), f, exact)


def normal_closed_form(r, dtype, device):
    """Normal, batch of 2, f(x) = (x - k)^2 + cos(x): E = (mu-k)^2 + s^2 + cos(mu) e^{-s^2/2}."""
    mu0 = torch.tensor([0.3, -1.0], dtype=dtype, device=device)
    s0 = torch.tensor([0.7, 1.3], dtype=dtype, device=device)
    k = torch.tensor([1.0, 0.5], dtype=dtype, device=device)
    mu, s = _leaf(mu0, r), _leaf(s0, r)

    def exact():
        return ((mu[0] - k) ** 2 + s[0] ** 2 + torch.cos(mu[0]) * torch.exp(-s[0] ** 2 / 2)).sum()
    return Problem([mu, s], D.Normal(mu, s), lambda x: (x - k) ** 2 + torch.cos(x), exact)


PROBLEMS: dict[str, Callable[..., Problem]] = {
    "bernoulli_batch": bernoulli_batch,
    "independent_bernoulli_decoder": independent_bernoulli_decoder,
    "categorical_table": categorical_table,
    "onehot_independent": onehot_independent,
    "normal_closed_form": normal_closed_form,
}


def supported_problems(est) -> list[str]:
    return [name for name, build in PROBLEMS.items()
            if est.supports(build(1, torch.float64, "cpu").dist)]


def estimates(spec: str, problem: Problem, k: int, warmup: int = 0):
    """R gradient estimates flattened to ``[R, P]``, and the exact gradient ``[P]``."""
    from . import get

    est = get(spec)
    for _ in range(warmup):  # stateful estimators: run them in before measuring
        est(problem.dist, problem.f, num_samples=k)
        for leaf in problem.leaves:
            leaf.grad = None
    est(problem.dist, problem.f, num_samples=k).backward()
    g_hat = torch.cat([leaf.grad.reshape(leaf.shape[0], -1) for leaf in problem.leaves], 1)
    exact_grads = torch.autograd.grad(problem.exact(), problem.leaves, allow_unused=True)
    g = torch.cat([(e if e is not None else torch.zeros_like(leaf))[0].reshape(-1)
                   for e, leaf in zip(exact_grads, problem.leaves)])
    return g_hat, g


def mean_test(g_hat: torch.Tensor, g: torch.Tensor) -> tuple[float, float]:
    """Largest |z| of the per-coordinate mean against ``g``, and its critical value."""
    se = g_hat.std(0) / math.sqrt(g_hat.shape[0])
    z = (g_hat.mean(0) - g).abs() / se.clamp_min(1e-12)
    return float(z.max()), z_crit(g.numel())


# -- the checks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckResult:
    spec: str
    check: str
    case: str
    passed: bool
    detail: str = ""


def _cuda() -> bool:
    return torch.cuda.is_available()


def _declaration(spec, est, entry) -> Iterator[tuple[str, bool, str]]:
    claimed, families = entry.info.get("unbiased"), set(entry.info.get("families", ()))
    yield "", (claimed is est.unbiased and families == {c.__name__ for c in est.families}
               and bool(families)), (f"registered unbiased={claimed}, families={sorted(families)};"
                                     f" instance unbiased={est.unbiased}, families="
                                     f"{sorted(c.__name__ for c in est.families)}")


def _all_dists():
    logits = torch.zeros(2, 3, requires_grad=True)
    return {"Bernoulli": D.Bernoulli(logits=logits),
            "OneHotCategorical": D.OneHotCategorical(logits=logits),
            "Categorical": D.Categorical(logits=logits),
            "Normal": D.Normal(logits, torch.ones(2, 3))}


def event_sum(dist: D.Distribution) -> Callable:
    """A cost for any distribution: the sum over its event dims."""
    nd = len(dist.event_shape)
    return lambda z: z.sum(tuple(range(-nd, 0))) if nd else z


def _supports(spec, est, entry) -> Iterator[tuple[str, bool, str]]:
    families = set(entry.info.get("families", ()))
    name = spec.split(":")[0]
    for fam, dist in _all_dists().items():
        if fam not in families and est.supports(dist):
            yield fam, False, f"supports() accepts {fam}, not among {sorted(families)}"
            continue
        if fam in families:
            yield fam, True, ""
            continue
        try:
            est(dist, event_sum(dist), num_samples=2)
            yield fam, False, "an unsupported family was accepted"
        except TypeError as exc:
            ok = fam in str(exc) and name in str(exc)
            yield fam, ok, "" if ok else f"TypeError should name {fam} and {name}: {exc}"
        except Exception as exc:  # noqa: BLE001 - the wrong kind of error is the finding
            yield fam, False, f"expected a TypeError, got {type(exc).__name__}: {exc}"


def _contract(spec, est, entry) -> Iterator[tuple[str, bool, str]]:
    from . import get

    devices = ["cpu"] + (["cuda"] if _cuda() else [])
    for pname in supported_problems(est):
        for dtype in (torch.float32, torch.float64):
            for device in devices:
                case = f"{pname}/{str(dtype)[6:]}/{device}"
                try:
                    e = get(spec).to(device)
                    torch.manual_seed(0)
                    problem = PROBLEMS[pname](5, dtype, device)
                    loss = e(problem.dist, problem.f, num_samples=max(4, e.min_samples()))
                    bad = []
                    if not (loss.shape == () and loss.dtype == dtype
                            and loss.device.type == device):
                        bad.append(f"loss has shape {list(loss.shape)}, {loss.dtype}, "
                                   f"{loss.device}")
                    if not bool(torch.isfinite(loss)):
                        bad.append("loss is not finite")
                    loss.backward()
                    grad = problem.leaves[0].grad
                    if grad is None or grad.shape != problem.leaves[0].shape:
                        bad.append("no gradient of the parameters' shape")
                    elif grad.dtype != dtype or not bool(torch.isfinite(grad).all()):
                        bad.append(f"gradient is {grad.dtype} or not finite")
                    yield case, not bad, "; ".join(bad)
                except Exception as exc:  # noqa: BLE001
                    yield case, False, f"{type(exc).__name__}: {exc}"


def _determinism(spec, est, entry) -> Iterator[tuple[str, bool, str]]:
    from . import get

    for pname in supported_problems(est):
        grads = []
        for _ in range(2):
            torch.manual_seed(99)
            problem = PROBLEMS[pname](4, torch.float32, "cpu")
            e = get(spec)
            e(problem.dist, problem.f, num_samples=max(3, e.min_samples())).backward()
            grads.append(problem.leaves[0].grad.clone())
        yield pname, bool(torch.equal(grads[0], grads[1])), "same seed, different gradients"


def _expect_value_error(call: Callable, needle: str) -> str:
    try:
        call()
    except ValueError as exc:
        return "" if needle.lower() in str(exc).lower() else f"message lacks {needle!r}: {exc}"
    except Exception as exc:  # noqa: BLE001
        return f"expected a ValueError, got {type(exc).__name__}: {exc}"
    return "accepted"


def _bad_input(spec, est, entry) -> Iterator[tuple[str, bool, str]]:
    dist = next((d for d in _all_dists().values() if est.supports(d)), None)
    if dist is None:
        yield "", False, "supports none of Bernoulli, OneHotCategorical, Categorical, Normal"
        return
    f = event_sum(dist)
    for bad in (0, -1, 1.5, True, "4"):
        problem = _expect_value_error(lambda b=bad: est(dist, f, num_samples=b), "num_samples")
        yield f"num_samples={bad!r}", not problem, problem
    k = max(2, est.min_samples())
    for case, cost, needle in (("cost shape", lambda z: f(z).sum(), "shape"),
                               ("cost not a tensor", lambda z: 1.0, "tensor"),
                               ("non-finite cost", lambda z: f(z) * float("nan"), "non-finite")):
        problem = _expect_value_error(lambda c=cost: est(dist, c, num_samples=k), needle)
        yield case, not problem, problem


def _unbiased(spec, est, entry) -> Iterator[tuple[str, bool, str]]:
    from . import get

    if not entry.info.get("unbiased"):
        yield NOT_CLAIMED, True, ""
        return
    for pname in supported_problems(est):
        for k in check_num_samples(est, PROBLEMS[pname](1, torch.float64, "cpu").dist, _FULL):
            torch.manual_seed(1234 + k)
            problem = PROBLEMS[pname](replicates(k), torch.float64, "cpu")
            g_hat, g = estimates(spec, problem, k, warmup=3)
            z, crit = mean_test(g_hat, g)
            yield (f"{pname}/K={k}", z < crit,
                   f"mean differs from the exact gradient: max |z| = {z:.2f} > {crit:.2f}")
        torch.manual_seed(7)
        problem = PROBLEMS[pname](R, torch.float64, "cpu")
        probe = torch.ones((R,) + problem.dist.batch_shape[1:], dtype=torch.float64,
                           requires_grad=True)
        get(spec)(problem.dist, lambda z, p=problem, q=probe: p.f(z) * q,
                  max(2, est.min_samples())).backward()
        values = probe.grad.reshape(R, -1).sum(1)
        z, crit = mean_test(values[:, None], problem.exact().detach().reshape(1))
        yield (f"{pname}/loss value", z < crit,
               f"the loss's value is not the Monte Carlo estimate of E f: |z| = {z:.2f}")


_FULL = False  # estibench check --full: the full grid's K too


CHECKS: dict[str, Callable] = {"declaration": _declaration, "supports": _supports,
                               "contract": _contract, "determinism": _determinism,
                               "bad_input": _bad_input, "unbiased": _unbiased}


def check(spec: str, name: str) -> list[CheckResult]:
    """Run one named check (a key of :data:`CHECKS`) on ``spec``; every case is a result."""
    from . import ESTIMATORS, get
    from .registry import split_spec

    try:
        entry = ESTIMATORS.entry(split_spec(spec)[0])
        est = get(spec)
    except Exception as exc:  # noqa: BLE001 - a spec that does not build fails every check
        return [CheckResult(spec, name, "", False, f"{type(exc).__name__}: {exc}")]
    if entry.info.get("kind") != "gradient":
        return [CheckResult(spec, name, "", False,
                            f"{spec!r} is a {entry.info.get('kind')} estimator; these checks are "
                            f"for gradient estimators")]
    try:
        return [CheckResult(spec, name, case, bool(ok), "" if ok else detail)
                for case, ok, detail in CHECKS[name](spec, est, entry)]
    except Exception as exc:  # noqa: BLE001 - an estimator that crashes fails its own check
        return [CheckResult(spec, name, "", False, f"{type(exc).__name__}: {exc}")]


def run(specs: list[str], checks: list[str] | None = None) -> list[CheckResult]:
    return [result for spec in specs for name in (checks or list(CHECKS))
            for result in check(spec, name)]


def builtin_specs() -> list[str]:
    """Every built-in gradient estimator's benchmark variants (plugins excluded)."""
    from . import ESTIMATORS

    specs = []
    for name in ESTIMATORS.available(kind="gradient"):
        entry = ESTIMATORS.entry(name)
        if getattr(entry.factory, "__module__", "").startswith("estimators."):
            specs.extend(entry.info.get("variants", (name,)))
    return specs


def format_table(results: list[CheckResult]) -> str:
    """One line per (spec, check): passed/failed cases and the first failure's detail."""
    rows: dict[tuple[str, str], list[CheckResult]] = {}
    for res in results:
        rows.setdefault((res.spec, res.check), []).append(res)
    width = max([len(s) for s, _ in rows] + [9])
    lines = [f"{'estimator':<{width}}  {'check':<12}  {'verdict':<7}  cases  detail"]
    for (spec, name), rs in rows.items():
        failed = [r for r in rs if not r.passed]
        verdict = "FAIL" if failed else ("n/a" if rs[0].case == NOT_CLAIMED else "pass")
        detail = (f"{failed[0].case}: {failed[0].detail}" if failed else "").replace("\n", " ")
        lines.append(f"{spec:<{width}}  {name:<12}  {verdict:<7}  {len(rs) - len(failed)}/"
                     f"{len(rs):<3}  {detail[:160]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``estibench check SPEC [SPEC ...]``: exit 1 when any check fails."""
    import argparse

    parser = argparse.ArgumentParser(prog="estibench check",
                                     description="Run the conformance checks on estimators "
                                                 "(plugins included) and print a table.")
    parser.add_argument("specs", nargs="*", help="estimator specs, e.g. 'score_function:"
                        "baseline=loo' (default: every built-in)")
    parser.add_argument("--checks", default="", help=f"comma-separated subset of "
                        f"{', '.join(CHECKS)}")
    parser.add_argument("--full", action="store_true",
                        help=f"test unbiasedness at the full grid's K too "
                             f"({', '.join(map(str, FULL_CHECK_NUM_SAMPLES))})")
    args = parser.parse_args(argv)
    global _FULL
    _FULL = args.full
    checks = [c.strip() for c in args.checks.split(",") if c.strip()] or None
    unknown = sorted(set(checks or ()) - set(CHECKS))
    if unknown:
        from .checks import unknown_name
        parser.error(unknown_name("check", unknown[0], CHECKS))
    results = run(args.specs or builtin_specs(), checks)
    print(format_table(results))
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0
