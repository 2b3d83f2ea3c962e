"""The current family's extras: arguments round-trip, and the transforms' own rules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O

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
    variables = [jk.Variable(p) for p in params]
    for _ in range(4):
        u, state = t.update(grads, state, params)
        params = jk.apply_updates(params, u)
        back.apply_gradients(list(zip(grads, variables)))
    for p, v in zip(params, variables):
        np.testing.assert_array_max_ulp(np.asarray(p), v.numpy(), maxulp=4)


def test_argument_errors():
    with pytest.raises(ValueError, match="must be an integer >= 2"):
        jk.adam(gradient_accumulation_steps=1)
    with pytest.raises(ValueError, match="must be an integer >= 2"):
        O.SGD(gradient_accumulation_steps=2.5)
    with pytest.raises(ValueError, match="loss_scale_factor"):
        jk.sgd(loss_scale_factor=0.0)
    with pytest.raises(ValueError, match="Missing value of `weight_decay`"):
        O.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="degenerates to SignSGD"):
        jk.lion(beta_1=0.0)
    with pytest.raises(ValueError, match="ema_momentum"):
        jk.ema(1.5)
    with pytest.raises(ValueError, match="reads the parameter values"):
        t = jk.adam(weight_decay=0.1)
        t.update([jnp.ones(2)], t.init([jnp.ones(2)]))
    with pytest.raises(TypeError, match="Unexpected keyword argument"):
        jk.legacy.adam(weight_decay=0.1)  # OptimizerV2 has no weight decay


def test_decay_mask_and_ema_params():
    params = {"w": jnp.ones(3), "b": jnp.ones(3)}
    grads = {"w": jnp.zeros(3), "b": jnp.zeros(3)}
    t = jk.chain(jk.sgd(learning_rate=0.5), jk.decoupled_weight_decay(0.1, learning_rate=0.5, mask={"w": True, "b": False}))
    u, _ = t.update(grads, t.init(params), params)
    np.testing.assert_allclose(np.asarray(u["w"]), -np.float32(0.1) * np.float32(0.5), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(u["b"]), 0.0)
    with pytest.raises(ValueError, match="holds no moving average"):
        jk.ema_params(t.init(params))


def test_accumulation_applies_the_mean_every_n_calls():
    """Independent check: SGD over the mean of 3 gradients == one SGD step on that mean."""
    t = jk.sgd(learning_rate=0.1, gradient_accumulation_steps=3)
    params = [jnp.zeros(2)]
    state = t.init(params)
    gs = [jnp.asarray([1.0, 2.0]), jnp.asarray([3.0, 5.0]), jnp.asarray([2.0, -1.0])]
    for i, g in enumerate(gs):
        u, state = t.update([g], state, params)
        params = jk.apply_updates(params, u)
        if i < 2:
            np.testing.assert_array_equal(np.asarray(params[0]), 0.0)
    mean = (np.float32([1, 2]) + np.float32([3, 5]) + np.float32([2, -1])) / np.float32(3)
    np.testing.assert_allclose(np.asarray(params[0]), -np.float32(0.1) * mean, rtol=1e-6)
    acc = [x for x in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, jk.transforms.AccumulationState))
           if isinstance(x, jk.transforms.AccumulationState)][0]
    np.testing.assert_array_equal(np.asarray(acc.accumulators[0]), 0.0)
    assert int(acc.iterations) == 3 and int(acc.inner.iterations) == 1
