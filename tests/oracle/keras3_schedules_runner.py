"""Evaluates Keras 3 schedules on the JAX backend, as its optimizers do.

Launched by test_schedules_oracle.py in a fresh process (the backend is fixed
at Keras's first import, and the test session imports Keras with the
TensorFlow backend).  Reads ``[[class name, kwargs], ...]`` and a step count
``n`` from argv; for each schedule, prints its value at steps ``0..n-1``
under ``jax.jit`` (one jitted call per step, with an int32 step: what
``stateless_apply`` and ``model.fit`` compile around the optimizer's int32
``iterations``), and eagerly at every 100th step.  Values go out as their
bits: ``RESULT {"jit": [[...], ...], "eager": [[...], ...]}``.
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

EAGER_STRIDE = 100  # eagerly, each ops.cond is traced and compiled anew: slow


def bits(values):
    values = np.asarray(values)
    return values.view(np.dtype(f"u{values.dtype.itemsize}")).tolist()


cases, n = json.loads(sys.argv[1]), int(sys.argv[2])
out = {"jit": [], "eager": [], "dtype": []}
for name, kwargs in cases:
    schedule = getattr(keras.optimizers.schedules, name)(**kwargs)
    lr = jax.jit(lambda step, schedule=schedule: schedule(step))
    jitted = np.array([lr(jnp.int32(i)) for i in range(n)])
    eager = np.array([schedule(jnp.int32(i)) for i in range(0, n, EAGER_STRIDE)])
    out["jit"].append(bits(jitted))
    out["eager"].append(bits(eager))
    out["dtype"].append(jitted.dtype.name)
print("RESULT " + json.dumps(out))
