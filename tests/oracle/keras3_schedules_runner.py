"""Evaluates Keras 3 schedules on the JAX backend, as its optimizers do.

Launched by test_schedules_oracle.py in a fresh process (the backend is fixed
at Keras's first import, and the test session imports Keras with the
TensorFlow backend).  Reads ``[[class name, kwargs], ...]`` and a step count
``n`` from argv; for each schedule, prints its value at steps ``0..n-1``
under ``jax.jit`` with an int32 step (what ``stateless_apply`` and
``model.fit`` compile around the optimizer's int32 ``iterations``), and
eagerly at every 100th step.  The jitted values come from one call that maps
the schedule over all the steps (``lax.map``: a loop whose body is the
schedule on one scalar step); every ``k``-th step is also computed by a jitted
call of its own, as Keras 3's optimizer calls it, and must agree bit for bit
(the test checks).  Values go out as their bits:
``RESULT {"jit": [[...], ...], "jit_single": [[...], ...], "eager": [[...], ...]}``.
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


cases, n, stride = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out = {"jit": [], "jit_single": [], "eager": [], "dtype": []}
for name, kwargs in cases:
    schedule = getattr(keras.optimizers.schedules, name)(**kwargs)
    jitted = np.asarray(jax.jit(lambda steps, schedule=schedule: jax.lax.map(schedule, steps))(jnp.arange(n, dtype=jnp.int32)))
    lr = jax.jit(lambda step, schedule=schedule: schedule(step))
    single = np.array([lr(jnp.int32(i)) for i in range(0, n, stride)])
    eager = np.array([schedule(jnp.int32(i)) for i in range(0, n, EAGER_STRIDE)])
    out["jit"].append(bits(jitted))
    out["jit_single"].append(bits(single))
    out["eager"].append(bits(eager))
    out["dtype"].append(jitted.dtype.name)
print("RESULT " + json.dumps(out))
