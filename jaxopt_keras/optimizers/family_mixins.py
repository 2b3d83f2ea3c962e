"""What the Keras families share in the object API, as mixins of their base classes.

* :class:`GradientsMixin`: TF-Keras's ``compute_gradients`` and ``minimize``
  (both TF-Keras families; Keras 3 has neither);
* :class:`ConfigMixin`: ``get_config``'s algorithm part and ``from_config``
  (every family);
* :class:`BuiltWeightsMixin`: the new optimizers' ``set_weights`` and Keras's
  saving hooks (TF-Keras's current family and Keras 3).

Each is mixed into a family's base class ahead of
:class:`~jaxopt_keras.optimizers.optimizer.KerasOptimizer`, which provides
what they read; the families themselves are
:mod:`jaxopt_keras.optimizers.families` and
:mod:`jaxopt_keras.optimizers.keras3_family`.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.optimizers.optimizer import KerasOptimizer
from jaxopt_keras.optimizers.variable import Variable
from jaxopt_keras.schedules import deserialize as deserialize_schedule
from jaxopt_keras.schedules import serialize as serialize_schedule
from jaxopt_keras.schedules.base import LearningRateSchedule


def loss_takes_values(loss: Callable) -> bool:
    """Whether ``loss`` is a function of the list of values (else Keras-style, of nothing)."""
    return len(inspect.signature(loss).parameters) > 0


class GradientsMixin:
    """TF-Keras's ``compute_gradients`` and ``minimize`` (Keras 3 has neither)."""

    def compute_gradients(self, loss: Callable, var_list: Sequence[Variable] | Callable, tape: Any = None) -> list:
        """``[(gradient, variable)]`` of ``loss`` with respect to the variables' values.

        ``loss`` is either a callable of the list of values, or Keras-style a
        callable of no arguments that reads the variables (their values are
        swapped for tracers while the gradient is taken, under the optimizer's
        lock).  A non-scalar loss is differentiated as its sum, as TF-Keras's
        ``tape.gradient`` does: ``grad = d(sum(loss))/d(var)``.  ``var_list``
        may be a callable returning the list, as in TF-Keras.
        """
        if tape is not None:
            raise ValueError("JAX has no gradient tape: pass `loss` as a callable.")
        var_list = self._check_variables(var_list() if callable(var_list) else var_list)
        if not callable(loss):
            raise ValueError(f"`loss` must be a callable in JAX. Received: loss={loss!r}")
        takes_values = loss_takes_values(loss)

        def f(values):
            if takes_values:
                return loss(values)
            saved = [v.value for v in var_list]
            try:
                for v, x in zip(var_list, values):
                    v._value = x
                return loss()
            finally:
                for v, x in zip(var_list, saved):
                    v._value = x

        def summed(values):
            value = f(values)
            return jnp.sum(value), value

        with self._lock:  # other threads must not see the tracers
            (_, value), grads = jax.value_and_grad(summed, has_aux=True)([v.value for v in var_list])
            self._last_loss = value
        return list(zip(grads, var_list))

    def minimize(self, loss: Callable, var_list: Sequence[Variable] | Callable, tape: Any = None) -> jax.Array:
        """Takes the gradient of ``loss`` (see :meth:`compute_gradients`) and applies it.

        Returns:
          The loss value before the step.
        """
        with self._lock:  # the loss and the step it returns belong together
            grads_and_vars = self.compute_gradients(loss, var_list, tape)
            self.apply_gradients(grads_and_vars)
            return self._last_loss


class ConfigMixin:
    """``get_config``/``from_config`` shared by the families."""

    def _algorithm_config(self) -> dict:
        config = {}
        order = self._spec.config_order
        for key in [k for k in self._spec.defaults if k not in order] + [k for k in order if k in self._spec.defaults]:
            if key == "learning_rate":
                config[key] = self._serialize_learning_rate()
            elif key in self._spec.config_when_set:
                if self._args.get(key):
                    config[key] = self._args[key]
            else:
                config[key] = self._serialize_hyper(key)
        return config

    def _serialize_learning_rate(self) -> Any:
        lr = self._args["learning_rate"]
        if isinstance(lr, LearningRateSchedule):
            return serialize_schedule(lr)
        if callable(lr):
            return lr
        return self._serialize_hyper("learning_rate")

    def _serialize_hyper(self, key: str) -> Any:
        return self._args[key]

    def _extension_config(self, config: dict) -> dict:
        """Adds our own arguments (not Keras's) only when set, so default configs equal Keras's."""
        if self._args.get("slot_dtype") is not None:
            config["slot_dtype"] = np.dtype(self._args["slot_dtype"]).name
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None) -> KerasOptimizer:
        """Rebuilds an optimizer from :meth:`get_config` output (or Keras's)."""
        config = dict(config)
        for key, arg in cls._spec.config_to_args.items():
            if key in config and arg not in config:
                config[arg] = config.pop(key)
        lr = config.get("learning_rate")
        if isinstance(lr, Mapping):
            config["learning_rate"] = deserialize_schedule(lr, custom_objects=custom_objects)
        return cls(**config)


class BuiltWeightsMixin:
    """The new optimizers' ``set_weights`` (TF-Keras >= 2.11 and Keras 3): only once
    built, and their words for a shape mismatch."""

    def set_weights(self, weights: Sequence[Any]) -> None:
        if not self.built:
            raise ValueError(
                "You are calling `set_weights()` on an optimizer that has not yet been built. Please "
                "call `optimizer.build(trainable_variables)` to create the optimizer weights before "
                "calling `set_weights()`."
            )
        super().set_weights(weights)

    def _shape_error(self, name, expected, given) -> None:
        raise ValueError(
            f"Optimizer variable {name} has shape {tuple(expected)} not compatible with provided "
            f"weight shape {tuple(given)}."
        )

    def save_own_variables(self, store: Any) -> None:
        """Keras's saving hook: ``store[str(i)]`` is the i-th of :attr:`variables`."""
        for i, value in enumerate(self.get_weights()):
            store[str(i)] = value

    def load_own_variables(self, store: Any) -> None:
        """Keras's loading hook: the values ``store["0"]``, ``store["1"]``, ... in
        :attr:`variables`' order, all or nothing (as :meth:`set_weights`).  A
        store of another length is skipped with Keras's warning."""
        count = len(self.get_weights())
        if len(store.keys()) != count:
            message = (
                f"Skipping variable loading for optimizer '{self.name}', because it has {count} variables "
                f"whereas the saved optimizer has {len(store.keys())} variables. "
            )
            if not count:  # (Keras: only an optimizer without variables, never the current family's)
                message += "This is likely because the optimizer has not been called/built yet."
            warnings.warn(message, UserWarning, stacklevel=2)
            return
        self.set_weights([store[str(i)] for i in range(count)])
