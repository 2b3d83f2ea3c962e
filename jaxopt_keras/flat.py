"""The flat layout: all parameters of one dtype in one buffer (opt-in fast path).

See :mod:`jaxopt_keras.core.flat` and ``docs/fast_paths.md``.
"""

from jaxopt_keras.core.flat import PAD_MULTIPLE, FlatTree, Layout, contains_flat, padded_length, ravel

__all__ = ["Layout", "FlatTree", "ravel", "contains_flat", "padded_length", "PAD_MULTIPLE"]
