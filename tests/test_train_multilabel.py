"""Tests of the ``multilabel_digits`` training task (tiny configurations, CPU).

Note [Randomized statistical tests]: the label-rate test fixes its seed and takes its tolerance
from the stated failure rate ``ALPHA`` under the normal approximation of a binomial count.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.datasets import load_digits
from statcheck import ALPHA  # noqa: E402  (the one stated failure rate)

from suite.registries import TRAINING_TASKS
from suite.train_multilabel import MultilabelDigits
from suite.training import REQUIRED_KEYS, Run


def tiny(**options) -> MultilabelDigits:
    defaults = dict(n_train=200, n_valid=100, n_test=100, hidden=16, steps=20, batch_size=32,
                    num_checkpoints=3)
    return MultilabelDigits(**{**defaults, **options})


def test_registered():
    task = TRAINING_TASKS.get("multilabel_digits", steps=9)
    assert isinstance(task, MultilabelDigits) and task.steps == 9
    assert task.methods == ("binary_cross_entropy", "multilabel_softmax_cross_entropy")
    assert task.higher_is_better is True and task.num_classes == 100


def test_methods_are_the_registered_multilabel_losses(monkeypatch):
    """A loss registered with ``applies_to="multilabel"`` (as a plugin would) trains here; other
    losses do not; ``ESTIBENCH_LOSSES`` narrows the list."""
    import estimators
    from estimators.losses import BinaryCrossEntropy
    from suite.methods import loss_applies_to

    monkeypatch.delenv("ESTIBENCH_LOSSES", raising=False)
    assert loss_applies_to("sequence_cross_entropy") == ("sequence",)

    def scratch_loss():  # a factory function: its facts come with the registration
        return BinaryCrossEntropy(pos_weight=2.0)

    estimators.register_loss("scratch_multilabel_for_test", applies_to="multilabel")(scratch_loss)
    try:
        assert MultilabelDigits.methods == ("binary_cross_entropy",
                                            "multilabel_softmax_cross_entropy",
                                            "scratch_multilabel_for_test")
        run = tiny(steps=4).run("scratch_multilabel_for_test", seed=0)
        assert 0.0 <= run.checkpoints[-1]["metric"] <= 1.0
        monkeypatch.setenv("ESTIBENCH_LOSSES", "scratch_multilabel_for_test,softmax_cross_entropy")
        assert MultilabelDigits.methods == ("scratch_multilabel_for_test",)
    finally:
        estimators.LOSSES.unregister("scratch_multilabel_for_test")


def test_composite_shapes_contents_and_label_rate():
    task = MultilabelDigits()  # default sizes: 3000 images x 10 slots
    splits = task.data(seed=0)
    digits = load_digits()
    filled_total = trials = 0
    for name, n in (("train", 2000), ("valid", 500), ("test", 500)):
        d = splits[name]
        assert d.images.shape == (n, 16, 40) and d.images.dtype == np.float32
        assert d.labels.shape == (n, 100) and set(np.unique(d.labels)) <= {0.0, 1.0}
        assert d.features.shape == (n, 640)
        filled = d.sources >= 0
        tiles = d.images.reshape(n, 2, 8, 5, 8).transpose(0, 1, 3, 2, 4).reshape(n, 10, 8, 8)
        labels = d.labels.reshape(n, 10, 10)
        # exactly one label per filled slot (the digit's class), none for a blank slot
        np.testing.assert_array_equal(labels.sum(-1), filled)
        np.testing.assert_array_equal(labels[filled].argmax(-1), digits.target[d.sources[filled]])
        np.testing.assert_array_equal(tiles[filled], digits.images[d.sources[filled]] / 16.0)
        assert not tiles[~filled].any()
        filled_total += int(filled.sum())
        trials += filled.size
    # slots filled ~ Binomial(trials, 0.2); positive-label rate = filled / (N * 100) ~ 2 %
    p = task.fill_prob
    z = (filled_total - trials * p) / math.sqrt(trials * p * (1 - p))
    assert abs(z) < stats.norm.isf(ALPHA / 2), z
    rate = np.concatenate([s.labels for s in splits.values()]).mean()
    assert rate == pytest.approx(filled_total / (trials * 10))


def test_no_source_digit_shared_between_splits():
    splits = MultilabelDigits().data(seed=1)
    used = {k: set(np.unique(v.sources[v.sources >= 0])) for k, v in splits.items()}
    assert used["train"].isdisjoint(used["test"])
    assert used["train"].isdisjoint(used["valid"])
    assert used["valid"].isdisjoint(used["test"])
    assert all(len(u) > 100 for u in used.values())


@pytest.mark.parametrize("method", MultilabelDigits.methods)
def test_run_schema(method):
    task = tiny()
    run = task.run(method, seed=0)
    assert isinstance(run, Run) and run.task == "multilabel_digits" and run.method == method
    assert [p["step"] for p in run.checkpoints] == task.schedule() == [0, 10, 20]
    seconds = [p["seconds"] for p in run.checkpoints]
    assert seconds[0] == 0.0 and all(b >= a for a, b in zip(seconds, seconds[1:]))
    for point in run.checkpoints:
        assert set(point) == set(REQUIRED_KEYS) | {"f1_macro"}
        assert all(math.isfinite(v) for v in point.values())
        assert 0.0 <= point["metric"] <= 1.0 and 0.0 <= point["f1_macro"] <= 1.0
    assert set(run.final) == {"best_threshold", "valid_f1_micro_at_best_threshold",
                              "f1_micro_at_best_threshold"}
    assert all(math.isfinite(v) for v in run.final.values())
    # training lowers the surrogate it optimises, on held-out data
    assert run.checkpoints[-1]["loss"] < run.checkpoints[0]["loss"]


def test_deterministic_per_seed_and_rng_untouched():
    task = tiny()
    state = torch.get_rng_state()
    runs = [task.run("multilabel_softmax_cross_entropy", seed=s) for s in (1, 1, 2)]
    assert torch.equal(torch.get_rng_state(), state)

    def values(run):
        return [{k: v for k, v in p.items() if k != "seconds"} for p in run.checkpoints], run.final

    assert values(runs[0]) == values(runs[1])
    assert values(runs[0]) != values(runs[2])


def test_linear_scorer_option():
    task = tiny(hidden=0)
    assert isinstance(task.model(), torch.nn.Linear)
    assert task.run("binary_cross_entropy", seed=0).checkpoints[-1]["step"] == 20


def test_bad_method_and_options():
    task = tiny()
    with pytest.raises(ValueError, match=r"unknown method 'bce'.*available: binary_cross_entropy"):
        task.run("bce")
    with pytest.raises(ValueError, match="fill_prob must be in"):
        MultilabelDigits(fill_prob=1.5)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        MultilabelDigits(steps=0)
    with pytest.raises(ValueError, match=r"batch_size \(64\) must be <= n_train \(10\)"):
        MultilabelDigits(n_train=10)
    with pytest.raises(ValueError, match="num_checkpoints must be an int >= 2"):
        MultilabelDigits(num_checkpoints=1)
