"""What an algorithm declares, per numerics family: its Keras metadata and its math.

An algorithm module (``algorithms/adam.py``, ...) holds, for each family the
optimizer exists in, one :class:`Spec`: the constructor arguments Keras
takes and their defaults, how Keras stores each numeric hyperparameter (a
float32 variable, or a Python float), the slots and the order Keras lists
them in, and one small pure function with the math of one step for one
parameter.  :mod:`jaxopt_keras.algorithms.driver` turns a spec into a
transformation; the registry (:mod:`jaxopt_keras.registry`) names the specs
of every optimizer.  The parts a spec is declared with (its slots, scalars,
statics, prepared values and routes) live in :mod:`jaxopt_keras.algorithms.parts`.

The math receives a typed :class:`Coefficients` NamedTuple built for its
spec: exactly the learning rate, the step count, the hyperparameters (and
their host-side derived values), the per-optimizer scalars and the static
arguments the spec declares.  Reading anything else is an ``AttributeError``.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Any, Callable, Literal, Mapping, NamedTuple

import jax
import numpy as np

from jaxopt_keras.algorithms.parts import Prepared, Route, RouteFn, Scalar, Slot, Static, UpdateFn, always
from jaxopt_keras.core.hyperparams import Derived
from jaxopt_keras.schedules.base import takes_no_arguments, takes_the_step

Family = Literal["legacy", "current", "keras3"]
FAMILIES: tuple[Family, ...] = ("legacy", "current", "keras3")


# Arguments of the functional factories only: the classes know their variables.
FUNCTIONAL_ONLY = ("paths",)


# Kept in the state (OptimizerV2's `decay` variable, in its checkpoints), read by no step: the
# math reads the constructor's `_initial_decay` (the driver's time decay, Nadam's static).
STATE_ONLY_HYPERPARAMS = ("decay",)


@dataclasses.dataclass(frozen=True)
class Spec:
    """One algorithm in one numerics family: Keras metadata plus its math.

    Attributes:
      family: ``"legacy"`` (OptimizerV2), ``"current"`` (TF-Keras >= 2.11) or ``"keras3"``.
      defaults: the algorithm's own constructor arguments and defaults, in
        the order of Keras's constructor (``learning_rate`` first); the
        config lists them in this order too.
      name_index: where ``name`` stands among the positional arguments
        (``None``: after all of ``defaults``, as in most Keras classes).
      base_defaults: the family's shared arguments whose default this class
        changes (current RMSprop: ``ema_overwrite_frequency=100``).
      extra_args: keyword-only arguments beyond the family's (legacy Nadam's ``schedule_decay``), with their defaults.
      float32_hyperparams: numeric arguments TF-Keras rounds to float32 (``_set_hyper``,
        ``tf.cast`` of a Python float); kept so (``keras3``: widest float, as ``ops.cast``).
      exact_hyperparams: numeric arguments Keras keeps as Python floats; kept
        in the state at the widest float precision.
      attributes: legacy ``float32_hyperparams`` that are plain attributes, not ``_set_hyper``
        variables (Ftrl's ``l2_shrinkage``): ``get_config`` reports the float given.
      derived: host-side arithmetic Keras does on Python floats.
      statics: non-numeric arguments the math reads (``nesterov``, ...).
      prepare: the scalars every parameter of a dtype shares (Adam's step
        size), computed once per step and dtype, in order (:class:`~jaxopt_keras.algorithms.parts.Prepared`).
      slots_type: the NamedTuple holding this algorithm's slot trees.
      slots: the slots, in ``slots_type`` field order.
      slot_order: how Keras lists slots in its weights: a sequence of groups;
        within a group, slots are interleaved per variable, and groups follow
        one another.  Legacy Adam ``(("m",), ("v",), ("vhat",))`` lists all m,
        then all v; Ftrl ``(("accumulator", "linear"),)`` interleaves.
      slot_names: Keras's name of a slot where it is not the field's name
        (Keras 3 calls Adam's ``m`` ``"momentum"``; ``""``: the slot takes the
        variable's own name); the math keeps the fields.
      update: the math of one step for one parameter:
        ``update(grad, param, slots, c) -> (delta, new_slots)``, with
        ``param + delta`` the new parameter and ``c`` this spec's
        :class:`Coefficients`.
      scalars: per-optimizer scalar variables.
      advance: ``advance(scalars, c) -> scalars``: the scalars' next values, once per step in their own dtype.
      advance_first: the scalars advance before the per-parameter math, which
        then reads their new values (Keras 3's Nadam); by default after it,
        the math reading the old values (TF-Keras).
      time_decay: legacy ``decay``: ``lr / (1 + decay * iterations)``, the
        constructor's ``decay`` (see :data:`STATE_ONLY_HYPERPARAMS`).
      needs_params: the math reads the parameter value.
      check_args: validates and normalizes the constructor arguments, raising Keras's errors.
      singular: argument values Keras accepts and whose first step makes the
        parameters NaN (Adam's ``beta_1=1``: ``m / (1 - beta_1**t)`` is 0/0); refused.
      config_when_set: arguments Keras leaves out of its config; they appear
        in ours only when set (current Adam's ``adaptive_epsilon``).
      config_to_args: config keys that come back as a differently named
        constructor argument (legacy Nadam stores ``schedule_decay`` as
        ``decay``).
      adjust_weights: ``adjust_weights(n_expected, weights) -> weights``, the
        class's leniency in ``set_weights``.
      after_load: ``after_load(state) -> state``, run on the optimizer's
        :class:`~jaxopt_keras.algorithms.driver.OptimizerState` after
        ``set_weights``: rebuilds state Keras does not list in its weights
        (current Nadam's ``u_product``).
      sparse_update: the math for a row-sparse gradient, ``sparse_update(g,
        param, slots, c)`` with ``g`` a deduplicated
        :class:`~jaxopt_keras.core.sparse.IndexedSlices`; returns a dense delta
        or an ``IndexedSlices`` of row deltas.  ``None``: Keras has no sparse
        path for this algorithm, and the gradient is densified.
      sparse_dedup: ``sparse_dedup(args)``: whether duplicate indices are
        summed before ``sparse_update`` (Keras does, except legacy SGD without
        momentum, which scatter-adds the rows as they come).
      elementwise: the math treats every element alike (so it runs on the
        flat layout); ``False`` when it needs tensor shapes (Adafactor).
      route: ``route(path, shape, args) -> Route``: the math, slots and decay
        rate of each parameter, from its path (see
        :mod:`jaxopt_keras.core.paths`; the Keras layer passes each
        ``Variable.path``), its shape and the constructor arguments.  ``None``:
        every parameter takes ``update``, every slot and ``weight_decay``.  A
        routed spec takes a ``paths=`` argument (a tree of strings shaped like
        the parameters, or a function of the parameters returning one) that
        overrides the paths of the tree's keys.
      decay_rates: the arguments that are decoupled weight-decay rates (kept
        in the state as float32 when set, read by the routes'
        ``weight_decay``); ``("weight_decay",)`` but for Muon.
      config_order: the algorithm's config keys in the order Keras's
        ``get_config`` lists them, where it differs from ``defaults``.
      non_number_errors: numeric arguments Keras's constructor checks itself,
        and the error it raises there for a non-number (``None``, a string, a
        list): ``TypeError`` where it compares the value with a number,
        ``ValueError`` where it tests its type (see
        :func:`jaxopt_keras.keras.numbers.check_number_types`).
      nullable: numeric arguments that may be ``None`` beyond the family's.
      ignored: arguments Keras takes and ignores (legacy Nadam's ``decay``):
        never checked.
      zero_arg_callables: legacy: the hyperparameters OptimizerV2 accepts as
        a zero-argument callable, called before every step (``_set_hyper``
        values its constructor does not compare); ``None``: the learning
        rate and ``float32_hyperparams``.
    """

    family: Family
    defaults: Mapping[str, Any]
    slots_type: type
    slots: tuple[Slot, ...]
    slot_order: tuple[tuple[str, ...], ...]
    update: UpdateFn
    float32_hyperparams: tuple[str, ...] = ()
    exact_hyperparams: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    derived: tuple[Derived, ...] = ()
    statics: tuple[Static, ...] = ()
    prepare: tuple[Prepared, ...] = ()
    slot_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    name_index: int | None = None
    base_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    extra_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    scalars: tuple[Scalar, ...] = ()
    advance: Callable[[dict, Any], dict] | None = None
    advance_first: bool = False
    time_decay: bool = False
    needs_params: bool = False
    check_args: Callable[[dict], dict] = lambda args: args
    singular: Mapping[str, float] = dataclasses.field(default_factory=dict)
    config_to_args: Mapping[str, str] = dataclasses.field(default_factory=dict)
    config_when_set: tuple[str, ...] = ()
    adjust_weights: Callable[[int, list], list] | None = None
    after_load: Callable[[Any], Any] | None = None
    sparse_update: UpdateFn | None = None
    sparse_dedup: Callable[[Mapping[str, Any]], bool] = always
    elementwise: bool = True
    route: RouteFn | None = None
    decay_rates: tuple[str, ...] = ("weight_decay",)
    config_order: tuple[str, ...] = ()
    non_number_errors: Mapping[str, type] = dataclasses.field(default_factory=dict)
    nullable: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    zero_arg_callables: tuple[str, ...] | None = None

    def __post_init__(self):
        fields = tuple(getattr(self.slots_type, "_fields", ()))
        names = tuple(s.name for s in self.slots)
        if fields != names:
            raise TypeError(f"slots {names} do not match {self.slots_type.__name__}{fields}")
        ordered = sorted(n for group in self.slot_order for n in group)
        if ordered != sorted(names):
            raise TypeError(f"slot_order {self.slot_order} does not list slots {names}")
        if "learning_rate" not in self.defaults:
            raise TypeError("a spec's defaults start with learning_rate")
        if self.route is not None and "paths" not in self.extra_args:
            object.__setattr__(self, "extra_args", {**self.extra_args, "paths": None})

    # -- what exists for given arguments -----------------------------------
    def active_slots(self, args: Mapping[str, Any]) -> tuple[str, ...]:
        """Names of the slots that exist for these constructor arguments."""
        return tuple(s.name for s in self.slots if s.when(args))

    def weight_order(self, args: Mapping[str, Any]) -> tuple[tuple[str, ...], ...]:
        """``slot_order`` restricted to the slots that exist."""
        active = set(self.active_slots(args))
        groups = (tuple(n for n in g if n in active) for g in self.slot_order)
        return tuple(g for g in groups if g)

    def leaf_route(self, path: str, shape: tuple[int, ...], args: Mapping[str, Any]) -> Route:
        """The :class:`~jaxopt_keras.algorithms.parts.Route` of the parameter at ``path`` with ``shape``."""
        if self.route is None:
            return Route(self.update, None, "weight_decay", self.sparse_update)
        return self.route(path, tuple(shape), args)

    def leaf_slots(self, route: Route, args: Mapping[str, Any]) -> tuple[str, ...]:
        """The slots that exist for a parameter taking ``route``."""
        active = self.active_slots(args)
        return active if route.slots is None else tuple(n for n in active if n in route.slots)

    def keras_slot_name(self, field: str) -> str:
        """Keras's name of the slot held in ``field``."""
        return self.slot_names.get(field, field)

    def callable_hyperparams(self) -> tuple[str, ...]:
        """The hyperparameters that may be zero-argument callables (legacy family only)."""
        if self.family != "legacy":
            return ()
        if self.zero_arg_callables is not None:
            return self.zero_arg_callables
        return ("learning_rate",) + self.float32_hyperparams

    def is_host_callable(self, name: str, value: Any) -> bool:
        """``value`` is a zero-argument callable hyperparameter ``name`` of this spec.

        A learning rate that can take the step count (``lambda step: ...``)
        is a schedule of the step instead (the functional API's meaning)."""
        if name not in self.callable_hyperparams():
            return False
        if name == "learning_rate" and takes_the_step(value):
            return False
        return takes_no_arguments(value)

    def hyperparam_names(self) -> tuple[str, ...]:
        """The numeric hyperparameters kept in the state, learning rate first."""
        decay = ("decay",) if self.time_decay else ()
        return ("learning_rate",) + self.float32_hyperparams + self.exact_hyperparams + decay

    # -- the math's typed view ----------------------------------------------
    @property
    def coefficients_type(self) -> type:
        """The :class:`Coefficients` NamedTuple of this spec (built once)."""
        return _coefficients_type(self.coefficient_fields())

    def coefficient_fields(self) -> tuple[str, ...]:
        """The fields the math may read: ``learning_rate``, ``iterations``, the
        hyperparameters and their derived values, the scalars, the statics,
        the prepared values."""
        names = ["learning_rate", "iterations"]
        names += [n for n in self.float32_hyperparams + self.exact_hyperparams if n not in names + list(STATE_ONLY_HYPERPARAMS)]
        names += [d.name for d in self.derived]
        names += [s.name for s in self.scalars]
        names += [s.name for s in self.statics]
        names += [p.name for p in self.prepare]
        return tuple(names)


class Coefficients(NamedTuple):
    """The scalars of one step in one dtype (see :meth:`Spec.coefficients_type`).

    A placeholder for type hints: each spec builds a NamedTuple of its own
    fields, like TF-Keras's ``apply_state[(device, dtype)]``.
    """

    learning_rate: jax.Array
    iterations: jax.Array


@functools.cache
def _coefficients_type(fields: tuple[str, ...]) -> type:
    return collections.namedtuple("Coefficients", fields)


# --------------------------------------------------------------------------
# Host-side arithmetic Keras does on Python floats, and common argument rules.
# --------------------------------------------------------------------------


def one_minus(x: float) -> float:
    """``1 - x`` in Python (double) arithmetic, as Keras computes it."""
    return 1 - x


def minus_one(x: float) -> float:
    """``x - 1`` in Python (double) arithmetic, as Keras computes it."""
    return x - 1


def twice(x: float) -> float:
    """``2 * x`` in Python (double) arithmetic, as Keras computes it."""
    return 2 * x


def legacy_epsilon(args: dict) -> dict:
    """OptimizerV2 replaces a falsy ``epsilon`` (0 or None) by 1e-7."""
    if not args.get("epsilon"):
        args["epsilon"] = 1e-7
    return args


def pad_missing_iterations(n_expected: int, weights: list) -> list:
    """OptimizerV2 Adagrad/Adadelta/RMSprop: a list without ``iter`` gets ``iter = 0``."""
    if n_expected == len(weights) + 1:
        return [np.array(0)] + list(weights)
    return weights
