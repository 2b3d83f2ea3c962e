"""Flax interop, when Flax is installed: variable wrappers, and serialization of our state types.

Flax is optional.  Its modules are imported here, once, at import time (the
package imports this module through :mod:`jaxopt_keras.core.hyperparams`);
without Flax every helper is the identity and nothing is registered.

* ``nnx.Optimizer`` keeps its state with every leaf wrapped in an
  ``nnx.OptState`` variable.  :func:`unwrap` reads the array such a wrapper
  holds, and :func:`rewrap` puts a new array into a copy of the same wrapper,
  so :func:`~jaxopt_keras.set_hyperparams` returns a state ``nnx.update`` can
  merge (a bare array where a variable was is refused by nnx as a change of
  structure).
* ``flax.serialization`` (``to_bytes``/``from_bytes``, ``to_state_dict``):
  NamedTuples, dicts and lists it knows; :class:`~jaxopt_keras.core.flat.FlatTree`
  (the flat layout's buffers) is registered here.  The hyperparameter tuples
  are NamedTuples (:mod:`jaxopt_keras.core.hyperparams`).
"""

from __future__ import annotations

from typing import Any, Callable

from jaxopt_keras.core.flat import FlatTree

try:  # Flax is optional: see the module docstring.
    from flax import serialization as flax_serialization
    from flax.nnx import Variable as NnxVariable
except ImportError:  # pragma: no cover - exercised only without flax
    flax_serialization = None
    NnxVariable = None

HAS_FLAX = flax_serialization is not None


def is_variable(x: Any) -> bool:
    """Whether ``x`` is an ``nnx.Variable`` (a wrapper around one array)."""
    return NnxVariable is not None and isinstance(x, NnxVariable)


def unwrap(x: Any) -> Any:
    """The array an ``nnx.Variable`` holds; anything else unchanged."""
    return x.get_value() if is_variable(x) else x


def rewrap(old: Any, new: Any) -> Any:
    """``new`` in a copy of ``old``'s wrapper when ``old`` is an ``nnx.Variable``."""
    if is_variable(old) and not is_variable(new):
        return old.copy(new)
    return new


def register_serialization(cls: type, to_state: Callable[[Any], dict], from_state: Callable[[Any, dict], Any]) -> None:
    """``flax.serialization.register_serialization_state`` when Flax is installed."""
    if flax_serialization is not None:
        flax_serialization.register_serialization_state(cls, to_state, from_state, override=True)


def _flat_to_state(flat: FlatTree) -> dict:
    return {str(i): flax_serialization.to_state_dict(b) for i, b in enumerate(flat.buffers)}


def _flat_from_state(target: FlatTree, state: dict) -> FlatTree:
    if set(state) != {str(i) for i in range(len(target.buffers))}:
        raise ValueError(f"A FlatTree of {len(target.buffers)} buffers cannot be restored from keys {sorted(state)}.")
    buffers = [
        target.layout.saved_buffer(i, flax_serialization.from_state_dict(b, state[str(i)], name=str(i)))
        for i, b in enumerate(target.buffers)
    ]
    return FlatTree(buffers, target.layout)


register_serialization(FlatTree, _flat_to_state, _flat_from_state)
