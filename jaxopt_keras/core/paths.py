"""A parameter's path: the keys that lead to it in its tree, joined by ``"/"``.

Keras 3 decides some things by a variable's path (Muon sends embeddings and
the layers named in ``exclude_layers`` to its AdamW step).  A parameter in a
pytree has no name of its own; its path plays that part:
``{"encoder": {"embedding": {"embeddings": w}}}`` gives ``w`` the path
``encoder/embedding/embeddings``, and the third entry of a list has the path
``2``.  Everything that needs paths computes them here.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

from jaxopt_keras.core.transform import leaves_like


def key_name(entry: Any) -> str:
    """One entry of a JAX key path as text: a dict key, a sequence index or an attribute name."""
    for field in ("key", "idx", "name"):
        if hasattr(entry, field):
            return str(getattr(entry, field))
    return str(entry)


def leaf_paths(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list[str]:
    """The path of every leaf of ``tree``, in ``tree_leaves`` order (``""`` for a bare leaf)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    return ["/".join(key_name(k) for k in path) for path, _ in flat]


def given_paths(paths: Any, treedef: Any, what: str = "parameters") -> list[Any]:
    """The leaves of a user's ``paths`` tree, one per leaf of ``treedef``.

    A path made over ``nnx.state(model, nnx.Param)`` sits in its parameter's
    ``Param``, and ``nnx.Optimizer`` updates on the bare arrays: the string
    is read out of the one-leaf node that holds it (``core.interop`` cannot
    be imported here: it imports the flat layout, which imports this module).

    Raises:
      ValueError: ``paths`` is not shaped like the parameters.
    """
    given = leaves_like(
        treedef, paths, lambda why: f"`paths` must be a tree of strings shaped like the {what} ({treedef}); received {paths!r}."
    )
    return [_unwrapped(p) for p in given]


def _unwrapped(path: Any) -> Any:
    inner = [] if isinstance(path, str) else jax.tree_util.tree_leaves(path)
    return inner[0] if len(inner) == 1 and isinstance(inner[0], str) else path


def paths_of(tree: Any, paths: Any = None, is_leaf: Callable[[Any], bool] | None = None) -> list[str]:
    """``leaf_paths(tree)``, or the strings of ``paths`` (a tree shaped like ``tree``)."""
    if paths is None:
        return leaf_paths(tree, is_leaf)
    return given_paths(paths, jax.tree_util.tree_structure(tree, is_leaf=is_leaf))
