"""Runs float32 oracle cases in a process where XLA does not contract FMAs.

Launched by test_exact_without_fma.py with ``XLA_FLAGS=--xla_cpu_max_isa=AVX``
(no FMA instructions, so no multiply-add contraction).  Prints one JSON object
mapping case labels to the max ulp distance from TF-Keras after 300 steps.
TF-Keras runs each step in a ``tf.function``, as ``model.fit`` runs it (eagerly
where that changes what it computes: ``harness.graph_for``).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402

from harness import agreement, graph_for, jax_factory, make_problem, run_jax, run_tf, tf_class  # noqa: E402

CASES = json.loads(sys.argv[1])
params, grads = make_problem(np.float32)
out = {"rsqrt_is_ieee": {}}


def _rsqrt_mismatches() -> dict:
    """How many float32 ``rsqrt`` results differ from the correctly rounded
    ``1 / sqrt(x)``, in TensorFlow's eager kernel and in XLA, on this CPU."""
    import jax
    import tensorflow as tf

    x = np.random.default_rng(0).uniform(1e-3, 1e3, 4096).astype(np.float32)
    exact = (1.0 / np.sqrt(x.astype(np.float64))).astype(np.float32)
    return {
        "tf": int(np.sum(tf.math.rsqrt(tf.constant(x)).numpy() != exact)),
        "xla": int(np.sum(np.asarray(jax.jit(jax.lax.rsqrt)(x)) != exact)),
    }


out["rsqrt_is_ieee"] = _rsqrt_mismatches()
for label, family, name, kwargs in CASES:
    theirs, _ = run_tf(lambda: tf_class(family, name)(**kwargs), params, grads, graph=graph_for(family, name))
    ours, _ = run_jax(jax_factory(family, name)(**kwargs), params, grads)
    a = agreement(ours, theirs, params)
    out[label] = {"ulps": a.max_ulps, "relative": a.relative, "moved": a.moved}
print("RESULT " + json.dumps(out))
