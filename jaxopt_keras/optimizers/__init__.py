"""Keras-style optimizer classes, mirroring ``tf.keras.optimizers``.

* ``jaxopt_keras.optimizers.{Optimizer, SGD, Adam, Adamax, Nadam, Adagrad,
  Adadelta, RMSprop, Ftrl, AdamW, Lion, Adafactor}``: the current family (``tf.keras.optimizers``
  since 2.11, Keras 3); also under ``jaxopt_keras.optimizers.experimental``.
* ``jaxopt_keras.optimizers.legacy.{...}``: the OptimizerV2 family.
* ``serialize``, ``deserialize``, ``get``; ``schedules``.
"""

from jaxopt_keras.optimizers import experimental, legacy, schedules
from jaxopt_keras.optimizers.experimental import (
    SGD,
    Adadelta,
    Adafactor,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Ftrl,
    Lion,
    Nadam,
    Optimizer,
    RMSprop,
)
from jaxopt_keras.optimizers.serialization import deserialize, get, serialize

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "Adamax",
    "Nadam",
    "Adagrad",
    "Adadelta",
    "RMSprop",
    "Ftrl",
    "AdamW",
    "Lion",
    "Adafactor",
    "serialize",
    "deserialize",
    "get",
    "schedules",
    "legacy",
    "experimental",
]
