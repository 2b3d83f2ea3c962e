# `make demo` and `make test` each create .venv when it is missing and install
# what they need (the stamp files make the install a no-op when nothing changed).
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

demo: $(VENV)/.stamp-base
	$(PY) examples/quickstart.py

test: $(VENV)/.stamp-test
	$(PY) -m pytest

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
