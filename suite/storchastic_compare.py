"""estibench side by side with Storchastic (PyPI ``storchastic`` 0.3.7; issue 14, item 3).

Storchastic patches torch globally when imported, so it never runs in the suite's process: this
script runs each side in its own interpreter and compares through JSON files. The problems are
defined here in plain torch (the Storchastic side imports nothing from estibench):

* ``bernoulli100``: ``E[mean_i (b_i - 0.45)^2]`` over 100 Bernoullis (logits standard normal,
  seed 0), closed-form gradient (suite task ``bernoulli100_t045``).
* ``nonseparable20``: ``E[(w·b - c)^2]`` over 20 Bernoullis (suite task
  ``bernoulli20_nonseparable``), closed-form gradient.

Per (problem, method) at K f evaluations per estimate (ARM/DisARM: K/2 antithetic pairs) on the
CPU, one thread: ``seconds`` (median of one estimate plus its backward, 5 warm-up calls),
``floor_seconds`` (the plain-torch floor of :mod:`suite.floor`, timed interleaved in the same
process: a yardstick for the load each process saw), the mean estimate over ``N`` independent
estimates against the exact gradient: ``bias`` = ``||mean - g|| / ||g||``, its resolution
``bias_se`` = ``sqrt(tr Cov / N) / ||g||`` and ``z_max`` (largest per-coordinate |z|), and
``error`` when a method crashes. Methods (estibench spec <-> Storchastic class, same settings):
score function without baseline (``score_function`` <-> ``ScoreFunction``), with the leave-one-out
baseline (``score_function:baseline=loo`` <-> ``ScoreFunction(baseline_factory="batch_average")``),
Gumbel-softmax at temperature 1 (``GumbelSoftmax``), REBAR with learned temperature and eta
(``rebar:tune=true`` <-> ``REBAR``), RELAX (``relax`` <-> ``RELAX(in_dim=D)``), ARM and DisARM.

Run from the repository root (the Storchastic virtualenv: ``python3 -m venv .venv-storch &&
.venv-storch/bin/pip install torch==2.13.0 && .venv-storch/bin/pip install --no-deps
storchastic==0.3.7 pyro-ppl pyro-api opt_einsum entmax``)::

    export OMP_NUM_THREADS=1
    .venv/bin/python -m suite.storchastic_compare estibench --out /tmp/est.json
    PYTHONPATH=. .venv-storch/bin/python -m suite.storchastic_compare storchastic --out /tmp/storch.json
    .venv/bin/python -m suite.storchastic_compare compare /tmp/est.json /tmp/storch.json

``--k`` (16), ``--n`` (estimates for the bias, 400) and ``--problems`` narrow a run. A bias is
real when ``z_max`` is far beyond the Bonferroni critical value (about 4 for 100 coordinates).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

METHODS = ("score_function", "score_function_loo", "gumbel_softmax", "rebar", "relax", "arm",
           "disarm")
ESTIBENCH = {"score_function": ("score_function", {}),
             "score_function_loo": ("score_function", {"baseline": "loo"}),
             "gumbel_softmax": ("gumbel_softmax", {"temperature": 1.0}),
             "rebar": ("rebar", {"tune": True, "temperature": 1.0}),
             "relax": ("relax", {"temperature": 1.0}),
             "arm": ("arm", {}), "disarm": ("disarm", {})}


def problem(name: str):
    """(logits [D], f of samples [..., D] -> costs [...], exact gradient [D]), plain torch."""
    import torch

    g = torch.Generator().manual_seed(0)
    if name == "bernoulli100":
        logits = torch.randn(100, generator=g, dtype=torch.float64)
        t = 0.45
        p = torch.sigmoid(logits)
        exact = p * (1 - p) * ((1 - t) ** 2 - t ** 2) / 100
        return logits.float(), (lambda b: ((b - t) ** 2).mean(-1)), exact
    if name == "nonseparable20":
        logits = torch.randn(20, generator=g, dtype=torch.float64)
        w = torch.randn(20, generator=g, dtype=torch.float64)
        c = float(w.sum() / 2 + 1)
        theta = logits.clone().requires_grad_()
        p = torch.sigmoid(theta)
        objective = ((w * p).sum() - c) ** 2 + (w ** 2 * p * (1 - p)).sum()
        exact, = torch.autograd.grad(objective, theta)
        w32 = w.float()
        return logits.float(), (lambda b: ((b * w32).sum(-1) - c) ** 2), exact
    raise ValueError(f"unknown problem {name!r}; expected bernoulli100 or nonseparable20")


def _floor_step(logits, f, k):
    """The floor of suite.floor, inlined (no estibench import in the Storchastic process)."""
    import torch

    leaf = logits.clone().requires_grad_()
    with torch.no_grad():
        z = (torch.rand((k,) + leaf.shape) < torch.sigmoid(leaf)).to(leaf.dtype)
    logp = (z * leaf - torch.nn.functional.softplus(leaf)).sum(-1)
    cost = f(z)
    (cost + cost.detach() * (logp - logp.detach())).mean(0).sum().backward()
    return leaf.grad


def _time(step, floor, calls: int = 41) -> tuple[float, float]:
    for _ in range(5):
        step()
        floor()
    t_step, t_floor = [], []
    for _ in range(calls):
        for fn, out in ((floor, t_floor), (step, t_step)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(t_step), statistics.median(t_floor)


def _bias(grads, exact) -> dict[str, float]:
    import torch

    G = torch.stack([g.detach().double().reshape(-1) for g in grads])
    g = exact.double().reshape(-1)
    n = G.shape[0]
    m = G.mean(0)
    var = G.var(0)
    z = (m - g).abs() / (var / n).sqrt().clamp_min(1e-30)
    return {"bias": float((m - g).norm() / g.norm()),
            "bias_se": float((var.sum() / n).sqrt() / g.norm()), "z_max": float(z.max()),
            "estimates": n}


def run_estibench(problems, k: int, n: int) -> dict:
    import torch
    from torch import distributions as D

    import estimators

    estimators.set_validation(False)
    torch.distributions.Distribution.set_default_validate_args(False)
    out = {}
    for pname in problems:
        logits, f, exact = problem(pname)
        for method in METHODS:
            name, opts = ESTIBENCH[method]
            try:
                torch.manual_seed(0)
                est = estimators.get(name, **opts)

                def step(est=est, logits=logits, f=f):
                    leaf = logits.clone().requires_grad_()
                    est(D.Independent(D.Bernoulli(logits=leaf), 1), f, num_samples=k).backward()
                    return leaf.grad
                seconds, floor = _time(step, lambda logits=logits, f=f: _floor_step(logits, f, k))
                leaf = logits.expand(n, -1).clone().requires_grad_()  # n replicates, one call
                est(D.Independent(D.Bernoulli(logits=leaf), 1), f, num_samples=k).backward()
                out[f"{pname}/{method}"] = {"seconds": seconds, "floor_seconds": floor,
                                            **_bias(list(leaf.grad), exact)}
            except Exception as exc:  # noqa: BLE001 - report the crash with the method
                out[f"{pname}/{method}"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _storch_method(method: str, k: int, dims: int):
    import storch.method as M

    if method == "score_function":
        return M.ScoreFunction("z", n_samples=k)
    if method == "score_function_loo":
        return M.ScoreFunction("z", n_samples=k, baseline_factory="batch_average")
    if method == "gumbel_softmax":
        return M.GumbelSoftmax("z", n_samples=k)
    if method == "rebar":
        return M.REBAR("z", n_samples=k)
    if method == "relax":
        return M.RELAX("z", n_samples=k, in_dim=dims)
    if method == "arm":
        return M.ARM("z", n_samples=k // 2)  # K/2 draws, each with its antithetic partner
    if method == "disarm":
        return M.DisARM("z", n_samples=k // 2)
    raise ValueError(method)


def run_storchastic(problems, k: int, n: int) -> dict:
    import storch
    import torch
    from torch import distributions as D

    torch.distributions.Distribution.set_default_validate_args(False)
    out = {}
    for pname in problems:
        logits, f, exact = problem(pname)
        for method in METHODS:
            try:
                torch.manual_seed(0)
                est = _storch_method(method, k, logits.shape[-1])

                def step(est=est, logits=logits, f=f):
                    leaf = logits.clone().requires_grad_()
                    z = est(D.Bernoulli(logits=leaf))
                    storch.add_cost(f(z), "cost")
                    storch.backward()
                    return leaf.grad
                seconds, floor = _time(step, lambda logits=logits, f=f: _floor_step(logits, f, k))
                grads = [step().clone() for _ in range(n)]
                out[f"{pname}/{method}"] = {"seconds": seconds, "floor_seconds": floor,
                                            **_bias(grads, exact)}
            except Exception as exc:  # noqa: BLE001 - report the crash with the method
                out[f"{pname}/{method}"] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return out


def compare(est: dict, other: dict) -> str:
    rows = ["| problem/method | estibench s | storchastic s | ratio est/storch | ratio in floors "
            "| bias est (se, z_max) | bias storch (se, z_max) |", "|" + "---|" * 7]

    def bias(v):
        if "error" in v:
            return f"crash: {v['error'][:80]}"
        return f"{v['bias']:.3f} ({v['bias_se']:.3f}, {v['z_max']:.1f})"
    for key in est:
        a, b = est[key], other.get(key, {"error": "missing"})
        if "error" in a or "error" in b:
            ratio = floors = "n/a"
        else:
            ratio = f"{a['seconds'] / b['seconds']:.3f}"
            floors = f"{(a['seconds'] / a['floor_seconds']) / (b['seconds'] / b['floor_seconds']):.3f}"
        sa = f"{a['seconds'] * 1e6:.0f} us" if "seconds" in a else "-"
        sb = f"{b['seconds'] * 1e6:.0f} us" if "seconds" in b else "-"
        rows.append(f"| {key} | {sa} | {sb} | {ratio} | {floors} | {bias(a)} | {bias(b)} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("side", choices=["estibench", "storchastic", "compare"])
    parser.add_argument("files", nargs="*", help="compare: the two JSON files")
    parser.add_argument("--out", default="-")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--problems", default="bernoulli100,nonseparable20")
    args = parser.parse_args(argv)
    if args.side == "compare":
        with open(args.files[0]) as a, open(args.files[1]) as b:
            print(compare(json.load(a), json.load(b)))
        return 0
    import torch
    torch.set_num_threads(1)
    problems = [p for p in args.problems.split(",") if p]
    run = run_estibench if args.side == "estibench" else run_storchastic
    result = {"side": args.side, "k": args.k, "n": args.n, "torch": torch.__version__,
              "results": run(problems, args.k, args.n)}
    text = json.dumps(result["results"] if args.out != "-" else result, indent=1)
    if args.out == "-":
        print(text)
    else:
        with open(args.out, "w") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
