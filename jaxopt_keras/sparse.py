"""Row-sparse gradients: :class:`IndexedSlices` (see :mod:`jaxopt_keras.core.sparse`)."""

from jaxopt_keras.core.sparse import IndexedSlices, deduplicate, gather, is_sparse, scatter_add, scatter_set

__all__ = ["IndexedSlices", "deduplicate", "gather", "scatter_add", "scatter_set", "is_sparse"]
