"""Back to Keras: :func:`write_keras` puts parameters and an optimizer state into a file Keras loads.

The file is a copy of one Keras wrote (``like=``): its model config, its
layer structure and its training config are kept; the model's weights, the
optimizer's weights list and the optimizer config's hyperparameters are
replaced by the JAX run's.  ``tf_keras.models.load_model`` then rebuilds the
model and optimizer and continues the same trajectory.

Written: a TF-Keras ``.h5`` (``model.save``; both families) and a TF-Keras
``.keras`` archive (current family: TF-Keras loads no legacy optimizer state
from a ``.keras``).  A Keras 3 ``.keras`` needs the keras3 family's weights
list (:func:`~jaxopt_keras.io.checkpoint.has_numerics`).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from jaxopt_keras.core.hyperparams import get_hyperparams
from jaxopt_keras.io.archive import write_archive
from jaxopt_keras.io.checkpoint import KERAS3_MISSING, KerasCheckpoint, has_numerics
from jaxopt_keras.io.errors import KerasFileError
from jaxopt_keras.io.hdf5 import json_attr, open_file, write_saved_model
from jaxopt_keras.io.matching import match
from jaxopt_keras.io.porting import Names, keras_weights
from jaxopt_keras.io.reading import read_keras
from jaxopt_keras.optimizers import serialize
from jaxopt_keras.optimizers.optimizer import KerasOptimizer


def _optimizer_config(tx_or_optimizer: Any, state: Any, checkpoint: KerasCheckpoint) -> dict:
    """The file's optimizer config (or our optimizer object's), with the state's hyperparameters."""
    if isinstance(tx_or_optimizer, KerasOptimizer):
        ours = serialize(tx_or_optimizer)
        config = dict(checkpoint.config, config=dict(ours["config"]))
    else:
        config = dict(checkpoint.config, config=dict(checkpoint.config.get("config") or {}))
    inner = config["config"]
    for name, value in get_hyperparams(state).items():
        value = np.asarray(value)
        if name in inner and isinstance(inner[name], (int, float)) and not isinstance(inner[name], bool):
            # A value the state holds rounded (float32) keeps the config's exact one unless it changed.
            if np.asarray(inner[name], value.dtype) != value:
                inner[name] = value.item()
    return config


def _h5_names(checkpoint: KerasCheckpoint, config: dict, entries: list) -> list:
    """Names as the family's Keras writes them after ``fit`` (Keras matches by position only)."""
    scope = (config.get("config") or {}).get("name") or str(config.get("class_name", "optimizer")).split(">")[-1]
    out = []
    for i, (name, value) in enumerate(entries):
        if checkpoint.family != "legacy" and i == 0:
            out.append(("iteration:0", value))
        else:
            out.append((f"{scope}/{name}:0", value))
    return out


def write_keras(
    path: Any,
    tx_or_optimizer: Any,
    params: Any,
    state: Any,
    like: Any,
    names: Names = None,
) -> str:
    """Writes ``params`` and the optimizer ``state`` into a Keras file of ``like``'s kind.

    Args:
      path: the file to write (replaced whole, once complete).
      tx_or_optimizer: the transformation the state belongs to, or one of our
        Keras optimizer objects (its config is then written, e.g. after its
        hyperparameters changed).
      params: the parameters (a flax tree, any pytree), paired with the
        file's variables as :func:`~jaxopt_keras.io.state_from_keras` pairs
        them; leaves may include non-trainable weights (batch statistics).
        Weights ``params`` does not hold keep ``like``'s values.
      state: the optimizer state (``tx.init``'s structure).
      like: a Keras file (or the :class:`~jaxopt_keras.io.KerasCheckpoint`
        read from it) of the same model: a TF-Keras ``.h5`` or ``.keras``.
      names: pairs the default matching rule cannot find.

    Returns:
      ``path``.

    Raises:
      KerasFileError: parameters that do not match the file's variables.
      NotImplementedError: ``like`` is a Keras 3 file or a TF checkpoint.
    """
    checkpoint = like if isinstance(like, KerasCheckpoint) else read_keras(like)
    if not has_numerics(checkpoint.family):
        raise NotImplementedError("write_keras cannot write Keras 3 files yet: " + KERAS3_MISSING)
    if checkpoint.kind not in ("h5", "keras"):
        raise NotImplementedError(
            f"write_keras writes TF-Keras .h5 and .keras files; {checkpoint.path} is a {checkpoint.kind} "
            "(write an .h5 with like= a file of the same model from model.save)."
        )
    if checkpoint.kind == "keras" and checkpoint.family == "legacy":
        raise KerasFileError(checkpoint.path, "TF-Keras loads no legacy optimizer state from a .keras file: write an .h5.")
    shapes = {k: np.shape(v) for k, v in checkpoint.model_weights.items()}
    keys = match(params, shapes, names, require_all=False, path=checkpoint.path)
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(params)]
    model_weights = dict(zip(keys, leaves))
    config = _optimizer_config(tx_or_optimizer, state, checkpoint)
    entries = keras_weights(tx_or_optimizer, params, state, checkpoint, names)
    if checkpoint.kind == "h5":
        with open_file(checkpoint.path, checkpoint.path) as f:
            training = json_attr(f, "training_config") or {}
        training["optimizer_config"] = config
        write_saved_model(path, checkpoint.path, model_weights, _h5_names(checkpoint, config, entries), training)
    else:
        write_archive(path, checkpoint.path, model_weights, entries, config)
    return os.fspath(path)
