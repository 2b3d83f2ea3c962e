"""Hyperparameters as attributes of the Keras optimizer object.

``opt.beta_1``, ``opt.learning_rate = ...``, ``opt.lr``, ``opt.clipnorm = ...``:
reading a numeric hyperparameter reads the state (where it lives, and only
there); assigning one checks it as the constructor does and writes the
state, so the jitted step does not recompile.  A structural argument
(clipping, ``loss_scale_factor``, ...) rebuilds the transformation and fits
the state to it.  A zero-argument callable hyperparameter (OptimizerV2's
``_get_hyper`` calls one whenever it reads it) is called on the host before
each step, its value written into the state.

:class:`HyperAttributes` is a mixin of
:class:`~jaxopt_keras.optimizers.optimizer.KerasOptimizer`, which provides
``_spec``, ``_args``, ``_hp``/``_set_hp``, ``_rebuild``, ``_lock``, the state
and the variables; the families (:mod:`jaxopt_keras.optimizers.families`,
:mod:`jaxopt_keras.optimizers.keras3_family`) read and write the learning
rate (``_get_hyper``, ``_get_learning_rate``, ``_put_learning_rate``).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.algorithms.driver import OptimizerState, init_hyperparams
from jaxopt_keras.core.hyperparams import VariableReader, is_variable, python_scalar
from jaxopt_keras.core.state import find_state, replace_state
from jaxopt_keras.keras.arguments import check_clipping
from jaxopt_keras.keras.base_args import CLIP_ARGS
from jaxopt_keras.keras.numbers import check_hyperparameter
from jaxopt_keras.optimizers.variable import StateView, Variable
from jaxopt_keras.optimizers.weights import locked
from jaxopt_keras.schedules.base import is_schedule
from jaxopt_keras.transforms.accumulation import AccumulationState, check_loss_scale_factor
from jaxopt_keras.transforms.ema import EmaState


class HyperAttributes:
    """Numeric hyperparameters and structural arguments read and assigned as attributes."""

    # Constructor arguments with no effect here, stored as given when assigned.
    _INERT: tuple[str, ...] = ("jit_compile",)
    # ``lr``, TF-Keras's alias of ``learning_rate`` (Keras 3 has none: a plain attribute there).
    _LR_ALIAS: bool = True

    def _host_callables(self) -> dict[str, Callable[[], Any]]:
        """Hyperparameters given as zero-argument callables: called on the host
        before each step, their values written into the state (no recompilation).

        OptimizerV2's ``_get_hyper`` calls such a hyperparameter whenever it
        reads it; the legacy family takes one for each of
        ``Spec.callable_hyperparams`` (Keras 3 for the learning rate).
        """
        return {n: self._args[n] for n in self._spec.callable_hyperparams() if self._spec.is_host_callable(n, self._args.get(n))}

    def _host_values(self, names: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The host callables' current values (of ``names`` only, if given), checked as
        the constructor checks a number.  Each call calls them, as OptimizerV2's
        ``_get_hyper`` does: a stateful callable sees every read.

        Raises:
          TypeError, ValueError: a callable returned something the constructor refuses.
        """
        values = {}
        for name, fn in self._host_callables().items():
            if names is not None and name not in names:
                continue
            value = python_scalar(fn())
            check_hyperparameter(self._spec, name, value)
            values[name] = value
        return values

    def _held_host_values(self) -> dict[str, Any]:
        """The host callables' values without calling them (OptimizerV2 calls them only when it
        reads them): the state's, which the next step replaces; a callable the state has no value
        for yet is called."""
        held = {k: float(self._hp[k]) for k in self._host_callables() if k in self._hp.primary}
        return {**self._host_values(tuple(k for k in self._host_callables() if k not in held)), **held}

    def _hyperparam_args(self) -> dict[str, Any]:
        """Extra arguments to :func:`~jaxopt_keras.algorithms.driver.init_hyperparams` (a family's storage dtypes)."""
        return {}

    def _hyper_names(self) -> tuple[str, ...]:
        return tuple(self._hp.primary)

    def _hyper_view(self, name: str) -> StateView:
        """A view of the hyperparameter's state value, named as the family names it (``_hyper_path``)."""
        return self._VIEW(self._hyper_path(name), lambda: self._hyper_value(name), lambda value: self._set_numeric_hyper(name, value))

    def _hyper_path(self, name: str) -> str:
        return f"{name}:0"

    @locked
    def _hyper_value(self, name: str) -> jax.Array:
        return jnp.array(self._hp[name], copy=True)  # a copy: the next step donates the state's buffers

    @locked
    def _set_numeric_hyper(self, name: str, value: Any) -> None:
        held = self._args.get(name)
        if isinstance(held, VariableReader) and not is_variable(value) and not callable(value):
            # OptimizerV2's `_set_hyper` assigns a number to the variable it was given.
            check_hyperparameter(self._spec, name, python_scalar(value))
            held.variable.assign(value)
            self._set_hp(self._hp.replace(**{name: held()}))
            return
        if self._spec.is_host_callable(name, value):
            # OptimizerV2's `_set_hyper` takes a callable: called from now on before each step.
            current = python_scalar(value())
            check_hyperparameter(self._spec, name, current)
            self._set_hp(self._hp.replace(**{name: current}))
            self._args[name] = value
            return
        check_hyperparameter(self._spec, name, value)
        self._set_hp(self._hp.replace(**{name: value}))
        if not isinstance(value, jax.core.Tracer):
            self._args[name] = python_scalar(value)

    def _learning_rate_is_schedule(self) -> bool:
        return is_schedule(self._args["learning_rate"]) and "learning_rate" not in self._host_callables()

    def _set_learning_rate_source(self, value: Any) -> None:
        """Replaces a schedule by another, or a float by a schedule (a new step function)."""
        self._args["learning_rate"] = value
        values = dict(self._hp.primary)
        values.pop("learning_rate", None)
        hp = init_hyperparams(self._spec, {**self._args, **self._held_host_values(), **self._hyperparam_args()})
        hp = hp.replace(**{k: v for k, v in values.items() if k in hp.primary})
        self._set_hp(hp)  # the hyperparameter mapping changed shape: the state with it
        self._rebuild()

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: hyperparameters and Keras attributes.
        if name.startswith("_"):
            raise AttributeError(name)
        args = self.__dict__.get("_args")
        if args is None:
            raise AttributeError(name)
        if name == "lr" and self._LR_ALIAS:
            name = "learning_rate"
        with self._lock:
            if name == "learning_rate":
                return self._get_learning_rate()
            if name in self._hyper_names():
                return self._get_hyper(name)
        if name in args:
            return args[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or not self.__dict__.get("_initialized", False):
            object.__setattr__(self, name, value)
            return
        with self._lock:
            self._set_public(name, value)

    def _set_public(self, name: str, value: Any) -> None:
        """A public attribute's assignment: a hyperparameter, a structural argument, ``iterations``."""
        if name == "lr" and self._LR_ALIAS:
            name = "learning_rate"
        if name == "learning_rate":
            self._put_learning_rate(value)
        elif name in self._hyper_names():
            self._set_numeric_hyper(name, value)
        elif name in self._STATIC or any(s.name == name and s.value is None for s in self._spec.statics):
            self._set_static(name, value)
        elif name == "iterations":
            self._assign_iterations(value)
        elif name in self._args and name not in self._INERT:
            # Keras reads these at each step (or trace); here they shape the
            # transformation built once, so an assignment would be ignored.
            raise AttributeError(
                f"`{name}` of {type(self).__name__} is fixed when the optimizer is constructed, and assigning it "
                f"would change nothing. Construct a new one: {type(self).__name__}.from_config("
                f"{{**optimizer.get_config(), {name!r}: ...}}) (and `set_weights` to carry the state over)."
            )
        else:
            object.__setattr__(self, name, value)

    def _assign_iterations(self, value: Any) -> None:
        """``opt.iterations = value``, Keras's rule: Keras 3 has no setter; TF-Keras
        replaces its counter before the build (here: the count takes the value)
        and refuses it after.  ``opt.iterations.assign(value)`` works at any time."""
        if self._family == "keras3":
            raise AttributeError(f"property 'iterations' of '{type(self).__name__}' object has no setter")
        if self.built:
            hint = "" if self._family == "legacy" else (
                "Usually this means you are trying to set `iterations` after calling `apply_gradients()`. "
                "Please set `iterations` before calling `apply_gradients()`."
            )
            raise RuntimeError(
                "Cannot set `iterations` to a new Variable after the Optimizer weights have been created. "
                f"Here it is attempting to set `iterations` to {value}.{hint}"
            )
        self._set_iterations(value.value if isinstance(value, Variable) else value)

    def _set_static(self, name: str, value: Any) -> None:
        if name in self._SLOT_SHAPING and self.built and value != self._args.get(name):
            raise ValueError(f"`{name}` changes the optimizer's slots; it cannot change after the optimizer is built.")
        check_hyperparameter(self._spec, name, value)  # a numeric static (Schedule-Free AdamW's betas): the constructor's rules
        new_args = dict(self._args, **{name: value})
        if name in CLIP_ARGS:
            check_clipping(new_args, self._family)
        if name == "loss_scale_factor":
            check_loss_scale_factor(value)
        self._args = new_args
        self._rebuild()
        self._restructure_state()

    def _restructure_state(self) -> None:
        """Fits the state to a rebuilt transformation (clipping added or removed).

        The transformation's chain has one part per configured feature, so its
        state's structure can change; the stateful parts (the optimizer's, the
        moving average's, the accumulator's) carry over unchanged.
        """
        fresh = self._transformation.init([v.value for v in self._variables])
        if jax.tree_util.tree_structure(fresh) == jax.tree_util.tree_structure(self._state):
            return
        for cls in (OptimizerState, EmaState, AccumulationState):
            old = find_state(self._state, cls, required=False)
            if old is not None and find_state(fresh, cls, required=False) is not None:
                fresh = replace_state(fresh, cls, lambda _, old=old: old)
        self._state = fresh

    def _get_hyper(self, name: str) -> Any:
        raise NotImplementedError

    def _get_learning_rate(self) -> Any:
        raise NotImplementedError

    def _put_learning_rate(self, value: Any) -> None:
        raise NotImplementedError
