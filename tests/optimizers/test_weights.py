"""The weights list (``optimizers/weights.py``, its entries ``optimizers/entries.py``): Keras's names and order of an
optimizer's variables per family, slots added as variables arrive, and
``get_slot``/``get_slot_names`` as views into the state.

TF-Keras's own weights lists are compared in
``tests/oracle/test_keras_layer_oracle.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from layer_helpers import FAMILIES, grads_at, make_vars


# ----------------------------------------------------------------------------
# Names and order per family
# ----------------------------------------------------------------------------


def test_first_call_with_a_none_gradient_builds_per_family():
    """Legacy creates slots only for variables with gradients (it builds from the
    filtered list); the current family builds every variable it is given."""
    w, b = make_vars()
    legacy = O.legacy.SGD(momentum=0.9)
    legacy.apply_gradients([(grads_at(0)[0], w), (None, b)])
    assert [x.name for x in legacy.weights] == ["SGD/iter:0", "SGD/dense/kernel/momentum:0"]
    w, b = make_vars()
    current = O.SGD(momentum=0.9)
    current.apply_gradients([(grads_at(0)[0], w), (None, b)])
    assert [x.name for x in current.weights] == ["iteration:0", "SGD/m/dense/kernel:0", "SGD/m/dense/bias:0"]
    np.testing.assert_array_equal(current.get_weights()[2], np.zeros(1, np.float32))


def test_legacy_adds_slots_for_new_variables_in_optimizer_v2_order():
    """OptimizerV2._create_slots loops over the variables once per slot kind and
    only creates the missing slots, appending each to the weights list: a second
    build batch adds its m's, then its v's, after everything already there."""
    a = jk.Variable(np.ones(3, np.float32), name="a")
    b = jk.Variable(np.ones(2, np.float32), name="b")
    c = jk.Variable(np.ones(1, np.float32), name="c")
    opt = O.legacy.Adam(learning_rate=0.1)
    opt.apply_gradients([(np.ones(3, np.float32), a)])
    assert [w.name for w in opt.weights] == ["Adam/iter:0", "Adam/a/m:0", "Adam/a/v:0"]
    a_after_one = a.numpy()
    g_b, g_c = np.array([0.5, -2.0], np.float32), np.array([3.0], np.float32)
    opt.apply_gradients([(g_b, b), (np.ones(3, np.float32), a), (g_c, c)])
    assert [w.name for w in opt.weights] == [
        "Adam/iter:0",
        "Adam/a/m:0",
        "Adam/a/v:0",
        "Adam/b/m:0",
        "Adam/c/m:0",
        "Adam/b/v:0",
        "Adam/c/v:0",
    ]
    assert int(opt.iterations.numpy()) == 2
    # The new variables start from fresh slots, at the shared step count (t = 2).
    for var, g in ((b, g_b), (c, g_c)):
        m, v = 0.1 * g.astype(np.float64), 0.001 * g.astype(np.float64) ** 2
        lr_t = 0.1 * np.sqrt(1 - 0.999**2) / (1 - 0.9**2)
        np.testing.assert_allclose(opt.get_slot(var, "m").numpy(), m, rtol=1e-6)
        np.testing.assert_allclose(var.numpy(), 1.0 - lr_t * m / (np.sqrt(v) + 1e-7), rtol=1e-5)
    assert not np.array_equal(a.numpy(), a_after_one)
    ws = opt.get_weights()
    assert [x.shape for x in ws] == [(), (3,), (3,), (2,), (1,), (2,), (1,)]


# ----------------------------------------------------------------------------
# Slots
# ----------------------------------------------------------------------------


SLOT_NAMES = [
    ("legacy", "SGD", {}, []),
    ("legacy", "SGD", dict(momentum=0.9), ["momentum"]),
    ("legacy", "Adam", {}, ["m", "v"]),
    ("legacy", "Adam", dict(amsgrad=True), ["m", "v", "vhat"]),
    ("legacy", "Adamax", {}, ["m", "v"]),
    ("legacy", "Nadam", {}, ["m", "v"]),
    ("legacy", "Adagrad", {}, ["accumulator"]),
    ("legacy", "Adadelta", {}, ["accum_grad", "accum_var"]),
    ("legacy", "RMSprop", {}, ["rms"]),
    ("legacy", "RMSprop", dict(momentum=0.5, centered=True), ["rms", "momentum", "mg"]),
    ("legacy", "Ftrl", {}, ["accumulator", "linear"]),
    ("current", "SGD", {}, ["m"]),
    ("current", "Adam", dict(amsgrad=True), ["m", "v", "vhat"]),
    ("current", "Adamax", {}, ["m", "u"]),
    ("current", "Nadam", {}, ["m", "v"]),
    ("current", "Adagrad", {}, ["accumulator"]),
    ("current", "Adadelta", {}, ["accumulated_grad", "accumulated_delta_var"]),
    ("current", "RMSprop", dict(momentum=0.5, centered=True), ["velocity", "momentum", "average_gradient"]),
    ("current", "Ftrl", {}, ["accumulator", "linear"]),
]


@pytest.mark.parametrize("family,name,kwargs,slots", SLOT_NAMES, ids=[f"{c[0]}.{c[1]}{c[2]}" for c in SLOT_NAMES])
def test_get_slot_names_and_get_slot(family, name, kwargs, slots):
    opt = getattr(FAMILIES[family], name)(**kwargs)
    vs = make_vars()
    for k in range(2):
        opt.apply_gradients(list(zip(grads_at(k), vs)))
    assert opt.get_slot_names() == slots
    by_name = {w.name: w.numpy() for w in opt.weights}
    for var in vs:
        for slot in slots:
            view = opt.get_slot(var, slot)
            assert view.shape == var.shape
            # get_slot reads the entry of the weights list with Keras's slot name.
            np.testing.assert_array_equal(view.numpy(), by_name[view.name])
    with pytest.raises(KeyError):
        opt.get_slot(vs[0], "no_such_slot")
    with pytest.raises(KeyError):
        opt.get_slot(jk.Variable(np.ones((3, 1), np.float32)), slots[0] if slots else "m")


def test_get_slot_assign_writes_the_state():
    w = jk.Variable(np.ones(2, np.float32), name="w")
    opt = O.legacy.SGD(learning_rate=0.1, momentum=0.5)
    opt.apply_gradients([(np.ones(2, np.float32), w)])
    opt.get_slot(w, "momentum").assign(np.array([1.0, -1.0], np.float32))
    np.testing.assert_array_equal(opt.get_weights()[1], [1.0, -1.0])
    before = w.numpy()
    opt.apply_gradients([(np.zeros(2, np.float32), w)])
    # Keras's momentum SGD: accum = momentum * accum - lr * g; var += accum.
    np.testing.assert_allclose(w.numpy(), before + 0.5 * np.array([1.0, -1.0]), rtol=1e-6)
