"""From a :class:`~jaxopt_keras.io.checkpoint.KerasCheckpoint` to JAX: the optimizer and the parameters.

* :func:`optimizer_from_keras`: the Keras class instance of the config, in
  its family; ``.transformation`` is the functional optimizer.
* :func:`transformation_from_keras`: that transformation over your tree.
* :func:`params_from_keras`: a parameter tree holding the file's weights.

The optimizer's state, from the file and back (:func:`state_from_keras`,
:func:`keras_weights`), lives in :mod:`~jaxopt_keras.io.optimizer_state`.

Parameters and Keras variables are paired by :mod:`~jaxopt_keras.io.matching`.
Every value is checked (count, shape, dtype) before anything is built, and
placed like the leaf it replaces: a parameter sharded over a mesh gets its
value, and its slots, sharded the same way, device by device.
"""

from __future__ import annotations

from typing import Any, Sequence, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core.state import nan_count
from jaxopt_keras.io.checkpoint import KerasCheckpoint, inner_optimizer_of, keras_optimizer
from jaxopt_keras.io.errors import KerasFileError
from jaxopt_keras.io.matching import leaves, match
from jaxopt_keras.keras.pipeline import build_transformation
from jaxopt_keras.optimizers.multi import MultiOptimizer
from jaxopt_keras.optimizers.loss_scale import LossScaleOptimizer
from jaxopt_keras.transforms.loss_scale import DEFAULT_GROWTH_STEPS, loss_scale_optimizer, loss_scale_optimizer_keras3
from jaxopt_keras.transforms.routing import multi_optimizer, route

Names = Mapping[Any, str] | Callable[[str], str | None] | None


def optimizer_from_keras(checkpoint: KerasCheckpoint, custom_objects: Mapping[str, Any] | None = None) -> Any:
    """The Keras optimizer of the checkpoint's config, as our class of its family.

    ``optimizer_from_keras(ckpt).transformation`` is the functional
    optimizer (``jaxopt_keras.legacy.adam(...)`` for a legacy Adam config).

    A Keras 3 file gives a class of ``jaxopt_keras.optimizers.keras3`` (a
    ``LossScaleOptimizer`` of one, for a wrapped optimizer).

    Raises:
      NotImplementedError: a Keras 3 ``MultiOptimizer``.
    """
    return keras_optimizer(checkpoint.config, checkpoint.family, custom_objects)


def transformation_from_keras(checkpoint: KerasCheckpoint, params: Any, names: Names = None) -> Any:
    """The functional optimizer of the checkpoint, for ``params``: ``optimizer_from_keras(ckpt).transformation``;
    for a TF-Keras ``LossScaleOptimizer``, its inner one's in :func:`~jaxopt_keras.transforms.loss_scale.loss_scale_optimizer`
    (the wrapper's scale and counter, from a TF checkpoint, go into its state);
    for a Keras 3 ``MultiOptimizer``, its members routed by the Keras path of each leaf of ``params``
    (its ``OptimizerMap`` keys are Keras paths or patterns, which a flax tree's own paths do not match).
    With ``global_clipnorm``, the norm sums the gradients in Keras's variable order, not the tree's
    (a flax tree flattens a layer's ``bias`` before its ``kernel``), so it rounds as Keras does.

    Raises:
      KerasFileError: parameters that do not match the file's variables.
    """
    opt = optimizer_from_keras(checkpoint)
    multi = inner_optimizer_of(opt)
    routed = isinstance(multi, MultiOptimizer) or multi._spec.route is not None
    members = multi.optimizers if isinstance(multi, MultiOptimizer) else [multi]
    clipped = [m for m in members if m._args.get("global_clipnorm") is not None]
    order = trainable_order(params, checkpoint, names) if routed or clipped else []
    if isinstance(opt, LossScaleOptimizer):  # TF-Keras's wrapper: its transformation is the inner one's
        inner = _in_keras_order(multi, order)
        return loss_scale_optimizer(inner, opt.initial_scale, opt.dynamic_growth_steps or DEFAULT_GROWTH_STEPS, opt.dynamic)
    if not routed and not clipped:
        return opt.transformation
    paths = [p for p, _ in leaves(params)]
    for k, i in enumerate(order):
        paths[i] = checkpoint.trainable[k]
    keras_paths = jax.tree_util.tree_structure(params).unflatten(paths)
    if not routed:
        tx = _in_keras_order(multi, order)
    elif not isinstance(multi, MultiOptimizer):
        # An optimizer that routes each variable by its path (Keras 3's Muon): the file's paths.
        tx = _in_keras_order(multi, order, paths=keras_paths)
    else:
        optimizer_map, default = multi.optimizer_map, multi.optimizer_map.default_optimizer
        own = {id(m): [i for k, i in zip(checkpoint.trainable, order) if route(k, optimizer_map, default) is m] for m in members}
        txs = {id(m): _in_keras_order(m, own[id(m)]) for m in members}  # one each: a member two keys name is one optimizer
        tx = multi_optimizer(
            {key: txs[id(optimizer_map[key])] for key in optimizer_map},
            txs[id(default)],
            paths=keras_paths,
            loss_scale_factor=multi.loss_scale_factor,
        )
    return tx if opt is multi else loss_scale_optimizer_keras3(tx, opt.initial_scale, opt.dynamic_growth_steps)


def _in_keras_order(opt: Any, order: Sequence[int], **extra_args: Any) -> Any:
    """``opt``'s transformation over leaves whose indices in the tree are ``order``, in Keras's variable
    order: its ``global_clipnorm`` sums their norms in that order, as Keras does (a flax tree holds a
    layer's ``bias`` before its ``kernel``); ``extra_args``: more arguments (a routed optimizer's ``paths``)."""
    if opt._args.get("global_clipnorm") is None and not extra_args:
        return opt.transformation
    rank = {leaf: r for r, leaf in enumerate(sorted(order))}  # its position among the leaves it sees
    sums = [rank[leaf] for leaf in order] if opt._args.get("global_clipnorm") is not None else None
    return build_transformation(opt._spec, dict(opt._transformation_args(), **extra_args), opt.name or "optimizer", global_norm_order=sums)


def place_like(value: Any, like: Any) -> jax.Array:
    """``value`` as an array in ``like``'s dtype, on ``like``'s devices and sharding (shard by shard)."""
    value = np.asarray(value)
    if isinstance(like, jax.Array) and not isinstance(like, jax.core.Tracer) and like.committed:
        return jax.device_put(value, like.sharding)
    return jnp.asarray(value)


def dtype_error(checkpoint: KerasCheckpoint, what: str, file_dtype: Any, ours: Any) -> KerasFileError:
    """The ``KerasFileError`` for a weight whose dtype in the file is not the one the state holds."""
    return KerasFileError(
        checkpoint.path,
        f"{what} is {np.dtype(file_dtype).name} in the file, but {np.dtype(ours).name} in the parameters' state; "
        "cast the parameters (or ask for slot_dtype) to match.",
    )


def params_from_keras(params: Any, checkpoint: KerasCheckpoint, names: Names = None) -> Any:
    """``params`` with each leaf replaced by the file's weight it matches, placed like the leaf.

    ``params`` may hold the trainable parameters, or the moving statistics
    too (a flax linen ``{"params": ..., "batch_stats": ...}``); every leaf
    must match a weight of the file, of the same shape and dtype, and hold
    no NaN (a diverged run's weights would make every step NaN).

    Raises:
      KerasFileError: a leaf matches no weight, or one of another dtype, or one holding NaN.
    """
    keys = model_keys(params, checkpoint, names)
    refuse_nan(checkpoint, {k: checkpoint.model_weights[k] for k in keys}, "model weights")
    flat, treedef = jax.tree_util.tree_flatten(params)
    out = []
    for key, leaf in zip(keys, flat):
        value = checkpoint.model_weights[key]
        if np.dtype(value.dtype) != np.dtype(jnp.asarray(leaf).dtype):
            raise dtype_error(checkpoint, f"weight {key!r}", value.dtype, jnp.asarray(leaf).dtype)
        out.append(place_like(value, leaf))
    return treedef.unflatten(out)


def refuse_nan(checkpoint: KerasCheckpoint, weights: Mapping[str, Any], what: str) -> None:
    """A ``KerasFileError`` naming the weights that hold NaN (a diverged run's: every step from them would be NaN)."""
    held = [f"{k} ({n} of {np.size(v)})" for k, v in weights.items() if (n := nan_count(v))]
    if held:
        raise KerasFileError(checkpoint.path, f"{what} hold NaN: {held[:5]}; every step from them would be NaN.")


def model_keys(params: Any, checkpoint: KerasCheckpoint, names: Names = None) -> list[str]:
    """The model weight of each leaf.  A tree that pairs with the trainable variables alone (what the
    optimizer updates) pairs as :func:`trainable_order` pairs it: beside a layer frozen with
    ``trainable=False``, its i-th dense layer is Keras's i-th trainable one, not the frozen layer."""
    shapes = _weight_shapes(checkpoint)
    if len(checkpoint.trainable) < len(shapes) and len(leaves(params)) == len(checkpoint.trainable):
        try:
            return _match_trainable(params, checkpoint, names, shapes)
        except KerasFileError:
            pass
    return match(params, shapes, names, require_all=False, path=checkpoint.path)


def trainable_order(params: Any, checkpoint: KerasCheckpoint, names: Names = None) -> list[int]:
    """For each trainable Keras variable, in Keras's order, the index of its leaf in ``params``."""
    all_shapes = _weight_shapes(checkpoint)
    try:
        keys = _match_trainable(params, checkpoint, names, all_shapes)
    except KerasFileError:
        _refuse_frozen(params, checkpoint, names, all_shapes)
        raise
    where = {k: i for i, k in enumerate(keys)}
    return [where[k] for k in checkpoint.trainable]


def _weight_shapes(checkpoint: KerasCheckpoint) -> dict[str, tuple]:
    """The shape of each model weight of ``checkpoint``, by key."""
    return {k: np.shape(v) for k, v in checkpoint.model_weights.items()}


def _match_trainable(params: Any, checkpoint: KerasCheckpoint, names: Names, shapes: Mapping[str, tuple]) -> list[str]:
    """The trainable weight of each leaf of ``params``, which must pair with all of them; ``shapes``
    (every model weight's) tell each Keras layer's kind."""
    return match(params, {k: shapes[k] for k in checkpoint.trainable}, names, all_keras=shapes, path=checkpoint.path)


def _refuse_frozen(params: Any, checkpoint: KerasCheckpoint, names: Names, all_shapes: Mapping[str, tuple]) -> None:
    """A clear error for a tree holding weights the optimizer has no slots for (a frozen layer's)."""
    try:
        keys = match(params, all_shapes, names, require_all=False, path=checkpoint.path)
    except KerasFileError:
        return
    if frozen := [f"{p} -> {k}" for (p, _), k in zip(leaves(params), keys) if k not in set(checkpoint.trainable)]:
        raise KerasFileError(
            checkpoint.path,
            f"params holds weights that are not trainable in the Keras model (a layer frozen with trainable=False, "
            f"batch statistics), which the optimizer has no slots for: {frozen}. Pass the trainable parameters alone "
            f"(the tree the optimizer updates; Keras's trainable variables: {list(checkpoint.trainable)}).",
        )
