"""A NaN (or a non-number) in an optimizer weight is refused wherever weights come in: ``set_weights``,
``load_own_variables``, a Keras 3 loss-scale wrapper's scale, and ``state_from_keras``.

Keras takes such a weight; the slot's parameter then steps to NaN at the next
step and stays there (Adam: ``m / (sqrt(v) + eps)`` with a NaN ``v``).  Our
choice, the project's rule for bad input: a ValueError naming the weight (a
``KerasFileError`` naming the file for a load), and nothing changes.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import io
from jaxopt_keras import optimizers as O
from jaxopt_keras.algorithms.driver import OptimizerState
from jaxopt_keras.core.state import find_state, nan_count
from jaxopt_keras.io.checkpoint import KerasCheckpoint

CLASSES = [O.legacy.Adam, O.Adam, O.keras3.Adam, O.legacy.Ftrl, O.keras3.Adafactor]


def stepped(cls):
    var = [jk.Variable(np.ones((3, 2), np.float32), name="dense/kernel")]
    opt = cls(learning_rate=0.1)
    opt.apply_gradients(zip([np.full((3, 2), 0.5, np.float32)], var))
    return opt, var


def test_nan_count_reads_every_float_kind():
    assert nan_count(np.array([np.nan, 1.0, np.nan], np.float32)) == 2
    assert nan_count(np.array([np.nan, 1.0], ml_dtypes.bfloat16)) == 1
    assert nan_count(np.array([np.nan], np.float16)) == 1
    assert nan_count(np.array([np.inf, -np.inf])) == 0
    assert nan_count(np.int64(3)) == 0 and nan_count(np.array([True])) == 0


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}")
def test_set_weights_refuses_a_nan_and_changes_nothing(cls):
    opt, var = stepped(cls)
    before = [np.array(w) for w in opt.get_weights()]
    for i in range(1, len(before)):  # every weight but the step count
        bad = [w.copy() for w in before]
        bad[0] = np.asarray(before[0] + 5)
        bad[i] = np.array(bad[i], np.float64)
        bad[i].flat[-1] = np.nan
        with pytest.raises(ValueError, match=r"holds NaN \(1 of"):
            opt.set_weights(bad)
        for a, b in zip(before, opt.get_weights()):
            np.testing.assert_array_equal(a, b)
    if hasattr(opt, "load_own_variables"):
        store = {str(i): w for i, w in enumerate(before)}
        store[str(len(before) - 1)] = np.full_like(before[-1], np.nan)
        with pytest.raises(ValueError, match="holds NaN"):
            opt.load_own_variables(store)
    opt.apply_gradients(zip([np.full((3, 2), 0.5, np.float32)], var))
    assert np.isfinite(var[0].numpy()).all()


@pytest.mark.parametrize("cls", [O.legacy.Adam, O.Adam, O.keras3.Adam], ids=["legacy", "current", "keras3"])
def test_set_weights_refuses_none_and_strings_by_name(cls):
    """A ``None`` or a string inside a weight of the right shape (an object array) used to reach
    JAX, whose TypeError named no weight; a ValueError names it, and nothing changes."""
    opt, _ = stepped(cls)
    before = [np.array(w) for w in opt.get_weights()]
    for bad_value in ([[None, 1.0]] * 3, [["a", "b"]] * 3):
        bad = [w.copy() for w in before]
        bad[-1] = np.array(bad_value, dtype=object)
        with pytest.raises(ValueError, match="must hold numbers"):
            opt.set_weights(bad)
        for a, b in zip(before, opt.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_a_keras3_loss_scale_wrappers_nan_scale_is_refused():
    opt = O.keras3.LossScaleOptimizer(O.keras3.SGD(0.1))
    var = [jk.Variable(np.ones(2, np.float32), name="w")]
    opt.apply_gradients(zip([np.ones(2, np.float32)], var))
    weights = [np.array(w) for w in opt.get_weights()]
    bad = list(weights)
    bad[3] = np.float32(np.nan)
    with pytest.raises(ValueError, match="dynamic_scale holds NaN"):
        opt.set_weights(bad)
    for a, b in zip(weights, opt.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_state_from_keras_refuses_a_file_whose_slot_holds_nan():
    params = {"Dense_0": {"kernel": np.ones((3, 2), np.float32), "bias": np.zeros(2, np.float32)}}
    opt = O.SGD(0.1, momentum=0.9)
    names = ["dense/kernel", "dense/bias"]
    weights = {"iteration": np.int64(3), "SGD/m/dense/kernel": np.zeros((3, 2), np.float32), "SGD/m/dense/bias": np.array([0.0, np.nan], np.float32)}
    ckpt = KerasCheckpoint(
        path="run.h5",
        kind="h5",
        config=O.serialize(opt),
        family="current",
        iterations=3,
        optimizer_weights=weights,
        model_weights={"dense/kernel": params["Dense_0"]["kernel"], "dense/bias": params["Dense_0"]["bias"]},
        trainable=tuple(names),
    )
    with pytest.raises(io.KerasFileError, match=r"run\.h5.*SGD/m/dense/bias \(1 of 2\)"):
        io.state_from_keras(opt.transformation, params, ckpt)
    weights["SGD/m/dense/bias"] = np.zeros(2, np.float32)
    state = find_state(io.state_from_keras(opt.transformation, params, ckpt), OptimizerState)
    assert int(state.iterations) == 3
