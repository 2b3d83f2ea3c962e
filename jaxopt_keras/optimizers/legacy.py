"""``jaxopt_keras.optimizers.legacy``: the OptimizerV2 family, as ``tf.keras.optimizers.legacy``."""

from jaxopt_keras.optimizers._classes import LEGACY_CLASSES
from jaxopt_keras.optimizers.base import OptimizerV2 as Optimizer

SGD = LEGACY_CLASSES["SGD"]
Adam = LEGACY_CLASSES["Adam"]
Adamax = LEGACY_CLASSES["Adamax"]
Nadam = LEGACY_CLASSES["Nadam"]
Adagrad = LEGACY_CLASSES["Adagrad"]
Adadelta = LEGACY_CLASSES["Adadelta"]
RMSprop = LEGACY_CLASSES["RMSprop"]
RMSProp = RMSprop
Ftrl = LEGACY_CLASSES["Ftrl"]

__all__ = ["Optimizer", "SGD", "Adam", "Adamax", "Nadam", "Adagrad", "Adadelta", "RMSprop", "Ftrl"]
