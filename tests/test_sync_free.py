"""GPU-ready hot paths (issue 14, item 5): with validation off, no registered gradient estimator
(every benchmark variant) asks the host for a tensor's value in its hot path: no ``.item()``,
``.tolist()``, ``bool``/``int``/``float`` of a tensor, ``.cpu()``/``.numpy()``. Checked on the CPU
by patching those methods to raise; on CUDA, when present, under
``torch.cuda.set_sync_debug_mode("error")``, which also catches syncs inside torch's kernels.

Each estimator runs on every conformance problem it supports (``estimators.conformance.PROBLEMS``),
distributions built without torch's argument validation (itself a sync), twice (stateful
estimators take their first-call path and then their steady one) and backward.
"""
from __future__ import annotations

import contextlib

import pytest
import torch

import estimators
from estimators.conformance import PROBLEMS

SYNCING = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy")


def _specs() -> list[str]:
    out = []
    for name in estimators.available(kind="gradient"):
        out.extend(estimators.info(name).info.get("variants", (name,)))
    return out


class HostSync(AssertionError):
    pass


@contextlib.contextmanager
def no_host_reads():
    """Every Python-level way to read a tensor's value on the host raises :class:`HostSync`."""
    saved = {name: getattr(torch.Tensor, name) for name in SYNCING}

    def raiser(name):
        def method(self, *args, **kwargs):
            raise HostSync(f"Tensor.{name} called in the hot path")
        return method

    try:
        for name in SYNCING:
            setattr(torch.Tensor, name, raiser(name))
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


@contextlib.contextmanager
def validation_off():
    previous = estimators.validation_enabled()
    previous_torch = torch.distributions.Distribution._validate_args
    estimators.set_validation(False)
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        estimators.set_validation(previous)
        torch.distributions.Distribution.set_default_validate_args(previous_torch)


def _cases(device: str):
    cases = []
    with validation_off():
        for spec in _specs():
            est = estimators.get(spec)
            for name, build in PROBLEMS.items():
                if est.supports(build(2, torch.float32, device).dist):
                    cases.append(pytest.param(spec, name, id=f"{spec}-{name}"))
    return cases


def _run(spec: str, problem_name: str, device: str, guard) -> None:
    with validation_off():
        est = estimators.get(spec).to(device)
        k = max(4, est.min_samples())
        for _ in range(2):
            problem = PROBLEMS[problem_name](2, torch.float32, device)
            with guard():
                est(problem.dist, problem.f, num_samples=k).backward()


@pytest.mark.parametrize("spec,problem_name", _cases("cpu"))
def test_no_host_reads_on_cpu(spec, problem_name):
    _run(spec, problem_name, "cpu", no_host_reads)


@contextlib.contextmanager
def cuda_sync_errors():
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("spec,problem_name", _cases("cpu"))
def test_no_sync_on_cuda(spec, problem_name):
    _run(spec, problem_name, "cuda", cuda_sync_errors)
