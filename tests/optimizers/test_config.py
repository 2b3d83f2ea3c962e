"""``get_config``/``from_config`` round trips of every class, with and without
training, through ``serialize``/``deserialize`` and JSON; a property test over
arguments, clipping and schedules (Hypothesis)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from fuzz_settings import fuzz_settings
from layer_helpers import ALL_CLASSES, FAMILIES, grads_at, ids, make_vars


NON_DEFAULT = {
    "SGD": dict(learning_rate=0.2, momentum=0.7, nesterov=True),
    "Adam": dict(learning_rate=0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-5, amsgrad=True),
    "Adamax": dict(learning_rate=0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-5),
    "Nadam": dict(learning_rate=0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-5),
    "Adagrad": dict(learning_rate=0.02, initial_accumulator_value=0.3, epsilon=1e-5),
    "Adadelta": dict(learning_rate=0.5, rho=0.8, epsilon=1e-5),
    "RMSprop": dict(learning_rate=0.02, rho=0.8, momentum=0.3, epsilon=1e-5, centered=True),
    "Ftrl": dict(
        learning_rate=0.02,
        learning_rate_power=-0.7,
        initial_accumulator_value=0.2,
        l1_regularization_strength=0.01,
        l2_regularization_strength=0.02,
        l2_shrinkage_regularization_strength=0.03,
        beta=0.1,
    ),
}


FAMILY_EXTRA = {
    "legacy": dict(name="opt", clipvalue=0.5, global_clipnorm=2.0, decay=0.01),
    "current": dict(name="opt", weight_decay=0.01, clipnorm=1.0, clipvalue=0.5, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=7),
}


@pytest.mark.parametrize("family,name", ALL_CLASSES, ids=ids)
def test_get_config_from_config_round_trip_for_every_class(family, name):
    cls = getattr(FAMILIES[family], name)
    kwargs = {**NON_DEFAULT[name], **FAMILY_EXTRA[family]}
    if family == "legacy" and name == "Nadam":
        # OptimizerV2's Nadam overwrites `decay` with `schedule_decay` (0.004 by
        # default) and lists that under "decay" in its config.
        kwargs["schedule_decay"] = kwargs.pop("decay")
    opt = cls(**kwargs)
    if "schedule_decay" in kwargs:
        assert opt.get_config()["decay"] == kwargs.pop("schedule_decay")
    config = opt.get_config()
    for key, value in kwargs.items():
        if isinstance(value, float):
            assert config[key] == pytest.approx(value, rel=1e-7), key  # learning rates are float32 variables
        else:
            assert config[key] == value, key
    if family == "current":
        assert config["is_legacy_optimizer"] is False
    rebuilt = cls.from_config(config)
    assert type(rebuilt) is cls and rebuilt.get_config() == config
    # After training (legacy hyperparameters then read back from their float32
    # variables) the round trip still holds.
    opt.apply_gradients(list(zip(grads_at(0), make_vars())))
    config = opt.get_config()
    assert cls.from_config(config).get_config() == config
    # Through serialize/deserialize and JSON, both formats.
    for legacy_format in (False, True):
        blob = json.loads(json.dumps(O.serialize(opt, use_legacy_format=legacy_format)))
        back = O.deserialize(blob)
        assert type(back) is cls and back.get_config() == config


def test_every_registered_class_round_trips_with_its_defaults():
    """Whatever classes the registries hold (new ones included)."""
    from jaxopt_keras.optimizers.classes import classes

    for cls in [*classes("legacy").values(), *classes("current").values()]:
        config = cls().get_config()
        assert cls.from_config(config).get_config() == config, cls
        back = O.deserialize(json.loads(json.dumps(O.serialize(cls()))))
        assert type(back) is cls and back.get_config() == config, cls


names = st.sampled_from(["opt", "Adam", "my_optimizer", "x"])
unit = st.floats(0.0, 1.0)
small_positive = st.floats(1e-6, 1.0)
epsilons = st.floats(1e-10, 1e-2)


def _schedules():
    lr = st.floats(1e-4, 1.0)
    steps = st.integers(1, 10_000)
    return st.one_of(
        st.builds(jk.schedules.ExponentialDecay, lr, steps, st.floats(0.1, 1.0), st.booleans()),
        st.builds(jk.schedules.InverseTimeDecay, lr, steps, st.floats(0.0, 2.0), st.booleans()),
        st.builds(jk.schedules.CosineDecay, lr, steps, alpha=unit),
        st.builds(jk.schedules.PolynomialDecay, lr, steps, end_learning_rate=st.floats(0.0, 1e-4), power=st.floats(0.5, 2.0), cycle=st.booleans()),
        st.integers(0, 3).flatmap(
            lambda n: st.tuples(
                st.lists(st.integers(1, 1000), min_size=n, max_size=n, unique=True).map(sorted),
                st.lists(lr, min_size=n + 1, max_size=n + 1),
            ).map(lambda bv: jk.schedules.PiecewiseConstantDecay(bv[0], bv[1]))
        ),
    )


ALGORITHM_ARGS = {
    "SGD": dict(momentum=unit, nesterov=st.booleans()),
    "Adam": dict(beta_1=unit, beta_2=unit, epsilon=epsilons, amsgrad=st.booleans()),
    "Adamax": dict(beta_1=unit, beta_2=unit, epsilon=epsilons),
    "Nadam": dict(beta_1=unit, beta_2=unit, epsilon=epsilons),
    "Adagrad": dict(initial_accumulator_value=unit, epsilon=epsilons),
    "Adadelta": dict(rho=unit, epsilon=epsilons),
    "RMSprop": dict(rho=unit, momentum=unit, epsilon=epsilons, centered=st.booleans()),
    "Ftrl": dict(
        learning_rate_power=st.floats(-2.0, 0.0),
        initial_accumulator_value=unit,
        l1_regularization_strength=unit,
        l2_regularization_strength=unit,
        l2_shrinkage_regularization_strength=unit,
        beta=unit,
    ),
}


CLIPPING = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"clipnorm": small_positive}),
    st.fixed_dictionaries({"global_clipnorm": small_positive}),
).flatmap(lambda d: st.fixed_dictionaries({k: st.just(v) for k, v in d.items()}, optional={"clipvalue": small_positive}))


FAMILY_ARGS = {
    "legacy": dict(decay=st.floats(0.0, 0.1), name=names),
    "current": dict(
        weight_decay=st.one_of(st.none(), st.floats(0.0, 0.1)),
        use_ema=st.booleans(),
        ema_momentum=unit,
        ema_overwrite_frequency=st.one_of(st.none(), st.integers(1, 100)),
        jit_compile=st.booleans(),
        name=names,
    ),
}


@st.composite
def optimizers(draw):
    family, name = draw(st.sampled_from(ALL_CLASSES))
    kwargs = draw(st.fixed_dictionaries({}, optional={**ALGORITHM_ARGS[name], **FAMILY_ARGS[family]}))
    kwargs.update(draw(CLIPPING))
    if family == "legacy" and name == "Nadam":
        kwargs.pop("decay", None)  # OptimizerV2's Nadam replaces it by schedule_decay
        kwargs["schedule_decay"] = draw(st.floats(0.0, 0.01))
        lr = draw(small_positive)  # OptimizerV2's Nadam refuses schedules
    else:
        lr = draw(st.one_of(small_positive, _schedules()))
    kwargs["learning_rate"] = lr
    # Values whose first step Keras makes NaN (``beta_1=1.0``) are refused by design (test_singular_values).
    singular = getattr(FAMILIES[family], name)._spec.singular
    return family, name, {k: v for k, v in kwargs.items() if k not in singular or v != singular[k]}


@fuzz_settings(150)
@given(optimizers())
def test_config_round_trip_property(case):
    family, name, kwargs = case
    cls = getattr(FAMILIES[family], name)
    opt = cls(**kwargs)
    config = opt.get_config()
    assert cls.from_config(config).get_config() == config
    lr = kwargs["learning_rate"]
    if isinstance(lr, jk.schedules.LearningRateSchedule):
        assert config["learning_rate"]["config"] == lr.get_config()
    else:
        assert config["learning_rate"] == pytest.approx(lr, rel=1e-7)
    for legacy_format in (False, True):
        blob = O.serialize(opt, use_legacy_format=legacy_format)
        for b in (blob, json.loads(json.dumps(blob))):
            back = O.deserialize(b)
            assert type(back) is cls
            assert back.get_config() == config


# ----------------------------------------------------------------------------
# The current family's extras: config, serialization, and the factory built from the config
# ----------------------------------------------------------------------------

EXTRAS = [
    dict(weight_decay=0.01),
    dict(use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=7),
    dict(gradient_accumulation_steps=3),
    dict(loss_scale_factor=64.0),
    dict(weight_decay=0.02, use_ema=True, gradient_accumulation_steps=2, loss_scale_factor=8.0, clipnorm=1.0),
]


@pytest.mark.parametrize("cls", [O.SGD, O.Adam, O.RMSprop, O.Ftrl, O.AdamW, O.Lion, O.Adafactor], ids=lambda c: c.__name__)
@pytest.mark.parametrize("extra", EXTRAS, ids=lambda e: ",".join(e))
def test_every_new_argument_round_trips(cls, extra):
    opt = cls(**extra)
    config = opt.get_config()
    for key, value in extra.items():
        assert config[key] == value
    assert cls.from_config(config).get_config() == config
    back = O.deserialize(O.serialize(opt))
    assert type(back) is cls and back.get_config() == config
    # ... and the functional factory built from the same config computes the same step.
    params = [jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), jnp.ones(3)]
    grads = [jnp.cos(params[0]), jnp.full(3, 0.3)]
    factory = getattr(jk, cls.__name__.lower())
    t = factory(**config)
    state = t.init(params)
    update = jax.jit(t.update)  # as a training step runs it (op by op, 4 steps took seconds)
    variables = [jk.Variable(p) for p in params]
    for _ in range(4):
        u, state = update(grads, state, params)
        params = jk.apply_updates(params, u)
        back.apply_gradients(list(zip(grads, variables)))
    for p, v in zip(params, variables):
        np.testing.assert_array_max_ulp(np.asarray(p), v.numpy(), maxulp=4)
