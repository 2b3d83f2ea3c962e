"""Constructor arguments (``keras/arguments.py``): the errors Keras raises, and
the classes raising exactly what the (oracle-checked) factories raise."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O

FAMILIES = {"legacy": O.legacy, "current": O}

BAD = [
    ("legacy", "Adam", dict(foo=1)),
    ("legacy", "SGD", dict(clipnorm=-1.0)),
    ("legacy", "SGD", dict(clipvalue=-0.5)),
    ("legacy", "SGD", dict(global_clipnorm=-2.0)),
    ("legacy", "Adam", dict(decay=-0.1)),
    ("legacy", "Adam", dict(clipnorm=1.0, global_clipnorm=1.0)),
    ("legacy", "SGD", dict(momentum=1.5)),
    ("legacy", "RMSprop", dict(momentum=-0.1)),
    ("legacy", "Adagrad", dict(initial_accumulator_value=-1.0)),
    ("legacy", "Ftrl", dict(learning_rate_power=0.5)),
    ("legacy", "Ftrl", dict(l1_regularization_strength=-1.0)),
    ("legacy", "Nadam", dict(learning_rate=jk.schedules.ExponentialDecay(0.1, 10, 0.9))),
    ("current", "Adam", dict(foo=1)),
    ("current", "Adam", dict(decay=0.1)),
    ("current", "SGD", dict(gradient_aggregator=None)),
    ("current", "SGD", dict(gradient_transformers=[])),
    ("current", "Adam", dict(clipnorm=1.0, global_clipnorm=1.0)),
    ("current", "Adam", dict(clipnorm=-1.0)),
    ("current", "Adam", dict(weight_decay=-0.1)),
    ("current", "SGD", dict(momentum=2.0)),
    ("current", "Ftrl", dict(l2_regularization_strength=-1.0)),
    ("current", "Adam", dict(use_ema=True, ema_momentum=1.5)),
    ("current", "Adam", dict(use_ema=True, ema_overwrite_frequency=0.5)),
]


@pytest.mark.parametrize("family,name,kwargs", BAD, ids=[f"{f}-{n}-{sorted(k)}" for f, n, k in BAD])
def test_classes_raise_what_the_factories_raise(family, name, kwargs):
    factory = getattr(jk.legacy if family == "legacy" else jk, name.lower())
    with pytest.raises(Exception) as from_factory:
        factory(**kwargs)
    with pytest.raises(Exception) as from_class:
        getattr(FAMILIES[family], name)(**kwargs)
    assert type(from_class.value) is type(from_factory.value)
    assert isinstance(from_class.value, (TypeError, ValueError))
    assert str(from_class.value) == str(from_factory.value)


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


@pytest.mark.parametrize("family", ["legacy", "current", "keras3"])
def test_slot_dtype_is_a_floating_dtype_or_none(family):
    """``slot_dtype`` is ours (Keras has none): a floating dtype passes, anything else
    (not a dtype, an integer or bool dtype) is a TypeError naming it, from the class
    and the factory alike."""
    module = {"legacy": jk.legacy, "current": jk, "keras3": jk.keras3}[family]
    classes = {"legacy": O.legacy, "current": O, "keras3": O.keras3}[family]
    for good in (None, "float16", jnp.bfloat16, "float64"):
        module.adam(slot_dtype=good)
        classes.Adam(slot_dtype=good)
    for bad in ("int32", bool, "abc", 3, [1]):
        for make in (module.adam, classes.Adam):
            with pytest.raises(TypeError, match="`slot_dtype` must be a floating-point dtype"):
                make(slot_dtype=bad)


@pytest.mark.parametrize("family", ["legacy", "current", "keras3"])
def test_name_is_a_string(family):
    """TF-Keras fails in its first step (``tf.name_scope``), Keras 3 at construction; we refuse
    it at construction in every family, the factory as the class."""
    module = {"legacy": jk.legacy, "current": jk, "keras3": jk.keras3}[family]
    classes = {"legacy": O.legacy, "current": O, "keras3": O.keras3}[family]
    assert classes.SGD(name="mine").name == "mine"
    module.sgd(name="mine")
    for make in (module.sgd, classes.SGD):
        with pytest.raises(ValueError, match="`name` must be a string"):
            make(name=3)
    with pytest.raises(ValueError, match="cannot contain character `/`"):
        jk.keras3.sgd(name="a/b")


def test_muon_exclude_layers_are_strings():
    """Keras 3 fails in its first step (``re.search(3, path)``); we refuse it at construction."""
    jk.keras3.muon(exclude_layers=["dense", "embed"])
    O.keras3.Muon(exclude_layers=("dense",))
    for bad in (3, [1], ["dense", None]):
        for make in (jk.keras3.muon, O.keras3.Muon):
            with pytest.raises(TypeError, match="`exclude_layers` must be a list of strings"):
                make(exclude_layers=bad)
