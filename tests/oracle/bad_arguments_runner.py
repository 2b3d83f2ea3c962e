"""Keras 3's outcomes for the bad-argument cases of ``bad_arguments.py`` (JAX backend).

Launched in a fresh process by ``bad_arguments.keras3_outcomes``: reads a JSON
list of ``[class_name, argument, kind]`` on stdin, prints ``RESULT <json>``
(the outcomes, in order).
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bad_arguments import GRADS, PARAMS, call_kwargs, outcome  # noqa: E402


def step(opt):
    vs = [keras.Variable(p, name=f"v{i}") for i, p in enumerate(PARAMS)]
    opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in GRADS], vs))
    return [np.asarray(v.value) for v in vs]


results = []
for name, arg, kind in json.loads(sys.stdin.read()):
    cls = getattr(keras.optimizers, name)
    schedule = lambda: keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)  # noqa: E731
    results.append(outcome(lambda: cls(**call_kwargs(name, arg, kind, schedule)), step))
    keras.backend.clear_session()
print("RESULT " + json.dumps(results))
