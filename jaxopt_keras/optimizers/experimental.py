"""``jaxopt_keras.optimizers.experimental``: the current family under the name of
``tf.keras.optimizers.experimental`` (TF 2.9-2.10), where it was introduced."""

from jaxopt_keras.optimizers._classes import CURRENT_CLASSES
from jaxopt_keras.optimizers.base import Optimizer

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

__all__ = ["Optimizer", "SGD", "Adam", "Adamax", "Nadam", "Adagrad", "Adadelta", "RMSprop", "Ftrl", "AdamW", "Lion", "Adafactor"]
