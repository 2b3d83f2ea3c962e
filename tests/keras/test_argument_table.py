"""Every bad numeric argument of every optimizer and family (``tests/bad_arguments.py``):
our constructors raise what Keras raises (its answers recorded in
``tests/bad_arguments.json``, checked against Keras by
``tests/oracle/test_error_table.py``) or differ on a documented purpose; the
class and the factory always agree; ``docs/errors.md`` is the table of it."""

from __future__ import annotations

import warnings

import pytest

import bad_arguments as B


@pytest.fixture(scope="module")
def snapshot():
    return B.load_snapshot()


@pytest.fixture(scope="module")
def ours():
    return {B.case_key(*c): (B.our_construction(*c, via="class"), B.our_construction(*c, via="factory")) for c in B.cases()}


def test_the_recorded_cases_are_the_registry_cases(snapshot):
    """A new optimizer or argument needs Keras's answers: ``python tests/bad_arguments.py --write``."""
    assert set(snapshot) == {B.case_key(*c) for c in B.cases()}


def test_every_case_agrees_with_keras_or_differs_on_purpose(snapshot, ours):
    verdicts = {k: B.verdict(k, snapshot[k], ours[k][0]) for k in snapshot}
    wrong = {k: (snapshot[k], ours[k][0]) for k, v in verdicts.items() if v == "DISAGREES"}
    assert not wrong, f"{len(wrong)} cases: {dict(list(wrong.items())[:10])}"
    assert sum(v == "agrees" for v in verdicts.values()) > len(verdicts) / 2


def test_the_class_and_the_factory_raise_the_same(ours):
    assert not {k: v for k, v in ours.items() if v[0] != v[1]}


def test_refusals_name_the_argument(ours):
    from jaxopt_keras import optimizers as O

    classes = {"legacy": O.legacy, "current": O, "keras3": O.keras3}
    unnamed = []
    for family, name, arg, kind in B.cases():
        if ours[B.case_key(family, name, arg, kind)][0] == "ok":
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises((TypeError, ValueError)) as e:
                getattr(classes[family], name)(**B.call_kwargs(name, arg, kind, B.our_schedule))
        # Named as an identifier, or in words (TF-Keras's legacy Nadam: "... as the learning rate.",
        # also for the `lr` alias).
        words = {"lr": "learning rate"}
        if any(
            a not in str(e.value) and words.get(a, a.replace("_", " ")) not in str(e.value) for a in arg.split("+")
        ):
            unnamed.append((family, name, arg, kind, str(e.value)))
    assert not unnamed, unnamed[:5]


def test_docs_errors_page_is_current(snapshot):
    expected = B.docs_page(snapshot, B.our_outcomes())
    assert B.DOCS.read_text() == expected, "docs/errors.md is stale: python tests/bad_arguments.py --docs"
