"""Test-session setup, for every test under ``tests/``.

Multi-device tests need 8 CPU devices, which XLA only creates if the flag is
set before JAX initializes its backend, so it is set here, before any test
module imports JAX.

The tests mirror the package (``tests/core/``, ``tests/schedules/``, ...,
``tests/optimizers/``; ``tests/distributed/`` for several devices or
processes; ``tests/oracle/`` against TF-Keras; ``tests/bench/`` the
benchmark suite's plan, re-measurements and targets).  No folder is a package
(there is no ``__init__.py``): pytest imports each test file by its base
name, with its folder first on ``sys.path``, so base names are unique over
the whole tree (``tests/test_tree.py`` checks), and a folder's own helper
module (``tests/oracle/harness.py``, ``tests/optimizers/layer_helpers.py``,
``tests/schedules/schedule_helpers.py``) is imported by name.  The shared
``tests/helpers.py`` is importable from every folder because this directory
is put on ``sys.path`` here.
"""

import os
import sys

_TESTS = os.path.dirname(os.path.abspath(__file__))
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402,F401  (after the flag)
import pytest  # noqa: E402

_REPORT: list[str] = []


@pytest.fixture(scope="session")
def report():
    """``report(line)`` adds a line to the summary printed at the end of the session."""
    return _REPORT.append


# `make test` runs the suite in two pytest-xdist worker processes: each
# worker's lines travel to the controller, which prints the summary.
def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["agreement"] = list(_REPORT)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _REPORT.extend(getattr(node, "workeroutput", {}).get("agreement", []))


def pytest_terminal_summary(terminalreporter):
    if _REPORT:
        terminalreporter.section("agreement with TF-Keras (worst figures)")
        for line in sorted(_REPORT):
            terminalreporter.write_line(line)


def pytest_addoption(parser):
    parser.addoption(
        "--packed",
        action="store_true",
        help="run every Keras-layer step packed where it can be (jaxopt_keras.optimizers.packed), "
        "whatever the number and size of the variables",
    )


# The Keras layer's tests run twice in one session: with the packing
# thresholds users get ("pack-default": packed only for many small
# variables), and with every step packed where it can be ("pack-all", as
# under --packed).  Both variants of a test are in its file, so `make test`'s
# `--dist loadfile` gives them one worker and one set of module fixtures (one
# Keras 3 process for the two).  test_packed.py sets the thresholds itself in
# every test (it compares packed with per variable), so it runs once; of the
# Keras 3 oracle, only the test that steps the object's own `apply` can pack
# (the others step `stateless_apply` or the functional family).
PACKING_MODES = ("pack-default", "pack-all")
RUN_BOTH_WAYS = (
    "tests/optimizers/",
    "tests/oracle/test_keras_layer_oracle.py::",
    "tests/oracle/test_keras3_oracle.py::test_apply_matches_keras3",
)
RUN_ONCE = ("tests/optimizers/test_packed.py::",)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "packing_once(reason): run this test of the Keras layer once, not in both packing "
        "modes (for a test that reads state the process keeps, such as the numbers OptimizerV2 "
        "gives unnamed optimizers)",
    )


def pytest_generate_tests(metafunc):
    nodeid = metafunc.definition.nodeid
    both = nodeid.startswith(RUN_BOTH_WAYS) and not nodeid.startswith(RUN_ONCE)
    if both and not metafunc.definition.get_closest_marker("packing_once") and not metafunc.config.getoption("--packed"):
        metafunc.parametrize("packing_mode", PACKING_MODES, indirect=True)


@pytest.fixture(autouse=True)
def packing_mode(request, monkeypatch) -> str:
    """This test's packing thresholds, ``"pack-default"`` or ``"pack-all"``
    (``PACK_MIN_VARIABLES`` 1 and no bound on the mean size)."""
    mode = "pack-all" if request.config.getoption("--packed") else getattr(request, "param", "pack-default")
    if mode == "pack-all":
        from jaxopt_keras.optimizers import packed

        monkeypatch.setattr(packed, "PACK_MIN_VARIABLES", 1)
        monkeypatch.setattr(packed, "PACK_MAX_MEAN_SIZE", 2**62)
    return mode
