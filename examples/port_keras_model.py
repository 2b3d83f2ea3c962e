"""Port a Keras model, mid-training, into a flax nnx model: from the file alone (TF-Keras and Keras 3).

1. TF-Keras trains a small regression model (``model.fit``, legacy Adam with
   ``decay`` and ``clipnorm``) on data made here, and saves it with
   ``model.save("model.h5")``; Keras 3 (JAX backend, in its own process:
   this script with ``--keras3-worker``) trains the same network with
   ``AdamW`` and saves it with ``model.save("model.keras")``.
2. ``jaxopt_keras.io`` reads each file: the optimizer's config and family,
   the model's weights, the optimizer's state and its step count; the
   weights go into an nnx model, the state into an ``nnx.Optimizer``.
3. Both worlds continue on the same batches; the script prints each step's
   loss in both and their difference (float32 rounding, ~1e-7: flax's
   layers are not Keras's operations; ``tests/oracle/test_io_keras3_oracle.py``,
   whose JAX side computes Keras 3's, agrees with Keras 3 bit for bit), and
   writes a PNG of the loss curves.
4. Back to Keras: the JAX run is written with ``write_keras`` (``.h5``,
   ``.keras``) and Keras loads it and takes the next steps, matching JAX's.

Exits with status 1 if the runs drift apart.

Run: ``make demo``, or ``.venv/bin/python examples/port_keras_model.py [--plot PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

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
# Keras 3, in its own process (its backend is fixed when it is imported)
# --------------------------------------------------------------------------


def send(result: dict) -> None:
    print("RESULT " + json.dumps(result), flush=True)


def keras3_worker(directory: str) -> None:
    """Trains AdamW with model.fit, saves model.keras and continues; then finishes the file JAX sends back."""
    import keras

    x, y = make_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.01), loss="mse")
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS_BEFORE, shuffle=False, verbose=0)
    path = os.path.join(directory, "model.keras")
    model.save(path)
    start = int(model.optimizer.iterations)
    losses = [float(model.train_on_batch(*batch(x, y, step))) for step in range(start, start + STEPS_AFTER)]
    send({"path": path, "before": history.history["loss"], "start": start, "losses": losses})
    written = sys.stdin.readline().strip()  # the file JAX writes back
    if written:
        reloaded = keras.saving.load_model(written)
        now = int(reloaded.optimizer.iterations)
        send({"iterations": now, "losses": [float(reloaded.train_on_batch(*batch(x, y, s))) for s in range(now, now + STEPS_BACK)]})


if __name__ == "__main__" and sys.argv[1:2] == ["--keras3-worker"]:
    os.environ["KERAS_BACKEND"] = "jax"
    keras3_worker(sys.argv[2])
    sys.exit(0)

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras is tf_keras (Keras 2)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

try:
    import tensorflow as tf
    import tf_keras
    from flax import nnx
except ImportError:
    print("This example needs TF-Keras and flax: pip install -e '.[demo]' (or run `make demo`).")
    sys.exit(1)

import jax.numpy as jnp

from jaxopt_keras import io

tf.config.set_visible_devices([], "GPU")


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


def plot(path, runs):
    """One column per world: the loss before the port (epoch means), both continuations, their difference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(runs), figsize=(6 * len(runs), 6), sharex="col", gridspec_kw={"height_ratios": [3, 1]}, squeeze=False)
    for (top, bottom), run in zip(axes.T, runs):
        start, keras_losses, jax_losses = run["start"], run["keras"], run["jax"]
        steps = np.arange(start, start + len(keras_losses))
        per_epoch = start // len(run["before"])
        top.plot(np.arange(1, len(run["before"]) + 1) * per_epoch, run["before"], "o-", color="gray", label=f"{run['world']} model.fit (epoch means)")
        top.plot(steps, keras_losses, label=f"{run['world']}, continued", lw=2)
        top.plot(steps, jax_losses, "--", label=f"JAX (flax nnx), ported from {run['file']}", lw=2)
        top.axvline(start, color="k", lw=0.5)
        top.set_title(f"{run['world']}: {run['optimizer']}")
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


def continue_in_jax(model, optimizer, x, y, start, steps):
    return [float(train_step(model, optimizer, *batch(x, y, step))) for step in range(start, start + steps)]


def compare(world, start, keras_losses, jax_losses) -> float:
    """Prints some steps' losses in both worlds; returns the largest relative difference."""
    diffs = np.abs(np.asarray(jax_losses) - np.asarray(keras_losses)) / np.asarray(keras_losses)
    for i in list(range(0, len(keras_losses), 20)) + [len(keras_losses) - 1]:
        print(f"  step {start + i:4d}: loss {world} {keras_losses[i]:.7f}  JAX {jax_losses[i]:.7f}  |difference| {abs(jax_losses[i] - keras_losses[i]):.1e}")
    print(f"{world}: max relative loss difference over {len(keras_losses)} steps: {diffs.max():.1e}")
    return float(diffs.max())


def tf_keras_half(x, y, directory):
    """TF-Keras trains and saves model.h5; the port continues; the JAX run goes back into TF-Keras."""
    saved = os.path.join(directory, "model.h5")
    keras_model, before = train_in_keras(x, y, saved)
    start = int(keras_model.optimizer.iterations.numpy())
    model, optimizer, tx = port(saved)
    keras_losses, jax_losses = [], []
    for step in range(start, start + STEPS_AFTER):
        keras_losses.append(float(keras_model.train_on_batch(*batch(x, y, step))))
        jax_losses.append(float(train_step(model, optimizer, *batch(x, y, step))))
    worst = compare("TF-Keras", start, keras_losses, jax_losses)

    # Back to Keras: the JAX run, written into a file TF-Keras loads and trains on.
    now = start + STEPS_AFTER
    params, state = nnx.state(model, nnx.Param), nnx.as_pure(optimizer.opt_state)
    written = io.write_keras(os.path.join(directory, "continued.h5"), tx, params, state, like=saved)
    reloaded = tf_keras.models.load_model(written)
    back = [float(reloaded.train_on_batch(*batch(x, y, step))) for step in range(now, now + STEPS_BACK)]
    back = max(abs(a - b) for a, b in zip(back, continue_in_jax(model, optimizer, x, y, now, STEPS_BACK)))
    print(f"back in TF-Keras from iteration {now}: max |loss difference| over {STEPS_BACK} steps {back:.1e}")
    run = dict(world="TF-Keras", file="model.h5", optimizer="legacy Adam(decay, clipnorm)", start=start, before=before, keras=keras_losses, jax=jax_losses)
    return run, worst <= TOLERANCE and back <= TOLERANCE


def start_keras3(directory):
    """This script as the Keras 3 worker: KERAS_BACKEND=jax, no TF-Keras."""
    env = dict(os.environ, KERAS_BACKEND="jax")
    env.pop("TF_USE_LEGACY_KERAS", None)
    log = open(os.path.join(directory, "keras3.log"), "w")
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--keras3-worker", directory],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
    )


def receive(worker, directory):
    for line in worker.stdout:
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    with open(os.path.join(directory, "keras3.log")) as f:
        raise RuntimeError("the Keras 3 process ended without a result:\n" + f.read()[-3000:])


def keras3_half(worker, x, y, directory):
    """Keras 3 trained and saved model.keras (in the worker); the port continues; the JAX run goes back."""
    trained = receive(worker, directory)
    start = trained["start"]
    model, optimizer, tx = port(trained["path"])
    jax_losses = continue_in_jax(model, optimizer, x, y, start, STEPS_AFTER)
    worst = compare("Keras 3", start, trained["losses"], jax_losses)

    now = start + STEPS_AFTER
    params, state = nnx.state(model, nnx.Param), nnx.as_pure(optimizer.opt_state)
    written = io.write_keras(os.path.join(directory, "continued.keras"), tx, params, state, like=trained["path"])
    worker.stdin.write(written + "\n")
    worker.stdin.flush()
    ours = continue_in_jax(model, optimizer, x, y, now, STEPS_BACK)
    finished = receive(worker, directory)
    back = max(abs(a - b) for a, b in zip(finished["losses"], ours))
    print(f"back in Keras 3 from iteration {finished['iterations']}: max |loss difference| over {STEPS_BACK} steps {back:.1e}")
    run = dict(world="Keras 3", file="model.keras", optimizer="AdamW", start=start, before=trained["before"], keras=trained["losses"], jax=jax_losses)
    return run, worst <= TOLERANCE and back <= TOLERANCE and finished["iterations"] == now


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", default=os.path.join("build", "port_keras_model.png"))
    args = parser.parse_args()
    x, y = make_data()
    with tempfile.TemporaryDirectory() as directory:
        worker = start_keras3(directory)  # Keras 3 trains meanwhile
        try:
            tf_run, tf_ok = tf_keras_half(x, y, directory)
            k3_run, k3_ok = keras3_half(worker, x, y, directory)
        finally:
            worker.kill()
            worker.wait()
    plot(args.plot, [tf_run, k3_run])
    ok = tf_ok and k3_ok
    print("OK" if ok else "TOO LARGE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
