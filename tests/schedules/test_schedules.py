"""``jaxopt_keras.schedules`` without TensorFlow: configs, jit, serialization safety.

Expected numbers come from independent computations, never from the module
under test:

* the algebraic schedules (inverse time, polynomial with ``power=1``,
  piecewise constant, exponential with ``decay_rate=0.5`` and a staircase) are
  recomputed operation by operation with NumPy float32 scalars, whose
  arithmetic is IEEE single precision with one rounding per operation and no
  fused multiply-adds, in both TF numerics (TF's eager arithmetic, and the
  arithmetic grappler leaves inside ``tf.function``): the schedule must match
  bit for bit, eagerly, under ``jit`` and under ``vmap``;
* cosine decay and SGDR are recomputed in float64 from their definitions (the
  SGDR period found by walking the periods, not by TF's ``log`` formula), to
  a few float32 epsilons of the peak rate.

The comparison with TF-Keras itself is ``tests/oracle/test_schedules_oracle.py``.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import json
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxopt_keras
from jaxopt_keras import schedules as S

from fuzz_settings import fuzz_settings

F32 = np.float32
EPS32 = float(np.finfo(np.float32).eps)
STEPS = np.arange(0, 401)


# ---------------------------------------------------------------------------
# Evaluation helpers.
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Independent NumPy float32 references (one IEEE rounding per operation).
# ---------------------------------------------------------------------------


# Each reference takes `graph`: False for TF's eager arithmetic ("tf_eager"),
# True for the arithmetic TF runs inside tf.function ("tf_function"): grappler
# has made `x / C` into `x * fl(1/C)` and pushed constants into products
# (jaxopt_keras/schedules/_grappler.py).


def div(x, c, graph):
    """``x / c``, or grappler's ``x * fl(1/c)`` for a constant ``c``."""
    return x * (F32(1) / c) if graph else x / c


def ref_inverse_time(lr0, decay_steps, decay_rate, staircase, step, graph):
    p = div(F32(step), F32(decay_steps), graph)
    if staircase:
        return F32(lr0) / (F32(1) + F32(decay_rate) * np.floor(p))
    if graph:  # decay_rate * (s * R) -> s * fl(decay_rate * R)
        return F32(lr0) / (F32(1) + F32(step) * (F32(decay_rate) * (F32(1) / F32(decay_steps))))
    return F32(lr0) / (F32(1) + F32(decay_rate) * p)


def ref_polynomial_linear(lr0, decay_steps, end, cycle, step, graph):
    s = F32(step)
    d = F32(decay_steps)
    if cycle:
        d = d * (F32(1) if s == 0 else np.ceil(div(s, F32(decay_steps), graph)))
        p = s / d  # not a constant: a division in the graph too
    else:
        p = div(min(s, d), d, graph)
    return (F32(lr0) - F32(end)) * (F32(1) - p) + F32(end)


def ref_exponential_halving(lr0, decay_steps, step, graph):
    # 0.5 ** k is exact, so any faithful pow gives it exactly.
    k = int(np.floor(div(F32(step), F32(decay_steps), graph)))
    return F32(lr0) * F32(math.ldexp(1.0, -k))


def ref_piecewise(boundaries, values, step, graph):
    for b, v in zip(boundaries, values):
        if step <= b:
            return F32(v)
    return F32(values[-1])


# (label, schedule given its numerics, reference of (step, graph))
ALGEBRAIC = [
    (
        "inverse_time",
        lambda n: S.InverseTimeDecay(0.1, 10, 0.5, numerics=n),
        lambda s, g: ref_inverse_time(0.1, 10, 0.5, False, s, g),
    ),
    (
        # decay_rate * p is inexact here: a fused multiply-add would show.
        "inverse_time_0.3",
        lambda n: S.InverseTimeDecay(0.07, 7, 0.3, numerics=n),
        lambda s, g: ref_inverse_time(0.07, 7, 0.3, False, s, g),
    ),
    (
        "inverse_time_staircase",
        lambda n: S.InverseTimeDecay(0.1, 7, 0.3, staircase=True, numerics=n),
        lambda s, g: ref_inverse_time(0.1, 7, 0.3, True, s, g),
    ),
    (
        # Reaches decay_steps: eagerly, 1 - 300/300 must be exactly 0 (XLA's
        # own reciprocal multiply would give a tiny non-zero, as TF's graph does).
        "polynomial",
        lambda n: S.PolynomialDecay(0.1, 300, end_learning_rate=0.001, numerics=n),
        lambda s, g: ref_polynomial_linear(0.1, 300, 0.001, False, s, g),
    ),
    (
        "polynomial_41",
        lambda n: S.PolynomialDecay(0.1, 41, end_learning_rate=0.001, numerics=n),
        lambda s, g: ref_polynomial_linear(0.1, 41, 0.001, False, s, g),
    ),
    (
        "polynomial_cycle",
        lambda n: S.PolynomialDecay(0.1, 70, cycle=True, numerics=n),
        lambda s, g: ref_polynomial_linear(0.1, 70, 0.0001, True, s, g),
    ),
    (
        # In the graph, 7k * fl(1/7) rounds above k for some k: that cycle ends a step late.
        "polynomial_cycle_7",
        lambda n: S.PolynomialDecay(0.1, 7, cycle=True, numerics=n),
        lambda s, g: ref_polynomial_linear(0.1, 7, 0.0001, True, s, g),
    ),
    (
        "polynomial_cycle_fractional_steps",
        lambda n: S.PolynomialDecay(0.05, 33.3, end_learning_rate=0.01, cycle=True, numerics=n),
        lambda s, g: ref_polynomial_linear(0.05, 33.3, 0.01, True, s, g),
    ),
    (
        "exponential_staircase_halving",
        lambda n: S.ExponentialDecay(0.1, 30, 0.5, staircase=True, numerics=n),
        lambda s, g: ref_exponential_halving(0.1, 30, s, g),
    ),
    (
        # In the graph, 41k * fl(1/41) rounds below k for some k: that stair comes a step late.
        "exponential_staircase_halving_41",
        lambda n: S.ExponentialDecay(0.1, 41, 0.5, staircase=True, numerics=n),
        lambda s, g: ref_exponential_halving(0.1, 41, s, g),
    ),
    (
        "piecewise",
        lambda n: S.PiecewiseConstantDecay([100, 250, 399], [1.0, 0.5, 0.1, 0.01], numerics=n),
        lambda s, g: ref_piecewise([100, 250, 399], [1.0, 0.5, 0.1, 0.01], s, g),
    ),
]


@pytest.mark.parametrize("numerics", ["tf_eager", "tf_function"])
@pytest.mark.parametrize("label,make,ref", ALGEBRAIC, ids=[a[0] for a in ALGEBRAIC])
def test_algebraic_schedules_bit_exact_eager_jit_vmap(label, make, ref, numerics):
    schedule = make(numerics)
    expected = np.array([ref(int(s), numerics == "tf_function") for s in STEPS], dtype=np.float32)
    assert_bitwise(jit_scalar(schedule, STEPS), expected, f"{label} jit")
    assert_bitwise(jit_vmap(schedule, STEPS), expected, f"{label} jit(vmap)")
    # Float steps (the legacy family's tf.cast(iterations, float32)).
    assert_bitwise(jit_scalar(schedule, STEPS.astype(np.float32)), expected, f"{label} jit, float steps")
    sub = STEPS[::19]
    assert_bitwise(eager(schedule, sub), expected[::19], f"{label} eager")


def test_graph_numerics_move_boundaries():
    # The references above are not vacuous: at these steps the two TF numerics
    # part ways by a whole stair, or a whole cycle.
    late_stair = [k * 41 for k in range(1, 10) if F32(k * 41) * (F32(1) / F32(41)) < k]
    assert late_stair, "no late stair below step 400"
    for k41 in late_stair:
        assert ref_exponential_halving(0.1, 41, k41, True) == 2 * ref_exponential_halving(0.1, 41, k41, False)
    late_cycle = [k * 7 for k in range(1, 57) if F32(k * 7) * (F32(1) / F32(7)) > k]
    assert late_cycle, "no late cycle below step 400"
    for k7 in late_cycle:
        assert ref_polynomial_linear(0.1, 7, 0.0001, True, k7, True) > 10 * ref_polynomial_linear(0.1, 7, 0.0001, True, k7, False)


def test_polynomial_sqrt_reaches_end_rate_under_jit():
    # (1 - step / decay_steps) ** 0.5 at step == decay_steps: 0 ** 0.5 = 0,
    # so exactly end_learning_rate.  With the division compiled as a multiply
    # by float32(1/300), 1 - p came out negative and the rate NaN.
    s = S.PolynomialDecay(0.1, 300, end_learning_rate=0.0001, power=0.5)
    steps = np.array([300, 301, 450])
    for got in (jit_scalar(s, steps), jit_vmap(s, steps), eager(s, steps)):
        assert_bitwise(got, np.full(3, F32(0.0001)), "PolynomialDecay(power=0.5) at/after decay_steps")


@pytest.mark.parametrize("numerics", ["tf_eager", "tf_function"])
def test_step_known_at_compile_time(numerics):
    # A constant step lets XLA fold everything; the numbers must not change.
    for s in (S.PolynomialDecay(0.1, 300, power=0.5, numerics=numerics), S.InverseTimeDecay(0.07, 7, 0.3, numerics=numerics)):
        for k in (0, 150, 299, 300, 301):
            assert_bitwise(jax.jit(lambda s=s, k=k: s(k))(), np.asarray(s(k)), f"{s} at constant step {k}")


def cosine_ref(lr0, decay_steps, alpha, step, warmup_target=None, warmup_steps=0):
    if warmup_target is None:
        s = min(step, decay_steps)
        return lr0 * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / decay_steps)) + alpha)
    s = min(step, decay_steps + warmup_steps)
    if s < warmup_steps:
        return lr0 + (warmup_target - lr0) * s / warmup_steps
    s -= warmup_steps
    return warmup_target * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / decay_steps)) + alpha)


def sgdr_ref(lr0, first, t_mul, m_mul, alpha, step):
    """SGDR by walking the periods: period i lasts first * t_mul**i steps."""
    start, length, i = 0.0, float(first), 0
    while step >= start + length:
        start += length
        length *= t_mul
        i += 1
    f = (step - start) / length
    return lr0 * ((1 - alpha) * 0.5 * m_mul**i * (1 + math.cos(math.pi * f)) + alpha)


TRANSCENDENTAL = [
    ("cosine", S.CosineDecay(0.1, 300), lambda s: cosine_ref(0.1, 300, 0.0, s)),
    ("cosine_alpha", S.CosineDecay(0.1, 250, alpha=0.1), lambda s: cosine_ref(0.1, 250, 0.1, s)),
    (
        "cosine_warmup",
        S.CosineDecay(0.0, 200, alpha=0.1, warmup_target=0.2, warmup_steps=100),
        lambda s: cosine_ref(0.0, 200, 0.1, s, 0.2, 100),
    ),
    (
        "sgdr_t_mul_2",
        S.CosineDecayRestarts(0.1, 10, t_mul=2.0),
        lambda s: sgdr_ref(0.1, 10, 2.0, 1.0, 0.0, s),
    ),
    (
        "sgdr_t_mul_1",
        S.CosineDecayRestarts(0.1, 30, t_mul=1.0, m_mul=0.9, alpha=0.05),
        lambda s: sgdr_ref(0.1, 30, 1.0, 0.9, 0.05, s),
    ),
]


@pytest.mark.parametrize("label,schedule,ref", TRANSCENDENTAL, ids=[a[0] for a in TRANSCENDENTAL])
def test_transcendental_schedules_match_definition(label, schedule, ref):
    # The float64 definition against float32 arithmetic: each rounding costs
    # at most eps/2 relative, and the worst is step / decay_steps, whose
    # rounding error (up to eps/2 * 13.3 for SGDR at step 400 with periods of
    # 30) is multiplied by at most pi/2 through 0.5 * (1 + cos(pi * f)): about
    # 6.3 eps of the peak rate; 8 bounds that plus the final roundings
    # (observed <= 2.7).  The SGDR restarts of these configurations fall on
    # steps where TF's floor(log(...) / log(t_mul)) is exact in float32 too.
    expected = np.array([ref(int(s)) for s in STEPS])
    got = jit_scalar(schedule, STEPS)
    assert got.dtype == np.float32
    peak = np.max(np.abs(expected))
    err = np.max(np.abs(got.astype(np.float64) - expected)) / (EPS32 * peak)
    assert err <= 8, f"{label}: max error {err:.1f} eps x peak"
    assert_bitwise(jit_vmap(schedule, STEPS), got, f"{label} jit(vmap) vs jit")
    assert_bitwise(eager(schedule, STEPS[::23]), got[::23], f"{label} eager vs jit")


@pytest.mark.parametrize("t_mul", [2.2009673280695234, 1.7902496854812693, 2.906876687817828, 1.1052775792179124, 1.4822987492324184])
def test_sgdr_first_restart_on_time(t_mul):
    # Eagerly TF computes log(1 - 1 * (1 - t_mul)) / log(t_mul) = log(t_mul) / log(t_mul)
    # = 1 at step == first_decay_steps: a restart, the rate back to its peak.  XLA's
    # log of the constant t_mul and of the computed value once differed in the last bit.
    s = S.CosineDecayRestarts(0.1, 1000, t_mul=t_mul, numerics="tf_eager")
    got = jit_scalar(s, np.array([999, 1000]))
    assert got[1] == F32(0.1) and got[0] < F32(1e-5), got


def test_traced_step_inside_scan_matches_eager():
    # The optimizers call the schedule on the traced iteration counter.
    s = S.CosineDecayRestarts(0.1, 20, t_mul=1.5, m_mul=0.8, alpha=0.1)

    def body(count, _):
        return count + 1, s(count)

    _, lrs = jax.jit(lambda: jax.lax.scan(body, jnp.int32(0), None, length=120))()
    assert_bitwise(np.asarray(lrs)[::11], eager(s, np.arange(120)[::11]), "scan vs eager")


# ---------------------------------------------------------------------------
# Numerics: which Keras arithmetic a schedule reproduces.
# ---------------------------------------------------------------------------

# ExponentialDecay(0.1, 41, 0.5, staircase=True) at step 41: TF's graph
# computes floor(41 * fl(1/41)) = 0, a stair late; eagerly floor(41 / 41) = 1.
LATE, ON_TIME = F32(0.1), F32(0.05)


def staircase_41(**kwargs):
    return S.ExponentialDecay(0.1, 41, 0.5, staircase=True, **kwargs)


def test_numerics_argument():
    assert staircase_41().numerics is None
    for numerics in S.NUMERICS:
        s = staircase_41(numerics=numerics)
        assert s.numerics == numerics
        assert s.get_config() == staircase_41().get_config()  # not in the config
        assert f"numerics={numerics!r}" in repr(s)
        assert s != staircase_41() and s == staircase_41(numerics=numerics)
    with pytest.raises(ValueError, match="`numerics` must be None or one of"):
        staircase_41(numerics="graph")
    with pytest.raises(ValueError, match="`numerics` must be None or one of"):
        staircase_41().evaluate(3, "eager")
    with pytest.raises(TypeError):  # keyword only: the positional arguments stay Keras's
        S.ExponentialDecay(0.1, 41, 0.5, True, None, "tf_eager")


def test_evaluate_picks_the_numerics():
    step = jnp.int32(41)
    unset = staircase_41()
    assert unset(step) == LATE  # called directly: tf_function
    assert unset.evaluate(step, None) == LATE
    assert unset.evaluate(step, "tf_function") == LATE
    assert unset.evaluate(step, "tf_eager") == ON_TIME
    # The schedule's own numerics wins over its caller's.
    own = staircase_41(numerics="tf_eager")
    assert own(step) == ON_TIME
    assert own.evaluate(step, "tf_function") == ON_TIME


def test_keras3_numerics_is_xla_on_keras3_code():
    # Keras 3's code as it is: under jit XLA makes step / 41 into step * fl(1/41)
    # (as it does for Keras 3); eagerly, it divides.
    s = staircase_41(numerics="keras3")
    assert jax.jit(s)(jnp.int32(41)) == LATE
    assert s(jnp.int32(41)) == ON_TIME
    # A Python float is jnp.asarray's: float64 with x64 on (TF makes it float32).
    with jax.enable_x64(True):
        assert S.ExponentialDecay(0.1, 10, 0.5, numerics="keras3")(3).dtype == jnp.float64
        assert S.ExponentialDecay(0.1, 10, 0.5)(3).dtype == jnp.float32
        # Keras 3's ops.cos computes a float64 in float32 on JAX, and the weakly typed
        # initial rate follows: float32 without warmup; float64 with (a strongly typed target).
        assert S.CosineDecay(0.1, 10, numerics="keras3")(3).dtype == jnp.float32
        assert S.CosineDecay(0.0, 10, warmup_target=0.1, warmup_steps=5, numerics="keras3")(30).dtype == jnp.float64


def test_optimizers_evaluate_in_their_family_numerics():
    from jaxopt_keras.algorithms.driver import DEFAULT_NUMERICS, learning_rate_at

    assert DEFAULT_NUMERICS == {"legacy": "tf_function", "current": "tf_function", "keras3": "keras3"}
    it = jnp.int32(41)
    for family in ("legacy", "current"):
        assert learning_rate_at(staircase_41(), it, None, jnp.float32, family) == LATE
        assert learning_rate_at(staircase_41(numerics="tf_eager"), it, None, jnp.float32, family) == ON_TIME
    keras3 = jax.jit(lambda it: learning_rate_at(staircase_41(), it, None, jnp.float32, "keras3"))
    assert keras3(it) == LATE and learning_rate_at(staircase_41(), it, None, jnp.float32, "keras3") == ON_TIME
    # Through the optimizers: SGD's update is -lr * grad.
    for factory in (jaxopt_keras.sgd, jaxopt_keras.legacy.sgd):
        for numerics, expected in ((None, LATE), ("tf_eager", ON_TIME)):
            opt = factory(learning_rate=staircase_41(numerics=numerics))

            def body(state, _):
                u, state = opt.update(jnp.ones(()), state, jnp.zeros(()))
                return state, u

            _, updates = jax.jit(lambda: jax.lax.scan(body, opt.init(jnp.zeros(())), None, length=42))()
            assert float(updates[41]) == -expected, (factory, numerics)
            assert float(updates[40]) == -F32(0.1)


def test_accumulation_passes_the_numerics_on():
    from jaxopt_keras.keras.pipeline import MicroStepSchedule

    # Keras 3's gradient accumulation: update k + 1 reads the schedule at call (k + 1) * 2 - 1.
    micro = MicroStepSchedule(staircase_41(), 2)
    assert micro.evaluate(jnp.int32(20), "tf_eager") == ON_TIME
    assert micro.evaluate(jnp.int32(20), "tf_function") == LATE == micro(jnp.int32(20))


def test_schedule_of_your_own_is_called_as_it_is():
    h = Halving(0.4, 5)
    for numerics in (None, *S.NUMERICS):
        assert h.evaluate(7, numerics) == h(7)

    class Doubled(S.ExponentialDecay):
        def __call__(self, step):
            return 2 * super().__call__(step)  # the built-in's own numerics, or tf_function

    assert Doubled(0.1, 41, 0.5, staircase=True).evaluate(jnp.int32(41), "tf_eager") == 2 * LATE

    class Unfinished(S.LearningRateSchedule):
        def get_config(self):
            return {}

    for call in (lambda: Unfinished()(1), lambda: Unfinished().evaluate(1, "keras3")):
        with pytest.raises(NotImplementedError, match="must override `__call__"):
            call()


# ---------------------------------------------------------------------------
# Dtypes.
# ---------------------------------------------------------------------------


def test_dtype_follows_initial_learning_rate():
    assert S.ExponentialDecay(0.1, 10, 0.5)(3).dtype == jnp.float32
    assert S.ExponentialDecay(np.float32(0.1), 10, 0.5)(3).dtype == jnp.float32
    # Without x64, a float64 value computes in float32 (JAX's canonical dtype).
    assert S.ExponentialDecay(np.float64(0.1), 10, 0.5)(3).dtype == jnp.float32
    with jax.enable_x64(True):
        for s in (
            S.ExponentialDecay(np.float64(0.1), 10, 0.5),
            S.PolynomialDecay(np.float64(0.1), 10),
            S.InverseTimeDecay(np.float64(0.1), 10, 0.5),
            S.CosineDecay(np.float64(0.1), 10),
            S.CosineDecayRestarts(np.float64(0.1), 10),
            S.PiecewiseConstantDecay([5], [np.float64(0.1), np.float64(0.01)]),
        ):
            assert s(3).dtype == jnp.float64, s
            assert jax.jit(s)(3).dtype == jnp.float64, s
        # A Python float stays float32, as tf.convert_to_tensor makes it.
        assert S.CosineDecay(0.1, 10)(3).dtype == jnp.float32


def test_float64_hyperparameters_are_cast_like_tf():
    # tf.cast(0.96, tf.float64) converts the Python float to a float32 tensor
    # first: float64(float32(0.96)), not 0.96.  Alpha in CosineDecay instead
    # meets a tensor in arithmetic and is converted straight to float64.
    with jax.enable_x64(True):
        got = S.ExponentialDecay(np.float64(1.0), 1, 0.96, staircase=True)(1)
        assert float(got) == float(np.float32(0.96))
        assert float(got) != 0.96
        end = S.CosineDecay(np.float64(1.0), 10, alpha=0.1)(10)
        assert end.dtype == jnp.float64 and float(end) == 0.1


def test_integer_initial_learning_rate_is_rejected():
    # TF-Keras fails too (int32 arithmetic meets a float); here it's a clear error
    # instead of decay_rate=0.5 truncated to 0.
    for s in (
        S.ExponentialDecay(1, 10, 0.5),
        S.PolynomialDecay(1, 10),
        S.InverseTimeDecay(1, 10, 0.5),
        S.CosineDecay(0, 10, warmup_target=0.1, warmup_steps=5),
        S.CosineDecayRestarts(1, 10),
    ):
        for numerics in S.NUMERICS:
            with pytest.raises(TypeError, match="initial_learning_rate"):
                s.evaluate(3, numerics)


@pytest.mark.parametrize(
    "make,argument",
    [
        (lambda n: S.ExponentialDecay(0.1, n, 0.5), "decay_steps"),
        (lambda n: S.InverseTimeDecay(0.1, n, 0.5), "decay_steps"),
        (lambda n: S.PolynomialDecay(0.1, n), "decay_steps"),
        (lambda n: S.CosineDecay(0.1, n), "decay_steps"),
        (lambda n: S.CosineDecayRestarts(0.1, n), "first_decay_steps"),
    ],
    ids=["exponential", "inverse_time", "polynomial", "cosine", "cosine_restarts"],
)
def test_decay_steps_must_be_a_positive_number(make, argument):
    """Keras 3 refuses ``<= 0`` in these words; TF-Keras builds the schedule, then computes
    NaN or infinity (``0``), or 0 and negative rates, at every step; ``None`` made NaN here."""
    for bad in (0, -10, 0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=rf"Argument `{argument}` must be > 0. Received: {argument}="):
            make(bad)
    for bad in (None, "10", True):
        with pytest.raises(TypeError, match=rf"Argument `{argument}` must be a number"):
            make(bad)
    for good in (1, 7.5, np.int64(3)):
        assert np.isfinite(float(make(good).evaluate(5, "keras3")))


def test_piecewise_boundaries_follow_step_dtype():
    s = S.PiecewiseConstantDecay([10.7, 20], [0.3, 0.2, 0.1])
    # Integer step: the float boundary is truncated to 10, as tf.cast does.
    assert_bitwise(eager(s, np.array([10, 11, 20, 21], np.int32)), F32([0.3, 0.2, 0.2, 0.1]), "int steps")
    # Float step: compared with float32(10.7).
    assert_bitwise(eager(s, F32([10.0, 10.5, 10.75, 21.0])), F32([0.3, 0.3, 0.2, 0.1]), "float steps")
    # Integer values give an integer schedule, as in TF-Keras.
    assert S.PiecewiseConstantDecay([5], [3, 1])(7).dtype == jnp.int32


def test_piecewise_boundary_beyond_int32():
    # TF-Keras makes 3_000_000_000 an int64 boundary; an int32 step never passes it.
    s = S.PiecewiseConstantDecay([3_000_000_000], [0.3, 0.2])
    imax = np.iinfo(np.int32).max
    assert_bitwise(eager(s, np.array([0, imax], np.int32)), F32([0.3, 0.3]), "int32 steps")
    assert_bitwise(jit_scalar(s, np.array([0, imax], np.int32)), F32([0.3, 0.3]), "int32 steps, jit")
    assert_bitwise(eager(s, F32([2.9e9, 3.1e9])), F32([0.3, 0.2]), "float steps")


def test_piecewise_length_mismatch():
    with pytest.raises(ValueError, match="length of boundaries should be 1 less"):
        S.PiecewiseConstantDecay([10, 20], [1.0, 0.5])
    with pytest.raises(ValueError, match="length of boundaries should be 1 less"):
        S.PiecewiseConstantDecay([10], [1.0, 0.5, 0.1])
    with pytest.raises(ValueError, match="length of boundaries should be 1 less"):
        S.deserialize({"class_name": "PiecewiseConstantDecay", "config": {"boundaries": [1, 2], "values": [1.0]}})


# ---------------------------------------------------------------------------
# get_config / from_config / serialize round trips (Hypothesis).
# ---------------------------------------------------------------------------

positive_float = st.floats(1e-6, 10.0, allow_nan=False, allow_infinity=False)
fraction = st.floats(0.0, 1.0, allow_nan=False)
steps_arg = st.one_of(st.integers(1, 10_000), st.floats(0.5, 10_000.0, allow_nan=False))
names = st.one_of(st.none(), st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12))


@st.composite
def piecewise_args(draw):
    n = draw(st.integers(1, 5))
    bounds = sorted(draw(st.lists(st.integers(0, 100_000), min_size=n, max_size=n, unique=True)))
    values = draw(st.lists(positive_float, min_size=n + 1, max_size=n + 1))
    return dict(boundaries=bounds, values=values, name=draw(names))


SCHEDULE_ARGS = {
    "ExponentialDecay": st.fixed_dictionaries(
        dict(initial_learning_rate=positive_float, decay_steps=steps_arg, decay_rate=st.floats(0.01, 2.0)),
        optional=dict(staircase=st.booleans(), name=names),
    ),
    "PiecewiseConstantDecay": piecewise_args(),
    "PolynomialDecay": st.fixed_dictionaries(
        dict(initial_learning_rate=positive_float, decay_steps=steps_arg),
        optional=dict(
            end_learning_rate=st.floats(0.0, 1e-3),
            power=st.floats(0.1, 4.0),
            cycle=st.booleans(),
            name=names,
        ),
    ),
    "InverseTimeDecay": st.fixed_dictionaries(
        dict(initial_learning_rate=positive_float, decay_steps=steps_arg, decay_rate=st.floats(0.0, 5.0)),
        optional=dict(staircase=st.booleans(), name=names),
    ),
    "CosineDecay": st.fixed_dictionaries(
        dict(initial_learning_rate=positive_float, decay_steps=steps_arg),
        optional=dict(
            alpha=fraction,
            name=names,
            warmup_target=st.one_of(st.none(), positive_float),
            warmup_steps=st.integers(0, 1000),
        ),
    ),
    "CosineDecayRestarts": st.fixed_dictionaries(
        dict(initial_learning_rate=positive_float, first_decay_steps=steps_arg),
        optional=dict(t_mul=st.floats(1.0, 3.0), m_mul=fraction, alpha=fraction, name=names),
    ),
}


@pytest.mark.parametrize("class_name", sorted(SCHEDULE_ARGS))
def test_config_round_trip(class_name):
    cls = getattr(S, class_name)
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "numerics")]

    @fuzz_settings(40)
    @given(SCHEDULE_ARGS[class_name], st.integers(0, 20_000), st.sampled_from([None, *S.NUMERICS]))
    def check(kwargs, step, numerics):
        s = cls(**kwargs, numerics=numerics)
        config = s.get_config()
        # The config holds exactly the constructor's Keras arguments, with the
        # given values; `numerics` is ours and stays out of it.
        assert sorted(config) == sorted(params)
        for key, value in kwargs.items():
            assert config[key] == value, key
        rebuilt = cls.from_config(config)
        assert type(rebuilt) is cls and rebuilt.get_config() == config and rebuilt.numerics is None
        assert rebuilt == cls(**kwargs) and (rebuilt == s) == (numerics is None)
        # Through serialize/deserialize, both forms, and through JSON.
        for legacy in (False, True):
            blob = S.serialize(s, use_legacy_format=legacy)
            assert blob["class_name"] == class_name and blob["config"] == config
            assert S.deserialize(blob) == rebuilt
            assert S.deserialize(json.loads(json.dumps(blob))) == rebuilt
        # Same arguments, same numbers (the rebuilt schedule leaves the numerics to its caller).
        assert_bitwise(np.asarray(rebuilt.evaluate(step, numerics)), np.asarray(s(step)), f"{class_name} rebuilt at {step}")

    check()


def test_serialize_builtin_form():
    s = S.CosineDecay(0.1, 1000, alpha=0.1, warmup_target=0.2, warmup_steps=10)
    assert S.serialize(s) == {
        "module": "keras.optimizers.schedules",
        "class_name": "CosineDecay",
        "config": {
            "initial_learning_rate": 0.1,
            "decay_steps": 1000,
            "alpha": 0.1,
            "name": None,
            "warmup_target": 0.2,
            "warmup_steps": 10,
        },
        "registered_name": None,
    }
    assert S.serialize(s, use_legacy_format=True) == {"class_name": "CosineDecay", "config": s.get_config()}
    with pytest.raises(ValueError, match="LearningRateSchedule"):
        S.serialize({"class_name": "CosineDecay"})


def test_same_module_under_optimizers():
    assert jaxopt_keras.optimizers.schedules.CosineDecay is S.CosineDecay
    assert jaxopt_keras.optimizers.schedules.deserialize is S.deserialize


# ---------------------------------------------------------------------------
# Custom schedules.
# ---------------------------------------------------------------------------


class Halving(S.LearningRateSchedule):
    """initial_learning_rate * 0.5 ** floor(step / period)."""

    def __init__(self, initial_learning_rate, period):
        self.initial_learning_rate = initial_learning_rate
        self.period = period

    def __call__(self, step):
        k = jnp.floor(jnp.asarray(step, jnp.float32) / self.period)
        return jnp.float32(self.initial_learning_rate) * jnp.exp2(-k)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "period": self.period}


def test_custom_schedule_serialization():
    h = Halving(0.4, 5)
    blob = S.serialize(h)
    # What TF-Keras writes for an unregistered class of the user's.
    assert blob == {
        "module": __name__,
        "class_name": "Halving",
        "config": {"initial_learning_rate": 0.4, "period": 5},
        "registered_name": "Halving",
    }
    for form in (blob, S.serialize(h, use_legacy_format=True), json.loads(json.dumps(blob))):
        back = S.deserialize(form, custom_objects={"Halving": Halving})
        assert type(back) is Halving and back == h
        assert_bitwise(jit_scalar(back, np.arange(12)), F32([0.4] * 5 + [0.2] * 5 + [0.1] * 2), "Halving")
    # Registered under a package name ("pkg>Halving"), found by that name.
    registered = dict(blob, registered_name="pkg>Halving")
    assert S.deserialize(registered, custom_objects={"pkg>Halving": Halving}) == h
    # Without custom_objects, the class is not guessed or imported.
    with pytest.raises(ValueError, match="'module'"):
        S.deserialize(blob)
    with pytest.raises(ValueError, match="'class_name'"):
        S.deserialize(S.serialize(h, use_legacy_format=True))


class MyExponentialDecay(S.ExponentialDecay):
    """A user subclass of a built-in schedule."""


def test_custom_objects_take_precedence():
    blob = S.serialize(S.ExponentialDecay(0.4, 5, 0.5))
    back = S.deserialize(blob, custom_objects={"ExponentialDecay": MyExponentialDecay})
    assert type(back) is MyExponentialDecay and back.get_config() == blob["config"]


def test_subclass_of_builtin_serializes_as_custom():
    mine = MyExponentialDecay(0.4, 5, 0.5)
    blob = S.serialize(mine)
    assert (blob["module"], blob["class_name"], blob["registered_name"]) == (
        __name__,
        "MyExponentialDecay",
        "MyExponentialDecay",
    )
    with pytest.raises(ValueError, match="'module'"):
        S.deserialize(blob)
    assert S.deserialize(blob, custom_objects={"MyExponentialDecay": MyExponentialDecay}) == mine


def test_deserialize_accepts_keras_module_spellings():
    config = {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5, "staircase": False, "name": None}
    for module in (
        None,
        "keras.optimizers.schedules",
        "keras.src.optimizers.schedules",
        "keras.src.optimizers.schedules.learning_rate_schedule",
        "tf_keras.src.optimizers.schedules.learning_rate_schedule",
    ):
        blob = {"module": module, "class_name": "ExponentialDecay", "config": config, "registered_name": None}
        assert S.deserialize(blob) == S.ExponentialDecay(**config)
    # registered_name equal to class_name is consistent too.
    blob = {"class_name": "ExponentialDecay", "config": config, "registered_name": "ExponentialDecay"}
    assert S.deserialize(blob) == S.ExponentialDecay(**config)


# ---------------------------------------------------------------------------
# Hostile configs: ValueError naming the field, nothing imported or run.
# ---------------------------------------------------------------------------

GOOD = {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5}

HOSTILE = [
    ("class_name os.system", {"class_name": "os.system", "config": {"command": "echo pwned"}}, "'class_name'"),
    ("class_name eval", {"class_name": "eval", "config": {"source": "1"}}, "'class_name'"),
    ("class_name dunder", {"class_name": "__import__", "config": {"name": "os"}}, "'class_name'"),
    ("class_name base class", {"class_name": "LearningRateSchedule", "config": {}}, "'class_name'"),
    ("class_name not str", {"class_name": ["ExponentialDecay"], "config": GOOD}, "'class_name'"),
    ("missing class_name", {"config": GOOD}, "'class_name'"),
    (
        "module subprocess",
        {"module": "subprocess", "class_name": "Popen", "config": {"args": ["echo", "pwned"]}, "registered_name": None},
        "'module'",
    ),
    ("module os", {"module": "os", "class_name": "system", "config": {"command": "echo pwned"}}, "'module'"),
    (
        "module os, known class",
        {"module": "os", "class_name": "ExponentialDecay", "config": GOOD, "registered_name": None},
        "'module'",
    ),
    ("module not str", {"module": ["os"], "class_name": "ExponentialDecay", "config": GOOD}, "'module'"),
    (
        "registered_name elsewhere",
        {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay", "config": GOOD,
         "registered_name": "os>system"},
        "'registered_name'",
    ),
    (
        "registered_name another class",
        {"class_name": "ExponentialDecay", "config": GOOD, "registered_name": "CosineDecay"},
        "'registered_name'",
    ),
    (
        "registered_name not str",
        {"class_name": "ExponentialDecay", "config": GOOD, "registered_name": {"module": "os"}},
        "'registered_name'",
    ),
    ("config not a dict", {"class_name": "ExponentialDecay", "config": "__import__('os')"}, "'config'"),
    ("config a list", {"class_name": "ExponentialDecay", "config": [0.1, 10, 0.5]}, "'config'"),
]
# A config key that is not an argument: TF-Keras's and Keras 3's TypeError (their
# `cls(**config)`), in its words, raised before anything is built.  `numerics` is
# an argument of ours, never in a Keras config.  Checked against TF-Keras and
# Keras 3 by tests/oracle/test_schedules_oracle.py and keras3_probes.py.
BAD_KEYS = [
    ("config unknown key", dict(GOOD, command="rm -rf /"), "ExponentialDecay.__init__() got an unexpected keyword argument 'command'"),
    ("config numerics", dict(GOOD, numerics="tf_eager"), "ExponentialDecay.__init__() got an unexpected keyword argument 'numerics'"),
    ("config non-str key", {**GOOD, 1: 2}, "keywords must be strings"),
]


class Tripwire:
    """Records imports and fails os.system / subprocess / importlib while armed."""

    def __init__(self, monkeypatch):
        import os
        import subprocess

        self.calls = []
        self.armed = False
        real_import = builtins.__import__

        def recording_import(name, *args, **kwargs):
            if self.armed:
                self.calls.append(("import", name))
            return real_import(name, *args, **kwargs)

        def forbidden(what, real):
            def f(*args, **kwargs):
                if self.armed:
                    self.calls.append((what, args))
                    raise AssertionError(f"{what} called")
                return real(*args, **kwargs)

            return f

        monkeypatch.setattr(builtins, "__import__", recording_import)
        monkeypatch.setattr(importlib, "import_module", forbidden("importlib.import_module", importlib.import_module))
        monkeypatch.setattr(os, "system", forbidden("os.system", os.system))
        monkeypatch.setattr(subprocess, "Popen", forbidden("subprocess.Popen", subprocess.Popen))

    def deserialize(self, config):
        """``S.deserialize(config)``; returns the exception it raised."""
        modules_before = set(sys.modules)
        self.armed = True
        try:
            S.deserialize(config)
        except Exception as e:  # noqa: BLE001 - inspected by the caller
            return e
        finally:
            self.armed = False
            assert set(sys.modules) == modules_before
        raise AssertionError(f"accepted: {config!r}")


@pytest.fixture
def tripwire(monkeypatch):
    return Tripwire(monkeypatch)


@pytest.mark.parametrize("label,config,field", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_config_rejected(label, config, field, tripwire):
    error = tripwire.deserialize(config)
    assert type(error) is ValueError, f"{label}: {type(error).__name__}: {error}"
    assert field in str(error), f"{label}: message does not name {field}: {error}"
    assert tripwire.calls == [], f"{label}: {tripwire.calls}"


@pytest.mark.parametrize("label,inner,message", BAD_KEYS, ids=[b[0] for b in BAD_KEYS])
def test_a_config_key_that_is_no_argument_is_kerass_type_error(label, inner, message, tripwire):
    error = tripwire.deserialize({"class_name": "ExponentialDecay", "config": inner})
    assert type(error) is TypeError and str(error) == message, f"{label}: {type(error).__name__}: {error}"
    assert tripwire.calls == [], f"{label}: {tripwire.calls}"


@pytest.mark.parametrize("config", [None, "ExponentialDecay", ["ExponentialDecay", GOOD], 42])
def test_non_dict_config_rejected(config, tripwire):
    error = tripwire.deserialize(config)
    assert type(error) is ValueError and "expected a dict" in str(error), error
    assert tripwire.calls == []


def test_tripwire_sees_imports(tripwire):
    # The tripwire itself works: an import while armed is recorded.
    tripwire.armed = True
    import json as _json  # noqa: F401

    tripwire.armed = False
    assert ("import", "json") in tripwire.calls
