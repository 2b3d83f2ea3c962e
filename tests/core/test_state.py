"""The step counter (``core/state.py``, ``safe_add``): int32 without x64, where it
saturates instead of wrapping; int64 with x64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_keras as jk


def test_counter_saturates_instead_of_wrapping_without_x64():
    t = jk.legacy.adam()
    params = [jnp.ones(3)]
    state = t.init(params)
    assert state.iterations.dtype == jnp.int32
    top = np.iinfo(np.int32).max
    state = state._replace(iterations=jnp.asarray(top - 1, jnp.int32))
    step = jax.jit(lambda s: t.update([jnp.ones(3)], s, params))
    for _ in range(3):
        u, state = step(state)
        assert int(state.iterations) == top
        assert np.isfinite(np.asarray(u[0])).all()


def test_counter_is_int64_with_x64():
    with jax.enable_x64(True):
        t = jk.adam()
        state = t.init([jnp.ones(2)])
        assert state.iterations.dtype == jnp.int64
        state = state._replace(iterations=jnp.asarray(2**40, jnp.int64))
        _, state = t.update([jnp.ones(2)], state)
        assert int(state.iterations) == 2**40 + 1
