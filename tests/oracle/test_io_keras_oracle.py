"""TF-Keras .keras archives and .weights.h5 files: port and continue, and back.

As test_io_h5_oracle.py, with the .keras and .weights.h5 files each run also
saved (current family: TF-Keras keeps no legacy optimizer state in either).
A .weights.h5 holds no config: config= gives the model's and the optimizer's.
"""

from __future__ import annotations

import pytest

from io_runs import AFTER, BEFORE, as_list, case_id, cases, reverse_trip, run
from jaxopt_keras import io

CASES = cases(("current",))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_port_from_keras_archive_continues_the_keras_run(report, tmp_path_factory, case):
    r = run(tmp_path_factory, case)
    tx, params, state = r.port("keras")
    ours, _ = r.continue_in_jax(tx, params, state, BEFORE, BEFORE + AFTER)
    r.check(report, f"keras Keras->file->JAX {case_id(case)}", as_list(ours))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_port_from_weights_h5_continues_the_keras_run(report, tmp_path_factory, case):
    r = run(tmp_path_factory, case)
    tx, params, state = r.port("weights.h5", config={"model": r.model_config, "optimizer": r.config})
    ours, _ = r.continue_in_jax(tx, params, state, BEFORE, BEFORE + AFTER)
    r.check(report, f"weights.h5 Keras->file->JAX {case_id(case)}", as_list(ours))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_keras_archive_written_by_us_continues_in_keras(report, tmp_path_factory, tmp_path, case):
    reverse_trip(report, run(tmp_path_factory, case), "keras", tmp_path)


def test_a_legacy_optimizer_has_no_state_in_a_keras_archive(tmp_path):
    import kerasfiles_for_oracle as kf

    path = kf.legacy_keras_archive(tmp_path)
    with pytest.raises(io.KerasFileError, match="use model.save\\('m.h5'\\)"):
        io.read_keras(path)
