"""One measurement, inside the worker process.

:func:`measure` builds a system's runner for one cell, compiles it, warms it
up, times ``repeats`` steps, and records memory and structural checks:

* **step time**: wall time of each step (dispatch to result ready); the
  report uses the median;
* **compile time**: see :attr:`benchmarks.systems.Runner.compile_method`;
* **peak RSS**: the process's resident-set high-water mark
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), reset before the
  measurement by writing ``5`` to ``/proc/self/clear_refs`` so that each
  measurement sees its own peak; reported absolute and above the RSS at the
  start.  A second reset before the timed steps gives the *steady* extra: how
  far the timed steps push RSS above what was resident when they started (a
  donated step that allocated a full-size copy would show it here);
* **state size**: bytes of the optimizer state's leaves, in total and for its
  non-scalar leaves (the slots);
* **structure** (JAX systems): compilations and traces during the timed
  steps (from ``jax.monitoring``), the fraction of donated input buffers
  deleted by a step, and whether a step makes implicit device-to-host or
  host-to-device transfers (``jax.transfer_guard``).
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

Emit = Callable[[dict], None]


# --------------------------------------------------------------------------
# Memory.
# --------------------------------------------------------------------------


def rss_bytes() -> int:
    """The process's current resident set size."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


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


# --------------------------------------------------------------------------
# The measurement.
# --------------------------------------------------------------------------


def measure(task: dict, emit: Emit) -> dict:
    """Measures one task (see :class:`benchmarks.orchestrate.Task`); returns its record's fields.

    Emits ``{"event": "phase", "phase": ...}`` as it enters ``"setup"``,
    ``"compile"`` and ``"run"``, so the parent can hold each phase to its budget.
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
        setup_s = time.perf_counter() - t0

        emit({"event": "phase", "phase": "compile"})
        timings = runner.compile()

        emit({"event": "phase", "phase": "run"})
        warm = task["warmup"] if runner.compile_method == "lower+compile" else max(0, task["warmup"] - 1)
        for _ in range(max(1, warm)):
            runner.step()
    peak_build = peak_rss_bytes()

    # The timed steps.
    reset_peak_rss()
    steady_start = rss_bytes()
    COUNTER.reset()
    times = []
    for _ in range(task["repeats"]):
        t = time.perf_counter()
        runner.step()
        times.append(time.perf_counter() - t)
    steady_traces, steady_compiles = COUNTER.traces, COUNTER.compiles
    steady_peak = peak_rss_bytes()

    state_all, state_arrays = runner.state_bytes()
    compile_method, uses_jax = runner.compile_method, runner.uses_jax
    checks = runner.checks() if uses_jax else {}
    runner.close()
    del runner
    release_memory()

    ms = sorted(1e3 * t for t in times)
    return {
        "status": "ok",
        "compile_method": compile_method,
        **{k: float(v) for k, v in timings.items()},
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
        "steady_traces": steady_traces if uses_jax else None,
        "steady_compiles": steady_compiles if uses_jax else None,
        **checks,
        "warnings": sorted({f"{w.category.__name__}: {w.message}"[:300] for w in caught}),
    }
