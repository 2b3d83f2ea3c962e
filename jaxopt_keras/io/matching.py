"""Which Keras variable each leaf of a parameter tree is: the default rule, and ``names=``.

The default rule pairs layers of the same kind, in order, then variables by
name within a layer:

* A leaf's layer is its path without the last key and without a leading
  flax collection (``Dense_0`` of ``params/Dense_0/kernel``; ``BatchNorm_0``
  holds ``params/BatchNorm_0/scale`` and ``batch_stats/BatchNorm_0/mean``;
  ``layers/0`` in an nnx state).  Its kind comes
  from the module's name when it says (flax ``Dense``/``Linear`` -> dense,
  ``Conv`` -> conv, ``BatchNorm``, ``LayerNorm``, ``Embed``), else from its
  variables: an ``embedding``; a ``kernel`` of rank 2 (dense) or more (a
  convolution of that rank); a ``scale`` (a normalization).
* A Keras layer's kind comes from its variables in the same way
  (``moving_mean`` makes it a batch normalization).
* The i-th layer of a kind in the tree (paths in natural order:
  ``Dense_2`` before ``Dense_10``, ``layers/2`` before ``layers/10``) is the
  i-th Keras layer of that kind (in ``model.layers`` order): ``Dense_1`` is
  ``dense_1``, ``Conv_0`` is ``conv2d``, the way both libraries count
  layers per class when they name them.  Normalization layers whose kind
  only the variables tell take the remaining normalization layers in order.
* An attention layer's projections pair by role: Keras's
  ``multi_head_attention/query`` with the i-th flax ``query`` of a module
  whose name says attention (``MultiHeadDotProductAttention_0``,
  ``SelfAttention_0``, ``attn``); ``out`` with ``attention_output``.
  Other variables of a layer's sub-objects (an LSTM's cell, ...) have no
  flax counterpart of the same layout: pair them with ``names=``.
* Within a pair: ``kernel`` -> ``kernel``, ``bias`` -> ``bias`` (``beta``
  in a normalization), ``scale`` -> ``gamma``, ``embedding`` ->
  ``embeddings``, ``mean``/``var`` -> ``moving_mean``/``moving_variance``;
  other names match the same name.

``names=`` covers what the rule cannot (attribute names out of order, layers
Keras names differently): a dict from a leaf's path (``"params/Dense_0/kernel"``
or a tuple of keys) to a Keras variable path, or a callable
``path -> Keras path or None``; the leaves it names are taken first, the
rule pairs the rest.  Every leaf must find a Keras variable of its shape.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from jaxopt_keras.io.errors import KerasFileError

_MODULE_KINDS = (
    (re.compile(r"^(dense|dense_?general|linear|linear_?general|einsum)$", re.I), "dense"),
    (re.compile(r"^conv(_?transpose)?$", re.I), "conv"),
    (re.compile(r"^batch_?norm(alization)?$", re.I), "batch_norm"),
    (re.compile(r"^layer_?norm(alization)?$", re.I), "layer_norm"),
    (re.compile(r"^embed(ding)?$", re.I), "embedding"),
)
_RENAME = {"scale": "gamma", "embedding": "embeddings", "mean": "moving_mean", "var": "moving_variance"}
_NORMS = ("batch_norm", "layer_norm")
FLAX_COLLECTIONS = ("params", "batch_stats")
# An attention layer's projections, paired by role: Keras's MultiHeadAttention names them
# query/key/value/attention_output, flax's attention modules query/key/value/out (which sort
# key, out, query, value: in order, they would pair the key with Keras's query).
_ATTENTION = {"query": "query", "key": "key", "value": "value", "out": "output", "attention_output": "output"}


def path_string(path: Sequence[Any]) -> str:
    """``params/Dense_0/kernel`` for a JAX key path (an nnx variable's trailing ``.value`` dropped)."""
    return "/".join(str(part) for part in path_keys(path))


def path_keys(path: Sequence[Any]) -> list[Any]:
    """The keys of a JAX key path (dict keys, sequence indices, attribute names), an nnx
    variable's trailing ``.value`` dropped: the parts :func:`path_string` joins."""
    parts = []
    for k in path:
        if isinstance(k, jax.tree_util.DictKey):
            parts.append(k.key)
        elif isinstance(k, jax.tree_util.GetAttrKey):
            parts.append(k.name)
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(k.idx)
        else:
            parts.append(getattr(k, "key", k))
    if len(parts) > 1 and isinstance(path[-1], jax.tree_util.GetAttrKey) and parts[-1] == "value":
        parts.pop()
    return parts


def leaves(tree: Any) -> list[tuple[str, Any]]:
    """``(path, leaf)`` for every array of ``tree``, in its flattening order."""
    return [(path_string(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _natural(path: str) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)|/", path) if t)


def _kind(layer: str, variables: Mapping[str, tuple], keras: bool = False) -> str:
    parent, _, module = layer.rpartition("/")
    if module in _ATTENTION and (keras and parent or re.search(r"att(n|ention)", parent.rsplit("/", 1)[-1], re.I)):
        return f"attention_{_ATTENTION[module]}"
    base = re.sub(r"_\d+$", "", module)
    kind = next((k for rx, k in _MODULE_KINDS if rx.match(base)), None)
    if "embedding" in variables or "embeddings" in variables:
        return "embedding"
    if kind is None and ("moving_mean" in variables or "mean" in variables):
        kind = "batch_norm"
    if kind is None and ("gamma" in variables or "beta" in variables):
        kind = "layer_norm"
    if "kernel" in variables:
        rank = len(variables["kernel"])
        if kind in (None, "dense", "conv"):
            return "dense" if rank <= 2 and kind != "conv" else f"conv{rank - 2}d"
    if kind is None and "scale" in variables:
        return "norm"
    return kind or "other"


def _layers(items: Sequence[tuple[str, tuple]], collections: bool = False) -> list[tuple[str, str, dict]]:
    """``(layer path, kind, {variable: shape})`` in first-seen order.

    With ``collections``, a flax collection leading a path (``params/``,
    ``batch_stats/``) is not part of the layer: ``params/BatchNorm_0/scale``
    and ``batch_stats/BatchNorm_0/mean`` are one layer's.
    """
    groups: dict[str, dict] = {}
    for path, shape in items:
        layer, _, var = path.rpartition("/")
        if collections:
            head, _, rest = layer.partition("/")
            layer = rest if head in FLAX_COLLECTIONS else layer
        groups.setdefault(layer, {})[var] = tuple(shape)
    return [(layer, _kind(layer, v, keras=not collections), v) for layer, v in groups.items()]


def _pair_variables(theirs: Mapping[str, tuple], kind: str, ours: Mapping[str, tuple]) -> dict[str, str]:
    out = {}
    for var in ours:
        name = "beta" if (var == "bias" and kind in _NORMS + ("norm",)) else _RENAME.get(var, var)
        if name in theirs:
            out[var] = name
    return out


def match(
    tree: Any,
    keras: Mapping[str, tuple],
    names: Mapping[Any, str] | Callable[[str], str | None] | None = None,
    all_keras: Mapping[str, tuple] | None = None,
    require_all: bool = True,
    path: Any = None,
) -> list[str]:
    """The Keras variable of each leaf of ``tree``, in its flattening order.

    Args:
      tree: the parameter tree.
      keras: Keras path -> shape of the variables to match, in Keras's order.
      names: the user's pairs (see the module docstring).
      all_keras: every variable of the model (path -> shape), to tell each
        Keras layer's kind; defaults to ``keras``.
      require_all: every variable of ``keras`` must be matched too.
      path: the file, for messages.

    Raises:
      KerasFileError: a leaf without a variable, a variable without a leaf
        (with ``require_all``), or shapes that differ; both sides are named.
    """
    ours = leaves(tree)
    found: dict[int, str] = {}
    explicit = dict(names) if isinstance(names, Mapping) else {}
    explicit = {("/".join(map(str, k)) if isinstance(k, tuple) else str(k)): v for k, v in explicit.items()}
    for i, (p, _) in enumerate(ours):
        target = explicit.pop(p, None) if not callable(names) else names(p)
        if target is not None:
            if target not in keras:
                raise KerasFileError(path, f"names= maps {p!r} to {target!r}, which is not among the Keras variables {list(keras)}.")
            found[i] = target
    if explicit:
        raise KerasFileError(path, f"names= gives paths that are not in the parameter tree: {sorted(explicit)}; its paths: {[p for p, _ in ours]}.")
    taken = set(found.values())
    rest_ours = [(p, np.shape(x)) for i, (p, x) in enumerate(ours) if i not in found]
    rest_keras = [(k, s) for k, s in keras.items() if k not in taken]
    kinds = {layer: kind for layer, kind, _ in _layers(list((all_keras or keras).items()))}
    theirs = [(layer, kinds.get(layer, kind), v) for layer, kind, v in _layers(rest_keras)]
    mine = sorted(_layers(rest_ours, collections=True), key=lambda t: _natural(t[0]))
    # (layer as grouped, variable) -> the leaf's own path
    where = {}
    for p, _ in rest_ours:
        layer, _, var = p.rpartition("/")
        head, _, rest = layer.partition("/")
        where[(rest if head in FLAX_COLLECTIONS else layer, var)] = p
    pairs: list[tuple[tuple, tuple]] = []
    for kind in sorted({k for _, k, _ in mine} - {"norm", "other"}):
        a = [m for m in mine if m[1] == kind]
        b = [t for t in theirs if t[1] == kind]
        pairs += list(zip(a, b))
    claimed = {id(t) for _, t in pairs}
    for generic, pool in (("norm", _NORMS), ("other", ("other",))):
        a = [m for m in mine if m[1] == generic]
        b = [t for t in theirs if t[1] in pool and id(t) not in claimed]
        pairs += list(zip(a, b))
    index = {p: i for i, (p, _) in enumerate(ours)}
    for (layer, kind, variables), (klayer, kkind, kvars) in pairs:
        for var, kvar in _pair_variables(kvars, kkind, variables).items():
            found[index[where[(layer, var)]]] = f"{klayer}/{kvar}" if klayer else kvar
    _check(ours, keras, found, require_all, path)
    return [found[i] for i in range(len(ours))]


def _check(ours, keras, found, require_all, path) -> None:
    unmatched = [f"{p} {np.shape(x)}" for i, (p, x) in enumerate(ours) if i not in found]
    used = list(found.values())
    twice = sorted({k for k in used if used.count(k) > 1})
    missing = [f"{k} {tuple(s)}" for k, s in keras.items() if k not in used] if require_all else []
    if unmatched or twice or missing:
        raise KerasFileError(
            path,
            "the parameters do not match the Keras variables: "
            + "; ".join(
                part
                for part in (
                    f"parameters without a Keras variable: {unmatched}" if unmatched else "",
                    f"Keras variables matched twice: {twice}" if twice else "",
                    f"Keras variables without a parameter: {missing}" if missing else "",
                )
                if part
            )
            + f". Parameters: {[f'{p} {np.shape(x)}' for p, x in ours]}; Keras: {[f'{k} {tuple(s)}' for k, s in keras.items()]}."
            " Pass names={parameter path: Keras variable} for the pairs the default rule cannot find.",
        )
    bad = [
        f"{p} {np.shape(x)} vs {found[i]} {tuple(keras[found[i]])}"
        for i, (p, x) in enumerate(ours)
        if tuple(np.shape(x)) != tuple(keras[found[i]])
    ]
    if bad:
        raise KerasFileError(path, f"shapes differ between the parameters and the Keras variables: {bad}.")
