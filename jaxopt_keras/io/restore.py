"""A state from a plain tree of its values: what ``orbax`` restores without a target.

Restored without a target, an orbax checkpoint of a state comes back as
nested dicts and lists (a NamedTuple as a dict of its fields, a tuple as a
list).  :func:`state_from_tree` puts those values into a state of the right
structure (``tx.init(params)``, or ``jax.eval_shape`` of it), leaf by leaf,
found by key path.  Restoring *with* a target needs none of this.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np


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
      the target leaf is a committed array.

    Raises:
      ValueError: a leaf of ``target`` with no value, or of another shape.
    """
    paths, treedef = jax.tree_util.tree_flatten_with_path(target)
    out = []
    for path, like in paths:
        where = jax.tree_util.keystr(path)
        value = tree
        for key in path:
            value = _child(value, key, where)
        value = np.asarray(value)
        if value.shape != tuple(like.shape):
            raise ValueError(f"{where}: the restored value has shape {value.shape}, the state's {tuple(like.shape)}.")
        value = value.astype(like.dtype)
        if isinstance(like, jax.Array) and like.committed:
            out.append(jax.device_put(value, like.sharding))
        elif isinstance(like, jax.ShapeDtypeStruct) and getattr(like, "sharding", None) is not None:
            out.append(jax.device_put(value, like.sharding))
        else:
            out.append(jnp.asarray(value))
    return treedef.unflatten(out)
