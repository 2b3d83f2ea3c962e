"""Zero-argument callable hyperparameters in the legacy family: OptimizerV2 calls
each one whenever it reads it (``_get_hyper``); our class calls it on the host
before each step.  Same trajectory, weights and config as TF-Keras while the
callables' values change between steps.  A callable ``momentum`` (SGD,
RMSprop) has its slot whatever it returns, 0 included, and RMSprop takes its
momentum kernel (epsilon inside the root) for it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O

# (class, hyperparameter -> its value at step t)
CASES = [
    ("SGD", {"learning_rate": lambda t: 0.1 / (t + 1), "momentum": lambda t: 0.5 + 0.1 * t}),
    ("SGD", {"momentum": lambda t: 0.0}),
    ("SGD", {"momentum": lambda t: 0.2 * t}),  # 0 at construction, then on
    ("RMSprop", {"learning_rate": lambda t: 0.01 * (t + 1), "rho": lambda t: 0.9 - 0.05 * t, "momentum": lambda t: 0.3}),
    ("RMSprop", {"learning_rate": lambda t: 0.01, "momentum": lambda t: 0.0}),
    ("RMSprop", {"learning_rate": lambda t: 0.01, "momentum": lambda t: 0.2 * t}),
    ("Adam", {"beta_1": lambda t: 0.9 - 0.1 * t, "beta_2": lambda t: 0.99, "learning_rate": lambda t: 0.05}),
    ("Adadelta", {"rho": lambda t: 0.5 + 0.1 * t, "learning_rate": lambda t: 1.0}),
    ("Ftrl", {"beta": lambda t: 0.1 * t, "learning_rate": lambda t: 0.2}),
    ("Nadam", {"learning_rate": lambda t: 0.01 * (t + 1), "beta_2": lambda t: 0.99 - 0.01 * t}),
]


def _run(cls, variables, hypers, steps=5):
    t = {"now": 0}

    def zero_arg(f):
        return lambda: f(t["now"])

    opt = cls(**{k: zero_arg(f) for k, f in hypers.items()})
    rng = np.random.default_rng(0)
    for step in range(steps):
        t["now"] = step
        grads = [rng.standard_normal(v.shape).astype(np.float32) for v in variables]
        opt.apply_gradients(zip(grads, variables))
    return [np.asarray(v.numpy()) for v in variables], opt.get_config(), [np.asarray(w) for w in opt.get_weights()]


def _case_id(case) -> str:
    name, hypers = case
    return f"{name}-" + "-".join(sorted(hypers))


@pytest.mark.parametrize("name,hypers", CASES, ids=[f"{i}-{_case_id(c)}" for i, c in enumerate(CASES)])
def test_legacy_callables_step_as_tf_keras(name, hypers):
    import tensorflow as tf
    import tf_keras

    start = [np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), np.array([0.5, -0.2], np.float32)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, their_config, their_weights = _run(getattr(tf_keras.optimizers.legacy, name), [tf.Variable(p) for p in start], hypers)
        ours, our_config, our_weights = _run(getattr(O.legacy, name), [jk.Variable(p, name=f"v{i}") for i, p in enumerate(start)], hypers)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not np.allclose(ours[0], start[0])
    assert our_config == their_config
    assert [w.shape for w in our_weights] == [w.shape for w in their_weights]
    # Ftrl's `linear` slot adds `sqrt(n_new) - sqrt(n)` (times the variable):
    # a difference of close roots, whose few ulp of rounding apart between
    # XLA's and Eigen's kernels it magnifies (2.2e-6 relative seen after 5
    # steps); every other slot agrees as the variables do.
    rtol = 1e-5 if name == "Ftrl" else 1e-6
    for a, b in zip(our_weights, their_weights):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-7)


def test_tf_keras_refuses_a_callable_where_its_constructor_compares_and_so_do_we():
    import tf_keras

    for make in (tf_keras.optimizers.legacy.Ftrl, O.legacy.Ftrl):
        with pytest.raises(TypeError):
            make(l1_regularization_strength=lambda: 0.1)


def _counting():
    """A stateful zero-argument learning rate: 0.1 / (number of calls so far)."""
    calls = []

    def lr():
        calls.append(None)
        return 0.1 / len(calls)

    return lr, calls


def _steps(opt, variable, n=3):
    moved = []
    for _ in range(n):
        before = float(np.asarray(variable.numpy())[0])
        opt.apply_gradients([(np.ones(1, np.float32), variable)])
        moved.append(before - float(np.asarray(variable.numpy())[0]))
    return moved


@pytest.mark.parametrize("family", ["legacy", "current"])
def test_a_stateful_callable_learning_rate_steps_as_tf_kerass(family):
    """Legacy: OptimizerV2 calls it at each step (first at step 0, none at construction) and in
    get_config; ours called it once more at construction, so every step used the next call's value.
    Current: ``tf.Variable(learning_rate)`` calls it once, at construction, for good;
    ours took it for a schedule and failed at the first step."""
    import tensorflow as tf
    import tf_keras

    runs = {}
    for side, module, make_variable in (
        ("tf", tf_keras.optimizers.legacy if family == "legacy" else tf_keras.optimizers, tf.Variable),
        ("ours", O.legacy if family == "legacy" else O, lambda x: jk.Variable(x, name="w")),
    ):
        lr, calls = _counting()
        opt = module.SGD(lr)
        at_construction = len(calls)
        moved = _steps(opt, make_variable(np.ones(1, np.float32)))
        runs[side] = (np.round(moved, 6).tolist(), opt.get_config()["learning_rate"], at_construction, len(calls))
    assert runs["ours"] == runs["tf"]
    expected = [0.1, 0.05, 0.033333] if family == "legacy" else [0.1, 0.1, 0.1]
    assert runs["ours"][0] == pytest.approx(expected, rel=1e-5)


def test_a_legacy_callable_sees_changes_made_before_the_first_step():
    """A callable reading state the training loop sets (a warm-up rule) is read at the first step."""
    import tensorflow as tf
    import tf_keras

    moved = {}
    for side, module, make_variable in (
        ("tf", tf_keras.optimizers.legacy, tf.Variable),
        ("ours", O.legacy, lambda x: jk.Variable(x, name="w")),
    ):
        box = {"lr": 0.1}
        opt = module.SGD(lambda: box["lr"])
        box["lr"] = 0.02
        moved[side] = np.round(_steps(opt, make_variable(np.ones(1, np.float32)), 1), 6).tolist()
    assert moved["ours"] == moved["tf"] == [0.02]


@pytest.mark.parametrize("family", ["legacy", "current"])
def test_a_variable_learning_rate_as_tf_keras_takes_it(family):
    """A variable as learning rate (``jk.Variable`` here, ``tf.Variable`` there): the legacy
    family shares it (OptimizerV2's ``_set_hyper`` keeps it; ``opt.learning_rate`` is it, each
    step reads it, assigning a number writes into it); the current family copies its value at
    construction (``tf.Variable(learning_rate)``).  Same trajectory and config as TF-Keras; it
    used to be refused as not a number."""
    import tensorflow as tf
    import tf_keras

    modules = (tf_keras.optimizers.legacy, O.legacy) if family == "legacy" else (tf_keras.optimizers, O)
    runs = []
    for module, make_lr, make_var in zip(modules, (tf.Variable, jk.Variable), (tf.Variable, jk.Variable)):
        lr = make_lr(np.float32(0.1))
        opt = module.SGD(lr, momentum=0.5)
        var = make_var(np.array([1.0, 2.0], np.float32))
        for step in range(4):
            opt.apply_gradients([(np.array([1.0, -1.0], np.float32), var)])
            lr.assign(np.float32(0.1 * (step + 2)))
        shared = opt.learning_rate is lr
        config = opt.get_config()["learning_rate"]
        opt.learning_rate = 0.05
        runs.append((np.asarray(var.numpy()), shared, config, float(np.asarray(lr.numpy()))))
    (theirs, their_shared, their_config, their_lr), (ours, our_shared, our_config, our_lr) = runs
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    expected = (True, np.float32(0.05)) if family == "legacy" else (False, np.float32(0.5))  # the variables are float32
    assert (our_shared, our_lr) == (their_shared, their_lr) == expected
    assert our_config == their_config


def test_the_functional_form_refuses_a_variable_it_would_freeze():
    with pytest.raises(TypeError, match="`learning_rate` is a variable.*set_hyperparams"):
        jk.legacy.sgd(learning_rate=jk.Variable(np.float32(0.1)))
