"""Runs the probes of ``keras3_probes.py`` against Keras 3 (JAX backend).

Launched in a fresh process by ``test_keras3_behaviour.py``; prints
``RESULT <json>``: probe name -> outcome (see ``probe_outcome``).
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, os.path.dirname(__file__))

import keras  # noqa: E402

from keras3_probes import PROBES  # noqa: E402
from probe_outcome import run_probes  # noqa: E402


def var(value, name):
    return keras.Variable(value, name=name, dtype="float32")


print("RESULT " + json.dumps(run_probes(PROBES, keras.optimizers, var, keras.backend.clear_session)))
