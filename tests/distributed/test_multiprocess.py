"""Multi-process data-parallel training: 2 processes x 4 CPU devices == 1 process x 8.

The test starts ``examples/multiprocess.py`` three times, as subprocesses,
through the example's own launcher (``run_workers``, ``run_single``):

* two workers, ``--process-id 0`` and ``1``, which meet through
  ``jax.distributed.initialize`` at a coordinator on 127.0.0.1 and a port
  found free by binding port 0 (if the port is taken before process 0 binds
  it, process 0 fails at once and the pair is started again on another port);
* then the reference, ``--single``: one process with 8 local devices.

All three run the same program -- ``jit(shard_map(...))`` over a mesh of 8
devices, gradients all-reduced by ``aggregate_gradients("data", ...)``, for
legacy Adam (clipnorm, "sum") and current RMSprop (centered, momentum,
global_clipnorm, "mean") over 40 steps -- on the same data, split the same way
over the 8 devices.  Only the all-reduce differs: across the two processes it
is gloo's (TCP, 8 ranks), in the reference XLA's in-process one.

Cleanup: each run has a deadline (``WORKER_TIMEOUT``, ``REFERENCE_TIMEOUT``);
the runner kills and reaps every child still alive in a ``finally`` block --
on failure, timeout, or interruption -- and the children also get a
``--watchdog`` (faulthandler: dump stacks and exit) a little after the
deadline, so they exit even if pytest itself is killed.

Tolerance (``RTOL = 1e-4``, float32, relative to the distance each parameter
leaf moved from its initial value, ~0.08-0.8 here).  The results are not
bit-equal: float32 addition is not associative, and gloo adds the 8 per-device
gradients in another order than the in-process all-reduce, so the aggregated
gradient differs by up to ``7 * eps32 * sum_i |g_i|`` per element (a relative
~1e-6).  Clipping, the optimizer step and the update are the same compiled
code on both sides, so they carry that difference forward roughly 1:1 (Adam
and RMSprop normalize the step), and once two updates differ, ``p + u`` may
round to a different float32: up to one ulp of ``|p| <= 1.4`` (1.2e-7) per
step, i.e. at most ~5e-6 absolute, ~6e-5 of the smallest movement (0.08), over
40 steps.  1e-4 covers that worst case; observed: 3.1e-7 (rmsprop
dense_1/kernel).  The per-step losses (psum/pmean over all 8 devices, so they
also differ by the reduction order) get the same relative tolerance; observed
2.2e-7.  A real fault -- a process training on the wrong rows, gradients
reduced over one process's devices only -- changes every step's gradient by
O(1), i.e. the parameters by a sizeable fraction of their movement (one step
alone moves them ~2.5e-2 of it on average), far outside 1e-4; even process 1
feeding inputs scaled by 1.001 (tried on a modified copy of the example)
ends 4.3e-3 of the movement away, 43x the tolerance.
``test_training_happened`` makes sure the comparison is not between two runs
that hardly moved.
"""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multiprocess.py"
NUM_PROCESSES = 2
N_DEVICES = 8
WORKER_TIMEOUT = 90.0  # seconds; the two workers take ~10 s on 2 shared cores
REFERENCE_TIMEOUT = 60.0  # ~3 s
WATCHDOG_MARGIN = 10.0  # the children's own deadline, after the runner's
PORT_ATTEMPTS = 3
RTOL = 1e-4
OPTIMIZERS = ("legacy_adam", "rmsprop")

_STARTED: list = []  # every child this module started (Popen objects)


def _example():
    """The example as a module: its launcher starts, watches and reaps the children."""
    spec = importlib.util.spec_from_file_location("multiprocess_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    example = _example()
    assert (example.NUM_PROCESSES, example.N_DEVICES) == (NUM_PROCESSES, N_DEVICES)
    tmp = tmp_path_factory.mktemp("multiprocess")
    multi_out, single_out = tmp / "multi.npz", tmp / "single.npz"
    t0 = time.monotonic()
    worker_outputs = example.run_workers(
        str(EXAMPLE), str(multi_out), WORKER_TIMEOUT, str(tmp), PORT_ATTEMPTS,
        init_timeout=60, watchdog=WORKER_TIMEOUT + WATCHDOG_MARGIN, started=_STARTED,
    )
    t1 = time.monotonic()
    single_output = example.run_single(
        str(EXAMPLE), str(single_out), REFERENCE_TIMEOUT, str(tmp),
        watchdog=REFERENCE_TIMEOUT + WATCHDOG_MARGIN, started=_STARTED,
    )
    t2 = time.monotonic()
    print(f"\nmultiprocess: 2 workers {t1 - t0:.1f} s, single-process reference {t2 - t1:.1f} s")
    with np.load(multi_out) as m, np.load(single_out) as s:
        return dict(m), dict(s), worker_outputs, single_output


def _digest(output: str) -> str:
    (digest,) = re.findall(r"params sha256 ([0-9a-f]{64})", output)
    return digest


def _param_keys(results: dict) -> list[str]:
    return [k for k in results if k.startswith(tuple(f"{n}/" for n in OPTIMIZERS)) and not k.endswith("/loss")]


def test_really_two_processes(runs):
    multi, single, worker_outputs, _ = runs
    assert int(multi["meta/process_count"]) == NUM_PROCESSES
    assert int(multi["meta/device_count"]) == N_DEVICES
    assert int(multi["meta/local_device_count"]) == N_DEVICES // NUM_PROCESSES
    # The mesh really spans both processes: devices 0-3 in process 0, 4-7 in process 1.
    np.testing.assert_array_equal(multi["meta/mesh_device_process"], [0, 0, 0, 0, 1, 1, 1, 1])
    assert int(single["meta/process_count"]) == 1 and int(single["meta/device_count"]) == N_DEVICES
    # Each worker checked its 4 local replicas are bit-identical and hashed
    # them: the two processes end with bit-identical parameters too.
    assert len(worker_outputs) == NUM_PROCESSES
    assert _digest(worker_outputs[0]) == _digest(worker_outputs[1])


def test_matches_single_process(runs):
    multi, single, _, _ = runs
    keys = _param_keys(single)
    assert len(keys) == 2 * 4 and sorted(keys) == sorted(_param_keys(multi))
    worst = []
    for key in keys:
        leaf = key.partition("/")[2]
        m, s, p0 = (x.astype(np.float64) for x in (multi[key], single[key], single[f"initial/{leaf}"]))
        assert multi[key].dtype == np.float32 and m.shape == s.shape
        moved = np.max(np.abs(s - p0))
        diff = np.max(np.abs(m - s))
        worst.append((diff / moved, key))
        assert diff <= RTOL * moved, f"{key}: max |multi - single| = {diff:.3g}, {diff / moved:.3g} of its movement"
    print(f"\nmultiprocess vs single process: worst {max(worst)[0]:.2g} of the distance moved ({max(worst)[1]})")


def test_losses_match_every_step(runs):
    multi, single, _, _ = runs
    for name in OPTIMIZERS:
        m, s = multi[f"{name}/loss"], single[f"{name}/loss"]
        assert m.shape == s.shape == (40,)
        np.testing.assert_allclose(m, s, rtol=RTOL, atol=0, err_msg=name)


def test_training_happened(runs):
    """The comparison means something: every leaf moved, the loss fell."""
    _, single, _, _ = runs
    for key in _param_keys(single):
        leaf = key.partition("/")[2]
        assert np.max(np.abs(single[key] - single[f"initial/{leaf}"])) > 0.05, key
    for name in OPTIMIZERS:
        loss = single[f"{name}/loss"]
        assert loss[-1] < 0.3 * loss[0], name


def test_no_child_left_running(runs):
    assert len(_STARTED) >= NUM_PROCESSES + 1
    assert all(p.returncode is not None for p in _STARTED)  # reaped by the runner
