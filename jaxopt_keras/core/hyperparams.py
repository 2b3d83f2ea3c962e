"""Hyperparameters that live in the optimizer state.

Keras users change hyperparameters between steps (``opt.learning_rate =
0.05``).  Closing over them would make every change a recompilation, so each
optimizer keeps its numeric hyperparameters in its state, as scalar arrays in
a :class:`Hyperparams` NamedTuple, and reads them from there at every step.

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

import collections
import collections.abc
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core.interop import rewrap, unwrap
from jaxopt_keras.core.transform import extra_args_update


class Derived(NamedTuple):
    """A hyperparameter computed on the host from another: ``name = fn(source)``."""

    name: str
    source: str
    fn: Callable[[float], float]


def widest_float() -> np.dtype:
    """float64 when ``jax_enable_x64`` is on, else float32."""
    return np.dtype(jnp.float64) if jax.config.jax_enable_x64 else np.dtype(jnp.float32)


def tf_dtype(value: Any) -> np.dtype:
    """The dtype ``tf.convert_to_tensor(value)`` gives (before JAX canonicalization).

    Arrays and NumPy scalars keep their dtype.  They are looked at first
    because ``np.float64`` is a subclass of Python ``float`` yet converts to
    float64, not float32.  A Python ``int`` is int32 if it fits, else int64.
    """
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        if isinstance(value, bool):
            dtype = np.bool_
        elif isinstance(value, int):
            info = np.iinfo(np.int32)
            dtype = np.int32 if info.min <= value <= info.max else np.int64
        elif isinstance(value, float):
            dtype = np.float32
        else:
            dtype = np.asarray(value).dtype
    return np.dtype(dtype)


def tf_cast_dtype(value: Any) -> np.dtype:
    """The storage dtype of a float hyperparameter TF-Keras passes through
    ``tf.cast(value, var.dtype)`` (or holds in a variable of the value's dtype,
    OptimizerV2's hyperparameters): float64 for a NumPy or JAX float64 (x64
    on), else float32, which holds a Python float's float32 rounding, a
    float16 and a small integer exactly, so the cast gives TF's number."""
    return widest_float() if tf_dtype(value) == np.float64 else np.dtype(np.float32)


def python_scalar(value: Any) -> Any:
    """A Python scalar for NumPy/JAX scalars; anything else unchanged."""
    if isinstance(value, (np.generic, jax.Array, np.ndarray)) and np.ndim(value) == 0:
        return np.asarray(value).item()
    return value


def whole_count(value: Any) -> Any:
    """A count as both Kerases take it (``gradient_accumulation_steps``,
    ``dynamic_growth_steps``): a whole float (``2.0``, ``np.float32(2.0)``, as
    a config written with floats has it) is that ``int``; anything else is
    returned as given, for the caller's own check to judge."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return value


def is_variable(value: Any) -> bool:
    """A variable given as a hyperparameter (``jk.Variable``, ``tf.Variable``): assignable, with a value."""
    return not callable(value) and hasattr(value, "assign") and (hasattr(value, "numpy") or hasattr(value, "value"))


class VariableReader:
    """A variable given as a legacy hyperparameter.  OptimizerV2 keeps the variable itself
    (``_set_hyper``) and reads it at each step: this reads it as a zero-argument callable
    hyperparameter is called, before each step; ``variable`` is what ``opt.<name>`` returns."""

    def __init__(self, variable: Any):
        self.variable = variable

    def __call__(self) -> Any:
        v = self.variable
        return python_scalar(np.asarray(v.numpy() if hasattr(v, "numpy") else v.value))

    def __repr__(self) -> str:
        return f"VariableReader({self.variable!r})"


def check_scalar(name: str, value: Any) -> float | None:
    """A concrete hyperparameter value as a Python float (``None`` for a traced value).

    ``np.asarray(None, np.float32)`` is NaN and ``float("0.1")`` is 0.1:
    without this check a bad value would become the hyperparameter silently.

    Raises:
      TypeError: not a number (``None``, a string, an object).
      ValueError: a bool, an array of another shape than ``()``, NaN or an infinity.
    """
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"Hyperparameter `{name}` must be a number, not a bool. Received: {name}={value}.")
    arr = None if value is None or isinstance(value, (str, bytes)) else np.asarray(value)
    if arr is None or arr.dtype.kind not in "iuf":
        raise TypeError(f"Hyperparameter `{name}` must be a number. Received: {name}={value!r} (of type {type(value).__name__}).")
    if arr.shape != ():
        raise ValueError(f"Hyperparameters are scalars; received shape {arr.shape} for `{name}`.")
    if not np.isfinite(arr):
        raise ValueError(f"Hyperparameter `{name}` must be finite. Received: {name}={float(arr)}.")
    return float(arr)


# Moving-average coefficients and momenta: fractions in [0, 1].
FRACTIONS = ("beta_1", "beta_2", "adam_beta_1", "adam_beta_2", "rho", "momentum", "ema_momentum")
# Amounts a negative value of makes no sense (Keras accepts some, and computes NaN).
NONNEGATIVE = (
    "epsilon",
    "epsilon_1",
    "epsilon_2",
    "clip_threshold",
    "weight_decay",
    "adam_weight_decay",
    "initial_accumulator_value",
    "schedule_decay",
    "rms_rate",
    "beta",
)


def check_range(name: str, number: float) -> None:
    """A hyperparameter's range, by its name: ``0 <= number <= 1`` for a
    fraction (:data:`FRACTIONS`), ``number >= 0`` for an amount
    (:data:`NONNEGATIVE`); other names take any finite number.

    The constructors of every family and :func:`set_hyperparams` apply it
    alike (Keras accepts such values and computes NaN or nonsense with them).

    Raises:
      ValueError: out of range.
    """
    if name in FRACTIONS and not 0 <= number <= 1:
        raise ValueError(f"Argument `{name}` must be in the range [0, 1]. Received: {name}={number}.")
    if name in NONNEGATIVE and number < 0:
        raise ValueError(f"Expected {name} >= 0, received: {number}")


class Hyperparams:
    """The hyperparameters of one transform: an immutable NamedTuple of scalar arrays.

    Each transform's hyperparameters form a NamedTuple (one class per set of
    names, made by :meth:`create`), so every tool that walks NamedTuples sees
    them by name: ``optax.tree_utils.tree_get(state, "learning_rate")`` and
    ``tree_set``, ``flax.serialization``, orbax, ``jax.tree_util`` key paths
    (``.hyperparams.learning_rate``).  The values are leaves; the names and
    the rules for derived values are static, so a new value never changes the
    tree structure and never triggers a recompilation.

    It also reads like the mapping it is registered as: ``hp["beta_1"]``,
    ``"beta_1" in hp``, ``for name in hp``, ``hp.keys()``, ``hp.items()``
    (iterating gives the names; ``hp.values()`` the values).  :meth:`replace` and the NamedTuple
    ``_replace`` (what ``tree_set`` calls) keep each value's dtype, shape,
    placement and ``nnx`` variable wrapper, and recompute derived values.
    """

    __slots__ = ()
    _derived: tuple[Derived, ...] = ()

    @classmethod
    def create(
        cls,
        primary: Mapping[str, float],
        dtypes: Mapping[str, Any],
        derived: tuple[Derived, ...] = (),
    ) -> "Hyperparams":
        """Builds the tuple from Python values.

        Args:
          primary: name -> value, as the user gave it.
          dtypes: name -> storage dtype for each primary value.
          derived: host-side rules computing further values from primaries;
            their results are stored at the widest float precision.
        """
        values = {k: jnp.asarray(np.asarray(v, dtypes[k])) for k, v in primary.items()}
        for d in derived:
            values[d.name] = jnp.asarray(np.asarray(d.fn(float(primary[d.source])), widest_float()))
        return hyperparams_class(tuple(values), tuple(derived))(**values)

    # Mapping-style reading ---------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if key not in self._fields:
                raise KeyError(key)
            return getattr(self, key)
        return tuple.__getitem__(self, key)

    def __contains__(self, key: Any) -> bool:
        return key in self._fields

    def __iter__(self):
        """The names, as a mapping iterates (``for name in hp``, ``dict(hp)``)."""
        return iter(self._fields)

    def keys(self) -> tuple[str, ...]:
        return self._fields

    def values(self) -> tuple:
        return tuple(tuple.__iter__(self))

    def items(self) -> list[tuple[str, Any]]:
        return list(zip(self._fields, tuple.__iter__(self)))

    def _asdict(self) -> dict[str, Any]:
        return dict(self.items())

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self._fields else default

    def __repr__(self) -> str:
        return f"Hyperparams({dict(self.items())!r})"

    def __reduce__(self):
        return _rebuild, (self._fields, self._derived, self.values())

    @property
    def primary(self) -> dict[str, jax.Array]:
        """The user-facing values (derived ones excluded)."""
        derived = {d.name for d in self._derived}
        return {k: v for k, v in self.items() if k not in derived}

    # Changing values -----------------------------------------------------
    def replace(self, **changes: Any) -> "Hyperparams":
        """Returns a copy with ``changes`` applied, keeping dtypes and shapes.

        Derived values whose source changed are recomputed: on the host in
        double precision for concrete values, in-graph for traced ones.

        Raises:
          KeyError: a name this tuple does not hold, or a derived one.
        """
        derived = {d.name for d in self._derived}
        for name in changes:
            if name not in self._fields or name in derived:
                raise KeyError(name)
        return self._replace(**changes)

    def _replace(self, **changes: Any) -> "Hyperparams":
        """The NamedTuple protocol (``optax.tree_utils.tree_set`` calls it with every field).

        A field given its current object is unchanged; any other value is cast
        to the field's dtype, shape and placement and takes its wrapper.
        """
        unknown = set(changes) - set(self._fields)
        if unknown:
            raise ValueError(f"Got unexpected field names: {sorted(unknown)!r}")
        values = dict(self.items())
        derived = {d.name for d in self._derived}
        sources: dict[str, Any] = {}
        for name, value in changes.items():
            if value is values[name]:
                continue
            if name in derived:
                raise ValueError(f"{name!r} is computed from another hyperparameter; set that one instead.")
            value = unwrap(value)
            host = check_scalar(name, value)
            sources[name] = value if host is None else host
            values[name] = _like(values[name], sources[name])
        for d in self._derived:
            if d.source in sources:
                values[d.name] = _like(values[d.name], d.fn(sources[d.source]))
        return type(self)(**values)


_CLASSES: dict[tuple, type] = {}


def hyperparams_class(names: tuple[str, ...], derived: tuple[Derived, ...] = ()) -> type:
    """The :class:`Hyperparams` NamedTuple class with fields ``names`` (one per set of names and rules)."""
    key = (tuple(names), tuple(derived))
    if key not in _CLASSES:
        base = collections.namedtuple("Hyperparams", key[0])
        _CLASSES[key] = type("Hyperparams", (Hyperparams, base), {"__slots__": (), "_derived": key[1]})
    return _CLASSES[key]


collections.abc.Mapping.register(Hyperparams)


def _rebuild(names: tuple[str, ...], derived: tuple[Derived, ...], values: tuple) -> Hyperparams:
    """Unpickling: the instance of :func:`hyperparams_class` holding ``values``."""
    return hyperparams_class(names, derived)(*values)


def _like(old: Any, value: Any) -> jax.Array:
    """``value`` with the dtype, shape and placement of ``old`` (e.g. replicated under pmap).

    A concrete value takes the sharding of a committed ``old`` (a state
    replicated by ``pmap`` or over a mesh): on another placement, the next
    pmapped or jitted step would be retraced and recompiled.  An ``nnx``
    variable wrapper around ``old`` wraps the result too.
    """
    wrapper, old = old, unwrap(old)
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
    return rewrap(wrapper, new)


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
                found.setdefault(k, unwrap(v))
    return found


def set_hyperparams(state: Any, **values: Any) -> Any:
    """Returns ``state`` with hyperparameters replaced, without recompiling.

    Every :class:`Hyperparams` in ``state`` that holds a given name receives the
    new value, cast to the dtype it already has.  This is the functional form
    of Keras's ``opt.learning_rate = 0.05``.  An ``nnx.Optimizer``'s state
    keeps its ``nnx`` variable wrappers, so ``optimizer.opt_state =
    set_hyperparams(optimizer.opt_state, ...)`` is merged by its next update.

    Args:
      state: an optimizer state.
      **values: name -> new scalar value.

    Returns:
      The new state.

    Raises:
      ValueError: a name is held by no transform in ``state`` (for example
        ``learning_rate`` when the learning rate is a schedule); a bool,
        NaN, an infinity or a non-scalar value; a value out of its range
        (:func:`check_range`: ``beta_1=1.5``, ``epsilon=-1e-7``), as the
        constructors refuse it.
      TypeError: a value that is not a number (``None``, a string).

    Nothing is changed when it raises: ``state`` is not modified in place.
    A traced value (inside ``jit``) is not checked: its value is unknown.
    """
    for name, value in values.items():
        number = check_scalar(name, unwrap(value))
        if number is not None:
            check_range(name, number)
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


def with_hyperparams(tx: Any, values: Mapping[str, Any]) -> Any:
    """``tx`` whose state takes ``values`` for its hyperparameters at init and before every update.

    How a factory serves ``optax.inject_hyperparams``, which rebuilds the
    transformation at every update with the hyperparameters of its own state
    (as JAX arrays): those values are the step's.  Names no transform of the
    state holds (``ema_momentum`` without EMA) are left out.
    """

    def present(state):
        held = get_hyperparams(state)
        return {k: v for k, v in values.items() if k in held}

    def init(params):
        state = tx.init(params)
        return set_hyperparams(state, **present(state))

    inner_update = extra_args_update(tx.update)

    def update(updates, state, params=None, **extra_args):
        return inner_update(updates, set_hyperparams(state, **present(state)), params, **extra_args)

    return type(tx)(init, update)
