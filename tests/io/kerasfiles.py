"""Small TF-Keras models trained for a few steps, and every file they save to (written into a test's tmp dir)."""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf
import tf_keras

L, C = tf_keras.optimizers.legacy, tf_keras.optimizers


def small(name_prefix=""):
    """Input(4) -> Dense(3, tanh) -> Dense(2): layers dense, dense_1."""
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((4,))
    x = tf_keras.layers.Dense(3, activation="tanh")(inputs)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(2)(x))


def big():
    """Embedding + LayerNormalization and Conv2D + BatchNormalization, concatenated, then Dense."""
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    tok = tf_keras.Input((5,), dtype="int32", name="tok")
    img = tf_keras.Input((6, 6, 1), name="img")
    e = tf_keras.layers.Flatten()(tf_keras.layers.LayerNormalization()(tf_keras.layers.Embedding(10, 4)(tok)))
    c = tf_keras.layers.Flatten()(tf_keras.layers.BatchNormalization()(tf_keras.layers.Conv2D(2, 3)(img)))
    out = tf_keras.layers.Dense(2)(tf_keras.layers.Concatenate()([e, c]))
    return tf_keras.Model([tok, img], out)


def nested():
    """Sequential([Sequential([Dense(3)], name="block"), Dense(2)]): weights nest one level."""
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    inner = tf_keras.Sequential([tf_keras.layers.Dense(3, activation="tanh", name="inner_dense")], name="block")
    inner.build((None, 4))
    return tf_keras.Sequential([tf_keras.Input((4,)), inner, tf_keras.layers.Dense(2)], name="outer")


def normalized():
    """Normalization (adapted: mean, variance, count, no optimizer slots) -> Dense(3, tanh) -> Dense(2)."""
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    norm = tf_keras.layers.Normalization()
    norm.adapt(np.random.default_rng(1).normal(size=(32, 4)).astype("float32"))
    inputs = tf_keras.Input((4,))
    return tf_keras.Model(inputs, tf_keras.layers.Dense(2)(tf_keras.layers.Dense(3, activation="tanh")(norm(inputs))))


def sub_objects():
    """Every kind of sub-object Keras keeps variables in: a ConvLSTM1D's cell, MultiHeadAttention's projections, a
    Bidirectional's forward and backward GRUs, TimeDistributed's Dense, an LSTM's cell, and an
    RNN's stacked cells (LSTMCell, SimpleRNNCell)."""
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((4,))
    x = tf_keras.layers.ConvLSTM1D(2, 1)(tf_keras.layers.Reshape((2, 2, 1))(inputs))
    x = tf_keras.layers.MultiHeadAttention(num_heads=2, key_dim=2)(x, x)
    x = tf_keras.layers.Bidirectional(tf_keras.layers.GRU(2, return_sequences=True))(x)
    x = tf_keras.layers.TimeDistributed(tf_keras.layers.Dense(3))(x)
    x = tf_keras.layers.LSTM(3, return_sequences=True)(x)
    x = tf_keras.layers.RNN([tf_keras.layers.LSTMCell(2), tf_keras.layers.SimpleRNNCell(2)])(x)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(2)(x))


class Projected(tf_keras.layers.Layer):
    """A custom layer keeping a Dense in an attribute of its own (``proj``)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.proj = tf_keras.layers.Dense(2)

    def call(self, x):
        return self.proj(x)


def custom_sub_object():
    """Input(4) -> Projected -> Dense(2): weights in a sub-object no Keras layer has."""
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    inputs = tf_keras.Input((4,))
    return tf_keras.Model(inputs, tf_keras.layers.Dense(2)(Projected()(inputs)))


class Block(tf_keras.layers.Layer):
    """A custom layer: a Dense set first, then its own weight in ``build`` (a Layer lists its own first)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = tf_keras.layers.Dense(3)

    def build(self, shape):
        self.gain = self.add_weight(name="gain", shape=(3,), initializer="ones")

    def call(self, x):
        return self.inner(x) * self.gain


class Subclassed(tf_keras.Model):
    """A subclassed model: its own weight set first (a Model lists it last), a custom layer, a list
    of layers, a BatchNormalization (moving statistics without slots)."""

    def __init__(self):
        super().__init__()
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones")
        self.block = Block()
        self.heads = [tf_keras.layers.Dense(3, activation="tanh"), tf_keras.layers.Dense(2)]
        self.norm = tf_keras.layers.BatchNormalization()

    def call(self, x):
        x = self.norm(self.block(x))
        for head in self.heads:
            x = head(x)
        return x * self.scale


def subclassed():
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    return Subclassed()


def data(model, steps=3, seed=0):
    rng = np.random.default_rng(seed)
    if model.inputs is not None and len(model.inputs) == 2:
        x = [rng.integers(0, 10, (steps * 8, 5)).astype("int32"), rng.normal(size=(steps * 8, 6, 6, 1)).astype("float32")]
    else:
        x = rng.normal(size=(steps * 8, 4)).astype("float32")
    return x, rng.normal(size=(steps * 8, 2)).astype("float32")


def trained(make_model, make_optimizer, steps=3):
    """A model compiled with the optimizer and trained ``steps`` batches of 8."""
    model = make_model()
    model.compile(optimizer=make_optimizer(), loss="mse")
    x, y = data(model, steps)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return model


def optimizer_list(opt):
    """Keras's weights list: ``get_weights()`` (legacy) or ``variables`` (current), with names."""
    ws = opt.weights if isinstance(opt, L.Optimizer) else opt.variables
    return [w.name for w in ws], [w.numpy() for w in ws]


def save_all(model, directory, kinds=("h5", "keras", "weights.h5", "w.h5", "ckpt", "tfw")):
    """Every file kind the model saves to; returns kind -> path."""
    os.makedirs(directory, exist_ok=True)
    out = {}
    if "h5" in kinds:
        out["h5"] = os.path.join(directory, "m.h5")
        model.save(out["h5"])
    if "keras" in kinds:
        out["keras"] = os.path.join(directory, "m.keras")
        model.save(out["keras"])
    if "weights.h5" in kinds:
        out["weights.h5"] = os.path.join(directory, "m.weights.h5")
        model.save_weights(out["weights.h5"])
    if "w.h5" in kinds:
        out["w.h5"] = os.path.join(directory, "w.h5")
        model.save_weights(out["w.h5"])
    if "ckpt" in kinds:
        out["ckpt"] = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(os.path.join(directory, "ckpt", "ck"))
    if "tfw" in kinds:
        out["tfw"] = os.path.join(directory, "tfw", "w")
        model.save_weights(out["tfw"])
    if "savedmodel" in kinds:
        out["savedmodel"] = os.path.join(directory, "sm")
        model.save(out["savedmodel"], save_format="tf")
    return out


def serialized(opt):
    """The optimizer's serialization as JSON would carry it."""
    return json.loads(json.dumps(tf_keras.optimizers.serialize(opt)))


def replaced(key, value):
    """An h5py edit putting ``value`` in the dataset ``key`` (a name, or ``key(f)``), its attributes kept."""

    def edit(f):
        name = key(f) if callable(key) else key
        attrs = dict(f[name].attrs)
        del f[name]
        f[name] = value
        f[name].attrs.update(attrs)

    return edit
