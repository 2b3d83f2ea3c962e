"""Keras-style namespace mirroring ``tf.keras.optimizers``."""

from jaxopt_keras.optimizers import schedules

__all__ = ["schedules"]
