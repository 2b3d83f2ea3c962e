"""Keras 3's ``MultiOptimizer`` and ``OptimizerMap``: each variable stepped by the optimizer its path picks.

An :class:`OptimizerMap` routes a variable by its path: an exact key first,
then the keys read as regular expressions that ``re.fullmatch`` the path
(exactly one, or a ``ValueError`` naming the variable), else the default
optimizer.  A :class:`MultiOptimizer` builds each optimizer on its variables
and dispatches their gradients; its own variables (``iteration``,
``learning_rate``) lead its ``variables`` list, then each optimizer's.  Its
:attr:`~MultiOptimizer.transformation` is the functional
:func:`~jaxopt_keras.transforms.routing.multi_optimizer` of the optimizers'
transformations.
"""

from __future__ import annotations

import threading
from collections.abc import MutableMapping
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core import transform as base
from jaxopt_keras.core.state import checked_count
from jaxopt_keras.optimizers.config import serialize_optimizer
from jaxopt_keras.optimizers.keras3_family import Keras3Optimizer
from jaxopt_keras.optimizers.names import auto_name
from jaxopt_keras.optimizers.variable import Keras3View, StateView, Variable
from jaxopt_keras.optimizers.weights import locked
from jaxopt_keras.transforms.routing import multi_optimizer, route


class OptimizerMap(MutableMapping):
    """Path or pattern -> optimizer, with a default (Keras 3's ``OptimizerMap``).

    Args:
      default_optimizer: the optimizer of every variable no key routes.
      optimizer_map: key -> optimizer; a key is a variable path, or a regular
        expression that must ``fullmatch`` one.
    """

    def __init__(self, default_optimizer: Keras3Optimizer, optimizer_map: Mapping[str, Keras3Optimizer] | None = None):
        if not isinstance(default_optimizer, Keras3Optimizer):
            raise TypeError(f"default_optimizer must be a Keras Optimizer instance. Received: {default_optimizer}")
        if optimizer_map is not None and not isinstance(optimizer_map, Mapping):
            raise TypeError(f"optimizer_map must be a dictionary. Received: {optimizer_map}")
        self.default_optimizer = default_optimizer
        self._map: dict[str, Keras3Optimizer] = dict(optimizer_map or {})

    def __setitem__(self, key: str, optimizer: Keras3Optimizer) -> None:
        if key in self._map:
            raise ValueError(
                f"'{key}' already exists in the OptimizerMap with value {self._map[key]}. Please make sure to not "
                "use duplicated keys."
            )
        if not isinstance(key, str):
            raise ValueError(f"key must be a string. Received: {key}")
        check_member(optimizer, "optimizer must be a Keras Optimizer instance. Received: {x}")
        self._map[key] = optimizer

    def __getitem__(self, path: str) -> Keras3Optimizer:
        return route(path, self._map, self.default_optimizer)

    def __call__(self, variable: Variable) -> Keras3Optimizer:
        return self[variable.path]

    def __delitem__(self, key: str) -> None:
        del self._map[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def values(self):  # the optimizers as stored (a lookup by key would route)
        return list(self._map.values())

    def get_config(self) -> dict:
        return {
            "default_optimizer": serialize_optimizer(self.default_optimizer),
            "optimizer_map": {k: serialize_optimizer(v) for k, v in self._map.items()},
        }


def check_member(optimizer: Any, message: str) -> None:
    """A MultiOptimizer's member is one of our Keras 3 optimizers, not a wrapper."""
    if getattr(optimizer, "is_loss_scale_optimizer", False):
        raise ValueError("optimizer cannot be LossScaleOptimizer.")
    if isinstance(optimizer, MultiOptimizer):
        raise ValueError("optimizer cannot be MultiOptimizer.")
    if not isinstance(optimizer, Keras3Optimizer):
        raise ValueError(message.format(x=optimizer))


class MultiOptimizer:
    """Keras 3's ``MultiOptimizer``.

    Args:
      optimizer_map: an :class:`OptimizerMap`, or a callable ``variable -> optimizer``.
      loss_scale_factor: set on every optimizer it holds (even ``None``);
        :meth:`scale_loss` multiplies by it.
      name: by default ``multi_optimizer``, ``multi_optimizer_1``, ...
    """

    def __init__(self, optimizer_map: OptimizerMap | Callable[[Variable], Keras3Optimizer], loss_scale_factor: float | None = None, name: str | None = None):
        if not (isinstance(optimizer_map, OptimizerMap) or callable(optimizer_map)):
            raise TypeError(f"optimizer_map must be an OptimizerMap or a callable. Received: {optimizer_map}")
        self.optimizer_map = optimizer_map
        self.name = auto_name("MultiOptimizer") if name is None else name
        self._optimizers: list[Keras3Optimizer] = []
        if isinstance(optimizer_map, OptimizerMap):
            for opt in [*optimizer_map.values(), optimizer_map.default_optimizer]:
                if all(opt is not o for o in self._optimizers):
                    self._optimizers.append(opt)
        self._loss_scale_factor = None
        self.loss_scale_factor = loss_scale_factor
        self._iterations = jnp.zeros([], jnp.int32)
        self._variables: list[Variable] = []
        self._owner: list[int] = []  # optimizer index of each variable, in build order
        self._lock = threading.RLock()  # one call at a time (see weights.locked)

    # -- members -------------------------------------------------------------
    @property
    def optimizers(self) -> list[Keras3Optimizer]:
        return list(self._optimizers)

    @property
    def loss_scale_factor(self) -> float | None:
        return self._loss_scale_factor

    @loss_scale_factor.setter
    def loss_scale_factor(self, value: float | None) -> None:
        self._loss_scale_factor = value
        for opt in self._optimizers:
            if opt.loss_scale_factor != value:
                opt.loss_scale_factor = value

    @property
    def learning_rate(self):
        raise AttributeError(
            "Learning rate cannot be accessed on a MultiOptimizer. Access the learning rate on the individual "
            "sub-optimizers instead."
        )

    @learning_rate.setter
    def learning_rate(self, value):
        raise AttributeError(
            "Learning rate cannot be set on a MultiOptimizer. Set the learning rate on the individual sub-optimizers instead."
        )

    # -- building ------------------------------------------------------------
    @property
    def built(self) -> bool:
        return bool(self._variables)

    @locked
    def build(self, var_list: Sequence[Variable]) -> None:
        """Routes each variable and builds every optimizer on its own, in ``var_list`` order.

        Raises:
          ValueError: a path two patterns match, or a member that is not a
            Keras 3 optimizer (nothing is built then).
        """
        if self.built:
            return
        var_list = list(var_list)
        owners, members = [], list(self._optimizers)
        for v in var_list:
            opt = self.optimizer_map(v)
            check_member(opt, f"Optimizer for variable {v.path} is not an Optimizer instance.")
            if all(opt is not o for o in members):
                members.append(opt)
                opt.loss_scale_factor = self._loss_scale_factor
            owners.append(next(i for i, o in enumerate(members) if o is opt))
        self._optimizers, self._owner, self._variables = members, owners, var_list
        for k, opt in enumerate(self._optimizers):
            mine = [v for v, o in zip(var_list, owners) if o == k]
            if mine:
                opt.build(mine)

    def _groups(self, items: Sequence[Any]) -> list[list[Any]]:
        return [[x for x, o in zip(items, self._owner) if o == k] for k in range(len(self._optimizers))]

    # -- variables -------------------------------------------------------------
    def _own_views(self) -> list[StateView]:
        return [
            Keras3View(f"{self.name}/iteration", lambda: self._iterations, self._set_iterations),
            Keras3View(f"{self.name}/learning_rate", lambda: jnp.zeros([], jnp.float32), lambda v: None),
        ]

    @locked
    def _set_iterations(self, value: Any) -> None:
        self._iterations = jnp.array(checked_count(value, np.int32, widens=False), copy=True)

    @property
    def variables(self) -> list[StateView]:
        return self._own_views() + [v for opt in self._optimizers for v in opt.variables]

    @property
    def iterations(self) -> StateView:
        return self._own_views()[0]

    @locked
    def get_weights(self) -> list[np.ndarray]:
        return [np.array(v.value) for v in self.variables]

    @locked
    def set_weights(self, weights: Sequence[Any]) -> None:
        """Its own variables, then each optimizer's slice; all or nothing."""
        weights = list(weights)
        sizes = [len(opt.variables) for opt in self._optimizers]
        if len(weights) != 2 + sum(sizes):
            raise ValueError(f"Expected {2 + sum(sizes)} weights for {self.name}, received {len(weights)}.")
        checked_count(weights[0], np.int32, widens=False)  # before anything changes
        saved = [opt.get_weights() if opt.built else None for opt in self._optimizers]
        try:
            start = 2
            for opt, n in zip(self._optimizers, sizes):
                if opt.built:
                    opt.set_weights(weights[start : start + n])
                start += n
        except ValueError:
            for opt, w in zip(self._optimizers, saved):
                if w is not None:
                    opt.set_weights(w)
            raise
        self._set_iterations(weights[0])

    # -- applying --------------------------------------------------------------
    @locked
    def apply(self, grads: Sequence[Any], trainable_variables: Sequence[Variable] | None = None) -> None:
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None and not self.built:
            raise ValueError(
                "When passing `grads` without `variables`, the optimizer must already be built on a list of "
                "variables. Call `optimizer.build(trainable_variables)` first."
            )
        if trainable_variables is not None:
            self.build(trainable_variables)
        if len(grads) != len(self._variables):
            raise ValueError(
                f"Gradients must match trainable variables one-to-one. Received {len(grads)} gradients and "
                f"{len(self._variables)} variables."
            )
        for opt, g, v in zip(self._optimizers, self._groups(grads), self._groups(self._variables)):
            if v:
                opt.apply(g, v)
        self._iterations = self._iterations + 1

    def apply_gradients(self, grads_and_vars) -> StateView:
        grads, variables = zip(*grads_and_vars)
        self.apply(grads, variables)
        return self.iterations

    def stateless_apply(self, optimizer_variables: Sequence[Any], grads: Sequence[Any], trainable_variables: Sequence[Any]):
        """Each optimizer's ``stateless_apply`` on its slice: ``(new values, new optimizer variables)``."""
        sizes = [len(opt.variables) for opt in self._optimizers]
        if len(optimizer_variables) != 2 + sum(sizes):
            raise ValueError(
                "Argument `optimizer_variables` must be a list of tensors corresponding 1:1 to "
                f"MultiOptimizer().variables. Received list with length {len(optimizer_variables)}, but expected "
                f"{2 + sum(sizes)} variables."
            )
        values = list(trainable_variables)
        new_values = list(values)
        new_vars = [jnp.asarray(optimizer_variables[0]) + 1, optimizer_variables[1]]
        start = 2
        for k, (opt, n) in enumerate(zip(self._optimizers, sizes)):
            idx = [i for i, o in enumerate(self._owner) if o == k]
            mine = list(optimizer_variables[start : start + n])
            if idx:
                out, mine = opt.stateless_apply(mine, [grads[i] for i in idx], [values[i] for i in idx])
                for i, x in zip(idx, out):
                    new_values[i] = x
            new_vars += list(mine)
            start += n
        return new_values, new_vars

    @property
    def transformation(self) -> base.GradientTransformation:
        """The functional optimizer over the built variables (routed by their paths)."""
        by_path = {v.path: self._optimizers[o].transformation for v, o in zip(self._variables, self._owner)}
        return multi_optimizer(by_path, self._optimizers[-1].transformation, paths=[v.path for v in self._variables])

    def scale_loss(self, loss: Any) -> Any:
        return loss if self._loss_scale_factor is None else loss * self._loss_scale_factor

    def finalize_variable_values(self, var_list: Sequence[Variable]) -> None:
        for opt, vs in zip(self._optimizers, self._groups(list(var_list))):
            if vs:
                opt.finalize_variable_values(vs)

    def __reduce__(self) -> tuple:
        """Pickles as a fresh MultiOptimizer over the map's pickle (each optimizer
        a fresh one from its config), as Keras 3 pickles optimizers; a callable
        map must pickle itself (a module-level function does)."""
        return MultiOptimizer, (self.optimizer_map, self._loss_scale_factor, self.name)

    # -- config ----------------------------------------------------------------
    def get_config(self) -> dict:
        if not isinstance(self.optimizer_map, OptimizerMap):
            raise ValueError("A MultiOptimizer with a callable optimizer_map cannot be serialized; use an OptimizerMap.")
        return {
            "optimizer_map": {
                "module": "keras.optimizers",
                "class_name": "OptimizerMap",
                "config": self.optimizer_map.get_config(),
                "registered_name": None,
            },
            "loss_scale_factor": self._loss_scale_factor,
            "name": self.name,
        }

    def __repr__(self) -> str:
        return f"<jaxopt_keras.optimizers.keras3.MultiOptimizer name={self.name!r}>"
