"""Runs Keras 3 optimizers on the JAX backend, one jitted ``stateless_apply`` per step.

Run by the Keras 3 oracle tests in a process of its own, kept for the session
(``keras3_process.py``: Keras's backend is fixed at its first import, and the
test session imports TF-Keras).  Each line on stdin is a JSON list of cases;
it answers ``RESULT <json>`` mapping each case's label to its final parameters
and optimizer variables (``optimizer.variables`` order, as nested lists with
their dtypes).

A case: ``{"label", "name", "kwargs", "steps", "dtype", "schedule"?,
"callable_lr"? (a zero-argument callable returning it), "config"?,
"inf_steps"?, "initial_variables"?, "ours"?, "dtypes"?}``; ``dtypes``
(one per shape) makes a tree of mixed dtypes, each variable and its gradients
from ``dtype``'s problem (``keras3_problem.in_dtypes``); ``config`` (a
serialized optimizer) replaces ``name``/``kwargs``; at ``inf_steps`` the first
gradient is infinite; ``initial_variables`` (a list of arrays in
``optimizer.variables`` order) replaces the freshly built ones, to continue a
run from a weights list.  With ``"ours": true`` the same steps run our
``jaxopt_keras.optimizers.keras3`` class instead, which has the same API
(for runs that need both sides under one ``XLA_FLAGS``).  A ``"float64"``
case needs a process started with ``--x64`` (``jax_enable_x64``, set before
Keras or any array exists).
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, os.path.dirname(__file__))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", "--x64" in sys.argv)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import jaxopt_keras  # noqa: E402
from jaxopt_keras.optimizers import keras3 as ours  # noqa: E402

from harness import make_problem  # noqa: E402
from keras3_process import serve  # noqa: E402
from keras3_problem import SCHEDULES, in_dtypes, variable_names  # noqa: E402


def run(case):
    dtype = np.dtype(case.get("dtype", "float32"))
    params, grads = make_problem(dtype, steps=case["steps"], shapes=[tuple(s) for s in case["shapes"]])
    if "grads_from" in case:
        grads = grads[case["grads_from"] :]
    kwargs = dict(case["kwargs"])
    library, make_variable = (ours, jaxopt_keras.Variable) if case.get("ours") else (keras.optimizers, keras.Variable)
    if "schedule" in case:
        kind, config = case["schedule"]
        kwargs["learning_rate"] = getattr(keras.optimizers.schedules, SCHEDULES[kind])(**config)
    if "callable_lr" in case:
        kwargs["learning_rate"] = lambda value=case["callable_lr"]: value
    if "config" in case:
        opt = library.deserialize(json.loads(json.dumps(case["config"])))
    else:
        opt = getattr(library, case["name"])(**kwargs)
    dtypes = case.get("dtypes", [dtype] * len(params))
    params, grads = in_dtypes(params, grads, dtypes)
    for t in case.get("inf_steps", []):
        grads[t][0] = np.full_like(grads[t][0], np.inf)
    names = variable_names([tuple(s) for s in case["shapes"]])
    variables = [make_variable(np.asarray(p, d), name=n) for p, n, d in zip(case.get("params", params), names, dtypes)]
    opt.build(variables)
    opt_values = [v.value for v in opt.variables]
    if "initial_variables" in case:
        opt_values = [np.asarray(x, np.asarray(v).dtype) for x, v in zip(case["initial_variables"], opt_values)]
    values = [v.value for v in variables]
    step = jax.jit(opt.stateless_apply)
    for g in grads:
        values, opt_values = step(opt_values, [jax.numpy.asarray(x) for x in g], values)
    return {
        "params": [np.asarray(v).tolist() for v in values],
        "variables": [np.asarray(v).tolist() for v in opt_values],
        "variable_names": [v.path for v in opt.variables],
    }


serve(lambda cases: {c["label"]: run(c) for c in cases})
