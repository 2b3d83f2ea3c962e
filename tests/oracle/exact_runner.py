"""Runs float32 oracle cases in a process where XLA does not contract FMAs.

Launched by test_exact_without_fma.py with ``XLA_FLAGS=--xla_cpu_max_isa=AVX``
(no FMA instructions, so no multiply-add contraction).  Prints one JSON object
mapping case labels to the max ulp distance from TF-Keras after 300 steps.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402

from harness import agreement, jax_factory, make_problem, run_jax, run_tf, tf_class  # noqa: E402

CASES = json.loads(sys.argv[1])
params, grads = make_problem(np.float32)
out = {}
for label, family, name, kwargs in CASES:
    theirs, _ = run_tf(lambda: tf_class(family, name)(**kwargs), params, grads)
    ours, _ = run_jax(jax_factory(family, name)(**kwargs), params, grads)
    a = agreement(ours, theirs, params)
    out[label] = {"ulps": a.max_ulps, "relative": a.relative, "moved": a.moved}
print("RESULT " + json.dumps(out))
