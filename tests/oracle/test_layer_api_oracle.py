"""Layer methods ported code calls, against TF-Keras on the same steps.

* the current family's ``learning_rate`` with a schedule reads the rate the
  last step used (TF-Keras's ``_current_learning_rate``), ``schedule(0)``
  before the first step; ours read the next step's rate;
* OptimizerV2's ``_decayed_lr(dtype)``, which learning-rate logging
  callbacks call (schedule, callable and ``decay``);
* ``_create_all_weights(var_list)``, the legacy way to create the state
  before ``set_weights``;
* the current family's ``save_own_variables``/``load_own_variables`` (the
  ``.keras`` format's store): a TF-Keras store loads into ours and the two
  continue alike; a store of another length is skipped with Keras's warning;
* a ``LossScaleOptimizer`` built by its first step names the slots as
  TF-Keras's (``m/w0:0``: the wrapper builds outside the inner's name scope).
"""

from __future__ import annotations

import logging
import warnings

import jax
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from harness import TOLERANCE, agreement

STEPS = 6


def _variables(kind):
    if kind == "tf":
        return [tf.Variable(np.ones((2, 3), np.float32), name="kernel"), tf.Variable(np.zeros(3, np.float32), name="bias")]
    return [jk.Variable(np.ones((2, 3), np.float32), name="dense/kernel"), jk.Variable(np.zeros(3, np.float32), name="dense/bias")]


def _grads(t):
    rng = np.random.default_rng(t)
    return [rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)]


SCHEDULES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=1, decay_rate=0.5)),
    ("PiecewiseConstantDecay", dict(boundaries=[0, 1, 2], values=[0.4, 0.3, 0.2, 0.1])),
]


@pytest.mark.parametrize("schedule,config", SCHEDULES, ids=[s for s, _ in SCHEDULES])
def test_current_learning_rate_reads_the_rate_of_the_last_step(schedule, config):
    theirs = tf_keras.optimizers.SGD(getattr(tf_keras.optimizers.schedules, schedule)(**config))
    ours = O.SGD(getattr(jk.schedules, schedule)(**config))
    tv, ov = _variables("tf"), _variables("ours")
    read = lambda opt: float(np.asarray(opt.learning_rate))  # noqa: E731
    assert read(ours) == read(theirs)
    for t in range(STEPS):
        theirs.apply_gradients(zip(_grads(t), tv))
        ours.apply_gradients(zip(_grads(t), ov))
        assert read(ours) == read(theirs), f"after step {t + 1}"
        assert float(np.asarray(ours.lr)) == read(theirs)


LEGACY_RATES = [
    dict(learning_rate=0.1, decay=0.05),
    dict(learning_rate="schedule", decay=0.05),
    dict(learning_rate="callable"),
]


def _rate(kind, value):
    if value == "schedule":
        module = tf_keras.optimizers.schedules if kind == "tf" else jk.schedules
        return module.ExponentialDecay(0.1, 2, 0.7)
    if value == "callable":
        return lambda: 0.03
    return value


@pytest.mark.parametrize("kwargs", LEGACY_RATES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_legacy_decayed_lr_equals_tf_kerass(kwargs, dtype):
    theirs = tf_keras.optimizers.legacy.SGD(**dict(kwargs, learning_rate=_rate("tf", kwargs["learning_rate"])))
    tv = _variables("tf")
    with jax.enable_x64(dtype == np.float64):
        ours = O.legacy.SGD(**dict(kwargs, learning_rate=_rate("ours", kwargs["learning_rate"])))
        ov = _variables("ours")
        for t in range(STEPS):
            theirs.apply_gradients(zip(_grads(t), tv))
            ours.apply_gradients(zip(_grads(t), ov))
            expected = np.asarray(theirs._decayed_lr(tf.as_dtype(dtype)).numpy())
            got = np.asarray(ours._decayed_lr(dtype))
            assert got.dtype == expected.dtype and got == expected, f"after step {t + 1}: {got!r} != {expected!r}"


def _assert_same_run(ours, theirs, params0):
    """Within the float32 oracle tolerance (``harness.TOLERANCE``: 300 eps of the distance moved)."""
    a = agreement([v.numpy() for v in ours], [v.numpy() for v in theirs], params0)
    assert a.moved > 0.01 and a.relative <= TOLERANCE[np.float32], a


def test_legacy_create_all_weights_then_set_weights_continues_tf_kerass_run():
    theirs = tf_keras.optimizers.legacy.Adam(0.01)
    tv = _variables("tf")
    for t in range(3):
        theirs.apply_gradients(zip(_grads(t), tv))
    ours = O.legacy.Adam(0.01)
    ov = [jk.Variable(v.numpy(), name=n) for v, n in zip(tv, ("dense/kernel", "dense/bias"))]
    params0 = [v.numpy() for v in tv]
    ours._create_all_weights(ov)
    ours.set_weights(theirs.get_weights())
    for t in range(3, STEPS):
        theirs.apply_gradients(zip(_grads(t), tv))
        ours.apply_gradients(zip(_grads(t), ov))
    _assert_same_run(ov, tv, params0)


def test_current_load_own_variables_takes_tf_kerass_store():
    theirs = tf_keras.optimizers.Adam(0.01)
    tv = _variables("tf")
    for t in range(3):
        theirs.apply_gradients(zip(_grads(t), tv))
    store: dict = {}
    theirs.save_own_variables(store)
    ours = O.Adam(0.01)
    ov = [jk.Variable(v.numpy(), name=n) for v, n in zip(tv, ("dense/kernel", "dense/bias"))]
    ours.build(ov)
    ours.load_own_variables(store)
    mine: dict = {}
    ours.save_own_variables(mine)
    assert sorted(mine) == sorted(store)
    for key in store:
        np.testing.assert_array_equal(np.asarray(mine[key]), np.asarray(store[key]))
    params0 = [v.numpy() for v in tv]
    for t in range(3, STEPS):
        theirs.apply_gradients(zip(_grads(t), tv))
        ours.apply_gradients(zip(_grads(t), ov))
    _assert_same_run(ov, tv, params0)


def test_a_store_of_another_length_is_skipped_with_keras_warning():
    ours = O.Adam(0.01)
    ov = _variables("ours")
    ours.build(ov)
    before = [np.array(w) for w in ours.get_weights()]
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer 'Adam', because it has 5 variables"):
        ours.load_own_variables({"0": np.int64(7)})
    for a, b in zip(before, ours.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Before the build: keras3_probes.py compares Keras 3's words, test_variables_before_the_build_are_tf_kerass TF-Keras's.


def _warning(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in caught]


def test_variables_before_the_build_are_tf_kerass(caplog):
    """TF-Keras's current optimizers (and their loss-scale wrapper) create the step counter at
    construction, OptimizerV2 its ``iter`` at the first step: before the build the variables
    are ``['iteration:0']`` and ``[]``, and a store of another length is skipped with the same count."""
    from jaxopt_keras import mixed_precision

    pairs = [
        (tf_keras.optimizers.Adam(0.1, use_ema=True), O.Adam(0.1, use_ema=True)),
        (tf_keras.optimizers.SGD(0.1), O.SGD(0.1)),
        (tf_keras.mixed_precision.LossScaleOptimizer(tf_keras.optimizers.Adam(0.1)), mixed_precision.LossScaleOptimizer(O.Adam(0.1))),
        (tf_keras.optimizers.legacy.Adam(0.1), O.legacy.Adam(0.1)),
    ]
    for theirs, ours in pairs:
        listed = theirs.variables() if callable(theirs.variables) else theirs.variables
        assert [v.name for v in ours.variables] == [v.name for v in listed], type(theirs)
        assert [np.asarray(v).tolist() for v in ours.variables] == [v.numpy().tolist() for v in listed]
    theirs, ours = pairs[0]
    store = {"0": np.int64(7), "1": np.int64(3)}
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        theirs.load_own_variables(store)  # TF-Keras logs it; we warn with the same words
    assert _warning(lambda: ours.load_own_variables(store)) == [r.getMessage() for r in caplog.records] != []


NUMPY_HYPERPARAMETERS = [
    dict(learning_rate=np.float64(0.01), beta_1=np.float32(0.9), beta_2=np.float64(0.99), epsilon=np.float64(1e-7)),
    dict(learning_rate=np.float64(0.02), decay=np.float64(1e-3)),
]


@pytest.mark.parametrize("family", ["legacy", "current"])
@pytest.mark.parametrize("kwargs", NUMPY_HYPERPARAMETERS, ids=["betas", "decay"])
def test_numpy_hyperparameters_config_and_dtype_are_tf_kerass(family, kwargs):
    # OptimizerV2's hyper variables take the value's dtype (float64 for an
    # np.float64) and get_config() reports them; the current family's
    # learning rate is a float32 variable, its other arguments as given.
    if family == "current":
        kwargs = {k: v for k, v in kwargs.items() if k != "decay"}
    classes = (tf_keras.optimizers.legacy.Adam, O.legacy.Adam) if family == "legacy" else (tf_keras.optimizers.Adam, O.Adam)
    with jax.enable_x64(True):
        theirs, ours = classes[0](**kwargs), classes[1](**kwargs)
        tv = tf.Variable(np.ones(3), name="w")
        ov = jk.Variable(np.ones(3), name="w")

        def config(opt):
            return {k: (type(v), v) for k, v in opt.get_config().items()}

        assert config(ours) == config(theirs)
        for t in range(3):
            g = np.full(3, 0.1 * (t + 1))
            theirs.apply_gradients([(tf.constant(g), tv)])
            ours.apply_gradients([(g, ov)])
        assert config(ours) == config(theirs)
        assert np.dtype(ours.learning_rate.dtype) == theirs.learning_rate.dtype.as_numpy_dtype
        np.testing.assert_array_equal(np.asarray(ov.value), tv.numpy())


@pytest.mark.parametrize("built", [False, True], ids=["unbuilt", "built"])
def test_legacy_apply_gradients_of_nothing_is_tf_kerass(built):
    # OptimizerV2 creates its weights (`iter`) for the empty list, then returns
    # `tf.no_op()`: None eagerly.  Either way the next step is the same.
    theirs, ours = tf_keras.optimizers.legacy.Adam(0.1), O.legacy.Adam(0.1)
    tv, ov = _variables("tf"), _variables("ours")
    if built:
        theirs.apply_gradients(zip(_grads(0), tv))
        ours.apply_gradients(zip(_grads(0), ov))
    for empty in ([], zip([], [])):
        assert theirs.apply_gradients(empty) is None
        assert ours.apply_gradients(empty) is None
        assert [w.name for w in ours.weights] == [w.name.replace("kernel", "dense/kernel").replace("bias", "dense/bias") for w in theirs.weights]
        assert [np.asarray(w).tolist() for w in ours.get_weights()] == [w.tolist() for w in theirs.get_weights()]
    theirs.apply_gradients(zip(_grads(1), tv))
    ours.apply_gradients(zip(_grads(1), ov))
    for a, b in zip(ov, tv):
        np.testing.assert_array_equal(np.asarray(a.value), b.numpy())
    assert [w.name for w in ours.weights][0] == "Adam/iter:0"


@pytest.mark.parametrize("value", [lambda: 0.5, lambda step: 0.5], ids=["no argument", "of the step"])
@pytest.mark.parametrize("built", [False, True], ids=["unbuilt", "after a step"])
def test_current_learning_rate_assigned_a_callable_is_refused_as_tf_keras(value, built):
    """TF-Keras assigns it to its learning-rate variable and refuses it; ours took it as a schedule
    of the step, and every later step then failed (a callable of no argument) while TF-Keras's went on."""
    outcomes = []
    for opt, variables in ((tf_keras.optimizers.SGD(0.1), _variables("tf")), (O.SGD(0.1), _variables("ours"))):
        if built:
            opt.apply_gradients(zip(_grads(0), variables))
        with pytest.raises(ValueError) as e:
            opt.learning_rate = value
        outcomes.append(str(e.value).split(" at 0x")[0])
        opt.apply_gradients(zip(_grads(1), variables))  # the rate is unchanged and the optimizer works
        outcomes.append(float(np.asarray(opt.learning_rate)))
    assert outcomes[:2] == outcomes[2:]


@pytest.mark.parametrize(
    "family, wrap",
    [("legacy", "loss scale"), ("current", "loss scale"), ("current", "ema")],
)
def test_periods_beyond_the_int32_counter_step_as_tf_keras(family, wrap):
    """TF-Keras counts in int64: ``dynamic_growth_steps`` or ``ema_overwrite_frequency`` of 2**31
    and more are accepted and never reached.  Ours were accepted too, then every step raised
    OverflowError (the period, a constant of the step, did not fit the int32 counter)."""
    period = 2**31
    outcomes, scales = [], []
    for side in ("tf", "ours"):
        module = (tf_keras.optimizers.legacy if family == "legacy" else tf_keras.optimizers) if side == "tf" else (O.legacy if family == "legacy" else O)
        if wrap == "ema":
            opt = module.SGD(0.1, use_ema=True, ema_overwrite_frequency=period)
        else:
            lso = tf_keras.mixed_precision.LossScaleOptimizer if side == "tf" else jk.mixed_precision.LossScaleOptimizer
            opt = lso(module.SGD(0.1), dynamic_growth_steps=period)
        variables = _variables(side)
        for t in range(STEPS):
            opt.apply_gradients(zip(_grads(t), variables))
        scales.append(float(np.asarray(opt.loss_scale)) if wrap != "ema" else None)
        outcomes.append([v.numpy() for v in variables])
    assert scales[0] == scales[1]  # 2**15 (TF-Keras's initial scale), never grown
    a = agreement(outcomes[1], outcomes[0], [np.ones((2, 3), np.float32), np.zeros(3, np.float32)])
    assert a.moved > 0.01 and a.relative <= TOLERANCE[np.float32], a


def _names(opt):
    variables = opt.variables() if callable(opt.variables) else opt.variables
    return [v.name for v in variables]


@pytest.mark.parametrize("family", ["legacy", "current"])
def test_assigning_name_is_tf_kerass_plain_attribute(family):
    """``opt.name = ...`` before and after the build: the current family's
    config reports the new name and its slots carry the name at the build;
    OptimizerV2's config and weights keep the constructor's ``_name``."""
    module = tf_keras.optimizers.legacy if family == "legacy" else tf_keras.optimizers
    ours_module = O.legacy if family == "legacy" else O
    theirs, ours = module.Adam(0.1), ours_module.Adam(0.1)
    tv = [tf.Variable(np.ones(3, np.float32), name="w")]
    ov = [jk.Variable(np.ones(3, np.float32), name="w")]
    for opt in (theirs, ours):
        opt.name = "before"
    theirs.apply_gradients(zip(_grads(0)[1:], tv))
    ours.apply_gradients(zip(_grads(0)[1:], ov))
    assert _names(ours) == _names(theirs)
    for value in ("after", 5, None):
        for opt in (theirs, ours):
            opt.name = value
        assert ours.name == theirs.name == value
        assert ours.get_config()["name"] == theirs.get_config()["name"]
        assert _names(ours) == _names(theirs)
    theirs.apply_gradients(zip(_grads(1)[1:], tv))
    ours.apply_gradients(zip(_grads(1)[1:], ov))
    np.testing.assert_allclose(ov[0].numpy(), tv[0].numpy(), rtol=TOLERANCE[np.float32])


@pytest.mark.parametrize("family", ["legacy", "current"])
def test_assigning_iterations_is_tf_kerass_rule(family):
    """``opt.iterations = variable`` before the build starts the count there
    (TF-Keras takes the variable as its counter); after the build it is
    TF-Keras's ``RuntimeError``, and nothing changes.  (An int before the
    build leaves TF-Keras without a counter to increment, so the comparison
    gives it a variable.)"""
    module = tf_keras.optimizers.legacy if family == "legacy" else tf_keras.optimizers
    ours_module = O.legacy if family == "legacy" else O
    theirs, ours = module.Adam(0.1), ours_module.Adam(0.1)
    theirs.iterations = tf.Variable(5, dtype=tf.int64)
    ours.iterations = jk.Variable(np.int64(5))
    tv, ov = _variables("tf"), _variables("ours")
    for t in range(3):
        theirs.apply_gradients(zip(_grads(t), tv))
        ours.apply_gradients(zip(_grads(t), ov))
    errors = []
    for opt in (theirs, ours):
        with pytest.raises(RuntimeError) as e:
            opt.iterations = 2
        errors.append(str(e.value))
    assert errors[0] == errors[1]
    assert int(ours.iterations) == int(theirs.iterations) == 8
    for a, b in zip(ov, tv):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=TOLERANCE[np.float32])


@pytest.mark.parametrize("family", ["legacy", "current"])
def test_loss_scale_optimizer_built_by_its_first_step_names_slots_as_tf_keras(family):
    """TF-Keras's ``LossScaleOptimizerV3.apply_gradients`` builds the inner
    optimizer itself, for every variable given (a ``None`` gradient's too),
    outside the inner optimizer's name scope: its slots are ``m/w0:0``, not
    the ``Adam/m/w0:0`` of a bare optimizer's first step.  Ours named them
    as the bare optimizer.  The legacy wrapper leaves the naming to the inner
    optimizer.  Names, values and parameters after steps with a skipped
    (infinite) one and a variable without a gradient at first."""
    names, weights, params = [], [], []
    for side in ("tf", "ours"):
        module = (tf_keras.optimizers.legacy if family == "legacy" else tf_keras.optimizers) if side == "tf" else (O.legacy if family == "legacy" else O)
        lso = tf_keras.mixed_precision.LossScaleOptimizer if side == "tf" else jk.mixed_precision.LossScaleOptimizer
        opt = lso(module.Adam(0.1), initial_scale=8.0, dynamic_growth_steps=2)
        variables = [(tf.Variable if side == "tf" else jk.Variable)(np.ones(s, np.float32), name=f"w{i}") for i, s in enumerate([(2, 3), (3,)])]
        for t in range(STEPS):
            grads = [g * 8 for g in _grads(t)]
            if t == 2:
                grads[0] = np.full_like(grads[0], np.inf)
            opt.apply_gradients([(None if t < 2 and i == 1 else g, v) for i, (g, v) in enumerate(zip(grads, variables))])
        names.append(_names(opt))
        weights.append([np.asarray(w.numpy()) for w in (opt.weights if family == "legacy" else opt.variables) if np.issubdtype(np.asarray(w.numpy()).dtype, np.floating)])
        params.append([v.numpy() for v in variables])
    assert names[1] == names[0]
    a = agreement(weights[1] + params[1], weights[0] + params[0], [np.zeros_like(w) for w in weights[0]] + params[0])
    assert a.relative <= TOLERANCE[np.float32], a
