"""A mutable holder of a JAX array, the counterpart of ``tf.Variable``.

Keras-style code keeps model weights in variables and lets the optimizer
update them in place.  JAX arrays are immutable, so a :class:`Variable` holds
one and ``assign`` swaps in another of the same shape and dtype.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core.state import count_dtype


class Variable:
    """A named, mutable reference to a JAX array.

    Args:
      value: the initial value (anything ``jnp.asarray`` accepts).
      name: the variable's name, its path for Keras 3 (``"dense/kernel"``);
        ``"Variable"`` if omitted, as in TensorFlow.
      dtype: an optional dtype to convert ``value`` to.
      constraint: Keras 3: a function of the value, applied after each
        optimizer update (``v = constraint(v)``).
      overwrite_with_gradient: Keras 3: the optimizer sets this variable to
        its gradient instead of stepping it (float8 scaling factors).

    Attributes:
      value: the current array.
      name: ``"<name>:0"``, as TensorFlow reports it.
      path: the name without ``":0"``, as Keras 3 reports a variable's path.
    """

    def __init__(
        self,
        value: Any,
        name: str | None = None,
        dtype: Any = None,
        *,
        constraint: Callable[[Any], Any] | None = None,
        overwrite_with_gradient: bool = False,
    ):
        # A copy, as tf.Variable makes: optimizers donate the variable's buffer
        # to their step, which must not invalidate the caller's array or
        # another variable holding the same one.
        self._value = jnp.array(value, dtype=dtype, copy=True)
        base = "Variable" if name is None else str(name)
        self._shared_name = base[:-2] if base.endswith(":0") else base
        self.constraint = constraint
        self.overwrite_with_gradient = overwrite_with_gradient

    # -- reading -----------------------------------------------------------
    @property
    def value(self) -> jax.Array:
        return self._value

    @property
    def name(self) -> str:
        return f"{self._shared_name}:0"

    @property
    def path(self) -> str:
        return self._shared_name

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    def numpy(self) -> np.ndarray:
        """The value as a NumPy array (a copy)."""
        return np.array(self.value)

    def read_value(self) -> jax.Array:
        return self.value

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.value)
        return out.astype(dtype) if dtype is not None else out

    def __jax_array__(self) -> jax.Array:
        return self.value

    def __float__(self) -> float:
        return float(self.value)

    def __int__(self) -> int:
        return int(self.value)

    def __repr__(self) -> str:
        return f"<jaxopt_keras.Variable '{self.name}' shape={self.shape} dtype={self.dtype.name}, numpy={self.numpy()!r}>"

    # -- writing -----------------------------------------------------------
    def _check(self, value: Any) -> jax.Array:
        if jnp.issubdtype(self.dtype, jnp.integer) and not isinstance(value, jax.core.Tracer):
            self._check_range(np.asarray(value.value if isinstance(value, Variable) else value))
        new = jnp.asarray(value)
        if new.shape != self.shape:
            raise ValueError(
                f"Cannot assign value to variable '{self.name}': Shape mismatch. The variable "
                f"shape {self.shape}, and the assigned value shape {new.shape} are incompatible."
            )
        return jnp.array(new, dtype=self.dtype, copy=True)  # owned, as in __init__

    def _check_range(self, value: np.ndarray) -> None:
        """An integer variable (the step count) takes no value its dtype would wrap or truncate."""
        if value.dtype.kind == "f" and not np.all(np.isfinite(value) & (value == np.floor(value))):
            raise ValueError(
                f"Cannot assign value to variable '{self.name}': {value} is not a whole number, and "
                f"its dtype is {np.dtype(self.dtype).name}."
            )
        info = np.iinfo(self.dtype)
        if value.size and np.issubdtype(value.dtype, np.number) and (value.min() < info.min or value.max() > info.max):
            hint = " (enable x64 to count to 2**63 - 1)" if info.bits < 64 and count_dtype().itemsize < 8 else ""
            raise ValueError(
                f"Cannot assign value to variable '{self.name}': {value.max() if value.max() > info.max else value.min()} "
                f"is outside the range of its dtype {np.dtype(self.dtype).name} ({info.min} to {info.max}){hint}."
            )

    def assign(self, value: Any) -> "Variable":
        """Replaces the value (same shape; converted to the variable's dtype)."""
        self._set(self._check(value))
        return self

    def assign_add(self, delta: Any) -> "Variable":
        return self.assign(self.value + jnp.asarray(delta, self.dtype))

    def assign_sub(self, delta: Any) -> "Variable":
        return self.assign(self.value - jnp.asarray(delta, self.dtype))

    def _set(self, value: jax.Array) -> None:
        self._value = value

    # -- arithmetic, so a Variable can stand in for its value ----------------
    # Above NumPy's, as jax.Array's: `ndarray <op> Variable` defers to the
    # Variable's reflected operator (a JAX op, traceable inside `minimize`)
    # instead of converting the Variable to a host array.
    __array_priority__ = 100

    def _binary(op: Callable) -> Callable:  # noqa: N805 - helper used at class creation
        def method(self, other):
            return op(self.value, other.value if isinstance(other, Variable) else other)

        return method

    __add__ = _binary(lambda a, b: a + b)
    __radd__ = _binary(lambda a, b: b + a)
    __sub__ = _binary(lambda a, b: a - b)
    __rsub__ = _binary(lambda a, b: b - a)
    __mul__ = _binary(lambda a, b: a * b)
    __rmul__ = _binary(lambda a, b: b * a)
    __truediv__ = _binary(lambda a, b: a / b)
    __rtruediv__ = _binary(lambda a, b: b / a)
    __matmul__ = _binary(lambda a, b: a @ b)
    __rmatmul__ = _binary(lambda a, b: b @ a)
    __pow__ = _binary(lambda a, b: a**b)
    __lt__ = _binary(lambda a, b: a < b)
    __le__ = _binary(lambda a, b: a <= b)
    __gt__ = _binary(lambda a, b: a > b)
    __ge__ = _binary(lambda a, b: a >= b)
    del _binary

    def __neg__(self):
        return -self.value

    def __getitem__(self, item):
        return self.value[item]


class StateView(Variable):
    """A :class:`Variable` whose value lives in an optimizer's state.

    ``optimizer.weights``, ``get_slot`` and hyperparameter attributes return
    these: reading gives the current state value, ``assign`` writes it back.
    """

    def __init__(self, name: str, read: Callable[[], jax.Array], write: Callable[[jax.Array], None]):
        self._shared_name = name[:-2] if name.endswith(":0") else name
        self._read = read
        self._write = write
        self.constraint = None
        self.overwrite_with_gradient = False

    @property
    def value(self) -> jax.Array:
        return self._read()

    def _set(self, value: jax.Array) -> None:
        self._write(value)


class Keras3View(StateView):
    """A :class:`StateView` named as Keras 3 names its variables: ``name`` is the last part of
    ``path`` (``adam/dense_kernel_momentum`` -> ``dense_kernel_momentum``), without ``:0``."""

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]
