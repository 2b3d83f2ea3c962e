"""The Keras layer against TF-Keras: configs, serialization, weights lists, continuation.

TF-Keras trains as the oracles run it (``harness.tf_step``): each step in a
``tf.function``, eagerly only where ``tf.function`` changes what TF-Keras
computes (``harness.EAGER_ONLY``: the current Nadam).  A hyperparameter
assigned between steps reaches the traced step through its variable, as it
does in ``model.fit``.  Each training test runs twice, per variable and packed (its
``pack-all`` variant, ``tests/conftest.py``); TF-Keras's side of a case is
the same in both, so it is computed once (``_tf_side``).
"""

from __future__ import annotations

import copy

import jax
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from config_families import FAMILY_RULES
from harness import TOLERANCE, agreement, graph_for, make_problem, tf_step

CASES = [
    ("SGD", dict(learning_rate=0.05)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True, clipnorm=1.0)),
    ("Adam", dict(learning_rate=0.01)),
    ("Adam", dict(learning_rate=0.01, amsgrad=True, global_clipnorm=2.0)),
    ("Adamax", dict(learning_rate=0.01, clipvalue=0.5)),
    ("Nadam", dict(learning_rate=0.01)),
    ("Adagrad", dict(learning_rate=0.1, initial_accumulator_value=0.2)),
    ("Adadelta", dict(learning_rate=1.0, rho=0.9)),
    ("RMSprop", dict(learning_rate=0.01)),
    ("RMSprop", dict(learning_rate=0.01, momentum=0.5, centered=True)),
    ("Ftrl", dict(learning_rate=0.1, l1_regularization_strength=0.01, l2_shrinkage_regularization_strength=0.01)),
]
LEGACY_ONLY = [("Adam", dict(learning_rate=0.01, decay=0.01)), ("Nadam", dict(learning_rate=0.01, schedule_decay=0.01))]
CURRENT_ONLY = [
    ("Adam", dict(learning_rate=0.01, weight_decay=0.05, use_ema=True, ema_overwrite_frequency=5)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9, use_ema=True, ema_momentum=0.9)),
    ("AdamW", dict(learning_rate=0.01, weight_decay=0.05, amsgrad=True)),
    ("Lion", dict(learning_rate=0.001, use_ema=True)),
    ("Adafactor", dict(learning_rate=0.01)),
    ("Adafactor", dict(learning_rate=0.02, relative_step=False, weight_decay=0.01, clipnorm=1.0)),
]


def _all():
    for family in ("legacy", "current"):
        extra = LEGACY_ONLY if family == "legacy" else CURRENT_ONLY
        for name, kwargs in CASES + extra:
            yield pytest.param(family, name, kwargs, id=f"{family}-{name}-{kwargs}")


def _module(family):
    return (tf_keras.optimizers.legacy, O.legacy) if family == "legacy" else (tf_keras.optimizers, O)


def _tf_weights(opt, family):
    ws = opt.weights if family == "legacy" else opt.variables
    return [w.name for w in ws], [w.numpy() for w in ws]


def assert_same_config(ours, theirs):
    """Equal configs, with the same keys in the same order and each value of the same type."""
    assert ours == theirs
    assert list(ours) == list(theirs)
    assert [type(v) for v in ours.values()] == [type(v) for v in theirs.values()], (ours, theirs)


# TF-Keras's side of a training test's case, by (test, family, name, kwargs,
# dtype): both packing variants of a test run in one worker (`--dist
# loadfile`), one after the other.
_TF_SIDE: dict = {}


def _tf_side(key: tuple, run):
    """``run()``'s result, computed once per ``key``."""
    if key not in _TF_SIDE:
        _TF_SIDE[key] = run()
    return _TF_SIDE[key]


def _train(tf_opt, our_opt, params, grads):
    """Both sides stepped on ``grads`` (TF-Keras in a ``tf.function``): their
    variables, and a ``step(grads)`` that steps both once more."""
    tvs = [tf.Variable(p, name=f"layer/w{i}") for i, p in enumerate(params)]
    ovs = [jk.Variable(p, name=f"layer/w{i}") for i, p in enumerate(params)]
    tf_opt_step = tf_step(tf_opt, tvs)

    def step(g):
        tf_opt_step(g)
        our_opt.apply_gradients(list(zip(g, ovs)))

    for g in grads:
        step(g)
    return tvs, ovs, step


@pytest.mark.parametrize("family,name,kwargs", list(_all()))
def test_config_and_serialization_equal_tf_keras(family, name, kwargs):
    tf_mod, our_mod = _module(family)
    theirs, ours = getattr(tf_mod, name)(**kwargs), getattr(our_mod, name)(**kwargs)
    assert ours.get_config() == theirs.get_config()
    assert O.serialize(ours) == tf_keras.optimizers.serialize(theirs)
    assert O.serialize(ours, use_legacy_format=True) == tf_keras.optimizers.serialize(theirs, use_legacy_format=True)
    # TF-Keras's serialization, read by us, gives the same optimizer back.
    rebuilt = O.deserialize(tf_keras.optimizers.serialize(theirs))
    assert type(rebuilt) is type(ours)
    assert rebuilt.get_config() == ours.get_config()
    # ... and ours, read by TF-Keras (whose legacy Nadam.from_config resets
    # the schedule decay to 0.004: we read such configs back correctly; and
    # whose deserialize table has no Lion or Adafactor).
    if not (family == "legacy" and "schedule_decay" in kwargs) and name not in ("Lion", "Adafactor"):
        back = tf_keras.optimizers.deserialize(O.serialize(ours), use_legacy_optimizer=family == "legacy")
        assert back.get_config() == theirs.get_config()


@pytest.mark.parametrize("family,name,kwargs", list(_all()))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_training_and_weights_lists_match_tf_keras(report, packing_mode, family, name, kwargs, dtype):
    tf_mod, our_mod = _module(family)
    with jax.enable_x64(dtype == np.float64):
        params, grads = make_problem(dtype, steps=60)

        def tf_run():
            theirs = getattr(tf_mod, name)(**kwargs)
            tvs = [tf.Variable(p, name=f"layer/w{i}") for i, p in enumerate(params)]
            step = tf_step(theirs, tvs, graph_for(family, name))
            for g in grads:
                step(g)
            return [v.numpy() for v in tvs], _tf_weights(theirs, family), theirs.get_config()

        tf_params, (tf_names, tf_values), tf_config = _tf_side(("train", family, name, repr(kwargs), dtype), tf_run)
        ours = getattr(our_mod, name)(**kwargs)
        ovs = [jk.Variable(p, name=f"layer/w{i}") for i, p in enumerate(params)]
        for g in grads:
            ours.apply_gradients(list(zip(g, ovs)))
        our_values = ours.get_weights()
        assert [w.name for w in ours.weights] == tf_names
        assert [v.shape for v in our_values] == [v.shape for v in tf_values]
        assert [v.dtype for v in our_values] == [v.dtype for v in tf_values]
        assert our_values[0] == tf_values[0] == 60
        r = agreement([v.numpy() for v in ovs], tf_params, params)
        w = agreement(our_values[1:], tf_values[1:], [np.zeros_like(x) for x in tf_values[1:]])
        # Config after training: legacy hyperparameters now read back as float32 (values, their
        # types and the keys' order alike; legacy Ftrl's l2_shrinkage is a plain float attribute).
        assert_same_config(ours.get_config(), tf_config)
    layer = "layer packed" if packing_mode == "pack-all" else "layer"
    report(f"{layer} {family} {name} {kwargs} {dtype.__name__}: params rel {r.relative:.1e} ({r.max_ulps:.0f} ulp), weights rel {w.relative:.1e}")
    if dtype == np.float32 and kwargs.get("ema_overwrite_frequency"):
        # Overwriting with the average every few steps keeps the parameters
        # within ~0.005 of their start, so "relative to the distance moved"
        # magnifies float32 rounding of values near 1.  The bound that means
        # the same thing here (one rounding per step) is in ulps of the value.
        assert r.max_ulps <= len(grads)
    else:
        assert r.relative <= TOLERANCE[dtype]
    assert w.relative <= TOLERANCE[dtype]


@pytest.mark.parametrize("family,name,kwargs", list(_all()))
def test_set_weights_from_tf_then_continue(report, packing_mode, family, name, kwargs):
    """TF-Keras trains 40 steps; its weights move to us; both continue 40 more."""
    dtype = np.float64
    tf_mod, our_mod = _module(family)
    with jax.enable_x64(True):
        params, grads = make_problem(dtype, steps=80)

        def tf_run():
            theirs = getattr(tf_mod, name)(**kwargs)
            tvs = [tf.Variable(p, name=f"w{i}") for i, p in enumerate(params)]
            step = tf_step(theirs, tvs, graph_for(family, name))
            for g in grads[:40]:
                step(g)
            # Port: a config, variables at TF's current values, and the weights list.
            at_40 = tf_keras.optimizers.serialize(theirs), [v.numpy() for v in tvs], _tf_weights(theirs, family)[1]
            for g in grads[40:]:
                step(g)
            return at_40, [v.numpy() for v in tvs]

        (config, values_at_40, weights_at_40), tf_params = _tf_side(("continue", family, name, repr(kwargs)), tf_run)
        ours = O.deserialize(copy.deepcopy(config))
        ovs = [jk.Variable(v, name=f"w{i}") for i, v in enumerate(values_at_40)]
        ours.build(ovs)
        ours.set_weights(weights_at_40)
        for g in grads[40:]:
            ours.apply_gradients(list(zip(g, ovs)))
        r = agreement([v.numpy() for v in ovs], tf_params, params)
    continued = "continue packed" if packing_mode == "pack-all" else "continue"
    report(f"{continued} {family} {name} {kwargs}: rel {r.relative:.1e}")
    assert int(ours.iterations.numpy()) == 80
    assert r.relative <= TOLERANCE[dtype], r


@pytest.mark.parametrize("name,kwargs", [("SGD", {}), ("SGD", {"nesterov": True}), ("RMSprop", {}), ("RMSprop", {"centered": True})])
@pytest.mark.parametrize("first,then", [(0.9, 0.0), (0.0, 0.5)])
def test_legacy_momentum_assigned_later_keeps_the_constructors_slot(name, kwargs, first, then):
    """OptimizerV2 decides in its constructor whether the momentum slot exists;
    assigning ``momentum`` later changes its value only: the slot stays (and
    RMSprop its momentum kernel) at momentum 0, and with no slot the new value
    is ignored.  The same variables and weights list as TF-Keras."""
    with jax.enable_x64(True):
        params, grads = make_problem(np.float64, steps=12)
        theirs = getattr(tf_keras.optimizers.legacy, name)(learning_rate=0.05, momentum=first, **kwargs)
        ours = getattr(O.legacy, name)(learning_rate=0.05, momentum=first, **kwargs)
        tvs, ovs, step = _train(theirs, ours, params, grads[:6])
        theirs.momentum = ours.momentum = then
        for g in grads[6:]:
            step(g)
        tf_names, tf_values = _tf_weights(theirs, "legacy")
        assert [w.name for w in ours.weights] == tf_names
        our_values = ours.get_weights()
        r = agreement([v.numpy() for v in ovs], [v.numpy() for v in tvs], params)
        w = agreement(our_values[1:], tf_values[1:], [np.zeros_like(x) for x in tf_values[1:]])
        assert ours.get_config() == theirs.get_config()
    slots_per_variable = (name == "RMSprop") + (first > 0) + kwargs.get("centered", False)  # rms, momentum, mg
    assert len(tf_values) == 1 + len(params) * slots_per_variable
    assert r.relative <= TOLERANCE[np.float64] and w.relative <= TOLERANCE[np.float64], (r, w)


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("SGD", dict(momentum=0.9)),
        ("Adam", {}),
        ("Adagrad", dict(decay=0.01)),
        ("RMSprop", dict(decay=0.05)),
        ("Nadam", dict(schedule_decay=0.01)),
    ],
)
def test_legacy_decay_assigned_later_changes_neither_step_nor_config(name, kwargs):
    """OptimizerV2's step (``_decayed_lr``, Nadam's momentum schedule) and its
    ``get_config()`` read ``_initial_decay``, the constructor's value: assigning
    the ``decay`` hyper later changes the variable and what reading it
    returns, nothing else.  The same trajectory, weights and config as
    TF-Keras, with and without a decay to begin with."""
    with jax.enable_x64(True):
        params, grads = make_problem(np.float64, steps=12)
        theirs = getattr(tf_keras.optimizers.legacy, name)(learning_rate=0.05, **kwargs)
        ours = getattr(O.legacy, name)(learning_rate=0.05, **kwargs)
        tvs, ovs, step = _train(theirs, ours, params, grads[:6])
        theirs.decay = ours.decay = 0.5
        assert float(np.asarray(ours.decay)) == float(theirs.decay.numpy()) == np.float32(0.5)
        for g in grads[6:]:
            step(g)
        r = agreement([v.numpy() for v in ovs], [v.numpy() for v in tvs], params)
        w = agreement(ours.get_weights()[1:], theirs.get_weights()[1:], [np.zeros_like(x) for x in theirs.get_weights()[1:]])
        assert ours.get_config() == theirs.get_config()
    assert r.relative <= TOLERANCE[np.float64] and w.relative <= TOLERANCE[np.float64], (r, w)


@pytest.mark.parametrize("name", ["Adagrad", "Adadelta", "RMSprop"])
def test_legacy_set_weights_without_iteration_count(name):
    """OptimizerV2's Adagrad/Adadelta/RMSprop accept a list missing ``iter`` (it becomes 0)."""
    p = np.ones(3, np.float32)
    theirs, ours = getattr(tf_keras.optimizers.legacy, name)(), getattr(O.legacy, name)()
    tv, ov = tf.Variable(p), jk.Variable(p)
    theirs.apply_gradients([(tf.ones(3), tv)])
    ours.apply_gradients([(np.ones(3, np.float32), ov)])
    values = [np.full(3, 0.5, np.float32)] * (len(theirs.get_weights()) - 1)
    theirs.set_weights(values)
    ours.set_weights(values)
    assert int(ours.iterations.numpy()) == int(theirs.iterations.numpy()) == 0
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_legacy_adam_accepts_a_list_with_vhat():
    p = np.ones(2, np.float32)
    theirs, ours = tf_keras.optimizers.legacy.Adam(), O.legacy.Adam()
    tv, ov = tf.Variable(p), jk.Variable(p)
    theirs.apply_gradients([(tf.ones(2), tv)])
    ours.apply_gradients([(np.ones(2, np.float32), ov)])
    values = [np.array(7, np.int64)] + [np.full(2, 0.25, np.float32)] * 3  # iter, m, v, vhat
    theirs.set_weights(values)
    ours.set_weights(values)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("family", ["legacy", "current"])
def test_bad_set_weights_raise_like_tf_and_change_nothing(family):
    tf_mod, our_mod = _module(family)
    p = np.ones((2, 2), np.float32)
    theirs, ours = tf_mod.Adam(), our_mod.Adam()
    tv, ov = tf.Variable(p), jk.Variable(p)
    theirs.apply_gradients([(tf.ones((2, 2)), tv)])
    ours.apply_gradients([(np.ones((2, 2), np.float32), ov)])
    before = ours.get_weights()
    good = [np.array(3, np.int64), np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32)]
    bad_shape = good[:2] + [np.zeros((3,), np.float32)]
    with pytest.raises(ValueError) as t_err:
        theirs.set_weights(bad_shape)
    with pytest.raises(ValueError) as o_err:
        ours.set_weights(bad_shape)
    if family == "legacy":
        assert str(o_err.value) == str(t_err.value)
    else:  # TF names the variable by an internal id; the rest of the message is the same
        assert "not compatible with provided weight shape (3,)" in str(o_err.value)
    with pytest.raises(ValueError, match="weight list of length 2, but the optimizer was expecting 3"):
        ours.set_weights(good[:2])
    for a, b in zip(before, ours.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_current_set_weights_before_build_is_refused_like_tf():
    with pytest.raises(ValueError) as theirs:
        tf_keras.optimizers.Adam().set_weights([np.array(0)])
    with pytest.raises(ValueError) as ours:
        O.Adam().set_weights([np.array(0)])
    assert str(ours.value) == str(theirs.value)


def test_keras3_and_tf1_configs():
    import keras

    k3 = keras.optimizers.serialize(keras.optimizers.Adam(learning_rate=0.02, beta_1=0.8, clipnorm=1.0))
    opt = O.deserialize(k3)
    assert type(opt) is O.keras3.Adam  # a Keras 3 config reads into the Keras 3 family
    assert float(opt.learning_rate.numpy()) == np.float32(0.02)
    assert opt.beta_1 == 0.8 and opt.clipnorm == 1.0
    sched = keras.optimizers.schedules.CosineDecay(0.1, 100)
    opt = O.deserialize(keras.optimizers.serialize(keras.optimizers.SGD(learning_rate=sched, momentum=0.9)))
    assert isinstance(opt.get_config()["learning_rate"], dict)
    tf1 = {"class_name": "Adadelta", "config": {"lr": 0.5, "rho": 0.9, "epsilon": 1e-6, "decay": 0.01}}
    opt = O.deserialize(tf1)  # from_config renames `lr` silently, as OptimizerV2 does
    assert type(opt) is O.legacy.Adadelta
    reference = tf_keras.optimizers.deserialize(dict(tf1, config=dict(tf1["config"])), use_legacy_optimizer=True)
    assert opt.get_config() == reference.get_config()
    for cname in ("adam", "ADAM", "Adam", "rmsprop", "RMSProp"):
        assert isinstance(O.get(cname), O.Optimizer)
    assert type(O.get("adam", use_legacy_optimizer=True)) is O.legacy.Adam
    instance = O.SGD()
    assert O.get(instance) is instance


@pytest.mark.parametrize("family", ["legacy", "current"])
def test_loss_scale_optimizer_config_matches_tf_keras(family):
    tf_mod, our_mod = _module(family)
    theirs = tf_keras.mixed_precision.LossScaleOptimizer(tf_mod.Adam(learning_rate=0.01))
    ours = jk.mixed_precision.LossScaleOptimizer(our_mod.Adam(learning_rate=0.01))
    assert ours.get_config() == theirs.get_config()
    assert O.serialize(ours) == tf_keras.optimizers.serialize(theirs)
    back = O.deserialize(tf_keras.optimizers.serialize(theirs))
    assert isinstance(back, jk.mixed_precision.LossScaleOptimizer)
    assert back.get_config() == theirs.get_config()
    fixed = tf_keras.mixed_precision.LossScaleOptimizer(tf_mod.SGD(), dynamic=False, initial_scale=128.0)
    ours_fixed = O.deserialize(tf_keras.optimizers.serialize(fixed))
    assert ours_fixed.get_config() == fixed.get_config()


@pytest.mark.parametrize("family", ["legacy", "current"])
def test_whole_float_growth_steps_as_tf_keras(family):
    """dynamic_growth_steps=2.0 or np.float32(2.0) (a config written with floats):
    TF-Keras's int(growth_steps), the same steps, scale and config as with 2."""
    tf_mod, our_mod = (tf_keras.optimizers.legacy, O.legacy) if family == "legacy" else (tf_keras.optimizers, O)
    for steps in (2.0, np.float32(2.0)):
        theirs = tf_keras.mixed_precision.LossScaleOptimizer(tf_mod.SGD(learning_rate=0.5), initial_scale=4.0, dynamic_growth_steps=steps)
        ours = jk.mixed_precision.LossScaleOptimizer(our_mod.SGD(learning_rate=0.5), initial_scale=4.0, dynamic_growth_steps=steps)
        tv, ov = tf.Variable([1.0, 2.0]), jk.Variable(np.array([1.0, 2.0], np.float32))
        for i in range(6):
            grads = np.array([4.0, np.inf if i == 1 else -4.0], np.float32)
            theirs.apply_gradients([(tf.constant(grads), tv)])
            ours.apply_gradients([(grads, ov)])
            assert (ov.numpy().tolist(), float(np.asarray(ours.loss_scale))) == (tv.numpy().tolist(), float(theirs.loss_scale))
        assert ours.get_config() == theirs.get_config() and type(ours.dynamic_growth_steps) is type(theirs.dynamic_growth_steps)


@pytest.mark.parametrize("config,use_legacy,expected", FAMILY_RULES)
def test_the_family_a_config_is_built_in_is_tf_kerass(config, use_legacy, expected):
    """Where TF-Keras builds the config, it builds it in our expected class's family;
    where it refuses it (a TypeError: `is_legacy_optimizer: True` reaches the legacy
    constructor, or a key of another family), ours reads the keys instead."""
    kwargs = {} if use_legacy is None else {"use_legacy_optimizer": use_legacy}
    assert type(O.deserialize(copy.deepcopy(config), **kwargs)) is expected
    try:
        theirs = tf_keras.optimizers.deserialize(copy.deepcopy(config), **kwargs)
    except TypeError as e:
        assert "Unexpected keyword argument" in str(e)
        return
    tf_legacy = isinstance(theirs, tf_keras.optimizers.legacy.Optimizer)
    assert tf_legacy == issubclass(expected, O.legacy.Optimizer) and type(theirs).__name__ == expected.__name__


def test_a_custom_prefix_is_the_current_class_as_in_tf_keras():
    # get("Custom>Adam", use_legacy_optimizer=True) and a legacy key: TF-Keras's registry gives its current class.
    assert type(tf_keras.optimizers.get("Custom>Adam", use_legacy_optimizer=True)) is tf_keras.optimizers.Adam
    assert type(O.get("Custom>Adam", use_legacy_optimizer=True)) is O.Adam
    config = {"class_name": "Custom>SGD", "config": {"learning_rate": 0.1, "decay": 0.01}}
    with pytest.raises(ValueError, match="decay is deprecated in the new TF-Keras optimizer") as theirs:
        tf_keras.optimizers.deserialize(copy.deepcopy(config))
    with pytest.raises(ValueError) as ours:
        O.deserialize(copy.deepcopy(config))
    assert str(ours.value).startswith(str(theirs.value).split(",")[0])


@pytest.mark.packing_once("OptimizerV2 numbers unnamed optimizers per process")
def test_no_name_as_tf_keras():
    """name=None (or ""): OptimizerV2 numbers a snake-case name of its class per process;
    the current Optimizer keeps it as given and scopes its slots under "optimizer/"."""

    def names(legacy_base, current_base, variable, deserialize):
        legacy = type("NoName7Adam", (legacy_base,), {})
        current = type("NoName7Current", (current_base,), {})
        out = [[legacy(name=n).get_config()["name"] for n in (None, None, "", "x", None)]]
        out.append([current(name=n).get_config()["name"] for n in (None, "", "x")] + [current(name=None).name])
        config = {"class_name": "NoName7Adam", "config": {"name": None, "learning_rate": 0.1}}
        out.append(deserialize(config, custom_objects={"NoName7Adam": legacy}).get_config()["name"])
        for opt in (current(name=None), legacy(name=None)):
            v = variable()
            opt.apply_gradients([(v * 0 + 1, v)])
            out.append([w.name for w in opt.variables()] if callable(opt.variables) else [w.name for w in opt.variables])
        return out

    theirs = names(tf_keras.optimizers.legacy.Adam, tf_keras.optimizers.Adam, lambda: tf.Variable([1.0, 2.0], name="kernel"), tf_keras.optimizers.deserialize)
    ours = names(O.legacy.Adam, O.Adam, lambda: jk.Variable(np.array([1.0, 2.0], np.float32), name="kernel"), O.deserialize)
    assert ours == theirs
    assert theirs[0] == ["no_name7_adam", "no_name7_adam_1", "no_name7_adam_2", "x", "no_name7_adam_3"]


@pytest.mark.packing_once("OptimizerV2 numbers unnamed optimizers per process")
def test_no_name_after_failed_constructions_as_tf_keras():
    """OptimizerV2 numbers the name after its keyword checks and before the class's own:
    a construction refused by the class leaves its number taken, an unknown keyword does not."""

    def names(base):
        cls = type("NoName8SGD", (base,), {})
        for bad in (dict(momentum=2.0), dict(foo=1), dict(momentum=-1.0)):
            with pytest.raises((TypeError, ValueError)):
                cls(name=None, **bad)
        return [cls(name=None).get_config()["name"], cls(name=None).get_config()["name"]]

    assert names(O.legacy.SGD) == names(tf_keras.optimizers.legacy.SGD) == ["no_name8sgd_2", "no_name8sgd_3"]


def _custom_objects_outcome(keras, config, custom):
    """"custom", "builtin <legacy?>", or "raises"."""
    try:
        built = keras.deserialize(copy.deepcopy(config), custom_objects=custom)
    except (TypeError, ValueError):
        return "raises"
    return "custom" if type(built).__name__ == "Mine" else f"builtin {isinstance(built, keras.legacy.Optimizer)}"


CUSTOM_FORMS = {
    "no module": {"class_name": "Adam", "config": {"learning_rate": 0.1}},
    "lowercase": {"class_name": "adam", "config": {"learning_rate": 0.1}},
    "module, registered None": {"module": "keras.optimizers", "class_name": "Adam", "config": {"learning_rate": 0.1, "is_legacy_optimizer": False}, "registered_name": None},
    "module, registered Adam": {"module": "keras.optimizers", "class_name": "Adam", "config": {"learning_rate": 0.1, "is_legacy_optimizer": False}, "registered_name": "Adam"},
    "registered Adam": {"class_name": "Adam", "config": {"learning_rate": 0.1, "is_legacy_optimizer": False}, "registered_name": "Adam"},
    "module None": {"module": None, "class_name": "Adam", "config": {"learning_rate": 0.1}, "registered_name": None},
    "Custom>": {"class_name": "Custom>Adam", "config": {"learning_rate": 0.1}},
}


@pytest.mark.parametrize("form", list(CUSTOM_FORMS))
@pytest.mark.parametrize("key", ["Adam", "adam", "Custom>Adam"])
def test_custom_objects_and_a_built_in_name_as_tf_keras(form, key):
    """TF-Keras lowercases a built-in name before it reads custom_objects: {"Adam": Mine}
    leaves "Adam" the built-in Adam, {"adam": Mine} replaces it; a registered_name is
    looked up as it is; "Custom>Adam" is its registered current Adam."""
    theirs = _custom_objects_outcome(tf_keras.optimizers, CUSTOM_FORMS[form], {key: type("Mine", (tf_keras.optimizers.Adam,), {})})
    ours = _custom_objects_outcome(O, CUSTOM_FORMS[form], {key: type("Mine", (O.Adam,), {})})
    if (form, key) == ("module, registered Adam", "adam"):
        # TF-Keras imports `module` and finds "Adam" in it; Keras 3 and ours refuse it.
        assert (theirs, ours) == ("builtin False", "raises")
    else:
        assert ours == theirs


TF23_INNER = {"class_name": "Adam", "config": {"name": "Adam", "learning_rate": 0.001, "decay": 0.0, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False}}
TF23_LOSS_SCALES = {
    "dynamic": {"class_name": "DynamicLossScale", "config": {"initial_loss_scale": 1024.0, "increment_period": 100, "multiplier": 2.0}},
    "dynamic_defaults": {"class_name": "DynamicLossScale", "config": {}},
    "fixed": {"class_name": "FixedLossScale", "config": {"loss_scale_value": 128.0}},
    "multiplier_3": {"class_name": "DynamicLossScale", "config": {"initial_loss_scale": 8.0, "increment_period": 5, "multiplier": 3.0}},
    "other_class": {"class_name": "MyLossScale", "config": {}},
    "a_string": "dynamic",
}


@pytest.mark.parametrize("loss_scale", list(TF23_LOSS_SCALES.values()), ids=list(TF23_LOSS_SCALES))
@pytest.mark.parametrize("use_legacy_optimizer", [None, True, False])
def test_a_tf23_loss_scale_optimizer_config_deserializes_as_in_tf_keras(loss_scale, use_legacy_optimizer):
    """TF 2.3 and before saved a LossScale object and `optimizer`; TF-Keras converts
    them (the inner optimizer always legacy), or refuses with these words."""
    def config():
        return {"class_name": "LossScaleOptimizer", "config": {"optimizer": dict(TF23_INNER), "loss_scale": loss_scale}}

    kwargs = {} if use_legacy_optimizer is None else {"use_legacy_optimizer": use_legacy_optimizer}
    try:
        theirs = tf_keras.optimizers.deserialize(config(), **kwargs)
    except ValueError as e:
        with pytest.raises(ValueError, match=str(e).split(".")[0].split(" Got ")[0]):
            O.deserialize(config(), **kwargs)
        return
    ours = O.deserialize(config(), **kwargs)
    assert type(ours.inner_optimizer) is O.legacy.Adam
    assert ours.get_config() == theirs.get_config()
    assert O.serialize(ours) == tf_keras.optimizers.serialize(theirs)


@pytest.mark.parametrize("family", ["legacy", "current"])
def test_loss_scale_optimizer_trajectory_matches_tf_keras(family):
    """Overflowing steps are skipped and halve the scale; growth doubles it."""
    tf_mod, our_mod = _module(family)
    theirs = tf_keras.mixed_precision.LossScaleOptimizer(tf_mod.SGD(learning_rate=0.1), dynamic_growth_steps=3)
    ours = jk.mixed_precision.LossScaleOptimizer(our_mod.SGD(learning_rate=0.1), dynamic_growth_steps=3)
    p = np.ones(4, np.float32)
    tv, ov = tf.Variable(p), jk.Variable(p)
    rng = np.random.default_rng(0)
    for step in range(20):
        g = rng.standard_normal(4).astype(np.float32)
        if step in (2, 3, 9):
            g[1] = np.inf if step != 3 else np.nan
        before = ov.numpy()
        theirs.apply_gradients([(tf.constant(g), tv)])
        ours.apply_gradients([(g, ov)])
        if step in (2, 3, 9):
            np.testing.assert_array_equal(ov.numpy(), before)  # skipped
        # float32 SGD: XLA's fused multiply-add may round once where TF rounds twice.
        np.testing.assert_array_max_ulp(ov.numpy(), tv.numpy(), maxulp=step + 1)
        assert float(ours.loss_scale.numpy()) == float(theirs.loss_scale.numpy())
        assert int(ours.dynamic_counter.numpy()) == int(theirs.dynamic_counter.numpy())
        assert int(ours.iterations.numpy()) == int(theirs.iterations.numpy())
    assert float(ours.loss_scale.numpy()) != 2.0**15  # it moved
