"""The Keras 3 family on a tree of mixed dtypes (float32 and float16 variables in
one optimizer), against Keras 3 on its JAX backend, bit for bit.

Keras 3 sums a global norm's per-tensor squares in each tensor's dtype and the
sums in their common dtype (float32 here), so ``global_clipnorm``'s scale is a
float32 and a float16 gradient times it is a float32 product, which the step
casts to the variable's float16 (``ops.cast(gradient, variable.dtype)``): one
rounding.  Rounding the scale to float16 first moved the float16 slots by up
to 32 ulp in 200 steps.  (Muon's Newton-Schulz path does not cast the
gradient: docs/numerics.md.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from harness import make_problem
from jaxopt_keras.optimizers import keras3 as K3
from keras3_problem import SHAPES, in_dtypes, variable_names
from test_keras3_oracle import functional, run_keras3, run_ours

STEPS = 200
DTYPES = ["float32", "float16", "float32", "float16", "float32"]
CASES = [
    ("SGD", dict(learning_rate=0.05, momentum=0.9, global_clipnorm=1.0)),
    ("Adam", dict(learning_rate=0.01, amsgrad=True, global_clipnorm=1.0)),
    ("Adamax", dict(learning_rate=0.01, global_clipnorm=0.5, gradient_accumulation_steps=2)),
    ("Nadam", dict(learning_rate=0.01, global_clipnorm=1.0, use_ema=True, ema_momentum=0.9)),
    ("Lion", dict(learning_rate=0.001, clipnorm=0.5, use_ema=True)),
    ("Adafactor", dict(learning_rate=0.01)),
]


def _label(name, kwargs):
    return f"mixed {name} {kwargs}"


@pytest.fixture(scope="module")
def theirs():
    cases = [dict(label=_label(n, k), name=n, kwargs=dict(k, name="opt"), steps=STEPS, shapes=SHAPES, dtypes=DTYPES) for n, k in CASES]
    return run_keras3(cases)


def _problem():
    params, grads = make_problem(np.float32, steps=STEPS, shapes=SHAPES)
    return in_dtypes(params, grads, DTYPES)


def _assert_bits(ours, theirs, what):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        a = np.asarray(a)
        b = np.asarray(b, a.dtype)
        assert a.dtype == np.dtype(DTYPES[i]) or what != "params", (what, i, a.dtype)
        np.testing.assert_array_equal(a, b, err_msg=f"{what} {i} ({a.dtype})")


@pytest.mark.parametrize("name,kwargs", CASES, ids=[_label(*c) for c in CASES])
def test_functional_matches_keras3_on_mixed_dtypes(theirs, name, kwargs):
    params, grads = _problem()
    p, _ = run_ours(functional(name, kwargs), params, grads)
    result = theirs[_label(name, kwargs)]
    assert float(np.max(np.abs(np.asarray(p[1], np.float32) - params[1].astype(np.float32)))) > 1e-3  # float16 moved
    _assert_bits(p, result["params"], "params")


@pytest.mark.parametrize("name,kwargs", CASES, ids=[_label(*c) for c in CASES])
def test_layer_matches_keras3_on_mixed_dtypes(theirs, name, kwargs):
    """Our class, by its jitted ``stateless_apply``: the parameters and every optimizer variable."""
    params, grads = _problem()
    variables = [jk.Variable(jnp.asarray(p), name=n) for p, n in zip(params, variable_names(SHAPES))]
    opt = getattr(K3, name)(**dict(kwargs, name="opt"))
    opt.build(variables)
    opt_values, values = [v.value for v in opt.variables], [v.value for v in variables]
    step = jax.jit(opt.stateless_apply)
    for g in grads:
        values, opt_values = step(opt_values, [jnp.asarray(x) for x in g], values)
    result = theirs[_label(name, kwargs)]
    _assert_bits(values, result["params"], "params")
    assert len(opt_values) == len(result["variables"])
    for path, ours_v, theirs_v in zip(result["variable_names"], opt_values, result["variables"]):
        np.testing.assert_array_equal(np.asarray(ours_v), np.asarray(theirs_v, np.asarray(ours_v).dtype), err_msg=path)
