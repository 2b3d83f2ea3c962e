"""TF checkpoints: ``tf.train.Checkpoint``, TF-format ``model.save_weights``, a SavedModel's variables.

Read through TensorFlow's checkpoint reader (``tf.train.load_checkpoint``)
and the checkpoint's object graph (``_CHECKPOINTABLE_OBJECT_GRAPH``, a
``TrackableObjectGraph`` protobuf), which links every value to the object
that owns it: the model's layers (``layer_with_weights-<k>``), the
optimizer's step count (legacy ``iter``, current ``_iterations``), its slots
(legacy: hung on the model variable, ``.OPTIMIZER_SLOT/optimizer/m``;
current: ``_variables/<i>``, the weights list itself) and the
hyperparameters it stores as variables (legacy: the ``_set_hyper`` ones,
``learning_rate``, ``beta_1``, ``decay``, ...; current: ``learning_rate``).

A checkpoint has no optimizer config: its class and the hyperparameters it
does not store (``epsilon``, ``amsgrad``, ``clipnorm``, ...) come from
``config=``, or from a SavedModel's ``keras_metadata.pb``.  TensorFlow is
imported on the first read (it is large; the rest of the package does not
need it); without it, :class:`~jaxopt_keras.io.errors.MissingDependencyError`
names the extra to install.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from typing import Any, Mapping

import numpy as np

from jaxopt_keras.io.checkpoint import keras_optimizer, layout_of, with_file_hyperparams
from jaxopt_keras.io.errors import KerasFileError, missing
from jaxopt_keras.io.layers import frozen_layers, is_trainable, nested_message, split_config, sub_object_order
from jaxopt_keras.registry import entries

_MODULES: dict[str, Any] = {}
_LAYER = re.compile(r"^layer_with_weights-(\d+)$")
# A SavedModel's lists of the model's variables (the same nodes again, not in the weights' order).
_LISTS = frozenset({"variables", "trainable_variables", "non_trainable_variables", "keras_api"})
GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def _tf(module: str = "tensorflow") -> Any:
    """A TensorFlow module, imported on first use."""
    if module not in _MODULES:
        try:
            _MODULES[module] = importlib.import_module(module)
        except ImportError as e:
            raise missing("tensorflow", "tf", "Reading TF checkpoints") from e
    return _MODULES[module]


def find_prefix(path: str) -> tuple[str, str | None] | None:
    """``(checkpoint prefix, keras_metadata.pb or None)`` if ``path`` names a TF checkpoint, else ``None``."""
    if os.path.isdir(path):
        variables = os.path.join(path, "variables", "variables")
        if os.path.exists(variables + ".index"):
            metadata = os.path.join(path, "keras_metadata.pb")
            return variables, metadata if os.path.exists(metadata) else None
        state = os.path.join(path, "checkpoint")
        if os.path.exists(state):
            with open(state) as f:
                found = re.search(r'^model_checkpoint_path:\s*"(.*)"', f.read(), re.M)
            if found:
                prefix = found.group(1)
                return (prefix if os.path.isabs(prefix) else os.path.join(path, prefix)), None
        return None
    for suffix in (".index", ".data-00000-of-00001"):
        if path.endswith(suffix):
            return path[: -len(suffix)], None
    if os.path.exists(path + ".index"):
        return path, None
    return None


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, Any]]:
    """``(field number, value)`` of a serialized protobuf message (varints and length-delimited fields)."""
    out, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, value))
    return out


def saved_model_configs(metadata_path: str) -> tuple[dict | None, dict | None]:
    """``(optimizer config, model config)`` from a SavedModel's ``keras_metadata.pb`` (``SavedMetadata``)."""
    with open(metadata_path, "rb") as f:
        data = f.read()
    try:
        for number, node in _fields(data):
            if number != 1:
                continue
            fields = dict(_fields(node))
            if fields.get(3) == b"root" and 5 in fields:
                meta = json.loads(fields[5].decode("utf-8"))
                training = meta.get("training_config") or {}
                model = {"class_name": meta.get("class_name"), "config": meta.get("config")}
                return training.get("optimizer_config"), model
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise KerasFileError(metadata_path, f"not a readable keras_metadata.pb: {e}") from e
    return None, None


class _Graph:
    """The object graph: each node's children, its value's checkpoint key and variable name, its slots."""

    def __init__(self, proto: Any):
        self.nodes = list(proto.nodes)

    def children(self, i: int) -> list[tuple[str, int]]:
        return [(c.local_name, c.node_id) for c in self.nodes[i].children]

    def child(self, i: int, name: str) -> int | None:
        return next((n for local, n in self.children(i) if local == name), None)

    def value(self, i: int) -> tuple[str, str] | None:
        for a in self.nodes[i].attributes:
            if a.name == "VARIABLE_VALUE":
                return a.checkpoint_key, a.full_name or a.checkpoint_key
        return None

    def bfs(self, accept) -> int | None:
        seen, queue = {0}, [0]
        while queue:
            i = queue.pop(0)
            if accept(i):
                return i
            for _, n in self.children(i):
                if n not in seen:
                    seen.add(n)
                    queue.append(n)
        return None


def _model_variables(g: _Graph, model: int) -> list[int]:
    """The model's variable nodes in ``model.weights`` order: each layer's own, its sub-objects'
    (:data:`~jaxopt_keras.io.layers.SUB_OBJECTS`: an RNN's ``cell``, a StackedRNNCells' numbered
    ``cells``), then its sub-layers'."""
    out: list[int] = []

    def layer(i):
        for _, n in g.children(i):
            if g.value(n) is not None and n not in out:
                out.append(n)
        children = dict(g.children(i))
        for key in sub_object_order(list(children))[0]:
            if key == "cells":
                for _, n in sorted((int(k), n) for k, n in g.children(children[key]) if k.isdigit()):
                    layer(n)
            else:
                layer(children[key])
        subs = sorted((int(m.group(1)), n) for local, n in g.children(i) if (m := _LAYER.match(local)))
        for _, n in subs:
            layer(n)

    layer(model)
    return out


def _subclassed_variables(g: _Graph, model: int, optimizer: int) -> list[int]:
    """A subclassed model's variable nodes in ``model.weights`` order.

    Its object graph lists each object's attributes in the order they were
    set.  TF-Keras lists a ``Model``'s tracked layers' variables, then its
    own (``add_weight``); a ``Layer``'s own variables, then its layers'
    (a list attribute's items in order).  A functional sub-model is read as
    :func:`_model_variables` reads one.
    """
    out: list[int] = []
    seen = {optimizer}

    def add(nodes):
        out.extend(n for n in nodes if n not in out)

    def walk(i, is_model):
        own = [n for _, n in g.children(i) if g.value(n) is not None]
        subs = [n for local, n in g.children(i) if g.value(n) is None and n not in seen and local not in _LISTS]
        seen.update(subs)
        if not is_model:
            add(own)
        for n in subs:
            if any(_LAYER.match(local) for local, _ in g.children(n)):
                add(_model_variables(g, n))
            else:
                walk(n, False)
        if is_model:
            add(own)

    walk(model, True)
    return out


def _find_model(g: _Graph, optimizer: int) -> tuple[int | None, bool]:
    """``(model node, subclassed)``: the checkpoint's ``model`` (or the root, which ``save_weights``
    makes the model); a functional or Sequential one has ``layer_with_weights-<k>`` children."""
    top = g.child(0, "model")
    top = 0 if top is None else top
    if any(_LAYER.match(n) for n, _ in g.children(top)):
        return top, False
    if top != 0 or g.child(0, "optimizer") == optimizer:  # a model beside the optimizer, or holding it
        return top, True
    return g.bfs(lambda i: any(_LAYER.match(n) for n, _ in g.children(i))), False


def _nested_variables(g: _Graph, model: int, found: list[int]) -> list[str]:
    """Variables below a layer with weights, in an object that is neither a ``layer_with_weights-<k>``
    nor a known sub-object (a custom layer's attribute): not in :func:`_model_variables`."""
    seen, out = set(found), []

    def walk(i, depth):
        for local, n in g.children(i):
            if _LAYER.match(local) or n in seen or depth > 4:
                continue
            seen.add(n)
            if g.value(n) is not None:
                out.append(g.value(n)[1])
            else:
                walk(n, depth + 1)

    def layers(i):
        for local, n in g.children(i):
            if _LAYER.match(local):
                walk(n, 0)
                layers(n)

    layers(model)
    return out


def read_tf_checkpoint(path: Any, prefix: str, metadata: str | None, config: Any) -> dict:
    """The raw pieces of a TF checkpoint (see :func:`~jaxopt_keras.io.checkpoint.assemble`)."""
    tf = _tf()
    graph_pb2 = _tf("tensorflow.core.protobuf.trackable_object_graph_pb2")
    try:
        reader = tf.train.load_checkpoint(prefix)
        g = _Graph(graph_pb2.TrackableObjectGraph.FromString(reader.get_tensor(GRAPH_KEY)))

        def tensor(node: int) -> np.ndarray:
            return np.asarray(reader.get_tensor(g.value(node)[0]))

        optimizer = g.bfs(lambda i: any(n in ("iter", "_iterations") for n, _ in g.children(i)))
        if optimizer is None:
            raise KerasFileError(path, "the checkpoint holds no optimizer (no 'iter' or '_iterations' variable).")
        model, subclassed = _find_model(g, optimizer)
        if model is None:
            raise KerasFileError(path, "the checkpoint holds no Keras model (no 'layer_with_weights-<k>' objects).")
        variables = _subclassed_variables(g, model, optimizer) if subclassed else _model_variables(g, model)
        if not variables:
            raise KerasFileError(path, "the checkpoint's model holds no variables.")
        nested = [] if subclassed else _nested_variables(g, model, variables)
        if nested:
            raise KerasFileError(path, nested_message(nested, "a TF checkpoint"))
        names = {n: g.value(n)[1] for n in variables}
        if twice := sorted({v for v in names.values() if list(names.values()).count(v) > 1}):
            raise KerasFileError(
                path,
                f"several of the model's variables are named {twice[:4]} (layers of the same name in different "
                "sub-models): a TF checkpoint names each by its layer's name alone, so their weights and slots "
                "cannot be told apart. Save the model as .keras or .weights.h5 (current family), which name them apart.",
            )
        weights = {names[n]: tensor(n) for n in variables}
        legacy = g.child(optimizer, "iter") is not None
        optimizer_config, model_config = split_config(config)
        trainable = _trainable(path, g, variables, names, optimizer, legacy, frozen_layers(model_config))
        if metadata is not None and (optimizer_config is None or model_config is None):
            found_optimizer, found_model = saved_model_configs(metadata)
            optimizer_config = optimizer_config or found_optimizer
            model_config = model_config or found_model
        family = "legacy" if legacy else "current"
        wrapped = isinstance(((optimizer_config or {}).get("config") or {}).get("inner_optimizer"), Mapping)
        loss_scale = _loss_scale(g, optimizer, tensor) if wrapped else None
        hypers = _hyperparams(g, optimizer, legacy, tensor)
        values = None
        if optimizer_config is not None or not legacy:
            values = _optimizer_values(path, g, optimizer, legacy, tensor, optimizer_config, hypers, family, weights, trainable, names)
    except KerasFileError:
        raise
    except (tf.errors.OpError, IndexError, ValueError) as e:
        raise KerasFileError(path, f"not a readable TF checkpoint (truncated, corrupt or missing data file): {e}") from e
    return dict(
        optimizer_config=optimizer_config,
        model_config=model_config,
        model_weights=weights,
        trainable=trainable,
        values=values,
        family=family,
        file_hyperparams=hypers,
        keras_version=None,
        loss_scale=loss_scale,
        missing_optimizer=(
            "a TF checkpoint does not hold the optimizer's config (its class and the hyperparameters it keeps "
            "outside variables: epsilon, amsgrad, clipnorm, ...), and without it a legacy optimizer's slots "
            "cannot be put in Keras's order: pass config= (the optimizer's serialization, or the model's config)."
        ),
    )


def _trainable(path: Any, g: _Graph, variables: list[int], names: dict, optimizer: int, legacy: bool, frozen: set) -> list[str]:
    if legacy:  # exactly the variables that have slots
        with_slots = {s.original_variable_node_id for s in g.nodes[optimizer].slot_variables}
        unread = with_slots - set(variables)
        if unread:  # never leave a slotted variable out silently
            raise KerasFileError(
                path,
                f"the optimizer has slots for {len(unread)} variables that are not among the model's layers' "
                f"own variables ({sorted(str(g.value(n)[1]) if g.value(n) else n for n in unread)[:5]}): "
                "they are not read from this checkpoint.",
            )
        if with_slots:
            return [names[n] for n in variables if n in with_slots]
    listed = g.child(0, "trainable_variables")  # a SavedModel lists them
    if listed is not None:
        return [names[n] for _, n in g.children(listed) if n in names]
    # By name, and the model config's `trainable: false` layers (named in the variables' scopes).
    return [names[n] for n in variables if is_trainable(names[n]) and not frozen & set(names[n].split("/")[:-1])]


def _loss_scale(g: _Graph, optimizer: int, tensor) -> dict | None:
    """A TF-Keras ``LossScaleOptimizer``'s dynamic scale and its count of finite steps since the scale
    last changed (``loss_scale/current_loss_scale``, ``loss_scale/good_steps``); ``None`` for a fixed scale."""
    node = g.child(optimizer, "loss_scale")
    scale, steps = (None, None) if node is None else (g.child(node, "current_loss_scale"), g.child(node, "good_steps"))
    if scale is None or steps is None or g.value(scale) is None or g.value(steps) is None:
        return None
    return {"step_counter": int(tensor(steps)), "dynamic_scale": float(tensor(scale))}


def _hyperparams(g: _Graph, optimizer: int, legacy: bool, tensor) -> dict:
    """The hyperparameters the optimizer stores as variables (they override the config's)."""
    if not legacy:
        lr = g.child(optimizer, "_learning_rate")
        return {} if lr is None or g.value(lr) is None else {"learning_rate": tensor(lr)}
    # Variables of the optimizer that are not hyperparameters: the step count and per-optimizer scalars.
    skip = {"iter"} | {s.name for e in entries() for spec in e.specs.values() for s in spec.scalars}
    return {name: tensor(n) for name, n in g.children(optimizer) if name not in skip and g.value(n) is not None and tensor(n).shape == ()}


def _optimizer_values(path, g, optimizer, legacy, tensor, config, hypers, family, weights, trainable, names) -> list:
    """The optimizer's weights in Keras's order."""
    if not legacy:
        listed = g.child(optimizer, "_variables")
        entries = sorted((int(local), n) for local, n in g.children(listed) if local.isdigit()) if listed is not None else []
        iterations = g.child(optimizer, "_iterations")
        return [tensor(iterations)] + [tensor(n) for i, n in entries if i > 0]
    config = with_file_hyperparams(config, hypers)
    try:
        opt = keras_optimizer(config, family)
    except (ValueError, TypeError) as e:
        raise KerasFileError(path, f"the optimizer config cannot be read: {e}") from e
    by_name = {names[n]: n for n in names}
    slots = {(s.original_variable_node_id, s.slot_name): s.slot_variable_node_id for s in g.nodes[optimizer].slot_variables}
    shapes = [np.shape(weights[k]) for k in trainable]
    dtypes = [weights[k].dtype for k in trainable]
    out = []
    for w, _, _ in layout_of(opt, shapes, dtypes):
        if w.kind == "iterations":
            node = g.child(optimizer, "iter")
        elif w.kind == "scalar":
            node = g.child(optimizer, w.name)
        else:
            node = slots.get((by_name[trainable[w.index]], w.name))
        if node is None:
            what = f"slot {w.name!r} of {trainable[w.index]!r}" if w.kind == "slot" else repr(w.name or w.kind)
            raise KerasFileError(path, f"the optimizer of the config ({config.get('class_name')}) has {what}, which the checkpoint lacks.")
        out.append(tensor(node))
    return out
