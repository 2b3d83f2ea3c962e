"""``jaxopt_keras.schedules`` against ``tf_keras.optimizers.schedules``.

Values, ``"tf_eager"`` numerics.  Every schedule class in several
configurations, at steps 0..500, fed both as the current optimizer family
passes them (the integer ``iterations``; int64 in TF, int32/int64 here) and
as the legacy family does (``tf.cast(iterations, var_dtype)``, a float
step).  TF is run eagerly, one scalar step per call.  Ours is
evaluated under ``jit`` one scalar at a time (``lax.map``, as inside a
training step), under ``jit(vmap)`` over all steps, and eagerly on every
25th step; those three must agree bit for bit with each other.

Agreement with TF-Keras, float32 (Python float arguments):

* ``EXACT`` cases (only + - * / floor ceil min and comparisons, or a ``pow``
  whose result is representable: ``0.5 ** k``, ``x ** 1``): bit for bit.
* The others go through ``pow``, ``cos`` or ``log``, which XLA and Eigen
  implement independently, so only a bound is asserted: ``|ours - tf| <=
  TRANSCENDENTAL_BOUND * eps * peak``, ``peak`` the largest rate of the run.
  Justification: in every schedule the transcendental result ``t`` enters the
  rate as ``A * t + B`` with ``|A * t| <= peak`` (``cos`` and ``pow(x, p)``
  with ``x <= 1`` are at most 1 in magnitude; ``pow(decay_rate, p)`` with
  ``decay_rate > 1`` is bounded relatively, ``|A| * ulp(t) <= eps * peak``).
  Two implementations that are each faithful (error < 1 ulp) differ by at
  most one ulp of ``t``, i.e. ``eps * peak`` in the rate, and that can move
  each of the few roundings after it by at most one more half-ulp of the
  result: 2 eps x peak.  It is not a bound on ulps of the result: near the
  end of a cosine decay ``0.5 * (1 + cos(x))`` cancels, and an ulp of
  ``cos`` is thousands of ulps of the rate.  (SGDR's ``floor(log(..) /
  log(t_mul))`` is not covered: a different last bit there would restart a
  period a step early, which this test must report.)  Measured on x86-64
  with jax 0.10 / TF 2.21: 0 everywhere, i.e. bit for bit as well; the worst
  figures per schedule are printed in the session summary.

Float64 (``initial_learning_rate`` an ``np.float64``, x64 on; TF fed the same
values): same split with float64's eps (~2.2e-16 x peak, i.e. ~1e-15
relative at worst).

The three numerics, steps 0..2000, bit for bit, on configurations where
they part ways (``NUMERICS_CASES``; float32, and float64 for one of each
kind): ``"tf_function"`` against TF-Keras inside a ``tf.function`` that
returns the rate (as ``model.fit`` runs it), for integer steps and the
legacy family's float32 and float64 steps; ``"tf_eager"`` against TF-Keras
eagerly; ``"keras3"`` against Keras 3 on the JAX backend under ``jax.jit``
(and eagerly), in a subprocess (``keras3_schedules_runner.py``).

Serialization: ``serialize`` equals TF-Keras's (both forms), and
``deserialize`` rebuilds equal schedules from TF-Keras's new and legacy
output and from Keras 3's.  End to end: SGD with a schedule, both families,
against eager TF-Keras over 300 steps; and float64 SGD and Adam, both
families, against TF-Keras applying gradients inside ``tf.function``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import jaxopt_keras as jk
from harness import agreement, compare, jax_factory, make_problem, run_jax, run_tf, tf_class
from jaxopt_keras import schedules as S

TS = tf_keras.optimizers.schedules

STEPS = np.arange(0, 501)
STEPS_F64 = STEPS
EAGER_STRIDE = 25  # our eager path dispatches op by op: a sample suffices
TRANSCENDENTAL_BOUND = 2.0  # in eps x peak; see the module docstring

# (id, class name, constructor arguments, exact)
CASES = [
    ("exp", "ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=50, decay_rate=0.96), False),
    ("exp_staircase", "ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=50, decay_rate=0.96, staircase=True), False),
    ("exp_staircase_halving", "ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5, staircase=True), True),
    ("exp_growth", "ExponentialDecay", dict(initial_learning_rate=0.01, decay_steps=100, decay_rate=1.5, name="grow"), False),
    ("piecewise", "PiecewiseConstantDecay", dict(boundaries=[100, 250, 400], values=[1.0, 0.5, 0.1, 0.01]), True),
    ("piecewise_float_bounds", "PiecewiseConstantDecay", dict(boundaries=[10.5, 99.5], values=[0.3, 0.2, 0.1]), True),
    ("piecewise_int_values", "PiecewiseConstantDecay", dict(boundaries=[100, 300], values=[3, 2, 1]), True),
    ("poly", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=300), True),
    ("poly_end", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=300, end_learning_rate=0.01, name="p"), True),
    ("poly_cycle", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=70, cycle=True), True),
    ("poly_cycle_frac", "PolynomialDecay", dict(initial_learning_rate=0.05, decay_steps=33.3, end_learning_rate=0.01, cycle=True), True),
    ("poly_sqrt", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=300, power=0.5), False),
    ("poly_square_cycle", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=70, end_learning_rate=0.001, power=2.0, cycle=True), False),
    ("inv", "InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5), True),
    ("inv_0.3", "InverseTimeDecay", dict(initial_learning_rate=0.07, decay_steps=7, decay_rate=0.3), True),
    ("inv_staircase", "InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.3, staircase=True), True),
    ("cos", "CosineDecay", dict(initial_learning_rate=0.1, decay_steps=300), False),
    ("cos_alpha", "CosineDecay", dict(initial_learning_rate=0.1, decay_steps=250, alpha=0.1), False),
    ("cos_warmup", "CosineDecay", dict(initial_learning_rate=0.0, decay_steps=300, alpha=0.1, warmup_target=0.2, warmup_steps=100), False),
    ("cos_warmup_short", "CosineDecay", dict(initial_learning_rate=0.01, decay_steps=200, warmup_target=0.1, warmup_steps=50), False),
    ("sgdr", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=30), False),
    ("sgdr_10", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=10), False),
    ("sgdr_t1", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=30, t_mul=1.0, m_mul=0.9, alpha=0.05), False),
    ("sgdr_t1.5", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=20, t_mul=1.5, m_mul=0.8, alpha=0.1), False),
]
IDS = [c[0] for c in CASES]

# (class name, dtype name) -> [max ulps, max |diff| / (eps * peak)]
WORST: dict[tuple[str, str], list[float]] = {}


@pytest.fixture(scope="module", autouse=True)
def _summary(report):
    yield
    for (name, dtype), (ulps, scaled) in sorted(WORST.items()):
        report(
            f"schedules  {name:22s} {dtype}: max {ulps:.0f} ulp, max |diff| {scaled:.2f} eps x peak "
            "(vs TF-Keras, steps 0..500, integer and float steps)"
        )


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Units in the last place between same-dtype arrays (0 where bit-equal)."""
    if np.issubdtype(a.dtype, np.integer):
        return np.abs(a.astype(np.int64) - b.astype(np.int64)).astype(np.float64)
    ints = np.dtype(f"i{a.dtype.itemsize}")
    sign_mask = np.array(np.iinfo(ints).max, ints)

    def ordered(x):
        i = x.view(ints).astype(np.int64)
        return np.where(i < 0, -(i & sign_mask), i)

    # In integers: float64 would round away the last bits of a float64's pattern.
    return np.abs(ordered(a) - ordered(b)).astype(np.float64)


def tf_values(schedule, steps, kind: str, float_dtype) -> np.ndarray:
    """TF-Keras eagerly, one scalar step per call."""
    if kind == "int":
        tensors = [tf.constant(int(s), tf.int64) for s in steps]
    else:
        tensors = [tf.constant(float(s), float_dtype) for s in steps]
    return np.array([schedule(t).numpy() for t in tensors])


def our_values(schedule, steps, kind: str, float_dtype, consistency: bool = True, eager_stride: int = EAGER_STRIDE) -> np.ndarray:
    """Ours under jit (scalar steps); asserts jit(vmap) and eager give the same bits
    (unless ``consistency`` is false)."""
    if kind == "int":
        arr = jnp.asarray(steps, jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)
    else:
        arr = jnp.asarray(steps, float_dtype)
    mapped = np.asarray(jax.jit(lambda xs: jax.lax.map(schedule, xs))(arr))
    if consistency:
        vmapped = np.asarray(jax.jit(jax.vmap(schedule))(arr))
        eager = np.array([np.asarray(schedule(arr[i])) for i in range(0, len(steps), eager_stride)])
        assert np.all(ulp_distance(vmapped, mapped) == 0), f"{schedule}: jit(vmap) != jit(lax.map)"
        assert np.all(ulp_distance(eager, mapped[::eager_stride]) == 0), f"{schedule}: eager != jit"
    return mapped


def check_against_tf(case_id, name, exact, ours, theirs, steps, float_dtype):
    eps = float(np.finfo(float_dtype).eps)
    dtype_name = np.dtype(float_dtype).name
    for kind in ("int", "float"):
        expected = tf_values(theirs, steps, kind, float_dtype)
        got = our_values(ours, steps, kind, float_dtype)
        assert got.dtype == expected.dtype, f"{case_id} {kind} steps: dtype {got.dtype} != TF's {expected.dtype}"
        assert np.all(np.isfinite(got)), f"{case_id} {kind} steps: non-finite rates"
        ulps = ulp_distance(got, expected)
        peak = float(np.max(np.abs(expected)))
        scaled = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)))) / (eps * peak)
        worst = WORST.setdefault((name, dtype_name), [0.0, 0.0])
        worst[0] = max(worst[0], float(ulps.max()))
        worst[1] = max(worst[1], scaled)
        where = int(np.argmax(ulps))
        detail = f"{case_id} {kind} steps: at step {steps[where]} ours {got[where]!r}, TF {expected[where]!r}"
        if exact:
            assert ulps.max() == 0, f"not bit-exact: {int(np.sum(ulps > 0))} steps differ; {detail}"
        else:
            assert scaled <= TRANSCENDENTAL_BOUND, f"|diff| = {scaled:.2f} eps x peak; {detail}"


@pytest.mark.parametrize("case_id,name,kwargs,exact", CASES, ids=IDS)
def test_values_float32(case_id, name, kwargs, exact):
    ours = getattr(S, name)(**kwargs, numerics="tf_eager")
    theirs = getattr(TS, name)(**kwargs)
    check_against_tf(case_id, name, exact, ours, theirs, STEPS, np.float32)


def _as_float64(kwargs: dict) -> dict:
    """The learning-rate values as np.float64; the other arguments as they are."""
    out = dict(kwargs)
    if "initial_learning_rate" in out:
        out["initial_learning_rate"] = np.float64(out["initial_learning_rate"])
    if "values" in out and isinstance(out["values"][0], float):
        out["values"] = [np.float64(v) for v in out["values"]]
    return out


@pytest.mark.parametrize(
    "case_id,name,kwargs,exact", [c for c in CASES if c[0] != "piecewise_int_values"], ids=[i for i in IDS if i != "piecewise_int_values"]
)
def test_values_float64(case_id, name, kwargs, exact):
    kwargs = _as_float64(kwargs)
    with jax.enable_x64(True):
        ours = getattr(S, name)(**kwargs, numerics="tf_eager")
        theirs = getattr(TS, name)(**kwargs)
        check_against_tf(case_id, name, exact, ours, theirs, STEPS_F64, np.float64)


# ---------------------------------------------------------------------------
# The three numerics, steps 0..2000, bit for bit.
# ---------------------------------------------------------------------------

LONG_STEPS = np.arange(0, 2001)

# Where the numerics part ways (docs/numerics.md, "Learning-rate schedules"):
# grappler's reciprocal multiply moves stairs, cycles and restarts when
# decay_steps is 41 or 7; ConvertPow makes each special power a case of its
# own; alpha == 0 and t_mul == 1 change which constants are folded.
NUMERICS_CASES = [
    ("exp", "ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=100, decay_rate=0.96)),
    ("exp_37", "ExponentialDecay", dict(initial_learning_rate=1e-3, decay_steps=37, decay_rate=0.5)),
    ("exp_staircase_41", "ExponentialDecay", dict(initial_learning_rate=0.01, decay_steps=41, decay_rate=0.5, staircase=True)),
    ("exp_growth", "ExponentialDecay", dict(initial_learning_rate=0.01, decay_steps=300, decay_rate=2.0)),
    ("piecewise", "PiecewiseConstantDecay", dict(boundaries=[300, 900], values=[0.1, 0.01, 0.001])),
    ("poly", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=1000, end_learning_rate=1e-4)),
    ("poly_p2", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=1000, end_learning_rate=1e-4, power=2.0)),
    ("poly_p3", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=1000, end_learning_rate=1e-4, power=3.0)),
    ("poly_p3_end0", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=1000, end_learning_rate=0.0, power=3.0)),
    ("poly_p0.5", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=1000, end_learning_rate=1e-4, power=0.5)),
    ("poly_p-0.5", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=1000, end_learning_rate=1e-4, power=-0.5)),
    ("poly_p-1", "PolynomialDecay", dict(initial_learning_rate=0.21329447627067566, decay_steps=2584, end_learning_rate=0.0, power=-1.0)),
    ("poly_p1.7", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=777, end_learning_rate=0.001, power=1.7)),
    ("poly_p2_slow", "PolynomialDecay", dict(initial_learning_rate=0.002067162189632654, decay_steps=1019, end_learning_rate=0.0009249482592521529, power=2.0)),
    ("poly_cycle_7", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=7, end_learning_rate=1e-4, cycle=True)),
    ("poly_p0.5_cycle", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=300, end_learning_rate=1e-4, power=0.5, cycle=True)),
    ("poly_p0.5_cycle_173", "PolynomialDecay", dict(initial_learning_rate=0.6776704788208008, decay_steps=173, end_learning_rate=0.07241472247264547, power=0.5, cycle=True)),
    ("poly_p2_cycle_frac", "PolynomialDecay", dict(initial_learning_rate=0.22428709268569946, decay_steps=469.5, end_learning_rate=0.0, power=2.0, cycle=True)),
    ("poly_p-1_cycle", "PolynomialDecay", dict(initial_learning_rate=0.026654822751879692, decay_steps=26, end_learning_rate=0.0, power=-1.0, cycle=True)),
    ("inv", "InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=100, decay_rate=0.5)),
    ("inv_0.3", "InverseTimeDecay", dict(initial_learning_rate=0.07, decay_steps=7, decay_rate=0.3)),
    ("inv_staircase_41", "InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=41, decay_rate=0.5, staircase=True)),
    ("cos", "CosineDecay", dict(initial_learning_rate=0.1, decay_steps=1000)),
    ("cos_alpha", "CosineDecay", dict(initial_learning_rate=0.1, decay_steps=1500, alpha=0.1)),
    ("cos_warmup", "CosineDecay", dict(initial_learning_rate=0.01, decay_steps=1000, alpha=0.1, warmup_target=0.1, warmup_steps=200)),
    ("sgdr", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=100)),
    ("sgdr_t1_41", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=41, t_mul=1.0)),
    ("sgdr_t1_alpha", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=150, t_mul=1.0, m_mul=0.9, alpha=0.05)),
    ("sgdr_t1.5", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=70, t_mul=1.5, m_mul=0.8, alpha=0.01)),
    ("sgdr_t1.3", "CosineDecayRestarts", dict(initial_learning_rate=0.03, first_decay_steps=53, t_mul=1.3, m_mul=0.7)),
    # XLA's log(t_mul) differs from TF's in the last bit: the first restart
    # (log_arg == t_mul) must still come on time eagerly, and a step late in
    # TF's graph for the second (log(t) * fl(1/log(t)) < 1).
    ("sgdr_first_restart", "CosineDecayRestarts", dict(initial_learning_rate=0.003588371677324176, first_decay_steps=1119, t_mul=2.2009673280695234, m_mul=0.639464073263811, alpha=0.17763850241523416)),
    ("sgdr_late_restart", "CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=1339, t_mul=1.7902496854812693)),
]
NUMERICS_IDS = [c[0] for c in NUMERICS_CASES]
# In float64 too, one of each kind (TF-Keras's own float64 PolynomialDecay(cycle=True)
# fails in a graph: tf.where meets a float32 1.0).
NUMERICS_F64 = [
    c
    for c in NUMERICS_CASES
    if c[0] in {"exp", "exp_staircase_41", "poly_p2", "poly_p3", "poly_p-1", "poly_p1.7", "inv", "inv_staircase_41",
                "cos", "cos_alpha", "sgdr_t1_41", "sgdr_t1.5", "sgdr_t1.3", "sgdr_first_restart"}
]

# (numerics, dtype name) -> [steps compared, steps where the reference's two ways of running differ, of how many]
NUMERICS_SEEN: dict[tuple[str, str], list[int]] = {}


@pytest.fixture(scope="module", autouse=True)
def _numerics_summary(report):
    yield
    for (numerics, dtype), (steps, moved, of) in sorted(NUMERICS_SEEN.items()):
        reference = "Keras 3 jit vs eager" if numerics == "keras3" else "TF graph vs eager"
        report(f"schedules  numerics={numerics:11s} {dtype}: bit for bit on {steps} steps ({reference}: {moved} of {of} differ)")


def tf_graph_values(schedule, steps, step_dtype, float_dtype) -> np.ndarray:
    """TF-Keras inside a ``tf.function`` that returns the rate, as ``model.fit`` runs it.

    The function has an output, so grappler rewrites the schedule as in a
    train step.  For speed, one call maps the schedule over all the steps
    (``tf.map_fn``: a loop whose body is the schedule on one scalar step);
    every 50th step is also computed by a call of its own, and must agree.
    """
    cast = int if step_dtype == np.int64 else float
    out = tf.as_dtype(float_dtype)
    mapped = tf.function(lambda xs: tf.map_fn(schedule, xs, fn_output_signature=out))
    values = mapped(tf.constant(steps, step_dtype)).numpy()
    one = tf.function(lambda step: schedule(step)).get_concrete_function(tf.TensorSpec([], step_dtype))
    single = np.array([one(tf.constant(cast(s), step_dtype)).numpy() for s in steps[::50]])
    assert np.all(ulp_distance(values[::50], single) == 0), "tf.map_fn in a tf.function != one tf.function call per step"
    return values


def our_numerics_values(schedule, numerics, steps, step_dtype) -> np.ndarray:
    """Ours under jit (scalar steps); with integer steps, asserts that jit(vmap)
    and eager (every 100th step) give the same bits."""
    lr = lambda step: schedule.evaluate(step, numerics)  # noqa: E731
    if step_dtype == np.int64:
        return our_values(lr, steps, "int", step_dtype, eager_stride=100)
    return our_values(lr, steps, "float", step_dtype, consistency=False)


def assert_bits(got, expected, label, steps):
    assert got.dtype == expected.dtype, f"{label}: dtype {got.dtype} != TF's {expected.dtype}"
    bad = np.flatnonzero(ulp_distance(got, expected) != 0)
    assert bad.size == 0, (
        f"{label}: {bad.size} of {len(steps)} steps differ, first at step {steps[bad[0]]}: "
        f"ours {got[bad[0]]!r}, TF {expected[bad[0]]!r}"
    )


def _step_kinds(name, float_dtype):
    """(step dtype, steps for tf_function, steps for tf_eager) the families feed.

    tf_function: the integer count (current family) and ``tf.cast(iterations,
    float64)`` (legacy, float64 variables) on every step,
    ``tf.cast(iterations, float32)`` (legacy, float32 variables) on every
    10th.  tf_eager: TF's eager calls are the slow part of this test, and
    tf_eager is compared on every step 0..500 above, so here every integer
    step for PolynomialDecay (whose special powers used to miss on a few
    steps beyond 500), every 10th otherwise, and every 20th float step.
    """
    eager_int = LONG_STEPS if name == "PolynomialDecay" else LONG_STEPS[::10]
    kinds = [(np.int64, LONG_STEPS, eager_int), (np.float64, LONG_STEPS, LONG_STEPS[::20])]
    if float_dtype == np.float32:
        kinds.append((np.float32, LONG_STEPS[::10], LONG_STEPS[::20]))
    return kinds


def check_tf_numerics(case_id, name, kwargs, float_dtype):
    theirs = getattr(TS, name)(**kwargs)
    ours = getattr(S, name)(**kwargs)
    dtype_name = np.dtype(float_dtype).name
    for step_dtype, graph_steps, eager_steps in _step_kinds(name, float_dtype):
        kind = "int" if step_dtype == np.int64 else "float"
        label = f"{case_id} {np.dtype(step_dtype).name} steps"
        with jax.enable_x64(float_dtype == np.float64 or step_dtype == np.float64):
            graph = tf_graph_values(theirs, graph_steps, step_dtype, float_dtype)
            eager = tf_values(theirs, eager_steps, kind, step_dtype)
            assert_bits(our_numerics_values(ours, "tf_function", graph_steps, step_dtype), graph, f"tf_function {label}", graph_steps)
            assert_bits(our_numerics_values(ours, "tf_eager", eager_steps, step_dtype), eager, f"tf_eager {label}", eager_steps)
        NUMERICS_SEEN.setdefault(("tf_function", dtype_name), [0, 0, 0])[0] += len(graph_steps)
        NUMERICS_SEEN.setdefault(("tf_eager", dtype_name), [0, 0, 0])[0] += len(eager_steps)
        if kind == "int":
            moved = int(np.sum(ulp_distance(graph[np.isin(graph_steps, eager_steps)], eager) != 0))
            for numerics in ("tf_function", "tf_eager"):
                NUMERICS_SEEN[(numerics, dtype_name)][1] += moved
                NUMERICS_SEEN[(numerics, dtype_name)][2] += len(eager_steps)


@pytest.mark.parametrize("case_id,name,kwargs", NUMERICS_CASES, ids=NUMERICS_IDS)
def test_tf_numerics_float32(case_id, name, kwargs):
    check_tf_numerics(case_id, name, kwargs, np.float32)


@pytest.mark.parametrize("case_id,name,kwargs", NUMERICS_F64, ids=[c[0] for c in NUMERICS_F64])
def test_tf_numerics_float64(case_id, name, kwargs):
    check_tf_numerics(case_id, name, _as_float64(kwargs), np.float64)


KERAS3_SINGLE_STRIDE = 10  # Keras 3 steps jitted one call at a time: every 10th step


def _keras3_values(numerics_cases, x64: bool) -> dict:
    """Keras 3's values of the schedules on the JAX backend, x64 on or off (one subprocess)."""
    cases = [[name, kwargs] for _, name, kwargs in numerics_cases]
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS="", JAX_PLATFORMS="cpu")
    env.pop("JAX_ENABLE_X64", None)
    if x64:
        env["JAX_ENABLE_X64"] = "1"
    proc = subprocess.run(
        [sys.executable, os.path.join(os.path.dirname(__file__), "keras3_schedules_runner.py"),
         json.dumps(cases), str(len(LONG_STEPS)), str(KERAS3_SINGLE_STRIDE)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])

    def values(raw, dtype):
        return np.asarray(raw, np.dtype(f"u{np.dtype(dtype).itemsize}")).view(dtype)

    result = {}
    for (case_id, _, _), jitted, single, eager, dtype in zip(numerics_cases, out["jit"], out["jit_single"], out["eager"], out["dtype"]):
        jitted, single = values(jitted, dtype), values(single, dtype)
        # The runner maps the schedule over all steps in one jitted call; a
        # sample of steps also ran as jitted calls of their own, as Keras 3's
        # optimizer runs it, and must give the same bits.
        sample = LONG_STEPS[::KERAS3_SINGLE_STRIDE]
        assert len(single) == len(sample), f"{case_id}: {len(single)} per-step values from Keras 3, not {len(sample)}"
        assert_bits(jitted[sample], single, f"Keras 3 {case_id}: jit(lax.map) against a jitted call per step", sample)
        result[case_id] = (jitted, values(eager, dtype))
    return result


@pytest.fixture(scope="module")
def keras3_jax_values():
    return _keras3_values(NUMERICS_CASES, x64=False)


# With x64, Keras 3 computes a Python float's schedule in float64, but its JAX
# backend computes `ops.cos`/`ops.floor` of a float64 in float32 (CosineDecay's
# and CosineDecayRestarts' rates mix both); ours follows it op for op.
NUMERICS_X64 = NUMERICS_F64 + [
    ("cos_warmup", "CosineDecay", dict(initial_learning_rate=0.0, decay_steps=700, alpha=0.1, warmup_target=0.05, warmup_steps=100)),
    # step / decay_steps within a float32 ulp of an integer: ops.floor / ops.ceil round it first.
    ("exp_staircase_f32", "ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=1.00000001, decay_rate=0.999, staircase=True)),
    ("inv_staircase_f32", "InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=1.00000001, decay_rate=0.5, staircase=True)),
    ("poly_cycle_f32", "PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=0.99999999, end_learning_rate=0.01, cycle=True)),
]


@pytest.fixture(scope="module")
def keras3_jax_values_x64():
    return _keras3_values(NUMERICS_X64, x64=True)


@pytest.mark.parametrize("case_id,name,kwargs", NUMERICS_X64, ids=[c[0] for c in NUMERICS_X64])
def test_keras3_numerics_x64(case_id, name, kwargs, keras3_jax_values_x64):
    jitted, _ = keras3_jax_values_x64[case_id]
    with jax.enable_x64(True):
        ours = getattr(S, name)(**kwargs, numerics="keras3")
        steps = jnp.asarray(LONG_STEPS, jnp.int32)
        mapped = np.asarray(jax.jit(lambda xs: jax.lax.map(ours, xs))(steps))
    assert_bits(mapped, jitted, f"keras3 x64 {case_id}, jit(lax.map)", LONG_STEPS)


@pytest.mark.parametrize("case_id,name,kwargs", NUMERICS_CASES, ids=NUMERICS_IDS)
def test_keras3_numerics(case_id, name, kwargs, keras3_jax_values):
    # As Keras 3's optimizer runs it: a jitted call per step, an int32 step.
    # Our optimizers evaluate it inside a jitted step (lax.map stands for it).
    ours = getattr(S, name)(**kwargs, numerics="keras3")
    jitted, eager = keras3_jax_values[case_id]
    steps = jnp.asarray(LONG_STEPS, jnp.int32)
    mapped = np.asarray(jax.jit(lambda xs: jax.lax.map(ours, xs))(steps))
    assert_bits(mapped, jitted, f"keras3 {case_id}, jit(lax.map)", LONG_STEPS)
    lr = jax.jit(lambda step: ours(step))
    assert_bits(np.array([lr(s) for s in steps[::10]]), jitted[::10], f"keras3 {case_id}, jit per step", LONG_STEPS[::10])
    # Run eagerly, it is what Keras 3 computes eagerly (run_eagerly=True).
    strided = LONG_STEPS[::100]
    assert_bits(np.array([np.asarray(ours(s)) for s in steps[::100]]), eager, f"keras3 {case_id}, eager", strided)
    seen = NUMERICS_SEEN.setdefault(("keras3", jitted.dtype.name), [0, 0, 0])
    seen[0] += len(LONG_STEPS)
    seen[1] += int(np.sum(ulp_distance(jitted[::100], eager) != 0))
    seen[2] += len(strided)


# ---------------------------------------------------------------------------
# Serialization.
# ---------------------------------------------------------------------------

SOME_STEPS = np.arange(0, 501, 20)


def assert_same_values(ours, tf_schedule, exact, label):
    expected = tf_values(tf_schedule, SOME_STEPS, "int", np.float32)
    got = our_values(lambda step: ours.evaluate(step, "tf_eager"), SOME_STEPS, "int", np.float32)
    assert got.dtype == expected.dtype, label
    if exact:
        assert np.all(ulp_distance(got, expected) == 0), f"{label}: {got} != {expected}"
    else:
        peak = float(np.max(np.abs(expected)))
        err = float(np.max(np.abs(got.astype(np.float64) - expected))) / (np.finfo(np.float32).eps * peak)
        assert err <= TRANSCENDENTAL_BOUND, f"{label}: {err:.2f} eps x peak"


@pytest.mark.parametrize("case_id,name,kwargs,exact", CASES, ids=IDS)
def test_serialize_matches_tf_keras(case_id, name, kwargs, exact):
    ours = getattr(S, name)(**kwargs)
    theirs = getattr(TS, name)(**kwargs)
    assert S.serialize(ours) == TS.serialize(theirs)
    assert S.serialize(ours, use_legacy_format=True) == TS.serialize(theirs, use_legacy_format=True)
    # TF-Keras reads ours back.
    assert TS.deserialize(S.serialize(ours)).get_config() == theirs.get_config()
    assert TS.deserialize(S.serialize(ours, use_legacy_format=True), use_legacy_format=True).get_config() == theirs.get_config()


@pytest.mark.parametrize("case_id,name,kwargs,exact", CASES, ids=IDS)
def test_deserialize_tf_keras_output(case_id, name, kwargs, exact):
    theirs = getattr(TS, name)(**kwargs)
    for legacy in (False, True):
        blob = TS.serialize(theirs, use_legacy_format=legacy)
        rebuilt = S.deserialize(blob)
        assert type(rebuilt) is getattr(S, name)
        assert rebuilt == getattr(S, name)(**kwargs)
        assert rebuilt.get_config() == theirs.get_config()
    assert_same_values(rebuilt, theirs, exact, f"{case_id} from TF-Keras")


BAD_CONFIGS = {
    "unknown key": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5, "foo": 1},
    "numerics": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5, "numerics": "tf_eager"},
    "non-string key": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5, 1: 2},
}


@pytest.mark.parametrize("legacy_format", [False, True])
@pytest.mark.parametrize("label", list(BAD_CONFIGS))
def test_a_config_key_that_is_no_argument_is_the_error_of_tf_keras(label, legacy_format):
    """A schedule config with a key that is not an argument: TF-Keras's exception
    type and message (its `cls(**config)`: a TypeError), in both formats."""
    config = {"class_name": "ExponentialDecay", "config": dict(BAD_CONFIGS[label])}
    if not legacy_format:
        config = {"module": "keras.optimizers.schedules", **config, "registered_name": None}
    with pytest.raises(Exception) as theirs:
        TS.deserialize(dict(config, config=dict(config["config"])), use_legacy_format=legacy_format)
    with pytest.raises(Exception) as ours:
        S.deserialize(config, use_legacy_format=legacy_format)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


SCHEDULE_NAMES = ["ExponentialDecay", "InverseTimeDecay", "PiecewiseConstantDecay", "PolynomialDecay", "CosineDecay", "CosineDecayRestarts"]


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_a_wrong_call_is_named_as_tf_keras_names_it(name):
    """A constructor called without its arguments, or with one it lacks, and a
    config missing them: TF-Keras's TypeError, the class named as TF-Keras names it."""
    calls = [
        lambda m: getattr(m, name)(),
        lambda m: getattr(m, name)(0.1, 10, foo=1),
        lambda m: getattr(m, name).from_config({"foo": 1}),
        lambda m: m.deserialize({"class_name": name, "config": {}}),
    ]
    for call in calls:
        with pytest.raises(Exception) as theirs:
            call(TS)
        with pytest.raises(Exception) as ours:
            call(S)
        assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


def test_serialize_custom_class_matches_tf_keras():
    # The same user class on both sides (same module, same name): TF-Keras
    # writes its module and, unregistered, its name as registered_name.
    def halving(base):
        class Halving(base):
            def __init__(self, initial_learning_rate):
                self.initial_learning_rate = initial_learning_rate

            def __call__(self, step):
                return self.initial_learning_rate / 2

            def get_config(self):
                return {"initial_learning_rate": self.initial_learning_rate}

        return Halving

    assert S.serialize(halving(S.LearningRateSchedule)(0.1)) == TS.serialize(halving(TS.LearningRateSchedule)(0.1))
    # A class of a script (module `__main__`): TF-Keras writes its module as None.
    mine, theirs = halving(S.LearningRateSchedule), halving(TS.LearningRateSchedule)
    mine.__module__ = theirs.__module__ = "__main__"
    assert S.serialize(mine(0.1))["module"] is None
    assert S.serialize(mine(0.1)) == TS.serialize(theirs(0.1))
    in_ours = jk.optimizers.serialize(jk.optimizers.Adam(mine(0.1)))["config"]["learning_rate"]
    assert in_ours == tf_keras.optimizers.serialize(tf_keras.optimizers.Adam(theirs(0.1)))["config"]["learning_rate"]


def test_serialize_numpy_arguments_matches_tf_keras():
    # NumPy scalars become Python numbers and arrays Keras's "__numpy__" dicts,
    # as TF-Keras writes them (`serialize_keras_object`): JSON, both ways.
    cases = [
        ("ExponentialDecay", dict(initial_learning_rate=np.float32(0.1), decay_steps=np.int64(100), decay_rate=np.float32(0.96))),
        ("PiecewiseConstantDecay", dict(boundaries=np.array([10, 20]), values=np.array([0.1, 0.01, 0.001]))),
    ]
    for name, kwargs in cases:
        ours, theirs = getattr(S, name)(**kwargs), getattr(TS, name)(**kwargs)
        blob = S.serialize(ours)
        assert blob == TS.serialize(theirs), name
        assert json.loads(json.dumps(blob)) == blob
        # The legacy form is the config as it is, in both.
        legacy = S.serialize(ours, use_legacy_format=True)
        assert legacy["config"].keys() == TS.serialize(theirs, use_legacy_format=True)["config"].keys()
        assert all(legacy["config"][k] is v for k, v in ours.get_config().items())
        # (TF-Keras's PiecewiseConstantDecay flattens an array argument into one
        # tensor and fails at its first call, which the current SGD makes.)
        for family in ("current", "legacy") if name == "ExponentialDecay" else ():
            opt = tf_class(family, "SGD")(learning_rate=theirs)
            ours_opt = getattr(jk.optimizers.legacy if family == "legacy" else jk.optimizers, "SGD")(learning_rate=ours)
            assert ours_opt.get_config()["learning_rate"] == opt.get_config()["learning_rate"], (name, family)
        # Read back (TF-Keras's own deserialize passes the "__numpy__" dicts to
        # the constructor): the same schedule, the same numbers.
        rebuilt = S.deserialize(json.loads(json.dumps(S.serialize(ours))))
        for key, value in kwargs.items():
            got = getattr(rebuilt, key)
            assert np.array_equal(got, value), (name, key)
            if isinstance(value, np.ndarray):
                assert isinstance(got, np.ndarray) and got.dtype == value.dtype, (name, key)
        # (TF-Keras's numbers for an array argument are those of its list.)
        plain_kwargs = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
        assert_same_values(rebuilt, getattr(TS, name)(**plain_kwargs), True, f"{name} with NumPy arguments")


@pytest.mark.parametrize(
    "blob",
    [
        {"class_name": "__numpy__", "config": {"value": [1, 2]}},
        {"class_name": "__numpy__", "config": {"value": [1, 2], "dtype": "object"}},
        {"class_name": "__numpy__", "config": {"value": [1, 2], "dtype": "no_such_dtype"}},
        {"class_name": "__numpy__", "config": {"value": ["a", "b"], "dtype": "float32"}},
        {"class_name": "__numpy__", "config": None},
    ],
)
def test_deserialize_refuses_a_malformed_numpy_argument(blob):
    config = {"class_name": "PiecewiseConstantDecay", "config": {"boundaries": blob, "values": [0.1, 0.01, 0.001]}}
    with pytest.raises(ValueError, match="'boundaries' of the serialized PiecewiseConstantDecay"):
        S.deserialize(config)


PIECEWISE_MIXED = [[1, 0.5, 0.1], [0.5, 1, 2], [np.float64(0.5), 0.25, 0.125]]


@pytest.mark.parametrize("values", PIECEWISE_MIXED, ids=["int_first", "float_first", "float64_first"])
def test_piecewise_values_of_different_types(values):
    # TF-Keras's tf.case: eagerly each value in its own dtype; inside
    # tf.function one cond whose branches disagree, a TypeError.
    boundaries = [10, 20]
    theirs = TS.PiecewiseConstantDecay(boundaries, values)
    ours = S.PiecewiseConstantDecay(boundaries, values)
    steps = range(0, 31)
    with jax.enable_x64(True):
        for step in steps:
            expected = theirs(tf.constant(step, tf.int64)).numpy()
            got = np.asarray(ours.evaluate(jnp.asarray(step, jnp.int64), "tf_eager"))
            assert got.dtype == expected.dtype and got == expected, (step, got, expected)
        # A jitted step chooses in a float dtype that holds every value: the
        # same numbers, and the same again cast back to each value's dtype.
        jitted = np.asarray(jax.jit(jax.vmap(lambda s: ours.evaluate(s, "tf_eager")))(jnp.arange(31)))
        assert jitted.dtype.kind == "f"
        for step in steps:
            expected = theirs(tf.constant(step, tf.int64)).numpy()
            assert jitted[step] == expected and jitted[step].astype(expected.dtype) == expected, (step, jitted[step])
        with pytest.raises(TypeError, match="different types.*numerics='tf_eager'"):
            ours(15)  # called directly: "tf_function"
        with pytest.raises(TypeError, match="different types"):
            jk.legacy.sgd(learning_rate=ours).update(jnp.ones(2), jk.legacy.sgd(1.0).init(jnp.zeros(2)), jnp.zeros(2))
    with pytest.raises(TypeError, match="have different types"):
        tf.function(theirs)(tf.constant(15, tf.int64))


def test_legacy_sgd_with_piecewise_values_of_different_types(report):
    # Run eagerly, the legacy optimizer casts each value to the variable's
    # dtype (`_decayed_lr`): it trains through all three values.  (The current
    # family eagerly raises a ValueError where the value's dtype changes,
    # which no run ported from it can have passed.)
    kwargs = dict(boundaries=[100, 200], values=[1, 0.05, 0.01])
    compare(
        report,
        "schedules  legacy SGD(learning_rate=PiecewiseConstantDecay(values=[1, 0.05, 0.01]))",
        "legacy",
        "SGD",
        dict(learning_rate=TS.PiecewiseConstantDecay(**kwargs), momentum=0.9),
        lambda: jk.legacy.sgd(learning_rate=S.PiecewiseConstantDecay(**kwargs, numerics="tf_eager"), momentum=0.9),
        np.float32,
        graph=False,  # eager TF on purpose: inside tf.function, tf.case refuses the mixed types
    )


@pytest.fixture(scope="module")
def keras3():
    """Keras 3 (``import keras``), on its default TensorFlow backend."""
    saved = os.environ.pop("KERAS_BACKEND", None)
    try:
        import keras
    finally:
        if saved is not None:
            os.environ["KERAS_BACKEND"] = saved
    assert keras.__version__.split(".")[0] == "3", keras.__version__
    return keras


@pytest.mark.parametrize("case_id,name,kwargs,exact", CASES, ids=IDS)
def test_deserialize_keras3_output(case_id, name, kwargs, exact, keras3):
    k = getattr(keras3.optimizers.schedules, name)(**kwargs)
    blob = keras3.optimizers.schedules.serialize(k)
    rebuilt = S.deserialize(blob)
    assert type(rebuilt) is getattr(S, name)
    # Keras 3 fills in a default `name`; everything else is as given.
    assert rebuilt.get_config() == k.get_config()
    assert rebuilt == getattr(S, name)(**dict(kwargs, name=k.get_config()["name"]))
    # Same numbers as TF-Keras built from Keras 3's config.
    assert_same_values(rebuilt, getattr(TS, name).from_config(k.get_config()), exact, f"{case_id} from Keras 3")


# ---------------------------------------------------------------------------
# End to end: an optimizer driven by a schedule.
# ---------------------------------------------------------------------------

E2E = [
    # power 0.5 reaches decay_steps at step 200 of 300: the step where a
    # jitted (1 - step/decay_steps) ** 0.5 used to be NaN.
    ("SGD", "PolynomialDecay", dict(initial_learning_rate=0.05, decay_steps=200, end_learning_rate=0.001, power=0.5)),
    ("SGD", "CosineDecayRestarts", dict(initial_learning_rate=0.05, first_decay_steps=40, t_mul=1.5, m_mul=0.8, alpha=0.1)),
]


@pytest.mark.parametrize("family", ["current", "legacy"])
@pytest.mark.parametrize("opt,name,kwargs", E2E, ids=[e[1] for e in E2E])
def test_optimizer_with_schedule(report, family, opt, name, kwargs):
    # TF runs eagerly here: the schedule's tf_eager numerics.
    factory = jk.legacy.sgd if family == "legacy" else jk.sgd
    compare(
        report,
        f"schedules  {family} {opt}(learning_rate={name})",
        family,
        opt,
        dict(learning_rate=getattr(TS, name)(**kwargs), momentum=0.9),
        lambda: factory(learning_rate=getattr(S, name)(**kwargs, numerics="tf_eager"), momentum=0.9),
        np.float32,
        graph=False,  # eager TF on purpose: the tf_eager numerics (the tf.function one: below)
    )


# As model.fit runs the optimizer: each step in a tf.function that returns a
# value (harness.run_tf(graph=True)), float64 variables, 200 steps.  The
# schedules differ from their eager values on many of these steps (and
# ExponentialDecay(staircase, 41) by a whole factor on steps 41, 82 and 164).
E2E_GRAPH = [
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=150, end_learning_rate=1e-4, power=1.7)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=70, t_mul=1.5, m_mul=0.8, alpha=0.01)),
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=41, decay_rate=0.5, staircase=True)),
]
GRAPH_TOLERANCE = 1e-14  # of the distance moved; TF's graph also rewrites Adam's own scalars


@pytest.mark.parametrize("family", ["current", "legacy"])
@pytest.mark.parametrize("opt", ["SGD", "Adam"])
@pytest.mark.parametrize("name,kwargs", E2E_GRAPH, ids=[e[0] for e in E2E_GRAPH])
def test_optimizer_with_schedule_as_model_fit_runs_it(report, family, opt, name, kwargs):
    tf_kwargs = dict(learning_rate=getattr(TS, name)(**kwargs))
    if opt == "SGD":
        tf_kwargs["momentum"] = 0.9
    with jax.enable_x64(True):
        params, grads = make_problem(np.float64, steps=200)
        theirs, _ = run_tf(lambda: tf_class(family, opt)(**tf_kwargs), params, grads, graph=True)

        def ours(numerics):
            schedule = getattr(S, name)(**kwargs, numerics=numerics)
            return run_jax(jax_factory(family, opt)(**dict(tf_kwargs, learning_rate=schedule)), params, grads)[0]

        before = agreement(ours("tf_eager"), theirs, params)  # the schedule as TF computes it eagerly
        after = agreement(ours(None), theirs, params)  # the family's default: tf_function
    report(
        f"schedules  {family} {opt}(learning_rate={name}) float64 vs TF in tf.function, 200 steps: "
        f"rel {after.relative:.1e} (tf_eager schedule: {before.relative:.1e})"
    )
    assert after.moved > 0.01
    assert after.relative <= GRAPH_TOLERANCE, f"{after.relative:.2e} of the distance moved"
    assert before.relative > 100 * GRAPH_TOLERANCE, "the eager schedule should not match the graph this well"
