"""Keras's recorded answers to bad constructor arguments (``tests/bad_arguments.json``,
which ``docs/errors.md`` and ``tests/keras/test_argument_table.py`` rely on) are
what Keras does: TF-Keras in-process, Keras 3 in a subprocess.

Of the numeric arguments' cases, every 10th TF-Keras case and every 25th
Keras 3 case is asked (Keras 3 compiles each step: about a third of a second
a case); of the other arguments' cases, one of each (family, argument,
value, recorded outcome).  Every case with ``JAXOPT_KERAS_ERROR_TABLE=all``
(about six minutes).  The strides walk through the kinds of bad value.
"""

from __future__ import annotations

import os

import pytest

import bad_arguments as B

ALL = os.environ.get("JAXOPT_KERAS_ERROR_TABLE") == "all"


def _one_of_each(cases):
    """One case of each (family, argument, kind, recorded outcome): the first class's."""
    recorded, seen = B.load_snapshot(), {}
    for f, n, a, k in cases:
        seen.setdefault((f, a, k, recorded[B.case_key(f, n, a, k)]), (f, n, a, k))
    return list(seen.values())


SAMPLE = (
    list(B.numeric_cases(("legacy", "current")))[:: 1 if ALL else 10]
    + list(B.numeric_cases(("keras3",)))[:: 1 if ALL else 25]
    + (list(B.other_cases()) if ALL else _one_of_each(B.other_cases()))
)


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
