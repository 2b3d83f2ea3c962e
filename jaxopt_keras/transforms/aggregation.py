"""Cross-device gradient aggregation."""

from __future__ import annotations

from typing import Any, Literal

from jax import lax

from jaxopt_keras import base


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
      A stateless transform.  ``None`` gradients stay ``None``.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"`reduction` must be 'sum' or 'mean'. Received: reduction={reduction!r}")
    reduce = lax.psum if reduction == "sum" else lax.pmean

    def update(updates, state, params=None):
        del params
        return base.map_updates(lambda g: reduce(g, axis_name), updates), state

    return base.GradientTransformation(lambda params: base.EmptyState(), update)
