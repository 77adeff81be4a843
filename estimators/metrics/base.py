"""The metric contract shared by every metric module: the :class:`Metric` base class and the
input helpers (tensors and arrays read as numpy on the host, 0/1 targets, reductions)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..checks import Described, choice

REDUCTIONS = ("mean", "none")

# -- input helpers ------------------------------------------------------------------------------
def _numpy(x: Any, what: str) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch here
        x = x.detach().cpu()
        x = (x.double() if x.is_floating_point() else x).numpy()  # numpy has no bfloat16
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{what}: expected a tensor or array, got {type(x).__name__} ({exc})") \
            from None
    if arr.dtype == object:
        raise TypeError(f"{what}: expected a numeric tensor or array, got {type(x).__name__} that "
                        f"numpy could only read as dtype=object (ragged or non-numeric)")
    return arr


def _binary(x: Any, what: str) -> np.ndarray:
    arr = _numpy(x, what)
    if arr.dtype != bool:
        bad = ~np.isin(arr, (0, 1))
        if bad.any():
            raise ValueError(f"{what} must be 0/1 (or bool); found {int(bad.sum())} other "
                             f"value(s), e.g. {arr[bad].flat[0]!r}")
    return arr.astype(bool)


def _check_reduction(reduction: str, owner: str, allowed: Sequence[str] = REDUCTIONS) -> str:
    return choice(owner, "reduction", reduction, allowed)


class Metric(Described):
    """Base class: ``metric(predictions, references)`` -> float (``reduction="mean"``) or a 1-D
    float64 array (``reduction="none"``). Subclasses implement :meth:`per_example` and may
    override :meth:`corpus` (the default is the mean of the per-example values)."""

    name: str = "metric"
    higher_is_better: bool = True
    description: str = ""
    reference: str = ""

    def __init__(self, reduction: str = "mean"):
        self.reduction = _check_reduction(reduction, self.name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"

    def __call__(self, predictions: Any, references: Any) -> float | np.ndarray:
        if self.reduction == "none":
            return np.asarray(self.per_example(predictions, references), dtype=np.float64)
        return float(self.corpus(predictions, references))

    def per_example(self, predictions: Any, references: Any) -> np.ndarray:
        raise NotImplementedError

    def corpus(self, predictions: Any, references: Any) -> float:
        return float(np.mean(self.per_example(predictions, references)))

