"""Muon: momentum orthogonalised by Newton-Schulz, with AdamW for the rest (Keras 3 only).

``keras.optimizers.Muon`` (Keras 3.10+; ``rms_rate`` and ``adam_weight_decay``
since 3.13) steps each variable one of two ways, chosen from its path and
shape (:func:`should_use_adamw`, Keras's ``_should_use_adamw``):

* the **AdamW path** for a variable that is not 2-D, an embedding (its path
  contains ``"embedding"``, any case, with ``exclude_embeddings``) or one
  whose path matches a regex of ``exclude_layers``: Adam with
  ``adam_beta_1``/``adam_beta_2``/``epsilon`` at ``learning_rate *
  adam_lr_ratio``, slots ``momentum`` and ``velocity``, decayed at
  ``adam_weight_decay``;
* the **Muon path** for every other (2-D) variable: momentum, then the
  Newton-Schulz iteration, slot ``momentum`` only, decayed at ``weight_decay``.

Both decays use the learning rate without ``adam_lr_ratio``.  Keras 3 lists
the slots per variable, ``momentum`` then (AdamW path only) ``velocity``.
The spec routes (:class:`~jaxopt_keras.algorithms.parts.Route`): the Keras
layer routes each ``Variable`` by its ``path``; the functional form by the
keys leading to each parameter (``encoder/embedding/embeddings``), or by a
``paths=`` tree of strings.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, NamedTuple

import jax
import numpy as np
import jax.numpy as jnp

from jaxopt_keras.algorithms.parts import Route, Slot, Static
from jaxopt_keras.algorithms.spec import Coefficients, Spec, minus_one, one_minus
from jaxopt_keras.core.hyperparams import Derived
from jaxopt_keras.core.state import local_step
from jaxopt_keras.schedules._keras3 import compute_dtype


class MuonSlots(NamedTuple):
    """``m`` (Keras 3: ``momentum``) for every variable, ``v`` (``velocity``)
    for those on the AdamW path (``None`` for the others)."""

    m: Any
    v: Any


def should_use_adamw(path: str, shape: tuple[int, ...], exclude_layers, exclude_embeddings: bool) -> bool:
    """Keras 3's ``Muon._should_use_adamw``: not 2-D, an embedding, or an excluded layer."""
    if len(shape) != 2:
        return True
    if exclude_embeddings and "embedding" in path.lower():
        return True
    return any(re.search(keyword, path) for keyword in exclude_layers)


def _transpose_last_axes(x: jax.Array) -> jax.Array:
    order = list(range(x.ndim))
    order[-2], order[-1] = order[-1], x.ndim - 2
    return jnp.transpose(x, order)


def zeropower_via_newtonschulz5(x: jax.Array, steps: int, a: Any = 3.4445, b: Any = -4.7750, c: Any = 2.0315) -> jax.Array:
    """Keras 3's quintic Newton-Schulz iteration towards the orthogonal factor of ``x``::

        X = x (transposed if taller than wide) / (||x||_F + 1e-7)
        repeat steps:  A = X X^T ;  B = b A + (c A) A ;  X = a X + B X

    Raises:
      ValueError: ``x`` has fewer than 2 dimensions (Keras 3's words).
    """
    shape = x.shape
    if len(shape) < 2:
        raise ValueError(f"Expected gradient or momentum to have at least 2 dimensions. Received: shape={shape}")
    tall = shape[-2] > shape[-1]
    if tall:
        x = _transpose_last_axes(x)
    norm = jnp.linalg.norm(x.astype(compute_dtype(x.dtype)), axis=(-2, -1), keepdims=True)  # Keras 3's ops.norm
    x = x / (norm + 1e-7)
    for _ in range(steps):
        temp_a = x @ _transpose_last_axes(x)
        temp_b = b * temp_a + (c * temp_a) @ temp_a
        x = a * x + temp_b @ x
    return _transpose_last_axes(x) if tall else x


def lr_adjust(x: jax.Array, rms_rate: float | None) -> jax.Array:
    """Moonlight's scaling of a 2-D update: ``x * sqrt(max(rows, cols)) * rms_rate`` (``x`` if ``None``)."""
    if rms_rate is None:
        return x
    rows_or_cols = jnp.maximum(jnp.asarray(x.shape[0]), jnp.asarray(x.shape[1]))
    return x * jnp.sqrt(rows_or_cols.astype(compute_dtype(rows_or_cols.dtype))) * rms_rate  # ops.sqrt of an integer


def muon_update(g: jax.Array, p: jax.Array | None, s: MuonSlots, c: Coefficients):
    """One Muon-path step (``Muon._muon_update_step``)::

        m = m + (g + m * (momentum - 1))              (momentum - 1 in double)
        G = g + momentum * m   (nesterov)   else  m
        X = lr * newton_schulz(G, ns_steps)
        X = X * sqrt(max(rows, cols)) * rms_rate       (unless rms_rate is None)
        p = p - X
    """
    m = s.m + (g + s.m * c.momentum_minus_one)
    direction = g + c.momentum * m if c.nesterov else m
    update = zeropower_via_newtonschulz5(direction, c.ns_steps, c.muon_a, c.muon_b, c.muon_c)
    return -lr_adjust(c.learning_rate * update, c.rms_rate), MuonSlots(m, None)


def adamw_update(g: jax.Array, p: jax.Array | None, s: MuonSlots, c: Coefficients):
    """One AdamW-path step (``Muon._adamw_update_step``)::

        lr = lr * adam_lr_ratio ;  t = iterations + 1
        alpha = lr * sqrt(1 - adam_beta_2**t) / (1 - adam_beta_1**t)
        m = m + (g - m) * (1 - adam_beta_1)           (1 - adam_beta_1 in double)
        v = v + (g**2 - v) * (1 - adam_beta_2)
        p = p - (m * alpha) / (sqrt(v) + epsilon)
    """
    lr = c.learning_rate * c.adam_lr_ratio
    t = local_step(c.iterations, 1, g.dtype)
    adam_beta_1_power = jnp.power(c.adam_beta_1, t)
    adam_beta_2_power = jnp.power(c.adam_beta_2, t)
    alpha = lr * jnp.sqrt(1 - adam_beta_2_power) / (1 - adam_beta_1_power)
    m = s.m + (g - s.m) * c.one_minus_adam_beta_1
    v = s.v + (jnp.square(g) - s.v) * c.one_minus_adam_beta_2
    return -((m * alpha) / (jnp.sqrt(v) + c.epsilon)), MuonSlots(m, v)


MUON = Route(muon_update, slots=("m",), weight_decay="weight_decay")
ADAMW = Route(adamw_update, slots=("m", "v"), weight_decay="adam_weight_decay")


def route(path: str, shape: tuple[int, ...], args: Mapping[str, Any]) -> Route:
    """The path a variable takes (:func:`should_use_adamw`).

    Raises:
      ValueError: the variable's path is not a string (it cannot be routed).
    """
    if not isinstance(path, str):
        raise ValueError(f"Muon routes each variable by its path (a string); received path {path!r} for a variable of shape {shape}.")
    return ADAMW if should_use_adamw(path, shape, args["exclude_layers"], args["exclude_embeddings"]) else MUON


def _check(args: dict) -> dict:
    args["exclude_layers"] = layers = args["exclude_layers"] or []  # Keras 3: `exclude_layers or []`
    # Keras 3 fails in its first step, in `re.search(keyword, path)` (a string is its characters, as there).
    if not isinstance(layers, (str, list, tuple)) or not all(isinstance(k, str) for k in layers):
        raise TypeError(
            f"Argument `exclude_layers` must be a list of strings (regular expressions). Received: exclude_layers={layers!r}."
        )
    steps = args["ns_steps"]
    if not isinstance(steps, (int, np.integer)):
        # Keras 3 fails in its first step, in `range(self.ns_steps)`.
        raise TypeError(f"Argument `ns_steps` must be an integer. Received: ns_steps={steps!r}.")
    return args


KERAS3 = Spec(
    family="keras3",
    singular={"adam_beta_1": 1.0},
    # Keras 3's constructor order: its own arguments around the base class's, `name` at 14.
    defaults={
        "learning_rate": 0.001,
        "adam_beta_1": 0.9,
        "adam_beta_2": 0.999,
        "adam_weight_decay": 0.004,
        "epsilon": 1e-7,
        "weight_decay": 0.004,
        "clipnorm": None,
        "clipvalue": None,
        "global_clipnorm": None,
        "use_ema": False,
        "ema_momentum": 0.99,
        "ema_overwrite_frequency": None,
        "loss_scale_factor": None,
        "gradient_accumulation_steps": None,
        "exclude_layers": None,
        "exclude_embeddings": True,
        "muon_a": 3.4445,
        "muon_b": -4.7750,
        "muon_c": 2.0315,
        "adam_lr_ratio": 1,
        "momentum": 0.95,
        "ns_steps": 5,
        "nesterov": True,
        "rms_rate": 0.2,
    },
    name_index=14,
    config_order=(
        "adam_beta_1", "adam_beta_2", "epsilon", "exclude_layers", "muon_a", "muon_b", "muon_c",
        "adam_lr_ratio", "momentum", "ns_steps", "nesterov", "exclude_embeddings", "adam_weight_decay", "rms_rate",
    ),  # fmt: skip
    float32_hyperparams=("adam_beta_1", "adam_beta_2"),  # ops.cast(self.adam_beta_1, dtype)
    # Python floats meeting tensors: `b * A`, `self.momentum * m`, `lr * self.adam_lr_ratio`.
    exact_hyperparams=("epsilon", "muon_a", "muon_b", "muon_c", "momentum", "adam_lr_ratio"),
    derived=(
        Derived("one_minus_adam_beta_1", "adam_beta_1", one_minus),
        Derived("one_minus_adam_beta_2", "adam_beta_2", one_minus),
        Derived("momentum_minus_one", "momentum", minus_one),
    ),
    decay_rates=("weight_decay", "adam_weight_decay"),
    statics=(Static("nesterov"), Static("ns_steps"), Static("rms_rate")),
    slots_type=MuonSlots,
    slots=(Slot("m"), Slot("v")),
    slot_order=(("m", "v"),),
    slot_names={"m": "momentum", "v": "velocity"},
    update=muon_update,
    route=route,
    check_args=_check,
    nullable=("adam_weight_decay", "rms_rate"),  # no decay / no RMS matching
    # Python arithmetic on these (`a * X`, `range(ns_steps)`): a non-number is a TypeError.
    non_number_errors={k: TypeError for k in ("muon_a", "muon_b", "muon_c", "ns_steps")},
    elementwise=False,
)
