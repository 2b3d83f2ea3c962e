"""A legacy optimizer's model saved as .keras (TF-Keras writes no optimizer state there)."""

import numpy as np
import tf_keras


def legacy_keras_archive(directory):
    tf_keras.backend.clear_session()
    model = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)])
    model.compile(optimizer=tf_keras.optimizers.legacy.Adam(0.01), loss="mse")
    model.fit(np.ones((8, 4), "float32"), np.ones((8, 2), "float32"), verbose=0)
    path = str(directory / "legacy.keras")
    model.save(path)
    return path
