"""bfloat16 and float16 parameters against TF-Keras.

Keras computes every slot in the parameter's dtype, so low-precision training
inherits the roundings of the hyperparameters: in bfloat16, ``beta_2=0.999``
becomes exactly 1, legacy Adam's step size ``sqrt(1 - beta_2**t)`` is 0 and
legacy Nadam divides by zero.  We reproduce those outcomes (same NaN pattern,
same frozen parameters) rather than "fixing" them.

Tolerances:

* bfloat16: both sides round every operation to bfloat16, so they agree
  unless an operation's float32 value differs before its rounding; the bound
  allows one bfloat16 rounding error of each step's update (derived at
  ``bfloat16_bound``).  Where TF-Keras itself stands still (``STILL``), ours
  must equal it bit for bit; everywhere else the parameters must have moved
  ``MIN_MOVED_SPACINGS`` steps of the bfloat16 grid, so that doing nothing
  cannot pass.
* float16: XLA may keep float32 precision across the operations it fuses
  (``xla_allow_excess_precision``) where Eigen rounds after each operation, so
  values agree to a few units of the dtype's precision per step, not bit for
  bit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

import jaxopt_keras as jk
from harness import jax_factory, tf_class

STEPS = 10
# (test id, class name, constructor arguments)
CASES = [
    ("SGD", "SGD", dict(learning_rate=0.05, momentum=0.9)),
    ("Adam", "Adam", dict(learning_rate=0.05)),
    ("Adamax", "Adamax", dict(learning_rate=0.05)),
    ("Nadam", "Nadam", dict(learning_rate=0.05)),
    ("Adagrad", "Adagrad", dict(learning_rate=0.1)),
    ("Adadelta", "Adadelta", dict(learning_rate=1.0)),
    # Adadelta with steps that do not round away in bfloat16 (see STILL).
    ("Adadelta-epsilon1e-3", "Adadelta", dict(learning_rate=1.0, epsilon=1e-3)),
    ("RMSprop", "RMSprop", dict(learning_rate=0.01, momentum=0.5, centered=True)),
    ("Ftrl", "Ftrl", dict(learning_rate=0.1)),
]

# The bfloat16 cases in which TF-Keras itself (nearly) stands still, in both
# families, and why.  There ours must equal TF-Keras bit for bit.
STILL = {
    "Adam": "beta_2=0.999 rounds to 1: the step size sqrt(1 - beta_2**t) is 0",
    "Nadam": "beta_2=0.999 rounds to 1: Keras divides by 1 - beta_2**t = 0, every parameter is NaN",
    "Adadelta": "steps of ~1e-3 (learning_rate=1, epsilon=1e-7) are below half a bfloat16 spacing of "
    "most parameters and round away (one parameter moves 2 spacings)",
}
# Everywhere else TF-Keras must move the parameters at least this many steps of
# the bfloat16 grid at their scale (spacing 2**-7 for |p| in [1, 2)), as
# harness.compare demands a movement in float32: an optimizer that does
# nothing then misses TF-Keras by that much, and the bound below is a small
# fraction of the movement (0.4-0.9% here).
MIN_MOVED_SPACINGS = 16


def bfloat16_bound(trajectory: np.ndarray, ok: np.ndarray) -> float:
    """The largest ``|ours - theirs|`` allowed after ``STEPS`` bfloat16 steps.

    ``trajectory``: TF-Keras's parameters before and after each step, shape
    ``(STEPS + 1,) + shape``; ``ok``: the parameters that are not NaN.

    The worst case is of no use.  Each step ends by rounding the parameter to
    bfloat16, and where the two sides' unrounded values straddle a rounding
    boundary they land one spacing apart.  Allowing that at every step gives
    STEPS spacings of the largest parameter, ~0.1 here; the bound this
    replaces allowed four times that (``4 * STEPS * eps * max|p|``, 0.4-0.5),
    as much as the parameters move (0.16-1.26), so it could hardly fail.

    But in bfloat16 both sides round every operation's result to bfloat16:
    Eigen does, and XLA:CPU's bfloat16 normalization converts after each
    operation too (a jitted chain of bfloat16 operations equals the same
    operations rounded one by one in NumPy, bit for bit; float16, by contrast,
    differs there in ~13% of the elements).  So the two sides compute the
    same numbers except where an operation's float32 value before that
    rounding differs (a ``pow``, say, or one of TF's fused legacy kernels
    keeping more precision) and its rounding goes the other way.  We allow one
    rounding error, ``u = eps / 2 = 2**-8`` of the step's update
    ``|delta_t|``, in each of the STEPS steps.  Summed over the steps, a
    parameter may then differ by ``u * sum_t |delta_t|``, ``u`` times the path
    it travelled (read off TF-Keras's trajectory); the bound is that for the
    longest path, at most ``u * STEPS * max_t |delta_t|``.

    This models an accumulation of small differences; it is not a worst case.
    Measured (TF 2.21, JAX 0.10, CPU; these cases): every optimizer ends
    bit-identical to TF-Keras except Ftrl (3 spacings of one small parameter,
    0.19 of the bound) and legacy Adadelta with ``epsilon=1e-3`` (0.42 of the
    bound); the bound is 0.4-0.9% of the distance moved.  Our update scaled by 1.01 (tried
    in ``algorithms/driver.py``, not kept) exceeds it in every case that moves
    (Ftrl 1.26x, the others 2.2-8.8x), and the still Adadelta case fails its
    bit-for-bit comparison; the bound this replaces let all of them pass.
    Not every argument set stays inside it: legacy Adadelta with
    ``learning_rate=10``, whose fused kernel rounds differently, ends 4.6x
    over it.
    """
    eps = float(jnp.finfo(jnp.bfloat16).eps)
    u = eps / 2
    path = np.sum(np.abs(np.diff(trajectory, axis=0)), axis=0)
    return u * float(np.max(path[ok], initial=0.0))


def spacing_at(x: float, dtype) -> float:
    """The distance between neighbouring ``dtype`` numbers at magnitude ``x`` (> 0)."""
    return float(jnp.finfo(dtype).eps) * 2.0 ** np.floor(np.log2(x))


@pytest.mark.parametrize("family", ["legacy", "current"])
@pytest.mark.parametrize("case,name,kwargs", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
def test_low_precision_matches_tf_keras(report, family, case, name, kwargs, dtype):
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal((4, 5)).astype(np.float32)
    grads = [rng.standard_normal((4, 5)).astype(np.float32) for _ in range(STEPS)]
    tf_dtype = tf.bfloat16 if dtype == jnp.bfloat16 else tf.float16
    label = f"{family} {case} {jnp.dtype(dtype).name:8s}"

    opt = tf_class(family, name)(**kwargs)
    v = tf.Variable(tf.cast(p0, tf_dtype))
    trajectory = [v.numpy().astype(np.float32)]
    try:
        for g in grads:
            opt.apply_gradients([(tf.cast(g, tf_dtype), v)])
            trajectory.append(v.numpy().astype(np.float32))
    except tf.errors.InvalidArgumentError as e:
        # TensorFlow registers no CPU kernel for this (op, dtype) pair, e.g.
        # ResourceApplyAdaMax in bfloat16: there is no Keras trajectory to match.
        assert "No registered" in str(e) or "kernel" in str(e).lower()
        report(f"{label} TF-Keras has no CPU kernel; not compared")
        pytest.skip(f"TF-Keras has no CPU kernel for {family} {name} in {jnp.dtype(dtype).name}: nothing to compare")
    trajectory = np.stack(trajectory)
    theirs = trajectory[-1]

    t = jax_factory(family, name)(**kwargs)
    p = jnp.asarray(p0).astype(dtype)
    s = t.init(p)
    step = jax.jit(lambda p, s, g: t.update(g, s, p))
    for g in grads:
        u, s = step(p, s, jnp.asarray(g).astype(dtype))
        p = jk.apply_updates(p, u)
    assert p.dtype == dtype
    ours = np.asarray(p.astype(jnp.float32))

    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    ok = ~np.isnan(theirs)
    start = np.asarray(jnp.asarray(p0).astype(dtype).astype(jnp.float32))
    eps = float(jnp.finfo(dtype).eps)
    moved = np.max(np.abs(theirs[ok] - start[ok]), initial=0.0)
    diff = np.max(np.abs(ours[ok] - theirs[ok]), initial=0.0)

    if dtype == jnp.bfloat16:
        grid = spacing_at(float(np.max(np.abs(start))), dtype)
        if case in STILL:
            report(f"{label} moved {moved:.3g} ({moved / grid:.0f} spacings), max diff {diff:.3g}: stands still ({STILL[case]})")
            assert moved < MIN_MOVED_SPACINGS * grid, f"TF-Keras moved {moved:.3g}: {case} no longer stands still"
            np.testing.assert_array_equal(ours, theirs)  # NaN where TF-Keras has NaN, the same bits elsewhere
            return
        bound = bfloat16_bound(trajectory, ok)
        report(
            f"{label} moved {moved:.3g}, max diff {diff:.3g} = {diff / moved:.1e} of it; "
            f"bound {bound:.3g} = {bound / moved:.1e} of it; diff/bound {diff / bound:.2f}"
        )
        assert moved >= MIN_MOVED_SPACINGS * grid, (
            f"TF-Keras moved the parameters {moved:.3g}, {moved / grid:.1f} bfloat16 spacings; the comparison would prove little"
        )
        assert diff <= bound, f"max |ours - theirs| = {diff:.3g}, {diff / bound:.2f} x the bound {bound:.3g} (moved {moved:.3g})"
        return

    if ok.any():
        report(f"{label} moved {moved:.3g}, max diff {diff:.3g} ({diff / eps:.1f} eps)")
        # A few roundings of the dtype per step, measured in its machine epsilon
        # at the parameters' scale (|p| <= ~4 here).
        assert diff <= 4 * STEPS * eps * max(1.0, float(np.max(np.abs(theirs[ok]))))
        if moved == 0:
            np.testing.assert_array_equal(ours[ok], start[ok])
