"""Named workarounds for XLA:CPU's fusion decisions.

Each helper changes how XLA schedules a computation, never its value; the
formulas call them by name so the math stays readable.
"""

from __future__ import annotations

from typing import Any, Callable

import jax


def recomputed(fn: Callable[..., Any], *operands: Any) -> Any:
    """``fn(*operands)``, computed afresh for one more consumer instead of shared.

    XLA:CPU gives each output of a step its own loop and never fuses an
    expensive operation (``sqrt``, ``pow``, a division) into two loops: an
    intermediate built from such operations that two outputs need (Ftrl's
    ``new_accumulator ** -lr_power``, Adadelta's update) is stored as a
    full-size temporary, one more write and read of memory than the step
    needs.  Passing the operands through an optimization barrier (an
    identity) makes this call a computation of its own, which XLA fuses into
    its consumer's loop.  The values are bit-identical to the shared ones.
    """
    return fn(*jax.lax.optimization_barrier(operands))
