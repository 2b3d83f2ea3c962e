"""The systems under test, as a registry of *system builders*.

A system is one way of running an optimizer step: ours (the pure functional
step), a peer (optax, Keras 3, TF-Keras), or our Keras layer.  Each is
registered with :func:`register_system` and built, per measurement, into a
:class:`Runner` that owns its device-resident inputs and steps them in place.

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

Adding a system is one function: a builder registered with
:func:`register_system` that returns a :class:`Runner` (see ``build_flat``
below, the flat-layout fast path, for one that changes the data layout).

``FunctionalRunner`` times ``jit(step, donate_argnums=(0, 1))`` with
``step(params, state, grads) = apply_updates(params, update(grads, state, params))``;
both it and :class:`Keras3Runner` (``stateless_apply`` in the same
``(params, state, grads)`` order) share :class:`DonatedStepRunner`'s timing; a
system with another calling convention subclasses :class:`JaxRunner` (see
:class:`LayerRunner`).
"""

from __future__ import annotations

import abc
import dataclasses
import time
from typing import Any, Callable, ClassVar, Literal, Sequence

import numpy as np

from benchmarks.optimizers import OptimizerSpec
from benchmarks.workloads import Workload

Role = Literal["ours", "layer", "peer"]


@dataclasses.dataclass(frozen=True)
class BuildRequest:
    """What a system builder gets: one cell of the suite.

    Attributes:
      optimizer: the optimizer and its hyperparameters.
      family: ``"current"`` or ``"legacy"``.
      workload: the tree's names and shapes.
      params: the initial parameters (host NumPy arrays, float32; not to be mutated).
      grads: the gradient applied at every step (host NumPy arrays).
    """

    optimizer: OptimizerSpec
    family: str
    workload: Workload
    params: Sequence[np.ndarray]
    grads: Sequence[np.ndarray]


class Runner(abc.ABC):
    """One system, built for one cell, holding its inputs on the device.

    Attributes:
      compile_method: how :meth:`compile` measures: ``"lower+compile"`` (the
        wall time of ``jit(...).lower(...).compile()``) or ``"first call"`` (the
        wall time of the first step, tracing and compiling included).
      uses_jax: whether the structural checks (compilations during the timed
        steps, donation, host transfers) apply.
    """

    compile_method: ClassVar[str] = "lower+compile"
    uses_jax: ClassVar[bool] = True

    @abc.abstractmethod
    def compile(self) -> dict[str, float]:
        """Compiles the step; returns ``{"compile_s": ..., ...}`` (extra timings allowed)."""

    @abc.abstractmethod
    def step(self) -> None:
        """Runs one step in place, blocking until its result is ready."""

    @abc.abstractmethod
    def state_bytes(self) -> tuple[int, int]:
        """``(all, arrays)``: bytes of the optimizer state's leaves, and of its non-scalar leaves."""

    def checks(self) -> dict[str, Any]:
        """Structural checks, run after the timed steps (may leave the runner unusable)."""
        return {}

    def close(self) -> None:
        """Drops the runner's buffers."""
        self.__dict__.clear()


# --------------------------------------------------------------------------
# The registry.
# --------------------------------------------------------------------------

Builder = Callable[[BuildRequest], Runner]
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
      description: one line for the report.
      build: the builder.
      applies: ``applies(optimizer, family)`` is ``None`` when the system can
        run that cell, else the reason it cannot (reported as N/A).
      program_key: ``program_key(optimizer, family)``; cells of one workload
        with equal keys run the very same program and are measured once
        (optax has no numerics families).  ``None``: every cell is distinct.
    """

    key: str
    label: str
    role: Role
    description: str
    build: Builder
    applies: Applies = _always
    program_key: Callable[[OptimizerSpec, str], str] | None = None

    def summary(self) -> dict:
        return {"key": self.key, "label": self.label, "role": self.role, "description": self.description}


SYSTEMS: dict[str, SystemSpec] = {}


def register_system(
    key: str,
    *,
    label: str,
    role: Role,
    description: str,
    applies: Applies = _always,
    program_key: Callable[[OptimizerSpec, str], str] | None = None,
) -> Callable[[Builder], Builder]:
    """Registers the decorated builder as system ``key`` (in registration order)."""

    def decorate(build: Builder) -> Builder:
        if key in SYSTEMS:
            raise ValueError(f"system {key!r} is already registered")
        SYSTEMS[key] = SystemSpec(key, label, role, description, build, applies, program_key)
        return build

    return decorate


# --------------------------------------------------------------------------
# Runners over JAX.
# --------------------------------------------------------------------------


def device_copies(arrays: Sequence[np.ndarray]) -> list:
    """Fresh device buffers holding ``arrays``, owned by JAX (so donation can reuse them).

    ``device_put(..., may_alias=False)`` copies without compiling anything
    (``jnp.array(copy=True)`` would compile one copy per distinct shape).
    """
    import jax

    out = [jax.device_put(a, may_alias=False) for a in arrays]
    jax.block_until_ready(out)
    return out


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

    def compile(self) -> dict[str, float]:
        t0 = time.perf_counter()
        lowered = self._jitted.lower(self.params, self.state, self.grads)
        t1 = time.perf_counter()
        self._compiled = lowered.compile()
        t2 = time.perf_counter()
        return {"compile_s": t2 - t0, "lower_s": t1 - t0, "backend_compile_s": t2 - t1}

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
    """

    def __init__(self, transformation: Any, req: BuildRequest, apply_updates: Callable[[Any, Any], Any]):
        import jax

        self.params = device_copies(req.params)
        self.grads = device_copies(req.grads)
        self.state = jax.block_until_ready(transformation.init(self.params))

        def step(params, state, grads):
            updates, state = transformation.update(grads, state, params)
            return apply_updates(params, updates), state

        self._jitted = jax.jit(step, donate_argnums=(0, 1))
        self._compiled: Any = None



class Keras3Runner(DonatedStepRunner):
    """Keras 3 on its JAX backend: ``optimizer.stateless_apply``, jitted, variables donated.

    ``stateless_apply(optimizer_variables, grads, trainable_variables)``
    returns ``(trainable_variables, optimizer_variables)``: the opposite
    order.  JAX pairs donated inputs with outputs of the same shape in order,
    so jitting it as is would alias the parameters' output to a slot's input
    and make XLA copy every buffer.  The step therefore takes its arguments in
    the order it returns them, as Keras's own JAX trainer keeps its state
    tuple in one order, and donates both (``params`` are the trainable variables, ``state`` the
optimizer's).  The worker sets
    ``KERAS_BACKEND=jax`` before anything imports ``keras``.
    """

    def __init__(self, req: BuildRequest):
        import jax
        import keras

        if keras.backend.backend() != "jax":
            raise RuntimeError(f"Keras 3 runs on the {keras.backend.backend()!r} backend; set KERAS_BACKEND=jax")
        optimizer = getattr(keras.optimizers, req.optimizer.class_name)(**req.optimizer.kwargs)
        variables = [keras.Variable(p, name=_plain_name(n)) for p, n in zip(req.params, req.workload.names)]
        optimizer.build(variables)
        # Fresh buffers: the Keras objects keep theirs, so the donated ones are ours alone.
        self.params = device_copies([np.asarray(v.value) for v in variables])
        self.state = device_copies([np.asarray(v.value) for v in optimizer.variables])
        self.grads = device_copies(req.grads)
        del variables

        def step(trainable, opt_vars, grads):
            return optimizer.stateless_apply(opt_vars, grads, trainable)

        self._jitted = jax.jit(step, donate_argnums=(0, 1))
        self._compiled: Any = None


class LayerRunner(JaxRunner):
    """jaxopt_keras's Keras layer: ``optimizer.apply_gradients(zip(grads, variables))``."""

    compile_method = "first call"

    def __init__(self, req: BuildRequest):
        import jaxopt_keras as jk
        from jaxopt_keras import optimizers

        module = optimizers if req.family == "current" else optimizers.legacy
        self.optimizer = getattr(module, req.optimizer.class_name)(**req.optimizer.kwargs)
        self.variables = [jk.Variable(p, name=n) for p, n in zip(req.params, req.workload.names)]
        self.grads = device_copies(req.grads)
        self.optimizer.build(self.variables)

    def compile(self) -> dict[str, float]:
        t0 = time.perf_counter()
        self.step()
        return {"compile_s": time.perf_counter() - t0}

    def step(self) -> None:
        import jax

        self.optimizer.apply_gradients(zip(self.grads, self.variables))
        jax.block_until_ready([v.value for v in self.variables])

    def state_bytes(self) -> tuple[int, int]:
        return tree_bytes(self.optimizer.state)

    def donated_inputs(self) -> list:
        return _arrays([v.value for v in self.variables]) + _arrays(self.optimizer.state)


class TFLegacyRunner(Runner):
    """TF-Keras's legacy optimizer: ``apply_gradients`` inside ``tf.function``.

    The Keras users' baseline.  The function returns when the step has run
    (TensorFlow executes synchronously on the CPU).
    """

    compile_method = "first call"
    uses_jax = False

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

    def compile(self) -> dict[str, float]:
        t0 = time.perf_counter()
        self.step()
        return {"compile_s": time.perf_counter() - t0}

    def step(self) -> None:
        self._step(self.grads)

    def state_bytes(self) -> tuple[int, int]:
        sizes = [(int(np.prod(v.shape)) * v.dtype.size, len(v.shape) > 0) for v in self.optimizer.variables()]
        return sum(s for s, _ in sizes), sum(s for s, is_array in sizes if is_array)


def _plain_name(name: str) -> str:
    """A variable name without ``/`` (Keras 3 rejects it)."""
    return name.replace("/", "_")


# --------------------------------------------------------------------------
# The systems.
# --------------------------------------------------------------------------


def our_transformation(req: BuildRequest) -> Any:
    """``jaxopt_keras.<key>(**kwargs)`` or ``jaxopt_keras.legacy.<key>(**kwargs)``."""
    import jaxopt_keras as jk

    module = jk if req.family == "current" else jk.legacy
    return getattr(module, req.optimizer.key)(**req.optimizer.kwargs)


@register_system(
    "ours",
    label="jaxopt_keras",
    role="ours",
    description="pure functional step: jit(update + apply_updates), params and state donated",
)
def build_ours(req: BuildRequest) -> Runner:
    import jaxopt_keras as jk

    return FunctionalRunner(our_transformation(req), req, apply_updates=jk.apply_updates)


def _optax_config(optimizer: OptimizerSpec, family: str) -> tuple[str, dict[str, Any]] | None:
    """optax's nearest equivalent: ``(factory name, arguments)``, or ``None``.

    Adam: optax's epsilon sits outside ``sqrt(v_hat)`` where Keras's sits
    outside ``sqrt(v)`` ("epsilon hat"), the same cost.  SGD: optax's trace
    ``t = g + momentum * t; p -= lr * t`` equals Keras's ``m = momentum * m -
    lr * g; p += m`` for a constant learning rate.  RMSprop: epsilon inside
    the root (current family, and legacy with momentum) or outside (legacy
    without momentum).  Adagrad: Keras's initial accumulator 0.1.  Ftrl: none.
    """
    lr = optimizer.kwargs["learning_rate"]
    if optimizer.key == "adam":
        return "adam", {"learning_rate": lr, "b1": 0.9, "b2": 0.999, "eps": 1e-7}
    if optimizer.key == "sgd":
        return "sgd", {"learning_rate": lr, "momentum": optimizer.kwargs.get("momentum", 0.0) or None}
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


class FlatRunner(FunctionalRunner):
    """The pure step on :mod:`jaxopt_keras.flat`'s layout: params, grads and
    state as one buffer per dtype (raveled once, before timing)."""

    def __init__(self, transformation: Any, req: BuildRequest):
        import jax
        import jaxopt_keras as jk

        params = device_copies(req.params)
        self.layout = jk.flat.Layout(params)
        self.params = jax.block_until_ready(self.layout.ravel(params))
        self.grads = jax.block_until_ready(self.layout.ravel(device_copies(req.grads)))
        del params
        self.state = jax.block_until_ready(transformation.init(self.params))

        def step(params, state, grads):
            updates, state = transformation.update(grads, state, params)
            return jk.apply_updates(params, updates), state

        self._jitted = jax.jit(step, donate_argnums=(0, 1))
        self._compiled: Any = None


@register_system(
    "flat",
    label="jaxopt_keras.flat",
    role="ours",
    description="the same step on the opt-in flat layout: one buffer per dtype for params, grads and state",
)
def build_flat(req: BuildRequest) -> Runner:
    return FlatRunner(our_transformation(req), req)


@register_system(
    "optax",
    label="optax",
    role="peer",
    description="optax's nearest equivalent, jit(update + apply_updates), params and state donated",
    applies=_optax_applies,
    program_key=_optax_program,
)
def build_optax(req: BuildRequest) -> Runner:
    import optax

    config = _optax_config(req.optimizer, req.family)
    assert config is not None
    name, kwargs = config
    return FunctionalRunner(getattr(optax, name)(**kwargs), req, apply_updates=optax.apply_updates)


@register_system(
    "keras3",
    label="Keras 3 (JAX)",
    role="peer",
    description="Keras 3 on the JAX backend: jit(optimizer.stateless_apply), trainable and optimizer variables donated",
    applies=lambda optimizer, family: None if family == "current" else "Keras 3 has the current family only",
)
def build_keras3(req: BuildRequest) -> Runner:
    return Keras3Runner(req)


@register_system(
    "tf_legacy",
    label="TF-Keras legacy",
    role="peer",
    description="tf_keras.optimizers.legacy: apply_gradients inside tf.function",
    applies=lambda optimizer, family: None if family == "legacy" else "the Keras users' baseline is the legacy family",
)
def build_tf_legacy(req: BuildRequest) -> Runner:
    return TFLegacyRunner(req)


@register_system(
    "layer",
    label="jaxopt_keras layer",
    role="layer",
    description="jaxopt_keras.optimizers[.legacy].<Class>.apply_gradients on jaxopt_keras.Variable",
)
def build_layer(req: BuildRequest) -> Runner:
    return LayerRunner(req)


def get(key: str) -> SystemSpec:
    try:
        return SYSTEMS[key]
    except KeyError:
        raise KeyError(f"unknown system {key!r}: registered are {list(SYSTEMS)}") from None
