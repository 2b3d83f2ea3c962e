"""Shared fixtures of the Keras-layer tests (``tests/optimizers/``): the classes
of both families, two small variables and a deterministic gradient sequence.

Imported by name (``from layer_helpers import ...``): pytest puts a test
file's folder first on ``sys.path`` (see ``tests/conftest.py``).
"""

from __future__ import annotations

import jax
import numpy as np

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O


ALGORITHMS = ("SGD", "Adam", "Adamax", "Nadam", "Adagrad", "Adadelta", "RMSprop", "Ftrl")
FAMILIES = {"legacy": O.legacy, "current": O}
ALL_CLASSES = [(f, n) for f in FAMILIES for n in ALGORITHMS]
ids = [f"{f}.{n}" for f, n in ALL_CLASSES]


def make_vars(seed: int = 0):
    rng = np.random.default_rng(seed)
    return [
        jk.Variable(rng.standard_normal((3, 1)).astype(np.float32), name="dense/kernel"),
        jk.Variable(rng.standard_normal(1).astype(np.float32), name="dense/bias"),
    ]


def grads_at(k: int):
    """A deterministic gradient sequence for the two variables of make_vars."""
    return [np.full((3, 1), 0.3 * np.sin(k + 1.0), np.float32) + np.float32(0.05) * k, np.asarray([np.cos(k)], np.float32)]


def values(var_list):
    return [v.numpy() for v in var_list]


def with_hyperparams_of(state, other):
    """``state`` with every Hyperparams node taken from ``other`` (same layout)."""
    is_hp = lambda x: isinstance(x, jk.Hyperparams)  # noqa: E731
    return jax.tree_util.tree_map(lambda s, o: o if is_hp(s) else s, state, other, is_leaf=is_hp)


def compiled_programs(opt) -> int:
    """How many programs the optimizer's step has compiled: per variable, and
    packed (``jaxopt_keras.optimizers.packed``; these tests' ``pack-all``
    variants pack every step where it can be)."""
    return opt._step._cache_size() + opt._packed_step._cache_size()
