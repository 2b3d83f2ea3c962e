"""What the compiler sees: structural facts about init and the step, not timings.

* Eager ``init`` builds no XLA program per parameter shape: its slots are
  host arrays transferred with ``jax.device_put`` (a tree of thousands of
  distinct shapes would otherwise compile thousands of small programs).
* The step's program grows per added parameter by no more than its math
  needs: whatever is the same for every leaf of a dtype (bias-correction
  powers, the step counter, ``1 - beta``) is computed once per step and dtype
  (the spec's ``prepare``), not once per leaf.
"""

from __future__ import annotations

import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_keras as jk
from jaxopt_keras import registry
from jaxopt_keras.core import xla
from jaxopt_keras.core.sparse import IndexedSlices
from jaxopt_keras.core.state import find_state
from jaxopt_keras.keras.factories import make_factory

# Every optimizer of every family, with its default arguments.
EVERY = [(f"{fam}.{e.function}", e, fam) for e in registry.entries() for fam in e.specs]

COMPILES: list[str] = []
FRESH = itertools.count(1000, 100)  # first dimensions no earlier tree used (programs are cached by shape)


def _listener(event: str, duration: float, **kwargs) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        COMPILES.append(event)


jax.monitoring.register_event_duration_secs_listener(_listener)


def distinct_shapes(n: int, dtype=np.float32) -> dict:
    """``n`` parameters of shapes no other tree in this process used (committed to a device)."""
    offset = next(FRESH)
    return {f"p{i}": jax.device_put(np.ones((offset + i, 3), dtype)) for i in range(n)}


def compiles_during(fn, *args) -> int:
    COMPILES.clear()
    jax.block_until_ready(fn(*args))
    return len(COMPILES)


@pytest.mark.parametrize("name,entry,family", EVERY, ids=[n for n, _, _ in EVERY])
def test_eager_init_compiles_nothing_per_shape(name, entry, family):
    opt = make_factory(entry, family)()
    # The first init may compile its few scalars' programs (the step counter,
    # the hyperparameters: one per dtype, cached); a second tree of 20 new
    # shapes compiles nothing, where a per-shape program would compile 20.
    compiles_during(opt.init, distinct_shapes(3))
    assert compiles_during(opt.init, distinct_shapes(20)) == 0


# Schedule-Free AdamW's `z` starts as the parameter itself: in another dtype
# that is a conversion, one program per shape, as any computation.
CONVERTS_THE_PARAMETER = {"keras3.schedule_free_adamw"}


SLOT_DTYPE_CASES = [x for x in EVERY if x[0] not in CONVERTS_THE_PARAMETER]


@pytest.mark.parametrize("name,entry,family", SLOT_DTYPE_CASES, ids=[n for n, _, _ in SLOT_DTYPE_CASES])
def test_eager_init_in_slot_dtype_compiles_nothing_per_shape(name, entry, family):
    """float32 slots for bfloat16 parameters are made in float32 on the host,
    not made in bfloat16 and converted on the device (a program per shape)."""
    opt = make_factory(entry, family)(slot_dtype="float32")
    compiles_during(opt.init, distinct_shapes(3, jnp.bfloat16))
    params = distinct_shapes(20, jnp.bfloat16)
    assert compiles_during(opt.init, params) == 0
    slots = [x for x in jax.tree.leaves(find_state(opt.init(params), jk.OptimizerState).slots) if np.ndim(x)]
    assert all(x.dtype == jnp.float32 for x in slots)  # (SGD without momentum has none)


def test_eager_init_slots_are_the_parameters_dtype_and_placement():
    device = jax.devices()[-1]
    params = {"w": jax.device_put(np.ones((7, 3), np.float32), device), "b": jnp.zeros(5, jnp.bfloat16)}
    state = jk.adam().init(params)
    for slot in (state.slots.m, state.slots.v):
        assert slot["w"].devices() == {device} and slot["w"].dtype == jnp.float32
        assert slot["b"].dtype == jnp.bfloat16 and slot["b"].shape == (5,)
        np.testing.assert_array_equal(slot["w"], np.zeros((7, 3), np.float32))


def test_jit_init_on_one_device_asks_for_no_sharding(monkeypatch):
    """Under ``jit``, slots are sharded like their parameters (``shard_alike``,
    a sharding group per slot); on a single device there is nothing to shard,
    and the groups only lengthen the trace and lowering of a large tree."""
    params = [np.ones((i + 2, 3), np.float32) for i in range(4)]
    text = jax.jit(jk.adam().init).lower(params).as_text()
    assert text.count("sdy.sharding_group") == 2 * 2 * len(params)  # 8 devices here: each slot with its parameter
    monkeypatch.setattr(jax, "device_count", lambda: 1)
    text = jax.jit(jk.adam().init).lower(params).as_text()
    assert "sharding_group" not in text
    state = jax.jit(jk.adam().init)(params)
    np.testing.assert_array_equal(state.slots.m[3], np.zeros((5, 3), np.float32))


# --------------------------------------------------------------------------
# The step's program: equations per added parameter.
# --------------------------------------------------------------------------


def update_equations(opt, n: int) -> list:
    """The top-level equations of ``opt.update`` on ``n`` float32 parameters of distinct shapes."""
    params = {f"p{i}": jnp.ones((i + 2, 3), jnp.float32) for i in range(n)}
    state = opt.init(params)
    return jax.make_jaxpr(lambda g, s, p: opt.update(g, s, p))(params, state, params).jaxpr.eqns


def is_scalar(eqn) -> bool:
    return all(getattr(v.aval, "shape", None) == () for v in eqn.outvars)


def per_leaf(opt, small: int = 2, large: int = 7) -> tuple[float, float]:
    """(equations, scalar equations) each added parameter adds to the step."""
    a, b = update_equations(opt, small), update_equations(opt, large)
    scalars = sum(map(is_scalar, b)) - sum(map(is_scalar, a))
    return (len(b) - len(a)) / (large - small), scalars / (large - small)


# Per-parameter scalars that stay: per-tensor statistics the math needs
# (Adafactor's RMS, Lamb's trust ratio, Muon's norms); ScheduleFreeAdamW's
# hyperparameters are compile-time constants that XLA folds into each
# parameter's arithmetic, as Keras 3 does; Nadam's ``1 - x`` terms (its
# momentum schedule is prepared once), which computed apart from the
# parameter's loop let XLA:CPU contract the step differently (not bit-identical).
PER_TENSOR_SCALARS = {"adafactor", "lamb", "muon", "schedule_free_adamw", "nadam"}

# Ftrl reads one element of each parameter's new ``linear`` to write its
# accumulator after it, in place (``core.xla.after``: the element, its bits,
# ``| 1``, ``!= 0``, the cast): per parameter by nature.
ORDERING_SCALARS = {"ftrl": 5}


@pytest.mark.parametrize("name,entry,family", EVERY, ids=[n for n, _, _ in EVERY])
def test_no_scalar_work_is_repeated_per_parameter(name, entry, family):
    """What is the same for every parameter of a dtype (bias corrections, the
    step counter, ``1 - beta``, hyperparameter casts) is computed once per step."""
    if entry.function in PER_TENSOR_SCALARS:
        pytest.skip("per-parameter scalars by design")
    _, scalars = per_leaf(make_factory(entry, family)())
    assert scalars <= ORDERING_SCALARS.get(entry.function, 0), f"{scalars} scalar equations per added parameter"


@pytest.mark.parametrize("name", ["sgd", "adam", "adagrad", "adadelta", "rmsprop", "ftrl", "adamax"])
def test_legacy_step_without_decay_has_no_time_decay(name):
    """OptimizerV2's ``_decayed_lr`` divides by ``1 + decay * iterations`` only
    when the constructor's ``decay`` is positive; so does ours: with the
    default 0 the step's scalar work has no ``div`` of the learning rate, and
    ``decay=0.01`` adds exactly its four scalar operations (``convert`` of the
    step count, ``mul``, ``add``, ``div``)."""
    factory = getattr(jk.legacy, name)
    plain, decayed = update_equations(factory(), 1), update_equations(factory(decay=0.01), 1)
    scalar_ops = lambda eqns: sorted(str(e.primitive) for e in eqns if is_scalar(e))
    added = list(scalar_ops(decayed))
    for op in scalar_ops(plain):
        added.remove(op)
    assert sorted(added) == ["add", "convert_element_type", "div", "mul"]


# The formulas' array operations per parameter, counted from the docstrings
# (``-x`` and ``x ** 2`` count one each):
#   Adam:     m: sub mul add; v: square sub mul add; sqrt add; mul div neg      = 12
#   SGD:      legacy accum*momentum - g*lr: mul mul sub                          = 3
#             current -g*lr + m*momentum: neg mul mul add                        = 4
#             each + 1: the velocity as the update is ``m * 1`` (a runtime one,
#             ``core.xla.fused_copy``), so that the parameter's add compiles as
#             a fused loop                                                       = 4, 5
#   RMSprop:  rms: mul square mul add; + eps; lr*g: mul; rsqrt (or sqrt) mul/div; neg = 9
#   Adagrad:  square add; g*lr: mul; sqrt add; div neg                           = 7
#   Adamax:   m: sub mul add; max(mul, abs); + eps, div, mul, neg                = 10 (current: 11,
#             lr*m / (bias_correction * (u + eps)): one more mul)
BUDGETS = {
    ("legacy", "adam", ()): 12,
    ("current", "adam", ()): 12,
    ("keras3", "adam", ()): 12,
    ("legacy", "sgd", (("momentum", 0.9),)): 4,
    ("current", "sgd", (("momentum", 0.9),)): 5,
    ("legacy", "rmsprop", ()): 9,
    ("current", "rmsprop", ()): 9,
    ("legacy", "adagrad", ()): 7,
    ("current", "adagrad", ()): 7,
    ("legacy", "adamax", ()): 10,
    ("current", "adamax", ()): 11,
}


@pytest.mark.parametrize("family,name,kwargs", list(BUDGETS), ids=[f"{f}-{n}-{dict(k)}" for f, n, k in BUDGETS])
def test_equations_per_parameter_are_the_formulas(family, name, kwargs):
    opt = getattr({"legacy": jk.legacy, "current": jk, "keras3": jk.keras3}[family], name)(**dict(kwargs))
    equations, _ = per_leaf(opt)
    # One more: the optimization barrier that gives each leaf its own scalars
    # (``core.xla.leaf_scalars``; it adds no work to the compiled step).
    assert equations <= BUDGETS[family, name, kwargs] + 1


# --------------------------------------------------------------------------
# The compiled step: one kernel per parameter shape.
# --------------------------------------------------------------------------


def distinct_fusions(hlo: str) -> int:
    """How many different fused computations an optimized HLO module holds,
    names and source metadata aside: XLA:CPU compiles one kernel for each."""
    bodies = set()
    for block in re.split(r"\n(?=\S)", hlo):
        head = block.split("\n", 1)[0]
        if not head.startswith("%") or "ENTRY" in head:
            continue
        body = re.sub(r", metadata=\{[^}]*\}", "", block)
        bodies.add(re.sub(r"%?[A-Za-z_][\w\-]*(\.\d+)?(?=[ :),=\n])", "x", body))
    return len(bodies)


def compiled_step(opt, shapes: list[tuple[int, ...]]) -> str:
    params = [jnp.full(shape, 0.5, jnp.float32) for shape in shapes]

    def step(p, s, g):  # a new function each call: no cached trace
        updates, s = opt.update(g, s, p)
        return jk.apply_updates(p, updates), s

    return jax.jit(step).lower(params, opt.init(params), params).compile().as_text()


@pytest.mark.parametrize("name,entry,family", EVERY, ids=[n for n, _, _ in EVERY])
def test_parameters_of_one_shape_share_their_kernels(name, entry, family):
    """Three parameters of a shape compile the kernels of one: XLA:CPU reuses a
    kernel only for identical fusions, and a scalar broadcast shared between
    the leaves of a shape used to give the first leaf's fusion its operands in
    another order (``core.xla.leaf_scalars``)."""
    opt = make_factory(entry, family)()
    shapes = [(6, 4), (5,)]
    extra = distinct_fusions(compiled_step(opt, shapes * 3)) - distinct_fusions(compiled_step(opt, shapes))
    assert extra <= EXTRA_KERNELS.get(name, 0)


# Where a cheap scalar that XLA copies into each kernel (the legacy family's
# ``1 - beta``, Nadam's and Lion's ``1 - x`` terms, Ftrl's powers, Adamax's
# ``1 - beta_1``, Muon's coefficients) still gives the first leaf of a shape
# its operands in another order: kernels more than one set per shape.  Adam,
# AdamW, SGD, RMSprop, Adagrad and Adadelta of the current and Keras 3
# families compile exactly one set per shape.
EXTRA_KERNELS = {
    "legacy.adam": 2,
    "legacy.adamax": 1,
    "current.adamax": 1,
    "keras3.adamax": 1,
    "legacy.nadam": 2,
    "current.nadam": 2,
    "keras3.nadam": 2,
    "legacy.adadelta": 1,
    "legacy.rmsprop": 1,
    "legacy.ftrl": 1,
    "current.ftrl": 2,
    "keras3.ftrl": 2,
    "current.lion": 2,
    "keras3.lion": 2,
    "keras3.muon": 2,
}


def lone_array_ops(hlo: str) -> list[str]:
    """The fused computations of one array operation on its parameters alone,
    which XLA:CPU compiles through its slower non-loop path (named ``wrapped_*``)."""
    return sorted({m for m in re.findall(r"^%(wrapped_\w+?)_computation[.\d]* \(.*\) -> \w+\[\d", hlo, re.M)})


def test_the_lone_op_check_sees_a_lone_add():
    """The check below reads XLA's names for its non-loop path: here is the case
    it guards against (a stored slot added to the parameter), so that a renamed
    path fails this test instead of letting the check pass on anything."""

    def step(p, m, g):
        m = m * 0.9 - g
        return p + m, m

    x = jnp.full((6, 4), 0.5, jnp.float32)
    assert lone_array_ops(jax.jit(step).lower(x, x, x).compile().as_text()) != []


# Every optimizer with its defaults, and SGD with momentum (a slot in every family).
WITH_MOMENTUM = [(f"{fam}.sgd(momentum=0.9)", registry.find("sgd"), fam, {"momentum": 0.9}) for fam in ("legacy", "current", "keras3")]


@pytest.mark.parametrize(
    "name,entry,family,kwargs",
    [(n, e, f, {}) for n, e, f in EVERY] + WITH_MOMENTUM,
    ids=[n for n, _, _ in EVERY] + [c[0] for c in WITH_MOMENTUM],
)
def test_no_parameter_update_compiles_as_a_lone_op(name, entry, family, kwargs):
    """Applying an update that is itself a slot (SGD's velocity: ``p + m``) is a
    lone add of two stored arrays; XLA:CPU compiles that through a path about
    three times a fused loop's size, which made SGD's ResNet-50 step compile in
    1.3x optax's time.  The velocity goes through ``core.xla.fused_copy``."""
    opt = make_factory(entry, family)(**kwargs)
    assert lone_array_ops(compiled_step(opt, [(6, 4), (5,)])) == []


@pytest.mark.parametrize("family", ["legacy", "current"])
@pytest.mark.parametrize("kwargs", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}])
def test_sparse_sgd_applies_no_slot_as_a_lone_add(family, kwargs):
    """A row-sparse step is a scatter (its own kind of kernel), but applying
    the current family's velocity, which decays on every row (``p + m``), is
    the dense step's lone add unless it goes through ``core.xla.fused_copy``."""
    opt = (jk.legacy if family == "legacy" else jk).sgd(0.1, **kwargs)
    p = jnp.full((10, 4), 0.5, jnp.float32)

    def step(p, s, values, indices):
        updates, s = opt.update(IndexedSlices(values, indices, p.shape), s, p)
        return jk.apply_updates(p, updates), s

    hlo = jax.jit(step).lower(p, opt.init(p), jnp.ones((3, 4), jnp.float32), jnp.array([1, 4, 7])).compile().as_text()
    assert not [op for op in lone_array_ops(hlo) if op in ("wrapped_add", "wrapped_subtract")], lone_array_ops(hlo)


# --------------------------------------------------------------------------
# Tracing the step: jnp's operations inline (core.xla.inlined_jnp).
# --------------------------------------------------------------------------


def canonical_hlo(hlo: str) -> str:
    """An optimized HLO module with its source metadata dropped and every name
    replaced by its order of first appearance: two programs that compute the
    same instructions on the same operands give the same text."""
    hlo = re.sub(r", metadata=\{[^}]*\}", "", hlo)
    hlo = "\n".join(
        line
        for line in hlo.splitlines()
        if not re.match(r"(\d+ |FileNames|FunctionNames|FileLocations|StackFrames)", line)
    )
    names: dict[str, str] = {}
    hlo = re.sub(r"%[A-Za-z_][\w\-.]*|\b[a-z_]+\.\d+(?=:)", lambda m: names.setdefault(m.group(0), f"%n{len(names)}"), hlo)
    return re.sub(r"ENTRY \S+", "ENTRY", hlo)


# What runs with ``jnp`` inline: every optimizer's own math (the driver), and
# the transforms its arguments add around it (clipping by value, by norm and
# by global norm, the EMA with its overwrite), and the loss-scale optimizers.
ADAM = registry.find("adam")
INLINED = [(n, lambda e=e, f=f: make_factory(e, f)()) for n, e, f in EVERY] + [
    (f"{fam}.adam({', '.join(f'{k}={v}' for k, v in kwargs.items())})", lambda f=fam, k=kwargs: make_factory(ADAM, f)(**k))
    for fam, kwargs in [
        ("legacy", {"clipnorm": 1.0}),
        ("legacy", {"clipvalue": 0.5}),
        ("legacy", {"global_clipnorm": 1.0}),
        ("current", {"clipnorm": 1.0}),
        ("current", {"global_clipnorm": 1.0}),
        ("current", {"use_ema": True, "ema_overwrite_frequency": 3}),
        ("keras3", {"clipvalue": 0.5}),
        ("keras3", {"global_clipnorm": 1.0}),
        ("keras3", {"use_ema": True, "ema_overwrite_frequency": 3}),
    ]
] + [
    ("legacy.loss_scale_optimizer(sgd)", lambda: jk.mixed_precision.loss_scale_optimizer(jk.legacy.sgd())),
    ("keras3.loss_scale_optimizer(sgd)", lambda: jk.keras3.loss_scale_optimizer(jk.keras3.sgd())),
]


def traced_per_parameter(opt, monkeypatch, small: int = 2, large: int = 5) -> float:
    """Functions traced per added parameter while tracing ``opt``'s update.

    Each nested jitted function a trace meets (every ``jnp`` operation) is
    traced by JAX's ``partial_eval.trace_to_jaxpr``, counted here, unless an
    argument of its shape came before: each tree here has shapes no earlier
    trace saw, after one trace that caches the per-step scalar work's."""
    from jax._src.interpreters import partial_eval as pe

    calls: list[int] = []
    trace = pe.trace_to_jaxpr

    def counted(*args, **kwargs):
        calls.append(1)
        return trace(*args, **kwargs)

    counted.evict_weakref = trace.evict_weakref
    monkeypatch.setattr(pe, "trace_to_jaxpr", counted)

    def traced(n: int) -> int:
        params = distinct_shapes(n)
        state = opt.init(params)
        calls.clear()
        jax.make_jaxpr(lambda g, s, p: opt.update(g, s, p))(params, state, params)
        return len(calls)

    traced(small)
    fewer = traced(small)
    per_parameter = (traced(large) - fewer) / (large - small)
    monkeypatch.setattr(pe, "trace_to_jaxpr", trace)
    return per_parameter


@pytest.mark.parametrize("name,make", INLINED, ids=[n for n, _ in INLINED])
def test_tracing_the_step_traces_no_function_per_parameter(name, make, monkeypatch):
    """Each ``jnp`` operation is a small jitted function, traced again for every
    new parameter shape (about 13,000 nested traces for Adam over 1000
    shapes, more than half of the step's trace time).  The per-parameter math
    traces them inline: no function is traced per added parameter.  The
    count can fail: with the inlining off, each parameter traces its own."""
    opt = make()
    assert traced_per_parameter(opt, monkeypatch) == 0
    monkeypatch.setattr(xla, "INLINE_JNP", False)
    assert traced_per_parameter(opt, monkeypatch) >= 1


@pytest.mark.parametrize("name,make", INLINED, ids=[n for n, _ in INLINED])
def test_inlining_jnp_changes_no_compiled_program(name, make, monkeypatch):
    """Tracing with ``jnp``'s operations inline builds the same primitives: the
    compiled step (``update`` and ``apply_updates``) is the same program,
    instruction for instruction, as without the inlining (so the numbers are
    the same bits)."""
    opt = make()
    shapes = [(3, 4), (5,), (2, 3, 4), (7,)]
    inlined = canonical_hlo(compiled_step(opt, shapes))
    monkeypatch.setattr(xla, "INLINE_JNP", False)
    assert canonical_hlo(compiled_step(opt, shapes)) == inlined
