"""The schedule base class, and what counts as a learning-rate schedule."""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np


class LearningRateSchedule:
    """Base class: a serializable function of the step count.

    Subclasses implement ``__call__(step)`` and ``get_config()``; the config
    holds exactly the constructor's arguments, so
    ``cls.from_config(s.get_config())`` rebuilds ``s``.
    """

    def __call__(self, step: Any) -> jax.Array:  # pragma: no cover - abstract
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`."
        )

    def get_config(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` "
            "in order to be serializable."
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "LearningRateSchedule":
        """Rebuilds a schedule from :meth:`get_config` output."""
        return cls(**config)

    def __eq__(self, other: Any) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def is_schedule(lr: Any) -> bool:
    """True for schedules and callables of the step (anything but a number)."""
    return isinstance(lr, LearningRateSchedule) or (callable(lr) and not isinstance(lr, (jax.Array, np.ndarray)))
