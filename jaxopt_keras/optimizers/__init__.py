"""Keras-style optimizer classes, mirroring ``tf.keras.optimizers``.

* ``jaxopt_keras.optimizers.{Optimizer, SGD, Adam, Adamax, Nadam, Adagrad,
  Adadelta, RMSprop, Ftrl}``: the current family (``tf.keras.optimizers``
  since 2.11, Keras 3); also under ``jaxopt_keras.optimizers.experimental``.
* ``jaxopt_keras.optimizers.legacy.{...}``: the OptimizerV2 family.
* ``serialize``, ``deserialize``, ``get``; ``schedules``.
"""

from jaxopt_keras.optimizers import experimental, legacy, schedules
from jaxopt_keras.optimizers._classes import CURRENT_CLASSES
from jaxopt_keras.optimizers.base import Optimizer
from jaxopt_keras.optimizers.serialization import deserialize, get, serialize

SGD = CURRENT_CLASSES["SGD"]
Adam = CURRENT_CLASSES["Adam"]
Adamax = CURRENT_CLASSES["Adamax"]
Nadam = CURRENT_CLASSES["Nadam"]
Adagrad = CURRENT_CLASSES["Adagrad"]
Adadelta = CURRENT_CLASSES["Adadelta"]
RMSprop = CURRENT_CLASSES["RMSprop"]
Ftrl = CURRENT_CLASSES["Ftrl"]
AdamW = CURRENT_CLASSES["AdamW"]
Lion = CURRENT_CLASSES["Lion"]
Adafactor = CURRENT_CLASSES["Adafactor"]

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
