"""``.keras`` archives (TF-Keras >= 2.13 and Keras 3): a zip of ``config.json``, ``metadata.json`` and ``model.weights.h5``.

Read with the standard library's :mod:`zipfile` and the weights store reader
(:func:`~jaxopt_keras.io.hdf5.read_weights_store`); ``config.json`` holds the
model's config and, under ``compile_config``, the optimizer's.  A TF-Keras
archive holds the state of a current-family optimizer only (TF-Keras leaves a
legacy optimizer's out).  Nothing in the archive is executed: no pickle, no
Lambda layer's code, no custom objects.
"""

from __future__ import annotations

import io as _io
import json
import os
import zipfile
import zlib
from typing import Any, Mapping, Sequence

import numpy as np

from jaxopt_keras.io.errors import KerasFileError, json_kind
from jaxopt_keras.io.hdf5 import open_file, read_weights_store, write_weights_store
from jaxopt_keras.io.layers import check_model_config, optimizer_config

CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"


def _members(path: Any) -> dict[str, bytes]:
    """Every member's bytes; a truncated or corrupt archive is a :class:`KerasFileError`."""
    try:
        with zipfile.ZipFile(path) as z:
            return {name: z.read(name) for name in z.namelist()}
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise KerasFileError(path, f"not a readable .keras archive (truncated or corrupt zip): {e}") from e
    except (NotImplementedError, RuntimeError) as e:  # zipfile: an unknown compression method, an encrypted member
        raise KerasFileError(path, f"a zip whose members cannot be read as a .keras archive's: {e}") from e


def _json(members: Mapping[str, bytes], name: str, path: Any) -> dict:
    if name not in members:
        raise KerasFileError(path, f"a zip, but not a .keras archive: it has no {name} (members: {sorted(members)}).")
    try:
        value = json.loads(members[name].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KerasFileError(path, f"{name} is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise KerasFileError(path, f"{name} holds {json_kind(value)}, not a JSON object.")
    return value


def read_archive(path: Any) -> dict:
    """The raw pieces of a ``.keras`` archive (see :func:`~jaxopt_keras.io.checkpoint.assemble`)."""
    members = _members(path)
    config = _json(members, CONFIG, path)
    check_model_config(config, path, CONFIG)
    metadata = _json(members, METADATA, path) if METADATA in members else {}
    if WEIGHTS not in members:
        raise KerasFileError(path, f"the archive has no {WEIGHTS} (sharded weights are not supported); members: {sorted(members)}.")
    with open_file(_io.BytesIO(members[WEIGHTS]), f"{path}!{WEIGHTS}") as f:
        raw = read_weights_store(f, f"{path}!{WEIGHTS}", config)
    version = metadata.get("keras_version")
    if not isinstance(version, (str, type(None))):
        raise KerasFileError(path, f"{METADATA}'s 'keras_version' is {json_kind(version)}, not a string.")
    compile_config = config.get("compile_config") or {}
    if not isinstance(compile_config, Mapping):
        raise KerasFileError(path, f"{CONFIG}'s 'compile_config' is {json_kind(compile_config)}, not a JSON object.")
    optimizer = optimizer_config(compile_config.get("optimizer"), path, f"{CONFIG}'s compile_config['optimizer']")
    legacy_note = ""
    if isinstance(optimizer, Mapping) and "legacy" in str(optimizer.get("module", "")):
        legacy_note = " TF-Keras does not save a legacy optimizer's state in a .keras file: use model.save('m.h5')."
    raw.update(
        optimizer_config=optimizer,
        model_config=config,
        keras3=bool(raw["keras3"] or (version or "").startswith("3")),
        keras_version=version,
        missing_optimizer=(
            "holds no optimizer state (no compiled optimizer, or one that never took a step)." + legacy_note
            if optimizer is None or legacy_note
            else "holds no optimizer state: the optimizer had not taken a step when the model was saved."
        ),
    )
    return raw


def write_archive(
    path: Any,
    like: Any,
    model_weights: Mapping[str, np.ndarray],
    optimizer: list,
    optimizer_config: dict,
    own: Sequence[Any] = (),
    optimizer_members: Mapping[str, list] | None = None,
) -> None:
    """A copy of the archive ``like`` with new weights, optimizer weights and optimizer config
    (``own``: a Keras 3 loss-scale wrapper's own variables, ``optimizer_members``: a
    ``MultiOptimizer``'s members' lists, see :func:`~jaxopt_keras.io.hdf5.write_weights_store`)."""
    members = _members(like)
    config = _json(members, CONFIG, like)
    config.setdefault("compile_config", {})["optimizer"] = optimizer_config
    members[CONFIG] = json.dumps(config).encode("utf-8")
    members[WEIGHTS] = write_weights_store(members[WEIGHTS], f"{like}!{WEIGHTS}", model_weights, optimizer, config, own, optimizer_members)
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
    try:
        with zipfile.ZipFile(tmp, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
