"""``LossScaleOptimizer``: dynamic loss scaling around an optimizer instance of either TF-Keras family.

The rule (skip non-finite steps, halve or double the scale) is
:mod:`jaxopt_keras.transforms.loss_scale`'s; this is its stateful Keras
surface: ``get_scaled_loss``/``get_unscaled_gradients``, ``apply_gradients``,
the scale as a variable, and TF-Keras's config.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core import transform as base
from jaxopt_keras.core.hyperparams import whole_count
from jaxopt_keras.core.state import checked_count
from jaxopt_keras.optimizers.config import deserialize_optimizer, serialize_optimizer, tf_keras_family
from jaxopt_keras.optimizers.families import OptimizerV2
from jaxopt_keras.optimizers.family_mixins import loss_takes_values
from jaxopt_keras.optimizers.optimizer import KerasOptimizer
from jaxopt_keras.optimizers.variable import StateView, Variable
from jaxopt_keras.transforms.loss_scale import (
    DEFAULT_GROWTH_STEPS,
    DEFAULT_INITIAL_SCALE,
    all_finite,
    check_loss_scale,
    next_loss_scale,
    step_if_finite,
)


class LossScaleOptimizer:
    """Wraps an optimizer of either family with dynamic loss scaling.

    Args:
      inner_optimizer: a ``jaxopt_keras.optimizers`` or
        ``jaxopt_keras.optimizers.legacy`` instance.
      dynamic: adjust the scale (``True``) or keep ``initial_scale``.
      initial_scale: defaults to ``2**15`` when dynamic.
      dynamic_growth_steps: defaults to 2000 when dynamic.
    """

    is_loss_scale_optimizer = True  # recognized by MultiOptimizer, which refuses one inside

    def __init__(self, inner_optimizer: Any, dynamic: bool = True, initial_scale: float | None = None, dynamic_growth_steps: int | None = None):
        if isinstance(inner_optimizer, LossScaleOptimizer):
            raise TypeError(f"LossScaleOptimizer cannot wrap another LossScaleOptimizer, but got: {inner_optimizer}")
        if not isinstance(inner_optimizer, KerasOptimizer):
            raise TypeError(f'"inner_optimizer" must be an instance of Optimizer, but got: {inner_optimizer}.')
        if not isinstance(dynamic, bool):
            raise TypeError(f'"dynamic" argument to LossScaleOptimizer.__init__ must be a bool, but got: {dynamic!r}')
        if getattr(inner_optimizer, "_is_wrapped_by_loss_scale_optimizer", False):
            raise ValueError(
                '"inner_optimizer" is already wrapped by a LossScaleOptimizer. An optimizer can only be '
                "wrapped by a single LossScaleOptimizer"
            )
        if dynamic:
            initial_scale = DEFAULT_INITIAL_SCALE if initial_scale is None else float(initial_scale)
            dynamic_growth_steps = DEFAULT_GROWTH_STEPS if dynamic_growth_steps is None else whole_count(dynamic_growth_steps)
        else:
            if initial_scale is None:
                raise ValueError('"initial_scale" must be specified if "dynamic" is False')
            if dynamic_growth_steps is not None:
                raise ValueError(
                    f'"dynamic_growth_steps" must be None if "dynamic" is False, but got: {dynamic_growth_steps}'
                )
            initial_scale = float(initial_scale)
        check_loss_scale(initial_scale, dynamic_growth_steps, dynamic)  # before the inner optimizer is marked wrapped
        self._optimizer = inner_optimizer
        inner_optimizer._is_wrapped_by_loss_scale_optimizer = True
        self._dynamic = dynamic
        self._initial_scale = initial_scale
        self._growth_steps = dynamic_growth_steps
        self._scale = jnp.asarray(initial_scale, jnp.float32)
        self._counter = jnp.zeros([], jnp.int32)
        self._step_for = None

    def _get_step(self):
        """The jitted step, rebuilt when the inner optimizer rebuilt its transformation."""
        transform = self._optimizer.transformation
        if self._step_for is transform:
            return self._step
        dynamic, growth = self._dynamic, self._growth_steps

        def step(values, state, scale, counter, grads):
            finite = all_finite(grads) if dynamic else jnp.asarray(True)

            def apply():
                updates, new_state = transform.update(grads, state, values)
                return base.apply_updates(values, updates), new_state

            new_values, new_state = step_if_finite(finite, apply, values, state)
            if dynamic:
                scale, counter = next_loss_scale(scale, counter, finite, growth)
            return new_values, new_state, scale, counter

        self._step = jax.jit(step, donate_argnums=(0, 1))
        self._step_for = transform
        return self._step

    # -- Keras's surface ----------------------------------------------------
    @property
    def inner_optimizer(self) -> Any:
        return self._optimizer

    @property
    def dynamic(self) -> bool:
        return self._dynamic

    @property
    def initial_scale(self) -> float:
        return self._initial_scale

    @property
    def dynamic_growth_steps(self) -> int | None:
        return self._growth_steps

    @property
    def loss_scale(self) -> StateView:
        """The current loss scale (float32)."""
        return StateView("current_loss_scale:0", lambda: self._scale, self._set_scale)

    def _set_scale(self, value):
        with self._optimizer._lock:  # the step reads the scale
            self._scale = jnp.asarray(value, jnp.float32)

    def _set_counter(self, value):
        with self._optimizer._lock:
            self._counter = jnp.array(checked_count(value, np.int32, "good_steps", widens=False), copy=True)

    @property
    def dynamic_counter(self) -> StateView | None:
        """Finite steps since the scale last changed."""
        if not self._dynamic:
            return None
        return StateView("good_steps:0", lambda: self._counter, self._set_counter)

    def get_scaled_loss(self, loss: Any) -> Any:
        """``loss * loss_scale``; a callable loss is wrapped (keeping its arity, see
        :meth:`~jaxopt_keras.optimizers.family_mixins.GradientsMixin.compute_gradients`)."""
        if callable(loss):
            if loss_takes_values(loss):
                return lambda values: self.get_scaled_loss(loss(values))
            return lambda: self.get_scaled_loss(loss())
        loss = jnp.asarray(loss)
        return loss * self._scale.astype(loss.dtype)

    def get_unscaled_gradients(self, grads: Sequence[Any]) -> list:
        """``g * (1 / loss_scale)`` for each gradient (``None`` kept)."""
        reciprocal = 1.0 / self._scale
        return [None if g is None else jnp.asarray(g) * reciprocal.astype(jnp.asarray(g).dtype) for g in grads]

    def compute_gradients(self, loss: Any, var_list: Sequence[Variable], tape: Any = None) -> list:
        """Gradients of the scaled loss, unscaled (a non-scalar loss: of its sum)."""
        with self._optimizer._lock:  # one scale for the loss and the gradients
            pairs = self._optimizer.compute_gradients(self.get_scaled_loss(loss), var_list, tape)
            grads = self.get_unscaled_gradients([g for g, _ in pairs])
            self._last_loss = self._optimizer._last_loss / self._scale.astype(jnp.asarray(self._optimizer._last_loss).dtype)
        return list(zip(grads, [v for _, v in pairs]))

    def minimize(self, loss: Any, var_list: Sequence[Variable], tape: Any = None) -> Any:
        with self._optimizer._lock:
            self.apply_gradients(self.compute_gradients(loss, var_list, tape))
            return self._last_loss

    def apply_gradients(self, grads_and_vars, name: str | None = None, **kwargs: Any):
        """Applies the step when every gradient is finite; adjusts the loss scale.

        Gradients must already be unscaled (:meth:`get_unscaled_gradients`).
        """
        inner = self._optimizer
        pairs, kept = inner._filter(grads_and_vars)
        if not pairs:
            return inner.iterations
        with inner._lock:
            if isinstance(inner, OptimizerV2):
                inner._build_for(pairs, kept)
            elif not inner.built:  # LossScaleOptimizerV3 builds the inner optimizer itself, outside its name scope: `m/w:0`
                inner.build([v for _, v in pairs])
            grads, _ = inner._gradients(kept)
            values = [v.value for v in inner._variables]
            step = self._get_step()
            new_values, inner._state, self._scale, self._counter = step(values, inner._state, self._scale, self._counter, grads)
            for v, value in zip(inner._variables, new_values):
                v._set(value)
        return inner.iterations

    def build(self, var_list: Sequence[Variable]) -> None:
        self._optimizer.build(var_list)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._optimizer, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._optimizer, name, value)

    def __reduce__(self) -> tuple:
        """Pickles as a fresh LossScaleOptimizer around the inner optimizer's own
        pickle (its config): the scale and the counter start over, as the state does."""
        return LossScaleOptimizer, (self._optimizer, self._dynamic, self._initial_scale, self._growth_steps)

    # -- config -------------------------------------------------------------
    def serialized_name(self) -> str:
        """TF-Keras's class name: ``LossScaleOptimizer`` around a legacy optimizer, else ``LossScaleOptimizerV3``."""
        return "LossScaleOptimizer" if isinstance(self._optimizer, OptimizerV2) else "LossScaleOptimizerV3"

    def get_config(self) -> dict:
        """TF-Keras's format: the inner optimizer's serialization and the scale settings."""
        return {
            "inner_optimizer": serialize_optimizer(self._optimizer),
            "dynamic": self._dynamic,
            "initial_scale": self._initial_scale,
            "dynamic_growth_steps": self._growth_steps,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None, use_legacy_optimizer: bool | None = None) -> "LossScaleOptimizer":
        """Rebuilds from :meth:`get_config` output (or TF-Keras's / Keras 3's)."""
        config = dict(config)
        if "loss_scale" in config:  # TF 2.3 and before: a LossScale object, as TF-Keras converts it
            config.update(_tf23_loss_scale(config.pop("loss_scale")))
        if "optimizer" in config and "inner_optimizer" not in config:  # TF 2.3 name
            config["inner_optimizer"] = config.pop("optimizer")
        if "inner_optimizer" not in config:
            raise ValueError(f"A serialized LossScaleOptimizer has no 'inner_optimizer' field: {sorted(config)}")
        inner = config.pop("inner_optimizer")
        if not isinstance(inner, KerasOptimizer):
            if not isinstance(inner, Mapping):
                raise ValueError(f"Field 'inner_optimizer' of a serialized LossScaleOptimizer must be a dict, received {inner!r}.")
            inner = deserialize_optimizer(inner, custom_objects, tf_keras_family(inner, use_legacy_optimizer))
        allowed = {"dynamic", "initial_scale", "dynamic_growth_steps"}
        unknown = set(config) - allowed - {"name"}
        if unknown:
            raise TypeError(f"Unexpected keyword arguments for LossScaleOptimizer: {sorted(unknown)}")
        return cls(inner, **{k: v for k, v in config.items() if k in allowed})


# TF 2.3's LossScale classes: their constructors' defaults, by config key.
_TF23_DYNAMIC = {"initial_loss_scale": 2.0**15, "increment_period": 2000, "multiplier": 2.0}


def _tf23_loss_scale(loss_scale: Any) -> dict:
    """The arguments a TF 2.3-era serialized ``LossScale`` stands for, as
    TF-Keras's ``LossScaleOptimizer.from_config`` converts it.

    ``{"class_name": "FixedLossScale", "config": {"loss_scale_value": s}}``
    is ``dynamic=False, initial_scale=s``; ``DynamicLossScale``'s
    ``initial_loss_scale`` and ``increment_period`` are ``initial_scale`` and
    ``dynamic_growth_steps`` (its ``multiplier`` must be 2).  Nothing is
    imported or built from the config but these numbers.

    Raises:
      ValueError: another class, or a multiplier other than 2 (TF-Keras's words).
      TypeError: a config key the class does not take.
    """
    name = loss_scale.get("class_name") if isinstance(loss_scale, Mapping) else None
    raw = loss_scale.get("config", {}) if isinstance(loss_scale, Mapping) else {}
    known = {"FixedLossScale": {"loss_scale_value"}, "DynamicLossScale": set(_TF23_DYNAMIC)}
    if name not in known or not isinstance(raw, Mapping):
        raise ValueError(
            "Serialized LossScaleOptimizers with a LossScale that is neither a FixedLossScale nor a "
            f"DynamicLossScale can no longer be deserialized (received loss_scale={loss_scale!r})."
        )
    unknown = set(raw) - known[name]
    if unknown:
        raise TypeError(f"{name} got unexpected keyword arguments {sorted(unknown)} in a serialized LossScaleOptimizer.")
    if name == "FixedLossScale":
        if "loss_scale_value" not in raw:
            raise TypeError("FixedLossScale is missing its argument 'loss_scale_value' in a serialized LossScaleOptimizer.")
        return {"dynamic": False, "initial_scale": raw["loss_scale_value"]}
    args = {**_TF23_DYNAMIC, **raw}
    if args["multiplier"] != 2:
        raise ValueError(
            "Cannot deserialize LossScaleOptimizer with a DynamicLossScale whose multiplier is not 2. Got "
            f"DynamicLossScale: {dict(raw)}"
        )
    return {"dynamic": True, "initial_scale": args["initial_loss_scale"], "dynamic_growth_steps": args["increment_period"]}
