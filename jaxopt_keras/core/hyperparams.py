"""Hyperparameters that live in the optimizer state.

Keras users change hyperparameters between steps (``opt.learning_rate =
0.05``).  Closing over them would make every change a recompilation, so each
optimizer keeps its numeric hyperparameters in its state, as scalar arrays in
a :class:`Hyperparams` mapping, and reads them from there at every step.

Each value is stored in the precision Keras gives it:

* OptimizerV2 (the legacy family) stores ``_set_hyper`` values as float32
  variables; those are rounded to float32 here too.
* Values Keras keeps as Python floats are stored in the widest float JAX has
  (float64 under ``jax_enable_x64``, else float32).
* Where Keras does arithmetic on a Python float before it meets a tensor
  (``(1 - self.beta_1)`` in the current family), that result is computed on the
  host in double precision and stored as a *derived* value, so the rounding
  matches Keras bit for bit even without x64.  :func:`set_hyperparams` keeps
  derived values in step with their source.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Derived(NamedTuple):
    """A hyperparameter computed on the host from another: ``name = fn(source)``."""

    name: str
    source: str
    fn: Callable[[float], float]


def widest_float() -> np.dtype:
    """float64 when ``jax_enable_x64`` is on, else float32."""
    return np.dtype(jnp.float64) if jax.config.jax_enable_x64 else np.dtype(jnp.float32)


def _host_value(value: Any) -> float | None:
    """A Python float for concrete scalars, ``None`` for traced values."""
    if isinstance(value, jax.core.Tracer):
        return None
    arr = np.asarray(value)
    if arr.shape != ():
        raise ValueError(f"Hyperparameters are scalars; received shape {arr.shape}.")
    return float(arr)


@jax.tree_util.register_pytree_with_keys_class
class Hyperparams(Mapping[str, jax.Array]):
    """An immutable mapping of hyperparameter names to scalar arrays.

    A pytree: its values are leaves, its names (and the rules for derived
    values) are static, so replacing a value never changes the tree structure
    and never triggers a recompilation.
    """

    __slots__ = ("_values", "_derived")

    def __init__(self, values: Mapping[str, Any], derived: tuple[Derived, ...] = ()):
        self._values = dict(values)
        self._derived = tuple(derived)

    @classmethod
    def create(
        cls,
        primary: Mapping[str, float],
        dtypes: Mapping[str, Any],
        derived: tuple[Derived, ...] = (),
    ) -> "Hyperparams":
        """Builds the mapping from Python values.

        Args:
          primary: name -> value, as the user gave it.
          dtypes: name -> storage dtype for each primary value.
          derived: host-side rules computing further values from primaries;
            their results are stored at the widest float precision.
        """
        values = {k: jnp.asarray(np.asarray(v, dtypes[k])) for k, v in primary.items()}
        for d in derived:
            values[d.name] = jnp.asarray(np.asarray(d.fn(float(primary[d.source])), widest_float()))
        return cls(values, derived)

    # Mapping interface -------------------------------------------------
    def __getitem__(self, key: str) -> jax.Array:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Hyperparams({self._values!r})"

    @property
    def primary(self) -> dict[str, jax.Array]:
        """The user-facing values (derived ones excluded)."""
        derived = {d.name for d in self._derived}
        return {k: v for k, v in self._values.items() if k not in derived}

    def replace(self, **changes: Any) -> "Hyperparams":
        """Returns a copy with ``changes`` applied, keeping dtypes and shapes.

        Derived values whose source changed are recomputed: on the host in
        double precision for concrete values, in-graph for traced ones.
        """
        derived_names = {d.name for d in self._derived}
        values = dict(self._values)
        for name, value in changes.items():
            if name not in values or name in derived_names:
                raise KeyError(name)
            old = values[name]
            host = _host_value(value)
            values[name] = _like(old, value if host is None else host)
            for d in self._derived:
                if d.source == name:
                    src = d.fn(value) if host is None else d.fn(host)
                    values[d.name] = _like(values[d.name], src)
        return Hyperparams(values, self._derived)

    # Pytree interface --------------------------------------------------
    def tree_flatten_with_keys(self):
        keys = tuple(self._values)
        children = [(jax.tree_util.DictKey(k), self._values[k]) for k in keys]
        return children, (keys, self._derived)

    @classmethod
    def tree_unflatten(cls, aux, children):
        keys, derived = aux
        obj = object.__new__(cls)
        obj._values = dict(zip(keys, children))
        obj._derived = derived
        return obj


def _like(old: Any, value: Any) -> jax.Array:
    """``value`` with the dtype, shape and placement of ``old`` (e.g. replicated under pmap).

    A concrete value takes the sharding of a committed ``old`` (a state
    replicated by ``pmap`` or over a mesh): on another placement, the next
    pmapped or jitted step would be retraced and recompiled.
    """
    old_dtype = getattr(old, "dtype", None)
    old_shape = getattr(old, "shape", ())
    if isinstance(value, (int, float)) and old_dtype is not None:
        value = np.asarray(value, old_dtype)
    new = jnp.asarray(value, dtype=old_dtype)
    if new.shape != tuple(old_shape):
        new = jnp.broadcast_to(new, old_shape)
    concrete = not isinstance(old, jax.core.Tracer) and not isinstance(new, jax.core.Tracer)
    if concrete and isinstance(old, jax.Array) and old.committed:
        new = jax.device_put(new, old.sharding)
    return new


def _is_hp(x: Any) -> bool:
    return isinstance(x, Hyperparams)


def get_hyperparams(state: Any) -> dict[str, jax.Array]:
    """The hyperparameters found anywhere in an optimizer state.

    Args:
      state: a state returned by ``init``/``update`` of any transform here,
        alone or inside :func:`~jaxopt_keras.chain` or ``optax.chain``.

    Returns:
      name -> scalar array.  When several transforms hold the same name, the
      first in tree order wins.
    """
    found: dict[str, jax.Array] = {}
    for leaf in jax.tree_util.tree_leaves(state, is_leaf=_is_hp):
        if isinstance(leaf, Hyperparams):
            for k, v in leaf.primary.items():
                found.setdefault(k, v)
    return found


def set_hyperparams(state: Any, **values: Any) -> Any:
    """Returns ``state`` with hyperparameters replaced, without recompiling.

    Every :class:`Hyperparams` in ``state`` that holds a given name receives the
    new value, cast to the dtype it already has.  This is the functional form
    of Keras's ``opt.learning_rate = 0.05``.

    Args:
      state: an optimizer state.
      **values: name -> new scalar value.

    Returns:
      The new state.

    Raises:
      ValueError: a name is held by no transform in ``state`` (for example
        ``learning_rate`` when the learning rate is a schedule).
    """
    seen: set[str] = set()

    def swap(x):
        if not isinstance(x, Hyperparams):
            return x
        mine = {k: v for k, v in values.items() if k in x.primary}
        seen.update(mine)
        return x.replace(**mine) if mine else x

    new_state = jax.tree_util.tree_map(swap, state, is_leaf=_is_hp)
    missing = sorted(set(values) - seen)
    if missing:
        available = sorted(get_hyperparams(state))
        raise ValueError(
            f"No transform in this state has the hyperparameter(s) {missing}. "
            f"Settable hyperparameters: {available}. (A learning rate given as a "
            "schedule or callable is not stored in the state and cannot be set.)"
        )
    return new_state
