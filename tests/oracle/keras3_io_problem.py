"""The Keras 3 io oracle's training problem, shared by the test (TF imported) and the runner (Keras 3).

No TensorFlow or Keras import here: the two sides import this module in
different processes.  ``Dense(6, tanh) -> Dense(2)`` on fixed batches, and
the cases: Keras 3 optimizers with options that exercise their state.
"""

from __future__ import annotations

import numpy as np

BEFORE, AFTER, HALF, BATCH = 20, 60, 30, 16

# label -> (class name, kwargs, wrapper).  A "schedule" kwarg is an ExponentialDecay config.
CASES = {
    "Adam": ("Adam", dict(learning_rate=0.01, clipnorm=1.0), None),
    # The global norm sums the tensors' squares in Keras's variable order (kernel, bias per layer),
    # not in the flax tree's (bias, kernel): a different order rounds differently.
    "Adam_global_clipnorm": ("Adam", dict(learning_rate=0.01, global_clipnorm=0.1), None),
    "LossScale_Adam_global_clipnorm": ("Adam", dict(learning_rate=0.01, global_clipnorm=0.1), "LossScaleOptimizer"),
    "AdamW": ("AdamW", dict(learning_rate=0.01, weight_decay=0.05), None),
    "Nadam": ("Nadam", dict(learning_rate=0.01), None),
    "SGD": ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True), None),
    "Adafactor": ("Adafactor", dict(learning_rate=0.05), None),
    "Adam_ema": ("Adam", dict(learning_rate=0.01, use_ema=True, ema_momentum=0.9), None),
    "Adam_accumulation": ("Adam", dict(learning_rate=0.01, gradient_accumulation_steps=3), None),
    "SGD_schedule": ("SGD", dict(learning_rate=dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.9), momentum=0.5), None),
    "RMSprop": ("RMSprop", dict(learning_rate=0.01, momentum=0.5, centered=True), None),
    "LossScale_Adam": ("Adam", dict(learning_rate=0.01), "LossScaleOptimizer"),
    # Keras 3 builds the wrapped Adafactor untracked: the int32 placeholders of the biases are in no list, nor the file.
    "LossScale_Adafactor": ("Adafactor", dict(learning_rate=0.05), "LossScaleOptimizer"),
    # A model whose dtype policy is mixed_float16 (its layers float32): Keras 3's compile wraps the
    # Adam in a LossScaleOptimizer, while the .keras file's compile_config names Adam.
    "Adam_mixed_policy": ("Adam", dict(learning_rate=0.01), "mixed_float16"),
    # Adam for the kernels (a pattern: each case's layers are numbered anew), SGD for the rest.
    "Multi": ("Adam", dict(learning_rate=0.01), "MultiOptimizer"),
    # The kernels' Adam clips their global norm: over its own variables, leaves 1 and 3 of the tree.
    "Multi_global_clipnorm": ("Adam", dict(learning_rate=0.01, global_clipnorm=0.1), "MultiOptimizer"),
    "SGD_bfloat16": ("SGD", dict(learning_rate=0.05, momentum=0.9), None),  # Adam: beta_2 is 1.0 in bfloat16
    # Muon routes by path: the kernels take its Newton-Schulz step (no velocity slot), the biases AdamW.
    "Muon": ("Muon", dict(learning_rate=0.01, weight_decay=None, adam_weight_decay=None), None),
}
# The model's dtype where it is not float32.
DTYPES = {"SGD_bfloat16": "bfloat16", "Adam_mixed_policy": "float32"}


def batches() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1.0, 1.0, (BEFORE + AFTER, BATCH, 4))
    ys = np.sin(2 * xs[..., :2]) + xs[..., 2:] * xs[..., :2]
    return xs.astype(np.float32), ys.astype(np.float32)


def flax_params(dtype) -> dict:
    """The two-layer model's parameters as a flax tree (zeros: the file fills them)."""
    return {
        "Dense_0": {"kernel": np.zeros((4, 6), dtype), "bias": np.zeros(6, dtype)},
        "Dense_1": {"kernel": np.zeros((6, 2), dtype), "bias": np.zeros(2, dtype)},
    }


def as_list(params) -> list:
    """The parameters in Keras's ``trainable_variables`` order."""
    return [np.asarray(params[d][v]) for d in ("Dense_0", "Dense_1") for v in ("kernel", "bias")]
