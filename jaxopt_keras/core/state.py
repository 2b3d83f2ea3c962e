"""Helpers for optimizer states: step counters, slot buffers, and sub-states found by type.

A state is a pytree of NamedTuples (ours, optax's, or a user's), nested by
``chain`` and by wrapping transforms.  The Keras layer and the functional
helpers reach into it with :func:`find_state` / :func:`replace_state`, and
move every step counter together with :func:`map_clocks`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.shard_alike import shard_alike

from jaxopt_keras.core.transform import leaves_like

# --------------------------------------------------------------------------
# Step counters.
# --------------------------------------------------------------------------


def count_dtype() -> np.dtype:
    """int64 with x64, else int32 (JAX has no int64 without x64)."""
    return np.dtype(jax.dtypes.canonicalize_dtype(jnp.int64))


def safe_add(count: jax.Array, k: int) -> jax.Array:
    """``count + k`` that saturates at the dtype's maximum instead of wrapping."""
    top = jnp.iinfo(count.dtype).max
    return jnp.where(count <= top - k, count + k, top).astype(count.dtype)


def reachable(count: jax.Array, n: int) -> bool:
    """Whether the counter ``count`` can reach ``n`` within its dtype's range.

    A period or threshold beyond it (``ema_overwrite_frequency`` or
    ``dynamic_growth_steps`` of ``2**31`` with an int32 counter; TF-Keras
    counts in int64) is never reached, and as a constant in the step it
    would not fit the counter's dtype (an ``OverflowError`` at every step).
    """
    return n <= int(jnp.iinfo(count.dtype).max)


def local_step(count: jax.Array, k: int, dtype: Any) -> jax.Array:
    """Keras's ``tf.cast(self.iterations + k, dtype)``."""
    return safe_add(count, k).astype(dtype)


def checked_count(value: Any, dtype: Any, what: str = "iterations", widens: bool = True) -> Any:
    """``value`` as a step count of ``dtype``, refusing what the counter cannot hold.

    Without x64 the counter is int32 (:func:`count_dtype`): a count beyond
    ``2**31 - 1`` would wrap (``2**31`` to ``-2**31``, ``2**32 + 7`` to 7) and
    the following steps would compute with a wrong ``t``.  Stepping saturates
    at the maximum (:func:`safe_add`); a count given from outside is refused.
    A traced value (under ``jit``) is cast as it is: data cannot raise.
    ``widens``: whether x64 would make the counter int64 (the message says so).

    Raises:
      ValueError: ``value`` is not a scalar, not a non-negative whole number, or outside
        ``dtype``'s range (the message names ``what`` and how to count further).
    """
    dtype = np.dtype(dtype)
    if isinstance(value, jax.core.Tracer):
        return value.astype(dtype)
    v = np.asarray(value)
    if v.shape != ():
        raise ValueError(f"`{what}` must be a scalar; received shape {v.shape}.")
    if v.dtype.kind not in "iub" and not (v.dtype.kind == "f" and np.isfinite(v) and v == np.floor(v)):
        raise ValueError(f"`{what}` must be a non-negative whole number; received {v.item()!r}.")
    info = np.iinfo(dtype)
    count = int(v)
    if count < 0:
        # Keras takes it, and Adam's first step then divides by 1 - beta**0 = 0.
        raise ValueError(f"`{what}` must be a non-negative whole number; received {count}.")
    if not info.min <= count <= info.max:
        hint = " (enable x64, `jax.config.update('jax_enable_x64', True)`, to count to 2**63 - 1)" if info.bits < 64 and widens else ""
        raise ValueError(
            f"`{what}` = {count} is outside the range of the optimizer's step counter ({dtype.name}: "
            f"{info.min} to {info.max}){hint}."
        )
    return np.asarray(count, dtype)


def nan_count(value: Any) -> int:
    """How many elements of a concrete value are NaN (0 for integers, booleans and traced values).

    A NaN in an optimizer's slot makes every later step of its parameter NaN;
    ``set_weights`` and the file loaders refuse it (Keras takes it).
    """
    if isinstance(value, jax.core.Tracer):
        return 0
    v = np.asarray(value)
    if v.dtype.kind in "biuOSU":
        return 0
    return int(np.count_nonzero(np.isnan(v.astype(np.float64) if v.dtype.kind == "V" or v.dtype.itemsize < 4 else v)))


def is_clock(x: Any) -> bool:
    """A NamedTuple state with an ``iterations`` field (a step counter)."""
    return isinstance(x, tuple) and "iterations" in getattr(x, "_fields", ())


def map_clocks(state: Any, fn: Callable[[Any], jax.Array]) -> Any:
    """``state`` with every clock's ``iterations`` replaced by ``fn(clock)``.

    Clocks nested in a clock (the optimizer's inside gradient accumulation's)
    are reached too.  ``fn`` receives the whole NamedTuple, so it can tell
    clocks apart by type.
    """

    def visit(x):
        if not is_clock(x):
            return x
        inner = x._replace(**{f: map_clocks(getattr(x, f), fn) for f in x._fields if f != "iterations"})
        return inner._replace(iterations=fn(x))

    return jax.tree_util.tree_map(visit, state, is_leaf=is_clock)


# --------------------------------------------------------------------------
# Sub-states by type.
# --------------------------------------------------------------------------


def _of(cls: type) -> Callable[[Any], bool]:
    return lambda x: isinstance(x, cls)


def find_state(state: Any, cls: type, required: bool = True) -> Any:
    """The first ``cls`` NamedTuple inside ``state`` (depth first).

    Raises:
      ValueError: none is found and ``required``.
    """
    for leaf in jax.tree_util.tree_leaves(state, is_leaf=_of(cls)):
        if isinstance(leaf, cls):
            return leaf
    if required:
        raise ValueError(f"The state holds no {cls.__name__}.")
    return None


def replace_state(state: Any, cls: type, fn: Callable[[Any], Any]) -> Any:
    """``state`` with its first ``cls`` NamedTuple replaced by ``fn(it)``."""
    done = [False]

    def visit(x):
        if isinstance(x, cls) and not done[0]:
            done[0] = True
            return fn(x)
        return x

    return jax.tree_util.tree_map(visit, state, is_leaf=_of(cls))


# --------------------------------------------------------------------------
# Slot buffers.
# --------------------------------------------------------------------------


def slot_dtype(param: Any, args: Mapping[str, Any]) -> np.dtype:
    """The dtype a slot of ``param`` is made in: ``args["slot_dtype"]`` when
    given, else the parameter's."""
    if args.get("slot_dtype") is not None:
        return np.dtype(args["slot_dtype"])
    return np.dtype(jnp.asarray(param).dtype)


def filled(param: Any, value: Any, dtype: Any = None, shape: tuple[int, ...] | None = None) -> jax.Array:
    """An array holding ``value``, shaped like ``param`` (or ``shape``), in
    ``dtype`` (default ``param``'s).

    Outside a trace it is built on the host and transferred with
    ``jax.device_put`` (no XLA program: ``jnp.asarray`` or ``jnp.full`` would
    compile a small one per distinct shape, which for a tree of thousands of
    parameters takes a minute), straight onto a committed parameter's
    sharding when it has the parameter's shape (see :func:`placed_like`).
    """
    dtype = np.dtype(jnp.asarray(param).dtype if dtype is None else dtype)
    shape = np.shape(param) if shape is None else tuple(shape)
    if isinstance(param, jax.core.Tracer):
        return jnp.full(shape, np.asarray(value, dtype), dtype)
    fill = np.asarray(value, dtype)
    if any(fill.tobytes()):  # a bit set (-0.0 included)
        host = np.full(shape, fill, dtype)
    else:  # zero pages the kernel maps unwritten: the transfer is the one pass over them
        host = np.zeros(shape, dtype)
    if isinstance(param, jax.Array) and param.committed and shape == np.shape(param):
        return jax.device_put(host, param.sharding)
    return jax.device_put(host)


def placed_like(slot: jax.Array, param: Any) -> jax.Array:
    """``slot`` (shaped like ``param``) sharded like ``param``.

    Slot initializers build constants, which carry no placement of their own:
    eagerly ``jnp.full`` lands on the default device, and under ``jit`` a
    state that reads nothing from the parameters is computed whole on one
    device.  Eagerly the slot takes a committed parameter's sharding; under a
    trace, XLA is asked to shard the two alike (``shard_alike``), so
    ``jax.jit(opt.init)`` on sharded parameters returns sharded slots; with a
    single device there is nothing to shard, and the request (two sharding
    ops per slot, which lengthen the trace and lowering of a large tree) is
    left out.
    """
    if np.shape(slot) != np.shape(param):  # factored statistics (Adafactor's r, c)
        return slot
    if isinstance(param, jax.core.Tracer):
        return slot if jax.device_count() == 1 else shard_alike(param, slot)[1]
    if isinstance(param, jax.Array) and param.committed:
        return jax.device_put(slot, param.sharding)
    return slot


def expect_state(owner: str, state: Any, cls: type, slots_type: type | None = None) -> None:
    """Raises unless ``state`` is the ``cls`` (holding ``slots_type`` slots) that
    ``owner``'s ``init`` returns.

    Another optimizer's state, or one built with other arguments (``use_ema``,
    ``gradient_accumulation_steps`` add states of their own), has another
    structure; reading it would fail inside the step with an
    ``AttributeError`` or a tree-structure error that names neither.

    Then its scalars (:func:`state_scalars`) must be scalars
    (:func:`check_scalars`).

    Raises:
      ValueError: naming both types, and ``io.state_from_tree`` for the dicts
        and lists a checkpoint restored without a target holds; or naming a
        scalar of the state that is not one.
    """
    if isinstance(state, cls) and (slots_type is None or isinstance(state.slots, slots_type)):
        check_scalars(owner, state_scalars(state))
        return
    want = cls.__name__ if slots_type is None else f"{cls.__name__} of {slots_type.__name__}"
    got = type(state).__name__
    if isinstance(state, cls):
        got = f"{got} of {type(state.slots).__name__}"
    hint = (
        " (a checkpoint restored without a target holds dicts and lists: jaxopt_keras.io.state_from_tree "
        "puts them back into the state's structure)"
        if isinstance(state, (dict, list))
        else ""
    )
    raise ValueError(
        f"The state given to {owner}'s update ({got}) is not the {want} its init returns{hint}. Initialize the "
        "state with the same optimizer and arguments: another optimizer's, or one built with other arguments "
        "(use_ema, gradient_accumulation_steps), has another structure."
    )


def slot_tree_leaves(owner: str, slot: str, treedef: Any, tree: Any) -> list:
    """The leaves of ``tree``, a slot shaped like the parameters of ``treedef``.

    Raises:
      ValueError: ``tree`` has another structure (a state initialized for
        other parameters), naming ``owner``, ``slot`` and the difference.
    """
    return leaves_like(
        treedef,
        tree,
        lambda why: f"The state of {owner} does not fit the parameters: its {slot!r} is not a tree of the parameters' "
        f"structure ({why}). Initialize the state for these parameters.",
    )


def check_slot_shapes(
    owner: str, slot: str, slots: list, shapes: list, paths: Callable[[], list], expected: Callable[[tuple], tuple] | None = None
) -> None:
    """Raises unless every slot leaf has the shape its parameter needs.

    A state that does not fit the parameters (initialized for another model,
    or restored from a checkpoint without a target, such as a flat buffer
    saved before padding) would otherwise broadcast: a slot of shape
    ``(1, n)`` for a parameter of shape ``(n,)`` makes the update, and then
    the parameter, ``(1, n)``.  The check compares static shapes, so under
    ``jit`` it runs once, at trace time.

    Args:
      owner: who holds the slot, for the message (``"Adam"``, ``"EMA"``).
      slot: the slot's name (``"m"``, ``"average"``).
      slots: the slot's leaves, ``None`` where a parameter has none.
      shapes: each parameter's shape, in the same order.
      paths: the parameters' paths in the tree, computed only for the message.
      expected: the slot's shape for a parameter's shape; default the same
        shape (Adafactor's factored ``r`` and ``c`` have their own rule).

    Raises:
      ValueError: naming the parameter, both shapes, and where such a state
        comes from.
    """
    for i, (leaf, shape) in enumerate(zip(slots, shapes)):
        if leaf is None:
            continue
        want = tuple(shape) if expected is None else tuple(expected(tuple(shape)))
        got = tuple(np.shape(leaf))
        if got != want:
            raise ValueError(
                f"The state of {owner} does not fit the parameters: its {slot!r} for the parameter "
                f"{paths()[i]!r} (shape {tuple(shape)}) has shape {got}, where {want} is needed. Initialize the "
                "state for these parameters, or restore it with their shapes (a checkpoint restored without "
                "a target: jaxopt_keras.io.state_from_tree)."
            )


# The fields of our states that hold one scalar each; ``hyperparams`` and
# ``scalars`` hold several, by name.
SCALAR_FIELDS = ("iterations", "loss_scale", "counter")


def state_scalars(state: Any) -> dict[str, Any]:
    """The scalars of one of our state NamedTuples, by name: its step count
    (or loss scale and counter), its hyperparameters and its other scalars."""
    named = {f: getattr(state, f) for f in SCALAR_FIELDS if f in state._fields}
    if "hyperparams" in state._fields:
        named.update(state.hyperparams.items())
    if "scalars" in state._fields:
        named.update(state.scalars)
    return named


def check_scalars(owner: str, named: Mapping[str, Any]) -> None:
    """Raises unless every value of ``named`` (a state's step count,
    hyperparameters and other scalars, by name) is a scalar.

    A state holding one copy per device, as ``jax.pmap`` returns it, has a
    leading axis on every leaf.  Its slots fail :func:`check_slot_shapes`;
    its scalars would broadcast instead: a scalar parameter's update, then
    the parameter, becomes one value per device (shape ``(8,)``), and other
    parameters fail inside the step with JAX's "incompatible shapes for
    broadcasting".  Static shapes: under ``jit`` it runs at trace time.

    Raises:
      ValueError: naming ``owner``, the value and its shape.
    """
    for what, x in named.items():
        if np.ndim(x) != 0:
            raise ValueError(
                f"The state of {owner} is not the one its init returns: its {what!r} has shape {np.shape(x)}, "
                "where a scalar is needed. A state with one copy per device (as jax.pmap returns it) is "
                "stepped inside pmap, or one copy of it outside (jax.tree.map(lambda x: x[0], state))."
            )


def first_dtype(params: Any) -> np.dtype:
    """The dtype of the first parameter (float32 for an empty tree), as Keras
    stores its per-optimizer scalars."""
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        return np.dtype(jnp.float32)
    return np.dtype(jnp.asarray(leaves[0]).dtype)
