"""The Keras layer: stateful optimizer classes over the pure core.

One generic class, :class:`KerasOptimizer`, driven by an algorithm's
:class:`~jaxopt_keras.algorithms.base.Numerics` description, gives every
optimizer Keras's surface: its constructor arguments and errors,
``apply_gradients``/``minimize`` on :class:`~jaxopt_keras.Variable` objects,
hyperparameters as attributes, ``get_config``/``from_config``, and the weights
list (``weights``, ``get_weights``, ``set_weights``) in Keras's exact order.
The two families differ only in the few rules :class:`OptimizerV2` (legacy)
and :class:`Optimizer` (current) set.

The math is the core's: an instance's :attr:`transformation` is the same
``GradientTransformation`` the functional factories build, and its
:attr:`state` is that transformation's state over the registered variables,
in registration order.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core import transform as base
from jaxopt_keras.algorithms import base as core
from jaxopt_keras.algorithms.base import Numerics, OptimizerState
from jaxopt_keras.core.hyperparams import Hyperparams
from jaxopt_keras.schedules import LearningRateSchedule
from jaxopt_keras.core.sparse import IndexedSlices
from jaxopt_keras.schedules import deserialize as deserialize_schedule
from jaxopt_keras.schedules import serialize as serialize_schedule
from jaxopt_keras.transforms.accumulation import AccumulationState
from jaxopt_keras.transforms.ema import EmaState
from jaxopt_keras.variable import StateView, Variable


class CallableList(list):
    """A list that returns itself when called (Keras's ``optimizer.variables()``)."""

    def __call__(self):
        return self


def _py(value: Any) -> Any:
    """A Python scalar for NumPy/JAX scalars; anything else unchanged."""
    if isinstance(value, (np.generic, jax.Array, np.ndarray)) and np.ndim(value) == 0:
        return np.asarray(value).item()
    return value


def loss_takes_values(loss: Callable) -> bool:
    """Whether ``loss`` is a function of the list of values (else Keras-style, of nothing)."""
    return len(inspect.signature(loss).parameters) > 0


def _has_gpu() -> bool:
    return any(d.platform == "gpu" for d in jax.devices())


class KerasOptimizer:
    """Behaviour shared by both Keras families; see :class:`OptimizerV2` and :class:`Optimizer`."""

    _numerics: ClassVar[Numerics]
    _factory: ClassVar[Callable[..., base.GradientTransformation]]
    _family: ClassVar[str]
    _LAYER_ONLY: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------
    # Construction
    # ------------------------------------------------------------------
    def __init__(self, *args: Any, **kwargs: Any):
        sig = inspect.signature(type(self)._factory)
        layer_only = {k: kwargs.pop(k) for k in self._LAYER_ONLY if k in kwargs}
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        named = dict(bound.arguments)
        extra = dict(named.pop("kwargs", {}))
        name = named.pop("name")
        object.__setattr__(self, "_initialized", False)
        self._name = name if name else type(self).__name__
        self._args = core.check_arguments(self._numerics, named, extra)
        self._layer_args = self._check_layer_args(layer_only)
        self._variables: list[Variable] = []
        self._index: dict[int, int] = {}
        self._batches: list[int] = []  # sizes of successive builds (legacy slot order)
        self._scoped = False  # slot names carry the optimizer's name scope
        self._state: Any = None
        self._pending_hp: Hyperparams = core.init_hyperparams(self._numerics, self._args)
        self._hypers_read = False
        self._weight_decay_exclude: tuple[list[int], list[str]] | None = None
        self._rebuild()
        self._initialized = True

    def _check_layer_args(self, layer_only: Mapping[str, Any]) -> dict:
        return dict(layer_only)

    # ------------------------------------------------------------------
    # The transformation and its state
    # ------------------------------------------------------------------
    def _pre(self) -> base.GradientTransformation:
        """Stateless gradient processing before the optimizer (legacy aggregator, ...)."""
        return base.identity()

    def _core_args(self) -> dict:
        args = dict(self._args)
        if self._weight_decay_exclude is not None and self._variables:
            ids, names = self._weight_decay_exclude
            args["weight_decay_mask"] = [
                not (id(v) in ids or any(re.search(n, v.name) for n in names)) for v in self._variables
            ]
        return args

    def _rebuild(self) -> None:
        """(Re)creates the transformation and its jitted step after a structural change."""
        main = core.build_transformation(self._numerics, self._core_args())
        self._transformation = base.chain(self._pre(), main)

        def step(values, state, grads):
            updates, state = self._transformation.update(grads, state, values)
            return base.apply_updates(values, updates), state

        self._step = jax.jit(step, donate_argnums=(0, 1))

    @property
    def transformation(self) -> base.GradientTransformation:
        """The pure ``GradientTransformation`` this optimizer applies.

        ``chain(pre, optimizer)``, where ``optimizer`` is what the functional
        factory builds from the same arguments and ``pre`` is the legacy
        ``gradient_aggregator``/``gradient_transformers`` (identity otherwise).
        Its state is what :attr:`state` holds, so a functional loop can drive it.
        """
        return self._transformation

    @property
    def state(self) -> Any:
        """The optimizer state over the registered variables (``None`` before ``build``)."""
        return self._state

    @state.setter
    def state(self, new_state: Any) -> None:
        if self._state is None:
            raise ValueError(
                "Build the optimizer with its variables (`optimizer.build(var_list)`) before "
                "setting its state: the state's layout follows the variables."
            )
        old_def = jax.tree_util.tree_structure(self._state)
        new_def = jax.tree_util.tree_structure(new_state)
        if old_def != new_def:
            raise ValueError(f"The new state's structure {new_def} differs from the optimizer's {old_def}.")
        for a, b in zip(jax.tree_util.tree_leaves(self._state), jax.tree_util.tree_leaves(new_state)):
            if np.shape(a) != np.shape(b):
                raise ValueError(f"State leaf shape {np.shape(b)} does not match the optimizer's {np.shape(a)}.")
        # Copies: the step donates the state's buffers, so the optimizer must own
        # them (a caller's arrays stay valid, and a buffer given twice is not
        # donated twice).
        self._state = jax.tree_util.tree_map(
            lambda a, b: jnp.array(b, dtype=jnp.asarray(a).dtype, copy=True), self._state, new_state
        )

    def _core(self, state: Any = None) -> OptimizerState:
        return find_state(self._state if state is None else state, OptimizerState)

    def _ema(self, state: Any = None) -> EmaState | None:
        return find_state(self._state if state is None else state, EmaState, required=False)

    @property
    def _hp(self) -> Hyperparams:
        return self._pending_hp if self._state is None else self._core().hyperparams

    def _set_hp(self, hp: Hyperparams) -> None:
        if self._state is None:
            self._pending_hp = hp
        else:
            self._state = replace_state(self._state, OptimizerState, lambda c: c._replace(hyperparams=hp))

    # ------------------------------------------------------------------
    # Variables
    # ------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def built(self) -> bool:
        return self._state is not None

    def _var_key(self, variable: Variable) -> int:
        return id(variable)

    def _check_variables(self, var_list: Iterable[Any]) -> list[Variable]:
        out = list(var_list)
        for v in out:
            if not isinstance(v, Variable):
                raise TypeError(
                    f"Optimizers update jaxopt_keras.Variable objects; received {type(v).__name__}. "
                    "Wrap parameters in `jaxopt_keras.Variable(value, name=...)`, or use "
                    "`optimizer.transformation` on plain arrays."
                )
        return out

    def _register(self, new: Sequence[Variable]) -> None:
        """Adds variables and their freshly initialized state, as one build batch."""
        new = [v for v in new if self._var_key(v) not in self._index]
        if not new and self._state is not None:
            return
        for v in new:
            self._index[self._var_key(v)] = len(self._variables)
            self._variables.append(v)
        self._batches.append(len(new))
        self._rebuild()
        fresh = self._transformation.init([v.value for v in new])
        if self._state is None:
            pending = self._pending_hp
            self._state = replace_state(fresh, OptimizerState, lambda c: c._replace(hyperparams=pending))
        else:
            # Append the new variables' per-parameter leaves (lists) to the old ones.
            def merge(old, add):
                return old + add if isinstance(old, list) else old

            self._state = jax.tree_util.tree_map(merge, self._state, fresh, is_leaf=lambda x: isinstance(x, list))

    def build(self, var_list: Iterable[Variable]) -> None:
        """Creates the optimizer's state for ``var_list``.

        Current family: builds once, for all trainable variables.  Legacy family:
        each call adds state for variables not seen before, as
        ``OptimizerV2._create_all_weights`` does.
        """
        var_list = self._check_variables(var_list)
        if self._family == "current" and self.built:
            return
        self._register(var_list)

    # ------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------
    def _grads_tree(self, pairs: Sequence[tuple[Any, Variable]]) -> list:
        grads: list = [None] * len(self._variables)
        for g, v in pairs:
            key = self._var_key(v)
            if key not in self._index:
                self._unknown_variable(v)
            if isinstance(g, (IndexedSlices, jax.Array)):
                grads[self._index[key]] = g  # no per-gradient dispatch on the hot path
            else:
                grads[self._index[key]] = jnp.asarray(g.value if isinstance(g, Variable) else g)
        return grads

    def _unknown_variable(self, variable: Variable) -> None:
        raise KeyError(f"The optimizer does not know variable {variable.name}.")

    def _filter(self, grads_and_vars: Iterable[tuple[Any, Variable]]) -> tuple[list, list]:
        pairs = list(grads_and_vars)
        variables = self._check_variables(v for _, v in pairs)
        kept = [(g, v) for g, v in pairs if g is not None]
        if pairs and not kept:
            raise ValueError(
                f"No gradients provided for any variable: {([v.name for v in variables],)}. "
                f"Provided `grads_and_vars` is {tuple(pairs)}."
            )
        return pairs, kept

    def _run(self, kept: Sequence[tuple[Any, Variable]]) -> None:
        grads = self._grads_tree(kept)
        values = [v.value for v in self._variables]
        new_values, state = self._step(values, self._state, grads)
        object.__setattr__(self, "_state", state)  # the hot path skips the attribute hook
        for v, value in zip(self._variables, new_values):
            v._set(value)

    def apply_gradients(self, grads_and_vars: Iterable[tuple[Any, Variable]], name: str | None = None, **kwargs: Any):
        """Applies one step to the variables, in place, and increments ``iterations``.

        ``None`` gradients are dropped, as Keras drops them.  The step is one
        jitted call, compiled once per set of gradient shapes/dtypes and reused;
        the variables' and state's buffers are donated to it, so arrays read from
        the variables *before* the call are invalid after it.

        Returns:
          :attr:`iterations`.
        """
        del name, kwargs
        pairs, kept = self._filter(grads_and_vars)
        if not pairs:
            return self.iterations
        self._build_for(pairs, kept)
        self._run(kept)
        return self.iterations

    def _build_for(self, pairs, kept) -> None:
        raise NotImplementedError

    def compute_gradients(self, loss: Callable, var_list: Sequence[Variable], tape: Any = None) -> list:
        """``[(gradient, variable)]`` of ``loss`` with respect to the variables' values.

        ``loss`` is either a callable of the list of values, or Keras-style a
        callable of no arguments that reads the variables (their values are
        swapped for tracers while the gradient is taken).
        """
        if tape is not None:
            raise ValueError("JAX has no gradient tape: pass `loss` as a callable.")
        var_list = self._check_variables(var_list)
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

        value, grads = jax.value_and_grad(f)([v.value for v in var_list])
        self._last_loss = value
        return list(zip(grads, var_list))

    def minimize(self, loss: Callable, var_list: Sequence[Variable], tape: Any = None) -> jax.Array:
        """Takes the gradient of ``loss`` (see :meth:`compute_gradients`) and applies it.

        Returns:
          The loss value before the step.
        """
        grads_and_vars = self.compute_gradients(loss, var_list, tape)
        self.apply_gradients(grads_and_vars)
        return self._last_loss

    # ------------------------------------------------------------------
    # iterations and hyperparameters
    # ------------------------------------------------------------------
    _ITER_NAME: ClassVar[str] = "iteration"

    def _iterations_value(self) -> jax.Array:
        if self._state is None:
            return jnp.zeros([], core.count_dtype())
        return _read_iterations(self._state)

    def _set_iterations(self, value: Any) -> None:
        if self._state is None:
            raise ValueError("Build the optimizer before setting its iterations.")
        self._state = _with_iterations(self._state, value, self._args.get("gradient_accumulation_steps"))

    @property
    def iterations(self) -> StateView:
        """The number of steps taken (Keras's ``iterations``)."""
        return StateView(self._iter_weight_name(), self._iterations_value, self._set_iterations)

    def _iter_weight_name(self) -> str:
        return f"{self._ITER_NAME}:0"

    def _write_iterations(self, state: Any, value: Any) -> Any:
        return _with_iterations(state, value, self._args.get("gradient_accumulation_steps"))

    def _hyper_names(self) -> tuple[str, ...]:
        return tuple(self._hp.primary)

    def _hyper_view(self, name: str) -> StateView:
        def read():
            return self._hp[name]

        def write(value):
            self._set_numeric_hyper(name, value)

        return StateView(f"{name}:0", read, write)

    def _set_numeric_hyper(self, name: str, value: Any) -> None:
        self._set_hp(self._hp.replace(**{name: value}))
        if not isinstance(value, jax.core.Tracer):
            self._args[name] = _py(value)

    def _learning_rate_is_schedule(self) -> bool:
        return core.is_schedule(self._args["learning_rate"])

    def _set_learning_rate_source(self, value: Any) -> None:
        """Replaces a schedule by another, or a float by a schedule (a new step function)."""
        self._args["learning_rate"] = value
        values = dict(self._hp.primary)
        values.pop("learning_rate", None)
        hp = core.init_hyperparams(self._numerics, self._args)
        hp = hp.replace(**{k: v for k, v in values.items() if k in hp.primary})
        self._set_hp(hp)  # the hyperparameter mapping changed shape: the state with it
        self._rebuild()

    _STATIC: ClassVar[tuple[str, ...]] = (
        "amsgrad",
        "nesterov",
        "centered",
        "adaptive_epsilon",
        "clipnorm",
        "clipvalue",
        "global_clipnorm",
    )

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: hyperparameters and Keras attributes.
        if name.startswith("_"):
            raise AttributeError(name)
        args = self.__dict__.get("_args")
        if args is None:
            raise AttributeError(name)
        if name == "lr":
            name = "learning_rate"
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
        if name == "lr":
            name = "learning_rate"
        if name == "learning_rate":
            self._put_learning_rate(value)
        elif name in self._hyper_names():
            self._set_numeric_hyper(name, value)
        elif name in self._STATIC:
            self._set_static(name, value)
        elif name in ("iterations",):
            self._set_iterations(value.value if isinstance(value, Variable) else value)
        else:
            object.__setattr__(self, name, value)

    def _set_static(self, name: str, value: Any) -> None:
        structural = {"amsgrad", "centered"}
        if name in structural and self.built and value != self._args.get(name):
            raise ValueError(f"`{name}` changes the optimizer's slots; it cannot change after the optimizer is built.")
        new_args = dict(self._args, **{name: value})
        if name in ("clipnorm", "global_clipnorm", "clipvalue"):
            if value is not None and value < 0:
                raise ValueError(f"Expected {name} >= 0, received: {value}")
            if new_args.get("clipnorm") is not None and new_args.get("global_clipnorm") is not None:
                raise ValueError("Cannot accept both `clipnorm` and `global_clipnorm`.")
        self._args = new_args
        self._rebuild()
        self._restructure_state()

    def _restructure_state(self) -> None:
        """Fits a built state to a rebuilt transformation (clipping added or removed).

        The transformation's chain has one part per configured feature, so its
        state's structure can change; the stateful parts (the optimizer's, the
        moving average's, the accumulator's) carry over unchanged.
        """
        if self._state is None:
            return
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

    # ------------------------------------------------------------------
    # The weights list
    # ------------------------------------------------------------------
    def _weight_entries(self) -> list[tuple[str, Callable, Callable]]:
        """``(name, read(state), write(state, value) -> state)`` in Keras's order."""
        raise NotImplementedError

    def _slot_entries(self, prefix: str, name_fn: Callable[[str, Variable], str]) -> list:
        out = []
        start = 0
        listed = {s.name: s.listed for s in self._numerics.slots}
        for size in self._batches:
            for group in self._numerics.weight_order(self._args):
                for i in range(start, start + size):
                    for slot in group:
                        if listed[slot](self._variables[i].shape):
                            out.append((name_fn(slot, self._variables[i]), _slot_reader(slot, i), _slot_writer(slot, i)))
            start += size
        return out

    @property
    def weights(self) -> list[StateView]:
        """The optimizer's variables in Keras's order (views into :attr:`state`)."""
        if self._state is None:
            return []
        views = []
        for name, read, write in self._weight_entries():
            views.append(StateView(name, _bind_read(self, read), _bind_write(self, write)))
        return views

    @property
    def variables(self) -> CallableList:
        """Same as :attr:`weights`; callable too, as OptimizerV2's ``variables()``."""
        return CallableList(self.weights)

    def get_weights(self) -> list[np.ndarray]:
        """The weights' values as NumPy arrays (the step counter as int64, as Keras)."""
        if self._state is None:
            return []
        out = []
        for i, (_, read, _) in enumerate(self._weight_entries()):
            value = np.array(read(self._state))
            if i == 0:
                value = value.astype(np.int64)
            out.append(value)
        return out

    def _adjust_weights(self, weights: list) -> list:
        if self._numerics.adjust_weights is None or self._state is None:
            return weights
        return self._numerics.adjust_weights(len(self._weight_entries()), weights)

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Sets all weights from a list in Keras's order; all or nothing.

        Raises:
          ValueError: the list's length or a weight's shape does not match, as
            Keras reports it.  The optimizer is left unchanged.
        """
        weights = self._adjust_weights(list(weights))
        entries = self._weight_entries() if self._state is not None else []
        self._check_weights_length(entries, weights)
        new_state = self._state
        for (name, read, write), w in zip(entries, weights):
            current = read(new_state)
            w = np.asarray(w.value if isinstance(w, Variable) else w)
            if tuple(current.shape) != tuple(w.shape):
                self._shape_error(name, current.shape, w.shape)
            new_state = write(new_state, jnp.asarray(w).astype(current.dtype))
        if entries:
            self._state = self._after_set_weights(new_state)

    def _check_weights_length(self, entries, weights) -> None:
        if len(entries) != len(weights):
            raise ValueError(
                f"You called `set_weights(weights)` on optimizer {self._name} with a  weight list of "
                f"length {len(weights)}, but the optimizer was expecting {len(entries)} weights. "
                f"Provided weights: {str(weights)[:50]}..."
            )

    def _shape_error(self, name, expected, given) -> None:
        raise ValueError(
            f"Optimizer weight shape {tuple(expected)} not compatible with provided weight shape {tuple(given)}."
        )

    def _after_set_weights(self, state: Any) -> Any:
        # Every clock in the state (the EMA's overwrite clock) follows the step count.
        state = _with_iterations(state, _read_iterations(state), self._args.get("gradient_accumulation_steps"))
        if "u_product" in find_state(state, OptimizerState).scalars:
            state = _recompute_u_product(state)
        return state

    def get_slot_names(self) -> list[str]:
        """The names of the slots this optimizer keeps, in creation order."""
        return list(self._numerics.active_slots(self._args))

    def get_slot(self, var: Variable, slot_name: str) -> StateView:
        """The slot ``slot_name`` of variable ``var`` (a view into the state)."""
        key = self._var_key(var)
        if key not in self._index:
            raise KeyError(f"The optimizer has no slots for variable {getattr(var, 'name', var)}.")
        if slot_name not in self.get_slot_names():
            raise KeyError(f"'{slot_name}': this optimizer's slots are {self.get_slot_names()}.")
        i = self._index[key]
        for name, read, write in self._weight_entries():
            pass
        return StateView(self._slot_name(slot_name, var), _bind_read(self, _slot_reader(slot_name, i)), _bind_write(self, _slot_writer(slot_name, i)))

    def _slot_name(self, slot: str, var: Variable) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------------
    # Config
    # ------------------------------------------------------------------
    def _algorithm_config(self) -> dict:
        config = {}
        for key in self._numerics.defaults:
            if key == "learning_rate":
                config[key] = self._serialize_learning_rate()
            elif key == "adaptive_epsilon":
                if self._args.get(key):  # TF-Keras omits it; kept only when it matters
                    config[key] = True
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

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: Mapping[str, Any], custom_objects: Mapping[str, Any] | None = None) -> "KerasOptimizer":
        """Rebuilds an optimizer from :meth:`get_config` output (or Keras's)."""
        config = dict(config)
        for key, arg in cls._numerics.config_to_args.items():
            if key in config and arg not in config:
                config[arg] = config.pop(key)
        lr = config.get("learning_rate")
        if isinstance(lr, Mapping):
            config["learning_rate"] = deserialize_schedule(lr, custom_objects=custom_objects)
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__} name={self._name!r}>"


def _slot_reader(slot: str, i: int) -> Callable:
    return lambda state: getattr(find_state(state, OptimizerState).slots, slot)[i]


def _slot_writer(slot: str, i: int) -> Callable:
    def change(core_state):
        tree = list(getattr(core_state.slots, slot))
        tree[i] = value_box[0]
        return core_state._replace(slots=core_state.slots._replace(**{slot: tree}))

    value_box = [None]

    def write(state, value):
        value_box[0] = value
        return replace_state(state, OptimizerState, change)

    return write


def _bind_read(opt: KerasOptimizer, read: Callable) -> Callable:
    return lambda: read(opt._state)


def _bind_write(opt: KerasOptimizer, write: Callable) -> Callable:
    def w(value):
        if opt._state is None:
            raise ValueError("The optimizer is not built.")
        opt._state = write(opt._state, value)

    return w


def find_state(state: Any, cls: type, required: bool = True) -> Any:
    """The first ``cls`` NamedTuple inside ``state`` (depth first)."""
    for leaf in jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, cls)):
        if isinstance(leaf, cls):
            return leaf
    if required:
        raise ValueError(f"The state holds no {cls.__name__}.")
    return None


def replace_state(state: Any, cls: type, fn: Callable[[Any], Any]) -> Any:
    """``state`` with its first ``cls`` NamedTuple replaced by ``fn(it)``."""
    done = [False]

    def visit(x):
        if isinstance(x, cls) and not done[0]:
            done[0] = True
            return fn(x)
        return x

    return jax.tree_util.tree_map(visit, state, is_leaf=lambda x: isinstance(x, cls))


def _read_iterations(state: Any) -> jax.Array:
    """Keras's ``iterations``: calls so far (Keras 3 counts accumulation calls too)."""
    acc = find_state(state, AccumulationState, required=False)
    return (acc if acc is not None else find_state(state, OptimizerState)).iterations


def _with_iterations(state: Any, value: Any, steps: int | None = None) -> Any:
    """``state`` with every step clock set from Keras's ``iterations = value``.

    The optimizer step counts updates, which under gradient accumulation over
    ``steps`` calls is ``value // steps``; the accumulation and EMA clocks
    count calls.  Each clock gets a fresh buffer: the step donates the state,
    and one buffer may not be donated twice.
    """
    value = int(np.asarray(value))
    is_clock = lambda x: isinstance(x, tuple) and hasattr(x, "_fields") and "iterations" in x._fields  # noqa: E731

    def clock(x):
        if not is_clock(x):
            return x
        v = value // steps if (steps and isinstance(x, OptimizerState)) else value
        return x._replace(iterations=jnp.array(v, x.iterations.dtype))

    return jax.tree_util.tree_map(clock, state, is_leaf=is_clock)


def _recompute_u_product(state: Any) -> Any:
    """Current Nadam: rebuild the running product of the momentum schedule.

    Keras does not list ``u_product`` among the weights; a continuation from a
    weights list must still use ``prod_{i<=t} beta_1 * (1 - 0.5 * 0.96**i)``,
    accumulated in order and in its dtype, exactly as the original run did.
    """
    from jaxopt_keras.algorithms.nadam import _current_u

    core_state = find_state(state, OptimizerState)
    u = core_state.scalars["u_product"]
    beta_1 = core_state.hyperparams["beta_1"].astype(u.dtype)
    t = int(core_state.iterations)

    def body(i, prod):
        c = core.Coefficients(beta_1=beta_1, iterations=jnp.asarray(i, core_state.iterations.dtype))
        return prod * _current_u(c, 1, u.dtype)

    prod = jax.lax.fori_loop(0, t, body, jnp.ones([], u.dtype))
    return replace_state(state, OptimizerState, lambda c: c._replace(scalars=dict(c.scalars, u_product=prod)))


# ----------------------------------------------------------------------
# The two families
# ----------------------------------------------------------------------


class OptimizerV2(KerasOptimizer):
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

    def _pre(self) -> base.GradientTransformation:
        """``gradient_aggregator``, then ``gradient_transformers``.

        OptimizerV2 runs the aggregator, then clipping, then the transformers;
        it refuses clipping arguments together with transformers, so running
        both before the optimizer (which clips first) keeps its order.
        """
        layer = getattr(self, "_layer_args", {})
        aggregator = layer.get("gradient_aggregator")
        transformers = layer.get("gradient_transformers") or []
        if aggregator is None and not transformers:
            return base.identity()
        variables = self._variables

        def apply_pairs(fn, updates):
            pairs = [(g, v) for g, v in zip(updates, variables) if g is not None]
            out = list(fn(pairs))
            new = list(updates)
            for (g, v) in out:
                new[self._index[id(v)]] = g
            return new

        def update(updates, state, params=None):
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

    def _build_for(self, pairs, kept) -> None:
        self._register([v for _, v in kept])
        self._scoped = True

    # Hyperparameters: OptimizerV2 returns its float32 hyper variables.
    def _get_hyper(self, name: str) -> Any:
        self._hypers_read = True
        if name in self._numerics.float32_hyperparams or name in ("learning_rate", "decay"):
            return self._hyper_view(name)
        return self._args[name]

    def _get_learning_rate(self) -> Any:
        self._hypers_read = True
        if self._learning_rate_is_schedule():
            return self._args["learning_rate"]
        return self._hyper_view("learning_rate")

    def _put_learning_rate(self, value: Any) -> None:
        if core.is_schedule(value) or self._learning_rate_is_schedule():
            self._set_learning_rate_source(value)
        else:
            self._set_numeric_hyper("learning_rate", value.value if isinstance(value, Variable) else value)

    def _hypers_created(self) -> bool:
        return self.built or self._hypers_read

    def _serialize_hyper(self, key: str) -> Any:
        if key in self._numerics.float32_hyperparams or key == "learning_rate":
            if self._hypers_created() and key in self._hp:
                return np.float32(self._hp[key])
        return self._args[key]

    def get_config(self) -> dict:
        """Equal to ``tf.keras.optimizers.legacy.<Class>.get_config()`` for the same arguments."""
        config = {"name": self._name}
        for key in ("clipnorm", "clipvalue", "global_clipnorm"):
            if self._args.get(key) is not None:
                config[key] = self._args[key]
        algo = self._algorithm_config()
        lr = algo.pop("learning_rate")
        config["learning_rate"] = lr
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

    def _weight_entries(self):
        name = self._name
        entries = [(f"{name}/iter:0", _read_iterations, self._write_iterations)]
        for scalar in self._numerics.scalars:
            if scalar.in_weights:
                entries.append((f"{name}/{scalar.name}:0", _scalar_reader(scalar.name), _scalar_writer(scalar.name)))
        return entries + self._slot_entries(name, self._slot_name)

    def _slot_name(self, slot: str, var: Variable) -> str:
        return f"{self._name}/{var._shared_name}/{slot}:0"

    def _iter_weight_name(self) -> str:
        return f"{self._name}/iter:0"


class Optimizer(KerasOptimizer):
    """Base class of the current family (``tf.keras.optimizers.Optimizer``, Keras 3).

    Constructor arguments beyond the algorithm's: ``weight_decay``,
    ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``use_ema``,
    ``ema_momentum``, ``ema_overwrite_frequency``, ``jit_compile`` (the step
    is always jitted; the config reports it as TF-Keras does, true only with a
    GPU).
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

    def exclude_from_weight_decay(self, var_list: Sequence[Variable] | None = None, var_names: Sequence[str] | None = None) -> None:
        """Exempts variables (by identity, or by regex on their names) from weight decay.

        Raises:
          ValueError: the optimizer is already built.
        """
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configued before the optimizer is built.")
        ids = [id(v) for v in var_list] if var_list else []
        self._weight_decay_exclude = (ids, list(var_names or []))

    def finalize_variable_values(self, var_list: Sequence[Variable]) -> None:
        """With ``use_ema``, overwrites the variables with their moving averages."""
        if not self._args.get("use_ema") or self._state is None:
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
            return StateView("current_learning_rate:0", lambda: jnp.asarray(schedule(self._iterations_value())), _read_only)
        return self._hyper_view("learning_rate")

    def _put_learning_rate(self, value: Any) -> None:
        if core.is_schedule(value):
            self._set_learning_rate_source(value)
        elif self._learning_rate_is_schedule():
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its "
                "`learning_rate` constructor argument, hence its learning rate is not settable. "
                "If you need the learning rate to be settable, you should instantiate the "
                "optimizer with a float `learning_rate` argument."
            )
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
            "jit_compile": bool(self._args["jit_compile"]) and _has_gpu(),
            "is_legacy_optimizer": False,
        }
        config.update(self._algorithm_config())
        for key in ("loss_scale_factor", "gradient_accumulation_steps"):  # Keras 3's; kept when set
            if self._args.get(key) is not None:
                config[key] = self._args[key]
        return self._extension_config(config)

    def _weight_entries(self):
        entries = [("iteration:0", _read_iterations, self._write_iterations)]
        prefix = f"{self._name}/" if self._scoped else ""
        if self._args.get("use_ema"):
            for i, v in enumerate(self._variables):
                entries.append((f"{prefix}average/{v._shared_name}:0", *_tree_entry(EmaState, "average", i)))
        if self._args.get("gradient_accumulation_steps"):
            for i, v in enumerate(self._variables):
                entries.append(
                    (f"{prefix}gradient_accumulator/{v._shared_name}:0", *_tree_entry(AccumulationState, "accumulators", i))
                )
        return entries + self._slot_entries(prefix, self._slot_name)

    def _slot_name(self, slot: str, var: Variable) -> str:
        prefix = f"{self._name}/" if self._scoped else ""
        return f"{prefix}{slot}/{var._shared_name}:0"

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


def _read_only(value):
    raise ValueError("This value is computed from a schedule and cannot be assigned.")




def _scalar_reader(name):
    return lambda state: find_state(state, OptimizerState).scalars[name]


def _scalar_writer(name):
    def write(state, value):
        return replace_state(state, OptimizerState, lambda c: c._replace(scalars=dict(c.scalars, **{name: value})))

    return write


def _tree_entry(cls: type, field: str, i: int) -> tuple[Callable, Callable]:
    """Reader and writer of entry ``i`` of the per-variable list ``cls.field``."""

    def read(state):
        return getattr(find_state(state, cls), field)[i]

    def write(state, value):
        def change(x):
            items = list(getattr(x, field))
            items[i] = value
            return x._replace(**{field: items})

        return replace_state(state, cls, change)

    return read, write


def make_class(numerics: Numerics, factory: Callable, module: str) -> type:
    """The Keras class for ``numerics``: a subclass of the family's base, no code of its own."""
    base_cls = OptimizerV2 if numerics.family == "legacy" else Optimizer
    doc = (
        f"{numerics.class_name}, as ``tf.keras.optimizers{'.legacy' if numerics.family == 'legacy' else ''}"
        f".{numerics.class_name}``.\n\n"
        f"Takes Keras's arguments (see :func:`{factory.__module__}.{factory.__name__}` for the step it computes).\n"
    )
    cls = type(
        numerics.class_name,
        (base_cls,),
        {"_numerics": numerics, "_factory": staticmethod(factory), "__doc__": doc, "__module__": module},
    )
    sig = inspect.signature(factory)
    cls.__signature__ = sig
    return cls
