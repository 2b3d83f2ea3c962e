"""TF checkpoints (tf.train.Checkpoint, TF-format save_weights, SavedModel): port and continue.

A checkpoint holds no optimizer config: config= gives it (the optimizer's
serialization, what the user knows), except for a SavedModel, whose
keras_metadata.pb has it.  Every optimizer of both families, for the two
checkpoint kinds; a SavedModel for one optimizer per family (it is slow to
write).
"""

from __future__ import annotations

import pytest

from io_runs import AFTER, BEFORE, as_list, case_id, cases, run

CASES = cases()


@pytest.mark.parametrize("kind", ["ckpt", "tfw"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_port_from_tf_checkpoint_continues_the_keras_run(report, tmp_path_factory, case, kind):
    r = run(tmp_path_factory, case)
    tx, params, state = r.port(kind, config=r.config)
    ours, _ = r.continue_in_jax(tx, params, state, BEFORE, BEFORE + AFTER)
    r.check(report, f"{kind} Keras->file->JAX {case_id(case)}", as_list(ours))


@pytest.mark.parametrize("case", [c for c in CASES if c[1] == "Adam"], ids=case_id)
def test_port_from_savedmodel_needs_no_config(report, tmp_path_factory, case):
    r = run(tmp_path_factory, case, kinds=("savedmodel",))
    tx, params, state = r.port("savedmodel")
    ours, _ = r.continue_in_jax(tx, params, state, BEFORE, BEFORE + AFTER)
    r.check(report, f"savedmodel Keras->file->JAX {case_id(case)}", as_list(ours))
