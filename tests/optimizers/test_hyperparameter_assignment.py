"""Setting a hyperparameter on the Keras layer (``opt.beta_1 = value``) follows the
constructor's rules and errors (``tests/bad_arguments.py``), and a refused value
changes nothing: not the state, not the config, not the attribute."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import bad_arguments as B
from jaxopt_keras import optimizers as O

CLASSES = {"legacy": O.legacy, "current": O, "keras3": O.keras3}


def _snapshot(opt):
    return jax.tree_util.tree_map(np.asarray, opt.state), opt.get_config()


@pytest.mark.parametrize("family", list(CLASSES))
@pytest.mark.parametrize("kind", [k for k in B.KINDS if k not in ("negative",)])
def test_assignment_raises_what_the_constructor_raises_and_changes_nothing(family, kind):
    opt = CLASSES[family].Adam(learning_rate=0.1)
    before = _snapshot(opt)
    value = B.KINDS[kind][0]
    with pytest.raises((TypeError, ValueError)) as assigned:
        opt.beta_1 = value
    with pytest.raises((TypeError, ValueError)) as constructed:
        CLASSES[family].Adam(learning_rate=0.1, beta_1=value)
    assert type(assigned.value) is type(constructed.value)
    assert "beta_1" in str(assigned.value)
    after = _snapshot(opt)
    assert after[1] == before[1]
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a, b: np.array_equal(a, b), after[0], before[0]))


def test_a_good_value_still_lands():
    opt = O.legacy.Adam(learning_rate=0.1)
    opt.beta_1 = 0.5
    assert float(opt.beta_1.numpy()) == 0.5 and opt.get_config()["beta_1"] == np.float32(0.5)


# Keras reads these attributes at each step (Keras 3 eagerly; TF-Keras at
# its trace), so `opt.weight_decay = 0.5` on an optimizer built without
# weight decay changes the next steps there.  Ours stored the value and kept
# stepping without it (the step and get_config unchanged).  Refused now.
FIXED = [
    (O.keras3.Adam, {}, "weight_decay", 0.5),
    (O.keras3.Adam, {}, "ema_momentum", 0.5),
    (O.keras3.Adam, {"use_ema": True}, "ema_overwrite_frequency", 3),
    (O.keras3.Adam, {}, "gradient_accumulation_steps", 2),
    (O.keras3.Muon, {}, "exclude_layers", ["bias"]),
    (O.Adam, {}, "weight_decay", 0.1),
    (O.Adam, {}, "use_ema", True),
    (O.legacy.Adam, {}, "slot_dtype", "float32"),
]


@pytest.mark.parametrize("cls,kwargs,name,value", FIXED, ids=lambda x: getattr(x, "__module__", "").rsplit(".", 1)[-1] + "." + x.__name__ if isinstance(x, type) else str(x))
def test_an_argument_fixed_at_construction_is_refused_not_ignored(cls, kwargs, name, value):
    import jaxopt_keras as jk

    v = [jk.Variable(np.ones((3, 2), np.float32), name="dense/kernel"), jk.Variable(np.ones(2, np.float32), name="dense/bias")]
    opt = cls(**kwargs)
    opt.apply_gradients(zip([np.full((3, 2), 0.5, np.float32), np.ones(2, np.float32)], v))
    before, old = _snapshot(opt), getattr(opt, name)
    with pytest.raises(AttributeError, match=f"`{name}` of {cls.__name__} is fixed when the optimizer is constructed"):
        setattr(opt, name, value)
    assert getattr(opt, name) == old
    after = _snapshot(opt)
    jax.tree_util.tree_map(np.testing.assert_array_equal, before[0], after[0])
    assert after[1] == before[1]
    if name == "weight_decay":  # the way out the message gives: the same weights list, decayed steps
        new = cls.from_config({**opt.get_config(), name: value})
        new.build(v)
        new.set_weights(opt.get_weights())
        assert new.get_config()[name] == value


def test_jit_compile_is_stored_as_given():
    """It has no effect in JAX (every step is jitted), so assigning it is harmless."""
    opt = O.Adam()
    opt.jit_compile = False
    assert opt.jit_compile is False
