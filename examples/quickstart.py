"""Quickstart: train a small model in JAX with each of the eight Keras optimizers.

Each optimizer is built from a Keras config (the dict ``get_config()`` returns
in TF-Keras), half of them in the legacy family and half in the current one,
and trains the same two-layer network on the same synthetic regression data.
The script prints each optimizer's training loss after every epoch.

Run with ``make demo``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_keras as jk

# Keras configs, as tf.keras.optimizers[.legacy].X(...).get_config() returns them.
CONFIGS = [
    ("legacy", {"name": "SGD", "learning_rate": 0.05, "decay": 0.0, "momentum": 0.9, "nesterov": True}),
    ("current", {"name": "Adam", "weight_decay": None, "clipnorm": None, "global_clipnorm": None,
                 "clipvalue": None, "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                 "jit_compile": False, "is_legacy_optimizer": False, "learning_rate": 0.01,
                 "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False}),
    ("legacy", {"name": "Adamax", "learning_rate": 0.02, "decay": 0.0, "beta_1": 0.9, "beta_2": 0.999,
                "epsilon": 1e-07}),
    ("current", {"name": "Nadam", "learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07,
                 "is_legacy_optimizer": False}),
    ("legacy", {"name": "Adagrad", "learning_rate": 0.1, "decay": 0.0, "initial_accumulator_value": 0.1,
                "epsilon": 1e-07}),
    ("current", {"name": "Adadelta", "learning_rate": 1.0, "rho": 0.95, "epsilon": 1e-07,
                 "is_legacy_optimizer": False}),
    ("legacy", {"name": "RMSprop", "learning_rate": 0.005, "decay": 0.0, "rho": 0.9, "momentum": 0.0,
                "epsilon": 1e-07, "centered": True, "clipnorm": 1.0}),
    ("current", {"name": "Ftrl", "learning_rate": 0.2, "learning_rate_power": -0.5,
                 "initial_accumulator_value": 0.1, "l1_regularization_strength": 0.0,
                 "l2_regularization_strength": 0.001, "l2_shrinkage_regularization_strength": 0.0,
                 "beta": 0.0, "is_legacy_optimizer": False}),
]

EPOCHS = 6
BATCH = 64


def make_data(n: int = 1024, seed: int = 0):
    """y = sin(3 x0) + x1 * x2 + noise, for x uniform in [-1, 1]^3."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, 3)).astype(np.float32)
    y = (np.sin(3 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.05 * rng.standard_normal(n)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y[:, None])


def init_params(key):
    k1, k2 = jax.random.split(key)
    return {
        "dense_1": {"kernel": jax.random.normal(k1, (3, 32)) * 0.5, "bias": jnp.zeros(32)},
        "dense_2": {"kernel": jax.random.normal(k2, (32, 1)) * 0.2, "bias": jnp.zeros(1)},
    }


def loss_fn(params, x, y):
    h = jnp.tanh(x @ params["dense_1"]["kernel"] + params["dense_1"]["bias"])
    pred = h @ params["dense_2"]["kernel"] + params["dense_2"]["bias"]
    return jnp.mean((pred - y) ** 2)


def build(family: str, config: dict) -> jk.GradientTransformation:
    """The transformation a Keras config describes (class name in config["name"])."""
    factory = getattr(jk.legacy if family == "legacy" else jk, config["name"].lower())
    return factory(**config)


def train(opt: jk.GradientTransformation, x, y) -> list[float]:
    params = init_params(jax.random.PRNGKey(42))
    state = opt.init(params)

    @jax.jit
    def step(params, state, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        updates, state = opt.update(grads, state, params)
        return jk.apply_updates(params, updates), state, loss

    losses = []
    n = x.shape[0]
    for epoch in range(EPOCHS):
        order = np.random.default_rng(epoch).permutation(n)
        for i in range(0, n, BATCH):
            idx = order[i : i + BATCH]
            params, state, _ = step(params, state, x[idx], y[idx])
        losses.append(float(loss_fn(params, x, y)))
    return losses


def main() -> None:
    x, y = make_data()
    print(f"Training a 3-32-1 tanh network on {x.shape[0]} samples, batch {BATCH}; full-data MSE after each epoch.\n")
    header = f"{'optimizer':<22}" + "".join(f"{'epoch ' + str(e + 1):>11}" for e in range(EPOCHS))
    print(header)
    print("-" * len(header))
    for family, config in CONFIGS:
        losses = train(build(family, config), x, y)
        label = f"{config['name']} ({family})"
        print(f"{label:<22}" + "".join(f"{v:>11.4f}" for v in losses))


if __name__ == "__main__":
    main()
