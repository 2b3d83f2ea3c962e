"""The registry is the one list of optimizers: adding one is a module plus one row.

The toy optimizer below follows ``docs/architecture.md``'s "Adding an
optimizer" steps: slots and math in one module (here, this file), one spec
per family, one registry row; every view of the table picks it up.
"""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from jaxopt_keras import registry
from jaxopt_keras.algorithms.parts import Slot
from jaxopt_keras.algorithms.spec import Spec


# -- step 1: the algorithm module: slots, math, one spec per family -----------
class ToySlots(NamedTuple):
    velocity: Any


def toy_update(g, p, s, c):
    """``velocity = beta * velocity + g ; p = p - lr * velocity``."""
    v = c.beta * s.velocity + g
    return -(c.learning_rate * v), ToySlots(v)


TOY_DEFAULTS = {"learning_rate": 0.1, "beta": 0.5}
CURRENT = Spec(
    family="current",
    defaults=TOY_DEFAULTS,
    float32_hyperparams=("beta",),
    slots_type=ToySlots,
    slots=(Slot("velocity"),),
    slot_order=(("velocity",),),
    update=toy_update,
)
LEGACY = Spec(
    family="legacy",
    defaults=TOY_DEFAULTS,
    float32_hyperparams=("beta",),
    slots_type=ToySlots,
    slots=(Slot("velocity"),),
    slot_order=(("velocity",),),
    update=toy_update,
    time_decay=True,
)


# -- step 2: one registry row --------------------------------------------------
@pytest.fixture
def toy():
    entry = registry.Entry("Toy", "toy", sys.modules[__name__], {"current": CURRENT, "legacy": LEGACY})
    registry.register(entry)
    try:
        yield entry
    finally:
        registry.unregister("Toy")


def _reference(params, grads, lr=0.1, beta=0.5):
    p, v = np.float32(params), np.zeros_like(np.float32(params))
    for g in grads:
        v = np.float32(beta) * v + g
        p = p - np.float32(lr) * v
    return p


def test_the_factories_appear_with_their_signature(toy):
    assert "toy" in dir(jk) and "toy" in dir(jk.legacy)
    sig = inspect.signature(jk.toy)
    # Keras's positional order: TF-Keras >= 2.11 lists the shared arguments before `name`, OptimizerV2 does not.
    assert list(sig.parameters)[:3] == ["learning_rate", "beta", "weight_decay"]
    assert list(sig.parameters).index("name") == list(sig.parameters).index("jit_compile") + 1
    assert list(inspect.signature(jk.legacy.toy).parameters)[:3] == ["learning_rate", "beta", "name"]
    assert sig.parameters["beta"].default == 0.5
    assert "decay" in inspect.signature(jk.legacy.toy).parameters  # the family's shared arguments
    with pytest.raises(TypeError, match="not a valid argument"):
        jk.toy(momentum=0.9)


@pytest.mark.parametrize("family", ["current", "legacy"])
def test_the_factory_computes_the_math(toy, family):
    factory = jk.toy if family == "current" else jk.legacy.toy
    opt = factory(learning_rate=0.1, beta=0.5)
    params = jnp.asarray([1.0, -2.0, 3.0], jnp.float32)
    grads = [np.asarray([0.5, 1.0, -1.0], np.float32) * k for k in (1, 2, 3)]
    state = opt.init(params)
    for g in grads:
        updates, state = opt.update(jnp.asarray(g), state, params)
        params = jk.apply_updates(params, updates)
    np.testing.assert_allclose(np.asarray(params), _reference([1.0, -2.0, 3.0], grads), rtol=1e-6)
    assert jk.get_hyperparams(state)["beta"] == np.float32(0.5)


def test_the_classes_and_configs_appear(toy):
    assert O.Toy is O.experimental.Toy and O.legacy.Toy is not O.Toy
    w = jk.Variable(jnp.ones(2), name="w")
    opt = O.legacy.Toy(learning_rate=0.2)
    opt.apply_gradients([(jnp.ones(2), w)])
    assert [v.name for v in opt.weights] == ["Toy/iter:0", "Toy/w/velocity:0"]
    config = opt.get_config()
    assert config["beta"] == np.float32(0.5) and config["decay"] == 0.0
    back = O.deserialize(json.loads(json.dumps(O.serialize(opt))))
    assert type(back) is O.legacy.Toy and back.get_config() == config
    assert type(O.get("toy")) is O.Toy


def test_unregistered_the_toy_is_gone(toy):
    registry.unregister("Toy")
    with pytest.raises(AttributeError):
        jk.toy  # noqa: B018
    with pytest.raises(ValueError, match="not a known optimizer"):
        O.deserialize({"class_name": "Toy", "config": {}})
    registry.register(toy)  # for the fixture's clean-up


def test_a_name_cannot_be_registered_twice(toy):
    with pytest.raises(ValueError, match="already registered"):
        registry.register(toy)
