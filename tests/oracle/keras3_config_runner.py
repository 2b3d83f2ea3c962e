"""Reads our serialized configs with Keras 3 (JAX backend) and prints what it built.

Launched by ``test_keras3_behaviour.py``: argv[1] is a JSON list of configs;
prints ``RESULT <json>``, for each, the class name and ``get_config()`` of the
object Keras 3's ``keras.optimizers.deserialize`` builds (through
``keras.saving.deserialize_keras_object`` for a class ``deserialize`` does not
list, such as Lamb), or the error it raised.
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"

import keras  # noqa: E402


def build(config):
    try:
        obj = keras.optimizers.deserialize(json.loads(json.dumps(config)))
        if isinstance(obj, str):
            obj = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
        return {"class": type(obj).__name__, "config": json.loads(json.dumps(keras.optimizers.serialize(obj)["config"]))}
    except Exception as e:  # the outcome being compared
        return {"raises": type(e).__name__, "message": str(e)}


print("RESULT " + json.dumps([build(c) for c in json.loads(sys.argv[1])]))
