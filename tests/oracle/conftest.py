"""The oracle tests need TF-Keras; a missing install is an error, not a skip."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402,F401
import tf_keras  # noqa: E402,F401

tf.config.set_visible_devices([], "GPU")
