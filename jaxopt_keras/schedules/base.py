"""The schedule base class, its numerics, and what counts as a learning-rate schedule.

A built-in schedule computes its rate in one of three *numerics*, each the
exact float arithmetic of one way Keras runs it:

* ``"tf_function"``: TF-Keras inside ``tf.function`` (``model.fit``, a
  ``@tf.function`` train step that returns a value), where TensorFlow's
  grappler has rewritten the schedule's graph (:mod:`._grappler`);
* ``"tf_eager"``: TF-Keras run eagerly (``run_eagerly=True``, an eager
  custom loop), the schedule's Python code operation by operation;
* ``"keras3"``: Keras 3 on the JAX backend, its ``ops`` code as ``jnp``,
  which XLA rewrites under ``jit`` as it does Keras 3's own.

A schedule built with ``numerics=None`` (the default) lets the optimizer
decide (:data:`jaxopt_keras.algorithms.driver.DEFAULT_NUMERICS`); called
directly, it uses ``"tf_function"``.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Mapping

import jax
import numpy as np

NUMERICS = ("tf_function", "tf_eager", "keras3")
CALL_NUMERICS = "tf_function"  # what `schedule(step)` computes when the schedule has no numerics of its own


def check_numerics(numerics: Any) -> str | None:
    """``numerics`` if it is ``None`` or one of :data:`NUMERICS`, else ``ValueError``."""
    if numerics is not None and numerics not in NUMERICS:
        raise ValueError(f"`numerics` must be None or one of {NUMERICS}, received {numerics!r}.")
    return numerics


class LearningRateSchedule:
    """Base class: a serializable function of the step count.

    Subclasses implement ``get_config()``, and either ``__call__(step)`` (a
    schedule of your own: one arithmetic whatever the numerics) or, as the
    built-in schedules do, one method per numerics: ``_tf_function(step)``,
    ``_tf_eager(step)`` and ``_keras3(step)``.  The config holds exactly the
    constructor's Keras arguments, so ``cls.from_config(s.get_config())``
    rebuilds ``s`` (``numerics`` is ours, not Keras's, and stays out of it).

    Attributes:
      numerics: ``None`` (the optimizer decides) or one of :data:`NUMERICS`,
        which then wins over the optimizer's choice.
    """

    numerics: str | None = None  # also for subclasses that never call __init__

    def __init__(self, numerics: str | None = None):
        self.numerics = check_numerics(numerics)

    def __call__(self, step: Any) -> jax.Array:
        """The rate at ``step``, in the schedule's numerics or ``"tf_function"``."""
        return self._in_numerics(step, check_numerics(self.numerics) or CALL_NUMERICS)

    def evaluate(self, step: Any, numerics: str | None = None) -> jax.Array:
        """The rate at ``step``, as the optimizer asks for it.

        Args:
          step: the step count (an integer, or a float for the legacy family).
          numerics: the optimizer's numerics (one of :data:`NUMERICS`), used
            unless the schedule has its own; ``None``: ``"tf_function"``.

        A schedule that defines its own ``__call__`` is called as it is.
        """
        chosen = check_numerics(self.numerics) or check_numerics(numerics) or CALL_NUMERICS
        if type(self).__call__ is not LearningRateSchedule.__call__:
            return self(step)
        return self._in_numerics(step, chosen)

    def _in_numerics(self, step: Any, numerics: str) -> jax.Array:
        method = getattr(self, f"_{numerics}", None)
        if method is None:
            raise NotImplementedError(
                f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`."
            )
        return method(step)

    def get_config(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` "
            "in order to be serializable."
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "LearningRateSchedule":
        """Rebuilds a schedule from :meth:`get_config` output."""
        return cls(**config)

    def __eq__(self, other: Any) -> bool:
        return (
            type(self) is type(other)
            and self.get_config() == other.get_config()
            and self.numerics == other.numerics
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self.get_config().items())), self.numerics))

    def __repr__(self) -> str:
        args = [f"{k}={v!r}" for k, v in self.get_config().items()]
        if self.numerics is not None:
            args.append(f"numerics={self.numerics!r}")
        return f"{type(self).__name__}({', '.join(args)})"


def is_schedule(lr: Any) -> bool:
    """True for schedules and callables of the step (anything but a number)."""
    return isinstance(lr, LearningRateSchedule) or (callable(lr) and not isinstance(lr, (jax.Array, np.ndarray)))



def _binds(value: Any, *args: Any) -> bool:
    try:
        inspect.signature(value).bind(*args)
    except TypeError:
        return False
    return True


def checked_steps(name: str, value: Any) -> Any:
    """``value`` for a schedule's ``decay_steps`` (``first_decay_steps``): a positive number.

    Keras 3 refuses ``<= 0`` in these words; TF-Keras accepts it and computes
    NaN or infinity at every step, or a learning rate of 0 from the start.

    Raises:
      TypeError: not a number (``None``, a string, a bool).
      ValueError: zero, negative, or not finite.
    """
    if isinstance(value, jax.core.Tracer):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"Argument `{name}` must be a number. Received: {name}={value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")
    return value


def takes_no_arguments(value: Any) -> bool:
    """True for a callable (not a schedule) that can be called with no arguments,
    as OptimizerV2's ``_get_hyper`` calls a hyperparameter (``lambda: 0.1``)."""
    if not callable(value) or isinstance(value, (LearningRateSchedule, jax.Array, np.ndarray)):
        return False
    try:
        inspect.signature(value)
    except (TypeError, ValueError):  # no signature (a builtin): taken as callable without arguments
        return True
    return _binds(value)


def takes_the_step(value: Any) -> bool:
    """True for a callable that can be called with the step count (``lambda step: ...``)."""
    try:
        return callable(value) and _binds(value, 0)
    except (TypeError, ValueError):
        return False
