"""The io tests write their Keras files with TF-Keras, in the test (Keras 3 in a subprocess)."""

import fcntl
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402,F401

tf.config.set_visible_devices([], "GPU")

KERAS3_FILES = os.path.join(os.path.dirname(__file__), "keras3_files.py")


def keras3(*args):
    """``keras3_files.py`` with ``args`` in a fresh process (JAX backend): its ``RESULT``."""
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("XLA_FLAGS", None)
    env.pop("TF_USE_LEGACY_KERAS", None)
    proc = subprocess.run([sys.executable, KERAS3_FILES, *args], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


@pytest.fixture(scope="session")
def written(tmp_path_factory):
    """Keras 3's own files (``keras3_files.py``, JAX backend, a fresh process) and what its live objects held.

    Written once per test run: under pytest-xdist, the first worker to ask
    writes them (about a minute of Keras 3) into the run's temporary directory,
    which all the workers share, and the others wait for it and read its
    answer.  The tests only read the files."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # one process: no other to share with
        return keras3(str(tmp_path_factory.mktemp("keras3")))
    shared = tmp_path_factory.getbasetemp().parent  # the run's directory, above each worker's own
    answer = shared / "keras3_files.json"
    with open(shared / "keras3_files.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not answer.exists():
            directory = shared / "keras3_files"
            directory.mkdir(exist_ok=True)  # a worker that failed may have made it
            answer.write_text(json.dumps(keras3(str(directory))))
        return json.loads(answer.read_text())


@pytest.fixture(scope="session")
def keras3_load():
    """``keras3_load(path)``: what Keras 3 holds after ``keras.saving.load_model(path)`` (a fresh process)."""
    return lambda path: keras3("load", str(path))
