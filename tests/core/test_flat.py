"""The flat layout: same numbers as the tree layout, one buffer per dtype."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from helpers import all_factories
from jaxopt_keras import registry
from jaxopt_keras.keras.factories import make_factory

PARAMS = {
    "dense": {"kernel": jnp.linspace(-1, 1, 12).reshape(3, 4), "bias": jnp.zeros(4)},
    "scale": jnp.asarray(1.5),
    "half": jnp.linspace(0, 1, 5, dtype=jnp.bfloat16),
}


def _grads(params, k):
    return jax.tree.map(lambda p: (jnp.sin(p.astype(jnp.float32) * (k + 2)) + 0.1).astype(p.dtype), params)


FACTORIES = all_factories() + [("current.adamw", jk.adamw), ("current.lion", jk.lion)]


@pytest.mark.parametrize("name,factory", FACTORIES, ids=[n for n, _ in FACTORIES])
def test_flat_layout_computes_what_the_tree_layout_does(name, factory):
    t = factory(learning_rate=0.05, global_clipnorm=1.0)
    layout = jk.flat.Layout(PARAMS)
    assert layout.dtypes == (np.dtype("float32"), np.dtype("bfloat16"))
    tree, flat = PARAMS, layout.ravel(PARAMS)
    ts, fs = t.init(tree), t.init(flat)
    tree_step = jax.jit(lambda p, s, g: t.update(g, s, p))
    flat_step = jax.jit(lambda p, s, g: t.update(g, s, p))
    for k in range(4):
        g = _grads(tree, k)
        u, ts = tree_step(tree, ts, g)
        tree = jk.apply_updates(tree, u)
        fu, fs = flat_step(flat, fs, layout.ravel(g))
        flat = jk.apply_updates(flat, fu)
        assert isinstance(flat, jk.flat.FlatTree)
    for a, b in zip(jax.tree.leaves(layout.unravel(flat)), jax.tree.leaves(tree)):
        assert a.dtype == b.dtype and a.shape == b.shape
        # Same operations per element, but the global norm sums in another order
        # (one buffer vs leaf by leaf) and XLA contracts multiply-adds per
        # program: a few float32 roundings of the clip scale, carried through 4
        # steps.  bfloat16 leaves get one bfloat16 rounding of slack.
        tol = 2 ** -7 if a.dtype == jnp.bfloat16 else 4e-6
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=tol, atol=tol / 10)


def test_gradients_through_unravel_are_flat_and_the_step_stays_flat():
    layout = jk.flat.Layout(PARAMS)
    opt = jk.legacy.adam(1e-2)

    def loss(params):
        return jnp.sum(params["dense"]["kernel"] ** 2) + params["scale"] ** 2 + jnp.sum(params["half"].astype(jnp.float32))

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(flat, state):
        grads = jax.grad(lambda fp: loss(layout.unravel(fp)))(flat)
        updates, state = opt.update(grads, state, flat)
        return jk.apply_updates(flat, updates), state

    flat = layout.ravel(PARAMS)
    state = opt.init(flat)
    assert len(jax.tree.leaves(state.slots.m)) == 2  # one buffer per dtype, not per parameter
    flat, state = step(flat, state)
    assert isinstance(flat, jk.flat.FlatTree)
    # Reference: the same step on the tree.
    tstate = opt.init(PARAMS)
    u, _ = opt.update(jax.grad(loss)(PARAMS), tstate, PARAMS)
    ref = jk.apply_updates(PARAMS, u)
    for a, b in zip(jax.tree.leaves(flat.unravel()), jax.tree.leaves(ref)):
        np.testing.assert_array_max_ulp(np.asarray(a, np.float32), np.asarray(b, np.float32), maxulp=2)


def test_tensor_dependent_transforms_refuse_the_flat_layout():
    layout = jk.flat.Layout(PARAMS)
    flat = layout.ravel(PARAMS)
    with pytest.raises(ValueError, match="tensor boundaries"):
        jk.clip_by_norm(1.0).update(flat, jk.EmptyState())
    t = jk.adafactor()
    with pytest.raises(ValueError, match="cannot run on the flat layout"):
        t.update(flat, t.init(flat), flat)


def test_ravel_unravel_round_trip_and_none_leaves():
    layout = jk.flat.Layout(PARAMS)
    back = layout.unravel(layout.ravel(PARAMS))
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(PARAMS)):
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
    grads = dict(PARAMS, scale=None)
    flat = layout.ravel(grads)
    assert float(flat.unravel()["scale"]) == 0.0
    assert layout == jk.flat.Layout(PARAMS) and hash(layout) == hash(jk.flat.Layout(PARAMS))


def test_a_tree_or_flat_tree_of_another_layout_is_refused():
    """Raveling a tree whose leaves have other shapes than the layout's, or
    unraveling buffers of other lengths, would misplace elements silently
    (slices of the wrong spans, or a buffer longer than its layout says)."""
    layout = jk.flat.Layout(PARAMS)
    wider = dict(PARAMS, dense={"kernel": jnp.ones((5, 4)), "bias": jnp.zeros(4)})
    reshaped = dict(PARAMS, dense={"kernel": jnp.ones(12), "bias": jnp.zeros(4)})
    for tree, shape in [(wider, r"\(5, 4\)"), (reshaped, r"\(12,\)")]:
        for ravel in (layout.ravel, jax.jit(layout.ravel)):
            with pytest.raises(ValueError, match=rf"leaf at 'dense/kernel' has shape {shape}.*holds shape \(3, 4\) there"):
                ravel(tree)
    with pytest.raises(ValueError, match=r"not of the flat layout's structure.*Dict key mismatch"):
        layout.ravel({"dense": PARAMS["dense"], "scale": PARAMS["scale"]})
    other = jk.flat.Layout(wider).ravel(wider)
    with pytest.raises(ValueError, match=r"holds buffers of shapes \(\(17,\), \(5,\)\); this FlatTree's are \(\(25,\), \(5,\)\)"):
        layout.unravel(other)
    assert other.unravel()["dense"]["kernel"].shape == (5, 4)  # with its own layout it unravels


def test_eager_ravel_and_unravel_compile_one_program_whatever_the_leaf_count():
    """Eagerly, ravel and unravel are one program per layout, not one per leaf shape."""
    compiles: list[str] = []

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        tree = {f"p{i}": np.full((977 + i, 3), float(i), np.float32) for i in range(30)}  # shapes no other test uses
        layout = jk.flat.Layout(tree)
        flat = jax.block_until_ready(layout.ravel(tree))
        back = jax.block_until_ready(layout.unravel(flat))
        assert len(compiles) <= 2  # one ravel, one unravel (per-shape programs would be 60)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    for key, leaf in tree.items():
        np.testing.assert_array_equal(np.asarray(back[key]), leaf)


def test_ravel_into_buffers_of_another_dtype_on_the_parameters_layout():
    """Slots kept in float32 for bfloat16 parameters ravel on the parameters'
    layout (same tree, same offsets), into float32 buffers, without rounding."""
    params = {"a": jnp.ones((3, 2), jnp.bfloat16), "b": jnp.ones(4, jnp.float32), "c": jnp.ones(5, jnp.bfloat16)}
    layout = jk.flat.Layout(params)
    assert layout.dtypes == (np.dtype(jnp.bfloat16), np.dtype(np.float32))
    rng = np.random.default_rng(0)
    slots = {k: jnp.asarray(rng.standard_normal(np.shape(v)), jnp.float32) for k, v in params.items()}
    flat = layout.ravel(slots, dtypes=(np.float32, np.float32))
    assert flat.layout == layout and [b.dtype for b in flat.buffers] == [np.float32, np.float32]
    assert flat.buffers[0].shape == (11,)
    back = flat.unravel()
    for k in slots:
        assert back[k].dtype == np.float32
        np.testing.assert_array_equal(np.asarray(back[k]), np.asarray(slots[k]))  # no bfloat16 rounding
    rounded = layout.ravel(slots).unravel()  # the layout's own dtypes round
    assert rounded["a"].dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="1 dtypes given for a layout of 2 buffers"):
        layout.ravel(slots, dtypes=(np.float32,))


def test_long_buffers_are_padded_to_a_length_every_small_thread_count_divides():
    """A buffer longer than PAD_MULTIPLE elements is zero-padded to a multiple of
    it, so XLA:CPU's equal loop tasks cover it exactly (see core/flat.py); the
    leaves' slices are unchanged and the padding is zeros."""
    assert all(jk.flat.PAD_MULTIPLE % tasks == 0 for tasks in range(1, 11))
    rng = np.random.default_rng(1)
    tree = {
        "w": jnp.asarray(rng.standard_normal((101, 51)), jnp.float32),  # 5151 elements
        "b": jnp.asarray(rng.standard_normal(3), jnp.float32),
        "h": jnp.ones(7, jnp.bfloat16),  # a short buffer keeps its length
    }
    layout = jk.flat.Layout(tree)
    assert layout.used == (5154, 7)
    assert layout.sizes == (2 * jk.flat.PAD_MULTIPLE, 7)
    assert [jk.flat.padded_length(n) for n in (0, 1, 5040, 5041, 10080, 10081)] == [0, 1, 5040, 10080, 10080, 15120]
    assert "float32[5154 in 10080]" in repr(layout) and "bfloat16[7]" in repr(layout)
    flat = layout.ravel(tree)
    assert [b.shape for b in flat.buffers] == [(10080,), (7,)]
    np.testing.assert_array_equal(np.asarray(flat.buffers[0][5154:]), np.zeros(10080 - 5154, np.float32))
    for a, b in zip(jax.tree.leaves(flat.unravel()), jax.tree.leaves(tree)):
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
    slots = layout.ravel(tree, dtypes=(np.float32, np.float32))
    assert [b.shape for b in slots.buffers] == [(10080,), (7,)]


KERAS3_ON_FLAT = [
    (f"keras3.{e.function}", make_factory(e, "keras3"))
    for e in registry.entries()
    if "keras3" in e.specs and e.function not in ("adafactor", "lamb", "muon")  # these refuse the layout
]


@pytest.mark.parametrize("name,factory", FACTORIES + KERAS3_ON_FLAT, ids=[n for n, _ in FACTORIES + KERAS3_ON_FLAT])
def test_padding_stays_zero_and_leaves_the_numbers_alone(name, factory):
    """On a padded buffer every optimizer computes each leaf's elements bit for
    bit as on the leaf itself, and leaves the padding at zero (no NaN).  The
    leaf is odd and long enough (2 MiB of float32... 512 KiB) that XLA:CPU
    splits its loop on two threads unevenly: the unvectorized path, against
    the padded buffer's vectorized one."""
    rng = np.random.default_rng(2)
    tree = {"w": jnp.asarray(rng.standard_normal(131073) * 0.1, jnp.float32)}
    t = factory(learning_rate=0.05)
    layout = jk.flat.Layout(tree)
    assert layout.sizes[0] > layout.used[0]
    flat = layout.ravel(tree)
    ts, fs = t.init(tree), t.init(flat)
    tree_step = jax.jit(lambda p, s, g: t.update(g, s, p))
    flat_step = jax.jit(lambda p, s, g: t.update(g, s, p))
    for k in range(5):
        g = {"w": jnp.asarray(rng.standard_normal(131073) * 0.01, jnp.float32)}
        u, ts = tree_step(tree, ts, g)
        tree = jk.apply_updates(tree, u)
        fu, fs = flat_step(flat, fs, layout.ravel(g))
        flat = jk.apply_updates(flat, fu)
    a, b = np.asarray(flat.unravel()["w"]), np.asarray(tree["w"])
    if name == "keras3.schedule_free_adamw":
        # Its interpolations between three running values are multiply-adds
        # that LLVM contracts into FMAs differently in the vectorized loop and
        # the unvectorized one: one rounding at the parameters' scale (measured
        # 5.96e-8 with |w| <= 0.5), on elements where the terms cancel.  On an
        # even length (both loops vectorized) the bits are equal.
        np.testing.assert_allclose(a, b, rtol=0, atol=2 * np.spacing(np.abs(b).max()))
    else:
        np.testing.assert_array_equal(a, b)
    for buffer in [flat.buffers[0]] + [x.buffers[0] for x in jax.tree.leaves(fs, is_leaf=lambda x: isinstance(x, jk.flat.FlatTree)) if isinstance(x, jk.flat.FlatTree)]:
        pad = np.asarray(buffer[layout.used[0]:])
        assert np.isfinite(pad).all(), name
    np.testing.assert_array_equal(np.asarray(flat.buffers[0][layout.used[0]:]), 0.0)
