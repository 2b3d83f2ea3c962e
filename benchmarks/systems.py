"""The systems under test, as a registry of runner classes.

A system is one way of running an optimizer step: ours (the pure functional
step), a peer (optax, Keras 3, TF-Keras), or our Keras layer.  Each is a
:class:`Runner` subclass registered with :func:`register_system`, built per
measurement for one cell; it owns its device-resident inputs and steps them in
place.  The first paragraph of its docstring describes it on the page.

Every system is measured under the same conditions: jitted (``tf.function``
for TF-Keras), buffers donated wherever the system allows it, inputs placed on
the device before timing, each step blocked on (``jax.block_until_ready`` on
the updated parameters: one execution's outputs become ready together).

Roles:

* ``"ours"``: a pure functional step of jaxopt_keras; the targets for "the
  pure functional step" are evaluated for each such system, and ratio
  columns compare each against every peer;
* ``"layer"``: the stateful Keras layer (compared with the fastest "ours"
  system and with the peers);
* ``"peer"``: a system we compare against.

Adding a system: subclass a runner and register it.  For anything with
optax's ``init``/``update`` protocol that is a few lines::

    @register_system("mine", label="my library", role="peer", slots="the params' dtype")
    class MineRunner(FunctionalRunner):
        '''my library's Adam: jit(update + apply_updates), params and state donated.'''

        def __init__(self, req: BuildRequest):
            super().__init__(mylib.adam(**req.optimizer.kwargs), req, apply_updates=mylib.apply_updates)

:class:`FunctionalRunner` times ``jit(step, donate_argnums=(0, 1))`` with
``step(params, state, grads) = apply_updates(params, update(grads, state, params))``
(:class:`FlatRunner` overrides its :meth:`~FunctionalRunner.to_layout` to
change the data layout); it and :class:`Keras3Runner` (``stateless_apply`` in
the same ``(params, state, grads)`` order) share :class:`DonatedStepRunner`'s
trace/lower/compile timing; a system that can only compile by calling its
step mixes in :class:`FirstCallCompile` (see :class:`LayerRunner`,
:class:`TFLegacyRunner`).  A runner that cannot run every cell says so with
:attr:`Runner.families` or the ``applies`` argument of :func:`register_system`.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from typing import Any, Callable, ClassVar, Literal, Sequence

import numpy as np

from benchmarks.optimizers import FAMILIES, OptimizerSpec
from benchmarks.workloads import Workload

Role = Literal["ours", "layer", "peer"]


@dataclasses.dataclass(frozen=True)
class BuildRequest:
    """What a runner is built from: one cell of the suite.

    Attributes:
      optimizer: the optimizer and its hyperparameters.
      family: ``"current"`` or ``"legacy"``.
      workload: the tree's names, shapes and dtypes.
      params: the initial parameters (host NumPy arrays of the workload's dtype; not to be mutated).
      grads: the gradient applied at every step (host NumPy arrays).
    """

    optimizer: OptimizerSpec
    family: str
    workload: Workload
    params: Sequence[np.ndarray]
    grads: Sequence[np.ndarray]


class Runner(abc.ABC):
    """One system, built for one cell, holding its inputs on the device.

    :mod:`benchmarks.measure` calls, in order: the constructor (places the
    inputs on the device and creates the optimizer object; untimed),
    :meth:`init` (builds the optimizer state the way the system's users do;
    timed), :meth:`compile`, :meth:`step` (the first step, then the warm-up
    and timed steps), :meth:`state_bytes`, :meth:`checks` and :meth:`close`;
    or, in a process of its own, the constructor and :meth:`jit_init_s`.

    Attributes:
      compile_method: how :meth:`compile` measures: ``"lower+compile"``
        (``trace``, ``lower`` and ``compile`` of the jitted step, timed one by
        one) or ``"first call"`` (the wall time of the first step, tracing and
        compiling included).
      uses_jax: whether the structural checks (compilations during the timed
        steps, donation, host transfers) apply.
      separate_init: whether :meth:`init` builds the state; ``False`` where
        the first call builds it (TF-Keras), whose init is then part of the
        compile time.
      pure_init: whether the state comes from a pure ``init(params)``
        (:meth:`jit_init_s` times its ``jax.jit``).
      families: the numerics families the system has (the others are N/A).
    """

    compile_method: ClassVar[str] = "lower+compile"
    uses_jax: ClassVar[bool] = True
    separate_init: ClassVar[bool] = True
    pure_init: ClassVar[bool] = False
    families: ClassVar[tuple[str, ...]] = FAMILIES

    def init(self) -> None:
        """Builds the optimizer state (eager ``init``, ``optimizer.build``), blocking until it is ready."""

    @abc.abstractmethod
    def compile(self) -> dict[str, float]:
        """Compiles the step; returns ``{"compile_s": ..., ...}`` (extra timings allowed)."""

    @abc.abstractmethod
    def step(self) -> None:
        """Runs one step in place, blocking until its result is ready."""

    @abc.abstractmethod
    def state_bytes(self) -> tuple[int, int]:
        """``(all, arrays)``: bytes of the optimizer state's leaves, and of its non-scalar leaves."""

    def jit_init_s(self) -> float | None:
        """Seconds of the first call of ``jax.jit(init)`` (trace, compile, run); ``None`` where there is no pure init."""
        return None

    def held_elements(self) -> int | None:
        """The parameters' elements as the system holds them, where that is not
        the workload's count (the flat layout pads long buffers); else ``None``."""
        return None

    def checks(self) -> dict[str, Any]:
        """Structural checks, run after the timed steps (may leave the runner unusable)."""
        return {}

    def close(self) -> None:
        """Drops the runner's buffers."""
        self.__dict__.clear()


class FirstCallCompile:
    """For runners that cannot compile apart from a call: the first step is the compile."""

    compile_method: ClassVar[str] = "first call"

    def compile(self) -> dict[str, float]:
        t0 = time.perf_counter()
        self.step()  # type: ignore[attr-defined]
        return {"compile_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------
# The registry.
# --------------------------------------------------------------------------

Applies = Callable[[OptimizerSpec, str], "str | None"]


def _always(optimizer: OptimizerSpec, family: str) -> str | None:
    del optimizer, family
    return None


@dataclasses.dataclass(frozen=True)
class SystemSpec:
    """A registered system.

    Attributes:
      key: short identifier (command line, results).
      label: for the report.
      role: ``"ours"``, ``"layer"`` or ``"peer"`` (see the module docstring).
      build: the runner class (called with a :class:`BuildRequest`).
      slots: the dtype of its slots on a workload that asks for a slot dtype
        (``gpt2``: bfloat16 params, float32 slots where the system allows it).
      applies: ``applies(optimizer, family)`` is ``None`` when the system can
        run that cell, else the reason it cannot (reported as N/A); cells of
        a family not in ``build.families`` never apply.
      program_key: ``program_key(optimizer, family)``; cells of one workload
        with equal keys run the very same program and are measured once
        (optax has no numerics families).  ``None``: every cell is distinct.
    """

    key: str
    label: str
    role: Role
    build: type[Runner]
    slots: str = ""
    applies: Applies = _always
    program_key: Callable[[OptimizerSpec, str], str] | None = None

    @property
    def description(self) -> str:
        """The first paragraph of the runner's docstring (one line for the report)."""
        first = (self.build.__doc__ or "").strip().split("\n\n")[0]
        return " ".join(first.split()).rstrip(".")

    @property
    def pure_init(self) -> bool:
        return self.build.pure_init

    def not_applicable(self, optimizer: OptimizerSpec, family: str) -> str | None:
        """Why the system cannot run that cell, or ``None``."""
        if family not in self.build.families:
            return f"{self.label} has the {' and '.join(self.build.families)} family only"
        return self.applies(optimizer, family)

    def summary(self) -> dict:
        return {k: getattr(self, k) for k in ("key", "label", "role", "description", "slots")}


SYSTEMS: dict[str, SystemSpec] = {}


def register_system(key: str, **fields: Any) -> Callable[[type[Runner]], type[Runner]]:
    """Registers the decorated runner class as system ``key`` (in registration
    order: the report's column order); ``fields`` are :class:`SystemSpec`'s."""

    def decorate(build: type[Runner]) -> type[Runner]:
        if key in SYSTEMS:
            raise ValueError(f"system {key!r} is already registered")
        SYSTEMS[key] = SystemSpec(key=key, build=build, **fields)
        return build

    return decorate


# --------------------------------------------------------------------------
# The runners.
# --------------------------------------------------------------------------


def device_copies(arrays: Sequence[np.ndarray]) -> list:
    """Fresh device buffers holding ``arrays``, owned by JAX (so donation can reuse them).

    ``device_put(..., may_alias=False)`` copies without compiling anything
    (``jnp.array(copy=True)`` would compile one copy per distinct shape).
    """
    import jax

    return jax.block_until_ready([jax.device_put(a, may_alias=False) for a in arrays])


def tree_bytes(tree: Any) -> tuple[int, int]:
    """``(all, arrays)``: nbytes of the leaves of ``tree``, and of its non-scalar leaves."""
    import jax

    leaves = [x for x in jax.tree_util.tree_leaves(tree) if hasattr(x, "nbytes")]
    return sum(int(x.nbytes) for x in leaves), sum(int(x.nbytes) for x in leaves if np.ndim(x) > 0)


def _arrays(tree: Any) -> list:
    """The non-scalar JAX arrays of ``tree`` (the full-size buffers a step should donate)."""
    import jax

    return [x for x in jax.tree_util.tree_leaves(tree) if isinstance(x, jax.Array) and x.ndim > 0]


def _guarded_step(runner: "JaxRunner", guard: Callable[[str], Any]) -> dict[str, Any]:
    """Runs one step with ``guard("disallow")``; reports whether it tripped."""
    try:
        with guard("disallow"):
            runner.step()
    except Exception as e:  # noqa: BLE001 - any failure is reported, not raised
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return {"transfers": "Disallowed" in str(e), "error": f"{type(e).__name__}: {message}"[:300]}
    return {"transfers": False, "error": None}


class JaxRunner(Runner):
    """A JAX system: adds the donation and host-transfer checks.

    Subclasses list the buffers they donate in :meth:`donated_inputs`.
    """

    @abc.abstractmethod
    def donated_inputs(self) -> list:
        """The full-size arrays the next step receives as donated inputs."""

    def checks(self) -> dict[str, Any]:
        import jax

        before = self.donated_inputs()
        self.step()
        donated = sum(x.is_deleted() for x in before) / len(before) if before else None
        del before
        d2h = _guarded_step(self, jax.transfer_guard_device_to_host)
        h2d = _guarded_step(self, jax.transfer_guard_host_to_device) if d2h["error"] is None else None
        return {
            "donated_fraction": donated,
            "device_to_host": d2h,
            "host_to_device": h2d,
        }


class DonatedStepRunner(JaxRunner):
    """Times ``self._jitted(params, state, grads) -> (params, state)``, jitted
    with ``donate_argnums=(0, 1)``; subclasses set ``params``, ``state``,
    ``grads`` and ``_jitted``."""

    params: Any
    state: Any
    grads: Any
    _jitted: Any
    _compiled: Any = None

    def before_compile(self) -> None:
        """Untimed preparation of the step's inputs after :meth:`init` (none by default)."""

    def compile(self) -> dict[str, float]:
        self.before_compile()
        t0 = time.perf_counter()
        traced = self._jitted.trace(self.params, self.state, self.grads)
        t1 = time.perf_counter()
        lowered = traced.lower()
        t2 = time.perf_counter()
        self._compiled = lowered.compile()
        t3 = time.perf_counter()
        return {"compile_s": t3 - t0, "trace_s": t1 - t0, "lower_s": t2 - t1, "backend_compile_s": t3 - t2}

    def step(self) -> None:
        import jax

        self.params, self.state = self._compiled(self.params, self.state, self.grads)
        jax.block_until_ready(self.params)

    def state_bytes(self) -> tuple[int, int]:
        return tree_bytes(self.state)

    def donated_inputs(self) -> list:
        return _arrays(self.params) + _arrays(self.state)


class FunctionalRunner(DonatedStepRunner):
    """``jit(step, donate_argnums=(0, 1))`` over ``(params, state, grads)``.

    ``step(params, state, grads)`` is ``update`` followed by ``apply_updates``;
    ``transformation`` is anything with optax's ``init``/``update`` protocol.
    :meth:`init` is ``transformation.init`` on the placed parameters, after
    :meth:`to_layout` (which a subclass overrides to change the data layout:
    its cost on the parameters counts as part of init).
    """

    pure_init = True

    def __init__(self, transformation: Any, req: BuildRequest, apply_updates: Callable[[Any, Any], Any]):
        import jax

        self.transformation = transformation
        self.params = device_copies(req.params)
        self.grads = device_copies(req.grads)

        def step(params, state, grads):
            updates, state = transformation.update(grads, state, params)
            return apply_updates(params, updates), state

        self._jitted = jax.jit(step, donate_argnums=(0, 1))

    def to_layout(self, tree: Any) -> Any:
        """The parameters (or gradients) as the step takes them: the tree itself."""
        return tree

    def init(self) -> None:
        import jax

        self.params = self.to_layout(self.params)
        self.params, self.state = jax.block_until_ready((self.params, self.transformation.init(self.params)))

    def before_compile(self) -> None:
        import jax

        self.grads = jax.block_until_ready(self.to_layout(self.grads))

    def jit_init_s(self) -> float | None:
        import jax

        params = jax.block_until_ready(self.to_layout(self.params))
        t0 = time.perf_counter()
        jax.block_until_ready(jax.jit(self.transformation.init)(params))
        return time.perf_counter() - t0


def _plain_name(name: str) -> str:
    """A variable name without ``/`` (Keras 3 rejects it)."""
    return name.replace("/", "_")


# --------------------------------------------------------------------------
# The systems.
# --------------------------------------------------------------------------


def slot_dtype_kwargs(req: BuildRequest) -> dict[str, Any]:
    """``{"slot_dtype": ...}`` for jaxopt_keras when the workload asks for a slot dtype, else ``{}``."""
    return {"slot_dtype": req.workload.slot_dtype} if req.workload.slot_dtype else {}


def our_transformation(req: BuildRequest) -> Any:
    """``jaxopt_keras[.legacy].<key>(**kwargs)``, with the workload's ``slot_dtype``."""
    import jaxopt_keras as jk

    module = jk if req.family == "current" else jk.legacy
    return getattr(module, req.optimizer.key)(**req.optimizer.kwargs, **slot_dtype_kwargs(req))


FLOAT32_SLOTS = "slot_dtype=float32: every slot in float32"


@register_system("ours", label="jaxopt_keras", role="ours", slots=FLOAT32_SLOTS)
class OursRunner(FunctionalRunner):
    """Pure functional step: jit(update + apply_updates), params and state donated."""

    def __init__(self, req: BuildRequest):
        import jaxopt_keras as jk

        super().__init__(our_transformation(req), req, apply_updates=jk.apply_updates)


@register_system("flat", label="jaxopt_keras.flat", role="ours", slots=FLOAT32_SLOTS)
class FlatRunner(OursRunner):
    """The same step on the opt-in flat layout: one buffer per dtype for params, grads and state.

    Building the layout and raveling the parameters count as part of init (a
    user pays them before the first step).
    """

    def __init__(self, req: BuildRequest):
        self.layout: Any = None
        super().__init__(req)

    def to_layout(self, tree: Any) -> Any:
        import jaxopt_keras as jk

        if self.layout is None:
            self.layout = jk.flat.Layout(tree)
        return self.layout.ravel(tree)

    def held_elements(self) -> int | None:
        return sum(self.layout.sizes)


def _optax_config(
    optimizer: OptimizerSpec, family: str, slot_dtype: str | None = None
) -> tuple[str, dict[str, Any]] | None:
    """optax's nearest equivalent: ``(factory name, arguments)``, or ``None``.

    Adam: optax's epsilon sits outside ``sqrt(v_hat)`` where Keras's sits
    outside ``sqrt(v)`` ("epsilon hat"), the same cost.  SGD: optax's trace
    ``t = g + momentum * t; p -= lr * t`` equals Keras's ``m = momentum * m -
    lr * g; p += m`` for a constant learning rate.  RMSprop: epsilon inside
    the root (current family, and legacy with momentum) or outside (legacy
    without momentum).  Adagrad: Keras's initial accumulator 0.1.  Ftrl: none.

    ``slot_dtype`` goes where optax takes one: Adam's ``mu_dtype`` (its second
    moment ``nu`` keeps the parameters' dtype: ``scale_by_adam`` has no
    argument for it) and SGD's ``accumulator_dtype``; RMSprop and Adagrad keep
    their slots in the parameters' dtype.
    """
    lr = optimizer.kwargs["learning_rate"]
    if optimizer.key == "adam":
        return "adam", {"learning_rate": lr, "b1": 0.9, "b2": 0.999, "eps": 1e-7, "mu_dtype": slot_dtype}
    if optimizer.key == "sgd":
        momentum = optimizer.kwargs.get("momentum", 0.0) or None
        return "sgd", {"learning_rate": lr, "momentum": momentum, "accumulator_dtype": slot_dtype}
    if optimizer.key == "rmsprop":
        eps_in_sqrt = family == "current" or bool(optimizer.kwargs.get("momentum", 0.0))
        return "rmsprop", {"learning_rate": lr, "decay": 0.9, "eps": 1e-7, "eps_in_sqrt": eps_in_sqrt}
    if optimizer.key == "adagrad":
        return "adagrad", {"learning_rate": lr, "initial_accumulator_value": 0.1, "eps": 1e-7}
    return None


def _optax_applies(optimizer: OptimizerSpec, family: str) -> str | None:
    return None if _optax_config(optimizer, family) is not None else f"optax has no {optimizer.class_name}"


def _optax_program(optimizer: OptimizerSpec, family: str) -> str:
    return repr(_optax_config(optimizer, family))


@register_system(
    "optax",
    label="optax",
    role="peer",
    slots=(
        "Adam: mu_dtype=float32, nu in the params' dtype (scale_by_adam has no nu dtype); "
        "SGD: accumulator_dtype=float32; RMSprop, Adagrad: the params' dtype (no option)"
    ),
    applies=_optax_applies,
    program_key=_optax_program,
)
class OptaxRunner(FunctionalRunner):
    """optax's nearest equivalent: jit(update + apply_updates), params and state donated."""

    def __init__(self, req: BuildRequest):
        import optax

        config = _optax_config(req.optimizer, req.family, req.workload.slot_dtype)
        assert config is not None
        name, kwargs = config
        super().__init__(getattr(optax, name)(**kwargs), req, apply_updates=optax.apply_updates)


@register_system(
    "keras3",
    label="Keras 3 (JAX)",
    role="peer",
    slots="the variables' dtype (Keras 3 creates each slot like its variable; no slot-dtype option)",
)
class Keras3Runner(DonatedStepRunner):
    """Keras 3 on the JAX backend: jit(optimizer.stateless_apply), trainable and optimizer variables donated.

    ``stateless_apply(optimizer_variables, grads, trainable_variables)``
    returns ``(trainable_variables, optimizer_variables)``: the opposite
    order.  JAX pairs donated inputs with outputs of the same shape in order,
    so jitting it as is would alias the parameters' output to a slot's input
    and make XLA copy every buffer.  The step therefore takes its arguments in
    the order it returns them, as Keras's own JAX trainer keeps its state
    tuple in one order, and donates both (``params`` are the trainable
    variables, ``state`` the optimizer's).  :meth:`init` is
    ``optimizer.build``.  The worker sets ``KERAS_BACKEND=jax`` before
    anything imports ``keras``.
    """

    families = ("current",)

    def __init__(self, req: BuildRequest):
        import jax
        import keras

        if keras.backend.backend() != "jax":
            raise RuntimeError(f"Keras 3 runs on the {keras.backend.backend()!r} backend; set KERAS_BACKEND=jax")
        self.optimizer = getattr(keras.optimizers, req.optimizer.class_name)(**req.optimizer.kwargs)
        self.variables = [keras.Variable(p, name=_plain_name(n)) for p, n in zip(req.params, req.workload.names)]
        jax.block_until_ready([v.value for v in self.variables])
        self.grads = device_copies(req.grads)
        optimizer = self.optimizer

        def step(trainable, opt_vars, grads):
            return optimizer.stateless_apply(opt_vars, grads, trainable)

        self._jitted = jax.jit(step, donate_argnums=(0, 1))

    def init(self) -> None:
        import jax

        self.optimizer.build(self.variables)
        jax.block_until_ready([v.value for v in self.optimizer.variables])

    def before_compile(self) -> None:
        # Fresh buffers: the Keras objects keep theirs, so the donated ones are ours alone.
        self.params = device_copies([np.asarray(v.value) for v in self.variables])
        self.state = device_copies([np.asarray(v.value) for v in self.optimizer.variables])
        del self.variables


@register_system(
    "tf_legacy",
    label="TF-Keras legacy",
    role="peer",
    slots="the variables' dtype (TF-Keras creates each slot like its variable)",
)
class TFLegacyRunner(FirstCallCompile, Runner):
    """tf_keras.optimizers.legacy: apply_gradients inside tf.function.

    The Keras users' baseline (the legacy family).  The function returns when
    the step has run (TensorFlow executes synchronously on the CPU).  The
    slots are created inside the first call, as in a TF-Keras training loop
    (no separate init).
    """

    uses_jax = False
    separate_init = False
    families = ("legacy",)

    def __init__(self, req: BuildRequest):
        import tensorflow as tf
        import tf_keras

        self.optimizer = getattr(tf_keras.optimizers.legacy, req.optimizer.class_name)(**req.optimizer.kwargs)
        self.variables = [tf.Variable(p, name=_plain_name(n)) for p, n in zip(req.params, req.workload.names)]
        self.grads = [tf.constant(g) for g in req.grads]
        optimizer, variables = self.optimizer, self.variables

        @tf.function
        def step(grads):
            optimizer.apply_gradients(zip(grads, variables))
            return optimizer.iterations

        self._step = step

    def step(self) -> None:
        self._step(self.grads)

    def state_bytes(self) -> tuple[int, int]:
        sizes = [(int(np.prod(v.shape)) * v.dtype.size, len(v.shape) > 0) for v in self.optimizer.variables()]
        return sum(s for s, _ in sizes), sum(s for s, is_array in sizes if is_array)


@register_system("layer", label="jaxopt_keras layer", role="layer", slots=FLOAT32_SLOTS)
class LayerRunner(FirstCallCompile, JaxRunner):
    """jaxopt_keras.optimizers[.legacy].<Class>.apply_gradients on jaxopt_keras.Variable.

    The Keras layer.  :meth:`init` is ``optimizer.build(variables)``.
    """

    def __init__(self, req: BuildRequest):
        import jax

        import jaxopt_keras as jk
        from jaxopt_keras import optimizers

        module = optimizers if req.family == "current" else optimizers.legacy
        kwargs = {**req.optimizer.kwargs, **slot_dtype_kwargs(req)}
        self.optimizer = getattr(module, req.optimizer.class_name)(**kwargs)
        self.variables = [jk.Variable(p, name=n) for p, n in zip(req.params, req.workload.names)]
        jax.block_until_ready([v.value for v in self.variables])
        self.grads = device_copies(req.grads)

    def init(self) -> None:
        import jax

        self.optimizer.build(self.variables)
        jax.block_until_ready(self.optimizer.state)

    def step(self) -> None:
        import jax

        self.optimizer.apply_gradients(zip(self.grads, self.variables))
        jax.block_until_ready([v.value for v in self.variables])

    # What the optimizer holds, read without unpacking it: on trees of many
    # small variables the layer keeps its state packed between steps
    # (jaxopt_keras.optimizers.packed), and its public `state` is the
    # per-variable form built on reading, not what the next step donates.
    def state_bytes(self) -> tuple[int, int]:
        return tree_bytes(self.optimizer._held)

    # Packed, the slots lie on the packed layout's buffers, whose long ones
    # end with the padding's zeros (jaxopt_keras.core.flat.padded_length).
    def held_elements(self) -> int | None:
        import jax

        import jaxopt_keras as jk

        def is_flat(x: Any) -> bool:
            return isinstance(x, jk.flat.FlatTree)

        flats = [x for x in jax.tree_util.tree_leaves(self.optimizer._held, is_leaf=is_flat) if is_flat(x)]
        return sum(flats[0].layout.sizes) if flats else None

    def donated_inputs(self) -> list:
        return _arrays([v.value for v in self.variables]) + _arrays(self.optimizer._held)


def get(key: str) -> SystemSpec:
    try:
        return SYSTEMS[key]
    except KeyError:
        raise KeyError(f"unknown system {key!r}: registered are {list(SYSTEMS)}") from None
