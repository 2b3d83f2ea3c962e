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
were measured).  Every element sees the same operations as in
the per-variable step, so the numbers are the same bits, but for a scalar
variable, whose update XLA fuses per variable with the step's scalar
coefficients and packed runs in the buffer's vector loop (Keras 3's Nadam:
1 ulp at step 89 of 300; ``docs/fast_paths.md``).

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


def _is_flat(x: Any) -> bool:
    return isinstance(x, FlatTree)


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


def pack_state(state: Any, layout: Layout, init: Any) -> Any | None:
    """``state`` with each per-variable list packed on ``layout``, or ``None``
    when the state does not have the shape packing needs.

    Args:
      state: the state over the variables' list of values.
      layout: the layout of the variables' values.
      init: the transformation's ``init``.  The state it would build on the
        packed values (traced: only its structure, shapes and dtypes) is what
        the packed state must look like.
    """
    params = FlatTree(tuple(jax.ShapeDtypeStruct((n,), d) for n, d in zip(layout.sizes, layout.dtypes)), layout)
    template = jax.eval_shape(init, params)
    want, want_def = jax.tree_util.tree_flatten(template, is_leaf=_is_flat)
    have, have_def = jax.tree_util.tree_flatten(state, is_leaf=_is_list)
    if want_def != have_def:
        return None
    shapes = [leaf.shape for leaf in layout.leaves]
    packed = []
    for w, h in zip(want, have):
        if isinstance(w, FlatTree) != isinstance(h, list):
            return None
        if isinstance(w, FlatTree):
            dtypes = tuple(np.dtype(b.dtype) for b in w.buffers)
            if len(h) != len(shapes) or not all(
                isinstance(x, jax.Array) and x.shape == s and x.dtype == dtypes[leaf.group]
                for x, s, leaf in zip(h, shapes, layout.leaves)
            ):
                return None
            packed.append(layout.ravel(h, dtypes))
        else:
            if np.shape(h) != w.shape or getattr(h, "dtype", None) != w.dtype:
                return None
            packed.append(h)
    return have_def.unflatten(packed)


def unpack_state(state: Any) -> Any:
    """The per-variable state of a packed one: each packed buffer sliced back into its list."""
    return jax.tree_util.tree_map(lambda x: x.unravel() if isinstance(x, FlatTree) else x, state, is_leaf=_is_flat)


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
        layout = Layout(values)
        updates, state = self._transformation.update(layout.ravel(grads), state, layout.ravel(values))
        return base.apply_updates(values, updates.unravel()), state

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
            packed = pack_state(self._state, Layout(values), self._transformation.init)
        if packed is None:
            self._pack_refused = True  # until the variables or the transformation change
            return False
        self._held, self._packed = packed, True
        return True


__all__ = ["PACK_MIN_VARIABLES", "PACK_MAX_MEAN_SIZE", "packable_values", "pack_state", "unpack_state", "PackedStepMixin"]
