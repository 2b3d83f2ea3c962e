"""The io tests write their Keras files with TF-Keras, in the test (Keras 3 in a subprocess)."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402,F401

tf.config.set_visible_devices([], "GPU")
