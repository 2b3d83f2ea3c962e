"""TF-Keras .h5 (model.save): a run continued from our port matches the run continued in Keras, and back.

For every optimizer of both TF-Keras families (io_runs.cases): TF-Keras
trains 20 steps and saves; the port continues 80 steps in JAX, Keras 80 in
TF-Keras, from the same file state, on the same batches.  The reverse trip:
JAX continues 40 steps, writes the file with write_keras, TF-Keras loads it
(tf_keras.models.load_model) and does the last 40.  Agreement within
harness.TOLERANCE of the distance moved; float64 for two optimizers.
"""

from __future__ import annotations

import numpy as np
import pytest

import io_runs
from io_runs import AFTER, BEFORE, as_list, case_id, cases, reverse_trip, run

CASES = cases()
# A learning rate float32 holds exactly: TF-Keras's current-family variable for it is float64 under floatx float64.
FLOAT64 = [(f, n, dict(k, learning_rate=2.0**-7)) for f, n, k in CASES if (f, n) in (("legacy", "Adam"), ("current", "Adam"))]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_port_from_h5_continues_the_keras_run(report, tmp_path_factory, case):
    r = run(tmp_path_factory, case)
    tx, params, state = r.port("h5")
    ours, _ = r.continue_in_jax(tx, params, state, BEFORE, BEFORE + AFTER)
    r.check(report, f"h5 Keras->file->JAX {case_id(case)}", as_list(ours))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_h5_written_by_us_continues_in_keras(report, tmp_path_factory, tmp_path, case):
    reverse_trip(report, run(tmp_path_factory, case), "h5", tmp_path)


@pytest.mark.parametrize("case", FLOAT64, ids=case_id)
def test_float64_both_ways(report, tmp_path_factory, tmp_path, case):
    r = run(tmp_path_factory, case, dtype=np.float64, kinds=("h5",))
    tx, params, state = r.port("h5")
    ours, _ = r.continue_in_jax(tx, params, state, BEFORE, BEFORE + AFTER)
    r.check(report, f"h5 Keras->file->JAX {case_id(case)}", as_list(ours))
    reverse_trip(report, r, "h5", tmp_path)


def test_every_optimizer_is_covered():
    assert {case_id(c) for c in CASES} == {f"{f}.{e.class_name}" for f in ("legacy", "current") for e in io_runs.registry.entries(f)}
