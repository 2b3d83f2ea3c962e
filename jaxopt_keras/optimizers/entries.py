"""Each entry of a Keras optimizer's weights list as a reader and a writer of the state.

The weights list (:mod:`jaxopt_keras.optimizers.weights`) gives each entry as
``(name, read(state), write(state, value) -> state)``; here are those readers
and writers, per kind of entry: the step count, a slot, a per-optimizer scalar,
a hyperparameter, an entry of a per-variable list (the EMA's averages, the
gradient accumulators).  Pure functions of the state: the object API and the
file readers and writers (:mod:`jaxopt_keras.io`) both call them.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.algorithms.driver import OptimizerState
from jaxopt_keras.core.state import checked_count, find_state, map_clocks, replace_state
from jaxopt_keras.transforms.accumulation import AccumulationState


def shared(fn: Callable) -> Callable:
    """Marks a reader or writer of an entry the state holds once, not per
    variable (the step count, a scalar, a hyperparameter).  Its views read and
    write the state as held, packed or not (:mod:`.packed`), so reading
    ``iterations`` between packed steps does not unpack the slots."""
    fn.shared = True
    return fn


@shared
def read_iterations(state: Any) -> jax.Array:
    """Keras's ``iterations``: calls so far (Keras 3 counts accumulation calls too)."""
    acc = find_state(state, AccumulationState, required=False)
    return (acc if acc is not None else find_state(state, OptimizerState)).iterations


def with_iterations(state: Any, value: Any, steps: int | None = None) -> Any:
    """``state`` with every step clock set from Keras's ``iterations = value``.

    The optimizer step counts updates, which under gradient accumulation over
    ``steps`` calls is ``value // steps``; the accumulation and EMA clocks
    count calls.  A value the counter cannot hold raises ``ValueError`` (:func:`~jaxopt_keras.core.state.checked_count`):
    nothing wraps.  Each clock gets a fresh buffer: the step donates the state, and one buffer may not be donated twice.
    """
    value = checked_count(value, find_state(state, OptimizerState).iterations.dtype)

    def clock(x):
        v = value // steps if (steps and isinstance(x, OptimizerState)) else value
        return jnp.array(v, x.iterations.dtype, copy=True)

    return map_clocks(state, clock)


def is_count(value: Any) -> bool:
    """An integer entry: the step count (the only one a weights list has)."""
    return np.issubdtype(np.dtype(value.dtype), np.integer)


def slot_entry(slot: str, i: int) -> tuple[Callable, Callable]:
    """Reader and writer of slot ``slot`` of the ``i``-th variable."""

    def read(state):
        return getattr(find_state(state, OptimizerState).slots, slot)[i]

    def write(state, value):
        def change(core):
            tree = list(getattr(core.slots, slot))
            tree[i] = value
            return core._replace(slots=core.slots._replace(**{slot: tree}))

        return replace_state(state, OptimizerState, change)

    return read, write


def scalar_entry(name: str) -> tuple[Callable, Callable]:
    """Reader and writer of the per-optimizer scalar ``name``."""

    @shared
    def read(state):
        return find_state(state, OptimizerState).scalars[name]

    @shared
    def write(state, value):
        return replace_state(state, OptimizerState, lambda c: c._replace(scalars=dict(c.scalars, **{name: value})))

    return read, write


def hyper_entry(name: str) -> tuple[Callable, Callable]:
    """Reader and writer of the optimizer's hyperparameter ``name`` (Keras 3's
    ``learning_rate`` variable)."""

    @shared
    def read(state):
        return find_state(state, OptimizerState).hyperparams[name]

    @shared
    def write(state, value):
        return replace_state(state, OptimizerState, lambda c: c._replace(hyperparams=c.hyperparams.replace(**{name: value})))

    return read, write


def list_entry(cls: type, field: str, i: int) -> tuple[Callable, Callable]:
    """Reader and writer of entry ``i`` of the per-variable list ``cls.field``."""

    def read(state):
        return getattr(find_state(state, cls), field)[i]

    def write(state, value):
        def change(x):
            items = list(getattr(x, field))
            items[i] = value
            return x._replace(**{field: items})

        return replace_state(state, cls, change)

    return read, write
