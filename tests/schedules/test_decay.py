"""The learning-rate schedules' values (``schedules/decay.py``), without TensorFlow.

Expected numbers come from independent computations, never from the module
under test:

* the algebraic schedules (inverse time, polynomial with ``power=1``,
  piecewise constant, exponential with ``decay_rate=0.5`` and a staircase) are
  recomputed operation by operation with NumPy float32 scalars, whose
  arithmetic is IEEE single precision with one rounding per operation and no
  fused multiply-adds: the schedule must match bit for bit, eagerly, under
  ``jit`` and under ``vmap``;
* cosine decay and SGDR are recomputed in float64 from their definitions (the
  SGDR period found by walking the periods, not by TF's ``log`` formula), to
  a few float32 epsilons of the peak rate.

Configs and serialization are ``test_schedule_serialization.py``; the
comparison with TF-Keras itself is ``tests/oracle/test_schedules_oracle.py``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_keras import schedules as S
from schedule_helpers import F32, assert_bitwise, eager, jit_scalar, jit_vmap

EPS32 = float(np.finfo(np.float32).eps)
STEPS = np.arange(0, 401)


# ---------------------------------------------------------------------------
# Independent NumPy float32 references (one IEEE rounding per operation).
# ---------------------------------------------------------------------------


def ref_inverse_time(lr0, decay_steps, decay_rate, staircase, step):
    p = F32(step) / F32(decay_steps)
    if staircase:
        p = np.floor(p)
    return F32(lr0) / (F32(1) + F32(decay_rate) * p)


def ref_polynomial_linear(lr0, decay_steps, end, cycle, step):
    s = F32(step)
    d = F32(decay_steps)
    if cycle:
        d = d * (F32(1) if s == 0 else np.ceil(s / F32(decay_steps)))
    else:
        s = min(s, d)
    p = s / d
    return (F32(lr0) - F32(end)) * (F32(1) - p) + F32(end)


def ref_exponential_halving(lr0, decay_steps, step):
    # 0.5 ** k is exact, so any faithful pow gives it exactly.
    k = int(np.floor(F32(step) / F32(decay_steps)))
    return F32(lr0) * F32(math.ldexp(1.0, -k))


def ref_piecewise(boundaries, values, step):
    for b, v in zip(boundaries, values):
        if step <= b:
            return F32(v)
    return F32(values[-1])


ALGEBRAIC = [
    (
        "inverse_time",
        S.InverseTimeDecay(0.1, 10, 0.5),
        lambda s: ref_inverse_time(0.1, 10, 0.5, False, s),
    ),
    (
        # decay_rate * p is inexact here: a fused multiply-add would show.
        "inverse_time_0.3",
        S.InverseTimeDecay(0.07, 7, 0.3),
        lambda s: ref_inverse_time(0.07, 7, 0.3, False, s),
    ),
    (
        "inverse_time_staircase",
        S.InverseTimeDecay(0.1, 7, 0.3, staircase=True),
        lambda s: ref_inverse_time(0.1, 7, 0.3, True, s),
    ),
    (
        # Reaches decay_steps: 1 - 300/300 must be exactly 0 (a reciprocal
        # multiply gives a tiny non-zero).
        "polynomial",
        S.PolynomialDecay(0.1, 300, end_learning_rate=0.001),
        lambda s: ref_polynomial_linear(0.1, 300, 0.001, False, s),
    ),
    (
        "polynomial_cycle",
        S.PolynomialDecay(0.1, 70, cycle=True),
        lambda s: ref_polynomial_linear(0.1, 70, 0.0001, True, s),
    ),
    (
        "polynomial_cycle_fractional_steps",
        S.PolynomialDecay(0.05, 33.3, end_learning_rate=0.01, cycle=True),
        lambda s: ref_polynomial_linear(0.05, 33.3, 0.01, True, s),
    ),
    (
        "exponential_staircase_halving",
        S.ExponentialDecay(0.1, 30, 0.5, staircase=True),
        lambda s: ref_exponential_halving(0.1, 30, s),
    ),
    (
        "piecewise",
        S.PiecewiseConstantDecay([100, 250, 399], [1.0, 0.5, 0.1, 0.01]),
        lambda s: ref_piecewise([100, 250, 399], [1.0, 0.5, 0.1, 0.01], s),
    ),
]


@pytest.mark.parametrize("label,schedule,ref", ALGEBRAIC, ids=[a[0] for a in ALGEBRAIC])
def test_algebraic_schedules_bit_exact_eager_jit_vmap(label, schedule, ref):
    expected = np.array([ref(int(s)) for s in STEPS], dtype=np.float32)
    assert_bitwise(jit_scalar(schedule, STEPS), expected, f"{label} jit")
    assert_bitwise(jit_vmap(schedule, STEPS), expected, f"{label} jit(vmap)")
    # Float steps (the legacy family's tf.cast(iterations, float32)).
    assert_bitwise(jit_scalar(schedule, STEPS.astype(np.float32)), expected, f"{label} jit, float steps")
    sub = STEPS[::19]
    assert_bitwise(eager(schedule, sub), expected[::19], f"{label} eager")


def test_polynomial_sqrt_reaches_end_rate_under_jit():
    # (1 - step / decay_steps) ** 0.5 at step == decay_steps: 0 ** 0.5 = 0,
    # so exactly end_learning_rate.  With the division compiled as a multiply
    # by float32(1/300), 1 - p came out negative and the rate NaN.
    s = S.PolynomialDecay(0.1, 300, end_learning_rate=0.0001, power=0.5)
    steps = np.array([300, 301, 450])
    for got in (jit_scalar(s, steps), jit_vmap(s, steps), eager(s, steps)):
        assert_bitwise(got, np.full(3, F32(0.0001)), "PolynomialDecay(power=0.5) at/after decay_steps")


def test_step_known_at_compile_time():
    # A constant step lets XLA fold everything; the numbers must not change.
    for s in (S.PolynomialDecay(0.1, 300, power=0.5), S.InverseTimeDecay(0.07, 7, 0.3)):
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


def test_traced_step_inside_scan_matches_eager():
    # The optimizers call the schedule on the traced iteration counter.
    s = S.CosineDecayRestarts(0.1, 20, t_mul=1.5, m_mul=0.8, alpha=0.1)

    def body(count, _):
        return count + 1, s(count)

    _, lrs = jax.jit(lambda: jax.lax.scan(body, jnp.int32(0), None, length=120))()
    assert_bitwise(np.asarray(lrs)[::11], eager(s, np.arange(120)[::11]), "scan vs eager")


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
        with pytest.raises(TypeError, match="initial_learning_rate"):
            s(3)


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
