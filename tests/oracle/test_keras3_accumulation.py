"""Keras 3's gradient accumulation and loss-scale factor, against Keras 3 on JAX.

TF-Keras has neither feature, so the reference is Keras 3's own JAX backend
(``stateless_apply``), run by ``test_keras3_oracle.run_keras3`` in its own process.  float32 only: Keras 3 converts
Python hyperparameters straight to the variable's dtype where TF-Keras goes
through float32, so in float64 the two current families differ by design.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras.core.state import find_state
from harness import SHAPES, STEPS, TOLERANCE, agreement, make_problem, run_jax
from test_keras3_oracle import run_keras3

CASES = [
    ("SGD", dict(learning_rate=0.05, momentum=0.9, gradient_accumulation_steps=3)),
    ("Adam", dict(learning_rate=0.01, gradient_accumulation_steps=4, clipnorm=1.0)),
    ("Adam", dict(learning_rate=0.01, loss_scale_factor=128.0)),
    ("RMSprop", dict(learning_rate=0.01, gradient_accumulation_steps=2, loss_scale_factor=8.0, weight_decay=0.01)),
    ("Adam", dict(learning_rate="schedule", gradient_accumulation_steps=3)),
]


def _label(name, kwargs):
    return f"{name}-{kwargs}"


@pytest.fixture(scope="module")
def keras3_params():
    """Keras 3's final parameters for every case, from one request to its runner."""
    cases = []
    for name, kwargs in CASES:
        case = dict(label=_label(name, kwargs), name=name, kwargs=dict(kwargs), steps=STEPS, shapes=SHAPES)
        if kwargs.get("learning_rate") == "schedule":
            case["kwargs"].pop("learning_rate")
            case["schedule"] = ("exponential", dict(initial_learning_rate=0.02, decay_steps=40, decay_rate=0.5))
        cases.append(case)
    results = run_keras3(cases)
    return {label: [np.asarray(p, np.float32) for p in r["params"]] for label, r in results.items()}


def _ours(name, kwargs):
    kwargs = dict(kwargs)
    if kwargs.get("learning_rate") == "schedule":
        kwargs["learning_rate"] = jk.schedules.ExponentialDecay(0.02, 40, 0.5)
    return kwargs


@pytest.mark.parametrize("name,kwargs", CASES, ids=[_label(n, k) for n, k in CASES])
def test_matches_keras3_jax_backend(keras3_params, report, name, kwargs):
    theirs = keras3_params[_label(name, kwargs)]
    params, grads = make_problem(np.float32)
    ours_kwargs = _ours(name, kwargs)
    functional, state = run_jax(getattr(jk, name.lower())(**ours_kwargs), params, grads)
    # The Keras layer, on the same problem.
    opt = getattr(jk.optimizers, name)(**ours_kwargs)
    variables = [jk.Variable(p) for p in params]
    for g in grads:
        opt.apply_gradients(list(zip(g, variables)))
    layer = [v.numpy() for v in variables]
    for label, ours in (("functional", functional), ("layer", layer)):
        a = agreement(ours, theirs, params)
        report(f"keras3 {name} {kwargs} {label}: rel {a.relative:.1e}")
        assert a.moved > 0.01 and a.relative <= TOLERANCE[np.float32], (label, a)
    if kwargs.get("gradient_accumulation_steps"):
        n = kwargs["gradient_accumulation_steps"]
        assert int(opt.iterations.numpy()) == STEPS
        names = [w.name for w in opt.weights]
        accumulators = [w for w in names if "gradient_accumulator" in w]
        assert len(accumulators) == len(params)  # one buffer per parameter, no more
        inner = find_state(opt.state, jk.OptimizerState)
        assert int(inner.iterations) == STEPS // n


def test_accumulation_state_grows_by_one_buffer_per_parameter():
    params = {"w": np.ones((3, 4), np.float32), "b": np.zeros(4, np.float32)}
    plain = jk.adam().init(params)
    accumulating = jk.adam(gradient_accumulation_steps=4).init(params)
    size = lambda s: sum(np.size(x) for x in jax.tree.leaves(s))  # noqa: E731
    assert size(accumulating) - size(plain) == 16 + 1  # one buffer per parameter, and the call counter
