"""jaxopt_keras: the Keras optimizers as pure, jittable JAX transformations.

* ``jaxopt_keras.{sgd, adam, adamax, nadam, adagrad, adadelta, rmsprop, ftrl}``:
  the current Keras family (``tf.keras.optimizers`` since 2.11, Keras 3).
* ``jaxopt_keras.legacy.{...}``: the legacy family (``tf.keras.optimizers.legacy``).
* Composable transforms: :func:`chain`, :func:`clip_by_value`,
  :func:`clip_by_norm`, :func:`clip_by_global_norm`,
  :func:`aggregate_gradients`.
* Learning-rate schedules: :mod:`jaxopt_keras.schedules`.
* Hyperparameters live in the state: :func:`get_hyperparams`,
  :func:`set_hyperparams`.
"""

from jaxopt_keras import flat, legacy, mixed_precision, optimizers, schedules
from jaxopt_keras.algorithms.adadelta import adadelta
from jaxopt_keras.algorithms.adafactor import adafactor
from jaxopt_keras.algorithms.adagrad import adagrad
from jaxopt_keras.algorithms.adam import adam
from jaxopt_keras.algorithms.adamax import adamax
from jaxopt_keras.algorithms.adamw import adamw
from jaxopt_keras.algorithms.base import OptimizerState
from jaxopt_keras.algorithms.ftrl import ftrl
from jaxopt_keras.algorithms.lion import lion
from jaxopt_keras.algorithms.nadam import nadam
from jaxopt_keras.algorithms.rmsprop import rmsprop
from jaxopt_keras.algorithms.sgd import sgd
from jaxopt_keras.core.transform import (
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    identity,
)
from jaxopt_keras.core.hyperparams import Hyperparams, get_hyperparams, set_hyperparams
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
from jaxopt_keras.core.sparse import IndexedSlices
from jaxopt_keras.variable import Variable

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
    "sgd",
    "adam",
    "adamax",
    "nadam",
    "adagrad",
    "adadelta",
    "rmsprop",
    "ftrl",
    "adamw",
    "lion",
    "adafactor",
    "legacy",
    "schedules",
    "optimizers",
    "mixed_precision",
    "Variable",
    "IndexedSlices",
    "flat",
]
