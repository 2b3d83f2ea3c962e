"""The tests' own layout, as ``tests/conftest.py`` describes it.

The unit tests sit in folders named after the package's layers
(``tests/core/`` for ``jaxopt_keras/core/``, ...); several devices or
processes in ``tests/distributed/``; TF-Keras comparisons in
``tests/oracle/``; the benchmark suite's own logic in ``tests/bench/``; the
package as a whole at the top.  No folder is a Python
package, so pytest imports every file by its base name: two files of the same
name in two folders would collide ("import file mismatch"), and a package
``tests/keras/`` would shadow Keras itself.
"""

from __future__ import annotations

import collections
import pathlib

TESTS = pathlib.Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "jaxopt_keras"
OTHER_FOLDERS = {"distributed", "oracle", "fuzz", "bench"}


def _python_files():
    return [p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts]


def test_no_folder_is_a_package():
    assert not [str(p.relative_to(TESTS)) for p in _python_files() if p.name == "__init__.py"]


def test_base_names_are_unique():
    by_name = collections.defaultdict(list)
    for p in _python_files():
        if p.name != "conftest.py":
            by_name[p.name].append(str(p.relative_to(TESTS)))
    assert not {n: ps for n, ps in by_name.items() if len(ps) > 1}


def test_folders_mirror_the_package():
    layers = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__" and any(p.glob("test_*.py"))}
    assert folders - OTHER_FOLDERS <= layers, f"test folders naming no layer of the package: {folders - OTHER_FOLDERS - layers}"
