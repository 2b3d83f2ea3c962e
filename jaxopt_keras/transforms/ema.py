"""Exponential moving average of the parameters, as the current Keras family keeps it.

Keras's ``use_ema=True`` (``tf.keras.optimizers.Optimizer``, Keras 3) updates,
after every step, ``average = m * average + (1 - m) * variable`` with the new
variable values, and every ``ema_overwrite_frequency`` steps overwrites the
variables with their averages; ``finalize_variable_values`` does so once at
the end.  :func:`ema` is that, as a transform to chain *after* an optimizer.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_keras.core import transform as base
from jaxopt_keras.core.gradients import matched_params
from jaxopt_keras.core.paths import leaf_paths
from jaxopt_keras.core.state import check_slot_shapes, count_dtype, expect_state, find_state, reachable, safe_add, slot_tree_leaves
from jaxopt_keras.core.hyperparams import Derived, Hyperparams, widest_float
from jaxopt_keras.core.xla import inlined_jnp, leaf_scalars


class EmaState(NamedTuple):
    """State of :func:`ema`.

    Attributes:
      iterations: steps seen (the overwrite clock).
      hyperparams: ``ema_momentum`` (and ``1 - ema_momentum`` in double).
      average: the moving average, a tree shaped and typed like the params.
    """

    iterations: jax.Array
    hyperparams: Hyperparams
    average: Any


def _one_minus(x: float) -> float:
    return 1 - x


def check_ema_arguments(ema_momentum: Any, ema_overwrite_frequency: Any, family: str = "current") -> None:
    """Keras's rules for ``ema_momentum`` (in [0, 1]) and ``ema_overwrite_frequency``
    (``None`` or a positive integer), in the family's words.

    Raises:
      ValueError: either is out of range.
    """
    if not 0 <= ema_momentum <= 1:
        raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum}")
    if ema_overwrite_frequency and (not isinstance(ema_overwrite_frequency, int) or ema_overwrite_frequency < 1):
        raise ValueError(
            f"`ema_overwrite_frequency` must be an integer {'>=' if family == 'keras3' else '>'} 1 or None. "
            f"Received: ema_overwrite_frequency={ema_overwrite_frequency}"
        )


def _check_averages(averages: list, params: list, tree: Any) -> None:
    """Each moving average shaped like its parameter (:func:`check_slot_shapes`)."""
    check_slot_shapes("EMA", "average", averages, [jnp.shape(p) for p in params], lambda: leaf_paths(tree))


@base.picklable
def ema(
    ema_momentum: float = 0.99, ema_overwrite_frequency: int | None = None, accumulation_steps: int = 1
) -> base.GradientTransformation:
    """Keeps Keras's moving average of the parameters; optionally overwrites them.

    Chained after an optimizer, with ``p' = p + u`` the parameters after the
    step::

        average = ema_momentum * average + (1 - ema_momentum) * p'
        u = average - p      when (iterations + 1) % ema_overwrite_frequency == 0

    The average starts at the initial parameters, as Keras's
    ``add_variable_from_reference(var, "average", initial_value=var)``.
    Parameters with a ``None`` update keep their average.

    Args:
      ema_momentum: in [0, 1].
      ema_overwrite_frequency: overwrite the parameters with the average every
        this many steps; ``None`` never does (see :func:`ema_params`).
      accumulation_steps: with Keras 3's gradient accumulation, the average is
        updated on every call but the overwrite clock counts updates
        (``iterations // accumulation_steps``).

    Returns:
      A transform whose ``update`` needs ``params``.
    """
    check_ema_arguments(ema_momentum, ema_overwrite_frequency)
    def init(params):
        hp = Hyperparams.create(
            {"ema_momentum": ema_momentum},
            {"ema_momentum": widest_float()},  # a Python float meeting a tensor: exact
            (Derived("one_minus_ema_momentum", "ema_momentum", _one_minus),),
        )
        average = jax.tree_util.tree_map(lambda p: jnp.array(p, copy=True), params)
        return EmaState(jnp.zeros([], count_dtype()), hp, average)

    def update(updates, state, params=None, **extra_args):
        del extra_args  # optax's extra arguments (value=loss): none is read here
        if params is None:
            raise ValueError("ema reads the parameter values: call update(updates, state, params).")
        expect_state("EMA", state, EmaState)
        overwrite = None
        if ema_overwrite_frequency and reachable(state.iterations, ema_overwrite_frequency):
            clock = state.iterations // accumulation_steps if accumulation_steps > 1 else state.iterations
            overwrite = (safe_add(clock, 1) % ema_overwrite_frequency) == 0

        def leaf(u, p, avg):
            p = jnp.asarray(p)
            new_p = base.add_update(p, u)
            u = base.densify(u)
            m, one_minus = leaf_scalars(
                (state.hyperparams["ema_momentum"].astype(p.dtype), state.hyperparams["one_minus_ema_momentum"].astype(p.dtype)),
                avg,
            )
            avg = m * avg + one_minus * new_p
            if overwrite is not None:
                u = jnp.where(overwrite, avg - p, u)
            return u, avg

        flat_u, treedef = base.flatten_updates(updates)
        flat_p = matched_params(treedef, params, "EMA")
        flat_avg = slot_tree_leaves("EMA", "average", treedef, state.average)
        _check_averages(flat_avg, flat_p, params)
        out_u, out_avg = [], []
        with inlined_jnp(flat_avg):
            for u, p, avg in zip(flat_u, flat_p, flat_avg):
                if u is None:
                    out_u.append(None)
                    out_avg.append(avg)
                else:
                    nu, navg = leaf(u, p, avg)
                    out_u.append(nu)
                    out_avg.append(navg)
        new_state = EmaState(safe_add(state.iterations, 1), state.hyperparams, treedef.unflatten(out_avg))
        return treedef.unflatten(out_u), new_state

    return base.GradientTransformation(init, update)


@base.picklable
def ema_keras3(
    ema_momentum: float = 0.99, ema_overwrite_frequency: int | None = None, accumulation_steps: int = 1
) -> base.GradientTransformation:
    """Keras 3's moving average of the parameters (``use_ema=True``).

    As :func:`ema`, with Keras 3's rules: the average starts at zeros and the
    first step copies the parameters (the momentum is 0 while the step count
    is 0); the weight of the new value is ``1 - m`` computed in the
    parameter's dtype; parameters with a ``None`` update are averaged too;
    the overwrite is a blend ``avg * s + p' * (1 - s)`` with ``s`` 0 or 1::

        m_t = m if (iterations // accumulation_steps) != 0 else 0
        average = m_t * average + (1 - m_t) * p'
        p'' = average * s + p' * (1 - s),  s = ((iterations // N) + 1) % frequency == 0
    """
    check_ema_arguments(ema_momentum, ema_overwrite_frequency, "keras3")

    def init(params):
        hp = Hyperparams.create({"ema_momentum": ema_momentum}, {"ema_momentum": widest_float()})
        average = jax.tree_util.tree_map(lambda p: jnp.zeros_like(p), params)
        return EmaState(jnp.zeros([], count_dtype()), hp, average)

    def update(updates, state, params=None, **extra_args):
        del extra_args  # optax's extra arguments (value=loss): none is read here
        if params is None:
            raise ValueError("ema reads the parameter values: call update(updates, state, params).")
        expect_state("EMA", state, EmaState)
        clock = state.iterations // accumulation_steps if accumulation_steps > 1 else state.iterations
        overwrite = None
        if ema_overwrite_frequency:
            overwrite = (safe_add(clock, 1) % ema_overwrite_frequency) == 0

        def leaf(u, p, avg):
            p = jnp.asarray(p)
            new_p = p if u is None else base.add_update(p, u)
            (m,) = leaf_scalars(((clock != 0).astype(p.dtype) * state.hyperparams["ema_momentum"].astype(p.dtype),), avg)
            avg = m * avg + (1 - m) * new_p
            if overwrite is not None:
                s = overwrite.astype(jnp.int32)
                blended = avg * s + new_p * jnp.logical_not(overwrite).astype(jnp.int32)
                u = (blended - p).astype(p.dtype)
            return u, avg

        flat_u, treedef = base.flatten_updates(updates)
        flat_avg = slot_tree_leaves("EMA", "average", treedef, state.average)
        flat_p = matched_params(treedef, params, "EMA")
        _check_averages(flat_avg, flat_p, params)
        with inlined_jnp(flat_avg):
            out = [leaf(u, p, avg) for u, p, avg in zip(flat_u, flat_p, flat_avg)]
        new_state = EmaState(safe_add(state.iterations, 1), state.hyperparams, treedef.unflatten([a for _, a in out]))
        return treedef.unflatten([u for u, _ in out]), new_state

    return base.GradientTransformation(init, update)


def ema_params(state: Any) -> Any:
    """The moving-average parameters held in ``state`` (Keras's ``finalize_variable_values``).

    Args:
      state: an optimizer state containing an :class:`EmaState` (for example
        from ``jaxopt_keras.adam(use_ema=True)``).

    Returns:
      The averaged parameter tree.

    Raises:
      ValueError: ``state`` holds no moving average.
    """
    found = find_state(state, EmaState, required=False)
    if found is None:
        raise ValueError("This optimizer state holds no moving average: build the optimizer with use_ema=True or chain ema().")
    return found.average
