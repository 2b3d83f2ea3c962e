"""Port a TF-Keras optimizer (its config and its weights) to JAX, mid-training.

For a legacy optimizer (``tf.keras.optimizers.legacy.Adam`` with ``decay``)
and a current one (``tf.keras.optimizers.Nadam``), this script:

1. trains a small two-layer ``tf_keras`` model for a few steps;
2. saves what a checkpoint holds: the optimizer's config (JSON), its weights
   list and the model's weights (``.npz``), in a temporary directory;
3. loads them into jaxopt_keras: ``deserialize`` the config, ``build`` the
   optimizer on ``jaxopt_keras.Variable`` objects in the order of the model's
   ``trainable_variables``, ``set_weights``;
4. continues training on both sides with the same batches (the legacy one
   with the stateful ``apply_gradients``, the current one through the pure
   ``opt.transformation``/``opt.state`` path under ``jax.jit``), and prints the
   largest difference between the two sets of parameters.

Each side computes its own gradients in float32, so the two runs differ by
float32 rounding only (~1e-7); the script exits with status 1 if the
difference exceeds 1e-4.  Docs: ``docs/porting.md``.

Run: ``.venv/bin/python examples/port_keras_optimizer.py``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras is tf_keras (Keras 2)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

try:
    import tensorflow as tf
    import tf_keras
except ImportError:
    print(
        "This example trains the original model in TF-Keras, which is not installed.\n"
        "Install it with `pip install -e '.[oracle]'` (tensorflow-cpu and tf-keras) and rerun."
    )
    sys.exit(0)

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_keras as jk
from jaxopt_keras import optimizers as O

tf.config.set_visible_devices([], "GPU")

STEPS_BEFORE, STEPS_AFTER, BATCH = 15, 25, 16
TOLERANCE = 1e-4


def make_data(n: int = 128, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, 4)).astype(np.float32)
    y = (np.sin(2 * x[:, :1]) + x[:, 1:2] * x[:, 2:3]).astype(np.float32)
    return x, y


def batches(x, y, steps, start):
    for k in range(start, start + steps):
        i = (k * BATCH) % len(x)
        yield x[i : i + BATCH], y[i : i + BATCH]


# --------------------------------------------------------------------------
# The Keras side
# --------------------------------------------------------------------------


def keras_model():
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [tf_keras.layers.Dense(8, activation="tanh", name="hidden"), tf_keras.layers.Dense(1, name="out")]
    )
    model.build((None, 4))
    return model


def keras_step(model, optimizer, xb, yb):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(xb) - yb))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))


def optimizer_weights(optimizer):
    """The optimizer's weights list: ``get_weights()`` in the legacy family, ``variables`` in the current."""
    if hasattr(optimizer, "get_weights"):
        return optimizer.get_weights()
    return [v.numpy() for v in optimizer.variables]


def save_checkpoint(directory, model, optimizer):
    """What a Keras checkpoint holds, as JSON and .npz."""
    with open(os.path.join(directory, "optimizer.json"), "w") as f:
        json.dump(tf_keras.optimizers.serialize(optimizer), f)
    np.savez(os.path.join(directory, "optimizer_weights.npz"), *optimizer_weights(optimizer))
    np.savez(os.path.join(directory, "model_weights.npz"), *[v.numpy() for v in model.trainable_variables])
    with open(os.path.join(directory, "variable_names.json"), "w") as f:
        json.dump([v.name for v in model.trainable_variables], f)


# --------------------------------------------------------------------------
# The JAX side
# --------------------------------------------------------------------------


def forward(params, x):
    """The same model: Dense(8, tanh) then Dense(1); params in trainable_variables order."""
    k1, b1, k2, b2 = params
    return jnp.tanh(x @ k1 + b1) @ k2 + b2


def loss_fn(params, xb, yb):
    return jnp.mean(jnp.square(forward(params, xb) - yb))


def load_npz(path):
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def load_checkpoint(directory):
    """Config -> optimizer, model weights -> Variables, weights list -> optimizer state."""
    with open(os.path.join(directory, "optimizer.json")) as f:
        config = json.load(f)
    with open(os.path.join(directory, "variable_names.json")) as f:
        names = json.load(f)
    optimizer = O.deserialize(config)  # the config decides the family
    variables = [jk.Variable(w, name=n) for w, n in zip(load_npz(os.path.join(directory, "model_weights.npz")), names)]
    optimizer.build(variables)  # same order as model.trainable_variables
    optimizer.set_weights(load_npz(os.path.join(directory, "optimizer_weights.npz")))
    return config, optimizer, variables


def continue_stateful(optimizer, variables, data):
    """Keras style: gradients of the values, applied to the Variables in place."""
    grad_fn = jax.jit(jax.grad(loss_fn))
    for xb, yb in data:
        grads = grad_fn([v.value for v in variables], xb, yb)
        optimizer.apply_gradients(zip(grads, variables))


def continue_functional(optimizer, variables, data):
    """Pure JAX: drive opt.transformation on arrays, then write the results back."""
    tx = optimizer.transformation

    @jax.jit
    def step(params, state, xb, yb):
        grads = jax.grad(loss_fn)(params, xb, yb)
        updates, state = tx.update(grads, state, params)
        return jk.apply_updates(params, updates), state

    params, state = [v.value for v in variables], optimizer.state
    for xb, yb in data:
        params, state = step(params, state, xb, yb)
    optimizer.state = state  # the object (and its weights list) follow the pure loop
    for v, p in zip(variables, params):
        v.assign(p)


# --------------------------------------------------------------------------


def port(label, make_keras_optimizer, continue_in_jax):
    x, y = make_data()
    model, keras_opt = keras_model(), make_keras_optimizer()
    for xb, yb in batches(x, y, STEPS_BEFORE, 0):
        keras_step(model, keras_opt, xb, yb)

    with tempfile.TemporaryDirectory() as directory:
        save_checkpoint(directory, model, keras_opt)
        config, jax_opt, variables = load_checkpoint(directory)

    family = "legacy" if isinstance(jax_opt, O.legacy.Optimizer) else "current"
    print(f"{label}")
    print(f"  config module {config['module']!r} -> {type(jax_opt).__module__}.{type(jax_opt).__name__} ({family} family)")
    print(f"  weights list: {[w.name for w in jax_opt.weights]}")
    print(f"  restored at iteration {int(jax_opt.iterations.numpy())}")

    for xb, yb in batches(x, y, STEPS_AFTER, STEPS_BEFORE):
        keras_step(model, keras_opt, xb, yb)
    continue_in_jax(jax_opt, variables, batches(x, y, STEPS_AFTER, STEPS_BEFORE))

    param_diff = max(float(np.max(np.abs(v.numpy() - t.numpy()))) for v, t in zip(variables, model.trainable_variables))
    ours, theirs = jax_opt.get_weights(), optimizer_weights(keras_opt)
    slot_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ours[1:], theirs[1:]))
    print(f"  after {STEPS_AFTER} more steps on each side (iteration {int(ours[0])} = {int(theirs[0])}):")
    print(f"  max |param difference| = {param_diff:.3e}, max |optimizer weight difference| = {slot_diff:.3e}")
    return max(param_diff, slot_diff)


def main() -> int:
    worst = max(
        port(
            "legacy: tf_keras.optimizers.legacy.Adam(learning_rate=0.02, decay=1e-3), continued with apply_gradients",
            lambda: tf_keras.optimizers.legacy.Adam(learning_rate=0.02, decay=1e-3),
            continue_stateful,
        ),
        port(
            "current: tf_keras.optimizers.Nadam(learning_rate=0.01), continued through opt.transformation/opt.state",
            lambda: tf_keras.optimizers.Nadam(learning_rate=0.01),
            continue_functional,
        ),
    )
    print(f"max difference: {worst:.3e} ({'OK' if worst <= TOLERANCE else 'TOO LARGE'}, tolerance {TOLERANCE:g})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
