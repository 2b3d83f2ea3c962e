"""The Keras layer's packed step (``jaxopt_keras.optimizers.packed``).

Every check compares a packed run with the same run per variable (packing
switched off): the variables and the weights list must agree bit for bit,
step after step (but for the roundings of the machine's vector loops that
POSITION_ROUNDED and SLOTS_ROUNDED list, an ulp or two), so the packed step
walks the trajectory the oracle tests prove against Keras.  Each packed run
also asserts that it did pack, so a check cannot pass by never packing.
The rest of the layer's tests run a second time, as their ``pack-all``
variants, with every step packed where it can be (``tests/conftest.py``).
"""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from jaxopt_keras.core.sparse import IndexedSlices
from jaxopt_keras.optimizers import keras3 as K3
from jaxopt_keras.optimizers import packed

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "oracle"))  # the oracle's harness
from harness import SHAPES, make_problem  # noqa: E402

FAMILY_MODULES = {"legacy": O.legacy, "current": O, "keras3": K3}
PACKING = ("SGD", "Adam", "Adamax", "Nadam", "Adagrad", "Adadelta", "RMSprop", "Ftrl")
EXTRA = {"current": ("AdamW", "Lion"), "keras3": ("AdamW", "Lion", "ScheduleFreeAdamW")}
CASES = [(f, n) for f in FAMILY_MODULES for n in PACKING + EXTRA.get(f, ())]
SIZES = (3, 7, 12, 1, 40, 5, 9)  # small and distinct; some 2-D below


def _values(n: int = 9, seed: int = 0, dtypes=(np.float32,)):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        size = SIZES[i % len(SIZES)]
        shape = (size,) if i % 3 else (size, 2)
        out.append(rng.standard_normal(shape).astype(dtypes[i % len(dtypes)]))
    return out


def _grads(values, k: int):
    rng = np.random.default_rng(100 + k)
    return [jnp.asarray(rng.standard_normal(np.shape(v)).astype(np.float32) * 0.1, v.dtype) for v in values]


def _variables(values):
    return [jk.Variable(v, name=f"layer_{i}/w") for i, v in enumerate(values)]


@pytest.fixture
def packing(monkeypatch):
    """``packing(True)`` packs every optimizer below (any number and size of
    variables), ``packing(False)`` none."""

    def switch(on: bool) -> None:
        monkeypatch.setattr(packed, "PACK_MIN_VARIABLES", 1 if on else 10**9)
        monkeypatch.setattr(packed, "PACK_MAX_MEAN_SIZE", 2**62)

    return switch


def _same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _both(packing, run):
    """``run()`` per variable and packed: ``(per-variable result, packed result, the packed optimizer)``."""
    packing(False)
    per_variable, opt = run()
    assert not opt._packed
    packing(True)
    packed_result, opt = run()
    return per_variable, packed_result, opt


# Packed, the 4x5 kernel of these does not walk the per-variable step's bits
# (docs/fast_paths.md): where an element falls in a vector loop decides
# whether LLVM contracts a multiply-add of the formula, and packed, the
# kernel's elements fall elsewhere than in the kernel's own loop (2-6 of its
# 20 elements within 300 steps, an ulp or two; bit for bit with FMA off,
# --xla_cpu_max_isa=AVX).  Everything else stays exact, the scalar included.
# The slots of the kernel follow its roundings, and Adadelta's (legacy,
# Keras 3) round so themselves while the kernel stays exact: XLA computes the
# kernel's update from the slots' new values inside its own loop, apart from
# the loop that stores them (as in the Keras 3 oracle's SLOT_RTOL).  Which
# cases round so depends on the machine (its vector width and FMA), as the
# oracles' FMA_CONTRACTION does.
POSITION_ROUNDED = {("legacy", "Nadam"), ("legacy", "RMSprop"), ("current", "RMSprop"), ("keras3", "RMSprop")}
SLOTS_ROUNDED = POSITION_ROUNDED | {("legacy", "Adadelta"), ("keras3", "Adadelta")}
KERNEL = SHAPES.index((4, 5))


@pytest.mark.parametrize("family,name", CASES, ids=[f"{f}.{n}" for f, n in CASES])
def test_packed_steps_are_the_same_bits(packing, family, name):
    """Packed and per variable, every step of the oracles' problem (300 steps
    with gradient spikes and zeros, tests/oracle/harness.py) gives the same
    bits, and so do the weights at the end.  A variable of shape ``()`` keeps
    its slots as arrays of their own in the packed state, stepped in the
    packed program: as one element of a buffer's vector loop it was rounded
    otherwise than per variable, where XLA fuses its update with the step's
    scalar coefficients (Nadam's drifted by an ulp, in the three families)."""
    values, grads = make_problem(np.float32)
    grads = [[jnp.asarray(g) for g in step] for step in grads]
    cls = getattr(FAMILY_MODULES[family], name)
    scalars = tuple(i for i, v in enumerate(values) if np.ndim(v) == 0)

    def run():
        opt, vs = cls(learning_rate=0.01), _variables(values)
        trajectory = []
        for g in grads:
            opt.apply_gradients(zip(g, vs))
            trajectory.append([v.numpy() for v in vs])
        assert opt._packed == (packed.PACK_MIN_VARIABLES == 1)
        if opt._packed:
            lists = jax.tree_util.tree_leaves(opt._held, is_leaf=lambda x: isinstance(x, packed.PackedList))
            lists = [x for x in lists if isinstance(x, packed.PackedList)]
            assert all(x.where == scalars and all(np.shape(s) == () for s in x.scalars) for x in lists)
            assert all(sum(b.size for b in x.flat.buffers) == sum(np.size(v) for v in values) - len(scalars) for x in lists)
        return trajectory + [[np.asarray(w) for w in opt.get_weights()]], opt

    per_variable, packed_result, opt = _both(packing, run)
    assert not opt._packed  # get_weights read the state per variable
    rounded = (family, name) in POSITION_ROUNDED
    for step, (theirs, ours) in enumerate(zip(per_variable[:-1], packed_result[:-1])):
        for i, (x, y) in enumerate(zip(theirs, ours)):
            if rounded and i == KERNEL:  # seen: 2.4e-7 (legacy Nadam) on entries of magnitude 1-2
                np.testing.assert_allclose(y, x, rtol=0, atol=4 * np.finfo(np.float32).eps, err_msg=f"step {step}")
            else:
                np.testing.assert_array_equal(y, x, err_msg=f"step {step}, variable {i}")
    if (family, name) in SLOTS_ROUNDED:  # seen: 1.3e-6 (legacy Nadam's squared spikes), 8.4e-7 (Adadelta)
        for x, y in zip(per_variable[-1], packed_result[-1]):
            np.testing.assert_allclose(y, x, rtol=16 * np.finfo(np.float32).eps)
    else:
        _same(per_variable[-1], packed_result[-1])


@pytest.mark.parametrize(
    "family,name,kwargs",
    [
        ("current", "Adam", dict(use_ema=True, ema_overwrite_frequency=3, weight_decay=0.01, clipvalue=0.05)),
        ("current", "SGD", dict(momentum=0.9, nesterov=True, gradient_accumulation_steps=2)),
        ("keras3", "Adam", dict(amsgrad=True, loss_scale_factor=4.0, gradient_accumulation_steps=3)),
        ("keras3", "AdamW", dict(use_ema=True, weight_decay=0.1)),
        ("legacy", "Adam", dict(amsgrad=True, decay=0.01, clipvalue=0.05)),
        ("legacy", "RMSprop", dict(centered=True, momentum=0.5)),
        ("current", "Adam", dict(slot_dtype="float32")),
    ],
)
def test_packed_with_the_layer_s_options(packing, family, name, kwargs):
    values = _values(dtypes=(np.float32, jnp.bfloat16) if "slot_dtype" in kwargs else (np.float32,))
    cls = getattr(FAMILY_MODULES[family], name)

    def run():
        opt, vs = cls(learning_rate=0.05, **kwargs), _variables(values)
        out = []
        for k in range(7):
            opt.apply_gradients(zip(_grads(values, k), vs))
            out += [v.numpy() for v in vs]
        packed_now = opt._packed
        if kwargs.get("use_ema"):
            opt.finalize_variable_values(vs)
            out += [v.numpy() for v in vs]
        return out + [np.asarray(w) for w in opt.get_weights()] + [packed_now], opt

    per_variable, packed_result, _ = _both(packing, run)
    assert packed_result[-1] is True
    _same(per_variable[:-1], packed_result[:-1])


def test_a_learning_rate_schedule_and_a_callable_learning_rate(packing):
    values = _values()
    schedule = O.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    calls = []

    def lr():
        calls.append(1)
        return 0.01 * len(calls)

    def run():
        calls.clear()
        a, b = O.Adam(schedule), O.legacy.SGD(lr, momentum=0.5)
        va, vb = _variables(values), _variables(values)
        out = []
        for k in range(5):
            a.apply_gradients(zip(_grads(values, k), va))
            b.apply_gradients(zip(_grads(values, k), vb))
            out += [v.numpy() for v in va + vb]
        assert a._packed == b._packed
        return out, a

    per_variable, packed_result, _ = _both(packing, run)
    _same(per_variable, packed_result)


def test_reading_the_state_unpacks_it_and_the_next_step_packs_it_again(packing):
    values = _values()
    flags: list[bool] = []

    def run():
        flags.clear()
        opt, vs = O.Adam(0.05), _variables(values)
        for k in range(3):
            opt.apply_gradients(zip(_grads(values, k), vs))
        flags.append(opt._packed)
        out = [np.asarray(x) for x in jax.tree_util.tree_leaves(opt.state)] + [int(opt.iterations)]
        flags.append(opt._packed)
        out.append(opt.get_slot(vs[4], "m").numpy())
        opt.apply_gradients(zip(_grads(values, 3), vs))
        flags.append(opt._packed)
        return out + [v.numpy() for v in vs], opt

    per_variable, packed_result, _ = _both(packing, run)
    assert flags == [True, False, True]  # packed, unpacked by the read, packed again
    _same(per_variable, packed_result)
    opt, vs = O.Adam(0.05), _variables(values)
    opt.apply_gradients(zip(_grads(values, 0), vs))
    fresh = O.Adam(0.05)
    fresh.build(_variables(values))
    assert jax.tree_util.tree_structure(opt.state) == jax.tree_util.tree_structure(fresh.state)  # per variable


def test_set_weights_assign_and_iterations_between_packed_steps(packing):
    values = _values()

    def run():
        opt, vs = O.legacy.Adam(0.05), _variables(values)
        opt.apply_gradients(zip(_grads(values, 0), vs))
        opt.apply_gradients(zip(_grads(values, 1), vs))
        weights = opt.get_weights()
        for k in range(2, 4):
            opt.apply_gradients(zip(_grads(values, k), vs))
        opt.set_weights(weights)  # back two steps
        vs[2].assign(np.full(np.shape(values[2]), 0.5, np.float32))
        opt.apply_gradients(zip(_grads(values, 4), vs))
        opt.iterations.assign(10)
        opt.apply_gradients(zip(_grads(values, 5), vs))
        flags.append(opt._packed)
        return [v.numpy() for v in vs] + [np.asarray(w) for w in opt.get_weights()], opt

    flags: list[bool] = []
    per_variable, packed_result, _ = _both(packing, run)
    assert flags == [False, True]
    _same(per_variable, packed_result)


def test_legacy_variables_added_after_packed_steps(packing):
    values = _values(12)

    def run():
        opt, vs = O.legacy.RMSprop(0.05, momentum=0.5), _variables(values)
        first, rest = vs[:7], vs[7:]
        for k in range(3):
            opt.apply_gradients(zip(_grads(values[:7], k), first))
        for k in range(3, 6):
            opt.apply_gradients(zip(_grads(values, k), vs))
        assert len(opt.get_weights()) == 1 + 2 * 12
        return [v.numpy() for v in vs] + [np.asarray(w) for w in opt.get_weights()], opt

    per_variable, packed_result, _ = _both(packing, run)
    _same(per_variable, packed_result)


def _constrained(vs):
    vs[0].constraint = lambda x: jnp.clip(x, -0.1, 0.1)


@pytest.mark.parametrize(
    "what",
    ["a None gradient", "a sparse gradient", "a gradient of another dtype", "a constraint", "clipnorm",
     "global_clipnorm", "exclude_from_weight_decay", "Lamb", "Adafactor", "sharded variables"],
)
def test_what_does_not_pack_steps_per_variable(packing, what):
    values = _values(8)

    def run():
        opt = {
            "clipnorm": lambda: O.Adam(0.05, clipnorm=0.1),
            "global_clipnorm": lambda: O.Adam(0.05, global_clipnorm=0.1),
            "exclude_from_weight_decay": lambda: O.AdamW(0.05),
            "Lamb": lambda: K3.Lamb(0.05),
            "Adafactor": lambda: O.Adafactor(0.05),
            "a constraint": lambda: K3.Adam(0.05),
            "a None gradient": lambda: O.Adam(0.05),  # built for every variable (legacy: only those with one)
        }.get(what, lambda: O.legacy.Adam(0.05))()
        vs = _variables(values)
        if what == "exclude_from_weight_decay":
            opt.exclude_from_weight_decay(var_names=["layer_3"])
        if what == "a constraint":
            _constrained(vs)
        if what == "sharded variables":
            mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), ("d",))
            vs[1] = jk.Variable(jax.device_put(values[1], jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())), name="s")
        out = []
        for k in range(3):
            grads = list(_grads(values, k))
            if what == "a None gradient":
                grads[2] = None
            if what == "a sparse gradient":
                grads[1] = IndexedSlices(jnp.ones((2,), jnp.float32), jnp.asarray([0, 3]), jnp.asarray(np.shape(values[1])))
            if what == "a gradient of another dtype":
                grads[2] = grads[2].astype(jnp.bfloat16)
            opt.apply_gradients(zip(grads, vs))
            out += [v.numpy() for v in vs]
            assert not opt._packed, what
        return out, opt

    per_variable, packed_result, _ = _both(packing, run)
    _same(per_variable, packed_result)


def test_a_sparse_step_leaves_the_next_dense_steps_packing(packing):
    """A step with a sparse gradient runs per variable, and the dense steps
    after it pack (the sparse step does not refuse packing for good); the
    trajectory is the per-variable one throughout."""
    values = _values(8)

    def run():
        opt, vs = O.legacy.Adagrad(0.05), _variables(values)
        out, packed_at = [], []
        for k in range(4):
            grads = list(_grads(values, k))
            if k in (0, 2):
                grads[1] = IndexedSlices(jnp.ones((2,), jnp.float32), jnp.asarray([0, 3]), jnp.asarray(np.shape(values[1])))
            opt.apply_gradients(zip(grads, vs))
            packed_at.append(opt._packed)
            out += [v.numpy() for v in vs] + opt.get_weights()  # reading the slots unpacks them
        return (out, packed_at), opt

    (per_variable, never), (packed_result, packed_at), _ = _both(packing, run)
    assert never == [False] * 4
    assert packed_at == [False, True, False, True]
    _same(per_variable, packed_result)


def test_the_default_thresholds(packing_mode):
    """Many small variables pack; few, or large on average, do not."""
    if packing_mode == "pack-all":
        pytest.skip("`--packed` replaces the thresholds")

    def packs(n: int, size: int) -> bool:
        vs = [jk.Variable(np.full((size,), 0.5, np.float32), name=f"v{i}") for i in range(n)]
        opt = O.Adam(0.01)
        opt.apply_gradients((jnp.full((size,), 0.1, jnp.float32), v) for v in vs)
        return opt._packed

    assert packs(packed.PACK_MIN_VARIABLES, 100)
    assert not packs(packed.PACK_MIN_VARIABLES - 1, 100)
    assert packs(packed.PACK_MIN_VARIABLES, packed.PACK_MAX_MEAN_SIZE)
    assert not packs(packed.PACK_MIN_VARIABLES, packed.PACK_MAX_MEAN_SIZE + 1)


def test_the_packed_state_is_one_buffer_per_slot_and_dtype(packing):
    """Structural: packed, the state holds a buffer per slot and dtype, not one
    per variable; the step's program writes one array per variable (the new
    values) plus that state; and consecutive steps donate what they replace."""
    packing(True)
    values = _values(20, dtypes=(np.float32, jnp.bfloat16))
    opt, vs = O.Adam(0.05), _variables(values)
    opt.apply_gradients(zip(_grads(values, 0), vs))
    assert opt._packed
    big = [x for x in jax.tree_util.tree_leaves(opt._held) if np.ndim(x) > 0]
    assert len(big) == 2 * 2  # m and v, a float32 and a bfloat16 buffer each
    assert sum(x.size for x in big) == 2 * sum(np.size(v) for v in values)
    grads = _grads(values, 1)
    lowered = opt._packed_step.trace([v.value for v in vs], opt._held, grads).lower()
    outputs = jax.tree_util.tree_leaves(lowered.out_info)
    assert len(outputs) == len(values) + len(jax.tree_util.tree_leaves(opt._held))
    held, old_values = jax.tree_util.tree_leaves(opt._held), [v.value for v in vs]
    opt.apply_gradients(zip(grads, vs))
    assert all(x.is_deleted() for x in held if np.ndim(x) > 0)
    assert all(x.is_deleted() for x in old_values)
    assert not any(g.is_deleted() for g in grads)


# Parameter-size temporaries in the packed step beyond the raveled gradients,
# by XLA's own accounting (docs/fast_paths.md, "The Keras layer packs many
# small variables", lists why each is there and why it stays).
#  * "product": the update ends in a product with the raveled gradients, which
#    XLA fuses into every variable's loop (storing the update once instead
#    changed the last bit against the per-variable step), so the raveled
#    gradients and the stored rsqrt both live until the last variable's loop.
#  * "reads params": the formula reads the parameters (Ftrl's linear, AdamW's
#    decay, Schedule-Free's interpolation), so the values are raveled too.
#  * "old slot": the per-variable step's one copy (tests/algorithms/
#    test_memory.py): the new parameter reads a slot's old value.
#  * Adadelta: its old-slot copy, and the two stored square roots its
#    variables' loops read (XLA does not repeat an expensive operation in
#    a thousand loops).
PACKED_EXTRA_TEMPORARIES = {
    **{(f, n): 1 for f in ("current", "keras3") for n in ("Adagrad", "RMSprop")},  # product
    **{(f, "Ftrl"): 1 for f in FAMILY_MODULES},  # reads params
    **{(f, "AdamW"): 1 for f in ("current", "keras3")},  # reads params
    ("keras3", "ScheduleFreeAdamW"): 1,  # reads params
    **{(f, "Lion"): 1 for f in ("current", "keras3")},  # old slot
    **{(f, "Adadelta"): 3 for f in FAMILY_MODULES},
}


@pytest.mark.parametrize("family,name", CASES, ids=[f"{f}.{n}" for f, n in CASES])
def test_the_packed_step_holds_the_temporaries_its_formula_needs(packing, family, name):
    """Structural: the parameter-size temporaries inside the packed step, by
    XLA's own accounting of the compiled program, are the raveled gradients
    (XLA:CPU does not fuse a concatenation of many arrays into its readers),
    whose buffer XLA reuses for the packed update that each variable adds its
    slice of, and for some formulas the ones in PACKED_EXTRA_TEMPORARIES;
    exactly those, so the table (and docs/fast_paths.md) stays true.  Adding
    the update to the packed values and slicing the result held one more.  The
    buffers are the layout's, padded to a multiple of PAD_MULTIPLE elements,
    and XLA:CPU builds the padding's zeros in a small buffer of their own to
    concatenate them (core/flat.py)."""
    packing(True)
    rng = np.random.default_rng(3)
    values = [rng.standard_normal((int(n),)).astype(np.float32) for n in rng.integers(500, 1500, 64)]
    opt, vs = getattr(FAMILY_MODULES[family], name)(0.05), _variables(values)
    opt.apply_gradients(zip(_grads(values, 0), vs))
    assert opt._packed
    compiled = opt._packed_step.trace([v.value for v in vs], opt._held, _grads(values, 1)).lower().compile()
    layout = jk.flat.Layout(values)
    param_bytes = sum(v.nbytes for v in values)
    buffer_bytes, padding_bytes = 4 * layout.sizes[0], 4 * (layout.sizes[0] - layout.used[0])
    assert layout.used[0] * 4 == param_bytes and buffer_bytes < param_bytes + 4 * jk.flat.PAD_MULTIPLE
    temp = compiled.memory_analysis().temp_size_in_bytes
    buffers = 1 + PACKED_EXTRA_TEMPORARIES.get((family, name), 0)
    # Each raveled buffer adds its padding's zeros; 4 KiB: the step's scalars.
    assert buffers * buffer_bytes <= temp <= buffers * (buffer_bytes + padding_bytes) + 4096, (
        temp / buffer_bytes,
        buffers,
    )


@pytest.mark.parametrize("family", ["legacy", "current", "keras3"])
def test_the_step_count_and_hyperparameters_do_not_unpack(packing, family):
    """What a training loop reads and sets every step (``iterations``, the
    learning rate) is held once, not per variable: it keeps the state packed."""
    values = _values()
    cls = FAMILY_MODULES[family].Adam

    def run():
        opt, vs = cls(0.05, gradient_accumulation_steps=2) if family == "keras3" else cls(0.05), _variables(values)
        out = []
        for k in range(6):
            opt.apply_gradients(zip(_grads(values, k), vs))
            out.append(int(opt.iterations))
            out.append(float(np.asarray(opt.learning_rate)))
            opt.learning_rate = 0.05 / (k + 2)
            if k == 3:
                (opt.variables[0] if family == "keras3" else opt.iterations).assign(40)  # Keras 3: the raw `iteration`
            flags.append(opt._packed)
        return out + [v.numpy() for v in vs], opt

    flags: list[bool] = []
    per_variable, packed_result, _ = _both(packing, run)
    assert flags[6:] == [True] * 6
    _same(per_variable, packed_result)
