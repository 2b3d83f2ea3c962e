"""A state from a plain tree of its values: what ``orbax`` restores without a target.

Restored without a target, an orbax checkpoint of a state comes back as
nested dicts and lists (a NamedTuple as a dict of its fields, a tuple as a
list).  :func:`state_from_tree` puts those values into a state of the right
structure (``tx.init(params)``, or ``jax.eval_shape`` of it), leaf by leaf,
found by key path.  Restoring *with* a target needs none of this.

A flat-layout buffer (:class:`jaxopt_keras.flat.FlatTree`) saved before long
buffers were padded holds the leaves' elements only; it comes back with the
padding's zeros appended (:meth:`jaxopt_keras.flat.Layout.saved_buffer`).
orbax does not pad it: a checkpoint of that age is restored without a target
and passed through here.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core.flat import FlatTree


def _child(tree: Any, key: Any, where: str) -> Any:
    if isinstance(key, jax.tree_util.DictKey):
        k = key.key
    elif isinstance(key, jax.tree_util.GetAttrKey):
        k = key.name
    elif isinstance(key, (jax.tree_util.SequenceKey, jax.tree_util.FlattenedIndexKey)):
        k = key.idx if isinstance(key, jax.tree_util.SequenceKey) else key.key
    else:
        raise ValueError(f"{where}: cannot follow key {key!r}")
    if isinstance(tree, Mapping):
        for candidate in (k, str(k)):
            if candidate in tree:
                return tree[candidate]
    elif isinstance(tree, Sequence) and not isinstance(tree, (str, bytes)) and isinstance(k, int) and k < len(tree):
        return tree[k]
    elif hasattr(tree, str(k)):
        return getattr(tree, str(k))
    raise ValueError(f"the restored tree has nothing at {where}")


def state_from_tree(target: Any, tree: Any) -> Any:
    """``target``'s structure holding ``tree``'s values (dicts, lists, NamedTuples: any mix).

    Args:
      target: a state (``tx.init(params)``) or its shapes
        (``jax.eval_shape(tx.init, params)``).
      tree: the values, e.g. ``orbax.checkpoint.StandardCheckpointer().restore(path)``.

    Returns:
      The state: each leaf in the target leaf's dtype, and its sharding when
      the target leaf is a committed array.  A flat-layout buffer saved
      without the padding (the leaves' elements only) gets the padding's
      zeros appended.

    Raises:
      ValueError: a leaf of ``target`` with no value, or of another shape (a
        flat buffer: of neither the padded nor the unpadded length, the error
        naming the buffer and both shapes).
    """
    nodes, treedef = jax.tree_util.tree_flatten_with_path(target, is_leaf=_is_flat)
    out = []
    for path, node in nodes:
        if not _is_flat(node):
            out.append(_restored(path, node, _value(tree, path)))
            continue
        buffers = []
        for i, like in enumerate(node.buffers):
            buffer_path = (*path, jax.tree_util.SequenceKey(i))
            value = node.layout.saved_buffer(i, _value(tree, buffer_path))
            buffers.append(_restored(buffer_path, like, value))
        out.append(FlatTree(buffers, node.layout))
    return treedef.unflatten(out)


def _is_flat(x: Any) -> bool:
    return isinstance(x, FlatTree)


def _value(tree: Any, path: tuple) -> np.ndarray:
    """The value ``tree`` holds at key path ``path``."""
    where = jax.tree_util.keystr(path)
    value = tree
    for key in path:
        value = _child(value, key, where)
    return np.asarray(value)


def _restored(path: tuple, like: Any, value: np.ndarray) -> jax.Array:
    """``value`` as the target leaf ``like``: its shape checked, its dtype, its sharding."""
    if value.shape != tuple(like.shape):
        where = jax.tree_util.keystr(path)
        raise ValueError(f"{where}: the restored value has shape {value.shape}, the state's {tuple(like.shape)}.")
    value = value.astype(like.dtype)
    if isinstance(like, jax.Array) and like.committed:
        return jax.device_put(value, like.sharding)
    if isinstance(like, jax.ShapeDtypeStruct) and getattr(like, "sharding", None) is not None:
        return jax.device_put(value, like.sharding)
    return jnp.asarray(value)
