""":func:`read_keras`: any Keras file into a :class:`~jaxopt_keras.io.checkpoint.KerasCheckpoint`.

The kind is told from the file's first bytes (HDF5's signature, a zip's) or,
for TF checkpoints, from the files beside it (``<prefix>.index``, a
directory's ``checkpoint`` file, a SavedModel's ``variables/``).  The
readers: :mod:`~jaxopt_keras.io.hdf5`, :mod:`~jaxopt_keras.io.archive`,
:mod:`~jaxopt_keras.io.tfcheckpoint`.
"""

from __future__ import annotations

import glob
import os
from typing import Any, Mapping

from jaxopt_keras.io.archive import read_archive
from jaxopt_keras.io.checkpoint import KerasCheckpoint, assemble
from jaxopt_keras.io.errors import KerasFileError
from jaxopt_keras.io.hdf5 import SIGNATURE, open_file, read_saved_model, read_weights_store
from jaxopt_keras.io.layers import split_config
from jaxopt_keras.io.tfcheckpoint import find_prefix, read_tf_checkpoint

ZIP_SIGNATURE = b"PK\x03\x04"


def _merge(given: Mapping[str, Any] | None, found: Mapping[str, Any] | None) -> dict | None:
    """The file's optimizer config over the user's: ``config=`` supplies what the file lacks."""
    if found is None:
        return None if given is None else dict(given)
    if given is None:
        return dict(found)
    if str(given.get("class_name")).split(">")[-1].lower() != str(found.get("class_name")).split(">")[-1].lower():
        raise ValueError(
            f"config= names optimizer {given.get('class_name')!r}, the file {found.get('class_name')!r}."
        )
    return {**given, **found, "config": {**(given.get("config") or {}), **(found.get("config") or {})}}


def read_keras(path: Any, config: Any = None) -> KerasCheckpoint:
    """Reads a Keras file: the optimizer's config, family, step count and weights, and the model's weights.

    Reads a TF-Keras ``.h5`` from ``model.save`` (legacy and current
    optimizers); a ``.keras`` archive from TF-Keras >= 2.13 or Keras 3; a
    ``.weights.h5`` from ``save_weights`` (TF-Keras or Keras 3), with
    ``config=``; a TF checkpoint (``tf.train.Checkpoint``, TF-format
    ``save_weights``, a SavedModel directory), with TensorFlow installed and
    ``config=`` unless a SavedModel's metadata has it.  Nothing in the file
    is executed.

    Args:
      path: the file (a TF checkpoint: its prefix, ``<prefix>.index``, its
        directory, or a SavedModel directory).
      config: what the file lacks: the optimizer's config (its serialization,
        a model's ``config.json`` with a ``compile_config``, a dict, JSON text
        or a path to a JSON file).  A ``.weights.h5`` of several layer classes
        also needs the model's config, for the layers' order.  Values the file
        holds win over ``config``'s.

    Returns:
      A :class:`~jaxopt_keras.io.checkpoint.KerasCheckpoint`.

    Raises:
      FileNotFoundError: no such file.
      KerasFileError: a corrupt or truncated file, a file of another kind,
        one without optimizer state or config, or weights that do not fit
        the optimizer; the message names the file and what is missing.
      MissingDependencyError: h5py (the ``io`` extra) or TensorFlow (the
        ``tf`` extra) is needed and not installed.
    """
    path = os.fspath(path)
    given_optimizer, given_model = split_config(config)
    if os.path.isfile(path):
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(SIGNATURE):
            with open_file(path, path) as f:
                if "model_weights" in f or "layer_names" in f.attrs:
                    kind, raw = "h5", read_saved_model(f, path)
                else:
                    kind, raw = "weights.h5", read_weights_store(f, path, given_model)
                    raw["missing_optimizer"] = (
                        "holds no optimizer state (TF-Keras writes none for a legacy optimizer, "
                        "nor for an optimizer that never took a step)."
                    )
        elif head.startswith(ZIP_SIGNATURE):
            kind, raw = "keras", read_archive(path)
        elif find_prefix(path) is not None:
            kind, raw = "tf_checkpoint", read_tf_checkpoint(path, *find_prefix(path), config)
        else:
            what = "an empty file" if not head else f"starts with {head!r}"
            raise KerasFileError(path, f"not a Keras file ({what}): neither HDF5 (.h5), a zip (.keras), nor a TF checkpoint.")
    elif find_prefix(path) is not None:
        kind, raw = "tf_checkpoint", read_tf_checkpoint(path, *find_prefix(path), config)
    elif os.path.isdir(path):
        raise KerasFileError(path, "a directory, but neither a SavedModel nor a TF checkpoint directory.")
    elif glob.glob(glob.escape(path) + ".data-*"):
        raise KerasFileError(path, f"a TF checkpoint's data without its index: {os.path.basename(path)}.index is missing.")
    else:
        raise FileNotFoundError(f"No such Keras file: {path!r}")
    raw["optimizer_config"] = _merge(given_optimizer, raw.get("optimizer_config"))
    raw["model_config"] = raw.get("model_config") or given_model
    raw.setdefault("missing_optimizer", "")
    return assemble(path, kind, **raw)
