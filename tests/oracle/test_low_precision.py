"""bfloat16 and float16 parameters against TF-Keras.

Keras computes every slot in the parameter's dtype, so low-precision training
inherits the roundings of the hyperparameters: in bfloat16, ``beta_2=0.999``
becomes exactly 1, legacy Adam's step size ``sqrt(1 - beta_2**t)`` is 0 and
legacy Nadam divides by zero.  We reproduce those outcomes (same NaN pattern,
same frozen parameters) rather than "fixing" them.

Tolerance: XLA may keep float32 precision across the operations it fuses
(``xla_allow_excess_precision``) where Eigen rounds after each operation, so
values agree to a few units of the dtype's precision per step, not bit for bit.
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
CASES = [
    ("SGD", dict(learning_rate=0.05, momentum=0.9)),
    ("Adam", dict(learning_rate=0.05)),
    ("Adamax", dict(learning_rate=0.05)),
    ("Nadam", dict(learning_rate=0.05)),
    ("Adagrad", dict(learning_rate=0.1)),
    ("Adadelta", dict(learning_rate=1.0)),
    ("RMSprop", dict(learning_rate=0.01, momentum=0.5, centered=True)),
    ("Ftrl", dict(learning_rate=0.1)),
]


@pytest.mark.parametrize("family", ["legacy", "current"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
def test_low_precision_matches_tf_keras(report, family, name, kwargs, dtype):
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal((4, 5)).astype(np.float32)
    grads = [rng.standard_normal((4, 5)).astype(np.float32) for _ in range(STEPS)]
    tf_dtype = tf.bfloat16 if dtype == jnp.bfloat16 else tf.float16

    opt = tf_class(family, name)(**kwargs)
    v = tf.Variable(tf.cast(p0, tf_dtype))
    try:
        for g in grads:
            opt.apply_gradients([(tf.cast(g, tf_dtype), v)])
    except tf.errors.InvalidArgumentError as e:
        # TensorFlow registers no CPU kernel for this (op, dtype) pair, e.g.
        # ResourceApplyAdaMax in bfloat16: there is no Keras trajectory to match.
        assert "No registered" in str(e) or "kernel" in str(e).lower()
        report(f"{family} {name} {jnp.dtype(dtype).name:8s} TF-Keras has no CPU kernel; not compared")
        return
    theirs = v.numpy().astype(np.float32)

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
    if ok.any():
        eps = float(jnp.finfo(dtype).eps)
        moved = np.max(np.abs(theirs[ok] - start[ok]), initial=0.0)
        diff = np.max(np.abs(ours[ok] - theirs[ok]), initial=0.0)
        report(f"{family} {name} {jnp.dtype(dtype).name:8s} moved {moved:.3g}, max diff {diff:.3g} ({diff / eps:.1f} eps)")
        # A few roundings of the dtype per step, measured in its machine epsilon
        # at the parameters' scale (|p| <= ~4 here).
        assert diff <= 4 * STEPS * eps * max(1.0, float(np.max(np.abs(theirs[ok]))))
        if moved == 0:
            np.testing.assert_array_equal(ours[ok], start[ok])
