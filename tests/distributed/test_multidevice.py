"""The optimizers on 8 devices: pmap, jit with NamedSharding, shard_map.

``tests/conftest.py`` gives the session 8 CPU devices.  Every optimizer (8
algorithms x 2 families, with options and clipping) is run on 8 devices and
compared with a single-device run of the same optimizer fed the aggregated
gradients, computed independently on the host (numpy, float64, rounded once
to float32):

1. ``jax.pmap`` of ``chain(aggregate_gradients("i", reduction), opt)``;
   ``reduction`` "sum" and "mean"; every step; the 8 replicas must stay
   bit-identical (params and every state leaf).
2. ``jax.jit`` on parameters placed with ``NamedSharding`` over a ``Mesh``:
   every slot is sharded exactly like its parameter, after ``init`` and after
   every ``update``; iterations and hyperparameters are replicated over the
   mesh.
3. ``jax.shard_map`` with ``aggregate_gradients`` over the mesh axis (one
   reduction per optimizer, so each algorithm is run with both).
4. ``set_hyperparams`` on a pmap-replicated state: shape, dtype and sharding
   kept, the new values take effect, and the pmapped step is not retraced.

Tolerance (``RTOL = 1e-4``, float32).  The multi-device runs are not expected
to be bit-equal to the single-device run: ``psum`` adds the 8 per-device
gradients in an order of its own (a tree, a ring, ...), where the reference
adds them exactly and rounds once, so the aggregated gradient may differ by up
to ``7 * eps32 * sum_i |g_i|`` per element, a relative ~1e-6 for these
gradients; clipping norms computed over shards (case 2) reorder sums the same
way; and XLA compiles the pmapped / partitioned program with fusions of its
own (FMA contraction), which can move each rounding.  Parameters are compared
relative to the distance they moved (max over the leaf of ``|p_ref - p_0|``,
~0.1-1 here), so one ulp of a parameter of magnitude ~2 already counts
~1e-6; over ``STEPS = 20`` steps, one such difference per step gives
~2e-5 at worst, and 1e-4 leaves a margin over that (observed worst: 1.0e-5,
legacy Adamax under pmap; state leaves <= 7e-7 of their magnitude).  Float
state leaves are compared relative to their magnitude; integer leaves
(iterations) and the hyperparameters must be exactly equal.
``test_tolerance_is_discriminating`` shows that per-replica clipping or the
other reduction misses this tolerance by orders of magnitude.

Compiled programs are cached per optimizer and shared by the tests (the
single-device reference serves all four parts) to keep the runtime short.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxopt_keras as jk
from jaxopt_keras import OptimizerState
from jaxopt_keras.core.hyperparams import Hyperparams

N_DEV = 8
STEPS = 20
RTOL = 1e-4
REDUCTIONS = ("sum", "mean")

# --------------------------------------------------------------------------
# The optimizers: every algorithm in both families, with options and clipping.
# --------------------------------------------------------------------------

CASES = {
    "current.sgd": (jk.sgd, dict(learning_rate=0.05, momentum=0.9, nesterov=True, clipnorm=1.0)),
    "current.adam": (jk.adam, dict(learning_rate=0.01, amsgrad=True, global_clipnorm=1.0)),
    "current.adamax": (jk.adamax, dict(learning_rate=0.01, clipvalue=0.5)),
    "current.nadam": (jk.nadam, dict(learning_rate=0.01, clipnorm=1.0)),
    "current.adagrad": (jk.adagrad, dict(learning_rate=0.1, global_clipnorm=2.0)),
    "current.adadelta": (jk.adadelta, dict(learning_rate=1.0)),
    "current.rmsprop": (jk.rmsprop, dict(learning_rate=0.01, momentum=0.5, centered=True, clipnorm=1.0)),
    "current.ftrl": (
        jk.ftrl,
        dict(
            learning_rate=0.1,
            l2_regularization_strength=0.01,
            l2_shrinkage_regularization_strength=0.01,
            beta=0.1,
            global_clipnorm=1.0,
        ),
    ),
    "legacy.sgd": (jk.legacy.sgd, dict(learning_rate=0.05, momentum=0.9, decay=0.01, global_clipnorm=1.0)),
    "legacy.adam": (jk.legacy.adam, dict(learning_rate=0.01, amsgrad=True, decay=0.01, clipnorm=1.0)),
    "legacy.adamax": (jk.legacy.adamax, dict(learning_rate=0.01, global_clipnorm=1.0)),
    "legacy.nadam": (jk.legacy.nadam, dict(learning_rate=0.01, clipvalue=1.0)),
    "legacy.adagrad": (jk.legacy.adagrad, dict(learning_rate=0.1, clipnorm=1.0)),
    # Legacy clipping composes: clipvalue, then clipnorm.
    "legacy.adadelta": (jk.legacy.adadelta, dict(learning_rate=1.0, clipvalue=0.5, clipnorm=1.0)),
    "legacy.rmsprop": (
        jk.legacy.rmsprop,
        dict(learning_rate=0.01, momentum=0.9, centered=True, decay=0.01, global_clipnorm=1.0),
    ),
    "legacy.ftrl": (jk.legacy.ftrl, dict(learning_rate=0.1, l2_regularization_strength=0.01, beta=0.1, clipnorm=1.0)),
}
CASE_IDS = list(CASES)


def make_opt(case: str) -> jk.GradientTransformation:
    factory, kwargs = CASES[case]
    return factory(**kwargs)


def test_every_optimizer_is_covered():
    families = {c.split(".")[0] for c in CASES}
    algorithms = {c.split(".")[1] for c in CASES}
    assert families == {"legacy", "current"}
    assert algorithms == {"sgd", "adam", "adamax", "nadam", "adagrad", "adadelta", "rmsprop", "ftrl"}
    assert len(CASES) == 16
    assert jax.device_count() >= N_DEV, "tests/conftest.py should have created 8 CPU devices"


# --------------------------------------------------------------------------
# Parameters and gradients (host numpy, float32).
# --------------------------------------------------------------------------

# Leading axis divisible by 8 -> sharded along it; one leaf sharded along its
# second axis; the others replicated (3 and 5 are not divisible by 8).
SHAPES = {"w": (16, 4), "k": (3, 8), "b": (8,), "s": (3,), "m": (5, 2)}
SPECS = {"w": P("d"), "k": P(None, "d"), "b": P("d"), "s": P(), "m": P()}

_rng = np.random.default_rng(0)
PARAMS0 = {k: _rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
# Per-device gradients: a common part plus a per-device part, so the
# aggregate is neither tiny nor dominated by one device.
DEVICE_GRADS = [
    {
        k: (_rng.normal(size=s) + 0.75 * _rng.normal(size=(N_DEV,) + s)).astype(np.float32)
        for k, s in SHAPES.items()
    }
    for _ in range(STEPS)
]


def _aggregate(grads: dict, reduction: str) -> dict:
    """The exact sum / mean over devices, rounded once to float32."""
    reduce = np.sum if reduction == "sum" else np.mean
    return {k: reduce(g.astype(np.float64), axis=0).astype(np.float32) for k, g in grads.items()}


AGGREGATED = {r: [_aggregate(g, r) for g in DEVICE_GRADS] for r in REDUCTIONS}


def to_host(tree: Any) -> Any:
    return jax.tree_util.tree_map(np.asarray, tree)


def make_step(tx: jk.GradientTransformation):
    """One training step: ``update`` (Ftrl reads params) then ``apply_updates``."""

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return jk.apply_updates(params, updates), state

    return step


# --------------------------------------------------------------------------
# The single-device reference.
# --------------------------------------------------------------------------


@functools.cache
def reference_step(case: str):
    return jax.jit(make_step(make_opt(case)))


@functools.cache
def reference(case: str, reduction: str) -> tuple:
    """Host copies of (params, state) after each of the STEPS single-device steps."""
    opt = make_opt(case)
    step = reference_step(case)
    params = jax.tree_util.tree_map(jnp.asarray, PARAMS0)
    state = opt.init(params)
    out = []
    for t in range(STEPS):
        params, state = step(params, state, AGGREGATED[reduction][t])
        out.append((to_host(params), to_host(state)))
    return tuple(out)


# --------------------------------------------------------------------------
# Comparisons.
# --------------------------------------------------------------------------


def _max_abs(x) -> float:
    return float(np.max(np.abs(x))) if np.size(x) else 0.0


def params_error(actual: dict, expected: dict) -> float:
    """max over leaves of |actual - expected| / (distance the leaf moved)."""
    worst = 0.0
    for k in expected:
        a, e = np.asarray(actual[k]), np.asarray(expected[k])
        assert a.shape == e.shape and a.dtype == e.dtype, k
        moved = _max_abs(e.astype(np.float64) - PARAMS0[k])
        assert moved > 0, f"{k} did not move: the test would prove nothing"
        worst = max(worst, _max_abs(a.astype(np.float64) - e) / moved)
    return worst


def assert_params_close(actual: dict, expected: dict, rtol: float = RTOL, where: str = "") -> None:
    err = params_error(actual, expected)
    assert err <= rtol, f"{where}: params differ by {err:.3g} of the distance moved (rtol {rtol})"


def optimizer_states(state: Any) -> list[OptimizerState]:
    """The OptimizerState(s) inside a chain's state; checks nothing else holds leaves."""
    found = jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, OptimizerState))
    assert found and all(isinstance(s, OptimizerState) for s in found), found
    return found


def assert_state_close(actual: Any, expected: Any, rtol: float = RTOL, where: str = "") -> None:
    """Same structure; integers and hyperparameters exact; float leaves to rtol."""
    assert jax.tree_util.tree_structure(actual) == jax.tree_util.tree_structure(expected), where
    for sa, se in zip(optimizer_states(actual), optimizer_states(expected)):
        np.testing.assert_array_equal(sa.iterations, se.iterations, err_msg=f"{where}: iterations")
        assert dict(sa.hyperparams).keys() == dict(se.hyperparams).keys()
        for name in se.hyperparams:
            a, e = np.asarray(sa.hyperparams[name]), np.asarray(se.hyperparams[name])
            assert a.dtype == e.dtype and a.tobytes() == e.tobytes(), f"{where}: hyperparameter {name}"
        floats = jax.tree_util.tree_leaves_with_path((sa.slots, sa.scalars))
        expected_floats = jax.tree_util.tree_leaves((se.slots, se.scalars))
        assert len(floats) == len(expected_floats) > 0
        for (path, a), e in zip(floats, expected_floats):
            a, e = np.asarray(a), np.asarray(e)
            name = f"{where}: {jax.tree_util.keystr(path)}"
            assert a.shape == e.shape and a.dtype == e.dtype, name
            err = _max_abs(a.astype(np.float64) - e)
            assert err <= rtol * _max_abs(e), f"{name}: differs by {err:.3g}, magnitude {_max_abs(e):.3g}"


def assert_replicas_identical(tree: Any, where: str = "") -> None:
    """Every leaf has a leading device axis whose 8 entries are bit-identical."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    assert leaves
    for path, leaf in leaves:
        leaf = np.asarray(leaf)
        assert leaf.shape[0] == N_DEV, (where, jax.tree_util.keystr(path), leaf.shape)
        first = leaf[0].tobytes()
        for r in range(1, N_DEV):
            assert leaf[r].tobytes() == first, f"{where}: replica {r} of {jax.tree_util.keystr(path)} differs"


def replica(tree: Any, r: int = 0) -> Any:
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[r], tree)


# --------------------------------------------------------------------------
# 1. pmap.
# --------------------------------------------------------------------------

PMAP_AXIS = "i"
# The sharding pmap gives its outputs; inputs are placed with it so that every
# call of a pmapped step sees the same argument shardings (no retrace).
PMAP_SHARDING = NamedSharding(Mesh(np.array(jax.devices()[:N_DEV]), (PMAP_AXIS,)), P(PMAP_AXIS))


def replicate(tree: Any) -> Any:
    """A host tree stacked 8 times along a new leading axis, placed for pmap."""
    return jax.device_put(jax.tree_util.tree_map(lambda x: np.stack([x] * N_DEV), tree), PMAP_SHARDING)


def per_device(tree: Any) -> Any:
    return jax.device_put(tree, PMAP_SHARDING)


class PmapProgram(NamedTuple):
    init: Any
    step: Any
    traces: list  # one entry per trace of the step


@functools.cache
def pmap_program(case: str, reduction: str, tx: jk.GradientTransformation | None = None) -> PmapProgram:
    tx = tx or jk.chain(jk.aggregate_gradients(PMAP_AXIS, reduction), make_opt(case))
    step = jax.jit(make_step(tx))
    traces: list = []

    def counted_step(params, state, grads):
        # Runs when pmap traces (the inner jit has its own, abstract, cache).
        traces.append(1)
        return step(params, state, grads)

    return PmapProgram(
        init=jax.pmap(tx.init, axis_name=PMAP_AXIS),
        step=jax.pmap(counted_step, axis_name=PMAP_AXIS),
        traces=traces,
    )


def run_pmap(prog: PmapProgram, steps: int, on_step=None):
    params = replicate(PARAMS0)
    state = prog.init(params)
    for t in range(steps):
        params, state = prog.step(params, state, per_device(DEVICE_GRADS[t]))
        if on_step is not None:
            params, state = on_step(t, params, state)
    return params, state


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASE_IDS)
def test_pmap_matches_single_device(case, reduction):
    ref = reference(case, reduction)

    def check(t, params, state):
        host = to_host(params)
        assert_replicas_identical(host, f"step {t + 1} params")
        assert_params_close(replica(host), ref[t][0], where=f"step {t + 1}")
        return params, state

    params, state = run_pmap(pmap_program(case, reduction), STEPS, check)
    state = to_host(state)
    assert_replicas_identical(state, "final state")
    aggregate_state, opt_state = replica(state)  # chain(aggregate_gradients, opt)
    assert aggregate_state == jk.EmptyState()
    assert_state_close(opt_state, ref[-1][1], where="final state")
    assert int(optimizer_states(replica(state))[0].iterations) == STEPS


def test_tolerance_is_discriminating():
    """The comparison above would catch clipping before aggregation or the wrong reduction."""
    case = "current.sgd"  # clipnorm=1.0: per-tensor norms of the summed grads are ~10.
    ref_sum = reference(case, "sum")
    factory, kwargs = CASES[case]
    unclipped = factory(**{k: v for k, v in kwargs.items() if k != "clipnorm"})
    clip_first = jk.chain(jk.clip_by_norm(1.0), jk.aggregate_gradients(PMAP_AXIS, "sum"), unclipped)
    params, _ = run_pmap(pmap_program("clip-before-aggregation", "sum", clip_first), 5)
    assert params_error(replica(to_host(params)), ref_sum[4][0]) > 100 * RTOL

    params, _ = run_pmap(pmap_program(case, "sum"), 5)
    assert params_error(replica(to_host(params)), ref_sum[4][0]) <= RTOL
    assert params_error(replica(to_host(params)), reference(case, "mean")[4][0]) > 100 * RTOL


# --------------------------------------------------------------------------
# 2. jit with NamedSharding.
# --------------------------------------------------------------------------

MESH = Mesh(np.array(jax.devices()[:N_DEV]), ("d",))
PARAM_SHARDINGS = {k: NamedSharding(MESH, spec) for k, spec in SPECS.items()}
REPLICATED = NamedSharding(MESH, P())


def assert_sharded_like_params(state: Any, params: dict, where: str, scalars_replicated: bool = True) -> None:
    """Slots sharded as their parameter; iterations/hyperparameters/scalars replicated on the mesh."""
    n_checked = 0
    for s in optimizer_states(state):
        for field in s.slots._fields:
            tree = getattr(s.slots, field)
            if tree is None:
                continue
            assert jax.tree_util.tree_structure(tree) == jax.tree_util.tree_structure(params)
            for k, p in params.items():
                leaf = tree[k]
                assert leaf.sharding.is_equivalent_to(p.sharding, p.ndim), (
                    f"{where}: slot {field}[{k!r}] is {leaf.sharding}, its parameter {p.sharding}"
                )
                n_checked += 1
        if scalars_replicated:
            scalar_leaves = [("iterations", s.iterations), *s.hyperparams.items(), *s.scalars.items()]
            for name, leaf in scalar_leaves:
                assert leaf.shape == ()
                assert leaf.sharding.is_equivalent_to(REPLICATED, 0), f"{where}: {name} is {leaf.sharding}"
                n_checked += 1
    if scalars_replicated:
        assert n_checked == len(jax.tree_util.tree_leaves(state)), "some state leaf was not checked"


@functools.cache
def sharded_programs(case: str):
    opt = make_opt(case)
    return jax.jit(opt.init), jax.jit(make_step(opt))


@pytest.mark.parametrize("case", CASE_IDS)
def test_jit_named_sharding(case):
    ref = reference(case, "sum")
    init, step = sharded_programs(case)
    params = jax.device_put(PARAMS0, PARAM_SHARDINGS)
    for k, p in params.items():  # the layout under test really is sharded
        assert len(p.sharding.device_set) == N_DEV and p.sharding.is_fully_replicated == (SPECS[k] == P())

    # Eager init keeps the slots with their parameters too.
    assert_sharded_like_params(make_opt(case).init(params), params, "eager init", scalars_replicated=False)

    state = init(params)
    assert_sharded_like_params(state, params, "jit(init)")
    for t in range(STEPS):
        grads = jax.device_put(AGGREGATED["sum"][t], PARAM_SHARDINGS)
        params, state = step(params, state, grads)
        for k, p in params.items():
            assert p.sharding.is_equivalent_to(PARAM_SHARDINGS[k], p.ndim), (t, k, p.sharding)
        assert_sharded_like_params(state, params, f"update {t + 1}")
        assert_params_close(to_host(params), ref[t][0], where=f"step {t + 1}")
    assert_state_close(to_host(state), ref[-1][1], where="final state")


# --------------------------------------------------------------------------
# 3. shard_map.
# --------------------------------------------------------------------------


@functools.cache
def shard_map_program(case: str, reduction: str):
    tx = jk.chain(jk.aggregate_gradients("d", reduction), make_opt(case))
    step = make_step(tx)

    def local_step(params, state, grads):
        grads = jax.tree_util.tree_map(lambda g: g[0], grads)  # this device's (1, ...) block
        return step(params, state, grads)

    # out_specs P(): shard_map (check_vma) verifies the outputs are the same on
    # every device, which holds because the gradients were all-reduced.
    mapped = jax.shard_map(local_step, mesh=MESH, in_specs=(P(), P(), P("d")), out_specs=(P(), P()))
    return tx, jax.jit(mapped)


# One reduction per optimizer (pmap covers both for all): each algorithm gets
# "sum" in one family and "mean" in the other.
SHARD_MAP_CASES = [(case, REDUCTIONS[i % 2]) for i, case in enumerate(CASE_IDS)]


@pytest.mark.parametrize("case,reduction", SHARD_MAP_CASES)
def test_shard_map_matches_single_device(case, reduction):
    ref = reference(case, reduction)
    tx, step = shard_map_program(case, reduction)
    params = jax.device_put(PARAMS0, REPLICATED)
    state = tx.init(params)
    for t in range(STEPS):
        grads = jax.device_put(DEVICE_GRADS[t], NamedSharding(MESH, P("d")))
        params, state = step(params, state, grads)
        assert_params_close(to_host(params), ref[t][0], where=f"step {t + 1}")
    assert_state_close(to_host(state)[1], ref[-1][1], where="final state")


# --------------------------------------------------------------------------
# 4. set_hyperparams on a pmap-replicated state.
# --------------------------------------------------------------------------

# Steps after which the hyperparameters are changed, and how: every settable
# hyperparameter is scaled, the new value given as a Python float, a numpy
# float64, then a 0-d jax array.
CHANGES = {
    3: lambda v: float(v) * 0.5,
    5: lambda v: np.float64(float(v) * 0.75),
    7: lambda v: jnp.asarray(float(v) * 1.25, jnp.float32),
}
HP_STEPS = 9


def _new_values(state, fn) -> dict:
    """fn applied to every settable hyperparameter (first replica / single device)."""
    return {k: fn(np.asarray(v).reshape(-1)[0]) for k, v in jk.get_hyperparams(state).items()}


@pytest.mark.parametrize("case", CASE_IDS)
def test_set_hyperparams_under_pmap(case):
    prog = pmap_program(case, "sum")

    # Single-device reference making the same changes.
    step = reference_step(case)
    ref_params = jax.tree_util.tree_map(jnp.asarray, PARAMS0)
    ref_state = make_opt(case).init(ref_params)
    ref_traj = []
    for t in range(HP_STEPS):
        ref_params, ref_state = step(ref_params, ref_state, AGGREGATED["sum"][t])
        if t in CHANGES:
            ref_state = jk.set_hyperparams(ref_state, **_new_values(ref_state, CHANGES[t]))
        ref_traj.append((to_host(ref_params), to_host(ref_state)))

    steady = []

    def change(t, params, state):
        if t == 1:  # params/state now come from the step itself: steady-state trace count.
            steady.append(len(prog.traces))
        assert_params_close(replica(to_host(params)), ref_traj[t][0], where=f"step {t + 1}")
        if t not in CHANGES:
            return params, state
        values = _new_values(state, CHANGES[t])
        old = [s.hyperparams for s in optimizer_states(state)]
        new_state = jk.set_hyperparams(state, **values)
        new = [s.hyperparams for s in optimizer_states(new_state)]
        expected = [s.hyperparams for s in optimizer_states(ref_traj[t][1])]
        for h_old, h_new, h_ref in zip(old, new, expected):
            assert isinstance(h_new, Hyperparams) and h_new.keys() == h_old.keys()
            for name in h_old:
                o, n = h_old[name], h_new[name]
                assert n.shape == o.shape == (N_DEV,) and n.dtype == o.dtype, (name, n.shape, n.dtype)
                assert n.sharding.is_equivalent_to(o.sharding, 1), (name, n.sharding, o.sharding)
                host = np.asarray(n)
                want = np.asarray(h_ref[name])  # single-device value, derived ones included
                assert all(host[r].tobytes() == want.tobytes() for r in range(N_DEV)), (name, host, want)
        if "learning_rate" in values:  # an independent check of one value
            lr = np.asarray(jk.get_hyperparams(new_state)["learning_rate"])
            np.testing.assert_array_equal(lr, np.full(N_DEV, np.float32(float(np.asarray(values["learning_rate"])))))
        return params, new_state

    params, state = run_pmap(prog, HP_STEPS, change)
    assert len(steady) == 1
    assert len(prog.traces) == steady[0], "changing hyperparameters retraced the pmapped step"

    host_params, host_state = to_host(params), to_host(state)
    assert_replicas_identical(host_state, "final state")
    assert_params_close(replica(host_params), ref_traj[-1][0], where="final")
    assert_state_close(replica(host_state)[1], ref_traj[-1][1], where="final state")
    # The changes took effect: without them the run ends elsewhere.
    assert params_error(replica(host_params), reference(case, "sum")[HP_STEPS - 1][0]) > 100 * RTOL
