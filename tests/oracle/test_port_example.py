"""examples/port_keras_optimizer.py runs end to end and the port continues TF-Keras's trajectory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "port_keras_optimizer.py"


def test_port_example_runs_and_continues_the_keras_trajectory():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, env=env, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    # Both families went through the port, and training continued in both.
    assert "jaxopt_keras.optimizers.legacy.Adam (legacy family)" in out
    assert "jaxopt_keras.optimizers.Nadam (current family)" in out
    assert out.count("restored at iteration 15") == 2
    assert out.count("(iteration 40 = 40)") == 2
    diffs = [float(d) for d in re.findall(r"max \|param difference\| = ([0-9.e+-]+)", out)]
    assert len(diffs) == 2
    # float32 rounding only: the parameters moved by ~0.1-1 over 40 steps.
    assert all(d < 1e-5 for d in diffs), diffs
    worst = float(re.search(r"^max difference: ([0-9.e+-]+)", out, re.M).group(1))
    assert worst < 1e-5
