"""Our factories take TF-Keras's constructor arguments, with TF-Keras's defaults,
and our classes take them by position in TF-Keras's order.

For every optimizer of both families, each named parameter of the TF-Keras
class's ``__init__`` is a parameter of our factory with the same default.
Ours takes only the extras listed here: what OptimizerV2 reads from its
``**kwargs`` (``decay``, the clipping arguments, Nadam's ``schedule_decay``),
Keras 3's additions to the current family, and our opt-in ``slot_dtype``.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from harness import jax_factory, tf_class

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O

NAMES = ("SGD", "Adam", "Adamax", "Nadam", "Adagrad", "Adadelta", "RMSprop", "Ftrl")
CASES = [("legacy", n) for n in NAMES] + [("current", n) for n in NAMES + ("AdamW", "Lion", "Adafactor")]

EXTRAS = {
    "legacy": {"decay", "clipnorm", "clipvalue", "global_clipnorm", "slot_dtype"},
    "current": {"loss_scale_factor", "gradient_accumulation_steps", "slot_dtype"},
}


def _named(fn) -> dict:
    return {
        k: p.default
        for k, p in inspect.signature(fn).parameters.items()
        if k != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


@pytest.mark.parametrize("family,name", CASES, ids=[f"{f}-{n}" for f, n in CASES])
def test_factory_takes_tf_keras_arguments_and_defaults(family, name):
    theirs = _named(tf_class(family, name).__init__)
    ours = _named(jax_factory(family, name))
    for key, default in theirs.items():
        assert key in ours, f"TF-Keras's {key!r} is missing"
        assert ours[key] == default and type(ours[key]) is type(default), (key, ours[key], default)
    extras = EXTRAS[family] | ({"schedule_decay"} if (family, name) == ("legacy", "Nadam") else set())
    assert ours.keys() - theirs.keys() == extras


def _positional(fn) -> list[str]:
    return [k for k, p in inspect.signature(fn).parameters.items() if k != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]


@pytest.mark.parametrize("family,name", CASES, ids=[f"{f}-{n}" for f, n in CASES])
def test_the_class_takes_tf_kerass_positional_arguments_in_order(family, name):
    """``Adam(0.01, 0.9, 0.999, 1e-7, False, 0.004)`` is weight decay in the current
    family (``name`` comes last there), the name in the legacy one."""
    ours = getattr(O.legacy if family == "legacy" else O, name)
    theirs = tf_class(family, name)
    assert _positional(ours) == _positional(theirs.__init__)
    values = [p.default for k, p in inspect.signature(theirs.__init__).parameters.items() if k != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
    values[-1 if family == "current" else _positional(ours).index("name")] = "by_position"
    assert ours(*values).get_config() == theirs(*values).get_config()


@pytest.mark.parametrize("family,name", CASES, ids=[f"{f}-{n}" for f, n in CASES])
def test_apply_gradients_takes_tf_kerass_arguments(family, name):
    """``apply_gradients``'s parameters are TF-Keras's, in order and with its defaults: a third
    positional argument is the aggregation flag, and the legacy family refuses an unknown
    keyword, as OptimizerV2 does (the current family's ``**kwargs`` takes any)."""
    ours, theirs = getattr(O.legacy if family == "legacy" else O, name), tf_class(family, name)
    ours_sig, theirs_sig = inspect.signature(ours.apply_gradients), inspect.signature(theirs.apply_gradients)
    assert [(k, p.kind, p.default) for k, p in ours_sig.parameters.items()] == [
        (k, p.kind, p.default) for k, p in theirs_sig.parameters.items()
    ]
    opt = ours(learning_rate=0.1)
    v = jk.Variable(np.ones(2, np.float32))
    opt.apply_gradients([(np.ones(2, np.float32), v)], "step", family == "legacy")
    assert int(opt.iterations) == 1
    if family == "legacy":
        with pytest.raises(TypeError, match="unexpected keyword argument 'skip_gradients_aggregation'"):
            opt.apply_gradients([(np.ones(2, np.float32), v)], skip_gradients_aggregation=True)
        assert int(opt.iterations) == 1
