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
