"""Back to Keras: :func:`write_keras` puts parameters and an optimizer state into a file Keras loads.

The file is a copy of one Keras wrote (``like=``): its model config, its
layer structure and its training config are kept; the model's weights, the
optimizer's weights list and the optimizer config's hyperparameters are
replaced by the JAX run's.  ``tf_keras.models.load_model`` then rebuilds the
model and optimizer and continues the same trajectory.

Written: a TF-Keras ``.h5`` (``model.save``; both families), a ``.keras``
archive (TF-Keras: current family, as TF-Keras loads no legacy optimizer
state from one; Keras 3: every optimizer, a ``LossScaleOptimizer``'s scale
and counter included) and a ``.weights.h5`` (TF-Keras current family, Keras
3).  ``keras.saving.load_model`` (Keras 3) then continues the same way.  Not
written: a Keras 3 ``.h5`` (Keras 3 restores no optimizer slots from one)
and TF checkpoints.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from jaxopt_keras.core.hyperparams import get_hyperparams
from jaxopt_keras.core.state import find_state
from jaxopt_keras.io.archive import write_archive
from jaxopt_keras.io.checkpoint import KerasCheckpoint, routes_by_path
from jaxopt_keras.io.errors import KerasFileError
from jaxopt_keras.io.hdf5 import json_attr, open_file, write_saved_model, write_weights_store
from jaxopt_keras.io.matching import leaves as matching_leaves
from jaxopt_keras.io.matching import path_keys, path_string
from jaxopt_keras.io.optimizer_state import keras_weights, member_weights
from jaxopt_keras.io.porting import Names, model_keys
from jaxopt_keras.io.reading import read_keras
from jaxopt_keras.optimizers import serialize
from jaxopt_keras.optimizers.optimizer import KerasOptimizer
from jaxopt_keras.transforms.loss_scale import LossScaleState


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


def _loss_scale_variables(checkpoint: KerasCheckpoint, state: Any) -> list:
    """A Keras 3 loss-scale wrapper's own variables (unused iteration and learning rate, step counter,
    scale): the state's scale and counter, else the file's; ``[]`` for any other optimizer."""
    if checkpoint.loss_scale is None:
        return []
    found = find_state(state, LossScaleState, required=False)
    counter, scale = (
        (found.counter, found.loss_scale)
        if found is not None
        else (checkpoint.loss_scale["step_counter"], checkpoint.loss_scale["dynamic_scale"])
    )
    return [np.int32(0), np.float32(0.0), np.asarray(counter, np.int32), np.asarray(scale, np.float32)]


def _write_weights_file(path: Any, checkpoint: KerasCheckpoint, model_weights: dict, entries: list, own: list, members: dict | None) -> None:
    """A copy of the ``.weights.h5`` ``like`` with new values, renamed into place when complete."""
    with open(checkpoint.path, "rb") as f:
        data = write_weights_store(f.read(), checkpoint.path, model_weights, entries, checkpoint.model_config, own, members)
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _trainable_part(params: Any, keys: list[str], checkpoint: KerasCheckpoint) -> Any:
    """``params`` without the leaves paired with non-trainable variables (batch statistics), which
    the optimizer has no slots for: the tree its state was built on (flax's ``variables["params"]``,
    ``nnx.state(model, nnx.Param)``), as nested dicts of the same paths, in the same order."""
    trainable = set(checkpoint.trainable)
    if all(k in trainable for k in keys):
        return params
    kept = [(p, leaf) for (p, leaf), k in zip(jax.tree_util.tree_flatten_with_path(params)[0], keys) if k in trainable]
    out: dict = {}
    for p, leaf in kept:
        parts = path_keys(p)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = leaf
    if [path_string(p) for p, _ in kept] != [path for path, _ in matching_leaves(out)]:
        raise KerasFileError(
            checkpoint.path,
            "params holds non-trainable weights the optimizer state has no slots for, in a tree that cannot be "
            "split by path: pass the trainable parameters (the tree the state was built on) instead.",
        )
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
        them; leaves may include non-trainable weights (batch statistics:
        flax's whole ``variables``, ``nnx.state(model)``), which are written
        and have no slots.  Weights ``params`` does not hold keep ``like``'s values.
      state: the optimizer state (``tx.init``'s structure).
      like: a Keras file (or the :class:`~jaxopt_keras.io.KerasCheckpoint`
        read from it) of the same model: a TF-Keras ``.h5``, a ``.keras``
        (TF-Keras or Keras 3), or a ``.weights.h5`` (read with ``config=``);
        the file written is of its kind.
      names: pairs the default matching rule cannot find.

    Returns:
      ``path``.

    Raises:
      KerasFileError: parameters that do not match the file's variables; a
        Keras 3 ``.h5`` (Keras 3 restores no optimizer slots from it: write
        a ``.keras``).  Nothing is written then.
      NotImplementedError: ``like`` is a TF checkpoint.
    """
    checkpoint = like if isinstance(like, KerasCheckpoint) else read_keras(like)
    if checkpoint.kind not in ("h5", "keras", "weights.h5"):
        raise NotImplementedError(
            f"write_keras writes .h5, .keras and .weights.h5 files; {checkpoint.path} is a {checkpoint.kind} "
            "(write an .h5 or .keras with like= a file of the same model from model.save)."
        )
    if checkpoint.kind == "keras" and checkpoint.family == "legacy":
        raise KerasFileError(checkpoint.path, "TF-Keras loads no legacy optimizer state from a .keras file: write an .h5.")
    if checkpoint.kind == "h5" and checkpoint.family == "keras3":
        raise KerasFileError(
            checkpoint.path,
            "Keras 3 restores no optimizer slots from an .h5 file (only its iteration and learning rate): "
            "write a .keras file, with like= the model saved by Keras 3 as .keras.",
        )
    keys = model_keys(params, checkpoint, names)
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(params)]
    model_weights = dict(zip(keys, leaves))
    config = _optimizer_config(tx_or_optimizer, state, checkpoint)
    trainable = _trainable_part(params, keys, checkpoint)
    entries = keras_weights(tx_or_optimizer, trainable, state, checkpoint, names)
    own = _loss_scale_variables(checkpoint, state)
    members = dict(member_weights(trainable, state, checkpoint, names)) if routes_by_path(checkpoint.config) else None
    if checkpoint.kind == "weights.h5":
        _write_weights_file(path, checkpoint, model_weights, entries, own, members)
    elif checkpoint.kind == "h5":
        with open_file(checkpoint.path, checkpoint.path) as f:
            training = json_attr(f, "training_config", checkpoint.path) or {}
        training["optimizer_config"] = config
        write_saved_model(path, checkpoint.path, model_weights, _h5_names(checkpoint, config, entries), training)
    else:
        write_archive(path, checkpoint.path, model_weights, entries, config, own, members)
    return os.fspath(path)
