"""What Keras's files leave to be known: layer groups, variable names, trainability, configs.

Keras's ``.keras`` archives and ``.weights.h5`` files store a layer's
variables as ``layers/<group>/vars/<i>``: the group is named after the layer's
class (``dense``, ``dense_1``, ``conv2d``), not the layer, and the variables
by position.  The names come from the model's config (the layers in order,
their names and flags) and from each layer class's variables, in the order
the class creates them (below).  A class not listed here keeps positional
names (``my_layer/0``).  Some layers keep their variables in sub-objects,
stored under the attribute's name (``layers/lstm/cell/vars``,
``layers/multi_head_attention/_query_dense/vars``): :data:`SUB_OBJECTS`
lists those Keras's layers have, in the order their variables follow the
layer's own in ``trainable_variables`` (a file lists them alphabetically).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Mapping

from jaxopt_keras.io.errors import KerasFileError, json_kind
from jaxopt_keras.optimizers.names import snake_case

# Snake-case class name -> the variables it creates, in order.
LAYER_VARIABLES: dict[str, tuple[str, ...]] = {
    "dense": ("kernel", "bias"),
    "einsum_dense": ("kernel", "bias"),
    "conv1d": ("kernel", "bias"),
    "conv2d": ("kernel", "bias"),
    "conv3d": ("kernel", "bias"),
    "conv1d_transpose": ("kernel", "bias"),
    "conv2d_transpose": ("kernel", "bias"),
    "conv3d_transpose": ("kernel", "bias"),
    "embedding": ("embeddings",),
    "batch_normalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "layer_normalization": ("gamma", "beta"),
    "group_normalization": ("gamma", "beta"),
    "normalization": ("mean", "variance", "count"),
    "lstm_cell": ("kernel", "recurrent_kernel", "bias"),
    "gru_cell": ("kernel", "recurrent_kernel", "bias"),
    "simple_rnn_cell": ("kernel", "recurrent_kernel", "bias"),
    "conv_lstm_cell": ("kernel", "recurrent_kernel", "bias"),
}
# Variables Keras creates with trainable=False (no optimizer slots): batch
# normalization's moving statistics, the Normalization layer's adapted ones.
NON_TRAINABLE = frozenset({"moving_mean", "moving_variance", "mean", "variance", "count"})
# Config flags that drop a variable: (flag, variable) pairs, dropped when the flag is false.
_FLAGS = (("use_bias", "bias"), ("scale", "gamma"), ("center", "beta"))
MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
# Sub-objects a layer keeps variables in, by attribute (TF-Keras's leading underscore dropped), in
# the order Keras lists their variables after the layer's own: a recurrent layer's cell (a
# StackedRNNCells' cells in turn), a wrapper's layer(s), MultiHeadAttention's projections.
SUB_OBJECTS = ("cell", "cells", "forward_layer", "backward_layer", "layer", "query_dense", "key_dense", "value_dense", "output_dense")
# MultiHeadAttention's projections: EinsumDense layers, named in their variables' paths as here.
_PROJECTIONS = {"query_dense": "query", "key_dense": "key", "value_dense": "value", "output_dense": "attention_output"}
# The cell a recurrent layer makes (its config names none): its class, and the segment it puts in
# its variables' paths (TF-Keras's ConvLSTM cells put none: conv_lstm2d/kernel; Keras 3's files name theirs).
_CELLS = {"lstm": ("lstm_cell", "lstm_cell"), "gru": ("gru_cell", "gru_cell"), "simple_rnn": ("simple_rnn_cell", "simple_rnn_cell")} | {
    f"conv_lstm{n}d": ("conv_lstm_cell", None) for n in (1, 2, 3)
}


def group_class(group: str) -> str:
    """The snake-case class of a group name (``dense_3`` -> ``dense``)."""
    return re.sub(r"_\d+$", "", group)


def variable_names(class_snake: str, layer_config: Mapping[str, Any] | None, count: int) -> list[str]:
    """The names of a layer's ``count`` stored variables, by class and config flags; positions otherwise."""
    names = list(LAYER_VARIABLES.get(class_snake, ()))
    config = layer_config or {}
    for flag, variable in _FLAGS:
        if config.get(flag) is False and variable in names:
            names.remove(variable)
    if len(names) != count:
        return [str(i) for i in range(count)]
    return names


def sub_object_order(keys: list[str]) -> tuple[list[str], list[str]]:
    """The keys among a layer's that name a known sub-object, in Keras's variable order; and the others."""
    rank = {name: i for i, name in enumerate(SUB_OBJECTS)}
    known = sorted((k for k in keys if k.lstrip("_") in rank), key=lambda k: rank[k.lstrip("_")])
    return known, [k for k in keys if k.lstrip("_") not in rank]


def sub_object(key: str, class_snake: str, layer: Mapping[str, Any] | None) -> tuple[str, dict | None, str | None]:
    """``(class, serialization, name)`` of the sub-object ``key`` of a ``class_snake`` layer serialized as ``layer``.

    The name is the segment Keras puts in the sub-object's variables' paths
    (``lstm/lstm_cell/kernel``, ``bidirectional/forward_lstm/...``,
    ``multi_head_attention/query/kernel``), ``None`` where it puts none (a
    TF-Keras ``TimeDistributed``'s layer, a StackedRNNCells' list of cells).
    """
    config = (layer or {}).get("config") or {}
    attr = key.lstrip("_")
    if attr in _PROJECTIONS:
        return "einsum_dense", dict(layer or {}), _PROJECTIONS[attr]
    if attr == "cell":
        cell = config.get("cell")
        if isinstance(cell, Mapping):
            return snake_case(str(cell.get("class_name", ""))), dict(cell), (cell.get("config") or {}).get("name")
        cls, segment = _CELLS.get(class_snake, ("cell", "cell"))
        return cls, None, segment
    if attr in ("forward_layer", "backward_layer", "layer"):
        inner = config.get("backward_layer") if attr == "backward_layer" else None
        inner = inner if isinstance(inner, Mapping) else config.get("layer")
        if not isinstance(inner, Mapping):
            return "", None, None if attr == "layer" else attr
        name = (inner.get("config") or {}).get("name")
        if attr != "layer" and isinstance(name, str):  # Bidirectional names its copies forward_<name>, backward_<name>
            prefix = attr.split("_")[0] + "_"
            name = name if name.startswith(prefix) else prefix + name.removeprefix("forward_")
        return snake_case(str(inner.get("class_name", ""))), dict(inner), None if attr == "layer" else name
    return "", dict(layer or {}), None  # cells: a list, each cell named by its own


def strip_variable_name(name: str) -> str:
    """A TF variable name without its ``:0`` (``dense/kernel:0`` -> ``dense/kernel``)."""
    return name[:-2] if name.endswith(":0") else name


def nested_message(variables: list[str], where: str) -> str:
    """The error for variables a file keeps in sub-objects we do not know (their order is not in the file)."""
    return (
        f"{len(variables)} variables live in sub-objects of a layer or of the model ({variables[:4]}) that are "
        f"none of {list(SUB_OBJECTS)} (a custom layer's or a subclassed model's attributes). Their order in "
        f"model.trainable_variables, which the optimizer's weights follow, is not in {where}, so they are not "
        "read. A functional or Sequential model saved with model.save('model.h5') lists every weight in order."
    )


def is_trainable(name: str) -> bool:
    """Whether a variable named ``.../<var>`` gets optimizer slots, by the variable's name."""
    return name.rsplit("/", 1)[-1] not in NON_TRAINABLE


def frozen_layers(model_config: Mapping[str, Any] | None) -> set[str]:
    """The names of the layers the model config marks ``trainable: false`` (nested ones included)."""
    out: set[str] = set()

    def walk(layers, frozen):
        for layer in layers:
            config = layer.get("config") or {}
            off = frozen or config.get("trainable") is False
            if off and "name" in config:
                out.add(config["name"])
            walk(layer_configs(layer) or [], off)

    walk(layer_configs(model_config) or [], False)
    return out


def layer_configs(model_config: Mapping[str, Any] | None) -> list[dict] | None:
    """The layer configs of a model config, in ``model.layers`` order; ``None`` if it is not a model's."""
    if not isinstance(model_config, Mapping):
        return None
    config = model_config.get("config")
    if isinstance(config, Mapping) and isinstance(config.get("layers"), list):
        return list(config["layers"])
    if isinstance(config, list) and model_config.get("class_name") == "Sequential":  # TF1-era: the list of layers
        return list(config)
    return None


def check_model_config(model_config: Any, path: Any, where: str) -> None:
    """Refuses a model config whose layers (nested ones too) are not layer configs.

    Raises:
      KerasFileError: a layer, or a layer's ``config``, is not a JSON object
        (naming ``path``, ``where`` and the layer's position).
    """

    def walk(layers: list, at: str) -> None:
        for i, layer in enumerate(layers):
            here = f"{at}[{i}]"
            if not isinstance(layer, Mapping):
                raise KerasFileError(path, f"{where}: layer {here} is {json_kind(layer)}, not a layer's config (a JSON object).")
            if not isinstance(layer.get("config"), (Mapping, type(None))):
                raise KerasFileError(path, f"{where}: the 'config' of layer {here} is {json_kind(layer['config'])}, not a JSON object.")
            walk(layer_configs(layer) or [], f"{here}.layers")

    walk(layer_configs(model_config) or [], "layers")


def optimizer_config(value: Any, path: Any, where: str, by_name: bool = True) -> dict | None:
    """The optimizer config held at ``where``, checked: ``{"class_name", "config"}``; with
    ``by_name``, a bare class name (a ``.keras`` archive of ``compile(optimizer="adam")``) as
    such a config; ``None`` as ``None``.

    Raises:
      KerasFileError: anything else (naming ``path`` and ``where``).
    """
    if value is None:
        return None
    if isinstance(value, str) and by_name:
        return {"class_name": value, "config": {}}
    if not isinstance(value, Mapping):
        raise KerasFileError(path, f"{where} is {json_kind(value)}, not an optimizer's config (a JSON object with its 'class_name').")
    if not isinstance(value.get("config"), (Mapping, type(None))):
        raise KerasFileError(path, f"{where}['config'] is {json_kind(value['config'])}, not a JSON object of the optimizer's arguments.")
    return dict(value)


def load_json(value: Any, what: str) -> Any:
    """A dict from a dict, a JSON string, or the path of a JSON file."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8")
    if isinstance(value, str) and value.lstrip().startswith("{"):
        return json.loads(value)
    if isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
        with open(value) as f:
            return json.load(f)
    raise ValueError(f"{what} must be a dict, a JSON string or the path of a JSON file; received {value!r:.80}")


def split_config(config: Any) -> tuple[dict | None, dict | None]:
    """``(optimizer config, model config)`` found in what a user or a file gives.

    Accepted: an optimizer's serialization (``{"class_name", "config"}``); a
    model's config (``config.json`` of a ``.keras``, ``model.to_json()``),
    with its ``compile_config``; a compile config (``{"optimizer": ...}``); an
    ``.h5`` file's ``training_config`` (``{"optimizer_config": ...}``); or a
    dict with ``"model"`` and/or ``"optimizer"`` holding those.
    """
    if config is None:
        return None, None
    config = load_json(config, "config")
    optimizer = model = None
    if "model" in config or ("optimizer" in config and "class_name" not in config):
        model = config.get("model")
        model = None if model is None else load_json(model, "config['model']")
        optimizer = config.get("optimizer")
        if isinstance(optimizer, str) and not optimizer.lstrip().startswith("{"):
            optimizer = {"class_name": optimizer, "config": {}}
        optimizer = None if optimizer is None else load_json(optimizer, "config['optimizer']")
    elif "optimizer_config" in config:
        optimizer = optimizer_config(config["optimizer_config"], None, "config['optimizer_config']", by_name=False)
    elif layer_configs(config) is not None or "compile_config" in config:
        model = config
    else:
        optimizer = config
    if model is not None:
        check_model_config(model, None, "config")
    if model is not None and optimizer is None:
        compile_config = model.get("compile_config")
        if isinstance(compile_config, Mapping) and isinstance(compile_config.get("optimizer"), Mapping):
            optimizer = dict(compile_config["optimizer"])
    optimizer = optimizer_config(optimizer, None, "config's optimizer")
    if optimizer is not None and "class_name" not in optimizer:
        raise ValueError(f"An optimizer config needs a 'class_name'; received keys {sorted(optimizer)}.")
    return optimizer, model
