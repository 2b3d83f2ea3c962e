"""Shared hypothesis settings of every property test (``tests/fuzz/`` and the
config round trips of ``tests/optimizers`` and ``tests/schedules``).

Derandomised by default, so a run (CI's included) always tries the same
examples and takes the same time; ``JAXOPT_KERAS_FUZZ_EXAMPLES=<n>`` raises
the example count and lets hypothesis explore at random.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_EXAMPLES = os.environ.get("JAXOPT_KERAS_FUZZ_EXAMPLES")


def fuzz_settings(default_examples: int) -> settings:
    """``settings`` for one property test: ``default_examples`` derandomised, or
    the environment's count, random."""
    return settings(
        max_examples=int(_EXAMPLES) if _EXAMPLES else default_examples,
        derandomize=not _EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
