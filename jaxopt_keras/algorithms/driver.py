"""From a :class:`~jaxopt_keras.algorithms.spec.Spec` to a transformation.

:func:`scale_by_keras` runs a spec's math over a tree of parameters, one leaf
at a time: it keeps the slots and the step count in an
:class:`OptimizerState`, builds the step's :class:`Coefficients` once per
parameter dtype (the learning rate with its schedule and legacy ``decay``
applied, the hyperparameters cast as Keras casts them), dispatches
row-sparse gradients to the sparse math, and applies the current family's
weight decay before the step, as Keras does.  A routed spec (Keras 3's Muon)
chooses per parameter, from its path and shape, which math runs, which slots
it has and which weight-decay rate applies
(:class:`~jaxopt_keras.algorithms.parts.Route`).  Clipping, EMA and the rest
of Keras's pipeline are transforms chained around it
(:mod:`jaxopt_keras.keras.pipeline`).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.algorithms.parts import Route
from jaxopt_keras.algorithms.spec import STATE_ONLY_HYPERPARAMS, Spec
from jaxopt_keras.core import transform as base
from jaxopt_keras.core.flat import contains_flat
from jaxopt_keras.core.gradients import check_gradients, matched_params
from jaxopt_keras.core.hyperparams import Hyperparams, tf_cast_dtype, widest_float
from jaxopt_keras.core.paths import given_paths, leaf_paths
from jaxopt_keras.core.sparse import IndexedSlices, deduplicate
from jaxopt_keras.core.state import (
    check_slot_shapes,
    count_dtype,
    expect_state,
    first_dtype,
    placed_like,
    safe_add,
    slot_tree_leaves,
)
from jaxopt_keras.core.xla import inlined_jnp, leaf_scalars
from jaxopt_keras.schedules.base import LearningRateSchedule, is_schedule


class OptimizerState(NamedTuple):
    """State of a Keras optimizer.

    Attributes:
      iterations: steps taken (Keras's ``iterations``); int64 under x64, else
        int32 that saturates instead of wrapping.
      hyperparams: :class:`~jaxopt_keras.core.hyperparams.Hyperparams`.
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
# The step's scalars.
# --------------------------------------------------------------------------


# The numerics a family's optimizer evaluates a schedule in, unless the
# schedule has its own (`jaxopt_keras.schedules.base`): TF-Keras's optimizers
# as `model.fit` runs them (inside tf.function), Keras 3's under jit.
DEFAULT_NUMERICS = {"legacy": "tf_function", "current": "tf_function", "keras3": "keras3"}


def learning_rate_at(
    lr_source: Any, iterations: jax.Array, hyperparams: Hyperparams, dtype: Any, family: str, decay: float = 0.0
) -> jax.Array:
    """The step's learning rate in ``dtype`` (as computed, if ``None``), as each family computes it.

    Legacy (``OptimizerV2._decayed_lr``): a schedule is called with
    ``tf.cast(iterations, var_dtype)``, then, when the constructor's
    ``decay`` is positive, ``lr / (1 + decay * iterations)`` with ``decay``
    rounded to float32 (float64 for an np.float64) and cast to ``dtype``.  ``decay`` is the constructor's
    value, a Python number, as OptimizerV2 reads ``self._initial_decay``: the
    ``decay`` hyperparameter in the state (which a checkpoint restores and an
    assignment changes) does not enter the step, and with the default 0 the
    step has no division.  Current and Keras 3: the schedule is called with
    the integer ``iterations``.  A schedule computes in the family's
    :data:`DEFAULT_NUMERICS` unless it was given its own.  A plain callable
    receives the integer step count in every family.  A float learning rate
    lives in the state as a float32 variable.
    """
    if isinstance(lr_source, LearningRateSchedule):
        step = iterations.astype(dtype) if family == "legacy" else iterations
        lr = jnp.asarray(lr_source.evaluate(step, DEFAULT_NUMERICS[family]))
    elif is_schedule(lr_source):
        lr = jnp.asarray(lr_source(iterations))
    else:
        lr = hyperparams["learning_rate"]
    if dtype is not None:
        lr = lr.astype(dtype)
    if decay > 0.0:
        # `tf.cast(self._initial_decay, var_dtype)`: a Python float becomes a float32 tensor first.
        decay_t = jnp.asarray(np.asarray(decay, tf_cast_dtype(decay))).astype(lr.dtype)
        lr = lr / (1.0 + decay_t * iterations.astype(lr.dtype))
    return lr


def decay_term(p: jax.Array, weight_decay: jax.Array, lr: jax.Array) -> jax.Array:
    """Keras's decoupled weight decay term ``p * weight_decay * lr``, in ``p``'s
    dtype (``Optimizer._apply_weight_decay`` subtracts it from ``p``)."""
    return p * weight_decay.astype(p.dtype) * lr.astype(p.dtype)


def coefficients(
    spec: Spec, state: OptimizerState, lr_source: Any, statics: Mapping[str, Any], dtype: Any, decay: float = 0.0
) -> Any:
    """The spec's :class:`Coefficients` for one parameter dtype, its prepared
    values (:class:`~jaxopt_keras.algorithms.parts.Prepared`) computed once
    here; ``decay`` is the legacy constructor's (:func:`learning_rate_at`)."""
    skip = spec.decay_rates + STATE_ONLY_HYPERPARAMS  # read by the weight decay; read by no step
    values = {k: v.astype(dtype) for k, v in state.hyperparams.items() if k not in skip}
    values.update({k: v.astype(dtype) for k, v in state.scalars.items()})
    values["learning_rate"] = learning_rate_at(
        lr_source, state.iterations, state.hyperparams, dtype, spec.family, decay
    )
    values["iterations"] = state.iterations
    values.update(statics)
    c = spec.coefficients_type(**values, **{p.name: None for p in spec.prepare})
    for p in spec.prepare:
        c = c._replace(**{p.name: p.value(c)})
    return c


def leaf_coefficients(c: Any, slots: Any, p: Any) -> Any:
    """``c`` with its array fields made this leaf's own (:func:`~jaxopt_keras.core.xla.leaf_scalars`),
    tied to the leaf's first slot, else its parameter; a leaf with neither keeps ``c``."""
    anchor = next((s for s in slots if s is not None), p)
    names = [k for k, v in c._asdict().items() if isinstance(v, jax.Array)]
    if anchor is None or not names:
        return c
    return c._replace(**dict(zip(names, leaf_scalars([getattr(c, k) for k in names], anchor))))


def init_hyperparams(spec: Spec, args: Mapping[str, Any]) -> Hyperparams:
    """The state's :class:`Hyperparams` for these constructor arguments."""
    wide = widest_float()

    def cast(value: Any) -> np.dtype:
        # TF's `tf.cast(0.9, dtype)` makes a tensor of the value's own dtype
        # first (float32 for a Python float, float64 for an np.float64), as
        # OptimizerV2's hyperparameter variables take the value's dtype;
        # Keras 3's `ops.cast(0.9, dtype)` rounds it once to `dtype`, exact in float64.
        return wide if spec.family == "keras3" else tf_cast_dtype(value)

    primary: dict[str, float] = {}
    dtypes: dict[str, Any] = {}
    if not is_schedule(args["learning_rate"]):
        lr = primary["learning_rate"] = args["learning_rate"]
        # A float32 variable (`dtype=floatx()`), except OptimizerV2's, of the
        # value's dtype; Keras 3 casts a callable's value straight to the
        # parameter's dtype (`learning_rate_dtype`: the widest float).
        dtypes["learning_rate"] = args.get("learning_rate_dtype", cast(lr) if spec.family == "legacy" else np.float32)
    for name in spec.float32_hyperparams:
        primary[name], dtypes[name] = args[name], cast(args[name])
    for name in spec.exact_hyperparams:
        primary[name], dtypes[name] = args[name], wide
    if spec.time_decay:
        # OptimizerV2's `decay` hyper variable; its step reads the constructor's value instead.
        primary["decay"], dtypes["decay"] = args["decay"], cast(args["decay"])
    for name in spec.decay_rates:
        if args.get(name) is not None:
            # `_apply_weight_decay`: tf.cast / ops.cast(self.weight_decay, dtype).
            primary[name], dtypes[name] = args[name], cast(args[name])
    return Hyperparams.create(primary, dtypes, spec.derived)


def leaf_routes(spec: Spec, args: Mapping[str, Any], tree: Any, treedef: Any, shapes: list) -> tuple[list[Route], list]:
    """Each leaf's :class:`Route` (all alike unless the spec routes), and its path.

    A routed spec sees each leaf's path: ``args["paths"]`` (a tree of strings,
    or a function of ``tree`` returning one) where given, else the keys
    leading to the leaf in ``tree`` joined by ``"/"``.

    Raises:
      ValueError: a given path is not a string (naming the leaf's keys).
    """
    if spec.route is None:
        return [spec.leaf_route("", (), args)] * len(shapes), [""] * len(shapes)
    keys = leaf_paths(tree, is_leaf=base.is_none)
    paths = args.get("paths")
    names = keys if paths is None else given_paths(paths(tree) if callable(paths) else paths, treedef)
    for key, path in zip(keys, names):
        if not isinstance(path, str):
            raise ValueError(f"`paths` gives the parameter at {key!r} the path {path!r}: a variable's path is a string.")
    return [spec.leaf_route(path, tuple(shape), args) for path, shape in zip(names, shapes)], names


# --------------------------------------------------------------------------
# The transform.
# --------------------------------------------------------------------------


def scale_by_keras(spec: Spec, args: Mapping[str, Any], name: str = "optimizer") -> base.GradientTransformation:
    """The transform computing one Keras optimizer step (no clipping).

    Args:
      spec: the algorithm in one family.
      args: the full, checked constructor arguments (``spec.defaults`` filled
        in).  ``weight_decay`` (with an optional ``weight_decay_mask``: a
        tree of booleans, or a callable ``params -> tree``) decays the
        parameters before the step; ``slot_dtype`` keeps slots and computes
        the step in that dtype.
      name: the optimizer's name, for error messages.

    Returns:
      ``(init, update)``; ``update`` returns ``delta`` with
      ``param + delta`` the parameter Keras would hold after the step.
    """
    args = dict(args)
    lr_source = args["learning_rate"]
    active = spec.active_slots(args)
    fields = spec.slots_type._fields
    statics = {s.name: s.of(args) for s in spec.statics}
    # OptimizerV2's `_initial_decay`, the constructor's number in its TF dtype.
    initial_decay = np.asarray(args["decay"], tf_cast_dtype(args["decay"]))[()] if spec.time_decay else 0.0
    dedup = spec.sparse_dedup(args)
    decays = any(args.get(rate) is not None for rate in spec.decay_rates)
    decay_mask = args.get("weight_decay_mask")
    slot_dtype = None if args.get("slot_dtype") is None else np.dtype(args["slot_dtype"])
    slot_shapes = {s.name: s.shape for s in spec.slots}

    def mask_mismatch(why: str) -> str:
        return (
            f"{name}'s weight decay mask (from `exclude_from_weight_decay`: one flag per variable the optimizer was "
            f"built with, in their order) and the parameters are trees of different structures ({why}). Run the "
            "transformation on a list of the variables' values in that order; on another tree, mask the decay with "
            "jk.decoupled_weight_decay(..., mask=...)."
        )

    def make_slot(slot, p):
        return placed_like(slot.init(jnp.asarray(p), args), p)  # in slot_dtype, if given

    def init(params):
        leaves, treedef = jax.tree_util.tree_flatten(params)
        routes, _ = leaf_routes(spec, args, params, treedef, [np.shape(p) for p in leaves])
        has = [spec.leaf_slots(r, args) for r in routes]
        slots = spec.slots_type(
            **{
                s.name: (
                    treedef.unflatten([make_slot(s, p) if s.name in h else None for p, h in zip(leaves, has)])
                    if s.name in active
                    else None
                )
                for s in spec.slots
            }
        )
        dtype = first_dtype(params) if slot_dtype is None else slot_dtype
        scalars = {s.name: jnp.asarray(s.initial, dtype) for s in spec.scalars}
        return OptimizerState(
            iterations=jnp.zeros([], count_dtype()),
            hyperparams=init_hyperparams(spec, args),
            slots=slots,
            scalars=scalars,
        )

    def update(updates, state, params=None, **extra_args):
        del extra_args  # optax's extra arguments (value=loss): none is read here
        expect_state(name, state, OptimizerState, spec.slots_type)
        if (spec.needs_params or decays) and params is None:
            what = "weight decay" if decays else name
            raise ValueError(f"{what} reads the parameter values: call update(grads, state, params).")
        if not spec.elementwise and contains_flat(updates):
            raise ValueError(f"{name} needs each parameter's shape; it cannot run on the flat layout.")
        grads, treedef = base.flatten_updates(updates)
        n = len(grads)
        param_leaves = matched_params(treedef, params, name) if params is not None else [None] * n
        paths_for_errors = lambda: leaf_paths(params if params is not None else updates, is_leaf=base.is_none)  # noqa: E731
        check_gradients(grads, param_leaves, paths_for_errors, spec.family)
        if decays:
            mask = decay_mask(params) if callable(decay_mask) else decay_mask
            mask_leaves = [True] * n if mask is None else base.leaves_like(treedef, mask, mask_mismatch)
        slot_leaves = {f: slot_tree_leaves(name, spec.keras_slot_name(f), treedef, getattr(state.slots, f)) for f in active}
        shapes = [np.shape(g) if p is None else np.shape(p) for g, p in zip(grads, param_leaves)]
        for f in active:
            check_slot_shapes(name, spec.keras_slot_name(f), slot_leaves[f], shapes, paths_for_errors, slot_shapes[f])
        routes, paths = leaf_routes(spec, args, updates if params is None else params, treedef, shapes)

        by_dtype: dict[Any, Any] = {}
        scalars = state.scalars

        if spec.advance_first and scalars:
            # The math reads the scalars' new values (Keras 3's Nadam).
            dtype = next(iter(scalars.values())).dtype
            scalars = spec.advance(dict(scalars), coefficients(spec, state, lr_source, statics, dtype, initial_decay))
            state = state._replace(scalars=scalars)

        def coeffs(dtype):
            if dtype not in by_dtype:
                by_dtype[dtype] = coefficients(spec, state, lr_source, statics, dtype, initial_decay)
            return by_dtype[dtype]

        grads = [g if g is None or isinstance(g, IndexedSlices) else jnp.asarray(g) for g in grads]
        param_dtypes = [
            None if g is None else g.dtype if p is None else jnp.asarray(p).dtype for g, p in zip(grads, param_leaves)
        ]
        # With slot_dtype the step computes in the slots' precision.
        step_dtypes = [d if d is None or slot_dtype is None else slot_dtype for d in param_dtypes]
        # The coefficients first: a schedule, a caller's function, is traced as
        # usual, and only the per-parameter math below inline.
        for dtype in dict.fromkeys(d for d in step_dtypes if d is not None):
            coeffs(dtype)

        deltas = []
        new_slot_leaves = {f: list(v) for f, v in slot_leaves.items()}
        with inlined_jnp(grads):
            for i, g in enumerate(grads):
                if g is None:
                    deltas.append(None)
                    continue
                p, param_dtype, dtype = param_leaves[i], param_dtypes[i], step_dtypes[i]
                if p is not None and slot_dtype is not None:
                    p = jnp.asarray(p).astype(dtype)
                slots_i = spec.slots_type(**{f: (slot_leaves[f][i] if f in active else None) for f in fields})
                c = leaf_coefficients(coeffs(dtype), slots_i, p)
                route = routes[i]
                missing = [spec.keras_slot_name(f) for f in spec.leaf_slots(route, args) if getattr(slots_i, f) is None]
                if spec.route is not None and missing:
                    raise ValueError(
                        f"{name} cannot step the variable {paths[i]!r} of shape {tuple(np.shape(g))}: its state has "
                        f"no {missing} (it was initialized for other parameters, paths or arguments)."
                    )
                if isinstance(g, IndexedSlices):
                    g = g.with_values(jnp.asarray(g.values).astype(dtype))
                    math = route.sparse_update
                    if dedup or math is None:
                        g = deduplicate(g)
                    if math is None:  # Keras has no sparse path here: it densifies
                        g, math = g.to_dense(), route.update
                else:
                    g, math = g.astype(dtype), route.update
                rate = route.weight_decay
                if decays and mask_leaves[i] and args.get(rate) is not None:
                    # Optimizer._apply_weight_decay, before the step.
                    p = jnp.asarray(p)
                    decayed = p - decay_term(p, state.hyperparams[rate], c.learning_rate)
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

        new_slots = spec.slots_type(
            **{f: (treedef.unflatten(new_slot_leaves[f]) if f in active else None) for f in fields}
        )
        if spec.advance is not None and scalars and not spec.advance_first:
            dtype = next(iter(scalars.values())).dtype
            scalars = spec.advance(dict(scalars), coeffs(dtype))
        new_state = OptimizerState(
            iterations=safe_add(state.iterations, 1),
            hyperparams=state.hyperparams,
            slots=new_slots,
            scalars=scalars,
        )
        return treedef.unflatten(deltas), new_state

    return base.GradientTransformation(init, update)
