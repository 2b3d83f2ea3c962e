"""Named workarounds for XLA:CPU's fusion decisions, and for the cost of tracing.

Each helper changes how JAX traces or XLA schedules a computation, never its
value; the formulas call them by name so the math stays readable.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import jax
import jax.numpy as jnp

# Whether :func:`inlined_jnp` takes effect (tests switch it off to compare
# the programs built with and without it, and to show their count of
# per-parameter traces can fail).
INLINE_JNP = True


def inlined_jnp(tree: Any) -> contextlib.AbstractContextManager:
    """A context in which, while ``tree`` is being traced, ``jax.numpy``'s
    operations are traced inline instead of as nested jitted functions.

    Each ``jnp`` operation (``+``, ``*``, ``jnp.sqrt``, ``jnp.where``, ...) is
    a small jitted function, which a trace traces again for every new
    argument shape: Adam's step over 1000 parameters of distinct shapes
    traced about 13,000 of them, more than half of its trace time.  Under
    ``jax.disable_jit`` a nested jitted function is called as plain Python
    on the tracers: the same primitives, and the same compiled program
    (``tests/algorithms/test_program_size.py`` compares them).  JAX runs
    some loops (``lax.scan``, ``fori_loop``) as Python loops under it, which
    would unroll them, so only loop-free math may run in this context.  With
    no tracer in ``tree`` (an eager call) it does nothing.
    """
    if INLINE_JNP and any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(tree)):
        return jax.disable_jit()
    return contextlib.nullcontext()


def recomputed(fn: Callable[..., Any], *operands: Any) -> Any:
    """``fn(*operands)``, computed afresh for one more consumer instead of shared.

    XLA:CPU gives each output of a step its own loop and never fuses an
    expensive operation (``sqrt``, ``pow``, a division) into two loops: an
    intermediate built from such operations that two outputs need
    (Adadelta's update, Adafactor's scaled gradient) is stored as a
    full-size temporary, one more write and read of memory than the step
    needs.  Passing the operands through an optimization barrier (an
    identity) makes this call a computation of its own, which XLA fuses into
    its consumer's loop.  The values are bit-identical to the shared ones.
    """
    return fn(*jax.lax.optimization_barrier(operands))


def leaf_scalars(scalars: tuple, anchor: Any) -> tuple:
    """``scalars`` unchanged, made values of the one leaf ``anchor`` belongs to.

    XLA:CPU compiles a kernel for each distinct fusion, so the parameters of one
    shape can share their kernels only if their fusions are identical.  When
    the leaves of a shape read the same scalar, XLA shares its broadcast
    between them, and the first of those leaves then fuses its operands in
    another order than the rest: a second kernel for every repeated shape
    (ResNet-50's Adam step had 140 kernels against optax's 87).  Passing the
    scalars through an optimization barrier together with an array of the
    leaf (a slot, the parameter) gives each leaf scalars of its own, and every
    leaf of a shape the same fusion.  XLA:CPU removes the barrier before
    fusion: no value and no run-time work changes.
    """
    return jax.lax.optimization_barrier((tuple(scalars), anchor))[0]


def opaque_one(count: jax.Array, dtype: Any) -> jax.Array:
    """``1`` in ``dtype``, as ``(count | 1) != 0``: true for every integer ``count``,
    and a value XLA cannot fold away (see :func:`fused_copy`)."""
    return jax.lax.ne(jax.lax.bitwise_or(count, jnp.ones_like(count)), jnp.zeros_like(count)).astype(dtype)


def fused_copy(x: jax.Array, one: jax.Array) -> jax.Array:
    """``x * one`` with ``one`` from :func:`opaque_one`: ``x`` bit for bit.

    When a parameter's update is one of the step's slots (SGD's velocity,
    ``p = p + m``), applying it is a lone ``add`` of two stored arrays, which
    XLA:CPU compiles through a slower path than a fused loop (a compute module
    about three times a fused kernel's size): SGD with momentum compiled
    ResNet-50's step in 1.3x optax's time.  A product with a ``1`` that XLA
    cannot fold makes the update's consumer an ordinary fused kernel.  ``x *
    1`` is ``x`` exactly (NaN, infinities and ``-0.0`` included), and the
    multiply is free in a memory-bound loop.
    """
    return x * one


def after(x: jax.Array, done: jax.Array) -> jax.Array:
    """``x`` bit for bit (``x * 1``), as a value XLA computes only once ``done`` is stored.

    A slot written in place must be read at its old value first: Ftrl's
    ``linear`` reads the old ``accumulator`` that the step overwrites.  Two
    loops without a data dependency between them cannot be ordered by XLA,
    so it copies the old slot first: a full-size copy each step (Ftrl's step
    took 45 ms on 2**24 parameters, 21 ms without it).  ``after(new_slot_term,
    other_output)`` makes the slot's loop read one element of the other
    output, through a ``1`` XLA cannot fold (:func:`opaque_one` of the
    element's bits): the other loop, and the reads of the old value in it,
    come first, and the slot is written in place.  An optimization barrier
    cannot do this, since XLA:CPU removes barriers before it orders the
    loops.  ``done`` must be an output that is stored anyway (a slot);
    with no element it orders nothing, and ``x`` is returned unchanged.
    """
    if done.size == 0:
        return x
    bits = jax.lax.bitcast_convert_type(done.reshape(-1)[0], jnp.dtype(f"int{8 * done.dtype.itemsize}"))
    return x * opaque_one(bits, x.dtype)
