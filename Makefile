# `make demo`, `make test` and `make bench` each create .venv when it is missing
# and install what they need (the stamp files make the install a no-op when
# nothing changed).  `make demo` runs the quickstart, then ports a TF-Keras
# and a Keras 3 model into flax nnx (examples/port_keras_model.py, under a
# minute; writes build/port_keras_model.png).  `make bench` runs the full benchmark suite (one to two
# hours, most of it compiling per-leaf programs for the trees of many leaves;
# writes docs/performance.md, its plots and benchmarks/results.json);
# `make bench-quick` a few-minute check that writes to build/bench-quick/.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: demo test bench bench-quick clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.stamp-base: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.stamp-test: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,oracle]'
	touch $@ $(VENV)/.stamp-base

$(VENV)/.stamp-demo: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[demo]'
	touch $@ $(VENV)/.stamp-base

$(VENV)/.stamp-bench: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $@ $(VENV)/.stamp-base

demo: $(VENV)/.stamp-demo
	$(PY) examples/quickstart.py
	$(PY) examples/port_keras_model.py

# The suite runs in two pytest-xdist workers, a test file per worker at a
# time (a file's module fixtures, such as a Keras 3 process, are built once):
# one process leaves the second core idle while a test traces or waits on
# TF-Keras.  The Keras layer's tests, and its oracles against TF-Keras and
# Keras 3, run twice, the second time with every step packed where it can be
# (jaxopt_keras/optimizers/packed.py; tests/conftest.py, `pack-all`).
TEST_WORKERS ?= -n 2 --dist loadfile
test: $(VENV)/.stamp-test
	$(PY) -m pytest $(TEST_WORKERS)

bench: $(VENV)/.stamp-bench
	$(PY) -m benchmarks

bench-quick: $(VENV)/.stamp-bench
	$(PY) -m benchmarks --quick

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
