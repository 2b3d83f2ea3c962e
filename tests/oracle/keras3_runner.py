"""Runs a Keras 3 optimizer on the JAX backend through ``stateless_apply``.

Launched by test_keras3_accumulation.py in a fresh process (the backend is
fixed at Keras's first import, and the test session imports Keras with the
TensorFlow backend).  Prints ``RESULT <json>`` with the final parameters.
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, os.path.dirname(__file__))

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from harness import make_problem  # noqa: E402

spec = json.loads(sys.argv[1])
params, grads = make_problem(np.float32, steps=spec["steps"])
kwargs = dict(spec["kwargs"])
if "schedule" in spec:
    kwargs["learning_rate"] = keras.optimizers.schedules.ExponentialDecay(**spec["schedule"])
opt = getattr(keras.optimizers, spec["name"])(**kwargs)
variables = [keras.Variable(p) for p in params]
opt.build(variables)
opt_values = [v.value for v in opt.variables]
values = [v.value for v in variables]
step = jax.jit(opt.stateless_apply)
for g in grads:
    values, opt_values = step(opt_values, [jax.numpy.asarray(x) for x in g], values)
print("RESULT " + json.dumps({"params": [np.asarray(v).tolist() for v in values]}))
