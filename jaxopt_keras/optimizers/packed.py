"""The Keras layer's packed step: many small variables updated as one buffer per dtype.

XLA:CPU runs one loop per array a program writes, and each loop has a fixed
cost.  Over a model of a thousand small variables the layer's step writes a
few thousand arrays (each variable and each of its slots), and that fixed
cost, not memory traffic, is most of the step.

So when an optimizer holds many small variables, the layer keeps its slots
*packed* between steps, in the flat layout of :mod:`jaxopt_keras.core.flat`
(one buffer per slot and dtype).  A packed step ravels the gradients (and
the values) into that layout inside the step, updates the buffers (a few
long loops), and adds each variable's slice of the packed update to it,
donating the variables' buffers as the per-variable step does.  The step
holds the raveled gradients as a parameter-size temporary (XLA:CPU does not
fuse a concatenation of many arrays into the loops that read it), whose
buffer XLA reuses for the packed update; some formulas hold one or three
more (``docs/fast_paths.md`` lists them, and the ways around the first that
were measured).  Every element sees the same operations as in the
per-variable step.  Variables of shape ``()`` stay out of the buffers
(:class:`Packing`): each keeps its slots as arrays of their own, stepped in
the same program.  Per variable, XLA fuses a scalar's update with the step's
scalar coefficients and rounds it as Keras 3's program does; as one element
of a buffer's vector loop it rounded otherwise (Keras 3's Nadam drifted 1
ulp at step 89 of 300 when scalars were packed too).

The numbers are the same bits but for one effect of the machine: whether
LLVM contracts a multiply-add into one rounding can depend on where an
element falls in a vector loop, and packed, a variable's elements fall
elsewhere than in its own loop.  Seen on this project's machine (FMA, AVX2):
RMSprop (three families) and legacy Nadam, on 2-6 of a 4x5 kernel's elements
within 300 steps, an ulp or two, and their slots with them; Adadelta's slots
(legacy, Keras 3), its parameters exact; bit for bit with FMA off
(``tests/optimizers/test_packed.py``; ``docs/fast_paths.md``).

The per-variable form stays the optimizer's public face.  Reading the state,
the weights, a slot or the EMA, or registering new variables, unpacks it
(:func:`unpack_state`), and a later step packs it again.  What packing needs:

* the optimizer's math treats every element alike (``Spec.elementwise``);
  no per-tensor or global norm clipping (a global norm summed in another
  order is not the same bits); no weight decay exclusions, no routing, no
  legacy gradient aggregator;
* at least :data:`PACK_MIN_VARIABLES` variables of at most
  :data:`PACK_MAX_MEAN_SIZE` elements on average, all floating point, all on
  one device;
* at each step: a dense gradient for every variable, of the variable's
  dtype; no variable with a constraint or ``overwrite_with_gradient``;
* a state whose per-variable entries are lists of arrays shaped like the
  variables (checked against the state the transformation builds on the
  packed parameters).

Otherwise the step runs per variable, as it always can.

:class:`PackedStepMixin`, a base of
:class:`~jaxopt_keras.optimizers.optimizer.KerasOptimizer`, is the layer's
side: whether a step runs packed (packing the state on the first such
step), the packed step itself, and the ``_state`` property that unpacks the
state whenever it is read.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_keras.core import transform as base
from jaxopt_keras.core.flat import FlatTree, Layout

# Below this many variables the per-array cost is small beside the step.
PACK_MIN_VARIABLES = 64
# Above this mean size (elements) a variable's loop is long enough that its
# fixed cost no longer matters, and packing would only add the gradients'
# ravel and the parameters' slicing to every step.
PACK_MAX_MEAN_SIZE = 2**14


def _is_list(x: Any) -> bool:
    return isinstance(x, list)


def packable_values(values: Sequence[jax.Array]) -> bool:
    """Whether ``values`` are many, small, floating point and on one device."""
    n = len(values)
    if n < PACK_MIN_VARIABLES or sum(int(x.size) for x in values) > PACK_MAX_MEAN_SIZE * n:
        return False
    if not all(isinstance(x, jax.Array) for x in values):
        return False
    if not all(jnp.issubdtype(x.dtype, jnp.floating) for x in values):
        return False
    devices: set = set()
    for x in values:
        devices |= set(x.sharding.device_set)
    return len(devices) == 1


@jax.tree_util.register_pytree_with_keys_class
class PackedList:
    """A per-variable list, packed: the entries of the variables of shape ``()``
    as they are, the others raveled into one :class:`~jaxopt_keras.core.flat.FlatTree`.

    A pytree whose leaves are the buffers and the scalars (which entries are
    scalars is static), so the transformation steps it like any tree.

    Attributes:
      flat: the non-scalar entries, in the layout of the non-scalar variables.
      scalars: the scalar entries, in the variables' order.
      where: the index of each scalar entry in the list.
    """

    __slots__ = ("flat", "scalars", "where")

    def __init__(self, flat: FlatTree, scalars: list, where: tuple[int, ...]):
        self.flat, self.scalars, self.where = flat, list(scalars), tuple(where)

    def tree_flatten_with_keys(self):
        children = [(jax.tree_util.GetAttrKey("flat"), self.flat), (jax.tree_util.GetAttrKey("scalars"), self.scalars)]
        return children, self.where

    @classmethod
    def tree_unflatten(cls, where, children):
        obj = object.__new__(cls)
        obj.flat, obj.scalars, obj.where = children[0], children[1], where
        return obj

    def unpack(self) -> list:
        """The per-variable list: the flat entries sliced back, the scalars in their places."""
        rest = iter(self.flat.unravel())
        scalars = dict(zip(self.where, self.scalars))
        return [scalars[i] if i in scalars else next(rest) for i in range(len(self.scalars) + len(self.flat.layout.leaves))]

    def __repr__(self) -> str:
        return f"PackedList({self.flat!r}, {len(self.scalars)} scalars)"


class Packing:
    """How a list of variables packs: which are scalars (kept as they are), and
    the :class:`~jaxopt_keras.core.flat.Layout` of the others.

    Args:
      values: the variables' values (only shapes and dtypes are read).
    """

    def __init__(self, values: Sequence[Any]):
        self.where = tuple(i for i, x in enumerate(values) if np.ndim(x) == 0)
        scalar = set(self.where)
        self.layout = Layout([x for i, x in enumerate(values) if i not in scalar])

    def pack(self, xs: Sequence[Any], dtypes: tuple[Any, ...] | None = None) -> PackedList:
        """``xs`` (one entry per variable) packed: the non-scalars raveled into
        buffers of ``dtypes`` (default the layout's), the scalars as they are."""
        scalar = set(self.where)
        flat = self.layout.ravel([x for i, x in enumerate(xs) if i not in scalar], dtypes)
        return PackedList(flat, [xs[i] for i in self.where], self.where)

    def template(self, dtypes: Sequence[Any]) -> PackedList:
        """The packed shapes and dtypes of the variables of ``dtypes`` (one per variable)."""
        layout = self.layout
        flat = FlatTree(tuple(jax.ShapeDtypeStruct((n,), d) for n, d in zip(layout.sizes, layout.dtypes)), layout)
        return PackedList(flat, [jax.ShapeDtypeStruct((), dtypes[i]) for i in self.where], self.where)


def _is_packed(x: Any) -> bool:
    return isinstance(x, PackedList)


def pack_state(state: Any, values: Sequence[jax.Array], init: Any) -> Any | None:
    """``state`` with each per-variable list packed as ``values`` pack
    (:class:`Packing`), or ``None`` when the state does not have the shape
    packing needs.

    Args:
      state: the state over the variables' list of values.
      values: the variables' values.
      init: the transformation's ``init``.  The state it would build on the
        packed values (traced: only its structure, shapes and dtypes) is what
        the packed state must look like.
    """
    packing = Packing(values)
    template = jax.eval_shape(init, packing.template([x.dtype for x in values]))
    want, want_def = jax.tree_util.tree_flatten(template, is_leaf=_is_packed)
    have, have_def = jax.tree_util.tree_flatten(state, is_leaf=_is_list)
    if want_def != have_def:
        return None
    packed = []
    for w, h in zip(want, have):
        if isinstance(w, PackedList) != isinstance(h, list):
            return None
        if isinstance(w, PackedList):
            if len(h) != len(values) or not all(isinstance(x, jax.Array) for x in h):
                return None
            groups = tuple(np.dtype(b.dtype) for b in w.flat.buffers)
            flat = iter(packing.layout.leaves)
            scalars = iter(w.scalars)
            for x, v in zip(h, values):
                want_shape, want_dtype = ((), next(scalars).dtype) if np.ndim(v) == 0 else ((leaf := next(flat)).shape, groups[leaf.group])
                if x.shape != want_shape or x.dtype != want_dtype:
                    return None
            packed.append(packing.pack(h, groups))
        else:
            if np.shape(h) != w.shape or getattr(h, "dtype", None) != w.dtype:
                return None
            packed.append(h)
    return have_def.unflatten(packed)


def unpack_state(state: Any) -> Any:
    """The per-variable state of a packed one: each packed list back into its list."""
    return jax.tree_util.tree_map(lambda x: x.unpack() if isinstance(x, PackedList) else x, state, is_leaf=_is_packed)


class PackedStepMixin:
    """The packed step, and the state held packed between its steps.

    A mixin of :class:`~jaxopt_keras.optimizers.optimizer.KerasOptimizer`,
    which provides ``_transformation``, ``_spec``, ``_args``, ``_has_pre``,
    ``_weight_decay_exclude``, the variables, ``_held`` (the state as held,
    packed or not), ``_packed`` and ``_pack_refused``."""

    def _packed_pure_step(self, values: list, state: Any, grads: list) -> tuple[list, Any]:
        """:meth:`~jaxopt_keras.optimizers.optimizer.KerasOptimizer._pure_step`
        with the state packed: the values and gradients are raveled into the
        state's layout inside the step, and each variable's slice of the
        update is added to its value.  Its parameter-size temporary is the
        raveled gradients (XLA:CPU does not fuse a concatenation of many arrays
        into its readers), whose buffer XLA reuses for the packed update;
        adding the update to the packed values and slicing the result would
        hold a second.  Some formulas hold more (this module's docstring;
        ``docs/fast_paths.md``)."""
        packing = Packing(values)
        updates, state = self._transformation.update(packing.pack(grads), state, packing.pack(values))
        return base.apply_updates(values, updates.unpack()), state

    def _packs_math(self) -> bool:
        """Whether this optimizer's step is the same bits packed (see this module's docstring)."""
        args = self._args
        return (
            not self._has_pre
            and self._spec.elementwise
            and self._spec.route is None
            and args.get("clipnorm") is None
            and args.get("global_clipnorm") is None
            and self._weight_decay_exclude is None
        )

    # The state: held packed between packed steps, per variable everywhere else.
    @property
    def _state(self) -> Any:
        if self._packed:
            self._unpack()
        return self._held

    @_state.setter
    def _state(self, value: Any) -> None:
        self._packed = False
        self._held = value

    def _unpack(self) -> None:
        """Back to the per-variable state."""
        self._held = unpack_state(self._held)
        self._packed = False

    def _packs_now(self, values: list, dense: bool) -> bool:
        """Whether this step runs packed (see this module's docstring), packing
        the state on the first such step.

        A refusal that follows from the variables or the transformation holds
        until either changes; a step inside a caller's trace, or one with
        sparse gradients, steps per variable and leaves the decision open.

        Args:
          values: the variables' values.
          dense: whether every variable has a dense gradient of its own dtype
            this step (:meth:`~jaxopt_keras.optimizers.optimizer.KerasOptimizer._gradients`).
        """
        if self._pack_refused or not dense:
            return False
        if any(v.constraint is not None or v.overwrite_with_gradient for v in self._variables):
            return False
        if self._packed:
            return True
        if any(isinstance(x, jax.core.Tracer) for x in values):
            return False  # inside a caller's trace: decided on concrete values
        packed = None
        if self._packs_math() and packable_values(values):
            packed = pack_state(self._state, values, self._transformation.init)
        if packed is None:
            self._pack_refused = True  # until the variables or the transformation change
            return False
        self._held, self._packed = packed, True
        return True


__all__ = [
    "PACK_MIN_VARIABLES",
    "PACK_MAX_MEAN_SIZE",
    "packable_values",
    "Packing",
    "PackedList",
    "pack_state",
    "unpack_state",
    "PackedStepMixin",
]
