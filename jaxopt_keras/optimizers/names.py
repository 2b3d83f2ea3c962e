"""An optimizer's name when the constructor is given none, in the TF-Keras families.

TF-Keras's OptimizerV2 (legacy) numbers a snake-case name of its class per
process: ``adam``, ``adam_1``, ... (``backend.unique_object_name``, zero-based;
an empty name too); TF-Keras's current ``Optimizer`` keeps ``None`` (or ``""``)
as given, in ``name`` and ``get_config()``, and scopes its slots under
``optimizer/``.  Keras 3's numbering is
:func:`jaxopt_keras.optimizers.keras3_family.auto_name`.
"""

from __future__ import annotations

import collections
import re
from typing import Any

_COUNTS: collections.Counter = collections.Counter()


def tf_snake_case(name: str) -> str:
    """TF-Keras's ``to_snake_case``: ``RMSprop`` -> ``rm_sprop``, ``_Mine`` -> ``private_mine``."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return name if name[:1] != "_" else "private" + name


def unique_name(class_name: str) -> str:
    """``adam``, then ``adam_1``, ``adam_2``...: one counter per snake-case name in the process."""
    prefix = tf_snake_case(class_name)
    n = _COUNTS[prefix]
    _COUNTS[prefix] += 1
    return prefix if n == 0 else f"{prefix}_{n}"


def default_name(family: str, class_name: str, name: Any) -> Any:
    """The name a TF-Keras optimizer of ``family`` takes for the constructor's ``name``.

    Args:
      family: ``"legacy"`` or ``"current"``.
      class_name: the optimizer's class name (a subclass's own).
      name: the constructor's argument (a string or ``None``, already checked).

    Returns:
      ``name``; for the legacy family, a numbered snake-case name when it is
      empty or ``None``.
    """
    if family == "legacy" and not name:
        return unique_name(class_name)
    return name
