# Two entry points for a fresh clone: `make demo` and `make test`.
# Each creates .venv if missing and installs the project (with its test extra) from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# A busy 2-core machine makes OpenBLAS's threading slow JAX's CPU solves ~100x; pin it.
export OPENBLAS_NUM_THREADS := 1
export MPLBACKEND := Agg

.PHONY: demo test bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m bayesgmm demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP)
	cd benchmarks && ../$(PY) em.py && ../$(PY) restarts.py && ../$(PY) sweep.py && ../$(PY) host.py && ../$(PY) nuts.py

clean:
	rm -rf $(VENV) build *.egg-info
