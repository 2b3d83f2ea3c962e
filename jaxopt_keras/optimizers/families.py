"""What differs per family in the object API: OptimizerV2 (legacy) and the current Optimizer.

The math, the arguments and the pipeline are the core's; here are only the
object-level rules each Keras base class sets: when it builds, how it names
its weights, what its hyperparameter attributes return, and its config.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.algorithms.driver import learning_rate_at
from jaxopt_keras.core import transform as base
from jaxopt_keras.core.hyperparams import VariableReader
from jaxopt_keras.optimizers.family_mixins import BuiltWeightsMixin, ConfigMixin, GradientsMixin
from jaxopt_keras.optimizers.optimizer import KerasOptimizer
from jaxopt_keras.optimizers.variable import StateView, Variable
from jaxopt_keras.optimizers.weights import Weight, keras_name, locked
from jaxopt_keras.schedules.base import LearningRateSchedule, is_schedule


def has_gpu() -> bool:
    """Whether JAX sees a GPU.  TF-Keras's current ``Optimizer`` turns
    ``jit_compile`` off where it finds no GPU, so its ``get_config()`` reports
    ``jit_compile and has_gpu()``."""
    return any(d.platform == "gpu" for d in jax.devices())


class OptimizerV2(GradientsMixin, ConfigMixin, KerasOptimizer):
    """Base class of the legacy family (``tf.keras.optimizers.legacy.Optimizer``).

    Constructor arguments beyond the algorithm's: ``lr`` (deprecated alias),
    ``decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``,
    ``gradient_aggregator`` (a function of the ``[(grad, var)]`` list, run
    inside the jitted step before clipping) and ``gradient_transformers``
    (functions of that list, run after clipping).
    """

    _family: ClassVar[str] = "legacy"
    _LAYER_ONLY = ("gradient_aggregator", "gradient_transformers")
    _ITER_NAME = "iter"

    def apply_gradients(self, grads_and_vars: Any, name: str | None = None, experimental_aggregate_gradients: bool = True):
        """OptimizerV2's signature (an unknown keyword is a ``TypeError``); an empty list creates the
        weights (``iter``) and returns ``None`` (``tf.no_op()``); see :meth:`KerasOptimizer.apply_gradients`."""
        pairs = list(grads_and_vars)
        if not pairs and not self.built:
            self.build([])
        return super().apply_gradients(pairs, name) if pairs else None

    def _check_layer_args(self, layer_only):
        transformers = layer_only.get("gradient_transformers") or []
        if transformers:
            for k in ("clipnorm", "global_clipnorm", "clipvalue"):
                if self._args.get(k) is not None:
                    raise ValueError(
                        f"`{k}` cannot be set when `gradient_transformers` is set. Instead, use the "
                        "`gradient_transformers` to specify clipping and other transformations. "
                        f"Received: val={self._args[k]}, gradient_transformers={transformers}."
                    )
        return {"gradient_aggregator": layer_only.get("gradient_aggregator"), "gradient_transformers": list(transformers)}

    def _pre(self) -> base.GradientTransformation | None:
        """``gradient_aggregator``, then ``gradient_transformers``.

        OptimizerV2 runs the aggregator, then clipping, then the transformers;
        it refuses clipping arguments together with transformers, so running
        both before the optimizer (which clips first) keeps its order.
        """
        aggregator = self._layer_args.get("gradient_aggregator")
        transformers = self._layer_args.get("gradient_transformers") or []
        if aggregator is None and not transformers:
            return None

        def apply_pairs(fn, updates):
            pairs = [(g, v) for g, v in zip(updates, self._variables) if g is not None]
            new = list(updates)
            for g, v in fn(pairs):
                new[self._index[id(v)]] = g
            return new

        def update(updates, state, params=None, **extra_args):
            del params, extra_args  # the pairs are (gradient, variable): neither is read
            if aggregator is not None:
                updates = apply_pairs(aggregator, updates)
            for fn in transformers:
                updates = apply_pairs(fn, updates)
            return updates, state

        return base.GradientTransformation(lambda params: base.EmptyState(), update)

    @property
    def gradient_aggregator(self):
        return self._layer_args.get("gradient_aggregator")

    @property
    def gradient_transformers(self):
        return self._layer_args.get("gradient_transformers")

    def _create_all_weights(self, var_list: Sequence[Variable]) -> None:
        """OptimizerV2's name for :meth:`build` (the slots of ``var_list``)."""
        self.build(var_list)

    def _decayed_lr(self, var_dtype: Any = np.float32) -> jax.Array:
        """OptimizerV2's ``_decayed_lr``: the learning rate the next step uses, in
        ``var_dtype``: ``schedule(iterations)``, a callable's value or the float32
        hyperparameter, then ``lr / (1 + decay * iterations)`` with the constructor's ``decay``."""
        hp = self._hp
        values = self._host_values(("learning_rate",))  # `_get_hyper` calls a zero-argument callable
        if values:
            hp = hp.replace(**values)
        source = self._args["learning_rate"] if self._learning_rate_is_schedule() else None
        decay = self._args.get("decay") or 0.0
        return learning_rate_at(source, self._iterations_value(), hp, np.dtype(var_dtype), "legacy", decay)

    def _build_for(self, pairs, kept) -> None:
        self._register([v for _, v in kept])
        self._scoped = True

    def _set_numeric_hyper(self, name: str, value: Any) -> None:
        # OptimizerV2's step and get_config() read `_initial_decay`, the
        # constructor's value: assigning the `decay` hyper changes the
        # variable (and what reading it returns), not the step or the config.
        initial = self._args.get("decay")
        super()._set_numeric_hyper(name, value)
        if name == "decay":
            self._args["decay"] = initial

    # Hyperparameters: OptimizerV2 returns its hyper variables.
    def _get_hyper(self, name: str) -> Any:
        self._hypers_read = True
        if isinstance(self._args.get(name), VariableReader):  # the variable it was given
            return self._args[name].variable
        if name in self._spec.float32_hyperparams or name in ("learning_rate", "decay"):
            return self._hyper_view(name)
        return self._args[name]

    def _get_learning_rate(self) -> Any:
        if self._learning_rate_is_schedule():
            self._hypers_read = True
            return self._args["learning_rate"]
        return self._get_hyper("learning_rate")

    def _put_learning_rate(self, value: Any) -> None:
        if (is_schedule(value) and not self._spec.is_host_callable("learning_rate", value)) or self._learning_rate_is_schedule():
            self._set_learning_rate_source(value)
        else:
            self._set_numeric_hyper("learning_rate", value.value if isinstance(value, Variable) else value)

    def _serialize_learning_rate(self) -> Any:
        if "learning_rate" in self._host_callables():
            return self._serialize_hyper("learning_rate")
        return super()._serialize_learning_rate()

    def _serialize_hyper(self, key: str) -> Any:
        if key in self._host_callables():  # `_serialize_hyperparameter` calls it
            return self._host_values((key,))[key]
        # Once its hyper variables exist (built, or read), OptimizerV2 reports their values,
        # float32 (float64 for an np.float64 given with x64 on).
        if (key in self._spec.float32_hyperparams and key not in self._spec.attributes) or key == "learning_rate":
            if (self.built or self._hypers_read) and key in self._hp:
                return np.asarray(self._hp[key])[()]
        return self._args[key]

    def get_config(self) -> dict:
        """Equal to ``tf.keras.optimizers.legacy.<Class>.get_config()`` for the same arguments."""
        config = {"name": self._init_name}  # OptimizerV2's `_name`: assigning `name` does not change it
        for key in ("clipnorm", "clipvalue", "global_clipnorm"):
            if self._args.get(key) is not None:
                config[key] = self._args[key]
        algo = self._algorithm_config()
        config["learning_rate"] = algo.pop("learning_rate")
        config["decay"] = self._args["decay"]
        config.update(algo)
        return self._extension_config(config)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if "lr" in config:
            config["learning_rate"] = config.pop("lr")
        # A serialization marker, not an argument (the current family drops it
        # in its constructor); `deserialize` reads the family from it.
        if config.get("is_legacy_optimizer") is True:
            config.pop("is_legacy_optimizer")
        return super().from_config(config, custom_objects)

    def _weight_name(self, weight: Weight, variable: str) -> str:
        return f"{self._init_name}/{keras_name(self._spec, weight, variable)}:0"

    def _iter_weight_name(self) -> str:
        return f"{self._init_name}/iter:0"


class Optimizer(GradientsMixin, BuiltWeightsMixin, ConfigMixin, KerasOptimizer):
    """Base class of the current family (``tf.keras.optimizers.Optimizer``, TF-Keras >= 2.11).

    Constructor arguments beyond the algorithm's: ``weight_decay``,
    ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``use_ema``,
    ``ema_momentum``, ``ema_overwrite_frequency``, ``jit_compile`` (the step
    is always jitted; the config reports it as TF-Keras does, true only with a
    GPU), and Keras 3's ``loss_scale_factor`` and ``gradient_accumulation_steps``.
    """

    _family: ClassVar[str] = "current"

    def _build_for(self, pairs, kept) -> None:
        if not self.built:
            self._register([v for _, v in pairs])
            self._scoped = True

    def _unknown_variable(self, variable: Variable) -> None:
        raise KeyError(
            f"The optimizer cannot recognize variable {variable.name}. This usually means you are "
            "trying to call the optimizer to update different parts of the model separately. Please "
            "call `optimizer.build(variables)` with the full list of trainable variables before the "
            f"training loop or use legacy optimizer `jaxopt_keras.optimizers.legacy.{type(self).__name__}."
        )

    @locked
    def exclude_from_weight_decay(self, var_list: Sequence[Variable] | None = None, var_names: Sequence[str] | None = None) -> None:
        """Exempts variables (by identity, or by regex on their names) from weight decay.

        Raises:
          ValueError: the optimizer is already built.
        """
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configued before the optimizer is built.")
        ids = [id(v) for v in var_list] if var_list else []
        self._weight_decay_exclude = (ids, list(var_names or []))

    @locked
    def finalize_variable_values(self, var_list: Sequence[Variable]) -> None:
        """With ``use_ema``, overwrites the variables with their moving averages."""
        if not self._args.get("use_ema") or not self.built:
            return
        averages = self._ema().average
        for v in self._check_variables(var_list):
            v.assign(averages[self._index[self._var_key(v)]])

    def _get_hyper(self, name: str) -> Any:
        # The current family keeps Python floats; the state holds the live value.
        return self._args[name]

    def _get_learning_rate(self) -> Any:
        if self._learning_rate_is_schedule():
            schedule = self._args["learning_rate"]
            # TF-Keras's `_current_learning_rate`: the rate the last step used,
            # `schedule(iterations - 1)` (before the first step, `schedule(0)`),
            # as the step computes it (the family's numerics).
            def last_used():
                count = self._iterations_value()
                return learning_rate_at(schedule, jnp.maximum(count - 1, 0).astype(count.dtype), None, None, self._family)

            return StateView("current_learning_rate:0", last_used, _read_only)
        return self._hyper_view("learning_rate")

    def _put_learning_rate(self, value: Any) -> None:
        if isinstance(value, LearningRateSchedule):
            self._set_learning_rate_source(value)
        elif self._learning_rate_is_schedule():
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its "
                "`learning_rate` constructor argument, hence its learning rate is not settable. "
                "If you need the learning rate to be settable, you should instantiate the "
                "optimizer with a float `learning_rate` argument."
            )
        elif is_schedule(value):  # TF-Keras assigns it to its learning-rate variable
            raise ValueError(f"Attempt to convert a value ({value!r}) with an unsupported type ({type(value)}) to a Tensor.")
        else:
            self._set_numeric_hyper("learning_rate", value.value if isinstance(value, Variable) else value)

    def _serialize_hyper(self, key: str) -> Any:
        if key == "learning_rate":  # a float32 tf.Variable in TF-Keras
            return np.float32(self._hp["learning_rate"])
        return self._args[key]

    def get_config(self) -> dict:
        """Equal to ``tf.keras.optimizers.<Class>.get_config()`` for the same arguments."""
        config = {
            "name": self._name,
            "weight_decay": self._args["weight_decay"],
            "clipnorm": self._args["clipnorm"],
            "global_clipnorm": self._args["global_clipnorm"],
            "clipvalue": self._args["clipvalue"],
            "use_ema": self._args["use_ema"],
            "ema_momentum": self._args["ema_momentum"],
            "ema_overwrite_frequency": self._args["ema_overwrite_frequency"],
            "jit_compile": bool(self._args["jit_compile"]) and has_gpu(),
            "is_legacy_optimizer": False,
        }
        config.update(self._algorithm_config())
        for key in ("loss_scale_factor", "gradient_accumulation_steps"):  # Keras 3's; kept when set
            if self._args.get(key) is not None:
                config[key] = self._args[key]
        return self._extension_config(config)

    def _weight_name(self, weight: Weight, variable: str) -> str:
        if weight.kind == "iterations":
            return "iteration:0"  # created in __init__, outside any name scope
        prefix = f"{self._built_name or 'optimizer'}/" if self._scoped else ""  # TF-Keras's scope for no name
        return f"{prefix}{keras_name(self._spec, weight, variable)}:0"


def _read_only(value):
    raise ValueError("This value is computed from a schedule and cannot be assigned.")
