"""The weights list: Keras's names and order for an optimizer's variables, as views into the state.

A Keras optimizer lists its variables in a fixed order (``optimizer.weights``,
``get_weights``/``set_weights``, the checkpoint files): the step count first,
then per-optimizer scalars, then the slots in the order the family's
``_create_slots``/``build`` creates them (:attr:`Spec.slot_order`).  Each
entry here is ``(name, read(state), write(state, value) -> state)``, so the
list is a view of the one state the optimizer keeps: nothing is copied, and
``set_weights`` builds the new state and swaps it in whole or not at all.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.algorithms.driver import OptimizerState
from jaxopt_keras.core.state import find_state, map_clocks, replace_state
from jaxopt_keras.optimizers.variable import StateView, Variable
from jaxopt_keras.transforms.accumulation import AccumulationState

Entry = tuple[str, Callable[[Any], jax.Array], Callable[[Any, Any], Any]]


class CallableList(list):
    """A list that returns itself when called (Keras's ``optimizer.variables()``)."""

    def __call__(self):
        return self


def read_iterations(state: Any) -> jax.Array:
    """Keras's ``iterations``: calls so far (Keras 3 counts accumulation calls too)."""
    acc = find_state(state, AccumulationState, required=False)
    return (acc if acc is not None else find_state(state, OptimizerState)).iterations


def with_iterations(state: Any, value: Any, steps: int | None = None) -> Any:
    """``state`` with every step clock set from Keras's ``iterations = value``.

    The optimizer step counts updates, which under gradient accumulation over
    ``steps`` calls is ``value // steps``; the accumulation and EMA clocks
    count calls.  Each clock gets a fresh buffer: the step donates the state,
    and one buffer may not be donated twice.
    """
    value = jnp.asarray(value)

    def clock(x):
        v = value // steps if (steps and isinstance(x, OptimizerState)) else value
        return jnp.array(v, x.iterations.dtype, copy=True)

    return map_clocks(state, clock)


def slot_entry(slot: str, i: int) -> tuple[Callable, Callable]:
    """Reader and writer of slot ``slot`` of the ``i``-th variable."""

    def read(state):
        return getattr(find_state(state, OptimizerState).slots, slot)[i]

    def write(state, value):
        def change(core):
            tree = list(getattr(core.slots, slot))
            tree[i] = value
            return core._replace(slots=core.slots._replace(**{slot: tree}))

        return replace_state(state, OptimizerState, change)

    return read, write


def scalar_entry(name: str) -> tuple[Callable, Callable]:
    """Reader and writer of the per-optimizer scalar ``name``."""

    def read(state):
        return find_state(state, OptimizerState).scalars[name]

    def write(state, value):
        return replace_state(state, OptimizerState, lambda c: c._replace(scalars=dict(c.scalars, **{name: value})))

    return read, write


def hyper_entry(name: str) -> tuple[Callable, Callable]:
    """Reader and writer of the optimizer's hyperparameter ``name`` (Keras 3's
    ``learning_rate`` variable)."""

    def read(state):
        return find_state(state, OptimizerState).hyperparams[name]

    def write(state, value):
        return replace_state(state, OptimizerState, lambda c: c._replace(hyperparams=c.hyperparams.replace(**{name: value})))

    return read, write


def list_entry(cls: type, field: str, i: int) -> tuple[Callable, Callable]:
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


class WeightsList:
    """The weights-list half of :class:`~jaxopt_keras.optimizers.optimizer.KerasOptimizer`.

    A family says how it names things (:meth:`_weight_entries`,
    :meth:`_slot_name`); the order of the slots comes from the spec.
    """

    _ITER_NAME = "iteration"

    # -- iterations ----------------------------------------------------------
    def _iterations_value(self) -> jax.Array:
        return read_iterations(self._state)

    def _set_iterations(self, value: Any) -> None:
        self._state = self._write_iterations(self._state, value)

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
        raise NotImplementedError

    def _slot_name(self, slot: str, var: Variable) -> str:
        raise NotImplementedError

    def _slot_entries(self, name_fn: Callable[[str, Variable], str]) -> list[Entry]:
        out = []
        start = 0
        listed = {s.name: s.listed for s in self._spec.slots}
        has = [self._variable_slots(v) for v in self._variables]
        for size in self._batches:
            for group in self._spec.weight_order(self._args):
                for i in range(start, start + size):
                    for slot in group:
                        if slot in has[i] and listed[slot](self._variables[i].shape):
                            out.append((name_fn(slot, self._variables[i]), *slot_entry(slot, i)))
            start += size
        return out

    def _variable_paths(self, params: Any) -> list[str]:
        """A routed spec's ``paths``: each variable's own ``path``, as Keras 3 routes,
        for the variables whose values are ``params`` (all, or the batch being built)."""
        paths = [v.path for v in self._variables]
        return paths[len(paths) - len(jax.tree_util.tree_leaves(params)) :]

    def _variable_slots(self, var: Variable) -> tuple[str, ...]:
        """The slots ``var`` has (a routed spec gives some variables fewer)."""
        return self._spec.leaf_slots(self._spec.leaf_route(var.path, var.shape, self._args), self._args)

    def _scalar_entries(self, prefix: str) -> list[Entry]:
        return [(f"{prefix}{s.name}:0", *scalar_entry(s.name)) for s in self._spec.scalars if s.in_weights]

    def _view(self, name: str, read: Callable, write: Callable) -> StateView:
        def write_state(value):
            self._state = write(self._state, value)

        return StateView(name, lambda: read(self._state), write_state)

    # -- the list ------------------------------------------------------------
    @property
    def weights(self) -> list[StateView]:
        """The optimizer's variables in Keras's order (views into :attr:`state`)."""
        if not self._built:
            return []
        return [self._view(*entry) for entry in self._weight_entries()]

    @property
    def variables(self) -> CallableList:
        """Same as :attr:`weights`; callable too, as OptimizerV2's ``variables()``."""
        return CallableList(self.weights)

    def get_weights(self) -> list[np.ndarray]:
        """The weights' values as NumPy arrays (the step counter as int64, as Keras)."""
        if not self._built:
            return []
        out = []
        for i, (_, read, _) in enumerate(self._weight_entries()):
            value = np.array(read(self._state))
            out.append(value.astype(np.int64) if i == 0 else value)
        return out

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Sets all weights from a list in Keras's order; all or nothing.

        Raises:
          ValueError: the list's length or a weight's shape does not match, as
            Keras reports it.  The optimizer is left unchanged.
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
            new_state = write(new_state, jnp.asarray(w).astype(current.dtype))
        if entries:
            self._state = self._after_set_weights(new_state)

    def _check_weights_length(self, entries: list, weights: list) -> None:
        if len(entries) != len(weights):
            raise ValueError(
                f"You called `set_weights(weights)` on optimizer {self._name} with a  weight list of "
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
        return self._view(self._slot_name(slot_name, var), *slot_entry(slot_name, self._index[key]))
