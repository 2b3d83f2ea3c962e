"""The weights list: Keras's names and order for an optimizer's variables, as views into the state.

A Keras optimizer lists its variables in a fixed order (``optimizer.weights``,
``get_weights``/``set_weights``, the checkpoint files): the step count first,
then per-optimizer scalars, then the slots in the order the family's
``_create_slots``/``build`` creates them (:attr:`Spec.slot_order`).  Each
entry here is ``(name, read(state), write(state, value) -> state)`` (the readers
and writers: :mod:`jaxopt_keras.optimizers.entries`), so the list is a view of
the one state the optimizer keeps: nothing is copied, and ``set_weights`` builds
the new state and swaps it in whole or not at all.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.algorithms.driver import OptimizerState
from jaxopt_keras.algorithms.spec import Spec
from jaxopt_keras.core.state import nan_count, replace_state
from jaxopt_keras.keras.factories import MODULES as FACTORY_MODULES
from jaxopt_keras.optimizers.entries import hyper_entry, is_count, list_entry, read_iterations, scalar_entry, shared, slot_entry, with_iterations
from jaxopt_keras.optimizers.variable import StateView, Variable
from jaxopt_keras.schedules.base import is_schedule
from jaxopt_keras.transforms.accumulation import AccumulationState
from jaxopt_keras.transforms.ema import EmaState

Entry = tuple[str, Callable[[Any], jax.Array], Callable[[Any, Any], Any]]


# --------------------------------------------------------------------------
# The layout: what each entry of the list is, for a spec, its arguments and
# the variables' shapes.  The object API (below) and the file readers and
# writers (jaxopt_keras.io) both read it.
# --------------------------------------------------------------------------


class Weight(NamedTuple):
    """One entry of a Keras optimizer's weights list.

    Attributes:
      kind: ``"iterations"``, ``"hyper"`` (Keras 3's ``learning_rate``
        variable), ``"scalar"`` (a per-optimizer variable such as legacy
        Nadam's ``momentum_cache``), ``"slot"``, ``"average"`` (the EMA of a
        variable) or ``"accumulator"`` (Keras 3's gradient accumulator of a
        variable).
      name: the hyperparameter's, slot's or scalar's name; ``""`` for the
        other kinds.
      index: the position of the variable it belongs to, in the order the
        optimizer was built with (``model.trainable_variables``); ``-1`` for
        the per-optimizer kinds.
    """

    kind: str
    name: str = ""
    index: int = -1


def keras_layout(
    spec: Spec,
    args: Mapping[str, Any],
    shapes: Sequence[tuple],
    batches: Sequence[int] | None = None,
    skip: Sequence[int] = (),
    paths: Sequence[str] | None = None,
    tracked: bool = True,
) -> list[Weight]:
    """The entries of the weights list, in Keras's order.

    The step count first; Keras 3's ``learning_rate`` variable (unless the
    learning rate is a schedule or a function); in the current and Keras 3
    families the EMA averages, then the gradient accumulators, one per
    variable, when configured; the scalars Keras lists (Keras 3: last); then
    the slots in :attr:`Spec.slot_order`, per build batch (``batches``: the
    sizes of successive builds, by default one build of every variable).
    Variables in ``skip`` (Keras 3's ``overwrite_with_gradient``) have no
    slots and no average.  A routed spec (Muon) gives each variable the slots
    of its route, decided by its path (``paths``) and shape; ``tracked=False``: no :attr:`Slot.placeholder` (Keras 3's LSO).
    """
    n = len(shapes)
    keras3 = spec.family == "keras3"
    out = [Weight("iterations")]
    if keras3 and not is_schedule(args["learning_rate"]):
        out.append(Weight("hyper", "learning_rate"))
    if spec.family != "legacy":
        if args.get("use_ema"):
            out += [Weight("average", "", i) for i in range(n) if i not in skip]
        if args.get("gradient_accumulation_steps"):
            out += [Weight("accumulator", "", i) for i in range(n)]
    scalars = [Weight("scalar", s.name) for s in spec.scalars if s.in_weights]
    if not keras3:
        out += scalars
    listed = {s.name: (lambda shape, s=s: s.listed(shape) and (tracked or not (s.placeholder and s.placeholder(shape)))) for s in spec.slots}
    paths = [""] * n if paths is None else list(paths)
    has = [spec.leaf_slots(spec.leaf_route(paths[i], tuple(shapes[i]), args), args) for i in range(n)]
    start = 0
    for size in [n] if batches is None else batches:
        for group in spec.weight_order(args):
            for i in range(start, start + size):
                for slot in group:
                    if i not in skip and slot in has[i] and listed[slot](tuple(shapes[i])):
                        out.append(Weight("slot", slot, i))
        start += size
    return out + scalars if keras3 else out


def keras_name(spec: Spec, weight: Weight, variable: str = "") -> str:
    """Keras's name for an entry, without the optimizer's name scope and the ``:0``.

    ``variable`` is the name (Keras 3: the path) of the variable the entry
    belongs to (``dense/kernel``).  Legacy: ``iter``, ``dense/kernel/m``,
    ``momentum_cache``; current: ``iteration``, ``m/dense/kernel``,
    ``average/dense/kernel``; Keras 3: ``iteration``, ``learning_rate``,
    ``dense_kernel_momentum``, ``dense_kernel_average``, ``u_product``.
    """
    family = spec.family
    if weight.kind == "iterations":
        return "iter" if family == "legacy" else "iteration"
    if weight.kind in ("scalar", "hyper"):
        return weight.name
    if family == "keras3":
        flat = variable.replace("/", "_")
        if weight.kind == "slot":
            slot = spec.keras_slot_name(weight.name)
            return f"{flat}_{slot}" if slot else variable.rsplit("/", 1)[-1]  # "": the variable's own name
        return f"{flat}_{'average' if weight.kind == 'average' else 'gradient_accumulator'}"
    if weight.kind == "average":
        return f"average/{variable}"
    if weight.kind == "accumulator":
        return f"gradient_accumulator/{variable}"
    return f"{variable}/{weight.name}" if family == "legacy" else f"{weight.name}/{variable}"


def locked(method: Callable) -> Callable:
    """``method`` run under the optimizer's lock (``self._lock``, reentrant).

    The jitted step donates the state's buffers: a thread reading or replacing the state while another steps
    would see deleted arrays, and two steps from one state would lose one.  Every method that reads or
    writes the state takes the lock, so calls from several threads are serialised.
    """

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return run


class CallableList(list):
    """A list that returns itself when called (Keras's ``optimizer.variables()``)."""

    def __call__(self):
        return self


class WeightsList:
    """The weights-list half of :class:`~jaxopt_keras.optimizers.optimizer.KerasOptimizer`.

    A family says how it names things (:meth:`_weight_entries`,
    :meth:`_slot_name`); the order of the slots comes from the spec.
    """

    _VIEW: type = StateView  # how the family names its variables
    _tracked = True  # False: Keras 3's LossScaleOptimizer builds it, untracked (keras_layout)
    _ITER_NAME = "iteration"
    _read_iterations = staticmethod(read_iterations)  # the step count as the family's Keras shows it

    # -- iterations ----------------------------------------------------------
    @locked
    def _iterations_value(self) -> jax.Array:
        return jnp.array(self._read_iterations(self._held), copy=True)  # the next step donates the state's

    @locked
    def _set_iterations(self, value: Any) -> None:
        self._held = self._write_iterations(self._held, value)

    @shared
    def _write_iterations(self, state: Any, value: Any) -> Any:
        return with_iterations(state, value, self._args.get("gradient_accumulation_steps"))

    @property
    def iterations(self) -> StateView:
        """The number of steps taken (Keras's ``iterations``)."""
        return StateView(self._iter_weight_name(), self._iterations_value, self._set_iterations)

    def _iter_weight_name(self) -> str:
        return f"{self._ITER_NAME}:0"

    # -- entries -------------------------------------------------------------
    def _weight_entries(self) -> list[Entry]:
        """``(name, read(state), write(state, value) -> state)`` in Keras's order."""
        shapes = [v.shape for v in self._variables]
        out = []
        paths = [v.path for v in self._variables]
        for w in keras_layout(self._spec, self._args, shapes, self._batches, self._stateless_variables(), paths, self._tracked):
            variable = self._variables[w.index]._shared_name if w.index >= 0 else ""
            out.append((self._weight_name(w, variable), *self._access(w)))
        return out

    def _weight_name(self, weight: Weight, variable: str) -> str:
        """The entry's name as the family's Keras class gives it."""
        raise NotImplementedError

    def _stateless_variables(self) -> tuple[int, ...]:
        """Indices of variables the optimizer keeps no state for (Keras 3's
        ``overwrite_with_gradient``)."""
        return ()

    def _access(self, weight: Weight) -> tuple[Callable, Callable]:
        """Reader and writer of an entry in the state."""
        if weight.kind == "iterations":
            return self._read_iterations, self._write_iterations
        if weight.kind == "scalar":
            return scalar_entry(weight.name)
        if weight.kind == "hyper":
            return hyper_entry(weight.name)
        if weight.kind == "average":
            return list_entry(EmaState, "average", weight.index)
        if weight.kind == "accumulator":
            return list_entry(AccumulationState, "accumulators", weight.index)
        return slot_entry(weight.name, weight.index)

    def _variable_paths(self, params: Any) -> list[str]:
        """A routed spec's ``paths``: each variable's own ``path``, as Keras 3 routes,
        for the variables whose values are ``params`` (all, or the batch being built)."""
        paths, n = [v.path for v in self._variables], len(jax.tree_util.tree_leaves(params))
        if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure([0] * n):
            factory = f"{FACTORY_MODULES[self._family]}.{self._entry.function}"
            raise ValueError(
                f"{type(self).__name__} routes each variable by its path, and this transformation holds the paths of "
                f"the {len(paths)} variables it was built with, in their order: run it on a list of their values, not "
                f"on a tree of structure {jax.tree_util.tree_structure(params)}. On another tree, give each leaf its "
                f"path: {factory}(..., paths=...)."
            )
        return paths[len(paths) - n :]

    def _variable_slots(self, var: Variable) -> tuple[str, ...]:
        """The slots ``var`` has (a routed spec gives some variables fewer)."""
        return self._spec.leaf_slots(self._spec.leaf_route(var.path, var.shape, self._args), self._args)

    def _view(self, name: str, read: Callable, write: Callable) -> StateView:
        once = getattr(read, "shared", False)  # not per variable: the state as held will do

        def write_state(value):
            with self._lock:
                if once:
                    self._held = write(self._held, value)
                else:
                    self._state = write(self._state, value)

        def read_state():
            with self._lock:  # a copy: the next step donates the state's buffers
                return jnp.array(read(self._held if once else self._state), copy=True)

        return self._VIEW(name, read_state, write_state)

    # -- the list ------------------------------------------------------------
    @property
    def weights(self) -> list[StateView]:
        """The optimizer's variables in Keras's order (views into :attr:`state`); before the build, none (legacy) or the step counter."""
        if not self._built and self._family == "legacy":
            return []
        return [self._view(*entry) for entry in self._weight_entries()]

    @property
    def variables(self) -> CallableList:
        """Same as :attr:`weights`; callable too, as OptimizerV2's ``variables()``."""
        return CallableList(self.weights)

    @locked
    def get_weights(self) -> list[np.ndarray]:
        """The weights' values as NumPy arrays (the step counter as int64, as Keras), as :attr:`weights` lists them."""
        if not self._built and self._family == "legacy":
            return []
        out = []
        for i, (_, read, _) in enumerate(self._weight_entries()):
            value = np.array(read(self._state))
            out.append(value.astype(np.int64) if i == 0 else value)
        return out

    @locked
    def set_weights(self, weights: Sequence[Any]) -> None:
        """Sets all weights from a list in Keras's order; all or nothing.

        Raises:
          ValueError: the list's length or a weight's shape does not match, as
            Keras reports it; a weight holds NaN (Keras takes it).  The
            optimizer is left unchanged.
        """
        entries = self._weight_entries() if self._built else []
        weights = list(weights)
        if self._spec.adjust_weights is not None and entries:
            weights = self._spec.adjust_weights(len(entries), weights)
        self._check_weights_length(entries, weights)
        new_state = self._state
        for (name, read, write), w in zip(entries, weights):
            current = read(new_state)
            w = np.asarray(w.value if isinstance(w, Variable) else w)
            if tuple(current.shape) != tuple(w.shape):
                self._shape_error(name, current.shape, w.shape)
            if w.dtype.kind in "OSU":  # None, strings
                raise ValueError(f"Optimizer weight {name} must hold numbers; received {w.dtype} values: {str(w.tolist())[:60]}.")
            nans = nan_count(w)
            if nans:
                raise ValueError(f"Optimizer weight {name} holds NaN ({nans} of {w.size} values): every later step would be NaN.")
            # The step count goes as given: its writer refuses what the counter cannot hold.
            new_state = write(new_state, w if is_count(current) else jnp.asarray(w).astype(current.dtype))
        if entries:
            self._state = self._after_set_weights(new_state)

    def _check_weights_length(self, entries: list, weights: list) -> None:
        if len(entries) != len(weights):
            raise ValueError(
                f"You called `set_weights(weights)` on optimizer {self._init_name} with a  weight list of "
                f"length {len(weights)}, but the optimizer was expecting {len(entries)} weights. "
                f"Provided weights: {str(weights)[:50]}..."
            )

    def _shape_error(self, name: str, expected: Any, given: Any) -> None:
        raise ValueError(
            f"Optimizer weight shape {tuple(expected)} not compatible with provided weight shape {tuple(given)}."
        )

    def _after_set_weights(self, state: Any) -> Any:
        # Every clock in the state (the EMA's overwrite clock) follows the step count.
        state = self._write_iterations(state, read_iterations(state))
        if self._spec.after_load is not None:
            state = replace_state(state, OptimizerState, self._spec.after_load)
        return state

    # -- slots ---------------------------------------------------------------
    def get_slot_names(self) -> list[str]:
        """The names of the slots this optimizer keeps, in creation order."""
        return list(self._spec.active_slots(self._args))

    def get_slot(self, var: Variable, slot_name: str) -> StateView:
        """The slot ``slot_name`` of variable ``var`` (a view into the state)."""
        key = self._var_key(var)
        if key not in self._index:
            raise KeyError(f"The optimizer has no slots for variable {getattr(var, 'name', var)}.")
        if slot_name not in self.get_slot_names():
            raise KeyError(f"'{slot_name}': this optimizer's slots are {self.get_slot_names()}.")
        if slot_name not in self._variable_slots(var):
            raise KeyError(f"'{slot_name}': variable {var.path} has the slots {list(self._variable_slots(var))}.")
        weight = Weight("slot", slot_name, self._index[key])
        return self._view(self._weight_name(weight, var._shared_name), *slot_entry(slot_name, self._index[key]))
