# Two entry points for a fresh clone: `make demo` and `make test`.
# Each creates the virtual environment $(VENV) if missing, with the interpreter $(PYTHON),
# and installs the project with its test extra from pyproject.toml (under the pip
# constraints file $(CONSTRAINTS) when one is named). Another interpreter, in its own
# environment:
#     make test PYTHON="env PYENV_VERSION=3.13.0 python3" VENV=.venv313
# The lowest versions pyproject.toml allows (constraints/lowest.txt), on Python 3.11,
# without the tests marked slow (tests/conftest.py's SLOW: exhaustive parametrisations
# and statistical studies, run by every `make test`):
#     make test-lowest
# .ci/run runs the suite on Python 3.11 and on Python 3.13.
PYTHON        ?= python3
VENV          ?= .venv
CONSTRAINTS   ?=
PYTHON_LOWEST ?= env PYENV_VERSION=3.11.7 python3
PY            := $(VENV)/bin/python
STAMP         := $(VENV)/.installed
# A busy 2-core machine makes OpenBLAS's threading slow JAX's CPU solves ~100x; pin it.
export OPENBLAS_NUM_THREADS := 1
export MPLBACKEND := Agg

.PHONY: demo test test-lowest bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(CONSTRAINTS),--constraint $(CONSTRAINTS)) -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m bayesgmm demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-lowest:
	$(MAKE) test PYTHON="$(PYTHON_LOWEST)" VENV=.venv-lowest CONSTRAINTS=constraints/lowest.txt \
		PYTEST_ARGS='-m "not slow"'

bench: $(STAMP)
	cd benchmarks && ../$(PY) em.py && ../$(PY) restarts.py && ../$(PY) sweep.py && ../$(PY) host.py && ../$(PY) nuts.py

clean:
	rm -rf $(VENV) .venv-lowest build *.egg-info
