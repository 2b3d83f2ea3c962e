"""Keras 3 (JAX backend) trains, saves, and continues, for test_io_keras3_oracle.py; in a fresh process.

Usage: ``python keras3_io_runner.py train DIRECTORY CASES_JSON`` trains each
case ``BEFORE`` steps with ``train_on_batch``, saves ``<case>.keras`` and
``<case>.weights.h5``, and continues to ``BEFORE + AFTER``;
``python keras3_io_runner.py continue JOBS_JSON`` loads each job's file
(``keras.saving.load_model``; a ``.weights.h5`` with ``load_weights`` into
the case's model, compiled, its optimizer built) and trains it from
``start`` to ``stop``.
Prints ``RESULT <json>``.
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, os.path.dirname(__file__))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras3_io_problem import AFTER, BEFORE, CASES, DTYPES, batches  # noqa: E402

XS, YS = batches()


def optimizer(label):
    name, kwargs, wrapper = CASES[label]
    kwargs = dict(kwargs)
    if isinstance(kwargs.get("learning_rate"), dict):
        kwargs["learning_rate"] = keras.optimizers.schedules.ExponentialDecay(**kwargs["learning_rate"])
    opt = getattr(keras.optimizers, name)(**kwargs)
    if wrapper == "MultiOptimizer":
        default = keras.optimizers.SGD(0.05, momentum=0.9)
        opt = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(default, {".*kernel": opt}))
    if wrapper == "LossScaleOptimizer":
        opt = keras.optimizers.LossScaleOptimizer(opt, initial_scale=1024.0, dynamic_growth_steps=4)
    return opt


def plain(value):
    value = np.asarray(value)
    return value.astype(np.float64 if "bfloat16" in str(value.dtype) else value.dtype).tolist()


def values(model):
    return [plain(w.value) for w in model.trainable_weights]


def train(model, start, stop):
    for i in range(start, stop):
        model.train_on_batch(XS[i], YS[i])


def policy(label):
    """The global dtype policy a case's model is built (and loaded) under."""
    return "mixed_float16" if CASES[label][2] == "mixed_float16" else "float32"


def compiled(label):
    keras.utils.set_random_seed(0)
    dtype = DTYPES.get(label)
    keras.mixed_precision.set_global_policy(policy(label))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="tanh", dtype=dtype), keras.layers.Dense(2, dtype=dtype)])
    model.compile(optimizer=optimizer(label), loss="mse")
    keras.mixed_precision.set_global_policy("float32")
    return model


def main_train(directory, labels):
    out = {}
    for label in labels:
        model = compiled(label)
        train(model, 0, BEFORE)
        files = {"keras": os.path.join(directory, f"{label}.keras"), "weights.h5": os.path.join(directory, f"{label}.weights.h5")}
        model.save(files["keras"])
        model.save_weights(files["weights.h5"])
        saved = values(model)
        train(model, BEFORE, BEFORE + AFTER)
        out[label] = {
            "files": files,
            "config": json.loads(model.to_json()),
            "optimizer": keras.optimizers.serialize(model.optimizer),
            "saved": saved,
            "end": values(model),
        }
    return out


def main_continue(jobs):
    out = []
    for job in jobs:
        if job["path"].endswith(".weights.h5"):  # Keras 3 loads an optimizer's weights once it is built
            model = compiled(job["label"])
            model.optimizer.build(model.trainable_variables)
            model.load_weights(job["path"])
        else:
            keras.mixed_precision.set_global_policy(policy(job["label"]))
            model = keras.saving.load_model(job["path"])
            keras.mixed_precision.set_global_policy("float32")
        loaded = [plain(v.value) for v in model.optimizer.variables]
        train(model, job["start"], job["stop"])
        out.append({"variables_at_load": loaded, "end": values(model)})
    return out


if __name__ == "__main__":
    if sys.argv[1] == "train":
        result = main_train(sys.argv[2], json.loads(sys.argv[3]))
    else:
        result = main_continue(json.loads(sys.argv[2]))
    print("RESULT " + json.dumps(result))
