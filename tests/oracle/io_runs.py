"""Training runs shared by the io oracle tests: TF-Keras trains and saves, the file is ported, both continue.

A run trains ``Dense(6, tanh) -> Dense(2)`` on fixed batches with TF-Keras
(``train_on_batch``, one batch per step) for ``BEFORE`` steps, saves the
model in the file kinds asked for, and goes on for ``AFTER`` more steps: the
run continued in Keras.  The JAX side reads a file, ports the weights and
the optimizer state onto a flax-style parameter dict and continues on the
same batches with its own gradients; the two endpoints must agree within
``harness.TOLERANCE`` of the distance moved since the save.

The cases come from the registry: every optimizer of each TF-Keras family,
with options that exercise its state (``KWARGS``).
"""

from __future__ import annotations

import contextlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf
import tf_keras

import jaxopt_keras as jk
from harness import TOLERANCE, agreement, tf_class
from keras3_io_problem import as_list, flax_params
from jaxopt_keras import io, registry

BEFORE, AFTER, HALF, BATCH = 20, 80, 40, 16

KWARGS = {
    ("legacy", "SGD"): dict(learning_rate=0.05, momentum=0.9, nesterov=True, decay=1e-3),
    ("legacy", "Adam"): dict(learning_rate=0.01, decay=1e-3, clipnorm=1.0),
    ("legacy", "Adagrad"): dict(learning_rate=0.1),
    ("legacy", "Adadelta"): dict(learning_rate=1.0),
    ("legacy", "RMSprop"): dict(learning_rate=0.01, momentum=0.5, centered=True),
    ("legacy", "Ftrl"): dict(learning_rate=0.1, l1_regularization_strength=0.001),
    ("current", "SGD"): dict(learning_rate=0.05, momentum=0.9),
    ("current", "Adam"): dict(learning_rate=0.01, use_ema=True, ema_momentum=0.9, clipnorm=1.0),
    ("current", "Adagrad"): dict(learning_rate=0.1),
    ("current", "Adadelta"): dict(learning_rate=1.0),
    ("current", "RMSprop"): dict(learning_rate=0.01, momentum=0.5, centered=True),
    ("current", "Ftrl"): dict(learning_rate=0.1),
    ("current", "AdamW"): dict(learning_rate=0.01, weight_decay=0.01, amsgrad=True),
    ("current", "Lion"): dict(learning_rate=0.001),
    ("current", "Adafactor"): dict(learning_rate=0.05),
}


def cases(families=("legacy", "current")):
    """``(family, class name, kwargs)`` for every optimizer of the families."""
    return [(f, e.class_name, KWARGS.get((f, e.class_name), dict(learning_rate=0.01))) for f in families for e in registry.entries(f)]


def case_id(case) -> str:
    return f"{case[0]}.{case[1]}"


def batches(dtype):
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1.0, 1.0, (BEFORE + AFTER, BATCH, 4))
    ys = np.sin(2 * xs[..., :2]) + xs[..., 2:] * xs[..., :2]
    return xs.astype(dtype), ys.astype(dtype)


def keras_model(dtype):
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    return tf_keras.Sequential(
        [
            tf_keras.Input((4,), dtype=dtype),
            tf_keras.layers.Dense(6, activation="tanh", dtype=dtype),
            tf_keras.layers.Dense(2, dtype=dtype),
        ]
    )


def eager(family, name) -> bool:
    return family == "current" and name == "Nadam"  # only right eagerly in TF-Keras (tests/oracle/harness.py)


def train(model, xs, ys, start, stop):
    for i in range(start, stop):
        model.train_on_batch(xs[i], ys[i])


def loss(params, x, y):
    h = jnp.tanh(x @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"])
    return jnp.mean((h @ params["Dense_1"]["kernel"] + params["Dense_1"]["bias"] - y) ** 2)


@contextlib.contextmanager
def floatx(dtype):
    """TF-Keras's floatx for a float64 run: its loss is reduced in floatx, so float64 layers alone
    would have float32-rounded gradients.  (Its current-family learning-rate variable takes floatx
    too, where ours is float32: the float64 cases use a learning rate float32 holds exactly.)"""
    saved = tf_keras.backend.floatx()
    tf_keras.backend.set_floatx(np.dtype(dtype).name)
    try:
        yield
    finally:
        tf_keras.backend.set_floatx(saved)


class Run:
    """One case trained, saved and continued in TF-Keras."""

    def __init__(self, family, name, kwargs, dtype, directory, kinds):
        with floatx(dtype):
            self._keras(family, name, kwargs, dtype, directory, kinds)

    def _keras(self, family, name, kwargs, dtype, directory, kinds):
        self.family, self.name, self.dtype = family, name, dtype
        self.xs, self.ys = batches(dtype)
        model = keras_model(dtype)
        optimizer = tf_class(family, name)(**kwargs)
        model.compile(optimizer=optimizer, loss="mse", run_eagerly=eager(family, name))
        train(model, self.xs, self.ys, 0, BEFORE)
        self.config = tf_keras.optimizers.serialize(optimizer)
        self.model_config = json.loads(model.to_json())
        current_only = ("keras", "weights.h5")  # TF-Keras stores no legacy optimizer state there
        self.files = save(model, directory, kinds if family == "current" else [k for k in kinds if k not in current_only])
        self.saved = [v.numpy() for v in model.trainable_variables]
        # State Keras keeps outside its weights list (current Nadam's u_product) is in no file but a
        # TF checkpoint: reloading any other file leaves the trajectory, Keras's own files included.
        self.lost = [s.name for s in registry.find(name, family).specs[family].scalars if not s.in_weights]
        train(model, self.xs, self.ys, BEFORE, BEFORE + HALF)
        if self.lost:
            self.halfway = save(model, os.path.join(directory, "halfway"), [k for k in self.files if k in ("h5", "keras")])
        train(model, self.xs, self.ys, BEFORE + HALF, BEFORE + AFTER)
        self.end = [v.numpy() for v in model.trainable_variables]
        self.iterations = int(optimizer.iterations.numpy())

    def port(self, kind, config=None):
        """``(tx, params, state)`` read from the file of ``kind``."""
        with jax.enable_x64(self.dtype == np.float64):
            ckpt = io.read_keras(self.files[kind], config=config)
            assert ckpt.iterations == BEFORE
            tx = io.optimizer_from_keras(ckpt).transformation
            params = io.params_from_keras(flax_params(self.dtype), ckpt)
            return tx, params, io.state_from_keras(tx, params, ckpt)

    def continue_in_jax(self, tx, params, state, start, stop):
        with jax.enable_x64(self.dtype == np.float64):

            @jax.jit
            def step(params, state, x, y):
                grads = jax.grad(loss)(params, x, y)
                updates, state = tx.update(grads, state, params)
                return jk.apply_updates(params, updates), state

            for i in range(start, stop):
                params, state = step(params, state, self.xs[i], self.ys[i])
            return params, state

    def check(self, report, label, ours, theirs=None):
        """Our endpoint against Keras's (by default the uninterrupted Keras run's)."""
        a = agreement(ours, self.end if theirs is None else theirs, self.saved)
        report(f"io {label:58s} {np.dtype(self.dtype).name}: rel {a.relative:.1e}")
        assert a.moved > 0.01, f"the parameters hardly moved ({a.moved})"
        assert a.relative <= TOLERANCE[self.dtype], (
            f"{label}: max |jax - keras| = {a.max_abs_diff:.3e}, {a.relative:.3e} of the distance moved "
            f"({a.moved:.3e}); tolerance {TOLERANCE[self.dtype]:.1e}"
        )


def save(model, directory, kinds):
    os.makedirs(directory, exist_ok=True)
    out = {}
    for kind in kinds:
        if kind in ("h5", "keras"):
            out[kind] = os.path.join(directory, f"m.{kind}")
            model.save(out[kind])
        elif kind == "weights.h5":
            out[kind] = os.path.join(directory, "m.weights.h5")
            model.save_weights(out[kind])
        elif kind == "ckpt":
            out[kind] = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(os.path.join(directory, "ckpt", "ck"))
        elif kind == "tfw":
            out[kind] = os.path.join(directory, "tfw", "w")
            model.save_weights(out[kind])
        elif kind == "savedmodel":
            out[kind] = os.path.join(directory, "savedmodel")
            model.save(out[kind], save_format="tf")
    return out


_RUNS: dict = {}


def run(tmp_path_factory, case, dtype=np.float32, kinds=("h5", "keras", "weights.h5", "ckpt", "tfw")):
    """The run of a case (made once per session, in a tmp dir)."""
    family, name, kwargs = case
    key = (family, name, np.dtype(dtype).name, tuple(kinds))
    if key not in _RUNS:
        directory = str(tmp_path_factory.mktemp(f"{family}_{name}_{np.dtype(dtype).name}"))
        _RUNS[key] = Run(family, name, kwargs, dtype, directory, kinds)
    return _RUNS[key]


def finish_in_keras(r: Run, path: str) -> list:
    """Loads a file saved BEFORE + HALF steps in and trains on to the end in TF-Keras."""
    with floatx(r.dtype):
        model = tf_keras.models.load_model(path)
        model.run_eagerly = eager(r.family, r.name)
        assert int(model.optimizer.iterations.numpy()) == BEFORE + HALF
        train(model, r.xs, r.ys, BEFORE + HALF, BEFORE + AFTER)
        return [v.numpy() for v in model.trainable_variables]


def reverse_trip(report, r: Run, kind: str, tmp_dir) -> None:
    """Port, continue HALF steps in JAX, write the file back, load it in TF-Keras and finish there.

    Keras's finish must match the uninterrupted Keras run and JAX's finish;
    where the format loses state (``Run.lost``), it must match Keras loading
    its own file saved at the same step instead.
    """
    tx, params, state = r.port(kind)
    params, state = r.continue_in_jax(tx, params, state, BEFORE, BEFORE + HALF)
    path = io.write_keras(os.path.join(str(tmp_dir), f"continued.{kind}"), tx, params, state, like=r.files[kind])
    keras_finish = finish_in_keras(r, path)
    if r.lost:
        own = finish_in_keras(r, r.halfway[kind])
        r.check(report, f"{kind} JAX->file->Keras vs Keras->file->Keras {r.family}.{r.name}", keras_finish, own)
        return
    r.check(report, f"{kind} JAX->file->Keras {r.family}.{r.name}", keras_finish)
    jax_finish, _ = r.continue_in_jax(tx, params, state, BEFORE + HALF, BEFORE + AFTER)
    r.check(report, f"{kind} JAX->file->Keras vs JAX {r.family}.{r.name}", keras_finish, as_list(jax_finish))
