"""Cross-device gradient aggregation."""

from __future__ import annotations

from typing import Any, Literal

from jax import lax

from jaxopt_keras.core import transform as base
from jaxopt_keras.core.sparse import IndexedSlices


@base.picklable
def aggregate_gradients(
    axis_name: Any, reduction: Literal["sum", "mean"] = "sum"
) -> base.GradientTransformation:
    """All-reduces gradients over a named mapped axis.

    Use inside ``jax.pmap`` or ``shard_map`` (or ``vmap`` with an axis name),
    first in a chain, as Keras aggregates before clipping::

        chain(aggregate_gradients("batch"), legacy.adam(clipnorm=1.0))

    ``reduction="sum"`` is Keras's default aggregator
    (``all_reduce_sum_gradients``): ``g = sum_over_replicas(g)``;
    ``"mean"`` divides by the number of replicas.

    Args:
      axis_name: the mapped axis (or tuple of axes) to reduce over.
      reduction: ``"sum"`` or ``"mean"``.

    Returns:
      A stateless transform.  ``None`` gradients stay ``None``; row-sparse
      ``IndexedSlices`` are all-gathered (their rows concatenated).
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"`reduction` must be 'sum' or 'mean'. Received: reduction={reduction!r}")
    reduce = lax.psum if reduction == "sum" else lax.pmean

    def leaf(g):
        if isinstance(g, IndexedSlices):
            # As tf.distribute all-reduces IndexedSlices: gather every replica's
            # rows (duplicates are summed by the optimizer), scaled for "mean".
            values = lax.all_gather(g.values, axis_name, tiled=True)
            indices = lax.all_gather(g.indices, axis_name, tiled=True)
            if reduction == "mean":
                values = values / lax.psum(1, axis_name)
            return IndexedSlices(values, indices, g.dense_shape)
        return reduce(g, axis_name)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args  # optax's extra arguments (value=loss): none is read here
        return base.map_updates(leaf, updates), state

    return base.GradientTransformation(lambda params: base.EmptyState(), update)
