"""The suite's shared option checks (suite/checks.py) and its one digits loader (suite/data.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from suite import checks, data


def test_int_options_accept_numpy_ints_and_refuse_bools_floats_and_small_values():
    assert checks.check_int("t", "steps", np.int64(3)) == 3
    assert type(checks.check_int("t", "steps", np.int64(3))) is int
    for bad in (True, 2.0, "3", None):
        # a wrong type is a TypeError and (as the tasks used to raise) a ValueError
        with pytest.raises(TypeError, match=r"t: steps must be an int >= 1"):
            checks.check_int("t", "steps", bad)
        with pytest.raises(ValueError):
            checks.check_int("t", "steps", bad)
    with pytest.raises(ValueError, match=r"t: hidden must be an int >= 0, got -1"):
        checks.check_int("t", "hidden", -1, minimum=0)
    assert checks.check_ints("t", {"a": 1, "b": 0}, minimum={"b": 0}) == {"a": 1, "b": 0}


def test_number_options():
    assert checks.check_number("t", "lr", 1) == 1.0
    assert checks.check_number("t", "beta", 0, allow_zero=True) == 0.0
    for bad in (0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="t: lr must be a finite number > 0"):
            checks.check_number("t", "lr", bad)
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\]"):
        checks.check_number("t", "p", 1.5, maximum=1.0)
    with pytest.raises(ValueError, match=r"m must be in \[0, 1\]"):
        checks.check_number("t", "m", -0.5, allow_zero=True, maximum=1.0)
    with pytest.raises(TypeError, match="must be a number"):
        checks.check_number("t", "lr", True)
    with pytest.raises(ValueError, match="one of adam, sgd"):
        checks.check_choice("t", "optimizer", "rmsprop", ("adam", "sgd"))
    with pytest.raises(TypeError, match="True or False"):
        checks.check_bool("t", "flag", 1)
    for bad in (-1, 1.5, True, "0"):
        with pytest.raises(ValueError, match="seed must be an int >= 0"):
            checks.check_seed("t", bad)


def test_the_digits_are_loaded_once_and_shared_read_only():
    pixels, labels = data.digits()
    assert pixels.shape == (1797, 64) and labels.shape == (1797,)
    assert data.digits() is data.digits()  # cached: one load per process
    scaled = data.digit_pixels()
    assert scaled.dtype == np.float32 and float(scaled.max()) == 1.0
    np.testing.assert_array_equal(scaled, (pixels / 16).astype(np.float32))
    for a in (pixels, labels, scaled):
        assert not a.flags.writeable
    binary = data.binarised_digits()
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    assert np.array_equal(binary.numpy(), (pixels > 8).astype(np.float64))


def test_index_splits_are_disjoint_and_cover_everything():
    parts = data.split_indices(10, np.random.default_rng(0))
    assert [len(p) for p in parts] == [6, 2, 2]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
