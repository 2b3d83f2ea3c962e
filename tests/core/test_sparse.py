"""Row-sparse gradients (``core/sparse.py``): structure, padding, deduplication,
the optimizers' row updates, clipping.  Aggregation across devices is
``tests/distributed/test_sparse_aggregation.py``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras.core.sparse import IndexedSlices, deduplicate

ROWS, WIDTH = 10, 3

# Optimizers whose TF sparse kernels touch only the indexed rows.
ROWS_ONLY = [
    ("legacy.sgd", jk.legacy.sgd, {}),
    ("legacy.sgd(momentum)", jk.legacy.sgd, dict(momentum=0.9)),
    ("legacy.adamax", jk.legacy.adamax, {}),
    ("legacy.nadam", jk.legacy.nadam, {}),
    ("legacy.adagrad", jk.legacy.adagrad, {}),
    ("legacy.adadelta", jk.legacy.adadelta, {}),
    ("legacy.rmsprop", jk.legacy.rmsprop, {}),
    ("legacy.rmsprop(momentum)", jk.legacy.rmsprop, dict(momentum=0.5, centered=True)),
    ("legacy.ftrl", jk.legacy.ftrl, {}),
    ("current.adagrad", jk.adagrad, {}),
    ("current.rmsprop", jk.rmsprop, {}),
]


def _slices(idx, values=None):
    idx = jnp.asarray(idx, jnp.int32)
    if values is None:
        values = jnp.arange(idx.shape[0] * WIDTH, dtype=jnp.float32).reshape(-1, WIDTH) / 10 + 0.5
    return IndexedSlices(values, idx, (ROWS, WIDTH))


@pytest.mark.parametrize("name,factory,kw", ROWS_ONLY, ids=[n for n, _, _ in ROWS_ONLY])
def test_rows_only_optimizers_return_row_updates_and_leave_other_rows(name, factory, kw):
    t = factory(learning_rate=0.1, **kw)
    table = jnp.linspace(-1, 1, ROWS * WIDTH).reshape(ROWS, WIDTH)
    state = t.init([table])
    updates, new_state = jax.jit(lambda s, g: t.update([g], s, [table]))(state, _slices([2, 7, 2]))
    assert isinstance(updates[0], IndexedSlices)  # no dense work on untouched rows
    new_table = jk.apply_updates([table], updates)[0]
    untouched = np.setdiff1d(np.arange(ROWS), [2, 7])
    np.testing.assert_array_equal(np.asarray(new_table)[untouched], np.asarray(table)[untouched])
    assert not np.array_equal(np.asarray(new_table)[[2, 7]], np.asarray(table)[[2, 7]])
    inner = new_state[-1] if isinstance(new_state, tuple) and not hasattr(new_state, "_fields") else new_state
    for field in inner.slots._fields:
        before, after = getattr(state.slots, field), getattr(inner.slots, field)
        if before is None:
            continue
        if name in ("legacy.nadam", "legacy.rmsprop"):  # these decay their moments everywhere
            continue
        np.testing.assert_array_equal(np.asarray(after[0])[untouched], np.asarray(before[0])[untouched])


def test_deduplicate_sums_repeats_and_pads():
    g = _slices([3, 1, 3, 3, ROWS, 0])
    d = deduplicate(g)
    assert d.indices.shape == g.indices.shape  # static size under jit
    dense = np.zeros((ROWS, WIDTH), np.float32)
    for i, v in zip(np.asarray(g.indices), np.asarray(g.values)):
        if i < ROWS:
            dense[i] += v
    np.testing.assert_allclose(np.asarray(d.to_dense()), dense, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(d.indices)[:3], [0, 1, 3])
    assert np.all(np.asarray(d.indices)[3:] == ROWS)
    np.testing.assert_allclose(np.asarray(g.to_dense()), dense, rtol=1e-6)


@pytest.mark.parametrize("factory", [jk.legacy.adam, jk.adagrad, jk.legacy.ftrl, jk.rmsprop, jk.nadam])
def test_padding_changes_nothing(factory):
    t = factory(learning_rate=0.1)
    table = jnp.linspace(-1, 1, ROWS * WIDTH).reshape(ROWS, WIDTH)
    plain = _slices([4, 1, 4])
    padded = IndexedSlices(
        jnp.concatenate([plain.values, jnp.full((2, WIDTH), jnp.inf)]), jnp.asarray([4, 1, 4, ROWS, ROWS], jnp.int32), (ROWS, WIDTH)
    )
    results = []
    for g in (plain, padded):
        state = t.init([table])
        p = [table]
        for _ in range(3):
            u, state = t.update([g], state, p)
            p = jk.apply_updates(p, u)
        results.append(np.asarray(p[0]))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6, atol=1e-7)
    assert np.isfinite(results[1]).all()


def test_sparse_and_dense_agree_where_keras_densifies():
    """Current Ftrl has no sparse path in Keras: a sparse gradient equals its dense form."""
    t = jk.ftrl(learning_rate=0.1)
    table = jnp.linspace(-1, 1, ROWS * WIDTH).reshape(ROWS, WIDTH)
    g = _slices([5, 5, 0])
    u_sparse, _ = t.update([g], t.init([table]), [table])
    u_dense, _ = t.update([g.to_dense()], t.init([table]), [table])
    np.testing.assert_array_equal(np.asarray(u_sparse[0]), np.asarray(u_dense[0]))


def test_clipping_sees_the_values_and_ignores_padding():
    g = IndexedSlices(jnp.asarray([[3.0, 0.0, 0.0], [0.0, 4.0, 0.0], [100.0, 0.0, 0.0]]), jnp.asarray([1, 2, ROWS]), (ROWS, WIDTH))
    out, _ = jk.clip_by_norm(1.0).update([g], jk.EmptyState())
    np.testing.assert_allclose(np.asarray(out[0].values)[:2], [[0.6, 0, 0], [0, 0.8, 0]], rtol=1e-6)
    np.testing.assert_allclose(float(jk.global_norm([g])), 5.0, rtol=1e-6)
