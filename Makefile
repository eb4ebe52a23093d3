# Two commands on a fresh machine:
#   make grade   grade the bundled example submissions and print the gradebook
#   make test    run the kit's test suite
# Both create .venv and install what is missing first.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install grade table release test clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

install: $(STAMP)

grade: $(STAMP)
	$(PY) -m autograder grade examples/submissions --out grading-output --print-gradebook

table: $(STAMP)
	$(PY) -m autograder table

release: $(STAMP)
	$(PY) -m autograder release

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) grading-output .pytest_cache
