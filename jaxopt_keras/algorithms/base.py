"""The machinery shared by every algorithm: one description, one transform.

Each algorithm module declares, per numerics family, a :class:`Numerics`: the
Keras metadata (class name, constructor arguments and defaults, which
arguments are hyperparameters and how Keras stores them, slot names, how slots
start, the order Keras lists them in its weights) and one small pure function
with the math of one step for one parameter.  :func:`scale_by_keras` turns a
description and the constructor's arguments into a
:class:`~jaxopt_keras.GradientTransformation`; :func:`build_optimizer`
adds Keras's argument checks and gradient clipping in Keras's order.

The Keras layer (:mod:`jaxopt_keras.optimizers`) reads the same descriptions,
so config keys, slot names and slot order live in exactly one place.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, Literal, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxopt_keras.core import transform as base
from jaxopt_keras.core.flat import contains_flat
from jaxopt_keras.core.state import count_dtype, filled, first_dtype, local_step, placed_like, safe_add
from jaxopt_keras.core.xla import recomputed
from jaxopt_keras.core.hyperparams import Derived, Hyperparams, widest_float
from jaxopt_keras.schedules.base import LearningRateSchedule, is_schedule
from jaxopt_keras.core.sparse import IndexedSlices, deduplicate
from jaxopt_keras.transforms import clipping
from jaxopt_keras.transforms.accumulation import accumulate_gradients, scale_by_loss_scale_factor
from jaxopt_keras.transforms.ema import ema as ema_transform

Family = Literal["legacy", "current"]
LearningRate = Any  # float | LearningRateSchedule | Callable[[step], scalar]

# --------------------------------------------------------------------------
# Description of an algorithm in one numerics family.
# --------------------------------------------------------------------------


def zeros(param: jax.Array, args: Mapping[str, Any]) -> jax.Array:
    """Slot initializer: zeros in the parameter's dtype."""
    del args
    return filled(param, 0)


def always(args: Mapping[str, Any]) -> bool:
    del args
    return True


@dataclasses.dataclass(frozen=True)
class Slot:
    """A per-parameter optimizer variable ("slot" in Keras).

    Attributes:
      name: Keras's slot name (``"m"``, ``"accumulator"``, ...).
      init: ``init(param, args) -> array`` with the parameter's shape and dtype.
      when: ``when(args) -> bool``; the slot exists only if true (Adam's
        ``vhat`` only with ``amsgrad``).
      listed: ``listed(param_shape) -> bool``; whether Keras lists this
        parameter's slot in its weights (Adafactor's factored ``r``/``c``
        exist only for parameters of rank >= 2).
    """

    name: str
    init: Callable[[jax.Array, Mapping[str, Any]], jax.Array] = zeros
    when: Callable[[Mapping[str, Any]], bool] = always
    listed: Callable[[tuple[int, ...]], bool] = lambda shape: True


@dataclasses.dataclass(frozen=True)
class Scalar:
    """A per-optimizer scalar variable (legacy Nadam's ``momentum_cache``).

    Stored in the dtype of the first parameter, as Keras does.

    Attributes:
      name: Keras's weight name.
      initial: its starting value.
      in_weights: whether Keras lists it in ``optimizer.weights``.
    """

    name: str
    initial: float
    in_weights: bool = True


class Coefficients(dict):
    """The scalars one step of the math needs, in one parameter dtype.

    Like TF-Keras's ``apply_state[(device, dtype)]``: ``learning_rate`` (with
    schedule and legacy ``decay`` already applied), the hyperparameters, the
    derived values, the algorithm's scalars, and ``iterations`` (the step
    count before this step, an integer array), and the non-numeric constructor
    arguments as Python values (``amsgrad``, ``nesterov``, ...).  Read as
    attributes.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


UpdateFn = Callable[[jax.Array, jax.Array | None, Any, Coefficients], tuple[jax.Array, Any]]


@dataclasses.dataclass(frozen=True)
class Numerics:
    """One algorithm in one numerics family: Keras metadata plus its math.

    Attributes:
      family: ``"legacy"`` (OptimizerV2) or ``"current"`` (Keras >= 2.11).
      class_name: the Keras class name.
      defaults: the algorithm's own constructor arguments and defaults, in the
        order Keras's ``get_config`` lists them (``learning_rate`` first).
      float32_hyperparams: numeric arguments Keras stores as float32 (legacy
        ``_set_hyper``); kept in the state, rounded to float32.
      exact_hyperparams: numeric arguments Keras keeps as Python floats; kept
        in the state at the widest float precision.
      derived: host-side arithmetic Keras does on Python floats.
      slots_type: the NamedTuple holding this algorithm's slot trees.
      slots: the slots, in ``slots_type`` field order.
      slot_order: how Keras lists slots in its weights: a sequence of groups;
        within a group, slots are interleaved per variable, and groups follow
        one another.  Legacy Adam ``(("m",), ("v",), ("vhat",))`` lists all m,
        then all v; Ftrl ``(("accumulator", "linear"),)`` interleaves.
      update: the math of one step for one parameter:
        ``update(grad, param, slots, c) -> (delta, new_slots)``, with
        ``param + delta`` the new parameter.
      scalars: per-optimizer scalar variables.
      advance: ``advance(scalars, c) -> scalars``, computing the scalars'
        next values once per step in their own dtype.
      time_decay: legacy ``decay``: ``lr / (1 + decay * iterations)``.
      needs_params: the math reads the parameter value.
      check_args: validates and normalizes the constructor arguments, raising
        Keras's errors.
      config_to_args: config keys that come back as a differently named
        constructor argument (legacy Nadam stores ``schedule_decay`` as
        ``decay``).
      adjust_weights: ``adjust_weights(n_expected, weights) -> weights``, the
        class's leniency in ``set_weights`` (see :func:`pad_missing_iterations`,
        :func:`drop_unused_vhat`).
      sparse_update: the math for a row-sparse gradient, ``sparse_update(g,
        param, slots, c)`` with ``g`` a deduplicated
        :class:`~jaxopt_keras.IndexedSlices`; returns a dense delta or
        an ``IndexedSlices`` of row deltas.  ``None``: Keras has no sparse
        path for this algorithm, and the gradient is densified.
      sparse_dedup: ``sparse_dedup(args)``: whether duplicate indices are
        summed before ``sparse_update`` (Keras does, except legacy SGD without
        momentum, which scatter-adds the rows as they come).
      elementwise: the math treats every element alike (so it runs on the
        flat layout); ``False`` when it needs tensor shapes (Adafactor).
    """

    family: Family
    class_name: str
    defaults: Mapping[str, Any]
    float32_hyperparams: tuple[str, ...]
    exact_hyperparams: tuple[str, ...]
    slots_type: type
    slots: tuple[Slot, ...]
    slot_order: tuple[tuple[str, ...], ...]
    update: UpdateFn
    derived: tuple[Derived, ...] = ()
    scalars: tuple[Scalar, ...] = ()
    advance: Callable[[dict, Coefficients], dict] | None = None
    time_decay: bool = False
    needs_params: bool = False
    check_args: Callable[[dict], dict] = lambda args: args
    config_to_args: Mapping[str, str] = dataclasses.field(default_factory=dict)
    adjust_weights: Callable[[int, list], list] | None = None
    sparse_update: Callable[..., tuple[Any, Any]] | None = None
    sparse_dedup: Callable[[Mapping[str, Any]], bool] = always
    elementwise: bool = True

    def __post_init__(self):
        fields = tuple(getattr(self.slots_type, "_fields", ()))
        names = tuple(s.name for s in self.slots)
        if fields != names:
            raise TypeError(f"{self.class_name}: slots {names} do not match {self.slots_type.__name__}{fields}")
        ordered = sorted(n for group in self.slot_order for n in group)
        if ordered != sorted(names):
            raise TypeError(f"{self.class_name}: slot_order {self.slot_order} does not list slots {names}")

    def active_slots(self, args: Mapping[str, Any]) -> tuple[str, ...]:
        """Names of the slots that exist for these constructor arguments."""
        return tuple(s.name for s in self.slots if s.when(args))

    def weight_order(self, args: Mapping[str, Any]) -> tuple[tuple[str, ...], ...]:
        """``slot_order`` restricted to the slots that exist."""
        active = set(self.active_slots(args))
        groups = (tuple(n for n in g if n in active) for g in self.slot_order)
        return tuple(g for g in groups if g)


class OptimizerState(NamedTuple):
    """State of a Keras optimizer.

    Attributes:
      iterations: steps taken (Keras's ``iterations``); int64 under x64, else
        int32 that saturates instead of wrapping.
      hyperparams: :class:`~jaxopt_keras.hyperparams.Hyperparams`.
      slots: the algorithm's slots NamedTuple; each field is a tree shaped like
        the params, or ``None`` when that slot is disabled.
      scalars: name -> scalar array (legacy Nadam's ``momentum_cache``, current
        Nadam's ``u_product``); empty for most algorithms.
    """

    iterations: jax.Array
    hyperparams: Hyperparams
    slots: Any
    scalars: dict


# --------------------------------------------------------------------------
# Learning rates.
# --------------------------------------------------------------------------


def _learning_rate(numerics: Numerics, lr_source: Any, state: OptimizerState, dtype: Any) -> jax.Array:
    """The step's learning rate in ``dtype``, as each family computes it.

    Legacy (``OptimizerV2._decayed_lr``): a schedule is called with
    ``tf.cast(iterations, var_dtype)``, then ``lr / (1 + decay * iterations)``.
    Current: the schedule is called with the integer ``iterations``.  A plain
    callable receives the integer step count in both families.  A float
    learning rate lives in the state as a float32 variable in both.
    """
    count = state.iterations
    if isinstance(lr_source, LearningRateSchedule):
        step = count.astype(dtype) if numerics.family == "legacy" else count
        lr = jnp.asarray(lr_source(step))
    elif is_schedule(lr_source):
        lr = jnp.asarray(lr_source(count))
    else:
        lr = state.hyperparams["learning_rate"]
    lr = lr.astype(dtype)
    if numerics.time_decay:
        decay = state.hyperparams["decay"].astype(dtype)
        lr = lr / (1.0 + decay * count.astype(dtype))  # exactly lr when decay == 0
    return lr


def _coefficients(
    numerics: Numerics,
    state: OptimizerState,
    lr_source: Any,
    static: Mapping[str, Any],
    dtype: Any,
) -> Coefficients:
    c = Coefficients({k: v.astype(dtype) for k, v in state.hyperparams.items()})
    c.update({k: v.astype(dtype) for k, v in state.scalars.items()})
    c["learning_rate"] = _learning_rate(numerics, lr_source, state, dtype)
    c["iterations"] = state.iterations
    c.update(static)
    return c


# --------------------------------------------------------------------------
# The transform.
# --------------------------------------------------------------------------


def init_hyperparams(numerics: Numerics, args: Mapping[str, Any]) -> Hyperparams:
    """The state's :class:`Hyperparams` for these constructor arguments."""
    wide = widest_float()
    primary: dict[str, float] = {}
    dtypes: dict[str, Any] = {}
    if not is_schedule(args["learning_rate"]):
        primary["learning_rate"] = args["learning_rate"]
        dtypes["learning_rate"] = np.float32  # a float32 variable in both families
    for name in numerics.float32_hyperparams:
        primary[name], dtypes[name] = args[name], np.float32
    for name in numerics.exact_hyperparams:
        primary[name], dtypes[name] = args[name], wide
    if numerics.time_decay:
        # `_decayed_lr`: tf.cast(self._initial_decay, var_dtype) rounds through float32.
        primary["decay"], dtypes["decay"] = args["decay"], np.float32
    if args.get("weight_decay") is not None:
        # `_apply_weight_decay`: tf.cast(self.weight_decay, dtype), through float32.
        primary["weight_decay"], dtypes["weight_decay"] = args["weight_decay"], np.float32
    return Hyperparams.create(primary, dtypes, numerics.derived)


def scale_by_keras(numerics: Numerics, args: Mapping[str, Any]) -> base.GradientTransformation:
    """The transform computing one Keras optimizer step (no clipping).

    Args:
      numerics: the algorithm in one family.
      args: the full, checked constructor arguments (``numerics.defaults``
        filled in).

    Returns:
      ``(init, update)``; ``update`` returns ``delta`` with
      ``param + delta`` the parameter Keras would hold after the step.
    """
    args = dict(args)
    lr_source = args["learning_rate"]
    active = numerics.active_slots(args)
    fields = numerics.slots_type._fields
    # Non-numeric arguments (amsgrad, nesterov, ...) reach the math as Python values.
    static = {k: v for k, v in args.items() if k not in hyperparam_names(numerics) and k != "weight_decay"}
    static["learning_rate_is_schedule"] = isinstance(args["learning_rate"], LearningRateSchedule)
    dedup = numerics.sparse_dedup(args)
    decays = args.get("weight_decay") is not None
    decay_mask = args.get("weight_decay_mask")
    slot_dtype = None if args.get("slot_dtype") is None else np.dtype(args["slot_dtype"])

    def make_slot(slot, p):
        value = slot.init(jnp.asarray(p), args)
        if slot_dtype is not None:
            value = value.astype(slot_dtype)
        return placed_like(value, p)

    def init(params):
        slots = numerics.slots_type(
            **{
                s.name: (jax.tree_util.tree_map(lambda p, s=s: make_slot(s, p), params) if s.name in active else None)
                for s in numerics.slots
            }
        )
        dtype = first_dtype(params) if slot_dtype is None else slot_dtype
        scalars = {s.name: jnp.asarray(s.initial, dtype) for s in numerics.scalars}
        return OptimizerState(
            iterations=jnp.zeros([], count_dtype()),
            hyperparams=init_hyperparams(numerics, args),
            slots=slots,
            scalars=scalars,
        )

    def update(updates, state, params=None):
        if (numerics.needs_params or decays) and params is None:
            what = "weight decay" if decays else numerics.class_name
            raise ValueError(f"{what} reads the parameter values: call update(grads, state, params).")
        if not numerics.elementwise and contains_flat(updates):
            raise ValueError(
                f"{numerics.class_name} needs each parameter's shape; it cannot run on the flat layout."
            )
        grads, treedef = base.flatten_updates(updates)
        n = len(grads)
        param_leaves = treedef.flatten_up_to(params) if params is not None else [None] * n
        if decays:
            mask = decay_mask(params) if callable(decay_mask) else decay_mask
            mask_leaves = [True] * n if mask is None else treedef.flatten_up_to(mask)
        slot_leaves = {f: treedef.flatten_up_to(getattr(state.slots, f)) for f in active}

        by_dtype: dict[Any, Coefficients] = {}

        def coeffs(dtype):
            if dtype not in by_dtype:
                by_dtype[dtype] = _coefficients(numerics, state, lr_source, static, dtype)
            return by_dtype[dtype]

        deltas = []
        new_slot_leaves = {f: list(v) for f, v in slot_leaves.items()}
        for i, g in enumerate(grads):
            if g is None:
                deltas.append(None)
                continue
            if not isinstance(g, IndexedSlices):
                g = jnp.asarray(g)
            p = param_leaves[i]
            param_dtype = g.dtype if p is None else jnp.asarray(p).dtype
            # With slot_dtype the step computes in the slots' precision.
            dtype = param_dtype if slot_dtype is None else slot_dtype
            if p is not None and slot_dtype is not None:
                p = jnp.asarray(p).astype(dtype)
            slots_i = numerics.slots_type(**{f: (slot_leaves[f][i] if f in active else None) for f in fields})
            c = coeffs(dtype)
            if isinstance(g, IndexedSlices):
                g = g.with_values(jnp.asarray(g.values).astype(dtype))
                math = numerics.sparse_update
                if dedup or math is None:
                    g = deduplicate(g)
                if math is None:  # Keras has no sparse path here: it densifies
                    g, math = g.to_dense(), numerics.update
            else:
                g, math = g.astype(dtype), numerics.update
            if decays and mask_leaves[i]:
                # Optimizer._apply_weight_decay, before the step: p -= p * wd * lr.
                p = jnp.asarray(p)
                decayed = p - p * c.weight_decay * c.learning_rate
                delta, new_slots_i = math(g, decayed, slots_i, c)
                delta = base.add_update(decayed, delta) - p  # exact whenever the result is within 2x of p
            else:
                delta, new_slots_i = math(g, p, slots_i, c)
            if isinstance(delta, IndexedSlices):
                deltas.append(delta.with_values(delta.values.astype(param_dtype)))
            else:
                deltas.append(delta.astype(param_dtype))
            for f in active:
                new_slot_leaves[f][i] = getattr(new_slots_i, f)

        new_slots = numerics.slots_type(
            **{f: (treedef.unflatten(new_slot_leaves[f]) if f in active else None) for f in fields}
        )
        scalars = state.scalars
        if numerics.advance is not None and scalars:
            dtype = next(iter(scalars.values())).dtype
            scalars = numerics.advance(dict(scalars), coeffs(dtype))
        new_state = OptimizerState(
            iterations=safe_add(state.iterations, 1),
            hyperparams=state.hyperparams,
            slots=new_slots,
            scalars=scalars,
        )
        return treedef.unflatten(deltas), new_state

    return base.GradientTransformation(init, update)


# --------------------------------------------------------------------------
# Constructor arguments, checked in Keras's words.
# --------------------------------------------------------------------------

LEGACY_BASE_ARGS = {"clipnorm": None, "clipvalue": None, "global_clipnorm": None, "decay": 0.0, "slot_dtype": None}
LEGACY_KWARGS = ("clipnorm", "clipvalue", "lr", "decay", "global_clipnorm")
CURRENT_BASE_ARGS = {
    "weight_decay": None,
    "clipnorm": None,
    "clipvalue": None,
    "global_clipnorm": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "jit_compile": True,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
    "slot_dtype": None,
}
CURRENT_LEGACY_ONLY = ("decay", "gradient_aggregator", "gradient_transformers")


def _check_nonnegative(name: str, value: Any) -> None:
    if value is not None and not is_schedule(value) and value < 0:
        raise ValueError(f"Expected {name} >= 0, received: {value}")


def legacy_args(numerics: Numerics, given: Mapping[str, Any], kwargs: Mapping[str, Any]) -> dict:
    """OptimizerV2's constructor rules, applied to a legacy factory's arguments.

    Args:
      numerics: the algorithm.
      given: the named arguments (algorithm arguments, ``clipnorm``,
        ``clipvalue``, ``global_clipnorm``, ``decay``).
      kwargs: anything else; only ``lr`` (deprecated alias) is accepted.

    Returns:
      The full argument dict, defaults filled in and ``lr`` resolved.

    Raises:
      TypeError: an unknown keyword argument.
      ValueError: a negative ``clipnorm``/``clipvalue``/``global_clipnorm``/
        ``decay``/``lr``, or both ``clipnorm`` and ``global_clipnorm``.
    """
    for k in kwargs:
        if k not in LEGACY_KWARGS:
            raise TypeError(
                f"Unexpected keyword argument passed to optimizer: {k}. "
                f"Allowed kwargs are {set(LEGACY_KWARGS)}."
            )
    args = {**numerics.defaults, **LEGACY_BASE_ARGS, **given, **kwargs}
    for k in LEGACY_KWARGS:
        if k in args:
            _check_nonnegative(k, args[k])
    if args["decay"] is None:
        args["decay"] = 0.0
    if "lr" in args:
        warnings.warn("The `lr` argument is deprecated, use `learning_rate` instead.", DeprecationWarning, stacklevel=4)
    if args["clipnorm"] is not None and args["global_clipnorm"] is not None:
        raise ValueError(
            "Cannot accept both `clipnorm` and `global_clipnorm`. Received: "
            f"`clipnorm`={args['clipnorm']}, `global_clipnorm`={args['global_clipnorm']}."
        )
    args = numerics.check_args(args)
    if "lr" in args:  # OptimizerV2 subclasses: `kwargs.get("lr", learning_rate)`
        args["learning_rate"] = args.pop("lr")
    return args


def current_args(numerics: Numerics, given: Mapping[str, Any], kwargs: Mapping[str, Any]) -> dict:
    """The current Optimizer's constructor rules, applied to a factory's arguments.

    Raises:
      TypeError: an unknown keyword argument.
      ValueError: a legacy-only argument (``decay``, ``gradient_aggregator``,
        ``gradient_transformers``), a negative clipping threshold or weight
        decay, both ``clipnorm`` and ``global_clipnorm``, or an out-of-range
        ``ema_momentum``/``ema_overwrite_frequency``.
    """
    kwargs = dict(kwargs)
    kwargs.pop("is_legacy_optimizer", None)
    if kwargs.pop("lr", None):
        warnings.warn(
            "`lr` is deprecated in the current Keras optimizers and is ignored, as "
            "TF-Keras ignores it: use `learning_rate`, or the legacy family.",
            DeprecationWarning,
            stacklevel=4,
        )
    for k in kwargs:
        if k in CURRENT_LEGACY_ONLY:
            raise ValueError(
                f"{k} is deprecated in the new TF-Keras optimizer, please check the docstring "
                "for valid arguments, or use the legacy optimizer, e.g., "
                f"jaxopt_keras.legacy.{numerics.class_name.lower()}."
            )
        raise TypeError(f"{k} is not a valid argument, kwargs should be empty  for `optimizer_experimental.Optimizer`.")
    args = {**CURRENT_BASE_ARGS, **numerics.defaults, **given}
    for k in ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay"):
        _check_nonnegative(k, args[k])
    if args["clipnorm"] is not None and args["global_clipnorm"] is not None:
        raise ValueError(
            "At most one of `clipnorm` and `global_clipnorm` can be set. Received: "
            f"clipnorm={args['clipnorm']}, global_clipnorm={args['global_clipnorm']}."
        )
    steps = args["gradient_accumulation_steps"]
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 2):
        raise ValueError(
            f"`gradient_accumulation_steps` must be an integer >= 2. Received: gradient_accumulation_steps={steps}"
        )
    if args["loss_scale_factor"] is not None and not args["loss_scale_factor"] > 0:
        raise ValueError(f"`loss_scale_factor` must be a positive number. Received: loss_scale_factor={args['loss_scale_factor']}")
    if args["use_ema"]:
        m = args["ema_momentum"]
        if m > 1 or m < 0:
            raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={m}")
        f = args["ema_overwrite_frequency"]
        if f and (not isinstance(f, int) or f < 1):
            raise ValueError(f"`ema_overwrite_frequency` must be an integer > 1 or None. Received: ema_overwrite_frequency={f}")
    return numerics.check_args(args)


def keras_clipping(family: Family, args: Mapping[str, Any]) -> base.GradientTransformation:
    """Gradient clipping as the family's Keras base class applies it (stateless).

    Legacy (``OptimizerV2._transform_gradients``): ``clipvalue``, then
    ``clipnorm``, then ``global_clipnorm``, each when set.  Current
    (``Optimizer._clip_gradients``): only the first of ``clipnorm``,
    ``global_clipnorm``, ``clipvalue`` that is set and positive.
    """
    cv, cn, gcn = args.get("clipvalue"), args.get("clipnorm"), args.get("global_clipnorm")
    if family == "legacy":
        parts = []
        if cv is not None:
            parts.append(clipping.clip_by_value(cv))
        if cn is not None:
            parts.append(clipping.clip_by_norm(cn))
        if gcn is not None:
            parts.append(clipping.clip_by_global_norm(gcn))
    elif cn and cn > 0:
        parts = [clipping.clip_by_norm(cn)]
    elif gcn and gcn > 0:
        parts = [clipping.clip_by_global_norm(gcn)]
    elif cv and cv > 0:
        parts = [clipping.clip_by_value(cv)]
    else:
        parts = []

    def update(updates, state, params=None):
        for t in parts:
            updates, _ = t.update(updates, base.EmptyState(), params)
        return updates, state

    return base.GradientTransformation(lambda params: base.EmptyState(), update)


def check_arguments(numerics: Numerics, given: Mapping[str, Any], kwargs: Mapping[str, Any]) -> dict:
    """Keras's constructor rules for the family; the complete, checked arguments.

    Args:
      numerics: the algorithm in one family.
      given: the named constructor arguments (``name`` is ignored).
      kwargs: the ``**kwargs`` (checked against Keras's rules).
    """
    given = {k: v for k, v in given.items() if k != "name"}
    if numerics.family == "legacy":
        return legacy_args(numerics, given, kwargs)
    return current_args(numerics, given, kwargs)


def build_transformation(numerics: Numerics, args: Mapping[str, Any]) -> base.GradientTransformation:
    """The optimizer checked ``args`` describe, in Keras's order.

    ``chain(clipping, step, ema)``: clipping in the family's order, then the
    step (weight decay first, for the current family), then the moving
    average; parts that are not configured are left out, and a lone step is
    returned unchained.
    """
    steps = args.get("gradient_accumulation_steps")
    step_args = dict(args)
    if steps and isinstance(args["learning_rate"], LearningRateSchedule):
        step_args["learning_rate"] = _MicroStepSchedule(args["learning_rate"], steps)
    inner = []
    if any(args.get(k) is not None for k in ("clipvalue", "clipnorm", "global_clipnorm")):
        inner.append(keras_clipping(numerics.family, args))
    inner.append(scale_by_keras(numerics, step_args))
    parts = []
    if args.get("loss_scale_factor") is not None:
        parts.append(scale_by_loss_scale_factor(args["loss_scale_factor"]))
    if steps:
        parts.append(accumulate_gradients(base.chain(*inner) if len(inner) > 1 else inner[0], steps))
    else:
        parts.extend(inner)
    if args.get("use_ema"):
        parts.append(ema_transform(args["ema_momentum"], args["ema_overwrite_frequency"], steps or 1))
    return base.chain(*parts) if len(parts) > 1 else parts[0]


class _MicroStepSchedule(LearningRateSchedule):
    """A schedule seen through Keras 3's gradient accumulation.

    Keras 3 evaluates the schedule at the raw call count; the optimizer step
    inside the accumulation wrapper counts updates ``k``, and update ``k + 1``
    happens on call ``(k + 1) * steps - 1``.
    """

    def __init__(self, schedule: LearningRateSchedule, steps: int):
        self.schedule, self.steps = schedule, steps

    def __call__(self, step):
        return self.schedule(step * self.steps + (self.steps - 1))

    def get_config(self) -> dict:
        return {"schedule": self.schedule.get_config(), "steps": self.steps}


def build_optimizer(numerics: Numerics, given: Mapping[str, Any], kwargs: Mapping[str, Any]) -> base.GradientTransformation:
    """A factory's body: :func:`check_arguments`, then :func:`build_transformation`."""
    return build_transformation(numerics, check_arguments(numerics, given, kwargs))


def named_arguments(local_vars: Mapping[str, Any]) -> dict:
    """A factory's named arguments (its ``locals()`` without ``kwargs``)."""
    return {k: v for k, v in local_vars.items() if k != "kwargs"}


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


def drop_unused_vhat(n_expected: int, weights: list) -> list:
    """OptimizerV2 Adam: a list with ``vhat`` slots loads into a non-amsgrad Adam."""
    num_vars = int((n_expected - 1) / 2)
    if len(weights) == 3 * num_vars + 1:
        return list(weights)[:n_expected]
    return weights


def one_minus(x: float) -> float:
    """``1 - x`` in Python (double) arithmetic, as Keras computes it."""
    return 1 - x


def minus_one(x: float) -> float:
    """``x - 1`` in Python (double) arithmetic, as Keras computes it."""
    return x - 1


def twice(x: float) -> float:
    """``2 * x`` in Python (double) arithmetic, as Keras computes it."""
    return 2 * x


def hyperparam_names(numerics: Numerics) -> Sequence[str]:
    """All numeric hyperparameters kept in the state, learning rate first."""
    decay = ("decay",) if numerics.time_decay else ()
    return ("learning_rate",) + numerics.float32_hyperparams + numerics.exact_hyperparams + decay
