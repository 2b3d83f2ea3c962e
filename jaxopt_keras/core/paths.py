"""A parameter's path: its keys in the params pytree, joined by ``/``.

The functional counterpart of Keras 3's ``variable.path``
(``{"encoder": {"embedding": {"embeddings": x}}}`` gives
``encoder/embedding/embeddings``), used where Keras 3 chooses by path (Muon's
exclusions, ``MultiOptimizer``'s routing).
"""

from __future__ import annotations

from typing import Any

import jax


def key_name(key: Any) -> str:
    """One path component: a dict key, an attribute name, or an index."""
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def leaf_paths(tree: Any, is_leaf: Any = None) -> list[str]:
    """The path of every leaf of ``tree``, in ``tree_leaves`` order."""
    with_paths, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    return ["/".join(key_name(k) for k in path) for path, _ in with_paths]


def paths_of(tree: Any, paths: Any = None, is_leaf: Any = None) -> list[str]:
    """``leaf_paths(tree)``, or the strings of ``paths`` (a pytree shaped like ``tree``)."""
    if paths is None:
        return leaf_paths(tree, is_leaf)
    return jax.tree_util.tree_structure(tree, is_leaf=is_leaf).flatten_up_to(paths)
