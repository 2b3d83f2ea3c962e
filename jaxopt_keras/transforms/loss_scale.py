"""Dynamic loss scaling as a transform (the rule of ``tf.keras.mixed_precision.LossScaleOptimizer``).

Training in float16 multiplies the loss by a scale so small gradients do not
underflow, then divides the gradients by it.  With dynamic scaling, a step
whose gradients are not all finite is skipped and the scale halved (never
below 1); after ``dynamic_growth_steps`` finite steps in a row the scale
doubles.  As in Keras, a skipped step still counts as an iteration.

:func:`loss_scale_optimizer` wraps any transform; use :func:`scale_loss` on
the loss and :func:`unscale_gradients` on its gradients, then ``update`` with
the unscaled gradients.  The Keras class built on the same rule is
:class:`jaxopt_keras.mixed_precision.LossScaleOptimizer`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core import transform as base
from jaxopt_keras.core.state import expect_state, find_state, map_clocks, reachable, safe_add
from jaxopt_keras.core.xla import inlined_jnp

DEFAULT_INITIAL_SCALE = 2.0**15
DEFAULT_GROWTH_STEPS = 2000


class LossScaleState(NamedTuple):
    """State of :func:`loss_scale_optimizer`.

    Attributes:
      loss_scale: the current scale (float32).
      counter: finite steps since the scale last changed.
      inner: the wrapped transform's state.
    """

    loss_scale: jax.Array
    counter: jax.Array
    inner: Any


def all_finite(grads: Any) -> jax.Array:
    """True when every gradient element is finite (``None`` leaves ignored)."""
    leaves = [base.values_of(g) for g in jax.tree_util.tree_leaves(grads, is_leaf=base.is_none) if g is not None]
    if not leaves:
        return jnp.asarray(True)
    with inlined_jnp(leaves):
        return jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in leaves]))


def step_if_finite(finite: jax.Array, step: Any, unchanged: Any, state: Any) -> tuple[Any, Any]:
    """The loss-scale skip: ``step()`` when ``finite``, else ``(unchanged, state)``
    with every step counter in ``state`` advanced by one (Keras counts a
    skipped step as an iteration).

    Args:
      finite: a boolean scalar (see :func:`all_finite`).
      step: ``step() -> (out, new_state)``, the step to take.
      unchanged: what to return in place of ``out`` on a skip (zero updates,
        or the unchanged parameters).
      state: the state ``step`` would advance.
    """
    skipped = lambda: (unchanged, map_clocks(state, lambda clock: safe_add(clock.iterations, 1)))  # noqa: E731
    return jax.lax.cond(finite, lambda _: step(), lambda _: skipped(), None)


def next_loss_scale(scale: jax.Array, counter: jax.Array, finite: jax.Array, growth_steps: int) -> tuple[jax.Array, jax.Array]:
    """Keras's dynamic rule::

        finite and counter + 1 >= growth_steps: scale *= 2 (if finite), counter = 0
        finite otherwise:                        counter += 1
        not finite:                              scale = max(scale / 2, 1), counter = 0

    Growth steps beyond the counter's range (int32 without x64; TF-Keras
    counts in int64) are never reached: the scale does not grow.
    """
    grow = counter + 1 >= growth_steps if reachable(counter, growth_steps) else jnp.zeros((), bool)
    doubled = scale * 2
    grown = jnp.where(jnp.isfinite(doubled), doubled, scale)
    new_scale = jnp.where(finite, jnp.where(grow, grown, scale), jnp.maximum(scale / 2, 1.0))
    new_counter = jnp.where(finite, jnp.where(grow, 0, counter + 1), 0).astype(counter.dtype)
    return new_scale.astype(scale.dtype), new_counter


def check_loss_scale(initial_scale: Any, dynamic_growth_steps: Any, dynamic: bool = True) -> None:
    """The loss-scale settings every loss-scaling wrapper takes (both families'
    transforms and classes): a finite ``initial_scale > 0`` and, for a dynamic
    scale, an integer ``dynamic_growth_steps >= 1``.

    TF-Keras and Keras 3 accept a zero, negative or NaN scale and then skip
    every step or flip the gradients' sign; growth steps of 0 never grow.

    Raises:
      ValueError: either out of range, or not a number (a bool included).
    """
    number = isinstance(initial_scale, (int, float, np.integer, np.floating)) and not isinstance(initial_scale, (bool, np.bool_))
    if not (number and math.isfinite(initial_scale) and initial_scale > 0):
        raise ValueError(f'"initial_scale" must be positive and finite, but got: {initial_scale!r}')
    steps = dynamic_growth_steps
    if dynamic and (isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)) or steps < 1):
        raise ValueError(f'"dynamic_growth_steps" must be a positive integer, but got: {steps!r}')


@base.picklable
def loss_scale_optimizer(
    inner: base.GradientTransformation,
    initial_scale: float = DEFAULT_INITIAL_SCALE,
    dynamic_growth_steps: int = DEFAULT_GROWTH_STEPS,
    dynamic: bool = True,
) -> base.GradientTransformation:
    """Wraps ``inner`` with Keras's loss scaling: apply only finite steps.

    ``update`` takes *unscaled* gradients (see :func:`unscale_gradients`).
    When they are all finite it returns ``inner``'s update; otherwise zero
    updates, ``inner``'s state unchanged except its step count (+1), and, if
    ``dynamic``, a halved scale.

    Args:
      inner: the optimizer to wrap.
      initial_scale: the starting loss scale.
      dynamic_growth_steps: finite steps before the scale doubles.
      dynamic: ``False`` keeps ``initial_scale`` fixed (non-finite steps are
        then applied, as Keras does).

    Returns:
      A transform with state :class:`LossScaleState`.
    """
    check_loss_scale(initial_scale, dynamic_growth_steps, dynamic)

    def init(params):
        return LossScaleState(
            jnp.asarray(initial_scale, jnp.float32), jnp.zeros([], jnp.int32), inner.init(params)
        )

    inner_update = base.extra_args_update(inner.update)

    def update(updates, state, params=None, **extra_args):
        expect_state("LossScaleOptimizer", state, LossScaleState)
        if not dynamic:
            u, s = inner_update(updates, state.inner, params, **extra_args)
            return u, state._replace(inner=s)
        finite = all_finite(updates)
        # Zero updates shaped like inner's (a row-sparse gradient may give a dense update).
        shapes = jax.eval_shape(lambda: inner_update(updates, state.inner, params, **extra_args)[0])
        zeros = jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
        u, s = step_if_finite(finite, lambda: inner_update(updates, state.inner, params, **extra_args), zeros, state.inner)
        scale, counter = next_loss_scale(state.loss_scale, state.counter, finite, dynamic_growth_steps)
        return u, LossScaleState(scale, counter, s)

    return base.GradientTransformation(init, update)


def _find(state: Any) -> LossScaleState:
    found = find_state(state, LossScaleState, required=False)
    if found is None:
        raise ValueError("This state holds no loss scale: wrap the optimizer with loss_scale_optimizer().")
    return found


def scale_loss(loss: jax.Array, state: Any) -> jax.Array:
    """``loss * loss_scale``, in the loss's dtype (Keras's ``get_scaled_loss``)."""
    loss = jnp.asarray(loss)
    return loss * _find(state).loss_scale.astype(loss.dtype)


def unscale_gradients(grads: Any, state: Any) -> Any:
    """``g * (1 / loss_scale)`` per gradient (Keras's ``get_unscaled_gradients``)."""
    reciprocal = 1.0 / _find(state).loss_scale
    return base.map_values(lambda g: g * reciprocal.astype(g.dtype), grads)


def next_loss_scale_keras3(scale: jax.Array, counter: jax.Array, finite: jax.Array, growth_steps: int) -> tuple[jax.Array, jax.Array]:
    """Keras 3's dynamic rule (no floor at 1, no finiteness check on growth)::

        finite and counter == growth_steps - 1: scale *= 2, counter = 0
        finite otherwise:                        counter += 1
        not finite:                              scale *= 0.5, counter = 0
    """
    grow = counter == growth_steps - 1
    new_scale = jnp.where(finite, jnp.where(grow, scale * 2.0, scale), scale * 0.5)
    new_counter = jnp.where(finite, jnp.where(grow, 0, counter + 1), 0).astype(counter.dtype)
    return new_scale.astype(scale.dtype), new_counter


@base.picklable
def loss_scale_optimizer_keras3(
    inner: base.GradientTransformation,
    initial_scale: float = DEFAULT_INITIAL_SCALE,
    dynamic_growth_steps: int = DEFAULT_GROWTH_STEPS,
) -> base.GradientTransformation:
    """Keras 3's ``LossScaleOptimizer``: ``update`` takes the gradients of the
    *scaled* loss (``loss * loss_scale``, see :func:`scale_loss`).

    When they are all finite, each is divided by the scale (``g / scale``)
    and ``inner`` steps; otherwise nothing changes but the scale, which is
    halved (Keras 3's rule: :func:`next_loss_scale_keras3`).  Unlike TF-Keras,
    a skipped step does not count as an iteration.

    Returns:
      A transform with state :class:`LossScaleState`.
    """
    check_loss_scale(initial_scale, dynamic_growth_steps)

    def init(params):
        return LossScaleState(jnp.asarray(initial_scale, jnp.float32), jnp.zeros([], jnp.int32), inner.init(params))

    inner_update = base.extra_args_update(inner.update)

    def update(updates, state, params=None, **extra_args):
        expect_state("LossScaleOptimizer", state, LossScaleState)
        finite = all_finite(updates)
        scale = state.loss_scale

        def step(_):
            with inlined_jnp(updates):
                unscaled = base.map_values(lambda g: g / scale, updates)
            return inner_update(unscaled, state.inner, params, **extra_args)

        def skip(_):
            shapes = jax.eval_shape(lambda: inner_update(updates, state.inner, params, **extra_args)[0])
            return jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), shapes), state.inner

        u, s = jax.lax.cond(finite, step, skip, None)
        new_scale, counter = next_loss_scale_keras3(scale, state.counter, finite, dynamic_growth_steps)
        return u, LossScaleState(new_scale, counter, s)

    return base.GradientTransformation(init, update)
