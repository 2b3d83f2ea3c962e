"""A variable given two gradients in one ``apply_gradients`` call.

TF-Keras (both families) and Keras 3 apply such pairs one after the other
within one step: SGD(0.1) from 1.0 with gradients 0.5 and 0.25 ends at 0.925
(checked against all three by probe).  One pure step over the variables
cannot have that semantics; it used to fail with XLA's "donate the same
buffer twice" on a fresh optimizer (and every later call failed the same
way, the variable registered twice), and on a built one it silently kept
the last gradient (0.975).  Now: a ValueError naming the variable, before
anything changes; ``build([v, v])`` builds ``v`` once.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O

CLASSES = [O.legacy.SGD, O.legacy.Adam, O.SGD, O.Adam, O.keras3.SGD, O.keras3.Adam]
ids = [f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}" for c in CLASSES]


def grads(*values):
    return [np.full(3, x, np.float32) for x in values]


def test_sgd_takes_the_sum_when_given_once():
    """The way out the message gives: one pair per variable, gradients added."""
    v = jk.Variable(np.ones(3, np.float32), name="w")
    O.legacy.SGD(0.1).apply_gradients([(sum(grads(0.5, 0.25)), v)])
    np.testing.assert_allclose(v.numpy(), 0.925, rtol=1e-6)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@pytest.mark.parametrize("built", [False, True], ids=["fresh", "built"])
def test_a_repeated_variable_is_refused_and_nothing_changes(cls, built):
    v = jk.Variable(np.ones(3, np.float32), name="dense/kernel")
    w = jk.Variable(np.zeros(2, np.float32), name="dense/bias")
    opt = cls(0.1)
    if built:
        opt.apply_gradients([(grads(0.5)[0], v), (np.ones(2, np.float32), w)])
    before = (v.numpy().copy(), w.numpy().copy(), int(opt.iterations.numpy()), opt.built)
    state = jax.tree_util.tree_map(np.array, opt.state) if built else None
    g1, g2 = grads(0.5, 0.25)
    with pytest.raises(ValueError, match="Variable 'dense/kernel' has more than one gradient"):
        opt.apply_gradients([(g1, v), (np.ones(2, np.float32), w), (g2, v)])
    assert (v.numpy().tolist(), w.numpy().tolist(), int(opt.iterations.numpy()), opt.built) == (
        before[0].tolist(), before[1].tolist(), before[2], before[3]
    )
    if built:
        jax.tree_util.tree_map(np.testing.assert_array_equal, state, jax.tree_util.tree_map(np.array, opt.state))
    # A (None, v) pair beside (g, v) is not a second gradient.
    opt.apply_gradients([(g1, v), (None, v), (np.ones(2, np.float32), w)])
    assert int(opt.iterations.numpy()) == before[2] + 1
    assert np.all(v.numpy() < before[0])


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_build_lists_a_repeated_variable_once(cls):
    v = jk.Variable(np.ones(3, np.float32), name="dense/kernel")
    opt, reference = cls(0.1), cls(0.1)
    opt.build([v, v])
    reference.build([v])
    assert [w.shape for w in opt.variables] == [w.shape for w in reference.variables]
    opt.apply_gradients([(grads(0.5)[0], v)])  # used to fail: the buffer donated twice
    assert int(opt.iterations.numpy()) == 1
