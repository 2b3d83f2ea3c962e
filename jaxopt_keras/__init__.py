"""jaxopt_keras: the Keras optimizers as pure, jittable JAX transformations.

* ``jaxopt_keras.<optimizer>`` (``adam``, ``sgd``, ...): the current Keras
  family (``tf.keras.optimizers`` since TF-Keras 2.11), one factory per
  optimizer of the registry (:mod:`jaxopt_keras.registry`).
* ``jaxopt_keras.legacy.<optimizer>``: the legacy family (``tf.keras.optimizers.legacy``).
* ``jaxopt_keras.keras3.<optimizer>``: the Keras 3 family (``keras.optimizers``).
* Composable transforms: :func:`chain`, :func:`clip_by_value`,
  :func:`clip_by_norm`, :func:`clip_by_global_norm`,
  :func:`aggregate_gradients`, ...
* Learning-rate schedules: :mod:`jaxopt_keras.schedules`.
* Hyperparameters live in the state: :func:`get_hyperparams`,
  :func:`set_hyperparams`.
* The Keras classes: :mod:`jaxopt_keras.optimizers`.
* Keras files (``.h5``, ``.keras``, TF checkpoints) in and out: :mod:`jaxopt_keras.io`.

``docs/architecture.md`` maps the package.
"""

from jaxopt_keras import flat, io, keras3, legacy, mixed_precision, optimizers, schedules
from jaxopt_keras.algorithms.driver import OptimizerState
from jaxopt_keras.core.hyperparams import Hyperparams, get_hyperparams, set_hyperparams
from jaxopt_keras.core.sparse import IndexedSlices
from jaxopt_keras.core.transform import EmptyState, GradientTransformation, apply_updates, chain, identity
from jaxopt_keras.keras import factories as _factories
from jaxopt_keras.optimizers.variable import Variable
from jaxopt_keras.transforms import (
    accumulate_gradients,
    aggregate_gradients,
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    decoupled_weight_decay,
    ema,
    ema_params,
    global_norm,
    scale_by_loss_scale_factor,
)

__version__ = "0.1.0"

__all__ = [
    "GradientTransformation",
    "EmptyState",
    "OptimizerState",
    "Hyperparams",
    "chain",
    "identity",
    "apply_updates",
    "get_hyperparams",
    "set_hyperparams",
    "clip_by_value",
    "clip_by_norm",
    "clip_by_global_norm",
    "global_norm",
    "aggregate_gradients",
    "accumulate_gradients",
    "scale_by_loss_scale_factor",
    "decoupled_weight_decay",
    "ema",
    "ema_params",
    *_factories.names("current"),
    "legacy",
    "keras3",
    "schedules",
    "optimizers",
    "mixed_precision",
    "Variable",
    "IndexedSlices",
    "flat",
    "io",
]


def __getattr__(name: str):
    return _factories.lookup("current", name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_factories.names("current")))
