"""The Keras optimizer object: variables, state, the jitted step, hyperparameters as attributes.

One generic class, :class:`KerasOptimizer`, gives every optimizer Keras's
object API over the pure core.  A class of the registry
(:mod:`jaxopt_keras.optimizers.classes`) only names its
:class:`~jaxopt_keras.registry.Entry` and family; the family's rules live in
:mod:`jaxopt_keras.optimizers.families`, the weights list in
:mod:`jaxopt_keras.optimizers.weights`, the packed step (and the state held
packed between its steps) in :mod:`jaxopt_keras.optimizers.packed`.

Where things are kept:

* :attr:`transformation` is what the functional factory builds from the same
  arguments, built once (and again only when a structural argument changes);
* :attr:`state` is its state over the registered variables, in registration
  order.  It exists from construction (over no variables), so the numeric
  hyperparameters live there and only there;
* hyperparameters are read and assigned as attributes through
  :class:`~jaxopt_keras.optimizers.attributes.HyperAttributes`;
* ``_args`` holds the constructor arguments as given: what ``get_config``
  reports (Keras keeps Python attributes beside its variables in the same
  way), and the static arguments the transformation is built from.
"""

from __future__ import annotations

import inspect
import re
import threading
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.algorithms.driver import OptimizerState
from jaxopt_keras.algorithms.spec import Spec
from jaxopt_keras.core import transform as base
from jaxopt_keras.core.gradients import check_gradient, check_indices
from jaxopt_keras.core.hyperparams import Hyperparams
from jaxopt_keras.core.sparse import IndexedSlices
from jaxopt_keras.core.state import checked_count, find_state, replace_state
from jaxopt_keras.keras.arguments import check_arguments
from jaxopt_keras.keras.base_args import CLIP_ARGS, LEGACY_KWARGS
from jaxopt_keras.keras.factories import bind
from jaxopt_keras.keras.pipeline import build_transformation
from jaxopt_keras.optimizers.attributes import HyperAttributes
from jaxopt_keras.optimizers.names import default_name
from jaxopt_keras.optimizers.packed import PackedStepMixin
from jaxopt_keras.optimizers.variable import Variable
from jaxopt_keras.optimizers.weights import WeightsList, locked
from jaxopt_keras.registry import Entry
from jaxopt_keras.transforms.ema import EmaState


class KerasOptimizer(PackedStepMixin, HyperAttributes, WeightsList):
    """Behaviour shared by every Keras family; see :mod:`jaxopt_keras.optimizers.families`."""

    _entry: ClassVar[Entry]
    _spec: ClassVar[Spec]
    _signature: ClassVar[inspect.Signature]
    _family: ClassVar[str]
    _LAYER_ONLY: ClassVar[tuple[str, ...]] = ()
    # Arguments whose change rebuilds the transformation (its structure changes).
    _STATIC: ClassVar[tuple[str, ...]] = ("amsgrad", "nesterov", "centered", "adaptive_epsilon") + CLIP_ARGS
    _SLOT_SHAPING: ClassVar[tuple[str, ...]] = ("amsgrad", "centered")

    # -- Construction ------------------------------------------------------
    def __init__(self, *args: Any, **kwargs: Any):
        object.__setattr__(self, "_initialized", False)
        layer_only = {k: kwargs.pop(k) for k in self._LAYER_ONLY if k in kwargs}
        named, extra = bind(self._signature, args, kwargs)
        name = named.pop("name")
        self._name = self._check_name(name, extra)  # as Keras: after the keywords, before the values (a failure keeps the number)
        self._init_name = self._built_name = self._name  # the name at construction, and when the state was first built
        self._args = check_arguments(self._spec, self._entry.class_name, {**named, "name": name}, extra)
        self._layer_args = self._check_layer_args(layer_only)
        self._variables: list[Variable] = []
        self._index: dict[int, int] = {}
        self._batches: list[int] = []  # sizes of successive builds (legacy slot order)
        self._scoped = False  # slot names carry the optimizer's name scope
        self._built = False
        self._hypers_read = False
        self._weight_decay_exclude: tuple[list[int], list[str]] | None = None
        self._lock = threading.RLock()  # one step at a time: the step donates the state
        self._packed = False  # the state is held packed (see _packs_now)
        self._rebuild()
        self._state = self._transformation.init([])
        self._initialized = True

    def _check_layer_args(self, layer_only: Mapping[str, Any]) -> dict:
        return dict(layer_only)

    def _check_name(self, name: Any, kwargs: Mapping[str, Any]) -> str | None:
        return name if any(k not in LEGACY_KWARGS for k in kwargs) else default_name(self._family, type(self).__name__, name)

    # -- The transformation and its state ----------------------------------
    def _pre(self) -> base.GradientTransformation | None:
        """Gradient processing before the optimizer (the legacy aggregator), or ``None``."""
        return None

    def _decay_mask(self, params: Any) -> list[bool] | None:
        """Which variables weight decay applies to (``exclude_from_weight_decay``).

        ``None`` (all of them) without exclusions, so :attr:`transformation`
        also runs on a tree of any structure (a ported flax tree)."""
        if self._weight_decay_exclude is None:
            return None
        ids, names = self._weight_decay_exclude
        return [not (id(v) in ids or any(re.search(n, v.name) for n in names)) for v in self._variables]

    def _transformation_args(self) -> dict:
        """The arguments the transformation is built from (the constructor's, checked;
        a host callable's current value in its place)."""
        if self.__dict__.get("_initialized"):
            host = self._held_host_values()
        else:  # OptimizerV2 first calls them at the first step: the defaults stand in until then
            host = {k: self._spec.defaults.get(k) or 0.0 for k in self._host_callables()}
        args = {**self._args, **host, **self._hyperparam_args()}
        if any(args.get(rate) is not None for rate in self._spec.decay_rates):
            args["weight_decay_mask"] = self._decay_mask
        if self._spec.route is not None:
            args["paths"] = self._variable_paths
        return args

    def _rebuild(self) -> None:
        """Builds the transformation and its jitted step (at construction, and on a structural change)."""
        if self._packed:
            self._unpack()  # the packed state was the old transformation's
        main = build_transformation(self._spec, self._transformation_args(), getattr(self, "_name", None) or "optimizer")
        pre = self._pre()
        self._transformation = main if pre is None else base.chain(pre, main)
        self._step = jax.jit(self._pure_step, donate_argnums=(0, 1))
        self._packed_step = jax.jit(self._packed_pure_step, donate_argnums=(0, 1))
        self._has_pre = pre is not None
        self._pack_refused = False

    def _pure_step(self, values: list, state: Any, grads: list) -> tuple[list, Any]:
        """One step over the registered variables' values: ``(new values, new state)``."""
        updates, state = self._transformation.update(grads, state, values)
        return base.apply_updates(values, updates), state

    @property
    def transformation(self) -> base.GradientTransformation:
        """The pure ``GradientTransformation`` this optimizer applies.

        What the functional factory builds from the same arguments (preceded,
        in the legacy family, by ``gradient_aggregator``/``gradient_transformers``
        when given).  Its state is what :attr:`state` holds, so a functional
        loop can drive it.
        """
        return self._transformation

    @property
    @locked
    def state(self) -> Any:
        """The optimizer state over the registered variables.

        Its buffers belong to the optimizer: the next step donates them, so read
        what you need before stepping again (or copy it)."""
        return self._state

    @state.setter
    @locked
    def state(self, new_state: Any) -> None:
        old_def = jax.tree_util.tree_structure(self._state)
        new_def = jax.tree_util.tree_structure(new_state)
        if old_def != new_def:
            raise ValueError(f"The new state's structure {new_def} differs from the optimizer's {old_def}.")
        for a, b in zip(jax.tree_util.tree_leaves(self._state), jax.tree_util.tree_leaves(new_state)):
            if np.shape(a) != np.shape(b):
                raise ValueError(f"State leaf shape {np.shape(b)} does not match the optimizer's {np.shape(a)}.")
            if np.ndim(a) == 0 and np.issubdtype(np.dtype(a.dtype), np.integer):
                checked_count(b, a.dtype, "the state's step counter")
        # Copies: the step donates the state's buffers, so the optimizer must own
        # them (a caller's arrays stay valid, and a buffer given twice is not
        # donated twice).
        self._state = jax.tree_util.tree_map(
            lambda a, b: jnp.array(b, dtype=jnp.asarray(a).dtype, copy=True), self._state, new_state
        )

    def _core(self, state: Any = None) -> OptimizerState:
        # The step count and the hyperparameters are the same packed or not.
        return find_state(self._held if state is None else state, OptimizerState)

    def _ema(self, state: Any = None) -> EmaState | None:
        return find_state(self._state if state is None else state, EmaState, required=False)

    @property
    @locked
    def _hp(self) -> Hyperparams:
        return self._core().hyperparams

    def _set_hp(self, hp: Hyperparams) -> None:
        self._held = replace_state(self._held, OptimizerState, lambda c: c._replace(hyperparams=hp))

    # -- Variables ---------------------------------------------------------
    @property
    def name(self) -> Any:
        """The optimizer's name; assigning it is Keras's plain attribute assignment (what it changes in
        ``get_config`` and the weights' names, per family: docs/numerics.md, *Names*)."""
        return self._name

    @name.setter
    def name(self, value: Any) -> None:
        self._name = value

    @property
    def built(self) -> bool:
        return self._built

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
        """Adds variables and their freshly initialized state, as one build batch
        (a variable listed twice is added once)."""
        new = list({self._var_key(v): v for v in new if self._var_key(v) not in self._index}.values())
        if not new and self._built:
            return
        if self._packed:
            self._unpack()
        self._pack_refused = False  # other variables: packing is decided again
        if not self._built:
            self._built_name = self._name
        for v in new:
            self._index[self._var_key(v)] = len(self._variables)
            self._variables.append(v)
        self._batches.append(len(new))
        fresh = self._transformation.init([v.value for v in new])
        if not self._built:
            # The first build: the state over no variables gives way to the
            # fresh one, keeping the step count and the hyperparameters.
            old = self._core()
            self._state = replace_state(
                fresh, OptimizerState, lambda c: c._replace(iterations=old.iterations, hyperparams=old.hyperparams)
            )
        else:
            # Append the new variables' per-parameter leaves (lists) to the old ones.
            def merge(old, add):
                return old + add if isinstance(old, list) else old

            self._state = jax.tree_util.tree_map(merge, self._state, fresh, is_leaf=lambda x: isinstance(x, list))
        self._built = True

    def build(self, var_list: Iterable[Variable]) -> None:
        """Creates the optimizer's state for ``var_list``.

        Current family: builds once, for all trainable variables.  Legacy family:
        each call adds state for variables not seen before, as
        ``OptimizerV2._create_all_weights`` does.
        """
        var_list = self._check_variables(var_list)
        if self._family != "legacy" and self.built:
            return
        with self._lock:
            self._register(var_list)

    # -- Training ----------------------------------------------------------
    def _gradients(self, pairs: Sequence[tuple[Any, Variable]]) -> tuple[list, bool]:
        """The gradients in the registered variables' order (``None`` where a
        variable has none), checked against their variables, and whether every
        variable has a dense gradient of its own dtype (what packing needs).

        One pass, run at every step over every variable: the common gradient
        (an array of its variable's shape and dtype) is taken without further
        calls."""
        grads: list = [None] * len(self._variables)
        dense = True
        index, key_of = self._index, self._var_key
        for g, v in pairs:
            i = index.get(key_of(v))
            if i is None:
                self._unknown_variable(v)
            value = v.value
            if isinstance(g, jax.Array) and g.shape == value.shape and g.dtype.kind != "c":
                grads[i] = g  # the common case: nothing for check_gradient to refuse
                dense = dense and g.dtype == value.dtype
                continue
            if not isinstance(g, (IndexedSlices, jax.Array)):
                g = jnp.asarray(g.value if isinstance(g, Variable) else g)
            self._check_gradient(g, v)
            grads[i] = g
            dense = dense and isinstance(g, jax.Array) and g.dtype == value.dtype
        return grads, dense and all(g is not None for g in grads)

    def _check_gradient(self, g: Any, variable: Variable) -> None:
        """Shape and dtype against the variable (and, eagerly, a sparse gradient's
        indices), before the step: the error names the variable."""
        where = f"variable '{variable.path}'"
        check_gradient(g, variable.value, where, self._family)
        if isinstance(g, IndexedSlices):
            check_indices(g, where)

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
        self._once_each(kept)
        return pairs, kept

    def _once_each(self, kept: Sequence[tuple[Any, Variable]]) -> None:
        """Refuses a variable given two gradients in one call, before anything changes
        (Keras applies such pairs one after the other within the step)."""
        seen: set = set()
        for _, v in kept:
            if self._var_key(v) in seen:
                raise ValueError(
                    f"Variable '{v.path}' has more than one gradient in `grads_and_vars`; an optimizer "
                    "step takes one gradient per variable: add them and pass the variable once."
                )
            seen.add(self._var_key(v))

    def _run(self, kept: Sequence[tuple[Any, Variable]]) -> None:
        values = self._host_values()
        if values:
            self._set_hp(self._hp.replace(**values))
        grads, dense = self._gradients(kept)
        values = [v.value for v in self._variables]
        if self._packs_now(values, dense):
            new_values, self._held = self._packed_step(values, self._held, grads)
        else:
            new_values, self._held = self._step(values, self._state, grads)
        for v, value in zip(self._variables, new_values):
            v._set(value)

    def apply_gradients(self, grads_and_vars: Iterable[tuple[Any, Variable]], name: str | None = None, skip_gradients_aggregation: bool = False, **kwargs: Any):
        """Applies one step to the variables, in place, and increments ``iterations``; TF-Keras's
        signature, whose ``name`` and aggregation flags have no effect here.

        ``None`` gradients are dropped, as Keras drops them.  The step is one
        jitted call, compiled once per set of gradient shapes/dtypes and reused;
        the variables' and state's buffers are donated to it, so arrays read from
        the variables *before* the call are invalid after it.  Calls from several
        threads are taken one at a time.

        Returns:
          :attr:`iterations`.
        """
        del name, skip_gradients_aggregation, kwargs
        pairs, kept = self._filter(grads_and_vars)
        if not pairs:
            return self.iterations
        with self._lock:
            self._build_for(pairs, kept)
            self._run(kept)
        return self.iterations

    def _build_for(self, pairs, kept) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    def __reduce__(self) -> tuple:
        """Pickles as a fresh optimizer made from :meth:`get_config`, in every
        family (Keras 3 pickles its optimizers so): the configuration travels,
        the variables and the state (slots, ``iterations``) do not.  Carry those
        with ``get_weights``/``set_weights`` or the state (orbax, ``io``)."""
        return type(self).from_config, (self.get_config(),)

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__} name={self._name!r}>"
