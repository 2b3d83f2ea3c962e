"""The checked-in stubs are what the registry generates today."""

from __future__ import annotations

import os

import pytest

from jaxopt_keras import _stubs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("path", sorted(_stubs.STUBS))
def test_stub_is_up_to_date(path):
    with open(os.path.join(ROOT, path)) as f:
        checked_in = f.read()
    assert checked_in == _stubs.STUBS[path](), f"{path} is stale: run `python -m jaxopt_keras._stubs`"


@pytest.mark.parametrize("path", sorted(_stubs.STUBS))
def test_stub_is_valid_python(path):
    compile(_stubs.STUBS[path](), path, "exec")


def test_stub_spells_out_every_factory_and_class():
    from jaxopt_keras import registry

    package, optimizers = _stubs.package_stub(), _stubs.optimizers_stub()
    for e in registry.entries():
        for family in e.specs:
            assert f"def {e.function}(" in package
            assert f"class {e.class_name}(" in optimizers
