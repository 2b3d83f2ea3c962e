"""One measurement, inside a fresh worker process.

:func:`measure` builds a system's runner for one cell, compiles it, runs the
first step, warms it up, times ``repeats`` steps (fewer where they would take
longer than ``timed_budget_s``, but at least 10), and records memory and
structural checks:

* **time to the first step**: what a user waits for, from parameters on the
  device to the first updated parameters: building the optimizer state
  (``init_s``: eager ``init``, ``optimizer.build``), tracing, lowering and
  compiling the step (``trace_s``, ``lower_s``, ``backend_compile_s``: XLA's
  compile) and running it once (``first_step_s``); for the systems that
  compile on their first call (see
  :attr:`benchmarks.systems.Runner.compile_method`) that call is timed whole.
  The worker is a fresh process, so no per-shape compile cache is warm; the
  orchestrator may measure it again (task mode ``"first_step"``) and keep the
  faster;
* **jit(init)** (task mode ``"jit_init"``, a process of its own): the first
  call of ``jax.jit(init)`` on the placed parameters (trace, compile, run);
* **step time**: wall time of each step (dispatch to result ready); the
  report uses the median;
* **compile time**: trace + lower + XLA compile, or the first call;
* **peak RSS**: the process's resident-set high-water mark
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), reset before the
  measurement by writing ``5`` to ``/proc/self/clear_refs``; reported
  absolute and above the RSS at the start.  A second reset before the timed
  steps gives the *steady* extra: how far the timed steps push RSS above what
  was resident when they started (a donated step that allocated a full-size
  copy would show it here);
* **state size**: bytes of the optimizer state's leaves, in total and for its
  non-scalar leaves (the slots);
* **structure** (JAX systems): XLA compiles while building the state, and
  compilations and traces during the timed steps (from ``jax.monitoring``),
  the fraction of donated input buffers deleted by a step, and whether a step
  makes implicit device-to-host or host-to-device transfers
  (``jax.transfer_guard``).
"""

from __future__ import annotations

import ctypes
import gc
import resource
import statistics
import time
import warnings
from typing import Any, Callable

from benchmarks import optimizers, systems, workloads
from benchmarks.machine import proc_bytes

Emit = Callable[[dict], None]


# --------------------------------------------------------------------------
# Memory.
# --------------------------------------------------------------------------


def rss_bytes() -> int:
    """The process's current resident set size."""
    return proc_bytes("/proc/self/status", "VmRSS") or 0


def peak_rss_bytes() -> int:
    """The process's RSS high-water mark since the last :func:`reset_peak_rss`."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Resets the RSS high-water mark to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def release_memory() -> None:
    """Collects garbage and returns freed heap pages to the OS, so RSS deltas are the measurement's own."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# --------------------------------------------------------------------------
# Compilations, from jax.monitoring.
# --------------------------------------------------------------------------


class CompileCounter:
    """Counts JAX traces and backend compilations (installed once per process)."""

    TRACE = "/jax/core/compile/jaxpr_trace_duration"
    BACKEND = "/jax/core/compile/backend_compile_duration"

    def __init__(self) -> None:
        self.traces = 0
        self.compiles = 0
        self._installed = False

    def install(self) -> None:
        if self._installed:
            return
        import jax

        jax.monitoring.register_event_duration_secs_listener(self._on_event)
        self._installed = True

    def _on_event(self, event: str, duration: float, **kwargs: Any) -> None:
        del duration, kwargs
        if event == self.TRACE:
            self.traces += 1
        elif event == self.BACKEND:
            self.compiles += 1

    def reset(self) -> None:
        self.traces = 0
        self.compiles = 0


COUNTER = CompileCounter()

# The record's fields that describe one process's time to the first step, and
# its step time: a cell measured in several processes keeps each group from
# the run that was fastest on it (see benchmarks.orchestrate).
FIRST_STEP_FIELDS = (
    "compile_s",
    "trace_s",
    "lower_s",
    "backend_compile_s",
    "init_s",
    "first_step_s",
    "time_to_first_step_s",
    "init_compiles",
)
STEP_FIELDS = ("step_ms", "step_ms_min", "step_ms_max", "steps_ms")


# --------------------------------------------------------------------------
# The measurement.
# --------------------------------------------------------------------------


def timed_steps(step: Callable[[], None], n: int) -> list[float]:
    """Runs ``step`` ``n`` times; the wall seconds of each call."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return times


def first_step(runner: systems.Runner, init_s: float | None, timings: dict[str, float]) -> dict[str, float | None]:
    """The time to the first step and its parts, right after :meth:`~benchmarks.systems.Runner.compile`."""
    first_step_s = None
    if runner.compile_method == "lower+compile":
        (first_step_s,) = timed_steps(runner.step, 1)
    total = (init_s or 0.0) + timings["compile_s"] + (first_step_s or 0.0)
    return {"init_s": init_s, "first_step_s": first_step_s, "time_to_first_step_s": total}


def measure(task: dict, emit: Emit) -> dict:
    """Measures one task (see :class:`benchmarks.orchestrate.Task`); returns its record's fields.

    Emits ``{"event": "phase", "phase": ...}`` as it enters ``"setup"``,
    ``"compile"`` and ``"run"``, so the parent can hold each phase to its
    budget.  Task mode ``"first_step"`` stops after the first step;
    ``"jit_init"`` only times ``jax.jit(init)`` (in the compile phase).
    """
    COUNTER.install()
    spec = systems.get(task["system"])
    workload = workloads.get(task["workload"])
    optimizer = optimizers.get(task["optimizer"])

    emit({"event": "phase", "phase": "setup"})
    params, grads = workloads.host_trees(workload.key)
    release_memory()
    rss_start = rss_bytes()
    peak_reset = reset_peak_rss()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        runner = spec.build(systems.BuildRequest(optimizer, task["family"], workload, params, grads))
        if task["mode"] == "jit_init":
            emit({"event": "phase", "phase": "compile"})
            jit_init_s = runner.jit_init_s()
            runner.close()
            return {"status": "ok", "jit_init_s": jit_init_s}
        init_s, init_compiles = None, None
        if runner.separate_init:
            COUNTER.reset()
            t1 = time.perf_counter()
            runner.init()
            init_s, init_compiles = time.perf_counter() - t1, COUNTER.compiles
        setup_s = time.perf_counter() - t0

        emit({"event": "phase", "phase": "compile"})
        timings = {k: float(v) for k, v in runner.compile().items()}
        first = first_step(runner, init_s, timings)
        if task["mode"] == "first_step":
            runner.close()
            return {"status": "ok", **timings, **first, "init_compiles": init_compiles}

        emit({"event": "phase", "phase": "run"})
        warm = timed_steps(runner.step, task["warmup"] - 1)
    peak_build = peak_rss_bytes()
    repeats = task["repeats"]
    if warm:  # fewer timed steps (not under 10) where they would take longer than the budget
        repeats = min(repeats, max(10, int(task["timed_budget_s"] / statistics.median(warm))))

    # The timed steps.
    reset_peak_rss()
    steady_start = rss_bytes()
    COUNTER.reset()
    times = timed_steps(runner.step, repeats)
    steady_traces, steady_compiles = COUNTER.traces, COUNTER.compiles
    steady_peak = peak_rss_bytes()

    state_all, state_arrays = runner.state_bytes()
    held_elements = runner.held_elements()
    compile_method, uses_jax = runner.compile_method, runner.uses_jax
    checks = runner.checks() if uses_jax else {}
    runner.close()
    del runner
    release_memory()

    ms = sorted(1e3 * t for t in times)
    return {
        "status": "ok",
        "compile_method": compile_method,
        **timings,
        **first,
        "init_compiles": init_compiles,
        "setup_s": setup_s,
        "step_ms": statistics.median(ms),
        "step_ms_min": ms[0],
        "step_ms_max": ms[-1],
        "steps_ms": [round(x, 4) for x in (1e3 * t for t in times)],
        "rss_start": rss_start,
        "rss_peak": max(peak_build, steady_peak),
        "rss_peak_reset": peak_reset,
        "steady_rss_start": steady_start,
        "steady_rss_peak": steady_peak,
        "state_bytes": state_all,
        "state_array_bytes": state_arrays,
        "held_params_elements": held_elements,
        "steady_traces": steady_traces if uses_jax else None,
        "steady_compiles": steady_compiles if uses_jax else None,
        **checks,
        "warnings": sorted({f"{w.category.__name__}: {w.message}"[:300] for w in caught}),
    }
