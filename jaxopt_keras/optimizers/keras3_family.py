"""The Keras 3 object API: ``keras.optimizers.Optimizer`` of Keras 3, over the pure core.

What differs from the TF-Keras families (:mod:`~jaxopt_keras.optimizers.families`):

* the variables: ``iterations`` (int32) and ``learning_rate`` exist before
  ``build`` and lead the ``variables`` list, which then holds the moving
  averages, the gradient accumulators, the slots (named
  ``<optimizer>/<variable path with _>_<slot>``) and last the optimizer's
  scalars (Nadam's ``u_product``);
* ``apply(grads, trainable_variables)`` and ``stateless_apply``, pure: it
  takes and returns the optimizer variables' values as Keras 3 does;
* ``scale_loss``, variable ``constraint``s applied after the update,
  ``overwrite_with_gradient`` variables, a warning on ``None`` gradients;
* a zero-argument callable as the learning rate (called once per step);
* auto-naming (``adam``, ``adam_1``, ``rm_sprop``) and Keras 3's config:
  Python values, ``learning_rate`` rounded through float32.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Callable, ClassVar, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.algorithms.driver import DEFAULT_NUMERICS
from jaxopt_keras.core import transform as base
from jaxopt_keras.core.hyperparams import widest_float
from jaxopt_keras.core.resolve import function_config, is_function_config, resolve_function
from jaxopt_keras.core.state import checked_count
from jaxopt_keras.optimizers.family_mixins import BuiltWeightsMixin, ConfigMixin
from jaxopt_keras.optimizers.optimizer import KerasOptimizer
from jaxopt_keras.optimizers.names import auto_name
from jaxopt_keras.optimizers.variable import Keras3View, StateView, Variable
from jaxopt_keras.optimizers.entries import hyper_entry, is_count, read_iterations, shared
from jaxopt_keras.optimizers.weights import Weight, keras_name, locked
from jaxopt_keras.schedules.base import LearningRateSchedule
from jaxopt_keras.schedules.serialization import serialize_keras3
from jaxopt_keras.transforms.accumulation import overwrite_with_gradients

BASE_CONFIG_KEYS = (
    "weight_decay",
    "clipnorm",
    "global_clipnorm",
    "clipvalue",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
)


def is_zero_arg_callable(lr: Any) -> bool:
    """A learning rate given as a function of nothing (Keras 3's callable)."""
    return callable(lr) and not isinstance(lr, (LearningRateSchedule, jax.Array, np.ndarray))


class Keras3Optimizer(BuiltWeightsMixin, ConfigMixin, KerasOptimizer):
    """Base class of the Keras 3 family (``keras.optimizers.Optimizer``).

    Constructor arguments beyond the algorithm's: ``weight_decay``,
    ``clipnorm``, ``clipvalue``, ``global_clipnorm`` (at most one of the
    three), ``use_ema``, ``ema_momentum``, ``ema_overwrite_frequency``,
    ``loss_scale_factor``, ``gradient_accumulation_steps``, ``name`` (by
    default an automatic snake-case name).
    """

    _family: ClassVar[str] = "keras3"
    _STATIC: ClassVar[tuple[str, ...]] = KerasOptimizer._STATIC + ("loss_scale_factor",)
    _VIEW: ClassVar[type] = Keras3View
    _LR_ALIAS = False  # Keras 3 has no `lr`: reading it is an AttributeError, assigning it sets a plain attribute

    def _check_name(self, name: Any, kwargs: Mapping[str, Any]) -> Any:
        # Keras 3 numbers a name once the keyword arguments are taken (all but `decay` refused), before any
        # other check: a construction that fails later leaves the number taken. `check_arguments` checks `name`.
        return auto_name(type(self).__name__) if name is None and not set(kwargs) - {"decay"} else name

    # -- the learning rate ---------------------------------------------------
    def _host_callables(self) -> dict[str, Callable[[], Any]]:
        # Keras 3 calls a callable learning rate with no arguments (any callable but a schedule).
        fn = self._lr_function()
        return {} if fn is None else {"learning_rate": fn}

    def _lr_function(self) -> Callable[[], Any] | None:
        lr = self._args["learning_rate"]
        return lr if is_zero_arg_callable(lr) else None

    def _hyperparam_args(self) -> dict:
        # Keras 3 casts a callable's value straight to the variable's dtype
        # (`ops.cast(learning_rate, variable.dtype)`): no float32 variable between.
        return {"learning_rate_dtype": widest_float()} if self._lr_function() is not None else {}

    def _get_learning_rate(self) -> Any:
        lr = self._args["learning_rate"]
        if isinstance(lr, LearningRateSchedule):
            return jnp.asarray(lr.evaluate(self._iterations_value(), DEFAULT_NUMERICS["keras3"]))
        if is_zero_arg_callable(lr):
            return lr()
        return self._hyper_view("learning_rate")

    def _put_learning_rate(self, value: Any) -> None:
        if isinstance(value, LearningRateSchedule) or is_zero_arg_callable(value):
            self._set_learning_rate_source(value)
        elif isinstance(self._args["learning_rate"], LearningRateSchedule):
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its "
                "`learning_rate` constructor argument, hence its learning rate is not settable. "
                "If you need the learning rate to be settable, you should instantiate the "
                "optimizer with a float `learning_rate` argument."
            )
        elif is_zero_arg_callable(self._args["learning_rate"]):
            raise AttributeError("'function' object has no attribute 'assign'")
        elif value is None or isinstance(value, (str, bytes)):  # Keras 3's variable.assign raises ValueError
            raise ValueError(f"Hyperparameter `learning_rate` must be a number. Received: learning_rate={value!r}.")
        else:
            self._set_numeric_hyper("learning_rate", value.value if isinstance(value, Variable) else value)

    def _get_hyper(self, name: str) -> Any:
        return self._args[name]

    @property
    def iterations(self) -> Any:
        """Updates taken: the call count, divided by ``gradient_accumulation_steps`` when set."""
        steps = self._args.get("gradient_accumulation_steps")
        raw = self._iteration_view()
        return raw if not steps else jnp.floor_divide(raw.value, steps)

    @staticmethod
    @shared
    def _read_iterations(state: Any) -> jax.Array:
        """Keras 3 counts in an int32 variable, under x64 too (our state's counter is then int64)."""
        count = read_iterations(state)
        return count if count.dtype == jnp.int32 else jnp.minimum(count, np.iinfo(np.int32).max).astype(jnp.int32)  # saturating

    @shared
    def _write_iterations(self, state: Any, value: Any) -> Any:
        return super()._write_iterations(state, checked_count(value, np.int32, widens=False))

    def _iteration_view(self) -> Keras3View:
        """The call count, Keras 3's ``iteration`` variable."""
        return Keras3View(f"{self._init_name}/iteration", self._iterations_value, self._set_iterations)

    def _hyper_path(self, name: str) -> str:
        return f"{self._init_name}/{name}"  # Keras 3's variable: adam/learning_rate

    # -- variables -------------------------------------------------------------
    def _var_path(self, v: Variable) -> str:
        return v.path.replace("/", "_")

    def _weight_name(self, weight: Weight, variable: str) -> str:
        owner = self._init_name if weight.kind in ("iterations", "hyper") else self._built_name  # made in __init__, or built
        return f"{owner}/{keras_name(self._spec, weight, variable)}"

    def _stateless_variables(self) -> tuple[int, ...]:
        return tuple(i for i, v in enumerate(self._variables) if v.overwrite_with_gradient)

    @property
    def weights(self) -> list[StateView]:
        return [self._view(*entry) for entry in self._weight_entries()]

    @locked
    def get_weights(self) -> list[np.ndarray]:
        return [np.array(read(self._state)) for _, read, _ in self._weight_entries()]

    def _after_set_weights(self, state: Any) -> Any:
        return self._write_iterations(state, read_iterations(state))

    # -- building and applying -------------------------------------------------
    def _build_for(self, pairs, kept) -> None:
        if not self.built:
            self._register([v for _, v in pairs])

    def _unknown_variable(self, variable: Variable) -> None:
        raise ValueError(
            f"Unknown variable: {variable}. This optimizer can only be called for the variables it was "
            "originally built with. When working with a new set of variables, you should recreate a new "
            "optimizer instance."
        )

    def _filter(self, grads_and_vars) -> tuple[list, list]:
        pairs = list(grads_and_vars)
        self._check_variables(v for _, v in pairs)
        kept = [(g, v) for g, v in pairs if g is not None]
        if pairs and not kept:
            raise ValueError("No gradients provided for any variable.")
        self._once_each(kept)
        if len(kept) < len(pairs):
            missing = [v.path for g, v in pairs if g is None]
            warnings.warn(
                f"Gradients do not exist for variables {missing} when minimizing the loss. If using "
                "`model.compile()`, did you forget to provide a `loss` argument?",
                UserWarning,
                stacklevel=3,
            )
        return pairs, kept

    def _pure_step(self, values: list, state: Any, grads: list) -> tuple[list, Any]:
        """Keras 3's ``apply`` on values: overwrite-with-gradient variables take
        their gradient (under accumulation, the running maximum on update calls:
        :func:`~jaxopt_keras.transforms.accumulation.overwrite_with_gradients`),
        the others the transformation's step, then constraints."""
        overwrite = [v.overwrite_with_gradient for v in self._variables]
        assigned, state = overwrite_with_gradients(
            grads, overwrite, values, state, self._args.get("gradient_accumulation_steps")
        )
        stepped = [None if o else g for g, o in zip(grads, overwrite)]
        updates, state = self._transformation.update(stepped, state, values)
        new = base.apply_updates(values, updates)
        out = []
        for v, value, g, a in zip(self._variables, new, grads, assigned):
            if a is not None:
                value = a
            elif g is not None and v.constraint is not None:
                value = jnp.asarray(v.constraint(value)).astype(value.dtype)
            out.append(value)
        return out, state

    def apply(self, grads: Sequence[Any], trainable_variables: Sequence[Variable] | None = None):
        """Applies one step; ``grads`` match ``trainable_variables`` (or, if omitted,
        the variables the optimizer was built with)."""
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `variables`, the optimizer must already be built on a "
                    "list of variables. Call `optimizer.build(trainable_variables)` first. "
                )
            if len(grads) != len(self._variables):
                raise ValueError(
                    "When passing `grads` as a list of gradient tensors, the gradients must match "
                    f"`optimizer.variables` one-to-on. Received a list of {len(grads)} gradients, but the "
                    f"optimizer is tracking {len(self._variables)} trainable variables."
                )
            trainable_variables = self._variables
        self.apply_gradients(zip(grads, trainable_variables))

    def apply_gradients(self, grads_and_vars, **kwargs: Any):
        """``apply`` on ``(gradient, variable)`` pairs; returns the call count."""
        if kwargs:
            raise TypeError(f"apply_gradients() got unexpected keyword arguments {sorted(kwargs)}")
        pairs, kept = self._filter(grads_and_vars)
        if pairs:
            with self._lock:
                self._build_for(pairs, kept)
                self._run(kept)
        return self._iteration_view()

    @locked
    def stateless_apply(self, optimizer_variables: Sequence[Any], grads: Sequence[Any], trainable_variables: Sequence[Any]):
        """One step as a pure function of values: ``(new trainable values, new optimizer variables)``.

        ``optimizer_variables`` are the values of :attr:`variables`, in order;
        ``grads`` and ``trainable_variables`` follow the variables the optimizer
        was built with (``None`` gradients allowed).  Nothing is changed; jit it
        freely.
        """
        cls = type(self).__name__
        if not self.built:
            raise ValueError(
                f"To call `stateless_apply`, {cls} must be built (i.e. its variables must have been "
                "created). You can build it via `optimizer.build(trainable_variables)`."
            )
        entries = self._weight_entries()
        if len(optimizer_variables) != len(entries):
            raise ValueError(
                f"Argument `optimizer_variables` must be a list of tensors corresponding 1:1 to {cls}().variables. "
                f"Received list with length {len(optimizer_variables)}, but expected {len(entries)} variables."
            )
        if len(trainable_variables) != len(self._variables):
            raise ValueError(
                "Argument `optimizer_variables` must be a list of tensors corresponding 1:1 to the trainable "
                "variables list that the optimizer was built with. Received len(trainable_variables) == "
                f"{len(trainable_variables)} whereas the optimizer was built with {len(self._variables)} variables."
            )
        state = self._state
        for (_, read, write), value in zip(entries, optimizer_variables):
            like = read(state)
            state = write(state, value if is_count(like) else jnp.asarray(value).astype(like.dtype))
        fn = self._lr_function()
        if fn is not None:
            state = hyper_entry("learning_rate")[1](state, fn())
        values = [jnp.asarray(v.value if isinstance(v, Variable) else v) for v in trainable_variables]
        grads = [None if g is None else jnp.asarray(g) for g in grads]
        new_values, new_state = self._pure_step(values, state, grads)
        return new_values, [read(new_state) for _, read, _ in entries]

    def scale_loss(self, loss: Any) -> Any:
        """``loss * loss_scale_factor`` when it is set, else ``loss``."""
        factor = self._args.get("loss_scale_factor")
        return loss if factor is None else loss * factor

    @locked
    def exclude_from_weight_decay(self, var_list=None, var_names=None) -> None:
        """Exempts variables (by identity, or by ``re.search`` on the last part of their path).

        After the build too, as Keras 3 (which resets its per-variable cache
        of the decision): from the next step on, which is traced again.  Each
        call replaces the previous one's exclusions, as in Keras 3.
        """
        self._weight_decay_exclude = ([id(v) for v in var_list or []], list(var_names or []))
        if self.built:
            self._rebuild()
            self._restructure_state()

    def _decay_mask(self, params: Any) -> list[bool] | None:
        if self._weight_decay_exclude is None:  # all of them: the transformation runs on any tree (a ported flax one)
            return None
        ids, names = self._weight_decay_exclude
        pattern = re.compile("|".join(set(names))) if names else None
        return [
            not (id(v) in ids or (pattern is not None and pattern.search(v.path.rsplit("/", 1)[-1])))
            for v in self._variables
        ]

    @locked
    def finalize_variable_values(self, var_list: Sequence[Variable]) -> None:
        """With ``use_ema``, overwrites the variables with their moving averages."""
        if not self._args.get("use_ema") or not self.built:
            return
        var_list = self._check_variables(var_list)
        if len(var_list) != len(self._variables):
            raise ValueError(
                f"The length of model variables ({len(var_list)}) to override does not match the length of "
                f"model variables stored in the optimizer ({len(self._variables)}). Please check if the "
                "optimizer was called on your model."
            )
        averages = self._ema().average
        for v, avg in zip(var_list, averages):
            if not v.overwrite_with_gradient:
                v.assign(avg)

    # -- config ----------------------------------------------------------------
    def _serialize_hyper(self, key: str) -> Any:
        if key == "learning_rate":
            return float(np.float32(self._hp["learning_rate"]))
        return self._args[key]

    def get_config(self) -> dict:
        """Keras 3's config: Python values, the base keys first."""
        algo = self._algorithm_config()
        config = {"name": self._name, "learning_rate": algo.pop("learning_rate")}
        config.update({k: self._args[k] for k in BASE_CONFIG_KEYS})
        config.update({k: v for k, v in algo.items() if k not in config})
        return self._extension_config(config)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None) -> Keras3Optimizer:
        """Rebuilds an optimizer from :meth:`get_config` output (or Keras 3's).  A
        learning rate serialized as a function is the one of its name in
        ``custom_objects`` (Keras 3's lookup, :func:`core.resolve.resolve_function`)."""
        lr = config.get("learning_rate") if isinstance(config, Mapping) else None
        if is_function_config(lr):
            config = {**config, "learning_rate": resolve_function(lr, custom_objects)}
        return super().from_config(config, custom_objects)

    def __reduce__(self) -> tuple:
        # A function learning rate is written by its name: the pickle carries the function itself to find it by.
        fn = self._lr_function()
        if fn is None or function_config(fn) is fn:
            return super().__reduce__()
        return type(self).from_config, (self.get_config(), {fn.__name__: fn})

    def _serialize_learning_rate(self) -> Any:
        if self._lr_function() is not None:
            return function_config(self._args["learning_rate"])  # Keras 3's {"class_name": "function", ...}
        if isinstance(self._args["learning_rate"], LearningRateSchedule):
            return serialize_keras3(self._args["learning_rate"])
        return super()._serialize_learning_rate()
