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

Serialization: ``serialize`` equals TF-Keras's (both forms), and
``deserialize`` rebuilds equal schedules from TF-Keras's new and legacy
output and from Keras 3's.  End to end: SGD with a schedule, both families,
against TF-Keras over 300 steps.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import jaxopt_keras as jk
from harness import compare
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


def our_values(schedule, steps, kind: str, float_dtype) -> np.ndarray:
    """Ours under jit (scalar steps); asserts jit(vmap) and eager give the same bits."""
    if kind == "int":
        arr = jnp.asarray(steps, jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)
    else:
        arr = jnp.asarray(steps, float_dtype)
    mapped = np.asarray(jax.jit(lambda xs: jax.lax.map(schedule, xs))(arr))
    vmapped = np.asarray(jax.jit(jax.vmap(schedule))(arr))
    eager = np.array([np.asarray(schedule(arr[i])) for i in range(0, len(steps), EAGER_STRIDE)])
    assert np.all(ulp_distance(vmapped, mapped) == 0), f"{schedule}: jit(vmap) != jit(lax.map)"
    assert np.all(ulp_distance(eager, mapped[::EAGER_STRIDE]) == 0), f"{schedule}: eager != jit"
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
    )
