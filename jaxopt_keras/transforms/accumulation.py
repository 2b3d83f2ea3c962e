"""Gradient accumulation and the loss-scale factor, as Keras 3 applies them.

Keras 3's ``gradient_accumulation_steps=N`` updates the variables every N
calls with the mean of the gradients since the last update; between updates
only the accumulators change.  Its ``loss_scale_factor=f`` multiplies the
loss by ``f`` (``optimizer.scale_loss``) and divides every gradient by ``f``
before anything else.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core import transform as base
from jaxopt_keras.core.hyperparams import whole_count
from jaxopt_keras.core.paths import leaf_paths
from jaxopt_keras.core.state import (
    check_slot_shapes,
    count_dtype,
    expect_state,
    filled,
    find_state,
    replace_state,
    safe_add,
    slot_tree_leaves,
)


class AccumulationState(NamedTuple):
    """State of :func:`accumulate_gradients`.

    Attributes:
      iterations: calls so far (Keras 3's ``optimizer._iterations``).
      accumulators: sums of the gradients since the last update, shaped and
        typed like the params (one buffer per parameter).
      inner: the wrapped transform's state; its own step count advances only
        on updates (``iterations // N``, Keras 3's ``optimizer.iterations``).
    """

    iterations: jax.Array
    accumulators: Any
    inner: Any


def check_accumulation_steps(steps: Any) -> Any:
    """Keras 3's rule for ``gradient_accumulation_steps``: ``None``, or an integer >= 2.

    Keras 3 only compares the count with 2: a whole float (``2.0``, as a config
    written with floats has it) is the same count, and is returned as that
    ``int``.  A fraction, which Keras 3 takes and then steps on no whole
    number of calls, is refused.

    Returns:
      ``steps``, a whole float as an ``int``.

    Raises:
      ValueError: anything else.
    """
    count = whole_count(steps)
    if count is not None and (not isinstance(count, (int, np.integer)) or isinstance(count, (bool, np.bool_)) or count < 2):
        raise ValueError(
            f"`gradient_accumulation_steps` must be an integer >= 2. Received: gradient_accumulation_steps={steps}"
        )
    return count


def check_loss_scale_factor(loss_scale_factor: Any) -> None:
    """Keras 3's rule for ``loss_scale_factor``: ``None``, or a positive number.

    Raises:
      ValueError: anything else.
    """
    if loss_scale_factor is not None and not loss_scale_factor > 0:
        raise ValueError(f"`loss_scale_factor` must be a positive number. Received: loss_scale_factor={loss_scale_factor}")


@base.picklable
def accumulate_gradients(
    inner: base.GradientTransformation, steps: int, compute_every_call: bool = False
) -> base.GradientTransformation:
    """Applies ``inner`` every ``steps`` calls, to the mean of the gradients::

        update call ((iterations + 1) % steps == 0):
            g = (g + accumulator) / steps ; accumulator = 0 ; updates = inner(g)
        other calls:
            accumulator = accumulator + g ; updates = 0

    Args:
      inner: the transform to apply (clipping and the optimizer step, as in
        Keras 3, where clipping and weight decay see the averaged gradient).
      steps: an integer >= 2.
      compute_every_call: run ``inner`` on every call and keep its result only
        on update calls, as Keras 3's JAX backend does (its numbers then agree
        bit for bit: XLA compiles the step outside a conditional).  By default
        ``inner`` runs only on update calls, which saves its cost in between.

    Returns:
      A transform with state :class:`AccumulationState`.
    """
    steps = check_accumulation_steps(steps)
    if steps is None:
        raise ValueError("`gradient_accumulation_steps` must be an integer >= 2. Received: gradient_accumulation_steps=None")
    def init(params):
        accumulators = jax.tree_util.tree_map(lambda p: filled(p, 0), params)
        return AccumulationState(jnp.zeros([], count_dtype()), accumulators, inner.init(params))

    inner_update = base.extra_args_update(inner.update)

    def update(updates, state, params=None, **extra_args):
        expect_state("gradient accumulation", state, AccumulationState)
        is_update = (safe_add(state.iterations, 1) % steps) == 0
        # Keras 3 adds a row-sparse gradient to its dense accumulator.
        flat_g, treedef = base.flatten_updates(base.map_updates(base.densify, updates))
        flat_acc = slot_tree_leaves("gradient accumulation", "gradient_accumulator", treedef, state.accumulators)
        check_slot_shapes(
            "gradient accumulation", "gradient_accumulator", [None if g is None else a for g, a in zip(flat_g, flat_acc)],
            [jnp.shape(g) for g in flat_g], lambda: leaf_paths(updates, is_leaf=base.is_none),
        )  # fmt: skip

        def mean(_):
            return [None if g is None else (g + a) / steps for g, a in zip(flat_g, flat_acc)]

        def reset():
            return [a if g is None else jnp.zeros_like(a) for g, a in zip(flat_g, flat_acc)]

        def accumulate(_):
            zeros = treedef.unflatten([None if g is None else jnp.zeros_like(g) for g in flat_g])
            return zeros, state.inner, [a if g is None else (g + a).astype(a.dtype) for g, a in zip(flat_g, flat_acc)]

        if compute_every_call:
            # Keras 3's structure: the step's input chosen by a conditional (which
            # XLA does not fuse across), the step run on it, its results chosen by
            # another (a select would let XLA fuse the step differently).
            grads = jax.lax.cond(is_update, mean, lambda _: list(flat_g), None)
            stepped = (*inner_update(treedef.unflatten(grads), state.inner, params, **extra_args), reset())
            u, s, acc = jax.lax.cond(is_update, lambda ops: ops[0], lambda ops: ops[1], (stepped, accumulate(None)))
        else:

            def apply(_):
                return (*inner_update(treedef.unflatten(mean(None)), state.inner, params, **extra_args), reset())

            u, s, acc = jax.lax.cond(is_update, apply, accumulate, None)
        new_state = AccumulationState(safe_add(state.iterations, 1), treedef.unflatten(acc), s)
        return u, new_state

    return base.GradientTransformation(init, update)


def overwrite_with_gradients(
    grads: list, overwrite: list[bool], values: list, state: Any, steps: int | None
) -> tuple[list, Any]:
    """Keras 3's ``_overwrite_variables_directly_with_gradients``: the new values
    of the variables marked ``overwrite`` (``None`` for the others), and
    ``state`` with their accumulators advanced.

    Without accumulation a marked variable takes its gradient.  With
    ``steps``, it takes the running maximum of its gradients (its accumulator
    starts at zeros) on update calls only::

        update call ((iterations + 1) % steps == 0):
            value = maximum(g, accumulator) ; accumulator = 0
        other calls:
            accumulator = maximum(g, accumulator)       (value unchanged)

    ``iterations`` and the accumulators are the :class:`AccumulationState`'s
    in ``state`` (before this call's step advances them); the accumulators
    are a list in the order of ``values``.  Keras 3 runs this before the step
    and before any loss scaling, so a marked gradient is never unscaled.
    """
    marked = [o and g is not None for g, o in zip(grads, overwrite)]
    if not any(marked):
        return [None] * len(grads), state
    if not steps:
        return [jnp.asarray(g).astype(v.dtype) if m else None for g, v, m in zip(grads, values, marked)], state
    acc = find_state(state, AccumulationState)
    is_update = (safe_add(acc.iterations, 1) % steps) == 0
    accumulators, new_values = list(acc.accumulators), []
    for i, (g, v, m) in enumerate(zip(grads, values, marked)):
        if not m:
            new_values.append(None)
            continue
        maximum = jnp.maximum(jnp.asarray(g), accumulators[i])
        accumulators[i] = jnp.where(is_update, jnp.zeros_like(accumulators[i]), maximum)
        new_values.append(jnp.where(is_update, maximum, v).astype(v.dtype))
    advanced = type(acc.accumulators)(accumulators)
    return new_values, replace_state(state, AccumulationState, lambda s: s._replace(accumulators=advanced))


@base.picklable
def scale_by_loss_scale_factor(loss_scale_factor: float) -> base.GradientTransformation:
    """Divides every gradient by ``loss_scale_factor`` (Keras 3: ``g / scale``).

    Pair with ``loss * loss_scale_factor`` when computing the gradients.
    """
    check_loss_scale_factor(loss_scale_factor)
    if loss_scale_factor is None:
        raise ValueError("`loss_scale_factor` must be a positive number. Received: loss_scale_factor=None")

    def update(updates, state, params=None, **extra_args):
        del params, extra_args  # optax's extra arguments (value=loss): none is read here
        return base.map_values(lambda g: g / loss_scale_factor, updates), state

    return base.GradientTransformation(lambda params: base.EmptyState(), update)
