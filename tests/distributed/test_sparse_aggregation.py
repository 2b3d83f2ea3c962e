"""Row-sparse gradients aggregated across 8 devices (``aggregate_gradients`` under
``pmap``): the rows of every device gathered, the step as on one device with
all the rows at once.  ``tests/conftest.py`` gives the session 8 CPU devices."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_keras as jk
from jaxopt_keras.core.sparse import IndexedSlices

ROWS, WIDTH = 10, 3


def test_aggregate_gradients_gathers_rows_across_devices():
    n = jax.local_device_count()
    assert n == 8
    idx = jnp.arange(n * 2, dtype=jnp.int32).reshape(n, 2) % ROWS
    vals = jnp.ones((n, 2, WIDTH)) * jnp.arange(1, n + 1).reshape(n, 1, 1)
    t = jk.chain(jk.aggregate_gradients("d"), jk.legacy.adagrad(learning_rate=0.1))
    table = jnp.zeros((ROWS, WIDTH)) + 1.0

    @functools.partial(jax.pmap, axis_name="d")
    def step(p, s, i, v):
        u, s = t.update([IndexedSlices(v, i, (ROWS, WIDTH))], s, [p])
        return jk.apply_updates([p], u)[0]

    state = jax.tree.map(lambda x: jnp.stack([x] * n), t.init([table]))
    out = step(jnp.stack([table] * n), state, idx, vals)
    # Reference: one device, all the rows at once.
    ref_t = jk.legacy.adagrad(learning_rate=0.1)
    g = IndexedSlices(vals.reshape(-1, WIDTH), idx.reshape(-1), (ROWS, WIDTH))
    u, _ = ref_t.update([g], ref_t.init([table]), [table])
    ref = jk.apply_updates([table], u)[0]
    for r in range(n):
        np.testing.assert_allclose(np.asarray(out[r]), np.asarray(ref), rtol=1e-6)
