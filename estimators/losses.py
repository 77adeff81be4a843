"""Differentiable surrogate losses (the things trained in place of the evaluation metrics).

Every loss is built by ``estimators.get_loss(name, **options)`` and called the same way::

    loss_fn = estimators.get_loss("multilabel_softmax_cross_entropy")
    loss = loss_fn(scores, targets)      # scalar tensor on scores' device, in scores' dtype
    loss.backward()

The reduction is always the mean over examples (over counted tokens for sequences). Shapes and
dtypes are checked for free; value checks (targets in range, a finite loss) need one device->host
sync, so they run only while :func:`estimators.set_validation` is on (the default), all folded into
one sync. With validation off, an all-ignored sequence batch gives 0 rather than NaN.

* ``binary_cross_entropy``: ``Σ_c [-y_c log σ(s_c) - (1 - y_c) log(1 - σ(s_c))]`` per example
  (BCE with logits, optional ``pos_weight`` multiplying the positive term).
* ``softmax_cross_entropy``: ``-s_t + logsumexp(s)``.
* ``multilabel_softmax_cross_entropy``: ``log(1 + Σ_{i∈neg} e^{s_i}) + log(1 + Σ_{j∈pos} e^{-s_j})``
  (seed notes §5; Su 2020, published as ZLPR: Su et al. 2022, "ZLPR: A novel loss for multi-label
  classification"). Each term is a logsumexp with a zero logit appended and the other classes
  masked to -inf. With one positive class t it is ``log(1 + Σ_{i≠t} e^{s_i}) + log(1 + e^{-s_t})``,
  and ``softplus(-s_t) + log(1 + Σ_{i≠t} e^{s_i}) >= -s_t + logsumexp(s)``: single-label softmax
  cross-entropy with the threshold pinned at 0, so predicting ``s_i > 0`` needs no tuning.
* ``sequence_cross_entropy``: teacher-forced token cross-entropy ``-s_{t, y_t} +
  logsumexp(s_t)`` averaged over positions whose target is not ``ignore_index``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from . import register_loss
from .base import validation_enabled
from .checks import Described, integer

__all__ = ["Loss", "BinaryCrossEntropy", "SoftmaxCrossEntropy", "MultilabelSoftmaxCrossEntropy",
           "SequenceCrossEntropy", "multilabel_softmax_cross_entropy"]


class Loss(Described, torch.nn.Module):
    """Base class: ``loss(scores, targets) -> scalar`` (``forward``), with the shared shape, dtype
    and device checks; a ``torch.nn.Module`` so that options such as ``pos_weight`` move with
    ``.to(device)``."""

    name: str = "loss"
    description: str = ""
    reference: str = ""
    #: what the loss's (scores, targets) are, read by the training tasks (suite.methods) to pick
    #: the losses that fit them: "multilabel" (scores [N, C], targets {0,1} [N, C]),
    #: "multiclass" (targets [N] class ids), "sequence" (scores [N, T, V], targets [N, T])
    applies_to: str | tuple[str, ...] = ()

    # -- checks shared by all losses -------------------------------------------------------
    def _check_scores(self, scores: object, ndim: int, layout: str) -> torch.Tensor:
        if not isinstance(scores, torch.Tensor):
            raise TypeError(f"{self.describe()}: scores must be a torch.Tensor {layout}, got "
                            f"{type(scores).__name__}")
        if not scores.is_floating_point():
            raise TypeError(f"{self.describe()}: scores must be floating point (logits), got "
                            f"dtype {scores.dtype}")
        if scores.dim() != ndim:
            raise ValueError(f"{self.describe()}: scores must be {layout}, got shape "
                             f"{list(scores.shape)}")
        if scores.shape[0] == 0:
            raise ValueError(f"{self.describe()}: got 0 examples; expected at least one")
        return scores

    def _check_targets(self, targets: object, scores: torch.Tensor, shape: Sequence[int],
                       layout: str, integer: bool) -> torch.Tensor:
        if not isinstance(targets, torch.Tensor):
            raise TypeError(f"{self.describe()}: targets must be a torch.Tensor {layout}, got "
                            f"{type(targets).__name__}")
        if tuple(targets.shape) != tuple(shape):
            raise ValueError(f"{self.describe()}: targets must be {layout} = {list(shape)} to "
                             f"match scores {list(scores.shape)}, got {list(targets.shape)}")
        if targets.device != scores.device:
            raise ValueError(f"{self.describe()}: targets are on {targets.device} but scores on "
                             f"{scores.device}; expected one device")
        if integer and (targets.is_floating_point() or targets.is_complex()
                        or targets.dtype == torch.bool):
            raise TypeError(f"{self.describe()}: targets must be class indices of an integer "
                            f"dtype (e.g. torch.long), got {targets.dtype}")
        return targets

    def _non_finite(self, scores: torch.Tensor) -> ValueError:
        """The error for a non-finite loss (built only on failure: it syncs to count)."""
        nan, inf = int(torch.isnan(scores).sum()), int(torch.isinf(scores).sum())
        return ValueError(f"{self.describe()}: the loss is not finite; scores contain {nan} NaN "
                          f"and {inf} infinite value(s) out of {scores.numel()} (a -inf logit is "
                          f"fine only where it does not carry the target); expected finite scores")

    def _checked_binary(self, loss: torch.Tensor, scores: torch.Tensor,
                        targets: torch.Tensor) -> torch.Tensor:
        """With validation on: targets in {0, 1} and a finite loss, checked with one host sync."""
        if validation_enabled():
            flags = torch.stack([_binary_targets_ok(targets), torch.isfinite(loss)]).tolist()
            if not flags[0]:
                raise ValueError(f"{self.describe()}: {_binary_msg(targets)}")
            if not flags[1]:
                raise self._non_finite(scores)
        return loss


def _binary_targets_ok(targets: torch.Tensor) -> torch.Tensor:
    if targets.dtype == torch.bool:
        return torch.ones((), dtype=torch.bool, device=targets.device)
    return ((targets == 0) | (targets == 1)).all()


def _binary_msg(targets: torch.Tensor) -> str:
    bad = targets[(targets != 0) & (targets != 1)]
    return (f"targets must be 0/1 (or bool); found {bad.numel()} other value(s), e.g. "
            f"{bad.flatten()[:3].tolist()}")


@register_loss
class BinaryCrossEntropy(Loss):
    """``mean_n Σ_c -[w y_nc log σ(s_nc) + (1 - y_nc) log(1 - σ(s_nc))]``, ``w`` = ``pos_weight``
    (a float, or one per class), computed as BCE-with-logits (``softplus``, stable for any s)."""

    name = "binary_cross_entropy"
    reference = "standard multi-label baseline (one-vs-rest logistic regression)"
    applies_to = "multilabel"

    def __init__(self, pos_weight: None | float | Sequence[float] | torch.Tensor = None):
        super().__init__()
        if pos_weight is not None:
            w = torch.as_tensor(pos_weight, dtype=torch.float64)
            if w.dim() > 1 or not bool(torch.isfinite(w).all()) or not bool((w > 0).all()):
                raise ValueError(f"binary_cross_entropy: pos_weight must be None, a positive float "
                                 f"or a 1-D sequence of positive floats (one per class), got "
                                 f"{pos_weight!r}")
            self.register_buffer("pos_weight", w)
        else:
            self.pos_weight = None

    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        scores = self._check_scores(scores, 2, "[N, C] logits")
        targets = self._check_targets(targets, scores, scores.shape, "[N, C] in {0, 1}", False)
        pw = None
        if self.pos_weight is not None:
            if self.pos_weight.dim() == 1 and self.pos_weight.shape[0] != scores.shape[1]:
                raise ValueError(f"{self.describe()}: pos_weight has {self.pos_weight.shape[0]} "
                                 f"entries but scores have C={scores.shape[1]} classes")
            pw = self.pos_weight.to(device=scores.device, dtype=scores.dtype)
        per_example = F.binary_cross_entropy_with_logits(
            scores, targets.to(scores.dtype), pos_weight=pw, reduction="none").sum(1)
        loss = per_example.mean()
        return self._checked_binary(loss, scores, targets)


@register_loss
class SoftmaxCrossEntropy(Loss):
    """``mean_n [-s_{n, t_n} + logsumexp_c s_nc]`` (``F.cross_entropy``, log-softmax internally)."""

    name = "softmax_cross_entropy"
    reference = "standard (multinomial logistic regression)"
    applies_to = "multiclass"

    def __init__(self) -> None:  # no options
        super().__init__()

    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        scores = self._check_scores(scores, 2, "[N, C] logits")
        targets = self._check_targets(targets, scores, scores.shape[:1],
                                      "[N] class indices", True)
        c = scores.shape[1]
        if validation_enabled():
            in_range = ((targets >= 0) & (targets < c)).all()
            # clamp so that a bad index reaches our message instead of an index error
            loss = F.cross_entropy(scores, targets.clamp(0, c - 1))
            ok = torch.stack([in_range, torch.isfinite(loss).all()]).tolist()
            if not ok[0]:
                bad = targets[(targets < 0) | (targets >= c)]
                raise ValueError(f"{self.describe()}: targets must be class indices in [0, {c}), "
                                 f"found {bad.numel()} outside, e.g. {bad[:3].tolist()}")
            if not ok[1]:
                raise self._non_finite(scores)
            return loss
        return F.cross_entropy(scores, targets)


def multilabel_softmax_cross_entropy(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example ``log(1 + Σ_{i∈neg} e^{s_i}) + log(1 + Σ_{j∈pos} e^{-s_j})`` -> [N].

    ``targets`` are 0/1 or bool, same shape as ``scores`` [..., C]; no checks (the registered
    loss checks). Each log(1 + Σ e^x) is a logsumexp over the selected entries plus a zero logit,
    so it is stable for any scores and an empty class set contributes log(1) = 0.
    """
    pos = targets.bool()
    zero = scores.new_zeros(scores.shape[:-1] + (1,))
    neg_term = torch.logsumexp(torch.cat([scores.masked_fill(pos, float("-inf")), zero], -1), -1)
    pos_term = torch.logsumexp(torch.cat([(-scores).masked_fill(~pos, float("-inf")), zero], -1),
                               -1)
    return neg_term + pos_term


@register_loss(predict_threshold=0.0)
class MultilabelSoftmaxCrossEntropy(Loss):
    """``mean_n [log(1 + Σ_{i∈neg_n} e^{s_ni}) + log(1 + Σ_{j∈pos_n} e^{-s_nj})]``; predict class i
    iff ``s_i > 0``. See :func:`multilabel_softmax_cross_entropy`."""

    name = "multilabel_softmax_cross_entropy"
    reference = ("Su 2020 (kexue.fm/archives/7359); Su et al. 2022, ZLPR: A novel loss for multi-label "
                 "classification")
    applies_to = "multilabel"

    def __init__(self) -> None:  # no options
        super().__init__()

    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        scores = self._check_scores(scores, 2, "[N, C] logits")
        targets = self._check_targets(targets, scores, scores.shape, "[N, C] in {0, 1}", False)
        loss = multilabel_softmax_cross_entropy(scores, targets).mean()
        return self._checked_binary(loss, scores, targets)


@register_loss
class SequenceCrossEntropy(Loss):
    """``Σ_{n,t: y_nt ≠ ignore} [-s_{n,t,y_nt} + logsumexp_v s_ntv] / #{counted tokens}``."""

    name = "sequence_cross_entropy"
    reference = ("standard maximum-likelihood training of sequence models (teacher forcing: Williams & Zipser "
                 "1989)")
    applies_to = "sequence"

    def __init__(self, ignore_index: int = -100):
        super().__init__()
        self.ignore_index = integer("sequence_cross_entropy", "ignore_index", ignore_index,
                                    minimum=None)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self._check_scores(logits, 3, "[N, T, V] logits")
        targets = self._check_targets(targets, logits, logits.shape[:2], "[N, T] token ids", True)
        v = logits.shape[2]
        counted_mask = targets != self.ignore_index
        counted = counted_mask.sum()
        safe = targets
        if validation_enabled():
            # out-of-range ids become our ValueError rather than an index error / device assert
            safe = torch.where(counted_mask, targets.clamp(0, v - 1),
                               torch.full_like(targets, self.ignore_index))
        total = F.cross_entropy(logits.reshape(-1, v), safe.reshape(-1),
                                ignore_index=self.ignore_index, reduction="sum")
        # clamp: with validation off an all-ignored batch gives 0, never 0/0 = NaN
        loss = total / counted.clamp_min(1).to(total.dtype)
        if validation_enabled():
            in_range = ((targets >= 0) & (targets < v)) | ~counted_mask
            flags = torch.stack([in_range.all(), counted > 0, torch.isfinite(loss)]).tolist()
            if not flags[0]:
                bad = targets[~in_range]
                raise ValueError(f"{self.describe()}: targets must be token ids in [0, {v}) or "
                                 f"ignore_index={self.ignore_index}, found {bad.numel()} other "
                                 f"value(s), e.g. {bad[:3].tolist()}")
            if not flags[1]:
                raise ValueError(f"{self.describe()}: every target equals ignore_index="
                                 f"{self.ignore_index}, so no token is counted; expected at "
                                 f"least one counted token")
            if not flags[2]:
                raise self._non_finite(logits)
        return loss
