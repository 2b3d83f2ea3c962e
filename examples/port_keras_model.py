"""Port a TF-Keras model, mid-training, into a flax nnx model: from the file alone.

1. TF-Keras trains a small regression model (``model.fit``, legacy Adam with
   ``decay`` and ``clipnorm``) on data made here, and saves it with
   ``model.save("model.h5")``.
2. ``jaxopt_keras.io`` reads the file: the optimizer's config and family,
   the model's weights, the optimizer's state and its step count; the
   weights go into an nnx model, the state into an ``nnx.Optimizer``.
3. Both worlds continue on the same batches; the script prints each step's
   loss in both and their difference (float32 rounding: ~1e-7), and writes
   a PNG of the two loss curves.
4. Back to Keras: the JAX run is written with ``write_keras`` and TF-Keras
   loads it and takes the next steps, matching JAX's.

(A Keras 3 half, ``AdamW`` saved as ``.keras``, waits for the keras3
numerics family.)  Exits with status 1 if the runs drift apart.

Run: ``make demo``, or ``.venv/bin/python examples/port_keras_model.py [--plot PATH]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras is tf_keras (Keras 2)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

try:
    import tensorflow as tf
    import tf_keras
    from flax import nnx
except ImportError:
    print("This example needs TF-Keras and flax: pip install -e '.[demo]' (or run `make demo`).")
    sys.exit(1)

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras import io

tf.config.set_visible_devices([], "GPU")

BATCH, EPOCHS_BEFORE, STEPS_AFTER, STEPS_BACK = 32, 4, 120, 20
TOLERANCE = 1e-5  # on the loss, relative: float32 rounding of two implementations


def make_data(n: int = 512, seed: int = 0):
    """y = sin(2 x0) + x1 x2 - 0.5 x3^2 (+ noise), x uniform in [-1, 1]^4."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, 4)).astype(np.float32)
    y = np.sin(2 * x[:, :1]) + x[:, 1:2] * x[:, 2:3] - 0.5 * x[:, 3:4] ** 2 + 0.05 * rng.standard_normal((n, 1))
    return x, y.astype(np.float32)


def batch(x, y, step):
    i = (step * BATCH) % len(x)
    return x[i : i + BATCH], y[i : i + BATCH]


# --------------------------------------------------------------------------
# Keras: train and save
# --------------------------------------------------------------------------


def train_in_keras(x, y, path):
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [
            tf_keras.Input((4,)),
            tf_keras.layers.Dense(32, activation="tanh"),
            tf_keras.layers.Dense(16, activation="tanh"),
            tf_keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=tf_keras.optimizers.legacy.Adam(learning_rate=0.01, decay=1e-3, clipnorm=1.0), loss="mse")
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS_BEFORE, shuffle=False, verbose=0)
    model.save(path)
    return model, history.history["loss"]


# --------------------------------------------------------------------------
# JAX: the same network in flax nnx
# --------------------------------------------------------------------------


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(4, 32, rngs=rngs), nnx.Linear(32, 16, rngs=rngs), nnx.Linear(16, 1, rngs=rngs)])

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jnp.tanh(layer(x))
        return self.layers[-1](x)


def loss_fn(model, x, y):
    return jnp.mean((model(x) - y) ** 2)


@nnx.jit
def train_step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
    optimizer.update(model, grads)
    return loss


def port(path):
    """Everything from the file: config, family, weights, optimizer state, step count."""
    ckpt = io.read_keras(path)
    keras_optimizer = io.optimizer_from_keras(ckpt)
    print(f"read {os.path.basename(path)}: {ckpt.config['class_name']} ({ckpt.family} family), "
          f"iteration {ckpt.iterations}, config {ckpt.config['config']}")
    print(f"  optimizer weights: {list(ckpt.optimizer_weights)[:4]} ... ({len(ckpt.optimizer_weights)})")
    tx = keras_optimizer.transformation
    model = MLP(nnx.Rngs(0))
    nnx.update(model, io.params_from_keras(nnx.state(model, nnx.Param), ckpt))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    nnx.update(optimizer.opt_state, nnx.state(io.state_from_keras(tx, nnx.state(model, nnx.Param), ckpt)))
    return model, optimizer, tx


def plot(path, before, keras_losses, jax_losses, start):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(start, start + len(keras_losses))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    per_epoch = start // len(before)
    top.plot(np.arange(1, len(before) + 1) * per_epoch, before, "o-", color="gray", label="TF-Keras model.fit (epoch means)")
    top.plot(steps, keras_losses, label="TF-Keras, continued", lw=2)
    top.plot(steps, jax_losses, "--", label="JAX (flax nnx), ported from model.h5", lw=2)
    top.axvline(start, color="k", lw=0.5)
    top.set_ylabel("training loss (MSE)")
    top.set_yscale("log")
    top.legend()
    bottom.semilogy(steps, np.abs(np.asarray(jax_losses) - np.asarray(keras_losses)) + 1e-12)
    bottom.set_ylabel("|difference|\n(0 drawn at 1e-12)")
    bottom.set_xlabel("step")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", default=os.path.join("build", "port_keras_model.png"))
    args = parser.parse_args()
    x, y = make_data()
    with tempfile.TemporaryDirectory() as directory:
        saved = os.path.join(directory, "model.h5")
        keras_model, before = train_in_keras(x, y, saved)
        start = int(keras_model.optimizer.iterations.numpy())
        model, optimizer, tx = port(saved)

        keras_losses, jax_losses = [], []
        for step in range(start, start + STEPS_AFTER):
            xb, yb = batch(x, y, step)
            keras_losses.append(float(keras_model.train_on_batch(xb, yb)))
            jax_losses.append(float(train_step(model, optimizer, xb, yb)))
        diffs = np.abs(np.asarray(jax_losses) - np.asarray(keras_losses)) / np.asarray(keras_losses)
        for i in list(range(0, STEPS_AFTER, 20)) + [STEPS_AFTER - 1]:
            print(f"  step {start + i:4d}: loss Keras {keras_losses[i]:.7f}  JAX {jax_losses[i]:.7f}  |difference| {abs(jax_losses[i] - keras_losses[i]):.1e}")
        print(f"max relative loss difference over {STEPS_AFTER} steps: {diffs.max():.1e}")

        # Back to Keras: the JAX run, written into a file TF-Keras loads and trains on.
        now = start + STEPS_AFTER
        params, state = nnx.state(model, nnx.Param), nnx.as_pure(optimizer.opt_state)
        written = io.write_keras(os.path.join(directory, "continued.h5"), tx, params, state, like=saved)
        reloaded = tf_keras.models.load_model(written)
        back = []
        for step in range(now, now + STEPS_BACK):
            xb, yb = batch(x, y, step)
            back.append(abs(float(reloaded.train_on_batch(xb, yb)) - float(train_step(model, optimizer, xb, yb))))
        print(f"back in TF-Keras from iteration {now}: max |loss difference| over {STEPS_BACK} steps {max(back):.1e}")
    plot(args.plot, before, keras_losses, jax_losses, start)
    ok = diffs.max() <= TOLERANCE and max(back) <= TOLERANCE
    print("OK" if ok else "TOO LARGE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
