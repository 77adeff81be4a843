"""Training task ``multilabel_digits``: multi-label classification of composite digit images.

Each image is a grid of ``rows x cols`` slots (default 2 x 5, so 16 x 40 pixels); each slot holds,
with probability ``fill_prob`` (default 0.2), a real 8 x 8 digit from scikit-learn's bundled
``load_digits``, and is blank otherwise. The labels are the ``(slot, digit)`` pairs present,
``slots x 10`` classes (100 by default) with a positive rate of ``fill_prob / 10`` (2 %): a
heavily imbalanced multi-label problem. The source digits are split once (by the seed) into
disjoint train / valid / test pools, so no test digit was ever seen in training.

A one-hidden-layer MLP scorer (``hidden=128`` ReLU units; ``hidden=0`` gives a linear scorer) is
trained with Adam for a fixed number of
steps under each method's loss (``estimators.get_loss(method)``). The methods are every registered
loss that applies to ``"multilabel"`` scores (:func:`suite.methods.loss_methods`: a loss's
``applies_to``, plugins included; narrowed by ``ESTIBENCH_LOSSES``); the built-ins are:

* ``binary_cross_entropy``: per-class BCE with logits, summed over classes;
* ``multilabel_softmax_cross_entropy``: ``log(1 + sum_neg e^{s_i}) + log(1 + sum_pos e^{-s_j})``
  (Su 2020, "Extending softmax cross-entropy to multi-label classification"; later "ZLPR",
  Su et al. 2022), whose natural decision rule is ``s_i > 0`` (seed notes section 5).

Headline metric: micro F1 on the test set at threshold 0 (predict class i iff ``s_i > 0``).
Checkpoint extras: ``f1_macro`` (test, threshold 0). Final measures: ``best_threshold`` (the
threshold maximising validation micro F1) and ``f1_micro_at_best_threshold`` (test micro F1 at it),
which tell whether a method needs a tuned threshold to be good.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

import estimators
from estimators.metrics import best_threshold

from .checks import check_ints, check_number
from .data import DIGIT_CLASSES, DIGIT_SIDE, digit_pixels, digits, split_indices
from .methods import RegistryMethods
from .training import Run, TrainingTask, evenly_spaced, register_training_task, train_on_schedule

__all__ = ["MultilabelDigits", "CompositeDigits", "make_composite_digits", "split_sources",
           "DIGIT_CLASSES"]


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """The source digits: images [1797, 8, 8] float32 in [0, 1] and their labels (read-only)."""
    return digit_pixels().reshape(-1, DIGIT_SIDE, DIGIT_SIDE), digits()[1]


@dataclass(frozen=True)
class CompositeDigits:
    """One split of composite images.

    ``images`` [N, rows*8, cols*8] float32 in [0, 1]; ``labels`` [N, slots*10] in {0, 1}, column
    ``slot * 10 + digit``; ``sources`` [N, slots]: the index in ``load_digits()`` of the digit in
    each slot, -1 for a blank slot (slots are numbered row-major).
    """

    images: np.ndarray
    labels: np.ndarray
    sources: np.ndarray

    @property
    def features(self) -> np.ndarray:
        return self.images.reshape(len(self.images), -1)


def split_sources(rng: np.random.Generator, fractions=(0.6, 0.2, 0.2)) -> list[np.ndarray]:
    """Disjoint index pools into ``load_digits()`` for train / valid / test."""
    return split_indices(len(digits()[1]), rng, fractions)


def make_composite_digits(pool: np.ndarray, n: int, rng: np.random.Generator, *, rows: int = 2,
                          cols: int = 5, fill_prob: float = 0.2) -> CompositeDigits:
    """``n`` composite images built only from the source digits in ``pool``."""
    images, target = _digits()
    slots = rows * cols
    filled = rng.random((n, slots)) < fill_prob
    sources = np.where(filled, pool[rng.integers(0, len(pool), size=(n, slots))], -1)
    tiles = images[sources] * filled[..., None, None]  # blank slots: zeros
    grid = (tiles.reshape(n, rows, cols, DIGIT_SIDE, DIGIT_SIDE)
            .transpose(0, 1, 3, 2, 4).reshape(n, rows * DIGIT_SIDE, cols * DIGIT_SIDE))
    labels = np.zeros((n, slots, DIGIT_CLASSES), dtype=np.float32)
    example, slot = np.nonzero(filled)
    labels[example, slot, target[sources[example, slot]]] = 1.0
    return CompositeDigits(np.ascontiguousarray(grid, dtype=np.float32),
                           labels.reshape(n, slots * DIGIT_CLASSES), sources)


@register_training_task(
    "multilabel_digits",
    description="multi-label (slot, digit) classification of composite sklearn digits, ~2% "
                "positives; BCE vs multi-label softmax CE; micro F1 at threshold 0",
    reference="Su 2020 (multi-label softmax cross-entropy); Su et al. 2022 (ZLPR)")
class MultilabelDigits(TrainingTask):
    """Composite-digit multi-label task; every size is a constructor option (defaults: ~1-2 s
    per run on one CPU thread)."""

    name = "multilabel_digits"
    description = "multi-label classification of composite digits (heavy imbalance)"
    metric = "test micro F1 at threshold 0"
    higher_is_better = True
    methods = RegistryMethods(losses="multilabel")
    checkpoint_measures = ("f1_macro",)
    final_measures = ("best_threshold", "valid_f1_micro_at_best_threshold",
                      "f1_micro_at_best_threshold")

    def __init__(self, *, n_train: int = 2000, n_valid: int = 500, n_test: int = 500,
                 rows: int = 2, cols: int = 5, fill_prob: float = 0.2, hidden: int = 128,
                 steps: int = 500, batch_size: int = 64, lr: float = 3e-3,
                 num_checkpoints: int = 4):
        owner = self.name
        vars(self).update(check_ints(owner, dict(
            n_train=n_train, n_valid=n_valid, n_test=n_test, rows=rows, cols=cols, hidden=hidden,
            steps=steps, batch_size=batch_size, num_checkpoints=num_checkpoints),
            minimum={"hidden": 0, "num_checkpoints": 2}))
        self.fill_prob = check_number(owner, "fill_prob", fill_prob, maximum=1.0)
        self.lr = check_number(owner, "lr", lr)
        if self.batch_size > self.n_train:
            raise ValueError(f"{owner}: batch_size ({batch_size}) must be <= n_train "
                             f"({n_train})")

    # -- data and model --------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.rows * self.cols * DIGIT_CLASSES

    def schedule(self) -> list[int]:
        """Checkpoint steps, shared by every method: evenly spaced from 0 to ``steps``."""
        return evenly_spaced(self.steps, self.num_checkpoints)

    def data(self, seed: int) -> dict[str, CompositeDigits]:
        """The train / valid / test splits of one seed (built from disjoint source digits)."""
        rng = np.random.default_rng([seed, 0x3117])
        pools = split_sources(rng)
        sizes = (self.n_train, self.n_valid, self.n_test)
        return {name: make_composite_digits(pool, n, rng, rows=self.rows, cols=self.cols,
                                            fill_prob=self.fill_prob)
                for name, pool, n in zip(("train", "valid", "test"), pools, sizes)}

    def model(self) -> torch.nn.Module:
        features = self.rows * self.cols * DIGIT_SIDE * DIGIT_SIDE
        if self.hidden == 0:
            return torch.nn.Linear(features, self.num_classes)
        return torch.nn.Sequential(torch.nn.Linear(features, self.hidden), torch.nn.ReLU(),
                                   torch.nn.Linear(self.hidden, self.num_classes))

    # -- the run ---------------------------------------------------------------------------
    def run(self, method: str, seed: int = 0, device: str = "cpu") -> Run:
        self.check_method(method)

        device = torch.device(device)
        splits = self.data(seed)
        tensors = {k: (torch.as_tensor(v.features, device=device),
                       torch.as_tensor(v.labels, device=device)) for k, v in splits.items()}
        x_train, y_train = tensors["train"]
        loss_fn = estimators.get_loss(method)
        f1_micro = estimators.get_metric("f1_micro", threshold=0.0)
        f1_macro = estimators.get_metric("f1_macro", threshold=0.0)

        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
            torch.manual_seed(seed)
            model = self.model().to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=self.lr)
        # All minibatch indices drawn up front: one host->device copy, no per-step RNG traffic.
        per_epoch = max(1, self.n_train // self.batch_size)
        epochs = math.ceil(self.steps / per_epoch)
        order = torch.cat([torch.randperm(self.n_train, generator=gen)[:per_epoch * self.batch_size]
                           for _ in range(epochs)])
        order = order[:self.steps * self.batch_size].view(self.steps, -1).to(device)

        def evaluate() -> dict[str, float]:
            model.eval()
            with torch.no_grad():
                x_valid, y_valid = tensors["valid"]
                x_test, y_test = tensors["test"]
                scores = model(x_test)
                out = {"loss": float(loss_fn(model(x_valid), y_valid)),
                       "metric": f1_micro(scores, y_test), "f1_macro": f1_macro(scores, y_test)}
            model.train()
            return out

        def update(step: int) -> None:
            idx = order[step]
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

        checkpoints = train_on_schedule(self.schedule(), update, evaluate, device)

        model.eval()
        with torch.no_grad():
            valid_scores = model(tensors["valid"][0])
            test_scores = model(tensors["test"][0])
        threshold, valid_f1 = best_threshold(valid_scores, tensors["valid"][1], average="micro")
        at_best = estimators.get_metric("f1_micro", threshold=float(threshold))
        final = {"best_threshold": float(threshold), "valid_f1_micro_at_best_threshold": valid_f1,
                 "f1_micro_at_best_threshold": at_best(test_scores, tensors["test"][1])}
        return Run(task=self.name, method=method, seed=seed, checkpoints=checkpoints, final=final,
                   evaluations_per_update=1.0)
