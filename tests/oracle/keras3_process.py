"""Keras 3 processes that stay up for the test session, one per configuration.

Keras 3 runs in its own process (``KERAS_BACKEND=jax``: the backend is fixed
at Keras's first import, and the test session imports TF-Keras).  Starting
one costs 5-10 s of imports, more than most requests take: a runner started
with ``--serve`` answers one JSON request a line on stdin with one
``RESULT <json>`` (or ``FAILED <traceback as json>``) line on stdout, until
stdin closes.  A process is kept per runner, ``XLA_FLAGS`` and x64 setting
(both fixed when jax starts), and closed when the session ends.  Each request
builds its own optimizers, variables and jitted steps, as a fresh process
would: only the imports and XLA's cache of compiled programs are shared.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import tempfile
import time

_PROCESSES: dict[tuple, "_Process"] = {}


class _Process:
    def __init__(self, runner: str, xla_flags: str, x64: bool):
        env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
        env.pop("TF_USE_LEGACY_KERAS", None)
        if xla_flags:
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {xla_flags}".strip()
        self.stderr = tempfile.TemporaryFile()
        args = [sys.executable, runner, "--serve"] + (["--x64"] if x64 else [])
        self.proc = subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.pending = b""

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-3000:]

    def _line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise TimeoutError(f"Keras 3 process gave no answer in {timeout:.0f} s\n{self._stderr_tail()}")
            if select.select([fd], [], [], remaining)[0]:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Keras 3 process ended (code {self.proc.wait()})\n{self._stderr_tail()}")
                self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode()

    def ask(self, request: object, timeout: float) -> object:
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        while True:
            line = self._line(timeout)
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT ") :])
            if line.startswith("FAILED "):
                raise AssertionError("Keras 3 runner failed:\n" + json.loads(line[len("FAILED ") :]))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.stderr.close()


def ask_keras3(runner: str, request: object, xla_flags: str = "", x64: bool = False, timeout: float = 1200) -> object:
    """``runner``'s answer to ``request``, from its session-long process for ``xla_flags`` and ``x64``.
    A process that failed to answer is dropped (the next request starts another)."""
    key = (runner, xla_flags, x64)
    if key not in _PROCESSES or _PROCESSES[key].proc.poll() is not None:
        _PROCESSES[key] = _Process(runner, xla_flags, x64)
    try:
        return _PROCESSES[key].ask(request, timeout)
    except (TimeoutError, RuntimeError):
        _PROCESSES.pop(key).close()
        raise


@atexit.register
def _close_all() -> None:
    for process in _PROCESSES.values():
        process.close()
    _PROCESSES.clear()


def serve(answer) -> None:
    """The runner's side: answer each JSON line on stdin with a ``RESULT`` or ``FAILED`` line."""
    import traceback

    for line in sys.stdin:
        try:
            out = "RESULT " + json.dumps(answer(json.loads(line)))
        except Exception:  # the test shows the runner's traceback
            out = "FAILED " + json.dumps(traceback.format_exc())
        print(out, flush=True)
