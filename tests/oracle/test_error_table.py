"""Keras's recorded answers to bad constructor arguments (``tests/bad_arguments.json``,
which ``docs/errors.md`` and ``tests/keras/test_argument_table.py`` rely on) are
what Keras does: TF-Keras in-process, Keras 3 in a subprocess.

Every 10th TF-Keras case and every 25th Keras 3 case is asked (Keras 3
compiles each step: about a third of a second a case); every case with
``JAXOPT_KERAS_ERROR_TABLE=all`` (about five minutes).  The strides walk
through the kinds of bad value.
"""

from __future__ import annotations

import os

import pytest

import bad_arguments as B

ALL = os.environ.get("JAXOPT_KERAS_ERROR_TABLE") == "all"
SAMPLE = list(B.cases(("legacy", "current")))[:: 1 if ALL else 10] + list(B.cases(("keras3",)))[:: 1 if ALL else 25]


@pytest.fixture(scope="module")
def snapshot():
    return B.load_snapshot()


@pytest.mark.parametrize("family", ["legacy", "current"])
def test_tf_keras_answers_as_recorded(snapshot, family):
    selected = [c for c in SAMPLE if c[0] == family]
    assert len(selected) > 20
    live = B.keras_outcomes(selected)
    changed = {k: (snapshot[k], v) for k, v in live.items() if snapshot[k] != v}
    assert not changed, f"TF-Keras now answers differently (recorded, live): {changed}"


def test_keras3_answers_as_recorded(snapshot):
    selected = [c for c in SAMPLE if c[0] == "keras3"]
    live = B.keras_outcomes(selected)
    changed = {k: (snapshot[k], v) for k, v in live.items() if snapshot[k] != v}
    assert not changed, f"Keras 3 now answers differently (recorded, live): {changed}"
