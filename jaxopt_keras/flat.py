"""The flat layout: all parameters of one dtype in one buffer (opt-in fast path).

See :mod:`jaxopt_keras.core.flat` and ``docs/fast_paths.md``.
"""

from jaxopt_keras.core.flat import FlatTree, Layout, contains_flat, ravel

__all__ = ["Layout", "FlatTree", "ravel", "contains_flat"]
