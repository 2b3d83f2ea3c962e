"""What a Keras file holds, read into one object: :class:`KerasCheckpoint`.

Each format's reader (:mod:`~jaxopt_keras.io.hdf5`, :mod:`~jaxopt_keras.io.archive`,
:mod:`~jaxopt_keras.io.tfcheckpoint`) gathers the raw pieces: the configs,
the model's weights in ``model.weights`` order, which of them are trainable,
and the optimizer's weights in Keras's order.  :func:`assemble` checks the
optimizer's weights against what the optimizer of that config, over those
trainable variables, has (count and shapes), names each by the Keras
variable it belongs to, and returns the checkpoint; or raises, naming the
file and what does not match.

The numerics family: ``"legacy"`` (OptimizerV2) and ``"current"`` (TF-Keras
>= 2.11) are read from the config as :func:`~jaxopt_keras.optimizers.deserialize`
reads them; ``"keras3"`` from the file (written by Keras 3), whose config is
read by :func:`jaxopt_keras.optimizers.keras3.deserialize` (a
``LossScaleOptimizer`` included).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from jaxopt_keras.core.state import checked_count
from jaxopt_keras.io.errors import KerasFileError
from jaxopt_keras.optimizers.loss_scale import LossScaleOptimizer
from jaxopt_keras.optimizers import deserialize, serialize
from jaxopt_keras.optimizers.config import tf_keras_family, tf_keras_registered, without_custom_prefix
from jaxopt_keras.optimizers.keras3 import LossScaleOptimizer as LossScaleOptimizerKeras3
from jaxopt_keras.optimizers.keras3 import deserialize as deserialize_keras3
from jaxopt_keras.optimizers.keras3 import serialize as serialize_keras3
from jaxopt_keras.optimizers.weights import Weight, keras_layout, keras_name

FAMILIES = ("legacy", "current", "keras3")


@dataclasses.dataclass(frozen=True)
class KerasCheckpoint:
    """What a Keras file holds about a model and its optimizer.

    Attributes:
      path: the file read.
      kind: ``"h5"`` (``model.save("m.h5")``), ``"keras"`` (a ``.keras``
        archive), ``"weights.h5"`` (``save_weights("w.weights.h5")``) or
        ``"tf_checkpoint"`` (``tf.train.Checkpoint``, TF-format
        ``save_weights``, a SavedModel's variables).
      config: the optimizer's serialization (``{"class_name", "config", ...}``),
        what :func:`~jaxopt_keras.optimizers.deserialize` takes; hyperparameters
        the file stores as variables (a TF checkpoint's learning rate, ...) are
        in it.
      family: ``"legacy"``, ``"current"`` or ``"keras3"``.
      iterations: the optimizer's step count.
      optimizer_weights: the optimizer's weights in Keras's order (what its
        ``set_weights`` takes; Keras 3: ``optimizer.variables``), keyed by
        Keras's name for each without the optimizer's name scope and the
        ``:0``: legacy ``iter``, ``dense/kernel/m``; current ``iteration``,
        ``m/dense/kernel``; keras3 ``iteration``, ``learning_rate``,
        ``dense_kernel_momentum`` (a ``MultiOptimizer``'s by position after
        its own two: ``vars/<i>``).
      model_weights: the model's weights in ``model.weights`` order, keyed by
        variable path (``dense/kernel``, ``batch_normalization/moving_mean``).
      trainable: the keys of ``model_weights`` the optimizer has slots for, in
        ``model.trainable_variables`` order.
      model_config: the model's config, when the file has it.
      keras_version: the Keras version that wrote the file, when it says.
      loss_scale: a loss-scale optimizer's own state,
        ``{"step_counter": int, "dynamic_scale": float}`` (its inner
        optimizer's weights are ``optimizer_weights``): Keras 3's files, and
        TF checkpoints of a TF-Keras wrapper read with its config; ``None``
        otherwise.
    """

    path: str | None
    kind: str
    config: dict | None
    family: str
    iterations: int
    optimizer_weights: dict
    model_weights: dict
    trainable: tuple
    model_config: dict | None = None
    keras_version: str | None = None
    loss_scale: dict | None = None

    def __repr__(self) -> str:
        name = (self.config or {}).get("class_name")
        return (
            f"KerasCheckpoint({self.path!r}, kind={self.kind!r}, optimizer={name!r}, family={self.family!r}, "
            f"iterations={self.iterations}, {len(self.optimizer_weights)} optimizer weights, "
            f"{len(self.model_weights)} model weights)"
        )


def family_of(optimizer_config: Mapping[str, Any], keras3: bool) -> str:
    """The numerics family of a config: ``"keras3"`` if the file says Keras 3 wrote it (``keras3``),
    else as :func:`~jaxopt_keras.optimizers.deserialize` reads the config (a legacy module or key,
    ``is_legacy_optimizer``, ``jit_compile``: TF-Keras; ``loss_scale_factor`` or
    ``gradient_accumulation_steps`` without those: Keras 3); a non-empty config that says nothing
    was written before TF-Keras 2.11, legacy (:func:`~jaxopt_keras.optimizers.config.tf_keras_family`)."""
    if keras3:
        return "keras3"
    registered = tf_keras_registered(optimizer_config.get("class_name"))  # "Custom>Adam": TF-Keras's current class
    config = optimizer_config if registered else without_custom_prefix(optimizer_config, {})
    inner = config.get("config") if isinstance(config.get("config"), Mapping) else {}
    if isinstance(inner.get("inner_optimizer"), Mapping):  # a loss-scale wrapper: its inner optimizer's
        return family_of(inner["inner_optimizer"], False)
    return tf_keras_family(config)


def keras_optimizer(config: Mapping[str, Any], family: str, custom_objects: Mapping[str, Any] | None = None) -> Any:
    """Our optimizer object for a Keras config in ``family``.

    Raises:
      ValueError: a class this library does not have (and ``custom_objects``
        does not supply).
    """
    if family in ("legacy", "current"):
        return deserialize(dict(config), custom_objects=custom_objects, use_legacy_optimizer=family == "legacy")
    return deserialize_keras3(dict(config), custom_objects=custom_objects)


def inner_optimizer_of(optimizer: Any) -> Any:
    """The optimizer whose weights a file lists (a loss-scale wrapper's inner one, in either family)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def entry_key(spec: Any, weight: Weight, variable: str) -> str:
    """The checkpoint's key for a weights-list entry: Keras's name (:func:`~jaxopt_keras.optimizers.weights.keras_name`),
    except where Keras 3 names a slot by its variable's name alone (Adafactor's ``r`` and ``c``, so not
    unique): ``<variable path with _>_<slot>`` (``dense_kernel_r``)."""
    if spec.family == "keras3" and weight.kind == "slot" and not spec.keras_slot_name(weight.name):
        return f"{variable.replace('/', '_')}_{weight.name}"
    return keras_name(spec, weight, variable)


def layout_of(
    optimizer: Any, shapes: Sequence[tuple], dtypes: Sequence[Any], paths: Sequence[str] | None = None
) -> list[tuple[Weight, tuple, Any]]:
    """``(entry, expected shape, expected dtype or None)`` for each entry of the optimizer's weights list
    (``paths``: the variables' Keras paths, for optimizers that route by path)."""
    opt = inner_optimizer_of(optimizer)
    spec, args = opt._spec, opt._args
    slots = {s.name: s for s in spec.slots}
    out = []
    for w in keras_layout(spec, args, shapes, paths=paths, tracked=opt._tracked):
        if w.kind in ("iterations", "scalar", "hyper"):
            out.append((w, (), None))
        elif w.kind == "slot":
            abstract = jax.ShapeDtypeStruct(tuple(shapes[w.index]), dtypes[w.index])
            made = jax.eval_shape(lambda p, s=slots[w.name]: s.init(p, args), abstract)
            out.append((w, tuple(made.shape), dtypes[w.index]))
        else:
            out.append((w, tuple(shapes[w.index]), dtypes[w.index]))
    return out


def _describe(config: Mapping[str, Any]) -> str:
    return str(config.get("class_name"))


def assemble(
    path: Any,
    kind: str,
    *,
    optimizer_config: dict | None,
    model_config: dict | None,
    model_weights: dict,
    trainable: Sequence[str],
    values: Sequence[np.ndarray] | None,
    keras3: bool = False,
    family: str | None = None,
    file_hyperparams: Mapping[str, Any] | None = None,
    keras_version: str | None = None,
    missing_optimizer: str = "",
    loss_scale: dict | None = None,
    wrapped: bool = False,
    value_names: Sequence[str] | None = None,
) -> KerasCheckpoint:
    """The checkpoint from a reader's raw pieces, checked (see the module docstring).

    Raises:
      KerasFileError: no optimizer section or config, or weights that do not
        fit the optimizer of the config over the trainable variables.
    """
    if values is None or not len(values):
        raise KerasFileError(path, missing_optimizer or "the file holds no optimizer state.")
    if optimizer_config is None:
        raise KerasFileError(
            path,
            "the file holds the optimizer's weights but not its config (class and hyperparameters): "
            "pass config= (the optimizer's serialization, or the model's config with its compile_config).",
        )
    optimizer_config = with_file_hyperparams(optimizer_config, file_hyperparams or {})
    if (loss_scale is not None or wrapped) and not isinstance((optimizer_config.get("config") or {}).get("inner_optimizer"), Mapping):
        optimizer_config = _loss_scaled(path, optimizer_config, keras3)
    family = family or family_of(optimizer_config, keras3)
    values = [np.asarray(v) for v in values]
    for i, value in enumerate(values):
        check_numeric(path, f"optimizer weight {i}", value)
    for key, value in model_weights.items():
        check_numeric(path, f"model weight {key!r}", value)
    iterations = file_step_count(path, values[0])
    if routes_by_path(optimizer_config):
        names = ["iteration"] + [f"vars/{i}" for i in range(1, len(values))]
        if len(values) > 1 and not isinstance((optimizer_config.get("config") or {}).get("learning_rate"), Mapping):
            names[1] = "learning_rate"
    else:
        names = _checked_names(path, optimizer_config, family, model_weights, trainable, values, model_config, value_names)
    return KerasCheckpoint(
        path=None if path is None else str(path),
        kind=kind,
        config=optimizer_config,
        family=family,
        iterations=iterations,
        optimizer_weights=dict(zip(names, values)),
        model_weights=dict(model_weights),
        trainable=tuple(trainable),
        model_config=model_config,
        keras_version=keras_version,
        loss_scale=loss_scale,
    )


def check_numeric(path: Any, what: str, value: Any) -> None:
    """Refuses a weight that does not hold numbers (strings, objects: a damaged file).

    Raises:
      KerasFileError: naming ``path``, ``what`` and the dtype.
    """
    dtype = np.asarray(value).dtype
    if dtype.kind not in "biufc" and not (dtype.kind == "V" and jax.numpy.issubdtype(dtype, jax.numpy.number)):
        raise KerasFileError(path, f"{what} holds values of dtype {dtype}, not numbers.")


def file_step_count(path: Any, value: Any) -> int:
    """A file's optimizer step count, checked (:func:`~jaxopt_keras.core.state.checked_count`: a
    scalar, a non-negative whole number); a count beyond the state's counter is refused when it is
    loaded into a state, not here, so such a file can still be read.

    Raises:
      KerasFileError: naming ``path`` and what the count is.
    """
    try:
        return int(checked_count(value, np.int64, "iterations", widens=False))
    except ValueError as e:
        raise KerasFileError(path, f"the optimizer's step count (its first weight): {e}") from None


def with_file_hyperparams(config: Mapping[str, Any], hyperparams: Mapping[str, Any]) -> dict:
    """``config`` with the hyperparameter values a file holds in variables (they win), put in the
    optimizer's own config: a loss-scale wrapper's inner one (``inner_optimizer``, TF-Keras's and
    Keras 3's key), whose variables they are.  A schedule's config stays."""
    config = dict(config)
    inner = dict(config.get("config") or {})
    if isinstance(inner.get("inner_optimizer"), Mapping):
        inner["inner_optimizer"] = with_file_hyperparams(inner["inner_optimizer"], hyperparams)
    else:
        for k, v in hyperparams.items():
            if not isinstance(inner.get(k), Mapping):
                inner[k] = np.asarray(v).item()
    config["config"] = inner
    return config


def _loss_scaled(path: Any, config: Mapping[str, Any], keras3: bool) -> dict:
    """The config of the ``LossScaleOptimizer`` Keras wraps ``config`` in.

    Under a ``mixed_float16`` policy ``compile`` wraps the model's optimizer
    (the defaults: ``initial_scale=2**15``, ``dynamic_growth_steps=2000``;
    TF-Keras's current optimizers in ``LossScaleOptimizerV3``), and does
    again when it loads the model under that policy: the file's store holds
    the wrapper's ``inner_optimizer`` while its ``compile_config`` names the
    optimizer given to ``compile``.  (Keras 3 stores the wrapper's scale and
    counter; TF-Keras does not, and its wrapper starts again at the initial scale.)
    """
    try:
        if keras3:
            return serialize_keras3(LossScaleOptimizerKeras3(deserialize_keras3(dict(config)), name="loss_scale_optimizer"))
        return serialize(LossScaleOptimizer(deserialize(dict(config))))
    except (ValueError, TypeError) as e:
        raise KerasFileError(path, f"its optimizer config cannot be read: {e}") from e


def routes_by_path(config: Mapping[str, Any]) -> bool:
    """A Keras 3 ``MultiOptimizer`` config (alone or in a loss-scale wrapper): its weights list is its own
    ``iteration`` and ``learning_rate``, then each member's; the checkpoint names them by position."""
    inner = config.get("config") if isinstance(config.get("config"), Mapping) else {}
    if isinstance(inner.get("inner_optimizer"), Mapping):
        return routes_by_path(inner["inner_optimizer"])
    return str(config.get("class_name")).lower() == "multioptimizer"


def _untracked_scalars(optimizer: Any, layout: list, values: Sequence) -> str:
    """The reason a Keras 3 file of a wrapped optimizer lacks that optimizer's scalars (``u_product``)."""
    scalars = [w.name for w, _, _ in layout if w.kind == "scalar"]
    if not isinstance(optimizer, LossScaleOptimizerKeras3) or not scalars or len(values) != len(layout) - len(scalars):
        return ""
    return (
        f" Keras 3 does not track the wrapped optimizer's {scalars} under a LossScaleOptimizer: they are not among"
        " its variables, so the file lacks them, and on the JAX backend each step of the run started them again"
        " from their initial value instead of carrying them on. That run's state does not continue as"
        f" {type(optimizer.inner_optimizer).__name__}: port the model's weights and start the optimizer afresh."
    )


_LAZY_SLOTS = (
    " A legacy optimizer lists its slots in the order it first stepped the variables: the slots of a layer"
    " unfrozen after its first steps come last, not in model.trainable_variables order (TF-Keras loading such a file"
    " starts a fresh optimizer, or with equal shapes puts slots on the wrong variables); a TF checkpoint of the model"
    " holds its slots by variable and ports."
)


def _checked_names(path, optimizer_config, family, model_weights, trainable, values, model_config=None, value_names=None) -> list[str]:
    try:
        optimizer = keras_optimizer(optimizer_config, family)
    except (ValueError, TypeError) as e:
        raise KerasFileError(path, f"its optimizer config cannot be read: {e}") from e
    shapes = [np.shape(model_weights[k]) for k in trainable]
    dtypes = [np.asarray(model_weights[k]).dtype for k in trainable]
    layout = layout_of(optimizer, shapes, dtypes, list(trainable))
    spec = inner_optimizer_of(optimizer)._spec
    if len(values) < len(layout) and len(values) == len(layout_of(optimizer, [], [], [])) and not int(values[0]):
        raise KerasFileError(
            path,
            f"the optimizer was compiled but never built: the file holds only its own {len(values)} variables "
            "(step count 0) and no slots, so there is no optimizer state to port. Build a fresh optimizer from "
            "its config (what Keras does when it loads this file), and the model's weights from the file.",
        )
    if len(layout) != len(values):
        raise KerasFileError(
            path,
            f"the file holds {len(values)} optimizer weights, but {_describe(optimizer_config)} ({family} family) "
            f"over the {len(trainable)} trainable variables {list(trainable)} has {len(layout)}: "
            f"{[entry_key(spec, w, trainable[w.index] if w.index >= 0 else '') for w, _, _ in layout]}."
            + (
                " A layer frozen with trainable=False has no slots: pass config= with the model's config, "
                "whose flags say which layers are frozen."
                if len(layout) > len(values) and model_config is None
                else ""
            )
            + _untracked_scalars(optimizer, layout, values),
        )
    names = []
    for (w, shape, _), value in zip(layout, values):
        name = entry_key(spec, w, trainable[w.index] if w.index >= 0 else "")
        named = value_names[len(names)] if value_names else None
        elsewhere = named is not None and named != name and not named.endswith("/" + name)
        if elsewhere and family == "legacy" and w.kind == "slot" and tuple(np.shape(value)) == shape:
            raise KerasFileError(path, f"optimizer weight {len(names)} is named {named!r} where Keras's order has {name}." + _LAZY_SLOTS)
        if tuple(np.shape(value)) != shape:
            over = f" over the model weight {trainable[w.index]!r} of shape {np.shape(model_weights[trainable[w.index]])}" if w.index >= 0 else ""
            raise KerasFileError(
                path,
                f"optimizer weight {len(names)} ({name}" + (f"; the file names it {named!r}" if elsewhere else "")
                + f") has shape {np.shape(value)}; the optimizer's{over} is {shape}." + _LAZY_SLOTS * (elsewhere and family == "legacy"),
            )
        names.append(name)
    return names
