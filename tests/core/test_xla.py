"""The XLA workarounds change how a step compiles, never a value."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_keras.core.xla import after, fused_copy, opaque_one


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_opaque_one_is_one_for_every_count(dtype):
    info = np.iinfo(dtype)
    counts = np.array([0, 1, 2, -1, -2, info.min, info.max, info.min + 1], dtype)
    with jax.enable_x64(dtype == np.int64):
        ones = jax.jit(jax.vmap(lambda n: opaque_one(n, jnp.float32)))(counts)
        assert ones.dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(ones), np.ones(len(counts), np.float32))


@pytest.mark.parametrize("dtype", [np.float16, jnp.bfloat16, np.float32, np.float64])
def test_fused_copy_is_the_same_bits(dtype):
    info = jnp.finfo(dtype)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, float(info.tiny), float(info.tiny) / 4, -float(info.max), 1.5]
    x = np.concatenate([np.array(special), np.random.default_rng(0).standard_normal(1000)]).astype(dtype)
    with jax.enable_x64(dtype == np.float64):
        out = jax.jit(lambda x, n: fused_copy(x, opaque_one(n, x.dtype)))(jnp.asarray(x), np.int32(7))
        out = np.asarray(out)
    assert out.dtype == x.dtype
    bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize]
    finite = ~np.isnan(x.astype(np.float64))
    np.testing.assert_array_equal(out[finite].view(bits), x[finite].view(bits))
    assert np.isnan(out[~finite].astype(np.float64)).all()


def _two_slots(order: bool):
    """A donated step where ``b``'s new value reads ``a``'s old one, and ``a`` is overwritten."""

    def step(a, b, g):
        new_b = b + jnp.sqrt(a + g * g) / (a + 1.0)
        inc = g * g
        return a + (after(inc, new_b) if order else inc), new_b

    return step


def test_after_lets_a_slot_be_written_in_place():
    a, b, g = (jnp.full((512, 512), v, jnp.float32) for v in (0.5, 0.25, 0.1))
    temps = {
        order: jax.jit(_two_slots(order), donate_argnums=(0, 1)).lower(a, b, g).compile().memory_analysis().temp_size_in_bytes
        for order in (False, True)
    }
    assert temps[False] >= a.nbytes  # XLA copies the old `a`: it cannot order the two loops
    assert temps[True] < a.nbytes // 10


@pytest.mark.parametrize("dtype", [jnp.bfloat16, np.float32, np.float64])
def test_after_changes_no_value(dtype):
    rng = np.random.default_rng(1)
    a, b, g = (rng.standard_normal((33, 7)).astype(dtype) for _ in range(3))
    b[0, 0] = np.nan  # any bits of the element it reads
    with jax.enable_x64(dtype == np.float64):
        want = jax.jit(_two_slots(False))(a, b, g)
        got = jax.jit(_two_slots(True))(a, b, g)
        for w, o in zip(want, got):
            np.testing.assert_array_equal(np.asarray(o), np.asarray(w))
        empty = jnp.zeros((0, 3), dtype)
        np.testing.assert_array_equal(after(jnp.asarray(a), empty), a)
