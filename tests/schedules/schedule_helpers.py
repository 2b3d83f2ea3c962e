"""Evaluation helpers of the schedule tests (``tests/schedules/``): a schedule
eagerly, under ``jit`` and under ``jit(vmap)``, and a bit-for-bit comparison.

Imported by name (``from schedule_helpers import ...``): pytest puts a test
file's folder first on ``sys.path`` (see ``tests/conftest.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

F32 = np.float32


def jit_scalar(schedule, steps):
    """The schedule at each step under jit, one scalar step at a time (lax.map)."""
    return np.asarray(jax.jit(lambda xs: jax.lax.map(schedule, xs))(jnp.asarray(steps)))


def jit_vmap(schedule, steps):
    """The schedule under jit(vmap): a batch of steps, vector code."""
    return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps)))


def eager(schedule, steps):
    return np.array([np.asarray(schedule(jnp.asarray(s))) for s in steps])


def assert_bitwise(actual, expected, what):
    """Same dtype and the same bits at every position."""
    actual = np.atleast_1d(np.asarray(actual))
    expected = np.atleast_1d(np.asarray(expected))
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    bits = np.dtype(f"u{actual.dtype.itemsize}")
    bad = np.flatnonzero(actual.view(bits) != expected.view(bits))
    assert bad.size == 0, (
        f"{what}: {bad.size} of {actual.size} differ, first at index {bad[0]}: "
        f"{actual[bad[0]]!r} != {expected[bad[0]]!r}"
    )
