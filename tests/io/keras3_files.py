"""Writes Keras 3 files for test_io_read_keras3.py, in a fresh process (the JAX backend is fixed at import).

Usage: ``python keras3_files.py DIRECTORY``; ``python keras3_files.py load PATH``
prints what Keras 3 holds after loading the file ``PATH``.  Prints ``RESULT <json>``: per
case, the files written and what the live objects held (the optimizer's
variables in order, the model's weights, the trainable ones, the step count).
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"

import keras  # noqa: E402
import numpy as np  # noqa: E402


def small(dtype=None):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, activation="tanh", dtype=dtype)(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, dtype=dtype)(x))


def big():
    tok, img = keras.Input((5,), dtype="int32", name="tok"), keras.Input((6, 6, 1), name="img")
    e = keras.layers.Flatten()(keras.layers.LayerNormalization()(keras.layers.Embedding(10, 4)(tok)))
    c = keras.layers.Flatten()(keras.layers.BatchNormalization()(keras.layers.Conv2D(2, 3)(img)))
    return keras.Model([tok, img], keras.layers.Dense(2)(keras.layers.Concatenate()([e, c])))


def nested():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="tanh", name="inner_dense")], name="block")
    return keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2)], name="outer")


def normalized():
    """A Normalization layer's adapted mean, variance and count: weights without optimizer slots."""
    norm = keras.layers.Normalization()
    norm.adapt(np.random.default_rng(1).normal(size=(32, 4)).astype("float32"))
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(3, activation="tanh")(norm(inputs))))


def sub_objects():
    """Every kind of sub-object Keras keeps variables in: a ConvLSTM1D's cell, MultiHeadAttention's projections, a
    Bidirectional's forward and backward GRUs, TimeDistributed's Dense, an LSTM's cell, and an
    RNN's stacked cells (``layers/lstm/cell/vars``, ``layers/multi_head_attention/query_dense/vars``)."""
    inputs = keras.Input((4,))
    x = keras.layers.ConvLSTM1D(2, 1)(keras.layers.Reshape((2, 2, 1))(inputs))
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=2)(x, x)
    x = keras.layers.Bidirectional(keras.layers.GRU(2, return_sequences=True))(x)
    x = keras.layers.TimeDistributed(keras.layers.Dense(3))(x)
    x = keras.layers.LSTM(3, return_sequences=True)(x)
    x = keras.layers.RNN([keras.layers.LSTMCell(2), keras.layers.SimpleRNNCell(2)])(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


class Projected(keras.layers.Layer):
    """A custom layer keeping a Dense in an attribute of its own (``proj``)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.proj = keras.layers.Dense(2)

    def call(self, x):
        return self.proj(x)


def custom_sub_object():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2)(Projected()(inputs)))


O = keras.optimizers
CASES = {
    "adam": (small, lambda: O.Adam(0.01, clipnorm=1.0)),
    "sgd_schedule": (small, lambda: O.SGD(O.schedules.ExponentialDecay(0.1, 10, 0.9), momentum=0.9)),
    "nadam": (small, lambda: O.Nadam(0.01)),
    "adam_accumulation": (small, lambda: O.Adam(0.01, gradient_accumulation_steps=2)),
    "adamw_ema": (small, lambda: O.AdamW(0.01, use_ema=True)),  # compiled without XLA (Keras 3.15 + EMA bug)
    "big": (big, lambda: O.RMSprop(0.01, momentum=0.9, centered=True)),
    "nested": (nested, lambda: O.Adam(0.01)),
    "bfloat16": (lambda: small("bfloat16"), lambda: O.Adam(0.01)),
    "loss_scale": (small, lambda: O.LossScaleOptimizer(O.Adam(0.01), initial_scale=1024.0, dynamic_growth_steps=2)),
    # Keras 3 does not track a wrapped Nadam's u_product: it is in no variables list and not saved.
    "loss_scale_nadam": (small, lambda: O.LossScaleOptimizer(O.Nadam(0.01))),
    # Nor a wrapped Adafactor's int32 placeholders (r and c of the biases): stateless, so the file ports.
    "loss_scale_adafactor": (small, lambda: O.LossScaleOptimizer(O.Adafactor(0.01))),
    "adafactor": (small, lambda: O.Adafactor(0.01)),
    "multi": (small, lambda: O.MultiOptimizer(O.OptimizerMap(O.SGD(0.05, momentum=0.9), {".*kernel": O.Adam(0.01)}))),
    "normalization": (normalized, lambda: O.Adam(0.01)),
    "sub_objects": (sub_objects, lambda: O.Adam(0.01)),
    "custom_sub_object": (custom_sub_object, lambda: O.Adam(0.01)),
}


def plain(v):
    return np.asarray(v).astype(np.float64 if np.asarray(v).dtype.kind == "V" or "bfloat16" in str(np.asarray(v).dtype) else np.asarray(v).dtype).tolist()


def main(directory):
    rng = np.random.default_rng(0)
    out = {}
    for name, (make_model, make_opt) in CASES.items():
        keras.utils.set_random_seed(0)
        model = make_model()
        model.compile(optimizer=make_opt(), loss="mse", jit_compile=name != "adamw_ema")
        if name == "big":
            x = [rng.integers(0, 10, (24, 5)).astype("int32"), rng.normal(size=(24, 6, 6, 1)).astype("float32")]
        else:
            x = rng.normal(size=(24, 4)).astype("float32")
        model.fit(x, rng.normal(size=(24, 2)).astype("float32"), batch_size=8, epochs=1, shuffle=False, verbose=0)
        opt = model.optimizer
        paths = {"keras": os.path.join(directory, f"{name}.keras"), "weights.h5": os.path.join(directory, f"{name}.weights.h5")}
        model.save(paths["keras"])
        model.save_weights(paths["weights.h5"])
        if name == "adam":
            paths["h5"] = os.path.join(directory, f"{name}.h5")
            model.save(paths["h5"])
        out[name] = {
            "paths": paths,
            "config": json.loads(model.to_json()),
            "optimizer": keras.optimizers.serialize(opt),
            "variables": [[v.path, plain(v.value)] for v in opt.variables],
            "weights": [[w.path, plain(w.value)] for w in model.weights],
            "trainable": [w.path for w in model.trainable_weights],
            "iterations": int(np.asarray(opt.iterations)),
        }
        if hasattr(opt, "inner_optimizer"):
            out[name]["inner_variables"] = [[v.path, plain(v.value)] for v in opt.inner_optimizer.variables]
    print("RESULT " + json.dumps(out))


def load(path):
    """What Keras 3 holds after loading ``path``: the trainable variables and the optimizer's, by path."""
    model = keras.saving.load_model(path)
    print("RESULT " + json.dumps({
        "trainable": [[w.path, plain(w.value)] for w in model.trainable_weights],
        "variables": [[v.path, plain(v.value)] for v in model.optimizer.variables],
    }))


if __name__ == "__main__":
    load(sys.argv[2]) if sys.argv[1] == "load" else main(sys.argv[1])
