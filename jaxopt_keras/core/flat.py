"""The flat layout: all parameters of one dtype in one buffer (opt-in fast path).

XLA:CPU compiles one loop per output array, so a step over a tree of
thousands of small parameters takes tens of seconds to compile and pays a
per-array overhead at every call, whatever the optimizer.  Keeping the
parameters, gradients and optimizer state as one flat buffer per dtype makes
the step a handful of loops over long vectors: it compiles in about a second
and runs at memory speed.

The layout is a bijection between a parameter tree and a :class:`FlatTree`
(one 1-D buffer per dtype).  Differentiate through :meth:`Layout.unravel` and
the gradient arrives flat too, so the whole training step stays flat::

    layout = jaxopt_keras.flat.Layout(params)
    flat_params = layout.ravel(params)
    opt = jaxopt_keras.legacy.adam(1e-3)
    state = opt.init(flat_params)

    @partial(jax.jit, donate_argnums=(0, 1))
    def step(flat_params, state, batch):
        grads = jax.grad(lambda fp: loss(layout.unravel(fp), batch))(flat_params)
        updates, state = opt.update(grads, state, flat_params)
        return jaxopt_keras.apply_updates(flat_params, updates), state

Every elementwise optimizer and transform works unchanged on a
:class:`FlatTree` (with identical numerics: each element sees the same
operations).  What needs tensor boundaries refuses it with a clear error:
per-tensor ``clip_by_norm`` (use ``clip_by_global_norm``) and Adafactor's
factored moments.  Row-sparse gradients do not apply.  The layout
concatenates leaves, so it is for parameters that live whole on one device
(or are replicated); sharded parameters keep the tree layout.

A buffer longer than :data:`PAD_MULTIPLE` elements is padded with zeros to a
multiple of it (:func:`padded_length`).  XLA:CPU splits a long loop into
equal tasks for its threads; when the length does not divide by their number,
every element is bounds-checked and the loop runs unvectorized, several times
slower (Adam on 2,821,857 float32 elements: 5.3 ms, against 1.3-1.5 ms on
an even length, 2 threads).  The padding's elements are zero in the
parameters and the gradients, so every optimizer leaves them zero (checked
for each in the tests), and no leaf reads them.
"""

from __future__ import annotations

import functools

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core.paths import leaf_paths
from jaxopt_keras.core.transform import leaves_like


# 5040 = 2**4 * 3**2 * 5 * 7 divides by every thread count up to 10 (and by
# 12, 14, 15, 16, 18, 20, 21, 24, ...): XLA:CPU gives a memory-bound loop at
# most ceil(sqrt(threads)) tasks, so 10 tasks covers machines of up to 100.
PAD_MULTIPLE = 5040


def padded_length(n: int) -> int:
    """The length of a buffer that holds ``n`` elements: ``n`` up to
    :data:`PAD_MULTIPLE`, above it ``n`` rounded up to a multiple of it,
    ``PAD_MULTIPLE * ceil(n / PAD_MULTIPLE)``."""
    if n <= PAD_MULTIPLE:
        return n
    return -(-n // PAD_MULTIPLE) * PAD_MULTIPLE


class _Leaf(NamedTuple):
    shape: tuple[int, ...]
    group: int  # index of the dtype buffer
    offset: int
    size: int


class Layout:
    """Where each leaf of a parameter tree lives in the flat buffers.

    Args:
      params: a parameter tree (only shapes and dtypes are read).

    Attributes:
      dtypes: the buffers' dtypes, one buffer per distinct leaf dtype, in
        order of first appearance.
      sizes: each buffer's length (:func:`padded_length` of ``used``).
      used: the elements of each buffer the leaves occupy; the rest is zeros.
    """

    def __init__(self, params: Any):
        leaves, self.treedef = jax.tree_util.tree_flatten(params)
        dtypes: list[np.dtype] = []
        offsets: list[int] = []
        specs = []
        for leaf in leaves:
            dtype = np.dtype(jnp.asarray(leaf).dtype) if not hasattr(leaf, "dtype") else np.dtype(leaf.dtype)
            shape = tuple(np.shape(leaf))
            if dtype not in dtypes:
                dtypes.append(dtype)
                offsets.append(0)
            g = dtypes.index(dtype)
            size = int(np.prod(shape, dtype=np.int64))
            specs.append(_Leaf(shape, g, offsets[g], size))
            offsets[g] += size
        self.dtypes = tuple(dtypes)
        self.used = tuple(offsets)
        self.sizes = tuple(padded_length(n) for n in offsets)
        self.leaves = tuple(specs)
        self._key = (self.treedef, self.dtypes, self.leaves)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Layout) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        groups = ", ".join(
            f"{d.name}[{used}]" if used == n else f"{d.name}[{used} in {n}]"
            for d, used, n in zip(self.dtypes, self.used, self.sizes)
        )
        return f"Layout({len(self.leaves)} leaves -> {groups})"

    def ravel(self, tree: Any, dtypes: tuple[Any, ...] | None = None) -> "FlatTree":
        """The flat buffers of ``tree`` (one concatenation per dtype, and the
        padding's zeros).

        ``None`` leaves (missing gradients) become zeros.  The whole ravel is
        one jitted program per layout: called eagerly it compiles once, not
        one small program per leaf shape; inside a trace it is inlined.

        Args:
          tree: a tree of the layout's structure and leaf shapes.
          dtypes: the buffers' dtypes, one per buffer of the layout; default
            the layout's own.  A tree that keeps another dtype than its
            parameters (optimizer slots in ``slot_dtype``) is raveled into
            buffers of its own dtype, on the parameters' layout.
        """
        dtypes = self.dtypes if dtypes is None else tuple(np.dtype(d) for d in dtypes)
        if len(dtypes) != len(self.dtypes):
            raise ValueError(f"{len(dtypes)} dtypes given for a layout of {len(self.dtypes)} buffers.")
        leaves = leaves_like(
            self.treedef, tree, lambda why: f"The tree to ravel is not of the flat layout's structure ({why}); {self!r} "
            f"was built for {self.treedef}."
        )
        for i, (leaf, spec) in enumerate(zip(leaves, self.leaves)):
            if leaf is not None and tuple(np.shape(leaf)) != spec.shape:
                path = leaf_paths(self.treedef.unflatten(range(len(self.leaves))))[i]
                raise ValueError(
                    f"The tree's leaf at {path!r} has shape {tuple(np.shape(leaf))}, and the flat layout {self!r} holds "
                    f"shape {spec.shape} there: build a Layout of this tree (jk.flat.Layout(tree))."
                )
        return FlatTree(_ravel(self, dtypes, leaves), self)

    def saved_buffer(self, index: int, value: Any) -> Any:
        """Buffer ``index`` of this layout from a saved one (a checkpoint's array).

        A buffer saved before long buffers were padded (``used`` elements) gets
        the padding's zeros appended; one of the buffer's length is returned as
        it is.

        Raises:
          ValueError: any other length, naming the buffer and both shapes.
        """
        size, used = self.sizes[index], self.used[index]
        shape = tuple(np.shape(value))
        if shape == (size,):
            return value
        if shape == (used,):
            value = np.asarray(value)
            return np.concatenate([value, np.zeros(size - used, value.dtype)])
        raise ValueError(
            f"Buffer {index} of the flat layout {self!r} needs shape ({size},) "
            f"(or ({used},) without the padding); the saved state holds shape {shape}."
        )

    def unravel(self, flat: "FlatTree") -> Any:
        """The parameter tree a :class:`FlatTree` holds (slices of its buffers).

        One jitted program per layout slices every leaf.
        """
        if not isinstance(flat, FlatTree):
            raise TypeError(f"unravel expects a FlatTree, received {type(flat).__name__}")
        shapes = tuple(tuple(np.shape(b)) for b in flat.buffers)
        if shapes != tuple((n,) for n in self.sizes):
            raise ValueError(
                f"The flat layout {self!r} holds buffers of shapes {tuple((n,) for n in self.sizes)}; this FlatTree's are "
                f"{shapes} (its own layout: {flat.layout!r}). Unravel it with the layout it was raveled with "
                "(flat.unravel())."
            )
        return self.treedef.unflatten(_unravel(self, flat.buffers))


# One program per layout and buffer dtypes (both hashable: static arguments).
@functools.partial(jax.jit, static_argnums=(0, 1))
def _ravel(layout: Layout, dtypes: tuple[np.dtype, ...], leaves: list) -> tuple[jax.Array, ...]:
    parts: list[list[jax.Array]] = [[] for _ in layout.dtypes]
    for leaf, spec in zip(leaves, layout.leaves):
        if leaf is None:
            leaf = jnp.zeros(spec.shape, dtypes[spec.group])
        parts[spec.group].append(jnp.ravel(jnp.asarray(leaf).astype(dtypes[spec.group])))
    for group, (used, size) in enumerate(zip(layout.used, layout.sizes)):
        if size > used:
            # XLA:CPU builds these zeros (under PAD_MULTIPLE elements) in a
            # small buffer of their own before concatenating.
            parts[group].append(jnp.zeros(size - used, dtypes[group]))
    return tuple(p[0] if len(p) == 1 else jnp.concatenate(p) for p in parts)


@functools.partial(jax.jit, static_argnums=0)
def _unravel(layout: Layout, buffers: tuple[jax.Array, ...]) -> list[jax.Array]:
    return [
        jax.lax.slice_in_dim(buffers[spec.group], spec.offset, spec.offset + spec.size).reshape(spec.shape)
        for spec in layout.leaves
    ]


@jax.tree_util.register_pytree_with_keys_class
class FlatTree:
    """One 1-D buffer per dtype, with the :class:`Layout` that maps it to a tree.

    A pytree whose leaves are the buffers (the layout is static), so
    optimizers, ``jax.grad``, ``jit`` and donation treat it like any tree.
    """

    __slots__ = ("buffers", "layout")

    def __init__(self, buffers: tuple, layout: Layout):
        self.buffers = tuple(buffers)
        self.layout = layout

    def tree_flatten_with_keys(self):
        return [(jax.tree_util.SequenceKey(i), b) for i, b in enumerate(self.buffers)], self.layout

    @classmethod
    def tree_unflatten(cls, layout, children):
        obj = object.__new__(cls)
        obj.buffers = tuple(children)
        obj.layout = layout
        return obj

    def unravel(self) -> Any:
        return self.layout.unravel(self)

    def __contains__(self, key: Any) -> bool:
        """False: a FlatTree holds buffers, not named entries.  flax's
        ``TrainState.create`` and ``apply_gradients`` ask
        ``"overwrite_with_gradient" in params`` (and ``in grads``) of any tree."""
        return False

    def __repr__(self) -> str:
        return f"FlatTree({self.layout!r})"


def contains_flat(tree: Any) -> bool:
    """True when ``tree`` holds a :class:`FlatTree` anywhere."""
    return any(isinstance(x, FlatTree) for x in jax.tree_util.tree_leaves(tree, is_leaf=lambda x: isinstance(x, FlatTree)))


def ravel(params: Any) -> tuple[FlatTree, Layout]:
    """``(layout.ravel(params), layout)`` for a new :class:`Layout` of ``params``."""
    layout = Layout(params)
    return layout.ravel(params), layout


__all__ = ["Layout", "FlatTree", "ravel", "contains_flat", "padded_length", "PAD_MULTIPLE"]
