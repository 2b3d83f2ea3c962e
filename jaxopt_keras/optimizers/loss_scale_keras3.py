"""Keras 3's ``LossScaleOptimizer`` (``keras.optimizers.LossScaleOptimizer``).

It differs from TF-Keras's (:mod:`jaxopt_keras.optimizers.loss_scale`): it
takes the gradients of the *scaled* loss and divides them by the scale
itself; a non-finite step halves the scale with no floor, leaves the inner
optimizer untouched (its iterations too), and growth doubles it
unconditionally; there is no fixed-scale mode; its own variables
(``iteration``, ``learning_rate``, ``step_counter``, ``dynamic_scale``) lead
its ``variables`` list.  The rule is
:func:`~jaxopt_keras.transforms.loss_scale.loss_scale_optimizer_keras3`.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core import transform as base
from jaxopt_keras.core.state import checked_count, nan_count
from jaxopt_keras.optimizers.config import serialize_optimizer
from jaxopt_keras.optimizers.keras3_family import Keras3Optimizer, auto_name
from jaxopt_keras.optimizers.multi import MultiOptimizer
from jaxopt_keras.optimizers.variable import Keras3View, StateView, Variable
from jaxopt_keras.optimizers.weights import locked
from jaxopt_keras.core.hyperparams import whole_count
from jaxopt_keras.transforms.loss_scale import all_finite, loss_scale_optimizer_keras3, next_loss_scale_keras3

# The base optimizer's arguments, which configs of Keras 3 before 3.12 carry:
# accepted with their default value only.
TOLERATED = {
    "weight_decay": None,
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


class LossScaleOptimizer:
    """Keras 3's dynamic loss scaling around a Keras 3 optimizer (or a ``MultiOptimizer``).

    Args:
      inner_optimizer: the optimizer to wrap; its ``loss_scale_factor`` is
        cleared, so gradients are not unscaled twice.
      initial_scale: the starting loss scale.
      dynamic_growth_steps: finite steps before the scale doubles.
      name: by default ``loss_scale_optimizer``, ``loss_scale_optimizer_1``, ...

    Raises:
      ValueError: ``dynamic=False``, a base optimizer argument other than its
        default, or any other argument, in Keras 3's words.
    """

    is_loss_scale_optimizer = True

    def __init__(
        self,
        inner_optimizer: Keras3Optimizer | MultiOptimizer,
        initial_scale: float = 2.0**15,
        dynamic_growth_steps: int = 2000,
        name: str | None = None,
        **kwargs: Any,
    ):
        if not kwargs.pop("dynamic", True):
            raise ValueError(
                "LossScaleOptimizer no longer supports `dynamic=False`. Instead, simply set `loss_scale_factor` "
                "directly on the `inner_optimizer`."
            )
        for arg, default in TOLERATED.items():
            if arg in kwargs:
                value = kwargs.pop(arg)
                if (default is None and value is not None) or value != default:
                    raise ValueError(
                        f"LossScaleOptimizer does not support `{arg}`. Instead, set `{arg}` on the `inner_optimizer`."
                    )
        if kwargs:
            raise ValueError("LossScaleOptimizer does not support arguments: " + ", ".join(f"`{k}`" for k in kwargs) + ".")
        if not isinstance(inner_optimizer, (Keras3Optimizer, MultiOptimizer)):
            raise TypeError(f'"inner_optimizer" must be a Keras 3 optimizer instance, but got: {inner_optimizer}.')
        dynamic_growth_steps = whole_count(dynamic_growth_steps)  # Keras 3 takes 2.0 and counts to it alike
        loss_scale_optimizer_keras3(base.identity(), initial_scale, dynamic_growth_steps)  # validates both
        self.inner_optimizer = inner_optimizer
        self.initial_scale = initial_scale
        self.dynamic_growth_steps = dynamic_growth_steps
        self.name = auto_name("LossScaleOptimizer") if name is None else name
        inner_optimizer.loss_scale_factor = None
        # Keras 3 builds the inner optimizer with attribute tracking off (its build's DotNotTrackScope): what the
        # inner optimizer makes outside add_variable (Adafactor's rank < 2 placeholders) is in no variables list.
        for opt in getattr(inner_optimizer, "optimizers", [inner_optimizer]):
            if not opt.built:
                opt._tracked = False
        self._scale = jnp.asarray(initial_scale, jnp.float32)
        self._counter = jnp.zeros([], jnp.int32)
        self._built = False
        self._step = jax.jit(self.stateless_apply)
        self._lock = threading.RLock()  # one call at a time (see weights.locked)

    # -- the inner optimizer's surface ------------------------------------------
    @property
    def iterations(self) -> Any:
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self) -> Any:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        self.inner_optimizer.learning_rate = value

    @property
    def built(self) -> bool:
        return self._built

    @locked
    def build(self, var_list: Sequence[Variable]) -> None:
        self.inner_optimizer.build(var_list)
        self._built = True

    def finalize_variable_values(self, var_list: Sequence[Variable]) -> None:
        self.inner_optimizer.finalize_variable_values(var_list)

    @property
    def transformation(self) -> base.GradientTransformation:
        """The functional optimizer: Keras 3's rule around the inner optimizer's."""
        return loss_scale_optimizer_keras3(self.inner_optimizer.transformation, self.initial_scale, self.dynamic_growth_steps)

    # -- variables -------------------------------------------------------------
    def _own_views(self) -> list[StateView]:
        views = [
            Keras3View(f"{self.name}/iteration", lambda: jnp.zeros([], jnp.int32), lambda v: None),
            Keras3View(f"{self.name}/learning_rate", lambda: jnp.zeros([], jnp.float32), lambda v: None),
        ]
        if self._built:
            views += [
                Keras3View(f"{self.name}/step_counter", lambda: self._counter, self._set_counter),
                Keras3View(f"{self.name}/dynamic_scale", lambda: self._scale, self._set_scale),
            ]
        return views

    @locked
    def _set_counter(self, value: Any) -> None:
        self._counter = jnp.array(checked_count(value, np.int32, "step_counter", widens=False), copy=True)

    def _set_scale(self, value: Any) -> None:
        self._scale = jnp.asarray(value, jnp.float32)

    @property
    def variables(self) -> list[StateView]:
        return self._own_views() + list(self.inner_optimizer.variables)

    @property
    def loss_scale(self) -> StateView:
        return Keras3View(f"{self.name}/dynamic_scale", lambda: self._scale, self._set_scale)

    @locked
    def get_weights(self) -> list[np.ndarray]:
        return [np.array(v.value) for v in self.variables]

    @locked
    def set_weights(self, weights: Sequence[Any]) -> None:
        """Its own four variables, then the inner optimizer's; all or nothing."""
        weights = list(weights)
        own = len(self._own_views())
        if len(weights) != len(self.variables):
            raise ValueError(f"Expected {len(self.variables)} weights for {self.name}, received {len(weights)}.")
        if self._built:
            checked_count(weights[2], np.int32, "step_counter", widens=False)  # before anything changes
            if nan_count(weights[3]):
                raise ValueError(f"Optimizer weight {self.name}/dynamic_scale holds NaN: every later step would be NaN.")
        self.inner_optimizer.set_weights(weights[own:])
        if self._built:
            self._set_counter(weights[2])
            self._set_scale(weights[3])

    # -- applying --------------------------------------------------------------
    def scale_loss(self, loss: Any) -> Any:
        """``loss * dynamic_scale`` (``initial_scale`` before ``build``)."""
        return loss * (self._scale if self._built else self.initial_scale)

    def stateless_apply(self, optimizer_variables: Sequence[Any], grads: Sequence[Any], trainable_variables: Sequence[Any]):
        """Keras 3's step on values; ``grads`` are the gradients of the scaled loss,
        divided by the scale but for the variables overwritten with their gradient."""
        if not self._built:
            raise ValueError(
                "To call `stateless_apply`, LossScaleOptimizer must be built (i.e. its variables must have been "
                "created). You can build it via `optimizer.build(trainable_variables)`."
            )
        own, inner_vars = list(optimizer_variables[:4]), list(optimizer_variables[4:])
        counter, scale = jnp.asarray(own[2], jnp.int32), jnp.asarray(own[3], jnp.float32)
        values = list(trainable_variables)
        finite = all_finite([g for g in grads if g is not None])

        # A variable overwritten with its gradient takes it as it comes (scaled).
        overwrite = [v.overwrite_with_gradient for v in self.inner_optimizer._variables]

        def step(_):
            unscaled = [g if g is None or o else jnp.asarray(g) / scale for g, o in zip(grads, overwrite)]
            return self.inner_optimizer.stateless_apply(inner_vars, unscaled, values)

        def skip(_):
            return [jnp.asarray(v) for v in values], [jnp.asarray(v) for v in inner_vars]

        new_values, new_inner = jax.lax.cond(finite, step, skip, None)
        new_scale, new_counter = next_loss_scale_keras3(scale, counter, finite, self.dynamic_growth_steps)
        return new_values, [own[0], own[1], new_counter, new_scale] + list(new_inner)

    @locked
    def apply(self, grads: Sequence[Any], trainable_variables: Sequence[Variable] | None = None) -> None:
        """``stateless_apply`` on the variables' values, written back."""
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is not None and not self._built:
            self.build(trainable_variables)
        if not self._built:
            raise ValueError(
                "When passing `grads` without `variables`, the optimizer must already be built on a list of "
                "variables. Call `optimizer.build(trainable_variables)` first."
            )
        inner = self.inner_optimizer
        variables = list(trainable_variables) if trainable_variables is not None else list(inner._variables)
        built = list(inner._variables)
        full = [None] * len(built)
        for g, v in zip(grads, variables):
            full[next(i for i, b in enumerate(built) if b is v)] = g
        opt_values = [v.value for v in self.variables]
        new_values, new_opt = self._step(opt_values, full, [v.value for v in built])
        self.set_weights(new_opt)
        for v, value in zip(built, new_values):
            v._set(value)

    def apply_gradients(self, grads_and_vars) -> Any:
        grads, variables = zip(*grads_and_vars)
        self.apply(grads, variables)
        return self.iterations

    def __reduce__(self) -> tuple:
        """Pickles as a fresh LossScaleOptimizer around the inner optimizer's own
        pickle (its config), as Keras 3 pickles optimizers."""
        return LossScaleOptimizer, (self.inner_optimizer, self.initial_scale, self.dynamic_growth_steps, self.name)

    # -- config ----------------------------------------------------------------
    def get_config(self) -> dict:
        """Keras 3's four keys."""
        return {
            "name": self.name,
            "inner_optimizer": serialize_optimizer(self.inner_optimizer) if isinstance(self.inner_optimizer, Keras3Optimizer)
            else {"module": "keras.optimizers", "class_name": "MultiOptimizer", "config": self.inner_optimizer.get_config(), "registered_name": None},
            "initial_scale": self.initial_scale,
            "dynamic_growth_steps": self.dynamic_growth_steps,
        }

    def __repr__(self) -> str:
        return f"<jaxopt_keras.optimizers.keras3.LossScaleOptimizer name={self.name!r}>"


def split_config(config: Mapping[str, Any]) -> tuple[Any, dict]:
    """``(inner config, the rest)`` of a Keras 3 LossScaleOptimizer config (either format)."""
    config = dict(config)
    if "inner_optimizer" not in config:
        raise ValueError(f"A LossScaleOptimizer config has no 'inner_optimizer' field: {sorted(config)}")
    return config.pop("inner_optimizer"), config
