"""Row-sparse gradients: :class:`IndexedSlices`, JAX's counterpart of ``tf.IndexedSlices``.

The gradient of a row lookup (``tf.gather``, an embedding) touches a few rows
of a large table.  An :class:`IndexedSlices` leaf carries just those rows:
``values[i]`` is the gradient of row ``indices[i]`` of a tensor of shape
``dense_shape``.  Every optimizer accepts one in place of a dense gradient
leaf and follows TF-Keras's sparse semantics for its family (see
``docs/sparse.md``): duplicate indices are summed first, and optimizers whose
TensorFlow sparse kernels touch only the indexed rows do the same here, at a
cost proportional to the rows touched.

Under ``jit`` the number of indices is fixed; pad with an index equal to the
row count (``dense_shape[0]``): padded entries are dropped.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp


@jax.tree_util.register_pytree_node_class
class IndexedSlices:
    """Rows of a gradient: ``dense[indices[i]] += values[i]``.

    Args:
      values: ``[k, *dense_shape[1:]]``.
      indices: ``[k]`` integer row indices; an index outside
        ``[0, dense_shape[0])`` (``dense_shape[0]`` by convention, or a
        negative one) is padding and is ignored by the functional
        transformations; the Keras layer refuses a negative index or one above
        ``dense_shape[0]`` before its step (TensorFlow's kernels raise for
        them), see :func:`jaxopt_keras.core.gradients.check_indices`.
      dense_shape: the shape of the dense tensor (static).
    """

    def __init__(self, values: Any, indices: Any, dense_shape: Sequence[int]):
        self.values = values
        self.indices = indices
        self.dense_shape = tuple(int(d) for d in dense_shape)

    # pytree: values and indices are children, the dense shape is static.
    def tree_flatten(self):
        return (self.values, self.indices), self.dense_shape

    @classmethod
    def tree_unflatten(cls, dense_shape, children):
        obj = object.__new__(cls)
        obj.values, obj.indices = children
        obj.dense_shape = dense_shape
        return obj

    @property
    def dtype(self):
        return jnp.asarray(self.values).dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.dense_shape

    def to_dense(self) -> jax.Array:
        """The dense gradient: ``zeros(dense_shape).at[indices].add(values)`` (padding dropped)."""
        return scatter_add(jnp.zeros(self.dense_shape, self.dtype), self.indices, self.values)

    def with_values(self, values: Any) -> "IndexedSlices":
        return IndexedSlices(values, self.indices, self.dense_shape)

    def valid_values(self) -> jax.Array:
        """``values`` with the rows of padding indices (out of range) zeroed, so
        norms and finiteness checks ignore them."""
        valid = (self.indices >= 0) & (self.indices < self.dense_shape[0])
        values = jnp.asarray(self.values)
        return jnp.where(valid.reshape((-1,) + (1,) * (values.ndim - 1)), values, jnp.zeros_like(values))

    def __radd__(self, other: Any) -> jax.Array:
        """``dense + self``: ``dense`` with the rows added (:func:`scatter_add`, padding dropped), so
        ``optax.apply_updates`` (flax's ``TrainState``, ``nnx.Optimizer``) applies a row-sparse update."""
        return scatter_add(jnp.asarray(other), self.indices, self.values)

    def __repr__(self) -> str:
        return f"IndexedSlices(values={self.values!r}, indices={self.indices!r}, dense_shape={self.dense_shape})"


def is_sparse(x: Any) -> bool:
    return isinstance(x, IndexedSlices)


def gather(x: jax.Array, indices: jax.Array) -> jax.Array:
    """``x[indices]``; padding rows (an index outside ``[0, len(x))``, negative
    ones included) read as zeros."""
    return x.at[indices].get(mode="fill", fill_value=0, wrap_negative_indices=False)


def scatter_add(x: jax.Array, indices: jax.Array, rows: jax.Array) -> jax.Array:
    """``x[indices] += rows``; padding rows (out of range, negative included) are dropped."""
    return x.at[indices].add(rows.astype(x.dtype), mode="drop", wrap_negative_indices=False)


def scatter_set(x: jax.Array, indices: jax.Array, rows: jax.Array) -> jax.Array:
    """``x[indices] = rows``; padding rows (out of range, negative included) are dropped."""
    return x.at[indices].set(rows.astype(x.dtype), mode="drop", wrap_negative_indices=False)


def on_rows(update, g: "IndexedSlices", p: Any, slots: Any, c: Any, *, with_params: bool = False):
    """The dense step applied to the indexed rows only, as TensorFlow's sparse
    kernels that run their dense kernel's formula per row (``ResourceSparseApply*``
    of Adadelta, Ftrl, RMSprop with momentum)::

        delta_i, slots[i] = update(g_i, p[i], slots[i], c)

    ``slots`` is a pytree of full-size arrays (``None`` entries stay
    ``None``); the parameter's rows are gathered only ``with_params``.
    Returns ``(IndexedSlices of delta_i, slots with the rows written back)``.
    """
    idx = g.indices
    rows = jax.tree.map(lambda x: gather(x, idx), slots)
    p_rows = gather(jnp.asarray(p), idx) if with_params else None
    delta, new_rows = update(g.values, p_rows, rows, c)
    written = jax.tree.map(lambda x, r: scatter_set(x, idx, r), slots, new_rows)
    return g.with_values(delta), written


def deduplicate(g: IndexedSlices) -> IndexedSlices:
    """Sums the values of repeated indices, as Keras's ``_deduplicate_indexed_slices``.

    The result has as many entries as ``g`` (a static size under ``jit``): the
    unique indices (sorted), then padding (index ``dense_shape[0]``, zero
    values).
    """
    n_rows = g.dense_shape[0]
    k = g.indices.shape[0]
    indices = jnp.where((g.indices >= 0) & (g.indices < n_rows), g.indices, n_rows)
    unique, inverse = jnp.unique(indices, size=k, fill_value=n_rows, return_inverse=True)
    summed = jax.ops.segment_sum(g.values, inverse.reshape(-1), num_segments=k)
    summed = jnp.where((unique < n_rows).reshape((-1,) + (1,) * (summed.ndim - 1)), summed, 0)
    return IndexedSlices(summed.astype(g.dtype), unique, g.dense_shape)


__all__ = ["IndexedSlices", "deduplicate", "gather", "scatter_add", "scatter_set", "is_sparse"]
