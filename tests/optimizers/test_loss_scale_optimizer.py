"""``LossScaleOptimizer`` (``optimizers/loss_scale.py``), the stateful wrapper of
either family: float16 training with overflowing steps skipped and the scale
following Keras's dynamic rule (``helpers.keras_loss_scale_rule``), its
config, its constructor's errors.

The rule as a transformation is ``tests/transforms/test_loss_scale.py``.
"""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_keras as jk
from helpers import keras_loss_scale_rule
from jaxopt_keras import optimizers as O
from jaxopt_keras.mixed_precision import LossScaleOptimizer
from layer_helpers import FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_scale_optimizer_float16_overflow_skip_and_growth(family):
    """float16 variables, a loss whose scaled gradients overflow: Keras's dynamic
    loss scaling, simulated step by step in NumPy float16 arithmetic."""
    v0 = np.array([2.0, -1.0, 0.5], np.float16)
    var = jk.Variable(v0, name="h")
    opt = LossScaleOptimizer(FAMILIES[family].SGD(learning_rate=0.1), dynamic_growth_steps=2)
    assert float(opt.loss_scale.numpy()) == 2.0**15 and opt.dynamic_growth_steps == 2

    expected_v, scale, counter = v0.copy(), 2.0**15, 0
    history = []
    for k in range(12):
        before = var.numpy()
        loss = opt.minimize(lambda: jnp.sum(var.value**2), [var])
        # NumPy: the scaled loss's gradient 2 * v * float16(scale) overflows or not.
        with np.errstate(over="ignore", invalid="ignore"):
            scaled_grads = np.float16(2) * expected_v * np.float16(scale)
        finite = bool(np.all(np.isfinite(scaled_grads)))
        history.append(finite)
        if finite:
            unscaled = scaled_grads * np.float16(np.float32(1) / np.float32(scale))
            expected_v = (expected_v.astype(np.float32) - np.float32(0.1) * unscaled.astype(np.float32)).astype(np.float16)
            np.testing.assert_allclose(var.numpy(), expected_v, rtol=2e-3)
            expected_v = var.numpy()  # follow our rounding so later steps compare like with like
        else:
            np.testing.assert_array_equal(var.numpy(), before)  # skipped
        if finite:  # minimize returns the unscaled loss before the step
            assert float(loss) == pytest.approx(float(np.sum(before.astype(np.float32) ** 2)), rel=2e-3)
        scale, counter = keras_loss_scale_rule(scale, counter, finite, 2)
        assert float(opt.loss_scale.numpy()) == scale, k
        assert int(opt.dynamic_counter.numpy()) == counter, k
        assert int(opt.iterations.numpy()) == k + 1  # skipped steps count
    assert var.dtype == np.float16
    # The first two steps overflow (4 * 2**15 and 4 * 2**14 exceed float16's max), then
    # training recovers; the scale grows back until it overflows again.
    assert history[:3] == [False, False, True]
    assert True in history[3:] and False in history[3:]
    assert float(np.abs(var.numpy()).max()) < 2.0


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_scale_optimizer_config_round_trip(family):
    inner = FAMILIES[family].Adam(learning_rate=0.01, beta_1=0.8)
    for opt in (
        LossScaleOptimizer(inner),
        LossScaleOptimizer(FAMILIES[family].SGD(), dynamic=False, initial_scale=128.0),
        LossScaleOptimizer(FAMILIES[family].RMSprop(), initial_scale=64, dynamic_growth_steps=10),
    ):
        config = opt.get_config()
        assert set(config) == {"inner_optimizer", "dynamic", "initial_scale", "dynamic_growth_steps"}
        back = LossScaleOptimizer.from_config(config)
        assert back.get_config() == config
        assert type(back.inner_optimizer) is type(opt.inner_optimizer)
        blob = json.loads(json.dumps(O.serialize(opt)))
        again = O.deserialize(blob)
        assert isinstance(again, LossScaleOptimizer) and again.get_config() == config
    assert LossScaleOptimizer(O.SGD()).get_config()["initial_scale"] == 2.0**15
    assert LossScaleOptimizer(O.SGD()).get_config()["dynamic_growth_steps"] == 2000


def test_loss_scale_optimizer_constructor_errors():
    with pytest.raises(TypeError, match="must be an instance of Optimizer"):
        LossScaleOptimizer(optax.sgd(0.1))
    inner = O.SGD()
    wrapped = LossScaleOptimizer(inner)
    with pytest.raises(TypeError, match="cannot wrap another LossScaleOptimizer"):
        LossScaleOptimizer(wrapped)
    with pytest.raises(ValueError, match="already wrapped"):
        LossScaleOptimizer(inner)
    with pytest.raises(ValueError, match='"initial_scale" must be specified'):
        LossScaleOptimizer(O.SGD(), dynamic=False)
    with pytest.raises(ValueError, match='"dynamic_growth_steps" must be None'):
        LossScaleOptimizer(O.SGD(), dynamic=False, initial_scale=2.0, dynamic_growth_steps=3)
    with pytest.raises(TypeError, match='"dynamic"'):
        LossScaleOptimizer(O.SGD(), dynamic=1)


BAD_SCALES = [
    (dict(initial_scale=0.0), '"initial_scale" must be positive and finite'),
    (dict(dynamic=False, initial_scale=-1.0), '"initial_scale" must be positive and finite'),
    (dict(initial_scale=float("nan")), '"initial_scale" must be positive and finite'),
    (dict(initial_scale=float("inf")), '"initial_scale" must be positive and finite'),
    (dict(dynamic_growth_steps=0), '"dynamic_growth_steps" must be a positive integer'),
    (dict(dynamic_growth_steps=2.5), '"dynamic_growth_steps" must be a positive integer'),
]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kwargs,message", BAD_SCALES, ids=[str(k) for k, _ in BAD_SCALES])
def test_a_scale_keras_accepts_and_then_misuses_is_refused_changing_nothing(family, kwargs, message):
    """TF-Keras accepts these and then skips every step (a zero or NaN scale),
    flips the gradients' sign (a negative one) or never grows (0 steps); we
    refuse them, as the functional form does, and the inner optimizer stays
    free to be wrapped."""
    inner = FAMILIES[family].SGD()
    with pytest.raises(ValueError, match=message):
        LossScaleOptimizer(inner, **kwargs)
    with pytest.raises(ValueError, match=message):
        jk.mixed_precision.loss_scale_optimizer(jk.sgd(), **kwargs)
    assert LossScaleOptimizer(inner).inner_optimizer is inner  # not marked as wrapped
    keras3 = {k: v for k, v in kwargs.items() if k != "dynamic"}  # Keras 3 has no fixed scale
    with pytest.raises(ValueError, match=message):
        O.keras3.LossScaleOptimizer(O.keras3.SGD(), **keras3)


def test_tf_keras_integral_float_growth_steps_are_taken():
    assert LossScaleOptimizer(O.SGD(), dynamic_growth_steps=3.0).dynamic_growth_steps == 3
