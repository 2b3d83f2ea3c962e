"""Bad arguments raise what TF-Keras raises, in Keras's words."""

from __future__ import annotations

import re

import pytest

import jaxopt_keras as jk
from harness import jax_factory, tf_class

# (family, class, kwargs): TF-Keras rejects each of these.
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
    ("legacy", "Ftrl", dict(initial_accumulator_value=-1.0)),
    ("legacy", "Ftrl", dict(learning_rate_power=0.5)),
    ("legacy", "Ftrl", dict(l1_regularization_strength=-1.0)),
    ("legacy", "Ftrl", dict(l2_shrinkage_regularization_strength=-1.0)),
    ("current", "Adam", dict(foo=1)),
    ("current", "Adam", dict(decay=0.1)),
    ("current", "SGD", dict(gradient_aggregator=None)),
    ("current", "Adam", dict(clipnorm=1.0, global_clipnorm=1.0)),
    ("current", "SGD", dict(momentum=2.0)),
    ("current", "Ftrl", dict(l2_regularization_strength=-1.0)),
    ("current", "Adam", dict(use_ema=True, ema_momentum=1.5)),
    ("current", "Adam", dict(use_ema=True, ema_overwrite_frequency=0.5)),
]


def _first_line(e: BaseException) -> str:
    """The message's first line, with any printed set's items sorted (set order varies)."""
    line = str(e).splitlines()[0]
    return re.sub(r"\{([^{}]*)\}", lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", line)


@pytest.mark.parametrize("family,name,kwargs", BAD, ids=[f"{f}-{n}-{k}" for f, n, k in BAD])
def test_same_exception_as_tf_keras(family, name, kwargs):
    with pytest.raises(Exception) as theirs:
        tf_class(family, name)(**kwargs)
    with pytest.raises(Exception) as ours:
        jax_factory(family, name)(**kwargs)
    assert type(ours.value) is type(theirs.value), (ours.value, theirs.value)
    # Keras's words: our message is TF-Keras's, modulo the name of the suggested class.
    ignore = r"(tf\.keras\.optimizers\.legacy\.\w+|jaxopt_keras\.legacy\.\w+)"
    assert re.sub(ignore, "<legacy>", _first_line(ours.value)) == re.sub(ignore, "<legacy>", _first_line(theirs.value))


def test_legacy_nadam_refuses_schedules_like_tf_keras():
    import tf_keras

    with pytest.raises(ValueError) as theirs:
        tf_keras.optimizers.legacy.Nadam(learning_rate=tf_keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9))
    with pytest.raises(ValueError) as ours:
        jk.legacy.nadam(learning_rate=jk.schedules.ExponentialDecay(0.1, 10, 0.9))
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError):
        jk.legacy.nadam(learning_rate=lambda step: 0.1)


@pytest.mark.parametrize("factory", [jk.adam, jk.sgd, jk.rmsprop])
@pytest.mark.parametrize("arg", ["clipnorm", "clipvalue", "global_clipnorm", "weight_decay"])
def test_current_family_rejects_negative_thresholds(factory, arg):
    """TF-Keras's current family silently ignores these; a negative threshold is
    always a mistake, so we refuse it with the legacy family's message."""
    with pytest.raises(ValueError, match=rf"Expected {arg} >= 0, received: -1"):
        factory(**{arg: -1.0})


def test_functional_clip_transforms_reject_negatives():
    for fn in (jk.clip_by_value, jk.clip_by_norm, jk.clip_by_global_norm):
        with pytest.raises(ValueError, match=">= 0"):
            fn(-1.0)
    with pytest.raises(ValueError, match="reduction"):
        jk.aggregate_gradients("i", reduction="max")
