"""An optimizer's name when the constructor is given none, and Keras's snake case of class names.

Both Kerases number a snake-case name of the class per process: ``adam``,
``adam_1``, ... (zero-based), each with its own counters: Keras 3 for any
optimizer left unnamed (:data:`KERAS3_COUNTS`), TF-Keras's OptimizerV2
(legacy) for ``name=None`` or ``""`` (:data:`TF_KERAS_COUNTS`).  TF-Keras's
current ``Optimizer`` keeps ``None`` (or ``""``) as given, in ``name`` and
``get_config()``, and scopes its slots under ``optimizer/``.
"""

from __future__ import annotations

import collections
import re
from typing import Any

KERAS3_COUNTS: collections.Counter = collections.Counter()
TF_KERAS_COUNTS: collections.Counter = collections.Counter()


def _split_words(name: str) -> str:
    """``_`` before each capitalised word, lowercased: the step both Kerases' ``to_snake_case`` share."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def snake_case(name: str) -> str:
    """Keras 3's ``to_snake_case`` (also how a file names a layer's group):
    ``AdamW`` -> ``adam_w``, ``RMSprop`` -> ``rm_sprop``, ``BatchNormalization`` -> ``batch_normalization``."""
    return _split_words(re.sub(r"\W+", "", name))


def tf_snake_case(name: str) -> str:
    """TF-Keras's ``to_snake_case``: as :func:`snake_case` but non-word characters kept, and a
    private class's name prefixed: ``_Mine`` -> ``private_mine``."""
    name = _split_words(name)
    return name if name[:1] != "_" else "private" + name


def unique_name(prefix: str, counts: collections.Counter) -> str:
    """``prefix``, then ``prefix_1``, ``prefix_2``...: one counter per prefix in ``counts``."""
    n = counts[prefix]
    counts[prefix] += 1
    return prefix if n == 0 else f"{prefix}_{n}"


def auto_name(class_name: str) -> str:
    """Keras 3's name for an unnamed optimizer of ``class_name``."""
    return unique_name(snake_case(class_name), KERAS3_COUNTS)


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
        return unique_name(tf_snake_case(class_name), TF_KERAS_COUNTS)
    return name
