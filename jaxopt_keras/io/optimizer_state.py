"""An optimizer state from a :class:`~jaxopt_keras.io.checkpoint.KerasCheckpoint`, and back.

* :func:`state_from_keras`: ``tx.init(params)`` with every slot, per-optimizer
  scalar and step count taken from the file.
* :func:`keras_weights`: the reverse, a state's weights list in Keras's order
  (:func:`member_weights`: a Keras 3 ``MultiOptimizer``'s, member by member).

Both walk the same layout: the file's optimizer's weights list over the
parameters, each slot placed by its leaf's position.  The parameters' pairing
and the optimizer itself come from :mod:`~jaxopt_keras.io.porting`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.algorithms.driver import OptimizerState
from jaxopt_keras.core.state import find_state, replace_state
from jaxopt_keras.io.checkpoint import KerasCheckpoint, entry_key, file_step_count, inner_optimizer_of, layout_of
from jaxopt_keras.io.errors import KerasFileError
from jaxopt_keras.io.matching import leaves
from jaxopt_keras.io.porting import Names, dtype_error, refuse_nan, optimizer_from_keras, place_like, trainable_order
from jaxopt_keras.optimizers import serialize
from jaxopt_keras.optimizers.entries import read_iterations, with_iterations
from jaxopt_keras.optimizers.multi import MultiOptimizer
from jaxopt_keras.transforms.accumulation import AccumulationState
from jaxopt_keras.transforms.ema import EmaState
from jaxopt_keras.transforms.loss_scale import LossScaleState
from jaxopt_keras.transforms.routing import route

# Where each kind of weights-list entry lives in a state: (state type, field).
_PER_VARIABLE = {"average": (EmaState, "average"), "accumulator": (AccumulationState, "accumulators")}


def _members(params: Any, checkpoint: KerasCheckpoint, names: Names, multi: MultiOptimizer) -> list[tuple]:
    """``(member, its params (the others None), its checkpoint, its names=)`` for each member of a
    ``MultiOptimizer``, in Keras's order; a member's checkpoint holds its slice of the file's variables
    (after the multi's own ``iteration`` and ``learning_rate``) and its trainable variables."""
    order = trainable_order(params, checkpoint, names)
    flat, treedef = jax.tree_util.tree_flatten(params)
    own_paths = [p for p, _ in leaves(params)]
    values = list(checkpoint.optimizer_weights.values())
    shapes = {k: np.shape(checkpoint.model_weights[k]) for k in checkpoint.trainable}
    dtypes = {k: np.asarray(checkpoint.model_weights[k]).dtype for k in checkpoint.trainable}
    start, out = 2, []
    for member in multi.optimizers:
        mine = [k for k, key in enumerate(checkpoint.trainable) if route(key, multi.optimizer_map, multi.optimizer_map.default_optimizer) is member]
        keys = [checkpoint.trainable[k] for k in mine]
        layout = layout_of(member, [shapes[k] for k in keys], [dtypes[k] for k in keys], keys)
        chunk = values[start : start + len(layout)]
        start += len(layout)
        if len(chunk) != len(layout):
            break
        sub = dataclasses.replace(
            checkpoint,
            config=serialize(member),
            iterations=file_step_count(checkpoint.path, chunk[0]),
            optimizer_weights=dict(zip([entry_key(member._spec, w, keys[w.index] if w.index >= 0 else "") for w, _, _ in layout], chunk)),
            trainable=tuple(keys),
            loss_scale=None,
        )
        leaf_of = {order[k]: checkpoint.trainable[k] for k in mine}
        masked = treedef.unflatten([x if i in leaf_of else None for i, x in enumerate(flat)])
        out.append((member, masked, sub, {own_paths[i]: key for i, key in leaf_of.items()}))
    if start != len(values):
        raise KerasFileError(
            checkpoint.path, f"the file holds {len(values)} optimizer weights; {multi.name}'s own 2 and its members' make {start}."
        )
    return out


def _keras_optimizer_of(tx_or_optimizer: Any, checkpoint: KerasCheckpoint) -> Any:
    opt = tx_or_optimizer if hasattr(inner_optimizer_of(tx_or_optimizer), "_spec") else None
    return inner_optimizer_of(opt if opt is not None else optimizer_from_keras(checkpoint))


def _slot_positions(params: Any) -> list[int]:
    """Where each leaf of ``params`` (``None`` skipped, as :func:`trainable_order` counts them) sits among
    the leaves of a slot tree flattened with its ``None`` leaves: a route without that slot (Muon's
    velocity on its Newton-Schulz path), a ``MultiOptimizer`` member's masked-out parameter."""
    full = jax.tree_util.tree_leaves(params, is_leaf=lambda x: x is None)
    return [i for i, x in enumerate(full) if x is not None]


def _layout(opt: Any, params: Any, order: list[int], paths: Sequence[str]) -> list:
    flat = jax.tree_util.tree_leaves(params)
    shapes = [np.shape(flat[i]) for i in order]
    dtypes = [jnp.asarray(flat[i]).dtype for i in order]
    return layout_of(opt, shapes, dtypes, paths)


def state_from_keras(tx: Any, params: Any, checkpoint: KerasCheckpoint, names: Names = None) -> Any:
    """An optimizer state for ``tx`` over ``params``, holding the file's optimizer state.

    The result has the structure of ``tx.init(params)`` (``tx`` may wrap or
    chain the optimizer: its Keras state is found inside by type) and holds
    every slot, per-optimizer scalar and step count of the file; each slot
    is placed like its parameter.  The hyperparameters are ``tx``'s: build
    it with :func:`optimizer_from_keras` (``.transformation``) to continue
    with the file's; a Keras 3 file's ``learning_rate`` variable is the
    exception, its value wins (as when Keras 3 loads it).  A Keras 3
    ``LossScaleOptimizer``'s scale and growth counter
    (:attr:`~jaxopt_keras.io.KerasCheckpoint.loss_scale`) go into ``tx``'s
    loss-scale state, when it has one.

    Args:
      tx: the transformation (``optimizer_from_keras(ckpt).transformation``,
        or an equivalent ``jaxopt_keras`` factory's, alone or wrapped).
      params: the parameter tree the optimizer updates (a flax linen
        ``params`` dict, an ``nnx.state(model, nnx.Param)``, any pytree),
        with the file's shapes.
      checkpoint: from :func:`~jaxopt_keras.io.read_keras`.
      names: pairs the default matching rule cannot find
        (:mod:`~jaxopt_keras.io.matching`).

    Raises:
      KerasFileError: the parameters and the file's trainable variables, or
        the optimizer's weights and what the optimizer has, differ in count,
        shape or dtype.  The message names both sides.
    """
    opt = _keras_optimizer_of(None, checkpoint)
    if isinstance(opt, MultiOptimizer):
        return _multi_state_from_keras(tx, params, checkpoint, names, opt)
    order = trainable_order(params, checkpoint, names)
    layout = _layout(opt, params, order, checkpoint.trainable)
    values = list(checkpoint.optimizer_weights.values())
    if len(layout) != len(values):
        raise KerasFileError(
            checkpoint.path,
            f"the file holds {len(values)} optimizer weights ({list(checkpoint.optimizer_weights)}); "
            f"the optimizer over these parameters has {len(layout)}.",
        )
    refuse_nan(checkpoint, checkpoint.optimizer_weights, "optimizer weights")
    target = tx.init(params)
    core = find_state(target, OptimizerState, required=False)
    if core is None:
        raise TypeError("tx.init(params) holds no jaxopt_keras optimizer state: pass a jaxopt_keras transformation.")
    at = _slot_positions(params)
    slot_trees = {
        f: jax.tree_util.tree_flatten(getattr(core.slots, f), is_leaf=lambda x: x is None)
        for f in core.slots._fields
        if getattr(core.slots, f) is not None
    }
    per_variable = {
        kind: (cls, field, jax.tree_util.tree_flatten(getattr(sub, field)))
        for kind, (cls, field) in _PER_VARIABLE.items()
        if (sub := find_state(target, cls, required=False)) is not None
    }
    new_slots = {f: list(leaves) for f, (leaves, _) in slot_trees.items()}
    new_lists = {kind: list(v[2][0]) for kind, v in per_variable.items()}
    scalars = dict(core.scalars)
    hypers = {}
    for (w, shape, _), (key, value) in zip(layout, checkpoint.optimizer_weights.items()):
        if w.kind == "iterations":
            continue
        if w.kind == "hyper":  # Keras 3's learning_rate variable: the file's value wins over the config's
            hypers[w.name] = np.asarray(value)
            continue
        if w.kind == "scalar":
            like = scalars[w.name]
        elif w.kind == "slot":
            like = slot_trees[w.name][0][at[order[w.index]]]
        elif w.kind in new_lists:
            like = new_lists[w.kind][order[w.index]]
        else:
            raise KerasFileError(checkpoint.path, f"the file has {key!r}, for which tx's state has no place.")
        if tuple(np.shape(value)) != tuple(np.shape(like)):
            raise KerasFileError(checkpoint.path, f"optimizer weight {key!r} has shape {np.shape(value)}; the state's is {np.shape(like)}.")
        if w.kind != "scalar" and np.dtype(value.dtype) != np.dtype(like.dtype):
            raise dtype_error(checkpoint, f"optimizer weight {key!r}", value.dtype, like.dtype)
        try:
            placed = place_like(np.asarray(value, like.dtype), like)
        except (TypeError, ValueError) as e:
            raise KerasFileError(checkpoint.path, f"optimizer weight {key!r} cannot be read as {like.dtype}: {e}") from None
        if w.kind == "scalar":
            scalars[w.name] = placed
        elif w.kind == "slot":
            new_slots[w.name][at[order[w.index]]] = placed
        else:
            new_lists[w.kind][order[w.index]] = placed
    slots = core.slots._replace(**{f: slot_trees[f][1].unflatten(v) for f, v in new_slots.items()})
    try:
        hyperparams = core.hyperparams.replace(**hypers)
    except (TypeError, ValueError) as e:  # Keras 3's learning_rate variable, not finite
        raise KerasFileError(checkpoint.path, f"optimizer weights {list(hypers)}: {e}") from None
    state = replace_state(target, OptimizerState, lambda c: c._replace(slots=slots, scalars=scalars, hyperparams=hyperparams))
    for kind, kind_leaves in new_lists.items():
        cls, field, (_, treedef) = per_variable[kind]
        state = replace_state(state, cls, lambda s, f=field, t=treedef, v=kind_leaves: s._replace(**{f: t.unflatten(v)}))
    if checkpoint.loss_scale is not None and find_state(state, LossScaleState, required=False) is not None:
        state = replace_state(state, LossScaleState, lambda s: _with_loss_scale(s, checkpoint.loss_scale))
    try:
        state = with_iterations(state, checkpoint.iterations, opt._args.get("gradient_accumulation_steps"))
    except ValueError as e:  # a step count the counter cannot hold (int32 without x64)
        raise KerasFileError(checkpoint.path, f"the optimizer's step count: {e}") from None
    if opt._spec.after_load is not None:
        state = replace_state(state, OptimizerState, opt._spec.after_load)
    return state


def _multi_state_from_keras(tx: Any, params: Any, checkpoint: KerasCheckpoint, names: Names, multi: MultiOptimizer) -> Any:
    """``tx.init(params)`` of :func:`transformation_from_keras` (a tuple of the members' states, alone or
    in a loss-scale state) holding the file's."""
    target = tx.init(params)
    wrapper = find_state(target, LossScaleState, required=False)
    states = tuple(state_from_keras(m.transformation, p, sub, names=n) for m, p, sub, n in _members(params, checkpoint, names, multi))
    if wrapper is None:
        return states
    wrapper = wrapper._replace(inner=states)
    return _with_loss_scale(wrapper, checkpoint.loss_scale) if checkpoint.loss_scale is not None else wrapper


def _with_loss_scale(state: LossScaleState, loss_scale: Mapping[str, Any]) -> LossScaleState:
    """A Keras 3 loss-scale optimizer's scale and growth counter, from the file."""
    return state._replace(
        loss_scale=jnp.asarray(loss_scale["dynamic_scale"], state.loss_scale.dtype),
        counter=jnp.asarray(loss_scale["step_counter"], state.counter.dtype),
    )


def _iteration_dtype(opt: Any) -> Any:
    """Keras 3 counts steps in an int32 variable; TF-Keras in an int64 one."""
    return np.int32 if opt._spec.family == "keras3" else np.int64


def keras_weights(tx_or_optimizer: Any, params: Any, state: Any, checkpoint: KerasCheckpoint, names: Names = None) -> list[tuple[str, np.ndarray]]:
    """The optimizer's weights list of ``state`` in Keras's order: ``[(name, value)]``.

    The reverse of :func:`state_from_keras`: the entry kinds and order of the
    checkpoint's optimizer (or of ``tx_or_optimizer``, one of our Keras
    optimizer objects), the values from ``state``.  Names are the family's
    (``iter``, ``dense/kernel/m``; ``iteration``, ``m/dense/kernel``).
    """
    opt = _keras_optimizer_of(tx_or_optimizer, checkpoint)
    if isinstance(opt, MultiOptimizer):
        members = member_weights(params, state, checkpoint, names)
        count = max(int(entries[0][1]) for _, entries in members)  # every call steps every member
        return [("iteration", np.asarray(count, np.int32)), ("learning_rate", np.asarray(0.0, np.float32))] + [
            e for _, entries in members for e in entries
        ]
    order = trainable_order(params, checkpoint, names)
    core = find_state(state, OptimizerState)
    at = _slot_positions(params)
    layout = _layout(opt, params, order, checkpoint.trainable)
    lacking = [w.name for w, _, _ in layout if (w.kind == "slot" and getattr(core.slots, w.name, None) is None)
               or (w.kind == "scalar" and w.name not in core.scalars) or (w.kind == "hyper" and w.name not in core.hyperparams)]
    if lacking:
        raise KerasFileError(
            checkpoint.path,
            f"the state is not {type(opt).__name__}'s, the file's optimizer: it has no {sorted(set(lacking))} (its slots: "
            f"{list(core.slots._fields)}); pass a state of the file's optimizer, or as tx_or_optimizer our Keras optimizer whose state it is.",
        )
    out = []
    for w, _, dtype in layout:
        name = entry_key(opt._spec, w, checkpoint.trainable[w.index] if w.index >= 0 else "")
        if w.kind == "iterations":
            value = np.asarray(read_iterations(state)).astype(_iteration_dtype(opt))
        elif w.kind == "hyper":
            value = np.asarray(core.hyperparams[w.name])
        elif w.kind == "scalar":
            value = np.asarray(core.scalars[w.name])
        elif w.kind == "slot":
            slots = jax.tree_util.tree_leaves(getattr(core.slots, w.name), is_leaf=lambda x: x is None)
            value = np.asarray(slots[at[order[w.index]]])
        else:
            cls, field = _PER_VARIABLE[w.kind]
            value = np.asarray(jax.tree_util.tree_leaves(getattr(find_state(state, cls), field))[order[w.index]])
        out.append((name, value))
    return out


def member_weights(params: Any, state: Any, checkpoint: KerasCheckpoint, names: Names = None) -> list[tuple[str, list]]:
    """A Keras 3 ``MultiOptimizer``'s members' weights lists, ``[(member name, [(name, value)])]`` in
    Keras's order, from ``state`` (:func:`transformation_from_keras`'s: a tuple of the members' states)."""
    multi = inner_optimizer_of(optimizer_from_keras(checkpoint))
    wrapper = find_state(state, LossScaleState, required=False)
    states = wrapper.inner if wrapper is not None else state
    return [
        (member.name, keras_weights(member.transformation, p, s, sub, names=n))
        for (member, p, sub, n), s in zip(_members(params, checkpoint, names, multi), states)
    ]
