"""The worker process: measures the tasks the parent sends it, one at a time.

Started by :mod:`benchmarks.orchestrate` as ``python -m benchmarks.worker``.
Reads one JSON task per line on stdin; writes JSON events, one per line, on
its original stdout: ``ready`` once, then per task ``phase`` events and a
``result`` or ``error``.  Everything else the process prints (TensorFlow's
logs, library warnings) goes to stderr, which the parent sends to a log file.

The parent starts a fresh worker for every task, so that no compile cache
(JAX's per-shape caches, XLA's, TensorFlow's) is warm when a measurement
starts; JAX's persistent compilation cache is switched off.
"""

from __future__ import annotations

import os

# Keras 3 picks its backend at its first import: before anything imports it.
os.environ["KERAS_BACKEND"] = "jax"
os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from typing import IO  # noqa: E402


def _take_stdout() -> IO[str]:
    """The original stdout as the event channel; fd 1 and ``sys.stdout`` go to stderr."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def main() -> None:
    channel = _take_stdout()

    def emit(event: dict) -> None:
        channel.write(json.dumps(event) + "\n")
        channel.flush()

    # Imported after the redirection, so their import-time output goes to the log.
    import jax

    from benchmarks import measure

    jax.devices()  # start the backend now rather than inside the first measurement
    emit({"event": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        task = json.loads(line)

        def emit_for_task(event: dict, task_id: int = task["id"]) -> None:
            emit({**event, "task": task_id})

        try:
            record = measure.measure(task, emit_for_task)
            emit({"event": "result", "task": task["id"], "record": record})
        except Exception as e:  # noqa: BLE001 - reported to the parent, which records it
            print(traceback.format_exc(), file=sys.stderr, flush=True)
            emit({"event": "error", "task": task["id"], "error": f"{type(e).__name__}: {e}"[:1000]})
            measure.release_memory()


if __name__ == "__main__":
    main()
