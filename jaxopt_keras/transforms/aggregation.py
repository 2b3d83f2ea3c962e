"""Cross-device gradient aggregation."""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
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

    Raises:
      ValueError (when traced): inside a ``shard_map`` that checks replication
        (``check_vma=True``, its default), a dense gradient that does not vary
        over ``axis_name``.  ``jax.grad`` with respect to replicated parameters
        (``in_specs`` ``P()``) has then summed the devices' gradients already,
        and all-reducing them again would scale the step by the number of
        devices.  Pass ``check_vma=False`` (each device's gradient is its
        own, as under ``pmap``), or leave this transform out and write the
        loss over the global batch.
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
        _refuse_reduced(updates, axis_name)
        return base.map_updates(leaf, updates), state

    return base.GradientTransformation(lambda params: base.EmptyState(), update)


def _varying_axes(x: Any) -> frozenset:
    """The mesh axes ``x`` varies over, as ``shard_map``'s replication check types it."""
    aval = jax.typeof(x)
    typed = getattr(aval, "manual_axis_type", None)
    return frozenset(typed.varying if typed is not None else getattr(aval, "vma", ()))


def _refuse_reduced(updates: Any, axis_name: Any) -> None:
    """Raises when ``shard_map`` checks replication and a dense gradient does
    not vary over ``axis_name`` (see :func:`aggregate_gradients`)."""
    axes = frozenset(axis_name if isinstance(axis_name, tuple) else (axis_name,))
    try:
        cast = lax.pcast(jnp.zeros(()), tuple(axes), to="varying") if hasattr(lax, "pcast") else lax.pvary(jnp.zeros(()), tuple(axes))
    except ValueError:  # not inside shard_map: pmap, vmap, or no mapped axis (psum says so)
        return
    if not axes <= _varying_axes(cast):
        return  # check_vma=False: nothing is typed, each device's gradient is its own
    leaves = jax.tree_util.tree_leaves(updates, is_leaf=lambda x: isinstance(x, IndexedSlices))
    reduced = [g for g in leaves if not isinstance(g, IndexedSlices) and not axes & _varying_axes(g)]
    if reduced:
        raise ValueError(
            f"aggregate_gradients({axis_name!r}): {len(reduced)} of the {len(leaves)} gradients are already the same "
            f"on every device of {sorted(axes)}. Inside jax.shard_map with check_vma=True (its default), jax.grad "
            "with respect to replicated parameters (in_specs P()) sums the devices' gradients itself, so "
            "all-reducing them again would scale the step by the number of devices. Pass check_vma=False to "
            "shard_map (each device's gradient is then its own, as under pmap), or leave aggregate_gradients out "
            "and write the loss over the global batch."
        )
