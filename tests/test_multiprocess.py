"""Multi-process data-parallel training: 2 processes x 4 CPU devices == 1 process x 8.

The test starts ``examples/multiprocess.py`` three times, as subprocesses:

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

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multiprocess.py"
NUM_PROCESSES = 2
N_DEVICES = 8
WORKER_TIMEOUT = 90.0  # seconds; the two workers take ~10 s on 2 shared cores
REFERENCE_TIMEOUT = 60.0  # ~3 s
WATCHDOG_MARGIN = 10.0  # the children's own deadline, after the runner's
PORT_ATTEMPTS = 3
PORT_TAKEN = ("Failed to add port to server", "Failed to start RPC server")
RTOL = 1e-4
OPTIMIZERS = ("legacy_adam", "rmsprop")

_STARTED: list[subprocess.Popen] = []  # every child this module started


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Failed(Exception):
    def __init__(self, message: str, outputs: list[str]):
        super().__init__(message + "".join(f"\n--- process {i} ---\n{o}" for i, o in enumerate(outputs)))
        self.outputs = outputs


def _run(commands: list[list[str]], timeout: float, logdir: Path) -> list[str]:
    """Runs the commands concurrently; returns their outputs.  Raises _Failed
    when one exits non-zero or at the deadline; never leaves a child running."""
    # Proxy variables would route the coordinator's gRPC traffic, even for 127.0.0.1.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    procs, logs = [], []
    with contextlib.ExitStack() as files:
        try:
            for cmd in commands:
                logs.append(files.enter_context(open(logdir / f"{len(_STARTED)}.log", "w+")))
                procs.append(subprocess.Popen(cmd, stdout=logs[-1], stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, env=env))
                _STARTED.append(procs[-1])
            deadline = time.monotonic() + timeout
            while True:
                codes = [p.poll() for p in procs]
                bad = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
                if bad:
                    raise _Failed(f"process {bad[0][0]} exited with code {bad[0][1]}", _read(logs))
                if all(c == 0 for c in codes):
                    return _read(logs)
                if time.monotonic() > deadline:
                    raise _Failed(f"timed out after {timeout:.0f} s", _read(logs))
                time.sleep(0.1)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            for p in procs:
                p.wait()


def _read(logs) -> list[str]:
    out = []
    for f in logs:
        f.flush()
        f.seek(0)
        out.append(f.read())
    return out


def _watchdog(timeout: float) -> list[str]:
    return ["--watchdog", str(timeout + WATCHDOG_MARGIN)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multiprocess")
    multi_out, single_out = tmp / "multi.npz", tmp / "single.npz"
    t0 = time.monotonic()
    for attempt in range(PORT_ATTEMPTS):
        coordinator = f"127.0.0.1:{_free_port()}"
        workers = [
            [sys.executable, str(EXAMPLE), "--coordinator", coordinator, "--num-processes", str(NUM_PROCESSES),
             "--process-id", str(i), "--out", str(multi_out), "--init-timeout", "60", *_watchdog(WORKER_TIMEOUT)]
            for i in range(NUM_PROCESSES)
        ]
        try:
            worker_outputs = _run(workers, WORKER_TIMEOUT, tmp)
            break
        except _Failed as e:
            if attempt == PORT_ATTEMPTS - 1 or not any(m in e.outputs[0] for m in PORT_TAKEN):
                raise
    t1 = time.monotonic()
    single = [sys.executable, str(EXAMPLE), "--single", "--out", str(single_out), *_watchdog(REFERENCE_TIMEOUT)]
    (single_output,) = _run([single], REFERENCE_TIMEOUT, tmp)
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
