"""Multi-process data-parallel training with jax.distributed on CPU.

The same training runs in three ways:

* **worker** (one of N processes, 8 / N CPU devices each)::

      python examples/multiprocess.py --coordinator 127.0.0.1:PORT \\
          --num-processes 2 --process-id 0 --out params.npz      # and --process-id 1

  Each process calls ``jax.distributed.initialize`` (gloo CPU collectives),
  sees all 8 devices of the job in ``jax.devices()`` and 8 / N of them in
  ``jax.local_devices()``; process 0 writes the final parameters to ``--out``.

* **single** (one process with 8 local devices, the reference)::

      python examples/multiprocess.py --single --out reference.npz

* **launch** (starts 2 workers on a free loopback port, waits with a timeout,
  kills them on failure, runs the single-process reference and prints the
  largest difference)::

      python examples/multiprocess.py --launch

The program is identical in every mode: ``jax.jit`` of a ``jax.shard_map``
over a one-axis ``Mesh`` of all 8 devices of the job.  Parameters and
optimizer state are replicated (``P()``), each step's global batch of 64
samples is split over the ``"data"`` axis (8 samples per device), and
``jaxopt_keras.aggregate_gradients("data", ...)`` all-reduces the gradients
over all 8 devices -- across processes in worker mode.  Two optimizers are
trained, one per Keras family and aggregation convention:

* ``legacy_adam``: ``legacy.adam(clipnorm=...)``, ``reduction="sum"``, each
  device's loss divided by the *global* batch size (Keras's convention:
  per-replica losses scaled by the global batch, gradients summed);
* ``rmsprop``: current ``rmsprop(centered, momentum, global_clipnorm=...)``,
  ``reduction="mean"`` of per-device mean losses.

Both give the gradient of the global mean loss; clipping comes after the
all-reduce, as in Keras.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

N_DEVICES = 8  # devices of the whole job, in every mode
NUM_PROCESSES = 2  # workers started by --launch
AXIS = "data"
STEPS = 40
PER_DEVICE_BATCH = 8
GLOBAL_BATCH = N_DEVICES * PER_DEVICE_BATCH
N_FEATURES = 4
HIDDEN = 16


# --------------------------------------------------------------------------
# Data and model (deterministic, numpy: every process builds the same arrays).
# --------------------------------------------------------------------------


def make_data() -> tuple[np.ndarray, np.ndarray]:
    """STEPS global batches: x (STEPS, GLOBAL_BATCH, F), y (STEPS, GLOBAL_BATCH, 1)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (STEPS, GLOBAL_BATCH, N_FEATURES)).astype(np.float32)
    y = np.sin(3.0 * x[..., 0]) + x[..., 1] * x[..., 2] - 0.5 * x[..., 3]
    y = y + 0.05 * rng.standard_normal(y.shape)
    return x, y[..., None].astype(np.float32)


def init_params() -> dict:
    rng = np.random.default_rng(1)
    return {
        "dense_1": {
            "kernel": (0.5 * rng.standard_normal((N_FEATURES, HIDDEN))).astype(np.float32),
            "bias": np.zeros(HIDDEN, np.float32),
        },
        "dense_2": {
            "kernel": (0.2 * rng.standard_normal((HIDDEN, 1))).astype(np.float32),
            "bias": np.zeros(1, np.float32),
        },
    }


def optimizers() -> dict:
    """name -> (reduction, optimizer).  Imported lazily: jax must not load before the flags are set."""
    import jaxopt_keras as jk

    return {
        "legacy_adam": ("sum", jk.legacy.adam(learning_rate=0.05, decay=1e-3, clipnorm=0.5)),
        "rmsprop": ("mean", jk.rmsprop(learning_rate=0.01, momentum=0.5, centered=True, global_clipnorm=1.0)),
    }


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k in sorted(tree):
        v = tree[k]
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


# --------------------------------------------------------------------------
# Training (worker and single modes).
# --------------------------------------------------------------------------


def set_host_device_count(n: int) -> None:
    """Ask XLA for n CPU devices; only effective before jax is imported."""
    if "jax" in sys.modules:
        raise RuntimeError("set the device count before importing jax")
    flag = "--xla_force_host_platform_device_count"
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(flag)]
    os.environ["XLA_FLAGS"] = " ".join([*flags, f"{flag}={n}"])


def train(args: argparse.Namespace) -> None:
    if args.watchdog:
        # If anything hangs (a peer died, a collective never completes), dump
        # the Python stacks and exit, so no process outlives its launcher.
        faulthandler.dump_traceback_later(args.watchdog, exit=True)
    distributed = not args.single
    set_host_device_count(N_DEVICES // args.num_processes if distributed else N_DEVICES)

    import jax

    jax.config.update("jax_platforms", "cpu")
    if distributed:
        # Cross-process collectives on CPU: gloo, over TCP (the default in jax
        # 0.10.2; set explicitly so as not to depend on the default).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
            # Bind the coordinator service to the given address only, not to
            # every interface ("[::]:port", the default), and skip cluster
            # auto-detection (Slurm, Open MPI, ...): everything is given.
            coordinator_bind_address=args.coordinator,
            cluster_detection_method="deactivate",
            initialization_timeout=args.init_timeout,
            heartbeat_timeout_seconds=60,
            shutdown_timeout_seconds=60,
        )

    import jax.numpy as jnp
    from jax import lax
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import jaxopt_keras as jk

    pid, nproc = jax.process_index(), jax.process_count()
    devices = jax.devices()  # every device of the job, all processes
    assert len(devices) == N_DEVICES, f"expected {N_DEVICES} devices, got {len(devices)}"
    assert nproc == (args.num_processes if distributed else 1)
    assert jax.local_device_count() == N_DEVICES // nproc
    tag = f"[process {pid}/{nproc}]"

    mesh = Mesh(np.array(devices), (AXIS,))
    replicated = NamedSharding(mesh, P())
    batch_sharding = NamedSharding(mesh, P(AXIS))

    def global_array(value: np.ndarray, sharding: NamedSharding) -> jax.Array:
        # The callback is asked only for the blocks of this process's devices;
        # a real input pipeline would load just those rows.
        return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

    x_all, y_all = make_data()
    params0 = init_params()

    def predict(params, x):
        h = jnp.tanh(x @ params["dense_1"]["kernel"] + params["dense_1"]["bias"])
        return h @ params["dense_2"]["kernel"] + params["dense_2"]["bias"]

    results: dict[str, np.ndarray] = {f"initial/{k}": v for k, v in flatten(params0).items()}
    digest = hashlib.sha256()
    for name, (reduction, opt) in optimizers().items():
        tx = jk.chain(jk.aggregate_gradients(AXIS, reduction), opt)
        # "sum": per-device loss over the global batch size (Keras); "mean": per-device mean.
        denominator = GLOBAL_BATCH if reduction == "sum" else PER_DEVICE_BATCH
        reduce_loss = lax.psum if reduction == "sum" else lax.pmean

        def local_step(params, state, x, y, tx=tx, denominator=denominator, reduce_loss=reduce_loss):
            # x, y: this device's 8 samples of the global batch.
            def loss_fn(p):
                return jnp.sum((predict(p, x) - y) ** 2) / denominator

            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, state = tx.update(grads, state, params)  # all-reduce, clip, step
            return jk.apply_updates(params, updates), state, reduce_loss(loss, AXIS)

        # check_vma=False: each device's gradient is its own (with the check on,
        # jax.grad of the replicated params would sum them already, and
        # aggregate_gradients refuses that); params, state and loss come out
        # replicated, computed from all-reduced values.
        step = jax.jit(
            jax.shard_map(
                local_step,
                mesh=mesh,
                in_specs=(P(), P(), P(AXIS), P(AXIS)),
                out_specs=(P(), P(), P()),
                check_vma=False,
            ),
            donate_argnums=(0, 1),
        )
        init = jax.jit(jax.shard_map(tx.init, mesh=mesh, in_specs=P(), out_specs=P()))

        params = jax.tree_util.tree_map(lambda v: global_array(v, replicated), params0)
        state = init(params)
        losses = []
        for t in range(STEPS):
            x = global_array(x_all[t], batch_sharding)
            y = global_array(y_all[t], batch_sharding)
            params, state, loss = step(params, state, x, y)
            # Wait for the step before dispatching the next one.  Without this
            # the loop runs ahead of the devices, which with gloo collectives
            # in jax 0.10.2 can deadlock: the launches of later steps block,
            # waiting for a device's quota of in-flight programs, in the worker
            # threads that the pending all-reduces of earlier steps need
            # (5 of 13 runs of this loop hung on 2 cores without the wait).
            losses.append(float(jax.block_until_ready(loss)))

        for key, leaf in flatten(params, f"{name}/").items():
            local = [np.asarray(s.data) for s in leaf.addressable_shards]
            # Every local replica must be bit-identical.
            assert all(np.array_equal(local[0], a) for a in local[1:]), f"{tag} {key}: local replicas differ"
            results[key] = local[0]
            digest.update(key.encode() + local[0].tobytes())
        results[f"{name}/loss"] = np.array(losses, np.float32)
        print(f"{tag} {name}: loss {results[name + '/loss'][0]:.4f} -> {results[name + '/loss'][-1]:.4f}", flush=True)

    results["meta/process_count"] = np.array(nproc)
    results["meta/device_count"] = np.array(len(devices))
    results["meta/local_device_count"] = np.array(jax.local_device_count())
    results["meta/mesh_device_process"] = np.array([d.process_index for d in mesh.devices.flat])
    print(f"{tag} params sha256 {digest.hexdigest()}", flush=True)
    if pid == 0 and args.out:
        np.savez(args.out, **results)
        print(f"{tag} wrote {args.out}", flush=True)
    if distributed:
        jax.distributed.shutdown()


# --------------------------------------------------------------------------
# Launcher.
# --------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on the loopback interface (bind to port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env() -> dict:
    """The environment for the workers: without proxy variables, which gRPC
    (the coordinator's transport) would honour even for 127.0.0.1."""
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


class ProcessesFailed(RuntimeError):
    def __init__(self, message: str, outputs: list[str]):
        body = "".join(f"\n--- process {i} ---\n{out}" for i, out in enumerate(outputs))
        super().__init__(message + body)
        self.outputs = outputs


def run_processes(commands: list[list[str]], timeout: float, logdir: str, started: list | None = None) -> list[str]:
    """Runs the commands concurrently and returns their outputs (stdout + stderr).

    Raises ProcessesFailed as soon as one exits non-zero, or at the deadline.
    Whatever happens, every child still running is killed and reaped.  Each
    child's ``Popen`` is also appended to ``started`` when given.
    """
    procs, logs = [], []
    with contextlib.ExitStack() as files:
        try:
            for i, cmd in enumerate(commands):
                logs.append(files.enter_context(open(os.path.join(logdir, f"proc{i}.log"), "w+")))
                procs.append(subprocess.Popen(cmd, stdout=logs[-1], stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, env=child_env()))
                if started is not None:
                    started.append(procs[-1])
            return _wait(procs, logs, timeout)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            for p in procs:
                p.wait()


def _wait(procs: list[subprocess.Popen], logs: list, timeout: float) -> list[str]:
    """Polls until all exit 0 (returns their outputs), one fails, or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        codes = [p.poll() for p in procs]
        bad = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
        if bad:
            raise ProcessesFailed(f"process {bad[0][0]} exited with code {bad[0][1]}", [_read(f) for f in logs])
        if all(c == 0 for c in codes):
            return [_read(f) for f in logs]
        if time.monotonic() > deadline:
            raise ProcessesFailed(f"timed out after {timeout:.0f} s", [_read(f) for f in logs])
        time.sleep(0.1)


def _read(f) -> str:
    f.flush()
    f.seek(0)
    return f.read()


PORT_TAKEN_MESSAGES = ("Failed to add port to server", "Failed to start RPC server")


def run_workers(
    script: str,
    out: str,
    timeout: float,
    logdir: str,
    attempts: int = 3,
    *,
    init_timeout: int | None = None,
    watchdog: float | None = None,
    started: list | None = None,
) -> list[str]:
    """Starts NUM_PROCESSES workers on a free loopback port and waits for them.

    ``init_timeout`` (jax.distributed's) and ``watchdog`` (the workers' own
    deadline) default to ``timeout``; ``started`` is as in :func:`run_processes`.

    The port is free when probed but could be taken before process 0 binds it;
    process 0 then fails at once (gRPC: "Failed to add port to server", jax:
    "Failed to start RPC server") and the workers are started again on
    another port.
    """
    for attempt in range(attempts):
        coordinator = f"127.0.0.1:{free_port()}"
        workers = [
            [sys.executable, script, "--coordinator", coordinator, "--num-processes", str(NUM_PROCESSES),
             "--process-id", str(i), "--out", out,
             "--init-timeout", str(int(timeout if init_timeout is None else init_timeout)),
             "--watchdog", str(timeout if watchdog is None else watchdog)]
            for i in range(NUM_PROCESSES)
        ]
        try:
            return run_processes(workers, timeout, logdir, started)
        except ProcessesFailed as e:
            port_taken = any(m in e.outputs[0] for m in PORT_TAKEN_MESSAGES)
            if not port_taken or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def run_single(
    script: str, out: str, timeout: float, logdir: str, *, watchdog: float | None = None, started: list | None = None
) -> str:
    """Runs the single-process reference (8 local devices) and returns its output."""
    cmd = [sys.executable, script, "--single", "--out", out, "--watchdog", str(timeout if watchdog is None else watchdog)]
    return run_processes([cmd], timeout, logdir, started)[0]


def max_difference(a: dict, b: dict) -> tuple[float, float]:
    """(max |a - b|, max over leaves of max|a - b| / max|b - initial|) over the parameters."""
    abs_diff = rel_diff = 0.0
    for key, value in b.items():
        _, _, leaf = key.partition("/")
        if key.startswith(("initial/", "meta/")) or f"initial/{leaf}" not in b:  # losses
            continue
        ref = value.astype(np.float64)
        d = float(np.max(np.abs(a[key] - ref)))
        moved = float(np.max(np.abs(ref - b[f"initial/{leaf}"])))
        abs_diff, rel_diff = max(abs_diff, d), max(rel_diff, d / moved)
    return abs_diff, rel_diff


def _show(output: str) -> None:
    print("".join(line for line in output.splitlines(True) if not line.startswith("[Gloo]")), end="")


def launch(args: argparse.Namespace) -> None:
    script = os.path.abspath(__file__)
    with tempfile.TemporaryDirectory() as tmp:
        multi_out, single_out = os.path.join(tmp, "multi.npz"), os.path.join(tmp, "single.npz")
        t0 = time.monotonic()
        for output in run_workers(script, multi_out, args.timeout, tmp):
            _show(output)
        t1 = time.monotonic()
        print(f"{NUM_PROCESSES} processes x {N_DEVICES // NUM_PROCESSES} devices: {t1 - t0:.1f} s\n")
        _show(run_single(script, single_out, args.timeout, tmp))
        print(f"1 process x {N_DEVICES} devices: {time.monotonic() - t1:.1f} s\n")
        with np.load(multi_out) as m, np.load(single_out) as s:
            multi, single = dict(m), dict(s)
    abs_diff, rel_diff = max_difference(multi, single)
    print(f"max |multi-process - single-process| over the parameters: {abs_diff:.3g} "
          f"({rel_diff:.3g} of the distance they moved)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--launch", action="store_true", help="run 2 workers and the single-process reference")
    mode.add_argument("--single", action="store_true", help="one process with 8 local devices")
    mode.add_argument("--process-id", type=int, help="this worker's index (worker mode)")
    parser.add_argument("--coordinator", help="host:port of process 0's coordinator service (worker mode)")
    parser.add_argument("--num-processes", type=int, default=NUM_PROCESSES)
    parser.add_argument("--out", help="where process 0 writes the final parameters (.npz)")
    parser.add_argument("--init-timeout", type=int, default=60, help="jax.distributed initialization timeout, s")
    parser.add_argument("--timeout", type=float, default=300.0, help="--launch: deadline per run, s")
    parser.add_argument("--watchdog", type=float, help="exit (status 1, with stack dump) after this many seconds")
    args = parser.parse_args(argv)
    if args.process_id is not None:
        if not args.coordinator:
            parser.error("--process-id needs --coordinator")
        if N_DEVICES % args.num_processes:
            parser.error(f"--num-processes must divide {N_DEVICES}")
    if args.single:
        args.num_processes = 1
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.launch:
        launch(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
