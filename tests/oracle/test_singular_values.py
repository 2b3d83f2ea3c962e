"""Argument values Keras accepts and whose first step makes the parameters NaN
(``Spec.singular``: Adam's ``beta_1=1`` divides ``m = 0`` by ``1 - beta_1**t = 0``;
Ftrl's ``learning_rate=0`` divides by the rate): refused by our constructors,
factories and attribute assignment, as the other NaN-making values in
``docs/errors.md`` are.  Keras's side is run, not assumed: TF-Keras here,
Keras 3 in its own process (JAX backend)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O
from jaxopt_keras import registry

CASES = [
    (family, entry.class_name, entry.function, name, value)
    for entry in registry.entries()
    for family, spec in entry.specs.items()
    for name, value in spec.singular.items()
]
PARAM, GRAD = [0.5, -0.3, 0.2], [0.1, -0.2, 0.3]

KERAS3_STEP = """
import json, sys
import keras, numpy as np
out = []
for cls, name, value in json.loads(sys.argv[1]):
    v = keras.Variable(np.array(%r, np.float32))
    getattr(keras.optimizers, cls)(**{name: value}).apply_gradients([(np.array(%r, np.float32), v)])
    out.append(bool(np.all(np.isfinite(np.asarray(v)))))
print("RESULT " + json.dumps(out))
""" % (PARAM, GRAD)


@pytest.fixture(scope="module")
def keras3_finite():
    """Whether Keras 3's first step stays finite, per Keras 3 case."""
    cases = [[cls, name, value] for family, cls, _, name, value in CASES if family == "keras3"]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "XLA_FLAGS")}
    proc = subprocess.run([sys.executable, "-c", KERAS3_STEP, json.dumps(cases)], capture_output=True, text=True,
                          env={**env, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return dict(zip([(c, n) for c, n, _ in cases], json.loads(line[len("RESULT "):])))


def test_every_family_has_cases():
    assert {family for family, *_ in CASES} == {"legacy", "current", "keras3"}


@pytest.mark.parametrize("family, cls, function, name, value", CASES, ids=[f"{f}-{c}-{n}" for f, c, _, n, _ in CASES])
def test_keras_steps_to_nan_and_we_refuse(family, cls, function, name, value, keras3_finite):
    if family == "keras3":
        finite = keras3_finite[(cls, name)]
    else:
        module = tf_keras.optimizers.legacy if family == "legacy" else tf_keras.optimizers
        v = tf.Variable(np.array(PARAM, np.float32))
        getattr(module, cls)(**{name: value}).apply_gradients([(tf.constant(GRAD, tf.float32), v)])
        finite = bool(np.all(np.isfinite(v.numpy())))
    assert not finite, "Keras's first step is finite: the value is not singular"
    ours = {"legacy": (O.legacy, jk.legacy), "current": (O, jk), "keras3": (O.keras3, jk.keras3)}[family]
    message = rf"`{name}` cannot be {value}: the first step would make the parameters NaN"
    with pytest.raises(ValueError, match=message):
        getattr(ours[0], cls)(**{name: value})
    with pytest.raises(ValueError, match=message):
        getattr(ours[1], function)(**{name: value})
    opt = getattr(ours[0], cls)()
    before = opt.get_config()
    with pytest.raises(ValueError, match=message):
        setattr(opt, name, value)
    assert opt.get_config() == before
