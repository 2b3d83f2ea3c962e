"""examples/port_keras_model.py runs end to end: the nnx port continues TF-Keras's and Keras 3's runs, and back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "port_keras_model.py"


def test_port_model_example(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("XLA_FLAGS", None)
    plot = tmp_path / "losses.png"
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--plot", str(plot)], capture_output=True, text=True, env=env, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    assert "Adam (legacy family), iteration 64" in out
    assert "AdamW (keras3 family), iteration 64" in out
    for world in ("TF-Keras", "Keras 3"):
        worst = float(re.search(world + r": max relative loss difference over 120 steps: ([0-9.e+-]+)", out).group(1))
        assert worst < 1e-5
        back = float(re.search(f"back in {world} from iteration 184: " + r"max \|loss difference\| over 20 steps ([0-9.e+-]+)", out).group(1))
        assert back < 1e-5
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
