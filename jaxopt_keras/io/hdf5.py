"""HDF5: the ``.h5`` files of ``model.save``, and the weights store of ``.keras`` / ``.weights.h5`` files.

Two layouts share the container:

* ``model.save("m.h5")`` (TF-Keras, also Keras 3): the model's and the
  training configs as JSON attributes; ``model_weights/<layer>/<weight name>``
  datasets listed in order by ``layer_names``/``weight_names`` attributes
  (the datasets themselves are listed alphabetically); ``optimizer_weights``
  likewise, in Keras's weights-list order.  ``model.save_weights("w.h5")``
  writes the model's weights alone, at the root.
* the weights store (``model.weights.h5`` inside a ``.keras`` archive, or a
  ``.weights.h5`` file): ``layers/<group>/vars/<i>`` per layer (groups named
  by class, :mod:`~jaxopt_keras.io.layers`), ``optimizer/vars/<i>`` (``i``
  sorts as a number: ``vars/10`` comes after ``vars/9``).  Keras 3 marks each
  ``vars`` group with a ``name`` attribute; TF-Keras writes none.

Nothing is executed or unpickled: only datasets and string attributes are read.
"""

from __future__ import annotations

import io as _io
import json
import os
from typing import Any, Mapping, Sequence

import ml_dtypes
import numpy as np

from jaxopt_keras.io.errors import KerasFileError, json_kind, missing
from jaxopt_keras.io.layers import (
    check_model_config, frozen_layers, group_class, is_trainable, layer_configs, nested_message,
    optimizer_config, snake_case, strip_variable_name, sub_object, sub_object_order, variable_names,
)

try:  # h5py is the `io` extra
    import h5py
except ImportError:  # pragma: no cover - exercised only without h5py
    h5py = None

SIGNATURE = b"\x89HDF\r\n\x1a\n"


def require_h5py(what: str) -> None:
    if h5py is None:
        raise missing("h5py", "io", what)


def open_file(source: Any, path: Any, mode: str = "r") -> Any:
    """An ``h5py.File`` on a path or a file-like object; a corrupt file is a :class:`KerasFileError`."""
    require_h5py("Reading HDF5 files (.h5, .keras, .weights.h5)")
    try:
        return h5py.File(source, mode)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise KerasFileError(path, f"not a readable HDF5 file (truncated or corrupt): {e}") from e


def _text(x: Any) -> str:
    return x.decode("utf-8") if isinstance(x, (bytes, np.bytes_)) else str(x)


def attr_names(group: Any, name: str) -> list[str] | None:
    """A list-of-strings attribute, joined from Keras's chunks (``name0``, ``name1``, ...) when it was split."""
    if name in group.attrs:
        return [_text(x) for x in np.atleast_1d(group.attrs[name]) if not isinstance(x, (float, np.floating))]
    if f"{name}0" not in group.attrs:
        return None
    out, i = [], 0
    while f"{name}{i}" in group.attrs:
        out += [_text(x) for x in np.atleast_1d(group.attrs[f"{name}{i}"])]
        i += 1
    return out


def json_attr(group: Any, name: str, path: Any = None) -> dict | None:
    """The JSON object in attribute ``name`` of ``group`` (``None`` when absent).

    Raises:
      KerasFileError: it is not JSON, or not an object (naming ``path`` and the attribute).
    """
    if name not in group.attrs:
        return None
    try:
        value = json.loads(_text(group.attrs[name]))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KerasFileError(path, f"the attribute {name!r} is not valid JSON ({e}).") from None
    if not isinstance(value, dict):
        raise KerasFileError(path, f"the attribute {name!r} holds {json_kind(value)}, not a JSON object.")
    return value


def dataset(node: Any) -> np.ndarray:
    """A dataset's value; Keras 3's bfloat16 (opaque bytes with a ``dtype`` attribute) as bfloat16."""
    value = np.asarray(node[()])
    if _text(node.attrs.get("dtype", "")) == "bfloat16":
        value = value.view(ml_dtypes.bfloat16)
    return value


# --------------------------------------------------------------------------
# model.save("m.h5")
# --------------------------------------------------------------------------


def read_saved_model(f: Any, path: Any) -> dict:
    """The raw pieces of a ``model.save("m.h5")`` file (see :func:`~jaxopt_keras.io.checkpoint.assemble`)."""
    if "layer_names" in f.attrs and "model_weights" not in f:
        raise KerasFileError(
            path,
            "written by model.save_weights: it holds the model's weights only, without the optimizer's state "
            "and config. Save the model with model.save('model.h5') (or a .keras file) instead.",
        )
    if "model_weights" not in f:
        raise KerasFileError(path, "an HDF5 file, but not a Keras model file (no 'model_weights' group).")
    model_config = json_attr(f, "model_config", path)
    check_model_config(model_config, path, "the attribute 'model_config'")
    training = json_attr(f, "training_config", path)
    frozen = frozen_layers(model_config)
    weights: dict[str, np.ndarray] = {}
    trainable: list[str] = []
    group = f["model_weights"]
    layers = attr_names(group, "layer_names")
    if layers is None:
        raise KerasFileError(path, "'model_weights' has no 'layer_names' attribute: not a file Keras wrote.")
    if "top_level_model_weights" in group and "top_level_model_weights" not in layers:
        layers = layers + ["top_level_model_weights"]
    for layer in layers:
        if layer not in group:
            raise KerasFileError(path, f"layer {layer!r} is listed in 'layer_names' but has no group.")
        for name in attr_names(group[layer], "weight_names") or []:
            if name not in group[layer]:
                raise KerasFileError(path, f"weight {name!r} of layer {layer!r} is listed but not stored.")
            key = strip_variable_name(name)
            weights[key] = dataset(group[layer][name])
            if is_trainable(key) and layer not in frozen and key.split("/")[0] not in frozen:
                trainable.append(key)
    values = None
    if "optimizer_weights" in f:
        og = f["optimizer_weights"]
        names = attr_names(og, "weight_names") or []
        for name in names:
            if name not in og:
                raise KerasFileError(path, f"optimizer weight {name!r} is listed but not stored.")
        values = [dataset(og[name]) for name in names]
    version = _text(f.attrs["keras_version"]) if "keras_version" in f.attrs else None
    return dict(
        optimizer_config=optimizer_config((training or {}).get("optimizer_config"), path, "training_config['optimizer_config']", False),
        model_config=model_config,
        model_weights=weights,
        trainable=trainable,
        values=values,
        value_names=[strip_variable_name(n) for n in names] if values is not None else None,
        keras3=bool(version and version.startswith("3")),
        keras_version=version,
        missing_optimizer=(
            "holds no optimizer state: the model was saved without a compiled optimizer "
            "(or with include_optimizer=False)."
            if training is None
            else "holds no optimizer state ('optimizer_weights' is missing: include_optimizer=False, "
            "or the optimizer had not taken a step)."
        ),
    )


def write_saved_model(path: Any, like: Any, model_weights: Mapping[str, np.ndarray], optimizer: list, training_config: dict) -> None:
    """A copy of the ``model.save`` file ``like`` with new weights, optimizer weights and training config.

    ``optimizer`` is ``[(name, value)]`` in Keras's order.  Written to a
    temporary file beside ``path`` and renamed into place when complete.
    """
    require_h5py("Writing HDF5 files")
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
    try:
        with open(like, "rb") as src, open(tmp, "wb") as dst:
            dst.write(src.read())
        with h5py.File(tmp, "r+") as f:
            group = f["model_weights"]
            for layer in attr_names(group, "layer_names") or []:
                for name in attr_names(group[layer], "weight_names") or []:
                    key = strip_variable_name(name)
                    if key in model_weights:
                        _assign(group[layer][name], model_weights[key], path, key)
            if "optimizer_weights" in f:
                del f["optimizer_weights"]
            og = f.create_group("optimizer_weights")
            og.attrs["weight_names"] = np.array([n.encode("utf-8") for n, _ in optimizer], dtype=object)
            for name, value in optimizer:
                og.create_dataset(name, data=np.asarray(value))
            f.attrs["training_config"] = json.dumps(training_config)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _assign(node: Any, value: Any, path: Any, key: str) -> None:
    value = np.asarray(value)
    if tuple(node.shape) != tuple(value.shape):
        raise KerasFileError(path, f"weight {key!r} has shape {tuple(node.shape)} in the file; the value given has {value.shape}.")
    node[...] = value.astype(node.dtype) if node.dtype.kind != "V" else value.view(node.dtype)


# --------------------------------------------------------------------------
# The weights store (.keras, .weights.h5)
# --------------------------------------------------------------------------


def _vars(group: Any) -> list[Any]:
    """The datasets of a ``vars`` group, in numeric order."""
    if group is None or "vars" not in group:
        return []
    v = group["vars"]
    return [v[k] for k in sorted(v.keys(), key=lambda k: int(k) if k.isdigit() else -1)]


def _numbered_vars(group: Any, where: str, path: Any) -> list[Any]:
    """:func:`_vars`, checked: Keras numbers a ``vars`` group's datasets 0 to n-1 (a gap would shift the rest)."""
    nodes = _vars(group)
    names = [n.name.rsplit("/", 1)[-1] for n in nodes]
    gaps = sorted(set(range(len(nodes))) - {int(n) for n in names if n.isdigit()})
    if gaps:
        raise KerasFileError(
            path, f"'{where}/vars' has no variable {gaps[0]}: it holds {sorted(names, key=lambda n: int(n) if n.isdigit() else -1)} (Keras numbers them from 0)."
        )
    return nodes


def _layer_order(container: Any, configs: list | None, path: Any) -> list[tuple[str, dict | None]]:
    """``(group name, layer config)`` in ``model.layers`` order."""
    groups = list(container.keys())
    if configs is not None:
        counts: dict[str, int] = {}
        out = []
        for layer in configs:
            base = snake_case(str(layer.get("class_name", "")))
            n = counts.get(base)
            counts[base] = 0 if n is None else n + 1
            name = base if n is None else f"{base}_{n + 1}"
            if name in container:
                out.append((name, layer))
        extra = [g for g in groups if g not in {n for n, _ in out} and _holds_weights(container[g])]
        if extra:
            raise KerasFileError(path, f"layer groups {extra} match no layer of the model config.")
        return out
    bases = {group_class(g) for g in groups if _holds_weights(container[g])}
    if len(bases) > 1:
        raise KerasFileError(
            path,
            f"the file does not store the order of its layers ({sorted(groups)}): pass config= with the "
            "model's config (model.to_json(), or the config.json of a .keras archive).",
        )

    def counter(g):
        tail = g[len(group_class(g)) + 1 :]
        return int(tail) if tail.isdigit() else 0

    return [(g, None) for g in sorted(groups, key=counter)]


def _float_datasets(group: Any, keys: list[str]) -> list[str]:
    """Float datasets under ``group``'s subgroups ``keys`` (a seed generator's integer state is no weight
    an optimizer updates)."""
    out: list[str] = []
    for key in keys:
        if not hasattr(group[key], "visititems"):
            continue
        group[key].visititems(
            lambda name, node, key=key: out.append(f"{group.name.strip('/')}/{key}/{name}".strip("/"))
            if hasattr(node, "dtype") and np.dtype(node.dtype).kind == "f"
            else None
        )
    return out


def _holds_weights(group: Any) -> bool:
    return bool(_vars(group)) or any(_holds_weights(group[k]) for k in group if k != "vars" and hasattr(group[k], "keys"))


def _store_objects(f: Any, model_config: dict | None, path: Any) -> list[tuple[Any, str, str, dict, bool, str]]:
    """``(group, name, class, layer config, frozen, outer layer's name)`` of each object of a weights
    store that may hold variables, in ``model.weights`` order: each layer, its sub-objects
    (:data:`~jaxopt_keras.io.layers.SUB_OBJECTS`), then a nested model's layers.

    Raises:
      KerasFileError: float variables in sub-objects whose order is not known.
    """
    objects: list[tuple[Any, str, str, dict, bool, str]] = []
    nested: list[str] = []

    def named(group, default):  # Keras 3 marks each vars group with its object's name
        v = group["vars"] if "vars" in group else None
        return _text(v.attrs["name"]) if v is not None and "name" in v.attrs else default

    def obj(group, name, cls, layer, frozen, outer):
        config = (layer or {}).get("config") or {}
        frozen = frozen or config.get("trainable") is False
        objects.append((group, name, cls, config, frozen, outer))
        known, unknown = sub_object_order([k for k in group if k not in ("vars", "layers")])
        nested.extend(_float_datasets(group, unknown))
        for key in known:
            sub_cls, sub_layer, segment = sub_object(key, cls, layer)
            if key.lstrip("_") == "cells":  # a list of cells, stored like a model's layers
                container(group[key], (sub_layer or {}).get("config", {}).get("cells"), frozen, outer, f"{name}/")
            else:
                segment = named(group[key], segment)
                obj(group[key], f"{name}/{segment}" if segment else name, sub_cls, sub_layer, frozen, outer)
        if "layers" in group:
            container(group["layers"], layer_configs(layer), frozen, name, "")

    def container(group, configs, frozen, outer, prefix):
        for gname, layer in _layer_order(group, configs if isinstance(configs, list) else None, path):
            name = named(group[gname], ((layer or {}).get("config") or {}).get("name", gname))
            obj(group[gname], prefix + name, group_class(gname), layer, frozen, outer)

    if "layers" in f:
        container(f["layers"], layer_configs(model_config), False, "", "")
    nested.extend(_float_datasets(f, [k for k in f if k not in ("vars", "layers", "optimizer", "metrics")]))  # TF-Keras: the compiled metrics
    if nested:
        raise KerasFileError(path, nested_message(nested, "a .keras or .weights.h5 file"))
    return objects


def read_weights_store(f: Any, path: Any, model_config: dict | None) -> dict:
    """The raw pieces of a weights store (see :func:`~jaxopt_keras.io.checkpoint.assemble`)."""
    if "layers" not in f and "optimizer" not in f:
        raise KerasFileError(path, "an HDF5 file, but not a Keras weights file (no 'layers' or 'optimizer' group).")
    not_a_group = f.visititems(lambda name, node: name if name.rsplit("/", 1)[-1] == "vars" and not hasattr(node, "keys") else None)
    if not_a_group:  # (a non-None return ends the walk)
        raise KerasFileError(path, f"{not_a_group!r} is a dataset where Keras stores a group of variables.")
    weights: dict[str, np.ndarray] = {}
    trainable: list[str] = []
    keras3 = False  # Keras 3 marks its vars groups with a name
    for group, name, cls, config, frozen, outer in _store_objects(f, model_config, path):
        keras3 = keras3 or ("vars" in group and "name" in group["vars"].attrs)
        stored = _vars(group)
        for var, node in zip(variable_names(cls, config, len(stored)), stored):
            key = f"{name}/{var}"
            if key in weights:
                key = f"{outer}/{key}"
            if key in weights:
                raise KerasFileError(path, f"two weights are both named {key!r}.")
            weights[key] = dataset(node)
            if not frozen and is_trainable(key):
                trainable.append(key)
    for node in _vars(f):  # the model's own variables
        weights[f"vars/{node.name.rsplit('/', 1)[-1]}"] = dataset(node)
    values, loss_scale, wrapped = None, None, False
    if "optimizer" in f:
        og = f["optimizer"]
        wrapped = "inner_optimizer" in og
        keras3 = keras3 or ("vars" in og and "name" in og["vars"].attrs)
        # A loss-scale wrapper stores its inner optimizer's weights under inner_optimizer (which Keras loads last).
        where = "optimizer/inner_optimizer" if "inner_optimizer" in og else "optimizer"
        values = [dataset(n) for n in _numbered_vars(og["inner_optimizer"] if "inner_optimizer" in og else og, where, path)] or None
        loss_scale = _keras3_loss_scale(og, path) if keras3 and "inner_optimizer" in og else None
    return dict(model_weights=weights, trainable=trainable, values=values, keras3=keras3, loss_scale=loss_scale, wrapped=wrapped)


def _keras3_loss_scale(og: Any, path: Any) -> dict:
    """A Keras 3 ``LossScaleOptimizer``'s own variables: ``vars/0..3`` are its unused iteration and
    learning rate, ``step_counter`` and ``dynamic_scale``; a copy of the inner optimizer's follows."""
    outer, inner = _vars(og), _numbered_vars(og["inner_optimizer"], "optimizer/inner_optimizer", path)
    if len(outer) != len(inner) + 4:
        raise KerasFileError(
            path,
            f"a Keras 3 LossScaleOptimizer's 'optimizer/vars' holds {len(outer)} variables; with the inner "
            f"optimizer's {len(inner)} it should hold {len(inner) + 4} (iteration, learning_rate, step_counter, "
            "dynamic_scale, then the inner optimizer's).",
        )
    return {"step_counter": int(dataset(outer[2])), "dynamic_scale": float(dataset(outer[3]))}


def write_weights_store(
    data: bytes,
    path: Any,
    model_weights: Mapping[str, np.ndarray],
    optimizer: list,
    model_config: dict | None,
    own: Sequence[Any] = (),
    members: Mapping[str, list] | None = None,
) -> bytes:
    """The weights store ``data`` (bytes) with new layer and optimizer values.

    ``optimizer`` is ``[(name, value)]``, written to ``optimizer/vars`` and,
    for a loss-scale wrapper, to ``optimizer/inner_optimizer/vars`` too; a
    Keras 3 wrapper's own variables (``own``: iteration, learning rate,
    step counter, scale) lead its ``optimizer/vars``.  A Keras 3
    ``MultiOptimizer`` also stores each member's under
    ``optimizer/optimizers/<group>/vars``, named by the member
    (``members``: name -> ``[(name, value)]``).  bfloat16 values are stored
    as Keras 3 stores them (2-byte opaque data, ``dtype`` attribute).
    """
    require_h5py("Writing .keras files")
    buffer = _io.BytesIO(data)
    with h5py.File(buffer, "r+") as f:
        raw = read_weights_store(f, path, model_config)
        keys = list(raw["model_weights"])
        nodes = _store_nodes(f, model_config, path)
        for key, node in zip(keys, nodes):
            if key in model_weights:
                _assign(node, model_weights[key], path, key)
        values = [value for _, value in optimizer]
        groups = [(f["optimizer"], list(own) + values)]
        if "inner_optimizer" in f["optimizer"]:
            groups.append((f["optimizer"]["inner_optimizer"], values))
        for og in _member_groups(f["optimizer"]):
            name = _text(og["vars"].attrs.get("name", og.name.rsplit("/", 1)[-1]))
            if name not in (members or {}):
                raise KerasFileError(path, f"the file's optimizer member {name!r} is none of the optimizer's: {sorted(members or {})}.")
            groups.append((og, [value for _, value in members[name]]))
        for og, listed in groups:
            attrs = dict(og["vars"].attrs) if "vars" in og else {}
            if "vars" in og:
                del og["vars"]
            v = og.create_group("vars")
            for k, a in attrs.items():
                v.attrs[k] = a
            for i, value in enumerate(listed):
                write_dataset(v, str(i), value)
    return buffer.getvalue()


def _member_groups(og: Any) -> list[Any]:
    """A ``MultiOptimizer``'s members' groups (``optimizers/<group>``, in a loss-scale wrapper's inner one too)."""
    out = [og["optimizers"][g] for g in og["optimizers"]] if "optimizers" in og else []
    return out + (_member_groups(og["inner_optimizer"]) if "inner_optimizer" in og else [])


def write_dataset(group: Any, name: str, value: Any) -> None:
    """A dataset as Keras writes it: bfloat16 as 2-byte opaque data with a ``dtype="bfloat16"`` attribute."""
    value = np.asarray(value)
    if value.dtype == ml_dtypes.bfloat16:
        group.create_dataset(name, data=value.view(np.dtype("V2"))).attrs["dtype"] = "bfloat16"
    else:
        group.create_dataset(name, data=value)


def _store_nodes(f: Any, model_config: dict | None, path: Any) -> list[Any]:
    """The datasets of a weights store's layers, in the order :func:`read_weights_store` lists them."""
    return [node for group, *_ in _store_objects(f, model_config, path) for node in _vars(group)] + _vars(f)
