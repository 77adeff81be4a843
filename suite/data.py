"""Data the suite's tasks share: scikit-learn's bundled 8 x 8 digits, read once per process.

``load_digits`` reads from the installed package (no download). Every view here is cached and
read-only, so the tasks cannot change each other's data: :func:`digit_pixels` (the VQ-VAE and
the composite multi-label digits) and :func:`binarised_digits` (the gradient tasks' VAEs) are
both computed from the one :func:`digits` load. scikit-learn is imported on first use only
(a suite import stays light: see ``tests/test_alignment.py``).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["DIGIT_SIDE", "DIGIT_CLASSES", "digits", "digit_pixels", "binarised_digits",
           "split_indices"]

DIGIT_SIDE = 8
DIGIT_CLASSES = 10


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@lru_cache(maxsize=1)
def digits() -> tuple[np.ndarray, np.ndarray]:
    """``(pixels, labels)``: float64 ``[1797, 64]`` intensities in 0..16 and int64 ``[1797]``."""
    from sklearn.datasets import load_digits
    data = load_digits()
    return _frozen(np.asarray(data.data, dtype=np.float64)), _frozen(data.target.astype(np.int64))


@lru_cache(maxsize=1)
def digit_pixels() -> np.ndarray:
    """The digits scaled to [0, 1]: float32 ``[1797, 64]`` (row-major 8 x 8 images)."""
    return _frozen((digits()[0] / 16.0).astype(np.float32))


@lru_cache(maxsize=1)
def binarised_digits():
    """The digits binarised at half intensity: a float64 torch tensor ``[1797, 64]`` in {0, 1}."""
    import torch
    return torch.as_tensor(digits()[0] > 8).to(torch.float64)


def split_indices(n: int, rng: np.random.Generator,
                  fractions=(0.6, 0.2, 0.2)) -> list[np.ndarray]:
    """Disjoint index sets into ``range(n)`` of about ``fractions`` of it each (the last takes
    the rest), from one permutation drawn from ``rng``."""
    order = rng.permutation(n)
    cuts = np.cumsum([int(round(f * n)) for f in fractions[:-1]])
    return np.split(order, cuts)
