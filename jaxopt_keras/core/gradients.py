"""Gradients checked against their parameters, in one place for the functional
transformations and the Keras layer.

A gradient must have its parameter's shape (no broadcasting: a ``(1,)`` or
scalar gradient for a matrix is an error, as TF-Keras's OptimizerV2 kernels
say; TF-Keras's current optimizers and Keras 3 broadcast it silently), and be
complex only for a complex parameter (its imaginary part would be dropped;
Keras 3 drops it).  Other dtypes are cast to the parameter's, as Keras 3
casts them (float16 for float32, integers).  A row-sparse gradient
(:class:`~jaxopt_keras.core.sparse.IndexedSlices`) must have its parameter's
``dense_shape``, one integer index per row of ``values``, and rows shaped
like the parameter's.  Everything here is static (shapes and dtypes), so it
runs at trace time under ``jit``; the indices themselves are data, checked
only eagerly by the layer (:func:`check_indices`); the functional
transformations drop an out-of-range index as padding.

The error names the parameter: its path in the tree (functional) or the
variable's path (the layer).  A shape mismatch is a ``ValueError`` (what
TF-Keras raises when a model is traced with incompatible static shapes), a
``TypeError`` in the Keras 3 family (what Keras 3 raises); a dtype mismatch
is a ``TypeError``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core import transform as base
from jaxopt_keras.core.paths import leaf_paths
from jaxopt_keras.core.sparse import IndexedSlices


Where = str | Callable[[], str]


def _shape_error(family: str) -> type:
    return TypeError if family == "keras3" else ValueError


def _name(where: Where) -> str:
    return where() if callable(where) else where


def check_gradient(g: Any, p: Any, where: Where, family: str = "current") -> None:
    """Raises unless gradient ``g`` fits parameter ``p`` (see the module's rules).

    Args:
      g: a dense gradient or an ``IndexedSlices``.
      p: the parameter (array, tracer or anything with ``shape``/``dtype``);
        ``None`` checks ``g`` alone (its dtype, an ``IndexedSlices``' own shapes).
      where: the parameter's name for the message (``"variable 'dense/kernel'"``),
        or a function giving it (called only to raise).
      family: ``"legacy"``, ``"current"`` or ``"keras3"``: the shape error's type.

    Raises:
      ValueError / TypeError: as the module says; nothing is computed.
    """
    sparse = isinstance(g, IndexedSlices)
    values = g.values if sparse else g
    g_dtype = np.dtype(jnp.result_type(values))
    if p is not None:
        p_dtype = np.dtype(jnp.result_type(p))
        if jnp.issubdtype(g_dtype, jnp.complexfloating) and not jnp.issubdtype(p_dtype, jnp.complexfloating):
            raise TypeError(
                f"The gradient for {_name(where)} is complex ({g_dtype.name}) but the variable is {p_dtype.name}: "
                "its imaginary part would be lost."
            )
    g_shape = tuple(np.shape(values))
    if sparse:
        _check_slices(g, g_shape, where, family)
        g_shape = g.dense_shape
    if p is not None and g_shape != tuple(np.shape(p)):
        kind = "dense_shape" if sparse else "shape"
        raise _shape_error(family)(
            f"The gradient for {_name(where)} has {kind} {g_shape}, but the variable has shape {tuple(np.shape(p))}: "
            "var and grad do not have the same shape."
        )


def _check_slices(g: IndexedSlices, values_shape: tuple, where: Where, family: str) -> None:
    index_shape = tuple(np.shape(g.indices))
    index_dtype = np.dtype(jnp.result_type(g.indices))
    if not jnp.issubdtype(index_dtype, jnp.integer):
        raise TypeError(f"The IndexedSlices gradient for {_name(where)} has indices of dtype {index_dtype.name}; they must be integers.")
    if len(index_shape) != 1 or not g.dense_shape or values_shape[:1] != index_shape or values_shape[1:] != tuple(g.dense_shape[1:]):
        raise _shape_error(family)(
            f"The IndexedSlices gradient for {_name(where)} has values of shape {values_shape}, indices of shape "
            f"{index_shape} and dense_shape {g.dense_shape}: expected k indices and values of shape "
            "[k, *dense_shape[1:]]."
        )


def check_gradients(grads: Sequence[Any], params: Sequence[Any], paths: Callable[[], Sequence[str]], family: str) -> None:
    """:func:`check_gradient` for each ``(gradient, parameter)`` leaf pair (``None``
    gradients skipped); ``paths()`` gives the leaves' paths in the tree, computed
    only for the message."""
    for i, (g, p) in enumerate(zip(grads, params)):
        if g is not None:
            check_gradient(g, p, lambda i=i: f"the parameter {paths()[i]!r}", family)


def matched_params(treedef: Any, params: Any, owner: str) -> list[Any]:
    """The leaves of ``params`` in the order of the gradients' ``treedef``.

    Raises:
      ValueError: the gradients and the parameters are trees of different
        structures (a missing or extra key, a list for a dict), naming
        ``owner`` and JAX's difference.
    """
    return base.leaves_like(
        treedef,
        params,
        lambda why: f"The gradients given to {owner}'s update and the parameters are trees of different structures "
        f"(the gradients' against the parameters': {why}). Pass one gradient per parameter, in the parameters' tree.",
    )


def check_indices(g: IndexedSlices, where: str) -> None:
    """Eagerly (concrete indices only): every index in ``[0, dense_shape[0]]``, the
    last value being the padding convention; TensorFlow's kernels raise
    ``indices[i] = j is not in [0, n)`` for the others.

    Raises:
      ValueError: a negative index, or one above ``dense_shape[0]``.
    """
    if isinstance(g.indices, jax.core.Tracer):
        return
    indices = np.asarray(g.indices)
    n = g.dense_shape[0]
    bad = np.flatnonzero((indices < 0) | (indices > n))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"The IndexedSlices gradient for {where}: indices[{i}] = {int(indices[i])} is not in [0, {n}) "
            f"(nor the padding index {n})."
        )


def with_checked_gradients(
    t: base.GradientTransformation, family: str, owner: str = "gradient accumulation"
) -> base.GradientTransformation:
    """``t`` whose ``update`` first checks the gradients against the parameters
    (:func:`check_gradients`); the same state.  For a transformation that would
    otherwise broadcast them before the optimizer sees them (gradient accumulation)."""

    inner_update = base.extra_args_update(t.update)

    def update(updates, state, params=None, **extra_args):
        grads, treedef = base.flatten_updates(updates)
        param_leaves = matched_params(treedef, params, owner) if params is not None else [None] * len(grads)
        check_gradients(grads, param_leaves, lambda: leaf_paths(params if params is not None else updates, is_leaf=base.is_none), family)
        return inner_update(updates, state, params, **extra_args)

    return base.GradientTransformation(t.init, update)
