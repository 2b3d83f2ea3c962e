"""Random bad constructor arguments and hyperparameter assignments, every family.

Each bad value is refused with a TypeError or ValueError naming the argument;
the class and the functional factory raise the same; assigning it to a built
optimizer's hyperparameter (``opt.beta_1 = value``) raises what the
constructor raises and changes nothing; ``set_hyperparams`` refuses it and
leaves the state alone.  Where ``tests/bad_arguments.json`` has Keras's answer
for the kind of value, the error type is the one ``docs/errors.md`` lists.
"""

from __future__ import annotations

import math
import warnings

import jax
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import bad_arguments as B
import jaxopt_keras as jk
from fuzz_settings import fuzz_settings
from jaxopt_keras import optimizers as O
from jaxopt_keras import registry
from jaxopt_keras.keras.numbers import NULLABLE, numeric_arguments

CLASSES = {"legacy": O.legacy, "current": O, "keras3": O.keras3}
FACTORIES = {"legacy": jk.legacy, "current": jk, "keras3": jk.keras3}
ARGS = [
    (family, e.class_name, arg)
    for family in CLASSES
    for e in registry.entries(family)
    for arg in numeric_arguments(e.specs[family])
    if arg not in ("ema_overwrite_frequency", "gradient_accumulation_steps", "loss_scale_factor")
]

# (kind in the recorded table or None, value): values no argument takes.
BAD = st.one_of(
    st.just(("none", None)),
    st.text(max_size=5).filter(lambda s: not _parses(s)).map(lambda s: ("string", s)),
    st.floats(-1e3, 1e3).map(lambda x: ("numeric_string", repr(x))),
    st.sampled_from([("nan", math.nan), ("inf", math.inf), (None, -math.inf)]),
    st.lists(st.floats(0, 1), min_size=1, max_size=3).map(lambda xs: ("list", xs)),
    st.booleans().map(lambda b: (None, b)),
    st.lists(st.floats(0, 1), min_size=2, max_size=3).map(lambda xs: (None, np.asarray(xs))),
    st.sampled_from([(None, {}), (None, object()), (None, 1j), (None, b"0.1")]),
)


def _parses(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _kwargs(arg, value):
    return {**B.CONTEXT.get(arg, {}), arg: value}


def _nullable(family, name, arg):
    return arg in NULLABLE[family] or arg in registry.find(name, family).specs[family].nullable


def _raises(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            make()
        except (TypeError, ValueError) as e:
            return e
    raise AssertionError("accepted")


@fuzz_settings(50)
@given(st.sampled_from(ARGS), BAD)
def test_bad_constructor_arguments(where, bad):
    family, name, arg = where
    kind, value = bad
    assume(not (value is None and _nullable(family, name, arg)))
    factory = getattr(FACTORIES[family], registry.find(name, family).function)
    from_class = _raises(lambda: getattr(CLASSES[family], name)(**_kwargs(arg, value)))
    from_factory = _raises(lambda: factory(**_kwargs(arg, value)))
    assert type(from_class) is type(from_factory) and str(from_class) == str(from_factory)
    assert arg in str(from_class)
    key = B.case_key(family, name, arg, kind) if kind else None
    snapshot = B.load_snapshot()
    if key in snapshot:
        # the type the table lists for this kind of value (Keras's, or a documented difference)
        assert type(from_class).__name__ == B.our_construction(family, name, arg, kind)


def _state(opt):
    return jax.tree_util.tree_map(np.asarray, opt.state), opt.get_config()


HYPER_ARGS = [(f, n, a) for f, n, a in ARGS if a in registry.find(n, f).specs[f].hyperparam_names() and a != "learning_rate"]


@fuzz_settings(20)
@given(st.sampled_from(HYPER_ARGS), BAD)
def test_bad_assignments_raise_what_the_constructor_raises_and_change_nothing(where, bad):
    family, name, arg = where
    _, value = bad
    assume(not (value is None and _nullable(family, name, arg)))
    opt = getattr(CLASSES[family], name)()
    var = jk.Variable(np.ones((2, 3), np.float32), name="dense/kernel")
    opt.apply_gradients([(np.full((2, 3), 0.5, np.float32), var)])
    before, weights = _state(opt), var.numpy().copy()
    constructed = _raises(lambda: getattr(CLASSES[family], name)(**{arg: value}))
    with pytest.raises(type(constructed)) as assigned:
        setattr(opt, arg, value)
    assert arg in str(assigned.value)
    after = _state(opt)
    assert after[1] == before[1]
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, after[0], before[0]))
    opt.apply_gradients([(np.full((2, 3), 0.5, np.float32), var)])  # still steps, finitely
    assert np.all(np.isfinite(var.numpy())) and not np.array_equal(var.numpy(), weights)


@fuzz_settings(25)
@given(st.sampled_from(HYPER_ARGS), BAD)
def test_set_hyperparams_refuses_bad_values(where, bad):
    family, name, arg = where
    _, value = bad
    tx = getattr(FACTORIES[family], registry.find(name, family).function)()
    state = tx.init([jax.numpy.ones((2, 3))])
    before = jax.tree_util.tree_map(np.asarray, state)
    with pytest.raises((TypeError, ValueError), match=arg):
        jk.set_hyperparams(state, **{arg: value})
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, state, before))
