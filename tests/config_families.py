"""Which family ``jaxopt_keras.optimizers.deserialize`` builds a config in:
shared by ``tests/optimizers/test_serialization.py`` (ours) and
``tests/oracle/test_keras_layer_oracle.py`` (TF-Keras's, where it builds one)."""

from __future__ import annotations

from jaxopt_keras import optimizers as O

# TF-Keras's rule (checked against it by tests/oracle/test_keras_layer_oracle.py):
# a non-empty config's own `is_legacy_optimizer` decides, and a config without
# it was written before TF-Keras 2.11, so legacy, whatever `use_legacy_optimizer`
# says; an empty config follows the flag (current by default).
FAMILY_RULES = [
    # (config, use_legacy_optimizer, expected class)
    ({"module": "keras.optimizers.legacy", "class_name": "Adam", "config": {"learning_rate": 0.1}}, None, O.legacy.Adam),
    ({"module": "keras.optimizers", "class_name": "Adam", "config": {"learning_rate": 0.1}}, None, O.legacy.Adam),
    ({"class_name": "Adam", "config": {"learning_rate": 0.1}}, None, O.legacy.Adam),
    ({"class_name": "Adam", "config": {"learning_rate": 0.1, "is_legacy_optimizer": True}}, None, O.legacy.Adam),
    ({"class_name": "Adam", "config": {"learning_rate": 0.1, "is_legacy_optimizer": False}}, None, O.Adam),
    ({"class_name": "Adam", "config": {"learning_rate": 0.1, "is_legacy_optimizer": False}}, True, O.Adam),
    ({"class_name": "Adam", "config": {"learning_rate": 0.1, "decay": 0.0}}, None, O.legacy.Adam),
    ({"class_name": "SGD", "config": {"lr": 0.1}}, None, O.legacy.SGD),
    ({"class_name": "Nadam", "config": {"schedule_decay": 0.004}}, None, O.legacy.Nadam),
    ({"class_name": "Adam", "config": {"learning_rate": 0.1}}, True, O.legacy.Adam),
    ({"class_name": "Adam", "config": {"learning_rate": 0.1}}, False, O.legacy.Adam),
    ({"module": "keras.optimizers.legacy", "class_name": "SGD", "config": {"momentum": 0.5}}, False, O.legacy.SGD),
    ({"class_name": "Custom>Adam", "config": {"is_legacy_optimizer": False}}, None, O.Adam),
    # "Custom>X" is TF-Keras's registered current class, whatever the keys or the flag say.
    ({"class_name": "Custom>Adam", "config": {"learning_rate": 0.1, "beta_1": 0.8}}, None, O.Adam),
    ({"class_name": "Custom>Adam", "config": {}}, True, O.Adam),
    ({"class_name": "Custom>RMSprop", "config": {"learning_rate": 0.1, "is_legacy_optimizer": True}}, None, O.RMSprop),
    # The flag wins over a legacy `module`.
    ({"module": "keras.optimizers.legacy", "class_name": "Adam", "config": {"learning_rate": 0.1, "is_legacy_optimizer": False}}, None, O.Adam),
    ({"class_name": "Adam", "config": {"amsgrad": True}}, None, O.legacy.Adam),
    ({"class_name": "Adam", "config": {}}, None, O.Adam),
    ({"class_name": "Adam", "config": {}}, True, O.legacy.Adam),
    # tf.keras.optimizers.experimental.X is the current class, in both of TF-Keras's tables.
    ({"class_name": "ExperimentalSGD", "config": {"learning_rate": 0.1}}, None, O.SGD),
    ({"class_name": "ExperimentalAdam", "config": {}}, True, O.Adam),
    # Where TF-Keras would refuse the config (TypeError), its keys tell:
    ({"class_name": "Adam", "config": {"learning_rate": 0.1, "jit_compile": True}}, None, O.Adam),
    ({"class_name": "Adam", "config": {"learning_rate": 0.1, "loss_scale_factor": None}}, None, O.keras3.Adam),
]
